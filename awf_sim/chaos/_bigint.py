"""Integers a Cloudflare instance cannot store: beyond JavaScript's safe range.

Pyodide hands the engine an int beyond ±(2**53 - 1) as a BigInt, and the engine stores step
results and the output as JSON, which has no BigInt: on Cloudflare the instance errors at
once (`TypeError: Do not know how to serialize a BigInt`, awf_deploy/README.md's table of
differences), while the simulator keeps the int and the run completes. So the push gate
passed a flow returning `time.time_ns()` from a step that fails on its first instance.
The `serializable` invariant reports each one (`_outcome_checks.serializable`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from awf_sim.dsl._identity import MAX_SAFE_INTEGER

__all__ = ["MAX_SAFE_INTEGER", "unsafe_ints"]


def unsafe_ints(values: Iterable[tuple[str, Any]]) -> list[tuple[str, str, int]]:
    """(key, where in the value, the int) of the first unsafe int of each (key, JSON value)."""
    found: list[tuple[str, str, int]] = []
    for key, value in values:
        hit = _first(value, "")
        if hit is not None:
            found.append((key, *hit))
    return found


def _first(value: Any, where: str) -> tuple[str, int] | None:
    # Iterative: a result can be nested as deep as JSON allows.
    stack: list[tuple[Any, str]] = [(value, where)]
    while stack:
        item, at = stack.pop()
        if type(item) is int:
            if not -MAX_SAFE_INTEGER <= item <= MAX_SAFE_INTEGER:
                return at, item
        elif isinstance(item, dict):
            stack.extend((v, f"{at}.{k}") for k, v in reversed(list(item.items())))
        elif isinstance(item, list):
            stack.extend((v, f"{at}[{i}]") for i, v in reversed(list(enumerate(item))))
    return None
