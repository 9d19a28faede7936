"""`async with ctx.db.transaction() as tx:`: one handle's transaction, apart from `_db` (the
handle and the Database spec) so that each stays a readable size."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from types import TracebackType
from typing import Any, Protocol

from awf_sim.errors import DatabaseError
from awf_sim.sdk._db_sql import _js_numbers

__all__ = ["Transaction"]

Params = Sequence[Any] | Mapping[str, Any]


class _Handle(Protocol):
    """What a transaction uses of its DatabaseHandle (`_db` imports this module, not the
    other way round)."""

    _conn: sqlite3.Connection
    _tx: Transaction | None

    @property
    def step(self) -> str | None: ...
    def _error(self, exc: BaseException, sql: str | None) -> DatabaseError: ...
    def _query(self, sql: str, params: Params) -> list[dict[str, Any]]: ...
    def _query_one(self, sql: str, params: Params) -> dict[str, Any] | None: ...
    def _execute(self, sql: str, params: Params) -> int: ...
    def _insert(self, table: str, row: Mapping[str, Any]) -> dict[str, Any]: ...
    def _delete(self, table: str, id: Any) -> int: ...


# The transaction the running handler opened. Every attempt runs in a context of its own, so a
# step that runs at the same time (asyncio.gather) sees none here: the connection is shared,
# and its statements must not land inside another step's transaction (a rollback there would
# take a write of a step that succeeded with it).
_owned: ContextVar[Transaction | None] = ContextVar("awf_db_transaction", default=None)


async def wait_turn(db: _Handle) -> None:
    """Wait while a transaction of another step is open on `db`; statements of the step that
    opened it (through `tx` or `ctx.db`) belong to it and go on at once.

    The step is known by its label (`db.step`: the engine's `current_step`), not only by
    `_owned`: a task the step created before `async with ctx.db.transaction()`
    (asyncio.create_task) does not see `_owned`, and the step may await it inside the block,
    which would wait for the end of the block, which waits for the task: until the step timed
    out. Its statements are the step's own and join the open transaction, as they would run
    at once on D1 (where the block is not a transaction)."""
    tx = db._tx
    while tx is not None and _owned.get() is not tx:
        if tx._label is not None and db.step == tx._label:
            return
        await tx._ended()
        tx = db._tx


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


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
    Transactions do not nest. While one is open, other steps' statements and transactions
    wait for its end, as writers to one SQLite database do.
    """

    __slots__ = ("_db", "_label", "_state", "_waiters")

    def __init__(self, db: _Handle) -> None:
        self._db = db
        self._state = "new"  # new -> open -> done
        self._label: str | None = None  # the step that opened it (see `wait_turn`)
        self._waiters: list[asyncio.Future[None]] = []

    async def _ended(self) -> None:
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        await waiter

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        running = asyncio.events._get_running_loop()
        for waiter in waiters:
            loop = waiter.get_loop()
            if loop is running:
                _resolve(waiter)
            else:
                # Process isolation serves each attempt's ctx.db on a thread and loop of its
                # own: a step waiting there is woken from this one.
                loop.call_soon_threadsafe(_resolve, waiter)

    async def __aenter__(self) -> Transaction:
        db = self._db
        if self._state != "new":
            raise DatabaseError("this transaction was already used; call transaction() again")
        await wait_turn(db)
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
        _owned.set(self)
        self._label = db.step
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
        _owned.set(None)
        self._state = "done"
        conn = db._conn
        try:
            if exc_type is None:
                try:
                    conn.execute("COMMIT")
                    return
                except sqlite3.Error as commit_error:
                    _rollback(conn)
                    raise db._error(commit_error, "COMMIT") from commit_error
            _rollback(conn)
        finally:
            self._wake()

    def _open(self) -> _Handle:
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
