"""Commands on one instance: events, status, pause, resume, terminate, restart.

A mixin of `Simulator`, apart so that the facade stays readable: these are the operations
`Instance` forwards to, with Cloudflare's rules for each status (SEMANTICS §3, §4). They use
the simulator's store, loop and lifetimes, declared below, and four of its methods.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, TypedDict, Unpack

from awf_sim.dsl._identity import MAX_PAYLOAD_BYTES, canonical, loads, utf8_size
from awf_sim.dsl._names import validate_instance_id
from awf_sim.engine._calls import TERMINAL
from awf_sim.engine._lifetime import Lifetime
from awf_sim.engine._loop import VirtualLoop
from awf_sim.engine._records import EventRecord, InstanceMeta, StepRecord
from awf_sim.engine._store import Store
from awf_sim.engine._timeline import EntryDetails, Row, TimelineEntry
from awf_sim.errors import DefinitionError, InstanceError

__all__ = ["InstanceLifecycle", "RestartFrom", "checked_instance_id", "started_steps"]


class RestartFrom(TypedDict, total=False):
    """Where `restart` starts over, as Cloudflare's `restart({from})` takes it: the `count`-th
    (default 1st) step called `name` of `type` (default "do"; "sleep", "waitForEvent")."""

    name: str
    count: int
    type: str


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
    ) -> Row:
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
        waiter = lt.take_waiter(type) if lt is not None else None  # the oldest of that type
        if waiter is not None:
            waiter.receive(ev)

    # -- lifecycle -------------------------------------------------------------------------
    def _meta(self, iid: str) -> InstanceMeta:
        meta = self._store.get_instance(iid)
        if meta is None:
            raise InstanceError(f"instance.not_found: no instance with id {iid!r}")
        return meta

    def _step_outputs(self, iid: str) -> list[Any]:
        steps = self._store.steps(iid)
        events = {ev["seq"]: ev for ev in self._store.events(iid)}
        out: list[Any] = []
        for key, e in _completions(self._store.timeline(iid), events):
            if e["kind"] == "checkpoint":
                rec = steps.get(key)
                if rec is not None and rec["state"] == "done":
                    out.append(loads(rec["value"]))
            else:
                out.append(loads(events[e["seq"]]["payload"]))
        return out

    def _step_results(self, iid: str) -> list[dict[str, Any]]:
        steps = self._store.steps(iid)
        out: list[dict[str, Any]] = []
        for key, e in _completions(self._store.timeline(iid), {}):
            rec = steps.get(key)
            if rec is not None and rec["state"] == "done":
                out.append(
                    {
                        "path": e["path"],
                        "name": e["name"],
                        "count": e.get("count"),
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
        # Timers keep their remaining time: shift every stored deadline by the paused span. A
        # sleep_until keeps its moment: Cloudflare's replay sleeps for the time left until it.
        shift = self.now_ms - (meta["paused_ms"] or self.now_ms)
        moved: dict[str, StepRecord | None] = {}
        for key, rec in self._store.steps(iid).items():
            if rec["state"] != "running":
                continue
            until, deadline, retry_at = rec.get("until"), rec.get("deadline"), rec.get("retry_at")
            if until is not None and not rec.get("moment"):
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

    def _restart(self, iid: str, from_: RestartFrom | None = None) -> None:
        meta = self._meta(iid)
        if from_ is None:
            kept: dict[str, StepRecord] | None = None
        else:
            # Checked against the started steps before anything is aborted (the binding's
            # changeInstanceStatus), so an unknown step leaves the instance as it was.
            kept = self._kept_before(iid, from_)
        lt = self._lifetimes.get(iid)
        if lt is not None:
            self._abort(lt)
        meta = {**meta, "status": "queued", "output": None, "error": None, "paused_ms": None}
        if kept is None or from_ is None:
            # All step state and buffered events go; the original event is run again.
            self._store.commit(iid, meta=meta, wipe_steps=True)
        else:
            self._wipe_from(iid, meta, kept, from_)
        self._start(iid, meta, kind="restarted")

    def _kept_before(self, iid: str, from_: RestartFrom) -> dict[str, StepRecord]:
        """The step records that stay when `iid` restarts from `from_`: those of the steps
        started before the chosen one (attemptRestart's resolveGroupKeysToWipe)."""
        if not isinstance(from_, Mapping) or not isinstance(from_.get("name"), str):
            raise DefinitionError(
                f"restart(from_=...) takes {{'name': STEP, 'count'?: K, 'type'?: 'do' | 'sleep' | "
                f"'waitForEvent'}} as Cloudflare's restart({{from}}) does, got {from_!r}"
            )
        started = started_steps(self._store.timeline(iid))
        cut = _find_start(started, from_)
        if cut is None:
            raise InstanceError(
                f'(instance.cannot_restart) Step "{from_["name"]}" not found in execution history'
            )
        steps = self._store.steps(iid)
        keep = set(started[:cut])
        return {key: rec for key, rec in steps.items() if key in keep}

    def _wipe_from(
        self, iid: str, meta: InstanceMeta, kept: dict[str, StepRecord], from_: RestartFrom
    ) -> None:
        """Wipe the chosen step and every step started after it; the event map goes whole
        (an event consumed by a kept wait lives on in that wait's record)."""
        kept_keys = set(kept)
        events: list[EventRecord] = [
            ev if ev["consumed_by"] in kept_keys else {**ev, "consumed_by": _WIPED}
            for ev in self._store.events(iid)
        ]
        marker = self._entry(
            "restart-from",
            None,
            from_["name"],
            type=str(from_.get("type", "do")),
            count=_whole(from_.get("count", 1)) or 1,
        )
        self._store.commit(
            iid, meta=meta, wipe_steps=True, steps=kept, events=events, timeline=[marker]
        )


# An event the restart dropped (it was buffered, or consumed by a wiped wait): no wait takes it.
_WIPED = "\x1fwiped-by-restart"

# restart(from)'s `type` (default "do") to the store's step kinds.
_KINDS = {"do": "do", "sleep": "sleep", "waitForEvent": "wait"}

# Step-starting timeline entries, by store kind.
_START_KINDS = {"step-start": "do", "sleep-start": "sleep", "wait-start": "wait"}


def _whole(value: object) -> int | None:
    """`value` as a whole number when JavaScript's `===` would find it equal to one."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value) if float(value).is_integer() else None


def _find_start(started: list[str], from_: Mapping[str, Any]) -> int | None:
    """The index in `started` of the step `from_` names, as Cloudflare picks it: the
    `count`-th (default 1st) start of that name among the starts of that type (default
    `do`), in start order; None when there is none."""
    kind = _KINDS.get(from_.get("type", "do")) if isinstance(from_.get("type", "do"), str) else None
    want = _whole(from_.get("count", 1))
    if kind is None or want is None:
        return None
    seen = 0
    for i, key in enumerate(started):
        k, _, rest = key.partition(":")
        if k == kind and rest.rpartition("#")[0] == from_["name"]:
            seen += 1
            if seen == want:
                return i
    return None


def started_steps(timeline: list[TimelineEntry]) -> list[str]:
    """The store keys of the steps whose start the engine's log still holds, in start order:
    a full restart empties the log, a restart from a step drops that step and those after it.
    The k-th start of a kind and name has count k: a lifetime numbers its calls from 1, and
    the steps a restart keeps are replayed before any step starts anew."""
    started: list[str] = []
    seen: dict[str, int] = {}
    from_restart = False
    for e in timeline:
        kind = e["kind"]
        if kind in _START_KINDS:
            ident = f"{_START_KINDS[kind]}:{e['name']}"
            seen[ident] = seen.get(ident, 0) + 1
            started.append(f"{ident}#{seen[ident]}")
        elif kind == "restart-from":
            cut = _find_start(
                started, {"name": e["name"], "type": e.get("type"), "count": e.get("count")}
            )
            del started[cut if cut is not None else len(started) :]
            seen = {}
            for key in started:
                ident = key.rpartition("#")[0]
                seen[ident] = seen.get(ident, 0) + 1
            from_restart = True
        elif kind == "restarted":
            if not from_restart:
                started, seen = [], {}
            from_restart = False
    return started


def _completions(
    timeline: list[TimelineEntry], events: Mapping[int, EventRecord]
) -> list[tuple[str, TimelineEntry]]:
    """(store key, entry) of each completion the engine's log still holds, in order: step
    checkpoints, and with `events` given the waits that received one. A full restart empties
    the log; a restart from a step keeps the completions of the steps started before it."""
    done: list[tuple[str, TimelineEntry]] = []
    from_restart = False
    for i, e in enumerate(timeline):
        kind = e["kind"]
        if kind == "checkpoint" and "count" in e:
            done.append((f"do:{e['name']}#{e['count']}", e))
        elif kind == "wait-end" and e.get("seq") in events:
            consumer = events[e["seq"]]["consumed_by"]
            if consumer is not None:
                done.append((consumer, e))
        elif kind == "restart-from":
            kept = set(started_steps(timeline[: i + 1]))
            done = [(key, d) for key, d in done if key in kept]
            from_restart = True
        elif kind == "restarted":
            if not from_restart:
                done = []
            from_restart = False
    return done
