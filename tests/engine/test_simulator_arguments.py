"""What the Simulator's own methods are given wrong gets one line that names the fix."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from awf_sim import DefinitionError, Simulator


def test_run_until_done_names_what_it_takes_when_given_an_id() -> None:
    with Simulator() as sim, pytest.raises(DefinitionError, match=r"sim\.instance\(id\)"):
        sim.run_until_done("some-id")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "names"),
    [
        ({"epoch": "2024-01-01"}, r"epoch must be a datetime"),
        ({"epoch": datetime.date(2024, 1, 1)}, r"epoch must be a datetime"),
        ({"compatibility_date": 20240101}, r"compatibility_date must be a date 'YYYY-MM-DD'"),
        ({"compatibility_date": "2024-02-30"}, r"compatibility_date must be a date"),
        ({"compatibility_date": "next week"}, r"compatibility_date must be a date"),
        ({"hooks": object()}, r"hooks must be a Hooks"),
        ({"seed": [1, 2]}, r"seed must be an int"),
    ],
)
def test_a_wrong_setup_argument_is_one_line_naming_it(kwargs: dict[str, Any], names: str) -> None:
    with pytest.raises(DefinitionError, match=names):
        Simulator(**kwargs)


def test_right_setup_arguments_are_taken() -> None:
    epoch = datetime.datetime(2024, 2, 29, 12, tzinfo=datetime.UTC)
    with Simulator(seed="abc", epoch=epoch, compatibility_date="2024-02-29") as sim:
        assert sim.wall_datetime() == epoch


@pytest.mark.parametrize(
    ("args", "kwargs", "names"),
    [
        ((True,), {}, r"run_until takes a condition to call"),
        ((lambda: False, "1 day"), {}, r"max_ms must be milliseconds >= 0 .*parse_duration"),
        ((lambda: False, -1), {}, r"max_ms must be"),
        ((lambda: False,), {"max_waits": -1}, r"max_waits must be a whole number"),
        ((lambda: False,), {"max_waits": 2.5}, r"max_waits must be a whole number"),
    ],
)
def test_run_until_refuses_what_it_cannot_use(
    args: tuple[Any, ...], kwargs: dict[str, Any], names: str
) -> None:
    with Simulator() as sim, pytest.raises(DefinitionError, match=names):
        sim.run_until(*args, **kwargs)
