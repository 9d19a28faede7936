"""`ctx.http`: mocks of every kind, recording, unmocked requests, no network, the simulator."""

from __future__ import annotations

import asyncio
import gc
import json
import socket
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

import httpx
import pytest
import respx

from awf_sim import Simulator, Workflow
from awf_sim.sdk._effects import Effect, EffectLog
from awf_sim.sdk._http import UnmockedRequest, make_http_client

T = TypeVar("T")

URL = "https://api.stripe.com/v1/charges"


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Drives a coroutine the way the engine's fast path does, and proves it never suspends."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    coro.close()
    raise AssertionError("the request suspended the coroutine")


@pytest.fixture
def log() -> EffectLog:
    return EffectLog()


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """Every test here fails if anything tries to open a connection or resolve a name."""
    attempts: list[Any] = []

    def refuse(*args: Any, **kwargs: Any) -> Any:
        attempts.append(args)
        raise AssertionError(f"a real network attempt was made: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    yield attempts
    assert attempts == []


def charge(request: httpx.Request) -> httpx.Response:
    body = json.loads(request.content)
    return httpx.Response(201, json={"id": "ch_1", "amount": body["amount"]})


async def post_charge(client: httpx.AsyncClient, amount: int = 500) -> Any:
    response = await client.post(URL, json={"amount": amount, "currency": "usd"})
    return response.status_code, response.json()


# --- the kinds of mock ------------------------------------------------------------------------


def test_sync_function_mock_answers_without_suspending(log: EffectLog) -> None:
    client = make_http_client(charge, log)
    assert run(post_charge(client)) == (201, {"id": "ch_1", "amount": 500})


def test_async_function_mock(log: EffectLog) -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text="async ok")

    client = make_http_client(handler, log)

    async def call() -> str:
        return (await client.get("https://example.test/a")).text

    assert run(call()) == "async ok"  # an async mock that never awaits does not suspend


def test_async_function_mock_that_suspends_runs_on_a_loop(log: EffectLog) -> None:
    async def slow(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0)
        return httpx.Response(200, json={"slow": True})

    client = make_http_client(slow, log)

    async def call() -> Any:
        return (await client.get("https://example.test/slow")).json()

    assert asyncio.run(call()) == {"slow": True}
    assert log.summaries() == ["GET https://example.test/slow"]


def test_respx_router(log: EffectLog) -> None:
    router = respx.Router()
    route = router.post(URL).respond(201, json={"id": "ch_9"})
    router.get("https://api.stripe.com/v1/charges/ch_9").respond(200, json={"paid": True})
    client = make_http_client(router, log)

    async def flow() -> Any:
        created = await client.post(URL, data={"amount": "500"})
        fetched = await client.get("https://api.stripe.com/v1/charges/ch_9")
        return created.json(), fetched.json()

    assert run(flow()) == ({"id": "ch_9"}, {"paid": True})
    assert route.call_count == 1
    assert route.calls.last.request.content == b"amount=500"
    assert len(router.calls) == 2


def test_respx_router_does_not_patch_httpx_globally(log: EffectLog) -> None:
    originals = (
        httpx.AsyncHTTPTransport.handle_async_request,
        httpx.HTTPTransport.handle_request,
    )
    router = respx.Router()
    router.get("https://example.test/").respond(204)
    client = make_http_client(router, log)

    async def call() -> int:
        return (await client.get("https://example.test/")).status_code

    assert run(call()) == 204
    assert (
        httpx.AsyncHTTPTransport.handle_async_request,
        httpx.HTTPTransport.handle_request,
    ) == originals
    assert not respx.mock.calls  # the global router saw nothing


def test_two_clients_with_different_routers_are_independent(log: EffectLog) -> None:
    one, two = respx.Router(), respx.Router()
    one.get("https://example.test/x").respond(200, text="one")
    two.get("https://example.test/x").respond(200, text="two")

    async def text(client: httpx.AsyncClient) -> str:
        return (await client.get("https://example.test/x")).text

    assert run(text(make_http_client(one, log))) == "one"
    assert run(text(make_http_client(two, log))) == "two"


