"""The deterministic simulator of the Cloudflare Workflows engine.

Structure: a `Simulator` owns one virtual-time loop, one store and the seeded Random. Each
instance runs in *lifetimes*: a lifetime calls the workflow from the top and replays
checkpointed steps from the store; a crash, pause or restart ends it and the next one replays.
Everything durable goes through `Lifetime.commit`, which refuses writes once the lifetime is
dead, so nothing is written after a crash point.

The rules implemented here are in docs/semantics.md, cited as `SEMANTICS §n`; the comments
name the rule where the code is not obviously it. How the engine's modules divide the work:
docs/architecture.md.
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import os
import random
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, Unpack, overload

from awf_sim.dsl._config import PROFILES
from awf_sim.dsl._duration import parse_duration
from awf_sim.dsl._errors import DefinitionError
from awf_sim.dsl._identity import MAX_PAYLOAD_BYTES, canonical, utf8_size
from awf_sim.dsl._proxy import WorkflowApi
from awf_sim.dsl._workflow import Out, Workflow, registered_workflows
from awf_sim.engine._arguments import check_run_until, check_setup
from awf_sim.engine._body import BodyRun, workflow_failure
from awf_sim.engine._calls import TERMINAL, Abandoned, StepInfo
from awf_sim.engine._crashes import CrashRestarts
from awf_sim.engine._defaults import (
    DEFAULT_COMPATIBILITY_DATE,
    DEFAULT_CPU_MS,
    DEFAULT_EPOCH,
    PRESERVE_NON_RETRYABLE_FROM,
    RUNAWAY_WAITS,
)
from awf_sim.engine._executor import StepExecutor
from awf_sim.engine._gcpace import pace_collector, unpace_collector
from awf_sim.engine._hooks import Control, Crash, Hooks, LoopView, SendEvent, SkewClock, StepRef
from awf_sim.engine._instance import Instance
from awf_sim.engine._lifecycle import InstanceLifecycle, checked_instance_id
from awf_sim.engine._lifetime import Lifetime, Tally, utc_datetime
from awf_sim.engine._limits import checked_cpu_ms, isolated_limits
from awf_sim.engine._loop import VirtualLoop
from awf_sim.engine._pystep import PythonStep, instantiate
from awf_sim.engine._randomstate import GlobalRandomSwap, uuid4_from
from awf_sim.engine._records import InstanceMeta
from awf_sim.engine._runners import ForkRunner, HandlerRunner, InProcessRunner
from awf_sim.engine._services import Services
from awf_sim.engine._store import Store, open_store, stored_clock
from awf_sim.engine._timeline import EntryDetails, Row, row
from awf_sim.engine._unawaited import warn_unawaited
from awf_sim.engine._waits import EventWaits
from awf_sim.engine._world import World, check_ai, check_db, check_env, check_http
from awf_sim.errors import InstanceError

__all__ = [
    "DEFAULT_COMPATIBILITY_DATE",
    "DEFAULT_CPU_MS",
    "DEFAULT_EPOCH",
    "RUNAWAY_WAITS",
    "Instance",
    "InstanceError",
    "Simulator",
    "StepInfo",
]


class Simulator(CrashRestarts, InstanceLifecycle):
    """A deterministic Cloudflare Workflows engine on virtual time.

    `store`: None (memory), a SQLite path, or a Store. `profile`: "production" (Cloudflare's
    documented defaults) or "local" (Miniflare's: 1 s default retry delay). Same seed and same
    input give the same timeline, event for event. `world`: a `World` holding seed, profile,
    db, env, ai and http at once (then leave those keywords out). `durations`: "awf" refuses
    what Cloudflare would misread; "cloudflare" reads durations and step configs given to
    Cloudflare's Python step API exactly as Cloudflare's engine does (DESIGN §9). `cpu_ms`:
    the CPU time a handler or the workflow body may run without giving control back before
    it fails with CpuLimitExceeded (Cloudflare's default limit, 30 s; None: unbounded).
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
        world: World | None = None,
        durations: str = "awf",
        cpu_ms: int | None = DEFAULT_CPU_MS,
    ) -> None:
        if world is not None:
            if (seed, profile, db, env, ai, http) != (0, "production", None, None, None, None):
                raise DefinitionError(
                    "pass either world=World(...) or seed/profile/db/env/ai/http, not both"
                )
            db, ai, http, env, seed, profile = (
                world.db,
                world.ai,
                world.http,
                world.env,
                world.seed,
                world.profile,
            )
        else:
            check_db(db, "Simulator")
            check_env(env, "Simulator")
            check_http(http, "Simulator")
            check_ai(ai, "Simulator")
        check_setup(
            seed, epoch, compatibility_date, hooks, profile, isolation, step_limit, durations
        )
        self.durations = durations
        self.seed = seed
        self.profile = profile
        self._defaults = PROFILES[profile]
        self.step_limit = step_limit
        self.env: Mapping[str, Any] = dict(env or {})
        self._epoch_ms = round(
            (epoch if epoch.tzinfo else epoch.replace(tzinfo=_dt.UTC)).timestamp() * 1000
        )
        self._preserve_nre = compatibility_date >= PRESERVE_NON_RETRYABLE_FROM
        self._rng = random.Random(seed)
        self._swap = GlobalRandomSwap()
        self._store = open_store(store)
        if isinstance(store, str | os.PathLike):  # ctx.db kept beside it, as D1 keeps it
            from awf_sim.sdk._db_file import beside_store

            db = beside_store(db, store)
        self._loop = VirtualLoop()
        if store is not None:  # a store written before: this engine is its next lifetime
            self._loop._set_now(stored_clock(self._store))
        self._loop.cpu_budget_ms = checked_cpu_ms(cpu_ms, "cpu_ms")
        self._lifetimes: dict[str, Lifetime] = {}
        self._programs: dict[str, Any] = {}
        self._running = False
        self.hooks = hooks
        self.isolation = isolation
        self._services = Services(db, ai, http, seed)
        # Where handler code runs: on this loop, or in a forked child per attempt.
        inner = InProcessRunner(self._services, self.env)
        runner: HandlerRunner = (
            inner
            if isolation is None
            else ForkRunner(inner, isolated_limits(limits, cpu_ms), seed, self.wall_ms)
        )
        self._steps = StepExecutor(runner, self._defaults, step_limit)
        self._waits = EventWaits(self.wall_ms)
        # Miniflare replays the timeouts its engine made as plain Errors (a structured clone).
        self._steps.clone_engine_errors = self._waits.clone_engine_errors = profile == "local"
        self._owner = _Owner(self)
        self._view = LoopView(self._loop) if hooks is not None else None
        # Instances evicted while hibernating: the timer that wakes them, and whether only
        # time can (a sleep) or an event may too (an event wait).
        self._evicted: dict[str, tuple[asyncio.TimerHandle, bool]] = {}
        self._evicted_sleeping = 0  # how many of them only time can wake
        self._tally = Tally()  # lifetimes not idle on event waits alone
        # Runs that ended with steps built but never awaited: warned about when run() returns
        # (`warn_unawaited`), not inside the engine, whose bookkeeping a warning turned into
        # an error (pytest -W error) must not interrupt.
        self._unawaited: list[tuple[Workflow, int, str | None]] = []

    @property
    def world(self) -> World:
        """What this simulation sees, as one value (its db, ai and http as given)."""
        s = self._services
        return World(s.db_spec, s.ai_spec, s.http_spec, dict(self.env), self.seed, self.profile)

    # -- time ------------------------------------------------------------------------------
    @property
    def now_ms(self) -> int:
        """Virtual milliseconds since the start of its store (0 for a new one): a Simulator
        on a store written before goes on from the last moment it recorded."""
        return self._loop.now_ms

    def wall_ms(self) -> int:
        """Virtual wall-clock time in epoch milliseconds."""
        return self._epoch_ms + self._loop.now_ms

    def wall_datetime(self, at_ms: int | None = None) -> _dt.datetime:
        ms = self._loop.now_ms if at_ms is None else at_ms
        return utc_datetime(self._epoch_ms + ms)

    # -- the world handlers see -----------------------------------------------------------
    @property
    def db(self) -> Any:
        """The simulated database (ctx.db); external to the engine, so it survives crashes."""
        return self._services.db

    @property
    def effects(self) -> Any:
        """The external effects handlers made through ctx.http and ctx.ai (an EffectLog):
        what chaos compares between runs, with the database."""
        return self._services.effects

    # -- instances ---------------------------------------------------------------------------
    @overload
    def create(
        self, workflow: Workflow[Any, Out], params: Any = None, id: str | None = None
    ) -> Instance[Out]: ...
    @overload
    def create(self, workflow: Any, params: Any = None, id: str | None = None) -> Instance: ...
    def create(self, workflow: Any, params: Any = None, id: str | None = None) -> Instance:
        """Queue a new instance of `workflow` (a Workflow, or a class with `run(event, step)`)."""
        name = self._register(workflow)
        params_json = canonical({} if params is None else params, root="params")
        if utf8_size(params_json) > MAX_PAYLOAD_BYTES:
            raise DefinitionError("params are over Cloudflare's 1 MiB limit for event payloads")
        if id is None:
            # From the seeded source, so ids replay; a store that already holds instances
            # (a SQLite file from an earlier run) gets the next unused one.
            id = uuid4_from(self._rng)
            while self._store.get_instance(id) is not None:
                id = uuid4_from(self._rng)
        iid = checked_instance_id(id)
        if self._store.get_instance(iid) is not None:
            if self.profile == "local":
                # Miniflare's create() swallows the engine's answer and the engine ignores an
                # init for an instance it already has: the first instance goes on unchanged.
                return Instance(self, iid)
            raise InstanceError(f"an instance with id {iid!r} already exists")
        meta: InstanceMeta = {
            "id": iid,
            "workflow": name,
            "params": params_json,
            "status": "queued",
            "output": None,
            "error": None,
            "created_ms": self.now_ms,
            "paused_ms": None,
        }
        self._store.commit(iid, meta=meta, defer=True)  # one transaction with its start
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
        if (
            self.hooks is None
            and self._quiescent()
            and not self._running
            and not self._loop.is_closed()
            and not self._loop.has_due_work()
            and asyncio._get_running_loop() is None
        ):
            # Already quiescent with nothing due: a drive would stop at its first look. Common
            # when events are sent one by one with run() after each.
            return
        self._drive(self._quiescent, None)

    def advance(self, duration: str | int | float) -> None:
        """Advance virtual time by `duration`, running everything that falls due."""
        self._drive(lambda: False, self.now_ms + parse_duration(duration))

    def run_until_done(
        self, instance: Instance, max_ms: int | None = None, *, max_waits: int | None = None
    ) -> bool:
        """Run until `instance` is terminal or paused (event waits time out); as `run_until`."""
        if not isinstance(instance, Instance):
            name = type(instance).__name__
            raise DefinitionError(f"run_until_done takes an Instance, got {name}: sim.instance(id)")

        def done() -> bool:
            meta = self._store.get_instance(instance.id)
            return meta is None or meta["status"] in TERMINAL or meta["status"] == "paused"

        return self.run_until(done, max_ms, max_waits=max_waits)

    def run_until(
        self,
        condition: Callable[[], bool],
        max_ms: int | None = None,
        *,
        max_waits: int | None = None,
    ) -> bool:
        """Run until `condition()` holds when the engine is idle at the current virtual time,
        nothing is left to run, `max_ms` of virtual time has passed, or more than `max_waits`
        sleeps and event waits have begun. False when `max_waits` stopped the run, else True."""
        check_run_until(condition, max_ms, max_waits)
        target = None if max_ms is None else self.now_ms + max_ms
        if max_waits is None:
            self._drive(condition, target)
            return True
        tally, limit = self._tally, self._tally.waits + max_waits
        self._drive(lambda: condition() or tally.waits > limit, target)
        return condition() or tally.waits <= limit

    def _drive(self, stop_when: Callable[[], bool], target_ms: int | None) -> None:
        if self.hooks is not None and not self._running:
            for control in self.hooks.pending():  # decided since the last run (mock_event)
                self._apply(control)
        if self._running:
            raise RuntimeError("the simulator is already running (re-entrant run() call)")
        if asyncio._get_running_loop() is not None:
            raise RuntimeError(
                "the simulator cannot run inside a running event loop (an async test or "
                "handler): call it from synchronous code, run it in a thread "
                "(`await asyncio.to_thread(sim.run)`), or use `await test_workflow.arun(params)`"
            )
        self._running = True
        pace_collector()
        try:
            self._swap.run_in_scope(self._rng, self.wall_ms, self._loop.run, stop_when, target_ms)
        finally:
            unpace_collector()
            self._running = False
            self._store.flush()  # nothing deferred outlives a run: the caller may exit now
        if self._unawaited:
            found, self._unawaited = self._unawaited, []
            for workflow, count, last in found:
                warn_unawaited(workflow, count, last)

    def _quiescent(self) -> bool:
        # Every lifetime idle on event waits alone (see Lifetime.waiting_only).
        # Both counted as they change (Lifetime.count_in, _unevict): O(1), whatever the number
        # of instances.
        tally = self._tally
        return tally.busy == 0 and tally.executing == 0 and self._evicted_sleeping == 0

    # -- crash and recovery -------------------------------------------------------------------
    def crash(self) -> None:
        """Drop every in-memory state of the engine, as if its process died now."""
        for iid, lt in list(self._lifetimes.items()):
            self._store.commit(iid, timeline=[self._entry("crash")])
            self._abort(lt)
        for wake, _ in self._evicted.values():
            wake.cancel()  # the engine that would have woken them is gone; recover() does
        self._evicted.clear()
        self._evicted_sleeping = 0
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
        if self._services.http_client is not None:
            self._drive_coroutine(self._services.http_client.aclose())
        self._loop.close()
        self._services.close_db()
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

    def _abort(self, lt: Lifetime) -> None:
        lt.alive = False
        if self._lifetimes.get(lt.iid) is lt:
            del self._lifetimes[lt.iid]
        lt.count_out()
        lt.stop(asyncio.current_task(self._loop) if self._running else None)

    # -- a lifetime -------------------------------------------------------------------------
    def _start(self, iid: str, meta: InstanceMeta, *, kind: str) -> None:
        evicted = self._unevict(iid)
        if evicted is not None:
            evicted[0].cancel()  # woken before its timer (an event, a resume, recover)
        target = self._program(meta["workflow"])
        lt = Lifetime(
            self._owner,
            self._store,
            self._loop,
            self.hooks,
            self._steps,
            self._waits,
            iid,
            meta,
            self._epoch_ms,
        )
        old = self._lifetimes.get(iid)
        if old is not None:
            old.count_out()
        self._lifetimes[iid] = lt
        lt.count_in(self._tally)
        self._store.commit(iid, timeline=[self._entry(kind)])
        if self.hooks is not None:
            assert self._view is not None
            for control in self.hooks.lifetime_start(self._view, iid, kind) or ():
                self._apply(control)
        lt.spawn(BodyRun(self, lt, target))

    # -- the body run of a lifetime (`_body.BodyOwner`) ---------------------------------------
    def mark_running(self, lt: Lifetime) -> None:
        meta = self._store.get_instance(lt.iid)
        assert meta is not None
        if meta["status"] != "running":
            # Deferred (to the first attempt's start): lost in a crash, recovery redoes it.
            lt.commit(meta={**meta, "status": "running"}, defer=True)

    def call_body(self, lt: Lifetime, target: Any) -> Any:
        if isinstance(target, Workflow):
            params = lt.payload
            model = target.input_model
            if model is not None:
                params = model.model_validate(params)  # type: ignore[attr-defined]
            api = lt.api = WorkflowApi(lt, target)
            return target.call(api, params)
        return instantiate(target, self.env).run(dict(lt.event), PythonStep(lt, self.durations))

    def body_returned(self, lt: Lifetime, output: str) -> None:
        # A completed run with steps it built and never awaited: warned about (on completion
        # only: a run that raised has its error to show, and a step it built before the
        # error is no news beside it).
        api = lt.api
        if api is not None and api._steps.count > 0 and lt.alive:
            self._unawaited.append((api._workflow, *api._unawaited()))
        self._finish(lt, "complete", output, None)

    def body_raised(self, lt: Lifetime, exc: BaseException) -> bool:
        failure = workflow_failure(exc, self._preserve_nre)
        if failure is None:
            return False
        self._finish(lt, "errored", None, *failure)
        return True

    def _finish(
        self,
        lt: Lifetime,
        status: str,
        output: str | None,
        error: dict[str, str] | None,
        stack: str | None = None,
    ) -> None:
        if not lt.alive:
            return
        meta = self._store.get_instance(lt.iid)
        assert meta is not None
        if status == "complete":
            done = self._entry("workflow-success")
        elif stack is None:
            done = self._entry("workflow-failure", error=error)
        else:
            # The stack beside the stored {name, message}, which stays as is.
            done = self._entry("workflow-failure", error=error, stack=stack)
        # Deferred like a step's result (to the next commit, or the end of the run): lost in a
        # crash, the replay ends the instance again the same way.
        lt.commit(
            meta={**meta, "status": status, "output": output, "error": error},
            timeline=[done],
            defer=True,
        )
        # Anything still running (a timed-out handler, an un-awaited step) ends with the instance.
        self._abort(lt)

    def _entry(
        self,
        kind: str,
        path: str | None = None,
        name: str | None = None,
        attempt: int | None = None,
        **details: Unpack[EntryDetails],
    ) -> Row:
        return row(self._loop._now_ms, kind, path, name, attempt, **details)

    def _apply(self, control: Control) -> None:
        """A control a hook returned (chaos: clocks and seeds differ between replays)."""
        if isinstance(control, SendEvent):
            self._send_event(control.iid, control.type, control.payload)
        elif isinstance(control, SkewClock):
            self._epoch_ms += control.ms  # wall clock only: timers are unaffected
        elif self._running:
            random.seed(control.seed)  # inside a run the live state is the swapped-in global one
        else:
            self._rng.seed(control.seed)


class _Owner:
    """The simulator as its lifetimes see it (`Owner` in `_lifetime`): how one ends early."""

    __slots__ = ("sim",)

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim

    def end_paused(self, lt: Lifetime) -> None:
        self.sim._complete_pause(lt)

    def end_crashed(
        self, lt: Lifetime, action: Crash, ref: StepRef | None, attempt: int | None
    ) -> Abandoned:
        return self.sim._crash_now(lt, action, ref, attempt)

    def end_fatal(self, lt: Lifetime, message: str) -> Abandoned:
        self.sim._finish(lt, "errored", None, {"name": "WorkflowFatalError", "message": message})
        return Abandoned()
