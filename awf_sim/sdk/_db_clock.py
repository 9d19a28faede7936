"""SQLite's date and time functions, reading 'now' from the clock a handler sees.

SQLite's own 'now' (`datetime('now')`, `DEFAULT CURRENT_TIMESTAMP`, `strftime('%s','now')`,
`unixepoch()`, CURRENT_DATE...) reads the process's real clock, below any Python patching:
inside a simulation it gave today's date where the handler's `datetime.now()` gave the virtual
one, so runs were not reproducible and chaos compared rows that differed only by when they ran.
Every connection of the simulated D1 gets these functions overridden (a connection's own
function wins over SQLite's built-in of the same name and arity, for the keywords too, and in
column DEFAULTs). A time value 'now' (any case, as SQLite accepts it) becomes the instant
`time.time_ns()` gives, to the millisecond as SQLite's own 'now' has it; every argument,
including the 'now' stand-in, is then computed by SQLite itself, on a private connection
without overrides, so nothing else changes.

`time.time_ns()` is the virtual wall clock inside a simulation (on its thread and in its
context), what freezegun says under `freeze_time`, and the real clock otherwise: outside a
simulation ctx.db's 'now' is plain SQLite's. 'now' stays the same within one statement, as in
SQLite: the first read is kept until the handle runs its next statement (`Clock.reset`).

What D1's newer SQLite understands and this one may not ('subsec', strftime's %F and
others) is computed by `_db_dates` instead.

A Worker runs in UTC: on Cloudflare the 'localtime' and 'utc' modifiers change nothing, so
here they change nothing either, whatever the machine's time zone (SQLite's own read TZ).

Where a value must be deterministic (CHECK constraints, generated columns, index expressions
and partial-index WHERE clauses) SQLite, and so D1, refuses 'now', `date()` without a time
value, and the 'localtime' and 'utc' modifiers: "non-deterministic use of datetime() in a
CHECK constraint", when such a row is written (an index: when it is built). An overridden
function cannot see where it runs, so on such an input it asks SQLite: `EXPLAIN` of the
statement running shows each call made where a value must be deterministic as a PureFunc
opcode, whose p5 says which place. A statement whose own expressions call the same function
is told apart by the literal arguments of those PureFunc calls; a trigger's statements (a
subprogram EXPLAIN does not show) are not checked.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any, NoReturn

from awf_sim.sdk import _db_dates as _dates

__all__ = ["Clock", "install_clock", "is_now", "plain_sqlite"]


def _builtins() -> dict[str, int]:
    conn = sqlite3.connect(":memory:")
    try:
        return dict(
            conn.execute(
                "SELECT name, narg FROM pragma_function_list WHERE builtin AND name IN "
                "('date', 'time', 'datetime', 'julianday', 'unixepoch', 'strftime', "
                "'timediff', 'current_timestamp', 'current_date', 'current_time')"
            ).fetchall()
        )
    except sqlite3.Error:  # no pragma_function_list in this build: the long-standing ones
        return {"date": -1, "time": -1, "datetime": -1, "julianday": -1, "strftime": -1}
    finally:
        conn.close()


# The functions this SQLite has (an older one lacks unixepoch, a newer one adds timediff), and
# the positions of their time values: strftime's follows its format, timediff has two.
_TIME_VALUES = {"strftime": (1,), "timediff": (0, 1)}
_KEYWORDS = {"current_timestamp": "datetime", "current_date": "date", "current_time": "time"}
_BUILTINS = _builtins()

_plain = threading.local()


def _forget_in_child() -> None:
    # A forked child (an isolated attempt, a chaos worker) opens its own: SQLite connections
    # are not to be used across a fork.
    global _plain
    _plain = threading.local()


os.register_at_fork(after_in_child=_forget_in_child)


def plain_sqlite() -> sqlite3.Connection:
    """This thread's connection without overrides, where SQLite computes every value."""
    conn: sqlite3.Connection | None = getattr(_plain, "conn", None)
    if conn is None:
        conn = _plain.conn = sqlite3.connect(":memory:", isolation_level=None)
    return conn


