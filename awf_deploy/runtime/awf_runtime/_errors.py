"""Errors across the engine: what a workflow sees for a failed step, what Cloudflare sees for a
handler's NonRetryableError, and an instance's stored error read back as name and message."""

from __future__ import annotations

import importlib
import re
from collections.abc import Mapping
from typing import Any

from awf_sim.dsl import NonRetryableError, StepError

_ERROR_LINE = re.compile(r"([A-Za-z_][\w.]*(?:Error|Exception|Exit)): ?(.*)", re.DOTALL)
_NAMED_ERRORS = frozenset({"StepError", "NonRetryableError", "WorkflowFatalError"})


def error_parts(name: str, message: str) -> tuple[str, str]:
    """An error's {name, message} as the engine stores it, read back as the Python error it
    was, so that Cloudflare and the simulator name it alike:

    - a Python exception that left Pyodide is a `PythonError` whose message is the traceback,
      whose last line is "Type: message";
    - an error whose name is not one of JavaScript's own crosses workerd's RPC as an `Error`
      whose message starts "Name: " (`WorkflowTimeoutError: Execution timed out after 1ms`).
    """
    if name == "PythonError" or message.startswith("PythonError"):
        lines = [line for line in message.splitlines() if line.strip()]
        found = _ERROR_LINE.fullmatch(lines[-1]) if len(lines) > 1 else None
        if found:
            name, message = found.group(1).rsplit(".", 1)[-1], found.group(2)
    elif name == "Error":
        found = _ERROR_LINE.fullmatch(message)
        if found:
            name, message = found.group(1).rsplit(".", 1)[-1], found.group(2)
    if name in _NAMED_ERRORS:
        # awf's own errors print as "name: message" (a StepError keeps the original name).
        found = _ERROR_LINE.fullmatch(message)
        if found:
            return found.group(1).rsplit(".", 1)[-1], found.group(2)
    return name, message


def instance_error(error: Any) -> Any:
    """An instance's stored error ({name, message}) as `error_parts` reads it back."""
    if isinstance(error, Mapping):
        name, message = error.get("name"), error.get("message")
        if isinstance(name, str) and isinstance(message, str):
            name, message = error_parts(name, message)
            return {**error, "name": name, "message": message}
    return error


def _error_parts(exc: BaseException) -> tuple[str, str]:
    """{name, message} of an error that crossed the engine: a step that failed for good."""
    name = getattr(exc, "name", None)
    message = getattr(exc, "message", None)
    if isinstance(name, str) and isinstance(message, str):
        return error_parts(name, message)
    text = str(exc)
    found = _ERROR_LINE.fullmatch(text)
    if found and type(exc).__name__ in ("TypeError", "ValueError", "NonRetryableError"):
        # The Workers SDK re-creates TypeError, ValueError and NonRetryableError from the last
        # traceback line, "ValueError: boom": split it back into name and message.
        return found.group(1).rsplit(".", 1)[-1], found.group(2)
    return type(exc).__name__, text


def _into_workflow(exc: Exception) -> Exception:
    """The DSL error a workflow sees for a step that failed (same types as in the simulator)."""
    if isinstance(exc, StepError | NonRetryableError):
        return exc
    name, message = _error_parts(exc)
    if name == "NonRetryableError" or type(exc).__name__ == "NonRetryableError":
        return NonRetryableError(message)
    return StepError(message, name)


def _for_cloudflare(exc: NonRetryableError) -> Exception:
    """A handler's NonRetryableError as the class Cloudflare's engine recognises."""
    try:
        workflows = importlib.import_module("workers.workflows")
    except ImportError:
        return exc
    cls = getattr(workflows, "NonRetryableError", None)
    if cls is None or isinstance(exc, cls):
        return exc
    error: Exception = cls(exc.message)
    return error
