"""Rendered times are the run's own: they count from the instance's start, not from the
moment the Simulator was created, so a second instance does not seem to start an hour in."""

from __future__ import annotations

from typing import Any

from rich.console import Console

from awf_sim import Domain, Simulator, Workflow
from awf_sim._report import RunResult
from awf_sim.testing import format_timeline


async def echo(c: Any, _: Any, ctx: Any) -> Any:
    return c


D = Domain("DurOwn", {"echo": echo})


@Workflow("dur-own", domains=[D])
async def napper(wf: Any, p: Any) -> int:
    await wf.DurOwn(1).echo()
    await wf.sleep("nap", "1 hour")
    return 1


def _second_instance_timeline() -> list[Any]:
    with Simulator() as sim:
        sim.create(napper, {})
        sim.run()  # the clock is now an hour in
        second = sim.create(napper, {})
        sim.run()
        return list(second.timeline)


def test_a_later_instance_renders_from_zero() -> None:
    timeline = _second_instance_timeline()
    assert timeline[0]["at_ms"] == 3_600_000  # stored times stay the simulator's clock
    lines = format_timeline(timeline).splitlines()
    assert lines[0].split() == ["0", "ms", "workflow-start"]
    assert lines[-1].split()[:3] == ["1", "h", "workflow-success"]


def test_a_cut_timeline_still_counts_from_the_run_start() -> None:
    timeline = [{"at_ms": 5000 + i * 1000, "kind": "sleep-end", "path": "nap"} for i in range(40)]
    lines = format_timeline(timeline).splitlines()
    assert lines[0] == "  ... 10 earlier entries"
    assert lines[1].split()[:2] == ["10", "s"]  # the first shown is entry 10: 10 s in


def test_run_result_says_how_long_the_run_took() -> None:
    timeline = _second_instance_timeline()
    result = RunResult("dur-own", "i", 0, "complete", 1, None, timeline)
    console = Console(width=100, record=True)
    console.print(result)
    text = console.export_text()
    assert "complete after 1 h of virtual time" in text
    assert " 0 ms │" in text
