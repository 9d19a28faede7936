"""`awf-sim replay FLOW.py HISTORY.json`: a production history against the current code.

The histories are recorded by the simulator itself (`record_history`), in the shape of
Cloudflare's instance API, so these tests also pin the store records the replay pre-loads."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from awf_sim.cli import app
from awf_sim.dsl import isolated_registries
from awf_sim.flow import load_flow
from awf_sim.replay import HISTORY_VERSION, History, record_history, replay

runner = CliRunner()

FLOW = """
from awf_sim import Domain, Workflow


async def charge(order, args, ctx):
    return {"charged": args["amount"]}


async def ship(order, args, ctx):
    return {"shipped": order["id"]}


ReplayPay = Domain(
    "ReplayPay",
    {"charge": {"handler": charge, "retries": {"limit": RETRIES, "delay": "1 second"}}},
)
ReplayShip = Domain("ReplayShip", {"ship": ship})


@Workflow("replay-order", examples=[{"id": "o-1", "amount": 5}], domains=[ReplayPay, ReplayShip])
async def order(wf, params):
    paid = await wf.ReplayPay({"id": params["id"]}).charge(amount=AMOUNT)
    EXTRA
    await wf.sleep("cool-off", "1 day")
    approval = await wf.wait_for("approval", type="approved", timeout="7 days")
    shipped = await wf.ReplayShip({"id": params["id"]}).ship()
    return {"paid": paid, "approval": approval, "shipped": shipped}
