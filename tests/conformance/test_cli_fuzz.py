"""No input crashes `awf-sim conformance`: broken scenario and trace files each give one clear
line and exit 2; a scenario that is odd but valid runs (exit 0) or mismatches (exit 1)."""

from __future__ import annotations

import copy
import json
import random
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from awf_sim.cli import app

SCENARIOS = Path(__file__).parent / "scenarios"
runner = CliRunner()

# Values of every JSON type, and the ones that break naive code: huge, non-finite once read
# (1e999), lone surrogates, long strings, wrong containers.
ODD: list[Any] = [
    None,
    True,
    0,
    -1,
    0.5,
    2**53 + 1,
    10**400,
    1e308,
    -(10**30),
    "",
    "\ud800",
    "x\udfffy",
    "\U0001f642" * 300,
    "a" * 10_000,
    [],
    {},
    [1],
    {"op": "bogus"},
    "Infinity",
    "NaN",
    "do",
]


def _one_line_or_ran(path: Path) -> tuple[int, str]:
    result = runner.invoke(app, ["conformance", str(path)])
    assert result.exception is None or isinstance(result.exception, SystemExit), path.read_text(
        encoding="utf-8", errors="replace"
    )[:300]
    assert result.exit_code in (0, 2), result.output
    if result.exit_code == 2:
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith(f"awf-sim: {path}: "), lines[0]
    return result.exit_code, result.stderr


def _places(value: Any, at: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [at]
    if isinstance(value, dict):
        for k, v in value.items():
            found += _places(v, (*at, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found += _places(v, (*at, i))
    return found


def _mutated(rnd: random.Random, scenario: dict[str, Any]) -> Any:
    s: Any = copy.deepcopy(scenario)
    for _ in range(rnd.randint(1, 3)):
        at = rnd.choice(_places(s))
        if not at:
            s = rnd.choice(ODD)
            continue
        parent = s
        for k in at[:-1]:
            parent = parent[k]
        if rnd.random() < 0.2:
            del parent[at[-1]]
        else:
            parent[at[-1]] = copy.deepcopy(rnd.choice(ODD))
    return s


@pytest.mark.parametrize("seed", range(4))
def test_mutated_scenarios_run_or_give_one_line_and_exit_2(tmp_path: Path, seed: int) -> None:
    rnd = random.Random(seed)
    originals = [
        json.loads(p.read_text(encoding="utf-8"))
        for p in sorted(SCENARIOS.glob("*.json"))
        if not p.name.endswith(".trace.json")
    ]
    refused = 0
    for i in range(40):
        path = tmp_path / f"case{i}.json"
        text = json.dumps(_mutated(rnd, rnd.choice(originals)))
        if rnd.random() < 0.1:
            text = text[: rnd.randrange(len(text))]  # cut short: not JSON any more
        path.write_text(text, encoding="utf-8")
        code, _ = _one_line_or_ran(path)
        refused += code == 2
    assert 0 < refused < 40  # both outcomes happen, so the test sees both paths


DEEP = "[" * 100_000 + "]" * 100_000


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b'{"name": "a", "body": [', "not valid JSON"),
        (b"", "not valid JSON"),
        (b"\xff\xfe{}", "cannot read it"),
        (b'\xef\xbb\xbf{"name": "bom", "body": []}', "not valid JSON: Unexpected UTF-8 BOM"),
        (b"[1, 2]", "must be an object"),
        (b'{"name": "d", "body": [], "params": ' + DEEP.encode() + b"}", "nested too deeply"),
        (b'{"name": "s\\ud800", "body": []}', "name: must be letters, digits"),
        (b'{"name": "i", "format": 2, "id": 5, "body": []}', "id: must be a string, got 5"),
        (b'{"name": "i", "format": 2, "id": null, "body": []}', "id: must be a string"),
        (b'{"name": "l", "format": 2, "step_limit": 0, "body": []}', "step_limit: must be a whole"),
        (b'{"name": "l", "format": 2, "step_limit": 2.5, "body": []}', "step_limit: must be"),
        (b'{"name": "l", "format": 2, "step_limit": 25001, "body": []}', "from 1 to 25000"),
        (b'{"name": "u", "body": [{"op": "fly", "name": "s"}]}', 'unknown op "fly"'),
        (b'{"name": "f", "format": 3, "body": []}', "format: must be 1 or 2, got 3"),
        (
            b'{"name": "h", "body": [{"op": "sleep", "name": "s", "duration": 1e999}]}',
            "is not a finite number",
        ),
        (
            b'{"name": "n", "body": [{"op": "do", "name": "s", "attempts": '
            b'[{"hang_ms": NaN, "return": 1}]}]}',
            "is not a finite number",
        ),
        (
            # 400 digits: finite to Python, Infinity to JavaScript.
            b'{"name": "b", "body": [{"op": "do", "name": "s", "attempts": [{"hang_ms": 1'
            + b"0" * 400
            + b', "return": 1}]}]}',
            "body[0].attempts[0].hang_ms: is not a finite number",
        ),
        (
            # A retry loop that only the engine's speed would end: refused, not run forever.
            b'{"name": "r", "format": 2, "body": [{"op": "do", "name": "s", "config": '
            b'{"retries": {"limit": 1e308, "delay": 0}}, '
            b'"attempts": [{"throw": "Error", "message": "x"}]}]}',
            "more than 10000 step attempts",
        ),
    ],
)
def test_broken_scenarios_give_one_line_and_exit_2(
    tmp_path: Path, raw: bytes, message: str
) -> None:
    path = tmp_path / "broken.json"
    path.write_bytes(raw)
    code, stderr = _one_line_or_ran(path)
    assert code == 2
    assert message in stderr


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"attempts": "x"}, '"attempts" must map NAME#K to a whole number'),
        ({"attempts": {"ship#1": 1e308}}, '"attempts" must map NAME#K to a whole number'),
        ({"retry_gaps_ms": {"ship#1": [True]}}, '"retry_gaps_ms" must map NAME#K to a list'),
        ({"status": 5}, '"status" must be a string'),
        ({"error": "x"}, '"error" must be null or {"message": TEXT}'),
        ({"control_errors": 5}, '"control_errors" must be a list of {"op": OP'),
        ({"control_errors": [{"op": "pause"}]}, '"control_errors" must be a list of {"op": OP'),
        ({"step_outputs": "x"}, '"step_outputs" must be a list or null'),
    ],
)
def test_broken_reference_traces_give_one_line_and_exit_2(
    tmp_path: Path, change: dict[str, Any], message: str
) -> None:
    name = "retry-linear-backoff"
    scenario = tmp_path / f"{name}.json"
    scenario.write_bytes((SCENARIOS / f"{name}.json").read_bytes())
    trace = json.loads((SCENARIOS / f"{name}.trace.json").read_text(encoding="utf-8"))
    (tmp_path / f"{name}.trace.json").write_text(json.dumps({**trace, **change}))
    result = runner.invoke(app, ["conformance", str(scenario), "--compare-with", str(tmp_path)])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"awf-sim: {tmp_path / name}.trace.json: not a trace: {message}")
