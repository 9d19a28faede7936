"""Typed values a new user writes come back as their declared type, or are refused where declared.

Found by writing typed domains outside the repository as a new user would: a handler
declaring `-> Color` (a str Enum) handed the workflow the str "red", a `tuple[Point, ...]`
came back a list of lists, a TypedDict's dataclass field a dict, and `Line | Miss` a dict,
all typed by mypy as the declared type and failing later on an attribute. A dataclass with a
`Decimal` or `datetime` field passed every check and failed at run time on the first
instance (`WorkflowFatalError: ... is not serialisable`), and a handler declaring
`args: Color` type-checked as `.first(Color.RED)` and failed on every call. Now each of these
is the declared type on the first run, after a crash, and from the testing API, or is a
DefinitionError naming the field and the fix when the class is defined.
"""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, NamedTuple, TypedDict

import pydantic
import pytest
from typer.testing import CliRunner

from awf_sim import (
    DefinitionError,
    Domain,
    SerializationError,
    Simulator,
    TypedDomain,
    Workflow,
    step,
)
from awf_sim.cli import app as sim_app
from awf_sim.dsl import WorkflowApi
from awf_sim.testing import create_test_workflow


class Color(enum.StrEnum):
    RED = "red"
    BLUE = "blue"


class Prio(enum.IntEnum):
    LOW = 1
    HIGH = 2


class Point(NamedTuple):
    x: int
    y: int


@dataclass(frozen=True)
class Line:
    sku: str
    color: Color
    at: Point
    dims: tuple[int, int]


@dataclass(frozen=True)
class Cart:
    owner: str
    lines: list[Line]
    prio: Prio = Prio.LOW


@dataclass(frozen=True)
class Want:
    color: Color


@dataclass(frozen=True)
class Miss:
    reason: str


class Summary(TypedDict):
    first: Line
    colors: list[Color]


async def first(cart: Cart, want: Want, ctx: Any) -> Line | Miss:
    # The handler gets its declared types too: an Enum field, a NamedTuple, a tuple.
    assert isinstance(cart.prio, Prio)
    assert isinstance(want.color, Color)
    assert isinstance(cart.lines[0].at, Point)
    assert isinstance(cart.lines[0].dims, tuple)
    hits = [line for line in cart.lines if line.color == want.color]
    return hits[0] if hits else Miss("none")


async def summary(cart: Cart, args: None, ctx: Any) -> Summary:
    return {"first": cart.lines[0], "colors": [line.color for line in cart.lines]}


async def where(cart: Cart, args: None, ctx: Any) -> tuple[Point, ...]:
    return tuple(line.at for line in cart.lines)


async def color(cart: Cart, args: None, ctx: Any) -> Color:
    return Color.BLUE


class TvShop(TypedDomain[Cart]):
    first = step(first)
    summary = step(summary)
    where = step(where)
    color = step(color)


@dataclass(frozen=True)
class Seen:
    hit: Line | Miss
    miss: Line | Miss
    colors: list[Color]
    points: tuple[Point, ...]
    color: Color
    prio: Prio


@Workflow("tv-shop")
async def tv_shop(wf: WorkflowApi, cart: Cart) -> Seen:
    hit = await wf[TvShop](cart).first(Want(Color.RED))
    miss = await wf[TvShop](cart).first(Want(Color.BLUE))
    await wf.sleep("pause", "1 minute")  # a point to crash at: what follows replays
    got = await wf[TvShop](cart).summary()
    points = await wf[TvShop](cart).where()
    shade = await wf[TvShop](cart).color()
    return Seen(hit, miss, got["colors"], points, shade, cart.prio)


CART = {"owner": "a", "lines": [{"sku": "x", "color": "red", "at": [1, 2], "dims": [3, 4]}]}
LINE = Line("x", Color.RED, Point(1, 2), (3, 4))
EXPECTED = Seen(LINE, Miss("none"), [Color.RED], (Point(1, 2),), Color.BLUE, Prio.HIGH)


def _types(value: Seen) -> list[type]:
    return [
        type(v)
        for v in (
            value.hit,
            value.hit.color,  # type: ignore[union-attr]
            value.hit.at,  # type: ignore[union-attr]
            value.hit.dims,  # type: ignore[union-attr]
            value.miss,
            value.colors[0],
            value.points,
            value.points[0],
            value.color,
            value.prio,
        )
    ]


EXPECTED_TYPES = [Line, Color, Point, tuple, Miss, Color, tuple, Point, Color, Prio]


def test_enums_tuples_typeddicts_and_unions_come_back_as_declared() -> None:
    out = create_test_workflow(tv_shop).run({**CART, "prio": 2})
    assert out == EXPECTED
    assert _types(out) == EXPECTED_TYPES


def test_the_testing_api_takes_the_declared_input_type_itself() -> None:
    test = create_test_workflow(tv_shop)
    out = test.run(Cart("a", [LINE], Prio.HIGH))
    assert _types(out) == EXPECTED_TYPES
    assert test.output == EXPECTED


