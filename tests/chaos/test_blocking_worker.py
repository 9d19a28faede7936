"""`awf-sim chaos --jobs N` ends with the blocking handler's line when the handler blocks in a
worker process, as it does when it blocks in the supervised process itself.

Before, only the supervised process's thread was watched: a handler that blocked only under
a fault (on its retry), and so only in a worker, hung the whole command.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

FLOW = """
import time
from awf_sim import Domain, Workflow

async def charge(c, a, ctx):
    if ctx.attempt > 1:  # only a retry, after a fault, blocks
        time.sleep(3600)
    return 1

Pay = Domain("BlockPay", {"charge": charge})

@Workflow("block-pay", examples=[{}])
async def pay(wf, p):
    return await wf.BlockPay({}).charge()
"""

_CHAOS = (sys.executable, "-m", "awf_sim.cli", "chaos")


def test_a_handler_blocking_in_a_worker_ends_chaos_with_its_line(tmp_path: Path) -> None:
    flow = tmp_path / "pay.py"
    flow.write_text(FLOW, encoding="utf-8")
    done = subprocess.run(
        [*_CHAOS, str(flow), "--jobs", "2", "--runs", "40", "--block-seconds", "0.5"],
        capture_output=True,
        text=True,
        timeout=120,  # a hang fails the test instead of the suite
    )
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(
        "awf-sim: awf-sim chaos: the handler of BlockPay.charge (at pay.py:7: "
        "`time.sleep(3600)`) blocked the thread for 0.5 s of real time"
    ), last
    assert "raise the bound with --block-seconds." in last
    # The plan under which it blocked, to replay in one process.
    assert " It blocked under fault plan " in last
    assert "(replay it with --replay " in last
