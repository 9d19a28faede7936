"""`awf-sim run`, as a new user meets it: what a sweep of the core's promises found."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

KILLED_AFTER_A_SLEEP = """
import datetime as dt
import os
import signal

from awf_sim import Workflow

MARK = os.path.join(os.path.dirname(__file__), "died-once")


def stamp():
    return dt.datetime.now(dt.timezone.utc).isoformat()


def dies_once():
    if not os.path.exists(MARK):
        open(MARK, "w").close()
        os.kill(os.getpid(), signal.SIGKILL)  # the process dies mid-step
    return stamp()


@Workflow("killed-after-a-sleep", examples=[{}])
async def flow(wf, params):
    before = await wf.do("before", stamp)
    await wf.sleep("nap", "1 hour")
    after = await wf.do("after", dies_once)
    return {"before": before, "after": after}
"""


def test_a_store_resumed_after_a_kill_goes_on_at_its_own_virtual_time(tmp_path: Path) -> None:
    flow = tmp_path / "killed.py"
    flow.write_text(KILLED_AFTER_A_SLEEP)
    command = [sys.executable, "-m", "awf_sim.cli", "run", str(flow)]
    store = ["--store", str(tmp_path / "run.db")]
    first = subprocess.run([*command, *store], capture_output=True, text=True, timeout=120)
    assert first.returncode == 1, first.stderr  # the process that ran it died

    second = subprocess.run(
        [*command, *store, "--json"], capture_output=True, text=True, timeout=120
    )
    assert second.returncode == 0, second.stderr
    assert "resuming unfinished instance" in second.stderr
    data = json.loads(second.stdout)
    # The step after the 1-hour sleep ran at 01:00, not at 00:00 again (the resuming process
    # used to start its clock at 0), and the timeline never goes back in time.
    assert data["output"] == {
        "before": "2026-01-01T00:00:00+00:00",
        "after": "2026-01-01T01:00:00+00:00",
    }
    times = [e["at_ms"] for e in data["timeline"]]
    assert times == sorted(times)
    table = subprocess.run([*command, *store], capture_output=True, text=True, timeout=120)
    assert "complete after 1 h of virtual time" in table.stdout  # was: after 0 ms
