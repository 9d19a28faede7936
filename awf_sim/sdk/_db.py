"""The simulated database handlers receive as `ctx.db`: SQLite standing in for Cloudflare D1.

A `Database` is a spec (schema + seed rows); `connect()` gives a fresh, identical
`DatabaseHandle`, so every simulator run of a chaos campaign starts from the same rows. Every
row-level write is recorded by SQLite triggers into a private table, so the write log shares the
fate of the data: a rolled-back transaction takes its log entries with it.

`connect()` reuses the connections that closed handles gave back (see `_Pool`): loading the
spec's image into a used connection keeps its prepared statements, where a new connection
re-parses the schema and its triggers on its first statements (most of a chaos run's cost).

The async methods never suspend (sqlite3 is synchronous), so the engine can drive a handler
with `coro.send(None)` and needs no Task for it.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import weakref
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from types import TracebackType
from typing import Any, Literal

from awf_sim.errors import DatabaseError
from awf_sim.sdk._effects import current_step

__all__ = [
    "Database",
    "DatabaseError",
    "DatabaseHandle",
    "Transaction",
    "Write",
    "mock_database",
]

Params = Sequence[Any] | Mapping[str, Any]
WriteOp = Literal["insert", "update", "delete"]

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
# Leading comments are skipped so that a commented migration is still seen as DDL.
_DDL = re.compile(
    r"\s*(?:(?:--[^\n]*(?:\n|\Z)|/\*.*?\*/)\s*)*(?:CREATE|ALTER|DROP)\b", re.IGNORECASE | re.DOTALL
)
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


@dataclass(frozen=True, slots=True)
class Write:
    """One row-level write: the new row for insert/update, the old row for delete.

    Values are as stored (JSON columns as their text, BLOBs as upper-case hex).
    """

    table: str
    op: WriteOp
    row: dict[str, Any]
    step: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"table": self.table, "op": self.op, "row": dict(self.row), "step": self.step}


_MAX_SAFE_INTEGER = 2**53 - 1


def _js_numbers(row: dict[str, Any]) -> dict[str, Any]:
    """A row as D1 hands it to a Python Worker: D1 answers in JavaScript numbers, which carry no
    int/float distinction, and Pyodide makes a whole one an `int` (a REAL 420.0 reads as 420)."""
    for key, value in row.items():
        if type(value) is float and value.is_integer() and abs(value) <= _MAX_SAFE_INTEGER:
            row[key] = int(value)
    return row


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
def _is_ddl(sql: str) -> bool:
    return _DDL.match(sql) is not None


def _encode(value: Any) -> Any:
    """A Python value as SQLite stores it: bool as 0/1, dict/list as JSON text."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, _JSON_TYPES):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return value


def _encode_row(values: Iterable[Any]) -> list[Any]:
    return [v if type(v) in _PLAIN_TYPES else _encode(v) for v in values]


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

    __slots__ = ("reusable", "step")

    def __init__(self, step: str | None = None) -> None:
        self.step = step
        self.reusable = True

    def label(self) -> str | None:
        # The step running in the current task wins over the handle's own label: the
        # connection is shared by every step, and steps may run at once.
        step = current_step.get()
        return self.step if step is None else step

    def authorize(
        self, action: int, arg1: str | None, arg2: str | None, _db: str | None, _src: str | None
    ) -> int:
        if action in _ROW_ACTIONS:
            pass
        elif action == sqlite3.SQLITE_FUNCTION:
            if (arg2 or "").lower() in _CONNECTION_FUNCTIONS:
                self.reusable = False
        elif action == sqlite3.SQLITE_PRAGMA:
            # A pragma given a value sets something, except the introspection ones, whose
            # value is the table or index they describe.
            if arg2 is not None and (arg1 or "").lower() not in _INTROSPECTION_PRAGMAS:
                self.reusable = False
        else:  # DDL, ATTACH/DETACH, ANALYZE, REINDEX, and whatever a later SQLite adds
            self.reusable = False
        return sqlite3.SQLITE_OK


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


