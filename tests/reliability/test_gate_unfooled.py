"""Flows that passed push's verify gate (awf_deploy.verify: chaos on every example) although
they break on Cloudflare, or that the gate named for the wrong problem.

- A step returning `time.time_ns()` (an int beyond JavaScript's safe range) errors on
  Cloudflare's engine at once (`TypeError: Do not know how to serialize a BigInt`,
  awf_deploy/README.md's table of differences); the simulator kept the int, so chaos and the
  gate said "no invariant broken" and push uploaded it.
- A typed workflow (dataclass params) without examples runs on `{}`, which does not fit its
  input type: the gate's first line said "the workflow's output does not serialise to JSON"
  (no output was ever made) and put the real reason under it.
- The running-instance replay gate (awf_deploy._gate, awf_sim.replay) called a replay faithful
  when no step was renamed, even when the new code ended the instance errored on its own
  history: a result dataclass that gained a required field no longer fits the checkpoint, or
  a new input type refuses the instance's params. Push said "all faithful" and uploaded code
  that fails every such instance.
- A flow file whose import never ends (a loop or a sleep at module level) hung awf-sim run,
  chaos and push forever.
- A flow file calling `os._exit(0)` at import ended `awf-deploy push` (and build, trigger
  --flow, status --flow) with exit 0 and nothing said: the flow was imported in the CLI's own
  process, before the gate's supervised child.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from dataclasses import make_dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import awf_sim.flow
from awf_deploy import verify
from awf_sim import NonRetryableError, TypedDomain, Workflow, step
from awf_sim.cli import app as sim_app
from awf_sim.dsl import WorkflowApi, isolated_registries
from awf_sim.flow import load_flow
from awf_sim.replay import ReplayReport, record_history, replay

from .conftest import check_failure

pytestmark = pytest.mark.filterwarnings("ignore:Domain 'Clock' defined at:UserWarning")

BIG_INT_FLOW = """
from awf_sim import Domain, Workflow

async def stamp(context, args, ctx):
    return {"at_ns": RESULT}

Clock = Domain("Clock", {"stamp": stamp})

@Workflow("stamps", examples=[{}])
async def stamps(wf, params):
    s = await wf.Clock("x").stamp()
    return {"at": OUTPUT}
"""


def _flow(tmp_path: Path, text: str, **replace: str) -> Path:
    text = textwrap.dedent(text)
    for key, value in replace.items():
        text = text.replace(key, value)
    path = tmp_path / "flow.py"
    path.write_text(text)
    return path


def test_a_step_result_beyond_javascripts_safe_integers_fails_the_gate(tmp_path: Path) -> None:
    flow = load_flow(_flow(tmp_path, BIG_INT_FLOW, RESULT="2**53", OUTPUT="1"))
    found = verify(flow, runs=5)
    assert [(v.invariant, v.message) for v in found] == [
        (
            "serializable",
            "Clock.stamp returned the integer 9007199254740992 at at_ns, beyond JavaScript's "
            "safe range (±9007199254740991): on Cloudflare the instance errors at once "
            "(TypeError: Do not know how to serialize a BigInt)",
        )
    ]


def test_an_output_beyond_javascripts_safe_integers_fails_the_gate(tmp_path: Path) -> None:
    flow = load_flow(_flow(tmp_path, BIG_INT_FLOW, RESULT="1", OUTPUT="[1, -(2**63)]"))
    found = verify(flow, runs=5)
    assert [(v.invariant, v.message.split(",")[0]) for v in found] == [
        ("serializable", "the workflow's output holds the integer -9223372036854775808 at at[1]")
    ]


def test_the_largest_safe_integer_passes_the_gate(tmp_path: Path) -> None:
    flow = load_flow(_flow(tmp_path, BIG_INT_FLOW, RESULT="2**53 - 1", OUTPUT="-(2**53 - 1)"))
    assert verify(flow, runs=5) == []


TYPED_NO_EXAMPLES = """
from dataclasses import dataclass
from awf_sim import Workflow

@dataclass
class Order:
    id: str

