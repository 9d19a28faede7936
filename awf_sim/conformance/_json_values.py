"""What a scenario's JSON values may be: shown in one-line errors, JSON at all, finite as
JavaScript reads numbers, writable as UTF-8 (`_scenario`'s checks)."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Mapping
from typing import Any

__all__ = ["FLOAT_MAX", "is_json", "non_finite", "show", "utf8"]


def show(value: Any) -> str:
    if value is None:
        return "nothing (missing or null)"
    text = json.dumps(value, ensure_ascii=not utf8(value)) if is_json(value) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def is_json(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


FLOAT_MAX = int(sys.float_info.max)


def non_finite(value: Any, path: str) -> str | None:
    """The path of the first NaN or infinite number inside `value`, else None."""
    if isinstance(value, float) and not math.isfinite(value):
        return path or "."
    # A whole number past float's range (400 digits): JavaScript reads it as Infinity.
    if isinstance(value, int) and abs(value) > FLOAT_MAX:
        return path or "."
    if isinstance(value, Mapping):
        for key, item in value.items():
            found = non_finite(item, f"{path}.{key}")
            if found is not None:
                return found
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found = non_finite(item, f"{path}[{i}]")
            if found is not None:
                return found
    return None


def utf8(value: Any) -> bool:
    """Whether `value`'s JSON can be written as UTF-8 (no lone surrogate)."""
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
