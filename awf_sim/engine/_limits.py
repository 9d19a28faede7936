"""Limits: of one handler attempt run in a separate process (`Simulator(limits=...)`), and the
CPU budget of the in-process engine (`Simulator(cpu_ms=...)`, `watch_cpu`).

Apart from `_fork`, which imports httpx, so that the engine's public namespace can export
`Limits` and `import awf_sim` stays light.
"""

from __future__ import annotations

import _signal  # type: ignore[import-not-found]  # the C module under `signal`
import asyncio
import ctypes
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from awf_sim.engine._calls import CpuBudgetExceeded
from awf_sim.errors import DefinitionError

__all__ = [
    "Limits",
    "checked_cpu_ms",
    "cpu_budget_of",
    "cpu_cancel_message",
    "isolated_limits",
    "watch_cpu",
]

# `_signal`, not `signal`: the same functions without the enum conversions, which cost four
# times the calls themselves on every run() (watch_cpu starts and stops once per run).
_SIGPROF = int(getattr(signal, "SIGPROF", 27))
_ITIMER_PROF = int(getattr(signal, "ITIMER_PROF", 2))
_SIG_DFL = signal.SIG_DFL.value
_SIG_IGN = signal.SIG_IGN.value


@dataclass(frozen=True)
class Limits:
    """Limits of one isolated handler attempt.

    `cpu_seconds`: CPU time (user + system) of the child. `memory_mb`: address space the
    handler may add to what the child inherits from the parent at fork (RLIMIT_AS). A thread
    the handler starts reserves stack and malloc arena space against it. `wall_seconds`:
    real time, for handlers that block without using CPU (None: no limit).
    """

    cpu_seconds: float = 10.0
    memory_mb: int = 512
    wall_seconds: float | None = 60.0

    def __post_init__(self) -> None:
        for name in ("cpu_seconds", "memory_mb", "wall_seconds"):
            value = getattr(self, name)
            if value is None and name == "wall_seconds":
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise DefinitionError(f"Limits.{name} must be a positive number, got {value!r}")


def isolated_limits(limits: Limits | None, cpu_ms: int | None) -> Limits | None:
    """The limits of an isolated attempt: `limits` as given, else the defaults with the run's
    CPU budget (`cpu_ms`) when that is the tighter, so `--cpu-ms` bounds an isolated attempt
    as it bounds one in process."""
    if limits is not None or cpu_ms is None or cpu_ms / 1000 >= Limits.cpu_seconds:
        return limits
    return Limits(cpu_seconds=cpu_ms / 1000)


# --- the CPU budget of the in-process engine (Simulator(cpu_ms=...)) ---------------------------


