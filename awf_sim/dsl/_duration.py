"""Durations: Cloudflare's forms ("10 seconds", "1.5 hours", a number of ms) plus "30s", "5m"."""

from __future__ import annotations

import functools
import math
import re
from fractions import Fraction

from awf_sim.dsl._errors import DefinitionError

__all__ = ["MAX_SLEEP_MS", "check_sleep", "format_ms", "parse_duration"]

_SECOND = 1_000
_MINUTE = 60 * _SECOND
_HOUR = 60 * _MINUTE
_DAY = 24 * _HOUR
_WEEK = 7 * _DAY

# Cloudflare parses durations with itty-time `ms()`, whose month is 30 days and year 365.25
# days; matching it keeps a step's timeout the same in the simulator and in production.
_UNITS: dict[str, int] = {
    "ms": 1,
    "millis": 1,
    "millisecond": 1,
    "milliseconds": 1,
    "s": _SECOND,
    "sec": _SECOND,
    "secs": _SECOND,
    "second": _SECOND,
    "seconds": _SECOND,
    "m": _MINUTE,
    "min": _MINUTE,
    "mins": _MINUTE,
    "minute": _MINUTE,
    "minutes": _MINUTE,
    "h": _HOUR,
    "hr": _HOUR,
    "hrs": _HOUR,
    "hour": _HOUR,
    "hours": _HOUR,
    "d": _DAY,
    "day": _DAY,
    "days": _DAY,
    "w": _WEEK,
    "week": _WEEK,
    "weeks": _WEEK,
    "month": 30 * _DAY,
    "months": 30 * _DAY,
    "year": 31_557_600_000,
    "years": 31_557_600_000,
}

MAX_SLEEP_MS: int = 365 * _DAY

# ASCII only: `\d` would otherwise accept digits from other scripts that Cloudflare rejects.
_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)"
_PLAIN = re.compile(_NUMBER, re.ASCII)
_WITH_UNIT = re.compile(rf"({_NUMBER})\s*([a-z]+)", re.ASCII)

_FORMS = (
    "use a number of milliseconds, '<n> <unit>' with unit "
    "second|minute|hour|day|week|month|year, or a short form like '30s', '5m', '2h', '7d'"
)


# The longest duration accepted: JavaScript's largest exact integer (Number.MAX_SAFE_INTEGER)
# of milliseconds, about 285,000 years. Beyond it a number is no longer a duration anywhere
# Cloudflare could run it, and arithmetic on virtual time would leave exact integers.
MAX_DURATION_MS = 2**53 - 1


def _shown(value: object) -> str:
    try:
        text = repr(value)
    except ValueError:  # an int too long to print
        return f"<a number of {value.bit_length()} bits>" if isinstance(value, int) else "?"
    return text if len(text) <= 40 else text[:30] + "..." + text[-6:]


def _bounded(value: object, ms: int) -> int:
    if ms > MAX_DURATION_MS:
        raise DefinitionError(
            f"invalid duration {_shown(value)}: longer than the longest duration awf accepts "
            f"({MAX_DURATION_MS} ms, about 285,000 years)"
        )
    return ms


def _invalid(value: object, reason: str = "") -> DefinitionError:
    detail = f" ({reason})" if reason else ""
    return DefinitionError(f"invalid duration {value!r}{detail}: {_FORMS}")


def _round_ms(ms: Fraction | float) -> int:
    # Half up, as JavaScript's Math.round, rather than Python's half-to-even round().
    return math.floor(ms + Fraction(1, 2)) if isinstance(ms, Fraction) else math.floor(ms + 0.5)


@functools.lru_cache(maxsize=512)
def _parse_text(text: str) -> int:
    # Flows repeat the same few literals ("30 seconds") on every step, so caching pays off;
    # failures raise and are therefore never cached.
    key = text.strip().lower()
    if _PLAIN.fullmatch(key):
        return _round_ms(Fraction(key))
    match = _WITH_UNIT.fullmatch(key)
    if match is None:
        reason = "empty" if not key else "negative" if key.startswith("-") else ""
        raise _invalid(text, reason)
    number, unit = match.groups()
    factor = _UNITS.get(unit)
    if factor is None:
        # Cloudflare multiplies by 1 for an unknown unit, so "3 fortnights" silently becomes
        # 3 ms there; a typo like that should fail here, before it is deployed.
        raise _invalid(text, f"unknown unit {unit!r}")
    # Fraction keeps "0.1 seconds" at exactly 100 ms, where float arithmetic would drift.
    return _round_ms(Fraction(number) * factor)


def parse_duration(value: str | int | float) -> int:
    """Return `value` in whole milliseconds; raise DefinitionError if it is not a duration.

    Accepts a non-negative number of milliseconds (int, float or numeric string), Cloudflare's
    "<n> <unit>" ("1.5 hours", "2 weeks", "1 year"), and short forms ("500ms", "30s", "5m",
    "2h", "7d", "2w"). Units are case-insensitive; month is 30 days and year 365.25 days.
    """
    # bool is an int subclass, but `timeout=True` is a mistake, not one millisecond.
    if isinstance(value, bool):
        raise _invalid(value, "a bool")
    if isinstance(value, int):
        if value < 0:
            raise _invalid(value, "negative")
        return value if value <= MAX_DURATION_MS else _bounded(value, value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _invalid(value, "not finite")
        if value < 0:
            raise _invalid(value, "negative")
        return _bounded(value, _round_ms(value))
    if isinstance(value, str):
        return _bounded(value, _parse_text(value))
    raise _invalid(value, "" if value is None else f"a {type(value).__name__}")


def check_sleep(ms: int, what: str) -> int:
    """Return `ms` if Cloudflare allows a sleep that long, else raise DefinitionError."""
    if ms <= MAX_SLEEP_MS:
        return ms
    hint = " (Cloudflare's '1 year' is 365.25 days)" if ms == _UNITS["year"] else ""
    shown = format_ms(ms)
    # Just past the limit, "365 d" would read as if it were within it.
    if _parse_text(shown) != ms:
        shown = f"{ms} ms"
    raise DefinitionError(
        f"{what} of {shown} is longer than Cloudflare's limit of 365 days for a single sleep{hint}"
    )


_DISPLAY_UNITS = ((_DAY, "d"), (_HOUR, "h"), (_MINUTE, "min"), (_SECOND, "s"))


def format_ms(ms: int) -> str:
    """Render milliseconds for people: "250 ms", "1.5 s", "2 min", "7 d".

    Uses the largest unit that fits and at most two decimals; for a non-negative `ms` the
    text is one `parse_duration` accepts, so messages can be pasted back into code.
    """
    size = abs(ms)
    for unit, label in _DISPLAY_UNITS:
        if size >= unit:
            number = f"{ms / unit:.2f}".rstrip("0").rstrip(".")
            return f"{number} {label}"
    return f"{ms} ms"
