"""create_test_workflow.

A test workflow is one instance of one workflow on its own Simulator, run to a terminal status
in virtual time, with `wf.modifier` (Cloudflare's test modifier) as the simulator's hooks.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sys
import threading
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Generic, Protocol, Self, overload

from awf_sim.dsl._domain import Domain
from awf_sim.dsl._duration import parse_duration
from awf_sim.dsl._errors import DefinitionError
from awf_sim.dsl._texts import as_sent
from awf_sim.dsl._workflow import In, Out, Workflow
from awf_sim.engine._calls import TERMINAL
from awf_sim.engine._hooks import HookChain, Hooks, StepRef
from awf_sim.engine._selectors import Selector, StepSelector, parse_selector
from awf_sim.engine._simulator import RUNAWAY_WAITS, Instance, Simulator
from awf_sim.engine._timeline import TimelineEntry
from awf_sim.engine._world import World, check_db, check_env
from awf_sim.flow import ai_provider
from awf_sim.testing._failures import (
    UnmatchedSelector,
    WorkflowFailed,
    failed_step,
    format_timeline,
    user_facing,
)
from awf_sim.testing._modifier import Modifier

__all__ = [
    "STATUSES",
    "TestWorkflow",
    "TestWorkflowFactory",
    "UnmatchedSelector",
    "WorkflowFailed",
    "create_test_workflow",
    "format_timeline",
]

STATUSES = (
    "queued",
    "running",
    "paused",
    "waitingForPause",
    "waiting",
    "errored",
    "terminated",
    "complete",
)

# Test workflows run one at a time in a process. Module-level `random` is one process-wide
# state that a running simulation swaps its seeded state into, so two `arun()`s gathered in one
# test (each on its own worker thread) drew from each other's sequence: the same seed gave
# different results. A simulation is CPU-bound Python, so running them in turn costs nothing.
_ONE_AT_A_TIME = threading.RLock()

# The plugin points this at a list for the duration of a test, so that a failing test's report
# can show the timeline of every test workflow the test created or ran.
_tracker: list[TestWorkflow] | None = None


def _set_tracker(tracker: list[TestWorkflow] | None) -> list[TestWorkflow] | None:
    global _tracker
    previous, _tracker = _tracker, tracker
    return previous


def _track(wf: TestWorkflow) -> None:
    tracker = _tracker
    if tracker is not None and not any(t is wf for t in tracker):
        tracker.append(wf)


def hypothesis_example() -> object | None:
    """The Hypothesis example being run (its build context), or None outside @given: a
    failing property's report shows the test workflows of the example that failed, not
    those of every example Hypothesis tried and shrank on the way."""
    control = sys.modules.get("hypothesis.control")
    if control is None:
        return None
    try:
        return control.current_build_context()  # type: ignore[no-any-return]
    except Exception:  # no example is running (hypothesis.errors.InvalidArgument)
        return None


def flow_defaults(workflow: Any) -> dict[str, Any]:
    """The `DATABASE`, `HTTP` and `AI` the workflow's flow file declares, as `awf-sim run` and
    `awf-sim chaos` use them: {"db", "http", "ai"}, None where the module declares none."""
    scope = getattr(workflow, "_scope", None)
    if scope is None:
        module = sys.modules.get(getattr(workflow, "__module__", "") or "")
        scope = vars(module) if module is not None else {}
    http = scope.get("HTTP")
    return {
        "db": scope.get("DATABASE"),
        # A Domain named HTTP is the flow's own, not what ctx.http reaches (as load_flow).
        "http": None if isinstance(http, Domain) else http,
        "ai": ai_provider(scope.get("AI")),
    }


def with_flow_defaults(workflow: Any, db: Any, ai: Any, http: Any) -> tuple[Any, Any, Any]:
    """`db`, `ai` and `http` as given, each one left out (None) taken from the flow file
    (`flow_defaults`): what create_test_workflow, assert_durable and fault_plans run with."""
    declared = flow_defaults(workflow)
    return (
        declared["db"] if db is None else db,
        declared["ai"] if ai is None else ai,
        declared["http"] if http is None else http,
    )


# -- the test workflow -----------------------------------------------------------------------


def _close_db(sim: Simulator) -> None:
    db = vars(sim).get("_db")
    if db is not None and hasattr(db, "close"):
        db.close()


class TestWorkflow(Generic[In, Out]):
    """One instance of `workflow` on its own Simulator: configure `modifier`, then `run()`.

    For a `Workflow[In, Out]`, `run()` takes the params (an `In` or its JSON) and returns an
    `Out`: a declared dataclass or pydantic model output is rebuilt from the instance's JSON.

    After the run: `status`, `output`, `error` ({name, message}), `timeline`, `steps` (dotted
    paths of the steps called, in first-call order), `db` (the database the handlers used),
    `instance` and `sim` for anything else.
    """

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        workflow: Any,
        *,
        db: Any = None,
        ai: Any = None,
        http: Any = None,
        env: Mapping[str, Any] | None = None,
        seed: int = 0,
        hooks: Hooks | Sequence[Hooks] | None = None,
        profile: str = "production",
        world: World | None = None,
        strict: bool = True,
    ) -> None:
        if world is None:
            check_db(db, "create_test_workflow")
            check_env(env, "create_test_workflow")
            db, ai, http = with_flow_defaults(workflow, db, ai, http)
            world = World(db, ai, http, dict(env or {}), seed, profile)
        elif (seed, profile, db, env, ai, http) != (0, "production", None, None, None, None):
            raise DefinitionError(
                "pass either world=World(...) or seed/profile/db/env/ai/http, not both"
            )
        self.workflow = workflow
        self.world = world
        self.seed = world.seed
        self.strict = strict
        self.modifier = Modifier()
        extra = [] if hooks is None else [hooks] if isinstance(hooks, Hooks) else list(hooks)
        # Fault hooks (chaos) answer before the modifier, so a fault still fires on a mocked step.
        chain: Hooks = HookChain([*extra, self.modifier]) if extra else self.modifier
        self.sim = Simulator(world=world, hooks=chain)
        self.name: str = self.sim.register(workflow)
        self.instance: Instance[Out] | None = None
        self.seed_source = "seed="  # how to give the seed back; the plugin sets "--awf-seed"
        self._example = hypothesis_example()
        self._closed = False
        self._final: dict[str, Any] | None = None
        self._finished = False  # run() has driven the instance to its end
        self._timeline: list[TimelineEntry] = []
        # A test workflow nobody closed still releases its database connection when collected.
        self._release = weakref.finalize(self, _close_db, self.sim)
        _track(self)

    # -- running -----------------------------------------------------------------------------
    def run(self, params: In | Any = None, *, id: str | None = None) -> Out:
        """Run to a terminal status in virtual time (event waits with nothing to receive time
        out); return the output, or raise WorkflowFailed if the instance did not complete.
        After `start()` or a `wait_for_*` call, it continues the same instance (no params).
        A modifier selector that matched no step fails a completed run (UnmatchedSelector)
        unless the test workflow was created with strict=False."""
        __tracebackhide__ = True  # pytest shows the test's line, not this one
        if self._finished:
            raise RuntimeError(
                f"this test workflow already ran (instance {self._instance_id()}); "
                "create another with create_test_workflow to run again"
            )
        if self.instance is None:
            self.start(params, id=id)
        elif params is not None or id is not None:
            raise RuntimeError(
                "this test workflow's instance has already started: call run() without params "
                "to continue it"
            )
        inst = self.instance
        assert inst is not None
        self._finished = True
        try:
            self._drive(inst, lambda: self._ended(inst), None)
        finally:
            self._final = inst.status()
            self._timeline = inst.timeline
        status = self._final
        if status["status"] != "complete":
            raise self._failed(status)
        unmatched = self._unmatched()
        if self.strict and unmatched:
            raise UnmatchedSelector(self.name, unmatched)
        if isinstance(self.workflow, Workflow):
            return self.workflow.revive_output(status["output"])  # type: ignore[no-any-return]
        return status["output"]  # type: ignore[no-any-return]

    @staticmethod
    def _ended(inst: Instance) -> bool:
        status = inst.status()["status"]
        return status in TERMINAL or status == "paused"

    def _drive(self, inst: Instance, ready: Callable[[], bool], timeout: int | None) -> None:
        """Run until `ready()`, `timeout` ms of virtual time, or nothing left to run; fail an
        instance that only sleeps and waits, for ever, instead of looping in virtual time."""
        __tracebackhide__ = True
        with _ONE_AT_A_TIME:
            if self.sim.run_until(ready, timeout, max_waits=RUNAWAY_WAITS):
                return
        status = inst.status()
        days = self.sim.now_ms / 86_400_000
        raise WorkflowFailed(
            workflow=self.name,
            instance_id=inst.id,
            status=status["status"],
            error=status["error"],
            timeline=self.timeline,
            seed=self.seed,
            warnings=self._unmatched(),
            reason=(
                f"instance {inst.id} of {self.name!r} is still {status['status']} after "
                f"{RUNAWAY_WAITS:,} sleeps and event waits ({days:,.1f} days of virtual time): it "
                "does not end on its own. Test it mid-run (start(params), then wait_for_status "
                "or wait_for_step_result with a timeout), or mock what it loops on"
            ),
        )

    def _unmatched(self) -> list[str]:
        """The modifier's selectors, and the event types the test sent, that matched nothing."""
        waits = {
            str(e.get("path")): e["type"]
            for e in self.timeline
            if e.get("kind") == "wait-start" and isinstance(e.get("type"), str)
        }
        return self.modifier.unmatched(waits)

    def _instance_id(self) -> str:
        return "?" if self.instance is None else self.instance.id

    def _failed(self, status: Mapping[str, Any]) -> WorkflowFailed:
        return WorkflowFailed(
            workflow=self.name,
            instance_id=self._instance_id(),
            status=status["status"],
            error=status["error"],
            timeline=self.timeline,
            seed=self.seed,
            warnings=self._unmatched(),
        )

    # -- mid-run interaction (Cloudflare's waitForStepResult / waitForStatus) ------------------
    @user_facing
    def start(self, params: In | Any = None, *, id: str | None = None) -> Instance[Out]:
        """Create the instance without running it: then `wait_for_step_result`,
        `wait_for_status`, `send_event`, `step_result`, and `run()` to continue to the end."""
        if self._closed:
            raise RuntimeError("this test workflow is closed")
        if self.instance is not None:
            raise RuntimeError(
                f"this test workflow already started (instance {self.instance.id}); "
                "create another with create_test_workflow to run again"
            )
        _track(self)
        # An `In` given as itself: what JSON has no form for goes as the text a caller sends,
        # which the workflow's params type reads back (awf_sim.dsl._texts).
        sent = as_sent(params) if dataclasses.is_dataclass(params) else None
        instance: Instance[Out] = self.sim.create(
            self.workflow, params if sent is None else sent, id=id
        )
        self.instance = instance
        return instance

    def _live(self, method: str) -> Instance[Out]:
        if self.instance is None:
            raise RuntimeError(f"{method}: start the instance first with start(params)")
        if self._closed:
            raise RuntimeError("this test workflow is closed")
        return self.instance

    def _terminal(self, inst: Instance) -> bool:
        return inst.status()["status"] in TERMINAL

    @user_facing
    def step_result(self, step: Selector) -> Any:
        """The stored result of the step `step` selects (a dotted path, glob, raw name or
        {"name", "index"}: the index-th result among the matching ones); LookupError if that
        step has no result yet."""
        __tracebackhide__ = True
        inst = self._live("step_result")
        sel = parse_selector(step, method="step_result")
        found = _select_result(inst.step_results(), sel)
        if found is None:
            raise LookupError(self._no_result(inst, sel))
        return found["value"]

    @user_facing
    def wait_for_step_result(self, step: Selector, *, timeout: str | int | None = None) -> Any:
        """Run until the step `step` selects has a result and return it (as Cloudflare's
        `waitForStepResult`). Fails if the instance ends, or `timeout` of virtual time passes,
        without that result."""
        __tracebackhide__ = True
        inst = self._live("wait_for_step_result")
        sel = parse_selector(step, method="wait_for_step_result")

        def ready() -> bool:
            return _select_result(inst.step_results(), sel) is not None or self._terminal(inst)

        self._drive(inst, ready, None if timeout is None else parse_duration(timeout))
        found = _select_result(inst.step_results(), sel)
        if found is not None:
            return found["value"]
        status = inst.status()
        if status["status"] == "errored":
            raise self._failed(status)
        raise AssertionError(self._no_result(inst, sel))

    @user_facing
    def wait_for_status(self, status: str, *, timeout: str | int | None = None) -> None:
        """Run until the instance reports `status` (as Cloudflare's `waitForStatus`): one of
        queued, running, paused, waitingForPause, waiting, errored, terminated, complete. Fails
        if it ends in another status, or `timeout` of virtual time passes, first."""
        __tracebackhide__ = True
        if status not in STATUSES:
            raise DefinitionError(
                f"wait_for_status({status!r}): not a status; use one of {', '.join(STATUSES)}"
            )
        inst = self._live("wait_for_status")

        def reached() -> bool:
            now = inst.status()["status"]
            return now == status or now in TERMINAL

        self._drive(inst, reached, None if timeout is None else parse_duration(timeout))
        now = inst.status()
        if now["status"] == status:
            return
        if now["status"] == "errored":
            raise self._failed(now)
        raise AssertionError(
            f"instance {inst.id} of {self.name!r} is {now['status']}, not {status}"
            + (" (timed out)" if timeout is not None else "")
        )

    def _no_result(self, inst: Instance, sel: StepSelector) -> str:
        done = list(dict.fromkeys(r["path"] for r in inst.step_results()))
        return (
            f"step {sel} of {self.name!r} has no result; instance {inst.id} is "
            f"{inst.status()['status']}; steps with results: {', '.join(done) or 'none'}"
        )

    waitForStepResult = wait_for_step_result
    waitForStatus = wait_for_status

    async def arun(self, params: In | Any = None, *, id: str | None = None) -> Out:
        """`run()` for async tests: the simulation runs on a worker thread (its virtual-time
        loop cannot run inside the test's running loop). Returns what `run()` returns: the
        declared output type of a `Workflow[In, Out]`. It needs asyncio (asyncio.run,
        pytest-asyncio, anyio's asyncio backend); elsewhere it says so and what to call."""
        __tracebackhide__ = True
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            # Else asyncio.to_thread's bare "no running event loop", from inside asyncio.
            raise RuntimeError(
                "arun() needs a running asyncio loop (asyncio.run, pytest-asyncio, anyio's "
                "asyncio backend); under another loop such as trio, run the simulation on a "
                "worker thread yourself: await trio.to_thread.run_sync(test.run, params)"
            ) from None
        return await asyncio.to_thread(self.run, params, id=id)

    @user_facing
    def send_event(self, type: str, payload: Any = None) -> None:
        """Send an event to the instance; before `run()` it is buffered and delivered when the
        instance starts, in order with `modifier.mock_event`."""
        if self.instance is None:
            self.modifier._event(type, payload, "send_event")  # buffered in order with mocks
            return
        self.instance.send_event(type, payload)
        self.modifier._note_event(type, "send_event")

    # -- results -----------------------------------------------------------------------------
    def _current(self) -> dict[str, Any] | None:
        if self.instance is not None and not self._closed and not self._finished:
            return self.instance.status()  # started, not run to its end: ask the engine
        return self._final

    @property
    def status(self) -> str | None:
        """ "complete", "errored", ... once started; None before."""
        current = self._current()
        return None if current is None else str(current["status"])

    @property
    def output(self) -> Out | None:
        """The output once the instance completed, as `run()` returns it (the declared
        dataclass or pydantic model of a `Workflow[In, Out]`, else its JSON); None before."""
        current = self._current()
        if current is None or current["status"] != "complete":
            return None
        if isinstance(self.workflow, Workflow):
            return self.workflow.revive_output(current["output"])  # type: ignore[no-any-return]
        return current["output"]  # type: ignore[no-any-return]

    @property
    def error(self) -> dict[str, str] | None:
        current = self._current()
        return None if current is None else current["error"]

    @property
    def timeline(self) -> list[TimelineEntry]:
        if self.instance is not None and not self._closed:
            return self.instance.timeline
        return [e.copy() for e in self._timeline]

    @property
    def steps(self) -> list[str]:
        """Dotted paths of the steps called, in first-call order, one entry per path."""
        return self.modifier.steps(None if self.instance is None else self.instance.id)

    @property
    def warnings(self) -> list[str]:
        """Modifier selectors that matched no step of the run (usually typos)."""
        return self._unmatched()

    @property
    def db(self) -> Any:
        """The database handle the handlers used (for assertions on its rows): `await
        wf.db.query(...)` in an async test, `wf.query(...)` in a synchronous one."""
        return self.sim.db

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Rows of a statement on the database the handlers used, without `await`:
        `assert wf.query("SELECT verified FROM users") == [{"verified": 1}]`."""
        return self.sim.db.rows(sql, params)  # type: ignore[no-any-return]

    def report(self) -> str:
        """What the pytest plugin prints for a failing test: status, timeline, seed, warnings."""
        if self.instance is None:
            head = f"workflow {self.name!r}: not run (seed {self.seed})"
            lines = [head]
        else:
            err = self.error
            lines = [
                f"workflow {self.name!r}, instance {self.instance.id}: {self.status}"
                + (f" with {err['name']}: {err['message']}" if err else "")
                + failed_step(err, self.timeline)
                + f" (seed {self.seed})",
                format_timeline(self.timeline),
            ]
        lines += [f"warning: {w}" for w in self.warnings]
        return "\n".join(lines)

    # -- cleanup -------------------------------------------------------------------------------
    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Release the simulator and its database connection (the plugin's fixture does this)."""
        if self._closed:
            return
        if self.instance is not None:
            self._timeline = self.instance.timeline
        self._closed = True
        self._release.detach()
        self.sim.close()

    def __enter__(self) -> Self:  # keeps In and Out: `with create_test_workflow(wf) as t`
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<TestWorkflow {self.name} status={self.status} seed={self.seed}>"