@Workflow("typed-no-examples")
async def typed_no_examples(wf, order: Order) -> dict:
    return {"id": order.id}
"""


def test_params_that_do_not_fit_the_input_type_are_not_called_an_output_problem(
    tmp_path: Path,
) -> None:
    found = verify(load_flow(_flow(tmp_path, TYPED_NO_EXAMPLES)), runs=5)
    assert [v.invariant for v in found] == ["baseline-outcome"]
    assert "params.id is missing: Order requires it" in found[0].message
    assert found[0].related == ()


# -- the running-instance replay gate ---------------------------------------------------------


def _stock_flow(
    required_quantity: bool, typed_params: bool = False, fails_later: bool = False
) -> Workflow:
    """The same workflow before and after a change: Stock gains a required field, or the
    params become a dataclass that needs a field old instances lack, or the code gains a
    failing step after the one the instance completed."""
    fields = {"available": bool, **({"quantity": int} if required_quantity else {})}
    stock_type = make_dataclass("Stock", list(fields.items()))
    order_type = make_dataclass("Order", [("sku", str)])

    async def check_stock(sku: str, args: None, ctx: Any) -> Any:
        return stock_type(True, 3) if required_quantity else stock_type(True)

    async def refuse_sku(sku: str, args: None, ctx: Any) -> None:
        raise NonRetryableError("the local stand-in says no")

    # Real classes, not names: this file's annotations are strings (PEP 563), which the DSL
    # resolves in the module, where these classes are not.
    check_stock.__annotations__["return"] = stock_type

    class GateInv(TypedDomain[str]):  # a class body does not see the function's names
        check = step(check_stock)
        refuse = step(refuse_sku)

    async def body(wf: WorkflowApi, params: Any) -> dict[str, bool]:
        stock = await wf[GateInv]("x").check()
        if fails_later:
            await wf[GateInv]("x").refuse()
        await wf.wait_for("approve", type="ok", timeout="1 day")  # the instance waits here
        return {"available": stock.available}

    async def typed_body(wf: WorkflowApi, order: Any) -> dict[str, bool]:
        return await body(wf, order)

    typed_body.__annotations__["order"] = order_type
    return Workflow("gate-stock", typed_body if typed_params else body)


def _replayed(before: Workflow, after: Workflow) -> ReplayReport:
    history = record_history(before, {})  # waiting for "approve", Stock checkpointed
    assert history.status == "waiting"
    return replay(after, history)


def test_new_code_that_fails_on_a_running_instances_checkpoint_is_a_divergence() -> None:
    with isolated_registries():
        before = _stock_flow(required_quantity=False)
    with isolated_registries():
        after = _stock_flow(required_quantity=True)
        report = _replayed(before, after)
    # Before: faithful (no step renamed), and push uploaded code that fails this instance.
    assert not report.faithful
    [found] = report.divergences
    assert found.kind == "fails-on-history"
    assert found.path == "GateInv.check"
    assert "result of GateInv.check.quantity is missing" in found.detail


def test_new_code_that_refuses_a_running_instances_params_is_a_divergence() -> None:
    with isolated_registries():
        before = _stock_flow(required_quantity=False)
    with isolated_registries():
        after = _stock_flow(required_quantity=False, typed_params=True)
        report = _replayed(before, after)
    # First the failure, then what it leaves undone (the check it never reached).
    assert [d.kind for d in report.divergences] == ["fails-on-history", "not-called"]
    found = report.divergences[0]
    assert found.detail.startswith("the new code ends this instance errored before its first")
    assert "params.sku is missing" in found.detail


def test_a_failure_past_the_frontier_is_not_a_divergence() -> None:
    # A new step after the completed one fails against the simulator's stand-ins: that is
    # new work the instance has not done, not its history failing.
    with isolated_registries():
        before = _stock_flow(required_quantity=False)
    with isolated_registries():
        after = _stock_flow(required_quantity=False, fails_later=True)
        report = _replayed(before, after)
    assert report.status == "errored"
    assert report.faithful, report.divergences


def test_the_same_code_replays_faithfully() -> None:
    with isolated_registries():
        flow = _stock_flow(required_quantity=True, typed_params=True)
        history = record_history(flow, {"sku": "x"})
        report = replay(flow, history)
    assert report.status == "waiting"
    assert report.faithful, report.divergences


# -- a flow that ends the process when imported -------------------------------------------------

EXITS_AT_IMPORT = """
import os
from awf_sim import Workflow

