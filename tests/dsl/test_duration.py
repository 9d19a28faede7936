from __future__ import annotations

import math

import pytest

from awf_sim.dsl._duration import MAX_SLEEP_MS, check_sleep, format_ms, parse_duration
from awf_sim.dsl._errors import DefinitionError

SECOND = 1_000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE
DAY = 24 * HOUR


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        # numbers of milliseconds
        (0, 0),
        (1500, 1500),
        (1.4, 1),
        (1.5, 2),
        (2.5, 3),
        ("1500", 1500),
        ("  250  ", 250),
        ("1.5", 2),
        # Cloudflare's "<n> <unit>", singular or plural, any case
        ("1 second", SECOND),
        ("10 seconds", 10 * SECOND),
        ("5 minutes", 5 * MINUTE),
        ("1.5 hours", 90 * MINUTE),
        ("1 day", DAY),
        ("2 weeks", 14 * DAY),
        ("1 month", 30 * DAY),
        ("1 year", 365 * DAY + DAY // 4),
        ("2 years", 2 * (365 * DAY + DAY // 4)),
        ("10 SECONDS", 10 * SECOND),
        ("3 Hours", 3 * HOUR),
        ("10   seconds", 10 * SECOND),
        ("0.1 seconds", 100),
        (".5 seconds", 500),
        # milliseconds spelled out
        ("250 ms", 250),
        ("2 milliseconds", 2),
        ("1 millisecond", 1),
        ("7 millis", 7),
        # short forms, with or without a space
        ("500ms", 500),
        ("30s", 30 * SECOND),
        ("5m", 5 * MINUTE),
        ("2h", 2 * HOUR),
        ("7d", 7 * DAY),
        ("2w", 14 * DAY),
        ("30 s", 30 * SECOND),
        ("2 min", 2 * MINUTE),
        ("1.5s", 1500),
    ],
)
def test_parses(value: str | int | float, expected: int) -> None:
    result = parse_duration(value)
    assert result == expected
    assert type(result) is int


FORMS = (
    "use a number of milliseconds, '<n> <unit>' with unit second|minute|hour|day|week|month|year,"
    " or a short form like '30s', '5m', '2h', '7d'"
)


def test_error_quotes_the_value_and_lists_the_forms() -> None:
    with pytest.raises(DefinitionError) as info:
        parse_duration("ten minutes")
    assert str(info.value) == f"invalid duration 'ten minutes': {FORMS}"


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (True, "True (a bool)"),
        (None, "None"),
        ("", "'' (empty)"),
        ("   ", "'   ' (empty)"),
        (-1, "-1 (negative)"),
        (-0.5, "-0.5 (negative)"),
        ("-5", "'-5' (negative)"),
        ("-5 seconds", "'-5 seconds' (negative)"),
        (math.nan, "nan (not finite)"),
        (math.inf, "inf (not finite)"),
        ("3 fortnights", "'3 fortnights' (unknown unit 'fortnights')"),
        ("10 secondz", "'10 secondz' (unknown unit 'secondz')"),
        ("5 m s", "'5 m s'"),
        ("seconds", "'seconds'"),
        ("1,5 hours", "'1,5 hours'"),
        ("nan", "'nan'"),
        ("inf", "'inf'"),
        ("1e3", "'1e3'"),
        ("١٠ seconds", "'١٠ seconds'"),
        ([10], "[10] (a list)"),
    ],
)
def test_rejects(value: object, shown: str) -> None:
    with pytest.raises(DefinitionError) as info:
        parse_duration(value)  # type: ignore[arg-type]
    assert str(info.value) == f"invalid duration {shown}: {FORMS}"


def test_unknown_unit_is_an_error_not_milliseconds() -> None:
    # Cloudflare would read this as 3 ms; that silent typo is refused here.
    with pytest.raises(DefinitionError, match="unknown unit 'fortnight'"):
        parse_duration("3 fortnight")


def test_max_sleep_is_365_days() -> None:
    assert MAX_SLEEP_MS == 365 * DAY
    assert check_sleep(MAX_SLEEP_MS, "sleep 'nap'") == MAX_SLEEP_MS
    assert check_sleep(0, "sleep 'nap'") == 0


def test_check_sleep_names_cloudflares_limit() -> None:
    with pytest.raises(DefinitionError) as info:
        check_sleep(MAX_SLEEP_MS + 1, "sleep 'nap'")
    message = str(info.value)
    assert message.startswith(f"sleep 'nap' of {MAX_SLEEP_MS + 1} ms is longer than")
    assert "Cloudflare's limit of 365 days" in message


def test_check_sleep_shows_whole_units_when_exact() -> None:
    with pytest.raises(DefinitionError, match=r"^sleep 'nap' of 400 d is longer than"):
        check_sleep(400 * DAY, "sleep 'nap'")


def test_a_year_is_longer_than_the_sleep_limit() -> None:
    with pytest.raises(DefinitionError, match=r"365\.25 d .*'1 year' is 365\.25 days"):
        check_sleep(parse_duration("1 year"), "sleep 'annual'")


@pytest.mark.parametrize(
    ("ms", "text"),
    [
        (0, "0 ms"),
        (250, "250 ms"),
        (999, "999 ms"),
        (1000, "1 s"),
        (1500, "1.5 s"),
        (1234, "1.23 s"),
        (2 * MINUTE, "2 min"),
        (90 * MINUTE, "1.5 h"),
        (HOUR, "1 h"),
        (7 * DAY, "7 d"),
        (365 * DAY + DAY // 4, "365.25 d"),
        (-1500, "-1.5 s"),
    ],
)
def test_format_ms(ms: int, text: str) -> None:
    assert format_ms(ms) == text


@pytest.mark.parametrize("ms", [0, 250, 1500, 2 * MINUTE, 90 * MINUTE, 7 * DAY, 400 * DAY])
def test_format_ms_reads_back(ms: int) -> None:
    assert parse_duration(format_ms(ms)) == ms
