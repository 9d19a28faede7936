"""`awf-sim run`: one instance to its end; one clear line and exit 2 for anything unusable."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from awf_sim.cli import app

ROOT = Path(__file__).resolve().parents[2]
ORDER = str(ROOT / "examples" / "order_processing.py")
TYPED_ORDER = str(ROOT / "examples" / "order_processing_typed.py")
runner = CliRunner()


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_runs_the_first_example_and_prints_timeline_and_output() -> None:
    result = runner.invoke(app, ["run", ORDER])
    assert result.exit_code == 0, result.stderr
    assert "Inventory.reserve" in result.stdout
    assert "checkpoint" in result.stdout
    assert '"status": "confirmed"' in result.stdout


def test_json_output_has_status_output_error_timeline() -> None:
    result = runner.invoke(app, ["run", ORDER, "--json", "--seed", "3"])
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert set(data) == {
        "workflow",
        "instance_id",
        "seed",
        "status",
        "output",
        "error",
        "timeline",
    }
    assert data["status"] == "complete"
    assert data["seed"] == 3
    assert data["workflow"] == "order-processing"
    assert data["instance_id"]
    assert data["output"]["status"] == "confirmed"
    paths = [e["path"] for e in data["timeline"] if e["kind"] == "checkpoint"]
    assert paths == [
        "Inventory.check",
        "Inventory.reserve",
        "Payment.process",
        "Fulfillment.create",
        "Email.send",
    ]


def test_input_selects_the_path_through_the_workflow(tmp_path: Path) -> None:
    order = {
        "id": "o-9",
        "product": {"sku": "ABC"},
        "quantity": 1,
        "total": 5,
        "paymentMethod": {"token": "tok_declined"},
        "customer": {"email": "x@example.com"},
        "shippingAddress": {},
    }
    result = runner.invoke(app, ["run", ORDER, "--json", "--input", json.dumps(order)])
    assert json.loads(result.stdout)["output"] == {
        "status": "payment-failed",
        "error": "card declined",
    }
    path = write(tmp_path, "in.json", json.dumps({**order, "product": {"sku": "OUT"}}))
    result = runner.invoke(app, ["run", ORDER, "--json", "--input-file", path])
    assert json.loads(result.stdout)["output"]["status"] == "backordered"


def test_same_seed_same_json() -> None:
    a = runner.invoke(app, ["run", ORDER, "--json", "--seed", "7"]).stdout
    b = runner.invoke(app, ["run", ORDER, "--json", "--seed", "7"]).stdout
    assert a == b


def test_errored_instance_exits_1(tmp_path: Path) -> None:
    flow = write(
        tmp_path,
        "fails.py",
        "from awf_sim import Workflow\n"
        "@Workflow('fails')\n"
        "async def fails(wf, params):\n"
        "    return await wf.do('boom', lambda: 1 / 0, retries={'limit': 0, 'delay': 0})\n",
    )
    result = runner.invoke(app, ["run", flow, "--json"])
    assert result.exit_code == 1
    error = json.loads(result.stdout)["error"]
    assert {k: error[k] for k in ("name", "message")} == {
        "name": "ZeroDivisionError",
        "message": "division by zero",
    }
    # error.stack: where the user's code raised it, file:line and code, awf's frames trimmed
    assert error["stack"].startswith("in boom, attempt 1:\n")
    assert 'fails.py", line 4, in <lambda>' in error["stack"]
    assert "1 / 0" in error["stack"]
    assert 'fails.py", line 4, in fails' in error["stack"]
    assert "awf_sim" not in error["stack"]


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("syntax.py", "def broken(:\n", "syntax.py:1: syntax error"),
        ("imports.py", "import not_a_module_anywhere\n", "ModuleNotFoundError"),
        ("empty.py", "x = 1\n", "defines no workflow"),
        (
            "cloudflare.py",
            "from workers import WorkflowEntrypoint\n"
            "class Greeter(WorkflowEntrypoint):\n"
            "    async def run(self, event, step):\n        return 1\n",
            "only the class Greeter with run(event, step)",
        ),
        (
            "two.py",
            "from awf_sim import Workflow\n"
            "a = Workflow('a', lambda wf, p: 1)\nb = Workflow('b', lambda wf, p: 2)\n",
            "choose one with --workflow",
        ),
    ],
)
def test_bad_flow_files_give_one_line_and_exit_2(
    tmp_path: Path, name: str, text: str, expected: str
) -> None:
    result = runner.invoke(app, ["run", write(tmp_path, name, text)])
    assert result.exit_code == 2
    assert expected in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_missing_file_unknown_workflow_and_bad_json_exit_2(tmp_path: Path) -> None:
    cases = [
        (["run", str(tmp_path / "nope.py")], "no such file"),
        (["run", ORDER, "--workflow", "nope"], "no workflow named 'nope'"),
        (["run", ORDER, "--input", "{bad"], "--input is not valid JSON"),
        (["run", ORDER, "--input-file", str(tmp_path / "missing.json")], "--input-file"),
        (["run", ORDER, "--input", "{}", "--input-file", "x.json"], "not both"),
    ]
    for args, expected in cases:
        result = runner.invoke(app, args)
        assert result.exit_code == 2, args
        assert expected in result.stderr, (args, result.stderr)


TYPED_PARAMS = """
from pydantic import BaseModel
from awf_sim import Workflow


