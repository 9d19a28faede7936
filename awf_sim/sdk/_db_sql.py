"""SQL helpers of the simulated database: identifiers, what kind a statement is (and what D1
refuses), several statements in one call, value encoding, seed rows and tables made from them,
the triggers that record every row-level write, row ordering for digests, and the
connections: a session's authorizer and the pool that reuses closed handles' connections.

Apart from `_db` (sessions, handles, transactions, the Database spec) so that each stays a
readable size; only `_db` imports this module.
"""

from __future__ import annotations

import json
import math
import re
import sqlite3
import weakref
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from typing import Any, Protocol

from awf_sim.dsl._identity import MAX_SAFE_INTEGER
from awf_sim.errors import DatabaseError
from awf_sim.sdk._db_clock import Clock, install_clock
from awf_sim.sdk._db_d1 import d1_refusal
from awf_sim.sdk._db_functions import install_functions
from awf_sim.sdk._db_random import install_random
from awf_sim.sdk._effects import current_step

Params = Sequence[Any] | Mapping[str, Any]

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
# A statement's first word; leading comments are skipped so that a commented migration is
# still seen as DDL.
_LEAD = r"\s*(?:(?:--[^\n]*(?:\n|\Z)|/\*.*?\*/)\s*)*"
_FIRST_WORD = re.compile(_LEAD + "([A-Za-z]+)", re.DOTALL)
_BLANK = re.compile(_LEAD + r";*\s*\Z", re.DOTALL)
_DDL_WORDS = frozenset({"CREATE", "ALTER", "DROP"})
# Statements D1 answers with an error (checked on Miniflare's D1): running them here would
# let a handler pass in the simulator and fail on Cloudflare.
_TRANSACTION_WORDS = frozenset({"BEGIN", "COMMIT", "END", "ROLLBACK", "SAVEPOINT", "RELEASE"})
DDL = "ddl"
NO_STATEMENT = "no SQL statement: the SQL is empty or only comments (D1 fails it)"
_PRIVATE_PREFIXES = ("_awf_", "sqlite_")
_TRIGGER_PREFIX = "_awf_w_"
# SQLITE_MAX_FUNCTION_ARG defaults to 127: json_object() takes at most 63 key/value pairs.
_JSON_PAIRS_PER_CALL = 63
_SQL_IN_MESSAGE_MAX = 300
# RETURNING arrived in SQLite 3.35; older builds fall back to lastrowid + SELECT.
_HAS_RETURNING = sqlite3.sqlite_version_info >= (3, 35, 0)
_PLAIN_TYPES = frozenset({int, str, float, bytes, type(None)})
_JSON_TYPES = (dict, list, tuple)

_WRITES_DDL = (
    "CREATE TABLE IF NOT EXISTS _awf_writes ("
    "seq INTEGER PRIMARY KEY, tbl TEXT NOT NULL, op TEXT NOT NULL, row TEXT NOT NULL, step TEXT)"
)


def _short_sql(sql: str) -> str:
    flat = " ".join(sql.split())
    if len(flat) > _SQL_IN_MESSAGE_MAX:
        return flat[: _SQL_IN_MESSAGE_MAX - 1] + "…"
    return flat


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _check_identifier(kind: str, name: Any, step: str | None = None) -> str:
    if not isinstance(name, str) or not _IDENTIFIER.match(name):
        raise DatabaseError(
            f"invalid {kind} {name!r}: names must match ^[A-Za-z_][A-Za-z0-9_]*$ "
            "(letters, digits and _, not starting with a digit)",
            step=step,
        )
    return name


@lru_cache(maxsize=2048)
def _statement_kind(sql: str) -> str | None:
    """None for an ordinary statement, `DDL` for one that changes the schema, else why D1
    refuses it (a one-line error with the fix)."""
    match = _FIRST_WORD.match(sql)
    if match is None and _BLANK.match(sql):
        return NO_STATEMENT
    word = match.group(1).upper() if match else ""
    if word in _DDL_WORDS:
        return DDL
    if word in _TRANSACTION_WORDS:
        return (
            f"{word} is refused: D1 runs no transaction statements (BEGIN, COMMIT, ROLLBACK, "
            "SAVEPOINT, RELEASE) and fails them; use `async with ctx.db.transaction() as tx:` "
            "for statements that must commit or roll back together"
        )
    if word in ("ATTACH", "DETACH"):
        return f"{word} is refused: D1 is one database and does not authorize {word}"
    if word == "VACUUM":
        return "VACUUM is refused: D1 fails it (it manages its storage itself); leave it out"
    return None


