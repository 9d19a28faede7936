"""Format 2 (tests/conformance/FORMAT.md): what it adds, that format 1 files keep their meaning,
the engine's own numbering of NAME#K, and that no input crashes `awf-sim conformance`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from awf_sim.cli import app
from awf_sim.conformance import (
    ScenarioError,
    compare_traces,
    gap_formula,
    parse_scenario,
    run_on_simulator,
)

runner = CliRunner()


def scenario(body: list[Any], **extra: Any) -> dict[str, Any]:
    return {"name": "s", "format": 2, "body": body, **extra}


def do(name: str, attempts: list[Any], **extra: Any) -> dict[str, Any]:
    return {"op": "do", "name": name, "attempts": attempts, **extra}


@pytest.mark.parametrize(
    "raw",
    [
        scenario([do("a", [{"throw": "PaymentDeclined", "message": "m"}], catch="name")]),
        scenario([do("a", [{"throw_value": None}], catch="rethrow")]),
        scenario([do("a", [{"return_nothing": True}])], result="nothing"),
        scenario([do("a", [{"return_repeat": {"text": "ab", "times": 3}}])]),
        scenario([{"op": "sleepUntil", "name": "u", "at_ms": -5}]),
        scenario([{"op": "sleep", "name": "z", "duration": "30s"}]),  # Cloudflare's NaN
        scenario(
            [
                {
                    "op": "parallel",
                    "race": True,
                    "steps": [
                        {"op": "sleep", "name": "a", "duration": 5},
                        {"op": "waitForEvent", "name": "a", "type": "t"},
                    ],
                }
            ]
        ),
        scenario([], control=[{"op": "restart", "after_ms": 1}]),
        scenario([], id="order-1", control=[{"op": "create_again", "after_ms": 1}]),
        scenario([{"op": "throw", "throw": "ValidationError", "message": ""}]),
        scenario([{"op": "throw", "throw_value": {"code": 7}}]),
    ],
)
def test_format_2_accepts_its_additions(raw: dict[str, Any]) -> None:
    assert parse_scenario(raw, "x.json").format == 2


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            {"name": "s", "body": [do("a", [{"throw": "TypeError", "message": "m"}])]},
            'x.json: body[0].attempts[0].throw: must be "Error" or "NonRetryableError"',
        ),
        (
            {"name": "s", "body": [{"op": "sleepUntil", "name": "u", "at_ms": 1}]},
            "x.json: body[0].op: unknown op",
        ),
        ({"name": "s", "body": [], "result": "nothing"}, "x.json: unknown field 'result'"),
        ({"name": "s", "format": 3, "body": []}, "x.json: format: must be 1 or 2"),
        (
            scenario([do("a", [{"throw": "not a class", "message": "m"}])]),
            "x.json: body[0].attempts[0].throw: must be a class name",
        ),
        (
            scenario([do("a", [{"return": 1, "throw_value": 2}])]),
            "x.json: body[0].attempts[0]: needs exactly one of",
        ),
        (scenario([do("a", [{"return": 1}], catch="maybe")]), "x.json: body[0].catch: must be"),
        (
            {"name": "s", "body": [do("a", [{"return_repeat": {"text": "x", "times": 2}}])]},
            "x.json: body[0].attempts[0]: unknown field 'return_repeat'",
        ),
        (
            scenario([do("a", [{"return_repeat": {"text": "x", "times": -1}}])]),
            "x.json: body[0].attempts[0].return_repeat.times: must be a whole number >= 0",
        ),
        (
            scenario([do("a", [{"return_repeat": {"text": "xy", "times": 2**23 + 1}}])]),
            "x.json: body[0].attempts[0].return_repeat.times: must be a whole number >= 0 "
            "with at most 16,777,216 characters in all",
        ),
        (
            scenario([do("a", [{"return_repeat": {"text": 7, "times": 1}}])]),
            "x.json: body[0].attempts[0].return_repeat.text: must be a string, got 7",
        ),
        (
            scenario([do("a", [{"return_repeat": {"text": "x", "times": 1, "n": 2}}])]),
            "x.json: body[0].attempts[0].return_repeat: unknown field 'n'",
        ),
        # Any string is a scenario (an id the engine refuses is what it records); others are not.
        (scenario([], id=101), "x.json: id: must be a string, got 101"),
        (scenario([], step_limit=True), "x.json: step_limit: must be a whole number"),
        (
            scenario([{"op": "parallel", "steps": [{"op": "parallel", "steps": []}]}]),
            'x.json: body[0].steps[0].op: "parallel" inside "parallel"',
        ),
        (
            {"name": "s", "body": [{"op": "throw", "throw": "Error", "message": "m"}]},
            "x.json: body[0].op: unknown op",
        ),
        (
            scenario([{"op": "parallel", "steps": [{"op": "throw", "throw_value": 1}]}]),
            'x.json: body[0].steps[0].op: "throw" inside "parallel"',
        ),
        (
            scenario([{"op": "throw", "throw": "Error", "message": "m", "catch": True}]),
            'x.json: body[0].catch: a "throw" is never caught',
        ),
        (
            scenario([{"op": "throw", "throw": "Error", "throw_value": 1}]),
            'x.json: body[0]: needs exactly one of "throw" or "throw_value"',
        ),
        (
            scenario([{"op": "throw", "throw": "Error"}]),
            "x.json: body[0].message: must be a string, got nothing",
        ),
        (
            scenario([{"op": "throw", "throw_value": 1, "message": "m"}]),
            'x.json: body[0].message: only a "throw" takes a message',
        ),
    ],
)
def test_format_1_stays_format_1_and_format_2_checks_its_fields(
    raw: dict[str, Any], message: str
) -> None:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(raw, "x.json")
    assert str(info.value).startswith(message)


def test_return_repeat_returns_the_text_repeated() -> None:
    """A big result from a small scenario (p6-output-*), the same on both engines."""
    raw = scenario([do("a", [{"return_repeat": {"text": "ab", "times": 3}}])])
    trace = run_on_simulator(parse_scenario(raw, "x.json"))
    assert trace["output"] == {"results": [{"ok": "ababab"}]}


def test_name_k_counts_only_the_steps_the_engine_numbered() -> None:
    """A step whose config or name the engine rejects throws before it takes a number, so a
    retried step of the same name after it is #1, and its gaps follow its own config."""
    parsed = parse_scenario(
        scenario(
            [
                do("s", [{"return": 1}], config={"timeout": "30s"}, catch=True),
                do("s\u0001", [{"return": 1}], catch=True),
                do(
                    "s",
                    [{"throw": "Error", "message": "x"}, {"return": 2}],
                    config={"retries": {"limit": 1, "delay": 40, "backoff": "constant"}},
                ),
            ]
        )
    )
    assert list(parsed.do_steps()) == ["s#1"]
    assert gap_formula(parsed, "s#1", 1) == 40
    trace = run_on_simulator(parsed)
    assert trace["attempts"] == {"s#1": 2}
    assert trace["retry_gaps_ms"] == {"s#1": [40]}


