"""`sim.effects`, the log of every AI call and HTTP request, reads like the list it looks like.

It had a length but no iteration: `for effect in sim.effects` failed with "'EffectLog' object
is not iterable", and the effects were only reachable as `sim.effects.effects`.
"""

from __future__ import annotations

from typing import Any

from awf_sim import Domain, Simulator, Workflow


async def ask(topic: Any, _args: Any, ctx: Any) -> Any:
    return await ctx.ai.generate(prompt=f"About {topic}")


Asker = Domain("EffectsAsker", {"ask": ask})


@Workflow("effects-iterable", domains=[Asker])
async def asking(wf: Any, params: Any) -> Any:
    return [await wf.EffectsAsker(t).ask() for t in params["topics"]]


def test_the_effect_log_iterates_over_its_effects() -> None:
    with Simulator() as sim:
        sim.create(asking, {"topics": ["tea", "rain"]})
        sim.run()
        effects = list(sim.effects)
    assert len(effects) == 2
    assert [e.kind for e in effects] == ["ai", "ai"]
    assert [e.detail["prompt"] for e in effects] == ["About tea", "About rain"]
    assert [e.step for e in effects] == ["EffectsAsker.ask#1", "EffectsAsker.ask#1"]
