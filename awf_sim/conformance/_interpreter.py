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
import datetime as _dt
import itertools
import math
from collections import Counter
from collections.abc import Callable, Coroutine
from typing import Any

from awf_sim.conformance._scenario import (
    DoOp,
    Op,
    ParallelOp,
    Scenario,
    ScenarioError,
    SleepOp,
    SleepUntilOp,
    ThrowOp,
    WaitOp,
)
from awf_sim.dsl._cfduration import js_number_text
from awf_sim.dsl._errors import NonRetryableError
from awf_sim.engine._simulator import Instance, Simulator
from awf_sim.errors import InstanceError

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
# More attempts than this in one scenario is a retry loop that only the engine's speed bounds
# (a zero delay and a huge limit): its trace would differ on every machine.
MAX_ATTEMPTS = 10_000
# The engine's DEFAULT_STEP_LIMIT, used when a scenario sets none.
DEFAULT_STEP_LIMIT = 10_000
_TERMINAL = frozenset({"complete", "errored", "terminated"})


# The classes whose name survives Cloudflare's RPC boundary (workerd serialises these by name).
JS_ERROR_CLASSES = frozenset(
    {"Error", "TypeError", "RangeError", "SyntaxError", "ReferenceError", "EvalError", "URIError"}
)


class Error(Exception):
    """The scenario's `"throw": NAME`: an error of class NAME, as the JavaScript worker makes it."""

    def __init__(self, message: str, name: str = "Error") -> None:
        super().__init__(message)
        self.name = name
        self.message = message


class ThrownValue(Exception):
    """The scenario's `"throw_value": V` (format 2): JavaScript can throw what is not an Error;
    the workflow then sees an Error whose message is the value as JavaScript prints it."""

    def __init__(self, value: Any) -> None:
        self.value = value
        self.name = "Error"
        self.message = _js_string(value)
        super().__init__(self.message)


def _js_string(value: Any) -> str:
    """How a thrown non-Error value reads after it crossed workerd's RPC boundary."""
    if isinstance(value, str):
        return value
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return js_number_text(float(value))
    if isinstance(value, list):
        return "[object Array]"  # as recorded: not String([...])
    return "#<Object>"


def seen_error(name: str, message: str) -> tuple[str, str]:
    """An error's (name, message) as the workflow sees it on Cloudflare. RPC keeps the name of
    JavaScript's own error classes; any other class arrives as a plain Error whose message
    starts with its class name ("MyError: text", or "MyError" when the text is empty)."""
    # An error's text crosses as UTF-8: a lone surrogate arrives as U+FFFD.
    name, message = _well_formed(name), _well_formed(message)
    if name in JS_ERROR_CLASSES:
        return name, message
    return "Error", f"{name}: {message}" if message else name


def _well_formed(text: str) -> str:
    """`text` with each lone surrogate replaced by U+FFFD, as UTF-8 encoding does in JS."""
    if text.isascii():
        return text
    return "".join("\ufffd" if 0xD800 <= ord(ch) <= 0xDFFF else ch for ch in text)


def error_text(name: str, message: str) -> str:
    """An error's text as the workflow sees it on Cloudflare (FORMAT.md, Trace)."""
    return seen_error(name, message)[1]


def _name_and_message(exc: BaseException) -> tuple[str, str]:
    if isinstance(exc, InstanceError):
        return "WorkflowError", str(exc)  # the binding's WorkflowError
    name = getattr(exc, "name", None)
    message = getattr(exc, "message", None)
    if isinstance(name, str) and isinstance(message, str):
        return name, message
    return type(exc).__name__, str(exc)


def _exception_text(exc: BaseException) -> str:
    return error_text(*_name_and_message(exc))


def _caught(op: Any, exc: BaseException) -> dict[str, Any]:
    """What a caught error leaves in the results, by the operation's `catch`."""
    name, message = seen_error(*_name_and_message(exc))
    if op.catch == "name":
        return {"caught": message, "name": name}
    return {"caught": message}


def _thrown(op: ThrowOp) -> Exception:
    """What `run` throws for a `throw` operation, as the engine gets it."""
    error = op.error
    if error.throws_value:
        return ThrownValue(error.throw_value)
    if error.throw == "NonRetryableError":
        return NonRetryableError(error.message)
    # Through RPC on its way to the engine, as a step's error is: a class of the user's own
    # arrives as an Error whose message starts with its name.
    return Error(*reversed(seen_error(error.throw or "Error", error.message)))


