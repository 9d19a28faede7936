"""One chaos run: a plan injected into a fresh simulator and database, everything observed.

Each run starts from the same instance id, database rows and seed as the baseline, so that
database digests and idempotency keys compare; the declared events are sent on the plan's
schedule (early, late, twice). `verdict_of` checks a run against every invariant and keeps
only what a verdict needs, small enough to cross a process boundary (`_memo.evaluate` runs a
plan and gives its verdict, sharing what runs have in common).
"""

from __future__ import annotations

import datetime as _dt
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

from awf_sim.chaos._bigint import unsafe_ints
from awf_sim.chaos._faults import EVENT_KINDS, HOLD_OFFSET_MS, normalize_plan
from awf_sim.chaos._inject import FaultHooks
from awf_sim.chaos._invariants import check_run
from awf_sim.chaos._model import (
    BODY_RUNAWAY,
    CPU_LIMIT,
    Baseline,
    LateEvent,
    Observation,
    Plan,
    Target,
    Verdict,
    Violation,
)
from awf_sim.chaos._record import Recorder
from awf_sim.dsl._example import expected_outcome
from awf_sim.dsl._handlers import watch_types
from awf_sim.engine import Instance, Simulator, World
from awf_sim.engine._calls import TERMINAL
from awf_sim.engine._resume import database_image
from awf_sim.engine._simulator import RUNAWAY_WAITS

if TYPE_CHECKING:
    from awf_sim.sdk._db import Write

__all__ = [
    "cpu_stopped",
    "execute",
    "finish",
    "ran_away",
    "run_on",
    "run_plan",
    "verdict_of",
    "waits_of",
]

_MAX_IMAGES = 64  # database images whose digest a campaign keeps


def _schedule(
    events: Sequence[Mapping[str, Any]],
    plan: Sequence[Mapping[str, Any]],
    late_waits: Mapping[int, str],
) -> tuple[list[tuple[int, int, int, Mapping[str, Any], int | None]], list[LateEvent]]:
    """The declared events as the plan sends them: (at_ms, declared index, copy, event, the
    plan index of the fault that moved or copied it), and the events held back until a wait
    is about to time out (event-late)."""
    faults: dict[tuple[str, str], int] = {}
    for i, f in enumerate(plan):
        if f["kind"] in EVENT_KINDS:
            faults.setdefault((f["kind"], f["type"]), i)
    seen: set[str] = set()
    items = []
    late: list[LateEvent] = []
    for index, ev in enumerate(events):
        at = ev["after_ms"]
        copies = 1
        moved: int | None = None
        etype = ev["type"]
        if etype not in seen:  # type-targeted faults change the first event of that type
            seen.add(etype)
            if ("event-early", etype) in faults:
                at, moved = 0, faults[("event-early", etype)]
            elif index in late_waits and any((kind, etype) in faults for kind in HOLD_OFFSET_MS):
                kind = next(k for k in HOLD_OFFSET_MS if (k, etype) in faults)
                fault = faults[(kind, etype)]
                late.append(
                    LateEvent(
                        late_waits[index],
                        index,
                        etype,
                        ev["payload"],
                        fault,
                        HOLD_OFFSET_MS[kind],
                    )
                )
                continue
            if ("event-duplicate", etype) in faults:
                copies = 2
        for copy in range(copies):
            items.append(
                (at, index, copy, ev, faults[("event-duplicate", etype)] if copy else moved)
            )
    items.sort(key=lambda item: (item[0], item[1], item[2]))
    return items, late


def execute(
    target: Target,
    plan: Sequence[Mapping[str, Any]],
    *,
    bound_ms: int,
    late_waits: Mapping[int, str] | None = None,
    expect_digest: str | None = None,
    full: bool = False,
    seed: int | None = None,
    epoch: _dt.datetime | None = None,
    world: World | None = None,
) -> Observation:
    """Run `plan` once on a fresh simulator and database; observe everything. `world`: the
    target's, when the caller has it already."""
    schedule, late = _schedule(target.workflow.events, plan, late_waits or {})
    hooks = FaultHooks(plan, late)
    if world is None:
        world = target.world
    if seed is not None:
        world = world.replace(seed=seed)
    watch = watch_types()  # the type of each step result, for replay-equivalence
    seen = watch.__enter__()
    rec = Recorder(hooks, seen)
    if epoch is None:
        sim = Simulator(world=world, hooks=rec, cpu_ms=target.cpu_ms)
    else:
        sim = Simulator(world=world, hooks=rec, epoch=epoch, cpu_ms=target.cpu_ms)
    try:
        inst = sim.create(target.workflow, target.params, id=target.iid)

        def deliver(etype: str, payload: Any) -> bool:
            if inst.status()["status"] in TERMINAL:
                return False
            inst.send_event(etype, payload)
            return True

        hooks.deliver = deliver
        for at, index, copy, ev, fault in schedule:
            if at > sim.now_ms:
                sim.advance(at - sim.now_ms)
            hooks.send(index, copy, ev["type"], ev["payload"], fault)
        return finish(sim, inst, rec, plan, bound_ms, expect_digest, full)
    finally:
        watch.__exit__(None, None, None)
        sim.close()


