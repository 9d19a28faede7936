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
