"""Schedules: a 5-field cron, or an English phrase ("Monday at 9am") turned into one."""

from __future__ import annotations

import re
from typing import NamedTuple

from awf_sim.dsl._errors import DefinitionError

__all__ = ["to_cron"]

_EXAMPLES = (
    "use a 5-field cron like '0 9 * * 1' or a phrase like 'Monday at 9am', "
    "'every day at 17:30', 'weekdays at 08:00', 'Mon, Wed and Fri at 6pm', 'every 15 minutes', "
    "'every 2 hours', 'hourly', 'daily at 6pm', 'weekly', '1st of every month at noon'"
)

_CRON_FIELDS_HINT = "minute hour day-of-month month day-of-week"

# --- cron validation --------------------------------------------------------------------------


class _Field(NamedTuple):
    label: str
    low: int
    high: int
    names: dict[str, int]
    names_hint: str = ""


_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_WEEKDAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")

_FIELDS = (
    _Field("minute", 0, 59, {}),
    _Field("hour", 0, 23, {}),
    _Field("day of month", 1, 31, {}),
    _Field("month", 1, 12, {name: i for i, name in enumerate(_MONTHS, 1)}, "JAN-DEC"),
    # 7 is Sunday too, as in Vixie cron and Cloudflare's Cron Triggers.
    _Field("day of week", 0, 7, {name: i for i, name in enumerate(_WEEKDAYS)}, "SUN-SAT"),
)

_ITEM = re.compile(r"(?:(\*)|(\w+)(?:-(\w+))?)(?:/(\w+))?", re.ASCII)
# Minute and hour never take names, so text whose first two words look like those fields is
# meant as a cron (and gets field-by-field errors), while "every monday at 9 am" is a phrase.
_CRONISH_HEAD = re.compile(r"[0-9*,/\-]+", re.ASCII)


def _value(token: str, field: _Field, cron: str) -> int:
    if token.isascii() and token.isdigit():
        number = int(token)
    elif token.upper() in field.names:
        return field.names[token.upper()]
    else:
        names = f" or a name {field.names_hint}" if field.names else ""
        raise DefinitionError(
            f"invalid cron {cron!r}: {field.label} {token!r} is not a number{names}"
        )
    if not field.low <= number <= field.high:
        raise DefinitionError(
            f"invalid cron {cron!r}: {field.label} {token!r} is out of range "
            f"{field.low}-{field.high}"
        )
    return number


def _check_field(text: str, field: _Field, cron: str) -> None:
    for item in text.split(","):
        match = _ITEM.fullmatch(item)
        if match is None:
            raise DefinitionError(
                f"invalid cron {cron!r}: {field.label} {item!r} is not '*', a value, "
                "a range 'a-b' or a step '*/n'"
            )
        star, start, end, step = match.groups()
        if star is None:
            first = _value(start, field, cron)
            if end is not None and _value(end, field, cron) < first:
                raise DefinitionError(
                    f"invalid cron {cron!r}: {field.label} range {item!r} runs backwards"
                )
        if step is not None and not (step.isascii() and step.isdigit() and int(step) > 0):
            raise DefinitionError(
                f"invalid cron {cron!r}: {field.label} step {step!r} must be a positive number"
            )
        if step is not None and int(step) > field.high:
            raise DefinitionError(
                f"invalid cron {cron!r}: {field.label} step {step!r} is larger than {field.high}"
            )


def _check_cron(fields: list[str], cron: str) -> str:
    for text, field in zip(fields, _FIELDS, strict=True):
        _check_field(text, field, cron)
    return " ".join(fields)


# --- phrases ----------------------------------------------------------------------------------

_DAY_WORDS: dict[str, int] = {}
for _index, _name in enumerate(
    ("sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday")
):
    for _word in (_name, _name + "s", _name[:3], _name[:3] + "s"):
        _DAY_WORDS[_word] = _index
_DAY_WORDS.update({"tues": 2, "weds": 3, "thur": 4, "thurs": 4})
del _index, _name, _word

_TIME_WORDS = {"noon": (12, 0), "midday": (12, 0), "midnight": (0, 0)}
_CLOCK = re.compile(r"(\d{1,2})(?::(\d\d))?\s*(am|pm|a\.m\.|p\.m\.)?", re.ASCII)
# Without a leading "at", only unmistakable times count, so "every 15" is not read as 15:00.
_BARE_TIME = r"\d{1,2}(?::\d\d)?\s*(?:am|pm|a\.m\.|p\.m\.)|\d{1,2}:\d\d|noon|midday|midnight"
_TIME_AFTER = re.compile(rf"(?P<rest>.+?)(?:\s+at\s+(?P<at>.+)|\s+(?P<bare>{_BARE_TIME}))")
_TIME_BEFORE = re.compile(
    rf"at\s+(?P<at>{_BARE_TIME}|\d{{1,2}}(?::\d\d)?|\S+)\s+(?P<rest>.+)", re.ASCII
)

