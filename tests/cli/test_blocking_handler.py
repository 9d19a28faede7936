"""A handler or workflow body that blocks the thread ends `awf-sim run` and `awf-sim chaos`
with one line naming the step, where it blocked and the fix, instead of hanging them.

Before: `time.sleep(3600)`, `threading.Event().wait()` or a blocking `recv` in a handler used no
CPU, so the CPU budget never ended it, and virtual time could not move: both commands hung
with nothing said. The runs here use `--block-seconds 0.5` to keep the suite quick; the
default (3 s) is pinned below.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import awf_sim.cli
from awf_sim.engine._blocked import DEFAULT_BLOCK_SECONDS

FLOW = """
import asyncio, socket, threading, time
from awf_sim import Domain, Workflow

async def quick(c, a, ctx):
    return 1

async def nap(c, a, ctx):
    time.sleep(3600)

async def wait_after_await(c, a, ctx):
    await asyncio.sleep(1)
    threading.Event().wait()

async def receive(c, a, ctx):
    left, right = socket.socketpair()
    return left.recv(1)

async def compute(c, a, ctx):
    # CPU in one long C call, then a virtual minute: neither is a blocked thread.
    total = sum(range(60_000_000))
    await asyncio.sleep(60)
    return total % 7

Slow = Domain("Slow", {"quick": quick, "nap": nap, "wait_after_await": wait_after_await,
                       "receive": receive, "compute": compute})

def flow(method):
    async def body(wf, p):
        await wf.Slow({}).quick()
        return await getattr(wf.Slow({}), method)()
    return Workflow(method, body, examples=[{}])

nap_flow, wait_flow, recv_flow, compute_flow = (
    flow(m) for m in ("nap", "wait_after_await", "receive", "compute"))

@Workflow("in_body", examples=[{}])
async def in_body(wf, p):
    await wf.Slow({}).quick()
    time.sleep(3600)
"""


def _awf_sim(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "awf_sim.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,  # a hang fails the test instead of the suite
    )


@pytest.fixture
def flow(tmp_path: Path) -> Path:
    path = tmp_path / "slow.py"
    path.write_text(FLOW)
    return path


@pytest.mark.parametrize(
    ("workflow", "who", "line"),
    [
        ("nap", "the handler of Slow.nap", "`time.sleep(3600)`"),
        ("wait_after_await", "the handler of Slow.wait_after_await", "Event().wait()"),
        ("receive", "the handler of Slow.receive", "`return left.recv(1)`"),
        ("in_body", "the workflow body", "`time.sleep(3600)`"),
    ],
)
def test_run_ends_with_one_line_naming_the_step_and_the_fix(
    flow: Path, tmp_path: Path, workflow: str, who: str, line: str
) -> None:
    store = tmp_path / "run.db"
    done = _awf_sim(
        "run", str(flow), "-w", workflow, "--store", str(store), "--block-seconds", "0.5"
    )
    assert done.returncode == 1, done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    assert "Traceback" not in done.stderr
    err = done.stderr
    assert err.startswith(f"awf-sim: the run: {who} (at slow.py:"), err
    assert line in err
    assert "blocked the thread for 0.5 s of real time" in err
    assert "await asyncio.sleep(...)" in err
    assert "--block-seconds" in err
    # The checkpoints made before are kept: the instance is unfinished, not errored.
    listed = _awf_sim("instances", "--store", str(store))
    assert listed.returncode == 0, listed.stderr
    assert "running" in listed.stdout
    assert "errored" not in listed.stdout


def test_chaos_ends_with_the_same_line(flow: Path) -> None:
    done = _awf_sim("chaos", str(flow), "-w", "wait_after_await", "--block-seconds", "0.5")
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert "the handler of Slow.wait_after_await (at slow.py:" in last
    assert "blocked the thread" in last


def test_computing_and_awaiting_are_not_blocking(flow: Path) -> None:
    # sum() over 30 million ints is one C call of about a second: the thread uses CPU, so it
    # is not blocked (the CPU budget is what bounds it).
    done = _awf_sim("run", str(flow), "-w", "compute", "--block-seconds", "0.5", "--json")
    assert done.returncode == 0, done.stderr
    assert '"status": "complete"' in done.stdout


def test_zero_turns_the_watch_off(flow: Path, tmp_path: Path) -> None:
    short = tmp_path / "short.py"
    short.write_text(FLOW.replace("time.sleep(3600)", "time.sleep(1.5)"))
    done = _awf_sim("run", str(short), "-w", "nap", "--block-seconds", "0", "--json")
    assert done.returncode == 0, done.stderr


def test_the_default_bound_is_the_engines() -> None:
    assert awf_sim.cli.DEFAULT_BLOCK_SECONDS == DEFAULT_BLOCK_SECONDS == 3.0


DB_FLOW = """
import sqlite3, threading, time
from awf_sim import Database, Domain, Workflow

DATABASE = Database("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT)")

def hold_the_lock(locked):
    other = sqlite3.connect({d1!r}, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    locked.set()
    time.sleep(2)
    other.execute("COMMIT")
    other.close()

async def write(c, a, ctx):
    await ctx.db.query("SELECT 1")  # the database file exists
    locked = threading.Event()
    threading.Thread(target=hold_the_lock, args=(locked,)).start()
    locked.wait(5)
    started = time.monotonic()
    row = await ctx.db.insert("notes", {{"text": "kept"}})  # waits for the lock
    return [row["text"], time.monotonic() - started > 1]

Notes = Domain("Notes", {{"write": write}})

@Workflow("notes", examples=[{{}}])
async def notes(wf, p):
    return await wf.Notes({{}}).write()
"""


def test_a_wait_inside_awf_sim_is_not_the_handlers(tmp_path: Path) -> None:
    # ctx.db kept beside a store waits for another connection's lock on its file (SQLite's
    # busy timeout) in awf_sim's own code: not a blocking handler, and the run goes on.
    flow, store = tmp_path / "notes.py", tmp_path / "run.db"
    flow.write_text(DB_FLOW.format(d1=str(tmp_path / "run.db.d1")))
    done = _awf_sim("run", str(flow), "--store", str(store), "--block-seconds", "0.5", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["output"] == ["kept", True]  # it did wait, over a second
