"""The Simulator's own arguments checked where they are given: a wrong one is one line that
names it and what to pass, not a TypeError or AttributeError from inside the engine later."""

from __future__ import annotations

import datetime as _dt
import re
from typing import Any

from awf_sim.dsl._errors import DefinitionError
from awf_sim.engine._hooks import Hooks

__all__ = ["check_run_until", "check_setup"]

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def check_setup(seed: Any, epoch: Any, compatibility_date: Any, hooks: Any) -> None:
    """Simulator(seed=, epoch=, compatibility_date=, hooks=)."""
    # What random.Random(seed) takes (a bool is an int to it).
    if seed is not None and not isinstance(seed, int | float | str | bytes | bytearray):
        raise DefinitionError(
            f"Simulator: seed must be an int (or a str), got {type(seed).__name__}"
        )
    if not isinstance(epoch, _dt.datetime):
        raise DefinitionError(
            f"Simulator: epoch must be a datetime, e.g. datetime(2026, 1, 1, tzinfo=UTC), "
            f"got {type(epoch).__name__} {epoch!r}"
        )
    if not isinstance(compatibility_date, str) or not _is_date(compatibility_date):
        raise DefinitionError(
            "Simulator: compatibility_date must be a date 'YYYY-MM-DD' as in wrangler.toml, "
            f"got {compatibility_date!r}"
        )
    if hooks is not None and not isinstance(hooks, Hooks):
        raise DefinitionError(
            f"Simulator: hooks must be a Hooks (a subclass of awf_sim.engine.Hooks, such as a "
            f"test modifier), got {type(hooks).__name__}"
        )


def _is_date(text: str) -> bool:
    if _DATE.fullmatch(text) is None:
        return False
    try:
        _dt.date.fromisoformat(text)
    except ValueError:
        return False
    return True


def check_run_until(condition: Any, max_ms: Any, max_waits: Any) -> None:
    """run_until(condition, max_ms=, max_waits=)."""
    if not callable(condition):
        raise DefinitionError(
            f"run_until takes a condition to call, e.g. lambda: inst.status()['status'] == "
            f"'complete', got {type(condition).__name__}"
        )
    if max_ms is not None and (
        isinstance(max_ms, bool)
        or not isinstance(max_ms, int | float)
        or not 0 <= max_ms < float("inf")
    ):
        raise DefinitionError(
            f"run_until: max_ms must be milliseconds >= 0 or None, got {max_ms!r} (for a "
            "duration: parse_duration('1 day'))"
        )
    if max_waits is not None and (
        isinstance(max_waits, bool) or not isinstance(max_waits, int) or max_waits < 0
    ):
        raise DefinitionError(
            f"run_until: max_waits must be a whole number >= 0 or None, got {max_waits!r}"
        )
