"""A workflow that reads uuid4() outside a step is one bug, with the hint that names it.

The other-process replay sees it too (the replay asks for the step under another name), but
that check's hint is about what only another process changes (set order, hash(), getpid):
reported on its own, the same bug counted twice and the first finding blamed set iteration.
"""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from awf_sim.cli import app

FLOW = """
import uuid

from awf_sim import Database, Domain, Workflow

DATABASE = Database(schema="CREATE TABLE picks (id INTEGER PRIMARY KEY, k TEXT);")


async def pick(c, args, ctx):
    await ctx.db.execute("INSERT OR IGNORE INTO picks (id, k) VALUES (1, ?)", [args["k"]])
    return {"k": args["k"]}


UuidRouter = Domain("UuidRouter", {"pick": pick})


@Workflow("uuid-pick", examples=[{"u": 1}])
async def uuid_pick(wf, p):
    return await wf.UuidRouter(p).pick(k=str(uuid.uuid4()))
"""


def test_a_value_new_on_every_replay_is_one_finding_with_its_own_hint(tmp_path: Path) -> None:
    flow = tmp_path / "uuid_pick.py"
    flow.write_text(FLOW, encoding="utf-8")
    result = CliRunner().invoke(app, ["chaos", str(flow), "--runs", "30", "--json"])
    assert result.exit_code == 1, result.stderr
    (workflow,) = json.loads(result.stdout)["workflows"]
    (finding,) = workflow["violations"]
    assert (finding["invariant"], finding["key"]) == ("determinism", "UuidRouter.pick")
    assert "uuid4" in finding["hint"]
    assert "set" not in finding["hint"].split()
    related = {(r["invariant"], r["key"]) for r in finding["related"]}
    assert ("determinism", "other-process") in related


def test_set_order_alone_is_still_its_own_finding(tmp_path: Path) -> None:
    flow = tmp_path / "set_pick.py"
    flow.write_text(
        FLOW.replace("str(uuid.uuid4())", '"".join({"alpha", "beta", "gamma", "delta"})'),
        encoding="utf-8",
    )
    result = CliRunner().invoke(app, ["chaos", str(flow), "--runs", "30", "--json"])
    assert result.exit_code == 1, result.stderr
    (workflow,) = json.loads(result.stdout)["workflows"]
    (finding,) = workflow["violations"]
    assert (finding["invariant"], finding["key"]) == ("determinism", "other-process")
    assert "sorted(" in finding["hint"]
