"""Instance.step_outputs(): step results and received event payloads in the order they
completed, as Miniflare's status() reports them (__LOCAL_DEV_STEP_OUTPUTS); a cached replay adds
nothing, a failure adds nothing."""

from __future__ import annotations

from typing import Any


class _Flow:
    async def run(self, event: Any, step: Any) -> Any:
        @step.do("a")
        async def a() -> Any:
            return {"x": [1]}

        @step.do("bad", config={"retries": {"limit": 0, "delay": 0}})
        async def bad() -> Any:
            raise ValueError("no")

        await a()
        try:
            await bad()
        except Exception:
            pass
        ev = await step.wait_for_event("w", "t")
        await step.sleep("z", 1000)
        await a()
        return ev["payload"]


def test_step_outputs_in_completion_order_without_replays(make_sim: Any) -> None:
    sim = make_sim(profile="local")
    inst = sim.create(_Flow)
    sim.run_until_done(inst, max_ms=10)
    inst.send_event("t", {"by": "ana"})
    sim.run_until_done(inst, max_ms=100)
    inst.pause()  # during the sleep: the resume replays a, the failure and the wait from cache
    sim.advance(50)
    inst.resume()
    sim.run()
    assert inst.status()["status"] == "complete"
    assert inst.step_outputs() == [{"x": [1]}, {"by": "ana"}, {"x": [1]}]
