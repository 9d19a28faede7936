"""A Domain method whose name the pipeline or the Domain keeps for itself is refused.

`Domain("D", {"__init__": h})` was accepted, and `await wf.D(c).__init__()` then failed deep
inside with "_Pipeline.__init__() missing 4 required positional arguments"; a method called
`name` or `spec` ran as a step but `D.name` stayed the domain's name, not the handler that
DESIGN §2 promises for unit tests."""

from __future__ import annotations

from typing import Any

import pytest

from awf_sim import Domain, Simulator, Workflow
from awf_sim.errors import DefinitionError


def handler(context: Any, args: Any, ctx: Any) -> dict[str, int]:
    return {"ran": 1}


@pytest.mark.parametrize("name", ["__init__", "_calls", "_base", "_helper"])
def test_a_leading_underscore_is_refused(name: str) -> None:
    with pytest.raises(DefinitionError, match=rf"method name '{name}' starts with '_'"):
        Domain("NamesUnderscore", {name: handler})


@pytest.mark.parametrize("name", ["name", "methods", "method", "spec"])
def test_a_name_of_domain_itself_is_refused_in_both_forms(name: str) -> None:
    with pytest.raises(DefinitionError, match=rf"'{name}' is Domain's own attribute"):
        Domain("NamesOwn", {name: handler})
    decorated = Domain("NamesOwnDecorated")
    with pytest.raises(DefinitionError, match="rename the method"):
        decorated.method(name=name)(handler)


def test_other_names_stay_plain_handlers_and_steps() -> None:
    names = Domain("NamesFine", {"check": handler, "then": handler, "title": handler})
    assert names.check is handler
    assert names.title is handler

    @Workflow("names-fine", domains=[names])
    async def flow(wf: Any, params: Any) -> Any:
        return [await wf.NamesFine(params).check(), await wf.NamesFine(params).title()]

    with Simulator() as sim:
        inst = sim.create(flow, {})
        sim.run()
        assert inst.status()["output"] == [{"ran": 1}, {"ran": 1}]
