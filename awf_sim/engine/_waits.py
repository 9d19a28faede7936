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

from awf_sim._coro import HandCoroutine
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
            if until_epoch_ms is not None:
                rec["moment"] = True
            # commit_step, not lt.commit: one record and its rows, without the general
            # commit's keywords (a sleep costs more than a step otherwise). The alive check
            # is lt.commit's: nothing is written after a crash point.
            if not lt.alive:
                raise Abandoned
            lt.store.commit_step(
                lt.iid,
                key,
                rec,
                [(_SLEEP_START, lt.loop._now_ms, "sleep-start", name, name, None, ms, until)],
                False,
            )
            if hooks is not None and ref is not None:
                lt.act(hooks.during_sleep(lt.iid, ref), ref, None)
        await lt.wait_until(rec["until"])
        if lt.pause_gate is not None:
            # Cloudflare: a sleep that ends while a pause waits for a running step does not
            # return; the run stops there, and the replay after resume ends the sleep.
            await lt.pause_gate
        # Deferred (to the next commit): lost in a crash, the replay ends the sleep again.
        if not lt.alive:
            raise Abandoned
        lt.store.commit_step(
            lt.iid,
            key,
            {**rec, "state": "done"},
            [((), lt.loop._now_ms, "sleep-end", name, name, None)],
            True,
        )

    def wait(
        self, lt: Lifetime, name: str, type: str, timeout_ms: int, payload_only: bool = False
    ) -> EventWait:
        """The event {"payload", "timestamp", "type"}, or only its payload (`wf.wait_for`)."""
        return EventWait(lt, name, type, timeout_ms, payload_only)


_NEW, _WAITING, _ENDED = 0, 1, 2  # EventWait.state
_PENDING: Any = object()  # EventWait.outcome until the event or the timeout comes


