"""Runs a conformance scenario on awf_sim and returns its trace (FORMAT.md's shape).

The workflow below is the Python twin of tests/conformance/worker/index.mjs: the same body
interpreter, written against Cloudflare's Python step API (`step.do` as a decorator,
`step.sleep`, `step.wait_for_event`), so what runs is the code path a deployed Python Worker
uses. Time is the simulator's virtual clock: a hang is `asyncio.sleep` inside the callback,
and driver actions happen at exactly `after_ms`.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import math
from collections.abc import Callable, Coroutine
from typing import Any

from awf_sim.conformance._scenario import (
    DoOp,
    Op,
    ParallelOp,
    Scenario,
    SleepOp,
    WaitOp,
)
from awf_sim.dsl._errors import NonRetryableError
from awf_sim.engine._simulator import Instance, Simulator

__all__ = [
    "COMPATIBILITY_DATE",
    "SCENARIO_LIMIT_MS",
    "attempts_and_gaps",
    "error_text",
    "run_on_simulator",
]

# The settings of the recorded traces (FORMAT.md): Miniflare at this compatibility date.
COMPATIBILITY_DATE = "2026-04-01"
SCENARIO_LIMIT_MS = 20_000
_TERMINAL = frozenset({"complete", "errored", "terminated"})


class Error(Exception):
    """The scenario's `"throw": "Error"`: its class name is what Cloudflare reports."""


def error_text(name: str, message: str) -> str:
    """An error's text as the workflow sees it on Cloudflare: errors cross RPC with their
    class name prefixed to the message, except a plain Error (FORMAT.md, Trace)."""
    return message if name == "Error" else f"{name}: {message}"


def _name_and_message(exc: BaseException) -> tuple[str, str]:
    name = getattr(exc, "name", None)
    message = getattr(exc, "message", None)
    if isinstance(name, str) and isinstance(message, str):
        return name, message
    return type(exc).__name__, str(exc)


def _exception_text(exc: BaseException) -> str:
    return error_text(*_name_and_message(exc))


def _instance_error_text(error: dict[str, Any], escaped: BaseException | None) -> str:
    """The instance's error as Cloudflare reports it. An error that escaped `run` crossed the
    RPC boundary on its way, so it carries the prefix; one the engine made itself (a fatal
    error, or its rewrite of an uncaught NonRetryableError) did not."""
    name, message = str(error.get("name", "Error")), str(error.get("message", ""))
    passed_through = (
        escaped is not None
        and not isinstance(escaped, NonRetryableError)
        and _name_and_message(escaped) == (name, message)
    )
    return error_text(name, message) if passed_through else message


def attempts_and_gaps(
    records: list[dict[str, Any]],
) -> tuple[dict[str, int], dict[str, list[int | float]]]:
    """FORMAT.md's `attempts` and `retry_gaps_ms` from per-attempt records, as the Node driver
    computes them: an attempt fails when it threw, or at its start plus the step timeout if
    that came first (the engine stops waiting then; the callback runs on)."""
    by_key: dict[str, dict[int, dict[str, Any]]] = {}
    for rec in records:
        # One record per attempt number (the first), should a replay run it again.
        by_key.setdefault(rec["key"], {}).setdefault(rec["attempt"], rec)
    attempts: dict[str, int] = {}
    gaps: dict[str, list[int | float]] = {}
    for key, per_attempt in by_key.items():
        ordered = [per_attempt[n] for n in sorted(per_attempt)]
        attempts[key] = len(ordered)
        if len(ordered) > 1:
            gaps[key] = []
            for prev, nxt in itertools.pairwise(ordered):
                deadline = prev["start"] + prev["timeout"]
                failed_at = deadline if prev["end"] is None else min(prev["end"], deadline)
                gaps[key].append(nxt["start"] - failed_at)
    return attempts, gaps


