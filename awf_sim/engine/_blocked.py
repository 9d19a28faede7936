"""A handler that blocks the thread: found in real time, told in one line.

Virtual time moves only when the loop gets control back. A handler that blocks the thread
instead of awaiting (`time.sleep(5)`, `threading.Event().wait()`, a blocking socket, `requests`)
stops the whole simulation in real time, without using CPU, so the CPU budget (`_limits`)
never sees it: `awf-sim run` and `chaos` hung with nothing said. Workers do not allow such
calls either.

`watch_blocking` starts one thread per supervised run (never one per step: nothing here is on
the engine's per-step path). Every `_TICK_S` it looks at the frame the simulation's thread is
in. When that thread has stayed in one call of user code (the same frame at the same
instruction), using next to no CPU, for `seconds` of ticks, and a handler or the workflow
body is on its stack, it reports which step and where, once. A tick counts at most `_TICK_S`
however late it comes, so a stopped process (Ctrl-Z) or a starved watcher never adds up to a
block; a computing call is the CPU budget's, and a wait inside awf_sim itself (a database
file's lock, an isolated attempt's child) is not the handler's.
"""

from __future__ import annotations

import linecache
import os
import sys
import sysconfig
import threading
import time
from collections.abc import Callable
from types import FrameType

__all__ = ["DEFAULT_BLOCK_SECONDS", "blocked_where", "watch_blocking"]

# Wall time a handler or the workflow body may block the thread. A handler that awaits never
# sits in one call without CPU for this long, however slow the machine: only a blocking call
# does (the watcher counts only time in which the thread used under _CPU_SHARE of it).
DEFAULT_BLOCK_SECONDS = 3.0
_TICK_S = 0.25
_CPU_SHARE = 0.2

_PATHS = sysconfig.get_paths()
# The standard library and installed packages: where a blocking call lands, not where it was
# made (threading's wait, socket's recv_into, an HTTP client's read).
_LIBRARY = tuple(
    os.path.normcase(os.path.realpath(_PATHS[key])) + os.sep
    for key in ("stdlib", "platstdlib", "purelib", "platlib")
)
_AWF_SIM = os.path.normcase(os.path.dirname(os.path.dirname(os.path.realpath(__file__)))) + os.sep


def _where(frame: FrameType) -> str:
    """ "awf" for awf_sim's own code, "library" for the standard library's and installed
    packages', else "user"."""
    name = frame.f_code.co_filename
    if name.startswith("<frozen "):
        return "library"
    path = os.path.normcase(os.path.realpath(name))
    if path.startswith(_AWF_SIM):  # first: awf_sim itself may be an installed package
        return "awf"
    return "library" if path.startswith(_LIBRARY) else "user"


def _who(stack: list[FrameType]) -> str | None:
    """Whose code the stack (innermost first) runs: "the handler of PATH", "the workflow
    body", or None outside a simulation's user code."""
    from awf_sim.engine._body import BodyRun
    from awf_sim.engine._runners import InProcessRunner, _contained, _first

    first, contained, body = _first.__code__, _contained.__code__, BodyRun.send.__code__
    # An attempt that times out regardless (a forced timeout) starts its handler here.
    ignoring = InProcessRunner.start_ignoring.__code__
    for frame in stack:
        code = frame.f_code
        if code is first:
            label = frame.f_locals.get("label")
            if isinstance(label, str):
                return f"the handler of {label.rpartition('#')[0] or label}"
        elif code is contained:
            path = frame.f_locals.get("path")
            if isinstance(path, str):
                return f"the handler of {path}"
        elif code is ignoring:
            path = getattr(frame.f_locals.get("info"), "path", None)
            if isinstance(path, str):
                return f"the handler of {path}"
        elif code is body:
            return "the workflow body"
    return None


def blocked_where(top: FrameType) -> str | None:
    """What is blocked, and where, when `top` (a thread's innermost frame) is in user code run
    by a simulation: "the handler of Pay.charge (at flow.py:12: `time.sleep(5)`)"; else None."""
    stack: list[FrameType] = []
    frame: FrameType | None = top
    while frame is not None:
        stack.append(frame)
        frame = frame.f_back
    # The innermost frame of the user's own code is the call they made; a wait in awf_sim's
    # own code (a database file's lock) before any of it is not the handler's.
    user = None
    for frame in stack:
        kind = _where(frame)
        if kind == "awf":
            if user is None:
                return None
            break
        if kind == "user" and user is None:
            user = frame
    if user is None:
        return None
    who = _who(stack)
    if who is None:
        return None
    where = f"{os.path.basename(user.f_code.co_filename)}:{user.f_lineno}"
    text = linecache.getline(user.f_code.co_filename, user.f_lineno).strip()
    return f"{who} (at {where}: `{text}`)" if text else f"{who} (at {where})"


def blocked_message(what: str, seconds: float, option: str | None = "--block-seconds") -> str:
    """The line for a block; `option`: the command's option that raises the bound, if any."""
    fix = "use `await asyncio.sleep(...)` or the step's async APIs (ctx.http, ctx.db)"
    if option is not None:
        fix += f", or, if the wait is meant, raise the bound with {option}"
    return (
        f"{what} blocked the thread for {seconds:g} s of real time, so virtual time could not "
        "move: a blocking call (time.sleep, threading waits, a blocking socket or HTTP "
        f"client) is not allowed in handlers, nor in Workers; {fix}"
    )


def watch_blocking(
    ident: int,
    seconds: float,
    on_blocked: Callable[[str], None],
    option: str | None = "--block-seconds",
) -> Callable[[], None]:
    """Watch the thread `ident`; `on_blocked(message)` once when it blocks (module docstring).
    Returns the function that stops the watcher."""
    stop = threading.Event()
    try:
        clock: int | None = time.pthread_getcpuclockid(ident)
    except (AttributeError, OSError):  # no per-thread CPU clock: frames alone decide
        clock = None

    def cpu() -> float:
        if clock is None:
            return 0.0
        try:
            return time.clock_gettime(clock)
        except OSError:  # the thread is gone
            return 0.0

    def run() -> None:
        seen: tuple[FrameType, int] | None = None
        stuck = 0.0
        used = cpu()
        while not stop.wait(_TICK_S):
            frame = sys._current_frames().get(ident)
            if frame is None:
                return
            now_used = cpu()
            busy = now_used - used > _TICK_S * _CPU_SHARE
            used = now_used
            key = (frame, frame.f_lasti)
            if seen is not None and key[0] is seen[0] and key[1] == seen[1] and not busy:
                stuck += _TICK_S
            else:
                seen, stuck = key, 0.0
            del frame
            if stuck >= seconds:
                what = blocked_where(seen[0])
                if what is not None and not stop.is_set():
                    on_blocked(blocked_message(what, seconds, option))
                    return
                seen, stuck = None, 0.0

    watcher = threading.Thread(target=run, name="awf-sim-block-watch", daemon=True)
    watcher.start()

    def end() -> None:
        stop.set()

    return end
