"""What one step call is, below everything that runs it: the attempt's identity (`StepInfo`),
the two kinds of callable a step can hold, and the small signals the engine raises internally.

Every other engine module imports these, and this module imports nothing of the engine: so the
step executor, the handler runners and Cloudflare's Python step API share them without a cycle.
"""

from __future__ import annotations

import os
import traceback
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from awf_sim.dsl._cfduration import wait_ms
from awf_sim.dsl._config import ResolvedConfig
from awf_sim.dsl._errors import StepError

__all__ = [
    "TERMINAL",
    "Abandoned",
    "CallbackStep",
    "CpuBudgetExceeded",
    "RawStep",
    "StepInfo",
    "TimedOut",
    "error_of",
    "replayed_error",
    "retry_delay",
    "stack_of",
    "workflow_exit_error",
]

TERMINAL = frozenset({"complete", "errored", "terminated"})


class Abandoned(BaseException):
    """Raised into code that still runs in a lifetime that has ended (crash, pause, stop)."""


class CpuBudgetExceeded(BaseException):
    """Raised (from a CPU-time signal) into code that ran for longer than the per-invocation
    CPU budget without giving control back to the loop: a runaway handler or workflow body.
    A BaseException, so that user code's `except Exception` cannot swallow it."""

    def __init__(self, budget_ms: int) -> None:
        super().__init__(budget_ms)
        self.budget_ms = budget_ms


class TimedOut(Exception):
    """A virtual-time deadline passed (an attempt's timeout, an event wait's timeout)."""


class StepInfo(NamedTuple):
    """What a step callback learns about its attempt.

    A named tuple: the executor makes one per attempt with `tuple.__new__` (no Python-level
    `__init__`), and its fields read as fast as slots."""

    instance_id: str
    name: str
    path: str
    count: int  # type: ignore[assignment]  # shadows tuple.count, as Cloudflare names it
    attempt: int
    config: ResolvedConfig


class RawStep:
    """`wf.do(name, fn)`: fn takes no arguments."""

    __slots__ = ("fn",)

    def __init__(self, fn: Callable[[], Any]) -> None:
        self.fn = fn

    def invoke(self, _ctx: Any) -> Any:
        return self.fn()


class CallbackStep:
    """A step whose callback receives the StepInfo itself (Cloudflare's Python step API)."""

    __slots__ = ("fn",)

    def __init__(self, fn: Callable[[StepInfo], Any]) -> None:
        self.fn = fn


def error_of(exc: BaseException) -> dict[str, str]:
    """{name, message} of an exception, the only form an error has after a replay."""
    name = getattr(exc, "name", None)
    message = getattr(exc, "message", None)
    if isinstance(name, str) and isinstance(message, str):
        return {"name": name, "message": message}
    return {"name": type(exc).__name__, "message": str(exc)}


# awf's own frames (and asyncio's, which only schedules the user's code) are left out of a stack.
_AWF_SIM = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_STDLIB = os.path.dirname(os.path.abspath(traceback.__file__)) + os.sep
_HIDDEN = (
    _AWF_SIM + os.sep,
    os.path.join(os.path.dirname(_AWF_SIM), "awf_deploy") + os.sep,
    _STDLIB + "asyncio" + os.sep,
)


def _in_stdlib(filename: str) -> bool:
    path = os.path.abspath(filename)
    return path.startswith(_STDLIB) and "site-packages" not in path


def stack_of(exc: BaseException) -> str | None:
    """Where `exc` was raised, in the user's code: the frames of its traceback outside awf
    (and asyncio), most recent call last, each as `File "path", line N, in fn` and its code.
    Only file names, lines and code, never addresses or times, so a timeline that holds it
    stays byte-identical for the same seed and input. None when no user frame is left."""
    # The text depends only on each frame's code and the instruction it stopped at (the
    # file's lines aside), so it is kept per such chain: chaos meets the same failure in many
    # runs, and extracting a traceback with its column carets costs ~50 us a time.
    key = []
    tb = exc.__traceback__
    while tb is not None:
        key.append((tb.tb_frame.f_code, tb.tb_lasti))
        tb = tb.tb_next
    chain = tuple(key)
    if chain in _STACKS:
        return _STACKS[chain]
    frames = [
        f
        for f in traceback.extract_tb(exc.__traceback__)
        if not os.path.abspath(f.filename).startswith(_HIDDEN)
    ]
    # The standard library's frames before the first of the user's only ran awf's code (a
    # thread of the executor that waits on an isolated attempt): nothing of the user's.
    while frames and _in_stdlib(frames[0].filename):
        del frames[0]
    text = "".join(traceback.format_list(frames)).rstrip("\n") if frames else None
    if len(_STACKS) >= 512:
        _STACKS.clear()  # bounded: code objects of flows loaded and dropped are let go
    _STACKS[chain] = text
    return text


_STACKS: dict[tuple[tuple[object, int], ...], str | None] = {}


def retry_delay(retries: Mapping[str, Any], attempt: int) -> int:
    """Cloudflare's calcRetryDuration: n is the 1-based attempt that just failed; no jitter."""
    base: float = retries["delay"]
    backoff = retries["backoff"]
    if backoff == "exponential":
        base = base * 2 ** (attempt - 1)
    elif backoff == "linear":
        base = base * attempt
    # A delay Cloudflare's reading made fractional or negative waits as its timer does.
    return base if isinstance(base, int) and base >= 0 else wait_ms(base)


def workflow_exit_error(exc: BaseException) -> dict[str, str]:
    """The instance error of a workflow body that tried to end the process."""
    if isinstance(exc, SystemExit):
        what = "called sys.exit()" if exc.code is None else f"called sys.exit({exc.code!r})"
    else:
        what = "raised KeyboardInterrupt"
    return {
        "name": type(exc).__name__,
        "message": f"the workflow {what}; a workflow cannot end the process that runs it",
    }


def replayed_error(err: Mapping[str, str], clone_engine_errors: bool) -> StepError:
    """The stored failure that a replay raises again.

    Miniflare's engine stores a timeout it made itself (a step's or an event wait's) with a
    structured clone, which keeps only JavaScript's built-in error names: replayed, it is a
    plain Error with the same message. `clone_engine_errors` (profile "local") does the same;
    otherwise the error is raised exactly as it was first (DESIGN §9)."""
    if clone_engine_errors and err["name"] == "WorkflowTimeoutError":
        return StepError(err["message"], "Error")
    return StepError(err["message"], err["name"])
