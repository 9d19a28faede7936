"""`Instance.restart(from_=...)`: Cloudflare's `restart({from})` (workflows-shared
lib/restart.ts, Miniflare >= 4.20260430.0). The steps started before the chosen one replay from
storage; it and every step started after it run again; an unknown step is refused with the
engine's text before anything is aborted."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from awf_sim import DefinitionError, InstanceError, Workflow


def _flow(calls: list[str]) -> Any:
    def counted(name: str) -> Any:
        def run() -> str:
            calls.append(name)
            return f"{name}{calls.count(name)}"

        return run

    async def flow(wf: Any, _: Any) -> Any:
        a = await wf.do("a", counted("a"))
        await wf.sleep("nap", "1 second")
        b = await wf.do("b", counted("b"))
        b2 = await wf.do("b", counted("b"))
        c = await wf.do("c", counted("c"))
        return [a, b, b2, c]

    return flow


@pytest.mark.parametrize("store", ["memory", "sqlite"])
def test_restart_from_a_middle_step_replays_what_came_before(
    make_sim: Any, tmp_path: Path, store: str
) -> None:
    calls: list[str] = []
    kwargs = {"store": str(tmp_path / "s.db")} if store == "sqlite" else {}
    sim = make_sim(**kwargs)
    inst = sim.create(Workflow("rf", _flow(calls)))
    sim.run()
    assert inst.status()["output"] == ["a1", "b1", "b2", "c1"]
    inst.restart({"name": "b", "count": 2})
    sim.run()
    # a and the first b replay; the second b and c run again
    assert calls == ["a", "b", "b", "c", "b", "c"]
    assert inst.status()["output"] == ["a1", "b1", "b3", "c2"]
    assert inst.step_outputs() == ["a1", "b1", "b3", "c2"]


def test_restart_from_a_sleep_runs_the_sleep_again(make_sim: Any) -> None:
    calls: list[str] = []
    sim = make_sim()
    inst = sim.create(Workflow("rf", _flow(calls)))
    sim.run()
    inst.restart({"name": "nap", "type": "sleep"})
    sim.advance("500 ms")
    assert calls == ["a", "b", "b", "c"]  # the sleep is not over yet
    sim.run()
    assert calls == ["a", "b", "b", "c", "b", "b", "c"]


def test_restart_from_a_step_never_started_is_refused_and_changes_nothing(
    make_sim: Any,
) -> None:
    calls: list[str] = []
    sim = make_sim()
    inst = sim.create(Workflow("rf", _flow(calls)))
    sim.advance("100 ms")  # in the sleep: a has run
    for bad in ({"name": "b"}, {"name": "a", "count": 2}, {"name": "a", "type": "sleep"}):
        with pytest.raises(InstanceError) as info:
            inst.restart(bad)  # type: ignore[arg-type]
        assert str(info.value) == (
            f'(instance.cannot_restart) Step "{bad["name"]}" not found in execution history'
        )
    sim.run()
    assert calls == ["a", "b", "b", "c"]
    assert inst.status()["status"] == "complete"


def test_restart_from_without_a_name_says_what_it_takes(make_sim: Any) -> None:
    sim = make_sim()
    inst = sim.create(Workflow("rf", _flow([])))
    sim.run()
    with pytest.raises(DefinitionError, match=re.escape("takes {'name': STEP")):
        inst.restart({"count": 1})  # type: ignore[typeddict-item]