class Trip(BaseModel):
    id: str
    nights: int = 1


@Workflow("typed-trip", examples=[{"id": "t-1"}])
async def typed_trip(wf, trip: Trip):
    return {"id": trip.id, "nights": trip.nights}
"""


@pytest.mark.parametrize("command", ["run", "chaos"])
def test_input_that_does_not_fit_the_params_type_is_bad_input(command: str, tmp_path: Path) -> None:
    # A pydantic model and a dataclass in the signature: input they refuse cannot start the
    # workflow, so the command says which field and why, and runs nothing.
    typed = write(tmp_path, "typed.py", TYPED_PARAMS)
    store = tmp_path / "s.db"
    cases = [
        ([typed, "--input", '{"nights": "many"}'], ("params.id", "Field required")),
        ([typed, "--input", '{"id": "t", "nights": "x"}'], ("params.nights", "valid integer")),
        ([typed, "--input", "[1]"], ("params ", "valid dictionary")),
        ([TYPED_ORDER, "--input", '{"id": "o-1"}'], ("params.product", "missing")),
    ]
    for args, expected in cases:
        extra = ["--store", str(store)] if command == "run" else []
        result = runner.invoke(app, [command, *args, *extra])
        assert result.exit_code == 2, (args, result.stdout)
        assert "does not fit the input type of" in result.stderr
        assert all(part in result.stderr for part in expected), (args, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1
    assert not store.exists()  # nothing was created
    fits = runner.invoke(app, [command, typed, "--input", '{"id": "t-2", "nights": 3}'])
    assert fits.exit_code == 0, fits.stdout


def test_help_documents_every_option() -> None:
    result = runner.invoke(app, ["run", "--help"])
    assert result.exit_code == 0
    for option in ("--workflow", "--input", "--input-file", "--seed", "--store", "--json"):
        assert option in result.stdout


def test_console_script_and_store_resume(tmp_path: Path) -> None:
    """The installed `awf-sim` resumes a run that was killed, from its SQLite store."""
    flow = write(
        tmp_path,
        "resumable.py",
        "import os, signal\n"
        "from awf_sim import Workflow\n"
        "def work(i):\n"
        "    if i == 1 and os.environ.get('KILL_AT_1'):\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
        "    return i\n"
        "@Workflow('resumable')\n"
        "async def resumable(wf, params):\n"
        "    return [await wf.do(f's{i}', lambda i=i: work(i)) for i in range(3)]\n",
    )
    store = str(tmp_path / "run.db")
    exe = [sys.executable, "-m", "awf_sim.cli", "run", flow, "--store", store, "--json"]
    killed = subprocess.run(
        exe, env={**os.environ, "KILL_AT_1": "1"}, capture_output=True, text=True
    )
    # The run's process was killed; awf-sim, which watched it, says so and fails.
    assert killed.returncode == 1
    assert "killed by SIGKILL" in killed.stderr
    failure = json.loads(killed.stdout)  # --json: the failure is the one object on stdout
    assert (failure["ok"], failure["error"]["exit_code"]) == (False, 1)
    assert "killed by SIGKILL" in failure["error"]["message"]
    resumed = subprocess.run(exe, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming unfinished instance" in resumed.stderr
    data = json.loads(resumed.stdout)
    assert data["output"] == [0, 1, 2]
    assert [e["path"] for e in data["timeline"] if e["kind"] == "checkpoint"] == ["s0", "s1", "s2"]


def test_version_and_readable_help() -> None:
    from importlib.metadata import version

    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"awf-sim {version('awf')}"
    helped = runner.invoke(app, ["chaos", "--help"]).stdout
    for metavar in ("NAME", "JSON", "FILE", "TOKEN", "KINDS"):
        assert metavar in helped
    assert "<int>" not in helped
    assert "--json  " in helped or "--json " in helped


def test_instances_lists_and_shows_a_store(tmp_path: os.PathLike[str]) -> None:
    store = os.path.join(tmp_path, "runs.db")
    ran = json.loads(runner.invoke(app, ["run", ORDER, "--store", store, "--json"]).stdout)
    listed = runner.invoke(app, ["instances", "--store", store, "--json"])
    assert listed.exit_code == 0, listed.stderr
    (row,) = json.loads(listed.stdout)
    assert row["instance_id"] == ran["instance_id"]
    assert row["workflow"] == "order-processing"
    assert row["status"] == "complete"
    shown = runner.invoke(app, ["instances", "--store", store, ran["instance_id"], "--json"])
    assert json.loads(shown.stdout)["timeline"] == ran["timeline"]
    text = runner.invoke(app, ["instances", "--store", store, ran["instance_id"]])
    assert "workflow-success" in text.stdout
    assert "status: complete" in text.stdout
    missing = runner.invoke(app, ["instances", "--store", os.path.join(tmp_path, "none.db")])
    assert missing.exit_code == 2
    assert "no such file" in missing.stderr
    unknown = runner.invoke(app, ["instances", "--store", store, "nope"])
    assert unknown.exit_code == 2
    assert ran["instance_id"] in unknown.stderr


def test_instances_given_the_store_as_its_argument_says_to_write_store(
    tmp_path: os.PathLike[str],
) -> None:
    # `awf-sim instances runs.db` took the file for an instance id and printed typer's box
    # about a missing option.
    store = os.path.join(tmp_path, "runs.db")
    runner.invoke(app, ["run", ORDER, "--store", store])
    for args, said in [
        (["instances", store], f"awf-sim instances --store {store}"),
        (["instances"], "missing --store FILE"),
    ]:
        result = runner.invoke(app, args)
        assert result.exit_code == 2
        assert result.stdout == ""
        (line,) = result.stderr.splitlines()
        assert said in line


COUNTED = (
    "import os\n"
    "from awf_sim import Workflow\n"
    "def work(i):\n"
    "    with open(os.environ['RUNS_LOG'], 'a') as f:\n"
    "        f.write(f'{i}\\n')\n"
    "    return i\n"
    "@Workflow('counted', examples=[{'n': 2}])\n"
    "async def counted(wf, params):\n"
    "    return [await wf.do(f's{i}', lambda i=i: work(i)) for i in range(params['n'])]\n"
)


def test_a_store_remembers_a_finished_instance(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 17.5: a rerun on a store that holds this workflow's finished instance for the
    same input reports it, and runs nothing again; --new, another input or --id start anew."""
    flow = write(tmp_path, "counted.py", COUNTED)
    log = tmp_path / "runs.log"
    monkeypatch.setenv("RUNS_LOG", str(log))
    store = str(tmp_path / "run.db")

    def run(*extra: str) -> dict[str, object]:
        result = runner.invoke(app, ["run", flow, "--store", store, "--json", *extra])
        assert result.exit_code == 0, result.stderr
        data: dict[str, object] = json.loads(result.stdout)
        data["stderr"] = result.stderr
        return data

    first = run()
    assert log.read_text().split() == ["0", "1"]
    again = run()
    assert "already finished (complete)" in str(again["stderr"])
    assert again["output"] == [0, 1]
    assert again["timeline"] == first["timeline"]
    assert log.read_text().split() == ["0", "1"]  # nothing ran again

    run("--new")
    assert log.read_text().split() == ["0", "1", "0", "1"]
    run("--input", '{"n": 1}')  # another input is another instance
    assert log.read_text().split() == ["0", "1", "0", "1", "0"]
    run("--id", "mine")
    shown = run("--id", "mine")
    assert "instance mine" in str(shown["stderr"])
    assert log.read_text().split() == ["0", "1", "0", "1", "0", "0", "1"]
