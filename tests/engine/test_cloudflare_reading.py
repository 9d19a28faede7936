"""Cloudflare's own reading of durations and step configs (DESIGN §9; fidelity pass 2):
itty-time's ms(), its config schema, and `Simulator(durations="cloudflare")`, which takes them."""

from __future__ import annotations

import math
from typing import Any

import pytest

from awf_sim.dsl._cfduration import (
    cloudflare_ms,
    cloudflare_step_config,
    js_number_text,
    wait_ms,
)
from awf_sim.errors import DefinitionError


# -- itty-time's ms(), as Cloudflare's engine calls it ----------------------------------------
@pytest.mark.parametrize(
    ("value", "ms"),
    [
        ("1 second", 1000),
        ("1 seconds", 1000),
        ("1  second", 1000),  # any number of spaces
        ("1 Second", 1),  # units are case-sensitive: an unknown unit multiplies by 1
        ("30 sec", 30),
        ("5 mins", 5),
        ("2 m", 2),  # the table's own "m" is 1
        ("100 ms", 100),  # "m" + a plural "s"
        ("0.05 seconds", 50),
        ("1 year", 31_557_600_000),
        ("2 months", 5_184_000_000),
        ("150.5", 150.5),
        ("1e2", 100),
        ("0x40", 64),  # JavaScript's +"0x40"
        (" 50 ", 50),
        ("", 0),
        ("-1 second", -1000),
        (250, 250),
        (-5, -5),
    ],
)
def test_cloudflare_ms_reads_like_itty_time(value: Any, ms: float) -> None:
    assert cloudflare_ms(value) == ms


@pytest.mark.parametrize(
    "value", ["30s", "abc", "1 second ", "1\tsecond", " 1 second", "1 constructor", "1 toStrings"]
)
def test_cloudflare_ms_is_nan_for_what_it_cannot_read(value: str) -> None:
    assert math.isnan(cloudflare_ms(value))


def test_js_number_text_and_timer_waits() -> None:
    assert [js_number_text(x) for x in (100.0, 150.5, -1000.0, math.nan, 1e21)] == [
        "100",
        "150.5",
        "-1000",
        "NaN",
        "1e+21",
    ]
    assert [wait_ms(x) for x in (-5.0, math.nan, 0.2, 7.0)] == [0, 0, 1, 7]


@pytest.mark.parametrize(
    "config",
    [
        {"timeout": 0},
        {"timeout": "0"},
        {"timeout": ""},  # "" == 0 in JavaScript
        {"timeout": "30s"},
        {"timeout": None},
        {"retries": {"limit": 1}},
        {"retries": {"limit": "3", "delay": 10}},
        {"retries": {"limit": 1, "delay": -1}},
        {"retries": {"limit": 1, "delay": "abc"}},
        {"retries": {"limit": 1, "delay": 1, "backoff": "quadratic"}},
        {"sensitive": "output"},
    ],
)
def test_configs_cloudflare_rejects(config: Any) -> None:
    assert cloudflare_step_config(config) is None


def test_configs_cloudflare_accepts_as_they_are() -> None:
    assert cloudflare_step_config({"timeout": "0 seconds"}) == {"timeout": 0.0}
    assert cloudflare_step_config({"retries": {"limit": 1.5, "delay": "-100"}}) == {
        "retries": {"limit": 1.5, "delay": -100.0}
    }


# -- the simulator with durations="cloudflare" ---------------------------------------------
def _flow(config: Any, hang_ms: int = 80) -> type:
    import asyncio

    class Flow:
        async def run(self, event: Any, step: Any) -> Any:
            @step.do("s", config=config)
            async def s() -> int:
                await asyncio.sleep(hang_ms / 1000)
                return 1

            try:
                return await s()
            except Exception as exc:
                return f"{exc.name}: {exc.message}"  # type: ignore[attr-defined]

    return Flow


def test_a_misread_timeout_is_taken_as_cloudflare_reads_it(make_sim: Any) -> None:
    sim = make_sim(profile="local", durations="cloudflare")
    inst = sim.create(_flow({"timeout": "1 Second", "retries": {"limit": 0, "delay": 0}}))
    sim.run()
    assert inst.status()["output"] == "WorkflowTimeoutError: Execution timed out after 1ms"


def test_a_negative_timeout_fires_at_once_and_prints_as_javascript(make_sim: Any) -> None:
    sim = make_sim(profile="local", durations="cloudflare")
    inst = sim.create(_flow({"timeout": "-1 second", "retries": {"limit": 0, "delay": 0}}))
    sim.run()
    assert inst.status()["output"] == "WorkflowTimeoutError: Execution timed out after -1000ms"


def test_a_short_form_cloudflare_cannot_read_is_its_invalid_config(make_sim: Any) -> None:
    sim = make_sim(profile="local", durations="cloudflare")
    inst = sim.create(_flow({"timeout": "30s"}))
    sim.run()
    assert inst.status()["output"].startswith('WorkflowFatalError: Step config for "s" is in a')


