"""SQL functions D1 has that this Python's SQLite may lack, for ctx.db.

D1 runs a newer SQLite than many a Python ships with (3.40 here): `concat`, `concat_ws`,
`string_agg` (3.44), `timediff`, `octet_length` (3.43) and `unhex` (3.41) ran on Cloudflare and
failed in the simulator with "no such function". Each is registered on ctx.db's connections
only where the local SQLite lacks it; values are turned into text by SQLite itself (a REAL as
SQLite prints it), and date arithmetic is SQLite's own `julianday`. Each was compared with
Miniflare's D1 on the inputs in tests/sdk/d1_functions.json, NULLs and edge cases included.

Not here: the JSONB functions (jsonb(), jsonb_*: D1 answers with SQLite's binary JSON) and the
`ORDER BY` inside an aggregate's parentheses (syntax, which no function can add).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

from awf_sim.sdk._db_clock import Clock, is_now, plain_sqlite

__all__ = ["MISSING", "install_functions"]

_OURS = ("concat", "concat_ws", "octet_length", "string_agg", "timediff", "unhex")


def _missing() -> frozenset[str]:
    conn = sqlite3.connect(":memory:")
    try:
        have = {
            name for (name,) in conn.execute("SELECT name FROM pragma_function_list WHERE builtin")
        }
    except sqlite3.Error:  # no pragma_function_list: an old SQLite, which has none of them
        have = set()
    finally:
        conn.close()
    return frozenset(name for name in _OURS if name not in have)


MISSING = _missing()

_TEXT_SQL: dict[int, str] = {}


def _joined(values: list[Any]) -> str:
    """The values as SQLite concatenates them (`||`): numbers and blobs as SQLite's text."""
    sql = _TEXT_SQL.get(len(values))
    if sql is None:
        sql = _TEXT_SQL[len(values)] = "SELECT ''" + "||?" * len(values)
    text: str = plain_sqlite().execute(sql, values).fetchone()[0]
    return text


def _text(value: Any) -> str:
    if type(value) is str:
        return value
    if type(value) is int:
        return str(value)
    return _joined([value])


def _concat(clock: Clock) -> Callable[..., str]:
    def concat(*args: Any) -> str:
        if not args:
            clock.fail("wrong number of arguments to function concat()")
        return _joined([a for a in args if a is not None])

    return concat


def _concat_ws(clock: Clock) -> Callable[..., str | None]:
    def concat_ws(*args: Any) -> str | None:
        if len(args) < 2:
            clock.fail("wrong number of arguments to function concat_ws()")
        separator, values = args[0], [a for a in args[1:] if a is not None]
        if separator is None:
            return None
        parts: list[Any] = []
        for value in values:
            if parts:
                parts.append(separator)
            parts.append(value)
        return _joined(parts)

    return concat_ws


def _octet_length(value: Any) -> int | None:
    if value is None:
        return None
    if type(value) is bytes:
        return len(value)
    return len(_text(value).encode("utf-8"))


_HEX = frozenset("0123456789abcdefABCDEF")


def _unhex(value: Any, separators: Any = "") -> bytes | None:
    """The bytes of the hex digits in `value`, pairs of which may be preceded by characters
    of `separators`; None for anything else (an odd digit, another character)."""
    if value is None or separators is None:
        return None
    # SQLite reads the text up to its first NUL.
    digits = _text(value).split("\0", 1)[0]
    allowed = set(_text(separators))
    out = bytearray()
    i, n = 0, len(digits)
    while i < n:
        c = digits[i]
        if c not in _HEX:
            if c not in allowed:
                return None
            i += 1
            continue
        if i + 1 >= n or digits[i + 1] not in _HEX:
            return None
        out.append(int(digits[i : i + 2], 16))
        i += 2
    return bytes(out)


class _StringAgg:
    """string_agg(X, SEP): the non-NULL X as text, each after the first preceded by its own
    row's SEP (none when NULL); NULL when there is none."""

    def __init__(self) -> None:
        self.parts: list[Any] | None = None

    def step(self, value: Any, separator: Any) -> None:
        if value is None:
            return
        if self.parts is None:
            self.parts = [value]
            return
        if separator is not None:
            self.parts.append(separator)
        self.parts.append(value)

    def finalize(self) -> str | None:
        return None if self.parts is None else _joined(self.parts)


# -- timediff --------------------------------------------------------------------------------

_MS_PER_DAY = 86_400_000


def _cdiv(a: float, b: float) -> int:
    """Division truncated towards zero, as C's integer division and casts do."""
    return int(a / b) if isinstance(a, float) or isinstance(b, float) else _idiv(a, b)