def finish(
    sim: Simulator,
    inst: Instance,
    rec: Recorder,
    plan: Sequence[Mapping[str, Any]],
    bound_ms: int,
    expect_digest: str | None,
    full: bool,
    digests: list[tuple[bytes, str]] | None = None,
    snapshots: dict[str, Any] | None = None,
) -> Observation:
    """Run `inst` to its end or `bound_ms`, and observe the run. `digests`: database images
    seen before, with their digests (most runs of a campaign end with the same rows);
    `snapshots`: the snapshots of digests seen before (equal digests, equal rows), to be
    read only."""
    # A run that never ends stops at the bound of virtual time, or of sleeps and waits (a
    # loop of one-second sleeps would take 34 million to reach 400 days).
    gave_up = sim.now_ms < bound_ms and not sim.run_until_done(
        inst, max_ms=bound_ms - sim.now_ms, max_waits=RUNAWAY_WAITS
    )
    status = inst.status()
    db = sim.db
    digest = None
    image = None if digests is None else database_image(sim)
    if image is not None:
        assert digests is not None
        # Equal bytes, equal rows: a comparison stops at the first byte that differs.
        digest = next((known for seen, known in digests if seen == image), None)
    if digest is None:
        digest = db.digest()
        if image is not None and digests is not None and len(digests) < _MAX_IMAGES:
            digests.append((image, digest))
    snapshot = writes = None
    if full or (expect_digest is not None and digest != expect_digest):
        snapshot = None if snapshots is None else snapshots.get(digest)
        if snapshot is None:
            snapshot = db.snapshot()
            if snapshots is not None and len(snapshots) < _MAX_IMAGES:
                snapshots[digest] = snapshot
        writes = [(w.table, w.op, w.step) for w in db.writes]
    effects, effect_steps = _effects(getattr(sim, "effects", None))
    hooks = rec.inner
    unsafe = inserted = results = None
    if full:
        inserted = _inserted_keys(db.writes)
        checkpointed = inst.step_results()
        results = {(r["name"], r["count"] or 1): r["value"] for r in checkpointed}
        unsafe = unsafe_ints(
            [(r["path"], r["value"]) for r in checkpointed] + [("output", status["output"])]
        )
    return Observation(
        plan=cast(Plan, [dict(f) for f in plan]),
        status=status["status"],
        output=status["output"],
        error=status["error"],
        timeline=inst.timeline,
        end_ms=sim.now_ms,
        bound_hit=gave_up or sim.now_ms >= bound_ms,
        **recorded(hooks),
        digest=digest,
        snapshot=snapshot,
        writes=writes,
        effects=effects,
        effect_steps=effect_steps,
        value_types=rec.value_types(),
        unsafe_ints=unsafe,
        inserted=inserted,
        results=results,
    )


def _inserted_keys(writes: Sequence[Write]) -> dict[str, frozenset[Any]]:
    """Table -> the first-column values of the rows inserted (the key chaos matches rows by)."""
    out: dict[str, set[Any]] = {}
    for w in writes:
        if w.op == "insert" and w.row:
            value = next(iter(w.row.values()))
            out.setdefault(w.table, set()).add(value if isinstance(value, int) else None)
    return {t: frozenset(v) for t, v in out.items()}


def recorded(hooks: FaultHooks) -> dict[str, Any]:
    """What a run's hooks recorded, as the Observation fields of the same names."""
    return {
        "lifetimes": hooks.lifetimes,
        "log": hooks.log,
        "injected": hooks.injected,
        "fired": hooks.fired,
        "waited": hooks.waited,
        "sent": hooks.sent,
    }


