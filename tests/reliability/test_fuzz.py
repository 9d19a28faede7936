"""Hypothesis fuzzing of the parsers that take user text: only documented exception types.

parse_duration and to_cron raise DefinitionError; decode_token raises FaultPlanError; the CLIs'
JSON input (`parse_json`, behind --input, --input-file, --params, --payload) raises FlowError.
Anything else (RecursionError, UnicodeError, KeyError, ...) would reach the user as a traceback.
"""

from __future__ import annotations

import base64
import json
import zlib
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from awf_sim import parse_duration, to_cron
from awf_sim.chaos._faults import decode_token, plan_token
from awf_sim.dsl import DefinitionError
from awf_sim.errors import FaultPlanError
from awf_sim.flow import FlowError, parse_json

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=4), children, max_size=4)
    ),
    max_leaves=20,
)
duration_words = st.sampled_from(
    [
        "second",
        "seconds",
        "minute",
        "minutes",
        "hour",
        "hours",
        "day",
        "days",
        "week",
        "weeks",
        "month",
        "months",
        "year",
        "years",
        "s",
        "m",
        "h",
        "d",
        "ms",
        "sec",
        "",
        " ",
    ]
)
duration_texts = st.one_of(
    st.text(max_size=20),
    st.builds(
        lambda n, sep, unit: f"{n}{sep}{unit}",
        st.one_of(st.integers(-(10**20), 10**20), st.floats(allow_nan=True, allow_infinity=True)),
        st.sampled_from(["", " ", "  ", "\t", "\u00a0"]),
        duration_words,
    ),
)


@FUZZ
@given(st.one_of(duration_texts, st.integers(), st.floats(), json_values))
def test_parse_duration_raises_only_definition_error(value: Any) -> None:
    try:
        ms = parse_duration(value)
    except DefinitionError:
        return
    assert isinstance(ms, int | float)


cron_fields = st.sampled_from(
    ["*", "0", "59", "*/5", "1-5", "1,2", "MON", "60", "-1", "*/0", "", "a"]
)


@FUZZ
@given(
    st.one_of(
        st.text(max_size=40),
        st.lists(cron_fields, min_size=0, max_size=7).map(" ".join),
        st.builds(
            lambda day, at: f"{day} at {at}",
            st.sampled_from(["Monday", "weekdays", "every day", "daily", "Mon, Wed and Fri", "x"]),
            st.sampled_from(["9am", "17:30", "25:00", "noon", "midnight", "13pm", "0:61", ""]),
        ),
        json_values,
    )
)
def test_to_cron_raises_only_definition_error(value: Any) -> None:
    try:
        cron = to_cron(value)
    except DefinitionError:
        return
    assert isinstance(cron, str)
    assert len(cron.split()) == 5


def _token_from(data: bytes, zipped: bool) -> str:
    if zipped:
        return "z" + base64.urlsafe_b64encode(zlib.compress(data)).decode().rstrip("=")
    return "j" + base64.urlsafe_b64encode(data).decode().rstrip("=")


@FUZZ
@given(
    st.one_of(
        st.text(max_size=60),
        st.builds(lambda v, z: _token_from(json.dumps(v).encode(), z), json_values, st.booleans()),
        st.builds(_token_from, st.binary(max_size=60), st.booleans()),
        st.builds(lambda n: _token_from(b"[" * n + b"]" * n, True), st.integers(1, 50_000)),
    )
)
def test_replay_token_raises_only_fault_plan_error(token: str) -> None:
    try:
        plan = decode_token(token)
    except FaultPlanError:
        return
    assert decode_token(plan_token(plan)) == plan


@FUZZ
@given(
    st.one_of(
        st.text(max_size=60),
        json_values.map(json.dumps),
        st.integers(1, 100_000).map(lambda n: "[" * n + "]" * n),
        st.integers(1, 100_000).map(lambda n: '{"a":' * n + "1" + "}" * n),
        st.sampled_from(['"\\ud800"', '{"\\udc00": 1}', "NaN", "-Infinity", "1e400", "\ufeff{}"]),
    )
)
def test_input_json_raises_only_flow_error(text: str) -> None:
    message = ""
    try:
        value = parse_json(text, "--input")
    except FlowError as exc:
        message = str(exc)
    if message:
        assert "\n" not in message
        return
    # What is accepted can be stored and sent: canonical JSON, UTF-8.
    json.dumps(value, allow_nan=False, ensure_ascii=False).encode("utf-8")
