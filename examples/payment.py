"""Charging a card through an external payment API with `ctx.http`, idempotently.

The seed's `Payment.process` charged through an SDK; here it POSTs to a payment API with
`ctx.idempotency_key` as the `Idempotency-Key` header, which is stable for this step of this
instance across retries, crashes and replays: if a crash makes Cloudflare run the step again,
the provider sees the same key and does not charge twice.

In the simulator `ctx.http` never reaches the network. `HTTP` below is the fake provider the
simulator routes requests to (a function from request to response; a respx.Router works too).
It honours idempotency keys the way real providers do. It imports httpx only when it is
called: httpx is not in Cloudflare's Python runtime unless vendored, so a module-level import
would stop the deployed Worker at start-up (on Cloudflare `ctx.http` runs over the runtime's
own `fetch`).

    awf-sim run examples/payment.py
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from awf_sim import Domain, NonRetryableError, Workflow

if TYPE_CHECKING:
    import httpx

API = "https://payments.example.com/v1"


class FakePaymentProvider:
    """Charges once per Idempotency-Key, declines the test card, fails transiently on demand."""

    def __init__(self) -> None:
        self.charges: dict[str, dict[str, Any]] = {}

    def __call__(self, request: httpx.Request) -> httpx.Response:
        import httpx

        if request.url.path != "/v1/charges" or request.method != "POST":
            return httpx.Response(404, json={"error": "not found"})
        key = request.headers.get("Idempotency-Key")
        if not key:
            return httpx.Response(400, json={"error": "Idempotency-Key header required"})
        if key in self.charges:  # a replayed request gets the original answer
            return httpx.Response(200, json=self.charges[key])
        body = json.loads(request.content)
        if body["source"] == "tok_declined":
            return httpx.Response(402, json={"error": "card_declined"})
        charge = {"id": f"ch_{len(self.charges) + 1:04d}", "amount": body["amount"]}
        self.charges[key] = charge
        return httpx.Response(200, json=charge)


HTTP = FakePaymentProvider()


async def charge(order: dict[str, Any], args: dict[str, Any], ctx: Any) -> dict[str, Any]:
    response = await ctx.http.post(
        f"{API}/charges",
        json={"amount": args["amount"], "currency": "usd", "source": args["token"]},
        headers={
            "Idempotency-Key": ctx.idempotency_key,
            "Authorization": f"Bearer {ctx.env.get('PAYMENT_API_KEY', 'sk_test')}",
        },
    )
    if response.status_code == 402:
        # A declined card will not be accepted on retry: fail now, without retries.
        raise NonRetryableError(f"card declined for order {order['id']}")
    response.raise_for_status()  # 5xx and the like: an ordinary, retried failure
    charge = response.json()
    return {"success": True, "chargeId": charge["id"]}


Payment = Domain(
    "ExternalPayment",
    {
        "charge": {
            "handler": charge,
            "retries": {"limit": 10, "delay": "2 seconds", "backoff": "exponential"},
            "timeout": "30 seconds",
        }
    },
)


@Workflow(
    "external-payment",
    examples=[
        {"id": "o-1", "total": 59.0, "token": "tok_visa"},
        {"id": "o-2", "total": 10.0, "token": "tok_declined"},
    ],
    domains=[Payment],
)
async def external_payment(wf: Any, order: dict[str, Any]) -> dict[str, Any]:
    try:
        payment = await wf.ExternalPayment(order).charge(
            amount=order["total"], token=order["token"]
        )
    except NonRetryableError as exc:
        return {"status": "declined", "reason": exc.message}
    return {"status": "paid", "chargeId": payment["chargeId"]}