def checked_cpu_ms(value: Any, name: str) -> int | None:
    """`value` as a CPU budget in milliseconds (None: unbounded); else a DefinitionError
    naming `name`."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise DefinitionError(
            f"{name} must be a positive whole number of milliseconds or None, got {value!r}"
        )
    return value


#
# Cloudflare stops an invocation that uses more than its CPU limit. Two ways to exceed it here:
# a callback that never gives control back (an endless loop, a workflow body that never awaits),
# and a coroutine that gives control back forever without making progress (`while True: await
# asyncio.sleep(0)`): virtual time cannot move while something is always ready, so no timeout
# ends it. The first gets CpuBudgetExceeded raised into it; the second is cancelled with a
# message that `cpu_budget_of` recognises, and the engine turns that into the same error.
# "Progress" is virtual time moving or a step attempt starting (`loop.cpu_progress`).

_CPU_MARK = "awf-sim: over the CPU budget of ms="


def cpu_cancel_message(budget_ms: int) -> str:
    return f"{_CPU_MARK}{budget_ms}"


def cpu_budget_of(exc: BaseException) -> int | None:
    """The budget of a CancelledError that the CPU watch caused, else None."""
    if isinstance(exc, asyncio.CancelledError) and exc.args:
        text = exc.args[0]
        if isinstance(text, str) and text.startswith(_CPU_MARK):
            return int(text[len(_CPU_MARK) :])
    return None


class _Watch:
    """What the ticks of CPU time (one every `tick_s` of the loop thread's CPU) have seen."""

    def __init__(self, loop: Any, budget_ms: int, tick_s: float) -> None:
        self.loop, self.budget_ms, self.tick_s = loop, budget_ms, tick_s
        self.iteration = loop._iteration
        self.same_callback_s = 0.0
        self.mark = (loop.now_ms, loop.cpu_progress)
        self.no_progress_s = 0.0
        self.last_task: asyncio.Task[Any] | None = None

    def tick(self) -> bool:
        """Count one tick; True when the callback running now must be stopped."""
        loop = self.loop
        try:
            task = asyncio.current_task(loop)
        except RuntimeError:
            task = None
        if task is not None:
            self.last_task = task
        if loop._iteration != self.iteration:
            self.iteration, self.same_callback_s = loop._iteration, 0.0
        else:
            self.same_callback_s += self.tick_s
        mark = (loop.now_ms, loop.cpu_progress)
        if mark != self.mark:
            self.mark, self.no_progress_s = mark, 0.0
        else:
            self.no_progress_s += self.tick_s
        if self.same_callback_s * 1000 >= self.budget_ms:
            self.same_callback_s = self.no_progress_s = 0.0
            return True
        if self.no_progress_s * 1000 >= self.budget_ms and self.last_task is not None:
            # Handed to the loop, which cancels it between two callbacks (never mid-callback).
            loop.cpu_victim = (self.last_task, self.budget_ms)
            self.no_progress_s = 0.0
        return False


def watch_cpu(loop: Any, budget_ms: int | None) -> Callable[[], None] | None:
    """Start watching the CPU time of the thread that runs `loop`; returns the stop function.

    On the main thread a SIGPROF interval timer ticks (unless a profiler owns SIGPROF); on any
    other thread (`arun`, `asyncio.to_thread`) a watcher thread reads that thread's CPU clock
    and raises into it with PyThreadState_SetAsyncExc."""
    if budget_ms is None:
        return None
    tick_s = min(budget_ms / 1000, 0.25)
    watch = _Watch(loop, budget_ms, tick_s)
    main = threading.current_thread() is threading.main_thread()
    if (
        main
        and hasattr(_signal, "setitimer")
        and _signal.getsignal(_SIGPROF) in (_SIG_DFL, _SIG_IGN, None)
    ):

        def on_tick(_signum: int, _frame: Any) -> None:
            if watch.tick():
                raise CpuBudgetExceeded(budget_ms)

        previous = _signal.signal(_SIGPROF, on_tick)
        _signal.setitimer(_ITIMER_PROF, tick_s, tick_s)

        def restore() -> None:
            _signal.setitimer(_ITIMER_PROF, 0, 0)
            _signal.signal(_SIGPROF, previous)

        return restore
    if main or not hasattr(time, "pthread_getcpuclockid"):
        return None  # a profiler owns SIGPROF on the main thread, or no per-thread CPU clock
    return _watch_from_thread(watch, budget_ms, tick_s)


def _watch_from_thread(watch: _Watch, budget_ms: int, tick_s: float) -> Callable[[], None]:
    ident = threading.get_ident()
    clock = time.pthread_getcpuclockid(ident)
    stop = threading.Event()

    class Exceeded(CpuBudgetExceeded):
        # PyThreadState_SetAsyncExc takes a class: this one knows its budget.
        def __init__(self) -> None:
            super().__init__(budget_ms)

    def run() -> None:
        used = time.clock_gettime(clock)
        while not stop.wait(tick_s / 2):
            try:
                now = time.clock_gettime(clock)
            except OSError:  # the thread is gone
                return
            while now - used >= tick_s and not stop.is_set():
                used += tick_s
                if watch.tick():
                    ctypes.pythonapi.PyThreadState_SetAsyncExc(
                        ctypes.c_ulong(ident), ctypes.py_object(Exceeded)
                    )

    watcher = threading.Thread(target=run, name="awf-sim-cpu-watch", daemon=True)
    watcher.start()

    def restore() -> None:
        stop.set()
        watcher.join()

    return restore
