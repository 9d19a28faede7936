"""Order processing with idempotent handlers: the fix for what chaos finds in the seed's version.

Run it:   awf-sim run examples/order_processing_fixed.py
Check it: awf-sim chaos examples/order_processing_fixed.py        (clean: exit 0)

`examples/order_processing.py` keeps the seed's `Inventory.reserve`, which runs
`UPDATE ... reserved = reserved + ?` every time its step runs. Cloudflare runs a step body
at least once: after a crash between the handler's end and its checkpoint, or when an attempt
times out while its handler keeps going, the body runs again and the stock is reserved twice.

The fix is `ctx.idempotency_key`, the same for every attempt and replay of one step of one
instance: the reservation row carries it (a UNIQUE column), and a re-run finds its own earlier
reservation and changes nothing. `Inventory.release` does the same with the reservation it
deletes. Everything else is as in `order_processing.py`.
"""

from __future__ import annotations

import time
from typing import Any

from awf_sim import Database, Domain, Workflow

SCHEMA = """
CREATE TABLE inventory (
    sku TEXT PRIMARY KEY, quantity INTEGER NOT NULL, reserved INTEGER NOT NULL DEFAULT 0,
    restock_date TEXT);
CREATE TABLE reservations (
    id INTEGER PRIMARY KEY, sku TEXT NOT NULL, quantity INTEGER NOT NULL, expires_at INTEGER,
    idempotency_key TEXT UNIQUE);
CREATE TABLE payments (
    idempotency_key TEXT PRIMARY KEY, order_id TEXT, amount REAL, status TEXT, charge_id TEXT);
CREATE TABLE shipments (order_id TEXT PRIMARY KEY, reservation_id INTEGER, tracking TEXT);
CREATE TABLE emails (
    idempotency_key TEXT PRIMARY KEY, recipient TEXT, template TEXT);
"""

DATABASE = Database(
    schema=SCHEMA,
    rows={
        "inventory": [
            {"sku": "ABC", "quantity": 10, "reserved": 0},
            {"sku": "OUT", "quantity": 0, "reserved": 0, "restock_date": "2026-02-01"},
        ]
    },
)


# -- Inventory -------------------------------------------------------------------------------


async def check(product: dict[str, Any], _: dict[str, Any], ctx: Any) -> dict[str, Any]:
    row = await ctx.db.query_one(
        "SELECT quantity, reserved, restock_date FROM inventory WHERE sku = ?", [product["sku"]]
    )
    if row is None:
        return {"available": False, "quantity": 0, "restockDate": None}
    free = row["quantity"] - row["reserved"]
    return {"available": free > 0, "quantity": free, "restockDate": row["restock_date"]}


async def reserve(product: dict[str, Any], args: dict[str, Any], ctx: Any) -> dict[str, Any]:
    # Idempotent: the reservation carries this step's idempotency key, so a re-run of the step
    # (a crash before its checkpoint, a timed-out attempt) finds it and reserves nothing more.
    async with ctx.db.transaction() as tx:
        reservation = await tx.query_one(
            "SELECT id FROM reservations WHERE idempotency_key = ?", [ctx.idempotency_key]
        )
        if reservation is None:
            await tx.execute(
                "UPDATE inventory SET reserved = reserved + ? WHERE sku = ?",
                [args["quantity"], product["sku"]],
            )
            reservation = await tx.insert(
                "reservations",
                {
                    "sku": product["sku"],
                    "quantity": args["quantity"],
                    "expires_at": int(time.time() * 1000) + 15 * 60 * 1000,  # a 15 min hold
                    "idempotency_key": ctx.idempotency_key,
                },
            )
    return {"id": reservation["id"], "sku": product["sku"], "quantity": args["quantity"]}


async def release(reservation: dict[str, Any], _: dict[str, Any], ctx: Any) -> dict[str, Any]:
    # Idempotent: the stock is given back only by the run that deletes the reservation.
    async with ctx.db.transaction() as tx:
        if await tx.delete("reservations", reservation["id"]):
            await tx.execute(
                "UPDATE inventory SET reserved = reserved - ? WHERE sku = ?",
                [reservation["quantity"], reservation["sku"]],
            )
    return {"released": True}


Inventory = Domain(
    "Inventory",
    {
        "check": check,
        "reserve": {
            "handler": reserve,
            "retries": {"limit": 10, "delay": "2 seconds", "backoff": "exponential"},
            "timeout": "30 seconds",
        },
        "release": release,
    },
)

