"""A step that returns a datetime: one finding, which names the type the user wrote.

Inside a simulation `datetime` is freezegun's subclass, so the message said "a FakeDatetime";
and chaos reported the bug twice, as serializable and as the failed fault-free run
(baseline-outcome), though it is one bug with one fix."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from awf_sim.cli import app

FLOW = """
import datetime

from awf_sim import Domain, Workflow


def when(context, args, ctx):
    return {"at": datetime.datetime(2026, 1, 1)}


SerialClock = Domain("SerialClock", {"when": when})


@Workflow("serial-clock", examples=[{}])
async def serial_clock(wf, p):
    return await wf.SerialClock(p).when()
"""


def _flow(tmp_path: Path) -> str:
    flow = tmp_path / "serial_clock.py"
    flow.write_text(FLOW, encoding="utf-8")
    return str(flow)


def test_run_names_the_datetime_as_written(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["run", _flow(tmp_path), "--json"])
    assert result.exit_code == 1
    message = json.loads(result.stdout)["error"]["message"]
    assert "result of SerialClock.when.at is not JSON (a datetime)" in message
    assert "Fake" not in message


def test_chaos_reports_one_bug_under_serializable(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["chaos", _flow(tmp_path), "--runs", "20", "--json"])
    assert result.exit_code == 1
    (finding,) = json.loads(result.stdout)["workflows"][0]["violations"]
    assert (finding["invariant"], finding["key"]) == ("serializable", "SerialClock.when")
    assert ".isoformat()" in finding["hint"]
    assert [r["invariant"] for r in finding["related"]] == ["baseline-outcome"]
