"""A test workflow of a `Workflow[In, Out]` hands back the declared `Out` everywhere it gives
the output: `run()`, `await arun()` and `output` agree (tests/typing pins the static types)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from pydantic import BaseModel

from awf_sim import HandlerContext, TypedDomain, Workflow, step
from awf_sim.dsl import WorkflowApi
from awf_sim.testing import create_test_workflow


class Account(BaseModel):
    id: str
    tier: str


@dataclass
class Quote:
    amount: float


class Summary(BaseModel):
    account: str
    total: float


async def quote(account: Account, args: None, ctx: HandlerContext) -> Quote:
    return Quote(amount=10.0 if account.tier == "gold" else 20.0)


class TrPricing(TypedDomain[Account]):
    quote = step(quote)


@Workflow("tr-billing")
async def billing(wf: WorkflowApi, account: Account) -> Summary:
    q = await wf[TrPricing](account).quote()
    return Summary(account=account.id, total=q.amount)


def test_output_is_the_declared_type_as_run_returns_it() -> None:
    wf = create_test_workflow(billing)
    assert wf.output is None
    out = wf.run(Account(id="a1", tier="gold"))
    assert out == Summary(account="a1", total=10.0)
    # `output` used to be the stored JSON (a dict) while run() gave the model.
    assert wf.output == out
    assert isinstance(wf.output, Summary)


def test_output_mid_run_is_none_until_complete() -> None:
    wf = create_test_workflow(billing)
    wf.start({"id": "a2", "tier": "silver"})
    assert wf.output is None
    wf.run()
    assert wf.output == Summary(account="a2", total=20.0)


def test_arun_returns_the_declared_type() -> None:
    async def main() -> Summary:
        return await create_test_workflow(billing).arun({"id": "a3", "tier": "gold"})

    out = asyncio.run(main())
    assert out == Summary(account="a3", total=10.0)


def test_an_untyped_workflow_keeps_its_json_output() -> None:
    @Workflow("tr-untyped")
    async def untyped(wf: WorkflowApi, params: dict[str, int]) -> dict[str, int]:
        return {"n": params["n"] + 1}

    wf = create_test_workflow(untyped)
    assert wf.run({"n": 1}) == wf.output == {"n": 2}
