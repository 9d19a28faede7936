"""Each invariant: a workflow built to break it is caught under the stable name; a correct
workflow under the same faults is clean."""

from __future__ import annotations

import asyncio
import itertools
import random
from typing import Any

import httpx
import pytest

from awf_sim import (
    Database,
    Domain,
    DurabilityViolation,
    StepError,
    Workflow,
    assert_durable,
)
from awf_sim.chaos import INVARIANTS, Target, build_baseline, run_plan

DB = Database(schema="CREATE TABLE t (k TEXT PRIMARY KEY, n INTEGER NOT NULL DEFAULT 0);")


def broken(workflow: Workflow, plan: list[dict[str, Any]], **kwargs: Any) -> DurabilityViolation:
    with pytest.raises(DurabilityViolation) as info:
        assert_durable(workflow, {"id": "x"}, plan, **kwargs)
    return info.value


def test_invariant_names_are_stable() -> None:
    assert INVARIANTS == (
        "baseline-outcome",
        "replay-equivalence",
        "checkpoint-once",
        "idempotent-effects",
        "determinism",
        "retry-policy",
        "serializable",
        "events-delivered",
        "no-stuck-instance",
    )


# -- replay-equivalence ----------------------------------------------------------------------


async def attempt_number(_c: Any, _a: Any, ctx: Any) -> dict[str, Any]:
    return {"attempt": ctx.attempt}


async def constant(_c: Any, _a: Any, ctx: Any) -> dict[str, Any]:
    return {"ok": True}


IvReq = Domain("IvReq", {"attempt": attempt_number, "constant": constant})


@Workflow("iv-req-broken", domains=[IvReq])
async def req_broken(wf: Any, p: Any) -> Any:
    return await wf.IvReq(p).attempt()


@Workflow("iv-req-ok", domains=[IvReq])
async def req_ok(wf: Any, p: Any) -> Any:
    return await wf.IvReq(p).constant()


def test_replay_equivalence() -> None:
    plan = [{"kind": "transient-error", "step": "IvReq.*"}]
    err = broken(req_broken, plan)
    assert err.invariants == ["replay-equivalence"]
    assert "output.attempt: expected 1, got 2" in str(err)
    assert_durable(req_ok, {"id": "x"}, plan)


# -- checkpoint-once and determinism: arguments computed outside steps -----------------------

_counter = itertools.count()


async def note(_c: Any, args: Any, ctx: Any) -> dict[str, Any]:
    return {"noted": args["n"]}


IvNote = Domain("IvNote", {"note": note})


@Workflow("iv-counter", domains=[IvNote])
async def counter(wf: Any, p: Any) -> Any:
    n = next(_counter)  # module state: a replay sees another value
    return await wf.IvNote(p).note(n=n)


@Workflow("iv-random", domains=[IvNote])
async def rolls_dice(wf: Any, p: Any) -> Any:
    if random.random() < 2:  # always true: only the argument differs between lifetimes
        await wf.IvNote(p).note(n=random.randint(0, 10**9))
    return "done"


@Workflow("iv-deterministic", domains=[IvNote])
async def deterministic(wf: Any, p: Any) -> Any:
    n = await wf.do("roll", lambda: random.randint(0, 10**9))  # checkpointed
    await wf.IvNote(p).note(n=n)
    return "done"


def test_checkpoint_once() -> None:
    err = broken(counter, [{"kind": "crash-after-checkpoint", "step": "IvNote.note"}])
    assert "checkpoint-once" in err.invariants
    v = next(v for v in err.violations if v.invariant == "checkpoint-once")
    assert v.key == "IvNote.note"
    assert "ran again in lifetime 2 under another name" in v.message


def test_determinism() -> None:
    err = broken(rolls_dice, [{"kind": "crash-after-checkpoint", "step": "IvNote.note"}])
    assert err.invariant == "determinism" or "determinism" in err.invariants
    v = next(v for v in err.violations if v.invariant == "determinism")
    assert "wf.do" in v.hint
    assert "into a step" in v.hint
    assert v.where is not None
    assert v.where.endswith(".py:" + v.where.rsplit(":", 1)[1])


@pytest.mark.parametrize(
    "plan",
    [
        [{"kind": "crash-after-checkpoint", "step": "IvNote.note"}],
        [{"kind": "crash-after-checkpoint", "step": "roll"}],
        [{"kind": "reseed", "step": "roll", "seed": 5}],
        [{"kind": "clock-skew", "step": "roll", "ms": -86_400_000}],
        [{"kind": "crash-after-effect", "step": "roll"}],
    ],
)
def test_randomness_inside_a_step_is_deterministic(plan: list[dict[str, Any]]) -> None:
    assert_durable(deterministic, {"id": "x"}, plan)


# -- idempotent-effects ------------------------------------------------------------------------


