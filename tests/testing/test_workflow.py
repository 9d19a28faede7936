"""create_test_workflow, WorkflowFailed and create_test_context."""

from __future__ import annotations

import asyncio
import json
import pickle
import random
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from awf_sim import DefinitionError, Domain, InstanceError, SerializationError, Workflow
from awf_sim.testing import (
    Database,
    TestWorkflow,
    WorkflowFailed,
    create_test_context,
    create_test_workflow,
    createTestContext,
    createTestWorkflow,
    format_timeline,
    mock_database,
)

THREADS: list[int] = []


async def count(item: Any, args: Any, ctx: Any) -> dict[str, Any]:
    THREADS.append(threading.get_ident())
    row = await ctx.db.query_one("SELECT quantity FROM stock WHERE sku = ?", [item["sku"]])
    return {"sku": item["sku"], "quantity": row["quantity"] if row else 0}


async def take(item: Any, args: Any, ctx: Any) -> dict[str, Any]:
    await ctx.db.execute("UPDATE stock SET quantity = quantity - 1 WHERE sku = ?", [item["sku"]])
    return {"taken": True, "region": ctx.env.get("REGION")}


async def explode(item: Any, args: Any, ctx: Any) -> None:
    raise ValueError(f"no such sku {item['sku']}")


WfStock = Domain(
    "WfStock",
    {
        "count": count,
        "take": take,
        "explode": {"handler": explode, "retries": {"limit": 1, "delay": "1 second"}},
    },
)


async def stock_fn(wf: Any, params: Any) -> Any:
    item = {"sku": params["sku"]}
    first = await wf.WfStock(item).count()
    taken = await wf.WfStock(item).take()
    again = await wf.WfStock(item).count()
    return {"before": first["quantity"], "after": again["quantity"], "taken": taken}


async def broken_fn(wf: Any, params: Any) -> Any:
    await wf.WfStock({"sku": "A"}).count()
    await wf.WfStock({"sku": "Z"}).explode()


async def waiting_fn(wf: Any, params: Any) -> Any:
    event = await wf.wait_for("go", type="go", timeout="2 hours")
    return event


STOCK = Workflow("wf-stock", stock_fn, domains=[WfStock])
BROKEN = Workflow("wf-broken", broken_fn, domains=[WfStock])
WAITING = Workflow("wf-waiting", waiting_fn)

DB = mock_database({"stock": [{"sku": "A", "quantity": 3}]})


@pytest.fixture
def make() -> Iterator[Any]:
    made: list[TestWorkflow] = []

    def factory(workflow: Workflow, **kwargs: Any) -> TestWorkflow:
        wf = create_test_workflow(workflow, **kwargs)
        made.append(wf)
        return wf

    yield factory
    for wf in made:
        wf.close()


def test_run_returns_the_output_and_records_the_run(make: Any) -> None:
    wf = make(STOCK, db=DB, env={"REGION": "eu"})
    assert (wf.status, wf.output, wf.error, wf.timeline, wf.steps) == (None, None, None, [], [])
    out = wf.run({"sku": "A"})
    assert out == {"before": 3, "after": 2, "taken": {"taken": True, "region": "eu"}}
    assert (wf.status, wf.output, wf.error) == ("complete", out, None)
    assert wf.steps == ["WfStock.count", "WfStock.take"]  # one entry per path, first-call order
    assert wf.timeline[0]["kind"] == "workflow-start"
    assert wf.timeline[-1]["kind"] == "workflow-success"


def test_each_test_workflow_gets_a_fresh_database(make: Any) -> None:
    first = make(STOCK, db=DB)
    first.run({"sku": "A"})
    assert first.db.snapshot()["stock"][0]["quantity"] == 2
    second = make(STOCK, db=DB)
    assert second.run({"sku": "A"})["before"] == 3


def test_an_errored_instance_raises_workflow_failed(make: Any) -> None:
    wf = make(BROKEN, db=DB, seed=5)
    wf.modifier.disable_retry_delays()
    with pytest.raises(WorkflowFailed) as info:
        wf.run()
    failed = info.value
    assert isinstance(failed, AssertionError)
    assert failed.error == {"name": "ValueError", "message": "no such sku Z"}
    assert failed.seed == 5
    assert failed.timeline == wf.timeline
    text = str(failed)
    lines = text.splitlines()
    assert lines[0] == "ValueError: no such sku Z"
    assert "instance" in lines[1]
    # The failing step's path comes before the timeline, which may have cut it (a long run).
    assert lines[1].endswith(": errored at step WfStock.explode, attempt 2 (seed 5)")
    assert any("attempt-failure" in line and "attempt 2" in line for line in lines)
    assert lines[-1] == "reproduce with seed=5"
    assert (wf.status, wf.error) == ("errored", failed.error)
    assert wf.steps == ["WfStock.count", "WfStock.explode"]


