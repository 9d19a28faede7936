"""The instance history file that `awf-deploy pull` writes and `awf-sim replay` reads.

A versioned JSON object: the instance's status, params, output or error, and Cloudflare's step
log (`GET .../workflows/{w}/instances/{id}`: each step's `name`, `type` (`step`, `sleep`,
`waitForEvent`), `output`, `attempts`, `config`, `success`, `end`). Public as part of
`awf_sim.replay`, which holds what is done with it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from awf_sim.errors import HistoryError

__all__ = [
    "HISTORY_FORMAT",
    "HISTORY_VERSION",
    "History",
    "history_from_instance",
    "load_history",
]

HISTORY_FORMAT = "awf-instance-history"
HISTORY_VERSION = 1


@dataclass(frozen=True)
class History:
    workflow: str
    instance: str
    status: str
    params: Any
    steps: tuple[Mapping[str, Any], ...]
    output: Any = None
    error: Any = None
    source: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": HISTORY_FORMAT,
            "version": HISTORY_VERSION,
            "workflow": self.workflow,
            "instance": self.instance,
            "status": self.status,
            "params": self.params,
            "output": self.output,
            "error": self.error,
            "source": dict(self.source),
            "steps": [dict(s) for s in self.steps],
        }

    @classmethod
    def from_json(cls, data: Any, where: str = "history") -> History:
        if not isinstance(data, Mapping) or data.get("format") != HISTORY_FORMAT:
            raise HistoryError(
                f'{where}: not an awf instance history (no "format": "{HISTORY_FORMAT}"); '
                "write one with `awf-deploy pull WORKFLOW INSTANCE`"
            )
        version = data.get("version")
        if type(version) is not int or version != HISTORY_VERSION:
            raise HistoryError(
                f"{where}: history version {version!r} is not supported (this awf reads "
                f"version {HISTORY_VERSION}); pull it again with this awf-deploy"
            )
        workflow, instance = data.get("workflow"), data.get("instance")
        steps = data.get("steps")
        if not isinstance(workflow, str) or not isinstance(instance, str):
            raise HistoryError(f'{where}: "workflow" and "instance" must be strings')
        if not isinstance(steps, list) or not all(isinstance(s, Mapping) for s in steps):
            raise HistoryError(f'{where}: "steps" must be a list of step objects')
        source = data.get("source")
        if source is not None and not isinstance(source, Mapping):
            raise HistoryError(f'{where}: "source" must be an object, not {type(source).__name__}')
        return cls(
            workflow=workflow,
            instance=instance,
            status=str(data.get("status") or "unknown"),
            params=data.get("params"),
            steps=tuple(steps),
            output=data.get("output"),
            error=data.get("error"),
            source=dict(source or {}),
        )


def history_from_instance(
    workflow: str, instance: str, details: Mapping[str, Any], *, source: Mapping[str, Any] = {}
) -> History:
    """A History from Cloudflare's instance details (`GET .../instances/{id}` result)."""
    steps = details.get("steps") or []
    return History(
        workflow=workflow,
        instance=instance,
        status=str(details.get("status") or "unknown"),
        params=details.get("params"),
        steps=tuple(s for s in steps if isinstance(s, Mapping)),
        output=details.get("output"),
        error=details.get("error"),
        source=dict(source),
    )


def load_history(path: str | Path) -> History:
    """Read a history file; every problem is a HistoryError naming the file."""
    where = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise HistoryError(f"{where}: cannot be read: {exc.strerror or exc}") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise HistoryError(f"{where}: not JSON ({exc})") from None
    except RecursionError:
        raise HistoryError(
            f"{where}: nested too deeply to read; pull the history again with awf-deploy pull"
        ) from None
    return History.from_json(data, where)
