"""Shared runs (`chaos/_memo`) judge exactly what running every plan from the start judges.

`evaluate` walks a trie of the runs already made and resumes from captured recoveries
(`engine/_resume`) instead of running each plan from the start. These tests run the same
plans both ways, exhaustive singles and random plans of up to three faults, on the examples,
and compare whole observations (status, output, timeline, database digest and rows, effects,
step-result types, every hook record) and verdicts; and they check that the sharing happens
(captures taken, fewer real runs than plans), and stops for a workflow that keeps state
across runs.
"""

from __future__ import annotations

import dataclasses
import itertools
import random
from pathlib import Path
from typing import Any

import pytest

from awf_sim import Domain, Workflow
from awf_sim.chaos import Target, build_baseline
from awf_sim.chaos import _memo as memo
from awf_sim.chaos._run import run_on, verdict_of
from awf_sim.chaos._space import random_plans
from awf_sim.flow import load_flow

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

CASES = [
    ("order_processing.py", None, 0),
    ("order_processing.py", None, 2),  # declined: the release branch
    ("order_processing_typed.py", None, 0),  # typed results across replays
    ("stateful.py", "complex-state", 0),  # {"name", "index"} selectors, repeated steps
    ("onboarding.py", None, 0),
    ("weekly_report.py", None, 0),
    ("nondeterministic.py", None, 0),  # determinism violations under replay
]


def _baseline(file: str, name: str | None, example: int) -> Any:
    flow = load_flow(EXAMPLES / file)
    workflow = flow.pick(name)
    return build_baseline(Target(workflow, workflow.examples[example], db=flow.database))


def _differing(a: Any, b: Any) -> list[str]:
    """The fields in which two Observations differ (they compare by identity)."""
    return [f.name for f in dataclasses.fields(a) if getattr(a, f.name) != getattr(b, f.name)]


def _plans(base: Any, n: int, seed: int) -> list[Any]:
    plans = [[f] for f in base.singles]
    return plans + random_plans(base, n, 3, random.Random(seed), set())


@pytest.mark.parametrize(("file", "name", "example"), CASES)
def test_shared_runs_observe_and_judge_what_full_runs_do(
    file: str, name: str | None, example: int
) -> None:
    base = _baseline(file, name, example)
    assert memo.uses_trie(base)
    plans = _plans(base, 150, 11)
    real_runs = 0
    real = memo._real

    def counting(*args: Any) -> Any:
        nonlocal real_runs
        real_runs += 1
        return real(*args)

    memo._real = counting  # type: ignore[assignment]
    try:
        for plan in plans:
            full = run_on(base, plan)
            shared = memo.observe(base, plan)
            assert not _differing(shared, full), (plan, _differing(shared, full))
            assert memo.evaluate(base, plan) == verdict_of(base, full), plan
    finally:
        memo._real = real  # type: ignore[assignment]
    trie = base._memo
    assert not trie.broken
    # The sharing happened: recoveries captured and resumed, most plans not run again.
    assert trie.captures > 0
    assert real_runs < len(plans) / 2


def test_order_of_plans_does_not_change_verdicts() -> None:
    """Another order builds another trie; each plan's verdict is the same."""
    plans = _plans(_baseline("order_processing.py", None, 0), 120, 5)
    first = _baseline("order_processing.py", None, 0)
    forward = [memo.evaluate(first, p) for p in plans]
    second = _baseline("order_processing.py", None, 0)
    backward = [memo.evaluate(second, p) for p in reversed(plans)]
    assert forward == list(reversed(backward))


_count = itertools.count()


async def _note(ctx_: dict[str, Any], args: dict[str, Any], ctx: Any) -> dict[str, Any]:
    return {"n": args["n"]}


_Memo = Domain("MemoNote", {"note": _note})


@Workflow("memo-module-state", domains=[_Memo])
async def _module_state(wf: Any, params: Any) -> Any:
    n = next(_count)  # module state: every run of the function sees another value
    return await wf.MemoNote({}).note(n=n)


def test_a_workflow_with_module_state_runs_every_plan_from_the_start() -> None:
    base = build_baseline(Target(_module_state, {}))
    assert not memo.uses_trie(base)  # two fault-free runs differ: nothing is shared
    plan = [{"kind": "crash-after-checkpoint", "step": "MemoNote.note", "attempt": 1}]
    verdict = memo.evaluate(base, plan)
    assert {v.invariant for v in verdict.violations} & {"determinism", "checkpoint-once"}


def test_a_run_resumed_after_a_skewed_replay_keeps_the_skew_and_the_seed() -> None:
    """The second plan resumes from the recovery the first one captured (after a clock skew
    and a reseed): its handlers must read the skewed clock and the reseeded randomness."""
    base = _baseline("order_processing.py", None, 0)
    first = [
        {"kind": "clock-skew", "step": "Inventory.check", "ms": 90_061_001},
        {"kind": "reseed", "step": {"name": "Inventory.check", "index": 1}, "seed": 3},
        {"kind": "crash-before-step", "step": "Inventory.reserve", "attempt": 1},
    ]
    second = [*first, {"kind": "crash-after-checkpoint", "step": "Payment.process"}]
    for plan in (first, second):
        assert not _differing(memo.observe(base, plan), run_on(base, plan)), plan
    assert base._memo.captures >= 2


def test_runs_that_call_an_http_mock_are_judged_alike() -> None:
    """ctx.http reaches a mock whose state is the user's (engine/_resume refuses to capture
    once a handler used it): the shared runs still judge every plan as full runs do."""
    base = _baseline("payment.py", None, 0)
    for plan in _plans(base, 60, 3):
        full = run_on(base, plan)
        assert not _differing(memo.observe(base, plan), full), plan
        assert memo.evaluate(base, plan) == verdict_of(base, full), plan
