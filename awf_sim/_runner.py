"""Run one instance of a flow's workflow to its end (what `awf-sim run` does)."""

from __future__ import annotations

from typing import Any

from awf_sim._report import RunResult
from awf_sim.dsl._workflow import Workflow
from awf_sim.engine._calls import TERMINAL
from awf_sim.engine._simulator import Instance, Simulator
from awf_sim.flow import FlowFile

__all__ = ["run_flow", "send_events"]


def send_events(sim: Simulator, inst: Instance, events: list[dict[str, Any]]) -> None:
    """Deliver a workflow's declared events at their `after` offsets (virtual time)."""
    start = sim.now_ms
    for ev in sorted(events, key=lambda e: e["after_ms"]):
        due = start + ev["after_ms"]
        if due > sim.now_ms:
            sim.advance(due - sim.now_ms)
        if inst.status()["status"] in TERMINAL:
            return
        inst.send_event(ev["type"], ev["payload"])


def run_flow(
    flow: FlowFile,
    workflow: Workflow,
    params: Any,
    *,
    seed: int = 0,
    store: str | None = None,
    isolation: str | None = None,
    on_resume: Any = None,
) -> RunResult:
    """Run `workflow` once, letting event waits time out in virtual time.

    With a SQLite `store` that holds an unfinished instance of this workflow (a run that was
    killed), that instance is resumed from its checkpoints instead of starting a new one.
    """
    with Simulator(world=flow.world.replace(seed=seed), store=store, isolation=isolation) as sim:
        inst = None
        if store is not None:
            for candidate in sim.instances:
                status = candidate.status()["status"]
                if candidate.workflow == workflow.name and status not in TERMINAL:
                    sim.register(workflow)
                    sim.recover()
                    inst = candidate
                    if on_resume is not None:
                        on_resume(candidate.id)
                    break
        if inst is None:
            inst = sim.create(workflow, params)
            send_events(sim, inst, workflow.events)
        sim.run_until_done(inst)
        status = inst.status()
        return RunResult(
            workflow=workflow.name,
            instance_id=inst.id,
            seed=seed,
            status=status["status"],
            output=status["output"],
            error=status["error"],
            timeline=inst.timeline,
        )
