"""The verdict survives the code under test: run a check in a supervised child process.

A handler or a workflow body can end the process that runs it in ways no `except` sees
(`os._exit(0)`, a fatal signal, a segfault in an extension). Chaos and push's verify gate
therefore run user code in a forked child that sends its result back over a pipe; the parent
judges. A child that dies before it has sent a result is a failure (`ProcessDied`), never a
success: exit 0 means "verified", nothing else.

Output the child writes to a real file descriptor (a terminal, a file) goes there directly,
so progress bars and colours keep working; output to an in-memory stream (a test's captured
stdout) is collected in the child and written by the parent.
"""

from __future__ import annotations

import io
import os
import pickle
import signal
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from awf_sim.errors import ProcessDied

__all__ = ["run_supervised"]

T = TypeVar("T")


def _has_fd(stream: Any) -> bool:
    try:
        stream.fileno()
    except (AttributeError, OSError, ValueError):
        return False
    return True


def _how_it_died(status: int) -> str:
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = f"signal {sig}"
        return f"was killed by {name}"
    if os.WIFEXITED(status):
        return f"exited with status {os.WEXITSTATUS(status)} (os._exit or a fatal error)"
    return f"ended with wait status {status}"


def run_supervised(fn: Callable[[], T], what: str) -> T:
    """`fn()` in a forked child; its return value (or exception) comes back pickled.

    Raises `ProcessDied` naming `what` when the child ends without a result. Where fork is
    not available, `fn()` runs in this process.
    """
    if not hasattr(os, "fork"):
        return fn()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (AttributeError, OSError, ValueError):
            pass
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into the caller's code
        status = 70
        try:
            os.close(read_end)
            captured: dict[str, io.StringIO] = {}
            if not _has_fd(sys.stdout):
                sys.stdout = captured.setdefault("out", io.StringIO())
            if not _has_fd(sys.stderr):
                sys.stderr = captured.setdefault("err", io.StringIO())
            try:
                outcome: tuple[str, Any] = ("ok", fn())
            except (SystemExit, KeyboardInterrupt) as exc:
                # Whatever ends the child early is a failure, whatever its exit code says.
                outcome = ("raise", ProcessDied(f"{what}: the code under test raised {exc!r}"))
            except BaseException as exc:  # every ending goes to the judge
                outcome = ("raise", exc)
            texts = {k: v.getvalue() for k, v in captured.items()}
            try:
                data = pickle.dumps((outcome, texts))
            except Exception as exc:  # an unpicklable result or error
                error = RuntimeError(f"{what}: its result could not be sent back: {exc}")
                data = pickle.dumps((("raise", error), texts))
            with os.fdopen(write_end, "wb") as pipe:
                pipe.write(data)
            for stream in (sys.__stdout__, sys.__stderr__):
                if stream is not None:
                    stream.flush()
            status = 0
        finally:
            os._exit(status)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        data = pipe.read()
    _, status = os.waitpid(pid, 0)
    try:
        outcome, texts = pickle.loads(data)
    except Exception:  # nothing, or a partial result: the child died
        raise ProcessDied(
            f"the code under test ended the process that checked it: {what} "
            f"{_how_it_died(status)} before it reached a verdict. A handler or workflow that "
            "calls os._exit() or crashes the interpreter cannot be verified."
        ) from None
    if texts.get("out"):
        sys.stdout.write(texts["out"])
    if texts.get("err"):
        sys.stderr.write(texts["err"])
    kind, value = outcome
    if kind == "raise":
        raise value
    result: T = value
    return result
