"""The chaos runner: baseline, fault points, exhaustive and random plans, shrinking, jobs.

1. A fault-free *baseline* run, and a fault-free *probe* run on another clock and seed (what
   differs between the two is clock- or seed-bound and not compared, see `_invariants`).
2. The fault points, read from the baseline: every step call and its attempts, every sleep,
   every event wait that waited, every declared event.
3. Every single fault at every fault point (exhaustive), then seeded random plans of up to
   `max_faults` faults until `runs` runs.
4. Each run starts from fresh state: the same instance id, the same database seed rows, the same
   seed, so that digests and idempotency keys compare.
5. Violations are grouped by (invariant, what it is about); one plan per group is shrunk to a
   minimal one (fewer faults, then earlier points and attempts), which replays exactly from
   its token.

Everything random comes from one `random.Random(seed)`. With `jobs > 1` the runs are spread
over processes and merged in plan order, so the result does not depend on `jobs`.
"""

from __future__ import annotations

import datetime as _dt
import json
import multiprocessing
import random
import warnings
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from awf_sim.chaos._faults import (
    DEFAULT_SKEW_MS,
    EVENT_KINDS,
    KINDS,
    FaultHooks,
    Fired,
    LateEvent,
    SentEvent,
    normalize_plan,
    plan_token,
)
from awf_sim.chaos._invariants import (
    Masks,
    Violation,
    build_masks,
    check_run,
    step_config,
)
from awf_sim.dsl._config import ResolvedConfig
from awf_sim.dsl._workflow import Workflow
from awf_sim.engine._simulator import DEFAULT_EPOCH, Simulator

__all__ = [
    "Baseline",
    "CampaignResult",
    "Finding",
    "Observation",
    "Point",
    "Target",
    "build_baseline",
    "execute",
    "run_campaign",
    "run_plan",
    "shrink",
]

DAY_MS = 86_400_000
BASELINE_BOUND_MS = 400 * DAY_MS  # beyond Cloudflare's longest sleep (365 days)
PROBE_EPOCH_SHIFT = _dt.timedelta(days=1, hours=1, minutes=1, seconds=1, milliseconds=1)
PROBE_SEED_OFFSET = 7919
MAX_SHRINK_RUNS = 250
MAX_GROUPS_PER_INVARIANT = 5
# Findings are listed root causes first: non-determinism explains most other violations.
FINDING_ORDER = (
    "determinism",
    "no-stuck-instance",
    "serializable",
    "idempotent-effects",
    "checkpoint-once",
    "replay-equivalence",
    "retry-policy",
    "events-delivered",
)

Progress = Callable[[str, int, int], None]  # (phase, done, total)


@dataclass
class Target:
    """What chaos runs: one workflow, its params, and the world its handlers see."""

    workflow: Workflow
    params: Any = None
    db: Any = None
    env: Mapping[str, Any] | None = None
    ai: Any = None
    http: Any = None
    seed: int = 0
    profile: str = "production"
    instance_id: str | None = None

    @property
    def iid(self) -> str:
        return self.instance_id or ("chaos-" + self.workflow.name)[:100]

    def sim_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"db": self.db, "env": self.env, "profile": self.profile}
        for name in ("ai", "http"):
            value = getattr(self, name)
            if value is not None:
                kwargs[name] = value
        return kwargs


