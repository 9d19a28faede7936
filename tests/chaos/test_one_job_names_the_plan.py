"""With one job (the default), a fault plan whose code ends or blocks chaos's process is named.

Written as a new user would: a handler that calls `os._exit`, is killed by a signal, or
blocks the thread, but only on its retry (after a fault). `--jobs 2` named the fault plan
and its replay token; `--jobs 1`, the default, said only that the process ended or blocked,
so the user could not tell which fault made it, nor replay it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

FLOW = """
import os
import signal
import time

from awf_sim import Domain, Workflow


async def charge(c, a, ctx):
    if ctx.attempt > 1:  # only a retry, after a fault
        {ending}
    return 1


Pay = Domain("OneJobPay", {{"charge": charge}})


@Workflow("one-job-pay", examples=[{{}}])
async def pay(wf, p):
    return await wf.OneJobPay({{}}).charge()
"""

_CHAOS = (sys.executable, "-m", "awf_sim.cli", "chaos")


def _chaos(tmp_path: Path, ending: str, *args: str) -> subprocess.CompletedProcess[str]:
    flow = tmp_path / "pay.py"
    flow.write_text(FLOW.format(ending=ending), encoding="utf-8")
    return subprocess.run(
        [*_CHAOS, str(flow), "--runs", "20", "--block-seconds", "0.5", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("ending", "how"),
    [
        ("os._exit(3)", "exited with status 3"),
        ("os.kill(os.getpid(), signal.SIGKILL)", "was killed by SIGKILL"),
        ("time.sleep(3600)", "blocked the thread for 0.5 s"),
    ],
)
def test_the_plan_that_ended_or_blocked_the_process_is_named(
    tmp_path: Path, ending: str, how: str
) -> None:
    done = _chaos(tmp_path, ending)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert how in last, last
    assert last.endswith(
        " It was running fault plan crash-after-effect on OneJobPay.charge (attempt 1) "
        "(replay it with --replay jW1siRSIsIk9uZUpvYlBheS5jaGFyZ2UiXV0)."
    ), last
    # The token replays that plan: the same ending, again named.
    replayed = _chaos(tmp_path, ending, "--replay", "jW1siRSIsIk9uZUpvYlBheS5jaGFyZ2UiXV0")
    assert replayed.returncode == 1
    assert how in replayed.stderr


def test_an_ending_in_the_fault_free_run_names_no_plan(tmp_path: Path) -> None:
    done = _chaos(tmp_path, "pass\n    os._exit(3)")
    assert done.returncode == 1, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert "exited with status 3" in last
    assert "fault plan" not in last


def test_a_campaign_after_the_command_runs_unwatched(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from awf_sim.chaos import run_campaign, verification_targets
    from awf_sim.cli import app
    from awf_sim.flow import load_flow

    flow = tmp_path / "pay.py"
    flow.write_text(FLOW.format(ending="pass"), encoding="utf-8")
    assert CliRunner().invoke(app, ["chaos", str(flow), "--runs", "5"]).exit_code == 0
    ((target, _example),) = verification_targets(load_flow(flow))
    assert run_campaign(target, runs=5).findings == []  # the command's beacon is gone
