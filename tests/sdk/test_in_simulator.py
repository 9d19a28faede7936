"""The handler SDK wired into the engine: ctx.ai, ctx.http, effects, keys and isolation."""

from __future__ import annotations

import asyncio
import contextvars
import json
import sys
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
import respx

from awf_sim import Domain, Simulator, Workflow, mock_database
from awf_sim.engine import Limits
from awf_sim.engine._hooks import Crash, Hooks, StepRef
from awf_sim.flow import load_flow
from awf_sim.sdk._ai import RecordedAI
from awf_sim.sdk._effects import current_step
from awf_sim.testing import create_test_workflow

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_ctx_ai_default_is_deterministic_and_schema_valid() -> None:
    schema = {
        "type": "object",
        "required": ["score", "tags"],
        "properties": {
            "score": {"type": "integer", "minimum": 1, "maximum": 10},
            "tags": {"type": "array", "items": {"enum": ["a", "b"]}, "minItems": 1},
        },
    }

    async def rate(item: Any, args: Any, ctx: Any) -> Any:
        return await ctx.ai.generate(system="rate", prompt=f"rate {item}", schema=schema)

    dom = Domain("Rater", {"rate": rate})
    flow = Workflow("rate", lambda wf, p: wf.Rater(p["item"]).rate(), domains=[dom])

    def run(seed: int) -> Any:
        with Simulator(seed=seed) as sim:
            inst = sim.create(flow, {"item": "x"})
            sim.run()
            assert sim.effects.effects[0].kind == "ai"
            assert sim.effects.effects[0].step == "Rater.rate#1"
            return inst.status()["output"]

    first = run(1)
    jsonschema.validate(first, schema)
    assert run(1) == first


def test_ctx_ai_recorded_answers() -> None:
    async def summarise(doc: Any, args: Any, ctx: Any) -> Any:
        return await ctx.ai.generate(prompt=f"summarise {doc}")

    dom = Domain("Summary", {"summarise": summarise})
    flow = Workflow("summarise", lambda wf, p: wf.Summary(p).summarise(), domains=[dom])
    with Simulator(ai=RecordedAI({"summarise report": "short"})) as sim:
        inst = sim.create(flow, "report")
        sim.run()
        assert inst.status()["output"] == "short"


def test_ctx_http_goes_to_the_mock_and_is_recorded_with_its_key() -> None:
    router = respx.Router()
    route = router.post("https://api.example.com/charges").mock(
        return_value=httpx.Response(200, json={"id": "ch_1"})
    )

    async def pay(order: Any, args: Any, ctx: Any) -> Any:
        r = await ctx.http.post(
            "https://api.example.com/charges",
            json={"amount": args["amount"]},
            headers={"Idempotency-Key": ctx.idempotency_key},
        )
        return r.json()

    dom = Domain("Pay", {"pay": pay})
    flow = Workflow("pay", lambda wf, p: wf.Pay(p).pay(amount=5), domains=[dom])
    with Simulator(http=router) as sim:
        inst = sim.create(flow, {"id": "o-1"})
        sim.run()
        assert inst.status()["output"] == {"id": "ch_1"}
        assert route.call_count == 1
        sent = route.calls[0].request
        assert len(sent.headers["Idempotency-Key"]) == 32
        summaries = sim.effects.summaries()
        assert len(summaries) == 1
        assert summaries[0].startswith("POST https://api.example.com/charges")


def test_unmocked_request_fails_the_attempt_naming_method_and_url() -> None:
    async def call(ctx_: Any, args: Any, ctx: Any) -> Any:
        return (await ctx.http.get("https://nowhere.example.com/x")).status_code

    dom = Domain("Caller", {"call": {"handler": call, "retries": {"limit": 0, "delay": 0}}})
    flow = Workflow("unmocked", lambda wf, p: wf.Caller(p).call(), domains=[dom])
    with Simulator() as sim:
        inst = sim.create(flow, {})
        sim.run()
        err = inst.status()["error"]
    assert err["name"] == "UnmockedRequest"
    assert "GET https://nowhere.example.com/x" in err["message"]


class CrashAfterEffect(Hooks):
    def __init__(self, path: str) -> None:
        self.path, self.done = path, False

    def after_effect(self, iid: str, ref: StepRef, attempt: int) -> Any:
        if ref.path == self.path and not self.done:
            self.done = True
            return Crash("crash-after-effect")
        return None