def test_awf_reading_stays_the_default(make_sim: Any) -> None:
    # What both read alike runs; what Cloudflare would refuse ("30s") is refused with a
    # message (DESIGN §9), not run as awf reads it.
    sim = make_sim(profile="local")
    ok = sim.create(_flow({"timeout": "30 seconds", "retries": {"limit": 0, "delay": 0}}))
    short = sim.create(_flow({"timeout": "30s", "retries": {"limit": 0, "delay": 0}}))
    sim.run()
    assert ok.status()["output"] == 1
    error = short.status()["error"]
    assert error["name"] == "DefinitionError"
    assert error["message"].startswith("timeout of step 's': Cloudflare cannot read '30s'")
    assert "write '30 seconds'" in error["message"]
    with pytest.raises(DefinitionError, match="unknown durations"):
        make_sim(durations="itty")


class _Misread:
    async def run(self, event: Any, step: Any) -> Any:
        call = event["payload"]["call"]
        value = event["payload"]["value"]
        if call == "sleep":
            await step.sleep("nap", value)
        elif call == "wait":
            try:
                await step.wait_for_event("w", "t", timeout=value)
            except Exception as exc:
                if not hasattr(exc, "message"):
                    raise  # awf's refusal, not the wait's timeout
                return "timed out"
        else:

            @step.do("s", config={"retries": {"limit": 1, "delay": value}})
            async def s() -> int:
                return 1

            return await s()
        return "done"


@pytest.mark.parametrize("call", ["sleep", "wait", "delay"])
@pytest.mark.parametrize(
    ("value", "cloudflare", "good"),
    [
        ("30 sec", "reads '30 sec' as 30 ms", "'30 seconds'"),
        ("2 Minutes", "reads '2 Minutes' as 2 ms", "'2 minutes'"),
        ("5 m", "reads '5 m' as 5 ms", "'5 minutes'"),
        ("1h", "cannot read '1h'", "'1 hour'"),
    ],
)
def test_a_duration_cloudflare_would_misread_is_refused_by_default(
    make_sim: Any, call: str, value: str, cloudflare: str, good: str
) -> None:
    # Cloudflare's own step API parses these strings itself: "30 sec" sleeps 30 ms there.
    # awf's default says so instead of running what awf reads.
    sim = make_sim()
    inst = sim.create(_Misread, {"call": call, "value": value})
    sim.run()
    error = inst.status()["error"]
    assert error is not None, inst.status()
    assert error["name"] == "DefinitionError"
    assert f"Cloudflare {cloudflare}" in error["message"]
    assert f"write {good}" in error["message"]


@pytest.mark.parametrize("call", ["sleep", "wait", "delay"])
@pytest.mark.parametrize("value", ["30 seconds", "1.5 hours", "2 weeks", "100 ms", "250", 250])
def test_a_duration_both_read_alike_runs(make_sim: Any, call: str, value: Any) -> None:
    sim = make_sim()
    inst = sim.create(_Misread, {"call": call, "value": value})
    sim.run()
    sim.advance("30 days")  # past the wait's timeout
    assert inst.status()["status"] == "complete", inst.status()


class _Waits:
    async def run(self, event: Any, step: Any) -> Any:
        out = []
        for timeout in event["payload"]["timeouts"]:
            try:
                ev = await step.wait_for_event("w", "t", timeout=timeout)
                out.append(ev["payload"])
            except Exception as exc:
                out.append(exc.message)  # type: ignore[attr-defined]
        return out


def test_wait_timeouts_zero_absent_and_nan(make_sim: Any) -> None:
    sim = make_sim(profile="local", durations="cloudflare")
    # 0 and "" are falsy: the default 24 hours; "0" is a 0 ms timeout; "abc" is NaN.
    inst = sim.create(_Waits, {"timeouts": [0, "", "0", "abc"]})
    sim.run_until_done(inst, max_ms=100)
    inst.send_event("t", 1)
    inst.send_event("t", 2)
    sim.run()
    out = inst.status()["output"]
    assert out[:3] == [1, 2, "Execution timed out after 0ms"]
    assert out[3].startswith("NOT NULL constraint failed: priority_queue.target_timestamp")


class _Sleeps:
    async def run(self, event: Any, step: Any) -> Any:
        try:
            await step.sleep("z", event["payload"]["d"])
        except Exception as exc:
            return exc.message  # type: ignore[attr-defined]
        return "slept"


@pytest.mark.parametrize(("duration", "out"), [("1 Second", "slept"), (-500, "slept")])
def test_sleep_takes_any_reading_without_a_check(make_sim: Any, duration: Any, out: str) -> None:
    sim = make_sim(profile="local", durations="cloudflare")
    inst = sim.create(_Sleeps, {"d": duration})
    sim.run()
    assert inst.status()["output"] == out
    assert sim.now_ms <= 1
