"""`awf-sim ... --json` prints one JSON object on stdout whatever happens: a script that reads
stdout gets `{"ok": false, "error": {...}}` on a failure, beside the same line on stderr and
the same exit code. Before, a failing command printed nothing on stdout."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _awf_sim(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "awf_sim.cli", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )


def _one_object(stdout: str) -> Any:
    lines = [line for line in stdout.splitlines() if line.strip()]
    assert len(lines) == 1, stdout
    return json.loads(lines[0])


@pytest.mark.parametrize(
    ("args", "kind", "code", "says"),
    [
        (["run", "missing.py"], "BadInput", 2, "missing.py: no such file"),
        (["chaos", "missing.py"], "BadInput", 2, "missing.py: no such file"),
        (["replay", "examples/payment.py", "missing.json"], "BadInput", 2, "missing.json"),
        (["conformance", "missing-dir"], "BadInput", 2, "missing-dir: no such file"),
        (["instances"], "BadInput", 2, "missing --store FILE"),
        (["chaos", "examples/payment.py", "--seed", "x"], "UsageError", 2, "'--seed'"),
        (["run", "examples/payment.py", "--json", "--input"], "UsageError", 2, "run --help`"),
    ],
    ids=["run", "chaos", "replay", "conformance", "instances", "bad-option", "no-value"],
)
def test_a_failure_with_json_is_one_object_on_stdout(
    args: list[str], kind: str, code: int, says: str
) -> None:
    done = _awf_sim(*args) if "--json" in args else _awf_sim(*args, "--json")
    assert done.returncode == code, done.stderr
    failure = _one_object(done.stdout)
    assert failure["ok"] is False
    assert failure["error"]["kind"] == kind
    assert failure["error"]["exit_code"] == code
    assert says in failure["error"]["message"]
    # The same line as without --json, on stderr.
    assert failure["error"]["message"] in done.stderr


def test_without_json_a_failure_prints_nothing_on_stdout() -> None:
    done = _awf_sim("chaos", "missing.py")
    assert done.returncode == 2
    assert done.stdout == ""
    assert "missing.py: no such file" in done.stderr


def test_a_report_that_exits_1_is_the_one_object() -> None:
    # chaos finds the planted bug (exit 1) and prints its report from a supervised child
    # process: no failure object is added after it.
    done = _awf_sim("chaos", "examples/order_processing.py", "--json", "--runs", "30")
    assert done.returncode == 1, done.stderr
    report = _one_object(done.stdout)
    assert "ok" not in report
    assert report["flow"] == "examples/order_processing.py"
    assert "Inventory.reserve" in done.stdout
