"""Order processing, typed: `order_processing_fixed.py` with declared types end to end.

Run it:   awf-sim run examples/order_processing_typed.py
Check it: awf-sim chaos examples/order_processing_typed.py        (clean: exit 0)
Type it:  mypy --strict examples/order_processing_typed.py    (and pyright: both clean)

The handlers are the idempotent ones of `order_processing_fixed.py`, annotated: each takes its
context and args as a dataclass (or a TypedDict) and returns a dataclass. Grouped in
`TypedDomain` classes and called as `wf[Inventory](order.product).check()`, every step's
argument and result type is known to mypy and pyright: `stock` below is a `Stock`, and
`.reserve(quantity=2)` or `.chek()` are type errors, not failures in production.

The results come back as the same dataclasses on the first run, on every replay after a
crash (they are checkpointed as JSON and rebuilt from it), and on Cloudflare (dataclasses are
standard library, so the Worker bundle needs nothing vendored for them). The workflow is a
`Workflow[Order, OrderResult]`: its params arrive as an `Order`, and its output is checked
against `OrderResult` when the instance completes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, TypedDict

from awf_sim import Database, HandlerContext, TypedDomain, Workflow, step
from awf_sim.dsl import WorkflowApi

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

# -- the types ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Product:
    sku: str


@dataclass(frozen=True)
class Customer:
    email: str


@dataclass(frozen=True)
class Order:
    id: str
    product: Product
    quantity: int
    total: float
    paymentMethod: dict[str, str]
    customer: Customer
    shippingAddress: dict[str, str]


@dataclass(frozen=True)
class OrderResult:
    status: str
    orderId: str
    trackingNumber: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class Stock:
    available: bool
    quantity: int
    restockDate: str | None


@dataclass(frozen=True)
class Hold:
    quantity: int


@dataclass(frozen=True)
class Reservation:
    id: int
    sku: str
    quantity: int


@dataclass(frozen=True)
class Charge:
    amount: float
    method: dict[str, str]


@dataclass(frozen=True)
class PaymentResult:
    success: bool
    chargeId: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class ShipTo:
    reservationId: int
    shippingAddress: dict[str, str]


@dataclass(frozen=True)
class Shipment:
    trackingNumber: str
    estimatedDelivery: str


class EmailArgs(TypedDict):
    template: str
    data: dict[str, Any]


@dataclass(frozen=True)
class Sent:
    sent: bool


# -- Inventory -------------------------------------------------------------------------------


async def check(product: Product, args: None, ctx: HandlerContext) -> Stock:
    row = await ctx.db.query_one(
        "SELECT quantity, reserved, restock_date FROM inventory WHERE sku = ?", [product.sku]
    )
    if row is None:
        return Stock(available=False, quantity=0, restockDate=None)
    free = int(row["quantity"]) - int(row["reserved"])
    return Stock(available=free > 0, quantity=free, restockDate=row["restock_date"])


async def reserve(product: Product, hold: Hold, ctx: HandlerContext) -> Reservation:
    # Idempotent, as in order_processing_fixed.py: the reservation carries the step's key.
    async with ctx.db.transaction() as tx:
        row = await tx.query_one(
            "SELECT id FROM reservations WHERE idempotency_key = ?", [ctx.idempotency_key]
        )
        if row is None:
            await tx.execute(
                "UPDATE inventory SET reserved = reserved + ? WHERE sku = ?",
                [hold.quantity, product.sku],
            )
            row = await tx.insert(
                "reservations",
                {
                    "sku": product.sku,
                    "quantity": hold.quantity,
                    "expires_at": int(time.time() * 1000) + 15 * 60 * 1000,  # a 15 min hold
                    "idempotency_key": ctx.idempotency_key,
                },
            )
    return Reservation(id=int(row["id"]), sku=product.sku, quantity=hold.quantity)


async def release(reservation: Reservation, args: None, ctx: HandlerContext) -> Sent:
    async with ctx.db.transaction() as tx:
        if await tx.delete("reservations", reservation.id):
            await tx.execute(
                "UPDATE inventory SET reserved = reserved - ? WHERE sku = ?",
                [reservation.quantity, reservation.sku],
            )
    return Sent(sent=True)


class Inventory(TypedDomain[Product]):
    check = step(check)
    reserve = step(
        reserve,
        retries={"limit": 10, "delay": "2 seconds", "backoff": "exponential"},
        timeout="30 seconds",
    )


# A reservation is the context of its own release: a domain of its own context type.
class Reservations(TypedDomain[Reservation]):
    release = step(release)


# -- Payment, Fulfillment, Email ---------------------------------------------------------------


async def process(order: Order, charge: Charge, ctx: HandlerContext) -> PaymentResult:
    done = await ctx.db.query_one(
        "SELECT status, charge_id FROM payments WHERE idempotency_key = ?", [ctx.idempotency_key]
    )
    if done is None:
        declined = charge.method.get("token") == "tok_declined"
        status = "declined" if declined else "charged"
        charge_id = None if declined else f"ch_{ctx.idempotency_key[:12]}"
        await ctx.db.execute(
            "INSERT INTO payments (idempotency_key, order_id, amount, status, charge_id) "
            "VALUES (?, ?, ?, ?, ?)",
            [ctx.idempotency_key, order.id, charge.amount, status, charge_id],
        )
        done = {"status": status, "charge_id": charge_id}
    if done["status"] == "declined":
        return PaymentResult(success=False, error="card declined")
    return PaymentResult(success=True, chargeId=done["charge_id"])


async def create_shipment(order: Order, ship: ShipTo, ctx: HandlerContext) -> Shipment:
    tracking = f"TRK-{order.id}"
    await ctx.db.execute(
        "INSERT OR IGNORE INTO shipments (order_id, reservation_id, tracking) VALUES (?, ?, ?)",
        [order.id, ship.reservationId, tracking],
    )
    return Shipment(trackingNumber=tracking, estimatedDelivery="in 3 days")


async def send(customer: Customer, args: EmailArgs, ctx: HandlerContext) -> Sent:
    await ctx.db.execute(
        "INSERT OR IGNORE INTO emails (idempotency_key, recipient, template) VALUES (?, ?, ?)",
        [ctx.idempotency_key, customer.email, args["template"]],
    )
    return Sent(sent=True)


class Payment(TypedDomain[Order]):
    process = step(process, retries={"limit": 3, "delay": "1 second"}, timeout="30 seconds")


class Fulfillment(TypedDomain[Order]):
    create = step(create_shipment)


class Email(TypedDomain[Customer]):
    send = step(send)


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


@Workflow("order-processing", examples=EXAMPLES)
async def order_processing(wf: WorkflowApi, order: Order) -> OrderResult:
    stock = await wf[Inventory](order.product).check()

    if not stock.available:
        await wf[Email](order.customer).send(
            {
                "template": "out-of-stock",
                "data": {"sku": order.product.sku, "eta": stock.restockDate},
            }
        )
        return OrderResult(status="backordered", orderId=order.id)

    reservation = await wf[Inventory](order.product).reserve(Hold(quantity=order.quantity))

    payment = await wf[Payment](order).process(
        Charge(amount=order.total, method=order.paymentMethod)
    )

    if not payment.success:
        await wf[Reservations](reservation).release()
        return OrderResult(status="payment-failed", orderId=order.id, error=payment.error)

    shipment = await wf[Fulfillment](order).create(
        ShipTo(reservationId=reservation.id, shippingAddress=order.shippingAddress)
    )

    await wf[Email](order.customer).send(
        {
            "template": "order-confirmed",
            "data": {
                "order": order.id,
                "tracking": shipment.trackingNumber,
                "estimatedDelivery": shipment.estimatedDelivery,
            },
        }
    )

    return OrderResult(status="confirmed", orderId=order.id, trackingNumber=shipment.trackingNumber)
