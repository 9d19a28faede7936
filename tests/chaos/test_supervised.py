"""Issue 17.1: chaos and push's verify gate run the flow in a supervised child; code that ends
that process (os._exit, sys.exit on import, a signal) is a failure, never exit 0."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from awf_sim.chaos import run_supervised
from awf_sim.cli import app
from awf_sim.errors import ProcessDied

runner = CliRunner()

OS_EXIT = """
import os
from awf_sim import Domain, Workflow

async def die(c, a, ctx):
    os._exit(0)

Killer = Domain("Killer", {"die": die})

@Workflow("dies", examples=[{}])
async def dies(wf, p):
    await wf.Killer({}).die()
"""

EXIT_ON_IMPORT = """
import sys
sys.exit(0)
"""


def test_run_supervised_returns_results_and_raises_errors() -> None:
    assert run_supervised(lambda: {"a": [1, 2]}, "a check") == {"a": [1, 2]}

    def fails() -> None:
        raise ValueError("nope")

    with pytest.raises(ValueError, match="nope"):
        run_supervised(fails, "a check")


@pytest.mark.parametrize(
    "ending",
    [lambda: os._exit(0), lambda: os.kill(os.getpid(), signal.SIGKILL)],
    ids=["os._exit(0)", "SIGKILL"],
)
def test_a_child_that_dies_is_a_failure(ending: object) -> None:
    with pytest.raises(ProcessDied, match="before it reached a verdict"):
        run_supervised(ending, "a check")  # type: ignore[arg-type]


def test_a_child_that_calls_sys_exit_is_a_failure() -> None:
    def leave() -> None:
        raise SystemExit(0)

    with pytest.raises(ProcessDied, match="SystemExit"):
        run_supervised(leave, "a check")


@pytest.mark.parametrize("text", [OS_EXIT, EXIT_ON_IMPORT], ids=["os._exit", "exit-on-import"])
def test_chaos_never_exits_0_when_the_flow_ends_the_process(tmp_path: Path, text: str) -> None:
    flow = tmp_path / "flow.py"
    flow.write_text(text)
    result = runner.invoke(app, ["chaos", str(flow), "--runs", "2"])
    assert result.exit_code != 0, result.stdout + result.stderr
    assert result.stderr.strip()


CLEAN = """
from awf_sim import Domain, Workflow

async def hello(c, a, ctx):
    return "hi"

Greeter = Domain("SupervisedGreeter", {"hello": hello})

@Workflow("greets", examples=[{}])
async def greets(wf, p):
    return await wf.SupervisedGreeter({}).hello()
"""


def test_chaos_output_still_reaches_a_captured_stdout(tmp_path: Path) -> None:
    flow = tmp_path / "clean.py"
    flow.write_text(CLEAN)
    result = runner.invoke(app, ["chaos", str(flow), "--runs", "0", "--json"])
    assert result.exit_code == 0, result.stderr
    assert '"greets"' in result.stdout
