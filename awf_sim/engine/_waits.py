"""Sleeps and event waits: the two ways a workflow waits for time or the outside world.

Both are durable: their deadlines are stored when they begin, so a crash or an eviction does
not restart the clock, and a replay of a finished one returns at once. Events sent before the
wait are buffered per type and consumed first in, first out; a wait that times out raises a
`WorkflowTimeoutError` that is checkpointed and never retried (SEMANTICS §3).
"""

from __future__ import annotations

import asyncio
import json
import math
import sys
from collections.abc import Callable
from typing import Any

from awf_sim.dsl._cfduration import js_number_text, wait_ms
from awf_sim.dsl._errors import StepError
from awf_sim.dsl._identity import loads
from awf_sim.engine._calls import Abandoned, TimedOut, replayed_error
from awf_sim.engine._lifetime import NO_CONTEXT, Lifetime
from awf_sim.engine._records import EventRecord, StepRecord
from awf_sim.engine._timeline import shape

__all__ = ["EventWaits", "deliver"]

_TIME_TRAVELER = "You can't sleep until a time in the past, time-traveler"
# The detail keys of the rows these waits write (`_timeline.Row`).
_WS = shape("type", "timeout_ms")
_WE_SEQ = shape("type", "seq")
_WE_TIMED_OUT = shape("type", "timed_out")
_SLEEP_START = shape("duration_ms", "until_ms")


class EventWaits:
    """`wf.sleep`, `wf.sleep_until` and `wf.wait_for` for every lifetime of one simulator."""

    __slots__ = ("clone_engine_errors", "wall_ms")

    def __init__(self, wall_ms: Callable[[], int]) -> None:
        self.wall_ms = wall_ms
        self.clone_engine_errors = False  # profile "local": see replayed_error

    async def sleep(
        self, lt: Lifetime, name: str, ms: int | None, until_epoch_ms: int | None
    ) -> None:
        if not lt.alive:
            raise Abandoned
        # Cloudflare compares with the clock on every call, replays included, before the
        # sleep is numbered: a replay that runs after the moment has passed throws, even
        # though that sleep completed in an earlier run.
        if until_epoch_ms is not None and until_epoch_ms < self.wall_ms():
            raise StepError(_TIME_TRAVELER, "Error")
        _, key, ref = lt.begin("sleep", name, name)
        hooks = lt.hooks
        rec = lt.store.get_step(lt.iid, key)
        if rec is not None and rec["state"] == "done":
            return
        if rec is None:
            if until_epoch_ms is not None:
                ms = until_epoch_ms - self.wall_ms()
            assert ms is not None
            if hooks is not None and ref is not None:
                ms = hooks.sleep_ms(lt.iid, ref, ms)
            until = lt.loop.now_ms + ms
            rec = {"kind": "sleep", "name": name, "state": "running", "until": until}
            lt.commit(
                steps={key: rec},
                timeline=[
                    (lt.loop._now_ms, "sleep-start", name, name, None, ms, until, _SLEEP_START)
                ],
            )
            if hooks is not None and ref is not None:
                lt.act(hooks.during_sleep(lt.iid, ref), ref, None)
        await lt.wait_until(rec["until"])
        # Deferred (to the next commit): lost in a crash, the replay ends the sleep again.
        lt.commit(
            steps={key: {**rec, "state": "done"}},
            timeline=[(lt.loop._now_ms, "sleep-end", name, name, None)],
            defer=True,
        )

    async def wait(
        self, lt: Lifetime, name: str, type: str, timeout_ms: int, payload_only: bool = False
    ) -> Any:
        """The event {"payload", "timestamp", "type"}, or only its payload (`wf.wait_for`:
        said here rather than in a coroutine around this one, which every waiting instance
        would keep alive). Its start is a plain function, so that the frame a waiting
        instance keeps holds only what the wait itself needs."""
        if not lt.alive:
            raise Abandoned
        key, rec, fut, got = self._start_wait(lt, name, type, timeout_ms)
        if fut is None:
            return got["payload"] if payload_only else got
        # A module-level callback, not a closure: it stays alive as long as the wait does.
        handle = lt.loop.call_at(rec["deadline"] / 1000, _expire, fut, context=NO_CONTEXT)
        lt.add_timer(handle)
        lt.waits_open += 1
        try:
            got = await fut
            return got["payload"] if payload_only else got
        except TimedOut:
            return _timed_out(lt, key, rec, name, type)
        finally:
            lt.waits_open -= 1
            handle.cancel()
            lt.drop_timer(handle)
            lt.drop_waiter(fut)  # a timed-out waiter gets no later event

    def _start_wait(
        self, lt: Lifetime, name: str, type: str, timeout_ms: int
    ) -> tuple[str, StepRecord, asyncio.Future[Any] | None, Any]:
        """Number the wait and store its start; then (key, record, None, the event) when it
        has its event already (a replay, a buffered event), else (key, record, the future
        the event will complete, None), the future registered as a waiter of `type`."""
        _, key, ref = lt.begin("wait", name, name)
        hooks = lt.hooks
        rec = lt.store.get_step(lt.iid, key)
        if rec is not None:
            if rec["state"] == "done":
                return key, rec, None, loads(rec["value"])
            if rec["state"] == "failed":
                raise replayed_error(rec["error"], self.clone_engine_errors)
        else:
            if hooks is not None and ref is not None:
                timeout_ms = hooks.wait_timeout_ms(lt.iid, ref, timeout_ms)
            rec = {
                "kind": "wait",
                "name": name,
                "type": type,
                "state": "running",
                # Cloudflare's reading may be fractional, negative or NaN: its timer fires at
                # once for the last two, and its message prints the number as JavaScript does.
                "deadline": lt.loop.now_ms + wait_ms(timeout_ms),
                "timeout_ms": timeout_ms if math.isfinite(timeout_ms) else None,
                # Interned: the same few timeouts are written by every instance of a flow.
                "timeout_text": sys.intern(js_number_text(timeout_ms)),
            }
            lt.commit(
                steps={key: rec},
                timeline=[
                    (lt.loop._now_ms, "wait-start", name, name, None, type, rec["timeout_ms"], _WS)
                ],
            )
        if hooks is not None and ref is not None and hooks.force_wait_timeout(lt.iid, ref):
            return key, rec, None, _timed_out(lt, key, rec, name, type)
        # An event sent before the wait is buffered per type and consumed first in, first out.
        for ev in lt.store.events(lt.iid):
            if ev["type"] == type and ev["consumed_by"] is None:
                return key, rec, None, deliver(lt, key, rec, ev)
        if hooks is not None and ref is not None:
            lt.act(hooks.during_wait(lt.iid, ref), ref, None)
        fut: asyncio.Future[Any] = lt.loop.create_future()
        lt.add_waiter(type, key, fut)
        return key, rec, fut, None


