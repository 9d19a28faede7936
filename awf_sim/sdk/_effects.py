"""The external effects a handler causes: every `ctx.http` request and every `ctx.ai` call.

Chaos runs the same workflow with and without faults and compares the effect logs (the
idempotent-effects invariant), so a summary must depend only on what was sent: no clock, no
object ids, canonical JSON. `detail` carries the rest (answers, headers) for reports.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Effect", "EffectLog"]


@dataclass(frozen=True, slots=True)
class Effect:
    """One external effect. `kind` is "http" or "ai"; `step` the label of the step that caused
    it ("Payment.process#1"), None outside a step."""

    kind: str
    step: str | None
    summary: str
    detail: dict[str, Any] = field(default_factory=dict, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "step": self.step,
            "summary": self.summary,
            "detail": self.detail,
        }


class EffectLog:
    """Effects in the order they happened. The engine sets `step` before each attempt."""

    __slots__ = ("_effects", "step")

    def __init__(self) -> None:
        self.step: str | None = None
        self._effects: list[Effect] = []

    def record(self, kind: str, summary: str, detail: Mapping[str, Any]) -> None:
        self._effects.append(Effect(kind, self.step, summary, dict(detail)))

    @property
    def effects(self) -> list[Effect]:
        return list(self._effects)

    def summaries(self) -> list[str]:
        """The summaries in order: equal lists mean the same effects, sent the same way."""
        return [effect.summary for effect in self._effects]

    def clear(self) -> None:
        self._effects.clear()

    def __len__(self) -> int:
        return len(self._effects)

    def __repr__(self) -> str:
        return f"<EffectLog step={self.step!r} effects={len(self._effects)}>"
