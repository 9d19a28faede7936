"""A test workflow whose instance never ends fails the test instead of hanging it: sleeps and
event waits do not count towards Cloudflare's step limit, so `while True: await wf.sleep(...)`
is legal, and before this bound `run()` looped in virtual time for ever (about 90,000
iterations a second, the timeline growing without end)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from awf_sim import Workflow
from awf_sim.testing import WorkflowFailed, _workflow, create_test_workflow


@pytest.fixture(autouse=True)
def _small_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    # The bound is 100,000 (about a second of sleeps); 1,000 keeps these tests quick.
    assert _workflow.RUNAWAY_WAITS == 100_000
    monkeypatch.setattr(_workflow, "RUNAWAY_WAITS", 1_000)


@Workflow("rw-heartbeat")
async def heartbeat(wf: Any, params: Any) -> Any:
    while True:
        await wf.sleep("beat", "1 hour")


@Workflow("rw-poller")
async def poller(wf: Any, params: Any) -> Any:
    while True:  # polls for an event that never comes, catching each timeout
        try:
            return await wf.wait_for("poll", type="done", timeout="10 minutes")
        except Exception:
            await wf.sleep("backoff", "1 second")


@Workflow("rw-bounded")
async def bounded(wf: Any, params: Any) -> Any:
    for _ in range(params["beats"]):
        await wf.sleep("beat", "1 minute")
    return "done"


def _reason(days: str) -> str:
    return (
        "is still waiting after 1,000 sleeps and event waits "
        f"({days} days of virtual time): it does not end on its own. Test it mid-run "
        "(start(params), then wait_for_status or wait_for_step_result with a timeout), "
        "or mock what it loops on"
    )


def test_an_endless_sleep_loop_fails_run(within: Any) -> None:
    wf = create_test_workflow(heartbeat)
    with within(60), pytest.raises(WorkflowFailed) as failed:
        wf.run({})
    assert str(failed.value).startswith(f"instance {wf.instance.id} of 'rw-heartbeat' ")  # type: ignore[union-attr]
    assert _reason("41.7") in str(failed.value).splitlines()[0]
    assert failed.value.status == "waiting"
    assert failed.value.error is None
    assert wf.status == "waiting"


def test_an_endless_poll_fails_arun_and_wait_for_status(within: Any) -> None:
    with within(60):
        with pytest.raises(WorkflowFailed, match="does not end on its own"):
            asyncio.run(create_test_workflow(poller).arun({}))
        wf = create_test_workflow(poller)
        wf.start({})
        with pytest.raises(WorkflowFailed, match="does not end on its own"):
            wf.wait_for_status("complete")


def test_a_long_but_finite_run_completes(within: Any) -> None:
    with within(60):
        wf = create_test_workflow(bounded)
        assert wf.run({"beats": 1_000}) == "done"
