"""A run paces the cyclic collector (`engine._gcpace`): the young generation's threshold is
raised while the run lasts and the caller's own is back after it, however the run ends; a
collector that is off, or set slower already, is left as the caller set it."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from awf_sim import Domain, Workflow
from awf_sim.engine._gcpace import YOUNG

seen: list[tuple[int, int, int]] = []


async def look(p: Any, args: Any, ctx: Any) -> int:
    seen.append(gc.get_threshold())
    return 1


Gc = Domain("Gc", {"look": look})


@Workflow("gc-look", domains=[Gc])
async def gc_look(wf: Any, p: Any) -> Any:
    return await wf.Gc(p).look()


@pytest.fixture(autouse=True)
def caller_thresholds() -> Iterator[None]:
    before, enabled = gc.get_threshold(), gc.isenabled()
    seen.clear()
    yield
    gc.set_threshold(*before)
    if enabled:
        gc.enable()


def test_a_run_raises_the_young_threshold_and_puts_the_callers_back(make_sim: Any) -> None:
    gc.set_threshold(700, 11, 12)
    sim = make_sim()
    sim.create(gc_look, {"n": 1})
    sim.run()
    assert seen == [(YOUNG, 11, 12)]
    assert gc.get_threshold() == (700, 11, 12)


def test_the_callers_thresholds_come_back_when_the_run_raises(make_sim: Any) -> None:
    gc.set_threshold(500, 10, 10)
    sim = make_sim()

    def stop() -> bool:
        raise KeyError("condition failed")

    sim.create(gc_look, {"n": 1})
    with pytest.raises(KeyError):
        sim.run_until(stop)
    assert gc.get_threshold() == (500, 10, 10)


@pytest.mark.parametrize("setting", ["disabled", "slower"])
def test_a_collector_set_by_the_caller_is_left_alone(make_sim: Any, setting: str) -> None:
    if setting == "disabled":
        gc.set_threshold(700, 10, 10)
        gc.disable()
        expected = (700, 10, 10)
    else:
        expected = (YOUNG * 3, 10, 10)
        gc.set_threshold(*expected)
    sim = make_sim()
    sim.create(gc_look, {"n": 1})
    sim.run()
    assert seen == [expected]
    assert gc.get_threshold() == expected
    assert gc.isenabled() == (setting != "disabled")


def test_thresholds_the_run_itself_sets_are_kept(make_sim: Any) -> None:
    gc.set_threshold(700, 10, 10)

    async def retune(p: Any, args: Any, ctx: Any) -> int:
        gc.set_threshold(1234, 10, 10)
        return 1

    retuning = Domain("Retune", {"retune": retune})

    @Workflow("gc-retune", domains=[retuning])
    async def flow(wf: Any, p: Any) -> Any:
        return await wf.Retune(p).retune()

    sim = make_sim()
    sim.create(flow, {})
    sim.run()
    assert gc.get_threshold() == (1234, 10, 10)


def test_runs_on_two_threads_restore_the_callers_thresholds_once_both_end(make_sim: Any) -> None:
    gc.set_threshold(700, 10, 10)
    inside = threading.Barrier(2, timeout=30)

    async def meet(p: Any, args: Any, ctx: Any) -> int:
        inside.wait()  # both runs are inside at once here
        seen.append(gc.get_threshold())
        inside.wait()  # neither leaves before the other has looked
        return 1

    meeting = Domain("Meet", {"meet": meet})

    @Workflow("gc-meet", domains=[meeting])
    async def flow(wf: Any, p: Any) -> Any:
        return await wf.Meet(p).meet()

    sims = [make_sim(), make_sim()]
    for sim in sims:
        sim.create(flow, {})
    errors: list[BaseException] = []

    def drive(sim: Any) -> None:
        try:
            sim.run()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=drive, args=(s,)) for s in sims]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert seen == [(YOUNG, 10, 10)] * 2
    assert gc.get_threshold() == (700, 10, 10)
