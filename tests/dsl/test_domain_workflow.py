"""Domain and Workflow definitions: both forms, the registry, and errors that name the problem."""

from __future__ import annotations

import asyncio
import warnings
from typing import Any

import pytest

from awf_sim import DefinitionError, Domain, Simulator, Workflow
from awf_sim.dsl import registered_domains, registered_workflows


async def check(product: Any, args: Any, ctx: Any) -> Any:
    return {"sku": product["sku"], "ok": True}


def test_dict_form_and_decorator_form_give_the_same_domain() -> None:
    a = Domain("FormA", {"check": check, "reserve": {"handler": check, "timeout": "30s"}})
    b = Domain("FormB")

    @b.method
    async def check2(product: Any, args: Any, ctx: Any) -> Any:
        return await check(product, args, ctx)

    @b.method(name="reserve", retries={"limit": 10, "delay": "2 seconds"}, timeout="30 seconds")
    async def reserve(product: Any, args: Any, ctx: Any) -> Any:
        return None

    assert a.check is check  # the plain handler, unit-testable directly
    assert asyncio.run(a.check({"sku": "ABC"}, {}, None)) == {"sku": "ABC", "ok": True}
    assert a.methods["reserve"].config == {"timeout": 30_000}
    assert b.methods["reserve"].config == {
        "retries": {"limit": 10, "delay": 2000},
        "timeout": 30_000,
    }
    assert set(b.methods) == {"check2", "reserve"}


def test_unknown_method_on_a_domain_lists_the_known_ones() -> None:
    d = Domain("Known", {"check": check, "reserve": check})
    with pytest.raises(AttributeError, match="known methods: check, reserve"):
        _ = d.chek
    with pytest.raises(DefinitionError, match="known methods: check, reserve"):
        d.spec("chek")


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda: Domain("has space"), "invalid domain name 'has space'"),
        (lambda: Domain("x" * 65), "at most 64 characters"),
        (lambda: Workflow("order processing"), "invalid workflow name 'order processing'"),
        (lambda: Workflow("-lead"), "invalid workflow name '-lead'"),
        (lambda: Domain("D", {"m": 42}), "handler must be a function"),
        (lambda: Domain("D", {"m": {"handler": check, "retry": {}}}), "unknown keys"),
        (
            lambda: Domain("D", {"m": {"handler": check, "sensitive": "output"}}),
            "'sensitive' (Cloudflare's redaction of a step's output from its logs) is not "
            "supported yet",
        ),
        (lambda: Domain("D", {"m": {"handler": check, "timeout": "ten"}}), "'ten'"),
        (lambda: Domain("D", {"m": {"handler": check, "timeout": "-5 s"}}), "'-5 s'"),
        (lambda: Domain("D", {"m": {"handler": check, "timeout": ""}}), "invalid duration"),
        (lambda: Workflow("w").every("fortnightly on full moon"), "Monday at 9am"),
        (lambda: Workflow("w", lambda a, b, c: 1), "must take (wf) or (wf, params)"),
    ],
)
def test_bad_definitions_name_the_bad_value(make: Any, expected: str) -> None:
    with pytest.raises(DefinitionError) as info:
        make()
    assert expected in str(info.value)


def test_workflow_decorator_examples_schedule_and_registry() -> None:
    @Workflow("reg-order", examples=[{"id": "o-1"}])
    async def order(wf: Any, params: Any) -> Any:
        return params

    async def weekly(wf: Any) -> Any:
        return "report"

    report = Workflow("reg-weekly").every("Monday at 9am").run(weekly)
    assert isinstance(order, Workflow)
    assert order.examples == [{"id": "o-1"}]
    assert report.schedule == "0 9 * * 1"
    assert registered_workflows()["reg-weekly"] is report
    with Simulator() as sim:
        inst = sim.create(report)  # a one-parameter workflow function gets only wf
        sim.run()
        assert inst.status()["output"] == "report"


def test_replacing_a_domain_from_another_place_warns_naming_both() -> None:
    Domain("Twice", {"check": check})
    with pytest.warns(UserWarning, match=r"Domain 'Twice' defined at .*test_domain_workflow"):
        Domain("Twice", {"check": check})
    assert registered_domains()["Twice"].check is check


def test_redefining_a_domain_from_the_same_line_is_silent() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(3):
            Domain("SameLine", {"check": check})


def test_domains_argument_limits_what_wf_resolves() -> None:
    mine = Domain("OnlyMine", {"check": check})
    Domain("NotMine", {"check": check})

    @Workflow("scoped", domains=[mine])
    async def scoped(wf: Any, params: Any) -> Any:
        return await wf.NotMine(params).check()

    with Simulator() as sim:
        inst = sim.create(scoped, {"sku": "A"})
        sim.run()
        err = inst.status()["error"]
    assert "unknown domain 'NotMine'" in err["message"]
    assert "OnlyMine" in err["message"]


def test_args_must_be_one_dict_or_keywords() -> None:
    d = Domain("Args", {"go": lambda c, a, x: a})

    @Workflow("args", domains=[d])
    async def flow(wf: Any, params: Any) -> Any:
        return await wf.Args("c").go(1, 2)

    with Simulator() as sim:
        inst = sim.create(flow)
        sim.run()
        assert "pass arguments as one dict or as keywords" in inst.status()["error"]["message"]


def test_context_that_is_not_json_names_the_field_path() -> None:
    d = Domain("Ctx", {"go": lambda c, a, x: c})

    @Workflow("ctx-path", domains=[d])
    async def flow(wf: Any, params: Any) -> Any:
        return await wf.Ctx({"items": [{"price": 1}, {"price": 2}, {"price": {1, 2}}]}).go()

    with Simulator() as sim:
        inst = sim.create(flow)
        sim.run()
        message = inst.status()["error"]["message"]
    assert message.startswith("context.items[2].price is not JSON (a set)")