_ONE_AT_A_TIME = "You can only execute one statement at a time"


class _Outcome(Protocol):
    """What running a statement gives: a sqlite3 cursor, or `_Several`."""

    @property
    def rowcount(self) -> int: ...
    @property
    def description(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...
    def fetchone(self) -> Any: ...


def _split_statements(sql: str) -> list[str]:
    """The statements of `sql`, each with its `;` (SQLite's own notion of where one ends:
    strings, comments and trigger bodies included); blank or comment-only tails dropped."""
    statements: list[str] = []
    buffer = ""
    for piece in sql.split(";"):
        buffer += piece + ";"
        if sqlite3.complete_statement(buffer):
            statements.append(buffer)
            buffer = ""
    if buffer.strip(" \t\r\n;"):
        statements.append(buffer[:-1])
    return [s for s in statements if _statement_kind(s) != NO_STATEMENT] or [sql]


class _Several:
    """The outcome of several statements run as one call: the last one's rows, and the
    changes of all of them (D1's `meta.changes`)."""

    __slots__ = ("_last", "rowcount")

    def __init__(self, last: _Outcome, rowcount: int) -> None:
        self._last = last
        self.rowcount = rowcount

    @property
    def description(self) -> Any:
        return self._last.description

    def fetchall(self) -> list[Any]:
        return self._last.fetchall()

    def fetchone(self) -> Any:
        return self._last.fetchone()


def _seed(conn: sqlite3.Connection, rows: Mapping[str, Sequence[Mapping[str, Any]]]) -> None:
    for table, table_rows in rows.items():
        _check_identifier("table name", table)
        for row in table_rows:
            if not isinstance(row, Mapping):
                raise DatabaseError(
                    f"rows of table {table!r} must be dicts (column -> value), "
                    f"got {type(row).__name__}"
                )
            keys = [_check_identifier("column name", key) for key in row]
            sql = _insert_sql(table, keys, returning=False)
            try:
                conn.execute(sql, _encode_row(row.values()))
            except (sqlite3.Error, OverflowError, TypeError, ValueError) as exc:
                raise DatabaseError(str(exc), sql) from exc


def _encode(value: Any) -> Any:
    """A Python value as SQLite stores it: bool as 0/1, dict/list as JSON text."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, _JSON_TYPES):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return value


def _encode_row(values: Iterable[Any]) -> list[Any]:
    return [v if type(v) in _PLAIN_TYPES else _encode(v) for v in values]


_INFINITIES = (math.inf, -math.inf)


def _js_numbers(row: dict[str, Any]) -> dict[str, Any]:
    """A row as D1 hands it to a Python Worker: D1 answers in JavaScript numbers, which carry no
    int/float distinction, and Pyodide makes a whole one an `int` (a REAL 420.0 reads as 420)
    when it is a safe integer, else a float: an INTEGER past 2**53 arrives rounded (Miniflare's
    D1 reads 9007199254740993 as 9007199254740992), so an exact 64-bit id here would hide a bug
    there. D1 answers in JSON, where an infinite REAL is null."""
    for key, value in row.items():
        kind = type(value)
        if kind is float:
            if value.is_integer():
                if -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
                    row[key] = int(value)
            elif value in _INFINITIES:
                row[key] = None
        elif kind is int and not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            row[key] = float(value)
    return row


def _needs_encoding(params: Any) -> bool:
    if isinstance(params, Mapping):
        return any(isinstance(v, _JSON_TYPES) for v in params.values())
    if isinstance(params, (list, tuple)):
        return any(isinstance(v, _JSON_TYPES) for v in params)
    return False


def _encode_params(params: Params) -> Params:
    if isinstance(params, Mapping):
        return {k: _encode(v) for k, v in params.items()}
    return _encode_row(params)


def _sql_type(values: Iterable[Any]) -> str:
    """The column type for mock data: one SQLite type when the values agree, none otherwise."""
    kinds: set[str] = set()
    for value in values:
        if value is None:
            continue
        if isinstance(value, int):  # bool included: stored as 0/1
            kinds.add("INTEGER")
        elif isinstance(value, float):
            kinds.add("REAL")
        elif isinstance(value, (str, *_JSON_TYPES)):
            kinds.add("TEXT")
        elif isinstance(value, (bytes, bytearray, memoryview)):
            kinds.add("BLOB")
        else:
            return ""
    if kinds == {"INTEGER", "REAL"}:
        return "REAL"
    return kinds.pop() if len(kinds) == 1 else ""


def _column_def(name: str, sql_type: str, primary_key: bool = False) -> str:
    parts = [_quote(name)]
    if sql_type:
        parts.append(sql_type)
    if primary_key:
        parts.append("PRIMARY KEY")
    return " ".join(parts)


def _create_table_sql(table: str, rows: Sequence[Mapping[str, Any]]) -> str:
    columns: dict[str, list[Any]] = {}
    for row in rows:
        for key, value in row.items():
            columns.setdefault(_check_identifier("column name", key), []).append(value)
    defs = [] if "id" in columns else [_column_def("id", "INTEGER", primary_key=True)]
    defs += [_column_def(name, _sql_type(vals), name == "id") for name, vals in columns.items()]
    return f"CREATE TABLE {_quote(table)} ({', '.join(defs)})"


def _insert_sql(table: str, columns: Sequence[str], returning: bool) -> str:
    if columns:
        names = ", ".join(_quote(c) for c in columns)
        marks = ", ".join("?" * len(columns))
        sql = f"INSERT INTO {_quote(table)} ({names}) VALUES ({marks})"
    else:
        sql = f"INSERT INTO {_quote(table)} DEFAULT VALUES"
    return sql + " RETURNING *" if returning else sql


def _user_tables(conn: sqlite3.Connection, *, with_virtual: bool = True) -> list[str]:
    rows = conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table' ORDER BY name")
    return [
        name
        for name, sql in rows
        if not name.startswith(_PRIVATE_PREFIXES)
        and (with_virtual or not (sql or "").lstrip().upper().startswith("CREATE VIRTUAL"))
    ]


def _shadow_tables(conn: sqlite3.Connection) -> set[str]:
    """Tables a virtual table (FTS5, R*Tree) keeps its data in. The module writes them itself;
    a trigger on one makes SQLite crash on the virtual table's first INSERT (seen with 3.40)."""
    try:
        return {row[1] for row in conn.execute("PRAGMA main.table_list") if row[2] == "shadow"}
    except sqlite3.OperationalError:  # SQLite before 3.37 has no table_list: go by name
        tables = conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table'").fetchall()
        virtual = [
            n for n, sql in tables if (sql or "").lstrip().upper().startswith("CREATE VIRTUAL")
        ]
        return {n for n, _ in tables if any(n.startswith(v + "_") for v in virtual)}


def _row_json(ref: str, columns: Sequence[str]) -> str:
    """SQL for the row `ref` (NEW or OLD) as a JSON object, in column order."""

    def value(column: str) -> str:
        col = f"{ref}.{_quote(column)}"
        # json_object() refuses BLOBs; hex keeps them visible in the log.
        return f"CASE typeof({col}) WHEN 'blob' THEN hex({col}) ELSE {col} END"

    chunks = [
        columns[i : i + _JSON_PAIRS_PER_CALL] for i in range(0, len(columns), _JSON_PAIRS_PER_CALL)
    ]
    expr = "json_object(" + ", ".join(f"{_literal(c)}, {value(c)}" for c in chunks[0]) + ")"
    for chunk in chunks[1:]:
        pairs = ", ".join(f"{_literal('$.' + _quote(c))}, {value(c)}" for c in chunk)
        expr = f"json_insert({expr}, {pairs})"
    return expr


def _drop_triggers(conn: sqlite3.Connection) -> None:
    names = [
        name
        for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")
        if name.startswith(_TRIGGER_PREFIX)
    ]
    for name in names:
        conn.execute(f"DROP TRIGGER IF EXISTS {_quote(name)}")


def _install_triggers(conn: sqlite3.Connection) -> None:
    """(Re)creates the write-log triggers for every user table, atomically."""
    conn.execute("SAVEPOINT _awf_install")
    try:
        conn.execute(_WRITES_DDL)
        _drop_triggers(conn)
        shadow = _shadow_tables(conn)
        for table in _user_tables(conn, with_virtual=False):
            if table in shadow:
                continue
            info = conn.execute(f"PRAGMA table_xinfo({_quote(table)})").fetchall()
            # hidden: 0 ordinary, 2/3 generated; 1 is a virtual table's hidden column.
            columns = [row[1] for row in info if row[6] != 1]
            for op, event, ref in (
                ("insert", "INSERT", "NEW"),
                ("update", "UPDATE", "NEW"),
                ("delete", "DELETE", "OLD"),
            ):
                conn.execute(
                    f"CREATE TRIGGER {_quote(_TRIGGER_PREFIX + op + '_' + table)} "
                    f"AFTER {event} ON {_quote(table)} BEGIN "
                    "INSERT INTO _awf_writes (tbl, op, row, step) VALUES "
                    f"({_literal(table)}, '{op}', {_row_json(ref, columns)}, _awf_step()); END"
                )
    except BaseException:
        conn.execute("ROLLBACK TO _awf_install")
        conn.execute("RELEASE _awf_install")
        raise
    conn.execute("RELEASE _awf_install")


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"$blob": value.hex()}
    raise TypeError(f"{type(value).__name__} is not JSON")