@Workflow("tv-shop-kinds")
async def tv_shop_kinds(wf: WorkflowApi, cart: Cart) -> list[str]:
    # The types the body received, as the output: the replay's are what counts.
    seen = await tv_shop.fn(wf, cart)  # type: ignore[misc]
    return [t.__name__ for t in _types(seen)]


def test_they_come_back_as_declared_after_a_crash_and_replay() -> None:
    with Simulator() as sim:
        inst = sim.create(tv_shop_kinds, {**CART, "prio": 2})
        sim.run_until(lambda: len(inst.step_results()) == 2)
        sim.crash()  # both `first` results are checkpoints now: the replay reads JSON
        sim.recover()
        sim.run_until_done(inst)
        assert inst.status()["output"] == [t.__name__ for t in EXPECTED_TYPES]
        assert ("crash", None) in [(e["kind"], e.get("path")) for e in inst.timeline]


# -- pydantic carries datetimes, Decimals and UUIDs itself: the fix the refusals propose -----


class Quote(pydantic.BaseModel):
    total: Decimal
    at: dt.datetime
    ref: uuid.UUID
    color: Color


async def quote(cart: Cart, args: None, ctx: Any) -> Quote:
    return Quote(
        total=Decimal("2.20"),
        at=dt.datetime(2026, 1, 1, 12, tzinfo=dt.UTC),
        ref=uuid.UUID(int=7),
        color=Color.RED,
    )


class TvQuotes(TypedDomain[Cart]):
    quote = step(quote)


@Workflow("tv-quote")
async def tv_quote(wf: WorkflowApi, cart: Cart) -> list[str]:
    got = await wf[TvQuotes](cart).quote()
    await wf.sleep("pause", "1 minute")
    again = await wf[TvQuotes](cart).quote()
    assert got == again
    return [type(v).__name__ for v in (got, got.total, got.at, got.ref, got.color)]


def test_a_pydantic_result_keeps_its_datetime_decimal_and_uuid_across_a_crash() -> None:
    kinds = ["Quote", "Decimal", "datetime", "UUID", "Color"]
    with Simulator() as sim:
        inst = sim.create(tv_quote, CART)
        sim.run_until(lambda: len(inst.step_results()) == 1)
        sim.crash()
        sim.recover()
        sim.run_until_done(inst)
        assert inst.status()["output"] == kinds


# -- what a checkpoint cannot carry is refused where it is declared --------------------------


@dataclass
class Stamped:
    at: dt.datetime


@dataclass
class Priced:
    total: Decimal


class Shade(enum.Enum):  # members that are no JSON value
    DARK = "dark"


async def stamped(cart: Cart, args: None, ctx: Any) -> Stamped:
    return Stamped(dt.datetime(2026, 1, 1))


async def priced(cart: Priced, args: None, ctx: Any) -> int:
    return 1


async def tagged(cart: Cart, args: None, ctx: Any) -> set[str]:
    return {"a"}


async def shaded(cart: Cart, args: None, ctx: Any) -> Shade:
    return Shade.DARK


async def by_id(cart: Cart, args: None, ctx: Any) -> dict[int, str]:
    return {1: "a"}


async def by_color(cart: Cart, args: Color, ctx: Any) -> int:
    return 1


REFUSED = {
    "datetime-field": (stamped, "result type Stamped", "Stamped.at is a datetime"),
    "decimal-context": (priced, "context type Priced", "Priced.total is a Decimal"),
    "set-result": (tagged, "result type set[str]", "is declared a set"),
    "plain-enum": (shaded, "result type Shade", "Enum Shade, whose members are not JSON"),
    "int-keys": (by_id, "result type dict[int, str]", "keys would come back as str"),
}


@pytest.mark.parametrize("case", REFUSED.values(), ids=REFUSED.keys())
def test_a_type_no_checkpoint_carries_is_refused_when_the_domain_is_defined(
    case: tuple[Any, str, str],
) -> None:
    handler, declared, why = case
    with pytest.raises(DefinitionError) as info:

        class TvRefused(TypedDomain[Any]):
            m = step(handler)

    text = str(info.value)
    assert text.startswith(f"TvRefused.m: its {declared} cannot be checkpointed: "), text
    assert why in text
    assert "\n" not in text
    with pytest.raises(DefinitionError, match="cannot be checkpointed"):  # the dict form too
        Domain("TvRefusedDict", {"m": handler})


def test_args_that_are_no_object_are_refused_when_the_domain_is_defined() -> None:
    with pytest.raises(DefinitionError) as info:

        class TvByColor(TypedDomain[Cart]):
            pick = step(by_color)

    assert str(info.value).startswith(
        "TvByColor.pick: its args type Color is not an object: a step's args are one JSON object"
    )


@dataclass
class Tagged:
    tags: set[str]


