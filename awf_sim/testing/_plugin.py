"""The pytest plugin (entry point `pytest11: awf_sim`).

- fixtures `create_test_workflow` (a factory whose test workflows are closed after the test),
  `sim` (a fresh Simulator in the world the flow file of its workflows declares) and
  `awf_seed`;
- option `--awf-seed N|random` (default 0), the seed the fixtures use, shown in the header;
- a passing test that set up a test workflow (modifier calls, events) and never ran it
  fails, naming what it set up (strict=False allows it);
- on failure, a report section per test workflow the test created or ran: its status, the
  tail of its timeline, unmatched selectors and the seed that reproduces it (under @given,
  only those of the failing example); and one for the
  `sim` fixture, with each of its instances' status and timeline and the seed;
- `import workers` (Cloudflare's SDK) answered with the simulator's stand-ins, so a workflow
  class written for Cloudflare imports in tests (`awf_sim.sdk.install_workers_stand_in`).

Loading the plugin imports awf_sim.testing, where it lives, and so awf_sim's engine (about
0.3 s, in every session where awf is installed); Hypothesis, httpx, pydantic and freezegun
only when a test uses them.
"""

from __future__ import annotations

import argparse
import random
import sys
from collections.abc import Generator, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from awf_sim.engine._simulator import Simulator
    from awf_sim.testing._workflow import TestWorkflow, TestWorkflowFactory

_SEED = pytest.StashKey[int]()
_CREATED = pytest.StashKey[list["TestWorkflow"]]()
_SIMS = pytest.StashKey[list["Simulator"]]()
_WORKFLOW_MODULE = "awf_sim.testing._workflow"


def _seed_option(value: str) -> int | str:
    if value == "random":
        return value
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a whole number or 'random', got {value!r}"
        ) from None


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("awf-sim", "awf-sim workflow simulator")
    group.addoption(
        "--awf-seed",
        action="store",
        default="0",
        type=_seed_option,
        metavar="N",
        help="seed of the simulators that awf-sim's fixtures create (a number, or 'random'; "
        "default 0). A failing test's report names the seed that reproduces it.",
    )


def pytest_load_initial_conftests(early_config: pytest.Config, args: list[str]) -> None:
    # Before any conftest or test module imports a workflow class written for Cloudflare
    # (`from workers import WorkflowEntrypoint`), which outside Pyodide cannot import the SDK.
    from awf_sim.sdk import install_workers_stand_in

    install_workers_stand_in()


def pytest_configure(config: pytest.Config) -> None:
    value = config.getoption("--awf-seed")
    if value == "random":
        value = random.SystemRandom().randrange(2**32)
    config.stash[_SEED] = int(value)


def pytest_report_header(config: pytest.Config) -> str:
    return f"awf-sim: --awf-seed={config.stash[_SEED]}"


# -- fixtures --------------------------------------------------------------------------------


@pytest.fixture
def awf_seed(request: pytest.FixtureRequest) -> int:
    """The seed from --awf-seed (0 by default)."""
    return request.config.stash[_SEED]


@pytest.fixture
def create_test_workflow(
    request: pytest.FixtureRequest, awf_seed: int
) -> Iterator[TestWorkflowFactory]:
    """`create_test_workflow(workflow, db=..., env=..., seed=--awf-seed)`: test workflows that
    are closed after the test. Typed as `awf_sim.testing.TestWorkflowFactory`."""
    from awf_sim.testing import _workflow

    made: list[TestWorkflow] = []
    created = request.node.stash.get(_CREATED, None)
    if created is not None and _workflow._tracker is None:
        _workflow._set_tracker(created)  # the module was first imported by this fixture

    def factory(workflow: Any, **kwargs: Any) -> TestWorkflow:
        __tracebackhide__ = True  # a refused argument shows at the test's line
        from_option = "seed" not in kwargs
        kwargs.setdefault("seed", awf_seed)
        wf = _workflow.create_test_workflow(workflow, **kwargs)
        if from_option:
            wf.seed_source = "--awf-seed"
        made.append(wf)
        return wf

    yield factory
    for wf in made:
        wf.close()


@pytest.fixture
def sim(request: pytest.FixtureRequest, awf_seed: int) -> Iterator[Simulator]:
    """A fresh Simulator seeded with --awf-seed, closed after the test; a failing test's
    report shows its instances' timelines and the seed.

    Its ctx.db, ctx.http and ctx.ai are the `DATABASE`, `HTTP` and `AI` the flow file of the
    workflows the test creates (or registers) on it declares, as under `awf-sim run` and
    `create_test_workflow`; none declared, an empty database. Seed or read `sim.db` after
    the first `sim.create(...)`. Flow files that declare different ones cannot share it;
    for another world, build your own `Simulator(db=...)`."""
    from awf_sim.testing._fixture_sim import FixtureSimulator

    with FixtureSimulator(seed=awf_seed) as simulator:
        request.node.stash.setdefault(_SIMS, []).append(simulator)
        yield simulator


