"""A step whose retry trips over its own first attempt is named, with the idempotency fix.

Written as a new user would: `INSERT INTO users` in a step. A crash after the insert, before
its checkpoint, makes the engine run the step again, the insert fails on the UNIQUE email,
and the instance errors. Chaos used to call that "the outcome differs from the fault-free
run" with a hint about clocks and module state, and blamed the step for the emails the
errored run never sent ("external effect made 0 times"). Neither is the bug.
"""

from __future__ import annotations

from pathlib import Path

from awf_sim.chaos import Violation, run_campaign, verification_targets
from awf_sim.flow import load_flow

SIGNUP = """
from awf_sim import Database, Domain, Workflow

DATABASE = Database(
    schema="CREATE TABLE users (email TEXT PRIMARY KEY, name TEXT, welcomed INTEGER DEFAULT 0);"
)
Users = Domain("RerunUsers")


@Users.method()
async def create(user, args, ctx):
    await ctx.db.execute(
        "{insert} INTO users (email, name) VALUES (?, ?)", [user["email"], user["name"]]
    )
    return {{"created": True}}


@Users.method()
async def welcome(user, args, ctx):
    await ctx.db.execute("UPDATE users SET welcomed = 1 WHERE email = ?", [user["email"]])
    return {{"sent": True}}


@Workflow("rerun-signup", examples=[{{"email": "a@b.c", "name": "Ann"}}])
async def signup(wf, user):
    await wf.RerunUsers(user).create()
    return await wf.RerunUsers(user).welcome()
"""


def _violations(tmp_path: Path, insert: str) -> list[Violation]:
    flow = tmp_path / f"signup_{insert.split()[-1].lower()}.py"
    flow.write_text(SIGNUP.format(insert=insert), encoding="utf-8")
    ((target, _example),) = verification_targets(load_flow(flow))
    return [f.violation for f in run_campaign(target, runs=60).findings]


def test_the_step_that_fails_on_its_rerun_is_named_with_the_fix(tmp_path: Path) -> None:
    (found,) = _violations(tmp_path, "INSERT")
    assert found.invariant == "replay-equivalence"
    assert found.key == "RerunUsers.create"
    assert found.message.startswith("RerunUsers.create fails when it runs again after ")
    assert "UNIQUE constraint failed" in found.message
    assert "ctx.idempotency_key" in found.hint
    assert "module state" not in found.hint


def test_writes_an_errored_run_never_made_are_not_repeated_effects(tmp_path: Path) -> None:
    kinds = {(v.invariant, v.key) for v in _violations(tmp_path, "INSERT")}
    # The welcome update never ran in the errored runs: not an idempotency finding.
    assert ("idempotent-effects", "RerunUsers.create") not in kinds
    assert not any(k == "idempotent-effects" for k, _ in kinds)


def test_the_idempotent_insert_is_clean(tmp_path: Path) -> None:
    assert _violations(tmp_path, "INSERT OR IGNORE") == []
