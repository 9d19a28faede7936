"""A coupon campaign that reads the clock and `random` outside its steps: not deterministic.

Break it: awf-sim chaos examples/nondeterministic.py      (determinism, exit 1)

Cloudflare runs the workflow function again from the top on every replay (after a crash, and
whenever an instance wakes from a sleep or an event wait). Code outside steps must therefore
compute the same values every time. Here the coupon code comes from `random` and its expiry
from `datetime.now()`: on replay both change, the step `Coupons.issue` gets other arguments,
so its checkpoint is not found, and a second coupon is issued.

The fix: read them inside a step, whose result is checkpointed and read back on replay:

    code = await wf.do("coupon-code", lambda: f"SAVE-{random.randint(1000, 9999)}")
    today = await wf.do("today", lambda: datetime.now().date().isoformat())
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

from awf_sim import Database, Domain, Workflow

DATABASE = Database(
    schema="""
CREATE TABLE coupons (
    idempotency_key TEXT PRIMARY KEY, email TEXT, code TEXT, valid_until TEXT);
CREATE TABLE emails (idempotency_key TEXT PRIMARY KEY, recipient TEXT, template TEXT);
"""
)


async def issue(customer: dict[str, Any], args: dict[str, Any], ctx: Any) -> dict[str, Any]:
    await ctx.db.execute(
        "INSERT OR IGNORE INTO coupons (idempotency_key, email, code, valid_until) "
        "VALUES (?, ?, ?, ?)",
        [ctx.idempotency_key, customer["email"], args["code"], args["valid_until"]],
    )
    return {"code": args["code"], "validUntil": args["valid_until"]}


async def send(customer: dict[str, Any], args: dict[str, Any], ctx: Any) -> dict[str, Any]:
    await ctx.db.execute(
        "INSERT OR IGNORE INTO emails (idempotency_key, recipient, template) VALUES (?, ?, ?)",
        [ctx.idempotency_key, customer["email"], args["template"]],
    )
    return {"sent": True}


Coupons = Domain("Coupons", {"issue": issue})
Email = Domain("Email", {"send": send})


@Workflow(
    "coupon-campaign",
    examples=[{"customer": {"email": "ana@example.com"}}],
    domains=[Coupons, Email],
)
async def coupon_campaign(wf: Any, params: dict[str, Any]) -> dict[str, Any]:
    # Not deterministic: both values are computed again, differently, on every replay.
    code = f"SAVE-{random.randint(1000, 9999)}"
    valid_until = (datetime.now() + timedelta(days=7)).date().isoformat()

    coupon = await wf.Coupons(params["customer"]).issue(code=code, valid_until=valid_until)
    await wf.sleep("before-reminder", "3 days")
    await wf.Email(params["customer"]).send(template="coupon-reminder", code=coupon["code"])
    return {"code": coupon["code"], "validUntil": coupon["validUntil"]}
