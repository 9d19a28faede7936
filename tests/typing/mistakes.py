"""Deliberate mistakes with the typed DSL: tests/typing/test_checkers.py pins what mypy
--strict and pyright say about each line marked `# E: <what>`. Never run, only checked."""

from __future__ import annotations

from awf_sim.dsl import WorkflowApi
from awf_sim.testing import TestWorkflowFactory, create_test_workflow
from examples.order_processing_typed import (
    Charge,
    Hold,
    Inventory,
    Order,
    Payment,
    order_processing,
)


async def mistakes(wf: WorkflowApi, order: Order) -> None:
    stock = await wf[Inventory](order.product).check()
    reveal_type(stock)  # noqa: F821  # E: reveal-stock
    await wf[Inventory](order.product).reserve(Charge(amount=1.0, method={}))  # E: wrong-arg
    await wf[Inventory](order.product).chek()  # E: misspelt-method
    await wf[Inventory](order).check()  # E: wrong-context
    await wf[Payment](order).process(Hold(quantity=1))  # E: wrong-arg-2
    print(stock.quantity + "1")  # E: result-is-typed
    wf[Inventory](order.product).check()  # E: missing-await
    wf.sleep("cool-off", "1 day")  # E: missing-await-sleep
    wf.wait_for("approval", type="approved")  # E: missing-await-wait


async def test_workflow_results() -> None:
    test = create_test_workflow(order_processing)
    reveal_type(await test.arun({}))  # noqa: F821  # E: reveal-arun
    reveal_type(test.output)  # noqa: F821  # E: reveal-output
    with create_test_workflow(order_processing) as managed:
        reveal_type(managed.run({}))  # noqa: F821  # E: reveal-with


def test_with_the_fixture(create_test_workflow: TestWorkflowFactory) -> None:
    reveal_type(create_test_workflow(order_processing).run({}))  # noqa: F821  # E: reveal-fixture