def test_workflow_failed_says_where_the_handler_and_the_workflow_raised(make: Any) -> None:
    wf = make(BROKEN, db=DB)
    wf.modifier.disable_retry_delays()
    with pytest.raises(WorkflowFailed) as info:
        wf.run()
    here = __file__
    stack = info.value.stack
    assert stack is not None
    # The handler's frame with file:line and its code, then the workflow's await.
    raise_line = explode.__code__.co_firstlineno + 1
    await_line = broken_fn.__code__.co_firstlineno + 2
    assert f'File "{here}", line {raise_line}, in explode' in stack
    assert "raise ValueError(f\"no such sku {item['sku']}\")" in stack
    assert f'File "{here}", line {await_line}, in broken_fn' in stack
    assert stack.index("in explode") < stack.index("in broken_fn")
    assert "awf_sim" not in stack  # awf's own frames are trimmed
    assert stack in str(info.value)
    assert str(info.value).count("workflow-failure") == 1  # the timeline, once


def test_the_stack_sits_beside_the_stored_error_in_the_timeline(make: Any) -> None:
    wf = make(BROKEN, db=DB)
    wf.modifier.disable_retry_delays()
    with pytest.raises(WorkflowFailed):
        wf.run()
    failures = [e for e in wf.timeline if e["kind"] in ("attempt-failure", "workflow-failure")]
    assert failures
    for e in failures:
        assert e["error"] == {"name": "ValueError", "message": "no such sku Z"}  # unchanged
        assert f'File "{__file__}", line ' in e["stack"]
        assert " at 0x" not in e["stack"]  # no addresses: timelines stay byte-identical
    assert wf.error == {"name": "ValueError", "message": "no such sku Z"}


def test_a_timeline_with_stacks_is_byte_identical_for_the_same_seed(make: Any) -> None:
    dumps = []
    for _ in range(2):
        wf = make(BROKEN, db=DB, seed=3)
        with pytest.raises(WorkflowFailed):
            wf.run()
        dumps.append(json.dumps(wf.timeline, sort_keys=True))
    assert dumps[0] == dumps[1]
    assert '"stack"' in dumps[0]


def test_workflow_failed_survives_pickling(make: Any) -> None:
    wf = make(BROKEN, db=DB)
    wf.modifier.disable_retry_delays()
    with pytest.raises(WorkflowFailed) as info:
        wf.run()
    copy = pickle.loads(pickle.dumps(info.value))
    assert str(copy) == str(info.value)
    assert copy.error == info.value.error


def test_the_timeline_tail_is_shown_for_long_runs() -> None:
    timeline = [{"at_ms": i * 1000, "kind": "sleep-end", "path": "nap"} for i in range(40)]
    text = format_timeline(timeline)
    assert text.splitlines()[0] == "  ... 10 earlier entries"
    assert len(text.splitlines()) == 31
    assert text.splitlines()[-1].split() == ["39", "s", "sleep-end", "nap"]


def test_a_test_workflow_runs_once(make: Any) -> None:
    wf = make(STOCK, db=DB)
    wf.run({"sku": "A"})
    with pytest.raises(RuntimeError, match="already ran"):
        wf.run({"sku": "A"})


def test_run_always_reaches_a_terminal_status(make: Any) -> None:
    wf = make(WAITING)
    with pytest.raises(WorkflowFailed) as info:
        wf.run()
    assert info.value.error == {
        "name": "WorkflowTimeoutError",
        "message": "Execution timed out after 7200000ms",
    }
    assert wf.timeline[-1]["at_ms"] == 7_200_000


def test_send_event_before_run_is_buffered(make: Any) -> None:
    wf = make(WAITING)
    wf.send_event("go", {"n": 1})
    assert wf.run() == {"n": 1}
    with pytest.raises(InstanceError, match="can no longer receive events"):
        wf.send_event("go", {"n": 2})


@pytest.mark.parametrize("when", ["before start", "mock_event"])
def test_a_bad_event_is_refused_where_the_test_sends_it(make: Any, when: str) -> None:
    # Before start, send_event's errors named mock_event, and a payload over 1 MiB was
    # taken, then failed run() from deep inside the engine.
    wf = make(WAITING)
    send = wf.send_event if when == "before start" else wf.modifier.mock_event
    method = "send_event" if when == "before start" else "mock_event"
    with pytest.raises(DefinitionError) as bad_type:
        send("", {"n": 1})
    assert str(bad_type.value) == f"{method}: type must be a non-empty string, got ''"
    with pytest.raises(SerializationError, match=f"^{method} payload.n is not JSON"):
        send("go", {"n": object()})
    with pytest.raises(DefinitionError) as too_big:
        send("go", "x" * (1 << 20))
    assert str(too_big.value) == (
        f"{method}: the payload of event 'go' is 1,048,578 bytes of JSON, over Cloudflare's "
        "1 MiB limit for an event payload"
    )
    send("go", {"n": 3})  # nothing bad was buffered
    assert wf.run() == {"n": 3}