@dataclass(eq=False)
class Observation:
    """Everything one run did, for the invariants and the report."""

    plan: list[dict[str, Any]]
    status: str
    output: Any
    error: dict[str, str] | None
    timeline: list[dict[str, Any]]
    end_ms: int
    bound_hit: bool
    lifetimes: list[tuple[str, list[tuple[str, str, str, int]]]]
    log: list[tuple[str, int, str, int, str, int, int]]
    injected: set[tuple[str, int]]
    fired: list[Fired]
    waited: set[tuple[str, int]]
    sent: list[SentEvent]
    digest: str
    snapshot: dict[str, list[dict[str, Any]]] | None = None
    writes: list[tuple[str, str, str | None]] | None = None
    effects: dict[str, int] | None = None  # effect identity -> times it counts (see _effects)
    effect_steps: list[str | None] | None = None  # steps of the effects that count each time


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
            elif ("event-late", etype) in faults and index in late_waits:
                fault = faults[("event-late", etype)]
                late.append(LateEvent(late_waits[index], index, etype, ev["payload"], fault))
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
) -> Observation:
    """Run `plan` once on a fresh simulator and database; observe everything."""
    schedule, late = _schedule(target.workflow.events, plan, late_waits or {})
    hooks = FaultHooks(plan, late)
    kwargs = target.sim_kwargs()
    if epoch is not None:
        kwargs["epoch"] = epoch
    sim = Simulator(seed=target.seed if seed is None else seed, hooks=hooks, **kwargs)
    try:
        inst = sim.create(target.workflow, target.params, id=target.iid)
        for at, index, copy, ev, fault in schedule:
            if at > sim.now_ms:
                sim.advance(at - sim.now_ms)
            hooks.send(index, copy, ev["type"], ev["payload"], fault)
        if sim.now_ms < bound_ms:
            sim.run_until_done(inst, max_ms=bound_ms - sim.now_ms)
        status = inst.status()
        db = sim.db
        digest = db.digest()
        snapshot = writes = None
        if full or (expect_digest is not None and digest != expect_digest):
            snapshot = db.snapshot()
            writes = [(w.table, w.op, w.step) for w in db.writes]
        effects, effect_steps = _effects(getattr(sim, "effects", None))
        return Observation(
            plan=[dict(f) for f in plan],
            status=status["status"],
            output=status["output"],
            error=status["error"],
            timeline=inst.timeline,
            end_ms=sim.now_ms,
            bound_hit=sim.now_ms >= bound_ms,
            lifetimes=hooks.lifetimes,
            log=hooks.log,
            injected=hooks.injected,
            fired=hooks.fired,
            waited=hooks.waited,
            sent=hooks.sent,
            digest=digest,
            snapshot=snapshot,
            writes=writes,
            effects=effects,
            effect_steps=effect_steps,
        )
    finally:
        sim.close()


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


# -- the baseline and its fault points --------------------------------------------------------


@dataclass(frozen=True)
class Point:
    """A place a fault can hit, read from the baseline."""

    kind: str  # "do", "sleep", "wait", "event"
    label: str  # "Inventory.reserve", "Email.send#2", "sleep cool-off", "event approval"
    selector: Any  # the step selector that hits exactly this call (None for events)
    path: str  # the step path, sleep or wait name, or event type
    occurrence: int
    attempts: tuple[int, ...] = ()  # attempts whose handler ran (do steps)
    success: int | None = None  # the attempt that was checkpointed


@dataclass
class Baseline:
    target: Target
    obs: Observation
    probe: Observation
    masks: Masks
    late: dict[int, tuple[str, int]]  # declared event -> (the wait that took it, late time)
    bound_ms: int
    points: list[Point]
    kinds: tuple[str, ...]
    singles: list[dict[str, Any]]  # one fault per (point, kind, attempt): the exhaustive runs
    extra: list[dict[str, Any]]  # further faults for combinations (later attempts)
    labels: dict[tuple[str, str, int], str] = field(default_factory=dict)
    aimed: dict[str, list[str]] = field(default_factory=dict)  # point label -> kinds aimed
    order: dict[str, int] = field(default_factory=dict)  # fault -> rank (see _plan_order)
    _configs: dict[tuple[str, str], ResolvedConfig | None] = field(default_factory=dict)

    @property
    def workflow(self) -> Workflow:
        return self.target.workflow

    @property
    def late_ms(self) -> dict[int, int]:
        """When event-late sends each declared event in the fault-free run's timing."""
        return {index: at for index, (_wait, at) in self.late.items()}

    def config_of(self, path: str, name: str) -> ResolvedConfig | None:
        key = (path, name)
        if not self._configs:
            # The engine records each step's resolved config on its step-start entry; this
            # covers raw wf.do and Cloudflare-API steps, which the DSL cannot resolve.
            for e in self.obs.timeline:
                if e["kind"] == "step-start" and e.get("config") is not None:
                    self._configs[(e["path"], e["name"])] = e["config"]
        if key not in self._configs:
            self._configs[key] = step_config(self.workflow, path, name, self.target.profile)
        return self._configs[key]

    def label_of(self, fired: Fired) -> str:
        if fired.ref_kind == "event":
            return f"event {fired.path}"
        if fired.ref_kind is None or fired.path is None:
            return "next replay"
        return self.labels.get(
            (fired.ref_kind, fired.path, fired.occurrence),
            fired.path if fired.ref_kind == "do" else f"{fired.ref_kind} {fired.path}",
        )

    def run(self, plan: Sequence[Mapping[str, Any]], *, full: bool = False) -> Observation:
        return execute(
            self.target,
            plan,
            bound_ms=self.bound_ms,
            late_waits={index: wait for index, (wait, _at) in self.late.items()},
            expect_digest=self.obs.digest,
            full=full,
        )