class EventWait(HandCoroutine, Coroutine[Any, Any, Any]):
    """One event wait, awaited like the coroutine it stands for: it starts when first
    awaited, suspends until the event or the timeout, and returns the event (or its payload).

    Written out as a class, not an `async def`: every waiting instance keeps its wait, and a
    coroutine's frame would cost three times these slots. It is three things at once:

    - the coroutine the awaiting frame (or a Task) drives: `send`, `throw`, `close`, with the
      cleanup of the `finally` of the `async def` it replaces in `_end`, run at the same point;
    - the future its task waits on (what `await future` would have yielded): the duck-typed
      future protocol a Task uses (`_asyncio_future_blocking`, `get_loop`,
      `add_done_callback`, `result`, `cancel`), so no Future object is kept per wait either;
    - the waiter its lifetime lists, which an event for its type completes (`receive`).
    """

    __slots__ = (
        "_asyncio_future_blocking",
        "callback",
        "context",
        "handle",
        "key",
        "lt",
        "name",
        "outcome",
        "payload_only",
        "rec",
        "state",
        "timeout_ms",
        "type",
    )

    def __init__(
        self, lt: Lifetime, name: str, type: str, timeout_ms: int, payload_only: bool
    ) -> None:
        self.lt = lt
        self.name = name
        self.type = type
        self.timeout_ms = timeout_ms
        self.payload_only = payload_only
        self.state = _NEW
        self.key = ""
        self.rec: StepRecord | None = None
        self.handle: asyncio.TimerHandle | None = None
        self.outcome: Any = _PENDING  # the event's value, or the exception to wake up with
        # The task's wake-up (with its context), or a list of (callback, context) for more.
        self.callback: Any = None
        self.context: Any = None
        # None: not a future to asyncio.ensure_future (it is a coroutine to run in a task);
        # True while yielded to a task, as Future.__await__ sets it.
        self._asyncio_future_blocking: bool | None = None

    # -- the coroutine -------------------------------------------------------------------
    def send(self, value: Any) -> Any:
        state = self.state
        if state == _NEW:
            self.state = _ENDED  # until it waits: whatever _start raises ends it
            return self._start()
        if state == _ENDED:
            raise RuntimeError("cannot reuse already awaited coroutine")
        outcome = self.outcome
        if outcome is _PENDING:  # sent to without being woken: it waits on
            self._asyncio_future_blocking = True
            return self
        self._end()
        if isinstance(outcome, BaseException):
            return self._raise(outcome)
        raise StopIteration(outcome["payload"] if self.payload_only else outcome)

    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> Any:
        exc = self.thrown(typ, val, tb)
        if self.state != _WAITING:
            self.state = _ENDED
            raise exc
        self._end()
        return self._raise(exc)

    def close(self) -> None:
        if self.state == _WAITING:
            self._end()
        self.state = _ENDED

    def _raise(self, exc: BaseException) -> Any:
        if isinstance(exc, TimedOut):  # the task wakes with the timeout
            assert self.rec is not None
            return _timed_out(self.lt, self.key, self.rec, self.name, self.type)
        raise exc

    def _start(self) -> Any:
        """Number the wait and store its start; return its value at once when it has its
        event already (a replay, a buffered event), else register it as a waiter of its type
        and yield itself, the future, to the task."""
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
                "deadline": _shared(lt.loop.now_ms + wait_ms(timeout_ms)),
                "timeout_ms": _shared(timeout_ms) if math.isfinite(timeout_ms) else None,
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
            return _timed_out(lt, key, rec, name, type)
        # An event sent before the wait is buffered per type and consumed first in, first out.
        for ev in lt.store.events(lt.iid):
            if ev["type"] == type and ev["consumed_by"] is None:
                return self._return(deliver(lt, key, rec, ev))
        if hooks is not None and ref is not None:
            lt.act(hooks.during_wait(lt.iid, ref), ref, None)
        lt.add_waiter(self)
        # A module-level callback, not a closure: it stays alive as long as the wait does.
        self.handle = lt.loop.call_at(rec["deadline"] / 1000, _expire, self, context=NO_CONTEXT)
        lt.add_timer(self.handle)
        lt.waits_open += 1
        self.state = _WAITING
        self._asyncio_future_blocking = True
        return self

    def _return(self, got: Any) -> Any:
        raise StopIteration(got["payload"] if self.payload_only else got)

    def _end(self) -> None:
        lt, handle = self.lt, self.handle
        self.state = _ENDED
        lt.waits_open -= 1
        assert handle is not None
        handle.cancel()
        lt.drop_timer(handle)
        lt.drop_waiter(self)  # a timed-out waiter gets no later event

    # -- the waiter ------------------------------------------------------------------------
    def receive(self, ev: EventRecord) -> None:
        """The event `ev` arrived for this wait (it is no longer a waiter): checkpoint it and
        wake the wait with it."""
        lt = self.lt
        rec = lt.store.get_step(lt.iid, self.key)
        assert rec is not None
        value = deliver(lt, self.key, rec, ev)
        self._complete(value)

    # -- the future its task waits on ------------------------------------------------------
    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self.lt.loop

    def done(self) -> bool:
        return self.outcome is not _PENDING

    def cancelled(self) -> bool:
        return isinstance(self.outcome, asyncio.CancelledError)

    def result(self) -> Any:
        outcome = self.outcome
        if outcome is _PENDING:
            raise asyncio.InvalidStateError("Result is not ready.")
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def exception(self) -> BaseException | None:
        outcome = self.outcome
        if outcome is _PENDING:
            raise asyncio.InvalidStateError("Exception is not set.")
        if isinstance(outcome, asyncio.CancelledError):
            raise outcome
        return outcome if isinstance(outcome, BaseException) else None

    def add_done_callback(self, fn: Any, *, context: Any = None) -> None:
        if self.outcome is not _PENDING:
            self.lt.loop.call_soon(fn, self, context=context)
        elif self.callback is None:
            self.callback, self.context = fn, context
        elif isinstance(self.callback, list):
            self.callback.append((fn, context))
        else:
            self.callback = [(self.callback, self.context), (fn, context)]
            self.context = None

    def remove_done_callback(self, fn: Any) -> int:
        callback = self.callback
        if isinstance(callback, list):
            kept = [(f, c) for f, c in callback if f != fn]
            self.callback = kept
            return len(callback) - len(kept)
        if callback is not None and callback == fn:
            self.callback = self.context = None
            return 1
        return 0

    def cancel(self, msg: Any = None) -> bool:
        if self.outcome is not _PENDING:
            return False
        self._complete(asyncio.CancelledError() if msg is None else asyncio.CancelledError(msg))
        return True

    def _complete(self, outcome: Any) -> None:
        """Set the outcome and schedule the callbacks, as Future.set_result does."""
        if self.outcome is not _PENDING:
            raise asyncio.InvalidStateError("invalid state")
        self.outcome = outcome
        callback, context = self.callback, self.context
        self.callback = self.context = None
        call_soon = self.lt.loop.call_soon
        if isinstance(callback, list):
            for fn, ctx in callback:
                call_soon(fn, self, context=ctx)
        elif callback is not None:
            call_soon(callback, self, context=context)


# Whole numbers many waits store alike (the same timeout; the same deadline, for instances
# started together): one object for all of them, as interning does for strings. Bounded, as
# any number may come; ints only, as 1000.0 == 1000 would hand back the other type.
_SHARED: dict[int, int] = {}


def _shared(n: Any) -> Any:
    if type(n) is not int:
        return n
    if len(_SHARED) >= 4096:
        _SHARED.clear()
    return _SHARED.setdefault(n, n)


def _expire(wait: EventWait) -> None:
    if not wait.done():
        wait._complete(TimedOut())


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
