"""Customer onboarding, ported from the seed: two parallel groups around a sequential step.

awf-sim run examples/onboarding.py
"""

from __future__ import annotations

import asyncio
from typing import Any

from awf_sim import Database, Domain, Workflow

DATABASE = Database(
    schema="""
    CREATE TABLE accounts (
        system TEXT, customer_id TEXT, ref TEXT, PRIMARY KEY (system, customer_id));
    CREATE TABLE messages (idempotency_key TEXT PRIMARY KEY, recipient TEXT, kind TEXT);
    """
)


def account(system: str, field: str, value: str) -> Any:
    async def handler(customer: dict[str, Any], _: dict[str, Any], ctx: Any) -> dict[str, Any]:
        ref = f"{system}-{customer['id']}"
        # Keyed by (system, customer): creating the same account twice is a no-op.
        await ctx.db.execute(
            "INSERT OR IGNORE INTO accounts (system, customer_id, ref) VALUES (?, ?, ?)",
            [system, customer["id"], ref],
        )
        return {"id": ref, field: value.format(id=customer["id"])}

    return handler


async def message(target: Any, args: dict[str, Any], ctx: Any) -> dict[str, Any]:
    await ctx.db.execute(
        "INSERT OR IGNORE INTO messages (idempotency_key, recipient, kind) VALUES (?, ?, ?)",
        [ctx.idempotency_key, str(target), args.get("kind", "message")],
    )
    return {"sent": True}


CRM = Domain("CRM", {"createAccount": account("crm", "owner", "csm-{id}")})
Billing = Domain(
    "Billing", {"setupSubscription": account("billing", "portalUrl", "https://billing/{id}")}
)
SupportDesk = Domain(
    "SupportDesk", {"createTicketQueue": account("support", "email", "help+{id}@example.com")}
)
Tracking = Domain("Tracking", {"initializeTracking": account("analytics", "project", "p-{id}")})
Welcome = Domain("Welcome", {"sendWelcome": message})
Calendar = Domain("Calendar", {"scheduleKickoff": message})
Docs = Domain("Docs", {"generateQuickstart": message})
CsmSlack = Domain("CsmSlack", {"notifyNewCustomer": message})


@Workflow(
    "customer-onboarding",
    examples=[{"id": "c-42", "name": "Acme", "email": "ops@acme.example", "csm": "@dana"}],
    domains=[CRM, Billing, SupportDesk, Tracking, Welcome, Calendar, Docs, CsmSlack],
)
async def onboarding(wf: Any, customer: dict[str, Any]) -> dict[str, Any]:
    crm, billing, support, analytics = await asyncio.gather(
        wf.CRM(customer).createAccount(),
        wf.Billing(customer).setupSubscription(),
        wf.SupportDesk(customer).createTicketQueue(),
        wf.Tracking(customer).initializeTracking(),
    )
    await wf.Welcome(customer).sendWelcome(
        kind="welcome",
        crmId=crm["id"],
        billingPortal=billing["portalUrl"],
        supportEmail=support["email"],
    )
    await asyncio.gather(
        wf.Calendar(customer).scheduleKickoff(kind="kickoff"),
        wf.Docs(customer).generateQuickstart(kind="quickstart", project=analytics["project"]),
        wf.CsmSlack(customer["csm"]).notifyNewCustomer(kind="new-customer", crm=crm["id"]),
    )
    return {"customerId": customer["id"], "status": "onboarded"}
