"""A step that fails whenever the engine runs it again is named, with the fix that fits.

Written as a new user would: a reservation that refuses any attempt but the first
(`ctx.attempt > 1`), and a fetch whose retry path is slower than its timeout. Chaos used to
report the first twice (once after a crash, once as "the outcome differs" after a transient
error, with a hint about clocks and module state), and the second only as "the outcome
differs": a retry that timed out by itself was skipped as if the fault had made it.
"""

from __future__ import annotations

from pathlib import Path

from awf_sim.chaos import Violation, run_campaign, verification_targets
from awf_sim.flow import load_flow

FLOW = """
import asyncio

from awf_sim import Domain, NonRetryableError, Workflow


async def work(item, args, ctx):
{body}
    return {{"ok": True}}


async def done(item, args, ctx):
    return {{"ok": True}}


Retried = Domain(
    "RetriedWork",
    {{
        "work": {{
            "handler": work,
            "retries": {{"limit": 3, "delay": "1 second"}},
            "timeout": "30 seconds",
        }},
        "done": done,
    }},
)


@Workflow("retried", examples=[{{"item": "a"}}], domains=[Retried])
async def retried(wf, p):
    got = await wf.RetriedWork(p).work()
    await wf.RetriedWork(p).done()
    return got
"""

REFUSES_RETRY = """    if ctx.attempt > 1:
        raise NonRetryableError("already attempted")"""

SLOW_RETRY = """    if ctx.attempt > 1:
        await asyncio.sleep(60)"""

FINE_RETRY = """    if ctx.attempt > 1:
        await asyncio.sleep(5)"""


def _violations(tmp_path: Path, body: str, kinds: list[str] | None = None) -> list[Violation]:
    flow = tmp_path / "retried.py"
    flow.write_text(FLOW.format(body=body), encoding="utf-8")
    ((target, _example),) = verification_targets(load_flow(flow))
    return [f.violation for f in run_campaign(target, runs=60, kinds=kinds).findings]


def test_a_step_that_refuses_retries_is_one_finding_on_that_step(tmp_path: Path) -> None:
    (found,) = _violations(tmp_path, REFUSES_RETRY)
    assert (found.invariant, found.key) == ("replay-equivalence", "RetriedWork.work")
    assert "NonRetryableError: already attempted" in found.message
    assert "ctx.attempt" in found.hint
    assert "module state" not in found.hint


def test_after_a_transient_error_the_hint_says_every_attempt_must_succeed(
    tmp_path: Path,
) -> None:
    (found,) = _violations(tmp_path, REFUSES_RETRY, kinds=["transient-error"])
    assert (found.invariant, found.key) == ("replay-equivalence", "RetriedWork.work")
    assert found.message.startswith("RetriedWork.work fails when it is retried after ")
    assert "every attempt must be able to succeed" in found.hint
    assert "first attempt did its work" not in found.hint


def test_a_retry_that_times_out_by_itself_names_the_timeout(tmp_path: Path) -> None:
    (found,) = _violations(tmp_path, SLOW_RETRY)
    assert (found.invariant, found.key) == ("replay-equivalence", "RetriedWork.work")
    assert "WorkflowTimeoutError" in found.message
    assert "timeout" in found.hint
    assert "module state" not in found.hint


def test_a_retry_within_its_timeout_is_clean(tmp_path: Path) -> None:
    assert _violations(tmp_path, FINE_RETRY) == []
