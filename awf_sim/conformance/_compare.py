"""Comparing two traces by FORMAT.md's rules; the first difference comes back as one line.

`status`, `output`, `error.message` and `attempts` must be equal (as JSON: `false` is not `0`).
`retry_gaps_ms` must have the same keys and lengths, and each gap must fit the backoff formula
of its step's config: exactly on the simulator (virtual time), and from the formula's value to
500 ms more on a real engine (wall time).

One addition FORMAT.md does not spell out: a pause during a retry wait stretches that wait by
the time the instance stays paused (resume shifts every timer, SEMANTICS §4), so in a scenario
with pause/resume windows a gap may also exceed the formula by up to the windows' total length.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from typing import Any, Literal

from awf_sim.conformance._scenario import Scenario, ScenarioError, cloudflare_ms
from awf_sim.dsl._cfduration import wait_ms
from awf_sim.dsl._config import PROFILES

__all__ = [
    "REAL_ENGINE_SLACK_MS",
    "Engine",
    "compare_traces",
    "gap_formula",
    "json_text",
    "load_trace",
    "paused_allowance_ms",
    "trace_json",
]

Engine = Literal["sim", "miniflare"]
REAL_ENGINE_SLACK_MS = 500
_TRACE_KEYS = ("name", "status", "output", "error", "attempts", "retry_gaps_ms")


def load_trace(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a NAME.trace.json file and check its shape."""
    source = os.fspath(path)
    try:
        with open(source, encoding="utf-8") as f:
            trace = json.load(f)
    except FileNotFoundError:
        raise ScenarioError(f"{source}: no such trace file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(f"{source}: cannot read it: {exc}") from None
    except json.JSONDecodeError as exc:
        raise ScenarioError(f"{source}: not valid JSON: {exc}") from None
    except RecursionError:
        raise ScenarioError(f"{source}: nested too deeply to read") from None
    problem = _trace_problem(trace)
    if problem:
        raise ScenarioError(f"{source}: not a trace: {problem}")
    return dict(trace)


def _trace_problem(trace: Any) -> str | None:
    if not isinstance(trace, dict):
        return "must be a JSON object"
    missing = [k for k in _TRACE_KEYS if k not in trace]
    if missing:
        return f"missing field {missing[0]!r}"
    if not isinstance(trace["status"], str):
        return '"status" must be a string'
    error = trace["error"]
    if error is not None and not (
        isinstance(error, dict) and isinstance(error.get("message"), str)
    ):
        return '"error" must be null or {"message": TEXT}'
    attempts = trace["attempts"]
    if not isinstance(attempts, dict) or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in attempts.values()
    ):
        return '"attempts" must map NAME#K to a whole number'
    gaps = trace["retry_gaps_ms"]
    if not isinstance(gaps, dict) or not all(
        isinstance(v, list) and all(_is_number(g) for g in v) for v in gaps.values()
    ):
        return '"retry_gaps_ms" must map NAME#K to a list of numbers'
    control_errors = trace.get("control_errors", [])
    if not isinstance(control_errors, list) or not all(
        isinstance(e, dict) and isinstance(e.get("op"), str) and isinstance(e.get("message"), str)
        for e in control_errors
    ):
        return '"control_errors" must be a list of {"op": OP, "message": TEXT}'
    runs = trace.get("runs", {})
    if not isinstance(runs, dict) or not all(
        isinstance(n, int) and not isinstance(n, bool) for n in runs.values()
    ):
        return '"runs" must map NAME#K to a whole number'
    if not isinstance(trace.get("step_outputs", []), list | None):
        return '"step_outputs" must be a list or null'
    return None


def trace_json(trace: Mapping[str, Any]) -> str:
    """A trace as the Node driver writes it (two-space indent, newline at the end)."""
    return json_text(trace, indent=2) + "\n"


def json_text(value: Any, **kwargs: Any) -> str:
    """JSON as readable text (non-ASCII as is), unless it holds a lone surrogate, which JSON
    carries and UTF-8 cannot: then every non-ASCII character is escaped, as JavaScript's
    JSON.stringify escapes lone surrogates, so the text can always be written and printed."""
    text = json.dumps(value, ensure_ascii=False, **kwargs)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(value, ensure_ascii=True, **kwargs)
    return text


def gap_formula(scenario: Scenario, key: str, n: int) -> float:
    """The backoff formula's wait after failed attempt `n` (1-based) of step `key` (NAME#K),
    with Miniflare's defaults for what the step's config leaves out (SEMANTICS §1.2-1.3)."""
    op = scenario.do_steps().get(key)
    defaults = PROFILES["local"]["retries"]
    retries = dict(op.config.get("retries") or {}) if op is not None and op.config else {}
    delay = cloudflare_ms(retries.get("delay", defaults["delay"]))
    backoff: str = retries.get("backoff", defaults["backoff"])
    if backoff == "exponential":
        delay = delay * float(2 ** (n - 1))
    elif backoff == "linear":
        delay = delay * n
    # A timer set to a negative or fractional wait fires at once or on the next ms.
    return float(wait_ms(delay))


