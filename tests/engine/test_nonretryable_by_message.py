"""Cloudflare decides that an error is not retryable by its name or by the start of its message
(`error.message.startsWith("NonRetryableError")`), not by its class (fidelity pass 2)."""

from __future__ import annotations

from typing import Any

from awf_sim import Workflow


def test_an_error_whose_message_starts_with_nonretryableerror_is_not_retried(
    make_sim: Any,
) -> None:
    calls = []

    @Workflow("nre-by-message")
    async def flow(wf: Any, _: Any) -> Any:
        def boom() -> None:
            calls.append(1)
            raise RuntimeError("NonRetryableError: said so in the text")

        try:
            await wf.do("s", boom, retries={"limit": 3, "delay": 0})
        except Exception as exc:
            return type(exc).__name__
        return None

    sim = make_sim()
    inst = sim.create(flow)
    sim.run()
    assert inst.status()["output"] == "NonRetryableError"
    assert len(calls) == 1


class _Throws:
    """run() itself raises, outside any step (p5-throw-*)."""

    def __init__(self, exc: Exception) -> None:
        self.exc = exc

    def workflow(self) -> type:
        exc = self.exc

        class Flow:
            async def run(self, event: Any, step: Any) -> Any:
                raise exc

        return Flow


def _error_after(make_sim: Any, exc: Exception, **sim_kwargs: Any) -> Any:
    sim = make_sim(**sim_kwargs)
    inst = sim.create(_Throws(exc).workflow())
    sim.run()
    return inst.status()["error"]


FIXED = (
    "The execution of the Workflow instance was terminated, as a step threw an "
    "NonRetryableError and it was not handled"
)


def test_run_raising_an_error_whose_message_starts_with_nonretryableerror_ends_as_one(
    make_sim: Any,
) -> None:
    # engine.ts init(): the same name-or-message test as a step's, on what escapes run();
    # before 2026-05-14 the engine's fixed text replaces the error.
    error = _error_after(
        make_sim, RuntimeError("NonRetryableError: stop"), compatibility_date="2026-04-01"
    )
    assert error == {"name": "WorkflowFatalError", "message": FIXED}


def test_run_raising_an_ordinary_error_keeps_its_name_and_message(make_sim: Any) -> None:
    error = _error_after(make_sim, RuntimeError("an ordinary NonRetryableError mention"))
    assert error == {"name": "RuntimeError", "message": "an ordinary NonRetryableError mention"}


def test_preserved_message_drops_the_prefix_rpc_put_there(make_sim: Any) -> None:
    # From 2026-05-14 (workflows_preserve_non_retryable_error_message) the engine keeps the
    # message, without "NonRetryableError: " (PreservedNonRetryableError).
    error = _error_after(
        make_sim, RuntimeError("NonRetryableError: card declined"), compatibility_date="2026-05-14"
    )
    assert error == {"name": "NonRetryableError", "message": "card declined"}


class _StepSaysNonRetryable:
    async def run(self, event: Any, step: Any) -> Any:
        @step.do("s", config={"retries": {"limit": 2, "delay": 0}})
        async def s() -> None:
            raise RuntimeError("NonRetryableError: card declined")

        await s()


def test_a_step_error_classified_by_its_message_is_preserved_as_a_nonretryableerror(
    make_sim: Any,
) -> None:
    # The step rethrows it into run(), which lets it escape: from 2026-05-14 the instance's
    # error is the engine's PreservedNonRetryableError, not the step's own class.
    sim = make_sim(compatibility_date="2026-05-14")
    inst = sim.create(_StepSaysNonRetryable)
    sim.run()
    assert inst.status()["error"] == {"name": "NonRetryableError", "message": "card declined"}