def is_now(value: Any) -> bool:
    # SQLite reads a blob's bytes as text, and compares 'now' case-insensitively, untrimmed.
    if type(value) is str:
        return len(value) == 3 and value.lower() == "now"
    if type(value) is bytes:
        return len(value) == 3 and value.lower() == b"now"
    return False


def _is_zone(value: Any) -> bool:
    # SQLite compares modifiers case-insensitively, untrimmed.
    if type(value) is str:
        return len(value) in (3, 9) and value.lower() in ("utc", "localtime")
    if type(value) is bytes:
        return len(value) in (3, 9) and value.lower() in (b"utc", b"localtime")
    return False


# What 'localtime' and 'utc' are in UTC: no shift. SQLite still normalises the value at that
# point for either ('2026-02-30' becomes March 2nd), which '+0 seconds' does too.
_UTC_IS_LOCAL = "+0 seconds"


def _stamp(ms: int) -> str:
    """'YYYY-MM-DD HH:MM:SS.SSS' (UTC) for epoch milliseconds: a time value SQLite reads back
    to the millisecond, as text like 'now' (so `'unixepoch'` and `'auto'` treat it as text)."""
    seconds, millis = divmod(ms, 1000)
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}"


class _Refused(Exception):
    """Aborts the statement; its message is kept by the Clock (sqlite3 reports only that a
    function raised)."""


# Where the PureFunc opcode's p5 says the call is (SQLite's NC_IsCheck, NC_GenCol; the rest
# are index expressions and partial-index WHERE clauses), in SQLite's own words.
_CHECK, _GENERATED = 0x04, 0x08
_NON_PURE_LITERALS = frozenset({"now", "localtime", "utc"})
_EXPLAINED_MAX = 256


def _where(p5: int) -> str:
    if p5 & _CHECK:
        return "a CHECK constraint"
    if p5 & _GENERATED:
        return "a generated column"
    return "an index"