@overload
def create_test_workflow(
    workflow: Workflow[In, Out],
    *,
    db: Any = None,
    ai: Any = None,
    http: Any = None,
    env: Mapping[str, Any] | None = None,
    seed: int = 0,
    hooks: Hooks | Sequence[Hooks] | None = None,
    profile: str = "production",
    world: World | None = None,
    strict: bool = True,
) -> TestWorkflow[In, Out]: ...
@overload
def create_test_workflow(
    workflow: Any,
    *,
    db: Any = None,
    ai: Any = None,
    http: Any = None,
    env: Mapping[str, Any] | None = None,
    seed: int = 0,
    hooks: Hooks | Sequence[Hooks] | None = None,
    profile: str = "production",
    world: World | None = None,
    strict: bool = True,
) -> TestWorkflow[Any, Any]: ...
@user_facing
def create_test_workflow(
    workflow: Any,
    *,
    db: Any = None,
    ai: Any = None,
    http: Any = None,
    env: Mapping[str, Any] | None = None,
    seed: int = 0,
    hooks: Hooks | Sequence[Hooks] | None = None,
    profile: str = "production",
    world: World | None = None,
    strict: bool = True,
) -> TestWorkflow[Any, Any]:
    """A test workflow for `workflow` (a Workflow, or a class with `run(event, step)`).

    `db`: a Database spec (`mock_database({...})`, `Database(schema, rows)`), connected afresh
    for this test workflow. `env`: what handlers see as `ctx.env`. `seed`: the simulator's seed.
    `hooks`: extra engine hooks (fault plans) that answer before the modifier. `world`: all
    of db, ai, http, env, seed and profile as one `awf_sim.World` (then leave those out).
    `db`, `ai` and `http` left out are the ones the workflow's flow file declares (`DATABASE`,
    `HTTP`, `AI`), as under `awf-sim run` and `awf-sim chaos`. `strict=False`: a modifier
    selector that matched no step does not fail the run (see UnmatchedSelector).
    """
    return TestWorkflow(
        workflow,
        db=db,
        ai=ai,
        http=http,
        env=env,
        seed=seed,
        hooks=hooks,
        profile=profile,
        world=world,
        strict=strict,
    )


createTestWorkflow = create_test_workflow


class TestWorkflowFactory(Protocol):
    """The type of the plugin's `create_test_workflow` fixture, for typed tests:
    `def test_order(create_test_workflow: TestWorkflowFactory)` keeps a `Workflow[In, Out]`'s
    types through the fixture, as the function does (the seed defaults to --awf-seed)."""

    @overload
    def __call__(self, workflow: Workflow[In, Out], **kwargs: Any) -> TestWorkflow[In, Out]: ...
    @overload
    def __call__(self, workflow: Any, **kwargs: Any) -> TestWorkflow[Any, Any]: ...


# Not a pytest test class, though its name starts with Test; set outside the body so that it
# is no member of the protocol (a plain function must still match it).
setattr(TestWorkflowFactory, "__test__", False)  # noqa: B010


def _select_result(results: Sequence[Mapping[str, Any]], sel: StepSelector) -> Any:
    """The result `sel` selects: the first match, or the index-th (1-based) with an index."""
    k = 0
    for r in results:
        if sel.matches(StepRef("do", r["path"], r["name"], r["count"], 0)):
            k += 1
            if sel.index is None or k == sel.index:
                return r
    return None