def _late_times(obs: Observation) -> dict[int, tuple[str, int]]:
    """For each declared event a wait took in the baseline: that wait, and 1 ms before its
    timeout (when event-late sends it in the baseline's timing)."""
    by_seq = {s.seq: s for s in obs.sent}
    starts: dict[str, tuple[int, int]] = {}
    late: dict[int, tuple[str, int]] = {}
    for e in obs.timeline:
        if e["kind"] == "wait-start":
            starts[e["name"]] = (e["at_ms"], e.get("timeout_ms") or 0)
        elif e["kind"] == "wait-end" and e.get("seq") in by_seq:
            sent = by_seq[e["seq"]]
            start = starts.get(e["name"])
            if start is not None and sent.copy == 0:
                at = start[0] + start[1] - 1
                if at > sent.at_ms:
                    late.setdefault(sent.index, (e["name"], at))
    return late


def _points(obs: Observation, events: Sequence[Mapping[str, Any]]) -> list[Point]:
    calls = [c for _kind, lifetime in obs.lifetimes for c in lifetime]
    totals = Counter((kind, path) for kind, path, _n, _c in calls)
    runs: dict[tuple[str, int], list[int]] = {}
    success: dict[tuple[str, int], int] = {}
    for event, _lt, path, occ, _name, _count, attempt in obs.log:
        if event == "run":
            runs.setdefault((path, occ), []).append(attempt)
        else:
            success[(path, occ)] = attempt
    seen: Counter[tuple[str, str]] = Counter()
    points: list[Point] = []
    for kind, path, name, count in calls:
        seen[(kind, path)] += 1
        occ = seen[(kind, path)]
        several = totals[(kind, path)] > 1
        selector: Any = {"name": path, "index": occ} if several else path
        suffix = f"#{occ}" if several else ""
        if kind == "do":
            points.append(
                Point(
                    "do",
                    path + suffix,
                    selector,
                    path,
                    occ,
                    tuple(sorted(set(runs.get((path, occ), [])))),
                    success.get((path, occ)),
                )
            )
        elif kind == "sleep":
            points.append(Point("sleep", f"sleep {path}{suffix}", selector, path, occ))
        elif kind == "wait" and (name, count) in obs.waited:
            points.append(Point("wait", f"wait {path}{suffix}", selector, path, occ))
    types: list[str] = []
    for ev in events:
        if ev["type"] not in types:
            types.append(ev["type"])
    points += [Point("event", f"event {t}", None, t, 1) for t in types]
    return points