class Clock:
    """'now' for one connection: read once per statement (see the module docstring). The
    handle sets `sql` and `params` to the statement it runs (what `refuse_if_pure` explains)
    and calls `schema_changed` after DDL."""

    __slots__ = ("_explained", "conn", "now", "params", "refused", "sql")

    def __init__(self, conn: sqlite3.Connection | None = None) -> None:
        self.now: str | None = None
        self.conn = conn
        self.sql = ""
        self.params: Any = ()
        self.refused: str | None = None
        self._explained: dict[str, dict[str, str | None]] = {}

    def reset(self) -> None:
        self.now = None

    def read(self) -> str:
        now = self.now
        if now is None:
            now = self.now = _stamp(time.time_ns() // 1_000_000)
        return now

    def schema_changed(self) -> None:
        self._explained.clear()

    def take_refused(self) -> str | None:
        why, self.refused = self.refused, None
        return why

    def fail(self, message: str) -> NoReturn:
        """Fails the running statement with `message` (what DatabaseError will say)."""
        self.refused = message
        raise _Refused(message)

    def refuse_if_pure(self, name: str) -> None:
        """Raises (keeping SQLite's message) when the running statement calls `name` where a
        value must be deterministic, and it is that call that got 'now', 'localtime' or
        'utc'."""
        sql = self.sql
        verdicts = self._explained.get(sql)
        if verdicts is None:
            if len(self._explained) >= _EXPLAINED_MAX:  # SQL with its values written in
                self._explained.clear()
            verdicts = self._explained[sql] = self._explain()
        where = verdicts.get(name)
        if where is not None:
            self.fail(
                f"non-deterministic use of {name}() in {where} (D1 refuses 'now', "
                "'localtime' and 'utc' there: pass the time in as a parameter)"
            )

    def _explain(self) -> dict[str, str | None]:
        """For each date and time function the statement calls where a value must be
        deterministic: where (SQLite's words) if such a call may get 'now', else None."""
        conn = self.conn
        if conn is None:
            return {}
        try:
            program = conn.execute("EXPLAIN " + self.sql, self.params).fetchall()
        except (sqlite3.Error, ValueError, TypeError):
            return {}  # cannot be compiled again here: left unchecked
        literals: dict[int, set[str]] = {}
        for _addr, opcode, _p1, p2, _p3, p4, _p5, *_ in program:
            if opcode == "String8" and isinstance(p4, str) and p4.lower() in _NON_PURE_LITERALS:
                literals.setdefault(p2, set()).add(p4.lower())
        plain: set[str] = set()
        pure: dict[str, list[tuple[str, bool]]] = {}
        for _addr, opcode, p1, p2, _p3, p4, p5, *_ in program:
            if opcode not in ("Function", "PureFunc") or not isinstance(p4, str):
                continue
            name, _, narg = p4.partition("(")
            name = name.lower()
            if opcode == "Function":
                plain.add(name)
                continue
            # A call whose own arguments are 'now'/'localtime'/'utc' literals (p1: which
            # arguments are constant, from register p2 on), or that has none (date()).
            implicit_now = narg == ("1)" if name == "strftime" else "0)")
            literal = implicit_now or any(p1 >> i & 1 and (p2 + i) in literals for i in range(32))
            pure.setdefault(name, []).append((_where(p5), literal))
        verdicts: dict[str, str | None] = {}
        for name, calls in pure.items():
            sure = [where for where, literal in calls if literal]
            if sure:
                verdicts[name] = sure[0]
            elif name not in plain:  # only these calls can have got it (from a column)
                verdicts[name] = calls[0][0]
        return verdicts


def _function(name: str, clock: Clock) -> Callable[..., Any]:
    positions = _TIME_VALUES.get(name, (0,))
    # Without its time value a call means 'now': date(), strftime('%s').
    implicit_now = positions[0]
    # Modifiers follow the time value (strftime: its format and time value); timediff has
    # none.
    modifiers = len(positions) + (name == "strftime") if name != "timediff" else 1_000
    # What D1's newer SQLite understands and this one may not (_db_dates).
    newer_modifiers = _dates.NEEDED
    newer_codes = _dates.NEEDED and name == "strftime"
    calls: dict[int, str] = {}

    def call(*args: Any) -> Any:
        if not args and implicit_now:  # strftime(): NULL on D1
            return None
        newer = newer_codes and _dates.has_newer_codes(args[0])
        if len(args) == implicit_now:
            clock.refuse_if_pure(name)
            args = (*args, clock.read())
        else:
            changed: list[Any] | None = None
            for i, a in enumerate(args):
                if i in positions:
                    if is_now(a):
                        if changed is None:
                            changed = list(args)
                        changed[i] = clock.read()
                elif i >= modifiers:
                    if _is_zone(a):
                        if changed is None:
                            changed = list(args)
                        changed[i] = _UTC_IS_LOCAL
                    elif newer_modifiers and _dates.is_newer_modifier(a):
                        newer = True
            if changed is not None:
                clock.refuse_if_pure(name)
                args = tuple(changed)
        if newer:
            return _dates.compute(name, args, modifiers, plain_sqlite())
        sql = calls.get(len(args))
        if sql is None:
            sql = calls[len(args)] = f"SELECT {name}({', '.join('?' * len(args))})"
        return plain_sqlite().execute(sql, args).fetchone()[0]

    return call


def _keyword(name: str, clock: Clock) -> Callable[[], Any]:
    sql = f"SELECT {name}(?)"

    def call() -> Any:
        return plain_sqlite().execute(sql, (clock.read(),)).fetchone()[0]

    return call


def install_clock(conn: sqlite3.Connection) -> Clock:
    """Overrides `conn`'s date and time functions (see the module docstring); the Clock to
    reset before each statement."""
    clock = Clock(conn)
    for name, narg in _BUILTINS.items():
        target = _KEYWORDS.get(name)
        if target is not None:
            # Non-deterministic, as SQLite's keywords are (refused in generated columns and
            # indexes when declared, allowed in CHECK constraints).
            conn.create_function(name, narg, _keyword(target, clock))
        else:
            # Deterministic as SQLite's are (usable in indexes; constant arguments, such as
            # 'now', computed once per statement). Without a time value registered apart,
            # so that EXPLAIN shows `date()` as date(0), `strftime('%s')` as strftime(1).
            function = _function(name, clock)
            conn.create_function(name, narg, function, deterministic=True)
            if name != "timediff":
                implicit_now = _TIME_VALUES.get(name, (0,))[0]
                conn.create_function(name, implicit_now, function, deterministic=True)
    return clock
