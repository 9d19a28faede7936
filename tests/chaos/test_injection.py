"""Every fault kind does to the engine what its name says, where its selector points."""

from __future__ import annotations

import random
import time
from typing import Any

import pytest

from awf_sim import Domain, Workflow
from awf_sim.chaos import Baseline, Observation, Target, build_baseline, run_plan
from awf_sim.chaos._report import mark_timeline

calls: list[tuple[str, int]] = []


async def work(ctx_: Any, args: Any, ctx: Any) -> dict[str, Any]:
    calls.append((args["tag"], ctx.attempt))
    return {"tag": args["tag"], "at": time.time(), "rnd": random.random()}


InjWork = Domain(
    "InjWork",
    {
        "work": {
            "handler": work,
            "retries": {"limit": 3, "delay": "2 seconds", "backoff": "constant"},
            "timeout": "30 seconds",
        }
    },
)


@Workflow(
    "inj-flow",
    domains=[InjWork],
    events=[{"type": "go", "payload": {"ok": True}, "after": "2 hours"}],
)
async def flow(wf: Any, p: Any) -> Any:
    a = await wf.InjWork(p).work(tag="a")
    b = await wf.InjWork(p).work(tag="b")
    await wf.sleep("nap", "1 hour")
    ev = await wf.wait_for("gate", type="go", timeout="1 day")
    c = await wf.InjWork(p).work(tag="c")
    return {"a": a, "b": b, "c": c, "ev": ev}


@pytest.fixture(scope="module")
def base() -> Baseline:
    return build_baseline(Target(flow, {"id": "x"}))


def run(base: Baseline, plan: list[dict[str, Any]]) -> Observation:
    calls.clear()
    obs, _checked, _violations = run_plan(base, plan)
    assert obs.status == "complete", obs.error
    return obs


def kinds(obs: Observation) -> list[tuple[str, str | None, int | None, str | None]]:
    return [(e["kind"], e["path"], e["attempt"], e.get("fault")) for e in mark_timeline(obs)]


def test_the_baseline_finds_every_fault_point(base: Baseline) -> None:
    labels = [p.label for p in base.points]
    assert labels == [
        "InjWork.work#1",
        "InjWork.work#2",
        "sleep nap",
        "wait gate",
        "InjWork.work#3",
        "event go",
    ]
    assert base.points[1].selector == {"name": "InjWork.work", "index": 2}
    assert base.late_ms == {0: 3_600_000 + 86_400_000 - 1}
    singles = {(f["kind"], str(f.get("step", f.get("type")))) for f in base.singles}
    assert ("crash-during-sleep", "nap") in singles
    assert ("crash-during-wait", "gate") in singles
    assert {("event-early", "go"), ("event-late", "go"), ("event-duplicate", "go")} <= singles


def test_an_indexed_selector_hits_only_that_call(base: Baseline) -> None:
    obs = run(base, [{"kind": "crash-after-effect", "step": {"name": "InjWork.work", "index": 2}}])
    assert calls == [("a", 1), ("b", 1), ("b", 2), ("c", 1)]
    assert [f.occurrence for f in obs.fired] == [2]


def test_a_path_selector_fires_once_at_its_first_call(base: Baseline) -> None:
    obs = run(base, [{"kind": "crash-after-effect", "step": "InjWork.*"}])
    assert calls == [("a", 1), ("a", 2), ("b", 1), ("c", 1)]
    assert len(obs.fired) == 1


def test_crash_before_step_runs_nothing_and_replays(base: Baseline) -> None:
    obs = run(base, [{"kind": "crash-before-step", "step": {"name": "InjWork.work", "index": 1}}])
    assert calls == [("a", 1), ("b", 1), ("c", 1)]
    assert kinds(obs)[1:3] == [
        ("crash", "InjWork.work", None, "crash-before-step"),
        ("recover", None, None, None),
    ]


def test_crash_before_a_later_attempt_uses_up_that_attempt(base: Baseline) -> None:
    obs = run(
        base,
        [
            {"kind": "transient-error", "step": "InjWork.work", "attempt": 1},
            {"kind": "crash-before-step", "step": "InjWork.work", "attempt": 2},
        ],
    )
    assert calls[0] == ("a", 3)  # attempt 1 failed, attempt 2 crashed before its handler
    assert ("attempt-failure", "InjWork.work", 1, "transient-error") in kinds(obs)
    assert ("crash", "InjWork.work", 2, "crash-before-step") in kinds(obs)


def test_crash_after_effect_runs_the_handler_again(base: Baseline) -> None:
    obs = run(base, [{"kind": "crash-after-effect", "step": {"name": "InjWork.work", "index": 1}}])
    assert calls[:2] == [("a", 1), ("a", 2)]
    assert ("attempt-failure", "InjWork.work", 1, None) in kinds(obs)  # the crashed attempt


