"""The verdict survives the code under test: run a check in a supervised child process.

A handler or a workflow body can end the process that runs it in ways no `except` sees
(`os._exit(0)`, a fatal signal, a segfault in an extension). `awf-sim run`, `awf-sim replay`,
chaos and push's verify gate therefore run user code in a forked child that sends its result
back over a pipe; the parent judges. A child that dies before it has sent a result is a
failure (`ProcessDied`), never a success: exit 0 means "verified", nothing else.

The child dies with the parent (`_lifeline`), and a parent interrupted while it waits (Ctrl-C,
an error) kills the child before it goes: no child runs on unseen, still writing the store a
later run opens.

Output the child writes to a real file descriptor (a terminal, a file) goes there directly,
so progress bars and colours keep working; output to an in-memory stream (a test's captured
stdout) is collected in the child and written by the parent.
"""

from __future__ import annotations

import contextlib
import io
import os
import pickle
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from awf_sim.engine._lifeline import die_with_parent, load_libc
from awf_sim.errors import ProcessDied

__all__ = ["how_it_ended", "run_supervised", "watch_forked"]

T = TypeVar("T")

# In a supervised child watched for blocking handlers: the bound, and the message its watcher
# ends the run with. Processes it forks to run user code (chaos's workers) inherit both.
_watched: tuple[float, str | None, Callable[[str], str]] | None = None


def watch_forked(on_blocked: Callable[[str], None]) -> Callable[[], None] | None:
    """In a process a watched supervised child forked to run user code (chaos's `--jobs`
    workers): watch this thread as the child watches its own, with the same bound;
    `on_blocked(message)` once, with the message the child's own watcher ends the run with.
    Returns the function that stops the watcher, or None when the child is not watched."""
    if _watched is None:
        return None
    seconds, option, message = _watched
    from awf_sim.engine._blocked import watch_blocking

    return watch_blocking(
        threading.get_ident(), seconds, lambda text: on_blocked(message(text)), option
    )


def _has_fd(stream: Any) -> bool:
    try:
        stream.fileno()
    except (AttributeError, OSError, ValueError):
        return False
    return True


def how_it_ended(exitcode: int | None) -> str:
    """How a child that gave no result ended, from its exit code as `multiprocessing` gives
    it (minus the signal's number when a signal killed it)."""
    if exitcode is not None and exitcode < 0:
        try:
            return f"was killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"was killed by signal {-exitcode}"
    return f"exited with status {exitcode}: os._exit or a fatal error"


_CANNOT_VERIFY = (
    "A handler or workflow that calls os._exit() or crashes the interpreter cannot be verified."
)


def run_supervised(
    fn: Callable[[], T],
    what: str,
    *,
    goal: str = "reached a verdict",
    advice: str = _CANNOT_VERIFY,
    block_s: float | None = None,
    block_option: str | None = "--block-seconds",
) -> T:
    """`fn()` in a forked child; its return value (or exception) comes back pickled.

    Raises `ProcessDied` when the child ends without a result: "<what>: the code under test
    ended the process that ran it (<how it ended>) before it <goal>. <advice>". Where fork
    is not available, `fn()` runs in this process. `block_s`: a handler or workflow body
    that blocks the thread that long (`_blocked`) ends the child, and `ProcessDied` says
    which step and where, followed by `advice`; `block_option`: the caller's option that
    raises the bound, which the message names (None: the caller has none).
    """
    if not hasattr(os, "fork"):
        return fn()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (AttributeError, OSError, ValueError):
            pass
    libc = load_libc()
    parent_pid = os.getpid()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into the caller's code
        status = 70
        try:
            die_with_parent(libc, parent_pid)
            os.close(read_end)
            captured: dict[str, io.StringIO] = {}
            if not _has_fd(sys.stdout):
                sys.stdout = captured.setdefault("out", io.StringIO())
            if not _has_fd(sys.stderr):
                sys.stderr = captured.setdefault("err", io.StringIO())
            sent = threading.Lock()  # one result: the run's, or the block watcher's

            def send(outcome: tuple[str, Any]) -> None:
                with sent:
                    _send(write_end, what, outcome, captured)
                    os._exit(0)

            stop_watch = None
            if block_s is not None:
                # What os._exit or a crash would leave unverified is not this ending's.
                after = "" if advice == _CANNOT_VERIFY else f" {advice}"
                from awf_sim.engine._blocked import watch_blocking

                def message(text: str) -> str:
                    return f"{what}: {text}.{after}"

                global _watched
                _watched = (block_s, block_option, message)
                stop_watch = watch_blocking(
                    threading.get_ident(),
                    block_s,
                    lambda text: send(("raise", ProcessDied(message(text)))),
                    block_option,
                )
            try:
                outcome: tuple[str, Any] = ("ok", fn())
            except (SystemExit, KeyboardInterrupt) as exc:
                # Whatever ends the child early is a failure, whatever its exit code says.
                outcome = ("raise", ProcessDied(f"{what}: the code under test raised {exc!r}"))
            except BaseException as exc:  # every ending goes to the judge
                outcome = ("raise", exc)
            if stop_watch is not None:
                stop_watch()
            send(outcome)
        finally:
            os._exit(status)
    os.close(write_end)
    try:
        with os.fdopen(read_end, "rb") as pipe:
            data = pipe.read()
        _, status = os.waitpid(pid, 0)
    except BaseException:  # interrupted (Ctrl-C): the child goes first, not on its own
        with contextlib.suppress(ProcessLookupError, ChildProcessError):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        raise
    if len(data) < 8 or len(data) - 8 != int.from_bytes(data[:8], "big"):
        # Nothing, or a partial result: the child died before it sent all of it.
        raise ProcessDied(
            f"{what}: the code under test ended the process that ran it (it "
            f"{how_it_ended(os.waitstatus_to_exitcode(status))}) before it {goal}. {advice}"
        )
    try:
        outcome, texts = pickle.loads(data[8:])
    except Exception as exc:  # sent whole, but not to be rebuilt here (a class of its own)
        raise ProcessDied(f"{what}: its result could not be read back: {exc!r}") from None
    if texts.get("out"):
        sys.stdout.write(texts["out"])
    if texts.get("err"):
        sys.stderr.write(texts["err"])
    kind, value = outcome
    if kind == "raise":
        raise value
    result: T = value
    return result


def _send(
    write_end: int, what: str, outcome: tuple[str, Any], captured: dict[str, io.StringIO]
) -> None:
    """The child's result and what it printed to in-memory streams, down the pipe."""
    texts = {k: v.getvalue() for k, v in captured.items()}
    try:
        data = pickle.dumps((outcome, texts))
    except Exception as exc:  # an unpicklable result or error
        error = RuntimeError(f"{what}: its result could not be sent back: {exc}")
        data = pickle.dumps((("raise", error), texts))
    with os.fdopen(write_end, "wb") as pipe:
        # Its length first: a result cut short by the child's death is told apart from a
        # whole one that cannot be rebuilt here.
        pipe.write(len(data).to_bytes(8, "big") + data)
    for stream in (sys.__stdout__, sys.__stderr__):
        if stream is not None:
            stream.flush()
