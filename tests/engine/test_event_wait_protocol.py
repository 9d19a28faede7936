"""An event wait is awaited like the coroutine it stands for (it is written out by hand to
keep waiting instances small): asyncio can gather it, run it as a task, cancel it, and it
cannot be awaited twice."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from awf_sim import Simulator, Workflow


def _waits(inst: Any) -> list[tuple[str, Any]]:
    return [
        (e["kind"], e["name"]) for e in inst.timeline if e["kind"] in ("wait-start", "wait-end")
    ]


def test_gathered_waits_each_get_their_event_in_any_order() -> None:
    @Workflow("gathered-waits")
    async def flow(wf: Any, _: Any) -> Any:
        return await asyncio.gather(
            wf.wait_for("a", type="ta"), wf.wait_for("b", type="tb", timeout="1 hour")
        )

    with Simulator() as sim:
        inst = sim.create(flow)
        sim.run()
        assert inst.status()["status"] == "waiting"
        inst.send_event("tb", {"n": 2})
        sim.run()
        assert inst.status()["status"] == "waiting"
        inst.send_event("ta", {"n": 1})
        sim.run()
        assert inst.status()["output"] == [{"n": 1}, {"n": 2}]
        assert _waits(inst) == [
            ("wait-start", "a"),
            ("wait-start", "b"),
            ("wait-end", "b"),
            ("wait-end", "a"),
        ]


def test_a_wait_runs_as_a_task_of_its_own() -> None:
    @Workflow("wait-task")
    async def flow(wf: Any, _: Any) -> Any:
        task = asyncio.create_task(wf.wait_for("go", type="go"))
        first = await wf.do("meanwhile", lambda: "done")
        return [first, await task]

    with Simulator() as sim:
        inst = sim.create(flow)
        sim.run()
        inst.send_event("go", 7)
        sim.run()
        assert inst.status()["output"] == ["done", 7]


def test_a_cancelled_wait_stops_waiting_and_leaves_its_event_for_the_next() -> None:
    @Workflow("cancelled-wait")
    async def flow(wf: Any, _: Any) -> Any:
        try:
            await asyncio.wait_for(wf.wait_for("first", type="go"), timeout=60)
        except TimeoutError:
            pass
        await wf.sleep("nap", "1 hour")
        return await wf.wait_for("second", type="go")

    with Simulator() as sim:
        inst = sim.create(flow)
        sim.advance("2 hours")  # the first wait is cancelled after 60 s, then it sleeps
        assert inst.status()["status"] == "waiting"
        assert _waits(inst) == [("wait-start", "first"), ("wait-start", "second")]
        inst.send_event("go", "late")
        sim.run()
        assert inst.status()["output"] == "late"
        assert _waits(inst)[-2:] == [("wait-start", "second"), ("wait-end", "second")]


def test_a_wait_that_times_out_fails_once_and_replays_its_failure() -> None:
    @Workflow("timed-out-wait")
    async def flow(wf: Any, _: Any) -> Any:
        try:
            await wf.wait_for("late", type="never", timeout="1 minute")
        except Exception as exc:
            seen = str(exc)
        await wf.sleep("nap", "1 hour")
        return seen

    with Simulator() as sim:
        inst = sim.create(flow)
        sim.advance("10 minutes")
        sim.crash()
        sim.recover()
        sim.run()
        assert inst.status()["output"] == "WorkflowTimeoutError: Execution timed out after 60000ms"
        ends = [e for e in inst.timeline if e["kind"] == "wait-end"]
        assert [e.get("timed_out") for e in ends] == [True]


def test_a_wait_cannot_be_awaited_twice() -> None:
    @Workflow("awaited-twice")
    async def flow(wf: Any, _: Any) -> Any:
        wait = wf.wait_for("go", type="go")
        await wait
        await wait

    with Simulator() as sim:
        inst = sim.create(flow)
        inst.send_event("go", 1)
        sim.run()
        assert inst.status()["error"] == {
            "name": "RuntimeError",
            "message": "cannot reuse already awaited coroutine",
        }


@pytest.mark.parametrize("payload_only", [True, False])
def test_a_buffered_event_is_returned_without_waiting(payload_only: bool) -> None:
    @Workflow(f"buffered-{payload_only}")
    async def flow(wf: Any, _: Any) -> Any:
        await wf.sleep("nap", "1 minute")
        if payload_only:
            return await wf.wait_for("go", type="go")
        event = await wf._runtime.wait_for_event("go", "go", 1000)
        return [event["payload"], event["type"]]

    with Simulator() as sim:
        inst = sim.create(flow)
        inst.send_event("go", {"x": 1})
        sim.run()
        expected = {"x": 1} if payload_only else [{"x": 1}, "go"]
        assert inst.status()["output"] == expected
