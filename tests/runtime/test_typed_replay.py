"""A typed step result is the same type after a replay on the real runtime, as in the simulator.

The Worker's host process is stopped while the instance waits for an event (a crash of the
machine running it) and a new one is started on the same persisted state: Miniflare's engine
runs the workflow again from the top in a fresh Pyodide, the step's result comes from its
checkpoint (its handler does not run again), and the workflow still gets a `Priced`, not a dict.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from awf_deploy import build_bundle, write_bundle
from awf_deploy._harness import RealRuntime
from awf_sim import Simulator
from awf_sim.flow import load_flow

pytestmark = pytest.mark.usefixtures("flow_registry", "real_runtime_installed")

FLOW = Path(__file__).with_name("typed_replay.py")
EXPECTED = {"kinds": ["Item", "Priced"], "cents": 250}


def test_the_simulator_replays_the_typed_result_as_its_type() -> None:
    flow = load_flow(FLOW)
    workflow = flow.pick("typed-replay")
    with Simulator() as sim:
        inst = sim.create(workflow, {"sku": "ABC"})
        sim.run_until(lambda: inst.status()["status"] == "waiting")
        sim.crash()
        sim.recover()
        inst.send_event("go", {})
        sim.run_until_done(inst)
        assert inst.status()["output"] == EXPECTED


def test_the_real_runtime_replays_the_typed_result_as_its_type(tmp_path: Path) -> None:
    flow = load_flow(FLOW)
    bundle = build_bundle(FLOW, flow=flow, name="typed-replay")
    folder = write_bundle(bundle, tmp_path / "bundle")
    state = tmp_path / "state"
    state.mkdir()
    with RealRuntime(timeout=90) as first:
        first.load(bundle, folder, persist=state)
        first.create("typed-replay", {"sku": "ABC"}, id="tr-1", fast=True)
        waiting = first.wait("typed-replay", "tr-1", timeout=5, until=["waiting"])
        assert waiting["status"] == "running"  # how Miniflare reports a waiting instance
        assert waiting["__LOCAL_DEV_STEP_OUTPUTS"] == [{"sku": "ABC", "cents": 250}]
    with RealRuntime(timeout=90) as second:  # a new process: nothing of the first run's memory
        second.load(bundle, folder, persist=state)
        second.send_event("typed-replay", "tr-1", "go", {})
        done = second.wait("typed-replay", "tr-1", timeout=30)
        assert done["status"] == "complete", done
        assert done["output"] == EXPECTED
        # The step ran once, before the restart; this run read it from its checkpoint.
        assert done["__LOCAL_DEV_STEP_OUTPUTS"] == [{"sku": "ABC", "cents": 250}, {}]
        assert ("do", "Shop.price@cd78dc4a674b142d") in second.steps("tr-1")
