"""Fault dicts, plans and replay tokens: validation with clear errors, exact round trips."""

from __future__ import annotations

from typing import Any

import pytest

from awf_sim.chaos import (
    KINDS,
    FaultPlanError,
    decode_token,
    describe_fault,
    normalize_fault,
    normalize_plan,
    parse_kinds,
    plan_token,
)


def test_defaults_are_filled_in() -> None:
    assert normalize_fault({"kind": "crash-after-effect", "step": "Inventory.reserve"}) == {
        "kind": "crash-after-effect",
        "step": "Inventory.reserve",
        "attempt": 1,
    }
    assert normalize_fault({"kind": "clock-skew", "step": "A.b"}) == {
        "kind": "clock-skew",
        "step": "A.b",
        "ms": 90_061_001,
    }
    assert normalize_fault({"kind": "reseed"}) == {"kind": "reseed", "seed": 1}
    assert normalize_fault({"kind": "crash-during-sleep", "step": "nap"}) == {
        "kind": "crash-during-sleep",
        "step": "nap",
    }
    assert normalize_fault({"kind": "event-late", "type": "approve"}) == {
        "kind": "event-late",
        "type": "approve",
    }
    # An indexed selector gets its default index, as in the test modifier.
    assert normalize_fault({"kind": "timeout", "step": {"name": "Email.send"}})["step"] == {
        "name": "Email.send",
        "index": 1,
    }


def test_unknown_kind_lists_the_kinds() -> None:
    with pytest.raises(FaultPlanError) as info:
        normalize_plan([{"kind": "crash-after-lunch", "step": "A.b"}])
    message = str(info.value)
    assert "crash-after-lunch" in message
    for kind in KINDS:
        assert kind in message


@pytest.mark.parametrize(
    ("fault", "words"),
    [
        ({"kind": "transient-error"}, "needs 'step'"),
        ({"kind": "timeout", "step": "A.b", "attempt": 0}, ">= 1"),
        ({"kind": "timeout", "step": "A.b", "attempt": True}, "whole number"),
        ({"kind": "timeout", "step": "A.b", "when": 3}, "unknown key"),
        ({"kind": "event-early"}, "needs 'type'"),
        ({"kind": "crash-during-wait", "step": "w", "attempt": 2}, "no attempts"),
        ({"kind": "timeout", "step": {"name": "A.b", "index": 0}}, "1-based"),
        ({"kind": "timeout", "step": ""}, "empty"),
        ("crash", "must be a dict"),
    ],
)
def test_bad_faults_say_what_is_wrong(fault: Any, words: str) -> None:
    with pytest.raises(FaultPlanError, match=words):
        normalize_plan([fault])


def test_a_plan_is_a_list() -> None:
    with pytest.raises(FaultPlanError, match="list of fault dicts"):
        normalize_plan({"kind": "timeout", "step": "A.b"})


PLANS: list[list[dict[str, Any]]] = [
    [],
    [{"kind": "crash-after-effect", "step": "Inventory.reserve"}],
    [
        {"kind": "transient-error", "step": {"name": "Email.send", "index": 2}, "attempt": 3},
        {"kind": "crash-during-sleep", "step": "cool-off"},
        {"kind": "event-duplicate", "type": "apprové"},
        {"kind": "clock-skew", "ms": -60_000},
        {"kind": "reseed", "step": "Payment.*", "seed": 42},
        {"kind": "timeout", "step": "Payment.process@0123456789abcdef"},
    ],
]


@pytest.mark.parametrize("plan", PLANS)
def test_tokens_round_trip_exactly(plan: list[dict[str, Any]]) -> None:
    token = plan_token(plan)
    assert decode_token(token) == normalize_plan(plan)
    assert plan_token(decode_token(token)) == token
    assert all(c.isalnum() or c in "-_" for c in token)  # URL-safe, no padding


def test_tokens_are_short() -> None:
    token = plan_token([{"kind": "crash-after-effect", "step": "Inventory.reserve"}])
    assert len(token) < 48


@pytest.mark.parametrize("token", ["", "x", "zzzz", "j" + "A" * 8, "jWzEsMl0", "jeyJhIjoxfQ", 42])
def test_bad_tokens_are_refused(token: Any) -> None:
    with pytest.raises(FaultPlanError, match="not a chaos replay token"):
        decode_token(token)


def test_kinds_and_groups() -> None:
    assert parse_kinds(None) == KINDS
    assert parse_kinds("timeout, crash-after-effect") == ("crash-after-effect", "timeout")
    assert parse_kinds("events") == (
        "event-early",
        "event-late",
        "event-at-deadline",
        "event-withheld",
        "event-duplicate",
    )
    assert all(k.startswith("crash-") for k in parse_kinds("crash"))
    with pytest.raises(FaultPlanError, match="the kinds are: crash-before-step"):
        parse_kinds("crash,explode")


def test_descriptions_read_as_sentences() -> None:
    assert (
        describe_fault(normalize_fault({"kind": "crash-after-effect", "step": "Inventory.reserve"}))
        == "crash-after-effect on Inventory.reserve (attempt 1)"
    )
    assert (
        describe_fault({"kind": "clock-skew", "step": {"name": "A.b", "index": 2}, "ms": 7_200_000})
        == "clock-skew +2 h after call 2 of A.b"
    )
    assert describe_fault({"kind": "reseed", "seed": 3}) == "reseed to 3 at the next replay"
    assert describe_fault({"kind": "event-late", "type": "go"}) == "event-late of event 'go'"
