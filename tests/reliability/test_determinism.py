"""Issue 17.4: chaos catches the non-determinism users actually write (coarse clocks, hash() of
strings, process ids, set and dict-of-set iteration across processes), each with a hint that
says what to use instead; the same flows written deterministically pass."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from awf_sim.cli import app

pytestmark = pytest.mark.filterwarnings("ignore:Domain 'D' defined at:UserWarning")

FLOW = """
import hashlib, os, time
from datetime import date, datetime
from awf_sim import Domain, Workflow

async def record(key, args, ctx):
    return {{"tag": args["tag"]}}

async def lookup(key, args, ctx):
    return [len(k) * 10 + i for i, k in enumerate(args["keys"])]

D = Domain("D", {{"record": record, "lookup": lookup}})
KEYS = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"]

@Workflow("w", examples=[{{"email": "ana@example.com", "keys": KEYS}}], domains=[D])
async def w(wf, p):
{body}
    first = await wf.D("x").record(tag=str(tag))
    await wf.sleep("pause", "1 hour")
    return {{"first": first, "tag": tag}}
"""

# (what the workflow body computes outside steps, what the hint must tell the user to use)
BROKEN = {
    "minute": ("    tag = datetime.now().minute", "into a step"),
    "second": ("    tag = int(time.time()) % 60", "into a step"),
    "date": ("    tag = date.today().isoformat()", "into a step"),
    "hash-of-str": ('    tag = hash(p["email"]) % 1000', "hashlib"),
    "getpid": ("    tag = os.getpid() % 1000", "wf.instance_id"),
    "set-order": ('    tag = ",".join(set(p["keys"]))', "sorted("),
    "set-paired-with-checkpoint": (
        '    keys = list(set(p["keys"]))\n'
        '    values = await wf.do("lookup", lambda: [k.upper() for k in keys])\n'
        "    tag = dict(zip(keys, values))",
        "sorted(",
    ),
    "dict-of-set": (
        '    groups = {"all": set(p["keys"]), "none": set()}\n'
        '    tag = [k for k in groups["all"]][:3]',
        "sorted(",
    ),
}

FIXED = {
    "clock-in-a-step": '    tag = await wf.do("minute", lambda: datetime.now().minute)',
    "hashlib": '    tag = hashlib.sha256(p["email"].encode()).hexdigest()[:6]',
    "instance-id": "    tag = wf.instance_id",
    "sorted-set": '    tag = ",".join(sorted(set(p["keys"])))',
    "sorted-pairs": (
        '    keys = sorted(set(p["keys"]))\n'
        '    values = await wf.do("lookup", lambda: [k.upper() for k in keys])\n'
        "    tag = dict(zip(keys, values))"
    ),
}


def _flow(tmp_path: Path, body: str) -> str:
    path = tmp_path / "flow.py"
    path.write_text(textwrap.dedent(FLOW).format(body=body))
    return str(path)


def _chaos(flow: str, *extra: str) -> Any:
    return CliRunner().invoke(app, ["chaos", flow, "--runs", "30", *extra])


@pytest.mark.parametrize("case", list(BROKEN))
def test_chaos_catches_it_with_a_hint(tmp_path: Path, case: str) -> None:
    body, hint = BROKEN[case]
    result = _chaos(_flow(tmp_path, body), "--json")
    assert result.exit_code == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stdout + result.stderr
    report = json.loads(result.stdout)
    found = [v for w in report["workflows"] for v in w["violations"]]
    determinism = [v for v in found if v["invariant"] == "determinism"]
    assert determinism, [(v["invariant"], v["message"]) for v in found]
    assert any(hint in v["hint"] for v in determinism), [v["hint"] for v in determinism]


@pytest.mark.parametrize("case", list(FIXED))
def test_the_deterministic_way_passes(tmp_path: Path, case: str) -> None:
    result = _chaos(_flow(tmp_path, FIXED[case]), "--json")
    report = json.loads(result.stdout)
    found = [(v["invariant"], v["message"]) for w in report["workflows"] for v in w["violations"]]
    assert result.exit_code == 0, found


def test_the_rich_report_says_what_to_use_instead(tmp_path: Path) -> None:
    result = _chaos(_flow(tmp_path, BROKEN["getpid"][0]))
    assert result.exit_code == 1
    text = " ".join(result.stdout.split())
    assert "another Python process" in text
    assert "os.getpid()" in text
    assert "wf.instance_id" in text


def test_the_replay_token_of_a_cross_process_finding_finds_it_again(tmp_path: Path) -> None:
    flow = _flow(tmp_path, BROKEN["hash-of-str"][0])
    report = json.loads(_chaos(flow, "--json").stdout)
    (finding,) = [
        v for w in report["workflows"] for v in w["violations"] if v["key"] == "other-process"
    ]
    again = CliRunner().invoke(app, ["chaos", flow, "--replay", finding["token"], "--json"])
    assert again.exit_code == 1
    keys = [v["key"] for w in json.loads(again.stdout)["workflows"] for v in w["violations"]]
    assert "other-process" in keys
