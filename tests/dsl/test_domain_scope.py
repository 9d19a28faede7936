"""Domains belong to their flow (issue 15, point 1): a workflow resolves `wf.<Domain>` to the
Domain visible where it was defined, never to a later definition of the same name elsewhere."""

from __future__ import annotations

import textwrap
import warnings
from pathlib import Path

import pytest

from awf_sim import Simulator
from awf_sim.dsl import isolated_registries
from awf_sim.flow import load_flow
from awf_sim.testing import create_test_workflow

FLOW = """
from awf_sim import Domain, Workflow


async def send(to, args, ctx):
    return {{"sent_by": "{who}", "to": to}}


Email = Domain("Email", {{"send": send}})


@Workflow("{who}-flow")
async def flow(wf, params):
    return await wf.Email(params["to"]).send()
"""


def _write(tmp_path: Path, who: str) -> Path:
    path = tmp_path / f"flow_{who}.py"
    path.write_text(textwrap.dedent(FLOW.format(who=who)))
    return path


def test_two_flows_each_with_their_own_domain_of_the_same_name(tmp_path: Path) -> None:
    with isolated_registries(), warnings.catch_warnings():
        warnings.simplefilter("error")  # no "replaces" warning: each flow keeps its own
        flow_a = load_flow(_write(tmp_path, "a")).pick(None)
        flow_b = load_flow(_write(tmp_path, "b")).pick(None)
        wf = create_test_workflow(flow_a)
        with wf:
            assert wf.run({"to": "x@example.com"})["sent_by"] == "a"
        with create_test_workflow(flow_b) as wf:
            assert wf.run({"to": "x@example.com"})["sent_by"] == "b"


def test_a_workflow_in_a_test_sees_the_domain_of_its_own_module() -> None:
    from awf_sim import Domain, Workflow

    Domain("ScopeProbe", {"who": lambda c, a, x: "mine"})

    @Workflow("scope-probe")
    async def probe(wf, params):  # type: ignore[no-untyped-def]
        return await wf.ScopeProbe("c").who()

    with Simulator() as sim:
        inst = sim.create(probe)
        sim.run()
        assert inst.status()["output"] == "mine"


def test_an_ambiguous_domain_no_module_sees_is_an_error_naming_the_places(
    tmp_path: Path,
) -> None:
    other = """
from awf_sim import Workflow


@Workflow("orphan")
async def orphan(wf, params):
    return await wf.Email("x").send()
"""
    with isolated_registries():
        load_flow(_write(tmp_path, "a"))
        load_flow(_write(tmp_path, "b"))
        path = tmp_path / "orphan.py"
        path.write_text(other)
        orphan = load_flow(path).pick(None)
        with create_test_workflow(orphan) as wf, pytest.raises(AssertionError) as info:
            wf.run()
    message = str(info.value)
    assert "defined in several places" in message
    assert "flow_a.py" in message
    assert "flow_b.py" in message
