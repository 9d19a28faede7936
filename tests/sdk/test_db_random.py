"""SQL's random() and randomblob() in ctx.db draw from the simulation's seed, as `random` does.

Before, they were SQLite's own, seeded by the operating system: a step that made an id with
`lower(hex(randomblob(16)))` (a common D1 idiom, often a column DEFAULT) gave another value on
every `awf-sim run` with the same seed, so "same seed and input, same run" did not hold for
any flow whose database made its ids.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from awf_sim import Database, Domain, Simulator, Workflow
from awf_sim.errors import DatabaseError
from awf_sim.testing import create_test_context, mock_database

SCHEMA = """
CREATE TABLE tickets (id TEXT PRIMARY KEY DEFAULT (lower(hex(randomblob(16)))), title TEXT);
"""


async def open_ticket(title: Any, _args: Any, ctx: Any) -> Any:
    await ctx.db.execute("INSERT INTO tickets (title) VALUES (?)", [title])
    row = await ctx.db.query_one(
        "SELECT id, random() AS r, hex(randomblob(3)) AS h, length(randomblob(0)) AS one, "
        "length(randomblob('5')) AS five FROM tickets WHERE title = ?",
        [title],
    )
    return dict(row)


Tickets = Domain("RandomTickets", {"open": open_ticket})


@Workflow("random-tickets", domains=[Tickets])
async def tickets(wf: Any, params: Any) -> Any:
    return [await wf.RandomTickets(t).open() for t in params["titles"]]


def _run(seed: int) -> Any:
    sim = Simulator(seed=seed, db=Database(schema=SCHEMA))
    try:
        inst = sim.create(tickets, {"titles": ["a", "b"]}, id="t1")
        sim.run()
        status = inst.status()
        assert status["status"] == "complete", status
        return status["output"]
    finally:
        sim.close()


def test_the_same_seed_gives_the_same_random_values_in_sql() -> None:
    first, again = _run(7), _run(7)
    assert first == again  # was: other ids and numbers on every run
    assert first != _run(8)
    a, b = first
    assert a["id"] != b["id"]
    assert len(a["id"]) == 32
    assert a["id"] == a["id"].lower()
    assert isinstance(a["r"], int | float)
    assert len(a["h"]) == 6
    assert (a["one"], a["five"]) == (1, 5)  # as SQLite: less than 1 byte is 1 byte


def test_random_stays_out_of_generated_columns_and_indexes_as_in_sqlite() -> None:
    async def declare(ctx: Any, sql: str) -> Any:
        return await ctx.db.execute(sql)

    ctx = create_test_context(db=mock_database({"dice": [{"n": 1}]}))
    for sql in (
        "CREATE TABLE rolls (n INTEGER, m INTEGER AS (random()))",
        "CREATE INDEX low ON dice (n) WHERE n < random()",
    ):
        with pytest.raises(DatabaseError, match="non-deterministic functions prohibited"):
            asyncio.run(declare(ctx, sql))


def test_outside_a_simulation_it_is_still_random() -> None:
    async def draw(ctx: Any) -> Any:
        return await ctx.db.query_one("SELECT random() AS r, hex(randomblob(8)) AS h")

    ctx = create_test_context(db=mock_database({}))
    one, two = asyncio.run(draw(ctx)), asyncio.run(draw(ctx))
    assert one != two
