"""The deterministic simulator of the Cloudflare Workflows engine.

Structure: a `Simulator` owns one virtual-time loop, one store and the seeded Random. Each
instance runs in *lifetimes*: a lifetime calls the workflow from the top and replays
checkpointed steps from the store; a crash, pause or restart ends it and the next one replays.
Everything durable goes through `_Lifetime.commit`, which refuses writes once the lifetime is
dead, so nothing is written after a crash point.

The rules implemented here, with Cloudflare's sources, are in shared/cloudflare/SEMANTICS.md;
the comments name the rule where the code is not obviously it.
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import inspect
import json
import random
import re
import uuid
from collections import deque
from collections.abc import Callable, Coroutine, Iterable, Mapping
from typing import Any

from awf_sim._coro import finish
from awf_sim.dsl._config import PROFILES, ResolvedConfig, merge_config
from awf_sim.dsl._duration import parse_duration
from awf_sim.dsl._errors import (
    AwfError,
    DefinitionError,
    NonRetryableError,
    SerializationError,
    StepError,
    WorkflowFatalError,
)
from awf_sim.dsl._identity import MAX_PAYLOAD_BYTES, MAX_STEP_NAME, canonical, dump_result, loads
from awf_sim.dsl._names import validate_instance_id
from awf_sim.dsl._proxy import StepCall, WorkflowApi
from awf_sim.dsl._workflow import Workflow, registered_workflows
from awf_sim.engine._ambient import simulation_scope
from awf_sim.engine._hooks import (
    INVALID_CONFIG,
    Action,
    Crash,
    ForceTimeout,
    Hooks,
    MockError,
    MockResult,
    StepRef,
)
from awf_sim.engine._loop import VirtualLoop
from awf_sim.engine._store import Record, Store, open_store
from awf_sim.sdk._context import HandlerContext

__all__ = [
    "DEFAULT_COMPATIBILITY_DATE",
    "DEFAULT_EPOCH",
    "Instance",
    "InstanceError",
    "Simulator",
    "StepInfo",
]

DEFAULT_EPOCH = _dt.datetime(2026, 1, 1, tzinfo=_dt.UTC)
DEFAULT_COMPATIBILITY_DATE = "2026-11-01"
# From this compatibility date an uncaught NonRetryableError keeps its own message
# (workflows_preserve_non_retryable_error_message, SEMANTICS §1.5).
_PRESERVE_NON_RETRYABLE_FROM = "2026-05-14"
_NON_RETRYABLE_FIXED = (
    "The execution of the Workflow instance was terminated, as a step threw an "
    "NonRetryableError and it was not handled"
)
TERMINAL = frozenset({"complete", "errored", "terminated"})
_INTERNAL_ERROR = {
    "name": "WorkflowInternalError",
    "message": "Attempt failed due to internal workflows error",
}

_loads = loads
_CONTROL = re.compile(r"[\x00-\x1f]")


class InstanceError(AwfError):
    """A lifecycle call that the instance's state does not allow (Cloudflare's messages)."""


class _Abandoned(BaseException):
    """Raised into code that still runs in a lifetime that has ended (crash, pause, stop)."""


class StepInfo:
    """What a step callback learns about its attempt."""

    __slots__ = ("attempt", "config", "count", "instance_id", "name", "path")

    def __init__(
        self,
        instance_id: str,
        name: str,
        path: str,
        count: int,
        attempt: int,
        config: ResolvedConfig,
    ) -> None:
        self.instance_id = instance_id
        self.name = name
        self.path = path
        self.count = count
        self.attempt = attempt
        self.config = config


def error_of(exc: BaseException) -> dict[str, str]:
    """{name, message} of an exception, the only form an error has after a replay."""
    name = getattr(exc, "name", None)
    message = getattr(exc, "message", None)
    if isinstance(name, str) and isinstance(message, str):
        return {"name": name, "message": message}
    return {"name": type(exc).__name__, "message": str(exc)}


def _retry_delay(retries: Mapping[str, Any], attempt: int) -> int:
    """Cloudflare's calcRetryDuration: n is the 1-based attempt that just failed; no jitter."""
    base: int = retries["delay"]
    backoff = retries["backoff"]
    if backoff == "exponential":
        return int(base * 2 ** (attempt - 1))
    if backoff == "linear":
        return base * attempt
    return base


class _Lifetime:
    """One run of an instance's workflow from the top; the Runtime the `wf` proxy talks to."""

    def __init__(self, sim: Simulator, iid: str, meta: Record) -> None:
        self.sim = sim
        self.iid = iid
        self.alive = True
        self.counters: dict[str, int] = {}
        self.step_calls = 0
        self.tasks: set[asyncio.Task[Any]] = set()
        self.timers: set[asyncio.TimerHandle] = set()
        self.executing = 0  # attempts whose callback is running (a pause waits for these)
        self.blocked = 0  # sleeps and retry waits in progress (time must pass for these)
        self.waits = 0  # event waits in progress (only the outside or a timeout ends these)
        self.waiters: dict[str, deque[tuple[str, asyncio.Future[Any]]]] = {}
        self.pause_gate: asyncio.Future[None] | None = None
        self._event = {
            "payload": _loads(meta["params"]),
            "timestamp": sim.wall_datetime(meta["created_ms"]),
            "instanceId": iid,
            "workflowName": meta["workflow"],
        }

    # -- Runtime protocol ----------------------------------------------------------------
    @property
    def instance_id(self) -> str:
        return self.iid

    @property
    def event(self) -> Mapping[str, Any]:
        return self._event

    def step(self, call: StepCall) -> Coroutine[Any, Any, Any]:
        return self.sim._do(self, call.name, call.label, call.config, call)

    def do(
        self, name: str, fn: Callable[[], Any], config: Mapping[str, Any]
    ) -> Coroutine[Any, Any, Any]:
        return self.sim._do(self, name, name, config, _RawStep(fn))

    def sleep(self, name: str, ms: int) -> Coroutine[Any, Any, None]:
        return self.sim._sleep(self, name, ms, None)

    def sleep_until(self, name: str, epoch_ms: int) -> Coroutine[Any, Any, None]:
        return self.sim._sleep(self, name, None, epoch_ms)

    async def wait_for(self, name: str, type: str, timeout_ms: int) -> Any:
        event = await self.sim._wait(self, name, type, timeout_ms)
        return event["payload"]

    # -- bookkeeping ---------------------------------------------------------------------
    def commit(
        self,
        *,
        meta: Record | None = None,
        steps: Mapping[str, Record | None] | None = None,
        events: Iterable[Record] = (),
        timeline: Iterable[Record] = (),
    ) -> None:
        if not self.alive:
            raise _Abandoned  # nothing is written after a crash point
        self.sim._store.commit(self.iid, meta=meta, steps=steps, events=events, timeline=timeline)

    def next_count(self, key: str) -> int:
        count = self.counters.get(key, 0) + 1
        self.counters[key] = count
        return count

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = self.sim._loop.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task


