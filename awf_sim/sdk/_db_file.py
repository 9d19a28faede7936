"""A simulated database kept in a file, for runs whose instances outlive their process.

D1 is durable: what a step wrote is there when the instance resumes after its Worker died. A
`Database` spec gives every connect() a fresh in-memory copy, which is right for a simulator
that lives as long as its instances (chaos, tests), but `awf-sim run --store` resumes an
instance in a new process: from a fresh copy, the rows its checkpointed steps wrote were gone
while their steps were not run again. `on_disk(spec, path)` keeps the rows in `path`: created
from the spec's schema and rows on first use, and from then on the database every run of the
store sees, as one D1 database is shared by every instance of a Worker. Each statement
commits on its own (as D1's do), so a write is on disk before the step that made it ends.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

from awf_sim.errors import DatabaseError
from awf_sim.sdk._db import Database, DatabaseHandle
from awf_sim.sdk._db_sql import _open_session

__all__ = ["beside_store", "on_disk"]


class _FileDatabase(Database):
    """A Database spec whose rows live in a file (see the module docstring)."""

    def __init__(self, spec: Database, path: str) -> None:
        self.__dict__.update(spec.__dict__)  # the spec's schema, tables and image
        self._pool = None  # a file connection is its own database: never reused for another
        self.path = path

    def connect(self) -> DatabaseHandle:
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise DatabaseError(f"cannot open the database file {self.path}: {exc}") from None
        try:
            fresh = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0
            if fresh:
                image = sqlite3.connect(":memory:")
                try:
                    image.deserialize(self._image)
                    image.backup(conn)
                finally:
                    image.close()
            elif "_awf_writes" not in {
                r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
            }:
                raise DatabaseError(
                    f"{self.path} is not a database awf made: it would be used as ctx.db; "
                    "move it away, or give the store another path"
                )
            conn.execute("PRAGMA foreign_keys = ON")
            session = _open_session(conn)
            # Its schema may have grown since the spec (a handler's CREATE TABLE is kept).
            session.reusable = False
            conn.set_authorizer(session.authorize)  # the write log stays out of reach
            return DatabaseHandle(
                conn, auto_schema=self.auto_schema, _session=session, _tables=None
            )
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise DatabaseError(f"cannot use the database file {self.path}: {exc}") from None
        except BaseException:
            conn.close()
            raise

    def __repr__(self) -> str:
        return f"<Database in {self.path!r}>"


def on_disk(spec: Database, path: str | Path) -> _FileDatabase:
    """`spec`'s database kept in the file `path` (created from the spec on first use)."""
    return _FileDatabase(spec, str(path))


def beside_store(db: Any, store: str | os.PathLike[str]) -> Any:
    """What handlers of a simulator on the SQLite store `store` get as ctx.db: a `Database`
    spec (none: an empty one) kept beside the store (`run.db` -> `run.db.d1`), so that a
    `Simulator(store=path)` resuming instances in a new process sees what their checkpointed
    steps wrote, as `awf-sim run --store` does. An open handle or a database of the user's own
    kind is theirs to keep, and an in-memory store keeps nothing beside it."""
    path = os.fspath(store)
    if db is not None and type(db) is not Database:
        return db
    if path in ("", ":memory:") or path.startswith("file:"):
        return db
    return on_disk(db if db is not None else Database(), path + ".d1")
