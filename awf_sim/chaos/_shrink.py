"""Shrinking: the smallest plan that still breaks an invariant the same way.

Fewer faults first, then each fault earlier (an earlier fault point of the same kind, a lower
attempt), within a budget of runs; the result replays exactly from its token.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from awf_sim.chaos._faults import normalize_plan, plan_token
from awf_sim.chaos._model import Baseline, Plan
from awf_sim.chaos._space import fault_key, plan_order

__all__ = ["shrink"]

MAX_SHRINK_RUNS = 250


def shrink(
    base: Baseline,
    plan: Sequence[Mapping[str, Any]],
    fails: Callable[[Plan], bool],
    budget: int = MAX_SHRINK_RUNS,
) -> Plan:
    """A minimal plan that still fails: fewer faults first, then each fault earlier (an earlier
    fault point of the same kind, a lower attempt)."""
    order = plan_order(base)
    universe = [*base.singles, *base.extra]
    current = normalize_plan(plan)
    cache: dict[str, bool] = {}
    runs = 0

    def check(candidate: Plan) -> bool:
        nonlocal runs
        token = plan_token(candidate)
        if token not in cache:
            if runs >= budget:
                return False
            runs += 1
            cache[token] = fails(candidate)
        return cache[token]

    def rank(f: Mapping[str, Any]) -> int:
        return order.get(fault_key(f), len(order))

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
            simpler: Plan = []
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


def _without(plan: Plan, i: int) -> list[Plan]:
    """Plan minus fault i; and, when fault i used up an attempt, also with the later faults
    on the same step moved one attempt earlier (they fired on the attempt after it)."""
    rest = plan[:i] + plan[i + 1 :]
    out = [rest]
    gone = plan[i]
    if "attempt" in gone:
        shifted: Plan = []
        for f in rest:
            if f.get("step") == gone["step"] and f.get("attempt", 0) > gone["attempt"]:
                f = f.copy()
                f["attempt"] -= 1
            shifted.append(f)
        if shifted != rest:
            out.append(shifted)
    return out