def test_a_workflow_whose_params_or_output_json_cannot_carry_is_refused_when_defined() -> None:
    with pytest.raises(DefinitionError) as info:

        @Workflow("tv-stamped-out")
        async def stamped_out(wf: WorkflowApi) -> Stamped:
            return Stamped(dt.datetime(2026, 1, 1))

    assert str(info.value) == (
        "workflow 'tv-stamped-out': its output type Stamped cannot be checkpointed: Stamped.at "
        "is a datetime, which JSON has no form for; declare it str (an ISO 8601 text) or an "
        "int of epoch ms (or use a pydantic model, which stores it as JSON)"
    )
    with pytest.raises(DefinitionError, match="its params type Tagged cannot be checkpointed"):

        @Workflow("tv-tagged-in")
        async def tagged_in(wf: WorkflowApi, t: Tagged) -> int:
            return 1


@dataclass
class Booking:
    at: dt.datetime
    day: dt.date
    ref: uuid.UUID
    price: Decimal
    shade: Shade
    later: dt.datetime | None = None


@Workflow("tv-booking")
async def tv_booking(wf: WorkflowApi, booking: Booking) -> list[str]:
    values = (booking.at, booking.day, booking.ref, booking.price, booking.shade, booking.later)
    kinds = {"datetime": dt.datetime, "date": dt.date, "UUID": uuid.UUID, "Decimal": Decimal}
    kinds |= {"Shade": Shade, "NoneType": type(None)}
    # isinstance: inside a simulation a datetime is freezegun's FakeDatetime, a subclass.
    pairs = zip(values, kinds.items(), strict=True)
    return [name for value, (name, kind) in pairs if isinstance(value, kind)]


def test_params_come_in_as_their_declared_datetime_uuid_decimal_and_enum() -> None:
    # Params only come in as JSON, so these are rebuilt from their text; before, the workflow
    # got the str "2026-01-01T09:00:00Z" where it declared a datetime.
    params = {
        "at": "2026-01-01T09:00:00Z",
        "day": "2026-01-02",
        "ref": "00000000-0000-0000-0000-000000000007",
        "price": "19.90",
        "shade": "dark",
    }
    out = create_test_workflow(tv_booking).run(params)
    assert out == ["datetime", "date", "UUID", "Decimal", "Shade", "NoneType"]
    with pytest.raises(SerializationError) as info:
        tv_booking.check_params({**params, "at": "next tuesday"})
    assert str(info.value) == (
        "params.at is str ('next tuesday'), not an ISO 8601 date and time (datetime)"
    )


def test_awf_sim_run_says_it_in_one_line(tmp_path: Path) -> None:
    flow = tmp_path / "flow.py"
    flow.write_text(
        "from dataclasses import dataclass\n"
        "from decimal import Decimal\n"
        "from awf_sim import TypedDomain, Workflow, step\n\n"
        "@dataclass\nclass Quote:\n    total: Decimal\n\n"
        "async def price(sku: str, args: None, ctx) -> Quote:\n"
        "    return Quote(Decimal('1.10'))\n\n"
        "class Pricing(TypedDomain[str]):\n    price = step(price)\n\n"
        "@Workflow('tv-cli')\nasync def w(wf, p):\n    return await wf[Pricing]('x').price()\n"
    )
    result = CliRunner().invoke(sim_app, ["run", str(flow)])
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 2, result.output
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.output
    assert "Pricing.price: its result type Quote cannot be checkpointed: Quote.total" in lines[0]


BAD_PARAMS = {
    "enum-value": (
        {"color": "green"},
        "params.lines[0].color is a str ('green'), not a value of Color ('red', 'blue')",
    ),
    "tuple-length": ({"dims": [1, 2, 3]}, "params.lines[0].dims has 3 items, not the 2 of tuple"),
    "namedtuple-not-a-list": (
        {"at": "p"},
        "params.lines[0].at is a str ('p'), not the list a Point is made from",
    ),
    "namedtuple-too-long": ({"at": [1, 2, 3]}, "params.lines[0].at has 3 items; Point has 2"),
}


@pytest.mark.parametrize("case", BAD_PARAMS.values(), ids=BAD_PARAMS.keys())
def test_params_that_do_not_fit_an_enum_or_tuple_are_named(
    case: tuple[dict[str, Any], str],
) -> None:
    # Before, the workflow got "green" or "p" where it declared a Color or a Point.
    change, message = case
    line = {**CART["lines"][0], **change}  # type: ignore[index]
    with pytest.raises(SerializationError) as info:
        tv_shop.check_params({**CART, "lines": [line]})
    assert str(info.value).startswith(message), str(info.value)


def test_the_testing_api_takes_such_params_as_the_declared_type_itself() -> None:
    # run() takes "an In or its JSON": as an In, its datetime failed as "params.at is not
    # JSON (a datetime)".
    booking = Booking(
        at=dt.datetime(2026, 1, 1, 9, tzinfo=dt.UTC),
        day=dt.date(2026, 1, 2),
        ref=uuid.UUID(int=7),
        price=Decimal("19.90"),
        shade=Shade.DARK,
    )
    test = create_test_workflow(tv_booking)
    assert test.run(booking) == ["datetime", "date", "UUID", "Decimal", "Shade", "NoneType"]
