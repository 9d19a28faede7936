"""Under process isolation, the run's CPU budget (`cpu_ms`, `awf-sim run --cpu-ms`) bounds an
attempt too.

An isolated attempt runs in a child with its own CPU limit (`Limits.cpu_seconds`, 10 s), and
`cpu_ms` was ignored there: `awf-sim run --isolation process --cpu-ms 1000` let a runaway
handler spin for 10 s per attempt. Now the tighter of the two holds; explicit `limits=` win.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import pytest

from awf_sim import Domain, Simulator, Workflow
from awf_sim.engine import Limits

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs Linux")


def spin(_c: Any, _a: Any, _ctx: Any) -> Any:
    while True:
        pass


Spinner = Domain("ForkCpuSpinner", {"spin": {"handler": spin, "retries": {"limit": 0, "delay": 1}}})


@Workflow("fork-cpu-budget", domains=[Spinner])
async def spinning(wf: Any, params: Any) -> Any:
    return await wf.ForkCpuSpinner(1).spin()


def _error(**kwargs: Any) -> tuple[dict[str, Any], float]:
    started = time.monotonic()
    with Simulator(isolation="process", **kwargs) as sim:
        inst = sim.create(spinning, {})
        sim.run()
        status = inst.status()
    assert status["status"] == "errored", status
    return status["error"], time.monotonic() - started


def test_the_cpu_budget_bounds_an_isolated_attempt() -> None:
    error, took = _error(cpu_ms=500)
    assert error["name"] == "IsolationError"
    assert "CPU-time limit of 0.5 s" in error["message"]  # was 10.0 s
    assert took < 8


def test_explicit_limits_still_win() -> None:
    error, _ = _error(cpu_ms=30_000, limits=Limits(cpu_seconds=0.3))
    assert "CPU-time limit of 0.3 s" in error["message"]


def test_a_limit_failure_shows_no_frame_that_is_not_the_users() -> None:
    # The attempt died in its child; what is left in this process is the executor thread that
    # waited on it (concurrent/futures/thread.py), which the stack used to show as if the
    # user's code had failed there.
    with Simulator(isolation="process", cpu_ms=300) as sim:
        inst = sim.create(spinning, {})
        sim.run()
        stacks = [e.get("stack") for e in inst.timeline if e["kind"] == "attempt-failure"]
    assert stacks == [None]
