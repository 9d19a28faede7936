"""A Simulator dropped without `close()` while instances wait leaves no asyncio warnings.

DESIGN lets a test create instances, check a waiting status and move on; the instances'
state is in the store, so nothing is lost, and nothing may complain at garbage collection.
Each case runs in a fresh interpreter with `-X dev -W error`, where asyncio reports every
task destroyed while pending and every coroutine never awaited.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

FLOW = textwrap.dedent(
    """
    import asyncio, gc
    from awf_sim import Domain, Simulator, Workflow
    from awf_sim.testing import create_test_workflow

    async def m(c, a, ctx):
        return c

    D = Domain("D", {"m": m})

    @Workflow("w", domains=[D])
    async def w(wf, p):
        await asyncio.gather(wf.D(1).m(), wf.D(2).m())
        await wf.wait_for("go", type="go", timeout="1 day")
        await wf.sleep("s", "1 hour")
        return 1

    def scenario():
        {body}

    scenario()
    gc.collect()
    print("ok")
    """
)

BODIES = {
    "waiting instances, never closed": [
        "sim = Simulator()",
        "hs = [sim.create(w, {}) for _ in range(3)]",
        "sim.run()",
        "assert hs[0].status()['status'] == 'waiting'",
    ],
    "created, never run": ["sim = Simulator()", "sim.create(w, {})"],
    "test workflow stopped mid-run": [
        "t = create_test_workflow(w)",
        "t.start({})",
        "t.wait_for_status('waiting')",
    ],
}


@pytest.mark.parametrize("body", list(BODIES.values()), ids=list(BODIES))
def test_dropping_a_simulator_is_silent(body: list[str]) -> None:
    source = FLOW.replace("{body}", "\n    ".join(body))
    proc = subprocess.run(
        [sys.executable, "-X", "dev", "-W", "error", "-c", source],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"
    assert proc.stderr == ""