class DatabaseHandle:
    """One open simulated database: what a step handler receives as `ctx.db`.

    Get one from `Database.connect()`. Holds one sqlite3 connection; `close()` it, or use the
    handle as a context manager.
    """

    __slots__ = (
        "_auto_schema",
        "_conn",
        "_delete_sql",
        "_insert_sql",
        "_pool",
        "_returning",
        "_session",
        "_tables",
        "_tx",
        "_writes_cache",
        "_writes_seq",
    )

    def __init__(
        self,
        connection: sqlite3.Connection,
        *,
        auto_schema: bool = False,
        _session: _Session | None = None,
        _pool: _Pool | None = None,
        _tables: tuple[str, ...] | None = None,
    ) -> None:
        # Database.connect() passes `_session` (the connection is set up already and reports
        # to it), `_pool` (where close() gives the connection back) and `_tables` (the
        # spec's user tables, while its schema is unchanged).
        self._conn = connection
        self._auto_schema = auto_schema
        self._pool = _pool
        self._tables = _tables
        self._insert_sql: dict[tuple[str, tuple[str, ...]], str] = {}
        self._delete_sql: dict[str, str] = {}
        self._returning = _HAS_RETURNING
        self._tx: Transaction | None = None
        self._writes_cache: list[Write] = []
        self._writes_seq = 0
        if _session is None:
            _session = _Session()
            connection.create_function("_awf_step", 0, _session.label)
        self._session = _session

    @property
    def step(self) -> str | None:
        """Label of the step using the handle (`"Inventory.reserve#1"`): the step running in
        the current task, else the label set on the handle."""
        return self._session.label()

    @step.setter
    def step(self, value: str | None) -> None:
        self._session.step = value

    # -- the handler API -------------------------------------------------------------------

    async def query(self, sql: str, params: Params = ()) -> list[dict[str, Any]]:
        """Rows of a statement as dicts (column -> value), numbers as D1 gives them."""
        return [_js_numbers(row) for row in self._query(sql, params)]

    async def query_one(self, sql: str, params: Params = ()) -> dict[str, Any] | None:
        """The first row, or None."""
        row = self._query_one(sql, params)
        return None if row is None else _js_numbers(row)

    async def execute(self, sql: str, params: Params = ()) -> int:
        """Runs a statement; returns the number of rows it changed."""
        return self._execute(sql, params)

    async def insert(self, table: str, row: Mapping[str, Any]) -> dict[str, Any]:
        """Inserts one row; returns it as stored, with its id and defaults."""
        return _js_numbers(self._insert(table, row))

    async def delete(self, table: str, id: Any) -> int:
        """Deletes the row whose `id` column equals `id`; returns 0 or 1."""
        return self._delete(table, id)

    def transaction(self) -> Transaction:
        """`async with db.transaction() as tx:` commits on success, rolls back on error."""
        return Transaction(self)

    @property
    def writes(self) -> list[Write]:
        """Every row-level write so far, in order (rolled-back ones excluded)."""
        try:
            rows = self._conn.execute(
                "SELECT seq, tbl, op, row, step FROM _awf_writes WHERE seq > ? ORDER BY seq",
                (self._writes_seq,),
            ).fetchall()
        except sqlite3.Error as exc:
            raise self._error(exc, None) from exc
        fresh = [Write(tbl, op, json.loads(row), step) for _, tbl, op, row, step in rows]
        if self._conn.in_transaction:
            # Uncommitted entries may still roll back: report them, don't cache them.
            return self._writes_cache + fresh
        if rows:
            self._writes_cache.extend(fresh)
            self._writes_seq = rows[-1][0]
        return list(self._writes_cache)

    def snapshot(self) -> dict[str, list[dict[str, Any]]]:
        """Table -> rows, in a content-defined order (private tables excluded)."""
        try:
            return {
                table: sorted(self._query(f"SELECT * FROM {_quote(table)}", ()), key=_sort_key)
                for table in self._table_names()
            }
        except sqlite3.Error as exc:
            raise self._error(exc, None) from exc

    def digest(self) -> str:
        """sha256 hex of the whole content; equal content gives an equal digest."""
        # The rows of each table in the order of their canonical JSON lines, which needs no
        # snapshot (whose order is another one); hashed in one piece.
        text: list[str] = []
        try:
            for table in self._table_names():
                rows = self._query(f"SELECT * FROM {_quote(table)}", ())
                text += (json.dumps(table), "\n")
                for line in sorted([_canonical(row) for row in rows]):
                    text += (line, "\n")
                text.append("\n")
        except sqlite3.Error as exc:
            raise self._error(exc, None) from exc
        return hashlib.sha256("".join(text).encode()).hexdigest()

    def _table_names(self) -> Sequence[str]:
        # The spec's tables as long as nothing but rows changed since connect (see _Session).
        if self._tables is not None and self._session.reusable:
            return self._tables
        return _user_tables(self._conn)

    def close(self) -> None:
        """Closes the handle. Its connection goes back to its Database for reuse when nothing
        it ran left state behind (see `_Session`) and no transaction is open."""
        conn, session = self._conn, self._session
        if conn is _CLOSED:
            return
        # Let go of both first: from now on they may serve another handle.
        self._conn = _CLOSED
        self._session = _Session(session.step)
        self._tables = None
        pool = self._pool
        given = (
            pool is not None
            and session.reusable
            and not conn.in_transaction
            and pool.give(conn, session)  # refused when the pool is full
        )
        if not given:
            conn.close()

    def __enter__(self) -> DatabaseHandle:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<DatabaseHandle step={self._session.step!r}>"

    # -- synchronous core, shared with Transaction -----------------------------------------

    def _error(self, exc: BaseException, sql: str | None) -> DatabaseError:
        return DatabaseError(str(exc), sql, self._session.label())

    def _run(self, sql: str, params: Params) -> sqlite3.Cursor:
        if _is_ddl(sql):
            return self._run_ddl(sql, params)
        try:
            return self._conn.execute(sql, params)
        except (sqlite3.Error, OverflowError) as exc:
            # sqlite3 cannot bind dict/list; encoding them only after a failure keeps the
            # common path free of a scan over the params.
            if not _needs_encoding(params):
                raise self._error(exc, sql) from exc
        try:
            return self._conn.execute(sql, _encode_params(params))
        except (sqlite3.Error, OverflowError, TypeError, ValueError) as exc:
            raise self._error(exc, sql) from exc

    def _run_ddl(self, sql: str, params: Params) -> sqlite3.Cursor:
        # The log triggers name every column, which would block ALTER TABLE ... DROP COLUMN:
        # take them down first, and put them back for whatever tables exist afterwards.
        try:
            # DDL leaves the connection not reusable for good (see _Session): nothing is left
            # to watch for, and putting the triggers back would cost a callback per column.
            self._session.reusable = False
            self._conn.set_authorizer(None)
            _drop_triggers(self._conn)
            try:
                return self._conn.execute(sql, params)
            finally:
                _install_triggers(self._conn)
        except (sqlite3.Error, OverflowError) as exc:
            raise self._error(exc, sql) from exc

    def _query(self, sql: str, params: Params) -> list[dict[str, Any]]:
        cursor = self._run(sql, params)
        description = cursor.description
        if description is None:
            return []
        names = [d[0] for d in description]
        try:
            return [dict(zip(names, row, strict=False)) for row in cursor.fetchall()]
        except sqlite3.Error as exc:
            raise self._error(exc, sql) from exc

    def _query_one(self, sql: str, params: Params) -> dict[str, Any] | None:
        cursor = self._run(sql, params)
        description = cursor.description
        if description is None:
            return None
        try:
            row = cursor.fetchone()
        except sqlite3.Error as exc:
            raise self._error(exc, sql) from exc
        if row is None:
            return None
        return dict(zip([d[0] for d in description], row, strict=False))

    def _execute(self, sql: str, params: Params) -> int:
        count = self._run(sql, params).rowcount
        return count if count > 0 else 0

    def _insert(self, table: str, row: Mapping[str, Any]) -> dict[str, Any]:
        keys = tuple(row)
        sql = self._insert_sql.get((table, keys))
        if sql is None:
            step = self._session.label()
            _check_identifier("table name", table, step)
            for key in keys:
                _check_identifier("column name", key, step)
            sql = self._insert_sql[(table, keys)] = _insert_sql(table, keys, self._returning)
        try:
            values = _encode_row(row.values())
        except (TypeError, ValueError) as exc:
            raise DatabaseError(f"insert into {table}: {exc}", None, self._session.label()) from exc
        try:
            cursor = self._conn.execute(sql, values)
        except sqlite3.OperationalError as exc:
            if not (self._auto_schema and self._evolve_schema(table, row, str(exc))):
                raise self._error(exc, sql) from exc
            try:
                cursor = self._conn.execute(sql, values)
            except (sqlite3.Error, OverflowError) as again:
                raise self._error(again, sql) from again
        except (sqlite3.Error, OverflowError) as exc:
            raise self._error(exc, sql) from exc
        if not self._returning:
            return self._fetch_by_rowid(table, cursor.lastrowid)
        names = [d[0] for d in cursor.description]
        return dict(zip(names, cursor.fetchall()[0], strict=False))

    def _fetch_by_rowid(self, table: str, rowid: int | None) -> dict[str, Any]:
        found = self._query_one(f"SELECT * FROM {_quote(table)} WHERE rowid = ?", (rowid,))
        return found if found is not None else {}

    def _evolve_schema(self, table: str, row: Mapping[str, Any], message: str) -> bool:
        """Mock databases grow to fit: a missing table or column is created from the row."""
        if message.startswith("no such table"):
            self._run_ddl(_create_table_sql(table, [row]), ())
            return True
        if "has no column named" in message:
            info = self._conn.execute(f"PRAGMA table_info({_quote(table)})").fetchall()
            existing = {r[1].lower() for r in info}  # SQLite column names ignore case
            for key, value in row.items():
                if key.lower() not in existing:
                    column = _column_def(key, _sql_type([value]))
                    self._run_ddl(f"ALTER TABLE {_quote(table)} ADD COLUMN {column}", ())
            return True
        return False

    def _delete(self, table: str, id: Any) -> int:
        sql = self._delete_sql.get(table)
        if sql is None:
            _check_identifier("table name", table, self._session.label())
            sql = self._delete_sql[table] = f"DELETE FROM {_quote(table)} WHERE id = ?"
        return self._execute(sql, (id,))


