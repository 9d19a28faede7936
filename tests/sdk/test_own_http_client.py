"""A handler that builds its own httpx client instead of using ctx.http is refused with the
network guard's message, whichever way it calls it.

Before, an `httpx.AsyncClient()` of the handler's own failed with anyio's "Attempted to exit
cancel scope in a different task than it was entered in", from deep inside httpcore: its
connection lock opened a cancel scope on the task that started the handler, and the handler
went on on another one. Nothing in that said "network" or "mock".
"""

from __future__ import annotations

from typing import Any

import httpx
import respx

from awf_sim import Domain, Simulator, Workflow


async def own_async_client(context: Any, args: Any, ctx: Any) -> Any:
    async with httpx.AsyncClient() as client:
        return (await client.get("https://api.example.com/v1/items?token=sk_live_1")).json()


def own_sync_client(context: Any, args: Any, ctx: Any) -> Any:
    with httpx.Client() as client:
        return client.post("https://api.example.com/v1/items", json={}).json()


def _error_of(handler: Any) -> dict[str, Any]:
    call = {"handler": handler, "retries": {"limit": 0, "delay": "1s"}}
    dom = Domain(handler.__name__.title().replace("_", ""), {"call": call})
    flow = Workflow("own-client", lambda wf, p: getattr(wf, dom.name)({}).call(), domains=[dom])
    with Simulator() as sim:
        inst = sim.create(flow, {})
        sim.run()
        status = inst.status()
        assert status["status"] == "errored"
        error: dict[str, Any] = status["error"]
        return error


def test_an_own_async_client_is_refused_with_the_mock_hint() -> None:
    error = _error_of(own_async_client)
    assert error["name"] == "NetworkAccessRefused"
    assert "send GET https://api.example.com/v1/items." in error["message"]
    assert "use ctx.http" in error["message"]
    assert "sk_live_1" not in error["message"]  # the query may carry credentials


def test_an_own_sync_client_is_refused_with_the_mock_hint() -> None:
    error = _error_of(own_sync_client)
    assert error["name"] == "NetworkAccessRefused"
    assert "send POST https://api.example.com/v1/items." in error["message"]


def test_respx_mock_still_answers_an_own_client_first() -> None:
    # respx.mock patches httpcore's pool, above the connection the guard sits on.
    with respx.mock:
        respx.get("https://api.example.com/v1/items").respond(json={"items": []})
        dom = Domain("Mocked", {"call": own_async_client})
        flow = Workflow("own-client", lambda wf, p: wf.Mocked({}).call(), domains=[dom])
        with Simulator() as sim:
            inst = sim.create(flow, {})
            sim.run()
            assert inst.status()["output"] == {"items": []}
