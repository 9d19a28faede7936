"""Deliberate mistakes with the typed DSL: tests/typing/test_checkers.py pins what mypy
--strict and pyright say about each line marked `# E: <what>`. Never run, only checked."""

from __future__ import annotations

from typing import Any

from awf_sim import Simulator, Workflow
from awf_sim.dsl import State, WorkflowApi
from awf_sim.testing import TestWorkflowFactory, create_test_workflow
from examples.order_processing_typed import (
    Charge,
    Hold,
    Inventory,
    Order,
    OrderResult,
    Payment,
    Stock,
    order_processing,
)


async def counts() -> dict[str, int]:
    return {"n": 1}


def a_stock() -> Stock:
    return Stock(available=True, quantity=1, restockDate=None)


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


async def raw_steps_and_state(wf: WorkflowApi) -> None:
    reveal_type(await wf.do("count", counts))  # noqa: F821  # E: reveal-do
    reveal_type(await wf.do("code", lambda: "SAVE-1"))  # noqa: F821  # E: reveal-do-sync
    # A checkpoint hands back JSON: a dataclass would come back a dict.
    await wf.do("stock", a_stock)  # E: do-dataclass
    state = wf.state({"n": 0})
    reveal_type(state.current)  # noqa: F821  # E: reveal-state
    await state.update({"n": "one"})  # E: state-update
    loose: State[dict[str, Any]] = wf.state({"n": 0, "items": []})
    await loose.update({"n": 1, "items": ["a"]})


def test_instance_output() -> None:
    with Simulator() as sim:
        instance = sim.create(order_processing, {})
        reveal_type(instance.output())  # noqa: F821  # E: reveal-instance-output


def test_selectors(create_test_workflow: TestWorkflowFactory) -> None:
    test = create_test_workflow(order_processing)
    test.modifier.mock_step_result({"name": "Payment.process", "index": 2}, {})
    test.modifier.mock_step_result({"nme": "Payment.process"}, {})  # E: selector-key
    test.modifier.mock_step_error("Payment.process", 42)  # E: error-type
    test.modifier.disable_sleeps(["cool-off", {"name": "wait", "index": 1}])


async def orders(wf: WorkflowApi, order: Order) -> OrderResult:
    raise NotImplementedError


def test_the_constructor_form() -> None:
    # Workflow(name, fn) is typed from fn, as the decorator form is.
    reveal_type(Workflow("typed-constructor", orders))  # noqa: F821  # E: reveal-constructor
    flow = Workflow("typed-constructor-2", orders)
    count: int = create_test_workflow(flow).run({})  # noqa: F841  # E: constructor-out
