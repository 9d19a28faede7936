"""A `wf.do` whose name holds the clock is one determinism bug, named for what it is.

Written as a new user would: `await wf.do(f"snapshot-{int(time.time())}", ...)` after a
sleep. Every replay runs on a later clock, so it asks for the step under a new name and runs
it again. Chaos used to report it three times: once per name the step took in a run (each
name was its own key, so a run with three lifetimes made a second finding), and once from the
other-process replay, whose hint blamed iterating a set of strings. The hint said "context or
arguments changed", though a raw step has neither: its name is what changed.
"""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from awf_sim.cli import app

FLOW = """
import time

from awf_sim import Workflow


@Workflow("snap", examples=[{{"x": 1}}])
async def snap(wf, p):
    await wf.sleep("warm", "10 minutes")
    got = await wf.do({name}, lambda: {{"v": 1, "at": int(time.time())}})
    await wf.sleep("cool", "1 hour")
    return {{"v": got["v"]}}
"""


def _chaos(tmp_path: Path, name: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    flow = tmp_path / "snap.py"
    flow.write_text(FLOW.format(name=name), encoding="utf-8")
    result = CliRunner().invoke(app, ["chaos", str(flow), "--json"])
    return result.exit_code, json.loads(result.stdout)


def test_a_step_name_from_the_clock_is_one_finding_that_says_the_name_changed(
    tmp_path: Path,
) -> None:
    code, report = _chaos(tmp_path, 'f"snapshot-{int(time.time())}"')
    assert code == 1
    (workflow,) = report["workflows"]
    (finding,) = workflow["violations"]
    assert finding["invariant"] == "determinism"
    assert finding["key"].startswith("snapshot-")
    assert "changed on replay" in finding["message"]
    assert "at that place instead" in finding["difference"][-1]
    assert "constant name" in finding["hint"]
    assert "set" not in finding["hint"].split()
    related = {(r["invariant"], r["key"]) for r in finding["related"]}
    assert ("determinism", "other-process") in related


def test_a_constant_name_that_reads_the_clock_inside_is_clean(tmp_path: Path) -> None:
    code, report = _chaos(tmp_path, '"snapshot"')
    assert code == 0, report
