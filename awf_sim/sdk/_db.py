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
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal

from awf_sim.errors import DatabaseError
from awf_sim.sdk._db_clock import Clock
from awf_sim.sdk._db_functions import install_functions
from awf_sim.sdk._db_sql import (
    _CLOSED,
    _HAS_RETURNING,
    _ONE_AT_A_TIME,
    DDL,
    _canonical,
    _check_identifier,
    _column_def,
    _create_table_sql,
    _drop_triggers,
    _encode_params,
    _encode_row,
    _insert_sql,
    _install_triggers,
    _js_numbers,
    _needs_encoding,
    _open_session,
    _Outcome,
    _Pool,
    _quote,
    _seed,
    _Session,
    _Several,
    _short_sql,
    _sort_key,
    _split_statements,
    _sql_type,
    _statement_kind,
    _user_tables,
)
from awf_sim.sdk._db_tx import Transaction, wait_turn

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


class DatabaseHandle:
    """One open simulated database: what a step handler receives as `ctx.db`.

    Get one from `Database.connect()`. Holds one sqlite3 connection; `close()` it, or use the
    handle as a context manager.
    """

    __slots__ = (
        "_auto_schema",
        "_clock",
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
            _session = _open_session(connection)
        self._session = _session
        self._clock = _session.clock

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
        if self._tx is not None:
            await wait_turn(self)
        return [_js_numbers(row) for row in self._query(sql, params)]

    async def query_one(self, sql: str, params: Params = ()) -> dict[str, Any] | None:
        """The first row, or None."""
        if self._tx is not None:
            await wait_turn(self)
        row = self._query_one(sql, params)
        return None if row is None else _js_numbers(row)

    def rows(self, sql: str, params: Params = ()) -> list[dict[str, Any]]:
        """`query` without `await`, for assertions in a synchronous test; handlers, which
        run on the engine's loop, use `await ctx.db.query(...)`."""
        return [_js_numbers(row) for row in self._query(sql, params)]

    async def execute(self, sql: str, params: Params = ()) -> int:
        """Runs a statement; returns the number of rows it changed."""
        if self._tx is not None:
            await wait_turn(self)
        return self._execute(sql, params)

    async def insert(self, table: str, row: Mapping[str, Any]) -> dict[str, Any]:
        """Inserts one row; returns it as stored, with its id and defaults."""
        if self._tx is not None:
            await wait_turn(self)
        return _js_numbers(self._insert(table, row))

    async def delete(self, table: str, id: Any) -> int:
        """Deletes the row whose `id` column equals `id`; returns 0 or 1."""
        if self._tx is not None:
            await wait_turn(self)
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
        self._clock = self._session.clock
        self._tables = None
        pool = self._pool
        given = (
            pool is not None
            and session.reusable
            and not conn.in_transaction
            and pool.give(conn, session)  # refused when the pool is full
        )
        if not given:
            session.clock.conn = None  # the connection's functions hold the clock
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
        session = self._session
        why = session.take_denied() or session.clock.take_refused() or str(exc)
        return DatabaseError(why, sql, session.label())

    def _run(self, sql: str, params: Params) -> _Outcome:
        if type(sql) is not str:
            raise DatabaseError(
                f"the SQL must be a str, got {type(sql).__name__}: {sql!r:.80}",
                None,
                self._session.label(),
            )
        clock = self._clock
        clock.now = None  # 'now' is read again for each statement
        clock.sql, clock.params = sql, params
        kind = _statement_kind(sql)
        if kind is not None:
            if kind is DDL:
                return self._run_ddl(sql, params)
            raise DatabaseError(kind, sql, self._session.label())
        try:
            return self._conn.execute(sql, params)
        except (sqlite3.Error, OverflowError) as exc:
            if isinstance(exc, sqlite3.ProgrammingError) and str(exc).startswith(_ONE_AT_A_TIME):
                return self._run_several(sql, params)
            if type(params) not in (list, tuple) and not isinstance(params, Mapping):
                # `query_one("... = ?", 5)`: sqlite3 says "unsupported type", or binds the
                # characters of a str one by one.
                raise DatabaseError(
                    f"params must be a list of values for ? placeholders or a dict for :name "
                    f"ones, got {type(params).__name__}: write [{params!r:.60}]",
                    sql,
                    self._session.label(),
                ) from None
            # sqlite3 cannot bind dict/list; encoding them only after a failure keeps the
            # common path free of a scan over the params.
            if not _needs_encoding(params):
                raise self._error(exc, sql) from exc
        try:
            clock.params = params = _encode_params(params)
            return self._conn.execute(sql, params)
        except (sqlite3.Error, OverflowError, TypeError, ValueError) as exc:
            raise self._error(exc, sql) from exc

    def _run_several(self, sql: str, params: Params) -> _Outcome:
        """Several statements in one call, as D1 runs them: in order, each as one call would
        run it (a DDL one puts the write log's triggers back, a refused one is refused), the
        parameters only for the last; the last one's rows, and the changes of them all."""
        statements = _split_statements(sql)
        changes = 0
        for statement in statements[:-1]:
            try:
                cursor = self._run(statement, ())
            except DatabaseError as exc:
                if "bindings" in exc.detail or "binding parameter" in exc.detail:
                    raise DatabaseError(
                        "when one call runs several statements, only the last may have "
                        "parameters (D1 fails the others): split the call",
                        sql,
                        self._session.label(),
                    ) from None
                raise
            changes += max(cursor.rowcount, 0)
        last = self._run(statements[-1], params)
        return _Several(last, changes + max(last.rowcount, 0))

    def _run_ddl(self, sql: str, params: Params) -> _Outcome:
        # The log triggers name every column, which would block ALTER TABLE ... DROP COLUMN:
        # take them down first, and put them back for whatever tables exist afterwards.
        try:
            # DDL leaves the connection not reusable for good (see _Session). Our own
            # statements run without the authorizer (putting the triggers back would cost a
            # callback per column); the handler's runs under it, which keeps the write log
            # and D1's reserved names out of its reach.
            session = self._session
            session.reusable = False
            conn = self._conn
            conn.set_authorizer(None)
            _drop_triggers(conn)
            clock = session.clock
            clock.sql, clock.params = sql, params
            try:
                conn.set_authorizer(session.authorize)
                return conn.execute(sql, params)
            finally:
                clock.schema_changed()
                conn.set_authorizer(None)
                _install_triggers(conn)
                conn.set_authorizer(session.authorize)
        except (sqlite3.Error, OverflowError) as exc:
            if isinstance(exc, sqlite3.ProgrammingError) and str(exc).startswith(_ONE_AT_A_TIME):
                return self._run_several(sql, params)  # the triggers are back by now
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
        if type(row) is not dict and not isinstance(row, Mapping):
            raise DatabaseError(
                f"insert({table!r}, row): row must be a dict of column -> value, "
                f"got {type(row).__name__}",
                step=self._session.label(),
            )
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
        clock = self._clock
        clock.now = None
        clock.sql, clock.params = sql, values
        try:
            cursor = self._conn.execute(sql, values)
        except sqlite3.OperationalError as exc:
            if not (self._auto_schema and self._evolve_schema(table, row, str(exc))):
                raise self._error(exc, sql) from exc
            clock.sql, clock.params = sql, values  # the schema grew: the same statement again
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
        if not isinstance(schema, str):
            raise DatabaseError(
                f"Database(schema): expected the schema as SQL text (CREATE TABLE ...), got "
                f"{type(schema).__name__}; for tables of rows write mock_database({{...}})"
            )
        self.schema = schema
        self.auto_schema = auto_schema
        conn = sqlite3.connect(":memory:", isolation_level=None)
        try:
            # D1's functions, for a schema that uses them (a view, a generated column).
            install_functions(conn, Clock())
            try:
                conn.executescript(schema)
            except sqlite3.Error as exc:
                raise DatabaseError(str(exc), schema) from exc
            reserved = [
                name
                for (name,) in conn.execute("SELECT name FROM sqlite_master")
                if name.lower().startswith(("_awf_", "_cf_"))
            ]
            if reserved:
                raise DatabaseError(
                    f"{reserved[0]}: names starting with _awf_ are the simulator's own (its "
                    "write log), and with _cf_ D1's own; name it otherwise",
                    schema,
                )
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
            session = _open_session(conn)
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
