"""`awf-sim chaos`: exit codes, the report, --json against its schema, --replay, --jobs."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from typer.testing import CliRunner

from awf_sim.chaos import CHAOS_JSON_SCHEMA, KINDS
from awf_sim.cli import app

ROOT = Path(__file__).resolve().parents[2]
ORDER = "examples/order_processing.py"
FIXED = "examples/order_processing_fixed.py"
NONDET = "examples/nondeterministic.py"
runner = CliRunner()


@pytest.fixture(autouse=True)
def _in_repo_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)  # so that paths in reports and replay commands are relative


def chaos(*args: str) -> Any:
    # The examples redefine each other's Domains: the warning is expected in this process.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Domain .* replaces", UserWarning)
        return runner.invoke(app, ["chaos", *args])


def as_json(result: Any) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(result.stdout)
    jsonschema.validate(data, CHAOS_JSON_SCHEMA)
    return data


def test_the_seed_example_fails_with_the_fix_hint() -> None:
    result = chaos(ORDER, "--runs", "40")
    assert result.exit_code == 1, result.stderr
    out = result.stdout
    assert "idempotent-effects" in out
    assert "Inventory.reserve" in out
    assert "inventory.reserved for ABC: expected 2, got 4" in out
    assert "crash-after-effect on Inventory.reserve (attempt 1)" in out
    assert "ctx.idempotency_key" in out
    assert "examples/order_processing.py:" in out
    assert "⚡ crash-after-effect" in out  # the fault, marked in the timeline
    assert f"awf-sim chaos {ORDER} --workflow order-processing --example 1 --replay " in out
    assert "coverage: 35 of 35" in out


def test_the_fixed_example_is_clean() -> None:
    result = chaos(FIXED, "--runs", "40")
    assert result.exit_code == 0, result.stdout
    assert "no invariant broken" in result.stdout


def test_the_nondeterministic_example_fails_determinism() -> None:
    result = chaos(NONDET, "--runs", "20", "--json")
    assert result.exit_code == 1
    data = as_json(result)
    first = data["workflows"][0]["violations"][0]
    assert first["invariant"] == "determinism"
    assert "wf.do" in first["hint"]


def test_json_report_follows_the_schema() -> None:
    result = chaos(ORDER, "--example", "1", "--runs", "40", "--json", "--seed", "2")
    assert result.exit_code == 1
    data = as_json(result)
    assert data["clean"] is False
    assert data["seed"] == 2
    (wf,) = data["workflows"]
    assert wf["workflow"] == "order-processing"
    assert wf["input_from"] == "example 1 of 3"
    assert wf["expect"] == {"status": "complete", "error": None}
    assert wf["baseline"]["status"] == "complete"
    assert {i["name"]: i["violations"] > 0 for i in wf["invariants"]}["idempotent-effects"]
    assert wf["coverage"]["ran"] == wf["coverage"]["pairs"] == 35
    (violation,) = wf["violations"]
    assert violation["plan"] == [
        {"kind": "crash-after-effect", "step": "Inventory.reserve", "attempt": 1}
    ]
    assert [e["fault"] for e in violation["timeline"] if "fault" in e] == ["crash-after-effect"]
    assert violation["replay"].endswith(f"--example 1 --seed 2 --replay {violation['token']}")


def test_replay_reproduces_the_same_violation() -> None:
    first = as_json(chaos(ORDER, "--runs", "40", "--json"))["workflows"][0]["violations"][0]
    replayed = chaos(*first["replay"].split()[2:], "--json")
    assert replayed.exit_code == 1
    wf = as_json(replayed)["workflows"][0]
    assert wf["runs"] == 1
    assert wf["replay"] == first["token"]
    again = wf["violations"][0]
    for key in ("invariant", "key", "plan", "difference", "hint", "timeline", "replay"):
        assert again[key] == first[key]


def test_replay_of_a_clean_plan_exits_0() -> None:
    from awf_sim.chaos import plan_token

    token = plan_token([{"kind": "crash-after-checkpoint", "step": "Inventory.reserve"}])
    result = chaos(ORDER, "--replay", token)
    assert result.exit_code == 2  # which of the three examples?
    assert "--example N" in result.stderr
    result = chaos(ORDER, "--example", "1", "--replay", token)
    assert result.exit_code == 0, result.stdout
    assert "replayed 1 plan" in result.stdout
    # Example 2 (out of stock) never reserves: the fault could not fire, and a clean verdict
    # would say nothing, so the token is refused as not for this input.
    result = chaos(ORDER, "--example", "2", "--replay", token)
    assert result.exit_code == 2
    assert "aims at step 'Inventory.reserve', which the fault-free run" in result.stderr


def test_results_do_not_depend_on_jobs() -> None:
    one = as_json(chaos(ORDER, "--runs", "60", "--json", "--jobs", "1"))
    two = as_json(chaos(ORDER, "--runs", "60", "--json", "--jobs", "2"))
    one.pop("jobs")
    two.pop("jobs")
    assert one == two


def test_faults_limits_the_kinds() -> None:
    data = as_json(chaos(FIXED, "--runs", "0", "--faults", "timeout,events", "--json"))
    assert data["faults"] == [
        "timeout",
        "event-early",
        "event-late",
        "event-at-deadline",
        "event-withheld",
        "event-duplicate",
    ]
    assert {m["kind"] for m in data["workflows"][0]["coverage"]["matrix"]} == {"timeout"}


def test_a_bad_fault_kind_is_a_usage_error_listing_the_kinds() -> None:
    result = chaos(ORDER, "--faults", "crash-after-lunch")
    assert result.exit_code == 2
    assert "crash-after-lunch" in result.stderr
    for kind in KINDS:
        assert kind in result.stderr


@pytest.mark.parametrize(
    ("args", "words"),
    [
        ((ORDER, "--replay", "not-a-token"), "not a chaos replay token"),
        (("missing.py",), "no such file"),
        ((ORDER, "--workflow", "nope"), "no workflow named 'nope'"),
        ((ORDER, "--max-faults", "0"), "--max-faults"),
        ((ORDER, "--runs", "-1"), "--runs"),
        ((ORDER, "--jobs", "0"), "--jobs"),
        ((ORDER, "--input", "{bad"), "not valid JSON"),
    ],
)
def test_bad_usage_exits_2(args: tuple[str, ...], words: str) -> None:
    result = chaos(*args)
    assert result.exit_code == 2
    assert words in result.stderr


def test_without_workflow_every_workflow_runs(tmp_path: Path) -> None:
    # What push verifies: every workflow, on every example, `{}` for one without examples.
    flow = tmp_path / "two.py"
    flow.write_text(
        "from awf_sim import Workflow\n"
        "@Workflow('cli-two-a', examples=[{'n': 1}])\n"
        "async def a(wf, p):\n"
        "    return await wf.do('double', lambda: p['n'] * 2)\n"
        "@Workflow('cli-two-b', examples=[{'n': 2}])\n"
        "async def b(wf, p):\n"
        "    await wf.sleep('nap', '1 minute')\n"
        "    return p['n']\n"
        "@Workflow('cli-two-c')\n"
        "async def c(wf, p):\n"
        "    return 0\n"
    )
    data = as_json(chaos(str(flow), "--runs", "5", "--json"))
    assert [w["workflow"] for w in data["workflows"]] == ["cli-two-a", "cli-two-b", "cli-two-c"]
    assert [w["input_from"] for w in data["workflows"]][2] == "no examples: {}"
    assert data["clean"] is True
    assert chaos(str(flow), "--input", '{"n": 3}').exit_code == 2  # which workflow?
    one = as_json(chaos(str(flow), "-w", "cli-two-c", "--runs", "3", "--json"))
    assert one["workflows"][0]["input"] == {}
