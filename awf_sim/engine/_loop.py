"""An asyncio event loop on virtual time (the model is trio's MockClock with autojump).

When nothing is ready the loop jumps its clock to the next timer instead of waiting, so a
two-week sleep costs one loop iteration. Time is whole milliseconds: with asyncio's 1e-9 s
resolution a timer a year away would never compare as due and the loop would spin.

The loop holds no OS resources (no selector, no self-pipe, no sockets), so a Simulator that is
never closed leaks nothing. Work handed to threads (`asyncio.to_thread`) keeps virtual time
still: the loop waits for it in real time before jumping.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import math
import threading
from collections.abc import Callable
from typing import Any, NoReturn

from awf_sim.engine._limits import cpu_cancel_message, watch_cpu
from awf_sim.errors import NetworkAccessRefused

__all__ = ["HORIZON_MS", "NO_CONTEXT", "Alarm", "VirtualLoop"]

# The end of virtual time: 2**53 ms (about 285,000 years), JavaScript's largest exact
# integer. Nothing is scheduled past it; a timer beyond it is one that never fires.
HORIZON_MS = 2**53

# The context the engine's own timer callbacks run in (they only complete futures): one for
# all, where asyncio would copy the current context for each timer.
NO_CONTEXT = contextvars.Context()


class _Bucket:
    """The futures due at one virtual millisecond, behind one asyncio timer."""

    __slots__ = ("alarms", "at_ms", "handle", "live")

    def __init__(self, at_ms: int, handle: asyncio.TimerHandle | None) -> None:
        self.at_ms = at_ms
        self.handle = handle  # None once it has run
        self.alarms: list[Alarm] = []
        self.live = 0  # alarms not cancelled


class Alarm:
    """One future's place in a bucket (`VirtualLoop.wake_at`); cancelling it lets go of the
    bucket's timer when no other alarm is left in it."""

    __slots__ = ("_bucket", "_fut", "_loop")
    _bucket: _Bucket | None  # None once cancelled
    _fut: asyncio.Future[None]
    _loop: VirtualLoop

    def cancel(self) -> None:
        bucket = self._bucket
        if bucket is None:
            return
        self._bucket = None
        bucket.live -= 1
        if bucket.live == 0 and bucket.handle is not None:
            # Nobody is left to wake: a timer that stayed would still move the clock to its
            # time (the loop jumps to the earliest timer), which nothing in the run asked for.
            bucket.handle.cancel()
            bucket.handle = None
            del self._loop._buckets[bucket.at_ms]


_new_alarm = Alarm.__new__
_Handle = asyncio.Handle
_new_handle = _Handle.__new__


class _VirtualSelector:
    """Stands in for the selector: `select(timeout)` is where the loop would block."""

    def __init__(self, loop: VirtualLoop) -> None:
        self._loop = loop

    def select(self, timeout: float | None) -> list[Any]:
        loop = self._loop
        loop._iteration += 1  # control came back: whatever ran last gave it up
        if loop.cpu_victim is not None:  # spun past the CPU budget without progress
            task, budget = loop.cpu_victim
            loop.cpu_victim = None
            task.cancel(cpu_cancel_message(budget))
        if timeout == 0:
            return []
        if loop._threads_pending:
            with loop._wakeup:
                loop._wakeup.wait(0.05)
            return []
        scheduled = loop._scheduled  # type: ignore[attr-defined]
        target = loop._target_ms
        if loop._stop_when():
            loop.stop()
            return []
        if not scheduled:
            # Nothing can ever happen again without the outside: stop here.
            if target is not None:
                loop._set_now(max(loop._now_ms, target))
            loop.stop()
            return []
        next_ms = math.ceil(scheduled[0]._when * 1000 - 1e-6)
        if next_ms > HORIZON_MS:
            # Only timers past the end of virtual time are left: nothing more can happen.
            if target is not None:
                loop._set_now(max(loop._now_ms, min(target, HORIZON_MS)))
            loop.stop()
            return []
        if target is not None and next_ms > target:
            loop._set_now(max(loop._now_ms, target))
            loop.stop()
            return []
        loop._set_now(max(loop._now_ms, next_ms))
        return []

    def close(self) -> None:
        pass


