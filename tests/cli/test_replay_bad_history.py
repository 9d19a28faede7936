"""`awf-sim replay` on a history file that is wrong in shape: one line, exit 2, no traceback.

A history is hand-edited or pulled by an older tool often enough; a field of the wrong type
used to end the command with an AttributeError, TypeError or RecursionError traceback (exit
1, which says "the code diverges")."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from awf_sim.cli import app
from awf_sim.dsl import isolated_registries
from awf_sim.flow import load_flow
from awf_sim.replay import record_history

FLOW = """
from awf_sim import Domain, Workflow


def grant(user, args, ctx):
    return {"granted": args["role"]}


BadHistoryAccess = Domain("BadHistoryAccess", {
    "grant": {"handler": grant, "retries": {"limit": 2, "delay": "1 second"}},
})


@Workflow("bad-history", examples=[{"user": "u-1"}])
async def bad_history(wf, params):
    return await wf.BadHistoryAccess(params).grant(role="admin")
"""


@pytest.fixture
def recorded(tmp_path: Path) -> tuple[Path, str]:
    flow = tmp_path / "bad_history.py"
    flow.write_text(FLOW, encoding="utf-8")
    with isolated_registries():
        loaded = load_flow(flow)
        history = record_history(loaded.workflows["bad-history"], {"user": "u-1"})
    return flow, json.dumps(history.to_json())


def _replay(tmp_path: Path, flow: Path, text: str) -> Any:
    path = tmp_path / "history.json"
    path.write_text(text, encoding="utf-8")
    return CliRunner().invoke(app, ["replay", str(flow), str(path)])


def test_the_recorded_history_replays_faithfully(
    tmp_path: Path, recorded: tuple[Path, str]
) -> None:
    flow, text = recorded
    result = _replay(tmp_path, flow, text)
    assert result.exit_code == 0, result.output
    assert "faithful" in result.stdout


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (lambda h: h.update(source=[1]), '"source" must be an object'),
        (lambda h: h.update(source="pulled"), '"source" must be an object'),
        (lambda h: h.update(version=True), "history version True is not supported"),
        (lambda h: h.update(params={"deep": "NEST"}), "nested too deeply"),
    ],
)
def test_a_malformed_history_is_one_line_and_exit_2(
    tmp_path: Path, recorded: tuple[Path, str], change: Any, says: str
) -> None:
    flow, text = recorded
    history = json.loads(text)
    change(history)
    text = json.dumps(history).replace('"NEST"', "[" * 100_000 + "]" * 100_000)
    result = _replay(tmp_path, flow, text)
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert says in line


def test_an_unreadable_step_config_is_no_traceback(
    tmp_path: Path, recorded: tuple[Path, str]
) -> None:
    flow, text = recorded
    history = json.loads(text)
    history["steps"][0]["config"] = {"retries": "three times", "timeout": "abc"}
    result = _replay(tmp_path, flow, json.dumps(history))
    # Nothing to compare the config with: the step is still served from the history.
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    assert "faithful: 1 of 1" in result.stdout
