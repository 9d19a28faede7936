from __future__ import annotations

import pytest

from awf_sim.dsl._errors import DefinitionError
from awf_sim.dsl._names import NAME_RE, validate_instance_id, validate_name


def test_pattern_is_cloudflares() -> None:
    assert NAME_RE.pattern == "^[a-zA-Z0-9_][a-zA-Z0-9-_]*$"


@pytest.mark.parametrize(
    "name", ["order-processing", "weekly_report", "_private", "0day", "A", "a-", "x" * 64]
)
def test_accepts_cloudflare_names(name: str) -> None:
    assert validate_name("workflow name", name) == name


@pytest.mark.parametrize(
    "name",
    [
        "order processing",
        "-leading-dash",
        "",
        "x" * 65,
        "dotted.name",
        "naïve",
        "trailing-newline\n",
        "slash/name",
        5,
        None,
    ],
)
def test_rejects_other_names(name: object) -> None:
    with pytest.raises(DefinitionError, match="use letters, digits"):
        validate_name("workflow name", name)


def test_message_quotes_the_name_and_states_the_rule() -> None:
    with pytest.raises(DefinitionError) as info:
        validate_name("workflow name", "order processing")
    assert str(info.value) == (
        "invalid workflow name 'order processing': use letters, digits, '_' and '-' "
        "(not first), at most 64 characters"
    )


def test_max_len_is_configurable() -> None:
    assert validate_name("domain name", "abc", max_len=3) == "abc"
    with pytest.raises(DefinitionError, match="at most 3 characters"):
        validate_name("domain name", "abcd", max_len=3)


def test_definition_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="invalid domain name"):
        validate_name("domain name", "a b")


def test_instance_ids_may_be_100_characters() -> None:
    assert validate_instance_id("i" * 100) == "i" * 100
    with pytest.raises(DefinitionError, match=r"invalid instance id .*at most 100 characters"):
        validate_instance_id("i" * 101)


def test_instance_id_must_be_a_string() -> None:
    with pytest.raises(DefinitionError, match="invalid instance id 42"):
        validate_instance_id(42)
