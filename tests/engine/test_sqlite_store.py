"""The SQLite store: what it committed survives the process being killed, nothing else does."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from awf_sim import Simulator, Workflow

CHILD = textwrap.dedent(
    """
    import json, os, signal, sys
    from awf_sim import Simulator, Workflow

    store, calls, mode = sys.argv[1], sys.argv[2], sys.argv[3]

    def work(i):
        with open(calls, "a") as f:
            f.write(f"{i}\\n")
        if i == 2 and mode == "start":
            os.kill(os.getpid(), signal.SIGKILL)  # dies mid-step: attempt stored, result not
        return i * 10

    @Workflow("killed")
    async def flow(wf, params):
        return [await wf.do(f"s{i}", lambda i=i: work(i)) for i in range(5)]

    sim = Simulator(store=store)
    if mode == "start":
        sim.create(flow, {}, id="k1")
        sim.run()
    else:
        sim.recover()
        sim.run()
        inst = sim.instance("k1")
        print(json.dumps({"status": inst.status(), "timeline": inst.timeline}))
        sim.close()
    """
)


def test_a_killed_process_is_finished_by_a_new_one_without_rerunning_checkpoints(
    tmp_path: Path,
) -> None:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    store, calls = tmp_path / "store.db", tmp_path / "calls.txt"
    first = subprocess.run(
        [sys.executable, str(script), str(store), str(calls), "start"], capture_output=True
    )
    assert first.returncode == -signal.SIGKILL, first.stderr.decode()
    assert calls.read_text().split() == ["0", "1", "2"]

    second = subprocess.run(
        [sys.executable, str(script), str(store), str(calls), "recover"],
        capture_output=True,
        text=True,
        check=True,
    )
    result = json.loads(second.stdout)
    assert result["status"] == {"status": "complete", "output": [0, 10, 20, 30, 40], "error": None}
    # s0 and s1 were checkpointed before the kill: they did not run again; s2 ran twice
    assert calls.read_text().split() == ["0", "1", "2", "2", "3", "4"]
    s2 = [e for e in result["timeline"] if e["path"] == "s2" and e["kind"] == "attempt-start"]
    assert [e["attempt"] for e in s2] == [1, 2]  # the killed attempt used up one attempt
    assert any(e["kind"] == "recover" for e in result["timeline"])


def test_sqlite_store_in_process_crash_and_recover(tmp_path: Path) -> None:
    calls: list[str] = []

    @Workflow("sqlite-inproc")
    async def flow(wf: Any, _: Any) -> Any:
        a = await wf.do("a", lambda: calls.append("a") or "A")
        await wf.sleep("nap", "1 hour")
        b = await wf.do("b", lambda: calls.append("b") or "B")
        return a + b

    path = tmp_path / "s.db"
    with Simulator(store=str(path)) as sim:
        inst = sim.create(flow, id="x")
        sim.advance("10 minutes")
        sim.crash()
        sim.recover()
        sim.run()
        assert inst.status()["output"] == "AB"
    assert calls == ["a", "b"]
    # a new simulator on the same file sees the finished instance and its timeline
    with Simulator(store=str(path)) as again:
        inst = again.instance("x")
        assert inst.status()["status"] == "complete"
        assert [e["kind"] for e in inst.timeline].count("checkpoint") == 2


def test_store_uses_wal(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "wal.db"
    Simulator(store=str(path)).close()
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()
    assert os.path.exists(path)


def test_a_second_run_on_the_same_store_gets_a_new_default_id(tmp_path: Path) -> None:
    @Workflow("twice")
    async def flow(wf: Any, _: Any) -> Any:
        return await wf.do("x", lambda: 1)

    path = str(tmp_path / "twice.db")
    ids = []
    for _ in range(2):
        with Simulator(seed=0, store=path) as sim:
            inst = sim.create(flow)
            sim.run()
            assert inst.status()["status"] == "complete"
            ids.append(inst.id)
    assert ids[0] != ids[1]
    with Simulator(seed=0) as fresh:
        assert fresh.create(flow).id == ids[0]  # the seeded sequence itself is unchanged
