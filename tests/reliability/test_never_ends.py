"""A workflow that never ends on its own (`while True: await wf.sleep(...)`) is legal on
Cloudflare: sleeps are not steps, so no step limit stops it. Every tool that runs an instance
"to its end" gives up on it after RUNAWAY_WAITS sleeps and event waits, says so, and prints
what it has in bounded time; before, `awf-sim run` and `awf-sim chaos` looped in virtual
time for ever, and a long run's report took minutes to lay out."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from awf_sim import Simulator, Workflow
from awf_sim.cli import app
from awf_sim.engine import _simulator

BOUND = 300  # the tools' bound in these tests; it is 100,000 (about a second of sleeps)

FLOW = """
from awf_sim import Domain, Workflow

async def ping(site, args, ctx):
    return {"ok": True}

Health = Domain("Health", {"ping": ping})

@Workflow("poller", examples=[{"site": "a"}])
async def poller(wf, params):
    await wf.Health(params["site"]).ping()
    while True:
        await wf.sleep("tick", "1 second")
"""


@pytest.fixture
def small_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _simulator.RUNAWAY_WAITS == 100_000
    from awf_sim import _runner
    from awf_sim.chaos import _crossproc, _outcome_checks, _run

    for module in (_runner, _run, _crossproc, _outcome_checks):
        monkeypatch.setattr(module, "RUNAWAY_WAITS", BOUND)


@Workflow("nr-ticker")
async def ticker(wf: Any, params: Any) -> Any:
    while True:
        await wf.sleep("tick", "1 minute")


@Workflow("nr-three-naps")
async def three_naps(wf: Any, params: Any) -> Any:
    for _ in range(3):
        await wf.sleep("nap", "1 hour")
    return "rested"


def test_run_until_done_gives_up_after_max_waits_and_says_so() -> None:
    with Simulator() as sim:
        inst = sim.create(ticker, {})
        assert sim.run_until_done(inst, max_waits=50) is False
        assert inst.status()["status"] == "waiting"
        sleeps = [e for e in inst.timeline if e["kind"] == "sleep-start"]
        assert 50 <= len(sleeps) <= 52
        # the bound counts from each call, not from the simulator's start
        assert sim.run_until_done(inst, max_waits=50) is False
        assert 100 <= len([e for e in inst.timeline if e["kind"] == "sleep-start"]) <= 104


def test_run_until_done_is_true_for_an_instance_that_ends_within_the_bound() -> None:
    with Simulator() as sim:
        inst = sim.create(three_naps, {})
        assert sim.run_until_done(inst, max_waits=3) is True
        assert inst.status()["output"] == "rested"
        # without max_waits, as before: no bound, and True
        other = sim.create(three_naps, {})
        assert sim.run_until_done(other) is True


def test_run_until_reports_the_bound_even_when_a_condition_is_given() -> None:
    with Simulator() as sim:
        inst = sim.create(ticker, {})
        assert sim.run_until(lambda: False, max_waits=20) is False
        assert sim.run_until(lambda: True, max_waits=20) is True
        assert inst.status()["status"] == "waiting"


def test_awf_sim_run_stops_a_workflow_that_never_ends(small_bound: None, tmp_path: Path) -> None:
    flow = tmp_path / "poller.py"
    flow.write_text(FLOW)
    result = CliRunner().invoke(app, ["run", str(flow)])
    assert result.exit_code == 1, result.output
    assert f"still waiting after {BOUND:,} sleeps and event waits" in result.stderr
    assert "does not end on its own" in result.stderr
    # 600 entries: the table shows its two ends and says how many it left out
    assert "status: waiting" in result.stdout
    assert "output:" not in result.stdout  # it has none: it never ended
    assert "entries left out;" in result.stdout
    assert len(result.stdout.splitlines()) < 260

    as_json = CliRunner().invoke(app, ["run", str(flow), "--json"])
    assert as_json.exit_code == 1
    data = json.loads(as_json.stdout)
    assert data["status"] == "waiting"
    assert len(data["timeline"]) > 2 * BOUND  # --json keeps every entry


def test_awf_sim_chaos_ends_on_a_workflow_that_never_ends(
    small_bound: None, tmp_path: Path
) -> None:
    flow = tmp_path / "poller.py"
    flow.write_text(FLOW)
    result = CliRunner().invoke(app, ["chaos", str(flow), "--max-steps", "3000"])
    assert result.exit_code == 1, result.output
    assert "no-stuck-instance" in result.stdout
    assert f"after {BOUND:,} sleeps and event waits" in result.stdout
    assert "Give the loop an end" in " ".join(result.stdout.split())
    # the coverage lists the first points by name and counts the rest
    assert "more sleeps and waits; --json lists them all" in result.stdout
    assert "more (fault point × kind) pairs; --json lists them all" in result.stdout
    assert len(result.stdout.splitlines()) < 400
