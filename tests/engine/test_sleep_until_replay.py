"""Sleeps against pauses and replays, as Cloudflare's engine has them: sleepUntil compares with
the clock on every call, replays included (fidelity pass 2), so a pause does not move its moment;
and a sleep or a retry wait that ends while a pause is pending stops the run there (pass 5)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest


class _Until:
    async def run(self, event: Any, step: Any) -> Any:
        out = []
        try:
            await step.sleep_until("z", event["timestamp"].timestamp() * 1000 + 300)
            out.append("slept")
        except Exception as exc:
            out.append(exc.message)  # type: ignore[attr-defined]
        await step.sleep("y", 500)
        return out


def test_sleep_until_throws_on_a_replay_after_its_moment(make_sim: Any) -> None:
    sim = make_sim(profile="local")
    inst = sim.create(_Until)
    sim.run_until_done(inst, max_ms=600)
    inst.pause()
    sim.advance(100)
    inst.resume()  # the replay calls sleepUntil again, now in the past
    sim.run()
    assert inst.status()["output"] == ["You can't sleep until a time in the past, time-traveler"]


class _UntilThenStep:
    async def run(self, event: Any, step: Any) -> Any:
        await step.sleep_until("z", event["timestamp"].timestamp() * 1000 + 800)

        @step.do("after")
        async def after() -> int:
            return 1

        await after()
        await step.sleep("y", 800)
        return "done"


class _SleepThenStep:
    async def run(self, event: Any, step: Any) -> Any:
        await step.sleep("z", 800)

        @step.do("after")
        async def after() -> int:
            return 1

        await after()
        await step.sleep("y", 800)
        return "done"


def _ran_after_by(make_sim: Any, workflow: type, profile: str, at_ms: int) -> bool:
    """Pause 200-600 ms into the run; has the step after the sleep ended by `at_ms`?"""
    sim = make_sim(profile=profile)
    inst = sim.create(workflow)
    sim.run_until_done(inst, max_ms=200)
    inst.pause()
    sim.advance(400)
    inst.resume()
    sim.run_until_done(inst, max_ms=at_ms - 600)
    return inst.step_outputs() == [1]


@pytest.mark.parametrize("profile", ["local", "production"])
def test_a_pause_does_not_move_a_sleep_until_moment(make_sim: Any, profile: str) -> None:
    # p5-sleep-until-paused-ends-at-its-moment: Cloudflare's replay asks sleepUntil again for
    # the time left until the moment, so a 400 ms pause leaves the 800 ms moment where it is.
    assert _ran_after_by(make_sim, _UntilThenStep, profile, at_ms=900)


@pytest.mark.parametrize("profile", ["local", "production"])
def test_a_pause_moves_a_sleep_by_the_paused_span(make_sim: Any, profile: str) -> None:
    # The same pause during an 800 ms sleep ends it at 1200 ms: resume shifts stored timers.
    assert not _ran_after_by(make_sim, _SleepThenStep, profile, at_ms=900)
    assert _ran_after_by(make_sim, _SleepThenStep, profile, at_ms=1300)


class _SleepBesideLongStep:
    """A race: a long step, and two sleeps beside it; the run ends when the sleeps do."""

    async def run(self, event: Any, step: Any) -> Any:
        @step.do("long")
        async def long() -> int:
            await asyncio.sleep(1.0)
            return 1

        async def beside() -> str:
            await step.sleep("z", 300)
            await step.sleep("y", 200)
            return "done"

        racers = [asyncio.ensure_future(long()), asyncio.ensure_future(beside())]
        done, _ = await asyncio.wait(racers, return_when=asyncio.FIRST_COMPLETED)
        return racers[1].result() if racers[1] in done else "long first"


def test_a_sleep_ending_while_a_pause_is_pending_stops_the_run(make_sim: Any) -> None:
    # p5-pause-pending-sleep-end-*: context.ts checks the status after the sleep and throws
    # the pause error, so the run does not go past a sleep that ends while the pause waits for
    # the running step (it would complete at 500 ms); the instance pauses when that step ends,
    # and resume goes on from there.
    sim = make_sim(profile="local")
    inst = sim.create(_SleepBesideLongStep)
    sim.run_until_done(inst, max_ms=150)
    inst.pause()
    assert inst.status()["status"] == "waitingForPause"
    sim.run_until_done(inst, max_ms=2000)
    assert inst.status()["status"] == "paused"
    inst.resume()
    sim.run()
    assert inst.status()["output"] == "long first"  # the replay finds "long" done


def test_a_resume_that_cancels_the_pending_pause_lets_the_sleep_go_on(make_sim: Any) -> None:
    sim = make_sim(profile="local")
    inst = sim.create(_SleepBesideLongStep)
    sim.run_until_done(inst, max_ms=150)
    inst.pause()
    sim.run_until_done(inst, max_ms=250)  # "z" ended at 300 and waits for the pause
    assert inst.status()["status"] == "waitingForPause"
    inst.resume()
    sim.run()
    assert inst.status()["output"] == "done"


class _RetryBesideLongStep:
    async def run(self, event: Any, step: Any) -> Any:
        @step.do("long")
        async def long() -> int:
            await asyncio.sleep(1.0)
            return 1

        @step.do("flaky", config={"retries": {"limit": 1, "delay": 100}})
        async def flaky(ctx: Any) -> int:
            if ctx["attempt"] == 1:
                await asyncio.sleep(0.25)
                raise RuntimeError("x")
            return 2

        _, value = await asyncio.gather(long(), flaky())
        return value


def test_a_retry_wait_ending_while_a_pause_is_pending_starts_no_attempt(make_sim: Any) -> None:
    # p5-pause-pending-retry-wait-*: the retry wait ends at 350 ms while "long" still runs; the
    # second attempt waits for resume (the replay runs it).
    sim = make_sim(profile="local")
    inst = sim.create(_RetryBesideLongStep)
    sim.run_until_done(inst, max_ms=150)
    inst.pause()
    sim.run_until_done(inst, max_ms=2000)
    assert inst.status()["status"] == "paused"
    assert inst.step_outputs() == [1]
    inst.resume()
    sim.run()
    assert inst.status()["output"] == 2
