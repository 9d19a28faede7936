"""`awf-sim replay` ends with the blocking handler's line, as `run` and `chaos` do, when the
code it replays blocks its thread past the history (`--block-seconds`, default 3 s).

Before, the replay's supervised process was not watched: a new step that blocked
(`time.sleep`, a blocking socket) after the history's last completed step hung the command.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from awf_sim.dsl import isolated_registries
from awf_sim.flow import load_flow
from awf_sim.replay import record_history

FLOW = """
import time
from awf_sim import Domain, Workflow

async def charge(order, args, ctx):
    return 1

async def ship(order, args, ctx):
    time.sleep(3600)

RepBlock = Domain("RepBlock", {"charge": charge, "ship": ship})

@Workflow("rep-block", examples=[{"id": "o"}], domains=[RepBlock])
async def rep(wf, p):
    await wf.RepBlock(p).charge()
    NEW_STEP
    await wf.wait_for("approval", type="approved", timeout="7 days")
"""

_REPLAY = (sys.executable, "-m", "awf_sim.cli", "replay")


def test_replay_ends_with_the_blocking_handlers_line(tmp_path: Path) -> None:
    v1, v2 = tmp_path / "v1.py", tmp_path / "v2.py"
    v1.write_text(FLOW.replace("NEW_STEP", "pass"), encoding="utf-8")
    v2.write_text(FLOW.replace("NEW_STEP", "await wf.RepBlock(p).ship()"), encoding="utf-8")
    with isolated_registries():
        recorded = record_history(load_flow(v1).workflows["rep-block"], {"id": "o"})
    history = tmp_path / "history.json"
    history.write_text(json.dumps(recorded.to_json()), encoding="utf-8")
    done = subprocess.run(
        [*_REPLAY, str(v2), str(history), "--block-seconds", "0.5"],
        capture_output=True,
        text=True,
        timeout=120,  # a hang fails the test instead of the suite
    )
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith(
        "awf-sim: the replay: the handler of RepBlock.ship (at v2.py:9: `time.sleep(3600)`) "
        "blocked the thread for 0.5 s of real time"
    ), done.stderr
    assert "raise the bound with --block-seconds." in done.stderr
