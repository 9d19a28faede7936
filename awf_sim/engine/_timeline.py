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

The engine builds each entry as a `Row`, a tuple, a store keeps an instance's rows in one
flat list, and the dicts are made when the timeline is read: a dict costs about five times
the memory of its row and four times the time to build, and an instance holds every entry of
its timeline while it waits, which may be for weeks (`as_entries` and `as_row` convert;
readers only ever see the dicts).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypedDict, Unpack

__all__ = [
    "EntryDetails",
    "Row",
    "TimelineEntry",
    "as_entries",
    "as_row",
    "failure_stack",
    "row",
    "shape",
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


# An entry as stored: the tuple of its detail keys (`()` when it has none), the five fields,
# then the detail values, e.g. (("count",), 0, "checkpoint", path, name, 1, 1). The key tuples
# are shared (`shape`), so a detail costs one slot. A store keeps an instance's timeline as
# one flat list, its rows back to back (a tuple per entry would cost 40 bytes more each);
# the key tuple, first, tells where a row ends.
Row = tuple[Any, ...]

_FIVE = ("at_ms", "kind", "path", "name", "attempt")
_SHAPES: dict[tuple[str, ...], tuple[str, ...]] = {}


def shape(*keys: str) -> tuple[str, ...]:
    """The one shared tuple of these detail keys, for the first slot of a row."""
    return _SHAPES.setdefault(keys, keys)


def row(
    at_ms: int,
    kind: str,
    path: str | None = None,
    name: str | None = None,
    attempt: int | None = None,
    **details: Unpack[EntryDetails],
) -> Row:
    """One timeline entry as stored (see `Row`)."""
    if not details:
        return ((), at_ms, kind, path, name, attempt)
    return (shape(*details), at_ms, kind, path, name, attempt, *details.values())


def as_entries(rows: Sequence[Any]) -> list[TimelineEntry]:
    """The dicts of stored rows, back to back in `rows` (one row, or a stored timeline): new
    ones on every call, the caller's to keep or change."""
    out: list[TimelineEntry] = []
    i, end = 0, len(rows)
    while i < end:
        keys = rows[i]
        e: TimelineEntry = {
            "at_ms": rows[i + 1],
            "kind": rows[i + 2],
            "path": rows[i + 3],
            "name": rows[i + 4],
            "attempt": rows[i + 5],
        }
        i += 6
        for key in keys:
            e[key] = rows[i]  # type: ignore[literal-required]
            i += 1
        out.append(e)
    return out


def as_row(e: Mapping[str, Any]) -> Row:
    """The row of an entry dict (one read back from a file): its keys in their order."""
    keys = tuple(k for k in e if k not in _FIVE)
    first = (e.get("at_ms"), e.get("kind"), e.get("path"), e.get("name"), e.get("attempt"))
    if not keys:
        return ((), *first)
    return (shape(*keys), *first, *(e[k] for k in keys))


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
