"""A step that reads the clock or `random` returns another value when it runs again (a retry
after a timeout, a replay on a skewed clock), and the workflow goes on from the value that was
checkpointed: durable, so chaos must stay clean on it, under every seed. Chaos once reported
these correct flows (`awf-sim chaos ab.py --seed 2`: "Mail.send was called with other
arguments"; an elapsed-time check in a step: "output.late: expected false, got true"), while
the same reads in the workflow body, outside a step, are bugs it must keep finding."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from typer.testing import CliRunner

from awf_sim.chaos import CHAOS_JSON_SCHEMA
from awf_sim.cli import app

# The flows below mail through this idempotent handler (INSERT OR IGNORE on the step's key).
MAILER = """
import random
from awf_sim import Database, Domain, Workflow

DATABASE = Database(schema="CREATE TABLE sent (key TEXT PRIMARY KEY, variant TEXT);")


async def send(user, args, ctx):
    await ctx.db.execute(
        "INSERT OR IGNORE INTO sent (key, variant) VALUES (?, ?)",
        [ctx.idempotency_key, args["variant"]],
    )
    return {"ok": True}

"""

# An A/B variant drawn inside a step, then mailed: a retried draw may pick the other variant,
# and what is computed from it in later steps changes with it.
AB_IN_STEP = (
    MAILER
    + """
Mail = Domain("RvMail", {"send": send})


@Workflow("rv-ab", examples=[{"user": "ana"}], domains=[Mail])
async def ab(wf, p):
    await wf.sleep("settle", "1 hour")
    variant = await wf.do("pick", lambda: "A" if random.random() < 0.5 else "B")
    # A step downstream of the draw: its result changes with it, without reading random.
    subject = await wf.do("subject", lambda: f"Try plan {variant}")
    await wf.RvMail(p["user"]).send(variant=variant, subject=subject)
    await wf.sleep("after", "1 day")
    return {"variant": variant}
"""
)
AB_IN_BODY = AB_IN_STEP.replace(
    'await wf.do("pick", lambda: "A" if random.random() < 0.5 else "B")',
    '"A" if random.random() < 0.5 else "B"',
)

# Two draws under one step name (Cloudflare's count tells them apart), each mailed.
AB_IN_A_LOOP = (
    MAILER
    + """
Mail = Domain("RvLoopMail", {"send": send})


@Workflow("rv-ab-loop", examples=[{"user": "ana"}], domains=[Mail])
async def ab(wf, p):
    out = []
    for i in range(2):
        v = await wf.do("pick", lambda: "A" if random.random() < 0.5 else "B")
        await wf.RvLoopMail(p["user"]).send(variant=v, n=i)
        out.append(v)
    return {"variants": out}
"""
)

# Whether an approval came late, decided from the clock inside a step.
LATE_IN_STEP = """
import time
from awf_sim import Workflow


@Workflow(
    "rv-late",
    examples=[{"id": 1}],
    events=[{"type": "approve", "payload": {"ok": True}, "after": "50 minutes"}],
)
async def late(wf, p):
    start = await wf.do("start", lambda: time.time())
    d = await wf.wait_for("approval", type="approve", timeout="2 hours")
    late = await wf.do("is-late", lambda: time.time() - start > 3600)
    return {"ok": d["ok"], "late": late}
"""
# The clock read in the body; its value reaches the output directly, or only through the
# closure of a step that checkpoints it (the step itself reads no clock).
LATE_IN_BODY = LATE_IN_STEP.replace(
    'late = await wf.do("is-late", lambda: time.time() - start > 3600)',
    "late = time.time() - start > 3600",
)
LATE_THROUGH_CLOSURE = LATE_IN_STEP.replace(
    'late = await wf.do("is-late", lambda: time.time() - start > 3600)',
    'late_now = time.time() - start > 3600\n    late = await wf.do("is-late", lambda: late_now)',
)


def _verdict(tmp_path: Path, text: str, seed: int) -> tuple[int, list[dict[str, Any]]]:
    """`awf-sim chaos flow.py --json --seed SEED`: its exit code and violations."""
    flow = tmp_path / "flow.py"
    flow.write_text(text)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Domain .* replaces", UserWarning)
        result = CliRunner().invoke(app, ["chaos", str(flow), "--json", "--seed", str(seed)])
    data = json.loads(result.stdout)
    jsonschema.validate(data, CHAOS_JSON_SCHEMA)
    return result.exit_code, [v for w in data["workflows"] for v in w["violations"]]


@pytest.mark.parametrize("seed", [0, 1, 2, 6, 7])
def test_a_random_draw_inside_a_step_is_durable(tmp_path: Path, seed: int) -> None:
    code, found = _verdict(tmp_path, AB_IN_STEP, seed)
    assert (code, found) == (0, [])


@pytest.mark.parametrize("seed", [0, 2, 3])
def test_draws_under_one_step_name_are_durable(tmp_path: Path, seed: int) -> None:
    code, found = _verdict(tmp_path, AB_IN_A_LOOP, seed)
    assert (code, found) == (0, [])


@pytest.mark.parametrize("seed", [0, 2])
def test_a_random_draw_in_the_body_is_still_found(tmp_path: Path, seed: int) -> None:
    code, found = _verdict(tmp_path, AB_IN_BODY, seed)
    assert code == 1
    assert [(v["invariant"], v["key"]) for v in found] == [("determinism", "RvMail.send")]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_an_elapsed_time_check_inside_a_step_is_durable(tmp_path: Path, seed: int) -> None:
    code, found = _verdict(tmp_path, LATE_IN_STEP, seed)
    assert (code, found) == (0, [])


@pytest.mark.parametrize("text", [LATE_IN_BODY, LATE_THROUGH_CLOSURE], ids=["body", "closure"])
def test_an_elapsed_time_check_in_the_body_is_still_found(tmp_path: Path, text: str) -> None:
    code, found = _verdict(tmp_path, text, 0)
    assert code == 1
    assert [(v["invariant"], v["key"]) for v in found] == [("replay-equivalence", "output")]
    assert "output.late: expected false, got true" in found[0]["difference"]
