"""Results that render themselves: the CLI only parses arguments and prints these.

rich is imported inside `__rich_console__` only, so `import awf_sim` stays light.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from awf_sim.dsl._workflow import Workflow
from awf_sim.engine import TimelineEntry
from awf_sim.engine._timeline import failure_stack

__all__ = [
    "OUTCOME_STYLE",
    "RunResult",
    "entry_detail",
    "entry_summary",
    "format_at",
    "run_duration",
    "run_origin",
    "timeline_lines",
    "timeline_table",
]

OUTCOME_STYLE = {
    "checkpoint": "green",
    "workflow-success": "bold green",
    "attempt-failure": "yellow",
    "step-failure": "red",
    "workflow-failure": "bold red",
    "crash": "bold magenta",
    "terminated": "red",
}


def format_at(ms: int) -> str:
    """Virtual time as a human string, exact: 0 ms, 1.5 s, 2 min 3 s, 1 d 2 h, 14 d 10 min 30 s.
    Every unit is shown: cut to two, a retry at 14 d 11 min 30 s read as 14 d 11 min, and a
    10-minute timeout that began at 14 d 30 s seemed to end 9.5 minutes later."""
    if ms < 1000:
        return f"{ms} ms"
    parts = []
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("min", 60_000)):
        if ms >= size:
            parts.append(f"{ms // size} {unit}")
            ms %= size
    if ms:
        parts.append(f"{ms / 1000:g} s")
    return " ".join(parts)


# -- the timeline renderer: every place that shows a timeline uses these -------------------


def entry_detail(entry: Mapping[str, Any]) -> str:
    """The detail column of one timeline entry: an error (and when it is retried), a sleep's
    length, an event's type. A fault mark is the caller's (see `timeline_lines`)."""
    err = entry.get("error")
    if err:
        text = f"{err.get('name')}: {err.get('message')}"
        if entry.get("retry_in_ms") is not None:
            text += f" (retry in {format_at(entry['retry_in_ms'])})"
        return text
    kind = entry.get("kind")
    if kind == "sleep-start" and entry.get("duration_ms") is not None:
        return f"for {format_at(entry['duration_ms'])}"
    if kind in ("wait-start", "event-received", "wait-end"):
        return f"type {entry.get('type')}" + (" (timed out)" if entry.get("timed_out") else "")
    return ""


def run_origin(timeline: Sequence[Mapping[str, Any]]) -> int:
    """When the run began on the simulator's clock. Every rendered time counts from here, so a
    timeline shows the run's own durations even when the simulator's clock had already moved
    on (a second instance in one Simulator, a test workflow created late)."""
    return int(timeline[0].get("at_ms") or 0) if timeline else 0


def run_duration(timeline: Sequence[Mapping[str, Any]]) -> int:
    """Virtual time from the run's first entry to its last."""
    return int(timeline[-1].get("at_ms") or 0) - run_origin(timeline) if timeline else 0


def entry_summary(entry: Mapping[str, Any], origin: int = 0) -> str:
    """One entry in a sentence: `1 s checkpoint Inventory.check attempt 1`."""
    parts = [format_at(int(entry.get("at_ms") or 0) - origin), str(entry.get("kind", "?"))]
    if entry.get("path"):
        parts.append(str(entry["path"]))
    if entry.get("attempt") is not None:
        parts.append(f"attempt {entry['attempt']}")
    return " ".join(parts)


def timeline_lines(
    timeline: Sequence[Mapping[str, Any]], *, tail: int | None = None, indent: str = "  "
) -> list[str]:
    """Plain-text lines (time, kind, path, attempt, detail, `<< fault`), the last `tail`."""
    entries = list(timeline)
    origin = run_origin(entries)
    lines = []
    if tail is not None and len(entries) > tail:
        lines.append(f"{indent}... {len(entries) - tail} earlier entries")
        entries = entries[-tail:]
    for e in entries:
        attempt = "" if e.get("attempt") is None else f"attempt {e['attempt']}"
        parts = [
            f"{format_at(int(e.get('at_ms') or 0) - origin):>10}",
            f"{e.get('kind', '?'):<16}",
            f"{e.get('path') or '':<24}",
            f"{attempt:<10}",
            entry_detail(e),
            f"<< {e['fault']}" if e.get("fault") else "",
        ]
        lines.append(indent + " ".join(p for p in parts if p).rstrip())
    return lines


