"""The seed's tests ("## Testing" in ai-workflows.md), ported to examples/order_processing.py."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from awf_sim.flow import load_flow
from awf_sim.testing import WorkflowFailed, create_test_context, mock_database

FLOW = load_flow(Path(__file__).resolve().parents[2] / "examples" / "order_processing.py")
ORDER_PROCESSING = FLOW.pick("order-processing")
Inventory = FLOW.module.Inventory

ORDER = {
    "id": "o-test",
    "product": {"sku": "ABC"},
    "quantity": 1,
    "total": 25.0,
    "paymentMethod": {"token": "tok_visa"},
    "customer": {"email": "test@example.com"},
    "shippingAddress": {"city": "Lisbon"},
}


# -- unit testing domains -----------------------------------------------------------------------

# The seed's mock row ({sku, quantity}) plus the columns the example's check reads.
STOCKED = {"sku": "ABC", "quantity": 10, "reserved": 0, "restock_date": None}


def test_inventory_check_reads_the_stock() -> None:
    ctx = create_test_context(db=mock_database({"inventory": [STOCKED]}))
    result = asyncio.run(Inventory.check({"sku": "ABC"}, {}, ctx))
    assert result == {"available": True, "quantity": 10, "restockDate": None}


def test_inventory_check_of_an_unknown_sku() -> None:
    ctx = create_test_context(db=mock_database({"inventory": [STOCKED]}))
    result = asyncio.run(Inventory.check({"sku": "NOPE"}, {}, ctx))
    assert result == {"available": False, "quantity": 0, "restockDate": None}


# -- integration testing workflows ----------------------------------------------------------------


def test_processes_order_end_to_end(create_test_workflow: Any) -> None:
    workflow = create_test_workflow(ORDER_PROCESSING, db=FLOW.database)

    # Disable sleeps for fast tests
    workflow.modifier.disable_sleeps()
    # Mock external services
    workflow.modifier.mock_step_result("Payment.process", {"success": True, "chargeId": "ch_test"})

    result = workflow.run(ORDER)

    assert result["status"] == "confirmed"
    assert "Inventory.check" in workflow.steps
    assert "Payment.process" in workflow.steps
    assert workflow.warnings == []
    # The mocked payment's handler never ran: nothing was charged.
    assert workflow.db.snapshot()["payments"] == []


def test_handles_payment_failure(create_test_workflow: Any) -> None:
    workflow = create_test_workflow(ORDER_PROCESSING, db=FLOW.database)
    workflow.modifier.mock_step_result(
        "Payment.process", {"success": False, "error": "Card declined"}
    )

    result = workflow.run(ORDER)

    assert result == {"status": "payment-failed", "error": "Card declined"}
    # Verify inventory was released
    assert "Inventory.release" in workflow.steps
    assert workflow.db.snapshot()["inventory"][0]["reserved"] == 0


def test_a_declined_card_releases_the_reservation(create_test_workflow: Any) -> None:
    workflow = create_test_workflow(ORDER_PROCESSING, db=FLOW.database)
    result = workflow.run({**ORDER, "paymentMethod": {"token": "tok_declined"}})
    assert result["status"] == "payment-failed"
    assert workflow.steps == [
        "Inventory.check",
        "Inventory.reserve",
        "Payment.process",
        "Inventory.release",
    ]


def test_a_payment_step_that_throws_fails_the_order(create_test_workflow: Any) -> None:
    # The seed mocks the error itself: mockStepError('Payment.process', new Error('Card
    # declined')). The example workflow does not catch step errors, so once the retries are
    # spent the instance ends errored and the reservation is not released.
    workflow = create_test_workflow(ORDER_PROCESSING, db=FLOW.database)
    workflow.modifier.disable_retry_delays()
    workflow.modifier.mock_step_error("Payment.process", Exception("Card declined"))

    with pytest.raises(WorkflowFailed) as failed:
        workflow.run(ORDER)

    assert failed.value.error == {"name": "Exception", "message": "Card declined"}
    attempts = [
        e["attempt"]
        for e in workflow.timeline
        if e["path"] == "Payment.process" and e["kind"] == "attempt-failure"
    ]
    assert attempts == [1, 2, 3, 4]  # retries limit 3
    assert "Inventory.release" not in workflow.steps
    assert workflow.db.snapshot()["inventory"][0]["reserved"] == 1


def test_out_of_stock_is_backordered(create_test_workflow: Any) -> None:
    workflow = create_test_workflow(ORDER_PROCESSING, db=FLOW.database)
    result = workflow.run({**ORDER, "product": {"sku": "OUT"}})
    assert result == {"status": "backordered", "orderId": "o-test"}
    assert workflow.steps == ["Inventory.check", "Email.send"]
