"""One World value carries what a simulation sees, through every layer that passes it on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from awf_sim import DefinitionError, Domain, Simulator, Workflow, World
from awf_sim.chaos import Target
from awf_sim.flow import load_flow
from awf_sim.testing import create_test_workflow, mock_database

ROOT = Path(__file__).resolve().parents[2]


async def _count(ctx_owner: Any, args: Any, ctx: Any) -> Any:
    row = await ctx.db.query_one("SELECT COUNT(*) AS n FROM items")
    return {"n": row["n"], "env": ctx.env.get("MODE")}


WorldItems = Domain("WorldItems", {"count": _count})


@Workflow("world-flow")
async def world_flow(wf: Any, params: Any) -> Any:
    return await wf.WorldItems({}).count()


DB = mock_database({"items": [{"id": 1}, {"id": 2}]})


def test_a_simulator_takes_a_world() -> None:
    world = World(db=DB, env={"MODE": "w"}, seed=3, profile="local")
    with Simulator(world=world) as sim:
        inst = sim.create(world_flow, {})
        sim.run()
        assert inst.status()["output"] == {"n": 2, "env": "w"}
        assert (sim.seed, sim.profile, sim.world) == (3, "local", world)


def test_world_and_loose_keywords_do_not_mix() -> None:
    with pytest.raises(DefinitionError, match="either world="):
        Simulator(seed=1, world=World())
    with pytest.raises(DefinitionError, match="either world="):
        create_test_workflow(world_flow, db=DB, world=World())


def test_a_test_workflow_takes_a_world() -> None:
    wf = create_test_workflow(world_flow, world=World(db=DB, env={"MODE": "t"}, seed=5))
    assert wf.run({}) == {"n": 2, "env": "t"}
    assert wf.seed == 5


def test_world_replace_and_the_flow_file_world() -> None:
    flow = load_flow(ROOT / "examples" / "order_processing.py")
    world = flow.world.replace(seed=9)
    assert world.db is flow.database
    assert (world.seed, flow.world.seed) == (9, 0)
    target = Target.of(flow.pick(None), {}, world)
    assert target.world == world