def _rollback(conn: sqlite3.Connection) -> None:
    # Some errors (SQLITE_FULL, ...) already rolled back, and a handler may have closed the
    # handle: either way the error being raised matters more than this cleanup.
    try:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
    except sqlite3.Error:
        pass


class Transaction:
    """An open transaction: `async with ctx.db.transaction() as tx:`.

    Commits when the block ends normally, rolls back (data and write log) on any exception.
    Transactions do not nest.
    """

    __slots__ = ("_db", "_state")

    def __init__(self, db: DatabaseHandle) -> None:
        self._db = db
        self._state = "new"  # new -> open -> done

    async def __aenter__(self) -> Transaction:
        db = self._db
        if self._state != "new":
            raise DatabaseError("this transaction was already used; call transaction() again")
        if db._tx is not None or db._conn.in_transaction:
            raise DatabaseError(
                "nested transaction: a transaction is already open on this database; "
                "run these statements on the outer transaction instead",
                step=db.step,
            )
        try:
            db._conn.execute("BEGIN")
        except sqlite3.Error as exc:
            raise db._error(exc, "BEGIN") from exc
        db._tx = self
        self._state = "open"
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        db = self._db
        db._tx = None
        self._state = "done"
        conn = db._conn
        if exc_type is None:
            try:
                conn.execute("COMMIT")
                return
            except sqlite3.Error as commit_error:
                _rollback(conn)
                raise db._error(commit_error, "COMMIT") from commit_error
        _rollback(conn)

    def _open(self) -> DatabaseHandle:
        if self._state != "open":
            raise DatabaseError(
                "this transaction is not open: use tx only inside its `async with` block",
                step=self._db.step,
            )
        return self._db

    async def query(self, sql: str, params: Params = ()) -> list[dict[str, Any]]:
        return [_js_numbers(row) for row in self._open()._query(sql, params)]

    async def query_one(self, sql: str, params: Params = ()) -> dict[str, Any] | None:
        row = self._open()._query_one(sql, params)
        return None if row is None else _js_numbers(row)

    async def execute(self, sql: str, params: Params = ()) -> int:
        return self._open()._execute(sql, params)

    async def insert(self, table: str, row: Mapping[str, Any]) -> dict[str, Any]:
        return _js_numbers(self._open()._insert(table, row))

    async def delete(self, table: str, id: Any) -> int:
        return self._open()._delete(table, id)


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


