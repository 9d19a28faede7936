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

import difflib
import json
import os
import random
import shlex
from collections.abc import Mapping, Sequence
from typing import Any

from awf_sim._report import timeline_lines
from awf_sim.chaos._faults import (
    EVENT_KINDS,
    SLEEP_KINDS,
    WAIT_KINDS,
    describe_fault,
    earlier_attempt_aimed,
    normalize_plan,
    plan_token,
)
from awf_sim.chaos._model import Baseline, Observation, Target, Violation, checked_workflow
from awf_sim.chaos._report import mark_timeline
from awf_sim.chaos._run import run_plan
from awf_sim.chaos._space import build_baseline
from awf_sim.dsl._identity import canonical
from awf_sim.dsl._workflow import Workflow
from awf_sim.engine._hooks import StepRef
from awf_sim.engine._selectors import parse_selector
from awf_sim.errors import FaultPlanError
from awf_sim.testing._failures import user_facing
from awf_sim.testing._workflow import with_flow_defaults

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


@user_facing  # a FaultPlanError shows at the test's line, not under awf's frames
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
    those of `create_test_workflow` (db, ai and http left out are the flow file's `DATABASE`,
    `AI` and `HTTP`, as there). Raises DurabilityViolation (an AssertionError) naming the
    invariants broken, with the plan, the differences, a hint and the timeline. A fault whose
    step or event type names nothing the workflow does (a typo) is a FaultPlanError, as a
    modifier selector that matched nothing fails a test workflow's run.
    `seed=None` draws the seed from `SEED_SOURCE` (managed by Hypothesis once
    `awf_sim.strategies` is imported).
    """
    __tracebackhide__ = True  # pytest shows the test's line, not awf's
    checked_workflow(workflow, "assert_durable")
    norm = normalize_plan(plan)
    # The CLI runs a flow file in its own world: a replay there matches only this one's.
    as_cli = db is None and ai is None and http is None and env is None
    as_cli = as_cli and profile == "production" and instance_id is None
    db, ai, http = with_flow_defaults(workflow, db, ai, http)
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
    _refuse_faults_aimed_at_nothing(workflow, norm, base, obs)
    # How the fault-free run should end is the caller's test to assert (chaos and the push
    # gate judge it by the example's declared outcome); durability is this function's.
    violations = [v for v in violations if v.invariant != "baseline-outcome"]
    if not violations:
        return
    timeline = mark_timeline(obs)
    lines = format_violations(workflow.name, norm, violations)
    lines.append(f"  status: {obs.status} (fault-free run: {base.obs.status}); seed {seed}")
    command = _replay_command(workflow, params, seed, plan_token(norm)) if as_cli else None
    if command is not None:
        lines.append(f"  replay: {command}")
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


def _replay_command(workflow: Workflow, params: Any, seed: int, token: str) -> str | None:
    """The `awf-sim chaos ... --replay TOKEN` that runs the same plan from a shell, where the
    workflow comes from a flow file and its params are JSON; None otherwise."""
    path = getattr(getattr(workflow.fn, "__code__", None), "co_filename", "")
    if not path or not os.path.isfile(path):
        return None  # defined in a notebook or an exec'd string: no file to point at
    try:
        params_json = canonical({} if params is None else params)
    except (TypeError, ValueError):
        return None
    where = os.path.relpath(path) if not os.path.relpath(path).startswith("..") else path
    return (
        f"awf-sim chaos {shlex.quote(where)} --workflow {shlex.quote(workflow.name)} "
        f"--input {shlex.quote(params_json)} --seed {seed} --replay {token}"
    )


_CALL_WORD = {"do": "step", "sleep": "sleep", "wait": "event wait"}


def _refuse_faults_aimed_at_nothing(
    workflow: Workflow, plan: Sequence[Mapping[str, Any]], base: Baseline, obs: Observation
) -> None:
    """A fault that did not fire because its step or event type names nothing the workflow
    did, in the fault-free run or under the plan, is a typo: the plan would pass without
    testing anything. (A fault that names a real call and did not fire, because an earlier
    fault changed the path, is legitimate.)"""
    fired = {f.fault for f in obs.fired}
    for i, fault in enumerate(plan):
        if i in fired:
            continue
        where = f"assert_durable: fault {i + 1} ({fault['kind']})"
        if fault["kind"] in EVENT_KINDS:
            types = list(dict.fromkeys(ev["type"] for ev in workflow.events))
            if fault["type"] not in types:
                declared = ", ".join(map(repr, types)) or "none"
                raise FaultPlanError(
                    f"{where}: {workflow.name!r} declares no event of type {fault['type']!r} "
                    f"(its events: {declared}); event faults aim at Workflow(events=[...])"
                )
            continue
        step = fault.get("step")
        if step is None:
            continue
        kind = (
            "sleep"
            if fault["kind"] in SLEEP_KINDS
            else "wait"
            if fault["kind"] in WAIT_KINDS
            else "do"
        )
        sel = parse_selector(step, method="fault plan")
        most = 0  # the most calls it matched in one lifetime: an index counts per lifetime
        known: dict[str, None] = {}
        for run in (base.obs, obs):
            for _lifetime_kind, calls in run.lifetimes:
                n = 0
                for call_kind, path, name, count in calls:
                    if call_kind != kind:
                        continue
                    known.setdefault(path, None)
                    if sel.matches(StepRef(call_kind, path, name, count, 0)):
                        n += 1
                most = max(most, n)
        word = _CALL_WORD[kind]
        if most >= (sel.index or 1):
            attempt = fault.get("attempt", 1)
            if kind == "do" and attempt > 1:
                # The step runs, but not that often: a fault at an attempt it never makes
                # (with or without the plan's other faults) would pass without firing.
                made = max(
                    (
                        e["attempt"] or 0
                        for run in (base.obs, obs)
                        for e in run.timeline
                        if e["kind"] == "attempt-start"
                        and sel.matches(StepRef("do", e["path"] or "", e["name"] or "", 0, 0))
                    ),
                    default=0,
                )
                if made < attempt and not earlier_attempt_aimed(fault, plan):
                    raise FaultPlanError(
                        f"{where}: {sel} makes at most {made} attempt(s), with or without the "
                        f"plan, never attempt {attempt}; the fault would test nothing (add a "
                        f"transient-error fault at attempt {made} of it to reach the next, or aim "
                        f"at attempt {made})"
                    )
            continue
        if most:
            why = f"only {most} call(s) of it, not {sel.index}"
        else:
            close = difflib.get_close_matches(sel.name, list(known), n=1, cutoff=0.6)
            shown = ", ".join(list(known)[:8]) or "none"
            why = f"did you mean {close[0]!r}?" if close else f"its {word}s: {shown}"
        raise FaultPlanError(
            f"{where}: {sel} matches no {word} of {workflow.name!r}, with or without the "
            f"plan ({why}); the fault would test nothing"
        )
