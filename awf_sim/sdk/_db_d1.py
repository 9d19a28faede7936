"""What D1 does not authorize, as Miniflare's D1 (miniflare 4.20260426.0) answered it.

SQLite runs these; D1 answers each with `D1_ERROR: not authorized: SQLITE_AUTH` (a function:
`not authorized to use function: NAME`). Run here, a handler would pass in the simulator and
fail on Cloudflare. The answers are recorded in tests/sdk/d1_authorizer.json, which
tests/sdk/test_db_d1.py checks the simulator against (and, with Miniflare installed, replays
on Miniflare), so a rule here is never a guess.

D1's authorizer compares pragma names as written: `PRAGMA table_info(t)` runs, and
`PRAGMA TABLE_INFO(t)` is refused, so the names below are matched case-sensitively too.
"""

from __future__ import annotations

import sqlite3

__all__ = ["d1_refusal"]

# Pragmas D1 runs bare or with a value.
_PRAGMAS = frozenset(
    {
        "case_sensitive_like",
        "defer_foreign_keys",
        "foreign_key_check",
        "foreign_keys",
        "ignore_check_constraints",
        "legacy_alter_table",
        "optimize",
        "quick_check",
        "recursive_triggers",
        "reverse_unordered_selects",
        "table_list",
    }
)
# Pragmas D1 runs only given the table or index they describe (bare, it refuses them).
_PRAGMAS_OF_AN_OBJECT = frozenset(
    {"foreign_key_list", "index_info", "index_list", "index_xinfo", "table_info", "table_xinfo"}
)
# Pragmas D1 reads but refuses to set.
_PRAGMAS_READ_ONLY = frozenset({"data_version"})

# Functions D1 does not authorize: they describe the SQLite build, not the data (and fts5(),
# FTS5's own, which its virtual tables do not need).
_FUNCTIONS = frozenset(
    {
        "fts5",
        "load_extension",
        "sqlite_compileoption_get",
        "sqlite_compileoption_used",
        "sqlite_log",
        "sqlite_source_id",
        "sqlite_version",
    }
)

# Functions Python's SQLite has and D1's build lacks.
_MISSING_FUNCTIONS = frozenset({"soundex"})

_TEMP_CREATES = {
    sqlite3.SQLITE_CREATE_TEMP_TABLE: "TABLE",
    sqlite3.SQLITE_CREATE_TEMP_INDEX: "INDEX",
    sqlite3.SQLITE_CREATE_TEMP_VIEW: "VIEW",
    sqlite3.SQLITE_CREATE_TEMP_TRIGGER: "TRIGGER",
}
_CREATES = {
    sqlite3.SQLITE_CREATE_TABLE: "TABLE",
    sqlite3.SQLITE_CREATE_INDEX: "INDEX",
    sqlite3.SQLITE_CREATE_VIEW: "VIEW",
    sqlite3.SQLITE_CREATE_TRIGGER: "TRIGGER",
}

_ALLOWED = (
    "D1 allows PRAGMA table_list, table_info(T), table_xinfo(T), index_list(T), index_info(I), "
    "index_xinfo(I), foreign_key_list(T), foreign_key_check, foreign_keys, defer_foreign_keys, "
    "quick_check, optimize, data_version, case_sensitive_like, ignore_check_constraints, "
    "legacy_alter_table, recursive_triggers and reverse_unordered_selects, names in lower case"
)


def d1_refusal(action: int, arg1: str | None, arg2: str | None, db: str | None) -> str | None:
    """Why D1 refuses what the SQLite authorizer is asked (`action`, its arguments), else
    None. Only for actions that are not reads or writes of rows (the caller's fast path)."""
    if action == sqlite3.SQLITE_PRAGMA:
        return _pragma_refusal(arg1 or "", arg2, db)
    if action == sqlite3.SQLITE_FUNCTION:
        name = (arg2 or "").lower()
        if name in _FUNCTIONS:
            return (
                f"{name}() is refused: D1 does not authorize it (not authorized to use "
                f"function: {name}); leave it out"
            )
        if name in _MISSING_FUNCTIONS:
            return f"{name}() is refused: D1's SQLite has no such function: {name}; leave it out"
        return None
    kind = _TEMP_CREATES.get(action)
    if kind is None and db == "temp":
        kind = _CREATES.get(action)
    if kind is not None:
        return (
            f"CREATE TEMP {kind} is refused: D1 does not authorize the temp schema (not "
            f"authorized: SQLITE_AUTH); create a regular {kind.lower()}, and drop it when done"
        )
    return None


def _pragma_refusal(name: str, value: str | None, db: str | None) -> str | None:
    if db == "temp":
        where = f"PRAGMA temp.{name}"
    elif name in _PRAGMAS:
        return None
    elif name in _PRAGMAS_OF_AN_OBJECT:
        if value is not None:
            return None
        where = f"PRAGMA {name} without a table or index"
    elif name in _PRAGMAS_READ_ONLY:
        if value is None:
            return None
        where = f"PRAGMA {name} = ..."
    else:
        where = f"PRAGMA {name}"
    return f"{where} is refused: D1 does not authorize it (not authorized: SQLITE_AUTH); {_ALLOWED}"
