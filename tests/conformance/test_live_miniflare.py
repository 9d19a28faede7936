"""Re-runs every scenario live on Miniflare and compares with the recorded traces.

This keeps the recorded traces honest: they must be what the pinned Miniflare does today.
It needs Node and `npm ci` in tests/conformance (.ci/run does both). Outside CI it is skipped
when the npm packages are not installed; under CI (CI=true) it always runs, so a broken
install fails loudly instead of passing quietly.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from awf_sim.cli import app
from awf_sim.conformance import (
    collect_scenarios,
    compare_traces,
    load_trace,
    run_on_miniflare,
)

pytestmark = pytest.mark.conformance

SCENARIOS = Path(__file__).parent / "scenarios"
ALL = collect_scenarios([SCENARIOS])


def _pinned() -> str:
    """The Miniflare version this test runs: the installed one, else package.json's pin."""
    installed = Path(__file__).parent / "node_modules" / "miniflare" / "package.json"
    if installed.is_file():
        version: str = json.loads(installed.read_text())["version"]
        return version
    pin: str = json.loads((Path(__file__).parent / "package.json").read_text())["dependencies"][
        "miniflare"
    ]
    return pin


PINNED = _pinned()
_PINNED_PARTS = tuple(int(part) for part in PINNED.split("."))
# Scenarios that say they need a newer engine ("engine": ">=V", restart({from}) for one) were
# recorded on that engine; the pinned one cannot run them. The simulator still matches them
# against their recorded traces (test_sim_matches_recorded.py).
RUNNABLE = [s for s in ALL if s.engine is None or s.engine <= _PINNED_PARTS]


def _case(scenario: Any) -> Any:
    if scenario in RUNNABLE:
        return scenario
    need = ".".join(map(str, scenario.engine))
    return pytest.param(
        scenario,
        marks=pytest.mark.skip(
            reason=f"needs miniflare >= {need} (recorded there); the pinned one is {PINNED}"
        ),
    )


@pytest.fixture(scope="module")
def live_traces(miniflare_installed: None) -> dict[str, dict[str, Any]]:
    # One driver: it runs four scenarios at a time in one Miniflare, so the two that idle
    # until the 20 s limit hold one slot each and cost no one else any time.
    return run_on_miniflare(RUNNABLE, jobs=1)


def test_scenarios_for_a_newer_engine_are_the_only_ones_left_out() -> None:
    left_out = {s.name for s in ALL} - {s.name for s in RUNNABLE}
    assert left_out == {s.name for s in ALL if s.name.startswith("p4-restart-from-")}
    assert len(left_out) > 0


@pytest.mark.parametrize("scenario", [_case(s) for s in ALL], ids=[s.name for s in ALL])
def test_miniflare_reproduces_the_recorded_trace(
    scenario: Any, live_traces: dict[str, dict[str, Any]]
) -> None:
    recorded = load_trace(SCENARIOS / f"{scenario.name}.trace.json")
    difference = compare_traces(scenario, recorded, live_traces[scenario.name], engine="miniflare")
    if difference is not None and difference.startswith("retry_gaps_ms"):
        # Miniflare's retry waits are real timers: on a loaded 2-core machine a gap run four
        # at a time can overshoot its window. Timing alone earns one re-run, on its own; any
        # other difference (status, output, attempts) fails at once.
        again = run_on_miniflare([scenario], concurrency=1)[scenario.name]
        difference = compare_traces(scenario, recorded, again, engine="miniflare")
    assert difference is None


@pytest.mark.usefixtures("miniflare_installed")  # the repository's conftest.py
def test_cli_runs_scenarios_on_miniflare(tmp_path: Path) -> None:
    picked = ["pause-resume-during-sleep", "retry-linear-backoff"]  # a folder runs in name order
    for name in picked:
        shutil.copy(SCENARIOS / f"{name}.json", tmp_path / f"{name}.json")
    out = tmp_path / "traces"
    result = CliRunner().invoke(
        app,
        [
            "conformance",
            str(tmp_path),
            "--engine",
            "miniflare",
            "--out",
            str(out),
            "--compare-with",
            str(SCENARIOS),
        ],
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [f"match     {name}" for name in picked]
    assert sorted(p.name for p in out.iterdir()) == [f"{name}.trace.json" for name in picked]
