"""The chaos runner: exhaustive singles, seeded random plans, shrinking, replay, jobs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from awf_sim.chaos import (
    CampaignResult,
    Target,
    build_baseline,
    decode_token,
    run_campaign,
    run_plan,
)
from awf_sim.chaos._shrink import shrink
from awf_sim.flow import FlowFile


def target(flow: FlowFile, **kwargs: Any) -> Target:
    wf = flow.pick(None)
    return Target(wf, wf.examples[0], db=flow.database, **kwargs)


def summary(result: CampaignResult) -> Any:
    return (
        result.runs,
        dict(result.checked),
        dict(result.violating),
        dict(result.coverage),
        [(f.violation.invariant, f.violation.key, f.token, f.runs) for f in result.findings],
    )


def test_the_seed_example_double_reserves_and_chaos_says_where(order: FlowFile) -> None:
    result = run_campaign(target(order), runs=60)
    assert [(f.violation.invariant, f.violation.key) for f in result.findings] == [
        ("idempotent-effects", "Inventory.reserve")
    ]
    finding = result.findings[0]
    assert finding.plan == [
        {"kind": "crash-after-effect", "step": "Inventory.reserve", "attempt": 1}
    ]
    assert "inventory.reserved for ABC: expected 2, got 4" in finding.violation.difference
    assert "ctx.idempotency_key" in finding.violation.hint
    assert (finding.violation.where or "").startswith("examples/order_processing.py:")
    # The exhaustive phase covers every (fault point x kind) pair it aimed at.
    aimed = {(p, k) for p, ks in result.baseline.aimed.items() for k in ks}
    assert aimed
    assert aimed <= set(result.coverage)
    assert result.exhaustive == len(result.baseline.singles) == 35
    assert result.runs == 60
    assert result.random == 25


def test_the_fixed_example_is_clean(order_fixed: FlowFile) -> None:
    result = run_campaign(target(order_fixed), runs=80, seed=3)
    assert result.clean, [f.violation for f in result.findings]
    assert result.checked["idempotent-effects"] == 80


def test_the_nondeterministic_example_breaks_determinism(
    load_example: Callable[[str], FlowFile],
) -> None:
    result = run_campaign(target(load_example("nondeterministic.py")), runs=30)
    first = result.findings[0].violation
    assert first.invariant == "determinism"
    assert first.key == "Coupons.issue"
    assert "into a step" in first.hint


def test_results_depend_on_the_seed_not_on_jobs(order: FlowFile) -> None:
    one = run_campaign(target(order), runs=70, seed=5)
    again = run_campaign(target(order), runs=70, seed=5)
    two = run_campaign(target(order), runs=70, seed=5, jobs=2)
    assert summary(one) == summary(again) == summary(two)
    other = run_campaign(target(order), runs=70, seed=6)
    assert dict(other.coverage) != dict(one.coverage)


def test_a_violation_shrinks_to_fewer_and_earlier_faults(order: FlowFile) -> None:
    base = build_baseline(target(order))
    plan = [
        {"kind": "transient-error", "step": "Payment.process", "attempt": 1},
        {"kind": "transient-error", "step": "Inventory.reserve", "attempt": 1},
        {"kind": "crash-after-effect", "step": "Inventory.reserve", "attempt": 2},
        {"kind": "crash-after-checkpoint", "step": "Email.send", "attempt": 1},
    ]

    def fails(candidate: list[dict[str, Any]]) -> bool:
        _obs, _checked, violations = run_plan(base, candidate)
        return any(v.invariant == "idempotent-effects" for v in violations)

    assert fails(plan)
    assert shrink(base, plan, fails) == [
        {"kind": "crash-after-effect", "step": "Inventory.reserve", "attempt": 1}
    ]


def test_shrinking_keeps_the_same_culprit(order: FlowFile) -> None:
    result = run_campaign(target(order), runs=35)
    finding = result.findings[0]
    assert finding.violation.key == "Inventory.reserve"
    assert len(finding.plan) == 1
    assert finding.plan[0]["attempt"] == 1


def test_replay_runs_exactly_the_plan_of_a_token(order: FlowFile) -> None:
    found = run_campaign(target(order), runs=35).findings[0]
    replayed = run_campaign(target(order), replay=decode_token(found.token))
    assert replayed.runs == 1
    assert replayed.replay == found.token
    again = replayed.findings[0]
    assert again.plan == found.plan
    assert again.violation == found.violation
    assert again.observation.timeline == found.observation.timeline


def test_kinds_limit_the_fault_space(order: FlowFile) -> None:
    result = run_campaign(target(order), runs=0, kinds=("crash-after-checkpoint", "timeout"))
    assert {k for _p, k in result.coverage} == {"crash-after-checkpoint", "timeout"}
    assert result.exhaustive == 10
    assert [f.violation.key for f in result.findings] == ["Inventory.reserve"]  # via timeout
