"""The DSL running on the engine: pipelines, chains, state, events, determinism, step API."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import random
import time
from typing import Any

import pytest

from awf_sim import Domain, Simulator, Workflow, mock_database, step_id


@pytest.fixture
def shop() -> dict[str, Any]:
    calls: list[tuple[str, Any, Any]] = []

    async def check(product: Any, args: Any, ctx: Any) -> Any:
        calls.append(("check", product, args))
        row = await ctx.db.query_one(
            "SELECT quantity FROM inventory WHERE sku = ?", [product["sku"]]
        )
        return {"available": row["quantity"] > 0, "quantity": row["quantity"]}

    def reserve(product: Any, args: Any, ctx: Any) -> Any:  # sync handlers work too
        calls.append(("reserve", product, args))
        return {"sku": product["sku"], "quantity": args["quantity"], "attempt": ctx.attempt}

    inventory = Domain("ShopInventory", {"check": check, "reserve": reserve})

    order = Domain("ShopOrder")

    @order.method
    def validate(o: Any, args: Any, ctx: Any) -> Any:
        return {**o, "valid": True}

    @order.method(retries={"limit": 1, "delay": "1 second"})
    def enrich(o: Any, args: Any, ctx: Any) -> Any:
        return {**o, "enriched": args.get("level", 0)}

    @order.method
    async def process(o: Any, args: Any, ctx: Any) -> Any:
        return {**o, "processed": True}

    return {"calls": calls, "inventory": inventory, "order": order}


def db() -> Any:
    return mock_database({"inventory": [{"sku": "ABC", "quantity": 3}]})


def test_pipeline_step_name_is_path_at_hashed_id(make_sim: Any, shop: dict[str, Any]) -> None:
    @Workflow("pipeline-names", domains=[shop["inventory"]])
    async def flow(wf: Any, order: Any) -> Any:
        a = await wf.ShopInventory(order["product"]).check()
        b = await wf.ShopInventory(order["product"]).reserve({"quantity": 2})
        c = await wf.ShopInventory(order["product"]).reserve(quantity=2)
        return [a, b, c]

    sim = make_sim(db=db())
    inst = sim.create(flow, {"product": {"sku": "ABC"}})
    sim.run()
    out = inst.status()["output"]
    assert out[0] == {"available": True, "quantity": 3}
    assert out[1] == out[2]  # both argument forms are the same call
    starts = [e for e in inst.timeline if e["kind"] == "step-start"]
    sid = step_id(["ShopInventory", "reserve"], {"sku": "ABC"}, {"quantity": 2})
    assert [e["path"] for e in starts] == ["ShopInventory.check", "ShopInventory.reserve"] * 1 + [
        "ShopInventory.reserve"
    ]
    assert starts[1]["name"] == f"ShopInventory.reserve@{sid}"
    # the same step twice on purpose runs twice: occurrence 2 of that name
    assert starts[2]["name"] == starts[1]["name"]
    assert [c[0] for c in shop["calls"]] == ["check", "reserve", "reserve"]


def test_chain_is_one_step_each_handler_on_the_previous_result(
    make_sim: Any, shop: dict[str, Any]
) -> None:
    @Workflow("chain", domains=[shop["order"]])
    async def flow(wf: Any, order: Any) -> Any:
        return await wf.ShopOrder(order).validate().enrich(level=2).process()

    sim = make_sim()
    inst = sim.create(flow, {"id": "o-1"})
    sim.run()
    assert inst.status()["output"] == {"id": "o-1", "valid": True, "enriched": 2, "processed": True}
    starts = [e for e in inst.timeline if e["kind"] == "step-start"]
    assert len(starts) == 1
    assert starts[0]["path"] == "ShopOrder.validate.enrich.process"
    sid = step_id(
        ["ShopOrder", "validate", "enrich", "process"], {"id": "o-1"}, [{}, {"level": 2}, {}]
    )
    assert starts[0]["name"] == f"ShopOrder.validate.enrich.process@{sid}"


def test_unknown_domain_or_method_fails_before_any_step(
    make_sim: Any, shop: dict[str, Any]
) -> None:
    @Workflow("typo-domain", domains=[shop["inventory"]])
    async def bad_domain(wf: Any, order: Any) -> Any:
        return await wf.Inventroy(order).check()

    @Workflow("typo-method", domains=[shop["inventory"]])
    async def bad_method(wf: Any, order: Any) -> Any:
        return await wf.ShopInventory(order).chek()

    sim = make_sim()
    a = sim.create(bad_domain, {})
    b = sim.create(bad_method, {})
    sim.run()
    assert a.status()["error"]["name"] == "DefinitionError"
    assert "unknown domain 'Inventroy'" in a.status()["error"]["message"]
    assert "ShopInventory" in a.status()["error"]["message"]
    assert "no method 'chek'" in b.status()["error"]["message"]
    assert "check, reserve" in b.status()["error"]["message"]
    assert not any(e["kind"] == "step-start" for e in a.timeline + b.timeline)


def test_handler_gets_json_copies_and_cannot_change_workflow_state(make_sim: Any) -> None:
    def mutate(context: Any, args: Any, ctx: Any) -> Any:
        context["items"].append("handler")
        args["x"] = "changed"
        return None

    dom = Domain("Mutator", {"mutate": mutate})

    @Workflow("isolation", domains=[dom])
    async def flow(wf: Any, _: Any) -> Any:
        order = {"items": ["a"]}
        args = {"x": 1}
        await wf.Mutator(order).mutate(args)
        return [order, args]

    sim = make_sim()
    inst = sim.create(flow)
    sim.run()
    assert inst.status()["output"] == [{"items": ["a"]}, {"x": 1}]


def test_ctx_step_attempt_env_and_idempotency_key(make_sim: Any) -> None:
    seen: list[dict[str, Any]] = []

    def record(context: Any, args: Any, ctx: Any) -> Any:
        seen.append(
            {
                "step": dict(ctx.step),
                "attempt": ctx.attempt,
                "env": ctx.env["REGION"],
                "key": ctx.idempotency_key,
            }
        )
        if ctx.attempt == 1:
            raise RuntimeError("first attempt fails")
        return ctx.idempotency_key

    dom = Domain("Recorder", {"record": {"handler": record, "retries": {"limit": 2, "delay": 0}}})

    @Workflow("ctx", domains=[dom])
    async def flow(wf: Any, _: Any) -> Any:
        a = await wf.Recorder("x").record()
        b = await wf.Recorder("y").record()
        return [a, b]

    sim = make_sim(env={"REGION": "eu"})
    inst = sim.create(flow, id="inst-1")
    sim.run()
    a, b = inst.status()["output"]
    assert a != b  # different steps, different keys
    assert [s["attempt"] for s in seen] == [1, 2, 1, 2]
    assert seen[0]["key"] == seen[1]["key"] == a  # stable across attempts
    assert seen[0]["env"] == "eu"
    assert seen[0]["step"]["path"] == "Recorder.record"
    assert seen[0]["step"]["count"] == 1


def test_state_updates_are_steps_and_replay_returns_stored_values(make_sim: Any) -> None:
    dom = Domain("StateItems", {"process": lambda item, args, ctx: {"value": item * 10}})

    @Workflow("complex", domains=[dom])
    async def flow(wf: Any, data: Any) -> Any:
        state = wf.state({"items": [], "total": 0})
        for item in data["items"]:
            processed = await wf.StateItems(item).process()
            await state.update(
                {
                    "items": [*state.current["items"], processed],
                    "total": state.current["total"] + processed["value"],
                }
            )
            await wf.sleep(f"pause-{item}", "1 minute")
        return state.current

    sim = make_sim()
    inst = sim.create(flow, {"items": [1, 2, 3]})
    sim.advance("90 seconds")
    sim.crash()
    sim.recover()
    sim.run()
    assert inst.status()["output"] == {
        "items": [{"value": 10}, {"value": 20}, {"value": 30}],
        "total": 60,
    }
    updates = [
        e for e in inst.timeline if e["kind"] == "checkpoint" and e["path"] == "state.update"
    ]
    assert len(updates) == 3


@Workflow("state-read-as-dict")
async def _state_read_as_dict(wf: Any, params: Any) -> Any:
    state = wf.state({"total": 0})
    return state["total"] + 1


@Workflow("state-set-as-dict")
async def _state_set_as_dict(wf: Any, params: Any) -> Any:
    state = wf.state({"total": 0})
    state["total"] = 1


@pytest.mark.parametrize(
    ("flow", "said"),
    [
        (_state_read_as_dict, "read state.current['total']"),
        (_state_set_as_dict, "changed only by `await state.update(new_value)`"),
    ],
)
def test_state_used_as_a_dict_says_how_it_is_read_and_changed(
    make_sim: Any, flow: Any, said: str
) -> None:
    # It failed with Python's "'State' object is not subscriptable", which names no fix.
    sim = make_sim()
    inst = sim.create(flow, {})
    sim.run()
    status = inst.status()
    assert status["status"] == "errored"
    assert status["error"]["name"] == "TypeError"
    assert said in status["error"]["message"]


def test_wf_event_and_instance_id(make_sim: Any) -> None:
    @Workflow("meta")
    async def flow(wf: Any, params: Any) -> Any:
        return {
            "id": wf.instance_id,
            "payload": wf.event["payload"],
            "name": wf.event["workflowName"],
            "ts": wf.event["timestamp"].isoformat(),
        }

    sim = make_sim()
    inst = sim.create(flow, {"a": 1}, id="meta-1")
    sim.run()
    assert inst.status()["output"] == {
        "id": "meta-1",
        "payload": {"a": 1},
        "name": "meta",
        "ts": "2026-01-01T00:00:00+00:00",
    }


def test_parallel_steps_with_gather(make_sim: Any) -> None:
    async def slow(n: int) -> int:
        await asyncio.sleep(n)
        return n

    @Workflow("parallel")
    async def flow(wf: Any, _: Any) -> Any:
        return await asyncio.gather(
            wf.do("three", lambda: slow(3)),
            wf.do("one", lambda: slow(1)),
            wf.do("two", lambda: slow(2)),
        )

    sim = make_sim()
    inst = sim.create(flow)
    sim.run()
    assert inst.status()["output"] == [3, 1, 2]
    done = [(e["path"], e["at_ms"]) for e in inst.timeline if e["kind"] == "checkpoint"]
    assert done == [("one", 1000), ("two", 2000), ("three", 3000)]


def _timeline_json(seed: int) -> str:
    async def jitter() -> float:
        await asyncio.sleep(random.random())
        if random.random() < 0.5:
            raise RuntimeError("coin")
        return random.random()

    @Workflow("determinism")
    async def flow(wf: Any, _: Any) -> Any:
        values = await asyncio.gather(
            *(wf.do(f"j{i}", jitter, retries={"limit": 8, "delay": 10}) for i in range(4))
        )
        await wf.sleep("nap", "1 day")
        return values

    with Simulator(seed=seed) as sim:
        inst = sim.create(flow)
        sim.run()
        return json.dumps({"status": inst.status(), "timeline": inst.timeline, "id": inst.id})


def test_same_seed_same_input_gives_byte_identical_timeline() -> None:
    assert _timeline_json(42) == _timeline_json(42)
    assert _timeline_json(42) != _timeline_json(43)


def test_module_random_is_seeded_inside_and_restored_outside(make_sim: Any) -> None:
    @Workflow("rand")
    async def flow(wf: Any, _: Any) -> Any:
        return await wf.do("draw", lambda: random.random())

    random.seed(123)
    before = random.random()
    random.seed(123)
    a, b = make_sim(seed=5), make_sim(seed=5)
    ia, ib = a.create(flow), b.create(flow)
    a.run()
    b.run()
    assert ia.status()["output"] == ib.status()["output"]
    assert random.random() == before  # the caller's random state was restored


def test_a_year_long_sleep_takes_well_under_a_second(make_sim: Any) -> None:
    @Workflow("year")
    async def flow(wf: Any, _: Any) -> Any:
        await wf.sleep("long", "365 days")
        return dt.datetime.now(dt.UTC).year

    sim = make_sim()
    inst = sim.create(flow)
    t0 = time.perf_counter()
    sim.run()
    assert time.perf_counter() - t0 < 0.5
    assert inst.status()["output"] == 2027
    assert sim.now_ms == 365 * 86_400_000


def test_network_access_inside_a_simulation_is_refused(make_sim: Any) -> None:
    import socket

    def connect() -> None:
        socket.create_connection(("127.0.0.1", 9), timeout=1)

    @Workflow("network")
    async def flow(wf: Any, _: Any) -> Any:
        return await wf.do("call", connect, retries={"limit": 0, "delay": 0})

    sim = make_sim()
    inst = sim.create(flow)
    sim.run()
    err = inst.status()["error"]
    assert err["name"] == "NetworkAccessRefused"
    assert "ctx.http" in err["message"]


# -- Cloudflare's Python step API -----------------------------------------------------------


class CloudflareStyle:
    """Written for Cloudflare: `run(self, event, step)` with step.do as a decorator."""

    async def run(self, event: Any, step: Any) -> Any:
        @step.do()
        async def base_value() -> int:
            return int(event["payload"]["base"])

        @step.do(
            concurrent=True, config={"retries": {"limit": 1, "delay": 0, "backoff": "constant"}}
        )
        async def derived(base_value: int, ctx: Any) -> Any:
            if ctx["attempt"] == 1:
                raise RuntimeError("flaky")
            return {"value": base_value + 5, "attempt": ctx["attempt"], "step": ctx["step"]}

        await step.sleep("nap", "10 seconds")
        approval = await step.wait_for_event("await-approval", "approval", timeout="1 hour")
        result = await derived()
        return {"result": result, "approved_by": approval["payload"]["by"]}


def test_cloudflare_python_step_api_runs_unchanged(make_sim: Any) -> None:
    sim = make_sim()
    inst = sim.create(CloudflareStyle, {"base": 10})
    inst.send_event("approval", {"by": "ana"})
    sim.run()
    assert inst.status()["output"] == {
        "result": {"value": 15, "attempt": 2, "step": {"name": "derived", "count": 1}},
        "approved_by": "ana",
    }
    paths = [e["path"] for e in inst.timeline if e["kind"] == "checkpoint"]
    assert paths == ["base_value", "derived"]


def test_a_handler_waiting_on_a_thread_keeps_virtual_time_still(make_sim: Any) -> None:
    """DESIGN §9: time must not jump to the next timer while real work runs in a thread."""

    async def blocking() -> float:
        await asyncio.to_thread(time.sleep, 0.05)
        return time.time()  # virtual wall time, read inside the simulation

    async def flow(wf: Any, _: Any) -> Any:
        started = time.time()
        sleeper = asyncio.ensure_future(wf.sleep("later", "1 hour"))  # a timer to jump to
        done = await wf.do("threaded", blocking)
        await sleeper
        return done - started

    sim = make_sim()
    inst = sim.create(Workflow("threaded", flow))
    sim.run()
    assert inst.status()["output"] == 0.0
    checkpoint = next(e for e in inst.timeline if e["kind"] == "checkpoint")
    assert checkpoint["at_ms"] == 0


def test_handlers_that_never_suspend_cost_no_task(make_sim: Any) -> None:
    """The fast path: only the instance's main task exists for non-suspending handlers."""
    dom = Domain("NoTask", {"go": lambda c, a, x: c + 1})

    @Workflow("no-task", domains=[dom])
    async def flow(wf: Any, n: Any) -> Any:
        for _ in range(5):
            n = await wf.NoTask(n).go()
        return n

    sim = make_sim()
    created: list[Any] = []
    original = sim._loop.create_task

    def counting(coro: Any, **kwargs: Any) -> Any:
        created.append(coro)
        return original(coro, **kwargs)

    sim._loop.create_task = counting
    inst = sim.create(flow, 0)
    sim.run()
    assert inst.status()["output"] == 5
    assert len(created) == 1


def test_running_inside_an_event_loop_says_what_to_do_instead(make_sim: Any) -> None:
    sim = make_sim()
    sim.create(Workflow("in-loop", lambda wf, p: 1))

    async def from_async_code() -> None:
        sim.run()

    with pytest.raises(RuntimeError, match=r"asyncio.to_thread\(sim.run\)"):
        asyncio.run(from_async_code())

    async def in_a_thread() -> None:
        await asyncio.to_thread(sim.run)

    asyncio.run(in_a_thread())  # the suggested way works
