"""A DurabilityViolation says how to run the same plan from a shell: the `awf-sim chaos ...
--replay TOKEN` line it prints runs the plan on the flow file and finds the same broken
invariant. A bare `token:` left the user to find out which command takes it, and with which
workflow, input and seed."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from awf_sim import Database, DurabilityViolation, assert_durable
from awf_sim.flow import load_flow

FLOW = textwrap.dedent(
    """
    from awf_sim import Database, Domain, Workflow

    DATABASE = Database(
        "CREATE TABLE rc_stock (sku TEXT PRIMARY KEY, qty INTEGER NOT NULL);",
        {"rc_stock": [{"sku": "A", "qty": 5}]},
    )

    async def take(product, args, ctx):
        await ctx.db.execute("UPDATE rc_stock SET qty = qty - 1 WHERE sku = ?", [product["sku"]])
        row = await ctx.db.query_one("SELECT qty FROM rc_stock WHERE sku = ?", [product["sku"]])
        return int(row["qty"])

    RcStock = Domain("RcStock", {"take": take})

    @Workflow("rc-take-one", domains=[RcStock])
    async def take_one(wf, product):
        return await wf.RcStock(product).take()
    """
)
PLAN = [{"kind": "crash-after-effect", "step": "RcStock.take"}]


def _replay_line(text: str) -> str | None:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip().startswith("replay: ")]
    return lines[0][len("replay: ") :] if lines else None


@pytest.fixture
def flow_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "take_flow.py"
    path.write_text(FLOW, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    return path


def test_the_printed_command_replays_the_plan(flow_file: Path) -> None:
    workflow = load_flow(flow_file).pick("rc-take-one")
    with pytest.raises(DurabilityViolation) as broken:
        assert_durable(workflow, {"sku": "A"}, PLAN, seed=7)
    command = _replay_line(str(broken.value))
    assert command is not None, str(broken.value)
    argv = shlex.split(command)
    assert argv[:3] == ["awf-sim", "chaos", "take_flow.py"]
    assert argv[argv.index("--seed") + 1] == "7"
    assert json.loads(argv[argv.index("--input") + 1]) == {"sku": "A"}
    cli = [sys.executable, "-m", "awf_sim.cli", *argv[1:], "--json"]
    done = subprocess.run(cli, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    found = {v["invariant"] for w in report["workflows"] for v in w["violations"]}
    # The CLI folds the findings of one bug into one; the plan and a broken invariant match.
    assert {v.invariant for v in broken.value.violations} & found
    assert report["workflows"][0]["violations"][0]["plan"] == broken.value.plan


def test_no_command_where_the_shell_would_run_another_world(flow_file: Path) -> None:
    # An explicit database is not the flow file's: the CLI would run another world.
    workflow = load_flow(flow_file).pick("rc-take-one")
    db = Database(
        "CREATE TABLE rc_stock (sku TEXT PRIMARY KEY, qty INTEGER NOT NULL);",
        {"rc_stock": [{"sku": "A", "qty": 9}]},
    )
    with pytest.raises(DurabilityViolation) as broken:
        assert_durable(workflow, {"sku": "A"}, PLAN, db=db)
    assert _replay_line(str(broken.value)) is None
    assert "token: " in str(broken.value)
