"""`--json`: stdout holds the one JSON object, whatever the code under test prints.

A flow that prints (on import, in its workflow body, in a handler) put those lines before the
JSON on stdout, so `awf-sim run flow.py --json | jq` failed: the code's own output now goes
to stderr under --json, for run, chaos (every run, one job or several) and replay."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from awf_sim.cli import app
from awf_sim.dsl import isolated_registries
from awf_sim.flow import load_flow
from awf_sim.replay import record_history

FLOW = """
import sys

from awf_sim import Domain, Workflow

print("imported")


def greet(p, args, ctx):
    print("in the handler")
    sys.stdout.write("written\\n")
    return {"hi": p["name"]}


Printer = Domain("JsonPrinter", {"greet": greet})


@Workflow("json-printer", examples=[{"name": "Ann"}])
async def json_printer(wf, p):
    print("in the workflow")
    return await wf.JsonPrinter(p).greet()
"""


def _flow(tmp_path: Path) -> Path:
    flow = tmp_path / "json_printer.py"
    flow.write_text(FLOW, encoding="utf-8")
    return flow


@pytest.mark.parametrize(
    "args", [["run"], ["chaos", "--runs", "10"], ["chaos", "--runs", "10", "--jobs", "2"]]
)
def test_prints_of_the_flow_go_to_stderr_under_json(tmp_path: Path, args: list[str]) -> None:
    result = CliRunner().invoke(app, [args[0], str(_flow(tmp_path)), "--json", *args[1:]])
    assert result.exit_code == 0, result.stderr
    json.loads(result.stdout)  # nothing else on stdout
    assert "in the handler" in result.stderr
    assert "in the workflow" in result.stderr


def test_replay_json_is_clean_too(tmp_path: Path) -> None:
    flow = _flow(tmp_path)
    with isolated_registries():
        history = record_history(load_flow(flow).workflows["json-printer"], {"name": "Ann"})
    path = tmp_path / "history.json"
    path.write_text(json.dumps(history.to_json()), encoding="utf-8")
    result = CliRunner().invoke(app, ["replay", str(flow), str(path), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["faithful"] is True


def test_without_json_the_prints_stay_on_stdout(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["run", str(_flow(tmp_path))])
    assert result.exit_code == 0
    assert "in the handler" in result.stdout
