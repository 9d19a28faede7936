"""What D1's date and time functions understand and this Python's SQLite may not, for ctx.db.

D1 runs a newer SQLite than 3.40: the 'subsec' modifier (3.42: `datetime('now', 'subsec')`
gives milliseconds, `unixepoch(..., 'subsec')` a REAL), 'ceiling' (3.46, what month arithmetic
does anyway), and strftime's %e %F %I %k %l %p %P %R %T %u %U %G %g %V (3.44). Here each made
the value NULL, so a handler's millisecond timestamps were all NULL in the simulator and not
on Cloudflare. The clock's functions (`_db_clock`) hand a call that uses one of them to
`compute`, when this SQLite lacks it; the rest is SQLite's own arithmetic, on its time value
and other modifiers. Compared with Miniflare's D1 in tests/sdk/d1_functions.json.

Not here: the '±YYYY-MM-DD HH:MM:SS' modifier (3.43) and 'floor' (3.46); both still give NULL.
"""

from __future__ import annotations

import sqlite3
from typing import Any

__all__ = ["NEEDED", "compute", "has_newer_codes", "is_newer_modifier"]


def _answers(sql: str) -> bool:
    conn = sqlite3.connect(":memory:")
    try:
        return conn.execute(sql).fetchone()[0] is not None
    except sqlite3.Error:
        return False
    finally:
        conn.close()


_NATIVE_SUBSEC = _answers("SELECT time('10:00:00.5', 'subsec')")
_NATIVE_CEILING = _answers("SELECT date('2026-01-31', 'ceiling')")
_NATIVE_FORMATS = _answers("SELECT strftime('%F%T%e%I%k%l%p%P%R%u%U%G%g%V', '2026-03-05')")

# Modifiers handled here: dropped from the call (subsec sets how the result is written).
_SUBSEC = () if _NATIVE_SUBSEC else ("subsec", "subsecond")
_DROPPED = _SUBSEC + (() if _NATIVE_CEILING else ("ceiling",))
_NEW_CODES = frozenset() if _NATIVE_FORMATS else frozenset("eFIklpPRTuUGgV")
_NATIVE_CODES = "dfHjJmMsSwWY"
_FIELDS_FORMAT = "\x1f".join("%" + c for c in _NATIVE_CODES)

NEEDED = bool(_DROPPED or _NEW_CODES)


def _word(value: Any) -> str | None:
    if type(value) is str:
        return value.lower()
    if type(value) is bytes:
        return value.decode("utf-8", "replace").lower()
    return None


_DROPPED_SIZES = frozenset(len(w) for w in _DROPPED)


def is_newer_modifier(value: Any) -> bool:
    """Is `value` a modifier `compute` answers ('subsec', 'ceiling'; where SQLite lacks it)?"""
    # Sizes first: most modifiers ('+1 day', 'start of month') are none of these.
    if type(value) is str or type(value) is bytes:
        return len(value) in _DROPPED_SIZES and _word(value) in _DROPPED
    return False


def has_newer_codes(fmt: Any) -> bool:
    """Does a strftime format use a conversion `compute` answers (where SQLite lacks it)?"""
    if not _NEW_CODES or not isinstance(fmt, str | bytes):
        return False
    text = fmt if isinstance(fmt, str) else fmt.decode("utf-8", "replace")
    i = text.find("%")
    while i >= 0:
        if text[i + 1 : i + 2] in _NEW_CODES:
            return True
        i = text.find("%", i + 2)
    return False


def _call(plain: sqlite3.Connection, name: str, args: list[Any]) -> Any:
    sql = f"SELECT {name}({', '.join('?' * len(args))})"
    return plain.execute(sql, args).fetchone()[0]