_EVERY_MINUTES = re.compile(r"every\s+(\d+)\s+(?:minutes?|mins?)")
_EVERY_HOURS = re.compile(r"every\s+(\d+)\s+(?:hours?|hrs?)")
_EVERY_SECONDS = re.compile(r"every\s+(?:\d+\s+)?(?:seconds?|secs?)")
_ORDINAL = r"(\d{1,2})(?:st|nd|rd|th)"
_DAY_OF_MONTH = re.compile(
    rf"(?:on\s+)?(?:the\s+)?{_ORDINAL}(?:\s+day)?\s+of\s+(?:every|each|the)\s+month"
    rf"|(?:monthly|month)\s+on\s+(?:the\s+)?{_ORDINAL}"
)
_DAY_SEPARATORS = re.compile(r"\s*(?:,|\band\b|&)\s*")
_DAY_RANGE = re.compile(r"(\w+)\s*(?:-|\bto\b|\bthrough\b|\bthru\b)\s*(\w+)")
_LEADING = re.compile(r"^(?:every|each|on)\s+")

_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


def _bad_time(time: str, phrase: str, why: str) -> DefinitionError:
    return DefinitionError(f"invalid time {time!r} in schedule {phrase!r}: {why}")


def _parse_time(time: str, phrase: str) -> tuple[int, int]:
    if time in _TIME_WORDS:
        return _TIME_WORDS[time]
    match = _CLOCK.fullmatch(time)
    if match is None:
        raise _bad_time(time, phrase, "use '9am', '9:30am', '17:30', 'noon' or 'midnight'")
    hour, minute = int(match[1]), int(match[2] or 0)
    if minute > 59:
        raise _bad_time(time, phrase, f"the minute {match[2]} must be 00-59")
    if match[3] is None:
        if hour > 23:
            raise _bad_time(time, phrase, f"the hour {hour} must be 0-23")
        return hour, minute
    if not 1 <= hour <= 12:
        raise _bad_time(time, phrase, f"the hour {hour} must be 1-12 with am/pm")
    # 12am is midnight and 12pm is noon; every other pm hour moves on by twelve.
    return (hour % 12) + (12 if match[3].startswith("p") else 0), minute


def _split_time(text: str, phrase: str) -> tuple[str, tuple[int, int] | None]:
    match = _TIME_BEFORE.fullmatch(text) or _TIME_AFTER.fullmatch(text)
    if match is None:
        return text, None
    time = match["at"] if match["at"] is not None else match["bare"]
    return match["rest"], _parse_time(time.strip(), phrase)


def _weekdays(text: str) -> str | None:
    """Turn "monday", "mon, wed and fri" or "monday to friday" into a cron day-of-week."""
    days: set[int] = set()
    for part in _DAY_SEPARATORS.split(text):
        span = _DAY_RANGE.fullmatch(part)
        if span is not None:
            first, last = _DAY_WORDS.get(span[1]), _DAY_WORDS.get(span[2])
            if first is None or last is None:
                return None
            # "friday to sunday" wraps past Saturday.
            stop = last if last >= first else last + 7
            days.update(day % 7 for day in range(first, stop + 1))
            continue
        day = _DAY_WORDS.get(part)
        if day is None:
            return None
        days.add(day)
    ordered = sorted(days)
    if len(ordered) > 2 and ordered == list(range(ordered[0], ordered[-1] + 1)):
        return f"{ordered[0]}-{ordered[-1]}"
    return ",".join(map(str, ordered))


