"""A chaos campaign that --max-seconds cut short is no verdict in the report either.

Written as a user scripting chaos would: `awf-sim chaos FLOW --json --max-seconds S` and read
`clean`. The exit code was 1 and stderr said "no verdict", but the JSON said `"clean": true`
and the text report ended with "chaos: no invariant broken": a script or a reader trusting
the report took a campaign that injected no fault at all for a verified flow.
"""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
from typer.testing import CliRunner

from awf_sim.chaos import CHAOS_JSON_SCHEMA
from awf_sim.cli import app

FLOW = """
from awf_sim import Workflow


@Workflow("many-steps", examples=[{}])
async def many_steps(wf, p):
    total = 0
    for i in range(40):
        total += await wf.do(f"step-{i}", lambda i=i: i)
    return total
"""

runner = CliRunner()


def _chaos(tmp_path: Path, *args: str) -> tuple[int, str]:
    flow = tmp_path / "many.py"
    flow.write_text(FLOW, encoding="utf-8")
    result = runner.invoke(app, ["chaos", str(flow), "--max-seconds", "0.01", *args])
    return result.exit_code, result.stdout


def test_the_json_of_a_cut_short_campaign_is_not_clean(tmp_path: Path) -> None:
    code, out = _chaos(tmp_path, "--json")
    assert code == 1
    report = json.loads(out)
    jsonschema.validate(report, CHAOS_JSON_SCHEMA)
    assert report["clean"] is False
    (workflow,) = report["workflows"]
    assert workflow["clean"] is False
    assert workflow["violations"] == []
    assert workflow["cut_short"]["ran"] == workflow["runs"]
    assert workflow["cut_short"]["planned"] > workflow["runs"]


def test_the_text_report_of_a_cut_short_campaign_says_no_verdict(tmp_path: Path) -> None:
    code, out = _chaos(tmp_path)
    assert code == 1
    last = " ".join(out.split()[-40:])
    assert "chaos: no invariant broken" not in last
    assert "chaos: no verdict: --max-seconds stopped many-steps (example 1 of 1)" in last


def test_a_campaign_that_ran_every_plan_is_clean(tmp_path: Path) -> None:
    flow = tmp_path / "many.py"
    flow.write_text(FLOW, encoding="utf-8")
    result = runner.invoke(app, ["chaos", str(flow), "--json", "--runs", "10"])
    assert result.exit_code == 0
    report = json.loads(result.stdout)
    assert report["clean"] is True
    assert "cut_short" not in report["workflows"][0]
