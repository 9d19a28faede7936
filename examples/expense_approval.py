"""Expense approval with a human in the loop, ported from the seed.

A large expense waits up to 7 days for a manager's decision (`wf.wait_for`); the workflow
hibernates meanwhile. The declared `events` are what `awf-sim run` and `awf-sim chaos` send:
the manager approves two hours after the request.

    awf-sim run examples/expense_approval.py
"""

from __future__ import annotations

from typing import Any

from awf_sim import Database, Domain, StepError, Workflow

DATABASE = Database(
    schema="""
    CREATE TABLE notifications (idempotency_key TEXT PRIMARY KEY, channel TEXT, template TEXT);
    CREATE TABLE reimbursements (expense_id TEXT PRIMARY KEY, amount REAL, status TEXT);
    """
)

APPROVAL_LIMIT = 100.0


async def validate(expense: dict[str, Any], _: dict[str, Any], ctx: Any) -> dict[str, Any]:
    if expense["amount"] <= 0:
        return {"valid": False, "requiresApproval": False, "reason": "amount must be positive"}
    return {"valid": True, "requiresApproval": expense["amount"] > APPROVAL_LIMIT}


async def notify(target: Any, args: dict[str, Any], ctx: Any) -> dict[str, Any]:
    # One row per step occurrence: a re-run of this step (after a crash) changes nothing.
    await ctx.db.execute(
        "INSERT OR IGNORE INTO notifications (idempotency_key, channel, template) VALUES (?, ?, ?)",
        [ctx.idempotency_key, str(target), args["template"]],
    )
    return {"sent": True}


async def reimburse(expense: dict[str, Any], _: dict[str, Any], ctx: Any) -> dict[str, Any]:
    await ctx.db.execute(
        "INSERT OR IGNORE INTO reimbursements (expense_id, amount, status) VALUES (?, ?, 'paid')",
        [expense["id"], expense["amount"]],
    )
    return {"id": f"rb-{expense['id']}", "amount": expense["amount"]}


Expenses = Domain("Expenses", {"validate": validate})
Slack = Domain("Slack", {"send": notify, "post": notify})
Email = Domain("ExpenseEmail", {"send": notify})
Finance = Domain("Finance", {"reimburse": reimburse})


@Workflow(
    "expense-approval",
    examples=[
        {"id": "e-1", "amount": 420.0, "approver": "#finance", "submitter": "ana@example.com"},
        {"id": "e-2", "amount": 35.0, "approver": "#finance", "submitter": "ben@example.com"},
    ],
    events=[
        {
            "type": "expense-decision",
            "payload": {"approved": True, "approver": "manager@example.com"},
            "after": "2 hours",
        }
    ],
    domains=[Expenses, Slack, Email, Finance],
)
async def expense_approval(wf: Any, expense: dict[str, Any]) -> dict[str, Any]:
    validation = await wf.Expenses(expense).validate()
    if not validation["valid"]:
        return {"status": "invalid", "reason": validation["reason"]}

    if validation["requiresApproval"]:
        await wf.Slack(expense["approver"]).send(template="expense-approval-request")
        try:
            # The workflow hibernates here, for up to a week, at no cost.
            decision = await wf.wait_for(
                "manager-approval", type="expense-decision", timeout="7 days"
            )
        except StepError:
            await wf.ExpenseEmail(expense["submitter"]).send(template="expense-expired")
            return {"status": "expired"}
        if not decision["approved"]:
            await wf.ExpenseEmail(expense["submitter"]).send(template="expense-rejected")
            return {"status": "rejected", "reason": decision.get("reason")}

    reimbursement = await wf.Finance(expense).reimburse()
    await wf.ExpenseEmail(expense["submitter"]).send(template="expense-approved")
    return {"status": "approved", "reimbursementId": reimbursement["id"]}
