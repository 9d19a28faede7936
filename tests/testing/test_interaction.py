"""Issue 15: the README's testing snippet runs as written against the repo's examples; a test
workflow defaults to its flow's DATABASE, HTTP and AI; and a test can interact mid-run
(start, wait_for_step_result, wait_for_status, step_result, send_event, then run)."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from awf_sim.flow import load_flow
from awf_sim.testing import TestWorkflow, WorkflowFailed, create_test_workflow

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
ORDER = {
    "id": "o-1",
    "product": {"sku": "ABC"},
    "quantity": 1,
    "total": 25.0,
    "paymentMethod": {"token": "tok_visa"},
    "customer": {"email": "ana@example.com"},
    "shippingAddress": {"city": "Lisbon"},
}
EXPENSE = {"id": "e-1", "amount": 420.0, "approver": "#finance", "submitter": "a@b.com"}


@pytest.fixture
def make() -> Iterator[Callable[..., TestWorkflow]]:
    made: list[TestWorkflow] = []

    def factory(workflow: Any, **kwargs: Any) -> TestWorkflow:
        wf = create_test_workflow(workflow, **kwargs)
        made.append(wf)
        return wf

    yield factory
    for wf in made:
        wf.close()


def _readme_testing_snippet() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## Testing workflows (pytest)") :]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match is not None
    return match.group(1)


def test_the_readme_testing_snippet_passes_as_written(
    make: Callable[..., TestWorkflow], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)  # its paths are relative to the repository, as `pytest` runs it
    namespace: dict[str, Any] = {}
    exec(compile(_readme_testing_snippet(), "README.md", "exec"), namespace)
    tests = [fn for name, fn in namespace.items() if name.startswith("test_")]
    assert len(tests) >= 3
    for test in tests:
        test(make)


def test_without_db_a_test_workflow_uses_the_flows_database(
    make: Callable[..., TestWorkflow],
) -> None:
    orders = load_flow(EXAMPLES / "order_processing.py").pick("order-processing")
    wf = make(orders)
    assert wf.run(ORDER)["status"] == "confirmed"  # an empty database would have no ABC
    assert wf.step_result("Inventory.reserve") is not None


def test_a_given_db_replaces_the_flows_database(make: Callable[..., TestWorkflow]) -> None:
    from awf_sim import Database

    flow = load_flow(EXAMPLES / "order_processing.py")
    stock = {"sku": "ABC", "quantity": 0, "reserved": 0, "restock_date": "2026-03-01"}
    wf = make(flow.pick(None), db=Database(flow.module.SCHEMA, {"inventory": [stock]}))
    assert wf.run(ORDER)["status"] == "backordered"


def test_the_flows_http_mock_is_used_by_default(make: Callable[..., TestWorkflow]) -> None:
    flow = load_flow(EXAMPLES / "payment.py")
    assert flow.http is not None
    wf = make(flow.pick(None))
    assert wf.world.http is flow.http
    assert wf.world.db is flow.database


# -- mid-run interaction ---------------------------------------------------------------------


def _expenses() -> Any:
    return load_flow(EXAMPLES / "expense_approval.py").pick("expense-approval")


def test_wait_for_status_then_send_an_event_and_continue(
    make: Callable[..., TestWorkflow],
) -> None:
    wf = make(_expenses())
    wf.start(EXPENSE)
    wf.wait_for_status("waiting")
    assert wf.status == "waiting"
    assert wf.step_result("Expenses.validate")["requiresApproval"] is True
    assert "Finance.reimburse" not in wf.steps
    wf.send_event("expense-decision", {"approved": False, "reason": "no receipt"})
    assert wf.run() == {"status": "rejected", "reason": "no receipt"}
    assert wf.status == "complete"


def test_wait_for_step_result_returns_it_before_the_run_ends(
    make: Callable[..., TestWorkflow],
) -> None:
    wf = make(_expenses())
    wf.start(EXPENSE)
    validation = wf.waitForStepResult("Expenses.validate")  # the camelCase name works too
    assert validation["valid"] is True
    assert wf.status != "complete"
    wf.send_event("expense-decision", {"approved": True})
    assert wf.run()["status"] == "approved"
    assert wf.step_result({"name": "ExpenseEmail.send", "index": 1}) is not None


def test_waiting_for_a_step_that_never_has_a_result_fails_naming_it(
    make: Callable[..., TestWorkflow],
) -> None:
    wf = make(_expenses())
    wf.start(EXPENSE)
    with pytest.raises(AssertionError, match=r"'Finance.reimburse'.*has no result"):
        wf.wait_for_step_result("Finance.reimburse", timeout="1 hour")
    with pytest.raises(LookupError, match=r"steps with results: Expenses\.validate"):
        wf.step_result("Finance.reimburse")


def test_wait_for_status_refuses_an_unknown_status(make: Callable[..., TestWorkflow]) -> None:
    wf = make(_expenses())
    wf.start(EXPENSE)
    with pytest.raises(ValueError, match="waiting, errored"):
        wf.wait_for_status("sleeping")


def test_wait_for_status_raises_workflow_failed_when_the_instance_errors(
    make: Callable[..., TestWorkflow],
) -> None:
    wf = make(_expenses())
    wf.modifier.mock_step_error("Expenses.validate", {"name": "Error", "message": "db down"})
    wf.modifier.disable_retry_delays()
    wf.start(EXPENSE)
    with pytest.raises(WorkflowFailed, match="db down"):
        wf.wait_for_status("complete")


def test_run_after_start_takes_no_new_params(make: Callable[..., TestWorkflow]) -> None:
    wf = make(_expenses())
    wf.start(EXPENSE)
    with pytest.raises(RuntimeError, match="without params"):
        wf.run(EXPENSE)
    assert os.fspath(EXAMPLES)  # the flow file stays where the test found it
