"""`awf-deploy push`'s gates (chaos on the examples, the replay of running instances) fail the
push, naming the step, when a handler or workflow body blocks its thread, instead of hanging.

Before, neither gate's supervised process was watched for a blocking call: a handler that
blocked only on a retry (chaos), or a new workflow body that blocked on one running
instance's params (the replay gate), hung `awf-deploy push` with nothing said.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import awf_deploy._gate
from tests.deploy.test_replay import account, cli, flow_file, history  # noqa: F401

RETRY_BLOCKS = """
import time
from awf_sim import Domain, Workflow

async def charge(c, a, ctx):
    if ctx.attempt > 1:  # only a retry, after a fault, blocks
        time.sleep(3600)
    return 1

Pay = Domain("GateBlockPay", {"charge": charge})

@Workflow("gate-block-pay", examples=[{}])
async def pay(wf, p):
    return await wf.GateBlockPay({}).charge()
"""

VERIFY = """
import sys
import awf_sim.cli
awf_sim.cli.DEFAULT_BLOCK_SECONDS = 0.5  # the suite's pace; the gate reads it when it runs
from awf_deploy._push import verify
from awf_sim.errors import ProcessDied
from awf_sim.flow import load_flow
try:
    verify(load_flow(sys.argv[1]), runs=40)
except ProcessDied as exc:
    print(exc)
"""


def test_the_verify_gate_fails_on_a_handler_that_blocks_under_a_fault(tmp_path: Path) -> None:
    flow = tmp_path / "pay.py"
    flow.write_text(RETRY_BLOCKS, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-c", VERIFY, str(flow)],
        capture_output=True,
        text=True,
        timeout=120,  # a hang fails the test instead of the suite
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(
        "the verify gate (chaos): the handler of GateBlockPay.charge (at pay.py:7: "
        "`time.sleep(3600)`) blocked the thread for 0.5 s of real time"
    ), done.stdout
    # push has no option to raise the bound: the line offers none.
    assert "--block-seconds" not in done.stdout


def test_the_replay_gate_fails_on_new_code_that_blocks_on_a_running_instance(
    account: tuple[Any, str],  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cf, v1 = account
    cf.add_instance(history(v1, "o-7", amount=7))
    monkeypatch.setattr(awf_deploy._gate, "DEFAULT_BLOCK_SECONDS", 0.5)
    blocks = '(__import__("time").sleep(3600) if params["amount"] == 7 else params["amount"])'
    v2 = flow_file(tmp_path / "v2", amount=blocks)
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # the CLI in a child of the test, so that a hung push can be killed
        code = 70
        try:
            os.close(read_end)
            result = cli("push", v2, "--yes", "--no-verify")
            with os.fdopen(write_end, "w") as pipe:
                pipe.write(result.stdout + result.stderr)
            code = result.exit_code
        finally:
            os._exit(code)
    os.close(write_end)
    ready, _, _ = select.select([read_end], [], [], 60)
    if not ready:
        os.kill(child, signal.SIGKILL)
        os.waitpid(child, 0)
        os.close(read_end)
        pytest.fail("awf-deploy push hung on a blocking workflow body")
    with os.fdopen(read_end) as pipe:
        output = pipe.read()
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 1, output
    assert "the running-instance replay gate: the workflow body (at gate_order.py:" in output
    assert "blocked the thread for 0.5 s of real time" in output
    assert "Traceback" not in output
