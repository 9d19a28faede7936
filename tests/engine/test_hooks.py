"""The engine's hook seam: every fault point does what its name says."""

from __future__ import annotations

import asyncio
import datetime as dt
import random
from typing import Any

from awf_sim import Simulator, Workflow
from awf_sim.engine._hooks import (
    Crash,
    ForceTimeout,
    HookChain,
    Hooks,
    MockError,
    MockResult,
    Reseed,
    SkewClock,
    StepRef,
)


class Once(Hooks):
    """Answers `action` at hook point `point` for the step at path `path`, once."""

    def __init__(self, point: str, path: str, action: Any) -> None:
        self.point, self.path, self.action = point, path, action
        self.fired = 0
        self.calls: list[tuple[str, int, int]] = []
        self.lifetimes: list[str] = []

    def _answer(self, point: str, ref: StepRef) -> Any:
        if point == self.point and ref.path == self.path and not self.fired:
            self.fired += 1
            return self.action
        return None

    def lifetime_start(self, sim: Simulator, iid: str, kind: str) -> None:
        self.lifetimes.append(kind)

    def step_call(self, iid: str, ref: StepRef) -> None:
        self.calls.append((ref.path, ref.count, ref.seq))

    def before_step(self, iid: str, ref: StepRef) -> Any:
        return self._answer("before_step", ref)

    def before_attempt(self, iid: str, ref: StepRef, attempt: int) -> Any:
        return self._answer("before_attempt", ref)

    def after_effect(self, iid: str, ref: StepRef, attempt: int) -> Any:
        return self._answer("after_effect", ref)

    def after_checkpoint(self, iid: str, ref: StepRef, attempt: int) -> Any:
        return self._answer("after_checkpoint", ref)

    def during_sleep(self, iid: str, ref: StepRef) -> Any:
        return self._answer("during_sleep", ref)

    def during_wait(self, iid: str, ref: StepRef) -> Any:
        return self._answer("during_wait", ref)


def counting_flow(counter: dict[str, int]) -> Workflow:
    def effect(name: str) -> Any:
        def fn() -> str:
            counter[name] = counter.get(name, 0) + 1
            return name

        return fn

    async def flow(wf: Any, _: Any) -> Any:
        a = await wf.do("a", effect("a"))
        await wf.sleep("nap", "1 minute")
        b = await wf.do("b", effect("b"))
        return a + b

    return Workflow(f"counting-{id(counter)}", flow)


def run_with(hooks: Hooks) -> tuple[Any, dict[str, int]]:
    counter: dict[str, int] = {}
    with Simulator(hooks=hooks) as sim:
        inst = sim.create(counting_flow(counter))
        sim.run()
        return (inst.status(), inst.timeline), counter


def test_crash_after_effect_runs_the_handler_twice() -> None:
    (status, timeline), counter = run_with(Once("after_effect", "a", Crash("crash-after-effect")))
    assert status["output"] == "ab"
    assert counter == {"a": 2, "b": 1}
    crash = next(e for e in timeline if e["kind"] == "crash")
    assert crash["fault"] == "crash-after-effect"
    assert crash["path"] == "a"


def test_crash_after_checkpoint_does_not_run_it_again() -> None:
    hooks = Once("after_checkpoint", "a", Crash())
    (status, _), counter = run_with(hooks)
    assert status["output"] == "ab"
    assert counter == {"a": 1, "b": 1}
    assert hooks.lifetimes == ["workflow-start", "recover"]
    # the replay called "a" again (from its checkpoint): occurrence 1 in each lifetime
    assert hooks.calls.count(("a", 1, 1)) == 2


def test_crash_before_step_stores_nothing_of_it() -> None:
    (status, timeline), counter = run_with(Once("before_step", "b", Crash()))
    assert status["output"] == "ab"
    assert counter == {"a": 1, "b": 1}
    b_starts = [e for e in timeline if e["kind"] == "step-start" and e["path"] == "b"]
    assert len(b_starts) == 1  # the crashed try left no trace of b


def test_crash_during_sleep_keeps_the_deadline() -> None:
    (status, timeline), _ = run_with(Once("during_sleep", "nap", Crash()))
    assert status["output"] == "ab"
    end = next(e for e in timeline if e["kind"] == "sleep-end")
    assert end["at_ms"] == 60_000


def test_crash_during_wait_then_event_still_delivered() -> None:
    async def flow(wf: Any, _: Any) -> Any:
        return await wf.wait_for("approve", type="ok")

    with Simulator(hooks=Once("during_wait", "approve", Crash())) as sim:
        inst = sim.create(Workflow("crash-wait", flow))
        sim.run()
        inst.send_event("ok", {"yes": True})
        sim.run()
        assert inst.status()["output"] == {"yes": True}


def test_mock_result_skips_the_handler_but_keeps_attempt_and_checkpoint() -> None:
    (status, timeline), counter = run_with(Once("before_attempt", "a", MockResult("mocked-")))
    assert status["output"] == "mocked-b"
    assert "a" not in counter
    assert [e["kind"] for e in timeline if e["path"] == "a"] == [
        "step-start",
        "attempt-start",
        "attempt-success",
        "checkpoint",
    ]


def test_mock_error_fails_that_attempt_and_retries() -> None:
    (status, timeline), counter = run_with(Once("before_attempt", "a", MockError("Error", "nope")))
    assert status["output"] == "ab"
    failure = next(e for e in timeline if e["kind"] == "attempt-failure")
    assert failure["error"] == {"name": "Error", "message": "nope"}
    assert counter["a"] == 1  # the mocked attempt did not run the handler