os._exit(0)

@Workflow("w", examples=[{}])
async def w(wf, params):
    return 1
"""

DEPLOY_COMMANDS = {
    "push": ["push", "{flow}", "--dry-run"],
    "build": ["build", "{flow}", "--out", "{out}"],
    "trigger": ["trigger", "w", "--flow", "{flow}", "--params", "{{}}"],
    "status": ["status", "w", "i-1", "--flow", "{flow}"],
}


@pytest.mark.parametrize("args", DEPLOY_COMMANDS.values(), ids=DEPLOY_COMMANDS.keys())
def test_a_flow_that_ends_the_process_at_import_is_not_a_success(
    tmp_path: Path, args: list[str]
) -> None:
    # Before: every command imported the flow in its own process, so os._exit(0) ended
    # `awf-deploy push` with exit 0 and no output before the gate ran. In a subprocess, since
    # without the fix the import would end the test run itself.
    flow = _flow(tmp_path, EXITS_AT_IMPORT)
    command = [a.format(flow=flow, out=tmp_path / "out") for a in args]
    env = {
        **os.environ,
        "CLOUDFLARE_API_TOKEN": "tok-unused",
        "CLOUDFLARE_ACCOUNT_ID": "0123456789abcdef0123456789abcdef",
        "CLOUDFLARE_API_BASE_URL": "http://127.0.0.1:9",  # nothing listens: no request made
    }
    done = subprocess.run(
        [sys.executable, "-c", "from awf_deploy.cli import main; main()", *command],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"awf-deploy: {flow}: importing it: the code under test ended")
    assert "os._exit" in lines[0]
    assert "Traceback" not in done.stdout + done.stderr


# -- a flow whose import never ends ------------------------------------------------------------

HANGS_AT_IMPORT = {
    "busy-loop": "while True:\n    pass\n",
    "sleep": "import time\ntime.sleep(10**6)\n",
}


@pytest.mark.parametrize("command", ["run", "chaos"])
@pytest.mark.parametrize("body", HANGS_AT_IMPORT.values(), ids=HANGS_AT_IMPORT.keys())
def test_a_flow_whose_import_never_ends_is_one_line_and_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str, body: str
) -> None:
    # Before: awf-sim run, chaos and awf-deploy push hung forever in the import, before any
    # of their budgets (which count handler attempts) began.
    monkeypatch.setattr(awf_sim.flow, "IMPORT_DEADLINE_S", 0.5)
    flow = tmp_path / "flow.py"
    flow.write_text(body + "from awf_sim import Workflow\n\n" + textwrap.dedent(GOOD_BODY))
    extra = ["--runs", "1"] if command == "chaos" else []
    result = CliRunner().invoke(sim_app, [command, str(flow), *extra])
    message = check_failure(result, 2, prefix=f"awf-sim: {flow}:")
    assert "importing it did not finish within 0.5 s" in message


GOOD_BODY = """
@Workflow("w", examples=[{}])
async def w(wf, params):
    return 1
"""


def test_the_import_deadline_leaves_a_deadline_of_the_callers_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Someone else's SIGALRM (a test's own `within`, an application's alarm) is theirs.
    monkeypatch.setattr(awf_sim.flow, "IMPORT_DEADLINE_S", 0.01)
    fired: list[int] = []
    previous = signal.signal(signal.SIGALRM, lambda signum, frame: fired.append(signum))
    try:
        signal.setitimer(signal.ITIMER_REAL, 30)
        flow = tmp_path / "slow.py"
        flow.write_text("import time\ntime.sleep(0.05)\nfrom awf_sim import Workflow\n" + GOOD_BODY)
        assert list(load_flow(flow).workflows) == ["w"]
        assert signal.getitimer(signal.ITIMER_REAL)[0] > 20  # still armed, as it was
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert fired == []