@pytest.mark.parametrize("db", [{"stock": [{"sku": "A", "quantity": 2}]}, "stock.sqlite"])
def test_a_db_that_is_not_a_database_is_refused_at_once(db: Any) -> None:
    # It used to be taken, then every ctx.db call failed, attempt after attempt, with
    # "AttributeError: 'dict' object has no attribute 'query_one'".
    hint = "; for tables of rows write db=mock_database({...})" if isinstance(db, dict) else ""
    for method, make_it in [
        ("create_test_workflow", lambda: create_test_workflow(STOCK, db=db)),
        ("create_test_context", lambda: create_test_context(db=db)),
    ]:
        with pytest.raises(DefinitionError) as refused:
            make_it()
        assert str(refused.value) == (
            f"{method}: db must be a Database (mock_database({{table: rows}}) or "
            "Database(schema, rows)) or an open database handle, got "
            f"{type(db).__name__}{hint}"
        )


@pytest.mark.parametrize("env", [["REGION"], "REGION=eu"])
def test_an_env_that_is_not_a_mapping_is_refused_by_name(env: Any) -> None:
    for method, make_it in [
        ("create_test_workflow", lambda: create_test_workflow(STOCK, env=env)),
        ("create_test_context", lambda: create_test_context(env=env)),
    ]:
        with pytest.raises(DefinitionError) as refused:
            make_it()
        assert str(refused.value) == (
            f"{method}: env must be a dict of names to values (what handlers read as "
            f"ctx.env), got {type(env).__name__}"
        )


def test_arun_runs_the_simulation_on_a_worker_thread(make: Any) -> None:
    wf = make(STOCK, db=DB)
    THREADS.clear()

    async def main() -> Any:
        return await wf.arun({"sku": "A"})

    assert asyncio.run(main())["after"] == 2
    assert THREADS
    assert threading.get_ident() not in THREADS


def test_arun_outside_asyncio_says_it_needs_asyncio(make: Any) -> None:
    wf = make(STOCK, db=DB)
    # Driven by hand, as trio or any loop other than asyncio drives a coroutine: no asyncio
    # loop is running. Before, asyncio.to_thread's own "no running event loop".
    coroutine = wf.arun({"sku": "A"})
    with pytest.raises(RuntimeError) as refused:
        coroutine.send(None)
    assert str(refused.value) == (
        "arun() needs a running asyncio loop (asyncio.run, pytest-asyncio, anyio's asyncio "
        "backend); under another loop such as trio, run the simulation on a worker thread "
        "yourself: await trio.to_thread.run_sync(test.run, params)"
    )
    assert wf.status is None  # nothing ran: run() can still be called
    assert wf.run({"sku": "A"})["after"] == 2


def fails_itself_fn(wf: Any, params: Any) -> Any:
    raise ValueError("no step failed")


async def fails_after_a_caught_step_fn(wf: Any, params: Any) -> Any:
    try:
        await wf.WfStock({"sku": "Z"}).explode()
    except Exception:
        raise KeyError("the workflow's own error") from None


@pytest.mark.parametrize(
    "fn",
    [fails_itself_fn, fails_after_a_caught_step_fn],
    ids=["no-step", "a-caught-step"],
)
def test_workflow_failed_names_no_step_when_the_workflow_itself_raised(make: Any, fn: Any) -> None:
    async def body(wf: Any, params: Any) -> Any:
        result = fn(wf, params)
        return await result if asyncio.iscoroutine(result) else result

    wf = make(Workflow(f"wf-own-{fn.__name__[:5]}", body, domains=[WfStock]), db=DB)
    wf.modifier.disable_retry_delays()
    with pytest.raises(WorkflowFailed) as info:
        wf.run()
    assert " at step " not in str(info.value).splitlines()[1]
    assert str(info.value).splitlines()[1].endswith(": errored (seed 0)")


async def ambient_fn(wf: Any, params: Any) -> Any:
    await wf.sleep("nap", "1 day")
    return await wf.do("look", lambda: {"roll": random.random(), "now": time.time()})


AMBIENT = Workflow("wf-ambient", ambient_fn)


def test_arun_sees_the_same_virtual_clock_and_randomness_as_run(make: Any) -> None:
    expected = make(AMBIENT, seed=9).run()

    async def main() -> Any:
        return await make(AMBIENT, seed=9).arun()

    assert asyncio.run(main()) == expected
    assert expected["now"] == 1_767_225_600 + 86_400  # 2026-01-01 + the day slept


async def rolls_fn(wf: Any, params: Any) -> Any:
    # Many steps, so that each run outlasts the interpreter's thread switch interval.
    return [await wf.do(f"roll-{i}", random.random) for i in range(300)]