# -- the failure report ----------------------------------------------------------------------


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(
    item: pytest.Item, nextitem: pytest.Item | None
) -> Generator[None, Any, Any]:
    created: list[TestWorkflow] = []
    item.stash[_CREATED] = created
    module = sys.modules.get(_WORKFLOW_MODULE)
    previous = module._set_tracker(created) if module is not None else None
    try:
        return (yield)
    finally:
        module = sys.modules.get(_WORKFLOW_MODULE)
        if module is not None and module._tracker is created:
            module._set_tracker(previous)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.when == "call" and report.passed and not hasattr(report, "wasxfail"):
        _fail_if_never_run(report, item.stash.get(_CREATED, []))
    if report.failed:
        raised = call.excinfo.value if call.excinfo is not None else None
        created = item.stash.get(_CREATED, [])
        shown = _of_the_failing_example(created)
        for wf in shown:
            report.sections.append(
                (f"awf-sim {wf.name} (seed {wf.seed})", _section(item, wf, raised))
            )
        if len(shown) < len(created):
            report.sections.append(
                (
                    "awf-sim",
                    f"{len(created) - len(shown)} test workflow(s) of the other examples "
                    "Hypothesis ran are not shown\n",
                )
            )
        # The `sim` fixture's simulator is open until teardown: its instances can be read
        # when the test itself (or its setup) failed.
        if report.when != "teardown":
            for simulator in item.stash.get(_SIMS, []):
                report.sections.append(
                    (f"awf-sim sim fixture (seed {simulator.seed})", _sim_section(item, simulator))
                )
    return report


def _fail_if_never_run(report: pytest.TestReport, created: list[TestWorkflow]) -> None:
    """A passing test that set up a test workflow's modifier (or sent it an event) and never
    ran it tested none of it, as a selector that matched nothing: it fails, saying so."""
    unrun = [wf for wf in created if wf.strict and wf.instance is None and wf.modifier._recorded()]
    if any(wf._example is not None and wf.instance is not None for wf in created):
        # Under @given, an example that `assume()` rejected after the set-up never runs: only
        # a property that ran none of its test workflows forgot to.
        unrun = [wf for wf in unrun if wf._example is None]
    if not unrun:
        return
    found: dict[str, int] = {}
    for wf in unrun:
        line = (
            f"test workflow {wf.name!r} was set up ({', '.join(wf.modifier._recorded())}) but "
            "never run, so the test checked none of it"
        )
        found[line] = found.get(line, 0) + 1
    lines = [line + (f" (x{n})" if n > 1 else "") for line, n in found.items()]
    lines.append(
        "call wf.run(params) (or wf.start(params)) before asserting; create it with "
        "strict=False if that is intended"
    )
    report.outcome = "failed"
    report.longrepr = "\n".join(lines)


def _of_the_failing_example(created: list[TestWorkflow]) -> list[TestWorkflow]:
    """Under @given, the test workflows of the last example run, which is the failing one
    (Hypothesis runs the shrunk example again last); all of them otherwise."""
    if not created or created[-1]._example is None:
        return created
    last = created[-1]._example
    return [wf for wf in created if wf._example is last]


def _sim_section(item: pytest.Item, simulator: Simulator) -> str:
    from awf_sim.testing._failures import failed_step, format_timeline

    lines = []
    for inst in simulator.instances:
        status = inst.status()
        err = status["error"]
        timeline = inst.timeline
        lines.append(
            f"workflow {inst.workflow!r}, instance {inst.id}: {status['status']}"
            + (f" with {err['name']}: {err['message']}" if err else "")
            + failed_step(err, timeline)
        )
        lines.append(format_timeline(timeline))
    if not lines:
        lines.append("no instance was created")
    lines.append(f"reproduce: pytest {item.nodeid} --awf-seed {simulator.seed}")
    return "\n".join(lines) + "\n"


def _section(item: pytest.Item, wf: TestWorkflow, raised: BaseException | None) -> str:
    if wf.seed_source == "--awf-seed":
        how = f"reproduce: pytest {item.nodeid} --awf-seed {wf.seed}"
    else:
        how = f"reproduce: create_test_workflow(..., seed={wf.seed})"
    # The WorkflowFailed the test raised already shows this instance's timeline: once is enough.
    instance_id = getattr(raised, "instance_id", None)
    if instance_id is not None and wf.instance is not None and instance_id == wf.instance.id:
        return f"(the timeline is in the WorkflowFailed above)\n{how}\n"
    return f"{wf.report()}\n{how}\n"
