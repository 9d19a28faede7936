"""What one step call is, below everything that runs it: the attempt's identity (`StepInfo`),
the two kinds of callable a step can hold, and the small signals the engine raises internally.

Every other engine module imports these, and this module imports nothing of the engine: so the
step executor, the handler runners and Cloudflare's Python step API share them without a cycle.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from awf_sim.dsl._cfduration import wait_ms
from awf_sim.dsl._config import ResolvedConfig

__all__ = [
    "TERMINAL",
    "Abandoned",
    "CallbackStep",
    "CpuBudgetExceeded",
    "RawStep",
    "StepInfo",
    "TimedOut",
    "error_of",
    "retry_delay",
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


class StepInfo:
    """What a step callback learns about its attempt."""

    __slots__ = ("attempt", "config", "count", "instance_id", "name", "path")

    def __init__(
        self,
        instance_id: str,
        name: str,
        path: str,
        count: int,
        attempt: int,
        config: ResolvedConfig,
    ) -> None:
        self.instance_id = instance_id
        self.name = name
        self.path = path
        self.count = count
        self.attempt = attempt
        self.config = config


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
