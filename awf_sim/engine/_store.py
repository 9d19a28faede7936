"""Where an instance's durable state lives: in memory (default) or in a SQLite file.

The engine keeps no durable fact anywhere else: a simulated crash drops the engine and keeps
the store, and recovery replays from it. Every change goes through `commit`, one transaction
for SQLite, so whatever was committed survives a crash of the process and nothing else does.

Records are flat dicts of JSON values (results are already JSON text), so the memory store
can keep them without copying and the SQLite store can write them as JSON.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterable, Mapping
from typing import Any, Protocol, cast

from awf_sim.engine._timeline import TimelineEntry
from awf_sim.errors import StoreError

__all__ = ["MemoryStore", "SqliteStore", "Store", "open_store"]

Record = dict[str, Any]


class Store(Protocol):
    def instance_ids(self) -> list[str]: ...
    def get_instance(self, iid: str) -> Record | None: ...
    def get_step(self, iid: str, key: str) -> Record | None: ...
    def steps(self, iid: str) -> dict[str, Record]: ...
    def events(self, iid: str) -> list[Record]: ...
    def timeline(self, iid: str) -> list[TimelineEntry]: ...
    def commit(
        self,
        iid: str,
        *,
        meta: Record | None = None,
        steps: Mapping[str, Record | None] | None = None,
        events: Iterable[Record] = (),
        timeline: Iterable[TimelineEntry] = (),
        wipe_steps: bool = False,
    ) -> None: ...
    def close(self) -> None: ...


class _Instance:
    __slots__ = ("events", "meta", "steps", "timeline")

    def __init__(self) -> None:
        self.meta: Record = {}
        self.steps: dict[str, Record] = {}
        self.events: dict[int, Record] = {}
        self.timeline: list[TimelineEntry] = []


class MemoryStore:
    """The default store: plain dicts that outlive the engine's simulated crashes."""

    def __init__(self) -> None:
        self._data: dict[str, _Instance] = {}

    def instance_ids(self) -> list[str]:
        return list(self._data)

    def get_instance(self, iid: str) -> Record | None:
        inst = self._data.get(iid)
        return inst.meta if inst is not None else None

    def get_step(self, iid: str, key: str) -> Record | None:
        return self._data[iid].steps.get(key)

    def steps(self, iid: str) -> dict[str, Record]:
        return dict(self._data[iid].steps)

    def events(self, iid: str) -> list[Record]:
        return list(self._data[iid].events.values())

    def timeline(self, iid: str) -> list[TimelineEntry]:
        return self._data[iid].timeline

    def commit(
        self,
        iid: str,
        *,
        meta: Record | None = None,
        steps: Mapping[str, Record | None] | None = None,
        events: Iterable[Record] = (),
        timeline: Iterable[TimelineEntry] = (),
        wipe_steps: bool = False,
    ) -> None:
        inst = self._data.get(iid)
        if inst is None:
            inst = self._data[iid] = _Instance()
        if meta is not None:
            inst.meta = meta
        if wipe_steps:
            inst.steps = {}
            inst.events = {}
        if steps:
            for key, rec in steps.items():
                if rec is None:
                    inst.steps.pop(key, None)
                else:
                    inst.steps[key] = rec
        for ev in events:
            inst.events[ev["seq"]] = ev
        inst.timeline.extend(timeline)

    def close(self) -> None:
        pass


_SCHEMA = """
CREATE TABLE IF NOT EXISTS instances (id TEXT PRIMARY KEY, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS steps (
    instance TEXT NOT NULL, key TEXT NOT NULL, data TEXT NOT NULL, PRIMARY KEY (instance, key));
CREATE TABLE IF NOT EXISTS events (
    instance TEXT NOT NULL, seq INTEGER NOT NULL, data TEXT NOT NULL,
    PRIMARY KEY (instance, seq));
CREATE TABLE IF NOT EXISTS timeline (
    instance TEXT NOT NULL, seq INTEGER NOT NULL, data TEXT NOT NULL,
    PRIMARY KEY (instance, seq));
"""


# Stamped into every awf store (PRAGMA application_id, user_version), so that a file that is
# not one, or one of another schema version, is refused instead of written to.
APPLICATION_ID = 0x61776631  # "awf1"
SCHEMA_VERSION = 1
_TABLES = frozenset({"instances", "steps", "events", "timeline"})

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


