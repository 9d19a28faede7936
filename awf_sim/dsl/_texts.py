"""Values JSON carries as text, rebuilt as the type a workflow's params declare.

A caller sends a workflow's params as JSON, so a dataclass input with a `datetime`, `date`,
`time`, `UUID` or `Decimal` field arrives as a string (`awf_sim.strategies.inputs` draws it
that way too); the workflow declared the type, so it gets that type, or a SerializationError
naming the field. Only params: a step's context, args and result and a workflow's output are
written as JSON by Python, which has no form for these (awf_sim.dsl._carry refuses them there).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import decimal
import enum
import uuid
from collections.abc import Callable
from typing import Any

from awf_sim.dsl._errors import SerializationError

__all__ = ["TEXT_TYPES", "as_sent", "from_text", "text_type"]


def _datetime(text: str) -> _dt.datetime:
    # fromisoformat takes "Z" from Python 3.11; JavaScript's toISOString writes it.
    return _dt.datetime.fromisoformat(text)


TEXT_TYPES: dict[type, tuple[Callable[[str], Any], str]] = {
    _dt.datetime: (_datetime, "an ISO 8601 date and time"),
    _dt.date: (_dt.date.fromisoformat, "an ISO 8601 date"),
    _dt.time: (_dt.time.fromisoformat, "an ISO 8601 time"),
    uuid.UUID: (uuid.UUID, "a UUID"),
    decimal.Decimal: (decimal.Decimal, "a decimal number"),
}


def text_type(tp: object) -> type | None:
    """The one of TEXT_TYPES that `tp` is (or derives from: a datetime before a date)."""
    if not isinstance(tp, type):
        return None
    return next((kind for kind in TEXT_TYPES if issubclass(tp, kind)), None)


def from_text(tp: type) -> Callable[[Any, str], Any] | None:
    """(value, path) -> a `tp` from its JSON text (or number, for a Decimal); None when `tp`
    is not one of TEXT_TYPES."""
    # By subclass: inside a simulation `datetime.datetime` may be freezegun's FakeDatetime.
    kind = text_type(tp)
    if kind is None:
        return None
    parse, what = TEXT_TYPES[kind]

    def convert(value: Any, path: str) -> Any:
        if isinstance(value, tp):
            return value
        ok = isinstance(value, str) or (
            kind is decimal.Decimal
            and isinstance(value, int | float)
            and not isinstance(value, bool)
        )
        if ok:
            try:
                return parse(value if isinstance(value, str) else repr(value))
            except (ValueError, decimal.InvalidOperation):
                pass
        shown = f"{type(value).__name__} ({value!r:.40})" if value is not None else "null"
        raise SerializationError(f"{path} is {shown}, not {what} ({kind.__name__})")

    return convert


def as_sent(value: Any) -> Any:
    """`value` as a caller would send it: the datetimes, dates, times, UUIDs, Decimals and
    Enums in it (at any depth of dataclasses, NamedTuples, lists and dicts) as the JSON text or
    value that `from_text` reads back; None when there is none (the value is sent as it is).

    The testing API takes a workflow's params as its declared type (`run(Booking(...))`), and
    such a field failed there as "params.at is not JSON (a datetime)"."""
    found = [False]

    def walk(item: Any) -> Any:
        if isinstance(item, str | int | float | bool) and not isinstance(item, enum.Enum):
            return item
        if item is None:
            return None
        if isinstance(item, enum.Enum):
            found[0] = True
            return walk(item.value)
        if isinstance(item, _dt.date | _dt.time | uuid.UUID):
            found[0] = True
            return item.isoformat() if not isinstance(item, uuid.UUID) else str(item)
        if isinstance(item, decimal.Decimal):
            found[0] = True
            return str(item)
        if dataclasses.is_dataclass(item) and not isinstance(item, type):
            fields = dataclasses.fields(item)
            return {f.name: walk(getattr(item, f.name)) for f in fields}
        if isinstance(item, list | tuple):
            return [walk(v) for v in item]
        if isinstance(item, dict):
            return {k: walk(v) for k, v in item.items()}
        return item  # a model, anything else: the engine's own encoding decides

    sent = walk(value)
    return sent if found[0] else None