class _RawStep:
    """`wf.do(name, fn)`: fn takes no arguments."""

    __slots__ = ("fn",)

    def __init__(self, fn: Callable[[], Any]) -> None:
        self.fn = fn

    def invoke(self, _ctx: Any) -> Any:
        return self.fn()


class _CallbackStep:
    """A step whose callback receives the StepInfo itself (Cloudflare's Python step API)."""

    __slots__ = ("fn",)

    def __init__(self, fn: Callable[[StepInfo], Any]) -> None:
        self.fn = fn


class _TimedOut(Exception):
    pass


class Instance:
    """A handle on one workflow instance of a Simulator."""

    __slots__ = ("_sim", "id")

    def __init__(self, sim: Simulator, iid: str) -> None:
        self._sim = sim
        self.id = iid

    def status(self) -> dict[str, Any]:
        """{"status", "output", "error": {"name", "message"} | None} as Cloudflare reports it."""
        return self._sim._status(self.id)

    @property
    def workflow(self) -> str:
        """The name of the workflow this is an instance of."""
        name: str = self._sim._meta(self.id)["workflow"]
        return name

    @property
    def timeline(self) -> list[dict[str, Any]]:
        """Every step start, attempt, checkpoint, sleep, event, crash and recovery, in order."""
        return [dict(e) for e in self._sim._store.timeline(self.id)]

    def send_event(self, type: str, payload: Any = None) -> None:
        self._sim._send_event(self.id, type, payload)

    def pause(self) -> None:
        self._sim._pause(self.id)

    def resume(self) -> None:
        self._sim._resume(self.id)

    def terminate(self) -> None:
        self._sim._terminate(self.id)

    def restart(self) -> None:
        self._sim._restart(self.id)

    def __repr__(self) -> str:
        return f"<Instance {self.id} {self.status()['status']}>"


