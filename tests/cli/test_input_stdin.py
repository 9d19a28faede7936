"""`--input-file -` reads the params from standard input, as `-` means for most tools.

It used to say "--input-file -: No such file or directory". chaos's replay command cannot
read standard input a second time, so it carries the params inline."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from awf_sim.cli import app

FLOW = """
from awf_sim import Database, Domain, Workflow

DATABASE = Database(schema="CREATE TABLE sums (id INTEGER PRIMARY KEY, total INTEGER);")


async def total(p, args, ctx):
    await ctx.db.execute("INSERT INTO sums (total) VALUES (?)", [p["a"] + p["b"]])
    return {"total": p["a"] + p["b"]}


StdinSum = Domain("StdinSum", {"total": total})


@Workflow("stdin-sum", examples=[{"a": 1, "b": 2}])
async def stdin_sum(wf, p):
    return await wf.StdinSum(p).total()
"""


def _flow(tmp_path: Path) -> str:
    flow = tmp_path / "stdin_sum.py"
    flow.write_text(FLOW, encoding="utf-8")
    return str(flow)


def test_run_reads_params_from_standard_input(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["run", _flow(tmp_path), "--input-file", "-", "--json"], input='{"a": 20, "b": 22}'
    )
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["output"] == {"total": 42}


def test_empty_standard_input_is_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["run", _flow(tmp_path), "--input-file", "-"], input="")
    assert result.exit_code == 2
    (line,) = result.stderr.splitlines()
    assert line.startswith("awf-sim: --input-file - is not valid JSON")


def test_chaos_replay_command_carries_standard_input_inline(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["chaos", _flow(tmp_path), "--input-file", "-", "--runs", "20", "--json"],
        input='{"a": 20, "b": 22}',
    )
    assert result.exit_code == 1  # the planted plain INSERT
    (finding, *_) = json.loads(result.stdout)["workflows"][0]["violations"]
    assert """--input '{"a": 20, "b": 22}' --replay""" in finding["replay"]
    assert "--input-file" not in finding["replay"]
