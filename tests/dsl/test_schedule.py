from __future__ import annotations

import pytest

from awf_sim.dsl._errors import DefinitionError
from awf_sim.dsl._schedule import to_cron


@pytest.mark.parametrize(
    ("phrase", "cron"),
    [
        ("Monday at 9am", "0 9 * * 1"),
        ("every Monday at 9am", "0 9 * * 1"),
        ("on Mondays at 9am", "0 9 * * 1"),
        ("mondays 9am", "0 9 * * 1"),
        ("at 9am every Monday", "0 9 * * 1"),
        ("every day at 17:30", "30 17 * * *"),
        ("daily", "0 0 * * *"),
        ("daily at 6pm", "0 18 * * *"),
        ("every day at 9 a.m.", "0 9 * * *"),
        ("weekdays at 08:00", "0 8 * * 1-5"),
        ("every weekday at noon", "0 12 * * 1-5"),
        ("weekends at 10am", "0 10 * * 0,6"),
        ("every 15 minutes", "*/15 * * * *"),
        ("every minute", "* * * * *"),
        ("every 1 minute", "* * * * *"),
        ("every 2 hours", "0 */2 * * *"),
        ("every hour", "0 * * * *"),
        ("hourly", "0 * * * *"),
        ("weekly", "0 0 * * 0"),
        ("weekly on Tuesday at 9", "0 9 * * 2"),
        ("monthly", "0 0 1 * *"),
        ("monthly on the 2nd", "0 0 2 * *"),
        ("yearly", "0 0 1 1 *"),
        ("every Sunday at midnight", "0 0 * * 0"),
        ("1st of every month at noon", "0 12 1 * *"),
        ("2nd of every month", "0 0 2 * *"),
        ("the 3rd of each month at 9:30am", "30 9 3 * *"),
        ("on the 15th of every month", "0 0 15 * *"),
        ("every month on the 31st at 6pm", "0 18 31 * *"),
        ("Mon, Wed and Fri at 6pm", "0 18 * * 1,3,5"),
        ("mon-fri at 7:15", "15 7 * * 1-5"),
        ("Friday to Sunday at 9 pm", "0 21 * * 0,5,6"),
        ("tues and thurs at 12:45pm", "45 12 * * 2,4"),
        ("Mon and Tue at 9am", "0 9 * * 1,2"),
        ("sat, sun", "0 0 * * 0,6"),
        ("@daily", "0 0 * * *"),
        ("@hourly", "0 * * * *"),
    ],
)
def test_phrases(phrase: str, cron: str) -> None:
    assert to_cron(phrase) == cron


def test_phrases_ignore_case_and_extra_spaces() -> None:
    assert to_cron("  EVERY   monday   AT  9AM ") == "0 9 * * 1"
    assert to_cron("Every 15 Minutes") == "*/15 * * * *"


@pytest.mark.parametrize(
    ("time", "hour", "minute"),
    [
        ("9am", 9, 0),
        ("9:30am", 9, 30),
        ("9:30 pm", 21, 30),
        ("9:30 p.m.", 21, 30),
        ("7 a.m.", 7, 0),
        ("12pm", 12, 0),
        ("12am", 0, 0),
        ("12:15am", 0, 15),
        ("noon", 12, 0),
        ("midnight", 0, 0),
        ("17:30", 17, 30),
        ("00:00", 0, 0),
        ("23:59", 23, 59),
    ],
)
def test_times(time: str, hour: int, minute: int) -> None:
    assert to_cron(f"every day at {time}") == f"{minute} {hour} * * *"


def test_every_clock_time_of_the_day() -> None:
    for hour in range(24):
        for minute in range(60):
            expected = f"{minute} {hour} * * *"
            assert to_cron(f"daily at {hour:02d}:{minute:02d}") == expected
            twelve = hour % 12 or 12
            suffix = "pm" if hour >= 12 else "am"
            assert to_cron(f"daily at {twelve}:{minute:02d}{suffix}") == expected


@pytest.mark.parametrize(
    ("cron", "normalised"),
    [
        ("0 9 * * 1", "0 9 * * 1"),
        ("0   9 * *   1", "0 9 * * 1"),
        ("*/5 1-3,7 1 JAN-MAR mon-fri", "*/5 1-3,7 1 JAN-MAR mon-fri"),
        ("0 0 5/3 * 7", "0 0 5/3 * 7"),
        ("59 23 31 12 6", "59 23 31 12 6"),
        ("0-59/15 */2 1-31/2 */3 0-7", "0-59/15 */2 1-31/2 */3 0-7"),
        ("30 17 * * SUN,SAT", "30 17 * * SUN,SAT"),
    ],
)
def test_crons_are_validated_and_normalised(cron: str, normalised: str) -> None:
    assert to_cron(cron) == normalised