class Database:
    """A database *spec*: schema + seed rows. Every `connect()` gives a fresh, identical
    database, so repeated simulator runs (chaos) start from the same rows.

    The database is built once, here (so a bad schema fails where it is declared), and kept as
    a serialized image that `connect()` copies, into a connection a closed handle gave back
    when there is one (a handle cannot tell). Foreign keys are enforced, as on D1. With
    `auto_schema=True` (what `mock_database` gives), `insert()` creates a missing table or
    column from the row it inserts.
    """

    def __init__(
        self,
        schema: str = "",
        rows: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
        *,
        auto_schema: bool = False,
    ) -> None:
        self.schema = schema
        self.auto_schema = auto_schema
        conn = sqlite3.connect(":memory:", isolation_level=None)
        try:
            try:
                conn.executescript(schema)
            except sqlite3.Error as exc:
                raise DatabaseError(str(exc), schema) from exc
            if rows:
                # Seed rows go in with foreign keys off, so table order in `rows` is free;
                # the check afterwards still refuses rows that break a foreign key.
                _seed(conn, rows)
                broken = conn.execute("PRAGMA foreign_key_check").fetchone()
                if broken is not None:
                    raise DatabaseError(
                        f"seed row {broken[1]} of table {broken[0]!r} references a missing "
                        f"row of {broken[2]!r} (foreign key)"
                    )
            _install_triggers(conn)
            self._tables = tuple(_user_tables(conn))
            # A virtual table's module keeps state per connection, out of reach of the image:
            # such a database gets a new connection every time.
            virtual = len(self._tables) != len(_user_tables(conn, with_virtual=False))
            self._image = conn.serialize()
        finally:
            conn.close()
        self._pool = None if virtual else _Pool()

    def connect(self) -> DatabaseHandle:
        """A fresh in-memory database with the spec's schema and rows and an empty write log."""
        pool = self._pool
        reused = pool.take() if pool is not None else None
        if reused is not None:
            conn, session = reused
            try:
                # Replaces the whole database. The connection keeps its prepared statements
                # (SQLite checks each against the schema cookie when it runs), compiled for
                # the image's schema: nothing that changes it leaves a connection reusable.
                conn.deserialize(self._image)
            except sqlite3.Error:
                conn.close()  # not expected (close() gives back no open transaction)
            else:
                # deserialize() works by an ATTACH of its own, which `authorize` took for a
                # handler's: the connection was reusable when it was given back, and still is.
                session.reusable = True
                session.step = None
                return self._handle(conn, session)
        # Handlers may run on another thread than the one that connected; the handle is never
        # used concurrently, so sqlite3's same-thread check would only get in the way.
        conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        try:
            conn.deserialize(self._image)
            conn.execute("PRAGMA foreign_keys = ON")
            session = _Session()
            conn.create_function("_awf_step", 0, session.label)
            conn.set_authorizer(session.authorize)
            return self._handle(conn, session)
        except BaseException:
            conn.close()
            raise

    def _handle(self, conn: sqlite3.Connection, session: _Session) -> DatabaseHandle:
        return DatabaseHandle(
            conn,
            auto_schema=self.auto_schema,
            _session=session,
            _pool=self._pool,
            _tables=self._tables,
        )

    def __repr__(self) -> str:
        return f"<Database schema={_short_sql(self.schema)[:60]!r} auto_schema={self.auto_schema}>"


