"""The SQLite store: a file in WAL mode, one transaction per durable commit.

Layout (schema version 2; a version-1 store is read as it is and stamped 2 on open):

    instances (id, data)                 one row per instance: its meta record
    steps     (instance, key, data)      one row per step record, upserted in place
    events    (instance, seq, data)      one row per event
    timeline  (instance, seq, data)      one row per transaction and instance: a JSON array
                                         of the entries it added (version 1: one entry a row)

What makes a step cost one transaction of three row writes: a commit made with `defer=True`
(a step's result, a lifetime's start) is kept in memory and written in the transaction of the
next commit, so a result's checkpoint shares a transaction with the start of the next attempt;
the pending writes of one instance are merged (one timeline row, one write per step key); the
statements are constant strings, so sqlite3's statement cache prepares each once.

Reads are served from memory, so the engine's hot path never queries SQLite; a new process
loads what it reads lazily: the instances' meta records when the store opens, an instance's
steps and events on first use (a step record is decoded when first read), its timeline only
when asked for. That keeps recovery of one deep instance from paying for the rest of the file.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterable, Mapping
from typing import cast

from awf_sim.engine._records import EventRecord, InstanceMeta, StepRecord
from awf_sim.engine._timeline import TimelineEntry
from awf_sim.errors import StoreError

__all__ = ["APPLICATION_ID", "SCHEMA_VERSION", "SqliteStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS instances (id TEXT PRIMARY KEY, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS steps (
    instance TEXT NOT NULL, key TEXT NOT NULL, data TEXT NOT NULL, PRIMARY KEY (instance, key));
CREATE TABLE IF NOT EXISTS events (
    instance TEXT NOT NULL, seq INTEGER NOT NULL, data TEXT NOT NULL,
    PRIMARY KEY (instance, seq)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS timeline (
    instance TEXT NOT NULL, seq INTEGER NOT NULL, data TEXT NOT NULL,
    PRIMARY KEY (instance, seq)) WITHOUT ROWID;
"""
# Steps keep a rowid so that a new process lists them in the order they were first written,
# as the memory store does; an upsert (not INSERT OR REPLACE) keeps a row's rowid.

_PUT_META = (
    "INSERT INTO instances (id, data) VALUES (?, ?) "
    "ON CONFLICT (id) DO UPDATE SET data = excluded.data"
)
_PUT_STEP = (
    "INSERT INTO steps (instance, key, data) VALUES (?, ?, ?) "
    "ON CONFLICT (instance, key) DO UPDATE SET data = excluded.data"
)
_DEL_STEP = "DELETE FROM steps WHERE instance = ? AND key = ?"
_PUT_EVENT = "INSERT OR REPLACE INTO events (instance, seq, data) VALUES (?, ?, ?)"
_PUT_TIMELINE = "INSERT INTO timeline (instance, seq, data) VALUES (?, ?, ?)"

# Stamped into every awf store (PRAGMA application_id, user_version), so that a file that is
# not one, or one of an unknown schema version, is refused instead of written to.
APPLICATION_ID = 0x61776631  # "awf1"
SCHEMA_VERSION = 2
_READS = (1, 2)  # version 1 differs only in its timeline rows (one entry each), read as well
_TABLES = frozenset({"instances", "steps", "events", "timeline"})

_dumps = json.JSONEncoder(separators=(",", ":")).encode
_loads = json.loads

# Paths this process holds the lock of, with how many stores hold each open.
_LOCKS: dict[str, tuple[int, int]] = {}


