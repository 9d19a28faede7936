"""`awf-sim run` runs the flow in a child it watches: a handler that ends the process it runs
in is a failure said in one line (never exit 0 and silence), the `--store` keeps what was
checkpointed before, and no child outlives a killed `awf-sim run`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from awf_sim.cli import app
from awf_sim.engine import run_supervised

runner = CliRunner()

# Ends its process on the first run (no marker file yet); the second run gets past it. The
# counter file shows how often `first` ran: a resume must not run it again.
ENDS_ONCE = """
import os
from pathlib import Path
from awf_sim import Domain, Workflow

HERE = Path(__file__).parent

def first(c, a, ctx):
    counter = HERE / "first.count"
    counter.write_text(str(int(counter.read_text() or 0) + 1 if counter.exists() else 1))
    return {"first": True}

def second(c, a, ctx):
    marker = HERE / "ended.once"
    if not marker.exists():
        marker.write_text("x")
        os._exit(0)
    return {"second": True}

D = Domain("EndsOnce", {"first": first, "second": second})

@Workflow("ends_once", domains=[D], examples=[{"n": 1}])
async def ends_once(wf, p):
    await wf.EndsOnce("x").first()
    return await wf.EndsOnce("x").second()
"""

# Writes its own pid where the test can read it, then runs until it is killed.
SPINS = """
import os
from pathlib import Path
from awf_sim import Domain, Workflow

def spin(c, a, ctx):
    (Path(__file__).parent / "child.pid").write_text(str(os.getpid()))
    while True:
        pass

D = Domain("Spins", {"spin": spin})

@Workflow("spins", domains=[D], examples=[{}])
async def spins(wf, p):
    await wf.Spins("x").spin()
"""


def _write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "flow.py"
    path.write_text(text)
    return str(path)


def test_a_handler_that_ends_the_process_fails_the_run(tmp_path: Path) -> None:
    flow = _write(tmp_path, ENDS_ONCE)
    result = runner.invoke(app, ["run", flow, "--json"])
    assert result.exit_code == 1, result.stdout + result.stderr
    # No result to print (the instance never finished): with --json, the failure instead.
    failure = json.loads(result.stdout)
    assert (failure["ok"], failure["error"]["kind"]) == (False, "Failed")
    line = result.stderr.strip()
    assert failure["error"]["message"] in line
    assert "\n" not in line
    assert "ended the process" in line
    assert "status 0: os._exit" in line


def test_the_store_keeps_the_checkpoints_and_the_same_command_resumes(tmp_path: Path) -> None:
    flow = _write(tmp_path, ENDS_ONCE)
    store = str(tmp_path / "runs.db")
    first = runner.invoke(app, ["run", flow, "--store", store, "--json"])
    assert first.exit_code == 1
    assert f"Its checkpoints are in {store}" in first.stderr
    assert (tmp_path / "first.count").read_text() == "1"

    again = runner.invoke(app, ["run", flow, "--store", store, "--json"])
    assert again.exit_code == 0, again.stderr
    data = json.loads(again.stdout)
    assert data["status"] == "complete"
    assert data["output"] == {"second": True}
    assert "resum" in again.stderr  # the notice: a stored, unfinished instance went on
    assert (tmp_path / "first.count").read_text() == "1"  # checkpointed: not run again


def _state(pid: int) -> str | None:
    """The process's state letter (Z: dead, not yet reaped), or None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return stat.rsplit(")", 1)[1].split()[0]


def _wait_for(path: Path, seconds: float = 30.0) -> str:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if path.exists() and path.read_text():
            return path.read_text()
        time.sleep(0.02)
    raise AssertionError(f"{path} was never written")


def _wait_dead(pid: int, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if _state(pid) in (None, "Z"):
            return True
        time.sleep(0.02)
    return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_no_child_outlives_a_killed_awf_sim_run(tmp_path: Path) -> None:
    flow = _write(tmp_path, SPINS)
    cli = [sys.executable, "-m", "awf_sim.cli", "run", flow]
    cmd = [*cli, "--store", str(tmp_path / "s.db"), "--cpu-ms", "600000"]
    parent = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        child = int(_wait_for(tmp_path / "child.pid"))
        assert child != parent.pid  # the handler runs in the supervised child
        parent.kill()
        parent.wait()
        assert _wait_dead(child), "the child kept running after awf-sim run was killed"
    finally:
        parent.kill()
        parent.wait()
        if (tmp_path / "child.pid").exists():
            pid = int((tmp_path / "child.pid").read_text())
            if _state(pid) not in (None, "Z"):
                os.kill(pid, signal.SIGKILL)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork: nothing is supervised")
def test_an_interrupted_supervisor_takes_its_child_along(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"

    def sleeps() -> None:
        pid_file.write_text(str(os.getpid()))
        time.sleep(60)

    def interrupt() -> None:
        _wait_for(pid_file)
        os.kill(os.getpid(), signal.SIGINT)  # as Ctrl-C would, to this process only

    threading.Thread(target=interrupt, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        run_supervised(sleeps, "a check")
    assert _wait_dead(int(pid_file.read_text()))
