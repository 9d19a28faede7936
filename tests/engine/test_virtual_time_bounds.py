"""Issue 17.2: virtual-time work costs O(events), whatever the virtual time. Past 2**34 s a
float step exceeded asyncio's clock resolution and the loop spun forever; huge durations
raised OverflowError from deep inside."""

from __future__ import annotations

import time
from typing import Any

import pytest

from awf_sim import DefinitionError, Domain, Workflow, parse_duration
from awf_sim.testing import create_test_workflow


async def _fail(c: Any, a: Any, ctx: Any) -> Any:
    raise RuntimeError("down")


def _failing(limit: int) -> Domain:
    retries = {"limit": limit, "delay": "10 seconds", "backoff": "exponential"}
    return Domain("Flaky", {"call": {"handler": _fail, "retries": retries}})


def test_31_exponential_retries_of_10_s_pass_2_to_the_34_seconds(
    within: Any, make_sim: Any
) -> None:
    flaky = _failing(31)

    @Workflow("retries-past-2-34", domains=[flaky])
    async def flow(wf: Any, p: Any) -> Any:
        try:
            await wf.Flaky({}).call()
        except Exception:
            return "gave up"

    sim = make_sim()
    inst = sim.create(flow, {})
    start = time.process_time()
    with within(20):
        sim.run()
    assert inst.status()["output"] == "gave up"
    assert sim.now_ms / 1000 > 2**34
    assert time.process_time() - start < 5


def test_600_sleeps_of_365_days_finish(within: Any, make_sim: Any) -> None:
    @Workflow("six-hundred-years")
    async def flow(wf: Any, p: Any) -> Any:
        for i in range(600):
            await wf.sleep(f"year-{i}", "365 days")
        return "done"

    with within(20):
        wf = create_test_workflow(flow)
        assert wf.run({}) == "done"


def test_a_retry_wait_past_the_horizon_ends_the_instance_with_a_clear_error(
    within: Any,
    make_sim: Any,
) -> None:
    flaky = _failing(2000)  # 10 s * 2**1999: no float holds it

    @Workflow("retries-forever", domains=[flaky])
    async def flow(wf: Any, p: Any) -> Any:
        await wf.Flaky({}).call()

    sim = make_sim()
    inst = sim.create(flow, {})
    with within(20):
        sim.run()
    status = inst.status()
    assert status["status"] == "errored"
    assert "past the simulator's horizon" in status["error"]["message"]


@pytest.mark.parametrize(
    "value", [10**400, 1e308, "99999999999999999999999999999 years", "300000 years"]
)
def test_huge_durations_are_one_clear_error(value: Any) -> None:
    with pytest.raises(DefinitionError, match="longest duration awf accepts"):
        parse_duration(value)


def test_a_huge_wait_timeout_is_refused_when_the_step_is_defined() -> None:
    with pytest.raises(DefinitionError, match="longest duration"):
        Domain("Slow", {"call": {"handler": _fail, "timeout": 10**30}})