def test_idempotency_key_makes_a_replayed_charge_safe() -> None:
    """A crash after the charge, before its checkpoint: the step runs again with the same
    key, and the provider charges once."""
    flow = load_flow(EXAMPLES / "payment.py")
    provider = type(flow.http)()
    with Simulator(http=provider, hooks=CrashAfterEffect("ExternalPayment.charge")) as sim:
        inst = sim.create(
            flow.workflows["external-payment"], {"id": "o-1", "total": 5, "token": "t"}
        )
        sim.run()
        assert inst.status()["output"] == {"status": "paid", "chargeId": "ch_0001"}
        assert len(sim.effects.summaries()) == 2  # the request was sent twice...
        assert len(provider.charges) == 1  # ...and charged once
        keys = {e.detail["headers"]["idempotency-key"] for e in sim.effects.effects}
        assert len(keys) == 1


def test_idempotency_keys_differ_between_steps_and_instances() -> None:
    async def key(c: Any, a: Any, ctx: Any) -> Any:
        return ctx.idempotency_key

    dom = Domain("Keys", {"key": key})

    async def body(wf: Any, p: Any) -> Any:
        return [await wf.Keys("a").key(), await wf.Keys("b").key(), await wf.Keys("a").key()]

    flow = Workflow("keys", body, domains=[dom])
    with Simulator() as sim:
        one, two = sim.create(flow, id="i-1"), sim.create(flow, id="i-2")
        sim.run()
        a1, b1, a1_again = one.status()["output"]
        a2 = two.status()["output"][0]
    assert len({a1, b1, a1_again, a2}) == 4  # the repeat of a step is another occurrence


def test_create_test_workflow_passes_http_and_ai_through() -> None:
    flow = load_flow(EXAMPLES / "payment.py")
    wf = create_test_workflow(flow.workflows["external-payment"], http=type(flow.http)())
    try:
        assert wf.run({"id": "o-7", "total": 1, "token": "tok_visa"})["status"] == "paid"
    finally:
        wf.close()


def test_roadmap_example_prioritises_with_a_schema_and_stores_the_prd() -> None:
    flow = load_flow(EXAMPLES / "roadmap.py")
    with Simulator(db=flow.database) as sim:
        inst = sim.create(flow.workflows["roadmap"], flow.workflows["roadmap"].examples[0])
        sim.run()
        out = inst.status()["output"]
        assert out["top"] in {"B-1", "B-2"}  # only open backlog items can be ranked
        docs = sim.db.snapshot()["documents"]
        assert [d["feature_id"] for d in docs] == [out["top"]]
        assert [e.kind for e in sim.effects.effects] == ["ai", "ai"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="process isolation needs Linux")
class TestProcessIsolation:
    def flow(self, handler: Any, retries: int = 1) -> Workflow:
        dom = Domain(
            "Isolated", {"go": {"handler": handler, "retries": {"limit": retries, "delay": 0}}}
        )
        return Workflow("isolated", lambda wf, p: wf.Isolated(p).go(), domains=[dom])

    def run(self, flow: Workflow, limits: Limits, db: Any = None) -> tuple[Any, Any]:
        with Simulator(isolation="process", limits=limits, db=db) as sim:
            inst = sim.create(flow, {"n": 1})
            sim.run()
            snapshot = sim.db.snapshot() if db is not None else None
            return inst, (inst.status(), inst.timeline, snapshot)

    def test_db_writes_in_the_child_reach_the_database(self) -> None:
        async def write(c: Any, a: Any, ctx: Any) -> Any:
            await ctx.db.insert("log", {"n": c["n"]})
            return (await ctx.db.query_one("SELECT count(*) AS n FROM log"))["n"]

        db = mock_database({"log": [{"n": 0}]})
        _, (status, _, snapshot) = self.run(self.flow(write), Limits(cpu_seconds=5), db)
        assert status["output"] == 2
        assert [r["n"] for r in snapshot["log"]] == [0, 1]

    def test_cpu_limit_fails_the_attempt_naming_the_limit_and_is_retried(self) -> None:
        async def spin(c: Any, a: Any, ctx: Any) -> Any:
            if ctx.attempt == 1:
                while True:
                    pass
            return "second attempt"

        _, (status, timeline, _) = self.run(self.flow(spin), Limits(cpu_seconds=1))
        assert status["output"] == "second attempt"
        failure = next(e for e in timeline if e["kind"] == "attempt-failure")
        assert "CPU-time limit" in failure["error"]["message"]

    def test_memory_limit_fails_the_attempt_naming_the_limit(self) -> None:
        async def hog(c: Any, a: Any, ctx: Any) -> Any:
            return len(bytearray(2_000_000_000))

        _, (status, _, _) = self.run(self.flow(hog, retries=0), Limits(memory_mb=100))
        assert status["status"] == "errored"
        assert "memory limit" in status["error"]["message"]

    def test_no_network_in_the_child(self) -> None:
        async def connect(c: Any, a: Any, ctx: Any) -> Any:
            import socket

            socket.create_connection(("127.0.0.1", 9), timeout=1)

        _, (status, _, _) = self.run(self.flow(connect, retries=0), Limits())
        assert status["status"] == "errored"
        assert "network" in json.dumps(status["error"]).lower()


