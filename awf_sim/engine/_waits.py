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
from collections.abc import Callable, Coroutine
from typing import Any

from awf_sim.dsl._cfduration import js_number_text, wait_ms
from awf_sim.dsl._errors import StepError
from awf_sim.dsl._identity import loads
from awf_sim.engine._calls import Abandoned, TimedOut, replayed_error
from awf_sim.engine._lifetime import NO_CONTEXT, Lifetime
from awf_sim.engine._records import EventRecord, StepRecord
from awf_sim.engine._timeline import shape

__all__ = ["EventWait", "EventWaits", "deliver"]

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
                    (_SLEEP_START, lt.loop._now_ms, "sleep-start", name, name, None, ms, until)
                ],
            )
            if hooks is not None and ref is not None:
                lt.act(hooks.during_sleep(lt.iid, ref), ref, None)
        await lt.wait_until(rec["until"])
        # Deferred (to the next commit): lost in a crash, the replay ends the sleep again.
        lt.commit(
            steps={key: {**rec, "state": "done"}},
            timeline=[((), lt.loop._now_ms, "sleep-end", name, name, None)],
            defer=True,
        )

    def wait(
        self, lt: Lifetime, name: str, type: str, timeout_ms: int, payload_only: bool = False
    ) -> EventWait:
        """The event {"payload", "timestamp", "type"}, or only its payload (`wf.wait_for`)."""
        return EventWait(lt, name, type, timeout_ms, payload_only)


_NEW, _DONE = None, False  # EventWait.fut before the wait starts, and once it has ended


class EventWait(Coroutine[Any, Any, Any]):
    """One event wait, awaited like the coroutine it stands for: it starts when first
    awaited, suspends on a future until the event or the timeout, and returns the event (or
    its payload).

    Written out as a class, not an `async def`: every waiting instance keeps its wait, and a
    coroutine's frame costs three times the memory of these slots. It does what the `await`
    statement would: `send` and `throw` are the coroutine protocol the awaiting frame (or a
    Task) drives, and the cleanup in `_end` is the `finally` of the coroutine it replaces.
    """

    __slots__ = ("fut", "handle", "key", "lt", "name", "payload_only", "rec", "timeout_ms", "type")

    def __init__(
        self, lt: Lifetime, name: str, type: str, timeout_ms: int, payload_only: bool
    ) -> None:
        self.lt = lt
        self.name = name
        self.type = type
        self.timeout_ms = timeout_ms
        self.payload_only = payload_only
        self.fut: Any = _NEW  # then its future while it waits, then _DONE
        self.key = ""
        self.rec: StepRecord | None = None
        self.handle: asyncio.TimerHandle | None = None

    def __await__(self) -> EventWait:
        return self

    def __iter__(self) -> EventWait:
        return self

    def __next__(self) -> Any:
        return self.send(None)

    def send(self, value: Any) -> Any:
        fut = self.fut
        if fut is _NEW:
            self.fut = _DONE  # until it waits: whatever _start raises ends it
            return self._start()
        if fut is _DONE:
            raise RuntimeError("cannot reuse already awaited coroutine")
        if not fut.done():  # sent to without being woken: it waits on
            fut._asyncio_future_blocking = True
            return fut
        self._end()
        try:
            got = fut.result()
        except TimedOut:
            return self._timed_out()
        raise StopIteration(got["payload"] if self.payload_only else got)

    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> Any:
        if val is None:
            exc = typ if isinstance(typ, BaseException) else typ()
        else:
            exc = val if isinstance(val, BaseException) else typ(val)
        if tb is not None:
            exc = exc.with_traceback(tb)
        if self.fut is _NEW or self.fut is _DONE:
            self.fut = _DONE
            raise exc
        self._end()
        if isinstance(exc, TimedOut):  # the task wakes with the future's exception
            return self._timed_out()
        raise exc

    def close(self) -> None:
        if self.fut is not _NEW and self.fut is not _DONE:
            self._end()
        self.fut = _DONE

    def _start(self) -> Any:
        """Number the wait and store its start; return its value at once when it has its
        event already (a replay, a buffered event), else register it as a waiter of its type
        and yield its future to the task."""
        lt, name, type = self.lt, self.name, self.type
        if not lt.alive:
            raise Abandoned
        _, key, ref = lt.begin("wait", name, name)
        hooks = lt.hooks
        rec = lt.store.get_step(lt.iid, key)
        if rec is not None:
            if rec["state"] == "done":
                return self._return(loads(rec["value"]))
            if rec["state"] == "failed":
                raise replayed_error(rec["error"], lt.waits.clone_engine_errors)
        else:
            timeout_ms = self.timeout_ms
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
                    (_WS, lt.loop._now_ms, "wait-start", name, name, None, type, rec["timeout_ms"])
                ],
            )
        self.key, self.rec = key, rec
        if hooks is not None and ref is not None and hooks.force_wait_timeout(lt.iid, ref):
            return self._timed_out()
        # An event sent before the wait is buffered per type and consumed first in, first out.
        for ev in lt.store.events(lt.iid):
            if ev["type"] == type and ev["consumed_by"] is None:
                return self._return(deliver(lt, key, rec, ev))
        if hooks is not None and ref is not None:
            lt.act(hooks.during_wait(lt.iid, ref), ref, None)
        fut: asyncio.Future[Any] = lt.loop.create_future()
        lt.add_waiter(self)
        # A module-level callback, not a closure: it stays alive as long as the wait does.
        self.handle = lt.loop.call_at(rec["deadline"] / 1000, _expire, fut, context=NO_CONTEXT)
        lt.add_timer(self.handle)
        lt.waits_open += 1
        self.fut = fut
        fut._asyncio_future_blocking = True
        return fut

    def receive(self, ev: EventRecord) -> None:
        """The event `ev` arrived for this wait (it is no longer a waiter): checkpoint it and
        wake the wait with it."""
        lt = self.lt
        rec = lt.store.get_step(lt.iid, self.key)
        assert rec is not None
        self.fut.set_result(deliver(lt, self.key, rec, ev))

    def _return(self, got: Any) -> Any:
        raise StopIteration(got["payload"] if self.payload_only else got)

    def _timed_out(self) -> Any:
        assert self.rec is not None
        return _timed_out(self.lt, self.key, self.rec, self.name, self.type)

    def _end(self) -> None:
        lt, handle = self.lt, self.handle
        self.fut = _DONE
        lt.waits_open -= 1
        assert handle is not None
        handle.cancel()
        lt.drop_timer(handle)
        lt.drop_waiter(self)  # a timed-out waiter gets no later event


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
        timeline=[(_WE_TIMED_OUT, lt.loop._now_ms, "wait-end", name, name, None, type, True)],
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
                _WE_SEQ,
                lt.loop._now_ms,
                "wait-end",
                rec["name"],
                rec["name"],
                None,
                ev["type"],
                ev["seq"],
            )
        ],
    )
    return value
