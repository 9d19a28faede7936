"""Issue 17.1: user code cannot end the process that judges it. SystemExit and
KeyboardInterrupt from a handler fail the step; from a workflow body, the instance."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import pytest

from awf_sim import Domain, Workflow


def _domain(handler: Any) -> Domain:
    return Domain("Exiter", {"go": {"handler": handler, "retries": {"limit": 1, "delay": 1}}})


@pytest.mark.parametrize("suspends", [False, True])
@pytest.mark.parametrize("exc", [SystemExit(0), SystemExit(None), KeyboardInterrupt()])
def test_a_handler_that_exits_fails_its_step(
    make_sim: Any, exc: BaseException, suspends: bool
) -> None:
    async def go(c: Any, a: Any, ctx: Any) -> Any:
        if suspends:
            await asyncio.sleep(0.001)
        raise exc

    exiter = _domain(go)
    caught: list[str] = []

    @Workflow("exits-in-handler", domains=[exiter])
    async def flow(wf: Any, p: Any) -> Any:
        try:
            await wf.Exiter({}).go()
        except Exception as err:  # a step error, not the process's exit
            caught.append(str(err))
        return "survived"

    sim = make_sim()
    inst = sim.create(flow, {})
    sim.run()
    status = inst.status()
    assert status["status"] == "complete"
    assert status["output"] == "survived"
    name = type(exc).__name__
    assert caught
    assert caught[0].startswith(f"{name}: the handler of Exiter.go")
    failures = [e for e in inst.timeline if e["kind"] == "attempt-failure"]
    assert len(failures) == 2  # retried like any error


def test_a_workflow_that_exits_ends_errored(make_sim: Any) -> None:
    @Workflow("exits-in-body")
    async def flow(wf: Any, p: Any) -> Any:
        sys.exit(3)

    sim = make_sim()
    inst = sim.create(flow, {})
    sim.run()
    status = inst.status()
    assert status["status"] == "errored"
    assert status["error"]["name"] == "SystemExit"
    assert "sys.exit(3)" in status["error"]["message"]
