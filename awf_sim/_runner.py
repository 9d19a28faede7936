"""Run one instance of a flow's workflow to its end (what `awf-sim run` does)."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from awf_sim._report import RunResult, format_at, unsent_event
from awf_sim.dsl._identity import canonical
from awf_sim.dsl._workflow import Workflow
from awf_sim.engine._calls import TERMINAL
from awf_sim.engine._defaults import DEFAULT_CPU_MS, RUNAWAY_WAITS
from awf_sim.engine._simulator import Instance, Simulator
from awf_sim.errors import InstanceError
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


def _pick_stored(
    sim: Simulator, workflow: Workflow, params: Any, id: str | None
) -> Instance | None:
    """The stored instance this run means: the one with `id`, else this workflow's instance
    for the same params (an unfinished one first, else the latest finished one)."""
    if id is not None:
        try:
            inst = sim.instance(id)
        except InstanceError:
            return None
        if inst.workflow != workflow.name:
            raise InstanceError(
                f"instance {id!r} in the store belongs to workflow {inst.workflow!r}, not "
                f"{workflow.name!r}"
            )
        return inst
    wanted = canonical({} if params is None else params, root="params")
    same = [
        inst
        for inst in sim.instances
        if inst.workflow == workflow.name and sim._meta(inst.id)["params"] == wanted
    ]
    unfinished = [i for i in same if i.status()["status"] not in TERMINAL]
    if unfinished:
        return unfinished[0]
    return same[-1] if same else None


def _holds(sim: Simulator, id: str) -> bool:
    try:
        sim.instance(id)
    except InstanceError:
        return False
    return True


def durable_database(db: Any, store: str) -> Any:
    """The flow's database kept beside a SQLite store (`run.db` -> `run.db.d1`), as D1 keeps
    it: an instance resumed in a new process sees what its checkpointed steps wrote. Checked
    now when the file exists, so a file that cannot serve is one line, not a step's error."""
    from awf_sim.sdk._db_file import _FileDatabase, beside_store

    durable = beside_store(db, store)
    if isinstance(durable, _FileDatabase) and os.path.exists(durable.path):
        durable.connect().close()
    return durable


def run_flow(
    flow: FlowFile,
    workflow: Workflow,
    params: Any,
    *,
    seed: int = 0,
    store: str | None = None,
    isolation: str | None = None,
    id: str | None = None,
    new: bool = False,
    cpu_ms: int | None = DEFAULT_CPU_MS,
    notice: Callable[[str], None] | None = None,
) -> RunResult:
    """Run `workflow` once, letting event waits time out in virtual time.

    A SQLite `store` remembers: when it holds this workflow's instance for the same params
    (or the instance `id`), an unfinished one is resumed from its checkpoints and a finished
    one is reported as stored, without running anything again; `notice` is told which.
    `new=True` always starts a new instance.
    """
    say = notice if notice is not None else (lambda _m: None)
    world = flow.world.replace(seed=seed)
    if store is not None:
        world = world.replace(db=durable_database(world.db, store))
    with Simulator(world=world, store=store, isolation=isolation, cpu_ms=cpu_ms) as sim:
        inst = None
        if store is not None and not new:
            inst = _pick_stored(sim, workflow, params, id)
            if inst is not None and id is not None:
                given = canonical({} if params is None else params, root="params")
                if sim._meta(inst.id)["params"] != given:
                    say(
                        f"instance {inst.id} in {store} was started with other params than "
                        "this run's: it keeps its own (pass another --id, or leave --id out, "
                        "to run these params)"
                    )
            if inst is not None:
                status = inst.status()["status"]
                if status in TERMINAL:
                    say(
                        f"instance {inst.id} in {store} already finished ({status}): showing "
                        "its stored result; pass --new to run a new instance"
                    )
                else:
                    sim.register(workflow)
                    sim.recover()
                    say(f"resuming unfinished instance {inst.id} from {store}")
        if inst is None:
            if new and id is not None and store is not None and _holds(sim, id):
                raise InstanceError(
                    f"--new --id {id}: {store} already holds an instance {id!r}; pass another "
                    "--id, or leave --id out for a new one"
                )
            inst = sim.create(workflow, params, id=id)
            send_events(sim, inst, workflow.events)
        if inst.status()["status"] not in TERMINAL and not sim.run_until_done(
            inst, max_waits=RUNAWAY_WAITS
        ):
            say(
                f"instance {inst.id} is still {inst.status()['status']} after "
                f"{RUNAWAY_WAITS:,} sleeps and event waits ({format_at(sim.now_ms)} of virtual "
                "time): it does not end on its own (a loop of sleeps or waits?), so the run "
                "stops here. Give the loop an end, or test the workflow mid-run "
                "(create_test_workflow(...).start(params), then wait_for_status)"
            )
        status = inst.status()
        error = status["error"]
        timeline = inst.timeline
        unsent = unsent_event(workflow, timeline) if error else None
        return RunResult(
            workflow=workflow.name,
            instance_id=inst.id,
            seed=seed,
            status=status["status"],
            output=status["output"],
            error=error,
            timeline=timeline,
            hint=unsent if error and error["name"] == "WorkflowTimeoutError" else None,
        )
