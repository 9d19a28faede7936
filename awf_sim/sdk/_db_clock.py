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

Not reproduced: SQLite refuses 'now' where a value must be deterministic (CHECK constraints,
index expressions, generated columns); an overridden function cannot tell where it runs, so
there it computes 'now' as anywhere else.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any

__all__ = ["Clock", "install_clock"]


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


def _sqlite() -> sqlite3.Connection:
    """This thread's connection without overrides, where SQLite computes every value."""
    conn: sqlite3.Connection | None = getattr(_plain, "conn", None)
    if conn is None:
        conn = _plain.conn = sqlite3.connect(":memory:", isolation_level=None)
    return conn


def _is_now(value: Any) -> bool:
    # SQLite reads a blob's bytes as text, and compares 'now' case-insensitively, untrimmed.
    if type(value) is str:
        return len(value) == 3 and value.lower() == "now"
    if type(value) is bytes:
        return len(value) == 3 and value.lower() == b"now"
    return False


def _stamp(ms: int) -> str:
    """'YYYY-MM-DD HH:MM:SS.SSS' (UTC) for epoch milliseconds: a time value SQLite reads back
    to the millisecond, as text like 'now' (so `'unixepoch'` and `'auto'` treat it as text)."""
    seconds, millis = divmod(ms, 1000)
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}"


class Clock:
    """'now' for one connection: read once per statement (see the module docstring)."""

    __slots__ = ("now",)

    def __init__(self) -> None:
        self.now: str | None = None

    def reset(self) -> None:
        self.now = None

    def read(self) -> str:
        now = self.now
        if now is None:
            now = self.now = _stamp(time.time_ns() // 1_000_000)
        return now


def _function(name: str, clock: Clock) -> Callable[..., Any]:
    positions = _TIME_VALUES.get(name, (0,))
    calls: dict[int, str] = {}

    def call(*args: Any) -> Any:
        if not args:  # date() is date('now')
            args = (clock.read(),)
        elif any(i < len(args) and _is_now(args[i]) for i in positions):
            args = tuple(
                clock.read() if i in positions and _is_now(a) else a for i, a in enumerate(args)
            )
        sql = calls.get(len(args))
        if sql is None:
            sql = calls[len(args)] = f"SELECT {name}({', '.join('?' * len(args))})"
        return _sqlite().execute(sql, args).fetchone()[0]

    return call


def _keyword(name: str, clock: Clock) -> Callable[[], Any]:
    sql = f"SELECT {name}(?)"

    def call() -> Any:
        return _sqlite().execute(sql, (clock.read(),)).fetchone()[0]

    return call


def install_clock(conn: sqlite3.Connection) -> Clock:
    """Overrides `conn`'s date and time functions (see the module docstring); the Clock to
    reset before each statement."""
    clock = Clock()
    for name, narg in _BUILTINS.items():
        target = _KEYWORDS.get(name)
        if target is not None:
            # Non-deterministic, as SQLite's keywords are (refused in CHECK and indexes).
            conn.create_function(name, narg, _keyword(target, clock))
        else:
            # Deterministic as SQLite's are (usable in indexes; constant arguments, such as
            # 'now', computed once per statement).
            conn.create_function(name, narg, _function(name, clock), deterministic=True)
    return clock
