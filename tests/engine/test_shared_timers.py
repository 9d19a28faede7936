"""Waits due at the same virtual millisecond share one loop timer (`VirtualLoop.wake_at`).
Sharing must not change what each instance sees: one that ends while it sleeps lets go of
its place without waking or holding back the others, and a timer nobody waits for any more
does not move the clock."""

from __future__ import annotations

from typing import Any

from awf_sim import Workflow
from awf_sim.engine._loop import VirtualLoop

DAY_MS = 86_400_000


@Workflow("naps")
async def naps(wf: Any, p: Any) -> Any:
    await wf.sleep("nap", "1 day")
    return p["n"]


@Workflow("long-nap")
async def long_nap(wf: Any, p: Any) -> Any:
    await wf.sleep("nap", "2 days")
    return "late"


def test_instances_sleeping_alike_all_wake_at_their_time(make_sim: Any) -> None:
    sim = make_sim()
    insts = [sim.create(naps, {"n": n}) for n in range(5)]
    sim.run()
    assert [i.status()["status"] for i in insts] == ["complete"] * 5
    assert [i.status()["output"] for i in insts] == list(range(5))
    assert sim.now_ms == DAY_MS


def test_an_instance_ended_while_it_sleeps_does_not_hold_the_others_back(make_sim: Any) -> None:
    sim = make_sim()
    gone, *stay = [sim.create(naps, {"n": n}) for n in range(3)]
    sim.advance("1 hour")
    gone.terminate()
    sim.run()
    assert gone.status()["status"] == "terminated"
    assert [i.status()["status"] for i in stay] == ["complete", "complete"]
    assert sim.now_ms == DAY_MS


def test_a_shared_timer_nobody_waits_for_any_more_does_not_move_the_clock() -> None:
    loop = VirtualLoop()
    try:
        first, second = loop.create_future(), loop.create_future()
        alarms = [loop.wake_at(5_000, first), loop.wake_at(5_000, second)]
        alarms[0].cancel()
        loop.run(lambda: second.done())
        assert (first.done(), second.done(), loop.now_ms) == (False, True, 5_000)

        gone = [loop.wake_at(9_000, loop.create_future()) for _ in range(2)]
        for alarm in gone:
            alarm.cancel()
            alarm.cancel()  # twice is once
        loop.run(lambda: False)  # stops when nothing is left to happen
        assert loop.now_ms == 5_000
    finally:
        loop.close()


def test_a_crash_mid_sleep_keeps_the_shared_wake_up(make_sim: Any) -> None:
    sim = make_sim()
    short = [sim.create(naps, {"n": n}) for n in range(2)]
    late = sim.create(long_nap, {})
    sim.advance("1 hour")
    sim.crash()
    sim.recover()
    sim.run_until(lambda: all(i.status()["status"] == "complete" for i in short))
    assert sim.now_ms == DAY_MS
    assert late.status()["status"] == "waiting"
    sim.run()
    assert late.status()["output"] == "late"
    assert sim.now_ms == 2 * DAY_MS
