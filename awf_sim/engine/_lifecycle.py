"""Commands on one instance: events, status, pause, resume, terminate, restart.

A mixin of `Simulator`, apart so that the facade stays readable: these are the operations
`Instance` forwards to, with Cloudflare's rules for each status (SEMANTICS §3, §4). They use
the simulator's store, loop and lifetimes, declared below, and four of its methods.
"""

from __future__ import annotations

import asyncio
from typing import Any, Unpack

from awf_sim.dsl._identity import MAX_PAYLOAD_BYTES, canonical, loads, utf8_size
from awf_sim.dsl._names import validate_instance_id
from awf_sim.engine._calls import TERMINAL
from awf_sim.engine._lifetime import Lifetime
from awf_sim.engine._loop import VirtualLoop
from awf_sim.engine._records import EventRecord, InstanceMeta, StepRecord
from awf_sim.engine._store import Store
from awf_sim.engine._timeline import EntryDetails, TimelineEntry
from awf_sim.engine._waits import deliver
from awf_sim.errors import DefinitionError, InstanceError

__all__ = ["InstanceLifecycle", "checked_instance_id"]


class _InvalidInstanceId(InstanceError, DefinitionError):
    """An instance id Cloudflare's binding refuses. Its text is the binding's own (create() in
    workflows-shared binding.ts), so a conformance trace matches the engine's; awf's hint on
    what an id may hold rides along as a note. Still a DefinitionError (a ValueError)."""


def checked_instance_id(id: object) -> str:
    """`id` if the binding's create() takes it, else the binding's "invalid id" error."""
    try:
        return validate_instance_id(id)
    except DefinitionError as exc:
        err = _InvalidInstanceId("Workflow instance has invalid id")
        err.add_note(str(exc))
        raise err from None