async def bump(_c: Any, _a: Any, ctx: Any) -> dict[str, Any]:
    await ctx.db.execute(
        "INSERT INTO t (k, n) VALUES ('hits', 1) ON CONFLICT(k) DO UPDATE SET n = n + 1"
    )
    return {}


async def bump_once(_c: Any, _a: Any, ctx: Any) -> dict[str, Any]:
    await ctx.db.execute("INSERT OR IGNORE INTO t (k, n) VALUES (?, 1)", [ctx.idempotency_key])
    return {}


IvFx = Domain("IvFx", {"bump": bump, "bump_once": bump_once})


@Workflow("iv-fx-broken", domains=[IvFx])
async def fx_broken(wf: Any, p: Any) -> Any:
    return await wf.IvFx(p).bump()


@Workflow("iv-fx-ok", domains=[IvFx])
async def fx_ok(wf: Any, p: Any) -> Any:
    return await wf.IvFx(p).bump_once()


@pytest.mark.parametrize("kind", ["crash-after-effect", "timeout"])
def test_idempotent_effects(kind: str) -> None:
    plan = [{"kind": kind, "step": "IvFx.*"}]
    err = broken(fx_broken, plan, db=DB)
    assert err.invariants == ["idempotent-effects"]
    v = err.violations[0]
    assert v.key == "IvFx.bump"
    assert v.difference == ["t.n for hits: expected 1, got 2"]
    assert "ctx.idempotency_key" in v.hint
    assert v.where is not None
    assert "test_invariants.py:" in v.where
    assert_durable(fx_ok, {"id": "x"}, plan, db=DB)


# -- retry-policy ------------------------------------------------------------------------------


async def flaky(_c: Any, _a: Any, ctx: Any) -> str:
    return "ok"


IvRetry = Domain("IvRetry", {"call": {"handler": flaky, "retries": {"limit": 1, "delay": 1000}}})


@Workflow("iv-retry-loop", domains=[IvRetry])
async def retry_loop(wf: Any, p: Any) -> Any:
    for _ in range(5):  # retries the step by hand, with no backoff
        try:
            return await wf.IvRetry(p).call()
        except StepError:
            continue
    return "gave up"


@Workflow("iv-retry-ok", domains=[IvRetry])
async def retry_ok(wf: Any, p: Any) -> Any:
    return await wf.IvRetry(p).call()


EXHAUST = [
    {"kind": "transient-error", "step": "IvRetry.call", "attempt": 1},
    {"kind": "timeout", "step": "IvRetry.call", "attempt": 2},
]


def test_retry_policy() -> None:
    err = broken(retry_loop, EXHAUST)
    assert err.invariants == ["retry-policy"]
    v = err.violations[0]
    assert "IvRetry.call" in v.message
    assert "no backoff" in v.message
    assert "retries" in v.hint


def test_faults_that_use_up_every_attempt_may_change_the_outcome() -> None:
    # limit 1: two attempts, both failed by faults; the instance ends errored by design.
    base = build_baseline(Target(retry_ok, {"id": "x"}))
    obs, checked, violations = run_plan(base, EXHAUST)
    assert obs.status == "errored"
    assert base.obs.status == "complete"
    assert violations == []
    assert "replay-equivalence" not in checked


# -- serializable ------------------------------------------------------------------------------


async def tags(_c: Any, _a: Any, ctx: Any) -> Any:
    if ctx.attempt > 1:
        return {"tags": {"a", "b"}}  # a set: not JSON
    raise RuntimeError("first attempt fails")


async def tags_ok(_c: Any, _a: Any, ctx: Any) -> Any:
    if ctx.attempt > 1:
        return {"tags": sorted({"a", "b"})}
    raise RuntimeError("first attempt fails")


IvSer = Domain(
    "IvSer",
    {
        "tags": {"handler": tags, "retries": {"limit": 2, "delay": 10}},
        "tags_ok": {"handler": tags_ok, "retries": {"limit": 2, "delay": 10}},
    },
)


@Workflow("iv-ser-broken", domains=[IvSer])
async def ser_broken(wf: Any, p: Any) -> Any:
    return await wf.IvSer(p).tags()


@Workflow("iv-ser-ok", domains=[IvSer])
async def ser_ok(wf: Any, p: Any) -> Any:
    return await wf.IvSer(p).tags_ok()


def test_serializable() -> None:
    # Even the fault-free run retries once here: the baseline itself breaks the invariant.
    err = broken(ser_broken, [])
    assert err.invariants == ["serializable"]
    assert err.violations[0].key == "IvSer.tags"
    assert "isoformat" in err.violations[0].hint
    assert_durable(
        ser_ok, {"id": "x"}, [{"kind": "crash-after-effect", "step": "IvSer.*", "attempt": 2}]
    )


# -- events-delivered ------------------------------------------------------------------------