def _singles(
    points: Sequence[Point],
    kinds: Sequence[str],
    events: Sequence[Mapping[str, Any]],
    late_ms: Mapping[int, Any],
    seed: int,
) -> tuple[list[dict[str, Any]], dict[str, list[str]]]:
    """The exhaustive faults, and for each point label the kinds aimed at it."""
    first_index: dict[str, int] = {}
    for i, ev in enumerate(events):
        first_index.setdefault(ev["type"], i)
    out: list[dict[str, Any]] = []
    aimed: dict[str, list[str]] = {}
    for p in points:
        if p.kind == "do":
            tried = p.attempts or (1,)
            cand: list[dict[str, Any]] = [
                {"kind": "crash-before-step", "step": p.selector, "attempt": 1}
            ]
            cand += [
                {"kind": "crash-before-step", "step": p.selector, "attempt": a}
                for a in tried
                if a > 1
            ]
            if p.success is not None:
                cand += [
                    {"kind": "crash-after-effect", "step": p.selector, "attempt": p.success},
                    {"kind": "crash-after-checkpoint", "step": p.selector, "attempt": p.success},
                ]
            cand += [{"kind": "transient-error", "step": p.selector, "attempt": a} for a in tried]
            cand += [{"kind": "timeout", "step": p.selector, "attempt": a} for a in tried]
            if p.success is not None:
                cand += [
                    {"kind": "clock-skew", "step": p.selector, "ms": DEFAULT_SKEW_MS},
                    {"kind": "reseed", "step": p.selector, "seed": seed + 1},
                ]
        elif p.kind == "sleep":
            cand = [{"kind": "crash-during-sleep", "step": p.selector}]
        elif p.kind == "wait":
            cand = [{"kind": "crash-during-wait", "step": p.selector}]
        else:
            index = first_index[p.path]
            cand = []
            if events[index]["after_ms"] > 0:
                cand.append({"kind": "event-early", "type": p.path})
            if index in late_ms:
                cand.append({"kind": "event-late", "type": p.path})
            cand.append({"kind": "event-duplicate", "type": p.path})
        chosen = [f for f in cand if f["kind"] in kinds]
        out += chosen
        aimed[p.label] = sorted({f["kind"] for f in chosen}, key=KINDS.index)
    return normalize_plan(out), aimed


def _extra(base: Baseline, max_faults: int) -> list[dict[str, Any]]:
    """Later attempts of transient errors and timeouts, so combinations can use up retries."""
    out: list[dict[str, Any]] = []
    names = {}
    for _ev, _lt, path, occ, name, _count, _attempt in base.obs.log:
        names[(path, occ)] = name
    for p in base.points:
        if p.kind != "do" or not p.attempts:
            continue
        config = base.config_of(p.path, names.get((p.path, p.occurrence), ""))
        last = max(p.attempts)
        limit = config["retries"]["limit"] + 1 if config is not None else last + 2
        for a in range(last + 1, min(limit, last + max_faults) + 1):
            for kind in ("transient-error", "timeout"):
                if kind in base.kinds:
                    out.append({"kind": kind, "step": p.selector, "attempt": a})
    return normalize_plan(out)


def build_baseline(
    target: Target, kinds: Sequence[str] | None = None, max_faults: int = 3
) -> Baseline:
    """The fault-free run, the probe run, and the fault space they span."""
    obs = execute(target, [], bound_ms=BASELINE_BOUND_MS, full=True)
    probe = execute(
        target,
        [],
        bound_ms=BASELINE_BOUND_MS,
        full=True,
        seed=target.seed + PROBE_SEED_OFFSET,
        epoch=DEFAULT_EPOCH + PROBE_EPOCH_SHIFT,
    )
    late = _late_times(obs)
    latest = max((at for _wait, at in late.values()), default=0)
    bound = max(2 * obs.end_ms, obs.end_ms + 2 * DAY_MS, latest + DAY_MS)
    chosen = tuple(KINDS if kinds is None else kinds)
    points = _points(obs, target.workflow.events)
    singles, aimed = _singles(points, chosen, target.workflow.events, late, target.seed)
    base = Baseline(
        target=target,
        obs=obs,
        probe=probe,
        masks=build_masks(obs, probe),
        late=late,
        bound_ms=bound,
        points=points,
        kinds=chosen,
        singles=singles,
        extra=[],
        aimed=aimed,
    )
    base.labels = {(p.kind, p.path, p.occurrence): p.label for p in points if p.kind != "event"}
    base.extra = _extra(base, max_faults)
    return base


