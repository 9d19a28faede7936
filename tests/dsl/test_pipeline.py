"""`wf.Domain(context).method(args)`: how a pipeline is built, and the errors of a wrong one.

A domain's methods become attributes of its pipeline class as they are first used; these tests
pin that what a pipeline does never depends on whether a method was used before.
"""

from __future__ import annotations

import gc
import weakref
from typing import Any

import pytest

from awf_sim import Domain, Simulator, Workflow


async def check(product: Any, args: Any, ctx: Any) -> Any:
    return {"check": product, "args": args}


async def reserve(product: Any, args: Any, ctx: Any) -> Any:
    return {"reserve": product, "args": args}


def run(flow: Workflow, params: Any = None) -> dict[str, Any]:
    with Simulator() as sim:
        inst = sim.create(flow, params)
        sim.run()
        return inst.status()  # type: ignore[no-any-return]


def error_of(flow: Workflow) -> str:
    status = run(flow)
    assert status["status"] == "errored", status
    return status["error"]["message"]  # type: ignore[no-any-return]


@pytest.mark.parametrize("used_before", [False, True])
def test_awaiting_a_method_without_calling_it_says_so(used_before: bool) -> None:
    d = Domain("PipeUncalled", {"check": check})

    @Workflow("pipe-uncalled", domains=[d])
    async def flow(wf: Any, params: Any) -> Any:
        if used_before:
            await wf.PipeUncalled("p").check()
        return await wf.PipeUncalled("p").check

    assert error_of(flow) == "wf.PipeUncalled(...).check must be called before it is awaited"


def test_a_pipeline_without_a_method_and_a_second_call_are_errors() -> None:
    d = Domain("PipeWrong", {"check": check})

    @Workflow("pipe-no-method", domains=[d])
    async def no_method(wf: Any, params: Any) -> Any:
        return await wf.PipeWrong("p")

    @Workflow("pipe-twice", domains=[d])
    async def twice(wf: Any, params: Any) -> Any:
        return await wf.PipeWrong("p")("q")

    assert error_of(no_method) == "wf.PipeWrong(...).method must be called before it is awaited"
    assert error_of(twice).startswith("wf.PipeWrong(...) was called twice; call a method")


@pytest.mark.parametrize("used_before", [False, True])
def test_an_unknown_method_lists_the_known_ones(used_before: bool) -> None:
    d = Domain("PipeUnknown", {"check": check, "reserve": reserve})

    @Workflow("pipe-unknown", domains=[d])
    async def flow(wf: Any, params: Any) -> Any:
        if used_before:
            await wf.PipeUnknown("p").check()
        return await wf.PipeUnknown("p").chek()

    assert error_of(flow) == (
        "domain 'PipeUnknown' has no method 'chek'; known methods: check, reserve"
    )


def test_an_attribute_of_a_pending_method_is_an_unknown_method() -> None:
    d = Domain("PipeDotted", {"check": check})

    @Workflow("pipe-dotted", domains=[d])
    async def flow(wf: Any, params: Any) -> Any:
        return await wf.PipeDotted("p").check.deeper()

    assert "has no method 'check.deeper'" in error_of(flow)


def test_one_bound_domain_serves_several_pending_methods() -> None:
    d = Domain("PipeShared", {"check": check, "reserve": reserve})

    @Workflow("pipe-shared", domains=[d])
    async def flow(wf: Any, params: Any) -> Any:
        inv = wf.PipeShared("p")
        first, second = inv.check, inv.reserve  # both pending before either is called
        return [await second(qty=1), await first(), await inv.check(qty=2)]

    assert run(flow)["output"] == [
        {"reserve": "p", "args": {"qty": 1}},
        {"check": "p", "args": {}},
        {"check": "p", "args": {"qty": 2}},
    ]


def test_a_method_added_or_replaced_later_is_what_the_next_step_runs() -> None:
    d = Domain("PipeLater", {"check": check})

    @Workflow("pipe-later", domains=[d])
    async def flow(wf: Any, params: Any) -> Any:
        if params == "late":
            return await wf.PipeLater("p").late()
        return await wf.PipeLater("p").check()

    assert run(flow)["output"] == {"check": "p", "args": {}}

    @d.method
    async def late(product: Any, args: Any, ctx: Any) -> Any:
        return "late"

    @d.method(name="check")
    async def check_again(product: Any, args: Any, ctx: Any) -> Any:
        return "replaced"

    assert run(flow, "late")["output"] == "late"
    assert run(flow)["output"] == "replaced"


def test_chained_calls_run_each_handler_on_the_previous_result() -> None:
    d = Domain("PipeChain", {"check": check, "reserve": reserve})

    @Workflow("pipe-chain", domains=[d])
    async def flow(wf: Any, params: Any) -> Any:
        return await wf.PipeChain("p").check(a=1).reserve(b=2)

    assert run(flow)["output"] == {
        "reserve": {"check": "p", "args": {"a": 1}},
        "args": {"b": 2},
    }


def test_wf_sleep_checks_cloudflares_limit_and_sleeps_up_to_it() -> None:
    @Workflow("pipe-sleep")
    async def flow(wf: Any, params: Any) -> Any:
        await wf.sleep("nap", params)
        return "woke"

    assert run(flow, "365 days")["output"] == "woke"
    with Simulator() as sim:
        inst = sim.create(flow, "366 days")
        sim.run()
        error = inst.status()["error"]
    assert error["message"].startswith("wf.sleep('nap') of 366 d is longer than Cloudflare's")


def test_a_replaced_domain_is_not_kept_alive_by_the_pipelines_it_made() -> None:
    first: list[weakref.ref[Domain]] = []
    for _ in range(2):  # the second definition (same line, so silent) replaces the first
        d = Domain("PipeGone", {"check": check})

        @Workflow("pipe-gone", domains=[d])
        async def flow(wf: Any, params: Any) -> Any:
            return await wf.PipeGone("p").check()

        assert run(flow)["output"] == {"check": "p", "args": {}}
        first = first or [weakref.ref(d)]
    del d, flow
    gc.collect()
    assert first[0]() is None