# -- Payment, Fulfillment, Email ---------------------------------------------------------------

Payment = Domain("Payment")


@Payment.method(retries={"limit": 3, "delay": "1 second"}, timeout="30 seconds")
async def process(order: dict[str, Any], args: dict[str, Any], ctx: Any) -> dict[str, Any]:
    # Keyed by ctx.idempotency_key: a re-run of this step finds its own earlier charge.
    done = await ctx.db.query_one(
        "SELECT status, charge_id FROM payments WHERE idempotency_key = ?", [ctx.idempotency_key]
    )
    if done is None:
        declined = args["method"].get("token") == "tok_declined"
        status = "declined" if declined else "charged"
        charge_id = None if declined else f"ch_{ctx.idempotency_key[:12]}"
        await ctx.db.execute(
            "INSERT INTO payments (idempotency_key, order_id, amount, status, charge_id) "
            "VALUES (?, ?, ?, ?, ?)",
            [ctx.idempotency_key, order["id"], args["amount"], status, charge_id],
        )
        done = {"status": status, "charge_id": charge_id}
    if done["status"] == "declined":
        return {"success": False, "error": "card declined"}
    return {"success": True, "chargeId": done["charge_id"]}


async def create_shipment(order: dict[str, Any], args: dict[str, Any], ctx: Any) -> dict[str, Any]:
    tracking = f"TRK-{order['id']}"
    await ctx.db.execute(
        "INSERT OR IGNORE INTO shipments (order_id, reservation_id, tracking) VALUES (?, ?, ?)",
        [order["id"], args["reservationId"], tracking],
    )
    return {"trackingNumber": tracking, "estimatedDelivery": "in 3 days"}


Fulfillment = Domain("Fulfillment", {"create": create_shipment})


async def send(customer: dict[str, Any], args: dict[str, Any], ctx: Any) -> dict[str, Any]:
    await ctx.db.execute(
        "INSERT OR IGNORE INTO emails (idempotency_key, recipient, template) VALUES (?, ?, ?)",
        [ctx.idempotency_key, customer["email"], args["template"]],
    )
    return {"sent": True}


Email = Domain("Email", {"send": send})

# -- the workflow ------------------------------------------------------------------------------

EXAMPLES = [
    {
        "id": "o-1",
        "product": {"sku": "ABC"},
        "quantity": 2,
        "total": 59.0,
        "paymentMethod": {"token": "tok_visa"},
        "customer": {"email": "ana@example.com"},
        "shippingAddress": {"city": "Lisbon"},
    },
    {
        "id": "o-2",
        "product": {"sku": "OUT"},
        "quantity": 1,
        "total": 10.0,
        "paymentMethod": {"token": "tok_visa"},
        "customer": {"email": "ben@example.com"},
        "shippingAddress": {"city": "Porto"},
    },
    {
        "id": "o-3",
        "product": {"sku": "ABC"},
        "quantity": 1,
        "total": 29.5,
        "paymentMethod": {"token": "tok_declined"},
        "customer": {"email": "cy@example.com"},
        "shippingAddress": {"city": "Faro"},
    },
]


@Workflow(
    "order-processing",
    examples=EXAMPLES,
    domains=[Inventory, Payment, Fulfillment, Email],
)
async def order_processing(wf: Any, order: dict[str, Any]) -> dict[str, Any]:
    inventory = await wf.Inventory(order["product"]).check()

    if not inventory["available"]:
        await wf.Email(order["customer"]).send(
            template="out-of-stock",
            data={"product": order["product"], "eta": inventory["restockDate"]},
        )
        return {"status": "backordered", "orderId": order["id"]}

    reservation = await wf.Inventory(order["product"]).reserve(quantity=order["quantity"])

    payment = await wf.Payment(order).process(amount=order["total"], method=order["paymentMethod"])

    if not payment["success"]:
        await wf.Inventory(reservation).release()
        return {"status": "payment-failed", "error": payment["error"]}

    fulfillment = await wf.Fulfillment(order).create(
        reservationId=reservation["id"], shippingAddress=order["shippingAddress"]
    )

    await wf.Email(order["customer"]).send(
        template="order-confirmed",
        data={
            "order": order["id"],
            "tracking": fulfillment["trackingNumber"],
            "estimatedDelivery": fulfillment["estimatedDelivery"],
        },
    )

    return {
        "status": "confirmed",
        "orderId": order["id"],
        "trackingNumber": fulfillment["trackingNumber"],
    }
