"""State through step results, ported from the seed's StatefulWorkflow and ComplexWorkflow.

`stateful`: each step's persisted result feeds the next, so the state survives crashes.
`complex-state`: `wf.state(...)` with one durable `state.update` per processed item.

    awf-sim run examples/stateful.py --workflow complex-state
"""

from __future__ import annotations

from typing import Any

from awf_sim import Domain, Workflow


async def step_one(initial: dict[str, Any], _: dict[str, Any], ctx: Any) -> dict[str, Any]:
    return {"seen": initial["value"], "doubled": initial["value"] * 2}


async def step_two(previous: dict[str, Any], _: dict[str, Any], ctx: Any) -> dict[str, Any]:
    return {"squared": previous["doubled"] ** 2}


async def finalize(state: dict[str, Any], _: dict[str, Any], ctx: Any) -> dict[str, Any]:
    return {"result": state["step2"]["squared"] + state["initial"]["value"], "steps": 2}


async def process(item: dict[str, Any], _: dict[str, Any], ctx: Any) -> dict[str, Any]:
    return {"sku": item["sku"], "value": item["price"] * item["qty"]}


Process = Domain("Process", {"stepOne": step_one, "stepTwo": step_two, "finalize": finalize})
Items = Domain("Items", {"process": process})


@Workflow("stateful", examples=[{"value": 3}], domains=[Process])
async def stateful(wf: Any, initial: dict[str, Any]) -> dict[str, Any]:
    step1 = await wf.Process(initial).stepOne()
    step2 = await wf.Process(step1).stepTwo()
    return await wf.Process({"initial": initial, "step1": step1, "step2": step2}).finalize()


@Workflow(
    "complex-state",
    examples=[
        {
            "items": [
                {"sku": "A", "price": 2.5, "qty": 4},
                {"sku": "B", "price": 10.0, "qty": 1},
                {"sku": "C", "price": 1.25, "qty": 8},
            ]
        }
    ],
    domains=[Items],
)
async def complex_state(wf: Any, data: dict[str, Any]) -> dict[str, Any]:
    state = wf.state({"items": [], "total": 0})
    for item in data["items"]:
        processed = await wf.Items(item).process()
        await state.update(
            {
                "items": [*state.current["items"], processed],
                "total": state.current["total"] + processed["value"],
            }
        )
    return dict(state.current)