# One encoder for every row: json.dumps() with options builds a new one on each call.
_canonical = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_json_default
).encode


_TYPE_RANK = {type(None): 0, int: 1, float: 1, str: 2, bytes: 3}


def _sort_key(row: dict[str, Any]) -> tuple[tuple[int, Any, str], ...]:
    # SQLite's own cross-type order (NULL < numbers < text < blob), and int before an equal
    # float, so the order depends on content only, never on insertion or collation.
    return tuple((_TYPE_RANK[type(v)], v, type(v).__name__) for v in row.values())


class _Session:
    """What a connection's callbacks read: the step label for the `_awf_step()` SQL function,
    and whether the connection may be reused by another handle.

    A separate object so that the callbacks the connection holds do not point back at the
    handle (no reference cycle keeping the connection alive).

    Loading the spec's image again (`deserialize`) resets a connection's database, but not what
    a statement can leave on the connection itself: its settings (`PRAGMA foreign_keys = OFF`),
    temp tables and triggers, attached databases, a changed schema (its prepared statements
    would outlive it), statistics from ANALYZE (query plans would), and what
    `last_insert_rowid()`, `changes()` and `total_changes()` report. `authorize` sees every
    statement as SQLite compiles it, and marks the connection not reusable at the first one
    that could do any of that. What handlers ordinarily run (reading and writing rows,
    transactions, introspection pragmas) leaves nothing behind. While the connection is
    reusable, its schema is also still the spec's, so the handle knows its tables.
    """

    __slots__ = ("clock", "denied", "reusable", "step")

    def __init__(self, step: str | None = None) -> None:
        self.step = step
        self.clock = Clock()  # replaced by install_clock's, on the connection
        self.reusable = True
        self.denied: str | None = None  # why authorize refused the statement being compiled

    def label(self) -> str | None:
        # The step running in the current task wins over the handle's own label: the
        # connection is shared by every step, and steps may run at once.
        step = current_step.get()
        return self.step if step is None else step

    def authorize(
        self, action: int, arg1: str | None, arg2: str | None, _db: str | None, src: str | None
    ) -> int:
        if action in _ROW_ACTIONS:
            if (
                action in _WRITE_ACTIONS
                and arg1 is not None
                and arg1.startswith("_awf_")
                and not (src or "").startswith(_TRIGGER_PREFIX)
            ):
                return self._deny(
                    f"{arg1} is the simulator's record of every write (what chaos compares): "
                    "a handler may read it, never change it"
                )
        elif (why := d1_refusal(action, arg1, arg2, _db)) is not None:
            return self._deny(why)
        elif action in _NAMING_ACTIONS:
            self.reusable = False
            # A DROP/ALTER/CREATE names its object in arg1, or (ALTER) its table in arg2.
            for name in (arg1, arg2) if action == sqlite3.SQLITE_ALTER_TABLE else (arg1,):
                lowered = (name or "").lower()
                if lowered.startswith("_cf_"):
                    return self._deny(
                        f"{name}: names starting with _cf_ are D1's own (D1 fails it)"
                    )
                if lowered.startswith("_awf_") and (
                    action in _CREATE_ACTIONS or not (src or "").startswith(_TRIGGER_PREFIX)
                ):
                    return self._deny(
                        f"{name}: names starting with _awf_ are the simulator's own (its write "
                        "log and triggers); name it otherwise"
                    )
        elif action == sqlite3.SQLITE_FUNCTION:
            if (arg2 or "").lower() in _CONNECTION_FUNCTIONS:
                self.reusable = False
        elif action == sqlite3.SQLITE_PRAGMA:
            # A pragma given a value sets something, except the introspection ones, whose
            # value is the table or index they describe.
            if arg2 is not None and (arg1 or "").lower() not in _INTROSPECTION_PRAGMAS:
                self.reusable = False
        else:  # other DDL, ATTACH/DETACH, ANALYZE, REINDEX, and whatever a later SQLite adds
            self.reusable = False
        return sqlite3.SQLITE_OK

    def _deny(self, why: str) -> int:
        self.denied = why
        return sqlite3.SQLITE_DENY

    def take_denied(self) -> str | None:
        why, self.denied = self.denied, None
        return why


