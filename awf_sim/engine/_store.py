"""Where an instance's durable state lives: in memory (default) or in a SQLite file.

The engine keeps no durable fact anywhere else: a simulated crash drops the engine and keeps
the store, and recovery replays from it. Every change goes through `commit`; whatever was
committed survives a crash of the process, except a commit made with `defer=True`, which may
wait for the next commit (or `flush`) to reach the disk. The engine defers only what a replay
would redo identically if it were lost (a step's result before the next attempt starts, a
lifetime's start), and flushes before any handler runs and before a run hands control back,
so a SQLite store needs one transaction per step instead of two (`_store_sqlite`).

The records are the TypedDicts of `_records`; results inside them are already JSON text, so
the memory store keeps them without copying and the SQLite store writes them as JSON.
Timeline entries are committed as rows (`_timeline.Row`, tuples) and read back as dicts.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from awf_sim.dsl._errors import DefinitionError
from awf_sim.engine._records import EventRecord, InstanceMeta, StepRecord
from awf_sim.engine._store_sqlite import SqliteStore
from awf_sim.engine._timeline import Row, TimelineEntry, as_entries

__all__ = ["MemoryStore", "SqliteStore", "Store", "open_store", "stored_clock"]


class Store(Protocol):
    def instance_ids(self) -> list[str]: ...
    def get_instance(self, iid: str) -> InstanceMeta | None: ...
    def get_step(self, iid: str, key: str) -> StepRecord | None: ...
    def result_or_step(self, iid: str, key: str) -> str | StepRecord | None:
        """A done step's value (its JSON text), else `get_step`: what a replay asks for every
        step, answered without decoding the record of a step that is done."""

    def steps(self, iid: str) -> dict[str, StepRecord]: ...
    def events(self, iid: str) -> list[EventRecord]: ...
    def timeline(self, iid: str) -> list[TimelineEntry]:
        """Its entries as dicts, new on every call: the caller's to keep or change."""

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
    ) -> None: ...
    def commit_step(
        self, iid: str, key: str, rec: StepRecord, timeline: list[Row], defer: bool
    ) -> None:
        """`commit(iid, steps={key: rec}, timeline=timeline, defer=defer)`: the two commits of
        every step, without the general commit's keyword parsing and branches."""

    def flush(self) -> None:
        """Make every deferred commit durable now."""

    def close(self) -> None: ...


class _Instance:
    __slots__ = ("events", "meta", "steps", "timeline")

    def __init__(self, meta: InstanceMeta) -> None:
        self.meta = meta
        self.steps: dict[str, StepRecord] = {}
        self.events: dict[int, EventRecord] | None = None  # most instances never get one
        self.timeline: list[Any] = []  # its rows back to back (`_timeline.Row`)


class MemoryStore:
    """The default store: plain dicts that outlive the engine's simulated crashes."""

    def __init__(self) -> None:
        self._data: dict[str, _Instance] = {}

    def instance_ids(self) -> list[str]:
        return list(self._data)

    def get_instance(self, iid: str) -> InstanceMeta | None:
        inst = self._data.get(iid)
        return inst.meta if inst is not None else None

    def get_step(self, iid: str, key: str) -> StepRecord | None:
        return self._data[iid].steps.get(key)

    def result_or_step(self, iid: str, key: str) -> str | StepRecord | None:
        rec = self._data[iid].steps.get(key)
        if rec is not None and rec["state"] == "done":
            return rec["value"]
        return rec

    def steps(self, iid: str) -> dict[str, StepRecord]:
        return dict(self._data[iid].steps)

    def events(self, iid: str) -> list[EventRecord]:
        events = self._data[iid].events
        return [] if events is None else list(events.values())

    def timeline(self, iid: str) -> list[TimelineEntry]:
        return as_entries(self._data[iid].timeline)

    def commit(
        self,
        iid: str,
        *,
        meta: InstanceMeta | None = None,
        steps: Mapping[str, StepRecord | None] | None = None,
        events: Iterable[EventRecord] = (),
        timeline: Iterable[Row] = (),
        wipe_steps: bool = False,
        defer: bool = False,  # memory is as durable as it gets: nothing to defer
    ) -> None:
        inst = self._data.get(iid)
        if inst is None:
            if meta is None:
                raise KeyError(iid)  # an instance begins with its meta record
            inst = self._data[iid] = _Instance(meta)
        elif meta is not None:
            inst.meta = meta
        if wipe_steps:
            inst.steps = {}
            inst.events = None
        if steps:
            for key, rec in steps.items():
                if rec is None:
                    inst.steps.pop(key, None)
                else:
                    inst.steps[key] = rec
        for ev in events:
            if inst.events is None:
                inst.events = {}
            inst.events[ev["seq"]] = ev
        rows = inst.timeline
        for r in timeline:
            rows += r

    def commit_step(
        self, iid: str, key: str, rec: StepRecord, timeline: list[Row], defer: bool
    ) -> None:
        inst = self._data[iid]  # as commit: an instance begins with its meta record
        inst.steps[key] = rec
        rows = inst.timeline
        for r in timeline:
            rows += r

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


def stored_clock(store: Store) -> int:
    """The latest virtual time `store` recorded, 0 when it holds nothing: an engine that opens
    a store written by an earlier one (another process, a simulator closed before) is that
    engine's next lifetime, and its clock goes on from there, never back."""
    if isinstance(store, SqliteStore):
        return store.last_ms()  # the newest timeline row, without reading every timeline
    latest = 0
    for iid in store.instance_ids():
        meta = store.get_instance(iid)
        if meta is not None:
            latest = max(latest, meta["created_ms"], meta["paused_ms"] or 0)
        latest = max([latest, *(e["at_ms"] for e in store.timeline(iid))])
    return latest


def open_store(store: Store | str | os.PathLike[str] | None) -> Store:
    """None: a new memory store; a path: a SQLite store at that path; a Store: itself."""
    if store is None:
        return MemoryStore()
    if isinstance(store, str | os.PathLike):
        return SqliteStore(store)
    missing = [m for m in _STORE_METHODS if not callable(getattr(store, m, None))]
    if missing:
        # Found here, not at the first create() as an AttributeError from inside the engine.
        raise DefinitionError(
            f"Simulator: store must be None (in memory), a path (a SQLite file) or a Store, "
            f"got {type(store).__name__}, which has no {missing[0]}()"
            + (f" and {len(missing) - 1} more of a Store's methods" if len(missing) > 1 else "")
        )
    return store


_STORE_METHODS = (
    "instance_ids",
    "get_instance",
    "get_step",
    "result_or_step",
    "steps",
    "events",
    "timeline",
    "commit",
    "commit_step",
    "flush",
    "close",
)
