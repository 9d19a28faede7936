"""How a test workflow fails: WorkflowFailed (the instance did not complete) and
UnmatchedSelector (a modifier selector or a sent event matched nothing), each rendering the
run's error, the user's frames, the timeline and the seed that reproduces it."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar, cast

from awf_sim._report import timeline_lines
from awf_sim.dsl._errors import AwfError
from awf_sim.engine._timeline import failure_stack

__all__ = [
    "TIMELINE_TAIL",
    "UnmatchedSelector",
    "WorkflowFailed",
    "failed_step",
    "format_timeline",
    "user_facing",
]

TIMELINE_TAIL = 30

# The decorated function keeps its own type (not a Callable[P, R]): type checkers then still
# name it in their messages ("in function mock_step_result").
_F = TypeVar("_F", bound=Callable[..., Any])


def user_facing(fn: _F) -> _F:
    """For an entry point of the test API (a modifier method, create_test_workflow): an awf
    error it raises (a refused argument, one of Cloudflare's modifier rules) shows in pytest at
    the test's line with its message, not under awf's own frames, their source and locals."""

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        __tracebackhide__ = True
        try:
            return fn(*args, **kwargs)
        except AwfError as exc:
            raise exc.with_traceback(None)  # noqa: B904  # the same error, awf's frames cut

    return cast(_F, call)


def format_timeline(timeline: Sequence[Mapping[str, Any]], tail: int | None = TIMELINE_TAIL) -> str:
    """Readable lines: virtual time, kind, path, attempt, error; the last `tail` entries."""
    return "\n".join(timeline_lines(timeline, tail=tail))


def failed_step(error: Mapping[str, Any] | None, timeline: Sequence[Mapping[str, Any]]) -> str:
    """` at step Pay.charge, attempt 3` when a step's failure is the instance's error: the
    step path a reader looks for first, which the timeline tail may have cut; else ""."""
    if not error:
        return ""
    for entry in reversed(timeline):
        if entry.get("kind") == "step-failure" and entry.get("path"):
            failed = entry.get("error") or {}
            if (failed.get("name"), failed.get("message")) == (
                error.get("name"),
                error.get("message"),
            ):
                return f" at step {entry['path']}, attempt {entry.get('attempt')}"
            return ""
    return ""


class WorkflowFailed(AssertionError):
    """The test workflow's instance did not complete. `.error` is its {name, message} (None if
    it was terminated), `.stack` where the user's code raised it (the failing handler's frames,
    then the workflow's, file:line and code, awf's frames trimmed; None if none), `.timeline`
    its timeline, `.seed` the seed that reproduces the run, `.warnings` the modifier selectors
    that matched no step, `.reason` why a run that never ends was given up on (else None)."""

    def __init__(
        self,
        *,
        workflow: str,
        instance_id: str,
        status: str,
        error: Mapping[str, str] | None,
        timeline: Sequence[Mapping[str, Any]],
        seed: int,
        warnings: Sequence[str] = (),
        stack: str | None = None,
        reason: str | None = None,
    ) -> None:
        self.workflow = workflow
        self.reason = reason  # why an instance that did not end was given up on
        self.instance_id = instance_id
        self.status = status
        self.error = dict(error) if error else None
        self.timeline = [dict(e) for e in timeline]
        self.seed = seed
        self.warnings = list(warnings)
        self.stack = stack if stack is not None else failure_stack(self.timeline)
        super().__init__(self.render())

    def render(self) -> str:
        if self.reason:
            head = self.reason
        elif self.error:
            head = f"{self.error.get('name')}: {self.error.get('message')}"
        else:
            head = f"the instance ended {self.status}"
        shown = min(len(self.timeline), TIMELINE_TAIL)
        lines = [
            head,
            f"workflow {self.workflow!r}, instance {self.instance_id}: {self.status}"
            f"{self._where()} (seed {self.seed})",
        ]
        if self.stack:
            lines += ["Traceback (most recent call last; awf's frames hidden):", self.stack]
        lines += [
            f"timeline (last {shown} of {len(self.timeline)} entries):",
            format_timeline(self.timeline),
        ]
        lines += [f"warning: {w}" for w in self.warnings]
        lines.append(f"reproduce with seed={self.seed}")
        return "\n".join(lines)

    def _where(self) -> str:
        return failed_step(self.error, self.timeline)

    def __reduce__(self) -> Any:
        return (_rebuild_failed, (self.__dict__.copy(),))


def _rebuild_failed(state: dict[str, Any]) -> WorkflowFailed:
    return WorkflowFailed(
        workflow=state["workflow"],
        instance_id=state["instance_id"],
        status=state["status"],
        error=state["error"],
        timeline=state["timeline"],
        seed=state["seed"],
        warnings=state["warnings"],
        stack=state.get("stack"),
        reason=state.get("reason"),
    )


class UnmatchedSelector(AssertionError):
    """A modifier selector matched no step of a run that completed, or an event the test sent
    (`mock_event`, `send_event`) was of a type no wait of the run was for: usually a typo,
    which would otherwise let the test pass without mocking anything. `.warnings` says which, with
    the did-you-mean list. `create_test_workflow(..., strict=False)` allows it."""

    def __init__(self, workflow: str, warnings: Sequence[str]) -> None:
        self.workflow = workflow
        self.warnings = list(warnings)
        lines = [
            f"workflow {workflow!r} completed, but a modifier selector or a sent event matched "
            "nothing:"
        ]
        lines += [f"  {w}" for w in self.warnings]
        lines.append("(pass strict=False to create_test_workflow if that is intended)")
        super().__init__("\n".join(lines))

    def __reduce__(self) -> Any:
        return (type(self), (self.workflow, self.warnings))
