"""Steps that run at once share one database: a transaction belongs to the step that opened it.

The simulator gives every step one SQLite connection. A step that awaits something inside its
transaction lets other steps run; their statements must not land inside its transaction (its
rollback would take the write of a step that succeeded with it), and their own transactions
are not "nested" in it: they wait for its end, as writers to one SQLite database do.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import httpx
import pytest

from awf_sim import Database, Domain, Simulator, Workflow

SCHEMA = "CREATE TABLE log (id INTEGER PRIMARY KEY, who TEXT NOT NULL)"


async def slow_api(request: httpx.Request) -> httpx.Response:
    await asyncio.sleep(0)  # a real suspension: the other step runs meanwhile
    return httpx.Response(200, json={})


async def in_tx_then_fail(context: Any, args: Any, ctx: Any) -> None:
    async with ctx.db.transaction() as tx:
        await tx.insert("log", {"who": "a1"})
        await ctx.http.get("https://api.example.com/")
        await tx.insert("log", {"who": "a2"})
        raise RuntimeError("a fails: its own two rows roll back")


async def plain_insert(context: Any, args: Any, ctx: Any) -> str:
    await ctx.db.insert("log", {"who": "b"})
    return "b done"


async def own_transaction(context: Any, args: Any, ctx: Any) -> str:
    async with ctx.db.transaction() as tx:
        await tx.insert("log", {"who": "b"})
    return "b done"


def _flow(b_handler: Any) -> Workflow[Any, Any]:
    dom = Domain(
        "Par",
        {
            "a": {"handler": in_tx_then_fail, "retries": {"limit": 0, "delay": "1 second"}},
            "b": {"handler": b_handler, "retries": {"limit": 0, "delay": "1 second"}},
        },
    )

    async def body(wf: Any, params: Any) -> Any:
        a, b = await asyncio.gather(wf.Par({}).a(), wf.Par({}).b(), return_exceptions=True)
        return [type(a).__name__, b if isinstance(b, str) else f"{type(b).__name__}: {b}"]

    return Workflow("parallel-db", body, domains=[dom])


def _run(b_handler: Any, **options: Any) -> tuple[Any, list[dict[str, Any]], list[Any]]:
    with Simulator(db=Database(SCHEMA), http=slow_api, **options) as sim:
        inst = sim.create(_flow(b_handler), {})
        sim.run()
        failures = [e for e in inst.timeline if e["kind"] == "attempt-failure"]
        return inst.status()["output"], sim.db.rows("SELECT who FROM log"), failures


def test_a_write_of_a_parallel_step_survives_another_steps_rollback() -> None:
    # Before: b's insert ran inside a's open transaction and vanished with its rollback,
    # while b's step was checkpointed as done.
    output, rows, failures = _run(plain_insert)
    assert output[1] == "b done"
    assert rows == [{"who": "b"}]
    assert [f["path"] for f in failures] == ["Par.a"]


def test_a_transaction_of_a_parallel_step_is_not_nested_in_another() -> None:
    # Before: b's attempt failed with "nested transaction" and was retried.
    output, rows, failures = _run(own_transaction)
    assert output[1] == "b done"
    assert rows == [{"who": "b"}]
    assert [f["path"] for f in failures] == ["Par.a"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="process isolation needs Linux")
def test_parallel_isolated_steps_wait_for_each_others_transactions() -> None:
    # Isolated attempts are served on threads of their own: the wait must be woken across them.
    output, rows, failures = _run(plain_insert, isolation="process")
    assert output[1] == "b done"
    assert rows == [{"who": "b"}]
    assert [f["path"] for f in failures] == ["Par.a"]


def test_the_step_that_opened_a_transaction_still_cannot_nest_one() -> None:
    async def nests(context: Any, args: Any, ctx: Any) -> str:
        async with ctx.db.transaction():
            try:
                async with ctx.db.transaction():
                    pass
            except Exception as exc:
                return str(exc)
        return "no error"

    dom = Domain("Nest", {"n": nests})
    flow = Workflow("nest", lambda wf, p: wf.Nest({}).n(), domains=[dom])
    with Simulator(db=Database(SCHEMA)) as sim:
        inst = sim.create(flow, {})
        sim.run()
        assert "nested transaction" in inst.status()["output"]


async def task_before_transaction(context: Any, args: Any, ctx: Any) -> list[str]:
    # The task is created before the block, so it does not see the block's transaction, and is
    # awaited inside it. Before, its insert waited for the end of the block, which waited for
    # the task: the step hung until its timeout, and every retry hung the same way.
    early = asyncio.create_task(ctx.db.insert("log", {"who": "early task"}))
    async with ctx.db.transaction() as tx:
        await tx.insert("log", {"who": "in tx"})
        await early
    return [row["who"] for row in await ctx.db.query("SELECT who FROM log ORDER BY id")]


async def task_before_failing_transaction(context: Any, args: Any, ctx: Any) -> None:
    early = asyncio.create_task(ctx.db.insert("log", {"who": "early task"}))
    async with ctx.db.transaction() as tx:
        await ctx.http.get("https://api.example.com/")  # the task runs meanwhile
        await tx.insert("log", {"who": "in tx"})
        await early
        raise RuntimeError("rolls back")


@pytest.mark.parametrize("isolation", [None, "process"])
def test_a_task_started_before_a_transaction_and_awaited_inside_it_does_not_hang(
    isolation: str | None,
) -> None:
    if isolation and not sys.platform.startswith("linux"):
        pytest.skip("process isolation needs Linux")
    dom = Domain("Early", {"go": task_before_transaction})
    flow = Workflow("early", lambda wf, p: wf.Early({}).go(), domains=[dom])
    with Simulator(db=Database(SCHEMA), isolation=isolation) as sim:
        inst = sim.create(flow, {})
        sim.run()
        assert inst.status()["status"] == "complete", inst.status()
        assert inst.status()["output"] == ["in tx", "early task"]
        assert not [e for e in inst.timeline if e["kind"] == "attempt-failure"]
        assert sim.now_ms == 0  # no timeout waited out, no retry


def test_the_early_tasks_statement_is_the_steps_own_and_shares_its_transaction() -> None:
    # Its insert joins the step's open transaction (on D1 the block is not one: it would have
    # run at once); a rollback of the block takes it too, and every attempt fails the same.
    dom = Domain("EarlyFail", {"go": task_before_failing_transaction})
    flow = Workflow("early-fail", lambda wf, p: wf.EarlyFail({}).go(), domains=[dom])
    with Simulator(db=Database(SCHEMA), http=slow_api, profile="local") as sim:
        inst = sim.create(flow, {})
        sim.run()
        assert inst.status()["status"] == "errored"
        assert inst.status()["error"]["message"] == "rolls back"
        assert sim.db.rows("SELECT who FROM log") == []
