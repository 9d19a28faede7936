"""Format 2's restart `from`, `engine` and `runs` (FORMAT.md): what the parser takes and
refuses, and that `runs` catches a simulator that re-runs the wrong steps."""

from __future__ import annotations

from typing import Any

import pytest

from awf_sim.conformance import ScenarioError, compare_traces, parse_scenario, run_on_simulator

ABC = [{"op": "do", "name": n, "attempts": [{"return": n}]} for n in ("a", "b", "c")]


def scenario(control: list[Any], **extra: Any) -> dict[str, Any]:
    return {"name": "s", "format": 2, "body": ABC, "control": control, **extra}


def test_a_restart_carries_from_as_written_and_engine_is_a_version() -> None:
    got = parse_scenario(
        scenario(
            [{"op": "restart", "after_ms": 5, "from": {"name": "b", "count": "1", "type": "x"}}],
            engine=">=4.20260430.0",
            runs=True,
        ),
        "x.json",
    )
    assert got.control[0].from_ == {"name": "b", "count": "1", "type": "x"}
    assert got.engine == (4, 20260430, 0)
    assert got.runs is True


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            scenario([{"op": "pause", "after_ms": 1, "from": {"name": "a"}}]),
            'x.json: control[0].from: goes with "restart" only, not "pause"',
        ),
        (
            scenario([{"op": "restart", "after_ms": 1, "from": {"count": 1}}]),
            "x.json: control[0].from.name: must be a step name",
        ),
        (
            scenario([{"op": "restart", "after_ms": 1, "from": {"name": "a", "index": 1}}]),
            "x.json: control[0].from: unknown field 'index'",
        ),
        (scenario([], engine="4.20260430.0"), 'x.json: engine: must be ">=VERSION"'),
        (scenario([], runs="yes"), "x.json: runs: must be"),
        (
            {"name": "s", "body": [], "control": [{"op": "pause", "after_ms": 1, "from": {}}]},
            "x.json: control[0]: unknown field 'from'",
        ),
    ],
)
def test_bad_from_engine_or_runs_is_one_line_naming_the_field(
    raw: dict[str, Any], message: str
) -> None:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(raw, "x.json")
    assert str(info.value).startswith(message)


def test_runs_tells_a_restart_from_b_from_a_full_restart() -> None:
    from_b = parse_scenario(
        scenario([{"op": "restart", "after_ms": 400, "from": {"name": "b"}}], runs=True), "x"
    )
    full = parse_scenario(scenario([{"op": "restart", "after_ms": 400}], runs=True), "x")
    got_b, got_full = run_on_simulator(from_b), run_on_simulator(full)
    assert got_b["runs"] == {"a#1": 1, "b#1": 2, "c#1": 2}
    assert got_full["runs"] == {"a#1": 2, "b#1": 2, "c#1": 2}
    # attempts alone cannot tell them apart; runs can
    assert got_b["attempts"] == got_full["attempts"]
    assert compare_traces(from_b, got_full, got_b, engine="simulator") == (
        'runs["a#1"]: expected 2, got 1'
    )


def test_an_unknown_step_is_a_control_error_with_the_engines_text() -> None:
    got = run_on_simulator(
        parse_scenario(scenario([{"op": "restart", "after_ms": 1, "from": {"name": "z"}}]), "x")
    )
    assert got["status"] == "complete"
    assert got["control_errors"] == [
        {
            "op": "restart",
            "message": 'WorkflowError: (instance.cannot_restart) Step "z" not found in '
            "execution history",
        }
    ]
