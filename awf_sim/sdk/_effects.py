"""The external effects a handler causes: every `ctx.http` request and every `ctx.ai` call.

Chaos runs the same workflow with and without faults and compares the effect logs (the
idempotent-effects invariant), so a summary must depend only on what was sent: no clock, no
object ids, canonical JSON. `detail` carries the rest (answers, headers) for reports.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Effect", "EffectLog", "current_step"]

# The label of the step whose handler is running ("Payment.process#1"), per asyncio task.
# The engine sets it around each attempt, so two steps that run at once (asyncio.gather: each
# in its own task, with its own copy of the context) each see their own label, however they
# interleave; database writes and external effects are recorded under it. A label stored on
# a handle that all steps share would name whichever step touched the handle last.
current_step: ContextVar[str | None] = ContextVar("awf_current_step", default=None)


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
    """Effects in the order they happened, each under the step running in the task that made
    it (`current_step`); `step` is the fallback outside the engine (a test context)."""

    __slots__ = ("_effects", "step")

    def __init__(self) -> None:
        self.step: str | None = None
        self._effects: list[Effect] = []

    def record(self, kind: str, summary: str, detail: Mapping[str, Any]) -> None:
        step = current_step.get()
        if step is None:
            step = self.step
        self._effects.append(Effect(kind, step, summary, dict(detail)))

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

    def __iter__(self) -> Iterator[Effect]:
        """`for effect in sim.effects`: a log with a length reads as a sequence of effects."""
        return iter(list(self._effects))

    def __repr__(self) -> str:
        return f"<EffectLog step={self.step!r} effects={len(self._effects)}>"
