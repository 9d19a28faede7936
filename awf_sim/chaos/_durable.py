"""`assert_durable`: check one fault plan against every invariant, for tests and Hypothesis.

```python
from awf_sim import assert_durable

assert_durable(order_processing, params,
               [{"kind": "crash-after-effect", "step": "Inventory.reserve"}], db=DATABASE)
```

The fault-free baseline (and the probe run that tells clock- and seed-bound values apart) is
computed once per (workflow, params, world) and cached, so a Hypothesis test that draws many
plans pays for it once. Light: no Hypothesis, no rich.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping, Sequence
from typing import Any

from awf_sim._report import timeline_lines
from awf_sim.chaos._faults import describe_fault, normalize_plan, plan_token
from awf_sim.chaos._model import Baseline, Target, Violation, checked_workflow
from awf_sim.chaos._report import mark_timeline
from awf_sim.chaos._run import run_plan
from awf_sim.chaos._space import build_baseline
from awf_sim.dsl._identity import canonical
from awf_sim.dsl._workflow import Workflow

__all__ = ["SEED_SOURCE", "DurabilityViolation", "assert_durable", "baseline_for"]

# Where `seed=None` draws a simulator seed from. `awf_sim.strategies` registers it with
# Hypothesis (`register_random`), so under Hypothesis each test case starts it from the same
# state and a failing example replays with the same seed.
SEED_SOURCE = random.Random(0)

_CACHE_SIZE = 16
_cache: list[tuple[tuple[Any, ...], Baseline]] = []
TIMELINE_LINES = 40


class DurabilityViolation(AssertionError):
    """A fault plan broke a durability invariant. `.invariant` is the first one broken,
    `.violations` all of them, `.plan`/`.token` the plan, `.timeline` the run's timeline (each
    entry a fault produced carries `"fault"`)."""

    def __init__(
        self,
        message: str,
        *,
        workflow: str = "",
        plan: Sequence[Mapping[str, Any]] = (),
        violations: Sequence[Violation] = (),
        timeline: Sequence[Mapping[str, Any]] = (),
        status: str | None = None,
    ) -> None:
        super().__init__(message)
        self.workflow = workflow
        self.plan = [dict(f) for f in plan]
        self.token = plan_token(self.plan)
        self.violations = list(violations)
        self.invariants = [v.invariant for v in self.violations]
        self.invariant = self.invariants[0] if self.invariants else None
        self.timeline = [dict(e) for e in timeline]
        self.status = status

    def __reduce__(self) -> Any:
        return (
            _rebuild,
            (
                str(self),
                self.workflow,
                self.plan,
                [v.to_json() for v in self.violations],
                self.timeline,
                self.status,
            ),
        )


def _rebuild(
    message: str,
    workflow: str,
    plan: list[dict[str, Any]],
    violations: list[dict[str, Any]],
    timeline: list[dict[str, Any]],
    status: str | None,
) -> DurabilityViolation:
    return DurabilityViolation(
        message,
        workflow=workflow,
        plan=plan,
        violations=[Violation(**v) for v in violations],
        timeline=timeline,
        status=status,
    )


def _timeline_lines(timeline: Sequence[Mapping[str, Any]]) -> list[str]:
    return timeline_lines(timeline, tail=TIMELINE_LINES, indent="    ")


def format_violations(
    workflow: str, plan: Sequence[Mapping[str, Any]], violations: Sequence[Violation]
) -> list[str]:
    token = plan_token(plan)
    names = ", ".join(dict.fromkeys(v.invariant for v in violations))
    lines = [
        f"{workflow} is not durable: {names} broken under the fault plan",
        f"  plan: {json.dumps(list(plan), ensure_ascii=False)}",
        "        " + ("; ".join(describe_fault(f) for f in plan) or "(no fault)"),
        f"  token: {token}",
    ]
    for v in violations:
        lines.append(f"  {v.invariant} ({v.key}): {v.message}")
        lines += [f"      {d}" for d in v.difference]
        if v.hint:
            where = f" [{v.where}]" if v.where and v.where not in v.hint else ""
            lines.append(f"    hint: {v.hint}{where}")
    return lines


def _identity(value: Any) -> Any:
    """A cache key part: JSON-able values by content, anything else by identity."""
    try:
        return ("json", canonical(value))
    except (TypeError, ValueError):
        return ("id", id(value))


def baseline_for(target: Target) -> Baseline:
    """The fault-free baseline of `target`, cached (the same objects give the same baseline)."""
    key = (
        id(target.workflow),
        _identity(target.params),
        id(target.db),
        id(target.ai),
        id(target.http),
        _identity(target.env),
        target.seed,
        target.profile,
        target.instance_id,
    )
    for i, (k, base) in enumerate(_cache):
        t = base.target
        same = (
            t.workflow is target.workflow
            and t.db is target.db
            and t.ai is target.ai
            and t.http is target.http
        )
        if k == key and same:
            _cache.append(_cache.pop(i))
            return base
    base = build_baseline(target)
    _cache.append((key, base))
    del _cache[:-_CACHE_SIZE]
    return base


def assert_durable(
    workflow: Workflow,
    params: Any,
    plan: Sequence[Mapping[str, Any]],
    *,
    db: Any = None,
    ai: Any = None,
    http: Any = None,
    env: Mapping[str, Any] | None = None,
    seed: int | None = 0,
    profile: str = "production",
    instance_id: str | None = None,
) -> None:
    """Run `workflow` on `params` under the fault `plan` and check every invariant.

    `plan` is a list of fault dicts (DESIGN §6), e.g.
    `[{"kind": "crash-after-effect", "step": "Inventory.reserve"}]`; the keyword arguments are
    those of `create_test_workflow`. Raises DurabilityViolation (an AssertionError) naming the
    invariants broken, with the plan, the differences, a hint and the timeline.
    `seed=None` draws the seed from `SEED_SOURCE` (managed by Hypothesis once
    `awf_sim.strategies` is imported).
    """
    __tracebackhide__ = True  # pytest shows the test's line, not awf's
    checked_workflow(workflow, "assert_durable")
    norm = normalize_plan(plan)
    if seed is None:
        seed = SEED_SOURCE.randrange(2**32)
    target = Target(
        workflow,
        params,
        db=db,
        env=env,
        ai=ai,
        http=http,
        seed=seed,
        profile=profile,
        instance_id=instance_id,
    )
    base = baseline_for(target)
    obs, _checked, violations = run_plan(base, norm)
    # How the fault-free run should end is the caller's test to assert (chaos and the push
    # gate judge it by the example's declared outcome); durability is this function's.
    violations = [v for v in violations if v.invariant != "baseline-outcome"]
    if not violations:
        return
    timeline = mark_timeline(obs)
    lines = format_violations(workflow.name, norm, violations)
    lines.append(f"  status: {obs.status} (fault-free run: {base.obs.status}); seed {seed}")
    lines.append("  timeline:")
    lines += _timeline_lines(timeline)
    raise DurabilityViolation(
        "\n".join(lines),
        workflow=workflow.name,
        plan=norm,
        violations=violations,
        timeline=timeline,
        status=obs.status,
    )
