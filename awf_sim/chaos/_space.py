"""The fault space: every place a fault can hit, read from a fault-free baseline run.

1. A fault-free *baseline* run, and a fault-free *probe* run on another clock and seed (what
   differs between the two is clock- or seed-bound and not compared, see `_invariants`).
2. The fault points, read from the baseline: every step call and its attempts, every sleep,
   every event wait that waited, every declared event.
3. The single faults (every fault kind at every point it applies to: the exhaustive runs),
   the later attempts combinations may use, and seeded random plans of up to `max_faults`.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import random
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from awf_sim.chaos._diff import build_masks
from awf_sim.chaos._faults import (
    DEFAULT_SKEW_MS,
    KINDS,
    compact_fault,
    compact_text,
    normalize_plan,
    token_text,
)
from awf_sim.chaos._model import Baseline, Observation, Plan, Point, Target
from awf_sim.chaos._run import execute, ran_away
from awf_sim.engine import DEFAULT_EPOCH

__all__ = ["build_baseline", "fault_key", "plan_order", "random_plans"]

DAY_MS = 86_400_000
BASELINE_BOUND_MS = 400 * DAY_MS  # beyond Cloudflare's longest sleep (365 days)
PROBE_EPOCH_SHIFT = _dt.timedelta(days=1, hours=1, minutes=1, seconds=1, milliseconds=1)
PROBE_SEED_OFFSET = 7919


def _late_times(obs: Observation) -> dict[int, tuple[str, int]]:
    """For each declared event a wait took in the baseline: that wait, and 1 ms before its
    timeout (when event-late sends it in the baseline's timing)."""
    by_seq = {s.seq: s for s in obs.sent}
    starts: dict[str | None, tuple[int, int]] = {}
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
                    late.setdefault(sent.index, (e["name"] or "", at))
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
) -> tuple[Plan, dict[str, list[str]]]:
    """The exhaustive faults, and for each point label the kinds aimed at it."""
    first_index: dict[str, int] = {}
    for i, ev in enumerate(events):
        first_index.setdefault(ev["type"], i)
    out: Plan = []
    aimed: dict[str, list[str]] = {}
    for p in points:
        if p.kind == "do":
            tried = p.attempts or (1,)
            cand: Plan = [{"kind": "crash-before-step", "step": p.selector, "attempt": 1}]
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
                    # Another seed than the run's, and one a fault may carry (0 or more):
                    # `--seed -5` is a seed like any other.
                    {"kind": "reseed", "step": p.selector, "seed": abs(seed) + 1},
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
                cand.append({"kind": "event-at-deadline", "type": p.path})
                cand.append({"kind": "event-withheld", "type": p.path})
            cand.append({"kind": "event-duplicate", "type": p.path})
        chosen = [f for f in cand if f["kind"] in kinds]
        out += chosen
        aimed[p.label] = sorted({f["kind"] for f in chosen}, key=KINDS.index)
    return normalize_plan(out), aimed


def _extra(base: Baseline, max_faults: int) -> Plan:
    """Later attempts of transient errors and timeouts, so combinations can use up retries."""
    out: Plan = []
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
    if ran_away(target, obs):
        # It ran away (the campaign stops at that): a probe would only pay the budget again.
        probe = obs
    else:
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


def fault_key(fault: Mapping[str, Any]) -> str:
    return json.dumps(fault, sort_keys=True)


def plan_order(base: Baseline) -> dict[str, int]:
    """Rank of each single fault (earlier fault point first), for canonical plan order."""
    if not base.order:
        for f in [*base.singles, *base.extra]:
            base.order.setdefault(fault_key(f), len(base.order))
    return base.order


def random_plans(
    base: Baseline, count: int, max_faults: int, rng: random.Random, seen: set[str]
) -> list[Plan]:
    """Up to `count` distinct plans of 1 to `max_faults` faults drawn with `rng`, none of them
    one of the plans whose tokens are in `seen` (which is not changed)."""
    universe = [*base.singles, *base.extra]
    if not universe or count <= 0 or max_faults < 1:
        return []
    order = plan_order(base)
    # Picking positions draws the same numbers as picking the faults themselves (`sample`
    # depends only on the sizes), so the plans are those of a draw from `universe`.
    rank = [order[fault_key(f)] for f in universe]
    # A plan's token is a function of its JSON text (`token_text`), and that text is its
    # faults' texts joined: comparing texts is comparing tokens, without compressing each.
    texts = [compact_text(compact_fault(f)) for f in universe]
    taken = {token_text(t) for t in seen}
    # Distinct faults and sorted picks give distinct texts: only a pick as long as a plan in
    # `seen` can be one of them.
    longest = max((len(json.loads(t)) for t in taken), default=0)
    if len(set(texts)) < len(texts):
        longest = max_faults  # the same fault twice in the universe: compare every pick
    n = len(universe)
    positions = range(n)
    tried: set[tuple[int, ...]] = set()  # a pick seen once is a duplicate from then on
    # How many distinct picks there are: once each was tried, every further draw is a
    # duplicate. Without this, a small fault space asked for many runs drew up to 20 times
    # `count` duplicates (seconds of `awf-sim chaos --runs 10000` on a 14-fault input).
    # Stopping there changes no plan: the draws up to it are the same.
    space = sum(math.comb(n, k) for k in range(1, min(max_faults, n) + 1))
    plans: list[Plan] = []
    tries = 0
    most = min(max_faults, n)
    randbelow: Callable[[int], int] = rng._randbelow  # type: ignore[attr-defined]  # randint and sample draw with it
    while len(plans) < count and tries < count * 20 and len(tried) < space:
        tries += 1
        k = 1 + randbelow(most)  # rng.randint(1, most)
        picked = _sample(randbelow, positions, n, k) if k <= 5 else rng.sample(positions, k)
        picked.sort(key=rank.__getitem__)
        key = tuple(picked)
        if key in tried:
            continue
        tried.add(key)
        if k <= longest:
            text = "[" + ",".join([texts[i] for i in picked]) + "]"
            if text in taken:
                continue
            taken.add(text)
        plans.append([universe[i] for i in picked])
    return plans


def _sample(randbelow: Callable[[int], int], positions: range, n: int, k: int) -> list[int]:
    """`rng.sample(positions, k)` for k <= 5, the same numbers from the same draws, without
    its argument checks: `awf-sim chaos --runs 10000` draws hundreds of thousands of picks,
    most of them duplicates once a small fault space is nearly used up. CPython's algorithm
    (3.11 to 3.13): a pool of the positions when n <= 21, else redraws of a seen position;
    tests/chaos/test_space_sample.py holds it to `Random.sample`."""
    out: list[int] = []
    if n <= 21:
        pool = list(positions)
        for i in range(k):
            j = randbelow(n - i)
            out.append(pool[j])
            pool[j] = pool[n - i - 1]
        return out
    for _ in range(k):
        j = randbelow(n)
        while j in out:
            j = randbelow(n)
        out.append(j)
    return out
