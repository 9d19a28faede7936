"""Scenario validation and FORMAT.md's comparison rules, on small hand-made cases."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any

import pytest

from awf_sim.conformance import (
    ScenarioError,
    compare_traces,
    gap_formula,
    load_scenario,
    load_trace,
    parse_scenario,
    paused_allowance_ms,
)
from awf_sim.conformance._scenario import cloudflare_ms

RETRYING: dict[str, Any] = {
    "name": "retrying",
    "body": [
        {
            "op": "do",
            "name": "sync",
            "config": {"retries": {"limit": 2, "delay": 30, "backoff": "linear"}},
            "attempts": [{"throw": "Error", "message": "down"}, {"return": False}],
        }
    ],
}
TRACE: dict[str, Any] = {
    "name": "retrying",
    "status": "complete",
    "output": {"results": [{"ok": False}]},
    "error": None,
    "attempts": {"sync#1": 3},
    "retry_gaps_ms": {"sync#1": [30, 60]},
}


def with_changes(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    out = copy.deepcopy(base)
    out.update(changes)
    return out


# -- validation --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ([], "x.json: must be an object, got []"),
        ({"body": []}, "x.json: name: must be letters, digits"),
        (
            {"name": "a b", "body": []},
            "x.json: name: must be letters, digits, '.', '_' or '-', got \"a b\"",
        ),
        ({"name": "n"}, "x.json: body: must be a list of operations, got nothing"),
        ({"name": "n", "body": [], "extra": 1}, "x.json: unknown field 'extra'"),
        ({"name": "n", "body": [{"op": "run"}]}, 'x.json: body[0].op: unknown op "run"'),
        (
            {"name": "n", "body": [{"op": "do", "name": "a", "attempts": []}]},
            "x.json: body[0].attempts: must be a non-empty list, got []",
        ),
        (
            {"name": "n", "body": [{"op": "do", "name": "a", "atempts": [{"return": 1}]}]},
            "x.json: body[0]: unknown field 'atempts'",
        ),
        (
            {
                "name": "n",
                "body": [{"op": "do", "name": "a", "attempts": [{"return": 1, "throw": "Error"}]}],
            },
            'x.json: body[0].attempts[0]: needs exactly one of "return" or "throw"',
        ),
        (
            {
                "name": "n",
                "body": [
                    {"op": "do", "name": "a", "attempts": [{"throw": "TypeError", "message": "m"}]}
                ],
            },
            'x.json: body[0].attempts[0].throw: must be "Error" or "NonRetryableError"',
        ),
        (
            {"name": "n", "body": [{"op": "do", "name": "a", "attempts": [{"throw": "Error"}]}]},
            "x.json: body[0].attempts[0].message: must be a string, got nothing",
        ),
        (
            {
                "name": "n",
                "body": [{"op": "do", "name": "a", "attempts": [{"return": 1, "hang_ms": -1}]}],
            },
            "x.json: body[0].attempts[0].hang_ms: must be a number >= 0, got -1",
        ),
        (
            {"name": "n", "body": [{"op": "sleep", "name": "s", "duration": "5m"}]},
            "x.json: body[0].duration: '5m' means 300000 ms to awf but nan ms to Cloudflare's ms()",
        ),
        (
            {"name": "n", "body": [{"op": "waitForEvent", "name": "w", "type": ""}]},
            "x.json: body[0].type: must be a non-empty string",
        ),
        (
            {
                "name": "n",
                "body": [{"op": "do", "name": "a", "attempts": [{"return": 1}], "catch": "yes"}],
            },
            'x.json: body[0].catch: must be true or false, got "yes"',
        ),
        (
            {
                "name": "n",
                "body": [
                    {
                        "op": "parallel",
                        "steps": [
                            {"op": "do", "name": "a", "attempts": [{"return": 1}]},
                            {"op": "do", "name": "a", "attempts": [{"return": 2}]},
                        ],
                    }
                ],
            },
            "x.json: body[0].steps[1].name: two steps named 'a' in one parallel",
        ),
        (
            {
                "name": "n",
                "body": [
                    {"op": "parallel", "steps": [{"op": "sleep", "name": "s", "duration": 1}]}
                ],
            },
            'x.json: body[0].steps[0].op: only "do" operations may be inside "parallel"',
        ),
        (
            {"name": "n", "body": [], "events": [{"type": "t"}]},
            "x.json: events[0].after_ms: must be a number >= 0, got nothing",
        ),
        (
            {"name": "n", "body": [], "control": [{"op": "restart", "after_ms": 5}]},
            'x.json: control[0].op: must be "pause", "resume" or "terminate"',
        ),
    ],
)
def test_a_bad_scenario_gives_one_error_naming_the_file_and_field(raw: Any, message: str) -> None:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(raw, "x.json")
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)


def test_load_scenario_reports_unreadable_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ScenarioError, match=r"bad\.json: not valid JSON"):
        load_scenario(bad)
    with pytest.raises(ScenarioError, match=r"missing\.json: no such file"):
        load_scenario(tmp_path / "missing.json")
    trace = tmp_path / "t.trace.json"
    trace.write_text("{}")
    with pytest.raises(ScenarioError, match="this is a trace, not a scenario"):
        load_scenario(trace)


def test_load_trace_checks_the_shape(tmp_path: Path) -> None:
    path = tmp_path / "x.trace.json"
    path.write_text(json.dumps({k: v for k, v in TRACE.items() if k != "attempts"}))
    with pytest.raises(
        ScenarioError, match=r"x\.trace\.json: not a trace: missing field 'attempts'"
    ):
        load_trace(path)


@pytest.mark.parametrize(
    ("value", "ms"),
    [
        (250, 250),
        ("250", 250),
        ("200 millis", 200),
        ("1 second", 1000),
        ("2 hours", 7.2e6),
        ("1 year", 31_557_600_000),
    ],
)
def test_durations_are_read_as_cloudflare_reads_them(value: Any, ms: float) -> None:
    assert cloudflare_ms(value) == ms


def test_durations_cloudflare_cannot_read_are_nan() -> None:
    assert math.isnan(cloudflare_ms("30s"))


# -- comparison ------------------------------------------------------------------------------------


def test_equal_traces_match_on_both_engines() -> None:
    scenario = parse_scenario(RETRYING)
    assert compare_traces(scenario, TRACE, TRACE, engine="sim") is None
    real = with_changes(TRACE, retry_gaps_ms={"sync#1": [31, 560]})
    assert compare_traces(scenario, TRACE, real, engine="miniflare") is None


def test_the_first_difference_is_reported_with_its_path() -> None:
    scenario = parse_scenario(RETRYING)
    got = with_changes(TRACE, output={"results": [{"ok": 0}]}, status="complete")
    assert compare_traces(scenario, TRACE, got, engine="sim") == (
        "output.results[0].ok: expected false, got 0"
    )
    got = with_changes(TRACE, status="errored", error={"message": "down"})
    assert compare_traces(scenario, TRACE, got, engine="sim") == (
        'status: expected "complete", got "errored"'
    )
    got = with_changes(TRACE, attempts={"sync#1": 2})
    assert compare_traces(scenario, TRACE, got, engine="sim") == (
        'attempts["sync#1"]: expected 3, got 2'
    )
    got = with_changes(TRACE, output={"results": [{"caught": "down"}]})
    assert compare_traces(scenario, TRACE, got, engine="sim") == (
        'output.results[0]: expected {"ok": false}, got {"caught": "down"}'
    )


def test_numbers_compare_as_json_numbers() -> None:
    scenario = parse_scenario(RETRYING)
    got = with_changes(TRACE, output={"results": [{"ok": False}]}, attempts={"sync#1": 3})
    exp = with_changes(TRACE, output={"results": [{"ok": False}]})
    assert compare_traces(scenario, exp, got, engine="sim") is None
    one = with_changes(TRACE, output={"results": [{"ok": 1}]})
    one_float = with_changes(TRACE, output={"results": [{"ok": 1.0}]})
    assert compare_traces(scenario, one, one_float, engine="sim") is None


def test_simulator_gaps_must_equal_the_formula() -> None:
    scenario = parse_scenario(RETRYING)
    got = with_changes(TRACE, retry_gaps_ms={"sync#1": [30, 61]})
    assert compare_traces(scenario, TRACE, got, engine="sim") == (
        'retry_gaps_ms["sync#1"][1]: 61 ms, want exactly 60 (the backoff formula after attempt 2)'
    )


def test_real_engine_gaps_may_exceed_the_formula_by_500ms_but_not_fall_short() -> None:
    scenario = parse_scenario(RETRYING)
    late = with_changes(TRACE, retry_gaps_ms={"sync#1": [30, 561]})
    assert compare_traces(scenario, TRACE, late, engine="miniflare") == (
        'retry_gaps_ms["sync#1"][1]: 561 ms, want 60..560 (the backoff formula after attempt 2)'
    )
    early = with_changes(TRACE, retry_gaps_ms={"sync#1": [29, 60]})
    assert "want 30..530" in str(compare_traces(scenario, TRACE, early, engine="miniflare"))


def test_gap_keys_and_lengths_must_agree() -> None:
    scenario = parse_scenario(RETRYING)
    fewer = with_changes(TRACE, retry_gaps_ms={"sync#1": [30]})
    assert compare_traces(scenario, TRACE, fewer, engine="sim") == (
        'retry_gaps_ms["sync#1"]: expected 2 gaps, got 1'
    )
    none = with_changes(TRACE, retry_gaps_ms={})
    assert compare_traces(scenario, TRACE, none, engine="sim") == (
        'retry_gaps_ms: expected gaps for "sync#1", got none'
    )


def test_a_malformed_reference_gap_is_reported_too() -> None:
    scenario = parse_scenario(RETRYING)
    bad_reference = with_changes(TRACE, retry_gaps_ms={"sync#1": [10, 60]})
    assert compare_traces(scenario, bad_reference, TRACE, engine="sim") == (
        'retry_gaps_ms["sync#1"][0] (reference trace): 10 ms, want 30..530 '
        "(the backoff formula after attempt 1)"
    )


def test_formula_uses_miniflare_defaults_for_missing_retry_fields() -> None:
    raw = with_changes(
        RETRYING,
        body=[
            {"op": "do", "name": "a", "attempts": [{"return": 1}]},
            {
                "op": "do",
                "name": "a",
                "config": {"retries": {"limit": 3, "delay": "100 millis"}},
                "attempts": [{"return": 1}],
            },
        ],
    )
    scenario = parse_scenario(raw)
    assert [gap_formula(scenario, "a#1", n) for n in (1, 2, 3)] == [1000, 2000, 4000]
    assert [gap_formula(scenario, "a#2", n) for n in (1, 2, 3)] == [100, 200, 400]


def test_pause_windows_widen_the_gap_bounds() -> None:
    raw = with_changes(
        RETRYING,
        control=[
            {"op": "pause", "after_ms": 40},
            {"op": "resume", "after_ms": 140},
            {"op": "pause", "after_ms": 200},
        ],
    )
    scenario = parse_scenario(raw)
    assert paused_allowance_ms(scenario) == 100
    stretched = with_changes(TRACE, retry_gaps_ms={"sync#1": [130, 60]})
    assert compare_traces(scenario, TRACE, stretched, engine="sim") is None
    too_long = with_changes(TRACE, retry_gaps_ms={"sync#1": [131, 60]})
    assert compare_traces(scenario, TRACE, too_long, engine="sim") == (
        'retry_gaps_ms["sync#1"][0]: 131 ms, want 30..130 (the backoff formula after attempt 1, '
        "plus up to 100 ms paused)"
    )