# Requests that change nothing when repeated (HTTP's safe and idempotent methods).
_REPEATABLE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})


def _effect_identity(effect: Any) -> tuple[str, bool]:
    """(what the effect is, whether doing it again changes nothing). An AI call, a GET, PUT or
    DELETE, or a request that carries an Idempotency-Key header counts once however often it
    was made; any other request counts each time."""
    summary = str(getattr(effect, "summary", effect))
    detail = getattr(effect, "detail", None) or {}
    if getattr(effect, "kind", "http") != "http":
        return summary, True
    headers = {str(k).lower(): v for k, v in (detail.get("headers") or {}).items()}
    key = headers.get("idempotency-key")
    if key:
        return f"{summary} [Idempotency-Key: {key}]", True
    method = str(detail.get("method") or summary.split(" ", 1)[0]).upper()
    return summary, method in _REPEATABLE_METHODS


def _effects(log: Any) -> tuple[dict[str, int] | None, list[str | None] | None]:
    """The run's external effects (ctx.http, ctx.ai) as identity -> count, and the steps of
    those that count each time."""
    if log is None:
        return None, None
    items = getattr(log, "effects", None)
    if items is None:
        items = list(log.summaries())
    counts: Counter[str] = Counter()
    steps: list[str | None] = []
    for effect in items:
        identity, repeatable = _effect_identity(effect)
        if repeatable:
            counts[identity] = 1
        else:
            counts[identity] += 1
            steps.append(getattr(effect, "step", None))
    return dict(counts), steps


def run_on(base: Baseline, plan: Sequence[Mapping[str, Any]], *, full: bool = False) -> Observation:
    """Run `plan` under the baseline's bound and event timing."""
    return execute(
        base.target,
        plan,
        bound_ms=base.bound_ms,
        late_waits={index: wait for index, (wait, _at) in base.late.items()},
        expect_digest=base.obs.digest,
        full=full,
        world=base.world,
    )


def verdict_of(base: Baseline, obs: Observation) -> Verdict:
    """What one run found, as `evaluate` returns it."""
    checked, violations = check_run(base, obs, run_on)
    pairs = [(base.label_of(f), f.kind) for f in obs.fired]
    return Verdict(checked, violations, pairs, *_waits_and_cpu(obs))


def waits_of(obs: Observation) -> list[tuple[str, bool]]:
    """The event waits a run reached, each with whether it timed out."""
    return _waits_and_cpu(obs)[0]


def cpu_stopped(obs: Observation) -> list[str]:
    """What the CPU budget stopped in a run, in order, each once: the path of each step an
    attempt of which ran past it, and BODY_RUNAWAY for the workflow body."""
    return _waits_and_cpu(obs)[1]


def ran_away(target: Target, obs: Observation) -> bool:
    """Whether a fault-free run failed because code ran past the CPU budget, which its example
    does not expect: no fault can be judged against that run."""
    return (
        obs.status == "errored"
        and (obs.error or {}).get("name") == CPU_LIMIT
        and expected_outcome(target.params) != ("errored", CPU_LIMIT)
    )


def _waits_and_cpu(obs: Observation) -> tuple[list[tuple[str, bool]], list[str]]:
    # One pass over the timeline for both: this runs once per distinct run of a campaign.
    waits: dict[str, bool] = {}
    cpu: list[str] = []
    for e in obs.timeline:
        kind = e["kind"]
        if kind == "wait-start":
            waits.setdefault(e["name"] or "", False)
        elif kind == "wait-end":
            if e.get("timed_out"):
                waits[e["name"] or ""] = True
        elif kind == "attempt-failure" or kind == "workflow-failure":
            error = e.get("error") or {}
            if error.get("name") == CPU_LIMIT:
                if kind == "attempt-failure":
                    what = e["path"] or e["name"] or ""
                elif str(error.get("message", "")).startswith(BODY_RUNAWAY):
                    what = BODY_RUNAWAY
                else:
                    continue  # a step's CpuLimitExceeded the body did not catch: counted
                if what not in cpu:
                    cpu.append(what)
    return list(waits.items()), cpu


def run_plan(
    base: Baseline, plan: Sequence[Mapping[str, Any]]
) -> tuple[Observation, list[str], list[Violation]]:
    """Run one plan with everything observed (the timeline, the database): for reports."""
    obs = run_on(base, normalize_plan(plan), full=True)
    checked, violations = check_run(base, obs, run_on)
    return obs, checked, violations