# -- running plans ----------------------------------------------------------------------------


@dataclass
class Verdict:
    """What one run found (small and picklable: it crosses process boundaries)."""

    checked: list[str]
    violations: list[Violation]
    pairs: list[tuple[str, str]]  # (fault point label, kind) of the faults that fired


def evaluate(base: Baseline, plan: Sequence[Mapping[str, Any]]) -> Verdict:
    obs = base.run(plan)
    checked, violations = check_run(base, obs)
    pairs = [(base.label_of(f), f.kind) for f in obs.fired]
    return Verdict(checked, violations, pairs)


def run_plan(
    base: Baseline, plan: Sequence[Mapping[str, Any]]
) -> tuple[Observation, list[str], list[Violation]]:
    """Run one plan with everything observed (the timeline, the database): for reports."""
    obs = base.run(normalize_plan(plan), full=True)
    checked, violations = check_run(base, obs)
    return obs, checked, violations


def _fault_key(fault: Mapping[str, Any]) -> str:
    return json.dumps(fault, sort_keys=True)


def _plan_order(base: Baseline) -> dict[str, int]:
    """Rank of each single fault (earlier fault point first), for canonical plan order."""
    if not base.order:
        for f in [*base.singles, *base.extra]:
            base.order.setdefault(_fault_key(f), len(base.order))
    return base.order


def random_plans(
    base: Baseline, count: int, max_faults: int, rng: random.Random, seen: set[str]
) -> list[list[dict[str, Any]]]:
    universe = [*base.singles, *base.extra]
    if not universe or count <= 0 or max_faults < 1:
        return []
    order = _plan_order(base)
    plans: list[list[dict[str, Any]]] = []
    tries = 0
    while len(plans) < count and tries < count * 20:
        tries += 1
        k = rng.randint(1, min(max_faults, len(universe)))
        picked = rng.sample(universe, k)
        picked.sort(key=lambda f: order[_fault_key(f)])
        token = plan_token(picked)
        if token in seen:
            continue
        seen.add(token)
        plans.append(picked)
    return plans


_WORKER: dict[str, Any] = {}


def _work(index: int) -> tuple[int, Verdict]:
    base: Baseline = _WORKER["base"]
    return index, evaluate(base, _WORKER["plans"][index])


