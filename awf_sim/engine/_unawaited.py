"""The warning for a run that completed with a step it built and never awaited.

`wf.Email(u).send()` without `await` builds a step that never runs: the DSL counts the steps a
run builds and awaits (`WorkflowApi._unawaited`), and the Simulator warns when `run()` returns,
as Python warns of a coroutine that is never awaited.
"""

from __future__ import annotations

import warnings
from typing import Any

from awf_sim.dsl._workflow import Workflow
from awf_sim.errors import UnawaitedStepWarning

__all__ = ["warn_unawaited"]

# Each warning once per process and place, as Python's own "coroutine was never awaited".
_WARNED: dict[Any, Any] = {}


def warn_unawaited(workflow: Workflow, count: int, last: str | None) -> None:
    """An UnawaitedStepWarning (a RuntimeWarning), placed at the workflow's function, that a
    run of it ended with steps it built and never awaited: a step runs only when awaited, so
    those did not run."""
    which = f" (the last: {last})" if last else ""
    steps = "a step" if count == 1 else f"{count} steps"
    code = getattr(workflow.fn, "__code__", None)
    warnings.warn_explicit(
        f"workflow {workflow.name!r} built {steps} it never awaited{which}: a step runs only "
        "when awaited, so it did not run; add `await` (or pass it to asyncio.gather)",
        UnawaitedStepWarning,
        code.co_filename if code is not None else "<workflow>",
        code.co_firstlineno if code is not None else 0,
        registry=_WARNED,
    )
