"""`assert_durable` and `strategies.fault_plans` run on the flow file's DATABASE (and HTTP, AI)
when `db=` is left out, as `create_test_workflow`, `awf-sim run` and `awf-sim chaos` do. They
used an empty database: every run of a flow that reads its tables errored the same way, so a
non-idempotent step passed as durable."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import find, settings

from awf_sim import Database, Domain, DurabilityViolation, Workflow, assert_durable
from awf_sim.strategies import fault_plans
from awf_sim.testing import create_test_workflow

# This module is the flow file: its DATABASE is the one the tools default to.
DATABASE = Database(
    "CREATE TABLE dd_stock (sku TEXT PRIMARY KEY, qty INTEGER NOT NULL);",
    {"dd_stock": [{"sku": "A", "qty": 5}]},
)


async def take(product: Any, args: Any, ctx: Any) -> int:
    # Not idempotent: a crash after the UPDATE takes a second unit on the retry.
    await ctx.db.execute("UPDATE dd_stock SET qty = qty - 1 WHERE sku = ?", [product["sku"]])
    row = await ctx.db.query_one("SELECT qty FROM dd_stock WHERE sku = ?", [product["sku"]])
    return int(row["qty"])


DdStock = Domain("DdStock", {"take": take})


@Workflow("dd-take-one")
async def take_one(wf: Any, product: Any) -> Any:
    return await wf.DdStock(product).take()


PLAN = [{"kind": "crash-after-effect", "step": "DdStock.take"}]


def test_the_three_tools_see_the_same_database() -> None:
    assert create_test_workflow(take_one).run({"sku": "A"}) == 4
    with pytest.raises(DurabilityViolation) as broken:
        assert_durable(take_one, {"sku": "A"}, PLAN)
    assert broken.value.invariant == "replay-equivalence"
    assert "dd_stock.qty for A: expected 4, got 3" in str(broken.value)


def test_an_explicit_db_still_wins() -> None:
    empty = Database("CREATE TABLE dd_stock (sku TEXT PRIMARY KEY, qty INTEGER NOT NULL);", {})
    with pytest.raises(DurabilityViolation):
        assert_durable(take_one, {"sku": "A"}, PLAN, db=DATABASE)
    assert_durable(take_one, {"sku": "A"}, PLAN, db=empty)  # no row: nothing to take twice


def test_fault_plans_find_the_fault_points_on_the_same_database() -> None:
    # On an empty database the step failed on every attempt, so the points of a step that
    # succeeds (a crash after its checkpoint) did not exist.
    plans = fault_plans(take_one, {"sku": "A"}, max_faults=1, kinds="crash")
    plan = find(
        plans,
        lambda p: bool(p) and p[0]["kind"] == "crash-after-checkpoint",
        settings=settings(database=None, derandomize=True),
    )
    assert plan == [{"kind": "crash-after-checkpoint", "step": "DdStock.take", "attempt": 1}]
    assert_durable(take_one, {"sku": "A"}, plan)
