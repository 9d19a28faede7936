"""`awf-deploy pull` saves an instance's history; `push` replays the account's running instances
on the new code and refuses a deploy they would not follow."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

import awf_deploy.cli
from awf_deploy.cli import app
from awf_sim.cli import app as sim_app
from awf_sim.dsl import isolated_registries
from awf_sim.flow import load_flow
from awf_sim.replay import History, record_history

runner = CliRunner()
UPLOAD = "worker-script-upload-worker-module"

FLOW = """
from awf_sim import Domain, Workflow


async def charge(order, args, ctx):
    return {"charged": args["amount"]}


async def ship(order, args, ctx):
    return {"shipped": order["id"], "note": NOTE}


GatePay = Domain("GatePay", {"charge": charge})
GateShip = Domain("GateShip", {"ship": ship})


@Workflow("gate-order", examples=[{"id": "o-1", "amount": 5}], domains=[GatePay, GateShip])
async def order(wf, params):
    paid = await wf.GatePay({"id": params["id"]}).charge(amount=AMOUNT)
    approval = await wf.wait_for("approval", type="approved", timeout="7 days")
    shipped = await wf.GateShip({"id": params["id"]}).ship()
    return {"paid": paid, "approval": approval, "shipped": shipped}
"""


@pytest.fixture(autouse=True)
def _registry() -> Iterator[None]:
    with isolated_registries():
        yield


def flow_file(folder: Path, amount: str = 'params["amount"]', note: str = "'v1'") -> str:
    folder.mkdir(exist_ok=True)
    path = folder / "gate_order.py"  # one script name for every version: gate-order
    path.write_text(FLOW.replace("AMOUNT", amount).replace("NOTE", note).lstrip())
    return str(path)


def cli(*args: str) -> Result:
    with isolated_registries():  # versions of the flow define the same Domain names
        return runner.invoke(app, list(args))


def history(flow: str, instance: str, amount: int = 5) -> History:
    with isolated_registries():
        workflow = load_flow(flow).workflows["gate-order"]
        return record_history(workflow, {"id": instance, "amount": amount}, instance_id=instance)


@pytest.fixture
def account(cli_env: Any, tmp_path: Path) -> tuple[Any, str]:
    """The account runs v1 of the flow, with two instances waiting for approval."""
    v1 = flow_file(tmp_path / "v1")
    assert cli("push", v1, "--yes", "--no-verify").exit_code == 0
    for instance in ("o-1", "o-2"):
        cli_env.add_instance(history(v1, instance))
    return cli_env, v1


def test_pull_saves_a_history_that_awf_sim_replays(
    account: tuple[Any, str], tmp_path: Path
) -> None:
    cf, v1 = account
    out = tmp_path / "o-1.json"
    pulled = cli("pull", "gate-order", "o-1", "--out", str(out))
    assert pulled.exit_code == 0, pulled.stderr
    assert "Saved instance o-1 of gate-order (waiting, 2 steps)" in pulled.stdout
    assert f"awf-sim replay FLOW.py {out}" in pulled.stdout
    data = json.loads(out.read_text())
    assert data["format"] == "awf-instance-history"
    assert data["version"] == 1
    assert [s["type"] for s in data["steps"]] == ["step", "waitForEvent"]
    assert cf.token not in out.read_text() + pulled.stdout + pulled.stderr

    with isolated_registries():
        faithful = runner.invoke(sim_app, ["replay", v1, str(out)])
    assert faithful.exit_code == 0, faithful.stdout
    v2 = flow_file(tmp_path / "v2", amount='params["amount"] * 100')
    with isolated_registries():
        diverging = runner.invoke(sim_app, ["replay", v2, str(out)])
    assert diverging.exit_code == 1
    assert "GatePay.charge" in diverging.stdout


def test_a_refused_push_says_the_fix_for_the_divergence_it_found(
    account: tuple[Any, str], tmp_path: Path
) -> None:
    # A completed step's retries changed: the refusal said "keep the old step names (context,
    # args)", which names did not change; it now says what to keep for that kind.
    cf = account[0]
    folder = tmp_path / "v2"
    folder.mkdir()
    retried = '{"charge": {"handler": charge, "retries": {"limit": 2, "delay": "1 second"}}}'
    path = folder / "gate_order.py"
    source = FLOW.replace("AMOUNT", 'params["amount"]').replace("NOTE", "'v1'")
    path.write_text(source.replace('{"charge": charge}', retried).lstrip())
    refused = cli("push", str(path), "--yes", "--no-verify")
    assert refused.exit_code == 1
    assert "diverges at config-changed: GatePay.charge@" in refused.stdout
    (line,) = [ln for ln in refused.stderr.splitlines() if "refusing to push" in ln]
    assert "keep the retries and timeout their completed steps ran with" in line
    assert "step names" not in line
    assert [r.operation_id for r in cf.requests].count(UPLOAD) == 1  # v1's only
    renamed = flow_file(tmp_path / "v3", amount='params["amount"] * 100')
    (line,) = [
        ln
        for ln in cli("push", renamed, "--yes", "--no-verify").stderr.splitlines()
        if "refusing" in ln
    ]
    assert "keep the old step names (context, args) for them, or pass --allow-divergence" in line


def test_pull_of_an_instance_that_no_longer_exists(account: tuple[Any, str]) -> None:
    result = cli("pull", "gate-order", "gone-1")
    assert result.exit_code == 1
    assert "instance.not_found" in result.stderr
    assert "awf-deploy status" in result.stderr


def test_push_replays_running_instances_and_goes_ahead_when_faithful(
    account: tuple[Any, str], tmp_path: Path
) -> None:
    cf = account[0]
    v1b = flow_file(tmp_path / "v1b", note="'v1b'")  # a handler changed, no step name did
    result = cli("push", v1b, "--yes", "--no-verify")
    assert result.exit_code == 0, result.stderr
    assert "2 running instances replayed: all faithful" in result.stdout
    assert [r.operation_id for r in cf.requests].count(UPLOAD) == 2


def test_push_refuses_a_deploy_running_instances_would_diverge_from(
    account: tuple[Any, str], tmp_path: Path
) -> None:
    cf = account[0]
    v2 = flow_file(tmp_path / "v2", amount='params["amount"] * 100')
    refused = cli("push", v2, "--yes", "--no-verify")
    assert refused.exit_code == 1
    assert "2 running instances replayed: 2 diverge" in refused.stdout
    assert "instance o-1 of gate-order diverges at new-before-frontier: GatePay.charge@" in (
        refused.stdout
    )
    assert "instance o-2 of gate-order" in refused.stdout
    assert "--allow-divergence" in refused.stderr
    assert [r.operation_id for r in cf.requests].count(UPLOAD) == 1  # v1's only

    dry = cli("push", v2, "--dry-run", "--no-verify", "--json")
    assert dry.exit_code == 1
    report = json.loads(dry.stdout)["replay"]
    assert report["faithful"] is False
    assert {d["instance"] for d in report["divergent"]} == {"o-1", "o-2"}

    allowed = cli("push", v2, "--yes", "--no-verify", "--allow-divergence")
    assert allowed.exit_code == 0, allowed.stderr
    assert [r.operation_id for r in cf.requests].count(UPLOAD) == 2


def test_finished_instances_are_not_replayed(account: tuple[Any, str], tmp_path: Path) -> None:
    cf = account[0]
    for instance in cf.instances["gate-order"].values():
        instance["status"] = "complete"
    v2 = flow_file(tmp_path / "v2", amount='params["amount"] * 100')
    result = cli("push", v2, "--yes", "--no-verify")
    assert result.exit_code == 0, result.stderr
    assert "no running instances to replay" in result.stdout
    listed = [r.query.get("status") for r in cf.requests if r.operation_id.endswith("instances")]
    assert set(listed) >= {"running", "waiting", "paused", "queued"}


def test_very_many_instances_are_listed_page_by_page_and_sampled(
    account: tuple[Any, str], tmp_path: Path
) -> None:
    cf, v1 = account
    template = history(v1, "o-1").to_json()
    for n in range(130):
        cf.add_instance({**template, "instance": f"many-{n}"})
    v1b = flow_file(tmp_path / "v1b", note="'v1b'")
    result = cli("push", v1b, "--yes", "--no-verify", "--replay-limit", "5")
    assert result.exit_code == 0, result.stderr
    assert "5 running instances replayed (a sample of 132): all faithful" in result.stdout
    pages = [
        r.query.get("page")
        for r in cf.requests
        if r.operation_id == "wor-list-workflow-instances" and r.query.get("status") == "waiting"
    ]
    assert pages[-2:] == ["1", "2"]


def test_an_instance_that_ends_between_listing_and_reading_is_skipped(
    account: tuple[Any, str], tmp_path: Path
) -> None:
    cf = account[0]
    cf.queue("wor-describe-workflow-instance", cf.fail(404, 10201, "instance.not_found"))
    v1b = flow_file(tmp_path / "v1b", note="'v1b'")
    result = cli("push", v1b, "--yes", "--no-verify")
    assert result.exit_code == 0, result.stderr
    assert "1 running instance replayed (1 more ended meanwhile): all faithful" in result.stdout


def test_rate_limits_during_the_listing_are_waited_out(
    account: tuple[Any, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cf = account[0]
    slept: list[float] = []
    monkeypatch.setitem(awf_deploy.cli._CLIENT_OPTIONS, "sleep", slept.append)
    limited = cf.fail(429, 971, "Please wait and consider throttling your request speed")
    limited.headers["Retry-After"] = "2"
    cf.queue("wor-list-workflow-instances", limited, limited)
    v1b = flow_file(tmp_path / "v1b", note="'v1b'")
    result = cli("push", v1b, "--yes", "--no-verify")
    assert result.exit_code == 0, result.stderr
    assert slept == [2.0, 2.0]
    assert "2 running instances replayed: all faithful" in result.stdout


def test_a_rate_limit_that_lasts_stops_the_push_before_the_upload(
    account: tuple[Any, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cf = account[0]
    monkeypatch.setitem(awf_deploy.cli._CLIENT_OPTIONS, "max_retries", 1)
    limited = cf.fail(429, 971, "Please wait and consider throttling your request speed")
    limited.headers["Retry-After"] = "300"  # beyond what the client waits out
    cf.queue("wor-list-workflow-instances", limited)
    v1b = flow_file(tmp_path / "v1b", note="'v1b'")
    result = cli("push", v1b, "--yes", "--no-verify")
    assert result.exit_code == 1
    assert "HTTP 429" in result.stderr
    assert "rate limit" in result.stderr
    assert [r.operation_id for r in cf.requests].count(UPLOAD) == 1
    assert cf.token not in result.stdout + result.stderr


def test_new_code_that_ends_the_process_on_a_running_instance_fails_the_push(
    account: tuple[Any, str], tmp_path: Path
) -> None:
    # The new workflow body calls os._exit(0) for one running instance's params only, which
    # chaos (on the examples) never sees. Replayed in the push process itself, that ended
    # `awf-deploy push` with exit 0, no output and nothing pushed: a CI job saw a deploy.
    cf, v1 = account
    cf.add_instance(history(v1, "o-7", amount=7))
    exits = '(__import__("os")._exit(0) if params["amount"] == 7 else params["amount"])'
    v2 = flow_file(tmp_path / "v2", amount=exits)
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # the CLI in a child of the test, so that a silenced push cannot end pytest
        code = 70
        try:
            os.close(read_end)
            result = cli("push", v2, "--yes", "--no-verify")
            with os.fdopen(write_end, "w") as pipe:
                pipe.write(result.stdout + result.stderr)
            code = result.exit_code
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        output = pipe.read()
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 1, output
    assert "the running-instance replay gate" in output
    assert "os._exit" in output
    assert "Traceback" not in output


def test_dropping_a_workflow_whose_instances_still_run_is_refused(
    account: tuple[Any, str], tmp_path: Path
) -> None:
    # The same script (gate_order.py) no longer defines gate-order: Cloudflare keeps that
    # workflow bound to a class the new script does not have, and o-1, o-2 would fail.
    cf, v1 = account
    folder = tmp_path / "renamed"
    folder.mkdir()
    renamed = folder / "gate_order.py"
    renamed.write_text(Path(v1).read_text().replace('"gate-order"', '"gate-order-v2"'))
    refused = cli("push", str(renamed), "--yes", "--no-verify")
    assert refused.exit_code == 1, refused.stdout + refused.stderr
    assert "workflow gate-order is no longer in the flow" in refused.stdout
    assert "2 running instances (o-1, o-2) would fail" in refused.stdout
    # The summary above that line speaks of the new flow's workflows, not of the account's.
    assert "no running instances to replay" not in refused.stdout
    assert (
        "no running instances of the flow's own workflows to replay; the dropped workflows' "
        "running instances are below"
    ) in refused.stdout
    assert "refusing to push" in refused.stderr
    assert "--allow-divergence" in refused.stderr
    assert [r.operation_id for r in cf.requests].count(UPLOAD) == 1  # v1's only

    as_json = cli("push", str(renamed), "--yes", "--no-verify", "--json")
    assert as_json.exit_code == 1
    report = json.loads(as_json.stdout)["replay"]
    assert report["faithful"] is False
    assert report["removed"] == [
        {"workflow": "gate-order", "class": "GateOrderWorkflow", "active": ["o-1", "o-2"]}
    ]

    # Once they have ended, the push goes ahead and still says what it leaves behind.
    for instance in cf.instances["gate-order"].values():
        instance["status"] = "complete"
    pushed = cli("push", str(renamed), "--yes", "--no-verify")
    assert pushed.exit_code == 0, pushed.stderr
    assert "workflow gate-order is no longer in the flow" in pushed.stdout
    assert "new ones would fail to start" in pushed.stdout
    assert "no running instances to replay" in pushed.stdout
    assert [r.operation_id for r in cf.requests].count(UPLOAD) == 2
