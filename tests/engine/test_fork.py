"""Process isolation: limits, no network, ctx forwarding, errors crossing back, no leaks."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import respx

from awf_sim import Simulator, Workflow
from awf_sim.dsl._errors import DefinitionError, NonRetryableError, SerializationError
from awf_sim.engine import Limits
from awf_sim.engine._ambient import NetworkAccessRefused
from awf_sim.engine._fork import run_isolated
from awf_sim.errors import IsolatedHandlerError, IsolationError
from awf_sim.sdk._ai import AIClient, DeterministicAI
from awf_sim.sdk._context import HandlerContext
from awf_sim.sdk._db import DatabaseError, DatabaseHandle, mock_database
from awf_sim.sdk._effects import EffectLog
from awf_sim.sdk._http import UnmockedRequest, make_http_client

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs Linux")


class Ctx:
    """What the engine will hand over: HandlerContext's fields plus ai and http."""

    def __init__(self, db: DatabaseHandle, log: EffectLog, http: Any = None) -> None:
        self.env = {"API_BASE": "https://api.example.test", "RETRIES": 3}
        self.attempt = 2
        self.step = {"name": "Payment.charge@abc", "path": "Payment.charge", "count": 1}
        self.idempotency_key = "0123456789abcdef0123456789abcdef"
        self.db = db
        self.ai = AIClient(DeterministicAI(seed=4), log)
        self.http = make_http_client(http, log)


@pytest.fixture
def db() -> Iterator[DatabaseHandle]:
    with mock_database({"payments": [{"order": "o-1", "amount": 100}]}).connect() as handle:
        handle.step = "Payment.charge#1"
        yield handle


@pytest.fixture
def log() -> EffectLog:
    return EffectLog()


@pytest.fixture
def ctx(db: DatabaseHandle, log: EffectLog) -> Ctx:
    router = respx.Router()
    router.post("https://api.example.test/charges").respond(201, json={"id": "ch_1"})
    router.get("https://api.example.test/down").mock(
        side_effect=httpx.ConnectError("connection refused")
    )
    return Ctx(db, log, router)


