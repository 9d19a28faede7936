"""A chaos campaign for one target: baseline, exhaustive single faults, random plans,
grouping the violations, shrinking one plan per group.

Violations are grouped by (invariant, what it is about); findings are listed root causes
first. Everything random comes from one `random.Random(seed)`.
"""

from __future__ import annotations

import random
import re
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from awf_sim.chaos._crossproc import CROSS_PROCESS_KEY, CrossProcess, Replayers
from awf_sim.chaos._faults import describe_fault, normalize_plan, plan_token
from awf_sim.chaos._invariants import check_run
from awf_sim.chaos._memo import evaluate
from awf_sim.chaos._model import (
    BODY_RUNAWAY,
    CPU_LIMIT,
    Baseline,
    CampaignResult,
    Finding,
    Plan,
    Progress,
    Target,
    Verdict,
    Violation,
)
from awf_sim.chaos._pool import evaluate_all
from awf_sim.chaos._run import cpu_stopped, execute, ran_away, run_plan, waits_of
from awf_sim.chaos._shrink import shrink
from awf_sim.chaos._space import BASELINE_BOUND_MS, build_baseline, fault_key, random_plans
from awf_sim.chaos._state import Fingerprint, fingerprint, module_state_violation
from awf_sim.engine._selectors import parse_selector
from awf_sim.errors import FaultPlanError

__all__ = ["DEFAULT_MAX_RUNS", "DEFAULT_MAX_STEPS", "Caps", "run_campaign", "runaway_baseline"]

# Chaos's work is runs x steps per run: the singles alone are (fault points x kinds), so an
# uncapped campaign grows with the square of a workflow's length. These caps keep it linear.
DEFAULT_MAX_RUNS = 1000
DEFAULT_MAX_STEPS = 500_000  # step calls across all runs of one input
ESTIMATE_NOTE_S = 5.0  # say how long a campaign will take when it is at least this long
ESTIMATE_AFTER_S = 1.0  # ... measured on the runs of its first second


@dataclass
class Caps:
    """How much work one campaign may do, and where it says so (`say`: one line each).
    `cut_short` is set when `max_seconds` ended it before every plan ran."""

    max_runs: int = DEFAULT_MAX_RUNS
    max_steps: int = DEFAULT_MAX_STEPS
    max_seconds: float | None = None
    say: Callable[[str], None] | None = None
    label: str = ""
    cut_short: bool = False

    def note(self, text: str) -> None:
        if self.say is not None:
            self.say(f"{self.label}: {text}" if self.label else text)