def _idiv(a: int, b: int) -> int:
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def _ymd(jd_ms: int) -> list[int]:
    """[year, month, day] of a julian day in ms: the Gregorian calendar conversion of Meeus's
    Astronomical Algorithms (ch. 7) in SQLite's integer arithmetic, years before 1 included."""
    z = _idiv(jd_ms + _MS_PER_DAY // 2, _MS_PER_DAY)
    alpha = _cdiv(z - 1867216.25, 36524.25)
    a = z + 1 + alpha - _idiv(alpha, 4)
    b = a + 1524
    c = _cdiv(b - 122.1, 365.25)
    d = _idiv(36525 * (c & 32767), 100)
    e = _cdiv(b - d, 30.6001)
    day = b - d - int(30.6001 * e)
    month = e - 1 if e < 14 else e - 13
    return [c - 4716 if month > 2 else c - 4715, month, day]


def _jd_ms(ymd: list[int], ms_of_day: int) -> int:
    """The julian day in ms of a date whose day may run past its month's end (the days
    after it), as SQLite computes it: Meeus's formula, truncated as C truncates."""
    year, month, day = ymd
    if month <= 2:
        year -= 1
        month += 12
    a = _idiv(year, 100)
    b = 2 - a + _idiv(a, 4)
    x1 = _idiv(36525 * (year + 4716), 100)
    x2 = _idiv(306001 * (month + 1), 10000)
    return int((x1 + x2 + day + b - 1524.5) * _MS_PER_DAY) + ms_of_day


def _julian_ms(value: Any) -> int | None:
    """A time value as SQLite reads it, in ms of julian day; None when it is not one."""
    jd = plain_sqlite().execute("SELECT julianday(?)", (value,)).fetchone()[0]
    return None if jd is None else round(jd * _MS_PER_DAY)


def _timediff(clock: Clock) -> Callable[[Any, Any], str | None]:
    def timediff(a: Any, b: Any) -> str | None:
        if is_now(a) or is_now(b):
            clock.refuse_if_pure("timediff")
            a = clock.read() if is_now(a) else a
            b = clock.read() if is_now(b) else b
        jd1, jd2 = _julian_ms(a), _julian_ms(b)
        if jd1 is None or jd2 is None:
            return None
        ymd1, ymd2 = _ymd(jd1), _ymd(jd2)
        time2 = (jd2 + _MS_PER_DAY // 2) % _MS_PER_DAY
        # Whole years and months are counted from the later value back towards the earlier
        # (B moved to A's year and month, then a month at a time until it is on A's side),
        # the rest is a time of day plus days.
        later = jd1 >= jd2
        years = (ymd1[0] - ymd2[0]) if later else (ymd2[0] - ymd1[0])
        if years:
            ymd2[0] = ymd1[0]
            jd2 = _jd_ms(ymd2, time2)
        months = (ymd1[1] - ymd2[1]) if later else (ymd2[1] - ymd1[1])
        if months < 0:
            years -= 1
            months += 12
        if months:
            ymd2[1] = ymd1[1]
            jd2 = _jd_ms(ymd2, time2)
        while (jd1 < jd2) if later else (jd1 > jd2):
            months -= 1
            if months < 0:
                months = 11
                years -= 1
            step = -1 if later else 1
            ymd2[1] += step
            if ymd2[1] < 1:
                ymd2[1], ymd2[0] = 12, ymd2[0] - 1
            elif ymd2[1] > 12:
                ymd2[1], ymd2[0] = 1, ymd2[0] + 1
            jd2 = _jd_ms(ymd2, time2)
        rest = jd1 - jd2 if later else jd2 - jd1
        days, ms = divmod(rest, _MS_PER_DAY)
        hours, ms = divmod(ms, 3_600_000)
        minutes, ms = divmod(ms, 60_000)
        return (
            f"{'+' if later else '-'}{years:04d}-{months:02d}-{days:02d} "
            f"{hours:02d}:{minutes:02d}:{ms / 1000:06.3f}"
        )

    return timediff


def install_functions(conn: sqlite3.Connection, clock: Clock) -> None:
    """Registers on `conn` those of D1's functions this SQLite lacks (`MISSING`)."""
    if "concat" in MISSING:
        conn.create_function("concat", -1, _concat(clock), deterministic=True)
    if "concat_ws" in MISSING:
        conn.create_function("concat_ws", -1, _concat_ws(clock), deterministic=True)
    if "octet_length" in MISSING:
        conn.create_function("octet_length", 1, _octet_length, deterministic=True)
    if "unhex" in MISSING:
        conn.create_function("unhex", 1, _unhex, deterministic=True)
        conn.create_function("unhex", 2, _unhex, deterministic=True)
    if "string_agg" in MISSING:
        # typeshed's protocol has a one-argument step returning an int.
        conn.create_aggregate("string_agg", 2, _StringAgg)  # type: ignore[arg-type]
    if "timediff" in MISSING:
        conn.create_function("timediff", 2, _timediff(clock), deterministic=True)