# A timeline longer than this is shown by its two ends: a run of 10,000 steps has 50,000
# entries, and rich takes seconds per thousand rows to lay them out.
TABLE_ROWS = 200


def timeline_table(
    timeline: Sequence[Mapping[str, Any]], *, rows: int = TABLE_ROWS, **table: Any
) -> Any:
    """A rich Table of the timeline; an entry with a fault is marked ⚡ and highlighted. Past
    `rows` entries, the first and last `rows // 2` with a row saying how many are left out."""
    from rich.table import Table
    from rich.text import Text

    out = Table(**table)
    out.add_column("time", justify="right", style="cyan", no_wrap=True)
    out.add_column("step")
    out.add_column("attempt", justify="right")
    out.add_column("event", no_wrap=True)
    out.add_column("detail", overflow="fold")
    origin = run_origin(timeline)
    entries = list(timeline)
    left_out = len(entries) - rows if len(entries) > rows else 0
    for i, e in enumerate(entries):
        if left_out and rows // 2 <= i < rows // 2 + left_out:
            if i == rows // 2:
                out.add_row(
                    "⋮", "", "", "", Text(f"{left_out:,} entries left out; --json has them all")
                )
            continue
        fault = e.get("fault")
        out.add_row(
            format_at(e["at_ms"] - origin),
            e.get("path") or "",
            "" if e.get("attempt") is None else str(e["attempt"]),
            Text(e["kind"], style=OUTCOME_STYLE.get(e["kind"], "")),
            Text.assemble((f"⚡ {fault}  ", "bold magenta") if fault else "", entry_detail(e)),
            style="on grey23" if fault else "",
        )
    return out


def unsent_event(workflow: Workflow, timeline: Sequence[Mapping[str, Any]]) -> str | None:
    """What to do when a wait timed out on an event type the workflow never declares: no one
    sends it in `awf-sim run` or chaos, so the run can only take the timeout branch."""
    declared = {ev["type"] for ev in workflow.events}
    for e in reversed(timeline):
        etype = e.get("type")
        if e["kind"] == "wait-end" and e.get("timed_out") and etype not in declared:
            return (
                f"The wait {e.get('name')!r} timed out: nothing sends an event of type "
                f"{etype!r}, since {workflow.name} declares no such event. Declare what the "
                f'outside world sends: @Workflow({workflow.name!r}, events=[{{"type": '
                f'{json.dumps(etype)}, "payload": {{...}}, "after": "1 hour"}}]), which '
                "awf-sim run and chaos send."
            )
    return None


@dataclass
class RunResult:
    """One instance run to its end: what `awf-sim run` prints."""

    workflow: str
    instance_id: str
    seed: int
    status: str
    output: Any
    error: dict[str, str] | None
    timeline: list[TimelineEntry] = field(default_factory=list)
    hint: str | None = None  # what to do about the error, when awf can tell

    @property
    def stack(self) -> str | None:
        """Where the user's code raised the instance's error (file:line and code), or None."""
        return failure_stack(self.timeline) if self.error else None

    def to_json(self) -> dict[str, Any]:
        stack = self.stack
        return {
            # Enough to find the run again: which instance, on which seed.
            "workflow": self.workflow,
            "instance_id": self.instance_id,
            "seed": self.seed,
            "status": self.status,
            "output": self.output,
            # {name, message} as stored, with `stack` beside them when the user's code raised it
            "error": {**self.error, "stack": stack} if self.error and stack else self.error,
            "timeline": self.timeline,
        }

    def __rich_console__(self, console: Any, options: Any) -> Iterator[Any]:
        from rich.text import Text

        table = timeline_table(
            self.timeline,
            title=f"{self.workflow} · instance {self.instance_id} · seed {self.seed}",
            title_justify="left",
        )
        yield table
        style = "bold green" if self.status == "complete" else "bold red"
        yield Text.assemble(
            ("status: ", "bold"),
            (self.status, style),
            f" after {format_at(run_duration(self.timeline))} of virtual time",
        )
        if self.error:
            yield Text(f"error: {self.error['name']}: {self.error['message']}", style="red")
            if self.stack:
                yield Text(self.stack, style="red")
            if self.hint:
                yield Text(f"hint: {self.hint}", style="yellow")
        elif self.status == "complete":  # a run stopped before its end has no output yet
            yield Text("output: " + json.dumps(self.output, indent=2, ensure_ascii=False))
