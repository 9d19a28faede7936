"""Errors awf raises, and the one users raise (NonRetryableError).

The hierarchy:

    AwfError                      base of every error awf raises itself
    ├── DefinitionError           bad definitions: names, durations, schedules, step config,
    │                             unknown domain or method (also a ValueError)
    ├── SerializationError        a value is not JSON; names the field path (also a TypeError)
    ├── StepError                 a step failed for good (retries exhausted, timeout, crash
    │                             budget); `.name` and `.message` survive replay
    ├── NonRetryableError         raised by a handler: fail at once, no retry
    └── WorkflowFatalError        the engine ends the instance (limits, unserialisable result)

Errors raised into a workflow have the same type on the first run and on replay, where only
{name, message} is stored; `str()` of a StepError or NonRetryableError starts `name: message`.
"""

from __future__ import annotations

__all__ = [
    "AwfError",
    "DefinitionError",
    "NonRetryableError",
    "SerializationError",
    "StepError",
    "WorkflowFatalError",
]


class AwfError(Exception):
    """Base class of every error awf raises itself."""


class DefinitionError(AwfError, ValueError):
    """A workflow, domain, duration, schedule or step config is invalid."""


class SerializationError(AwfError, TypeError):
    """A value that must cross a step boundary as JSON is not JSON."""


class _NamedError(AwfError):
    """An error that is only ever {name, message}, so it is identical after a replay."""

    default_name = "Error"

    def __init__(self, message: str = "", name: str | None = None) -> None:
        self.name = name or self.default_name
        self.message = str(message)
        super().__init__(self.message)

    def __str__(self) -> str:
        return f"{self.name}: {self.message}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, message={self.message!r})"

    def __reduce__(self) -> tuple[type[_NamedError], tuple[str, str]]:
        return (type(self), (self.message, self.name))

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "message": self.message}


class StepError(_NamedError):
    """A step failed for good; raised into the workflow, which may catch it.

    `name` is the original exception's class name (`WorkflowTimeoutError` for a timeout),
    `message` its text.
    """


class NonRetryableError(_NamedError):
    """Raise in a handler to fail the step at once, without retries.

    Raised into the workflow as a NonRetryableError; uncaught, the instance ends errored.
    """

    default_name = "NonRetryableError"


class WorkflowFatalError(_NamedError):
    """The engine ended the instance: a limit was reached or a result could not be stored."""

    default_name = "WorkflowFatalError"