def _evaluate_all(
    base: Baseline,
    plans: Sequence[Sequence[Mapping[str, Any]]],
    jobs: int,
    on_done: Callable[[int], None],
) -> list[Verdict]:
    if jobs <= 1 or len(plans) < 2 * jobs or "fork" not in multiprocessing.get_all_start_methods():
        verdicts = []
        for plan in plans:
            verdicts.append(evaluate(base, plan))
            on_done(1)
        return verdicts
    # Workers are forked with the baseline and the plans in memory: nothing to pickle but
    # the verdicts coming back, which are merged in plan order.
    _WORKER.update(base=base, plans=plans)
    results: list[Verdict | None] = [None] * len(plans)
    try:
        ctx = multiprocessing.get_context("fork")
        with warnings.catch_warnings():
            # Python 3.12+ warns about forking with threads (a progress bar's): the workers
            # only run simulations and return verdicts, they take no lock of those threads.
            warnings.filterwarnings("ignore", ".*fork", DeprecationWarning)
            pool = ctx.Pool(jobs)
        with pool:
            chunk = max(1, min(64, len(plans) // (jobs * 8)))
            for index, verdict in pool.imap_unordered(_work, range(len(plans)), chunk):
                results[index] = verdict
                on_done(1)
    finally:
        _WORKER.clear()
    return [v for v in results if v is not None]


# -- shrinking --------------------------------------------------------------------------------


def shrink(
    base: Baseline,
    plan: Sequence[Mapping[str, Any]],
    fails: Callable[[list[dict[str, Any]]], bool],
    budget: int = MAX_SHRINK_RUNS,
) -> list[dict[str, Any]]:
    """A minimal plan that still fails: fewer faults first, then each fault earlier (an earlier
    fault point of the same kind, a lower attempt)."""
    order = _plan_order(base)
    universe = [*base.singles, *base.extra]
    current = normalize_plan(plan)
    cache: dict[str, bool] = {}
    runs = 0

    def check(candidate: list[dict[str, Any]]) -> bool:
        nonlocal runs
        token = plan_token(candidate)
        if token not in cache:
            if runs >= budget:
                return False
            runs += 1
            cache[token] = fails(candidate)
        return cache[token]

    def rank(f: Mapping[str, Any]) -> int:
        return order.get(_fault_key(f), len(order))

    changed = True
    while changed:
        changed = False
        for i in range(len(current)):
            for candidate in _without(current, i):
                if check(candidate):
                    current, changed = candidate, True
                    break
            if changed:
                break
        if changed:
            continue
        for i, fault in enumerate(current):
            simpler: list[dict[str, Any]] = []
            if fault.get("attempt", 1) > 1:
                simpler.append({**fault, "attempt": 1})
                if fault["attempt"] > 2:
                    simpler.append({**fault, "attempt": fault["attempt"] - 1})
            mine = rank(fault)
            simpler += [
                f
                for f in universe
                if f["kind"] == fault["kind"] and rank(f) < mine and f not in current
            ]
            for alt in simpler:
                candidate = [*current[:i], alt, *current[i + 1 :]]
                candidate.sort(key=rank)
                if check(candidate):
                    current, changed = candidate, True
                    break
            if changed:
                break
    current.sort(key=rank)
    return current


def _without(plan: list[dict[str, Any]], i: int) -> list[list[dict[str, Any]]]:
    """Plan minus fault i; and, when fault i used up an attempt, also with the later faults
    on the same step moved one attempt earlier (they fired on the attempt after it)."""
    rest = plan[:i] + plan[i + 1 :]
    out = [rest]
    gone = plan[i]
    if "attempt" in gone:
        shifted = [
            {**f, "attempt": f["attempt"] - 1}
            if f.get("step") == gone["step"] and f.get("attempt", 0) > gone["attempt"]
            else f
            for f in rest
        ]
        if shifted != rest:
            out.append(shifted)
    return out


# -- a campaign -------------------------------------------------------------------------------


@dataclass
class Finding:
    """One way the workflow breaks an invariant: the shrunk plan and everything to fix it."""

    violation: Violation
    plan: list[dict[str, Any]]
    token: str
    original_plan: list[dict[str, Any]]
    runs: int  # runs that broke this invariant the same way
    observation: Observation


@dataclass
class CampaignResult:
    target: Target
    baseline: Baseline
    runs: int  # fault-injected runs (not counting the baseline)
    exhaustive: int
    random: int
    checked: Counter[str]
    violating: Counter[str]
    coverage: Counter[tuple[str, str]]
    findings: list[Finding]
    seed: int
    max_faults: int
    replay: str | None = None  # the token, for a --replay run

    @property
    def clean(self) -> bool:
        return not self.findings


def _group(
    verdicts: Sequence[tuple[list[dict[str, Any]], Verdict]],
) -> dict[tuple[str, str], tuple[list[dict[str, Any]], int, Violation]]:
    """(invariant, key) -> (the simplest plan that broke it, runs that did, a violation)."""
    groups: dict[tuple[str, str], tuple[list[dict[str, Any]], int, Violation]] = {}
    for plan, verdict in verdicts:
        seen_here: set[tuple[str, str]] = set()
        for v in verdict.violations:
            key = (v.invariant, v.key)
            if key in seen_here:
                continue
            seen_here.add(key)
            if key not in groups:
                groups[key] = (plan, 1, v)
            else:
                best, n, first = groups[key]
                if len(plan) < len(best):
                    best, first = plan, v
                groups[key] = (best, n + 1, first)
    return groups


def _finding(
    base: Baseline,
    invariant: str,
    key: str,
    plan: list[dict[str, Any]],
    count: int,
    fallback: Violation,
    *,
    do_shrink: bool,
) -> Finding:
    def fails(candidate: list[dict[str, Any]]) -> bool:
        verdict = evaluate(base, candidate)
        return any(v.invariant == invariant and v.key == key for v in verdict.violations)

    small = shrink(base, plan, fails) if do_shrink and plan else normalize_plan(plan)
    obs, _checked, violations = run_plan(base, small)
    violation = next((v for v in violations if v.invariant == invariant and v.key == key), fallback)
    return Finding(violation, small, plan_token(small), normalize_plan(plan), count, obs)


def run_campaign(
    target: Target,
    *,
    runs: int = 200,
    seed: int = 0,
    max_faults: int = 3,
    kinds: Sequence[str] | None = None,
    jobs: int = 1,
    progress: Progress | None = None,
    replay: Sequence[Mapping[str, Any]] | None = None,
    do_shrink: bool = True,
) -> CampaignResult:
    """Chaos for one target. With `replay`, run just that plan (no shrinking)."""
    rng = random.Random(seed)

    def tick(phase: str, done: int, total: int) -> None:
        if progress is not None:
            progress(phase, done, total)

    tick("baseline", 0, 1)
    base = build_baseline(target, kinds, max_faults)
    tick("baseline", 1, 1)
    checked: Counter[str] = Counter()
    violating: Counter[str] = Counter()
    coverage: Counter[tuple[str, str]] = Counter()
    # The baseline is checked too: some invariants (serializable, no-stuck-instance,
    # retry-policy, events-delivered) can fail without any fault.
    base_checked, base_violations = check_run(base, base.obs)
    checked.update(base_checked)
    results: list[tuple[list[dict[str, Any]], Verdict]] = [
        ([], Verdict(base_checked, base_violations, []))
    ]
    if replay is not None:
        plans = [normalize_plan(replay)]
        exhaustive = 0
    else:
        singles = [[f] for f in base.singles]
        seen = {plan_token(p) for p in singles}
        extra_runs = max(0, runs - len(singles))
        plans = singles + random_plans(base, extra_runs, max_faults, rng, seen)
        exhaustive = len(singles)
    done = 0
    total = len(plans)

    def on_done(n: int) -> None:
        nonlocal done
        done += n
        tick("exhaustive" if done <= exhaustive else "random", done, total)

    verdicts = _evaluate_all(base, plans, jobs, on_done)
    for plan, verdict in zip(plans, verdicts, strict=True):
        results.append((plan, verdict))
        checked.update(verdict.checked)
        coverage.update(verdict.pairs)
    for _plan, verdict in results:
        violating.update({v.invariant for v in verdict.violations})
    groups = _group(results)
    ordered = sorted(groups.items(), key=lambda kv: FINDING_ORDER.index(kv[0][0]))
    per_invariant: Counter[str] = Counter()
    findings: list[Finding] = []
    todo = [(k, g) for k, g in ordered]
    for n, ((invariant, key), (plan, count, violation)) in enumerate(todo):
        tick("shrinking", n, len(todo))
        per_invariant[invariant] += 1
        if per_invariant[invariant] > MAX_GROUPS_PER_INVARIANT:
            continue
        findings.append(
            _finding(
                base,
                invariant,
                key,
                plan,
                count,
                violation,
                do_shrink=do_shrink and replay is None,
            )
        )
    tick("shrinking", len(todo), len(todo))
    return CampaignResult(
        target=target,
        baseline=base,
        runs=len(plans),
        exhaustive=exhaustive,
        random=len(plans) - exhaustive,
        checked=checked,
        violating=violating,
        coverage=coverage,
        findings=findings,
        seed=seed,
        max_faults=max_faults,
        replay=plan_token(plans[0]) if replay is not None else None,
    )