def _open_session(conn: sqlite3.Connection) -> _Session:
    """A new session for `conn`, with the SQL functions that read it: `_awf_step()`, and the
    date and time functions on the handler's clock (see _db_clock)."""
    session = _Session()
    conn.create_function("_awf_step", 0, session.label)
    session.clock = install_clock(conn)
    install_functions(conn, session.clock)
    install_random(conn)
    return session


# Authorizer actions on rows, and on transactions (close() checks that none is left open).
_ROW_ACTIONS = frozenset(
    {
        sqlite3.SQLITE_SELECT,
        sqlite3.SQLITE_READ,
        sqlite3.SQLITE_INSERT,
        sqlite3.SQLITE_UPDATE,
        sqlite3.SQLITE_DELETE,
        sqlite3.SQLITE_RECURSIVE,
        sqlite3.SQLITE_TRANSACTION,
        sqlite3.SQLITE_SAVEPOINT,
    }
)
_WRITE_ACTIONS = frozenset({sqlite3.SQLITE_INSERT, sqlite3.SQLITE_UPDATE, sqlite3.SQLITE_DELETE})
_CREATE_ACTIONS = frozenset(
    {
        sqlite3.SQLITE_CREATE_TABLE,
        sqlite3.SQLITE_CREATE_VIEW,
        sqlite3.SQLITE_CREATE_TRIGGER,
        sqlite3.SQLITE_CREATE_INDEX,
    }
)
# Statements that create, drop or alter a named object of the main database.
_NAMING_ACTIONS = _CREATE_ACTIONS | {
    sqlite3.SQLITE_DROP_TABLE,
    sqlite3.SQLITE_DROP_VIEW,
    sqlite3.SQLITE_DROP_TRIGGER,
    sqlite3.SQLITE_DROP_INDEX,
    sqlite3.SQLITE_ALTER_TABLE,
}
# SQL functions that report the connection's history rather than the database's content.
_CONNECTION_FUNCTIONS = frozenset({"changes", "last_insert_rowid", "total_changes"})
_INTROSPECTION_PRAGMAS = frozenset(
    {
        "foreign_key_check",
        "foreign_key_list",
        "index_info",
        "index_list",
        "index_xinfo",
        "integrity_check",
        "quick_check",
        "table_info",
        "table_list",
        "table_xinfo",
    }
)
# Idle connections a Database keeps: as many as handles open at the same time are likely to
# be (a chaos run uses one at a time).
_POOL_SIZE = 4