@Workflow(
    "iv-events-broken", events=[{"type": "paid", "payload": {"amount": 5}, "after": "1 minute"}]
)
async def events_broken(wf: Any, p: Any) -> Any:
    total = 0
    for i in range(2):  # handles every "paid" notification: a duplicate is counted twice
        try:
            total += (await wf.wait_for(f"paid-{i}", type="paid", timeout="1 hour"))["amount"]
        except StepError:
            break
    return total


@Workflow("iv-events-ok", events=[{"type": "paid", "payload": {"amount": 5}, "after": "1 minute"}])
async def events_ok(wf: Any, p: Any) -> Any:
    return (await wf.wait_for("paid", type="paid", timeout="1 hour"))["amount"]


def test_events_delivered() -> None:
    err = broken(events_broken, [{"kind": "event-duplicate", "type": "paid"}])
    assert "events-delivered" in err.invariants
    v = next(v for v in err.violations if v.invariant == "events-delivered")
    assert v.key == "paid"
    assert "delivered 2 times" in v.message
    for kind in ("event-duplicate", "event-early", "event-late"):
        assert_durable(events_ok, {"id": "x"}, [{"kind": kind, "type": "paid"}])
    assert_durable(events_ok, {"id": "x"}, [{"kind": "crash-during-wait", "step": "paid"}])


# -- no-stuck-instance ---------------------------------------------------------------------------

_ready: dict[str, asyncio.Event] = {}


async def produce(_c: Any, _a: Any, ctx: Any) -> dict[str, Any]:
    _ready["go"].set()  # in-memory coordination: lost on replay
    return {}


IvStuck = Domain("IvStuck", {"produce": produce})


@Workflow("iv-stuck", domains=[IvStuck])
async def stuck(wf: Any, p: Any) -> Any:
    _ready["go"] = asyncio.Event()
    await wf.IvStuck(p).produce()
    await _ready["go"].wait()
    return "done"


@Workflow("iv-not-stuck", domains=[IvStuck])
async def not_stuck(wf: Any, p: Any) -> Any:
    _ready["go"] = asyncio.Event()
    await wf.IvStuck(p).produce()
    return "done"


def test_no_stuck_instance() -> None:
    plan = [{"kind": "crash-after-checkpoint", "step": "IvStuck.produce"}]
    err = broken(stuck, plan)
    assert err.invariants == ["no-stuck-instance"]
    assert "nothing has happened since 0 ms" in err.violations[0].message
    assert_durable(not_stuck, {"id": "x"}, plan)


# -- idempotent-effects: external calls ---------------------------------------------------------


def answer(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json={"ok": True})


async def charge(_c: Any, args: Any, ctx: Any) -> dict[str, Any]:
    await ctx.http.post("https://pay.example/charges", json={"amount": args["amount"]})
    return {}


async def charge_once(_c: Any, args: Any, ctx: Any) -> dict[str, Any]:
    await ctx.http.post(
        "https://pay.example/charges",
        json={"amount": args["amount"]},
        headers={"Idempotency-Key": ctx.idempotency_key},
    )
    await ctx.http.get("https://pay.example/balance")  # safe: repeating it changes nothing
    await ctx.ai.generate(prompt="Thank the customer")  # an AI call changes nothing outside
    return {}


IvPay = Domain("IvPay", {"charge": charge, "charge_once": charge_once})


@Workflow("iv-pay-broken", domains=[IvPay])
async def pay_broken(wf: Any, p: Any) -> Any:
    return await wf.IvPay(p).charge(amount=5)


@Workflow("iv-pay-ok", domains=[IvPay])
async def pay_ok(wf: Any, p: Any) -> Any:
    return await wf.IvPay(p).charge_once(amount=5)


@pytest.mark.parametrize("kind", ["crash-after-effect", "timeout"])
def test_idempotent_external_effects(kind: str) -> None:
    plan = [{"kind": kind, "step": "IvPay.*"}]
    err = broken(pay_broken, plan, http=answer)
    assert err.invariants == ["idempotent-effects"]
    v = err.violations[0]
    assert v.key == "IvPay.charge"
    assert v.difference == [
        'external effect made 2 times, expected 1: POST https://pay.example/charges {"amount":5}'
    ]
    assert "Idempotency-Key" in v.hint
    assert_durable(pay_ok, {"id": "x"}, plan, http=answer)


def test_retry_policy_knows_the_config_of_raw_steps() -> None:
    """wf.do steps have no Domain to read a config from; the engine's step-start entry has it."""
    from awf_sim import Workflow
    from awf_sim.chaos import Target, build_baseline

    async def flow(wf: Any, _: Any) -> Any:
        return await wf.do("raw", lambda: 1, retries={"limit": 7, "delay": "3 seconds"})

    baseline = build_baseline(Target(Workflow("raw-config", flow), {}))
    config = baseline.config_of("raw", "raw")
    assert config is not None
    assert config["retries"] == {"limit": 7, "delay": 3000, "backoff": "exponential"}
