"""A lifetime's workflow body as its task runs it, and how what the body raised ends it.

`BodyRun` is the coroutine of every lifetime's task: it marks the instance running, calls the
workflow, drives the body's coroutine and ends the instance with what the body returned or
raised. Every waiting instance keeps one, so it is written out as a class with four slots
rather than an `async def` around the body (whose frame would cost four times as much): its
`send` and `throw` are what the `await` of that coroutine did, step for step, in the same
task step, so nothing runs in another order. The simulator does the ending (`BodyOwner`),
with the error `workflow_failure` makes of what the body raised.
"""

from __future__ import annotations

import asyncio
import inspect
import re
import types
from collections.abc import Coroutine
from typing import Any, Protocol

from awf_sim._coro import HandCoroutine
from awf_sim.dsl._errors import NonRetryableError, WorkflowFatalError
from awf_sim.dsl._identity import dump_result, utf8_size
from awf_sim.engine._calls import (
    Abandoned,
    CpuBudgetExceeded,
    error_of,
    stack_of,
    workflow_exit_error,
)
from awf_sim.engine._lifetime import Lifetime
from awf_sim.engine._limits import cpu_budget_of

__all__ = ["MAX_OUTPUT_BYTES", "BodyOwner", "BodyRun", "workflow_failure"]

_NON_RETRYABLE_FIXED = (
    "The execution of the Workflow instance was terminated, as a step threw an "
    "NonRetryableError and it was not handled"
)


_NRE_PREFIX = re.compile(r"^NonRetryableError:?\s*")

# Cloudflare's engine has no limit of its own on run()'s output (the 1 MiB is a step result's
# and an event payload's): it writes the WORKFLOW_SUCCESS row of its log, the JSON
# {"result": OUTPUT} beside 34 bytes of id, timestamp and event, into SQLite, whose length
# limit is 2,200,000 bytes. One byte more and that write throws inside run()'s try, so the
# instance errors with a plain Error of SQLite's text (miniflare binding.worker.js, Engine.init;
# recorded: tests/conformance/scenarios/p6-output-*).
MAX_OUTPUT_BYTES = 2_200_000 - 34 - len('{"result":}')  # 2,199,955 bytes of JSON
_TOO_BIG = "string or blob too big: SQLITE_TOOBIG"


class BodyOwner(Protocol):
    """The simulator, as a lifetime's body run sees it."""

    def mark_running(self, lt: Lifetime) -> None:
        """The instance's status becomes running (before its body is called)."""

    def call_body(self, lt: Lifetime, target: Any) -> Any:
        """The workflow body called on the instance's event: its coroutine, or its value."""

    def body_returned(self, lt: Lifetime, output: str) -> None:
        """The body returned `output` (its JSON text): the instance completes."""

    def body_raised(self, lt: Lifetime, exc: BaseException) -> bool:
        """The body raised `exc`: end the instance errored (`workflow_failure`), or return
        False for what is not the workflow's to end it with."""


def _preserved(error: dict[str, str]) -> dict[str, str]:
    """The engine's PreservedNonRetryableError: named NonRetryableError, with the message
    without the "NonRetryableError: " that RPC put before it."""
    message = error["message"]
    if error["name"] != "NonRetryableError":
        message = _NRE_PREFIX.sub("", message, count=1)
    return {"name": "NonRetryableError", "message": message}


