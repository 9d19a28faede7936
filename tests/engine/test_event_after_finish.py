"""An event sent to a finished instance: Miniflare takes it without a word (profile local);
the production profile refuses it (fidelity pass 2)."""

from __future__ import annotations

from typing import Any

import pytest

from awf_sim import Workflow
from awf_sim.errors import InstanceError


@Workflow("done-at-once")
async def _done(wf: Any, _: Any) -> int:
    return 1


def test_an_event_to_a_finished_instance_local_takes_it_production_refuses(
    make_sim: Any,
) -> None:
    local = make_sim(profile="local")
    inst = local.create(_done)
    local.run()
    inst.send_event("late", 1)  # Miniflare buffers it and nothing happens
    assert inst.status()["status"] == "complete"
    prod = make_sim()
    inst = prod.create(_done)
    prod.run()
    with pytest.raises(InstanceError, match="can no longer receive events"):
        inst.send_event("late", 1)