def _interval(text: str, phrase: str) -> str | None:
    """Cron for "every N minutes/hours" and friends, which take no time of day."""
    if text in ("every minute", "every 1 minute"):
        return "* * * * *"
    if text in ("hourly", "every hour", "each hour"):
        return "0 * * * *"
    if _EVERY_SECONDS.fullmatch(text):
        raise DefinitionError(
            f"invalid schedule {phrase!r}: cron schedules run at most once a minute"
        )
    minutes = _EVERY_MINUTES.fullmatch(text)
    if minutes is not None:
        n = int(minutes[1])
        if not 1 <= n <= 59:
            raise DefinitionError(
                f"invalid schedule {phrase!r}: every {n} minutes does not fit a cron; "
                "use 1-59 minutes, or hours"
            )
        if 60 % n:
            # Cron counts minutes within each hour: */7 fires at :56 and again at :00.
            raise DefinitionError(
                f"invalid schedule {phrase!r}: a cron step restarts every hour, so "
                f"'*/{n} * * * *' also runs at :00, {60 % n} minutes after :{60 - 60 % n:02}, "
                f"not every {n} minutes; use a number that divides 60 (1, 2, 3, 4, 5, 6, 10, "
                "12, 15, 20 or 30), or pass a cron expression"
            )
        return "* * * * *" if n == 1 else f"*/{n} * * * *"
    hours = _EVERY_HOURS.fullmatch(text)
    if hours is not None:
        n = int(hours[1])
        if not 1 <= n <= 23:
            raise DefinitionError(
                f"invalid schedule {phrase!r}: every {n} hours does not fit a cron; "
                "use 1-23 hours, or 'daily'"
            )
        if 24 % n:
            raise DefinitionError(
                f"invalid schedule {phrase!r}: a cron step restarts every day, so "
                f"'0 */{n} * * *' also runs at 00:00, {24 % n} hours after "
                f"{24 - 24 % n:02}:00, not every {n} hours; use a number that divides 24 "
                "(1, 2, 3, 4, 6, 8 or 12), or pass a cron expression"
            )
        return "0 * * * *" if n == 1 else f"0 */{n} * * *"
    return None


def _calendar(text: str, phrase: str) -> tuple[str, str, str] | None:
    """(day of month, month, day of week) for a phrase that names days, or None."""
    text = _LEADING.sub("", text, count=1)
    dom = _DAY_OF_MONTH.fullmatch(text)
    if dom is not None:
        day = int(dom[1] or dom[2])
        if not 1 <= day <= 31:
            raise DefinitionError(
                f"invalid schedule {phrase!r}: the day of the month {day} must be 1-31"
            )
        return str(day), "*", "*"
    if text in ("day", "daily", "everyday", "nightly"):
        return "*", "*", "*"
    if text in ("weekday", "weekdays"):
        return "*", "*", "1-5"
    if text in ("weekend", "weekends"):
        return "*", "*", "0,6"
    if text in ("week", "weekly"):
        return "*", "*", "0"
    if text in ("month", "monthly"):
        return "1", "*", "*"
    if text in ("year", "yearly", "annually"):
        return "1", "1", "*"
    weekly_on = re.fullmatch(r"(?:weekly|week)\s+on\s+(.+)", text)
    days = _weekdays(weekly_on[1] if weekly_on is not None else text)
    if days is None:
        return None
    return "*", "*", days


def _from_phrase(text: str, phrase: str) -> str | None:
    if text in _MACROS:
        return _MACROS[text]
    rest, time = _split_time(text, phrase)
    interval = _interval(rest, phrase)
    if interval is not None:
        if time is not None:
            raise DefinitionError(
                f"invalid schedule {phrase!r}: a time of day does not fit {rest!r}; "
                "use e.g. 'daily at 9am'"
            )
        return interval
    days = _calendar(rest, phrase)
    if days is None:
        return None
    hour, minute = time if time is not None else (0, 0)
    return f"{minute} {hour} {days[0]} {days[1]} {days[2]}"


def to_cron(phrase: str) -> str:
    """Return the 5-field cron for a cron expression or an English schedule phrase.

    Crons are validated and returned with single spaces. Phrases are case-insensitive:
    "Monday at 9am" -> "0 9 * * 1", "every 15 minutes" -> "*/15 * * * *", "weekdays at 08:00"
    -> "0 8 * * 1-5", "1st of every month at noon" -> "0 12 1 * *". A phrase with no time of
    day runs at midnight. Raises DefinitionError for an invalid cron or an unknown phrase.
    """
    if not isinstance(phrase, str) or not phrase.strip():
        raise DefinitionError(f"invalid schedule {phrase!r}: {_EXAMPLES}")
    fields = phrase.split()
    if len(fields) >= 2 and all(_CRONISH_HEAD.fullmatch(f) for f in fields[:2]):
        if len(fields) != 5:
            raise DefinitionError(
                f"invalid cron {phrase!r}: it has {len(fields)} fields; use 5 ({_CRON_FIELDS_HINT})"
            )
        return _check_cron(fields, phrase)
    cron = _from_phrase(" ".join(fields).lower(), phrase)
    if cron is None:
        raise DefinitionError(f"unknown schedule {phrase!r}: {_EXAMPLES}")
    return cron
