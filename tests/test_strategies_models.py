"""`awf_sim.strategies.inputs` on pydantic inputs shaped as users write them: aliased fields,
regex patterns, nested models in lists, dicts and unions. Every draw must be params the
workflow accepts; before, aliased fields were drawn under their Python names and patterns were
ignored, so Hypothesis filtered out nearly every draw and the test failed its health check."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
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
