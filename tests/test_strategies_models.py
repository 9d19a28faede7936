"""`awf_sim.strategies.inputs` on pydantic inputs shaped as users write them: aliased fields,
regex patterns, nested models in lists, dicts and unions. Every draw must be params the
workflow accepts; before, aliased fields were drawn under their Python names and patterns were
ignored, so Hypothesis filtered out nearly every draw and the test failed its health check."""

from __future__ import annotations

import datetime as dt
import enum
import math
import uuid
from dataclasses import dataclass, field
from typing import Any, NotRequired, TypedDict

from hypothesis import HealthCheck, given, settings
from pydantic import BaseModel, Field

from awf_sim import Workflow
from awf_sim.strategies import inputs
from awf_sim.testing import create_test_workflow

QUICK = settings(max_examples=30, derandomize=True, deadline=None, database=None)


class Line(BaseModel):
    item_code: str = Field(alias="itemCode", pattern=r"^[A-Z]{2}-\d{3}$")
    qty: int = Field(ge=1, le=9)


class Basket(BaseModel):
    order_id: str = Field(alias="orderId", min_length=1, max_length=12)
    lines: list[Line] = Field(min_length=1, max_length=3)
    by_code: dict[str, Line] = Field(default_factory=dict, max_length=2)
    gift: Line | None = None
    coupon: str | None = Field(default=None, pattern=r"^C[0-9]{4}$")


@Workflow("strategies-basket")
async def basket(wf: Any, b: Basket) -> dict[str, Any]:
    return {"id": b.order_id, "qty": sum(line.qty for line in b.lines), "coupon": b.coupon}


@QUICK
@given(params=inputs(basket))
def test_drawn_params_use_the_aliases_and_run(params: dict[str, Any]) -> None:
    assert "orderId" in params
    assert "order_id" not in params
    assert all("itemCode" in line for line in params["lines"])
    out = create_test_workflow(basket).run(params)
    assert out["id"] == params["orderId"]
    assert 1 <= out["qty"] <= 27
    assert out["coupon"] is None or len(out["coupon"]) == 5


@QUICK
@given(params=inputs(basket))
def test_drawn_params_validate_as_the_model(params: dict[str, Any]) -> None:
    model = Basket.model_validate(params)
    assert model.model_dump(mode="json", by_alias=True) == params


@dataclass
class Money:
    amount: float
    currency: str


@dataclass
class Invoice:
    number: int
    total: Money
    lines: list[Money] = field(default_factory=list)


class Ping(TypedDict):
    host: str
    ttl: NotRequired[float]


class Price(BaseModel):
    amount: float
    discount: float = Field(default=0.0, ge=0, lt=100)


@Workflow("strategies-invoice")
async def invoice_flow(wf: Any, inv: Invoice) -> float:
    return max([inv.total.amount, *(line.amount for line in inv.lines)])


@Workflow("strategies-ping")
async def ping_flow(wf: Any, p: Ping) -> float:
    return p.get("ttl", 0.0)


@Workflow("strategies-price")
async def price_flow(wf: Any, p: Price) -> float:
    return p.discount


# Hypothesis's own floats include NaN and the infinities, which are not JSON: such a draw
# failed with SerializationError inside the strategy (dataclass, TypedDict) or when the
# instance was created (pydantic, whose model_dump keeps inf).
@QUICK
@given(params=inputs(invoice_flow))
def test_dataclass_floats_are_json(params: dict[str, Any]) -> None:
    assert math.isfinite(params["total"]["amount"])
    assert all(math.isfinite(line["amount"]) for line in params["lines"])
    create_test_workflow(invoice_flow).run(params)


@QUICK
@given(params=inputs(ping_flow))
def test_typeddict_floats_are_json(params: dict[str, Any]) -> None:
    assert create_test_workflow(ping_flow).run(params) == params.get("ttl", 0.0)


@QUICK
@given(params=inputs(price_flow))
def test_pydantic_floats_are_finite_and_within_bounds(params: dict[str, Any]) -> None:
    assert math.isfinite(params["amount"])
    assert 0 <= params.get("discount", 0.0) < 100
    create_test_workflow(price_flow).run(params)


@dataclass
class Node:
    name: str
    children: list[Node] = field(default_factory=list)


def _size(node: Node) -> int:
    return 1 + sum(_size(c) for c in node.children)


@Workflow("strategies-tree")
async def tree_flow(wf: Any, root: Node) -> int:
    return _size(root)


@settings(
    QUICK, max_examples=8, suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow]
)
@given(params=inputs(tree_flow))
def test_a_type_that_holds_itself_is_drawn_lazily(params: dict[str, Any]) -> None:
    assert create_test_workflow(tree_flow).run(params) >= 1


class Level(enum.Enum):
    LOW = "low"
    HIGH = "high"


@dataclass
class Reminder:
    text: str
    when: dt.datetime
    on: dt.date
    level: Level
    ref: uuid.UUID


@Workflow("strategies-reminder")
async def reminder_flow(wf: Any, r: Reminder) -> str:
    return r.text


@QUICK
@given(params=inputs(reminder_flow))
def test_dataclass_dates_enums_and_uuids_are_drawn_as_json(params: dict[str, Any]) -> None:
    # They were drawn as Python objects and failed as "params.when is not JSON".
    assert dt.datetime.fromisoformat(params["when"])
    assert dt.date.fromisoformat(params["on"])
    assert params["level"] in ("low", "high")
    assert uuid.UUID(params["ref"])
    assert create_test_workflow(reminder_flow).run(params) == params["text"]