def mock_database(tables: Mapping[str, Sequence[Mapping[str, Any]]]) -> Database:
    """Builds a Database from rows alone, creating each table from its rows: columns are the
    union of the rows' keys in first-seen order, typed by value (int→INTEGER, float→REAL,
    str→TEXT, bool→INTEGER, dict/list→TEXT holding JSON, None→no type); an
    `id INTEGER PRIMARY KEY` column is added when no row has `id` (a given `id` column becomes
    the primary key). `insert()` later creates missing tables and columns from its row.
    """
    if not isinstance(tables, Mapping):
        raise DatabaseError(
            f"mock_database(tables): expected a dict of table -> rows, got {type(tables).__name__}"
        )
    statements = []
    for table, rows in tables.items():
        _check_identifier("table name", table)
        if isinstance(rows, (str, bytes, Mapping)) or not isinstance(rows, Sequence):
            raise DatabaseError(
                f"mock_database: rows of table {table!r} must be a list of dicts, "
                f"got {type(rows).__name__}"
            )
        for row in rows:
            if not isinstance(row, Mapping):
                raise DatabaseError(
                    f"mock_database: rows of table {table!r} must be dicts, "
                    f"got {type(row).__name__}"
                )
        statements.append(_create_table_sql(table, rows) + ";")
    return Database("\n".join(statements), tables, auto_schema=True)
