"""create() with an id already in use: Miniflare returns it and leaves the first instance as it
is (profile local); the production profile refuses it (fidelity pass 2)."""

from __future__ import annotations

from typing import Any

import pytest

from awf_sim import Workflow
from awf_sim.errors import InstanceError


@Workflow("echo-params")
async def _echo(wf: Any, params: Any) -> Any:
    await wf.sleep("nap", "1 second")
    return params


def test_local_returns_the_existing_instance_unchanged(make_sim: Any) -> None:
    sim = make_sim(profile="local")
    first = sim.create(_echo, {"n": 1}, id="order-1")
    sim.advance("100 ms")
    again = sim.create(_echo, {"n": 2}, id="order-1")
    sim.run()
    assert again.id == first.id
    assert first.status()["output"] == {"n": 1}


def test_production_refuses_a_duplicate_id(make_sim: Any) -> None:
    sim = make_sim()
    sim.create(_echo, {"n": 1}, id="order-1")
    with pytest.raises(InstanceError, match="already exists"):
        sim.create(_echo, {"n": 2}, id="order-1")
