"""Results that render themselves: the CLI only parses arguments and prints these.

rich is imported inside `__rich_console__` only, so `import awf_sim` stays light.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

__all__ = ["OUTCOME_STYLE", "RunResult", "format_at"]

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
    """Virtual time as a compact human string: 0 ms, 1.5 s, 2 min 3 s, 1 d 2 h."""
    if ms < 1000:
        return f"{ms} ms"
    if ms < 60_000:
        return f"{ms / 1000:g} s"
    parts = []
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("min", 60_000), ("s", 1000)):
        if ms >= size:
            parts.append(f"{ms // size} {unit}")
            ms %= size
    return " ".join(parts[:2])


def _detail(entry: dict[str, Any]) -> str:
    if entry.get("error"):
        err = entry["error"]
        text = f"{err['name']}: {err['message']}"
        if entry.get("retry_in_ms") is not None:
            text += f" (retry in {format_at(entry['retry_in_ms'])})"
        return text
    if entry["kind"] == "sleep-start":
        return f"for {format_at(entry['duration_ms'])}"
    if entry["kind"] in ("wait-start", "event-received", "wait-end"):
        extra = " (timed out)" if entry.get("timed_out") else ""
        return f"type {entry.get('type')}{extra}"
    return ""


@dataclass
class RunResult:
    """One instance run to its end: what `awf-sim run` prints."""

    workflow: str
    instance_id: str
    seed: int
    status: str
    output: Any
    error: dict[str, str] | None
    timeline: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "output": self.output,
            "error": self.error,
            "timeline": self.timeline,
        }

    def __rich_console__(self, console: Any, options: Any) -> Iterator[Any]:
        from rich.table import Table
        from rich.text import Text

        table = Table(
            title=f"{self.workflow} · instance {self.instance_id} · seed {self.seed}",
            title_justify="left",
        )
        table.add_column("time", justify="right", style="cyan", no_wrap=True)
        table.add_column("step")
        table.add_column("attempt", justify="right")
        table.add_column("event", no_wrap=True)
        table.add_column("detail", overflow="fold")
        for e in self.timeline:
            table.add_row(
                format_at(e["at_ms"]),
                e.get("path") or "",
                "" if e.get("attempt") is None else str(e["attempt"]),
                Text(e["kind"], style=OUTCOME_STYLE.get(e["kind"], "")),
                _detail(e),
            )
        yield table
        style = "bold green" if self.status == "complete" else "bold red"
        yield Text.assemble(("status: ", "bold"), (self.status, style))
        if self.error:
            yield Text(f"error: {self.error['name']}: {self.error['message']}", style="red")
        else:
            yield Text("output: " + json.dumps(self.output, indent=2, ensure_ascii=False))
