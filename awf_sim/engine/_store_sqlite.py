"""The SQLite store: a file in WAL mode, one transaction per durable commit.

Layout (schema version 2): one append-only table, every write in commit order,

    log (seq, instance, kind, key, data)

where a row is an instance's meta record (kind `m`), a step record (`s`, `key` the step's key),
a step's result (`v`: the step's stored record with state done and this value, the result's
JSON text, so the common case encodes nothing), a step's removal (`d`), an event (`e`, `key` its
seq), the removal of an instance's steps and events (`w`), or the timeline entries one
transaction added to an instance (`t`, a JSON array). The latest row of a key wins. A
transaction appends its rows next to each other, so it dirties one page or two of one table,
not a page per table and index: that is most of what a commit costs (measured: 19 us against 57
for the same rows upserted into a table per kind). A version-1 store (a table per kind, updated
in place) is converted on open.

What makes a step cost one transaction: a commit made with `defer=True` (a step's result, a
lifetime's start) is kept in memory and written in the transaction of the next commit, so a
result's checkpoint shares a transaction with the start of the next attempt; an instance's
pending writes are merged (one timeline row, one row per step key); a transaction's rows go in
one multi-row INSERT, which autocommits (no BEGIN and COMMIT to send), and its text depends only
on the row count, so sqlite3's statement cache prepares it once.

Reads are served from memory, so the engine's hot path never queries SQLite; a new process reads
lazily: the meta records when the store opens, the steps and events of all instances in one scan
of the log when one of them is first needed (a step record stays JSON text until it is read), an
instance's timeline only when asked for. Recovery of one deep instance thus decodes each of its
step records once and none of its timeline.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable, Iterable, Mapping
from typing import Any, cast

from awf_sim.engine._records import EventRecord, InstanceMeta, StepRecord
from awf_sim.engine._timeline import Row, TimelineEntry, as_entries, as_row
from awf_sim.errors import StoreError

__all__ = ["APPLICATION_ID", "SCHEMA_VERSION", "SqliteStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS log (
    seq INTEGER PRIMARY KEY, instance TEXT NOT NULL, kind TEXT NOT NULL, key TEXT, data TEXT);
"""
# Version 1, converted on open: a table per kind, rows updated in place.
_V1_TABLES = frozenset({"instances", "steps", "events", "timeline"})
_FROM_V1 = """
INSERT INTO log (instance, kind, key, data)
    SELECT id, 'm', NULL, data FROM instances ORDER BY rowid;
INSERT INTO log (instance, kind, key, data)
    SELECT instance, 's', key, data FROM steps ORDER BY rowid;
INSERT INTO log (instance, kind, key, data)
    SELECT instance, 'e', CAST(seq AS TEXT), data FROM events ORDER BY instance, seq;
INSERT INTO log (instance, kind, key, data)
    SELECT instance, 't', NULL, '[' || data || ']' FROM timeline ORDER BY instance, seq;
DROP TABLE instances;
DROP TABLE steps;
DROP TABLE events;
DROP TABLE timeline;
"""

_APPEND = "INSERT INTO log (instance, kind, key, data) VALUES (?, ?, ?, ?)"
_ONE_STATEMENT = 64  # rows a transaction writes as one multi-row INSERT (4 parameters each)
_APPEND_ROWS: dict[int, str] = {}

# Stamped into every awf store (PRAGMA application_id, user_version), so that a file that is
# not one, or one of an unknown schema version, is refused instead of written to.
APPLICATION_ID = 0x61776631  # "awf1"
SCHEMA_VERSION = 2
_TABLES = frozenset({"log"})


def _encoder() -> Callable[[object], str]:
    """`json.dumps` with compact separators, calling the C encoder directly when there is one:
    a third cheaper per record than through `JSONEncoder.encode` (a write encodes two or three
    records a step). Records hold JSON values only and never cycles, so no cycle check."""
    fallback = json.JSONEncoder(separators=(",", ":"), check_circular=False)
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # pragma: no cover - CPython builds without _json
        return fallback.encode
    chunks = make(
        None,
        fallback.default,
        json.encoder.encode_basestring_ascii,
        None,
        ":",
        ",",
        False,
        False,
        True,
    )

    def dumps(value: object) -> str:
        return "".join(chunks(value, 0))

    return dumps