def test_crash_after_checkpoint_reads_the_checkpoint(base: Baseline) -> None:
    obs = run(
        base, [{"kind": "crash-after-checkpoint", "step": {"name": "InjWork.work", "index": 1}}]
    )
    assert calls == [("a", 1), ("b", 1), ("c", 1)]
    assert [kind for kind, _lifetime in obs.lifetimes] == ["workflow-start", "recover"]


def test_transient_error_is_retried_after_the_configured_delay(base: Baseline) -> None:
    obs = run(base, [{"kind": "transient-error", "step": {"name": "InjWork.work", "index": 3}}])
    failure = next(e for e in obs.timeline if e["kind"] == "attempt-failure")
    retry = next(e for e in obs.timeline if e["kind"] == "attempt-start" and e["attempt"] == 2)
    assert failure["retry_in_ms"] == 2000
    assert retry["at_ms"] - failure["at_ms"] == 2000
    assert calls == [("a", 1), ("b", 1), ("c", 2)]  # the handler did not run for attempt 1


def test_timeout_lets_the_handler_run_and_fails_after_the_configured_timeout(
    base: Baseline,
) -> None:
    obs = run(base, [{"kind": "timeout", "step": {"name": "InjWork.work", "index": 1}}])
    assert calls[:2] == [("a", 1), ("a", 2)]  # its effects happened, its result was ignored
    failure = next(e for e in mark_timeline(obs) if e["kind"] == "attempt-failure")
    assert failure["fault"] == "timeout"
    assert failure["at_ms"] == 30_000
    assert "timed out after 30000ms" in failure["error"]["message"]


def test_crash_during_sleep_replays_when_the_sleep_ends(base: Baseline) -> None:
    obs = run(base, [{"kind": "crash-during-sleep", "step": "nap"}])
    timeline = mark_timeline(obs)
    crash = next(e for e in timeline if e["kind"] == "crash")
    recover = next(e for e in timeline if e["kind"] == "recover")
    assert crash["fault"] == "crash-during-sleep"
    assert crash["at_ms"] == 0
    assert recover["at_ms"] == 3_600_000  # woken by its timer, an hour later
    assert calls == [("a", 1), ("b", 1), ("c", 1)]


def test_crash_during_wait_replays_when_the_event_arrives(base: Baseline) -> None:
    obs = run(base, [{"kind": "crash-during-wait", "step": "gate"}])
    timeline = mark_timeline(obs)
    crash = next(e for e in timeline if e["kind"] == "crash")
    recover = next(e for e in timeline if e["kind"] == "recover")
    assert crash["fault"] == "crash-during-wait"
    assert crash["at_ms"] == 3_600_000
    assert recover["at_ms"] == 7_200_000  # the event woke it
    assert obs.output["ev"] == {"ok": True}


@pytest.mark.parametrize(
    ("kind", "sent_at"),
    [
        ("event-early", [0]),
        ("event-late", [3_600_000 + 86_400_000 - 1]),
        ("event-duplicate", [7_200_000, 7_200_000]),
    ],
)
def test_event_faults_move_or_repeat_the_declared_event(
    base: Baseline, kind: str, sent_at: list[int]
) -> None:
    obs = run(base, [{"kind": kind, "type": "go"}])
    assert [s.at_ms for s in obs.sent] == sent_at
    assert any(e.get("fault") == kind for e in mark_timeline(obs))
    assert obs.output["ev"] == {"ok": True}


def test_clock_skew_replays_on_a_moved_wall_clock(base: Baseline) -> None:
    plan = [{"kind": "clock-skew", "step": {"name": "InjWork.work", "index": 1}, "ms": 3_600_000}]
    obs = run(base, plan)
    assert obs.output["a"]["at"] == base.obs.output["a"]["at"]  # checkpointed before the skew
    assert obs.output["b"]["at"] - base.obs.output["b"]["at"] == pytest.approx(3600)
    assert [kind for kind, _lifetime in obs.lifetimes] == ["workflow-start", "recover"]


def test_reseed_replays_with_other_randomness(base: Baseline) -> None:
    crash = {"kind": "crash-after-checkpoint", "step": {"name": "InjWork.work", "index": 1}}
    plain = run(base, [crash])
    reseeded = run(base, [{"kind": "reseed", "step": crash["step"], "seed": 99}])
    assert plain.output["a"] == reseeded.output["a"]
    assert plain.output["b"]["rnd"] != reseeded.output["b"]["rnd"]


def test_a_fault_whose_point_never_comes_does_not_fire(base: Baseline) -> None:
    obs = run(base, [{"kind": "timeout", "step": "Nowhere.step"}])
    assert obs.fired == []
    assert obs.timeline == base.obs.timeline