def compute(
    name: str, args: tuple[Any, ...], first_modifier: int, plain: sqlite3.Connection
) -> Any:
    """The value D1's SQLite gives `name(*args)` (see the module docstring), computed on
    `plain`, a connection with SQLite's own functions."""
    head = list(args[:first_modifier])
    modifiers = [a for a in args[first_modifier:] if _word(a) not in _DROPPED]
    subsec = any(_word(a) in _SUBSEC for a in args[first_modifier:])
    if name == "strftime":
        return _strftime(plain, head[0] if head else None, head[1:], modifiers)
    if subsec and name == "datetime":
        return _call(plain, "strftime", ["%Y-%m-%d %H:%M:%f", *head, *modifiers])
    if subsec and name == "time":
        return _call(plain, "strftime", ["%H:%M:%f", *head, *modifiers])
    if subsec and name == "unixepoch":
        jd = _call(plain, "julianday", [*head, *modifiers])
        # SQLite: the julianday in ms less the Unix epoch's, in seconds with milliseconds.
        return None if jd is None else (round(jd * 86_400_000) - 210_866_760_000_000) / 1000.0
    return _call(plain, name, [*head, *modifiers])


def _strftime(
    plain: sqlite3.Connection, fmt: Any, value: list[Any], modifiers: list[Any]
) -> str | None:
    if fmt is None:
        return None
    if not isinstance(fmt, str):  # a number or a blob: its text, as SQLite reads it
        fmt = plain.execute("SELECT CAST(? AS TEXT)", [fmt]).fetchone()[0]
    if not any(fmt[i + 1 : i + 2] in _NEW_CODES for i in range(len(fmt)) if fmt[i] == "%"):
        return _call(plain, "strftime", [fmt, *value, *modifiers])  # type: ignore[no-any-return]
    found = _call(plain, "strftime", [_FIELDS_FORMAT, *value, *modifiers])
    if found is None:
        return None
    field = dict(zip(_NATIVE_CODES, found.split("\x1f"), strict=True))
    year, day = int(field["Y"]), int(field["d"])
    hour, minute, second = int(field["H"]), int(field["M"]), int(field["S"])
    weekday, yday = int(field["w"]), int(field["j"])
    out: list[str] = []
    i, n = 0, len(fmt)
    while i < n:
        c = fmt[i]
        if c != "%":
            out.append(c)
            i += 1
            continue
        code = fmt[i + 1 : i + 2]
        i += 2
        if code == "%":
            out.append("%")
        elif code in field:
            out.append(field[code])
        elif code == "e":
            out.append(f"{day:2d}")
        elif code == "F":
            out.append(f"{field['Y']}-{field['m']}-{field['d']}")
        elif code in ("I", "l"):
            twelve = hour % 12 or 12
            out.append(f"{twelve:02d}" if code == "I" else f"{twelve:2d}")
        elif code == "k":
            out.append(f"{hour:2d}")
        elif code in ("p", "P"):
            half = "PM" if hour >= 12 else "AM"
            out.append(half if code == "p" else half.lower())
        elif code == "R":
            out.append(f"{hour:02d}:{minute:02d}")
        elif code == "T":
            out.append(f"{hour:02d}:{minute:02d}:{second:02d}")
        elif code == "u":
            out.append(str(weekday or 7))
        elif code == "U":
            out.append(f"{(yday - 1 + 7 - weekday) // 7:02d}")
        elif code in ("G", "g", "V"):
            iso_year, iso_week = _iso_week(year, yday, weekday)
            if code == "V":
                out.append(f"{iso_week:02d}")
            elif code == "G":
                out.append(f"{iso_year:04d}")
            else:
                # C's remainder: the year before 0000 is -1, not 99.
                out.append(f"{abs(iso_year) % 100 * (-1 if iso_year < 0 else 1):02d}")
        else:  # an unknown conversion, or a % at the end: SQLite gives NULL
            return None
    return "".join(out)


def _weeks_in(year: int) -> int:
    """52 or 53: an ISO year has 53 weeks when it starts on a Thursday, or is a leap year
    starting on a Wednesday (the weekday of Dec 31 of it, or of the year before)."""

    def dec31(y: int) -> int:
        return (y + y // 4 - y // 100 + y // 400) % 7

    return 53 if dec31(year) == 4 or dec31(year - 1) == 3 else 52


def _iso_week(year: int, yday: int, weekday: int) -> tuple[int, int]:
    """ISO 8601 (year, week) of the day `yday` (1-based) of `year`, a `weekday` (0 Sunday)."""
    week = (yday - (weekday or 7) + 10) // 7
    if week < 1:
        return year - 1, _weeks_in(year - 1)
    if week > _weeks_in(year):
        return year + 1, 1
    return year, week
