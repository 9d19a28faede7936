"""Faults that let a wait_for time out (issue 15.3): event-withheld holds the event past the
wait's deadline, event-at-deadline sends it exactly at it; the coverage says which timeout
branches ran and which fault points never fired."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import jsonschema
from typer.testing import CliRunner

from awf_sim.chaos import CHAOS_JSON_SCHEMA, KINDS, decode_token, plan_token
from awf_sim.cli import app

runner = CliRunner()

# The timeout branch awaits in-memory coordination nothing will set: the instance is stuck,
# and only a run in which the approval never arrives in time can show it.
STUCK_ON_TIMEOUT = """
import asyncio

from awf_sim import Domain, Workflow

Note = Domain("DlNote")


@Note.method()
async def send(who, args, ctx):
    return {"sent": who}


@Workflow(
    "dl-approval",
    examples=[{"id": "x-1"}],
    events=[{"type": "approval", "payload": {"ok": True}, "after": "1 hour"}],
)
async def approval(wf, p):
    try:
        decision = await wf.wait_for("approve", type="approval", timeout="1 day")
    except Exception:
        await asyncio.Event().wait()  # the bug: nothing ever sets it
        decision = None
    return await wf.DlNote(p).send(ok=decision is not None)
"""


def chaos(*args: str) -> Any:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Domain .* replaces", UserWarning)
        return runner.invoke(app, ["chaos", *args])


def as_json(result: Any) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(result.stdout)
    jsonschema.validate(data, CHAOS_JSON_SCHEMA)
    return data


def test_the_new_kinds_are_faults_with_tokens() -> None:
    assert "event-withheld" in KINDS
    assert "event-at-deadline" in KINDS
    plan = [{"kind": "event-withheld", "type": "approval"}]
    assert decode_token(plan_token(plan)) == plan


def test_a_withheld_event_reaches_the_timeout_branch(tmp_path: Path) -> None:
    flow = tmp_path / "approval.py"
    flow.write_text(STUCK_ON_TIMEOUT.lstrip(), encoding="utf-8")
    data = as_json(chaos(str(flow), "--runs", "30", "--json"))
    (wf,) = data["workflows"]
    found = {(v["invariant"], tuple(f["kind"] for f in v["plan"])) for v in wf["violations"]}
    assert ("no-stuck-instance", ("event-withheld",)) in found
    kinds = {m["kind"] for m in wf["coverage"]["matrix"] if m["runs"]}
    assert {"event-withheld", "event-at-deadline"} <= kinds
    assert wf["coverage"]["wait_timeouts"][0]["wait"] == "approve"
    assert wf["coverage"]["wait_timeouts"][0]["runs"] > 0


def test_coverage_names_what_never_ran(tmp_path: Path) -> None:
    flow = tmp_path / "approval_cov.py"
    flow.write_text(STUCK_ON_TIMEOUT.lstrip(), encoding="utf-8")
    # Without the deadline faults no wait times out: the report says so by name.
    result = chaos(str(flow), "--runs", "10", "--faults", "crash,event-early,event-late")
    assert result.exit_code == 0, result.stdout
    out = " ".join(result.stdout.split())
    assert "not covered: the timeout branch of wait_for 'approve' never ran" in out
    data = as_json(chaos(str(flow), "--runs", "10", "--faults", "event-duplicate", "--json"))
    assert data["workflows"][0]["coverage"]["wait_timeouts"] == [{"wait": "approve", "runs": 0}]
