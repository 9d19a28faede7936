"""One test (or a few) per row of DESIGN §3's table: the engine must match Cloudflare."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from awf_sim import (
    DefinitionError,
    Domain,
    InstanceError,
    NonRetryableError,
    StepError,
    Workflow,
    WorkflowFatalError,
)


def attempt_starts(timeline: list[dict[str, Any]], path: str) -> list[int]:
    return [e["at_ms"] for e in timeline if e["kind"] == "attempt-start" and e["path"] == path]


def failing(message: str = "boom") -> Any:
    def fn() -> Any:
        raise RuntimeError(message)

    return fn


def run_one(make_sim: Any, fn: Any, params: Any = None, **sim_kwargs: Any) -> Any:
    sim = make_sim(**sim_kwargs)
    inst = sim.create(Workflow(f"wf-{id(fn)}", fn), params)
    sim.run()
    return sim, inst


# -- default step config --------------------------------------------------------------------


def test_default_config_production_retries_5_times_with_10s_exponential(make_sim: Any) -> None:
    async def flow(wf: Any, _: Any) -> Any:
        return await wf.do("flaky", failing())

    _, inst = run_one(make_sim, flow)
    starts = attempt_starts(inst.timeline, "flaky")
    # limit 5 = 6 attempts; waits 10, 20, 40, 80, 160 s after attempts 1..5
    assert starts == [0, 10_000, 30_000, 70_000, 150_000, 310_000]
    assert inst.status()["status"] == "errored"


def test_default_config_local_profile_uses_miniflare_1s_delay(make_sim: Any) -> None:
    async def flow(wf: Any, _: Any) -> Any:
        return await wf.do("flaky", failing())

    _, inst = run_one(make_sim, flow, profile="local")
    assert attempt_starts(inst.timeline, "flaky") == [0, 1000, 3000, 7000, 15_000, 31_000]


def test_default_timeout_is_10_minutes(make_sim: Any) -> None:
    async def hang() -> None:
        await asyncio.sleep(3600)

    async def flow(wf: Any, _: Any) -> Any:
        return await wf.do("hang", hang, retries={"limit": 0, "delay": 0})

    _, inst = run_one(make_sim, flow)
    assert inst.status()["error"] == {
        "name": "WorkflowTimeoutError",
        "message": "Execution timed out after 600000ms",
    }


# -- config merge -------------------------------------------------------------------------


def test_config_merge_keeps_the_default_backoff_key_by_key(make_sim: Any) -> None:
    async def flow(wf: Any, _: Any) -> Any:
        return await wf.do("flaky", failing(), retries={"limit": 2, "delay": "3 seconds"})

    _, inst = run_one(make_sim, flow)
    # limit and delay from the user, exponential backoff from the defaults
    assert attempt_starts(inst.timeline, "flaky") == [0, 3000, 9000]


def test_retries_need_both_limit_and_delay_as_on_cloudflare() -> None:
    with pytest.raises(DefinitionError, match=r"needs both 'limit' and 'delay'.*missing 'delay'"):
        Domain("NoDelay", {"go": {"handler": lambda c, a, x: 1, "retries": {"limit": 2}}})


def test_invalid_config_is_an_error_naming_the_step() -> None:
    with pytest.raises(DefinitionError, match=r"backoff for Inventory\.reserve"):
        Domain(
            "Inventory",
            {
                "reserve": {
                    "handler": lambda c, a, x: 1,
                    "retries": {"limit": 1, "delay": 0, "backoff": "x"},
                }
            },
        )
    with pytest.raises(DefinitionError, match=r"timeout for Pay\.charge must not be 0"):
        Domain("Pay", {"charge": {"handler": lambda c, a, x: 1, "timeout": 0}})


# -- attempts and retry delays --------------------------------------------------------------


@pytest.mark.parametrize(
    ("backoff", "expected"),
    [
        ("exponential", [0, 1000, 3000, 7000]),
        ("linear", [0, 1000, 3000, 6000]),
        ("constant", [0, 1000, 2000, 3000]),
    ],
)
def test_attempts_are_limit_plus_one_with_backoff_formula(
    make_sim: Any, backoff: str, expected: list[int]
) -> None:
    async def flow(wf: Any, _: Any) -> Any:
        return await wf.do(
            "charge", failing(), retries={"limit": 3, "delay": "1 second", "backoff": backoff}
        )

    _, inst = run_one(make_sim, flow)
    assert attempt_starts(inst.timeline, "charge") == expected
    assert inst.status()["error"] == {"name": "RuntimeError", "message": "boom"}


def test_limit_zero_means_exactly_one_attempt(make_sim: Any) -> None:
    async def flow(wf: Any, _: Any) -> Any:
        return await wf.do("once", failing(), retries={"limit": 0, "delay": 0})

    _, inst = run_one(make_sim, flow)
    assert attempt_starts(inst.timeline, "once") == [0]


def test_success_after_transient_failures_is_checkpointed(make_sim: Any) -> None:
    calls: list[int] = []

    async def flaky() -> dict[str, int]:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError("network down")
        return {"n": len(calls)}

    async def flow(wf: Any, _: Any) -> Any:
        return await wf.do("flaky", flaky, retries={"limit": 5, "delay": 50})

    _, inst = run_one(make_sim, flow)
    assert inst.status() == {"status": "complete", "output": {"n": 3}, "error": None}
    assert attempt_starts(inst.timeline, "flaky") == [0, 50, 150]


# -- timeout ------------------------------------------------------------------------------


def test_timeout_fails_the_attempt_is_retried_and_the_late_result_is_ignored(
    make_sim: Any,
) -> None:
    effects: list[int] = []

    async def slow() -> str:
        attempt = len(effects) + 1
        effects.append(attempt)
        if attempt == 1:
            await asyncio.sleep(60)  # outlives its 30 s timeout
            effects.append(-1)  # the callback is not killed: this effect still happens
            return "late"
        return "fast"

    async def flow(wf: Any, _: Any) -> Any:
        return await wf.do("slow", slow, retries={"limit": 2, "delay": 1000}, timeout="30 seconds")

    _sim, inst = run_one(make_sim, flow)
    assert inst.status()["output"] == "fast"
    failure = next(e for e in inst.timeline if e["kind"] == "attempt-failure")
    assert failure["at_ms"] == 30_000
    assert failure["error"] == {
        "name": "WorkflowTimeoutError",
        "message": "Execution timed out after 30000ms",
    }
    assert attempt_starts(inst.timeline, "slow") == [0, 31_000]
    assert effects == [1, 2]  # the instance finished before the late effect


def test_timed_out_callback_keeps_running_while_the_instance_does(make_sim: Any) -> None:
    effects: list[str] = []

    async def slow() -> str:
        await asyncio.sleep(20)
        effects.append("late effect")
        return "late"

    async def flow(wf: Any, _: Any) -> Any:
        try:
            await wf.do("slow", slow, retries={"limit": 0, "delay": 0}, timeout="10 seconds")
        except StepError:
            pass
        await wf.sleep("after", "1 minute")
        return effects

    _, inst = run_one(make_sim, flow)
    assert inst.status()["output"] == ["late effect"]


# -- NonRetryableError ----------------------------------------------------------------------


def test_non_retryable_is_never_retried_and_can_be_caught(make_sim: Any) -> None:
    def decline() -> None:
        raise NonRetryableError("card declined")

    async def flow(wf: Any, _: Any) -> Any:
        try:
            await wf.do("charge", decline, retries={"limit": 5, "delay": 10})
        except NonRetryableError as exc:
            return str(exc)
        return "unreachable"

    _, inst = run_one(make_sim, flow)
    assert inst.status()["output"] == "NonRetryableError: card declined"
    assert attempt_starts(inst.timeline, "charge") == [0]


def test_uncaught_non_retryable_ends_errored(make_sim: Any) -> None:
    def decline() -> None:
        raise NonRetryableError("card declined")

    async def flow(wf: Any, _: Any) -> Any:
        return await wf.do("charge", decline)

    _, inst = run_one(make_sim, flow)
    assert inst.status()["error"] == {"name": "NonRetryableError", "message": "card declined"}
    # before compatibility date 2026-05-14 Cloudflare replaces the message with a fixed text
    _, old = run_one(make_sim, flow, compatibility_date="2026-04-01")
    assert old.status()["error"]["message"].startswith("The execution of the Workflow instance")


# -- retries exhausted ------------------------------------------------------------------------


def test_exhausted_retries_raise_step_error_into_the_workflow(make_sim: Any) -> None:
    async def flow(wf: Any, _: Any) -> Any:
        try:
            await wf.do("charge", failing("card network down"), retries={"limit": 1, "delay": 0})
        except StepError as exc:
            return {"name": exc.name, "message": exc.message, "str": str(exc)}
        return None

    _, inst = run_one(make_sim, flow)
    assert inst.status()["output"] == {
        "name": "RuntimeError",
        "message": "card network down",
        "str": "RuntimeError: card network down",
    }


# -- replay -----------------------------------------------------------------------------------


def test_replay_returns_checkpoints_and_reraises_stored_failures(make_sim: Any) -> None:
    calls = {"a": 0, "b": 0, "c": 0}

    def counted(name: str, fail: bool = False) -> Any:
        def fn() -> Any:
            calls[name] += 1
            if fail:
                raise ValueError(f"{name} failed")
            return {"step": name, "tuple": (1, 2)}

        return fn

    async def flow(wf: Any, _: Any) -> Any:
        a = await wf.do("a", counted("a"))
        try:
            await wf.do("b", counted("b", fail=True), retries={"limit": 0, "delay": 0})
        except StepError as exc:
            b = exc.message
        await wf.sleep("nap", "1 hour")
        c = await wf.do("c", counted("c"))
        return [a, b, c]

    sim = make_sim()
    inst = sim.create(Workflow("replay", flow))
    sim.advance("30 minutes")
    sim.crash()
    assert inst.status()["status"] == "running"
    sim.recover()
    sim.run()
    assert calls == {"a": 1, "b": 1, "c": 1}  # checkpointed steps did not run again
    out = inst.status()["output"]
    assert out[0] == {"step": "a", "tuple": [1, 2]}  # JSON round trip, also on the first run
    assert out[1] == "b failed"
    kinds = [e["kind"] for e in inst.timeline]
    assert kinds.count("crash") == 1
    assert kinds.count("recover") == 1


def test_step_results_are_json_copies_so_the_workflow_cannot_share_state(make_sim: Any) -> None:
    shared = {"items": [1]}

    async def flow(wf: Any, _: Any) -> Any:
        got = await wf.do("get", lambda: shared)
        got["items"].append(2)
        return shared["items"]

    _, inst = run_one(make_sim, flow)
    assert inst.status()["output"] == [1]


# -- at-least-once --------------------------------------------------------------------------


def test_crash_mid_attempt_runs_the_callback_again_and_uses_an_attempt(make_sim: Any) -> None:
    runs: list[int] = []

    async def slow(ctx_attempts: list[int] = runs) -> str:
        ctx_attempts.append(1)
        await asyncio.sleep(10)
        return "done"

    async def flow(wf: Any, _: Any) -> Any:
        return await wf.do("slow", slow, retries={"limit": 1, "delay": 0})

    sim = make_sim()
    inst = sim.create(Workflow("alo", flow))
    sim.advance("5 seconds")
    sim.crash()
    sim.recover()
    sim.run()
    assert inst.status()["output"] == "done"
    assert len(runs) == 2
    starts = [(e["attempt"], e["at_ms"]) for e in inst.timeline if e["kind"] == "attempt-start"]
    assert starts == [(1, 0), (2, 5000)]
    lost = [e for e in inst.timeline if e["kind"] == "attempt-failure"]
    assert lost[0]["error"]["name"] == "WorkflowInternalError"


def test_crash_mid_last_attempt_exhausts_the_step(make_sim: Any) -> None:
    async def slow() -> str:
        await asyncio.sleep(10)
        return "done"

    async def flow(wf: Any, _: Any) -> Any:
        return await wf.do("slow", slow, retries={"limit": 0, "delay": 0})

    sim = make_sim()
    inst = sim.create(Workflow("alo0", flow))
    sim.advance("5 seconds")
    sim.crash()
    sim.recover()
    sim.run()
    assert inst.status()["error"] == {
        "name": "WorkflowInternalError",
        "message": "Attempt failed due to internal workflows error",
    }


# -- sleep ----------------------------------------------------------------------------------


def test_sleep_is_virtual_and_its_deadline_survives_a_crash(make_sim: Any) -> None:
    async def flow(wf: Any, _: Any) -> Any:
        await wf.sleep("nap", "1 hour")
        return "awake"

    sim = make_sim()
    inst = sim.create(Workflow("sleepy", flow))
    sim.advance("20 minutes")
    sim.crash()
    sim.advance("10 minutes")  # the engine is down for 10 minutes
    sim.recover()
    sim.run()
    end = next(e for e in inst.timeline if e["kind"] == "sleep-end")
    assert end["at_ms"] == 3_600_000
    assert inst.status()["output"] == "awake"


def test_sleeps_are_not_steps(make_sim: Any) -> None:
    async def flow(wf: Any, _: Any) -> Any:
        for i in range(3):
            await wf.sleep(f"s{i}", "1 second")
        return await wf.do("one", lambda: 1)

    _, inst = run_one(make_sim, flow, step_limit=1)
    assert inst.status()["status"] == "complete"


def test_sleep_until_uses_the_virtual_wall_clock(make_sim: Any) -> None:
    import datetime as dt

    async def flow(wf: Any, _: Any) -> Any:
        await wf.sleep_until("tomorrow", dt.datetime(2026, 1, 2, tzinfo=dt.UTC))
        return dt.datetime.now(dt.UTC).isoformat()

    _, inst = run_one(make_sim, flow)
    assert inst.status()["output"] == "2026-01-02T00:00:00+00:00"


def test_sleep_over_365_days_is_refused() -> None:
    from awf_sim.dsl._duration import check_sleep

    with pytest.raises(DefinitionError, match="365"):
        check_sleep(366 * 86_400_000, "wf.sleep('x')")


# -- wait_for --------------------------------------------------------------------------------


def test_wait_for_matches_type_exactly_and_buffers_fifo(make_sim: Any) -> None:
    async def flow(wf: Any, _: Any) -> Any:
        first = await wf.wait_for("a", type="approval")
        second = await wf.wait_for("b", type="approval")
        return [first, second]

    sim = make_sim()
    inst = sim.create(Workflow("events", flow))
    inst.send_event("Approval", {"n": 0})  # a different type: never matched
    inst.send_event("approval", {"n": 1})  # sent before the wait: buffered
    sim.run()
    assert inst.status()["status"] == "waiting"
    inst.send_event("approval", {"n": 2})
    sim.run()
    assert inst.status()["output"] == [{"n": 1}, {"n": 2}]


def test_wait_for_timeout_raises_is_not_retried_and_can_be_caught(make_sim: Any) -> None:
    async def flow(wf: Any, _: Any) -> Any:
        try:
            return await wf.wait_for("decision", type="decision", timeout="7 days")
        except StepError as exc:
            return str(exc)

    sim = make_sim()
    inst = sim.create(Workflow("timeout", flow))
    sim.run()
    assert inst.status()["status"] == "waiting"  # run() stops: only the outside can help
    sim.advance("7 days")
    assert inst.status()["output"] == "WorkflowTimeoutError: Execution timed out after 604800000ms"


def test_wait_for_default_timeout_is_24_hours(make_sim: Any) -> None:
    async def flow(wf: Any, _: Any) -> Any:
        return await wf.wait_for("x", type="never")

    sim = make_sim()
    inst = sim.create(Workflow("default-timeout", flow))
    sim.run_until_done(inst)
    assert sim.now_ms == 86_400_000
    assert inst.status()["status"] == "errored"


# -- lifecycle ------------------------------------------------------------------------------


def test_lifecycle_queued_running_complete(make_sim: Any) -> None:
    async def flow(wf: Any, _: Any) -> Any:
        return await wf.do("x", lambda: 1)

    sim = make_sim()
    inst = sim.create(Workflow("life", flow))
    assert inst.status()["status"] == "queued"
    sim.run()
    assert inst.status()["status"] == "complete"
    with pytest.raises(InstanceError, match="cannot_terminate"):
        inst.terminate()


def test_pause_waits_for_running_steps_and_resume_shifts_timers(make_sim: Any) -> None:
    async def work() -> str:
        await asyncio.sleep(5)
        return "worked"

    async def flow(wf: Any, _: Any) -> Any:
        a = await wf.do("work", work)
        await wf.sleep("nap", "10 seconds")
        return a

    sim = make_sim()
    inst = sim.create(Workflow("pausing", flow))
    sim.advance("1 second")
    inst.pause()
    assert inst.status()["status"] == "waitingForPause"
    sim.advance("10 seconds")  # the step finishes at 5 s, then the pause takes effect
    assert inst.status()["status"] == "paused"
    sim.advance("1 hour")
    assert inst.status()["status"] == "paused"
    inst.resume()
    sim.run()
    assert inst.status()["output"] == "worked"
    end = next(e for e in inst.timeline if e["kind"] == "sleep-end")
    # the sleep started at 5 s; paused at 5 s; resumed at 3611 s; 10 s of sleep remained
    assert end["at_ms"] == 3_611_000 + 10_000


def test_terminate_while_sleeping(make_sim: Any) -> None:
    async def flow(wf: Any, _: Any) -> Any:
        await wf.sleep("long", "1 day")
        return await wf.do("never", lambda: 1)

    sim = make_sim()
    inst = sim.create(Workflow("term", flow))
    sim.advance("1 hour")
    inst.terminate()
    sim.run()
    assert inst.status() == {"status": "terminated", "output": None, "error": None}
    assert not any(e["path"] == "never" for e in inst.timeline)


def test_restart_runs_again_from_scratch(make_sim: Any) -> None:
    calls: list[int] = []

    async def flow(wf: Any, _: Any) -> Any:
        return await wf.do("x", lambda: calls.append(1) or len(calls))

    sim = make_sim()
    inst = sim.create(Workflow("restart", flow))
    sim.run()
    inst.restart()
    sim.run()
    assert inst.status()["output"] == 2


# -- limits ---------------------------------------------------------------------------------


def test_result_over_1mib_fails_and_is_retried(make_sim: Any) -> None:
    async def flow(wf: Any, _: Any) -> Any:
        return await wf.do("big", lambda: "x" * (1 << 20), retries={"limit": 1, "delay": 0})

    _, inst = run_one(make_sim, flow)
    assert len(attempt_starts(inst.timeline, "big")) == 2
    assert "output is too large" in inst.status()["error"]["message"]


def test_unserialisable_result_is_fatal_and_names_the_step(make_sim: Any) -> None:
    async def flow(wf: Any, _: Any) -> Any:
        try:
            return await wf.do("weird", lambda: {"when": object()})
        except Exception:
            return "caught"  # fatal errors cannot be caught

    _, inst = run_one(make_sim, flow)
    err = inst.status()["error"]
    assert err["name"] == "WorkflowFatalError"
    assert 'the step "weird" returned a value which is not serialisable' in err["message"]


def test_step_name_over_256_characters_throws_a_catchable_fatal_error(make_sim: Any) -> None:
    async def flow(wf: Any, caught: Any) -> Any:
        try:
            return await wf.do("n" * 257, lambda: 1)
        except WorkflowFatalError as exc:
            if caught:
                return str(exc)
            raise

    _, caught = run_one(make_sim, flow, True)
    assert caught.status()["output"].startswith('WorkflowFatalError: Step name "nnn')
    assert caught.status()["output"].endswith(
        "exceeds max length (256 chars) or invalid characters found"
    )
    _, uncaught = run_one(make_sim, flow, False)
    assert uncaught.status()["error"]["name"] == "WorkflowFatalError"
    assert not any(e["kind"] == "step-start" for e in uncaught.timeline)


def test_step_limit_counts_every_do_call(make_sim: Any) -> None:
    async def flow(wf: Any, _: Any) -> Any:
        for i in range(4):
            await wf.do(f"s{i}", lambda: 1)

    _, inst = run_one(make_sim, flow, step_limit=3)
    assert inst.status()["error"]["message"].startswith("The limit of 3 steps has been reached")
    assert inst.status()["error"]["name"] == "WorkflowFatalError"


@pytest.mark.parametrize("bad", ["has space", "-lead", "x" * 101, ""])
def test_invalid_instance_ids_are_refused(make_sim: Any, bad: str) -> None:
    sim = make_sim()
    with pytest.raises(DefinitionError, match="instance id"):
        sim.create(Workflow("ids", lambda wf, p: None), {}, id=bad)


def test_event_payload_over_1mib_is_refused(make_sim: Any) -> None:
    async def flow(wf: Any, _: Any) -> Any:
        return await wf.wait_for("x", type="big")

    sim = make_sim()
    inst = sim.create(Workflow("bigevent", flow))
    with pytest.raises(DefinitionError, match="1 MiB"):
        inst.send_event("big", "x" * (1 << 20))