def workflow_failure(
    exc: BaseException, preserve_non_retryable: bool
) -> tuple[dict[str, str], str | None] | None:
    """The error (and the user's stack) an instance ends with when its workflow body raised
    `exc`; None for what is not the workflow's to end it with (a cancellation)."""
    if isinstance(exc, Exception):
        error = error_of(exc)
        # The engine's test when run() fails is the step's: by name, or by the message's start
        # (RPC puts a class's name before its message), so an error of any class that says
        # so ends the instance as a NonRetryableError does.
        if (
            isinstance(exc, NonRetryableError)
            or error["name"] == "NonRetryableError"
            or error["message"].startswith("NonRetryableError")
        ):
            if preserve_non_retryable:
                return _preserved(error), stack_of(exc)
            return {"name": "WorkflowFatalError", "message": _NON_RETRYABLE_FIXED}, stack_of(exc)
        return error, stack_of(exc)
    if isinstance(exc, SystemExit | KeyboardInterrupt):
        # The workflow's, not the process's: it fails the instance, never ends the judge.
        return workflow_exit_error(exc), None
    if isinstance(exc, CpuBudgetExceeded | asyncio.CancelledError):
        budget = exc.budget_ms if isinstance(exc, CpuBudgetExceeded) else cpu_budget_of(exc)
        if budget is None:
            return None
        error = {
            "name": "CpuLimitExceeded",
            "message": f"the workflow body used more than {budget} ms of CPU time "
            "without awaiting a step (an endless loop?); Cloudflare stops such an "
            "invocation. Raise the limit with Simulator(cpu_ms=...) or awf-sim --cpu-ms",
        }
        return error, None
    return None


async def _awaited(awaitable: Any) -> Any:
    return await awaitable  # a body that returned an awaitable other than a coroutine (rare)


_ENDED: Any = False  # BodyRun.body once the run has ended


class BodyRun(HandCoroutine, Coroutine[Any, Any, None]):
    """The coroutine of a lifetime's task (see the module docstring)."""

    __slots__ = ("body", "lt", "owner", "target")

    def __init__(self, owner: BodyOwner, lt: Lifetime, target: Any) -> None:
        self.owner = owner
        self.lt = lt
        self.target = target
        self.body: Any = None  # the body's coroutine once called, then _ENDED

    def send(self, value: Any) -> Any:
        body = self.body
        if body is None:
            self.body = _ENDED  # until the body is running: whatever raises ends the run
            self.owner.mark_running(self.lt)  # not the body's: what it raises goes on up
            try:
                body = self.owner.call_body(self.lt, self.target)
            except BaseException as exc:
                return self._raised(exc)
            if type(body) is not types.CoroutineType:
                if not inspect.isawaitable(body):
                    return self._returned(body)
                body = _awaited(body)
            self.body = body
        elif body is _ENDED:
            raise RuntimeError("cannot reuse already awaited coroutine")
        try:
            return body.send(value)
        except StopIteration as stop:
            return self._returned(stop.value)
        except BaseException as exc:
            return self._raised(exc)

    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> Any:
        exc = self.thrown(typ, val, tb)
        body = self.body
        if body is None or body is _ENDED:  # not started, or ended: nothing catches it
            self.body = _ENDED
            raise exc
        try:
            return body.throw(exc)
        except StopIteration as stop:
            return self._returned(stop.value)
        except BaseException as exc:
            return self._raised(exc)

    def close(self) -> None:
        body, self.body = self.body, _ENDED
        if body is not None and body is not _ENDED:
            body.close()

    def _returned(self, result: Any) -> Any:
        self.body = _ENDED
        try:
            output = dump_result(result, root="workflow output")
        except BaseException as exc:
            return self._raised(exc)
        # A char is at most 4 bytes of UTF-8 (a lone surrogate counts 3 here, as it does in
        # step results, though the engine's JSON writes it as a 6-byte escape).
        if len(output) > MAX_OUTPUT_BYTES // 4 and utf8_size(output) > MAX_OUTPUT_BYTES:
            return self._raised(WorkflowFatalError(_TOO_BIG, "Error"))
        self.owner.body_returned(self.lt, output)
        raise StopIteration

    def _raised(self, exc: BaseException) -> Any:
        self.body = _ENDED
        if isinstance(exc, Abandoned):
            raise StopIteration  # the lifetime ended (a crash, a pause): nothing to record
        if not self.owner.body_raised(self.lt, exc):
            raise exc
        raise StopIteration