@pytest.fixture(autouse=True)
def no_leaks(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Every child is reaped and every pipe closed by the time run_isolated returns."""
    forked: list[int] = []
    real_fork = os.fork

    def fork() -> int:
        pid = real_fork()
        if pid:
            forked.append(pid)
        return pid

    monkeypatch.setattr(os, "fork", fork)
    fds = sorted(os.listdir("/proc/self/fd"))
    yield forked
    assert sorted(os.listdir("/proc/self/fd")) == fds
    for pid in forked:
        with pytest.raises(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # already reaped: no zombie left behind


# --- results and context --------------------------------------------------------------------------


def test_result_crosses_back_as_json(ctx: Ctx, no_leaks: list[int]) -> None:
    async def handler(c: Any) -> Any:
        return {"pid": os.getpid(), "text": "héllo ✓", "n": [1, 2.5, None, True]}

    result = run_isolated(handler, ctx, Limits())
    assert result["pid"] != os.getpid()
    assert result["pid"] == no_leaks[0]
    assert result["text"] == "héllo ✓"
    assert result["n"] == [1, 2.5, None, True]


def test_sync_handlers_work(ctx: Ctx) -> None:
    assert run_isolated(lambda c: c.attempt * 10, ctx, Limits()) == 20


def test_context_fields_are_copied(ctx: Ctx) -> None:
    def handler(c: Any) -> Any:
        return {
            "env": c.env,
            "attempt": c.attempt,
            "step": c.step,
            "key": c.idempotency_key,
            "db_step": c.db.step,
            "repr": repr(c),
        }

    assert run_isolated(handler, ctx, Limits()) == {
        "env": ctx.env,
        "attempt": 2,
        "step": ctx.step,
        "key": ctx.idempotency_key,
        "db_step": None,  # a plain object, not a HandlerContext with a database label
        "repr": "<ctx step=Payment.charge attempt=2 isolated>",
    }


def test_works_with_the_handler_context(db: DatabaseHandle) -> None:
    ctx = HandlerContext(
        instance_id="i-1",
        step={"name": "Payment.charge@abc", "path": "Payment.charge", "count": 1},
        attempt=1,
        env={},
        db=db,
    )

    async def handler(c: Any) -> Any:
        return [c.idempotency_key, c.db.step, await c.db.query_one("SELECT 1 AS one")]

    assert run_isolated(handler, ctx) == [ctx.idempotency_key, "Payment.charge#1", {"one": 1}]


def test_a_missing_database_is_the_usual_error(db: DatabaseHandle) -> None:
    bare = HandlerContext(
        instance_id="i", step={"name": "s", "path": "s", "count": 1}, attempt=1, env={}
    )

    async def handler(c: Any) -> Any:
        return await c.db.query("SELECT 1")

    with pytest.raises(AttributeError, match=r"ctx\.db: no database is configured"):
        run_isolated(handler, bare)


# --- ctx.db, ctx.ai and ctx.http work and are recorded in the parent ------------------------------


def test_database_writes_land_in_the_parent(ctx: Ctx, db: DatabaseHandle) -> None:
    async def handler(c: Any) -> Any:
        row = await c.db.insert("payments", {"order": "o-2", "amount": 250, "raw": b"\x00\xff"})
        changed = await c.db.execute("UPDATE payments SET amount = amount + 1 WHERE order_ = 1")
        return {"row": row, "changed": changed}

    with pytest.raises(DatabaseError, match="no such column: order_"):
        run_isolated(handler, ctx)

    async def good(c: Any) -> Any:
        row = await c.db.insert("payments", {"order": "o-2", "amount": 250, "raw": b"\x00\xff"})
        changed = await c.db.execute("UPDATE payments SET amount = amount + 1 WHERE id = ?", [1])
        read = await c.db.query_one("SELECT raw FROM payments WHERE id = ?", [row["id"]])
        return {"id": row["id"], "changed": changed, "raw_is_bytes": isinstance(read["raw"], bytes)}

    assert run_isolated(good, ctx) == {"id": 3, "changed": 1, "raw_is_bytes": True}
    rows = run_isolated_query(db, "SELECT id, amount FROM payments ORDER BY id")
    assert rows == [{"id": 1, "amount": 101}, {"id": 2, "amount": 250}, {"id": 3, "amount": 250}]
    assert [(w.table, w.op, w.step) for w in db.writes] == [
        ("payments", "insert", "Payment.charge#1"),  # the first handler's insert, not rolled back
        ("payments", "insert", "Payment.charge#1"),
        ("payments", "update", "Payment.charge#1"),
    ]


def run_isolated_query(db: DatabaseHandle, sql: str) -> Any:
    coro = db.query(sql)
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    raise AssertionError("suspended")


def test_transactions_commit_and_roll_back_in_the_parent(ctx: Ctx, db: DatabaseHandle) -> None:
    async def handler(c: Any) -> Any:
        async with c.db.transaction() as tx:
            await tx.insert("payments", {"order": "kept", "amount": 1})
        try:
            async with c.db.transaction() as tx:
                await tx.insert("payments", {"order": "dropped", "amount": 2})
                raise RuntimeError("abort")
        except RuntimeError:
            pass
        try:
            async with c.db.transaction() as tx:
                await tx.insert("payments", {"order": "bad", "amount": 3})
                await tx.execute("INSERT INTO nowhere VALUES (1)")
        except DatabaseError as exc:  # the class crosses over, so handlers can catch it
            caught = exc.detail

        misuse = []
        used = c.db.transaction()
        async with used as tx:
            pass
        try:
            await tx.query("SELECT 1")
        except DatabaseError as exc:
            misuse.append(exc.detail)
        try:
            async with used:
                pass
        except DatabaseError as exc:
            misuse.append(exc.detail)
        return [caught, *misuse]

    assert run_isolated(handler, ctx) == [
        "no such table: nowhere",
        "this transaction is not open: use tx only inside its `async with` block",
        "this transaction was already used; call transaction() again",
    ]
    orders = [r["order"] for r in run_isolated_query(db, "SELECT * FROM payments ORDER BY id")]
    assert orders == ["o-1", "kept"]


def test_a_child_that_dies_inside_a_transaction_leaves_nothing(
    ctx: Ctx, db: DatabaseHandle
) -> None:
    async def handler(c: Any) -> Any:
        async with c.db.transaction() as tx:
            await tx.insert("payments", {"order": "half", "amount": 1})
            os._exit(0)

    with pytest.raises(IsolationError, match="exited with status 0 before sending a result"):
        run_isolated(handler, ctx)
    assert [r["order"] for r in run_isolated_query(db, "SELECT * FROM payments")] == ["o-1"]
    assert db.writes == []


def test_ai_and_http_are_recorded_in_the_parent(ctx: Ctx, log: EffectLog) -> None:
    log.step = "Payment.charge#1"

    async def handler(c: Any) -> Any:
        verdict = await c.ai.generate(
            system="fraud check",
            prompt="order o-1",
            schema={
                "type": "object",
                "properties": {"ok": {"type": "boolean"}},
                "required": ["ok"],
            },
        )
        vector = await c.ai.embed("order")
        reply = await c.ai.chat([{"role": "user", "content": "hi"}])
        response = await c.http.post(
            "https://api.example.test/charges",
            json={"amount": 100},
            headers={"Idempotency-Key": c.idempotency_key},
        )
        return {
            "verdict": verdict,
            "dims": len(vector),
            "reply": reply,
            "status": response.status_code,
            "body": response.json(),
        }

    result = run_isolated(handler, ctx)
    assert result["status"] == 201
    assert result["body"] == {"id": "ch_1"}
    assert isinstance(result["verdict"]["ok"], bool)
    assert result["dims"] == 16
    expected = run_parent(
        ctx.ai.generate(
            system="fraud check",
            prompt="order o-1",
            schema={
                "type": "object",
                "properties": {"ok": {"type": "boolean"}},
                "required": ["ok"],
            },
        )
    )
    assert result["verdict"] == expected  # the same provider answered
    kinds = [(e.kind, e.summary.split(" ")[0]) for e in log.effects]
    assert kinds == [
        ("ai", "ai.generate"),
        ("ai", "ai.embed"),
        ("ai", "ai.chat"),
        ("http", "POST"),
        ("ai", "ai.generate"),
    ]
    http_effect = log.effects[3]
    assert http_effect.summary == 'POST https://api.example.test/charges {"amount":100}'
    assert http_effect.detail["headers"]["idempotency-key"] == ctx.idempotency_key
    assert {e.step for e in log.effects} == {"Payment.charge#1"}


def run_parent(coro: Any) -> Any:
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    raise AssertionError("suspended")


def test_http_errors_keep_their_class_in_the_child(ctx: Ctx) -> None:
    async def handler(c: Any) -> Any:
        caught = []
        try:
            await c.http.get("https://api.example.test/down")
        except httpx.ConnectError as exc:
            caught.append(["ConnectError", str(exc), str(exc.request.url)])
        try:
            await c.http.get("https://elsewhere.test/")
        except UnmockedRequest as exc:
            caught.append(["UnmockedRequest", exc.method, exc.url])
        return caught

    assert run_isolated(handler, ctx) == [
        ["ConnectError", "connection refused", "https://api.example.test/down"],
        ["UnmockedRequest", "GET", "https://elsewhere.test/"],
    ]


def test_parent_side_calls_can_run_elsewhere(ctx: Ctx) -> None:
    ran: list[str] = []

    def run_call(make: Callable[[], Any]) -> Any:
        ran.append("call")

        async def call() -> Any:
            return await make()

        return asyncio.run(call())

    async def handler(c: Any) -> Any:
        await c.db.query("SELECT 1")
        return await c.ai.chat([{"role": "user", "content": "x"}])

    assert isinstance(run_isolated(handler, ctx, run_call=run_call), str)
    assert ran == ["call", "call"]


def test_a_suspending_mock_is_served(db: DatabaseHandle, log: EffectLog) -> None:
    async def slow(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0.01)
        return httpx.Response(200, text="slow")

    async def handler(c: Any) -> Any:
        return (await c.http.get("https://slow.test/")).text

    assert run_isolated(handler, Ctx(db, log, slow)) == "slow"


def test_called_on_a_thread_that_runs_a_loop(db: DatabaseHandle, log: EffectLog) -> None:
    async def slow(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0.01)
        return httpx.Response(200)

    async def handler(c: Any) -> Any:
        row = await c.db.query_one("SELECT amount FROM payments")
        try:
            await c.http.get("https://slow.test/")
        except RuntimeError as exc:
            return [row, str(exc)]
        return [row, None]

    async def on_the_loop() -> Any:
        return run_isolated(handler, Ctx(db, log, slow))

    row, error = asyncio.run(on_the_loop())
    assert row == {"amount": 100}  # calls that never suspend are served right there
    assert "suspended on a thread that runs an event loop" in error


def test_scope_is_entered_around_the_handler_in_the_child(ctx: Ctx) -> None:
    from contextlib import contextmanager

    @contextmanager
    def scope() -> Iterator[None]:
        os.environ["AWF_IN_SCOPE"] = "yes"
        yield

    assert run_isolated(lambda c: os.environ.get("AWF_IN_SCOPE"), ctx, scope=scope) == "yes"
    assert "AWF_IN_SCOPE" not in os.environ


# --- errors crossing back -------------------------------------------------------------------------


def test_exceptions_keep_class_and_message(ctx: Ctx) -> None:
    def handler(c: Any) -> Any:
        raise ValueError("bad amount: -5")

    with pytest.raises(ValueError, match="bad amount") as info:
        run_isolated(handler, ctx)
    assert type(info.value) is ValueError
    assert str(info.value) == "bad amount: -5"
    assert "raised in the isolated handler process" in info.value.__notes__[0]
    assert 'raise ValueError("bad amount: -5")' in info.value.__notes__[0]


def test_non_retryable_error_stays_non_retryable(ctx: Ctx) -> None:
    def handler(c: Any) -> Any:
        raise NonRetryableError("card declined", "CardDeclined")

    with pytest.raises(NonRetryableError) as info:
        run_isolated(handler, ctx)
    assert (info.value.name, info.value.message) == ("CardDeclined", "card declined")


def test_other_classes_arrive_with_their_name_and_message(ctx: Ctx) -> None:
    class PaymentFailed(Exception):
        pass

    def handler(c: Any) -> Any:
        raise PaymentFailed("gateway said no")

    with pytest.raises(IsolatedHandlerError) as info:
        run_isolated(handler, ctx)
    assert (info.value.name, info.value.message) == ("PaymentFailed", "gateway said no")
    assert str(info.value) == "PaymentFailed: gateway said no"


def test_system_exit_in_the_handler_is_an_error(ctx: Ctx) -> None:
    def handler(c: Any) -> Any:
        sys.exit(3)

    with pytest.raises(IsolatedHandlerError, match="SystemExit: 3"):
        run_isolated(handler, ctx)


def test_a_result_that_is_not_json_is_named(ctx: Ctx) -> None:
    with pytest.raises(
        SerializationError, match=r"result of Payment\.charge\.ids is not JSON \(a set\)"
    ):
        run_isolated(lambda c: {"ids": {1, 2}}, ctx)


# --- limits ---------------------------------------------------------------------------------------


def test_cpu_time_limit(ctx: Ctx) -> None:
    def spin(c: Any) -> Any:
        while True:
            pass

    started = time.monotonic()
    with pytest.raises(IsolationError) as info:
        run_isolated(spin, ctx, Limits(cpu_seconds=1))
    assert info.value.limit == "cpu"
    assert str(info.value) == "handler exceeded the CPU-time limit of 1 s (process isolation)"
    assert time.monotonic() - started < 10


def test_cpu_limit_counts_cpu_not_waiting(ctx: Ctx) -> None:
    def nap(c: Any) -> str:
        time.sleep(0.6)
        return "slept"

    assert run_isolated(nap, ctx, Limits(cpu_seconds=0.3)) == "slept"


def test_memory_limit(ctx: Ctx) -> None:
    def hog(c: Any) -> Any:
        return len(bytearray(2 * 1024**3))

    with pytest.raises(IsolationError) as info:
        run_isolated(hog, ctx, Limits(memory_mb=200))
    assert info.value.limit == "memory"
    assert str(info.value) == "handler exceeded the memory limit of 200 MB (process isolation)"


def test_memory_within_the_limit_is_fine(ctx: Ctx) -> None:
    assert (
        run_isolated(lambda c: len(bytearray(50 * 1024**2)), ctx, Limits(memory_mb=200))
        == 50 * 1024**2
    )


def test_wall_clock_limit(ctx: Ctx) -> None:
    with pytest.raises(IsolationError) as info:
        run_isolated(lambda c: time.sleep(30), ctx, Limits(wall_seconds=0.3))
    assert info.value.limit == "wall"
    assert str(info.value) == "handler exceeded the wall-clock limit of 0.3 s (process isolation)"


def test_a_killed_child_is_a_crash(ctx: Ctx) -> None:
    with pytest.raises(IsolationError, match="died from signal SIGTERM") as info:
        run_isolated(lambda c: os.kill(os.getpid(), signal.SIGTERM), ctx)
    assert info.value.limit == "crash"


@pytest.mark.parametrize(
    "limits",
    [
        {"cpu_seconds": 0},
        {"memory_mb": -1},
        {"wall_seconds": 0},
        {"cpu_seconds": True},
        {"memory_mb": "512"},
    ],
)
def test_limits_are_checked(limits: dict[str, Any]) -> None:
    with pytest.raises(DefinitionError, match="must be a positive number"):
        Limits(**limits)


def test_other_platforms_get_a_clear_error(ctx: Ctx, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "darwin")
    with pytest.raises(IsolationError, match="needs Linux") as info:
        run_isolated(lambda c: 1, ctx)
    assert info.value.limit == "unsupported"


# --- no network -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attempt", "message"),
    [
        (
            lambda: socket.create_connection(("example.com", 443), timeout=2),
            "connect to example.com:443",
        ),
        (lambda: socket.getaddrinfo("example.com", 80), "resolve example.com:80"),
        (lambda: socket.socket().connect(("93.184.216.34", 80)), "connect to 93.184.216.34:80"),
        (
            lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"x", ("8.8.8.8", 53)),
            "send to 8.8.8.8:53",
        ),
    ],
)
def test_network_is_refused_in_the_child(
    ctx: Ctx, attempt: Callable[[], Any], message: str
) -> None:
    def handler(c: Any) -> Any:
        attempt()

    with pytest.raises(NetworkAccessRefused, match=message):
        run_isolated(handler, ctx)


def test_native_code_finds_no_network_either(ctx: Ctx) -> None:
    import _socket

    def handler(c: Any) -> Any:
        isolated = os.readlink("/proc/self/ns/net") != parent_namespace
        raw = _socket.socket()  # below the socket module's refusal
        raw.settimeout(2)
        try:
            raw.connect(("1.1.1.1", 80))
        except OSError as exc:
            return {"isolated": isolated, "errno": exc.errno}
        finally:
            raw.close()
        return {"isolated": isolated, "errno": None}

    parent_namespace = os.readlink("/proc/self/ns/net")
    result = run_isolated(handler, ctx)
    if not result["isolated"]:
        pytest.skip("no network namespaces here (needs CAP_SYS_ADMIN or user namespaces)")
    assert result["errno"] is not None


# --- output, speed, the simulator -----------------------------------------------------------------


def test_output_is_neither_lost_nor_duplicated(ctx: Ctx, capfd: pytest.CaptureFixture[str]) -> None:
    sys.stdout.write("parent-before|")  # still buffered when the child is forked

    def handler(c: Any) -> Any:
        print("child", end="|")
        return 1

    run_isolated(handler, ctx)
    print("parent-after")
    assert capfd.readouterr().out == "parent-before|child|parent-after\n"


def test_large_results_and_payloads_cross_intact(ctx: Ctx, db: DatabaseHandle) -> None:
    big = "é" * 1_500_000  # several times a pipe's buffer, in both directions

    async def handler(c: Any) -> Any:
        row = await c.db.insert("payments", {"order": "big", "amount": 1, "note": big})
        back = await c.db.query_one("SELECT note FROM payments WHERE id = ?", [row["id"]])
        return {"same": back["note"] == big, "echo": big}

    result = run_isolated(handler, ctx)
    assert result["same"] is True
    assert result["echo"] == big


def test_reaping_without_pidfd(ctx: Ctx, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(os, "pidfd_open", raising=False)
    assert run_isolated(lambda c: "reaped", ctx) == "reaped"


def test_a_child_that_will_not_exit_is_killed(no_leaks: list[int]) -> None:
    from awf_sim.engine._fork import _reap

    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        time.sleep(60)
        os._exit(0)
    status, _ = _reap(pid, 0.05)
    assert os.WIFSIGNALED(status)
    assert os.WTERMSIG(status) == signal.SIGKILL


def test_many_runs_leave_nothing_behind(ctx: Ctx, no_leaks: list[int]) -> None:
    for _ in range(20):
        assert run_isolated(lambda c: c.attempt, ctx) == 2
    assert len(no_leaks) == 20


def test_retried_by_the_simulator_like_any_failure(db: DatabaseHandle, log: EffectLog) -> None:
    ctx = Ctx(db, log)
    attempts: list[int] = []

    def invoke(c: Any) -> Any:
        if len(attempts) == 1:
            return len(bytearray(4 * 1024**3))  # the first attempt breaks the memory limit
        return {"charged": True}

    @Workflow("isolated-retry")
    async def flow(wf: Any, params: Any) -> Any:
        async def step() -> Any:
            attempts.append(1)
            return await asyncio.to_thread(run_isolated, invoke, ctx, Limits(memory_mb=100))

        return await wf.do("charge", step, retries={"limit": 2, "delay": 1000})

    with Simulator() as sim:
        inst = sim.create(flow)
        sim.run()
        assert inst.status()["output"] == {"charged": True}
        failures = [e for e in inst.timeline if e["kind"] == "attempt-failure"]
    assert len(attempts) == 2
    assert failures[0]["error"] == {
        "name": "IsolationError",
        "message": "handler exceeded the memory limit of 100 MB (process isolation)",
    }
