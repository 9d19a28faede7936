"""A new engine on a store that already holds instances goes on from the store's last moment.

A process that opens a store another process wrote (awf-sim run --store after a kill, a
Simulator(store="run.db") in a new script) is that engine's next lifetime: on Cloudflare the
clock has moved on meanwhile, never back. Its virtual clock used to start at 0 again, so a step
after a 10-day sleep read the same `datetime.now()` as the step before it, the timeline went
back in time, and a pause made in one process and resumed in another shortened the sleep it
interrupted by the paused instant (the paused span came out negative).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from awf_sim import Simulator, Workflow
from awf_sim.engine import MemoryStore

DAY_MS = 86_400_000


def _stamp() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


@Workflow("clock-resumes")
async def clocked(wf: Any, params: Any) -> Any:
    before = await wf.do("before", _stamp)
    await wf.sleep("ten-days", "10 days")
    await wf.wait_for("go", type="go", timeout="1 day")
    after = await wf.do("after", _stamp)
    return {"before": before, "after": after}


def _at_ms(inst: Any) -> list[int]:
    return [e["at_ms"] for e in inst.timeline]


def test_a_new_process_on_a_sqlite_store_resumes_the_clock_where_the_store_left_it(
    tmp_path: Path,
) -> None:
    store = str(tmp_path / "run.db")
    first = Simulator(store=store)
    first.create(clocked, {}, id="c1")
    first.run()  # asleep 10 days, then waiting for "go"
    assert first.now_ms == 10 * DAY_MS
    first.close()

    second = Simulator(store=store)
    try:
        assert second.now_ms == 10 * DAY_MS  # was 0
        (inst,) = second.recover()
        inst.send_event("go", {})
        second.run()
        out = inst.status()["output"]
        assert out["before"] == "2026-01-01T00:00:00+00:00"
        assert out["after"] == "2026-01-11T00:00:00+00:00"  # was 2026-01-01 again
        times = _at_ms(inst)
        assert times == sorted(times), "the timeline went back in time"
    finally:
        second.close()


def test_a_pause_resumed_by_another_process_does_not_shorten_the_sleep(tmp_path: Path) -> None:
    store = str(tmp_path / "run.db")
    first = Simulator(store=store)
    inst = first.create(clocked, {}, id="c1")
    first.advance("5 days")
    inst.pause()
    first.close()

    second = Simulator(store=store)
    try:
        inst = second.instance("c1")
        inst.resume()
        second.run()
        ends = [e["at_ms"] for e in inst.timeline if e["kind"] == "sleep-end"]
        assert ends == [10 * DAY_MS]  # was 5 days: a negative paused span moved it earlier
    finally:
        second.close()


def test_a_memory_store_handed_to_a_new_simulator_keeps_its_clock_too() -> None:
    store = MemoryStore()
    first = Simulator(store=store)
    first.create(clocked, {}, id="c1")
    first.run()
    first.close()

    second = Simulator(store=store)
    try:
        assert second.now_ms == 10 * DAY_MS
    finally:
        second.close()


def test_an_empty_store_starts_at_zero(tmp_path: Path) -> None:
    for store in (MemoryStore(), str(tmp_path / "new.db")):
        sim = Simulator(store=store)
        try:
            assert sim.now_ms == 0
        finally:
            sim.close()
