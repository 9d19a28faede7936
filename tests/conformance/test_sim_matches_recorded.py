"""Every scenario's simulator trace against its trace recorded on Miniflare (no Node needed).

differences.json lists the scenarios that do not match yet: `documented` ones differ on
purpose (a Miniflare-only quirk; the test pins the exact difference), `engine` ones are awf
bugs, kept as strict xfails until the engine is fixed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from awf_sim.conformance import (
    Scenario,
    collect_scenarios,
    compare_traces,
    load_scenario,
    load_trace,
    run_on_simulator,
)

HERE = Path(__file__).parent
SCENARIOS = HERE / "scenarios"
DIFFERENCES: dict[str, Any] = json.loads((HERE / "differences.json").read_text())
SHARED = {
    "duplicate-step-names",
    "nonretryable-uncaught",
    "parallel-one-fails-caught",
    "retry-default-backoff-exponential",
    "retry-limit-0-uncaught",
    "retry-limit-3-exhausted-caught",
    "sleep-between-steps",
    "step-returns-falsy-and-nested",
    "step-timeout-retried",
    "terminate-while-sleeping",
    "wait-event-sent-before-wait",
    "wait-event-timeout-caught",
}


def _cases() -> list[Any]:
    cases = []
    for path in sorted(SCENARIOS.glob("*.json")):
        if path.name.endswith(".trace.json"):
            continue
        name = path.name.removesuffix(".json")
        reason = DIFFERENCES["engine"].get(name)
        marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
        cases.append(pytest.param(path, id=name, marks=marks))
    return cases


def _sim_difference(path: Path) -> tuple[Scenario, str | None]:
    scenario = load_scenario(path)
    recorded = load_trace(path.with_name(f"{scenario.name}.trace.json"))
    return scenario, compare_traces(scenario, recorded, run_on_simulator(scenario), engine="sim")


@pytest.mark.parametrize("path", _cases())
def test_simulator_trace_matches_miniflare(path: Path) -> None:
    scenario, difference = _sim_difference(path)
    documented = DIFFERENCES["documented"].get(scenario.name)
    if documented is not None:
        assert difference == documented["difference"]
    else:
        assert difference is None


def test_scenario_set_is_complete() -> None:
    scenarios = collect_scenarios([SCENARIOS])
    names = {s.name for s in scenarios}
    assert names >= SHARED
    assert len(names - SHARED) >= 25
    for s in scenarios:
        assert Path(s.source).name == f"{s.name}.json", "file name and scenario name differ"
        assert s.description, f"{s.name} has no description"
    traces = {p.name.removesuffix(".trace.json") for p in SCENARIOS.glob("*.trace.json")}
    assert traces == names, "every scenario needs its recorded trace, and only those"
    listed = set(DIFFERENCES["documented"]) | set(DIFFERENCES["engine"])
    assert listed <= names, "differences.json names a scenario that does not exist"


def test_simulator_traces_are_deterministic() -> None:
    scenario = load_scenario(SCENARIOS / "parallel-retries-interleave.json")
    assert run_on_simulator(scenario) == run_on_simulator(scenario)


def test_pause_during_retry_wait_stretches_the_gap_by_the_paused_time_exactly() -> None:
    # The comparison only bounds gaps in scenarios with pauses; pin the simulator's exact value:
    # 300 ms constant backoff, paused from 100 to 300 ms.
    scenario = load_scenario(SCENARIOS / "pause-resume-during-retry-wait.json")
    assert run_on_simulator(scenario)["retry_gaps_ms"] == {"sync#1": [500]}


def test_nonretryable_message_after_2026_05_14_keeps_the_original_text() -> None:
    # workflows_preserve_non_retryable_error_message (SEMANTICS §1.5): not what the recorded
    # traces use, so it is checked here rather than against Miniflare.
    scenario = load_scenario(SCENARIOS / "nonretryable-uncaught.json")
    trace = run_on_simulator(scenario, compatibility_date="2026-05-14")
    assert trace["error"] == {"message": "invalid input"}


# -- documented differences between the `local` profile (Miniflare) and `production` -------------


def test_default_retry_delay_is_1s_locally_and_10s_in_production() -> None:
    scenario = load_scenario(SCENARIOS / "default-config-retry-delay-local-1s.json")
    assert run_on_simulator(scenario)["retry_gaps_ms"] == {"flaky#1": [1000]}
    production = run_on_simulator(scenario, profile="production")
    assert production["retry_gaps_ms"] == {"flaky#1": [10_000]}


def test_an_instance_waiting_for_an_event_is_running_locally_and_waiting_in_production() -> None:
    scenario = load_scenario(SCENARIOS / "wait-event-never-sent-runs-to-scenario-limit.json")
    assert run_on_simulator(scenario)["status"] == "running"
    assert run_on_simulator(scenario, profile="production")["status"] == "waiting"


@pytest.mark.parametrize("name", ["p2-wait-timeout-replayed", "p2-step-timeout-replayed"])
def test_a_replayed_timeout_is_a_plain_error_locally_and_keeps_its_name_in_production(
    name: str,
) -> None:
    # Miniflare stores a timeout its engine made with a structured clone, so a replay sees a
    # plain Error; the production profile keeps DESIGN §9 (same error on first run and replay).
    scenario = load_scenario(SCENARIOS / f"{name}.json")
    local = run_on_simulator(scenario)["output"]["results"][0]
    assert local == {"caught": "Execution timed out after 50ms", "name": "Error"}
    production = run_on_simulator(scenario, profile="production")["output"]["results"][0]
    assert production == {
        "caught": "WorkflowTimeoutError: Execution timed out after 50ms",
        "name": "Error",
    }
