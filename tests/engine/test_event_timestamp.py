"""`step.wait_for_event` (Cloudflare's Python step API) gives the event's timestamp as a moment.

On Cloudflare the event is `{payload, timestamp: Date, type}` and the Workers SDK turns the Date
into a `datetime`; the run's own `event["timestamp"]` is one here too. The simulator handed
the virtual milliseconds since it started instead (86400000 for an event a day in), which
`datetime.fromtimestamp(ts / 1000)` read as 2 January 1970.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from awf_sim import Simulator


class Approval:
    async def run(self, event: Any, step: Any) -> Any:
        await step.sleep("a-day", "1 day")
        got = await step.wait_for_event("approval", "approved", timeout="1 hour")
        await step.sleep("then", "1 hour")

        @step.do("seen")
        async def seen() -> Any:
            stamp = got["timestamp"]
            return {
                "is_datetime": isinstance(stamp, dt.datetime),
                "at": stamp.isoformat() if isinstance(stamp, dt.datetime) else stamp,
                "created": event["timestamp"].isoformat(),
            }

        return {"payload": got["payload"], "type": got["type"], **(await seen())}


def test_the_event_timestamp_is_the_moment_it_was_sent_as_a_datetime() -> None:
    with Simulator() as sim:
        inst = sim.create(Approval, {})
        sim.advance("1 day")
        sim.advance("30 minutes")
        inst.send_event("approved", {"by": "ana"})
        sim.run()
        assert inst.status()["output"] == {
            "payload": {"by": "ana"},
            "type": "approved",
            "is_datetime": True,  # was the int 88200000
            "at": "2026-01-02T00:30:00+00:00",
            "created": "2026-01-01T00:00:00+00:00",
        }


def test_it_is_the_same_moment_after_a_replay() -> None:
    with Simulator() as sim:
        inst = sim.create(Approval, {})
        sim.advance("1 day")
        sim.advance("30 minutes")
        inst.send_event("approved", {"by": "ana"})
        sim.advance("1 minute")  # in the sleep after the wait: its event is checkpointed
        sim.crash()
        sim.recover()  # the replay reads the event back from the store
        sim.run()
        assert inst.status()["output"]["at"] == "2026-01-02T00:30:00+00:00"
