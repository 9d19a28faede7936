"""`assert_durable` refuses a fault that aims at nothing the workflow does: a misspelt step
passed silently before, so a test "proved" durability under a fault that never happened."""

from __future__ import annotations

from typing import Any

import pytest

from awf_sim import Domain, Workflow, assert_durable
from awf_sim.errors import FaultPlanError

PAID: list[str] = []


async def charge(order: Any, args: Any, ctx: Any) -> dict[str, Any]:
    PAID.append(order["id"])
    return {"ok": True}


async def refund(order: Any, args: Any, ctx: Any) -> dict[str, Any]:
    return {"refunded": True}


DtPay = Domain(
    "DtPay",
    {
        "charge": {"handler": charge, "retries": {"limit": 1, "delay": "1 second"}},
        "refund": refund,
    },
)


@Workflow("dt-checkout", events=[{"type": "approval", "payload": {"ok": True}}])
async def checkout(wf: Any, order: Any) -> Any:
    await wf.sleep("cool-off", "1 hour")
    decision = await wf.wait_for("approve", type="approval", timeout="1 day")
    try:
        await wf.DtPay(order).charge()
    except Exception:
        # Reached only when charge fails: a fault may aim at it although the fault-free
        # run never calls it.
        return await wf.DtPay(order).refund()
    return decision


ORDER = {"id": "o-1"}


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        (
            {"kind": "crash-after-effect", "step": "DtPay.chrage"},
            "assert_durable: fault 1 (crash-after-effect): 'DtPay.chrage' matches no step of "
            "'dt-checkout', with or without the plan (did you mean 'DtPay.charge'?); "
            "the fault would test nothing",
        ),
        (
            {"kind": "timeout", "step": "Shipping.*"},
            "assert_durable: fault 1 (timeout): 'Shipping.*' matches no step of 'dt-checkout', "
            "with or without the plan (its steps: DtPay.charge); the fault would test nothing",
        ),
        (
            {"kind": "crash-before-step", "step": {"name": "DtPay.charge", "index": 2}},
            "assert_durable: fault 1 (crash-before-step): {'name': 'DtPay.charge', 'index': 2} "
            "matches no step of 'dt-checkout', with or without the plan (only 1 call(s) of it, "
            "not 2); the fault would test nothing",
        ),
        (
            # charge runs once in the fault-free run: its 2nd attempt (the last its retries
            # allow) needs a failure of the 1st, which no fault of this plan makes.
            {"kind": "crash-after-effect", "step": "DtPay.charge", "attempt": 2},
            "assert_durable: fault 1 (crash-after-effect): 'DtPay.charge' makes at most 1 "
            "attempt(s), with or without the plan, never attempt 2; the fault would test "
            "nothing (add a transient-error fault at attempt 1 of it to reach the next, or aim "
            "at attempt 1)",
        ),
        (
            {"kind": "transient-error", "step": "DtPay.charge", "attempt": 7},
            "assert_durable: fault 1 (transient-error): 'DtPay.charge' makes at most 1 "
            "attempt(s), with or without the plan, never attempt 7; the fault would test "
            "nothing (add a transient-error fault at attempt 1 of it to reach the next, or aim "
            "at attempt 1)",
        ),
        (
            {"kind": "crash-during-sleep", "step": "cool-of"},
            "assert_durable: fault 1 (crash-during-sleep): 'cool-of' matches no sleep of "
            "'dt-checkout', with or without the plan (did you mean 'cool-off'?); "
            "the fault would test nothing",
        ),
        (
            {"kind": "event-late", "type": "aproval"},
            "assert_durable: fault 1 (event-late): 'dt-checkout' declares no event of type "
            "'aproval' (its events: 'approval'); event faults aim at Workflow(events=[...])",
        ),
    ],
)
def test_a_fault_aimed_at_nothing_is_refused(fault: dict[str, Any], message: str) -> None:
    with pytest.raises(FaultPlanError) as raised:
        assert_durable(checkout, ORDER, [fault])
    assert str(raised.value) == message


def test_faults_at_real_calls_still_pass() -> None:
    assert_durable(
        checkout,
        ORDER,
        [
            {"kind": "crash-during-sleep", "step": "cool-off"},
            {"kind": "crash-during-wait", "step": "approve"},
            {"kind": "event-late", "type": "approval"},
            {"kind": "crash-after-checkpoint", "step": "DtPay.*"},
        ],
    )


def test_a_step_only_the_faulted_run_reaches_is_a_valid_target() -> None:
    # Two timeouts exhaust charge's retries; refund runs only then, and is a real target.
    assert_durable(
        checkout,
        ORDER,
        [
            {"kind": "timeout", "step": "DtPay.charge", "attempt": 1},
            {"kind": "timeout", "step": "DtPay.charge", "attempt": 2},
            {"kind": "crash-after-effect", "step": "DtPay.refund"},
        ],
    )


def test_a_later_attempt_reached_through_an_earlier_fault_is_a_valid_target() -> None:
    assert_durable(
        checkout,
        ORDER,
        [
            {"kind": "transient-error", "step": "DtPay.charge", "attempt": 1},
            {"kind": "crash-after-effect", "step": "DtPay.charge", "attempt": 2},
        ],
    )