def test_name_k_leaves_out_calls_past_the_step_limit_and_names_long_in_utf16() -> None:
    # 128 emoji are 256 UTF-16 units (numbered); 129 are 258 (rejected, though 129 code points).
    ok, too_long = "\U0001f642" * 128, "\U0001f642" * 129
    parsed = parse_scenario(
        scenario(
            [do(ok, [{"return": 1}]), do(too_long, [{"return": 1}]), do("c", [{"return": 1}])],
            step_limit=2,
        )
    )
    assert list(parsed.do_steps()) == [f"{ok}#1"]


def test_format_2_traces_carry_error_names_and_control_errors() -> None:
    parsed = parse_scenario(
        scenario(
            [
                do(
                    "s",
                    [{"throw": "TypeError", "message": "bad"}],
                    config={"retries": {"limit": 0, "delay": 0}},
                )
            ],
            control=[{"op": "terminate", "after_ms": 50}],
        )
    )
    trace = run_on_simulator(parsed)
    assert trace["error"] == {"name": "TypeError", "message": "bad"}
    assert trace["control_errors"] == [
        {
            "op": "terminate",
            "message": "WorkflowError: (instance.cannot_terminate) Cannot terminate instance "
            "since its on a finite state",
        }
    ]
    other = json.loads(json.dumps(trace))
    other["error"]["name"] = "Error"
    assert compare_traces(parsed, trace, other, engine="sim") == (
        'error.name: expected "TypeError", got "Error"'
    )
    other = json.loads(json.dumps(trace))
    other["control_errors"] = []
    assert compare_traces(parsed, trace, other, engine="sim") is not None