def _lock(path: str) -> None:
    """One process per store: a second one would write the same rows (IntegrityError) or
    run the same steps. The lock is an flock on the file, held until the last store of this
    process on that path closes; in-process reopening (a new Simulator on the same path) is
    allowed."""
    try:
        import fcntl
    except ImportError:  # no flock on this platform
        return
    key = os.path.realpath(path)
    held = _LOCKS.get(key)
    if held is not None:
        _LOCKS[key] = (held[0], held[1] + 1)
        return
    fd = os.open(key, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise StoreError(
            f"store {path} is in use by another process: one store serves one awf process at "
            "a time (wait for it to finish, or use another --store file)"
        ) from None
    _LOCKS[key] = (fd, 1)


def _unlock(path: str) -> None:
    key = os.path.realpath(path)
    held = _LOCKS.get(key)
    if held is None:
        return
    if held[1] > 1:
        _LOCKS[key] = (held[0], held[1] - 1)
        return
    del _LOCKS[key]
    os.close(held[0])  # releases the flock


def _path_problem(path: str) -> str | None:
    """What makes `path` unusable as a store, in a few words, or None."""
    if os.path.isdir(path):
        return "it is a directory"
    folder = os.path.dirname(os.path.abspath(path)) or "."
    if not os.path.isdir(folder):
        return f"its folder {folder} does not exist"
    if not os.path.exists(path) and not os.access(folder, os.W_OK | os.X_OK):
        return f"its folder {folder} is not writable"
    if os.path.exists(path) and not os.access(path, os.R_OK | os.W_OK):
        return "it is not readable and writable"
    return None


class _Body:
    """An instance's steps, events and timeline as far as this process has read them."""

    __slots__ = ("events", "next_seq", "steps", "timeline")

    def __init__(self) -> None:
        # A step read from the file stays JSON text until the engine first asks for it.
        self.steps: dict[str, StepRecord | str] = {}
        self.events: dict[int, EventRecord] = {}
        self.timeline: list[TimelineEntry] | None = None  # None: not read from the file yet
        self.next_seq: int | None = None  # the next timeline row's seq; None: not read yet


class _Pending:
    """One instance's writes waiting for the next transaction, merged per row."""

    __slots__ = ("events", "meta", "steps", "timeline", "wipe")

    def __init__(self) -> None:
        self.meta: InstanceMeta | None = None
        self.wipe = False
        self.steps: dict[str, StepRecord | None] = {}
        self.events: dict[int, EventRecord] = {}
        self.timeline: list[TimelineEntry] = []


class SqliteStore:
    """A SQLite file in WAL mode (see the module docstring for its layout and costs).

    A file that is not an awf store (another app's database, an unknown schema version, not
    SQLite at all) is refused with a StoreError, as is a store another process has open.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        problem = _path_problem(self.path)
        if problem is not None:
            raise StoreError(f"cannot use {self.path} as a store: {problem}")
        try:
            self._conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open store {self.path}: {exc}") from None
        try:
            self._open()
        except StoreError:
            self._conn.close()
            raise
        except sqlite3.Error as exc:
            self._conn.close()
            raise StoreError(
                f"cannot use {self.path} as a store: {exc} (is it an awf store?)"
            ) from None
        try:
            _lock(self.path)
        except BaseException:
            self._conn.close()
            raise
        self._metas: dict[str, InstanceMeta] = {}
        self._bodies: dict[str, _Body] = {}
        self._pending: dict[str, _Pending] = {}
        try:
            for iid, data in self._conn.execute("SELECT id, data FROM instances ORDER BY rowid"):
                self._metas[iid] = _loads(data)
        except (sqlite3.Error, ValueError) as exc:
            self.close()
            raise StoreError(f"store {self.path} is damaged: {exc}") from None

    def _open(self) -> None:
        c = self._conn
        tables = {
            row[0]
            for row in c.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            if not row[0].startswith("sqlite_")
        }
        app_id = c.execute("PRAGMA application_id").fetchone()[0]
        version = c.execute("PRAGMA user_version").fetchone()[0]
        if app_id not in (0, APPLICATION_ID) or (tables - _TABLES):
            foreign = ", ".join(sorted(tables - _TABLES)) or f"application id {app_id:#x}"
            raise StoreError(
                f"refusing {self.path}: it is not an awf store (it holds {foreign}); "
                "give --store a new file or one awf made"
            )
        if app_id == APPLICATION_ID and version not in _READS:
            raise StoreError(
                f"refusing {self.path}: an awf store of schema version {version}, this awf "
                f"reads versions {', '.join(map(str, _READS))} (open it with the awf that "
                "wrote it, or give --store a new file)"
            )
        c.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode: a commit survives the process being killed (not power loss).
        c.execute("PRAGMA synchronous=NORMAL")
        c.executescript(_SCHEMA)
        if app_id == 0 or version != SCHEMA_VERSION:  # new, unstamped, or version 1
            # One transaction for both header fields: a process killed between them must not
            # leave a store stamped as awf's with no schema version (refused on the next open).
            c.execute("BEGIN")
            c.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            c.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            c.execute("COMMIT")

    def _damaged(self, exc: Exception) -> StoreError:
        return StoreError(f"store {self.path} is damaged: {exc}")

    def _body(self, iid: str) -> _Body:
        """The instance's steps and events, read from the file on first use."""
        body = self._bodies.get(iid)
        if body is not None:
            return body
        if iid not in self._metas:
            raise KeyError(iid)
        body = self._bodies[iid] = _Body()
        try:
            c = self._conn
            steps = body.steps
            for key, data in c.execute(
                "SELECT key, data FROM steps WHERE instance = ? ORDER BY rowid", (iid,)
            ):
                steps[key] = data
            for seq, data in c.execute(
                "SELECT seq, data FROM events WHERE instance = ? ORDER BY seq", (iid,)
            ):
                body.events[seq] = _loads(data)
        except (sqlite3.Error, ValueError) as exc:
            del self._bodies[iid]
            raise self._damaged(exc) from None
        return body

    def instance_ids(self) -> list[str]:
        return list(self._metas)

    def get_instance(self, iid: str) -> InstanceMeta | None:
        return self._metas.get(iid)

    def get_step(self, iid: str, key: str) -> StepRecord | None:
        body = self._bodies.get(iid) or self._body(iid)
        rec = body.steps.get(key)
        if type(rec) is str:
            rec = body.steps[key] = self._decode(rec)
        return cast("StepRecord | None", rec)

    def _decode(self, data: str) -> StepRecord:
        try:
            return cast(StepRecord, _loads(data))
        except ValueError as exc:
            raise self._damaged(exc) from None

    def steps(self, iid: str) -> dict[str, StepRecord]:
        steps = self._body(iid).steps
        for key, rec in steps.items():
            if isinstance(rec, str):
                steps[key] = self._decode(rec)
        return cast(dict[str, StepRecord], dict(steps))

    def events(self, iid: str) -> list[EventRecord]:
        return list(self._body(iid).events.values())

    def timeline(self, iid: str) -> list[TimelineEntry]:
        body = self._body(iid)
        if body.timeline is None:
            entries: list[TimelineEntry] = []
            try:
                for (data,) in self._conn.execute(
                    "SELECT data FROM timeline WHERE instance = ? ORDER BY seq", (iid,)
                ):
                    row = _loads(data)
                    if isinstance(row, list):
                        entries.extend(row)
                    else:  # schema version 1: one entry a row
                        entries.append(row)
            except (sqlite3.Error, ValueError) as exc:
                raise self._damaged(exc) from None
            pending = self._pending.get(iid)
            if pending is not None:
                entries.extend(pending.timeline)
            body.timeline = entries
        return body.timeline

    def commit(
        self,
        iid: str,
        *,
        meta: InstanceMeta | None = None,
        steps: Mapping[str, StepRecord | None] | None = None,
        events: Iterable[EventRecord] = (),
        timeline: Iterable[TimelineEntry] = (),
        wipe_steps: bool = False,
        defer: bool = False,
    ) -> None:
        body = self._bodies.get(iid)
        if body is None:
            if iid in self._metas:
                body = self._body(iid)
            elif meta is None:
                raise KeyError(iid)  # an instance begins with its meta record
            else:
                body = self._bodies[iid] = _Body()  # new: nothing to read from the file
                body.timeline = []
                body.next_seq = 0
        pending = self._pending.get(iid)
        if pending is None:
            pending = self._pending[iid] = _Pending()
        if not isinstance(timeline, list):
            timeline = list(timeline)
        events = events if isinstance(events, list | tuple) else list(events)
        if meta is not None:
            pending.meta = meta
        if wipe_steps:
            pending.wipe = True
            pending.steps.clear()
            pending.events.clear()
        if steps:
            pending.steps.update(steps)
        for ev in events:
            pending.events[ev["seq"]] = ev
        pending.timeline += timeline
        if not defer:
            self._write()
        # Memory follows the file: what a failed write did not store is not read either.
        if meta is not None:
            self._metas[iid] = meta
        if wipe_steps:
            body.steps = {}
            body.events = {}
        if steps:
            for key, rec in steps.items():
                if rec is None:
                    body.steps.pop(key, None)
                else:
                    body.steps[key] = rec
        for ev in events:
            body.events[ev["seq"]] = ev
        if body.timeline is not None:
            body.timeline += timeline

    def flush(self) -> None:
        if self._pending:
            self._write()

    def _write(self) -> None:
        """One transaction with every pending write."""
        pending, self._pending = self._pending, {}
        c = self._conn
        seqs: list[tuple[_Body, int]] = []
        c.execute("BEGIN")
        try:
            for iid, p in pending.items():
                if p.meta is not None:
                    c.execute(_PUT_META, (iid, _dumps(p.meta)))
                if p.wipe:
                    c.execute("DELETE FROM steps WHERE instance = ?", (iid,))
                    c.execute("DELETE FROM events WHERE instance = ?", (iid,))
                if p.steps:
                    puts = []
                    for key, rec in p.steps.items():
                        if rec is None:
                            c.execute(_DEL_STEP, (iid, key))
                        else:
                            puts.append((iid, key, _dumps(rec)))
                    c.executemany(_PUT_STEP, puts)
                for seq, ev in p.events.items():
                    c.execute(_PUT_EVENT, (iid, seq, _dumps(ev)))
                if p.timeline:
                    body = self._bodies[iid]
                    row = body.next_seq
                    if row is None:
                        (top,) = c.execute(
                            "SELECT max(seq) FROM timeline WHERE instance = ?", (iid,)
                        ).fetchone()
                        row = 0 if top is None else top + 1
                    c.execute(_PUT_TIMELINE, (iid, row, _dumps(p.timeline)))
                    seqs.append((body, row + 1))
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            raise
        for body, seq in seqs:
            body.next_seq = seq

    def close(self) -> None:
        if self._conn is not None:
            try:
                self.flush()
            finally:
                self._conn.close()
                self._conn = None  # type: ignore[assignment]
                _unlock(self.path)
