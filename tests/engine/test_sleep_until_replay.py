"""sleepUntil compares with the clock on every call, replays included (fidelity pass 2)."""

from __future__ import annotations

from typing import Any


class _Until:
    async def run(self, event: Any, step: Any) -> Any:
        out = []
        try:
            await step.sleep_until("z", event["timestamp"].timestamp() * 1000 + 300)
            out.append("slept")
        except Exception as exc:
            out.append(exc.message)  # type: ignore[attr-defined]
        await step.sleep("y", 500)
        return out


def test_sleep_until_throws_on_a_replay_after_its_moment(make_sim: Any) -> None:
    sim = make_sim(profile="local")
    inst = sim.create(_Until)
    sim.run_until_done(inst, max_ms=600)
    inst.pause()
    sim.advance(100)
    inst.resume()  # the replay calls sleepUntil again, now in the past
    sim.run()
    assert inst.status()["output"] == ["You can't sleep until a time in the past, time-traveler"]