"""

PARAMS = {"id": "o-1", "amount": 5}


def flow_text(amount: str = 'params["amount"]', retries: int = 3, extra: str = "") -> str:
    return (
        FLOW.replace("AMOUNT", amount)
        .replace("RETRIES", str(retries))
        .replace("EXTRA", extra or "pass")
        .lstrip()
    )


@pytest.fixture(autouse=True)
def _registry() -> Iterator[None]:
    with isolated_registries():
        yield


def write_flow(folder: Path, name: str, **changes: Any) -> str:
    path = folder / name
    path.write_text(flow_text(**changes))
    return str(path)


def history_of(flow: str, events: dict[str, Any] | None = None) -> History:
    with isolated_registries():
        loaded = load_flow(flow)
        return record_history(loaded.workflows["replay-order"], PARAMS, events=events)


def save(history: History, path: Path) -> str:
    path.write_text(json.dumps(history.to_json()))
    return str(path)


def replay_cli(*args: str) -> Result:
    with isolated_registries():  # every version of the flow defines the same Domain names
        return runner.invoke(app, ["replay", *args])


@pytest.fixture
def recorded(tmp_path: Path) -> str:
    """The history of an instance that charged, slept and now waits for approval."""
    return save(history_of(write_flow(tmp_path, "v1.py")), tmp_path / "history.json")


def test_history_has_cloudflares_step_log_shape(recorded: str) -> None:
    data = json.loads(Path(recorded).read_text())
    assert data["format"] == "awf-instance-history"
    assert data["version"] == HISTORY_VERSION
    assert data["status"] == "waiting"
    charge, sleep, wait = data["steps"]
    assert charge["type"] == "step"
    assert charge["name"].startswith("ReplayPay.charge@")
    assert charge["success"] is True
    assert charge["output"] == {"charged": 5}
    assert charge["config"]["retries"]["limit"] == 3
    assert charge["attempts"][0]["success"] is True
    assert sleep == {**sleep, "type": "sleep", "name": "cool-off", "finished": True}
    assert wait["type"] == "waitForEvent"
    assert wait["finished"] is False


def test_the_same_code_replays_faithfully(recorded: str, tmp_path: Path) -> None:
    result = replay_cli(str(tmp_path / "v1.py"), recorded)
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "faithful: 2 of 2 completed steps served from the history" in result.stdout
    assert "goes on to waiting" in result.stdout
    data = json.loads(replay_cli(str(tmp_path / "v1.py"), recorded, "--json").stdout)
    assert data["faithful"] is True
    assert [s["source"] for s in data["steps"]] == ["history", "history", "in progress"]


def test_a_history_that_has_moved_on_runs_from_where_it_stands(tmp_path: Path) -> None:
    flow = write_flow(tmp_path, "v1.py")
    done = save(history_of(flow, events={"approved": {"by": "ana"}}), tmp_path / "done.json")
    data = json.loads(replay_cli(flow, done, "--json").stdout)
    assert data["faithful"] is True
    assert data["status"] == "complete"
    assert data["output"]["approval"] == {"by": "ana"}  # the event, served from the history


def test_changed_args_diverge_and_name_the_step(recorded: str, tmp_path: Path) -> None:
    cents = write_flow(tmp_path, "v2.py", amount='params["amount"] * 100')
    result = replay_cli(cents, recorded)
    assert result.exit_code == 1
    assert "DIVERGES" in result.stdout
    assert "new-before-frontier: ReplayPay.charge@" in result.stdout
    assert "its context or args changed" in result.stdout
    assert "not-called: ReplayPay.charge@" in result.stdout


def test_a_new_step_before_the_frontier_diverges(recorded: str, tmp_path: Path) -> None:
    extra = 'await wf.ReplayShip({"id": "audit"}).ship()'
    flow = write_flow(tmp_path, "v3.py", extra=extra)
    data = json.loads(replay_cli(flow, recorded, "--json").stdout)
    assert data["faithful"] is False
    (divergence,) = data["divergences"]
    assert divergence["kind"] == "new-before-frontier"
    assert divergence["path"] == "ReplayShip.ship"
    assert "never ran" in divergence["detail"]


def test_a_changed_step_config_diverges(recorded: str, tmp_path: Path) -> None:
    flow = write_flow(tmp_path, "v4.py", retries=7)
    result = replay_cli(flow, recorded, "--json")
    assert result.exit_code == 1
    (divergence,) = json.loads(result.stdout)["divergences"]
    assert divergence["kind"] == "config-changed"
    assert "retries limit 3" in divergence["detail"]
    assert "retries limit 7" in divergence["detail"]


def test_cloudflares_textual_config_is_understood(tmp_path: Path) -> None:
    flow = write_flow(tmp_path, "v1.py")
    history = history_of(flow).to_json()
    history["steps"][0]["config"] = {
        "retries": {"limit": 3, "delay": "1 second", "backoff": "exponential"},
        "timeout": "10 minutes",
    }
    path = tmp_path / "textual.json"
    path.write_text(json.dumps(history))
    assert replay_cli(flow, str(path)).exit_code == 0


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not JSON"),
        ('{"format": "awf-instance-history", "version": 99}', "version 99 is not supported"),
        ('{"steps": []}', "not an awf instance history"),
    ],
)
def test_bad_history_files_are_exit_2(
    content: str, message: str, recorded: str, tmp_path: Path
) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    result = replay_cli(str(tmp_path / "v1.py"), str(path))
    assert result.exit_code == 2
    assert message in result.stderr


def test_a_history_of_another_workflow_is_exit_2(recorded: str, tmp_path: Path) -> None:
    data = json.loads(Path(recorded).read_text())
    data["workflow"] = "somebody-else"
    path = tmp_path / "other.json"
    path.write_text(json.dumps(data))
    result = replay_cli(str(tmp_path / "v1.py"), str(path))
    assert result.exit_code == 2
    assert "history is of workflow 'somebody-else'" in result.stderr
    assert "replay-order" in result.stderr
    assert replay_cli(str(tmp_path / "v1.py"), str(tmp_path / "missing.json")).exit_code == 2


def test_replay_api_refuses_another_workflow(tmp_path: Path) -> None:
    from awf_sim.errors import HistoryError

    flow = write_flow(tmp_path, "v1.py")
    history = history_of(flow)
    with isolated_registries():
        workflow = load_flow(flow).workflows["replay-order"]
        other = History.from_json({**history.to_json(), "workflow": "x"})
        with pytest.raises(HistoryError, match="not 'replay-order'"):
            replay(workflow, other)


def test_code_that_ends_the_process_is_never_a_faithful_replay(
    tmp_path: Path, recorded: str
) -> None:
    # The replay reaches code that ends its process: exit 0 would say "faithful".
    ends = write_flow(tmp_path, "v2.py", extra="import os; os._exit(0)")
    result = replay_cli(ends, recorded, "--json")
    assert result.exit_code == 1, result.stdout + result.stderr
    # With --json, the failure is the one object on stdout (its line stays on stderr).
    failure = json.loads(result.stdout)
    assert (failure["ok"], failure["error"]["kind"]) == (False, "Failed")
    assert "ended the process" in failure["error"]["message"]
    assert "ended the process" in result.stderr
    assert "status 0: os._exit" in result.stderr


def test_code_that_fails_on_the_history_says_where(recorded: str, tmp_path: Path) -> None:
    # The new code reads a field the checkpointed result never had: the divergence and the
    # JSON error name the line, as every failure does (issue 15.4).
    flow = write_flow(tmp_path, "v2.py", extra='paid["currency"]')
    result = replay_cli(flow, recorded)
    assert result.exit_code == 1, result.stdout + result.stderr
    line = flow_text(extra='paid["currency"]').splitlines().index('    paid["currency"]') + 1
    assert f"(KeyError: 'currency' at {flow}:{line})" in result.stdout
    data = json.loads(replay_cli(flow, recorded, "--json").stdout)
    assert [d["kind"] for d in data["divergences"]] == ["fails-on-history", "not-called"]
    assert f'File "{flow}", line {line}' in data["error"]["stack"]
