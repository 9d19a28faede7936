"""`awf-sim conformance`: one line per scenario, exit 0 / 1 (mismatch) / 2 (bad input)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from awf_sim.cli import app

SCENARIOS = Path(__file__).parent / "scenarios"
PICKED = ["retry-linear-backoff", "wait-event-fifo-same-type", "terminate-while-sleeping"]
runner = CliRunner()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A folder with a few scenarios and their recorded traces, free to alter."""
    out = tmp_path / "scenarios"
    out.mkdir()
    for name in PICKED:
        for suffix in (".json", ".trace.json"):
            shutil.copy(SCENARIOS / f"{name}{suffix}", out / f"{name}{suffix}")
    return out


def files(folder: Path) -> list[str]:
    return [str(folder / f"{name}.json") for name in PICKED]


def test_matching_scenarios_print_one_line_each_and_exit_0(folder: Path) -> None:
    result = runner.invoke(app, ["conformance", *files(folder), "--compare-with", str(folder)])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [f"match     {name}" for name in PICKED]
    assert "3 scenarios on sim: 3 matched, 0 mismatched" in result.stderr


def test_an_altered_trace_exits_1_and_names_the_difference(folder: Path) -> None:
    trace_path = folder / "retry-linear-backoff.trace.json"
    trace = json.loads(trace_path.read_text())
    trace["attempts"]["ship#1"] = 3
    trace_path.write_text(json.dumps(trace))
    result = runner.invoke(app, ["conformance", str(folder), "--compare-with", str(folder)])
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert len(lines) == 3
    assert 'MISMATCH  retry-linear-backoff: attempts["ship#1"]: expected 3, got 4' in lines


def test_out_writes_traces_in_the_drivers_format(folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "traces"
    result = runner.invoke(app, ["conformance", *files(folder), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "retry-linear-backoff: complete",
        "wait-event-fifo-same-type: complete",
        "terminate-while-sleeping: terminated",
    ]
    written = json.loads((out / "wait-event-fifo-same-type.trace.json").read_text())
    assert written["output"] == {"results": [{"ok": None}, {"ok": {"n": 1}}, {"ok": {"n": 2}}]}
    text = (out / "retry-linear-backoff.trace.json").read_text()
    assert text.startswith('{\n  "name": "retry-linear-backoff",\n')
    assert text.endswith("}\n")


def test_json_output(folder: Path) -> None:
    result = runner.invoke(
        app, ["conformance", str(folder), "--compare-with", str(folder), "--json"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["engine"], report["run"], report["matched"], report["mismatched"]) == (
        "sim",
        3,
        3,
        0,
    )
    first = report["scenarios"][0]
    assert first["matched"] is True
    assert first["difference"] is None
    assert first["trace"]["retry_gaps_ms"] == {"ship#1": [20, 40, 60]}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--engine", "workerd"], "--engine must be one of sim, miniflare, got 'workerd'"),
        (["--compare-with", "/nonexistent"], "/nonexistent: not a folder of traces"),
    ],
)
def test_bad_options_exit_2(folder: Path, args: list[str], message: str) -> None:
    result = runner.invoke(app, ["conformance", str(folder), *args])
    assert result.exit_code == 2
    assert message in result.stderr
    assert result.stdout == ""


def test_a_bad_scenario_exits_2_naming_file_and_field(folder: Path) -> None:
    bad = folder / "broken.json"
    bad.write_text(json.dumps({"name": "broken", "body": [{"op": "do", "name": "a"}]}))
    result = runner.invoke(app, ["conformance", str(bad)])
    assert result.exit_code == 2
    assert f"{bad}: body[0].attempts: must be a non-empty list" in result.stderr


def test_a_missing_reference_trace_exits_2_before_running(folder: Path) -> None:
    (folder / "terminate-while-sleeping.trace.json").unlink()
    result = runner.invoke(app, ["conformance", str(folder), "--compare-with", str(folder)])
    assert result.exit_code == 2
    assert "terminate-while-sleeping.trace.json: no such trace file" in result.stderr
    assert result.stdout == ""


def test_miniflare_without_node_exits_2_with_what_to_install(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", "")
    result = runner.invoke(app, ["conformance", str(folder), "--engine", "miniflare"])
    assert result.exit_code == 2
    assert "node is not on PATH: install Node.js >= 20" in result.stderr


def test_miniflare_without_npm_ci_exits_2_with_the_command(
    folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if shutil.which("node") is None:
        pytest.skip("needs node on PATH to get past the node check")
    driver = tmp_path / "driver"
    driver.mkdir()
    (driver / "driver.mjs").write_text("")
    monkeypatch.setenv("AWF_CONFORMANCE_DIR", str(driver))
    result = runner.invoke(app, ["conformance", str(folder), "--engine", "miniflare"])
    assert result.exit_code == 2
    assert f"miniflare is not installed in {driver}: run `npm ci` there first" in result.stderr


def test_a_glob_that_also_names_the_traces_runs_each_scenario_once(folder: Path) -> None:
    everything = sorted(str(p) for p in folder.glob("*.json"))
    assert len(everything) == 6
    result = runner.invoke(app, ["conformance", *everything, "--compare-with", str(folder)])
    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) == 3


def test_a_lone_trace_file_is_refused(folder: Path) -> None:
    trace = folder / "retry-linear-backoff.trace.json"
    result = runner.invoke(app, ["conformance", str(trace)])
    assert result.exit_code == 2
    assert "this is a trace, not a scenario (pass NAME.json)" in result.stderr
