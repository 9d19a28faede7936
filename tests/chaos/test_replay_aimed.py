"""`--replay TOKEN` for a plan that cannot fire on this workflow or input is refused.

A token copied from another workflow's report (or kept after the step it aims at was renamed)
ran a fault-free run, printed "no invariant broken" and exited 0: it read as "fixed"."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from awf_sim.chaos import plan_token
from awf_sim.cli import app

FLOW = """
from awf_sim import Database, Domain, Workflow

DATABASE = Database(schema="CREATE TABLE credits (id INTEGER PRIMARY KEY, amount INTEGER);")


async def credit(account, args, ctx):
    await ctx.db.execute("INSERT INTO credits (amount) VALUES (?)", [args["amount"]])
    return {}


AimedLedger = Domain("AimedLedger", {"credit": credit})


@Workflow("aimed-credit", examples=[{"amount": 5}])
async def aimed_credit(wf, p):
    return await wf.AimedLedger(p).credit(amount=p["amount"])


@Workflow("aimed-approve", examples=[{"amount": 5}],
          events=[{"type": "approval", "payload": True, "after": "1 hour"}])
async def aimed_approve(wf, p):
    return await wf.wait_for("approval", type="approval")
"""


def _replay(tmp_path: Path, workflow: str, plan: list[dict[str, object]]) -> tuple[int, str]:
    flow = tmp_path / "aimed.py"
    flow.write_text(FLOW, encoding="utf-8")
    result = CliRunner().invoke(
        app, ["chaos", str(flow), "--workflow", workflow, "--replay", plan_token(plan)]
    )
    return result.exit_code, result.stderr


def test_a_token_replays_on_its_own_workflow(tmp_path: Path) -> None:
    code, _ = _replay(
        tmp_path, "aimed-credit", [{"kind": "crash-after-effect", "step": "AimedLedger.credit"}]
    )
    assert code == 1  # the planted double insert, found again


def test_a_step_fault_for_another_workflow_is_refused(tmp_path: Path) -> None:
    code, err = _replay(
        tmp_path, "aimed-approve", [{"kind": "crash-after-effect", "step": "AimedLedger.credit"}]
    )
    assert code == 2
    (line,) = err.splitlines()
    assert "fault 1 of the plan (crash-after-effect on AimedLedger.credit (attempt 1))" in line
    assert "the fault-free run of aimed-approve never calls" in line


def test_an_event_fault_for_an_event_never_sent_is_refused(tmp_path: Path) -> None:
    code, err = _replay(tmp_path, "aimed-approve", [{"kind": "event-duplicate", "type": "go"}])
    assert code == 2
    assert "event type 'go', which aimed-approve is never sent (its events: approval)" in err
    code, _ = _replay(tmp_path, "aimed-approve", [{"kind": "event-duplicate", "type": "approval"}])
    assert code in (0, 1)