def _retrieved(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()


def _catches(op: Any) -> bool:
    return bool(op.catch) and op.catch != "rethrow"


def _instance_error(error: dict[str, Any], escaped: BaseException | None) -> tuple[str, str]:
    """The instance's error (name, message) as Cloudflare reports it. An error that escaped
    `run` crossed the RPC boundary on its way, so it reads as the workflow saw it; one the
    engine made itself (a fatal error, or its rewrite of an uncaught NonRetryableError) did
    not."""
    name, message = str(error.get("name", "Error")), str(error.get("message", ""))
    passed_through = (
        escaped is not None
        and not isinstance(escaped, NonRetryableError)
        and _name_and_message(escaped) == (name, message)
    )
    return seen_error(name, message) if passed_through else (name, message)


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
            if len(records) > MAX_ATTEMPTS:
                # Parked for good, so virtual time runs on to the scenario's limit and the
                # run ends; run_on_simulator then refuses the scenario.
                await asyncio.get_running_loop().create_future()
            entry = op.attempt(ctx["attempt"])
            try:
                if entry.hang_ms:
                    await asyncio.sleep(entry.hang_ms / 1000)  # virtual time
                if entry.throws_value:
                    raise ThrownValue(entry.throw_value)
                if entry.throw == "NonRetryableError":
                    raise NonRetryableError(entry.message)
                if entry.throw is not None:
                    # The engine gets the error across RPC, as run() would: a class of the
                    # user's own arrives as an Error named by its message's prefix.
                    raise Error(*reversed(seen_error(entry.throw, entry.message)))
                if entry.return_nothing:
                    return None
                # A copy, so nothing the engine does to a result can reach the scenario.
                return copy.deepcopy(entry.returns)
            finally:
                rec["end"] = sim.now_ms

        config = dict(op.config) if op.config is not None else None
        fn = step.do(op.name, config=config)(callback)
        result: Coroutine[Any, Any, Any] = fn()
        return result

    async def run_parallel(step: Any, op: ParallelOp) -> Any:
        async def slot(sub: Op) -> Any:
            try:
                return await run_op(step, sub)
            except Exception as exc:
                if not _catches(sub):
                    raise
                return _caught(sub, exc)

        if op.race:
            # Promise.race: the first slot to settle wins (its value or its error); the
            # others run on.
            # The losers are the instance's tasks (`_lt`: the engine's lifetime behind the
            # step API), so they end with the instance instead of outliving the simulation.
            spawn = step._lt.spawn
            tasks = [spawn(slot(sub)) for sub in op.steps]
            for task in tasks:  # a loser that fails later is nobody's error (Promise.race)
                task.add_done_callback(_retrieved)
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            first = next(t for t in tasks if t in done)
            return first.result()
        # Promise.all: the first failure propagates, the other steps run on.
        return list(await asyncio.gather(*(slot(sub) for sub in op.steps)))

    async def run_op(step: Any, op: Op) -> Any:
        if isinstance(op, DoOp):
            return await run_do(step, op)
        if isinstance(op, SleepOp):
            await step.sleep(op.name, op.duration)
            return None
        if isinstance(op, SleepUntilOp):
            created = _epoch_ms(step_event[0]["timestamp"])
            await step.sleep_until(op.name, created + op.at_ms)
            return None
        if isinstance(op, WaitOp):
            if op.timeout is None:
                event = await step.wait_for_event(op.name, op.type)
            else:
                event = await step.wait_for_event(op.name, op.type, timeout=op.timeout)
            return event["payload"]
        if isinstance(op, ThrowOp):
            raise _thrown(op)
        return await run_parallel(step, op)

    step_event: list[Any] = [None]

    class ScenarioWorkflow:
        async def run(self, event: Any, step: Any) -> Any:
            step_event[0] = event
            results: list[dict[str, Any]] = []
            for op in scenario.body:
                try:
                    value = await run_op(step, op)
                except Exception as exc:
                    if not _catches(op):
                        escaped.append(exc)
                        raise
                    results.append(_caught(op, exc))
                else:
                    results.append({"ok": value})
            return None if scenario.result == "nothing" else {"results": results}

    return ScenarioWorkflow


class _Driver:
    """Applies the scenario's events and control actions at their times; knows when to stop."""

    def __init__(
        self, sim: Simulator, instance: Instance, scenario: Scenario, workflow: type
    ) -> None:
        self.sim = sim
        self.instance = instance
        self.workflow = workflow
        self.actions = scenario.actions()
        self.controls_left = sum(1 for a in self.actions if a.kind == "control")
        self.actions_left = len(self.actions)
        # Format 2 sends every action, also to a finished instance (what a control call does
        # then is part of the trace); format 1 stops at a terminal status.
        self.send_all = scenario.format >= 2
        self.control_errors: list[dict[str, str]] = []

    def status(self) -> str:
        status: str = self.instance.status()["status"]
        return status

    def finished(self) -> bool:
        status = self.status()
        if status in _TERMINAL:
            return not (self.send_all and self.actions_left)
        return status == "paused" and self.controls_left == 0

    def advance_to(self, at_ms: int) -> None:
        while self.sim.now_ms < at_ms and not self.finished():
            left = at_ms - self.sim.now_ms
            if self.status() in ("paused", *_TERMINAL):
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
            self.actions_left -= 1
            if action.kind == "event":
                self.instance.send_event(action.type, action.payload)
            else:
                self.controls_left -= 1
                try:
                    if action.op == "create_again":
                        # create() with the instance's own id, and an empty scenario of its own.
                        duplicate = {"name": "duplicate", "body": []}
                        self.sim.create(self.workflow, duplicate, id=self.instance.id)
                    elif action.from_ is not None:
                        self.instance.restart(action.from_)
                    else:
                        getattr(self.instance, action.op)()
                except InstanceError as exc:
                    self.control_errors.append({"op": action.op, "message": _exception_text(exc)})
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
    # Durations as Cloudflare reads them (DESIGN §9): a conformance run reproduces the engine.
    with Simulator(
        profile=profile,
        compatibility_date=compatibility_date,
        durations="cloudflare",
        step_limit=scenario.step_limit or DEFAULT_STEP_LIMIT,
    ) as sim:
        workflow = _workflow_class(scenario, sim, records, escaped)
        # The Worker gets the whole scenario as params; so does this run, for parity.
        try:
            instance = sim.create(workflow, dict(scenario.raw), id=scenario.id)
        except InstanceError as exc:
            # create() itself refused (an id the binding rejects): no instance, nothing sent.
            return _not_created(scenario, _exception_text(exc))
        driver = _Driver(sim, instance, scenario, workflow)
        driver.run()
        status = instance.status()
        outputs = instance.step_outputs()
        if on_simulator is not None:
            on_simulator(sim, instance)
    if len(records) > MAX_ATTEMPTS:
        raise ScenarioError(
            f"{scenario.source}: more than {MAX_ATTEMPTS} step attempts: a retry loop that "
            "only the engine's speed bounds (give retries a delay or a smaller limit)"
        )
    attempts, gaps = attempts_and_gaps(records)
    error = status["error"]
    error_out: dict[str, Any] | None = None
    if status["status"] == "errored" and error:
        name, message = _instance_error(error, escaped[-1] if escaped else None)
        error_out = {"message": message}
        if scenario.format >= 2:
            error_out["name"] = name
    trace: dict[str, Any] = {
        "name": scenario.name,
        "status": status["status"],
        "output": status["output"] if status["status"] == "complete" else None,
        "error": error_out,
        "attempts": attempts,
        "retry_gaps_ms": gaps,
    }
    if scenario.format >= 2:
        trace["control_errors"] = driver.control_errors
        if scenario.step_outputs:
            trace["step_outputs"] = outputs
        if scenario.runs:
            trace["runs"] = dict(Counter(rec["key"] for rec in records))
    return trace


def _not_created(scenario: Scenario, message: str) -> dict[str, Any]:
    trace: dict[str, Any] = {
        "name": scenario.name,
        "status": "not-created",
        "output": None,
        "error": None,
        "attempts": {},
        "retry_gaps_ms": {},
        "control_errors": [{"op": "create", "message": message}],
    }
    if scenario.step_outputs:
        trace["step_outputs"] = None
    return trace


def _epoch_ms(timestamp: Any) -> float:
    """The instance's creation time in epoch ms, from the event's timestamp."""
    if isinstance(timestamp, _dt.datetime):
        return timestamp.timestamp() * 1000
    return float(timestamp)