def test_lone_surrogates_never_crash_the_cli(tmp_path: Path) -> None:
    """JSON can carry a lone surrogate that UTF-8 cannot: in a name, a result, a message, a
    payload. The CLI runs, writes traces, prints JSON and reports differences all the same."""
    raw = scenario(
        [
            do("s\ud800", [{"return": "x\udc00"}], catch=True),
            do(
                "t",
                [{"throw": "Error", "message": "bad \ud83d"}],
                config={"retries": {"limit": 0, "delay": 0}},
                catch=True,
            ),
            {"op": "waitForEvent", "name": "w", "type": "t", "timeout": 100, "catch": True},
        ],
        events=[{"type": "t", "payload": {"k\udfff": "\ud800"}, "after_ms": 10}],
    )
    raw["name"] = "surrogates"
    path = tmp_path / "surrogates.json"
    path.write_text(json.dumps(raw), encoding="ascii")
    out = tmp_path / "out"
    result = runner.invoke(app, ["conformance", str(path), "--out", str(out)])
    assert result.exit_code == 0, result.output
    trace = json.loads((out / "surrogates.trace.json").read_text(encoding="utf-8"))
    assert trace["output"]["results"][0] == {"ok": "x\udc00"}
    assert trace["output"]["results"][1] == {"caught": "bad \ufffd"}
    result = runner.invoke(app, ["conformance", str(path), "--json"])
    assert result.exit_code == 0, result.output
    trace["output"]["results"][0] = {"ok": "y\udc00"}
    (out / "surrogates.trace.json").write_text(json.dumps(trace), encoding="ascii")
    result = runner.invoke(app, ["conformance", str(path), "--compare-with", str(out)])
    assert result.exit_code == 1
    assert "MISMATCH  surrogates" in result.output


def test_create_again_with_an_id_in_use_leaves_the_instance_as_it_is() -> None:
    parsed = parse_scenario(
        scenario(
            [{"op": "sleep", "name": "z", "duration": 300}],
            id="dup-1",
            control=[{"op": "create_again", "after_ms": 100}],
        )
    )
    trace = run_on_simulator(parsed)
    assert (trace["status"], trace["output"], trace["control_errors"]) == (
        "complete",
        {"results": [{"ok": None}]},
        [],
    )


def test_a_race_loser_that_fails_later_is_nobodys_error(caplog: pytest.LogCaptureFixture) -> None:
    import gc

    parsed = parse_scenario(
        scenario(
            [
                {
                    "op": "parallel",
                    "race": True,
                    "steps": [
                        {"op": "sleep", "name": "a", "duration": 5},
                        do(
                            "b",
                            [{"hang_ms": 50, "throw": "Error", "message": "late"}],
                            config={"retries": {"limit": 0, "delay": 0}},
                        ),
                    ],
                },
                {"op": "sleep", "name": "z", "duration": 100},
            ]
        )
    )
    with caplog.at_level("ERROR", logger="asyncio"):
        trace = run_on_simulator(parsed)
        gc.collect()
    assert trace["output"] == {"results": [{"ok": None}, {"ok": None}]}
    assert not [r for r in caplog.records if "never retrieved" in r.getMessage()]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"name": "n", "body": [], "params": {"x": NaN}}', "params.x: is not a finite number"),
        (
            '{"name": "n", "format": 2, "body": [{"op": "sleep", "name": "z", "duration": 1e400}]}',
            "body[0].duration: is not a finite number",
        ),
        ('{"name": "n", "body": [], "params": ' + "[" * 100_000 + "]" * 100_000 + "}", "nested"),
    ],
)
def test_json_the_engines_cannot_take_exits_2_not_a_traceback(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "n.json"
    path.write_text(text, encoding="utf-8")
    result = runner.invoke(app, ["conformance", str(path)])
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output
