"""`Example`: an example input that also says how its run should end.

`Workflow(..., examples=[...])` takes plain dicts (each should run to `complete`) and
`Example(params, expect="errored", error="PaymentDeclined")` for an input whose correct outcome
is a failure, as a declined payment is. An Example is the params dict itself (a dict subclass),
so everything that reads `workflow.examples` as params keeps working; chaos and the push gate
read `expect` and `error` to judge the fault-free run.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["Example", "expected_outcome"]

_OUTCOMES = ("complete", "errored")


class Example(dict[str, Any]):
    """Example params with the outcome their fault-free run should have."""

    def __init__(
        self, params: Mapping[str, Any], *, expect: str = "complete", error: str | None = None
    ) -> None:
        if expect not in _OUTCOMES:
            raise ValueError(f"Example(expect=...) must be one of {_OUTCOMES}, got {expect!r}")
        if error is not None and expect != "errored":
            raise ValueError("Example(error=...) names the error of an expect='errored' example")
        super().__init__(params)
        self.expect = expect
        self.error = error

    def __repr__(self) -> str:
        extra = f", expect={self.expect!r}" if self.expect != "complete" else ""
        extra += f", error={self.error!r}" if self.error is not None else ""
        return f"Example({dict.__repr__(self)}{extra})"

    def __reduce__(self) -> Any:  # pickled to chaos's worker processes
        return (_rebuild, (dict(self), self.expect, self.error))


def _rebuild(params: dict[str, Any], expect: str, error: str | None) -> Example:
    return Example(params, expect=expect, error=error)


def expected_outcome(params: Any) -> tuple[str, str | None]:
    """(status, error name or None) the fault-free run of `params` should end with."""
    if isinstance(params, Example):
        return params.expect, params.error
    return "complete", None