_dumps = _encoder()
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
    """An instance's steps and events as far as this process has read them, and its timeline."""

    __slots__ = ("events", "steps", "timeline")

    def __init__(self, timeline: list[Any] | None) -> None:
        # A step read from the file stays JSON text until the engine first asks for it: its
        # record's text, or that and the value of the result row written on top of it.
        self.steps: dict[str, StepRecord | str | tuple[str, str]] = {}
        self.events: dict[int, EventRecord] = {}
        self.timeline = timeline  # rows back to back (`_timeline.Row`); None: not read yet


class _Pending:
    """One instance's writes waiting for the next transaction, merged per row."""

    __slots__ = ("base", "events", "meta", "steps", "timeline", "wipe")

    def __init__(self) -> None:
        self.meta: InstanceMeta | None = None
        self.wipe = False
        self.steps: dict[str, StepRecord | None] = {}
        self.base: dict[str, object] = {}  # per step key: its record in the file, if any
        self.events: dict[int, EventRecord] = {}
        self.timeline: list[Any] = []  # rows back to back


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
        self._read_all = False  # whether the log's steps and events were read
        self._pending: dict[str, _Pending] = {}
        try:  # a scan of the log that decodes only the meta rows (a few per instance)
            for iid, data in self._conn.execute(
                "SELECT instance, data FROM log WHERE kind = 'm' ORDER BY seq"
            ):
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
        if app_id == APPLICATION_ID and version not in (1, SCHEMA_VERSION):
            raise StoreError(
                f"refusing {self.path}: an awf store of schema version {version}, this awf "
                f"reads versions 1 and {SCHEMA_VERSION} (open it with the awf that wrote it, or "
                "give --store a new file)"
            )
        # Version 1 (stamped, or made before stores were stamped) holds a table per kind.
        v1 = bool(tables) and tables <= _V1_TABLES and version in (0, 1)
        if app_id not in (0, APPLICATION_ID) or (tables - _TABLES and not v1):
            foreign = ", ".join(sorted(tables - _TABLES)) or f"application id {app_id:#x}"
            raise StoreError(
                f"refusing {self.path}: it is not an awf store (it holds {foreign}); "
                "give --store a new file or one awf made"
            )
        c.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode: a commit survives the process being killed (not power loss).
        c.execute("PRAGMA synchronous=NORMAL")
        if app_id == APPLICATION_ID and version == SCHEMA_VERSION:
            return
        # New, unstamped, or version 1: the layout and both header fields in one transaction,
        # so a process killed meanwhile leaves the file as it was (a store stamped as awf's
        # with no schema version would be refused on the next open).
        c.execute("BEGIN")
        try:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    c.execute(statement)
            if v1:
                for statement in _FROM_V1.split(";"):
                    if statement.strip():
                        c.execute(statement)
            c.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            c.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            raise

    def _damaged(self, exc: Exception) -> StoreError:
        return StoreError(f"store {self.path} is damaged: {exc}")

    def _body(self, iid: str) -> _Body:
        """The instance's steps and events; the first call reads every instance's from the log
        (one scan, not one per instance: recovery asks for all unfinished ones)."""
        body = self._bodies.get(iid)
        if body is not None:
            return body
        if iid not in self._metas:
            raise KeyError(iid)
        if not self._read_all:
            self._read_log()
        return self._bodies[iid]

    def _read_log(self) -> None:
        self._read_all = True
        fresh = {iid: _Body(None) for iid in self._metas if iid not in self._bodies}
        # One instance's rows mostly follow each other: its body is looked up once per run of
        # rows, not once per row (recovery after a crash deep into a run reads two per step).
        last: object = None
        body: _Body | None = None
        try:
            for iid, kind, key, data in self._conn.execute(
                "SELECT instance, kind, key, data FROM log WHERE kind != 't' ORDER BY seq"
            ):
                if iid != last:
                    last, body = iid, fresh.get(iid)
                if body is None:
                    continue  # made by this process (already in memory), or a meta row
                if kind == "v":
                    steps = body.steps
                    held = steps.get(key)
                    if type(held) is not str:
                        raise ValueError(f"a result row for {key!r} without its step record")
                    steps[key] = (held, data)  # decoded with its record, when read
                elif kind == "s":
                    body.steps[key] = data
                elif kind == "d":
                    body.steps.pop(key, None)
                elif kind == "e":
                    body.events[int(key)] = _loads(data)
                elif kind == "w":
                    body.steps.clear()
                    body.events.clear()
        except (sqlite3.Error, ValueError) as exc:
            self._read_all = False
            raise self._damaged(exc) from None
        self._bodies.update(fresh)

    def instance_ids(self) -> list[str]:
        return list(self._metas)

    def last_ms(self) -> int:
        """The latest virtual time the store recorded (0 when it holds nothing): where the
        clock of an engine that opens it goes on. The newest timeline row holds it (a commit
        appends one), read without the instances' timelines."""
        latest = max(
            (max(m["created_ms"], m["paused_ms"] or 0) for m in self._metas.values()), default=0
        )
        try:
            row = self._conn.execute(
                "SELECT data FROM log WHERE kind = 't' ORDER BY seq DESC LIMIT 1"
            ).fetchone()
            if row is not None:
                latest = max([latest, *(e["at_ms"] for e in _loads(row[0]))])
        except (sqlite3.Error, ValueError, TypeError, KeyError) as exc:
            raise self._damaged(exc) from None
        for p in self._pending.values():
            latest = max([latest, *(e["at_ms"] for e in as_entries(p.timeline))])
        return int(latest)

    def get_instance(self, iid: str) -> InstanceMeta | None:
        return self._metas.get(iid)

    def get_step(self, iid: str, key: str) -> StepRecord | None:
        body = self._bodies.get(iid) or self._body(iid)
        rec = body.steps.get(key)
        if rec is not None and type(rec) is not dict:
            # This record only: a replay reads done steps as their value text
            # (result_or_step), so after a crash deep into a run the one record asked for is
            # the step in flight, not the thousands before it.
            rec = body.steps[key] = self._decoded(rec)
        return rec

    def _decoded(self, held: object) -> StepRecord:
        """A step record held as its text, or as (text, value text) when a result row came
        on top of it."""
        try:
            if type(held) is tuple:
                rec = cast(StepRecord, _loads(held[0]))
                rec["state"] = "done"
                rec["value"] = held[1]
                return rec
            return cast(StepRecord, _loads(cast(str, held)))
        except ValueError as exc:
            raise self._damaged(exc) from None

    def result_or_step(self, iid: str, key: str) -> str | StepRecord | None:
        body = self._bodies.get(iid) or self._body(iid)
        held = body.steps.get(key)
        if type(held) is tuple:  # a result row on top of its record: done, value as stored
            return held[1]
        rec = self.get_step(iid, key)
        if rec is not None and rec["state"] == "done":
            return rec["value"]
        return rec

    def _decode(self, body: _Body) -> None:
        """Decode every step record of the instance still held as text, in one `loads` (a
        replay reads them all, and one call costs two thirds of one call per record)."""
        steps = body.steps
        keys = [key for key, rec in steps.items() if type(rec) is not dict]
        if not keys:
            return
        texts = []
        for key in keys:
            held = steps[key]
            texts.append(held if type(held) is str else cast(tuple[str, str], held)[0])
        try:
            recs = _loads("[" + ",".join(texts) + "]")
        except ValueError as exc:
            raise self._damaged(exc) from None
        for key, rec in zip(keys, recs, strict=True):
            held = steps[key]
            if type(held) is tuple:  # a result row on top of its stored record
                rec["state"] = "done"
                rec["value"] = held[1]
            steps[key] = rec

    def steps(self, iid: str) -> dict[str, StepRecord]:
        body = self._body(iid)
        self._decode(body)
        return cast(dict[str, StepRecord], dict(body.steps))

    def events(self, iid: str) -> list[EventRecord]:
        return list(self._body(iid).events.values())

    def timeline(self, iid: str) -> list[TimelineEntry]:
        body = self._body(iid)
        if body.timeline is None:
            rows: list[Any] = []
            try:
                for (data,) in self._conn.execute(
                    "SELECT data FROM log WHERE instance = ? AND kind = 't' ORDER BY seq", (iid,)
                ):
                    for e in _loads(data):
                        rows += as_row(e)
            except (sqlite3.Error, ValueError) as exc:
                raise self._damaged(exc) from None
            pending = self._pending.get(iid)
            if pending is not None:
                rows += pending.timeline
            body.timeline = rows
        return as_entries(body.timeline)

    def commit_step(
        self, iid: str, key: str, rec: StepRecord, timeline: list[Row], defer: bool
    ) -> None:
        """`commit` of one step record and its timeline entries (see `Store.commit_step`)."""
        body = self._bodies.get(iid)
        if body is None:
            self.commit(iid, steps={key: rec}, timeline=timeline, defer=defer)
            return
        pending = self._pending.get(iid)
        if pending is None:
            pending = self._pending[iid] = _Pending()
        base = pending.base
        if key not in base:
            base[key] = body.steps.get(key)
        pending.steps[key] = rec
        for r in timeline:
            pending.timeline += r
        if not defer:
            self._write()
        # Memory follows the file: what a failed write did not store is not read either.
        body.steps[key] = rec
        if body.timeline is not None:
            for r in timeline:
                body.timeline += r

    def commit(
        self,
        iid: str,
        *,
        meta: InstanceMeta | None = None,
        steps: Mapping[str, StepRecord | None] | None = None,
        events: Iterable[EventRecord] = (),
        timeline: Iterable[Row] = (),
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
                body = self._bodies[iid] = _Body([])  # new: nothing to read from the file
        pending = self._pending.get(iid)
        if pending is None:
            pending = self._pending[iid] = _Pending()
        if not isinstance(timeline, list):
            timeline = list(timeline)
        if not isinstance(events, list | tuple):
            events = list(events)
        if meta is not None:
            pending.meta = meta
        if wipe_steps:
            pending.wipe = True
            pending.steps.clear()
            pending.base = dict.fromkeys(pending.base)  # nothing of the file is left to patch
            pending.events.clear()
        if steps:
            base = pending.base
            for key in steps:
                if key not in base:
                    base[key] = None if wipe_steps else body.steps.get(key)
            pending.steps.update(steps)
        for ev in events:
            pending.events[ev["seq"]] = ev
        for r in timeline:
            pending.timeline += r
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
        if timeline and body.timeline is not None:
            for r in timeline:
                body.timeline += r

    def flush(self) -> None:
        if self._pending:
            self._write()

    def _write(self) -> None:
        """One transaction with every pending write: one log row per step key, event and
        instance timeline, appended together."""
        pending, self._pending = self._pending, {}
        values: list[str | None] = []  # the rows' columns, one after the other
        add = values.extend
        for iid, p in pending.items():
            if p.meta is not None:
                add((iid, "m", None, _dumps(p.meta)))
            if p.wipe:
                add((iid, "w", None, None))
            base = p.base
            for key, rec in p.steps.items():
                if rec is None:
                    add((iid, "d", key, None))
                    continue
                # A result: its record is the stored one with state done and the value (JSON
                # text already), so the row holds only the value (and nothing to encode).
                old = base.get(key)
                value = rec.get("value")
                if (
                    value is not None
                    and value.isascii()  # else encoded: SQLite text is UTF-8, no lone surrogates
                    and type(old) is dict
                    and "value" not in old
                    and rec == {**old, "state": "done", "value": value}
                ):
                    add((iid, "v", key, value))
                else:
                    add((iid, "s", key, _dumps(rec)))
            for seq, ev in p.events.items():
                add((iid, "e", str(seq), _dumps(ev)))
            if p.timeline:
                add((iid, "t", None, _dumps(as_entries(p.timeline))))
        n = len(values) // 4
        c = self._conn
        if n <= _ONE_STATEMENT:
            # One statement is one transaction (autocommit), atomic by itself: no BEGIN and
            # COMMIT to send. Its text depends only on the row count, so each is prepared once.
            sql = _APPEND_ROWS.get(n)
            if sql is None:
                sql = _APPEND_ROWS[n] = _APPEND + ", (?, ?, ?, ?)" * (n - 1)
            c.execute(sql, values)
            return
        rows = [values[i : i + 4] for i in range(0, len(values), 4)]
        c.execute("BEGIN")
        try:
            c.executemany(_APPEND, rows)
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            raise

    def close(self) -> None:
        if self._conn is not None:
            try:
                self.flush()
            finally:
                self._conn.close()
                self._conn = None  # type: ignore[assignment]
                _unlock(self.path)
