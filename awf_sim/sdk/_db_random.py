"""SQLite's random() and randomblob(N) for ctx.db, drawn from Python's `random`.

SQLite's own draw from a generator the operating system seeds, below any Python patching: a
step that made its ids with `lower(hex(randomblob(16)))` (often a column DEFAULT) gave other
ids on every run with the same seed. Every connection of the simulated D1 gets these two
overridden (a connection's function wins over SQLite's built-in of the same name and arity,
in column DEFAULTs too). Inside a simulation module-level `random` draws from the simulator's
seeded state, so the same seed gives the same values; elsewhere it is as random as SQLite's.
Registered as non-deterministic, as SQLite's are: refused in generated columns and indexes.
"""

from __future__ import annotations

import random
import sqlite3

__all__ = ["install_random"]

_HALF = 1 << 63
_FULL = 1 << 64
# SQLite refuses a string or blob longer than its length limit (SQLITE_MAX_LENGTH, 1e9).
_MAX_BLOB = 1_000_000_000


def _random() -> int:
    """A signed 64-bit integer, as SQLite's random()."""
    n = random.getrandbits(64)
    return n - _FULL if n >= _HALF else n


def _size(n: object) -> int:
    # SQLite reads N as an integer: a REAL truncated, text by its leading number, else 0.
    if isinstance(n, int):
        return n
    if isinstance(n, float):
        return int(n) if abs(n) < _FULL else _MAX_BLOB + 1
    if isinstance(n, str):
        try:
            return int(float(n.strip()))
        except (ValueError, OverflowError):
            return 0
    return 0


def _randomblob(n: object) -> bytes:
    """N random bytes, as SQLite's randomblob(N): at least one."""
    size = _size(n)
    if size > _MAX_BLOB:
        raise sqlite3.DataError("string or blob too big")
    return random.randbytes(max(size, 1))


def install_random(conn: sqlite3.Connection) -> None:
    """Registers random() and randomblob(N) on `conn` (see the module docstring)."""
    conn.create_function("random", 0, _random)
    conn.create_function("randomblob", 1, _randomblob)
