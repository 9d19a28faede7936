"""Chaos's CPU budget (`awf-sim chaos --cpu-ms`, `Target(cpu_ms=...)`): a handler that runs
away fails that attempt as CpuLimitExceeded in every run chaos makes, is retried per its
config, and the campaign finishes and says so; a fault-free run that fails that way stops the
command with one line naming the step and the fix.

The handlers here spin for a few seconds of CPU, not forever: to a budget of 50 ms that is an
endless loop, and a budget that does not reach some run fails the test (the run completes
instead of being stopped) rather than hanging it.
"""

from __future__ import annotations

import inspect
import json
import textwrap
import warnings
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from typer.testing import CliRunner

import awf_sim.cli
from awf_sim.chaos import CHAOS_JSON_SCHEMA, Target, build_baseline, run_campaign
from awf_sim.chaos._command import chaos_command
from awf_sim.chaos._crossproc import _child, _record
from awf_sim.cli import app
from awf_sim.engine._defaults import DEFAULT_CPU_MS
from awf_sim.errors import DefinitionError
from awf_sim.flow import load_flow

runner = CliRunner()

_SPIN = """
import os
import time
from typing import Any

from awf_sim import Domain, Workflow


def spin(seconds: float) -> None:
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass
"""

# Attempt 1 runs away; the retry succeeds. Every run that starts the step pays the budget.
FIRST_ATTEMPT = (
    _SPIN
    + """

def charge(c: Any, a: Any, ctx: Any) -> Any:
    if ctx.attempt == 1:
        spin(5.0)
    return {"ok": True}


Pay = Domain("Pay", {"charge": {"handler": charge, "retries": {"limit": 2, "delay": 1}}})


@Workflow("first-attempt-spins", examples=[{}], domains=[Pay])
async def first_attempt_spins(wf: Any, p: Any) -> Any:
    return await wf.Pay({}).charge()
"""
)

# Every attempt runs away: the fault-free run itself fails.
EVERY_ATTEMPT = (
    _SPIN
    + """

def charge(c: Any, a: Any, ctx: Any) -> Any:
    spin(5.0)
    return {"ok": True}


Pay = Domain("Pay", {"charge": {"handler": charge, "retries": {"limit": 1, "delay": 1}}})


@Workflow("every-attempt-spins", examples=[{}], domains=[Pay])
async def every_attempt_spins(wf: Any, p: Any) -> Any:
    return await wf.Pay({}).charge()
"""
)

# The workflow body runs away only when replayed in another process (the variable is set
# there by the test).
REPLAY_BODY = (
    _SPIN
    + """

def charge(c: Any, a: Any, ctx: Any) -> Any:
    return {"ok": True}


Pay = Domain("Pay", {"charge": charge})


@Workflow("replay-spins", examples=[{}], domains=[Pay])
async def replay_spins(wf: Any, p: Any) -> Any:
    result = await wf.Pay({}).charge()
    if os.environ.get("AWF_TEST_REPLAY_SPINS"):
        spin(5.0)
    return result
"""
)


def _flow(tmp_path: Path, text: str) -> str:
    path = tmp_path / "flow.py"
    path.write_text(textwrap.dedent(text))
    return str(path)


def chaos(*args: str) -> Any:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Domain .* replaces", UserWarning)
        return runner.invoke(app, ["chaos", *args])


def test_the_cli_stops_each_runaway_attempt_and_says_so(tmp_path: Path) -> None:
    flow = _flow(tmp_path, FIRST_ATTEMPT)
    result = chaos(flow, "--cpu-ms", "50", "--runs", "12")
    assert result.exit_code == 0, result.stdout + result.stderr
    out = " ".join(result.stdout.split())  # rich wraps lines
    assert "chaos: no invariant broken" in out
    assert "an attempt of Pay.charge ran past 50 ms of CPU" in out
    assert "retried per the step's config" in out
    assert "--cpu-ms MS sets the budget" in out
    # The fault-free run already paid it: said while the campaign runs, not only at its end.
    assert "in the fault-free run, the handler of Pay.charge ran past the CPU budget" in (
        result.stderr
    )

    data = json.loads(chaos(flow, "--cpu-ms", "50", "--runs", "12", "--json").stdout)
    jsonschema.validate(data, CHAOS_JSON_SCHEMA)
    (stopped,) = data["workflows"][0]["cpu_stopped"]
    assert stopped["what"] == "Pay.charge"
    # The fault-free run and fault-injected ones: the budget reached the runs chaos makes.
    assert 1 < stopped["runs"] <= data["workflows"][0]["runs"] + 1


