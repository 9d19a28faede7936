"""`wf.do(name, fn)` with something that is not a function fails at once, saying what to pass.

`wf.do("x", 5)` or `wf.do("x", fetch())` (the call instead of the function) used to fail
each attempt with "'int' object is not callable", retried with backoff until the retries ran
out, minutes of virtual time later, and an un-awaited coroutine warning on top."""

from __future__ import annotations

from typing import Any

import pytest

from awf_sim import Simulator, Workflow


async def fetch() -> int:
    return 1


@pytest.mark.parametrize(
    ("make", "kind"), [(lambda: 5, "int"), (fetch, "coroutine"), (lambda: None, "NoneType")]
)
def test_a_non_function_is_refused_before_any_attempt(make: Any, kind: str) -> None:
    @Workflow(f"do-callable-{kind.lower()}")
    async def flow(wf: Any, params: Any) -> Any:
        return await wf.do("x", make())

    with Simulator() as sim:
        inst = sim.create(flow, {})
        sim.run()
        error = inst.status()["error"]
        attempts = [e for e in inst.timeline if e["kind"] == "attempt-start"]
    assert error["name"] == "DefinitionError"
    assert (
        f"fn must be a function that takes no arguments (sync or async), got {kind}"
        in (error["message"])
    )
    assert "wf.do('x', lambda: fetch(url))" in error["message"]
    assert attempts == []


def test_a_function_still_runs() -> None:
    @Workflow("do-callable-ok")
    async def flow(wf: Any, params: Any) -> Any:
        return [await wf.do("a", fetch), await wf.do("b", lambda: 2)]

    with Simulator() as sim:
        inst = sim.create(flow, {})
        sim.run()
        assert inst.status()["output"] == [1, 2]
