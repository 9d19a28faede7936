"""Issue 17 (point 3's last clause): ctx.env is read-only, so one attempt cannot change what
the next one sees."""

from __future__ import annotations

from typing import Any

import pytest

from awf_sim import Domain, Simulator, Workflow


def test_a_step_cannot_change_what_the_next_one_sees() -> None:
    seen: list[Any] = []

    async def meddle(c: Any, a: Any, ctx: Any) -> Any:
        seen.append((ctx.env["MODE"], list(ctx.env["LIMITS"]["tiers"])))
        for mutate in (
            lambda: ctx.env.__setitem__("MODE", "evil"),
            lambda: ctx.env["LIMITS"].__setitem__("max", 0),
            lambda: ctx.env["LIMITS"]["tiers"].append(9),
            lambda: ctx.env.pop("MODE"),
        ):
            with pytest.raises((TypeError, AttributeError)):
                mutate()
        return "ok"

    envy = Domain("Envy", {"meddle": meddle})

    @Workflow("env-read-only", domains=[envy])
    async def flow(wf: Any, p: Any) -> Any:
        await wf.Envy({"n": 1}).meddle()
        return await wf.Envy({"n": 2}).meddle()

    env = {"MODE": "test", "LIMITS": {"max": 3, "tiers": [1, 2]}}
    with Simulator(env=env) as sim:
        inst = sim.create(flow, {})
        sim.run()
        assert inst.status()["status"] == "complete", inst.status()
    assert seen == [("test", [1, 2]), ("test", [1, 2])]
    assert env == {"MODE": "test", "LIMITS": {"max": 3, "tiers": [1, 2]}}  # the caller's too


def test_create_test_context_gives_the_same_read_only_env() -> None:
    # Before, create_test_context handed the handler a plain dict: a handler writing to
    # ctx.env passed its unit test, changed the test's own nested values, and then failed
    # with TypeError once it ran in a workflow.
    from awf_sim.testing import create_test_context

    env = {"MODE": "test", "LIMITS": {"max": 3, "tiers": [1, 2]}}
    ctx = create_test_context(env=env)
    assert ctx.env["MODE"] == "test"
    assert dict(ctx.env["LIMITS"]) == {"max": 3, "tiers": (1, 2)}
    for mutate in (
        lambda: ctx.env.__setitem__("MODE", "evil"),
        lambda: ctx.env["LIMITS"].__setitem__("max", 0),
        lambda: ctx.env["LIMITS"]["tiers"].append(9),
        lambda: ctx.env.update(MODE="evil"),
    ):
        with pytest.raises((TypeError, AttributeError)):
            mutate()
    assert env == {"MODE": "test", "LIMITS": {"max": 3, "tiers": [1, 2]}}
    with pytest.raises(TypeError, match=r"ctx\.env is read-only"):
        ctx.env["NEW"] = 1
