"""The AI providers a user picks for `ctx.ai` are importable from awf_sim.sdk.

Issue #3 has them chosen per simulator or test (deterministic, recorded, Workers AI), and the
error for a wrong `ai=` tells the user to write `RecordedAI({...})`; yet they lived only in the
private `awf_sim.sdk._ai`, so a user had nothing public to import.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import httpx
import pytest

from awf_sim import Domain, Simulator, Workflow
from awf_sim.testing import WorkflowFailed, create_test_workflow


async def summarise(text: Any, _args: Any, ctx: Any) -> Any:
    return await ctx.ai.generate(prompt=f"Summarise: {text}")


Summaries = Domain("PublicAISummaries", {"summarise": summarise})


@Workflow("public-ai-providers", domains=[Summaries])
async def summaries(wf: Any, params: Any) -> Any:
    return await wf.PublicAISummaries(params["text"]).summarise()


def test_recorded_answers_from_the_public_namespace() -> None:
    from awf_sim.sdk import RecordedAI

    test = create_test_workflow(summaries, ai=RecordedAI({"Summarise: a long text": "short"}))
    assert test.run({"text": "a long text"}) == "short"
    missing = create_test_workflow(summaries, ai=RecordedAI({}))
    with pytest.raises(WorkflowFailed, match="Summarise: other"):
        missing.run({"text": "other"})
    assert RecordedAI.__module__ == "awf_sim.sdk"


def test_deterministic_and_workers_ai_from_the_public_namespace() -> None:
    from awf_sim.sdk import DeterministicAI, WorkersAI

    with Simulator(ai=DeterministicAI(seed=3)) as sim:
        inst = sim.create(summaries, {"text": "x"})
        sim.run()
        assert isinstance(inst.status()["output"], str)

    def answer(request: httpx.Request) -> httpx.Response:
        assert request.url.path.endswith("/ai/run/@cf/meta/llama-3.1-8b-instruct")
        return httpx.Response(200, json={"success": True, "result": {"response": "from CF"}})

    ai = WorkersAI("acc", "tok", transport=httpx.MockTransport(answer))
    assert create_test_workflow(summaries, ai=ai).run({"text": "x"}) == "from CF"


def test_the_sdk_namespace_still_imports_no_httpx_until_a_provider_is_used() -> None:
    code = (
        "import sys, awf_sim.sdk; assert 'httpx' not in sys.modules; "
        "from awf_sim.sdk import RecordedAI; assert 'httpx' in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