def _human_s(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, sec = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {sec} s"
    return f"{minutes // 60} h {minutes % 60} min"


def _step_calls(base: Baseline) -> int:
    return sum(len(calls) for _kind, calls in base.obs.lifetimes)


def _capped_singles(
    base: Baseline, singles: list[Plan], runs: int, caps: Caps, rng: random.Random
) -> tuple[list[Plan], int]:
    """The single-fault plans to run and how many random plans may follow, within the caps
    (singles beyond them are sampled with the campaign's seed, kept in fault-point order)."""
    steps = max(1, _step_calls(base))
    cap = max(1, min(caps.max_runs, caps.max_steps // steps))
    wanted = max(runs, len(singles))
    if wanted > cap:
        why = (
            f"--max-runs {caps.max_runs}"
            if cap == caps.max_runs
            else f"--max-steps {caps.max_steps:,} / {steps:,} step calls per run"
        )
        if len(singles) > cap:
            caps.note(
                f"{len(singles):,} single faults to inject, capped at {cap:,} runs by {why}: "
                f"running {cap:,} of them, sampled with the seed; raise the cap to run them all"
            )
            singles = [singles[i] for i in sorted(rng.sample(range(len(singles)), cap))]
        else:
            caps.note(
                f"{wanted:,} runs wanted, capped at {cap:,} by {why}; raise the cap to run more"
            )
    return singles, max(0, min(wanted, cap) - len(singles))


MAX_GROUPS_PER_INVARIANT = 5
# Findings are listed root causes first: non-determinism explains most other violations.
FINDING_ORDER = (
    "baseline-outcome",
    "determinism",
    "no-stuck-instance",
    "serializable",
    "idempotent-effects",
    "checkpoint-once",
    "replay-equivalence",
    "retry-policy",
    "events-delivered",
)


def _group(
    verdicts: Sequence[tuple[Plan, Verdict]],
) -> dict[tuple[str, str], tuple[Plan, int, Violation]]:
    """(invariant, key) -> (the simplest plan that broke it, runs that did, a violation)."""
    groups: dict[tuple[str, str], tuple[Plan, int, Violation]] = {}
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
    plan: Plan,
    count: int,
    fallback: Violation,
    *,
    do_shrink: bool,
) -> Finding:
    def fails(candidate: Plan) -> bool:
        verdict = evaluate(base, candidate)
        return any(v.invariant == invariant and v.key == key for v in verdict.violations)

    small = shrink(base, plan, fails) if do_shrink and plan else normalize_plan(plan)
    if not small:
        # Found on the fault-free run itself: show that run. Another run of it could end
        # otherwise (state kept in the process) and depend on how many ran here (--jobs).
        return Finding(fallback, small, plan_token(small), small, count, base.obs)
    obs, _checked, violations = run_plan(base, small)
    violation = next((v for v in violations if v.invariant == invariant and v.key == key), fallback)
    return Finding(violation, small, plan_token(small), normalize_plan(plan), count, obs)


# What a step's non-determinism causes on that same step: it runs again under a new name
# (checkpoint-once), its effects happen twice (idempotent-effects), the outcome changes.
_CONSEQUENCES = ("checkpoint-once", "idempotent-effects", "replay-equivalence")


# What a step that is not idempotent causes on that same step: its retry, tripping over the
# first attempt's effect, fails and changes the outcome.
_IDEMPOTENCY_CONSEQUENCES = ("replay-equivalence",)


def _fold_consequences(findings: list[Finding]) -> list[Finding]:
    """One bug, one finding: a determinism finding about a step takes the other invariants'
    findings about the same step as `related`, and an idempotent-effects finding takes the
    replay-equivalence one, instead of each counting as a bug. A replay-equivalence finding
    about the outcome whose smallest plan is the root's own (the same single fault) is the
    root's step seen in the output, a repeated effect's value returned: related too."""
    roots = {f.violation.key: f for f in findings if f.violation.invariant == "determinism"}
    for f in findings:
        if f.violation.invariant == "idempotent-effects":
            roots.setdefault(f.violation.key, f)
    by_plan: dict[str, Finding] = {}
    # A duplicated event taken by another wait shifts every later wait of its type: the
    # outcome that changes with it under the same plan is that bug seen in the output.
    delivered = [f for f in findings if f.violation.invariant == "events-delivered"]
    for r in [*roots.values(), *delivered]:
        if r.plan:  # a fault-free plan explains nothing
            by_plan.setdefault(r.token, r)
    # A consequence folded under a determinism root explains the outcome its plan changes
    # too: a step called with other arguments under a fault returns something else.
    for f in findings:
        root = roots.get(f.violation.key)
        if (
            f.plan
            and root is not None
            and root is not f
            and root.violation.invariant == "determinism"
            and f.violation.invariant in _CONSEQUENCES
        ):
            by_plan.setdefault(f.token, root)
    # A result that is not JSON ends the fault-free run too: its baseline-outcome finding is
    # that same bug, and the serializable one names the step and the fix.
    unserializable = next(
        (f for f in findings if f.violation.invariant == "serializable" and not f.plan), None
    )
    kept: list[Finding] = []
    for f in findings:
        if f.violation.invariant == "baseline-outcome" and unserializable is not None:
            unserializable.related.append(f)
            continue
        if f.violation.key == CROSS_PROCESS_KEY:
            # The other process asked for another step because the workflow reads something
            # that changes on every replay (random, the clock, uuid4), which an in-process
            # replay shows too: the same bug, and that finding's hint names its real cause.
            root = _named_in(f.violation.difference, roots)
            if root is not None and root.violation.invariant == "determinism":
                root.related.append(f)
                continue
        root = roots.get(f.violation.key)
        consequences = (
            _CONSEQUENCES
            if root is not None and root.violation.invariant == "determinism"
            else _IDEMPOTENCY_CONSEQUENCES
        )
        if root is None or f.violation.invariant not in consequences:
            root = by_plan.get(f.token) if f.violation.invariant == "replay-equivalence" else None
        if root is None and f.violation.invariant in ("idempotent-effects", "replay-equivalence"):
            # A duplicated event that another wait took changes what the workflow writes and
            # returns from there on, whatever other faults the plan holds: that bug again.
            root = next((d for d in delivered if _duplicates(f.plan, d.violation.key)), None)
        if root is not None and root is not f:
            root.related.append(f)
        else:
            kept.append(f)
    return _fold_later_determinism(kept)


def _duplicates(plan: Plan, event_type: str) -> bool:
    return any(x["kind"] == "event-duplicate" and x.get("type") == event_type for x in plan)


def _fold_later_determinism(findings: list[Finding]) -> list[Finding]:
    """A determinism finding whose plan holds the whole plan of another determinism finding
    is that bug seen again later: a branch taken on `random` asks for step A in one lifetime
    and step B in the next, and a further fault makes the lifetime after that ask for A again.
    One bug, one finding: the later one goes under the first, with what it explained."""
    det = [f for f in findings if f.violation.invariant == "determinism" and f.plan]
    keys = {id(f): {fault_key(x) for x in f.plan} for f in det}
    kept: list[Finding] = []
    for f in findings:
        # The smallest such plan: the first sight of the bug, never itself folded.
        root = min(
            (
                r
                for r in det
                if r is not f
                and f in det
                and len(r.plan) < len(f.plan)
                and keys[id(r)] <= keys[id(f)]
            ),
            key=lambda r: len(r.plan),
            default=None,
        )
        if root is None:
            kept.append(f)
            continue
        root.related += [f, *f.related]
        f.related = []
    return kept


def _named_in(lines: Sequence[str], roots: dict[str, Finding]) -> Finding | None:
    """The root finding about a step that one of these difference lines names."""
    for key, root in roots.items():
        # "Inventory.check@<hash>", "Inventory.check's handler", or a name the user wrote
        # ("the first process called do snapshot-1767226200; ...").
        named = re.compile(rf"(?<!\S){re.escape(key)}(?=@|'s |;|,|\s|$)")
        if any(named.search(line) for line in lines):
            return root
    return None


def _check_aimed(base: Baseline, plan: Plan) -> None:
    """Refuse a replay plan with a fault aimed at a step or event this run never has: it
    would not fire, and "no invariant broken" would read as "fixed" (a token copied for
    another workflow or example, or code that no longer calls that step)."""
    names = {p.path for p in base.points}
    names |= {
        parse_selector(p.selector, method="fault plan").name
        for p in base.points
        if p.selector is not None
    }
    names |= {n for e in base.obs.timeline for n in (e.get("path"), e.get("name")) if n}
    events = {str(e.get("type")) for e in base.target.workflow.events}
    where = base.target.workflow.name
    for i, fault in enumerate(plan, 1):
        step, etype = fault.get("step"), fault.get("type")
        if etype is not None and etype not in events:
            known = ", ".join(sorted(events)) or "none"
            missing = f"event type {etype!r}, which {where} is never sent (its events: {known})"
        elif step is not None and not _aimed(step, names):
            missing = f"step {step!r}, which the fault-free run of {where} never calls"
        else:
            continue
        raise FaultPlanError(
            f"--replay: fault {i} of the plan ({describe_fault(fault)}) aims at {missing}; "
            "copy the replay command chaos printed for this workflow and example, or run "
            "chaos again if the code changed"
        )


def _aimed(step: Any, names: set[str]) -> bool:
    selector = parse_selector(step, method="fault plan")
    return selector.name in names or (
        selector.is_glob and any(fnmatchcase(n, selector.name) for n in names)
    )


def _what_ran_away(what: str) -> str:
    return what if what == BODY_RUNAWAY else f"the handler of {what}"


def runaway_baseline(base: Baseline, label: str | None = None) -> str | None:
    """One line saying that the fault-free run failed because code ran past the CPU budget,
    naming the step and the fix; None when it did not (or its example expects that error).
    No fault-injected run can say anything then, and each would pay the budget again."""
    obs = base.obs
    if not ran_away(base.target, obs):
        return None
    stopped = cpu_stopped(obs)
    what = _what_ran_away(stopped[-1]) if stopped else "the workflow"
    return (
        f"the fault-free run of {label or base.workflow.name} failed: {what} ran past the CPU "
        f"budget of {base.target.cpu_ms} ms ({CPU_LIMIT}: an endless loop?), so no fault can "
        "be judged against it; fix the loop, or, if it needs more CPU, raise the budget with "
        "--cpu-ms MS"
    )


def _runaway_result(target: Target, base: Baseline, seed: int, max_faults: int) -> CampaignResult:
    """The campaign of a fault-free run that ran away: that run's `baseline-outcome` finding,
    and no fault-injected run."""
    checked, violations = check_run(base, base.obs)
    findings = [
        Finding(v, [], plan_token([]), [], 1, base.obs)
        for v in violations
        if v.invariant == "baseline-outcome"
    ]
    return CampaignResult(
        target=target,
        baseline=base,
        runs=0,
        exhaustive=0,
        random=0,
        checked=Counter(checked),
        violating=Counter({v.invariant for v in violations}),
        coverage=Counter(),
        findings=findings,
        seed=seed,
        max_faults=max_faults,
        cpu_stopped=Counter(cpu_stopped(base.obs)),
    )


def _module_state(target: Target, base: Baseline, before: Fingerprint) -> Violation | None:
    """The fault-free run changed module-level state: does the same run, made again, end
    otherwise (`_state`)?"""
    after = fingerprint(target.workflow)
    if after == before:
        return None
    twin = execute(target, [], bound_ms=BASELINE_BOUND_MS, full=True)
    paths = [p.path for p in base.points if p.kind == "do"]
    return module_state_violation(target.workflow, before, after, base.obs, twin, paths)


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
    flow_path: str | None = None,
    caps: Caps | None = None,
    replayers: Replayers | None = None,
) -> CampaignResult:
    """Chaos for one target. With `replay`, run just that plan (no shrinking). With
    `flow_path` (the file that defines the target's workflow), the fault-free run is also
    replayed in other Python processes (`_crossproc`): those of `replayers` when given (the
    caller's, kept for its next targets), else ones started for this campaign."""
    rng = random.Random(seed)

    def tick(phase: str, done: int, total: int) -> None:
        if progress is not None:
            progress(phase, done, total)

    caps = caps if caps is not None else Caps()
    tick("baseline", 0, 1)
    started = time.monotonic()
    fault_free = replay is None or not normalize_plan(replay)
    state_before = fingerprint(target.workflow) if fault_free else {}
    base = build_baseline(target, kinds, max_faults)
    tick("baseline", 1, 1)
    if runaway_baseline(base) is not None:
        return _runaway_result(target, base, seed, max_faults)
    state = _module_state(target, base, state_before) if fault_free else None
    base_cpu = cpu_stopped(base.obs)
    if base_cpu:
        caps.note(
            f"in the fault-free run, {_what_ran_away(base_cpu[0])} ran past the CPU budget of "
            f"{target.cpu_ms} ms and was stopped ({CPU_LIMIT}, retried per its config); each "
            "run that reaches it pays that CPU again: --cpu-ms MS lowers the budget"
        )
    checked: Counter[str] = Counter()
    violating: Counter[str] = Counter()
    coverage: Counter[tuple[str, str]] = Counter()
    # The baseline is checked too: some invariants (serializable, no-stuck-instance,
    # retry-policy, events-delivered) can fail without any fault.
    base_checked, base_violations = check_run(base, base.obs)
    if state is not None:
        base_violations.append(state)
        if "determinism" not in base_checked:
            base_checked.append("determinism")
    cross = None
    if flow_path is not None and fault_free:
        cross = CrossProcess(target, base, flow_path, replayers)  # runs while the plans do
    checked.update(base_checked)
    results: list[tuple[Plan, Verdict]] = [
        ([], Verdict(base_checked, base_violations, [], waits_of(base.obs), base_cpu))
    ]
    if replay is not None:
        plans = [normalize_plan(replay)]
        _check_aimed(base, plans[0])
        exhaustive = 0
    else:
        singles: list[Plan] = [[f] for f in base.singles]
        singles, extra_runs = _capped_singles(base, singles, runs, caps, rng)
        seen = {plan_token(p) for p in singles}
        plans = singles + random_plans(base, extra_runs, max_faults, rng, seen)
        exhaustive = len(singles)
    done = 0
    total = len(plans)
    runs_started = time.monotonic()
    estimated = False

    def on_done(n: int) -> None:
        nonlocal done, estimated
        done += n
        tick("exhaustive" if done <= exhaustive else "random", done, total)
        spent = time.monotonic() - runs_started
        if not estimated and spent >= ESTIMATE_AFTER_S:
            # Measured on the first runs (the fault-free run pays for imports and warm-up).
            estimated = True
            left = (total - done) * spent / done
            if left >= ESTIMATE_NOTE_S:
                caps.note(f"{total:,} runs planned, about {_human_s(left)} left")

    deadline = None if caps.max_seconds is None else started + caps.max_seconds

    def stop() -> bool:
        return deadline is not None and time.monotonic() >= deadline

    try:
        verdicts = evaluate_all(base, plans, jobs, on_done, stop)
    finally:
        if cross is not None:
            base_violations += cross.violations()
    ran = sum(v is not None for v in verdicts)
    planned = None
    if ran < len(plans):
        caps.cut_short = True
        planned = len(plans)
        caps.note(
            f"stopped by --max-seconds {caps.max_seconds:g} after {ran:,} of {len(plans):,} "
            "runs: not every fault was injected, so this is no verdict (exit 1); raise "
            "--max-seconds or lower --max-runs"
        )
        exhaustive = sum(v is not None for v in verdicts[:exhaustive])
        plans = [p for p, v in zip(plans, verdicts, strict=True) if v is not None]
    for plan, verdict in zip(plans, [v for v in verdicts if v is not None], strict=True):
        results.append((plan, verdict))
        checked.update(verdict.checked)
        coverage.update(verdict.pairs)
    wait_timeouts: Counter[str] = Counter()
    stopped: Counter[str] = Counter()
    for _plan, verdict in results:
        violating.update({v.invariant for v in verdict.violations})
        for name, timed_out in verdict.waits:
            wait_timeouts[name] += int(timed_out)
        if verdict.cpu:
            stopped.update(verdict.cpu)
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
    findings = _fold_consequences(findings)
    base._memo = None  # the campaign's shared runs (database images): not needed any more
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
        wait_timeouts=wait_timeouts,
        cpu_stopped=stopped,
        planned=planned,
    )