class VirtualLoop(asyncio.BaseEventLoop):
    """Event loop whose `time()` is virtual; `run(stop_when, target_ms)` drives it."""

    def __init__(self) -> None:
        super().__init__()
        self._now_ms = 0
        self._clock_resolution = 1e-6
        self._selector = _VirtualSelector(self)
        self._threads_pending = 0
        self._wakeup = threading.Condition()
        self._target_ms: int | None = None
        self._stop_when: Callable[[], bool] = lambda: False
        self._iteration = 0
        self.cpu_budget_ms: int | None = None  # per callback; None: unbounded
        self.cpu_progress = 0  # step attempts started: the CPU budget is per attempt
        self.cpu_victim: tuple[asyncio.Task[Any], int] | None = None  # over budget, to cancel
        self._buckets: dict[int, _Bucket] = {}

    def create_task(self, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
        task = super().create_task(coro, **kwargs)
        # An instance waiting on a timer or an event when its Simulator is dropped is not
        # lost (its state is in the store), so its task is abandoned on purpose; without this
        # asyncio would log "Task was destroyed but it is pending!" when it is collected.
        task._log_destroy_pending = False  # type: ignore[attr-defined]
        return task

    def call_soon(  # type: ignore[override]  # the same call; typeshed types it generically
        self,
        callback: Callable[..., object],
        *args: Any,
        context: contextvars.Context | None = None,
    ) -> asyncio.Handle:
        # asyncio's own, less three Python calls (the closed and debug checks, _call_soon)
        # and Handle.__init__'s: a task's first step and every future's wake-up come here,
        # a few per step. In debug mode asyncio's checks run as they are.
        if self._closed or self._debug:  # type: ignore[attr-defined]
            return super().call_soon(callback, *args, context=context)
        h: Any = _new_handle(_Handle)
        h._context = contextvars.copy_context() if context is None else context
        h._loop = self
        h._callback = callback
        h._args = args
        h._cancelled = False
        h._repr = None
        h._source_traceback = None
        self._ready.append(h)  # type: ignore[attr-defined]
        handle: asyncio.Handle = h
        return handle

    # -- clock --------------------------------------------------------------------------
    def time(self) -> float:
        return self._now_ms / 1000

    @property
    def now_ms(self) -> int:
        return self._now_ms

    def _set_now(self, ms: int) -> None:
        self._now_ms = ms
        # asyncio runs a timer when `when < time() + _clock_resolution`. Once time() is so
        # large (past 2**34 s) that a float step exceeds 1e-6 s, `time() + 1e-6 == time()`
        # and a timer due now would never run: the loop would spin. Keep the resolution a
        # few float steps wide (still far below a millisecond).
        self._clock_resolution = max(1e-6, 4 * math.ulp(ms / 1000))

    def wake_at(self, at_ms: int, fut: asyncio.Future[None]) -> Alarm:
        """Complete `fut` at virtual time `at_ms` (unless it is done by then).

        Futures due at the same millisecond share one asyncio timer. A batch of instances that
        sleep or back off alike (created together, the same steps, the same delay) would
        otherwise push a timer each onto asyncio's heap, whose entries compare in Python:
        O(log n) Python calls per wait, where a bucket costs a dict lookup and an append. The
        futures of a bucket complete in the order they were added."""
        bucket = self._buckets.get(at_ms)
        if bucket is None:
            bucket = self._buckets[at_ms] = _Bucket(at_ms, None)
            bucket.handle = self.call_at(at_ms / 1000, self._ring, bucket, context=NO_CONTEXT)
        alarm = _new_alarm(Alarm)
        alarm._bucket = bucket
        alarm._fut = fut
        alarm._loop = self
        bucket.alarms.append(alarm)
        bucket.live += 1
        return alarm

    def _ring(self, bucket: _Bucket) -> None:
        del self._buckets[bucket.at_ms]
        bucket.handle = None
        for alarm in bucket.alarms:
            if alarm._bucket is not None and not alarm._fut.done():
                alarm._fut.set_result(None)

    def has_due_work(self) -> bool:
        """Whether running the loop now would run anything: a ready callback, a timer due at
        the current time, or a thread to wait for. When not, `run(lambda: True)` would return
        at once having run nothing."""
        if self._ready or self._threads_pending:  # type: ignore[attr-defined]
            return True
        scheduled: list[asyncio.TimerHandle] = self._scheduled  # type: ignore[attr-defined]
        # BaseEventLoop._run_once's test for a due timer; cancelled ones are dropped unrun.
        end = self.time() + self._clock_resolution
        if not scheduled or scheduled[0].when() >= end:
            return False  # a heap: when its earliest timer is not due, none is
        return any(not h.cancelled() and h.when() < end for h in scheduled)

    def run(self, stop_when: Callable[[], bool], target_ms: int | None = None) -> None:
        """Run until idle and `stop_when()` is true, nothing is scheduled, or `target_ms`."""
        self._stop_when = stop_when
        self._target_ms = target_ms
        restore = self._watch_cpu()
        try:
            self.run_forever()
        finally:
            if restore is not None:
                restore()
            self._stop_when = lambda: False
            self._target_ms = None

    def _watch_cpu(self) -> Callable[[], None] | None:
        """Bound the CPU time of a callback that never gives control back and of a coroutine
        that gives it back forever without progress (`_limits.watch_cpu`)."""
        return watch_cpu(self, self.cpu_budget_ms)

    # -- what a selector loop would do with I/O -----------------------------------------
    def _process_events(self, event_list: list[Any]) -> None:
        pass

    def _write_to_self(self) -> None:
        # call_soon_threadsafe from an executor thread: wake select() if it waits for one.
        with self._wakeup:
            self._wakeup.notify_all()

    def run_in_executor(self, executor: Any, func: Any, *args: Any) -> Any:  # type: ignore[override]
        fut = super().run_in_executor(executor, func, *args)
        self._threads_pending += 1
        fut.add_done_callback(self._thread_done)
        return fut

    def _thread_done(self, _fut: Any) -> None:
        self._threads_pending -= 1

    def __del__(self) -> None:
        # BaseEventLoop warns about unclosed loops because they hold sockets; this one holds
        # nothing, so there is nothing to warn about. A Simulator dropped right after
        # `create()` leaves tasks that never started; their coroutines would warn "never
        # awaited" when collected. The loop is older than any of them, so the collector
        # finalizes it first, and closing an unstarted coroutine is silent.
        for handle in self._ready:  # type: ignore[attr-defined]
            task = getattr(handle._callback, "__self__", None)
            if isinstance(task, asyncio.Task) and not task.done():
                coro = task.get_coro()
                if (
                    inspect.iscoroutine(coro)
                    and inspect.getcoroutinestate(coro) == inspect.CORO_CREATED
                ):
                    coro.close()

    # -- network: refused inside a simulation --------------------------------------------
    def _refuse(self, what: str) -> NoReturn:
        raise NetworkAccessRefused(
            f"{what} inside a simulation: the simulator has no network. Use ctx.http, which "
            "the simulator routes to respx routes or a mock transport (pass http=... to "
            "Simulator or create_test_workflow)."
        )

    async def create_connection(self, *args: Any, **kwargs: Any) -> NoReturn:
        self._refuse(f"a connection to {args[1:3] or kwargs.get('host')!r}")

    async def create_server(self, *args: Any, **kwargs: Any) -> NoReturn:
        self._refuse("starting a server")

    async def create_datagram_endpoint(self, *args: Any, **kwargs: Any) -> NoReturn:
        self._refuse("a datagram endpoint")

    async def getaddrinfo(self, host: Any, port: Any, *args: Any, **kwargs: Any) -> NoReturn:
        self._refuse(f"resolving {host!r}")

    async def sock_connect(self, sock: Any, address: Any) -> NoReturn:
        self._refuse(f"a connection to {address!r}")
