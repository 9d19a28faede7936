"""The replay API as a golden-history test uses it.

`record_history` and `replay` from Python run in the world the flow file declares
(`DATABASE`, `HTTP`, `AI`) when none is given, as `awf-sim replay`, `create_test_workflow`,
`assert_durable` and `fault_plans` do.

A user who recorded a golden history with `record_history(flow, params)` got the history of an
instance that errored at its first step ("no such table"), and `replay(flow, that history)`
then called it faithful: the golden test passed while pinning a broken run.

`str(report)` is the report `awf-sim replay` prints (`print(report)`, `assert report.faithful,
str(report)`): it was the dataclass's repr, one line that pytest cuts before the divergences.

An event given to `record_history` that no wait of the run was for (a typo) is refused: the
history was silently that of an instance still waiting for the event meant."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from awf_sim.dsl import isolated_registries
from awf_sim.errors import HistoryError
from awf_sim.flow import load_flow
from awf_sim.replay import History, record_history, replay

FLOW = """
from awf_sim import Database, Domain, Workflow

DATABASE = Database(
    "CREATE TABLE plans (name TEXT PRIMARY KEY, cents INTEGER);"
    "CREATE TABLE charges (account TEXT, cents INTEGER);",
    {"plans": [{"name": "pro", "cents": 2000}]},
)


async def price(s, args, ctx):
    row = await ctx.db.query_one("SELECT cents FROM plans WHERE name = ?", [s["plan"]])
    return {"cents": row["cents"]}


async def charge(s, args, ctx):
    await ctx.db.execute("INSERT INTO charges VALUES (?, ?)", [s["account"], args["cents"]])
    return {"charged": args["cents"]}


GoldenPlans = Domain("GoldenPlans", {"price": price})
GoldenBilling = Domain("GoldenBilling", {"charge": charge})


@Workflow("golden-billing")
async def billing(wf, s):
    quote = await wf.GoldenPlans(s).price()
    await wf.sleep("grace", "1 day")
    return await wf.GoldenBilling(s).charge(cents=quote["cents"])
"""

PARAMS = {"account": "acc-1", "plan": "pro"}


@pytest.fixture
def flow_path(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "golden_flow.py"
    path.write_text(FLOW, encoding="utf-8")
    with isolated_registries():
        yield path


def test_record_history_runs_on_the_flows_database(flow_path: Path) -> None:
    workflow = load_flow(flow_path).pick("golden-billing")
    history = record_history(workflow, PARAMS)
    assert history.error is None, history.error  # was: DatabaseError: no such table: plans
    assert history.status == "complete"
    assert history.output == {"charged": 2000}


def test_replay_runs_new_steps_on_the_flows_database(flow_path: Path) -> None:
    flow = load_flow(flow_path)
    workflow = flow.pick("golden-billing")
    recorded = record_history(workflow, PARAMS, db=flow.database)
    # The instance as production holds it mid-run: priced, still in its grace sleep.
    running = History.from_json(
        {**recorded.to_json(), "status": "running", "output": None, "steps": [recorded.steps[0]]}
    )
    report = replay(workflow, running)
    assert report.faithful, report
    assert report.error is None, report.error  # was: the charge failed on an empty database
    assert (report.status, report.output) == ("complete", {"charged": 2000})


def test_a_given_db_still_wins(flow_path: Path) -> None:
    from awf_sim import Database

    workflow = load_flow(flow_path).pick("golden-billing")
    cheap = Database(
        "CREATE TABLE plans (name TEXT PRIMARY KEY, cents INTEGER);"
        "CREATE TABLE charges (account TEXT, cents INTEGER);",
        {"plans": [{"name": "pro", "cents": 1}]},
    )
    assert record_history(workflow, PARAMS, db=cheap).output == {"charged": 1}


def test_a_report_reads_as_awf_sim_replay_prints_it(flow_path: Path) -> None:
    workflow = load_flow(flow_path).pick("golden-billing")
    golden = record_history(workflow, PARAMS)
    # The code changed: the charge's args (so its step name) differ from the golden history's.
    changed = load_flow(
        _write(flow_path, FLOW.replace('cents=quote["cents"]', 'cents=quote["cents"] + 1'))
    ).pick("golden-billing")
    report = replay(changed, golden)
    assert not report.faithful
    text = str(report)
    lines = text.splitlines()
    assert lines[0] == (
        "replay of instance replay-1 of golden-billing (history: complete, 3 completed steps)"
    )
    assert lines[-3] == "DIVERGES at 2 step(s):"
    assert lines[-2].startswith("  new-before-frontier: GoldenBilling.charge@")
    charged = golden.steps[2]["name"]
    assert lines[-1] == (
        f"  not-called: {charged}: the instance completed this step and the code no longer "
        "calls it: its work would be redone under a new name, or skipped"
    )
    assert "faithful: 3 of 3 completed steps served" in str(replay(workflow, golden))


def _write(path: Path, text: str) -> Path:
    other = path.with_name("golden_flow_v2.py")
    other.write_text(text, encoding="utf-8")
    return other


WAITING_FLOW = """
from awf_sim import Domain, Workflow


async def activate(s, args, ctx):
    return {"active": s["account"], "card": args["card"]}


GoldenAccounts = Domain("GoldenAccounts", {"activate": activate})


@Workflow("golden-signup")
async def signup(wf, s):
    card = await wf.wait_for("card", type="card-added", timeout="3 days")
    return await wf.GoldenAccounts(s).activate(card=card["card"])
"""


def test_record_history_refuses_an_event_no_wait_was_for(tmp_path: Path) -> None:
    # The typo recorded the history of an instance still waiting for its card, silently.
    path = tmp_path / "golden_signup.py"
    path.write_text(WAITING_FLOW, encoding="utf-8")
    with isolated_registries():
        workflow = load_flow(path).pick("golden-signup")
        with pytest.raises(HistoryError) as info:
            record_history(workflow, PARAMS, events={"card_added": {"card": "tok_visa"}})
        assert str(info.value) == (
            "record_history('golden-signup'): the event 'card_added' reached no event wait of "
            "the run (did you mean 'card-added'?); the history would not be of the instance meant"
        )
        with pytest.raises(HistoryError, match=r"'card' is the name of an event wait"):
            record_history(workflow, PARAMS, events={"card": {"card": "tok_visa"}})
        meant = record_history(workflow, PARAMS, events={"card-added": {"card": "tok_visa"}})
        assert (meant.status, meant.output) == ("complete", {"active": "acc-1", "card": "tok_visa"})
        assert record_history(workflow, PARAMS).status == "waiting"  # no event: legitimately