def test_a_fault_free_run_that_runs_away_is_one_line_naming_the_step_and_the_fix(
    tmp_path: Path,
) -> None:
    flow = _flow(tmp_path, EVERY_ATTEMPT)
    result = chaos(flow, "--cpu-ms", "50")
    assert result.exit_code == 1  # a fault-free run that fails: as `baseline-outcome`
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    line = lines[0]
    assert line.startswith("awf-sim: the fault-free run of every-attempt-spins (example 1 of 1)")
    assert "the handler of Pay.charge ran past the CPU budget of 50 ms" in line
    assert "--cpu-ms MS" in line
    assert "Traceback" not in result.stderr


def test_the_cli_refuses_a_budget_below_one_ms(tmp_path: Path) -> None:
    result = chaos(_flow(tmp_path, FIRST_ATTEMPT), "--cpu-ms", "0")
    assert result.exit_code == 2
    assert "--cpu-ms" in result.stderr


def test_replay_commands_carry_a_budget_that_is_not_the_default(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    order = str(root / "examples" / "order_processing.py")
    result = chaos(order, "--runs", "10", "--cpu-ms", "20000")
    assert result.exit_code == 1
    assert "--cpu-ms 20000 --replay " in " ".join(result.stdout.split())
    default = chaos(order, "--runs", "10")
    assert "--cpu-ms" not in default.stdout


def test_the_api_takes_the_budget_on_the_target(tmp_path: Path) -> None:
    wf = load_flow(_flow(tmp_path, FIRST_ATTEMPT)).pick(None)
    result = run_campaign(Target(wf, {}, cpu_ms=50), runs=12)
    assert result.clean
    assert set(result.cpu_stopped) == {"Pay.charge"}
    assert 1 < result.cpu_stopped["Pay.charge"] <= result.runs + 1
    failures = [e for e in result.baseline.obs.timeline if e["kind"] == "attempt-failure"]
    assert [e["error"]["name"] for e in failures] == ["CpuLimitExceeded"]  # type: ignore[index]
    assert "more than 50 ms of CPU" in failures[0]["error"]["message"]  # type: ignore[index]


def test_the_api_reports_a_runaway_fault_free_run_without_fault_runs(tmp_path: Path) -> None:
    wf = load_flow(_flow(tmp_path, EVERY_ATTEMPT)).pick(None)
    result = run_campaign(Target(wf, {}, cpu_ms=50), runs=50)
    assert result.runs == 0
    (finding,) = result.findings
    assert finding.violation.invariant == "baseline-outcome"
    assert "CpuLimitExceeded" in finding.violation.message
    assert "Pay.charge" in finding.violation.message
    assert result.cpu_stopped == {"Pay.charge": 1}


def test_the_replay_in_another_process_gets_the_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _flow(tmp_path, REPLAY_BODY)
    wf = load_flow(path).pick(None)
    target = Target(wf, {}, cpu_ms=50)
    store = str(tmp_path / "store.sqlite")
    _record(target, build_baseline(target), store)
    monkeypatch.setenv("AWF_TEST_REPLAY_SPINS", "1")
    request = {
        "flow": path,
        "workflow": wf.name,
        "store": store,
        "iid": target.iid,
        "seed": 0,
        "cpu_ms": 50,
    }
    got = _child(request, {"hash": 0, "getpid": 0})
    assert got["status"] == "errored"
    assert got["error"]["name"] == "CpuLimitExceeded"
    assert "the workflow body used more than 50 ms" in got["error"]["message"]


@pytest.mark.parametrize("bad", [0, -5, 1.5, True, "100"])
def test_a_target_refuses_a_budget_that_is_not_whole_positive_ms(tmp_path: Path, bad: Any) -> None:
    wf = load_flow(_flow(tmp_path, FIRST_ATTEMPT)).pick(None)
    with pytest.raises(DefinitionError, match=r"Target\.cpu_ms must be a positive whole number"):
        Target(wf, {}, cpu_ms=bad)


def test_the_default_budget_is_cloudflares_everywhere(tmp_path: Path) -> None:
    wf = load_flow(_flow(tmp_path, FIRST_ATTEMPT)).pick(None)
    assert Target(wf, {}).cpu_ms == DEFAULT_CPU_MS == 30_000
    assert awf_sim.cli.DEFAULT_CPU_MS == DEFAULT_CPU_MS
    cpu_ms = inspect.signature(chaos_command).parameters["cpu_ms"]
    assert cpu_ms.default == DEFAULT_CPU_MS