def test_respx_side_effects(log: EffectLog) -> None:
    router = respx.Router()
    router.get("https://example.test/down").mock(side_effect=httpx.ConnectError("refused"))
    router.get("https://example.test/echo").mock(
        side_effect=lambda request: httpx.Response(200, text=request.url.params["q"])
    )
    client = make_http_client(router, log)

    async def echo() -> str:
        return (await client.get("https://example.test/echo", params={"q": "hi"})).text

    assert run(echo()) == "hi"
    with pytest.raises(httpx.ConnectError, match="refused"):
        run(client.get("https://example.test/down"))
    assert log.summaries() == [
        "GET https://example.test/echo?q=hi",
        "GET https://example.test/down",  # recorded before the mock failed
    ]


def test_httpx_mock_transport(log: EffectLog) -> None:
    client = make_http_client(httpx.MockTransport(charge), log)
    assert run(post_charge(client, 7)) == (201, {"id": "ch_1", "amount": 7})


def test_custom_async_transport(log: EffectLog) -> None:
    class Teapot(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            return httpx.Response(418, text="teapot")

    client = make_http_client(Teapot(), log)

    async def call() -> int:
        return (await client.get("https://example.test/tea")).status_code

    assert run(call()) == 418


def test_sync_only_transport_and_sync_stream(log: EffectLog) -> None:
    class SyncStream(httpx.SyncByteStream):
        def __iter__(self) -> Iterator[bytes]:
            yield b'{"chunks": '
            yield b"2}"

    class SyncOnly(httpx.BaseTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            return httpx.Response(200, stream=SyncStream())

    client = make_http_client(SyncOnly(), log)

    async def call() -> Any:
        return (await client.get("https://example.test/sync")).json()

    assert run(call()) == {"chunks": 2}


def test_mock_shared_between_clients_is_not_closed(log: EffectLog) -> None:
    transport = httpx.MockTransport(charge)
    first = make_http_client(transport, log)
    run(first.aclose())
    second = make_http_client(transport, log)
    assert run(post_charge(second))[0] == 201


# --- unmocked and refused ---------------------------------------------------------------------


def test_no_mock_fails_naming_method_and_url(log: EffectLog) -> None:
    client = make_http_client(None, log)
    with pytest.raises(UnmockedRequest) as info:
        run(client.post(URL, json={"amount": 1}))
    assert str(info.value) == (
        "ctx.http: no mock for POST https://api.stripe.com/v1/charges; pass "
        "http=respx.Router() with a route for it to Simulator(...) or create_test_workflow(...), "
        "or set HTTP = respx.Router() in the flow file for awf-sim"
    )
    assert (info.value.method, info.value.url) == ("POST", URL)
    assert log.summaries() == ['POST https://api.stripe.com/v1/charges {"amount":1}']


def test_respx_route_not_matched_is_unmocked(log: EffectLog) -> None:
    router = respx.Router()
    router.get("https://example.test/known").respond(200)
    client = make_http_client(router, log)
    with pytest.raises(UnmockedRequest, match=r"no mock for DELETE https://example\.test/other"):
        run(client.delete("https://example.test/other"))


def test_respx_catch_all_router_is_honoured(log: EffectLog) -> None:
    # assert_all_mocked=False is respx's own opt-in to answer everything with 200.
    router = respx.Router(assert_all_mocked=False)
    client = make_http_client(router, log)

    async def call() -> int:
        return (await client.get("https://example.test/anything")).status_code

    assert run(call()) == 200


def test_respx_pass_through_is_refused(log: EffectLog) -> None:
    router = respx.Router()
    router.get("https://example.test/real").pass_through()
    client = make_http_client(router, log)
    with pytest.raises(UnmockedRequest, match="pass-through is not allowed"):
        run(client.get("https://example.test/real"))


def test_real_network_transports_are_refused(log: EffectLog) -> None:
    with (
        httpx.HTTPTransport() as sync_transport,
        pytest.raises(TypeError, match="HTTPTransport reaches the real network"),
    ):
        make_http_client(sync_transport, log)

    async def check_async() -> None:
        async with httpx.AsyncHTTPTransport() as async_transport:
            with pytest.raises(TypeError, match="AsyncHTTPTransport reaches the real network"):
                make_http_client(async_transport, log)

    asyncio.run(check_async())


@pytest.mark.parametrize("mock", [42, "https://example.test", {"GET /": 200}])
def test_unknown_mock_types_are_refused(log: EffectLog, mock: Any) -> None:
    with pytest.raises(TypeError, match=r"cannot use .* as a mock"):
        make_http_client(mock, log)


def test_mock_must_return_a_response(log: EffectLog) -> None:
    not_a_response: Any = lambda request: {"status": 200}  # noqa: E731
    client = make_http_client(not_a_response, log)
    with pytest.raises(TypeError, match=r"answered GET https://example\.test/ with dict"):
        run(client.get("https://example.test/"))


# --- what is recorded ---------------------------------------------------------------------------


def test_every_request_is_recorded_in_order_with_its_step(log: EffectLog) -> None:
    client = make_http_client(
        lambda r: charge(r) if r.method == "POST" else httpx.Response(200, json=[]), log
    )
    log.step = "Payment.charge#1"
    run(post_charge(client, 100))
    log.step = "Payment.charge#2"
    run(post_charge(client, 200))
    run(client.get("https://api.stripe.com/v1/charges", params={"limit": 2}))
    assert log.summaries() == [
        'POST https://api.stripe.com/v1/charges {"amount":100,"currency":"usd"}',
        'POST https://api.stripe.com/v1/charges {"amount":200,"currency":"usd"}',
        "GET https://api.stripe.com/v1/charges?limit=2",
    ]
    assert [e.step for e in log.effects] == [
        "Payment.charge#1",
        "Payment.charge#2",
        "Payment.charge#2",
    ]
    assert {e.kind for e in log.effects} == {"http"}


def test_json_bodies_compare_by_content_not_key_order(log: EffectLog) -> None:
    client = make_http_client(charge, log)

    async def send(body: bytes) -> None:
        await client.post(URL, content=body, headers={"content-type": "application/json"})

    run(send(b'{"currency": "usd", "amount": 5}'))
    run(send(b'{"amount":5,"currency":"usd"}'))
    first, second = log.summaries()
    assert first == second == 'POST https://api.stripe.com/v1/charges {"amount":5,"currency":"usd"}'


def test_detail_redacts_secrets_and_keeps_idempotency_keys(log: EffectLog) -> None:
    client = make_http_client(charge, log)

    async def call() -> None:
        await client.post(
            URL,
            json={"amount": 5},
            headers={
                "Authorization": "Bearer sk_live_secret",
                "Idempotency-Key": "order-42",
                "X-Api-Key": "hunter2",
            },
        )

    run(call())
    (effect,) = log.effects
    assert effect.detail["headers"] == {
        "authorization": "<redacted>",
        "idempotency-key": "order-42",
        "x-api-key": "<redacted>",
        "content-type": "application/json",
    }
    assert effect.detail["method"] == "POST"
    assert effect.detail["url"] == URL
    assert effect.detail["body"] == '{"amount":5}'
    assert "sk_live_secret" not in json.dumps(effect.to_dict())
    assert "hunter2" not in json.dumps(effect.to_dict())


def test_credentials_in_the_query_are_redacted(log: EffectLog) -> None:
    client = make_http_client(lambda r: httpx.Response(200), log)
    run(client.get("https://maps.test/geo", params={"q": "Paris", "key": "AIza-secret"}))
    run(client.get("https://maps.test/geo", params={"q": "Rome", "access_token": "t0k"}))
    assert log.summaries() == [
        "GET https://maps.test/geo?q=Paris&key=%3Credacted%3E",
        "GET https://maps.test/geo?q=Rome&access_token=%3Credacted%3E",
    ]
    assert "AIza-secret" not in json.dumps([e.to_dict() for e in log.effects])


def test_binary_and_large_bodies_are_summarized_by_digest(log: EffectLog) -> None:
    client = make_http_client(lambda r: httpx.Response(204), log)
    run(client.put("https://example.test/blob", content=b"\xff\x00\xfe"))
    run(client.put("https://example.test/big", content=b"x" * 5000))
    binary, big = log.effects
    assert binary.summary.startswith("PUT https://example.test/blob sha256:")
    assert "body" not in binary.detail
    assert binary.detail["body_bytes"] == 3
    assert big.summary == f"PUT https://example.test/big sha256:{big.detail['body_sha256']}"
    assert big.detail["body"] == "x" * 5000


def test_effects_compare_by_kind_step_and_summary(log: EffectLog) -> None:
    a = Effect("http", "S#1", "GET https://x", {"headers": {"a": "1"}})
    b = Effect("http", "S#1", "GET https://x", {"headers": {"a": "2"}})
    assert a == b
    assert len({a, b}) == 1
    assert a.to_dict()["detail"] == {"headers": {"a": "1"}}


def test_unclosed_clients_leave_no_resource_warning(log: EffectLog) -> None:
    client = make_http_client(charge, log)
    run(post_charge(client))
    del client
    gc.collect()  # filterwarnings=error turns a ResourceWarning into a failure


# --- inside the simulator ------------------------------------------------------------------------


def test_raw_step_calls_the_mock_inside_the_simulator(log: EffectLog) -> None:
    router = respx.Router()
    router.post(URL).mock(side_effect=charge)
    client = make_http_client(router, log)

    @Workflow("http-in-sim")
    async def flow(wf: Any, params: Any) -> Any:
        async def call() -> Any:
            return await post_charge(client, params["amount"])

        status, body = await wf.do("call", call)
        return {"status": status, "body": body}

    with Simulator() as sim:
        inst = sim.create(flow, {"amount": 990})
        sim.run()
        assert inst.status()["output"] == {"status": 201, "body": {"id": "ch_1", "amount": 990}}
    assert log.summaries() == [
        'POST https://api.stripe.com/v1/charges {"amount":990,"currency":"usd"}'
    ]


def test_a_mock_that_waits_in_virtual_time(log: EffectLog) -> None:
    async def slow(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(30)  # virtual: the simulator jumps its clock
        return httpx.Response(200, json={"late": True})

    client = make_http_client(slow, log)

    @Workflow("http-slow")
    async def flow(wf: Any, params: Any) -> Any:
        async def call() -> Any:
            return (await client.get("https://example.test/slow")).json()

        return await wf.do("call", call)

    with Simulator() as sim:
        inst = sim.create(flow)
        sim.run()
        assert inst.status()["output"] == {"late": True}
        assert sim.now_ms >= 30_000


def test_unmocked_request_fails_the_step_in_the_simulator(log: EffectLog) -> None:
    client = make_http_client(None, log)

    @Workflow("http-unmocked")
    async def flow(wf: Any, params: Any) -> Any:
        async def call() -> Any:
            return (await client.get("https://example.test/nowhere")).json()

        return await wf.do("call", call, retries={"limit": 1, "delay": 10})

    with Simulator() as sim:
        inst = sim.create(flow)
        sim.run()
        status = inst.status()
    assert status["status"] == "errored"
    assert status["error"]["name"] == "UnmockedRequest"
    assert "no mock for GET https://example.test/nowhere" in status["error"]["message"]
    # Retried like any failure, and each attempt is an effect.
    assert log.summaries() == ["GET https://example.test/nowhere"] * 2