class InstanceLifecycle:
    """The instance commands of the Simulator (which provides what is declared here)."""

    profile: str
    _store: Store
    _loop: VirtualLoop
    _lifetimes: dict[str, Lifetime]
    _evicted: dict[str, tuple[asyncio.TimerHandle, bool]]

    @property
    def now_ms(self) -> int:
        raise NotImplementedError

    def _start(self, iid: str, meta: InstanceMeta, *, kind: str) -> None:
        raise NotImplementedError

    def _program(self, name: str) -> Any:
        raise NotImplementedError

    def _abort(self, lt: Lifetime) -> None:
        raise NotImplementedError

    def _restart_after_crash(self, iid: str) -> None:
        raise NotImplementedError

    def _entry(
        self,
        kind: str,
        path: str | None = None,
        name: str | None = None,
        attempt: int | None = None,
        **details: Unpack[EntryDetails],
    ) -> TimelineEntry:
        raise NotImplementedError

    # -- events ------------------------------------------------------------------------------
    def _send_event(self, iid: str, type: str, payload: Any) -> None:
        meta = self._meta(iid)
        if meta["status"] in TERMINAL:
            if self.profile == "local":
                # Miniflare takes it without a word: receiveEvent buffers it, and waking the
                # finished engine does nothing. Production is undocumented; awf says so there.
                return
            raise InstanceError(
                f"instance {iid!r} is {meta['status']}; it can no longer receive events"
            )
        if not isinstance(type, str) or not type:
            raise DefinitionError(f"event type must be a non-empty string, got {type!r}")
        payload_json = canonical(payload, root="event payload")
        if utf8_size(payload_json) > MAX_PAYLOAD_BYTES:
            raise DefinitionError("event payload is over Cloudflare's 1 MiB limit")
        seq = len(self._store.events(iid))
        ev: EventRecord = {
            "seq": seq,
            "type": type,
            "payload": payload_json,
            "at_ms": self.now_ms,
            "consumed_by": None,
        }
        self._store.commit(
            iid, events=[ev], timeline=[self._entry("event-received", type=type, seq=seq)]
        )
        if iid in self._evicted:
            # An event wakes an evicted instance; its replay consumes the buffered event.
            self._restart_after_crash(iid)
            return
        lt = self._lifetimes.get(iid)
        queue = lt.waiters.get(type) if lt is not None else None
        if lt is not None and queue:
            key, fut = queue.popleft()  # the oldest waiter gets the event
            rec = self._store.get_step(iid, key)
            assert rec is not None
            fut.set_result(deliver(lt, key, rec, ev))

    # -- lifecycle -------------------------------------------------------------------------
    def _meta(self, iid: str) -> InstanceMeta:
        meta = self._store.get_instance(iid)
        if meta is None:
            raise InstanceError(f"instance.not_found: no instance with id {iid!r}")
        return meta

    def _step_outputs(self, iid: str) -> list[Any]:
        steps = self._store.steps(iid)
        payloads = {ev["seq"]: ev["payload"] for ev in self._store.events(iid)}
        out: list[Any] = []
        for e in self._store.timeline(iid):
            if e["kind"] == "checkpoint" and "count" in e:
                rec = steps.get(f"do:{e['name']}#{e['count']}")
                if rec is not None and rec["state"] == "done":
                    out.append(loads(rec["value"]))
            elif e["kind"] == "wait-end" and e.get("seq") in payloads:
                out.append(loads(payloads[e["seq"]]))
        return out

    def _step_results(self, iid: str) -> list[dict[str, Any]]:
        steps = self._store.steps(iid)
        out: list[dict[str, Any]] = []
        for e in self._store.timeline(iid):
            if e["kind"] == "checkpoint" and "count" in e:
                rec = steps.get(f"do:{e['name']}#{e['count']}")
                if rec is not None and rec["state"] == "done":
                    out.append(
                        {
                            "path": e["path"],
                            "name": e["name"],
                            "count": e["count"],
                            "value": loads(rec["value"]),
                        }
                    )
        return out

    def _status(self, iid: str) -> dict[str, Any]:
        meta = self._meta(iid)
        status = meta["status"]
        lt = self._lifetimes.get(iid)
        if (
            status == "running"
            and self.profile == "production"
            and lt is not None
            and lt.executing == 0
            and (lt.blocked or lt.waits_open)
        ):
            status = "waiting"  # hibernating on a sleep or an event (Miniflare stays running)
        output = meta["output"]
        return {
            "status": status,
            "output": loads(output) if output is not None else None,
            "error": dict(meta["error"]) if meta["error"] else None,
        }

    def _pause(self, iid: str) -> None:
        meta = self._meta(iid)
        if meta["status"] not in ("running", "queued"):
            return  # a no-op unless running (Cloudflare)
        lt = self._lifetimes.get(iid)
        if lt is not None and lt.executing:
            # Wait for the running steps; new steps block until then.
            self._store.commit(iid, meta={**meta, "status": "waitingForPause"})
            lt.pause_gate = self._loop.create_future()
            return
        if lt is not None:
            self._complete_pause(lt)
        else:
            self._store.commit(
                iid,
                meta={**meta, "status": "paused", "paused_ms": self.now_ms},
                timeline=[self._entry("paused")],
            )

    def _complete_pause(self, lt: Lifetime) -> None:
        meta = self._meta(lt.iid)
        lt.commit(
            meta={**meta, "status": "paused", "paused_ms": self.now_ms},
            timeline=[self._entry("paused")],
        )
        self._abort(lt)

    def _resume(self, iid: str) -> None:
        meta = self._meta(iid)
        status = meta["status"]
        if status == "waitingForPause":
            lt = self._lifetimes.get(iid)
            if lt is not None and lt.pause_gate is not None:
                gate, lt.pause_gate = lt.pause_gate, None
                gate.set_result(None)
            self._store.commit(
                iid, meta={**meta, "status": "running"}, timeline=[self._entry("resumed")]
            )
            return
        if status != "paused":
            return  # Miniflare ignores resume in other states
        # Timers keep their remaining time: shift every stored deadline by the paused span.
        shift = self.now_ms - (meta["paused_ms"] or self.now_ms)
        moved: dict[str, StepRecord | None] = {}
        for key, rec in self._store.steps(iid).items():
            if rec["state"] != "running":
                continue
            until, deadline, retry_at = rec.get("until"), rec.get("deadline"), rec.get("retry_at")
            if until is not None:
                rec = {**rec, "until": until + shift}
            if deadline is not None:
                rec = {**rec, "deadline": deadline + shift}
            if retry_at is not None:
                rec = {**rec, "retry_at": retry_at + shift}
            moved[key] = rec
        meta = {**meta, "status": "queued", "paused_ms": None}
        self._store.commit(iid, meta=meta, steps=moved)
        self._start(iid, meta, kind="resumed")

    def _terminate(self, iid: str) -> None:
        meta = self._meta(iid)
        if meta["status"] in TERMINAL:
            raise InstanceError(
                "(instance.cannot_terminate) Cannot terminate instance since its on a finite state"
            )
        self._store.commit(
            iid, meta={**meta, "status": "terminated"}, timeline=[self._entry("terminated")]
        )
        lt = self._lifetimes.get(iid)
        if lt is not None:
            self._abort(lt)

    def _restart(self, iid: str) -> None:
        meta = self._meta(iid)
        lt = self._lifetimes.get(iid)
        if lt is not None:
            self._abort(lt)
        # All step state and buffered events go; the original event is run again.
        meta = {**meta, "status": "queued", "output": None, "error": None, "paused_ms": None}
        self._store.commit(iid, meta=meta, wipe_steps=True)
        self._start(iid, meta, kind="restarted")
