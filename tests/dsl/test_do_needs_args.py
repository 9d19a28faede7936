"""wf.do(name, fn) calls fn() with no arguments (DESIGN §9). A function that needs some failed
each attempt with "missing 1 required positional argument", retried with backoff until the
retries ran out; it is now a DefinitionError before any attempt that names what it needs."""

from __future__ import annotations

import functools
from typing import Any

import pytest

from awf_sim import Simulator, Workflow
from awf_sim.dsl._proxy import _required_params


async def charge(order: Any, amount: int = 1) -> Any:
    return {"charged": amount}


class Client:
    def fetch(self, url: str) -> str:
        return url

    def ping(self) -> str:
        return "pong"


@Workflow("dn-needs-args")
async def needs_args(wf: Any, params: Any) -> Any:
    return await wf.do("charge", charge)


@Workflow("dn-no-args")
async def no_args(wf: Any, params: Any) -> Any:
    client = Client()
    first = await wf.do("ping", client.ping)
    second = await wf.do("charge", functools.partial(charge, params))
    third = await wf.do("lambda", lambda: charge(params, amount=3))
    return [first, second, third]


def test_a_function_that_needs_arguments_is_refused_before_any_attempt() -> None:
    with Simulator() as sim:
        inst = sim.create(needs_args, {})
        sim.run()
        status = inst.status()
    assert status["status"] == "errored"
    message = status["error"]["message"]
    assert "fn is called with no arguments, but charge needs 'order'" in message
    assert "lambda: charge(order)" in message
    # not retried: no attempt ever started
    assert not [e for e in inst.timeline if e["kind"] == "attempt-start"]


def test_functions_that_take_no_arguments_still_run() -> None:
    with Simulator() as sim:
        inst = sim.create(no_args, {"id": 1})
        sim.run()
        assert inst.status()["output"] == ["pong", {"charged": 1}, {"charged": 3}]


@pytest.mark.parametrize(
    ("fn", "needs"),
    [
        (lambda: 1, []),
        (lambda a, b=2: 1, ["a"]),
        (lambda *, k: 1, ["k"]),
        (lambda *, k=1: 1, []),
        (lambda *args, **kwargs: 1, []),
        (Client().fetch, ["url"]),
        (Client().ping, []),
        (Client.ping, ["self"]),
        (functools.partial(charge, {}), []),  # not a plain function: taken as it is
        (print, []),
    ],
)
def test_required_params(fn: Any, needs: list[str]) -> None:
    assert _required_params(fn) == needs
