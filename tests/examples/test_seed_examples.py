"""The seed's workflows, ported to examples/: each path through them, in virtual time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from awf_sim import Simulator
from awf_sim.engine._hooks import Crash, Hooks, StepRef
from awf_sim.flow import FlowFile, load_flow

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(scope="module")
def flows() -> dict[str, FlowFile]:
    names = ["expense_approval", "weekly_report", "onboarding", "sprint_cycle", "stateful"]
    return {name: load_flow(EXAMPLES / f"{name}.py") for name in names}


def start(flow: FlowFile, workflow: str, params: Any) -> tuple[Simulator, Any]:
    sim = Simulator(db=flow.database)
    return sim, sim.create(flow.workflows[workflow], params)


def checkpoints(inst: Any) -> list[tuple[str, int]]:
    return [(e["path"], e["at_ms"]) for e in inst.timeline if e["kind"] == "checkpoint"]


def test_expense_waits_for_the_manager_then_reimburses(flows: dict[str, FlowFile]) -> None:
    flow = flows["expense_approval"]
    expense = flow.workflows["expense-approval"].examples[0]
    sim, inst = start(flow, "expense-approval", expense)
    with sim:
        sim.run()
        assert inst.status()["status"] == "waiting"  # hibernating on the decision
        sim.advance("3 days")
        inst.send_event("expense-decision", {"approved": True})
        sim.run()
        assert inst.status()["output"] == {"status": "approved", "reimbursementId": "rb-e-1"}
        assert sim.db.snapshot()["reimbursements"] == [
            {"expense_id": "e-1", "amount": 420.0, "status": "paid"}
        ]
        assert checkpoints(inst)[-1] == ("ExpenseEmail.send", 3 * 86_400_000)


def test_expense_rejected_and_expired_paths(flows: dict[str, FlowFile]) -> None:
    flow = flows["expense_approval"]
    expense = flow.workflows["expense-approval"].examples[0]
    sim, inst = start(flow, "expense-approval", expense)
    with sim:
        inst.send_event("expense-decision", {"approved": False, "reason": "no receipt"})
        sim.run()
        assert inst.status()["output"] == {"status": "rejected", "reason": "no receipt"}
        assert sim.db.snapshot()["reimbursements"] == []
    sim, inst = start(flow, "expense-approval", {**expense, "id": "e-9"})
    with sim:
        sim.run_until_done(inst)
        assert inst.status()["output"] == {"status": "expired"}
        assert sim.now_ms == 7 * 86_400_000


def test_small_expense_needs_no_approval(flows: dict[str, FlowFile]) -> None:
    flow = flows["expense_approval"]
    sim, inst = start(flow, "expense-approval", flow.workflows["expense-approval"].examples[1])
    with sim:
        sim.run()
        assert inst.status()["output"]["status"] == "approved"
        assert not any(e["kind"] == "wait-start" for e in inst.timeline)


def test_weekly_report_is_scheduled_and_gathers_in_parallel(flows: dict[str, FlowFile]) -> None:
    flow = flows["weekly_report"]
    workflow = flow.workflows["weekly-report"]
    assert workflow.schedule == "0 9 * * 1"
    sim, inst = start(flow, "weekly-report", {})
    with sim:
        sim.run()
        report = inst.status()["output"]
        assert report["insights"][0] == "revenue is up week over week"
        starts = [e["path"] for e in inst.timeline if e["kind"] == "attempt-start"][:3]
        assert sorted(starts) == [
            "Analytics.weeklyMetrics",
            "Engineering.sprintMetrics",
            "Support.weeklyStats",
        ]
        assert sim.db.snapshot()["posts"][0]["channel"] == "#leadership"


def test_onboarding_runs_both_parallel_groups(flows: dict[str, FlowFile]) -> None:
    flow = flows["onboarding"]
    sim, inst = start(
        flow, "customer-onboarding", flow.workflows["customer-onboarding"].examples[0]
    )
    with sim:
        sim.run()
        assert inst.status()["output"] == {"customerId": "c-42", "status": "onboarded"}
        paths = [p for p, _ in checkpoints(inst)]
        assert paths.index("Welcome.sendWelcome") == 4  # after the four accounts
        assert len(sim.db.snapshot()["accounts"]) == 4
        assert len(sim.db.snapshot()["messages"]) == 4


def test_sprint_cycle_hibernates_until_the_sprint_ends(flows: dict[str, FlowFile]) -> None:
    flow = flows["sprint_cycle"]
    sim, inst = start(flow, "sprint-cycle", flow.workflows["sprint-cycle"].examples[0])
    with sim:
        sim.run()
        sim.advance("13 days")
        inst.send_event("sprint-ended", {"completed": 9})
        sim.run()
        out = inst.status()["output"]
        assert out["retro"] == {"summary": "9 items done", "actions": ["more pairing"]}
        assert checkpoints(inst)[-1] == ("Sprint.planNext", 13 * 86_400_000)


def test_sprint_cycle_times_out_after_two_weeks_without_the_event(
    flows: dict[str, FlowFile],
) -> None:
    flow = flows["sprint_cycle"]
    sim, inst = start(flow, "sprint-cycle", flow.workflows["sprint-cycle"].examples[0])
    with sim:
        sim.run_until_done(inst)
        assert inst.status()["status"] == "errored"
        assert inst.status()["error"]["name"] == "WorkflowTimeoutError"
        assert sim.now_ms == 14 * 86_400_000


@pytest.mark.parametrize(
    ("workflow", "expected"),
    [
        ("stateful", {"result": 39, "steps": 2}),
        (
            "complex-state",
            {
                "items": [
                    {"sku": "A", "value": 10.0},
                    {"sku": "B", "value": 10.0},
                    {"sku": "C", "value": 10.0},
                ],
                "total": 30.0,
            },
        ),
    ],
)
def test_state_survives_a_crash_after_any_checkpoint(
    flows: dict[str, FlowFile], workflow: str, expected: Any
) -> None:
    flow = flows["stateful"]
    params = flow.workflows[workflow].examples[0]
    total = count_checkpoints(flow, workflow, params)
    assert total >= 3
    for k in range(1, total + 1):
        with Simulator(hooks=CrashAfterCheckpoint(k)) as sim:
            inst = sim.create(flow.workflows[workflow], params)
            sim.run()
            assert inst.status()["output"] == expected, k
            assert [e["kind"] for e in inst.timeline].count("crash") == 1


class CrashAfterCheckpoint(Hooks):
    """Crashes the engine once, right after the k-th checkpoint of the run."""

    def __init__(self, k: int) -> None:
        self.k, self.seen = k, 0

    def after_checkpoint(self, iid: str, ref: StepRef, attempt: int) -> Any:
        self.seen += 1
        return Crash() if self.seen == self.k else None


def count_checkpoints(flow: FlowFile, workflow: str, params: Any) -> int:
    with Simulator() as sim:
        inst = sim.create(flow.workflows[workflow], params)
        sim.run()
        return len(checkpoints(inst))
