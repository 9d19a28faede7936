"""Capture a simulator at the start of a recovery, and resume another one from that capture.

Chaos runs many fault plans against one workflow, and every plan's run is deterministic: runs
that crash the same way at the same point are the same run up to the recovery that follows.
`capture` takes, when a lifetime of kind "recover" begins after a crash, everything the rest
of the run can observe: the instance's store records (minus the "recover" entry just written),
the database image, the virtual time, the wall-clock offset and the random state. `resume`
puts a fresh simulator in that state and schedules the same recovery, so that running it on
is the run it was captured from, continued (chaos/_memo proves it on many plans).

A capture is refused (None) whenever something else could still be pending or outside it: a
second instance or lifetime, a ready callback or timer, a thread, an open transaction or a
changed schema, or AI/HTTP clients and recorded effects (their state is the user's mocks').
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from typing import Any

from awf_sim.engine._randomstate import GlobalRandomSwap, copy_state
from awf_sim.engine._records import EventRecord, InstanceMeta, StepRecord
from awf_sim.engine._simulator import Simulator
from awf_sim.engine._store import MemoryStore
from awf_sim.engine._timeline import Row, as_row
from awf_sim.sdk._db import Database, DatabaseHandle

__all__ = ["Capture", "capture", "database_image", "resume"]


@dataclass(frozen=True, slots=True)
class Capture:
    """A simulator's state as a recovery of instance `iid` begins."""

    iid: str
    now_ms: int
    epoch_ms: int
    rng: random.Random
    meta: InstanceMeta
    steps: dict[str, StepRecord]
    events: list[EventRecord]
    # As committed, without the "recover" entry the restart writes again; from a memory
    # store, its rows back to back in one tuple (a memory store commits them as they were).
    timeline: list[Row]
    db: Any  # the database spec to resume with (the image as it was), or None: the world's


class _ImageDatabase(Database):
    """A Database spec whose rows are those of an image taken mid-run: a shallow copy of the
    original spec (same schema, tables and connection pool) with another image."""

    def __init__(self, spec: Database, image: bytes) -> None:
        self.__dict__.update(spec.__dict__)  # copy.copy's result, without its reduce protocol
        self._image = image


def _forgets_dead_task(handle: Any) -> bool:
    """A crashed lifetime's task, done, leaving its lifetime's task set: nothing that a later
    part of the run can see (the new lifetime has a set of its own)."""
    callback = handle._callback
    return (
        getattr(callback, "__name__", None) == "discard"
        and type(getattr(callback, "__self__", None)) is set
        and len(handle._args) == 1
        and isinstance(handle._args[0], asyncio.Task)
        and handle._args[0].done()
    )


def capture(sim: Simulator, iid: str) -> Capture | None:
    """Called while a "recover" lifetime of `iid` starts (from `Hooks.lifetime_start`)."""
    loop = sim._loop
    if (
        list(sim._lifetimes) != [iid]
        or sim._evicted
        or not all(map(_forgets_dead_task, loop._ready))  # type: ignore[attr-defined]
        or loop._threads_pending
        or any(not h.cancelled() for h in loop._scheduled)  # type: ignore[attr-defined]
        or sim.hooks is None
        or sim.hooks.pending()
    ):
        return None
    services = sim._services
    if services._ai_client is not None or services._http_client is not None:
        return None
    if services._effects is not None and len(services._effects):
        return None
    # Never connected: the database is still the one this simulator started with (an image,
    # when it was itself resumed from a capture).
    db: Any = services.db_spec if type(services.db_spec) is _ImageDatabase else None
    handle = services._db
    if handle is not None:
        spec = services.db_spec
        if type(spec) is not Database or type(handle) is not DatabaseHandle:
            return None
        conn = handle._conn
        session = handle._session
        if conn.in_transaction or not session.reusable or handle._tables is None:
            return None
        db = _ImageDatabase(spec, conn.serialize())
    glob = GlobalRandomSwap.target()
    if glob is None:
        return None
    rng = random.Random(0)
    copy_state(rng, glob)
    store = sim._store
    meta = store.get_instance(iid)
    rows = _rows_before_recover(store, iid)
    if meta is None or rows is None:
        return None
    return Capture(
        iid, sim.now_ms, sim._epoch_ms, rng, meta, store.steps(iid), store.events(iid), rows, db
    )


def _rows_before_recover(store: Any, iid: str) -> list[Row] | None:
    """The instance's timeline rows without its last, which must be the "recover" entry just
    written; None if it is not. A memory store's rows are read as they are kept (back to back
    in one list: the rows before the last, as one tuple, commit as they were), not made into
    entry dicts and back."""
    if type(store) is MemoryStore:
        flat = store._data[iid].timeline
        last = -1
        i, end = 0, len(flat)
        while i < end:
            last = i
            i += 6 + len(flat[i])  # the row's extra keys, then the five fixed fields
        if last < 0 or flat[last + 2] != "recover":
            return None
        return [tuple(flat[:last])] if last else []
    timeline = store.timeline(iid)
    if not timeline or timeline[-1]["kind"] != "recover":
        return None
    return [as_row(e) for e in timeline[:-1]]


def resume(sim: Simulator, cap: Capture, workflow: Any) -> None:
    """Put `sim` (fresh, built on the captured world, with `cap.db` as its database when it is
    not None) in the captured state, with the recovery scheduled: driving it runs it."""
    sim.register(workflow)
    sim._store.commit(
        cap.iid, meta=cap.meta, steps=cap.steps, events=cap.events, timeline=cap.timeline
    )
    sim._loop._set_now(cap.now_ms)
    sim._epoch_ms = cap.epoch_ms
    copy_state(sim._rng, cap.rng)
    sim._loop.call_soon(sim._restart_after_crash, cap.iid)


def database_image(sim: Simulator) -> bytes | None:
    """The simulator's database as SQLite serializes it (None: not a plain simulated one).
    Equal images hold equal rows, so chaos reuses the digest of an image it has seen."""
    handle = sim._services._db
    if type(handle) is not DatabaseHandle or handle._conn.in_transaction:
        return None
    return handle._conn.serialize()
