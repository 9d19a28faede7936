"""Issue 17.2: a per-attempt CPU budget ends runaway handlers, busy coroutines and workflow
loops with an error that names the step, as Cloudflare's CPU limit stops an invocation."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from awf_sim import DefinitionError, Domain, Simulator, Workflow
from awf_sim.cli import app
from awf_sim.testing import Modifier


def _spin(c: Any, a: Any, ctx: Any) -> Any:
    while True:
        pass


async def _busy(c: Any, a: Any, ctx: Any) -> Any:
    await asyncio.sleep(0.001)
    while True:
        pass


@pytest.mark.parametrize("handler", [_spin, _busy], ids=["endless-loop", "busy-coroutine"])
def test_a_runaway_handler_fails_its_step_by_name(within: Any, handler: Any) -> None:
    runaway = Domain("Runaway", {"go": {"handler": handler, "retries": {"limit": 0, "delay": 1}}})

    @Workflow("runaway-handler", domains=[runaway])
    async def flow(wf: Any, p: Any) -> Any:
        await wf.Runaway({}).go()

    with within(30), Simulator(cpu_ms=200) as sim:
        inst = sim.create(flow, {})
        sim.run()
        error = inst.status()["error"]
    assert error["name"] == "CpuLimitExceeded"
    assert "Runaway.go" in error["message"]
    assert "200 ms of CPU time" in error["message"]


def test_a_workflow_body_that_never_awaits_ends_errored(within: Any) -> None:
    @Workflow("runaway-body")
    async def flow(wf: Any, p: Any) -> Any:
        while True:
            try:
                pass
            except Exception:  # the budget is not an Exception: user code cannot swallow it
                pass

    with within(30), Simulator(cpu_ms=200) as sim:
        inst = sim.create(flow, {})
        sim.run()
        status = inst.status()
    assert status["status"] == "errored"
    assert status["error"]["name"] == "CpuLimitExceeded"


def test_the_budget_is_per_attempt_not_per_run_of_steps(within: Any) -> None:
    def burn(c: Any, a: Any, ctx: Any) -> Any:
        end = time.process_time() + 0.06
        while time.process_time() < end:
            pass
        return a["i"]

    burner = Domain("Burner", {"burn": burn})

    @Workflow("many-short-steps", domains=[burner])
    async def flow(wf: Any, p: Any) -> Any:
        return [await wf.Burner({}).burn(i=i) for i in range(8)]  # ~480 ms in all

    with within(30), Simulator(cpu_ms=250) as sim:
        inst = sim.create(flow, {})
        sim.run()
        assert inst.status()["output"] == list(range(8))


def test_cpu_ms_is_checked() -> None:
    with pytest.raises(DefinitionError, match="cpu_ms"):
        Simulator(cpu_ms=0)


def test_awf_sim_run_takes_cpu_ms(within: Any, tmp_path: Path) -> None:
    flow = tmp_path / "spins.py"
    flow.write_text(
        "from awf_sim import Workflow\n"
        "@Workflow('spins')\n"
        "async def spins(wf, p):\n"
        "    while True:\n"
        "        pass\n"
    )
    with within(30):
        result = CliRunner().invoke(app, ["run", str(flow), "--cpu-ms", "200", "--json"])
    assert result.exit_code == 1
    assert "CpuLimitExceeded" in result.stdout


def test_an_attempt_forced_to_time_out_has_its_own_budget(within: Any) -> None:
    # The handler still starts when a timeout is forced; running away there is that attempt's,
    # not the workflow body's (the body goes on to the retry, which succeeds).
    def spin_first(c: Any, a: Any, ctx: Any) -> Any:
        if ctx.attempt == 1:
            end = time.process_time() + 5.0  # endless, to a budget of 50 ms
            while time.process_time() < end:
                pass
        return "done"

    retried = {"handler": spin_first, "retries": {"limit": 1, "delay": 1}}
    spinner = Domain("Spinner", {"go": retried})

    @Workflow("forced-timeout-spins", domains=[spinner])
    async def flow(wf: Any, p: Any) -> Any:
        return await wf.Spinner({}).go()

    modifier = Modifier()
    modifier.force_step_timeout("Spinner.go", times=1)
    with within(30), Simulator(cpu_ms=50, hooks=modifier) as sim:
        inst = sim.create(flow, {})
        sim.run()
        status = inst.status()
    assert (status["status"], status["output"]) == ("complete", "done")
