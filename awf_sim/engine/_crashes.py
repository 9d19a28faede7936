"""How the simulator dies at a crash point and comes back: a crash is written to the
timeline, the lifetime ends, and the instance restarts (replaying from its store) at once or,
evicted, when its wake-up time comes. A mixin of `Simulator`, which provides what is declared
here."""

from __future__ import annotations

import asyncio
from typing import Unpack

from awf_sim.engine._calls import TERMINAL, Abandoned
from awf_sim.engine._hooks import Crash, StepRef
from awf_sim.engine._lifetime import Lifetime
from awf_sim.engine._loop import VirtualLoop
from awf_sim.engine._records import InstanceMeta
from awf_sim.engine._store import Store
from awf_sim.engine._timeline import EntryDetails, Row

__all__ = ["CrashRestarts"]


class CrashRestarts:
    """Crash points, evictions and restarts of the Simulator's lifetimes."""

    _store: Store
    _loop: VirtualLoop
    _lifetimes: dict[str, Lifetime]
    _evicted: dict[str, tuple[asyncio.TimerHandle, bool]]
    _evicted_sleeping: int

    def _start(self, iid: str, meta: InstanceMeta, *, kind: str) -> None:
        raise NotImplementedError

    def _abort(self, lt: Lifetime) -> None:
        raise NotImplementedError

    def _entry(
        self,
        kind: str,
        path: str | None = None,
        name: str | None = None,
        attempt: int | None = None,
        **details: Unpack[EntryDetails],
    ) -> Row:
        raise NotImplementedError

    def _crash_now(
        self, lt: Lifetime, action: Crash, ref: StepRef | None, attempt: int | None
    ) -> Abandoned:
        """The engine dies here (an injected fault); Cloudflare restarts it and the instance
        replays from whatever the store holds."""
        crash = self._entry(
            "crash",
            ref.path if ref else None,
            ref.name if ref else None,
            attempt,
            fault=action.fault,
        )
        self._store.commit(lt.iid, timeline=[crash])
        self._abort(lt)
        if action.wake_at_ms is None or action.wake_at_ms <= self._loop.now_ms:
            self._loop.call_soon(self._restart_after_crash, lt.iid)
        else:
            wake = self._loop.call_at(action.wake_at_ms / 1000, self._restart_after_crash, lt.iid)
            # Evicted from a sleep, only time wakes it; from an event wait, the outside may.
            needs_time = ref is not None and ref.kind == "sleep"
            self._unevict(lt.iid)
            self._evicted[lt.iid] = (wake, needs_time)
            self._evicted_sleeping += needs_time
        return Abandoned()

    def _unevict(self, iid: str) -> tuple[asyncio.TimerHandle, bool] | None:
        evicted = self._evicted.pop(iid, None)
        if evicted is not None:
            self._evicted_sleeping -= evicted[1]
        return evicted

    def _restart_after_crash(self, iid: str) -> None:
        evicted = self._unevict(iid)
        if evicted is not None:
            evicted[0].cancel()  # also when it ended meanwhile (terminated, paused)
        meta = self._store.get_instance(iid)
        if meta is None or iid in self._lifetimes:
            return
        if meta["status"] in TERMINAL or meta["status"] == "paused":
            return
        self._start(iid, meta, kind="recover")
