"""A typed flow for tests/runtime/test_typed_replay.py: a dataclass step result, then an event
wait, so that the run after the wait replays the step from its checkpoint."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from awf_sim import HandlerContext, TypedDomain, Workflow, step
from awf_sim.dsl import WorkflowApi


@dataclass(frozen=True)
class Item:
    sku: str


@dataclass(frozen=True)
class Priced:
    sku: str
    cents: int


async def price(item: Item, args: None, ctx: HandlerContext) -> Priced:
    return Priced(sku=item.sku, cents=250 if item.sku == "ABC" else 100)


class Shop(TypedDomain[Item]):
    price = step(price)


@Workflow("typed-replay")
async def typed_replay(wf: WorkflowApi, item: Item) -> dict[str, Any]:
    priced = await wf[Shop](item).price()
    await wf.wait_for("go", type="go", timeout="1 hour")
    return {"kinds": [type(item).__name__, type(priced).__name__], "cents": priced.cents}