@pytest.mark.parametrize(
    ("cron", "problem"),
    [
        ("60 9 * * 1", "minute '60' is out of range 0-59"),
        ("0 24 * * *", "hour '24' is out of range 0-23"),
        ("0 0 0 * *", "day of month '0' is out of range 1-31"),
        ("0 0 32 * *", "day of month '32' is out of range 1-31"),
        ("0 0 * 13 *", "month '13' is out of range 1-12"),
        ("0 9 * * 8", "day of week '8' is out of range 0-7"),
        ("0 0 * FOO *", "month 'FOO' is not a number or a name JAN-DEC"),
        ("0 0 * * xyz", "day of week 'xyz' is not a number or a name SUN-SAT"),
        ("*/0 * * * *", "minute step '0' must be a positive number"),
        ("*/60 * * * *", "minute step '60' is larger than 59"),
        ("5-1 * * * *", "minute range '5-1' runs backwards"),
        ("0 9 ? * MON", "day of month '?' is not '*', a value, a range 'a-b' or a step '*/n'"),
        ("0 9 * *", "it has 4 fields; use 5 (minute hour day-of-month month day-of-week)"),
        ("0 9 * * 1 2026", "it has 6 fields; use 5"),
        ("0,,5 9 * * *", "minute '' is not '*'"),
    ],
)
def test_invalid_crons_name_the_bad_field(cron: str, problem: str) -> None:
    with pytest.raises(DefinitionError) as info:
        to_cron(cron)
    message = str(info.value)
    assert message.startswith(f"invalid cron {cron!r}: ")
    assert problem in message


EXAMPLES = ("'Monday at 9am'", "'every day at 17:30'", "'every 15 minutes'", "'0 9 * * 1'")


@pytest.mark.parametrize(
    "phrase", ["fortnightly", "every funday at 9am", "twice a day", "12pm", "every 3 days"]
)
def test_unknown_phrases_list_examples(phrase: str) -> None:
    with pytest.raises(DefinitionError) as info:
        to_cron(phrase)
    message = str(info.value)
    assert message.startswith(f"unknown schedule {phrase!r}: use a 5-field cron")
    for example in EXAMPLES:
        assert example in message


@pytest.mark.parametrize("value", ["", "   ", None, 5])
def test_blank_or_non_string(value: object) -> None:
    with pytest.raises(DefinitionError, match=r"^invalid schedule .*'Monday at 9am'"):
        to_cron(value)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("phrase", "problem"),
    [
        ("every day at 25:00", "invalid time '25:00' in schedule 'every day at 25:00': the hour"),
        ("every day at 13pm", "invalid time '13pm' in schedule 'every day at 13pm': the hour 13"),
        ("daily at 0am", "invalid time '0am'"),
        ("daily at 9:75", "invalid time '9:75' in schedule 'daily at 9:75': the minute 75"),
        ("monday at teatime", "invalid time 'teatime'"),
        ("daily 13pm", "invalid time '13pm'"),
    ],
)
def test_invalid_times_name_the_bad_part(phrase: str, problem: str) -> None:
    with pytest.raises(DefinitionError) as info:
        to_cron(phrase)
    assert str(info.value).startswith(problem)


@pytest.mark.parametrize(
    ("phrase", "problem"),
    [
        ("every 90 minutes", "every 90 minutes does not fit a cron"),
        ("every 0 minutes", "every 0 minutes does not fit a cron"),
        ("every 24 hours", "every 24 hours does not fit a cron"),
        # cron steps restart each hour (day): */7 would also fire at :00, 4 minutes after :56
        ("every 7 minutes", "'*/7 * * * *' also runs at :00, 4 minutes after :56"),
        ("every 45 minutes", "'*/45 * * * *' also runs at :00, 15 minutes after :45"),
        ("every 5 hours", "'0 */5 * * *' also runs at 00:00, 4 hours after 20:00"),
        ("every 30 seconds", "cron schedules run at most once a minute"),
        ("every 15 minutes at 9am", "a time of day does not fit 'every 15 minutes'"),
        ("32nd of every month", "the day of the month 32 must be 1-31"),
    ],
)
def test_impossible_schedules_say_why(phrase: str, problem: str) -> None:
    with pytest.raises(DefinitionError) as info:
        to_cron(phrase)
    message = str(info.value)
    assert message.startswith(f"invalid schedule {phrase!r}: ")
    assert problem in message