def _expire(fut: asyncio.Future[Any]) -> None:
    if not fut.done():
        fut.set_exception(TimedOut())


def _timed_out(lt: Lifetime, key: str, rec: StepRecord, name: str, type: str) -> Any:
    err = {
        "name": "WorkflowTimeoutError",
        "message": f"Execution timed out after {rec.get('timeout_text', rec['timeout_ms'])}ms",
    }
    # A timed-out wait is persisted and not retried; replays raise it again.
    lt.commit(
        steps={key: {**rec, "state": "failed", "error": err}},
        timeline=[(lt.loop._now_ms, "wait-end", name, name, None, type, True, _WE_TIMED_OUT)],
    )
    raise StepError(err["message"], err["name"])


def deliver(lt: Lifetime, key: str, rec: StepRecord, ev: EventRecord) -> Any:
    """Hand the buffered event `ev` to the wait stored under `key`: checkpointed, consumed."""
    value = {"payload": loads(ev["payload"]), "timestamp": ev["at_ms"], "type": ev["type"]}
    lt.commit(
        steps={key: {**rec, "state": "done", "value": json.dumps(value)}},
        events=[{**ev, "consumed_by": key}],
        timeline=[
            (
                lt.loop._now_ms,
                "wait-end",
                rec["name"],
                rec["name"],
                None,
                ev["type"],
                ev["seq"],
                _WE_SEQ,
            )
        ],
    )
    return value