class Simulator:
    """A deterministic Cloudflare Workflows engine on virtual time.

    `store`: None (memory), a SQLite path, or a Store. `profile`: "production" (Cloudflare's
    documented defaults) or "local" (Miniflare's: 1 s default retry delay). Same seed and same
    input give the same timeline, event for event.
    """

    def __init__(
        self,
        seed: int = 0,
        store: Store | str | None = None,
        profile: str = "production",
        *,
        db: Any = None,
        env: Mapping[str, Any] | None = None,
        step_limit: int = 10_000,
        epoch: _dt.datetime = DEFAULT_EPOCH,
        compatibility_date: str = DEFAULT_COMPATIBILITY_DATE,
        hooks: Hooks | None = None,
        ai: Any = None,
        http: Any = None,
        isolation: str | None = None,
        limits: Any = None,
    ) -> None:
        if profile not in PROFILES:
            raise DefinitionError(
                f"unknown profile {profile!r}: use one of {', '.join(sorted(PROFILES))}"
            )
        if isolation not in (None, "process"):
            raise DefinitionError(
                f"unknown isolation {isolation!r}: use 'process', or leave it out to run "
                "handlers in this process"
            )
        if isinstance(step_limit, bool) or not isinstance(step_limit, int) or step_limit < 1:
            raise DefinitionError(f"step_limit must be a positive whole number, got {step_limit!r}")
        self.seed = seed
        self.profile = profile
        self._defaults = PROFILES[profile]
        self.step_limit = step_limit
        self.env: Mapping[str, Any] = dict(env or {})
        self._epoch_ms = round(
            (epoch if epoch.tzinfo else epoch.replace(tzinfo=_dt.UTC)).timestamp() * 1000
        )
        self._preserve_nre = compatibility_date >= _PRESERVE_NON_RETRYABLE_FROM
        self._rng = random.Random(seed)
        self._store = open_store(store)
        self._loop = VirtualLoop()
        self._lifetimes: dict[str, _Lifetime] = {}
        self._programs: dict[str, Any] = {}
        self._db_spec = db
        self._db: Any = None
        self._running = False
        self.hooks = hooks
        self._ai_spec = ai
        self._http_spec = http
        self._ai_client: Any = None
        self._http_client: Any = None
        self.isolation = isolation
        self._limits = limits
        self._effects: Any = None
        # Instances evicted while hibernating: the timer that wakes them, and whether only
        # time can (a sleep) or an event may too (an event wait).
        self._evicted: dict[str, tuple[asyncio.TimerHandle, bool]] = {}

    # -- time ------------------------------------------------------------------------------
    @property
    def now_ms(self) -> int:
        """Virtual milliseconds since the simulator started."""
        return self._loop.now_ms

    def wall_ms(self) -> int:
        """Virtual wall-clock time in epoch milliseconds."""
        return self._epoch_ms + self._loop.now_ms

    def wall_datetime(self, at_ms: int | None = None) -> _dt.datetime:
        ms = self._loop.now_ms if at_ms is None else at_ms
        return _dt.datetime.fromtimestamp((self._epoch_ms + ms) / 1000, tz=_dt.UTC)

    # -- the database handlers see -------------------------------------------------------
    @property
    def db(self) -> Any:
        """The simulated database (ctx.db); external to the engine, so it survives crashes."""
        if self._db is None:
            from awf_sim.sdk._db import Database

            spec = self._db_spec if self._db_spec is not None else Database()
            self._db = spec.connect() if hasattr(spec, "connect") else spec
        return self._db

    @property
    def effects(self) -> Any:
        """The external effects handlers made through ctx.http and ctx.ai (an EffectLog):
        what chaos compares between runs, with the database."""
        if self._effects is None:
            from awf_sim.sdk._effects import EffectLog

            self._effects = EffectLog()
        return self._effects

    def _ai(self) -> Any:
        if self._ai_client is None:
            from awf_sim.sdk._ai import AIClient, DeterministicAI

            provider = self._ai_spec if self._ai_spec is not None else DeterministicAI(self.seed)
            self._ai_client = AIClient(provider, self.effects)
        return self._ai_client

    def _http(self) -> Any:
        if self._http_client is None:
            from awf_sim.sdk._http import make_http_client

            self._http_client = make_http_client(self._http_spec, self.effects)
        return self._http_client

    # -- instances ---------------------------------------------------------------------------
    def create(self, workflow: Any, params: Any = None, id: str | None = None) -> Instance:
        """Queue a new instance of `workflow` (a Workflow, or a class with `run(event, step)`)."""
        name = self._register(workflow)
        params_json = canonical({} if params is None else params, root="params")
        if len(params_json.encode()) > MAX_PAYLOAD_BYTES:
            raise DefinitionError("params are over Cloudflare's 1 MiB limit for event payloads")
        if id is None:
            # From the seeded source, so ids replay; a store that already holds instances
            # (a SQLite file from an earlier run) gets the next unused one.
            id = str(uuid.UUID(int=self._rng.getrandbits(128), version=4))
            while self._store.get_instance(id) is not None:
                id = str(uuid.UUID(int=self._rng.getrandbits(128), version=4))
        iid = validate_instance_id(id)
        if self._store.get_instance(iid) is not None:
            raise InstanceError(f"an instance with id {iid!r} already exists")
        meta = {
            "id": iid,
            "workflow": name,
            "params": params_json,
            "status": "queued",
            "output": None,
            "error": None,
            "created_ms": self.now_ms,
            "paused_ms": None,
        }
        self._store.commit(iid, meta=meta)
        self._start(iid, meta, kind="workflow-start")
        return Instance(self, iid)

    def instance(self, id: str) -> Instance:
        if self._store.get_instance(id) is None:
            raise InstanceError(f"instance.not_found: no instance with id {id!r}")
        return Instance(self, id)

    @property
    def instances(self) -> list[Instance]:
        return [Instance(self, iid) for iid in self._store.instance_ids()]

    def register(self, target: Any) -> str:
        """Make `target` (a Workflow, or a class with `run(event, step)`) known under its
        name, so `recover()` can replay stored instances of it; returns the name. `create`
        does this itself; a process that only recovers calls it (or imports the flow)."""
        return self._register(target)

    def _register(self, target: Any) -> str:
        if isinstance(target, Workflow):
            name = target.name
        elif isinstance(target, type) and callable(getattr(target, "run", None)):
            name = getattr(target, "workflow_name", None) or target.__name__
        else:
            raise DefinitionError(
                f"cannot run {target!r}: pass a Workflow, or a class with "
                "`async def run(self, event, step)`"
            )
        self._programs[name] = target
        return name

    def _program(self, name: str) -> Any:
        target = self._programs.get(name) or registered_workflows().get(name)
        if target is None:
            raise InstanceError(
                f"cannot recover an instance of workflow {name!r}: it is not defined in this "
                "process (import the flow file that defines it first)"
            )
        return target

    # -- driving the loop -------------------------------------------------------------------
    def run(self) -> None:
        """Advance virtual time until every instance is finished, paused, or waiting on
        something only the outside can provide (an event)."""
        self._drive(self._quiescent, None)

    def advance(self, duration: str | int | float) -> None:
        """Advance virtual time by `duration`, running everything that falls due."""
        self._drive(lambda: False, self.now_ms + parse_duration(duration))

    def run_until_done(self, instance: Instance, max_ms: int | None = None) -> None:
        """Run until `instance` is terminal or paused, letting event waits time out."""

        def done() -> bool:
            meta = self._store.get_instance(instance.id)
            return meta is None or meta["status"] in TERMINAL or meta["status"] == "paused"

        target = None if max_ms is None else self.now_ms + max_ms
        self._drive(done, target)

    def _drive(self, stop_when: Callable[[], bool], target_ms: int | None) -> None:
        if self._running:
            raise RuntimeError("the simulator is already running (re-entrant run() call)")
        if asyncio._get_running_loop() is not None:
            raise RuntimeError(
                "the simulator cannot run inside a running event loop (an async test or "
                "handler): call it from synchronous code, run it in a thread "
                "(`await asyncio.to_thread(sim.run)`), or use `await test_workflow.arun(params)`"
            )
        self._running = True
        try:
            with simulation_scope(self.wall_ms, self._rng):
                self._loop.run(stop_when, target_ms)
        finally:
            self._running = False

    def _quiescent(self) -> bool:
        # Idle only on event waits: a lifetime on a sleep, a retry wait or a suspended handler
        # needs time to pass; one blocked on nothing the engine knows lets time pass too.
        return all(
            lt.executing == 0 and lt.blocked == 0 and lt.waits > 0
            for lt in self._lifetimes.values()
        ) and not any(needs_time for _, needs_time in self._evicted.values())

    # -- crash and recovery -------------------------------------------------------------------
    def crash(self) -> None:
        """Drop every in-memory state of the engine, as if its process died now."""
        for iid, lt in list(self._lifetimes.items()):
            self._store.commit(iid, timeline=[self._entry("crash")])
            self._abort(lt)
        for wake, _ in self._evicted.values():
            wake.cancel()  # the engine that would have woken them is gone; recover() does
        self._evicted.clear()
        self._settle()

    def recover(self) -> list[Instance]:
        """Replay every unfinished, unpaused instance from the store (a new engine lifetime)."""
        recovered = []
        for iid in self._store.instance_ids():
            meta = self._store.get_instance(iid)
            if meta is None or iid in self._lifetimes:
                continue
            if meta["status"] in TERMINAL or meta["status"] == "paused":
                continue
            self._start(iid, meta, kind="recover")
            recovered.append(Instance(self, iid))
        return recovered

    def close(self) -> None:
        """Abandon running instances and release the store (a SQLite file stays on disk)."""
        for lt in list(self._lifetimes.values()):
            self._abort(lt)
        self._settle()
        if self._http_client is not None:
            self._drive_coroutine(self._http_client.aclose())
        self._loop.close()
        if self._db is not None and hasattr(self._db, "close"):
            self._db.close()
        self._store.close()

    def __enter__(self) -> Simulator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _drive_coroutine(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run one housekeeping coroutine to its end on the simulator's loop."""
        task = self._loop.create_task(coro)
        self._drive(task.done, None)
        if not task.cancelled():
            task.exception()

    def _settle(self) -> None:
        """Let cancelled tasks of ended lifetimes unwind (their writes are refused)."""
        if self._loop.is_closed() or self._running:
            return
        # Usually nothing is left (a run ends when the loop is idle): then the drive would run
        # no code, and skipping it saves the simulation scope's swap of the random state.
        if self._loop.has_due_work():
            self._drive(lambda: True, None)

    def _abort(self, lt: _Lifetime) -> None:
        lt.alive = False
        if self._lifetimes.get(lt.iid) is lt:
            del self._lifetimes[lt.iid]
        for handle in lt.timers:
            handle.cancel()
        lt.timers.clear()
        current = asyncio.current_task(self._loop) if self._running else None
        for task in list(lt.tasks):
            if task is not current:
                task.cancel()

    # -- a lifetime -------------------------------------------------------------------------
    def _start(self, iid: str, meta: Record, *, kind: str) -> None:
        evicted = self._evicted.pop(iid, None)
        if evicted is not None:
            evicted[0].cancel()  # woken before its timer (an event, a resume, recover)
        target = self._program(meta["workflow"])
        lt = _Lifetime(self, iid, meta)
        self._lifetimes[iid] = lt
        self._store.commit(iid, timeline=[self._entry(kind)])
        if self.hooks is not None:
            self.hooks.lifetime_start(self, iid, kind)
        lt.spawn(self._main(lt, target))

    async def _main(self, lt: _Lifetime, target: Any) -> None:
        meta = self._store.get_instance(lt.iid)
        assert meta is not None
        if meta["status"] != "running":
            lt.commit(meta={**meta, "status": "running"})
        try:
            if isinstance(target, Workflow):
                params = lt.event["payload"]
                model = target.input_model
                if model is not None:
                    params = model.model_validate(params)  # type: ignore[attr-defined]
                result = target.call(WorkflowApi(lt, target), params)
            else:
                from awf_sim.engine._pystep import PythonStep, instantiate

                result = instantiate(target, self.env).run(dict(lt.event), PythonStep(lt))
            if inspect.isawaitable(result):
                result = await result
            output = dump_result(result, root="workflow output")
        except _Abandoned:
            return
        except NonRetryableError as exc:
            error = (
                error_of(exc)
                if self._preserve_nre
                else {"name": "WorkflowFatalError", "message": _NON_RETRYABLE_FIXED}
            )
            self._finish(lt, "errored", None, error)
        except Exception as exc:
            self._finish(lt, "errored", None, error_of(exc))
        else:
            self._finish(lt, "complete", output, None)

    def _finish(
        self, lt: _Lifetime, status: str, output: str | None, error: dict[str, str] | None
    ) -> None:
        if not lt.alive:
            return
        meta = self._store.get_instance(lt.iid)
        assert meta is not None
        if status == "complete":
            entry = self._entry("workflow-success")
        else:
            entry = self._entry("workflow-failure", error=error)
        lt.commit(
            meta={**meta, "status": status, "output": output, "error": error}, timeline=[entry]
        )
        # Anything still running (a timed-out handler, an un-awaited step) ends with the instance.
        self._abort(lt)

    def _fatal(self, lt: _Lifetime, message: str) -> _Abandoned:
        """End the instance errored with a WorkflowFatalError; returns what to raise."""
        self._finish(lt, "errored", None, {"name": "WorkflowFatalError", "message": message})
        return _Abandoned()

    # -- timeline -----------------------------------------------------------------------------
    def _entry(
        self,
        kind: str,
        path: str | None = None,
        name: str | None = None,
        attempt: int | None = None,
        **details: Any,
    ) -> dict[str, Any]:
        entry = {"at_ms": self._loop.now_ms, "kind": kind, "path": path, "name": name}
        entry["attempt"] = attempt
        if details:
            entry.update(details)
        return entry

    def _begin(
        self, lt: _Lifetime, kind: str, name: str, path: str
    ) -> tuple[int, str, StepRef | None]:
        """Number this call as Cloudflare does (the k-th call of a name in this lifetime), give
        its store key, and tell the hooks, which see every call, cached or not."""
        count = lt.next_count(kind + "\x1f" + name)
        key = f"{kind}:{name}#{count}"
        ref = None
        if self.hooks is not None:
            ref = StepRef(kind, path, name, count, lt.next_count("\x1fseq:" + kind))
            self.hooks.step_call(lt.iid, ref)
        return count, key, ref

    # -- step.do ------------------------------------------------------------------------------
    async def _do(
        self,
        lt: _Lifetime,
        name: str,
        path: str,
        user_config: Mapping[str, Any],
        call: Any,
    ) -> Any:
        if not lt.alive:
            raise _Abandoned
        if lt.pause_gate is not None:
            await lt.pause_gate  # new steps wait while a pause is pending
        # Order of checks as in Cloudflare: step limit, then name, then config. Each throws a
        # WorkflowFatalError into run(), which may catch it (SEMANTICS §1.1, §2.1).
        lt.step_calls += 1
        if lt.step_calls > self.step_limit:
            raise WorkflowFatalError(
                f"The limit of {self.step_limit} steps has been reached. This limit can be "
                "changed in your worker configuration."
            )
        if len(name) > MAX_STEP_NAME or _CONTROL.search(name):
            raise WorkflowFatalError(
                f'Step name "{name}" exceeds max length ({MAX_STEP_NAME} chars) or invalid '
                "characters found"
            )
        if user_config is INVALID_CONFIG:
            raise WorkflowFatalError(
                f'Step config for "{name}" is in a invalid format. See '
                "https://developers.cloudflare.com/workflows/build/sleeping-and-retrying/"
            )
        count, key, ref = self._begin(lt, "do", name, path)
        rec = self._store.get_step(lt.iid, key)
        if rec is not None:
            state = rec["state"]
            if state == "done":
                return _loads(rec["value"])
            if state == "failed":
                raise StepError(rec["error"]["message"], rec["error"]["name"])
        return await self._execute(lt, key, name, path, count, user_config, call, rec, ref)

    async def _execute(
        self,
        lt: _Lifetime,
        key: str,
        name: str,
        path: str,
        count: int,
        user_config: Mapping[str, Any],
        call: Any,
        rec: Record | None,
        ref: StepRef | None,
    ) -> Any:
        hooks = self.hooks
        started: list[dict[str, Any]] = []  # step-start, committed with the first attempt
        if rec is None:
            if hooks is not None and ref is not None:
                self._act(lt, hooks.before_step(lt.iid, ref), ref, None)
            # The resolved config is persisted at the first execution and reused on replay.
            config = merge_config(self._defaults, user_config)
            rec = {
                "kind": "do",
                "name": name,
                "path": path,
                "count": count,
                "config": config,
                "attempts": 0,
                "state": "running",
                "retry_at": None,
            }
            # The resolved config rides on step-start: what a reader of the timeline (a
            # person, chaos's retry-policy check) needs to judge the attempts that follow.
            started.append(self._entry("step-start", path, name, config=config))
        config = rec["config"]
        retries = config["retries"]
        limit = retries["limit"]
        attempt: int = rec["attempts"]
        if rec["retry_at"] is not None:
            await self._wait_until(lt, rec["retry_at"])  # a retry wait survives crashes
        elif attempt > 0:
            # At-least-once: the attempt started (its count was stored) but no result was;
            # the crashed attempt used up one unit of the retry budget.
            lt.commit(
                timeline=[
                    self._entry("attempt-failure", path, name, attempt, error=_INTERNAL_ERROR)
                ]
            )
            if attempt > limit:
                return self._fail_step(lt, key, rec, path, name, attempt, _INTERNAL_ERROR)
        while True:
            attempt += 1
            rec = {**rec, "attempts": attempt, "retry_at": None}
            # The attempt count is stored before the callback runs (at-least-once); on the
            # first attempt in the same commit as the step's start, nothing runs between them.
            started.append(self._entry("attempt-start", path, name, attempt))
            lt.commit(steps={key: rec}, timeline=started)
            started = []
            info = StepInfo(lt.iid, name, path, count, attempt, config)
            action = None
            if hooks is not None and ref is not None:
                action = self._act(lt, hooks.before_attempt(lt.iid, ref, attempt), ref, attempt)
            try:
                value = await self._attempt(lt, call, info, config["timeout"], action)
                result = dump_result(value, root=f"result of {path}")
                if len(result) > MAX_PAYLOAD_BYTES // 4 and len(result.encode()) > (
                    MAX_PAYLOAD_BYTES
                ):
                    # Thrown inside the attempt on Cloudflare, so it is retried like any error.
                    raise StepError(
                        f"Step {name}-{count} output is too large. Maximum allowed size is 1MiB.",
                        "WorkflowInternalError",
                    )
                if hooks is not None and ref is not None:
                    self._act(lt, hooks.after_effect(lt.iid, ref, attempt), ref, attempt)
            except _Abandoned:
                raise
            except SerializationError as exc:
                raise self._fatal(
                    lt,
                    f'The execution of the Workflow instance was terminated, as the step "{name}" '
                    f"returned a value which is not serialisable ({exc})",
                ) from None
            except NonRetryableError as exc:
                err = error_of(exc)
                # Not persisted (as in Cloudflare's local engine): a replay runs the step again.
                lt.commit(
                    steps={key: None},
                    timeline=[
                        self._entry("attempt-failure", path, name, attempt, error=err),
                        self._entry("step-failure", path, name, attempt, error=err),
                    ],
                )
                raise NonRetryableError(err["message"], err["name"]) from None
            except Exception as exc:
                err = error_of(exc)
                if attempt <= limit:  # `limit` counts retries: attempts = limit + 1
                    delay = _retry_delay(retries, attempt)
                    if hooks is not None and ref is not None:
                        delay = hooks.retry_delay(lt.iid, ref, attempt, delay)
                    retry_at = self._loop.now_ms + delay
                    rec = {**rec, "retry_at": retry_at}
                    lt.commit(
                        steps={key: rec},
                        timeline=[
                            self._entry(
                                "attempt-failure", path, name, attempt, error=err, retry_in_ms=delay
                            )
                        ],
                    )
                    self._pause_point(lt)
                    if delay:
                        await self._wait_until(lt, retry_at)
                    continue
                lt.commit(timeline=[self._entry("attempt-failure", path, name, attempt, error=err)])
                self._pause_point(lt)
                return self._fail_step(lt, key, rec, path, name, attempt, err)
            else:
                lt.commit(
                    steps={key: {**rec, "state": "done", "value": result}},
                    timeline=[
                        self._entry("attempt-success", path, name, attempt),
                        self._entry("checkpoint", path, name, attempt),
                    ],
                )
                if hooks is not None and ref is not None:
                    self._act(lt, hooks.after_checkpoint(lt.iid, ref, attempt), ref, attempt)
                self._pause_point(lt)
                return _loads(result)

    def _act(
        self, lt: _Lifetime, action: Action | None, ref: StepRef, attempt: int | None
    ) -> Action | None:
        """Carry out a crash now; hand any other action back to the caller."""
        if isinstance(action, Crash):
            raise self._crash_now(lt, action, ref, attempt)
        return action

    def _crash_now(
        self, lt: _Lifetime, action: Crash, ref: StepRef | None, attempt: int | None
    ) -> _Abandoned:
        """The engine dies here (an injected fault); Cloudflare restarts it and the instance
        replays from whatever the store holds."""
        entry = self._entry("crash", ref.path if ref else None, ref.name if ref else None, attempt)
        entry["fault"] = action.fault
        self._store.commit(lt.iid, timeline=[entry])
        self._abort(lt)
        if action.wake_at_ms is None or action.wake_at_ms <= self._loop.now_ms:
            self._loop.call_soon(self._restart_after_crash, lt.iid)
        else:
            wake = self._loop.call_at(action.wake_at_ms / 1000, self._restart_after_crash, lt.iid)
            # Evicted from a sleep, only time wakes it; from an event wait, the outside may.
            self._evicted[lt.iid] = (wake, ref is not None and ref.kind == "sleep")
        return _Abandoned()

    def _restart_after_crash(self, iid: str) -> None:
        evicted = self._evicted.pop(iid, None)
        if evicted is not None:
            evicted[0].cancel()  # also when it ended meanwhile (terminated, paused)
        meta = self._store.get_instance(iid)
        if meta is None or iid in self._lifetimes:
            return
        if meta["status"] in TERMINAL or meta["status"] == "paused":
            return
        self._start(iid, meta, kind="recover")

    def skew_clock(self, ms: int) -> None:
        """Jump the virtual wall clock by `ms` (a fault: clocks differ between replays).
        Virtual monotonic time, and so every timer, is unaffected."""
        self._epoch_ms += ms

    def reseed(self, seed: int) -> None:
        """Change the randomness stream from here on (a fault: a replay on a new machine)."""
        if self._running:
            random.seed(seed)  # inside a run the live state is the swapped-in global one
        else:
            self._rng.seed(seed)

    def _pause_point(self, lt: _Lifetime) -> None:
        """A step that ends while a pause is pending completes the pause and ends the run."""
        if lt.pause_gate is not None and lt.executing == 0:
            self._complete_pause(lt)
            raise _Abandoned

    def _fail_step(
        self,
        lt: _Lifetime,
        key: str,
        rec: Record,
        path: str,
        name: str,
        attempt: int,
        err: dict[str, str],
    ) -> Any:
        # The final error is persisted: a replay raises it again without running the step.
        lt.commit(
            steps={key: {**rec, "state": "failed", "error": err, "retry_at": None}},
            timeline=[self._entry("step-failure", path, name, attempt, error=err)],
        )
        raise StepError(err["message"], err["name"])

    async def _attempt(
        self,
        lt: _Lifetime,
        call: Any,
        info: StepInfo,
        timeout_ms: int,
        action: Action | None = None,
    ) -> Any:
        if action is not None:
            if isinstance(action, MockResult):
                return action.value  # the handler does not run; attempt and checkpoint happen
            if isinstance(action, MockError):
                if action.name == "NonRetryableError":
                    raise NonRetryableError(action.message)
                raise StepError(action.message, action.name)
        lt.executing += 1
        try:
            if action is not None and isinstance(action, ForceTimeout):
                return await self._forced_timeout(lt, call, info, timeout_ms, action)
            if isinstance(call, _CallbackStep):
                result = call.fn(info)
            elif self.isolation == "process":
                return await self._isolated(lt, call, info)
            else:
                result = call.invoke(self._handler_ctx(info))
            if not inspect.isawaitable(result):
                return result
            coro = result if inspect.iscoroutine(result) else _as_coroutine(result)
            # Fast path: a handler that never suspends costs no Task and no timeout timer.
            try:
                first = coro.send(None)
            except StopIteration as stop:
                return stop.value
            return await self._race(lt, coro, first, timeout_ms)
        finally:
            lt.executing -= 1

    async def _isolated(self, lt: _Lifetime, call: Any, info: StepInfo) -> Any:
        """The attempt in a forked process with CPU, memory and wall-time limits and no
        network; virtual time stands still while it runs (the loop waits for the thread)."""
        from awf_sim.sdk._isolation import Limits, run_isolated

        ctx = self._handler_ctx(info)
        ctx.db  # noqa: B018 - opened here so the child's calls reach this database
        limits = self._limits if self._limits is not None else Limits()
        # The child gets its own simulation scope: virtual time, and randomness derived
        # from the seed and the step, so an isolated run is as reproducible as any other.
        child_seed = f"{self.seed}:{lt.iid}:{info.name}:{info.count}:{info.attempt}"
        wall_ms = self.wall_ms()

        def scope() -> Any:
            return simulation_scope(lambda: wall_ms, random.Random(child_seed))

        return await self._loop.run_in_executor(
            None, lambda: run_isolated(call.invoke, ctx, limits, scope=scope)
        )

    async def _forced_timeout(
        self, lt: _Lifetime, call: Any, info: StepInfo, timeout_ms: int, action: ForceTimeout
    ) -> Any:
        """The handler starts (its effects happen) but the attempt times out regardless."""
        started = self._loop.now_ms
        try:
            if isinstance(call, _CallbackStep):
                result = call.fn(info)
            else:
                result = call.invoke(self._handler_ctx(info))
            if inspect.isawaitable(result):
                coro = result if inspect.iscoroutine(result) else _as_coroutine(result)
                try:
                    first = coro.send(None)
                except StopIteration:
                    pass
                else:
                    lt.spawn(finish(coro, first)).add_done_callback(_consume_exception)
        except Exception:  # the timeout wins the race; a late failure is ignored like a result
            pass
        ms = timeout_ms if action.after_config else 0
        if ms:
            await self._wait_until(lt, started + ms)
        raise StepError(f"Execution timed out after {ms}ms", "WorkflowTimeoutError")

    async def _race(
        self, lt: _Lifetime, coro: Coroutine[Any, Any, Any], first: Any, timeout_ms: int
    ) -> Any:
        task = lt.spawn(finish(coro, first))
        task.add_done_callback(_consume_exception)
        waiter: asyncio.Future[None] = self._loop.create_future()

        def settle(_t: object = None) -> None:
            if not waiter.done():
                waiter.set_result(None)

        def expire() -> None:
            if not waiter.done():
                waiter.set_exception(_TimedOut())

        task.add_done_callback(settle)
        handle = self._loop.call_at((self._loop.now_ms + timeout_ms) / 1000, expire)
        lt.timers.add(handle)
        try:
            await waiter
        except _TimedOut:
            # The callback is not killed; its late result is ignored.
            raise StepError(
                f"Execution timed out after {timeout_ms}ms", "WorkflowTimeoutError"
            ) from None
        finally:
            handle.cancel()
            lt.timers.discard(handle)
        return task.result()

    def _handler_ctx(self, info: StepInfo) -> HandlerContext:
        return HandlerContext(
            instance_id=info.instance_id,
            step={"name": info.name, "path": info.path, "count": info.count},
            attempt=info.attempt,
            env=self.env,
            services=self,
        )

    # What a HandlerContext asks for on first use of ctx.db / ctx.ai / ctx.http; the label
    # ("Inventory.check#1") names the step in database errors and in the effect log.
    def db_for(self, label: str) -> Any:
        db = self.db
        if hasattr(db, "step"):
            db.step = label
        return db

    def ai_for(self, label: str) -> Any:
        client = self._ai()
        self.effects.step = label
        return client

    def http_for(self, label: str) -> Any:
        client = self._http()
        self.effects.step = label
        return client

    # -- virtual waiting ----------------------------------------------------------------------
    async def _wait_until(self, lt: _Lifetime, at_ms: int) -> None:
        if at_ms <= self._loop.now_ms:
            return
        fut: asyncio.Future[None] = self._loop.create_future()

        def fire() -> None:
            lt.timers.discard(handle)
            if not fut.done():
                fut.set_result(None)

        handle = self._loop.call_at(at_ms / 1000, fire)
        lt.timers.add(handle)
        lt.blocked += 1
        try:
            await fut
        finally:
            lt.blocked -= 1
            handle.cancel()
            lt.timers.discard(handle)

    # -- sleep -----------------------------------------------------------------------------
    async def _sleep(
        self, lt: _Lifetime, name: str, ms: int | None, until_epoch_ms: int | None
    ) -> None:
        if not lt.alive:
            raise _Abandoned
        _, key, ref = self._begin(lt, "sleep", name, name)
        hooks = self.hooks
        rec = self._store.get_step(lt.iid, key)
        if rec is not None and rec["state"] == "done":
            return
        if rec is None:
            if until_epoch_ms is not None:
                ms = until_epoch_ms - self.wall_ms()
                if ms < 0:
                    raise DefinitionError(
                        f"wf.sleep_until({name!r}): You can't sleep until a time in the past, "
                        "time-traveler"
                    )
            assert ms is not None
            if hooks is not None and ref is not None:
                ms = hooks.sleep_ms(lt.iid, ref, ms)
            until = self._loop.now_ms + ms
            rec = {"kind": "sleep", "name": name, "state": "running", "until": until}
            lt.commit(
                steps={key: rec},
                timeline=[self._entry("sleep-start", name, name, duration_ms=ms, until_ms=until)],
            )
            if hooks is not None and ref is not None:
                self._act(lt, hooks.during_sleep(lt.iid, ref), ref, None)
        await self._wait_until(lt, rec["until"])
        lt.commit(
            steps={key: {**rec, "state": "done"}}, timeline=[self._entry("sleep-end", name, name)]
        )

    # -- events ------------------------------------------------------------------------------
    async def _wait(self, lt: _Lifetime, name: str, type: str, timeout_ms: int) -> Any:
        if not lt.alive:
            raise _Abandoned
        _, key, ref = self._begin(lt, "wait", name, name)
        hooks = self.hooks
        rec = self._store.get_step(lt.iid, key)
        if rec is not None:
            if rec["state"] == "done":
                return _loads(rec["value"])
            if rec["state"] == "failed":
                raise StepError(rec["error"]["message"], rec["error"]["name"])
        else:
            if hooks is not None and ref is not None:
                timeout_ms = hooks.wait_timeout_ms(lt.iid, ref, timeout_ms)
            rec = {
                "kind": "wait",
                "name": name,
                "type": type,
                "state": "running",
                "deadline": self._loop.now_ms + timeout_ms,
                "timeout_ms": timeout_ms,
            }
            lt.commit(
                steps={key: rec},
                timeline=[self._entry("wait-start", name, name, type=type, timeout_ms=timeout_ms)],
            )
        if hooks is not None and ref is not None and hooks.force_wait_timeout(lt.iid, ref):
            return self._wait_timed_out(lt, key, rec, name, type)
        # An event sent before the wait is buffered per type and consumed first in, first out.
        for ev in self._store.events(lt.iid):
            if ev["type"] == type and ev["consumed_by"] is None:
                return self._deliver(lt, key, rec, ev)
        if hooks is not None and ref is not None:
            self._act(lt, hooks.during_wait(lt.iid, ref), ref, None)
        fut: asyncio.Future[Any] = self._loop.create_future()
        queue = lt.waiters.setdefault(type, deque())
        entry = (key, fut)
        queue.append(entry)

        def expire() -> None:
            lt.timers.discard(handle)
            if not fut.done():
                fut.set_exception(_TimedOut())

        handle = self._loop.call_at(rec["deadline"] / 1000, expire)
        lt.timers.add(handle)
        lt.waits += 1
        try:
            return await fut
        except _TimedOut:
            return self._wait_timed_out(lt, key, rec, name, type)
        finally:
            lt.waits -= 1
            handle.cancel()
            lt.timers.discard(handle)
            if entry in queue:
                queue.remove(entry)  # a timed-out waiter gets no later event

    def _wait_timed_out(self, lt: _Lifetime, key: str, rec: Record, name: str, type: str) -> Any:
        err = {
            "name": "WorkflowTimeoutError",
            "message": f"Execution timed out after {rec['timeout_ms']}ms",
        }
        # A timed-out wait is persisted and not retried; replays raise it again.
        lt.commit(
            steps={key: {**rec, "state": "failed", "error": err}},
            timeline=[self._entry("wait-end", name, name, type=type, timed_out=True)],
        )
        raise StepError(err["message"], err["name"])

    def _deliver(self, lt: _Lifetime, key: str, rec: Record, ev: Record) -> Any:
        value = {"payload": _loads(ev["payload"]), "timestamp": ev["at_ms"], "type": ev["type"]}
        lt.commit(
            steps={key: {**rec, "state": "done", "value": json.dumps(value)}},
            events=[{**ev, "consumed_by": key}],
            timeline=[
                self._entry("wait-end", rec["name"], rec["name"], type=ev["type"], seq=ev["seq"])
            ],
        )
        return value

    def _send_event(self, iid: str, type: str, payload: Any) -> None:
        meta = self._meta(iid)
        if meta["status"] in TERMINAL:
            raise InstanceError(
                f"instance {iid!r} is {meta['status']}; it can no longer receive events"
            )
        if not isinstance(type, str) or not type:
            raise DefinitionError(f"event type must be a non-empty string, got {type!r}")
        payload_json = canonical(payload, root="event payload")
        if len(payload_json.encode()) > MAX_PAYLOAD_BYTES:
            raise DefinitionError("event payload is over Cloudflare's 1 MiB limit")
        seq = len(self._store.events(iid))
        ev = {
            "seq": seq,
            "type": type,
            "payload": payload_json,
            "at_ms": self.now_ms,
            "consumed_by": None,
        }
        self._store.commit(
            iid, events=[ev], timeline=[self._entry("event-received", type=type, seq=seq)]
        )
        if iid in self._evicted:
            # An event wakes an evicted instance; its replay consumes the buffered event.
            self._restart_after_crash(iid)
            return
        lt = self._lifetimes.get(iid)
        queue = lt.waiters.get(type) if lt is not None else None
        if lt is not None and queue:
            key, fut = queue.popleft()  # the oldest waiter gets the event
            rec = self._store.get_step(iid, key)
            assert rec is not None
            fut.set_result(self._deliver(lt, key, rec, ev))

    # -- lifecycle -------------------------------------------------------------------------
    def _meta(self, iid: str) -> Record:
        meta = self._store.get_instance(iid)
        if meta is None:
            raise InstanceError(f"instance.not_found: no instance with id {iid!r}")
        return meta

    def _status(self, iid: str) -> dict[str, Any]:
        meta = self._meta(iid)
        status = meta["status"]
        lt = self._lifetimes.get(iid)
        if (
            status == "running"
            and self.profile == "production"
            and lt is not None
            and lt.executing == 0
            and (lt.blocked or lt.waits)
        ):
            status = "waiting"  # hibernating on a sleep or an event (Miniflare stays running)
        output = meta["output"]
        return {
            "status": status,
            "output": _loads(output) if output is not None else None,
            "error": dict(meta["error"]) if meta["error"] else None,
        }

    def _pause(self, iid: str) -> None:
        meta = self._meta(iid)
        if meta["status"] not in ("running", "queued"):
            return  # a no-op unless running (Cloudflare)
        lt = self._lifetimes.get(iid)
        if lt is not None and lt.executing:
            # Wait for the running steps; new steps block until then.
            self._store.commit(iid, meta={**meta, "status": "waitingForPause"})
            lt.pause_gate = self._loop.create_future()
            return
        if lt is not None:
            self._complete_pause(lt)
        else:
            self._store.commit(
                iid,
                meta={**meta, "status": "paused", "paused_ms": self.now_ms},
                timeline=[self._entry("paused")],
            )

    def _complete_pause(self, lt: _Lifetime) -> None:
        meta = self._meta(lt.iid)
        lt.commit(
            meta={**meta, "status": "paused", "paused_ms": self.now_ms},
            timeline=[self._entry("paused")],
        )
        self._abort(lt)

    def _resume(self, iid: str) -> None:
        meta = self._meta(iid)
        status = meta["status"]
        if status == "waitingForPause":
            lt = self._lifetimes.get(iid)
            if lt is not None and lt.pause_gate is not None:
                gate, lt.pause_gate = lt.pause_gate, None
                gate.set_result(None)
            self._store.commit(
                iid, meta={**meta, "status": "running"}, timeline=[self._entry("resumed")]
            )
            return
        if status != "paused":
            return  # Miniflare ignores resume in other states
        # Timers keep their remaining time: shift every stored deadline by the paused span.
        shift = self.now_ms - (meta["paused_ms"] or self.now_ms)
        moved: dict[str, Record | None] = {}
        for key, rec in self._store.steps(iid).items():
            if rec["state"] != "running":
                continue
            for field in ("until", "deadline", "retry_at"):
                if rec.get(field) is not None:
                    rec = {**rec, field: rec[field] + shift}
            moved[key] = rec
        meta = {**meta, "status": "queued", "paused_ms": None}
        self._store.commit(iid, meta=meta, steps=moved)
        self._start(iid, meta, kind="resumed")

    def _terminate(self, iid: str) -> None:
        meta = self._meta(iid)
        if meta["status"] in TERMINAL:
            raise InstanceError(
                "(instance.cannot_terminate) Cannot terminate instance since its on a finite state"
            )
        self._store.commit(
            iid, meta={**meta, "status": "terminated"}, timeline=[self._entry("terminated")]
        )
        lt = self._lifetimes.get(iid)
        if lt is not None:
            self._abort(lt)

    def _restart(self, iid: str) -> None:
        meta = self._meta(iid)
        lt = self._lifetimes.get(iid)
        if lt is not None:
            self._abort(lt)
        # All step state and buffered events go; the original event is run again.
        meta = {**meta, "status": "queued", "output": None, "error": None, "paused_ms": None}
        self._store.commit(iid, meta=meta, wipe_steps=True)
        self._start(iid, meta, kind="restarted")


def _consume_exception(task: asyncio.Task[Any]) -> None:
    # A handler that fails after its step timed out: nobody awaits it, so mark it retrieved.
    if not task.cancelled():
        task.exception()


async def _as_coroutine(awaitable: Any) -> Any:
    return await awaitable
