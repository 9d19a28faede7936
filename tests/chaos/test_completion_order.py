"""A workflow that branches on which of two concurrent steps finished first.

Written as a new user would: two quotes fetched with `asyncio.gather`, each appended to a list
as it finishes, and the first one booked. A fault that changes the timing (a timeout, a crash
after a checkpoint: on replay checkpointed steps return at once, in call order) books the
other vendor. Chaos used to report that as three idempotent-effects bugs besides the
determinism one, blaming the quote steps, which write nothing, with "make it idempotent with
ctx.idempotency_key" (the booking already is), and a "the effects differ" finding keyed
"database". It is one bug: the branch on completion order.
"""

from __future__ import annotations

from pathlib import Path

from awf_sim.chaos import Finding, run_campaign, verification_targets
from awf_sim.flow import load_flow

RACE = """
import asyncio
from awf_sim import Database, Domain, Workflow

DATABASE = Database(schema="CREATE TABLE picks (key TEXT PRIMARY KEY, winner TEXT);")


async def quote_a(req, args, ctx):
    await asyncio.sleep(2)
    return {{"vendor": "A", "price": 10}}


async def quote_b(req, args, ctx):
    await asyncio.sleep(1)
    return {{"vendor": "B", "price": 12}}


async def book(req, args, ctx):
    await ctx.db.execute(
        "INSERT OR IGNORE INTO picks (key, winner) VALUES (?, ?)",
        [ctx.idempotency_key, args["vendor"]],
    )
    return {{"booked": args["vendor"]}}


Vendors = Domain("RaceVendors", {{"quote_a": quote_a, "quote_b": quote_b, "book": book}})


@Workflow("race", examples=[{{"trip": "t1"}}], domains=[Vendors])
async def race(wf, p):
{body}
    return await wf.RaceVendors(p).book(vendor=first)
"""

BY_ORDER = """    order = []

    async def get(step):
        got = await step
        order.append(got["vendor"])
        return got

    await asyncio.gather(get(wf.RaceVendors(p).quote_a()), get(wf.RaceVendors(p).quote_b()))
    first = order[0]"""

BY_PRICE = """    qa, qb = await asyncio.gather(
        wf.RaceVendors(p).quote_a(), wf.RaceVendors(p).quote_b()
    )
    first = min([qa, qb], key=lambda q: q["price"])["vendor"]"""


def _findings(tmp_path: Path, body: str) -> list[Finding]:
    flow = tmp_path / "race.py"
    flow.write_text(RACE.format(body=body), encoding="utf-8")
    ((target, _example),) = verification_targets(load_flow(flow))
    return run_campaign(target, runs=150).findings


def test_a_branch_on_completion_order_is_one_determinism_bug(tmp_path: Path) -> None:
    (found,) = _findings(tmp_path, BY_ORDER)
    v = found.violation
    assert (v.invariant, v.key) == ("determinism", "RaceVendors.book")
    assert "asyncio.gather" in v.hint
    assert "order in which concurrent steps finish" in v.hint
    related = {(r.violation.invariant, r.violation.key) for r in found.related}
    assert ("idempotent-effects", "RaceVendors.book") in related
    assert ("replay-equivalence", "output") in related
    # The quote steps write nothing: they are never blamed for the booking's effects.
    assert not any("quote" in key for _inv, key in related)


def test_the_effects_name_the_step_called_otherwise_not_the_faulted_one(tmp_path: Path) -> None:
    (found,) = _findings(tmp_path, BY_ORDER)
    (effects,) = [r for r in found.related if r.violation.invariant == "idempotent-effects"]
    assert effects.violation.message.startswith(
        "RaceVendors.book was called with other arguments than in the fault-free run"
    )
    assert "not idempotent" not in effects.violation.hint
    assert "asyncio.gather" in effects.violation.hint


def test_choosing_by_value_is_clean(tmp_path: Path) -> None:
    assert _findings(tmp_path, BY_PRICE) == []
