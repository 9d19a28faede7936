"""Timeline entries: what an instance's timeline records, typed.

Every entry has the five fields of DESIGN §9 (`at_ms` virtual, `kind`, `path` as the dotted
string, `name` as the Cloudflare step name, `attempt` 1-based or None); the details depend on
the kind. Readers get plain dicts (a TypedDict: keys checked by mypy, and timelines are
compared and dumped as JSON byte for byte).

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

The engine builds and stores each entry as a `Row`, a tuple, and makes the dict when the
timeline is read: a dict costs about three times the memory of the tuple and four times the
time to build, and an instance holds every entry of its timeline while it waits, which may
be for weeks (`as_entry` and `as_row` convert; readers only ever see the dicts).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypedDict, Unpack

__all__ = [
    "EntryDetails",
    "Row",
    "TimelineEntry",
    "as_entry",
    "as_row",
    "failure_stack",
    "row",
]


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


# An entry as stored: (at_ms, kind, path, name, attempt), and when it has details, their
# values followed by the tuple of their keys, e.g. (0, "checkpoint", p, n, 1, 1, ("count",)).
# The key tuples are shared (`shape`), so a detail costs one slot of its row.
Row = tuple[Any, ...]

_FIVE = ("at_ms", "kind", "path", "name", "attempt")
_SHAPES: dict[tuple[str, ...], tuple[str, ...]] = {}


def shape(*keys: str) -> tuple[str, ...]:
    """The one shared tuple of these detail keys, for the last slot of a row."""
    return _SHAPES.setdefault(keys, keys)


def row(
    at_ms: int,
    kind: str,
    path: str | None = None,
    name: str | None = None,
    attempt: int | None = None,
    **details: Unpack[EntryDetails],
) -> Row:
    """One timeline entry as stored (see `Row`): the five common fields, then the details."""
    if not details:
        return (at_ms, kind, path, name, attempt)
    return (at_ms, kind, path, name, attempt, *details.values(), shape(*details))


def as_entry(r: Row) -> TimelineEntry:
    """The dict of a stored row: a new one on every call, the caller's to keep or change."""
    e: TimelineEntry = {"at_ms": r[0], "kind": r[1], "path": r[2], "name": r[3], "attempt": r[4]}
    if len(r) > 5:
        i = 5
        for key in r[-1]:
            e[key] = r[i]  # type: ignore[literal-required]
            i += 1
    return e


def as_row(e: Mapping[str, Any]) -> Row:
    """The row of an entry dict (one read back from a file): its keys in their order."""
    keys = tuple(k for k in e if k not in _FIVE)
    first = (e.get("at_ms"), e.get("kind"), e.get("path"), e.get("name"), e.get("attempt"))
    if not keys:
        return first
    return (*first, *(e[k] for k in keys), shape(*keys))


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