def paused_allowance_ms(scenario: Scenario) -> float:
    """Total length of the scenario's pause→resume windows: the most a pause can add to a
    retry wait."""
    total = 0.0
    paused_at: float | None = None
    for action in scenario.actions():
        if action.kind != "control":
            continue
        if action.op == "pause" and paused_at is None:
            paused_at = action.after_ms
        elif action.op == "resume" and paused_at is not None:
            total += action.after_ms - paused_at
            paused_at = None
    return total


def compare_traces(
    scenario: Scenario,
    expected: Mapping[str, Any],
    got: Mapping[str, Any],
    *,
    engine: Engine,
) -> str | None:
    """None when `got` (a trace from `engine`) matches `expected` (a recorded trace), else the
    first difference as one readable line."""
    for label, trace in (("reference trace", expected), ("trace", got)):
        problem = _trace_problem(trace)
        if problem:
            return f"{label} is malformed: {problem}"
    if expected["name"] != got["name"]:
        return f"name: expected {_show(expected['name'])}, got {_show(got['name'])}"
    if expected["status"] != got["status"]:
        return f"status: expected {_show(expected['status'])}, got {_show(got['status'])}"
    diff = _first_difference("output", expected["output"], got["output"])
    if diff:
        return diff
    exp_msg = (expected["error"] or {}).get("message")
    got_msg = (got["error"] or {}).get("message")
    if exp_msg != got_msg:
        return f"error.message: expected {_show(exp_msg)}, got {_show(got_msg)}"
    if "name" in (expected["error"] or {}) or "name" in (got["error"] or {}):
        exp_name = (expected["error"] or {}).get("name")
        got_name = (got["error"] or {}).get("name")
        if exp_name != got_name:
            return f"error.name: expected {_show(exp_name)}, got {_show(got_name)}"
    diff = _first_difference("attempts", expected["attempts"], got["attempts"])
    if diff:
        return diff
    if "step_outputs" in expected or "step_outputs" in got:
        diff = _first_difference(
            "step_outputs", expected.get("step_outputs"), got.get("step_outputs")
        )
        if diff:
            return diff
    if "runs" in expected or "runs" in got:
        diff = _first_difference("runs", expected.get("runs"), got.get("runs"))
        if diff:
            return diff
    if "control_errors" in expected or "control_errors" in got:
        diff = _first_difference(
            "control_errors", expected.get("control_errors"), got.get("control_errors")
        )
        if diff:
            return diff
    return _gaps_difference(scenario, expected["retry_gaps_ms"], got["retry_gaps_ms"], engine)


def _gaps_difference(
    scenario: Scenario,
    expected: Mapping[str, list[float]],
    got: Mapping[str, list[float]],
    engine: Engine,
) -> str | None:
    for key in sorted(set(expected) | set(got)):
        if key not in got:
            return f"retry_gaps_ms: expected gaps for {_show(key)}, got none"
        if key not in expected:
            return f"retry_gaps_ms: got gaps for {_show(key)}, expected none"
        if len(expected[key]) != len(got[key]):
            return (
                f"retry_gaps_ms[{_show(key)}]: expected {len(expected[key])} gaps, "
                f"got {len(got[key])}"
            )
    allowance = paused_allowance_ms(scenario)
    for side, gaps, rule in (("", got, engine), (" (reference trace)", expected, "miniflare")):
        for key in sorted(gaps):
            for i, gap in enumerate(gaps[key]):
                formula = gap_formula(scenario, key, i + 1)
                low = formula
                high = formula + allowance + (REAL_ENGINE_SLACK_MS if rule == "miniflare" else 0)
                if not low <= gap <= high:
                    want = f"exactly {_num(low)}" if low == high else f"{_num(low)}..{_num(high)}"
                    return (
                        f"retry_gaps_ms[{_show(key)}][{i}]{side}: {_num(gap)} ms, want {want} "
                        f"(the backoff formula after attempt {i + 1}"
                        + (f", plus up to {_num(allowance)} ms paused" if allowance else "")
                        + ")"
                    )
    return None


def _first_difference(path: str, expected: Any, got: Any) -> str | None:
    if isinstance(expected, dict) and isinstance(got, dict):
        if set(expected) != set(got):
            # Different keys ({"ok"} against {"caught"}): the whole object says more than a key.
            return f"{path}: expected {_show(expected)}, got {_show(got)}"
        for key in expected:
            where = f"{path}.{key}" if key.isidentifier() else f"{path}[{_show(key)}]"
            diff = _first_difference(where, expected[key], got[key])
            if diff:
                return diff
        return None
    if isinstance(expected, list) and isinstance(got, list):
        for i, (e, g) in enumerate(zip(expected, got, strict=False)):
            diff = _first_difference(f"{path}[{i}]", e, g)
            if diff:
                return diff
        if len(expected) != len(got):
            return f"{path}: expected {len(expected)} items, got {len(got)}"
        return None
    if _json_equal(expected, got):
        return None
    return f"{path}: expected {_show(expected)}, got {_show(got)}"


def _json_equal(a: Any, b: Any) -> bool:
    # JSON has one number type, but `false` is not `0` (Python's True == 1 would say it is).
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if _is_number(a) and _is_number(b):
        return bool(a == b)
    return type(a) is type(b) and a == b


def _is_number(value: Any) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and not (isinstance(value, float) and math.isnan(value))
    )


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _show(value: Any) -> str:
    text = json_text(value, sort_keys=True)
    return text if len(text) <= 200 else text[:197] + "..."