class SqliteStore:
    """A SQLite file in WAL mode; one transaction per commit.

    Reads are served from a mirror of what was committed, so the engine's hot path never
    queries SQLite; a new process (or `Simulator(store=path)`) loads the mirror from the file.
    A file that is not an awf store (another app's database, another schema version, not
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
        self._mirror = MemoryStore()
        try:
            self._load()
        except (sqlite3.Error, ValueError, KeyError, TypeError) as exc:
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
        if app_id == APPLICATION_ID and version != SCHEMA_VERSION:
            raise StoreError(
                f"refusing {self.path}: an awf store of schema version {version}, this awf "
                f"reads version {SCHEMA_VERSION}"
            )
        c.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode: a commit survives the process being killed (not power loss).
        c.execute("PRAGMA synchronous=NORMAL")
        c.executescript(_SCHEMA)
        if app_id == 0:  # new, or made before stores were stamped
            # One transaction for both header fields: a process killed between them must not
            # leave a store stamped as awf's with no schema version (refused on the next open).
            c.execute("BEGIN")
            c.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            c.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            c.execute("COMMIT")

    def _load(self) -> None:
        m = self._mirror
        for iid, data in self._conn.execute("SELECT id, data FROM instances"):
            m.commit(iid, meta=json.loads(data))
        for iid, key, data in self._conn.execute("SELECT instance, key, data FROM steps"):
            m.commit(iid, steps={key: json.loads(data)})
        for iid, data in self._conn.execute(
            "SELECT instance, data FROM events ORDER BY instance, seq"
        ):
            m.commit(iid, events=[json.loads(data)])
        for iid, data in self._conn.execute(
            "SELECT instance, data FROM timeline ORDER BY instance, seq"
        ):
            m.commit(iid, timeline=[cast(TimelineEntry, json.loads(data))])

    def instance_ids(self) -> list[str]:
        return self._mirror.instance_ids()

    def get_instance(self, iid: str) -> Record | None:
        return self._mirror.get_instance(iid)

    def get_step(self, iid: str, key: str) -> Record | None:
        return self._mirror.get_step(iid, key)

    def steps(self, iid: str) -> dict[str, Record]:
        return self._mirror.steps(iid)

    def events(self, iid: str) -> list[Record]:
        return self._mirror.events(iid)

    def timeline(self, iid: str) -> list[TimelineEntry]:
        return self._mirror.timeline(iid)

    def commit(
        self,
        iid: str,
        *,
        meta: Record | None = None,
        steps: Mapping[str, Record | None] | None = None,
        events: Iterable[Record] = (),
        timeline: Iterable[TimelineEntry] = (),
        wipe_steps: bool = False,
    ) -> None:
        events = list(events)
        timeline = list(timeline)
        c = self._conn
        base = len(self._mirror.timeline(iid)) if self._mirror.get_instance(iid) else 0
        c.execute("BEGIN")
        try:
            if meta is not None:
                c.execute(
                    "INSERT OR REPLACE INTO instances (id, data) VALUES (?, ?)",
                    (iid, json.dumps(meta)),
                )
            if wipe_steps:
                c.execute("DELETE FROM steps WHERE instance = ?", (iid,))
                c.execute("DELETE FROM events WHERE instance = ?", (iid,))
            if steps:
                for key, rec in steps.items():
                    if rec is None:
                        c.execute("DELETE FROM steps WHERE instance = ? AND key = ?", (iid, key))
                    else:
                        c.execute(
                            "INSERT OR REPLACE INTO steps (instance, key, data) VALUES (?, ?, ?)",
                            (iid, key, json.dumps(rec)),
                        )
            for ev in events:
                c.execute(
                    "INSERT OR REPLACE INTO events (instance, seq, data) VALUES (?, ?, ?)",
                    (iid, ev["seq"], json.dumps(ev)),
                )
            c.executemany(
                "INSERT INTO timeline (instance, seq, data) VALUES (?, ?, ?)",
                [(iid, base + i, json.dumps(e)) for i, e in enumerate(timeline)],
            )
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            raise
        self._mirror.commit(
            iid, meta=meta, steps=steps, events=events, timeline=timeline, wipe_steps=wipe_steps
        )

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None  # type: ignore[assignment]
            _unlock(self.path)


def open_store(store: Store | str | os.PathLike[str] | None) -> Store:
    """None: a new memory store; a path: a SQLite store at that path; a Store: itself."""
    if store is None:
        return MemoryStore()
    if isinstance(store, str | os.PathLike):
        return SqliteStore(store)
    return store