ROLLS = Workflow("wf-rolls", rolls_fn)


def test_gathered_aruns_with_the_same_seed_give_the_same_run(make: Any) -> None:
    # Module-level random is one process-wide state: two simulations on two worker threads
    # at once drew from each other's sequence, so the same seed gave different rolls.
    async def main() -> list[Any]:
        return await asyncio.gather(*(make(ROLLS, seed=n % 2).arun() for n in range(4)))

    first, second, again_first, again_second = asyncio.run(main())
    assert first == again_first == make(ROLLS, seed=0).run()
    assert second == again_second
    assert first != second


def test_the_same_seed_gives_the_same_run(make: Any) -> None:
    runs = []
    for seed in (1, 1, 2):
        wf = make(STOCK, db=DB, seed=seed)
        wf.run({"sku": "A"})
        assert wf.instance is not None
        runs.append((wf.instance.id, wf.timeline))
    assert runs[0] == runs[1]
    assert runs[0][0] != runs[2][0]


def test_close_keeps_the_results_and_is_idempotent(make: Any) -> None:
    wf = make(STOCK, db=DB)
    wf.run({"sku": "A"})
    timeline = wf.timeline
    wf.close()
    wf.close()
    assert wf.closed
    assert wf.timeline == timeline
    assert wf.status == "complete"
    with create_test_workflow(STOCK, db=DB) as other:
        other.run({"sku": "A"})
    assert other.closed


def test_a_test_workflow_refuses_what_it_cannot_run() -> None:
    with pytest.raises(ValueError, match="cannot run"):
        create_test_workflow(lambda wf, p: None)


def test_camel_case_names() -> None:
    assert createTestWorkflow is create_test_workflow
    assert createTestContext is create_test_context
    assert TestWorkflow.__test__ is False  # pytest does not collect it


def test_repr(make: Any) -> None:
    assert repr(make(STOCK)) == "<TestWorkflow wf-stock status=None seed=0>"


# -- ai= and http= ---------------------------------------------------------------------------------


def test_create_test_context_gives_handlers_ai_and_http() -> None:
    import httpx

    from awf_sim.sdk._ai import RecordedAI

    async def handler(context: Any, args: Any, ctx: Any) -> Any:
        answer = await ctx.ai.generate(prompt="hello")
        reply = await ctx.http.get("https://api.example.com/ping")
        return [answer, reply.json()]

    ctx = create_test_context(
        ai=RecordedAI({"hello": "hi"}),
        http=lambda request: httpx.Response(200, json={"pong": True}),
    )
    assert asyncio.run(handler(None, {}, ctx)) == ["hi", {"pong": True}]
    default = create_test_context()  # deterministic AI; HTTP with no mock refuses to go out
    assert isinstance(asyncio.run(default.ai.generate(prompt="x")), str)


# -- create_test_context -------------------------------------------------------------------------


def test_create_test_context_for_a_unit_test_of_one_handler() -> None:
    ctx = create_test_context(db=DB, env={"REGION": "us"})
    assert asyncio.run(WfStock.count({"sku": "A"}, {}, ctx)) == {"sku": "A", "quantity": 3}
    assert asyncio.run(WfStock.take({"sku": "A"}, {}, ctx)) == {"taken": True, "region": "us"}
    assert asyncio.run(WfStock.count({"sku": "A"}, {}, ctx))["quantity"] == 2
    assert ctx.step == {"name": "test", "path": "test", "count": 1}
    assert ctx.attempt == 1
    assert ctx.idempotency_key == create_test_context().idempotency_key


def test_create_test_context_accepts_an_open_handle_and_no_db() -> None:
    handle = Database("CREATE TABLE stock (sku TEXT, quantity INTEGER)").connect()
    try:
        ctx = create_test_context(db=handle)
        assert ctx.db is handle
    finally:
        handle.close()
    with pytest.raises(AttributeError, match="no database is configured"):
        _ = create_test_context().db
    assert create_test_context().env == {}


# -- import weight -------------------------------------------------------------------------------


def test_imports_stay_light() -> None:
    code = (
        "import sys, awf_sim\n"
        "assert 'awf_sim.testing' not in sys.modules\n"
        "import awf_sim.testing\n"
        "loaded = [m for m in ('awf_sim.testing._plugin', 'hypothesis', 'rich', 'pytest') "
        "if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_synchronous_test_reads_the_database_without_await(make: Any) -> None:
    wf = make(STOCK, db=DB)
    wf.run({"sku": "A"})
    # The run took one: the handlers' database, read back synchronously.
    assert wf.query("SELECT quantity FROM stock WHERE sku = ?", ["A"]) == [{"quantity": 2}]
    assert wf.db.rows("SELECT count(*) AS n FROM stock") == [{"n": 1}]