def test_gathered_steps_each_own_their_writes_and_calls() -> None:
    # Two steps run at once (asyncio.gather) and interleave at every await. Each write and
    # each request must be recorded under the step that made it, never under whichever step
    # touched a shared handle last: chaos's effect invariants judge steps by these labels.
    router = respx.Router()
    router.post("https://api.example.com/notify").mock(return_value=httpx.Response(200))

    async def work(who: str, ctx: Any) -> str:
        db = ctx.db
        await db.insert("log", {"who": who, "n": 1})
        await asyncio.sleep(0)  # the other step runs here
        http = ctx.http
        await db.insert("log", {"who": who, "n": 2})
        await asyncio.sleep(0)
        await http.post("https://api.example.com/notify", json={"who": who})
        await asyncio.sleep(0)
        await db.insert("log", {"who": who, "n": 3})
        return who

    async def reserve(item: Any, args: Any, ctx: Any) -> Any:
        return await work("stock", ctx)

    async def record(item: Any, args: Any, ctx: Any) -> Any:
        return await work("ledger", ctx)

    stock = Domain("Stock", {"reserve": reserve})
    ledger = Domain("Ledger", {"record": record})

    async def both(wf: Any, p: Any) -> Any:
        return await asyncio.gather(wf.Stock(p).reserve(), wf.Ledger(p).record())

    flow = Workflow("both", both, domains=[stock, ledger])
    label = {"stock": "Stock.reserve#1", "ledger": "Ledger.record#1"}
    db = mock_database({"log": [{"id": 0, "who": "seed", "n": 0}]})
    with Simulator(db=db, http=router) as sim:
        inst = sim.create(flow, {"id": "o-1"})
        sim.run()
        assert inst.status()["output"] == ["stock", "ledger"]
        writes = [(w.row["who"], w.row["n"], w.step) for w in sim.db.writes]
        assert len(writes) == 6
        assert all(step == label[who] for who, _n, step in writes), writes
        effects = sim.effects.effects
        assert len(effects) == 2
        for effect in effects:
            who = "stock" if '"stock"' in effect.summary else "ledger"
            assert effect.step == label[who], effect


_SPAN: contextvars.ContextVar[str | None] = contextvars.ContextVar("test_span", default=None)


def test_a_handler_context_variable_survives_its_own_suspension() -> None:
    # What a tracing span or a logging context does: set a context variable, await something
    # real, read it, and reset it with its token. The handler's code runs in one context from
    # its first line to its last, so the reset meets the context the token came from; and the
    # workflow body, after the step, sees neither the span nor the step's label.
    seen: list[Any] = []

    async def traced(item: Any, args: Any, ctx: Any) -> Any:
        token = _SPAN.set(f"span-{item}")
        await asyncio.sleep(0)  # suspends: the rest runs in a task of its own
        seen.append((_SPAN.get(), current_step.get()))
        _SPAN.reset(token)  # ValueError if this ran in another context than the set
        return {"ok": item}

    async def quick(item: Any, args: Any, ctx: Any) -> Any:
        _SPAN.set("leaked?")  # set and never reset, without suspending
        return {"ok": item}

    tracer = Domain("Tracer", {"traced": traced, "quick": quick})

    async def body(wf: Any, p: Any) -> Any:
        first = await wf.Tracer("a").traced()
        await wf.Tracer("b").quick()
        return [first, _SPAN.get(), current_step.get()]

    flow = Workflow("traced", body, domains=[tracer])
    with Simulator() as sim:
        inst = sim.create(flow, {})
        sim.run()
        assert inst.status()["status"] == "complete", inst.status()
        assert inst.status()["output"] == [{"ok": "a"}, None, None]
    assert seen == [("span-a", "Tracer.traced#1")]
