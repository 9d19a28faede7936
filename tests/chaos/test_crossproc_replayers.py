"""The cross-process replayers are shared by every input of one `awf-sim chaos`: a replayer that
dies or fails on one input is judged for that input alone, and the next input still gets its
own replay (a new replayer when the old one is gone)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from awf_sim.cli import app

pytestmark = pytest.mark.filterwarnings("ignore:Domain 'D' defined at:UserWarning")

# What the workflow does differs only in a replayer (started with PYTHONHASHSEED 1 or 2 when
# this process has 0): a replayer dies for inputs 1 and 3; inputs 2 and 4 replay cleanly in the
# replayers started after each death.
FLOW = """
import os
from awf_sim import Domain, Workflow

async def record(key, args, ctx):
    return {"n": args["n"]}

D = Domain("D", {"record": record})

@Workflow("w", examples=[{"n": 1}, {"n": 2}, {"n": 3}, {"n": 4}], domains=[D])
async def w(wf, p):
    first = await wf.D("x").record(n=p["n"])
    if os.environ.get("PYTHONHASHSEED") in ("1", "2") and p["n"] in (1, 3):
        os._exit(2 + p["n"])
    return first
"""


def test_each_input_gets_its_own_replay_verdict(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONHASHSEED", "0")
    flow = tmp_path / "flow.py"
    flow.write_text(textwrap.dedent(FLOW))
    result = CliRunner().invoke(app, ["chaos", str(flow), "--runs", "5", "--json"])
    assert result.exit_code == 1, (result.stdout, result.stderr)
    report = json.loads(result.stdout)
    other = {
        w["input"]["n"]: [v["message"] for v in w["violations"] if v["key"] == "other-process"]
        for w in report["workflows"]
    }
    dead = "the replay in another Python process did not finish: exit status {}"
    assert other == {1: [dead.format(3)], 2: [], 3: [dead.format(5)], 4: []}, other