def test_force_timeout_runs_the_handler_and_fails_after_0ms() -> None:
    (status, timeline), counter = run_with(Once("before_attempt", "a", ForceTimeout()))
    assert status["output"] == "ab"
    assert counter["a"] == 2  # its effect happened, then the retry ran it again
    failure = next(e for e in timeline if e["kind"] == "attempt-failure")
    assert failure["error"]["message"] == "Execution timed out after 0ms"
    assert failure["at_ms"] == 0


def test_force_timeout_after_config_waits_for_the_step_timeout() -> None:
    async def flow(wf: Any, _: Any) -> Any:
        return await wf.do("slow", lambda: 1, timeout="5 seconds", retries={"limit": 1, "delay": 0})

    with Simulator(hooks=Once("before_attempt", "slow", ForceTimeout(after_config=True))) as sim:
        inst = sim.create(Workflow("timeout-fault", flow))
        sim.run()
        failure = next(e for e in inst.timeline if e["kind"] == "attempt-failure")
        assert failure["at_ms"] == 5000
        assert inst.status()["output"] == 1


class NoDelays(Hooks):
    def retry_delay(self, iid: str, ref: StepRef, attempt: int, delay_ms: int) -> int:
        return 0

    def sleep_ms(self, iid: str, ref: StepRef, ms: int) -> int:
        return 0


def test_retry_delay_and_sleep_hooks_and_chain() -> None:
    async def flaky() -> int:
        await asyncio.sleep(0)
        raise RuntimeError("always")

    async def flow(wf: Any, _: Any) -> Any:
        await wf.sleep("nap", "1 day")
        try:
            await wf.do("flaky", flaky, retries={"limit": 3, "delay": "1 hour"})
        except Exception:
            pass
        return dt.datetime.now(dt.UTC).isoformat()

    chain = HookChain([Hooks(), NoDelays()])
    with Simulator(hooks=chain) as sim:
        inst = sim.create(Workflow("nodelay", flow))
        sim.run()
        assert inst.status()["output"] == "2026-01-01T00:00:00+00:00"


class SkewAndReseed(Hooks):
    def lifetime_start(self, sim: Any, iid: str, kind: str) -> Any:
        if kind == "recover":
            return [SkewClock(3_600_000), Reseed(99)]
        return None


def test_clock_skew_and_reseed_apply_between_replays() -> None:
    async def flow(wf: Any, _: Any) -> Any:
        before = (dt.datetime.now(dt.UTC).hour, random.random())
        await wf.do("x", lambda: 1)
        return before

    hooks = HookChain([SkewAndReseed(), Once("after_checkpoint", "x", Crash())])
    with Simulator(hooks=hooks) as sim:
        inst = sim.create(Workflow("skew", flow))
        sim.run()
        hour, draw = inst.status()["output"]
    assert hour == 1  # the replay read a wall clock one hour ahead
    assert draw == random.Random(99).random()


class Evict(Hooks):
    """Evicts the instance once while it hibernates on `path`, waking at its deadline."""

    def __init__(self, path: str) -> None:
        self.path, self.done, self.deadline = path, False, 0
        self.sim: Simulator | None = None

    def lifetime_start(self, sim: Simulator, iid: str, kind: str) -> None:
        self.sim = sim

    def sleep_ms(self, iid: str, ref: StepRef, ms: int) -> int:
        assert self.sim is not None
        self.deadline = self.sim.now_ms + ms
        return ms

    def wait_timeout_ms(self, iid: str, ref: StepRef, timeout_ms: int) -> int:
        assert self.sim is not None
        self.deadline = self.sim.now_ms + timeout_ms
        return timeout_ms

    def _evict(self, ref: StepRef) -> Any:
        if ref.path == self.path and not self.done:
            self.done = True
            return Crash("crash-during-" + ref.kind, wake_at_ms=self.deadline)
        return None

    def during_sleep(self, iid: str, ref: StepRef) -> Any:
        return self._evict(ref)

    def during_wait(self, iid: str, ref: StepRef) -> Any:
        return self._evict(ref)


def test_evicted_during_a_sleep_wakes_when_it_ends() -> None:
    (status, timeline), counter = run_with(Evict("nap"))
    assert status["output"] == "ab"
    kinds = [(e["kind"], e["at_ms"]) for e in timeline if e["kind"] in ("crash", "recover")]
    assert kinds == [("crash", 0), ("recover", 60_000)]  # replayed when the sleep was due
    crash = next(e for e in timeline if e["kind"] == "crash")
    assert crash["fault"] == "crash-during-sleep"
    assert counter == {"a": 1, "b": 1}


def test_evicted_during_a_wait_is_woken_by_an_event() -> None:
    async def flow(wf: Any, _: Any) -> Any:
        return await wf.wait_for("approve", type="ok", timeout="1 day")

    with Simulator(hooks=Evict("approve")) as sim:
        inst = sim.create(Workflow("evict-wait", flow))
        sim.run()  # evicted: nothing runs until the outside sends something
        assert not any(e["kind"] == "recover" for e in inst.timeline)
        sim.advance("2 hours")
        inst.send_event("ok", {"yes": True})
        sim.run()
        assert inst.status()["output"] == {"yes": True}
        woke = next(e for e in inst.timeline if e["kind"] == "recover")
        assert woke["at_ms"] == 2 * 3_600_000


def test_an_evicted_instance_that_is_terminated_stays_terminated() -> None:
    with Simulator(hooks=Evict("nap")) as sim:
        inst = sim.create(counting_flow({}))
        sim.advance("1 second")
        inst.terminate()
        sim.run()
        assert inst.status()["status"] == "terminated"
        assert not any(e["kind"] == "recover" for e in inst.timeline)
