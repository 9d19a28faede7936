"""Step selectors: which step calls a test modifier's mock, a disabled sleep, a forced timeout
or a chaos fault applies to. They match the engine's `StepRef`, so they live beside it and
both the testing modifier and chaos fault plans import them from here.

A selector is a string or a dict:

- `"Payment.process"`: a dotted path; matches every call of that step, whatever its context
  and args (StepRef.path).
- `"Payment.*"`: a glob (fnmatch, case-sensitive) over the dotted path or the step name.
- `"Inventory.check@1a2b3c4d5e6f7a8b"`, or the name given to `wf.do`, `wf.sleep` or
  `wf.wait_for`: a raw step name (StepRef.name).
- `{"name": sel, "index": k}`: only the k-th call (1-based, in the order the awaits start, per
  instance lifetime) among the calls that `sel` matches. As in Cloudflare's `{name, index?}`,
  `index` defaults to 1 in the dict form; a plain string selects every call it matches.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any, NotRequired, TypedDict

from awf_sim.dsl._errors import DefinitionError
from awf_sim.engine._hooks import StepRef

__all__ = ["Selector", "SelectorDict", "StepSelector", "parse_selector"]

_GLOB_CHARS = frozenset("*?[")


@dataclass(frozen=True, slots=True)
class StepSelector:
    """A parsed selector: `name` (path, glob or raw name) and `index` (None: every call)."""

    name: str
    index: int | None = None

    @property
    def is_glob(self) -> bool:
        return any(c in _GLOB_CHARS for c in self.name)

    def matches(self, ref: StepRef) -> bool:
        """Does this call match the selector's name (the index is counted by the caller)?"""
        name = self.name
        if ref.path == name or ref.name == name:
            return True
        return self.is_glob and (fnmatchcase(ref.path, name) or fnmatchcase(ref.name, name))

    @property
    def specificity(self) -> tuple[int, int]:
        """Sort key: an indexed selector beats a plain one, an exact name beats a glob."""
        return (0 if self.index is not None else 1, 1 if self.is_glob else 0)

    def __str__(self) -> str:
        if self.index is None:
            return repr(self.name)
        return f"{{'name': {self.name!r}, 'index': {self.index}}}"


class SelectorDict(TypedDict):
    """`{"name": sel, "index": k}`: the k-th call (1-based; 1 if left out) that `sel` matches."""

    name: str
    index: NotRequired[int]


# What the modifier's methods and a test workflow's step lookups take, as the checkers see it.
Selector = str | SelectorDict | StepSelector


def parse_selector(selector: Any, *, method: str) -> StepSelector:
    """A StepSelector from what the user passed; a clear error naming `method` otherwise."""
    if isinstance(selector, StepSelector):
        return selector
    if isinstance(selector, str):
        if not selector:
            raise DefinitionError(f"{method}: the step selector is an empty string")
        return StepSelector(selector)
    if isinstance(selector, Mapping):
        extra = set(selector) - {"name", "index"}
        if extra:
            raise DefinitionError(
                f"{method}: unknown selector key(s) {', '.join(sorted(map(str, extra)))}; "
                "a selector dict has 'name' and optionally 'index'"
            )
        name = selector.get("name")
        if not isinstance(name, str) or not name:
            raise DefinitionError(
                f"{method}: a selector dict needs 'name', a non-empty string, got {name!r}"
            )
        index = selector.get("index", 1)
        if isinstance(index, bool) or not isinstance(index, int) or index < 1:
            raise DefinitionError(
                f"{method}: selector 'index' is 1-based (the k-th call), got {index!r}"
            )
        return StepSelector(name, index)
    raise DefinitionError(
        f"{method}: a step selector is a string (dotted path, glob or step name) or "
        f"{{'name': ..., 'index': k}}, got {type(selector).__name__}"
    )