def _workflow_class(
    scenario: Scenario,
    sim: Simulator,
    records: list[dict[str, Any]],
    escaped: list[BaseException],
) -> type:
    """A class with `async def run(self, event, step)` that interprets `scenario`'s body;
    it appends each error that escapes `run` to `escaped`."""

    def run_do(step: Any, op: DoOp) -> Coroutine[Any, Any, Any]:
        async def callback(ctx: dict[str, Any]) -> Any:
            rec: dict[str, Any] = {
                "key": f"{op.name}#{ctx['step']['count']}",
                "attempt": ctx["attempt"],
                "start": sim.now_ms,
                "end": None,
                # The resolved timeout this attempt is raced against (the default included).
                "timeout": ctx["config"]["timeout"],
            }
            records.append(rec)
            entry = op.attempt(ctx["attempt"])
            try:
                if entry.hang_ms:
                    await asyncio.sleep(entry.hang_ms / 1000)  # virtual time
                if entry.throw == "NonRetryableError":
                    raise NonRetryableError(entry.message)
                if entry.throw == "Error":
                    raise Error(entry.message)
                # A copy, so nothing the engine does to a result can reach the scenario.
                return copy.deepcopy(entry.returns)
            finally:
                rec["end"] = sim.now_ms

        config = dict(op.config) if op.config is not None else None
        fn = step.do(op.name, config=config)(callback)
        result: Coroutine[Any, Any, Any] = fn()
        return result

    async def run_parallel(step: Any, op: ParallelOp) -> list[Any]:
        async def slot(sub: DoOp) -> Any:
            try:
                return await run_do(step, sub)
            except Exception as exc:
                if not sub.catch:
                    raise
                return {"caught": _exception_text(exc)}

        # Promise.all: the first failure propagates, the other steps run on.
        return list(await asyncio.gather(*(slot(sub) for sub in op.steps)))

    async def run_op(step: Any, op: Op) -> Any:
        if isinstance(op, DoOp):
            return await run_do(step, op)
        if isinstance(op, SleepOp):
            await step.sleep(op.name, op.duration)
            return None
        if isinstance(op, WaitOp):
            if op.timeout is None:
                event = await step.wait_for_event(op.name, op.type)
            else:
                event = await step.wait_for_event(op.name, op.type, timeout=op.timeout)
            return event["payload"]
        return await run_parallel(step, op)

    class ScenarioWorkflow:
        async def run(self, event: Any, step: Any) -> Any:
            results: list[dict[str, Any]] = []
            for op in scenario.body:
                try:
                    value = await run_op(step, op)
                except Exception as exc:
                    if not op.catch:
                        escaped.append(exc)
                        raise
                    results.append({"caught": _exception_text(exc)})
                else:
                    results.append({"ok": value})
            return {"results": results}

    return ScenarioWorkflow


class _Driver:
    """Applies the scenario's events and control actions at their times; knows when to stop."""

    def __init__(self, sim: Simulator, instance: Instance, scenario: Scenario) -> None:
        self.sim = sim
        self.instance = instance
        self.actions = scenario.actions()
        self.controls_left = sum(1 for a in self.actions if a.kind == "control")

    def status(self) -> str:
        status: str = self.instance.status()["status"]
        return status

    def finished(self) -> bool:
        status = self.status()
        if status in _TERMINAL:
            return True
        return status == "paused" and self.controls_left == 0

    def advance_to(self, at_ms: int) -> None:
        while self.sim.now_ms < at_ms and not self.finished():
            left = at_ms - self.sim.now_ms
            if self.status() == "paused":
                self.sim.advance(left)  # nothing runs; only the clock moves to the next action
            else:
                self.sim.run_until_done(self.instance, max_ms=left)

    def run(self) -> None:
        for action in self.actions:
            at_ms = math.ceil(action.after_ms)
            if at_ms > SCENARIO_LIMIT_MS:
                break
            self.advance_to(at_ms)
            if self.finished():
                return
            if action.kind == "event":
                self.instance.send_event(action.type, action.payload)
            else:
                self.controls_left -= 1
                getattr(self.instance, action.op)()
        self.advance_to(SCENARIO_LIMIT_MS)


def run_on_simulator(
    scenario: Scenario,
    *,
    profile: str = "local",
    compatibility_date: str = COMPATIBILITY_DATE,
    on_simulator: Callable[[Simulator, Instance], None] | None = None,
) -> dict[str, Any]:
    """Run `scenario` as one instance on a fresh Simulator and return its trace.

    `profile="local"` mirrors Miniflare's defaults, which the recorded traces come from.
    `on_simulator(sim, instance)` is called at the end, before the simulator closes (tests
    use it to look at the timeline).
    """
    records: list[dict[str, Any]] = []
    escaped: list[BaseException] = []
    with Simulator(profile=profile, compatibility_date=compatibility_date) as sim:
        workflow = _workflow_class(scenario, sim, records, escaped)
        # The Worker gets the whole scenario as params; so does this run, for parity.
        instance = sim.create(workflow, dict(scenario.raw))
        _Driver(sim, instance, scenario).run()
        status = instance.status()
        if on_simulator is not None:
            on_simulator(sim, instance)
    attempts, gaps = attempts_and_gaps(records)
    error = status["error"]
    return {
        "name": scenario.name,
        "status": status["status"],
        "output": status["output"] if status["status"] == "complete" else None,
        "error": (
            {"message": _instance_error_text(error, escaped[-1] if escaped else None)}
            if status["status"] == "errored" and error
            else None
        ),
        "attempts": attempts,
        "retry_gaps_ms": gaps,
    }
