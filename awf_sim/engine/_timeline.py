"""Timeline entries: what an instance's timeline records, typed.

Every entry has the five fields of DESIGN §9 (`at_ms` virtual, `kind`, `path` as the dotted
string, `name` as the Cloudflare step name, `attempt` 1-based or None); the details depend on
the kind. They are plain dicts at run time (a TypedDict costs nothing, and timelines are
compared and dumped as JSON byte for byte), so readers get the keys checked by mypy and the
engine pays nothing for it.

Kinds: workflow-start, recover, resumed, restarted, paused, terminated, crash (with `fault`
when injected), step-start (with the resolved `config`), attempt-start, attempt-success,
attempt-failure (`error`, `retry_in_ms` when retried, `stack` when the user's code raised it),
checkpoint (`count`, the step's
occurrence), step-failure (`error`),
sleep-start (`duration_ms`, `until_ms`), sleep-end, wait-start (`type`, `timeout_ms`),
wait-end (`type`, and `seq` of the event or `timed_out`), event-received (`type`, `seq`),
workflow-success, workflow-failure (`error`, `stack` when the workflow body raised it). A
`stack` holds file:line and code of the user's frames only (awf's are trimmed), beside the
error's {name, message}, which stays as Cloudflare stores it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypedDict, Unpack

__all__ = ["EntryDetails", "TimelineEntry", "entry", "failure_stack"]


class EntryDetails(TypedDict, total=False):
    """The details an entry may carry, by kind (see the module docstring)."""

    error: dict[str, str] | None  # {name, message}
    retry_in_ms: int
    duration_ms: int
    until_ms: int
    type: str
    seq: int
    timed_out: bool
    timeout_ms: int | None  # None: not finite (a wait's timeout as passed)
    config: Any  # the step's resolved config (ResolvedConfig)
    fault: str  # the injected fault that caused a crash
    count: int  # checkpoint: which occurrence of the step name (Cloudflare's cache key)
    stack: str  # attempt-failure, workflow-failure: where the user's code raised (stack_of)


class TimelineEntry(EntryDetails):
    """One timeline entry."""

    at_ms: int
    kind: str
    path: str | None
    name: str | None
    attempt: int | None


def entry(
    at_ms: int,
    kind: str,
    path: str | None = None,
    name: str | None = None,
    attempt: int | None = None,
    **details: Unpack[EntryDetails],
) -> TimelineEntry:
    """One timeline entry: the five common fields, then the details of its kind."""
    e: TimelineEntry = {
        "at_ms": at_ms,
        "kind": kind,
        "path": path,
        "name": name,
        "attempt": attempt,
        **details,
    }
    return e


def failure_stack(timeline: Sequence[Mapping[str, Any]]) -> str | None:
    """Where a failed instance's error was raised in the user's code, from its timeline: the
    stack of the last failed attempt of the step that failed it (when the workflow failed with
    that step's error), then the workflow body's own frames."""
    end = next((e for e in reversed(timeline) if e.get("kind") == "workflow-failure"), None)
    if end is None:
        return None
    parts: list[str] = []
    for e in reversed(timeline):
        if e.get("kind") == "attempt-failure" and e.get("error") == end.get("error"):
            if e.get("stack"):
                parts.append(f"in {e.get('path')}, attempt {e.get('attempt')}:\n{e['stack']}")
            break
    if end.get("stack"):
        parts.append(f"in the workflow:\n{end['stack']}" if parts else str(end["stack"]))
    return "\n".join(parts) or None
