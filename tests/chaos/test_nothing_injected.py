"""`awf-sim chaos` that had nothing to inject says so, instead of a bare "no invariant broken".

`--faults event-late` on a workflow that waits for no event, or any chaos run of a workflow
without a step, sleep or wait, runs the fault-free run alone; the report used to read exactly
like a campaign that injected every fault and found nothing."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from awf_sim.cli import app

FLOW = """
from awf_sim import Domain, Workflow


def add(ctx_, args, ctx):
    return {"sum": args["a"] + args["b"]}


NothingMath = Domain("NothingMath", {"add": add})


@Workflow("nothing-steps", examples=[{"a": 1, "b": 2}])
async def with_steps(wf, p):
    return await wf.NothingMath(p).add(a=p["a"], b=p["b"])


@Workflow("nothing-at-all", examples=[{"a": 1}])
async def no_steps(wf, p):
    return p["a"]
"""


def _chaos(tmp_path: Path, *args: str) -> str:
    flow = tmp_path / "nothing.py"
    flow.write_text(FLOW, encoding="utf-8")
    result = CliRunner().invoke(app, ["chaos", str(flow), *args])
    assert result.exit_code == 0, result.output
    return " ".join(result.stdout.split())  # rich wraps lines at the terminal width


def test_fault_kinds_that_apply_nowhere_are_said(tmp_path: Path) -> None:
    out = _chaos(tmp_path, "--workflow", "nothing-steps", "--faults", "event-late,timeout")
    assert "nothing was injected" not in out  # timeout applies to the step
    out = _chaos(tmp_path, "--workflow", "nothing-steps", "--faults", "event-late")
    assert "nothing was injected: no fault kind of --faults event-late applies" in out
    assert "only the fault-free run was checked" in out


def test_a_workflow_without_fault_points_is_said(tmp_path: Path) -> None:
    out = _chaos(tmp_path, "--workflow", "nothing-at-all")
    assert "nothing was injected: no fault kind applies" in out