def _close_all(idle: list[tuple[sqlite3.Connection, _Session]]) -> None:
    while idle:
        idle.pop()[0].close()


class _Pool:
    """The idle connections of one Database, each with its session.

    They are closed when the pool is garbage-collected (with its Database) or at interpreter
    exit, whichever comes first: `weakref.finalize` holds the list, not the pool.
    """

    __slots__ = ("__weakref__", "_idle")

    def __init__(self) -> None:
        self._idle: list[tuple[sqlite3.Connection, _Session]] = []
        weakref.finalize(self, _close_all, self._idle)

    def __reduce__(self) -> tuple[type[_Pool], tuple[()]]:
        # Connections cannot be copied or pickled: a copy of a Database starts with none idle.
        return (_Pool, ())

    def take(self) -> tuple[sqlite3.Connection, _Session] | None:
        try:
            return self._idle.pop()  # atomic: handles may close on other threads
        except IndexError:
            return None

    def give(self, conn: sqlite3.Connection, session: _Session) -> bool:
        if len(self._idle) >= _POOL_SIZE:
            return False
        self._idle.append((conn, session))
        return True


def _closed_connection() -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:")
    conn.close()
    return conn


# What a closed handle holds instead of its connection, which may be serving another handle
# by then: every use raises sqlite3's own "Cannot operate on a closed database".
_CLOSED = _closed_connection()
