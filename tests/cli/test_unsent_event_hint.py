"""A wait that times out because nothing sends its event says how to send it.

A first flow with `wf.wait_for(..., type="approved")` and no `events=` errors under
`awf-sim run` and fails chaos's baseline with WorkflowTimeoutError; the hint used to say "fix
the error, or declare the input should fail", though the workflow is fine: awf-sim only sends
the events a workflow declares."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from awf_sim.cli import app

FLOW = """
from awf_sim import Workflow


@Workflow("unsent-approval", examples=[{"id": 1}]EVENTS)
async def unsent_approval(wf, p):
    return await wf.wait_for("approval", type="approved", timeout="3 days")
"""


def _invoke(tmp_path: Path, command: str, events: str = "") -> tuple[int, str]:
    flow = tmp_path / "unsent.py"
    flow.write_text(FLOW.replace("EVENTS", events), encoding="utf-8")
    result = CliRunner().invoke(app, [command, str(flow)])
    return result.exit_code, " ".join(result.stdout.split())


def test_run_says_to_declare_the_event(tmp_path: Path) -> None:
    code, out = _invoke(tmp_path, "run")
    assert code == 1
    assert "hint: The wait 'approval' timed out: nothing sends an event of type 'approved'" in out
    assert """events=[{"type": "approved", "payload": {...}, "after": "1 hour"}]""" in out


def test_chaos_baseline_says_to_declare_the_event(tmp_path: Path) -> None:
    code, out = _invoke(tmp_path, "chaos")
    assert code == 1
    assert "baseline-outcome" in out
    assert "nothing sends an event of type 'approved'" in out
    assert 'Example({...}, expect="errored", error="WorkflowTimeoutError")' in out


def test_a_declared_event_that_comes_too_late_gets_no_such_hint(tmp_path: Path) -> None:
    late = ', events=[{"type": "approved", "payload": 1, "after": "4 days"}]'
    code, out = _invoke(tmp_path, "run", late)
    assert code == 1
    assert "nothing sends" not in out
