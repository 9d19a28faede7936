"""Module state that the workflow body itself changes gets a hint about the body, not steps.

Written as a new user would: invoice numbers from a module-level dict incremented in the
workflow function. The finding's hint said "a step that runs twice (at-least-once) changes it
twice", though no step touches it: the body changes it on every replay.
"""

from __future__ import annotations

from pathlib import Path

from awf_sim.chaos import run_campaign, verification_targets
from awf_sim.flow import load_flow

FLOW = """
from awf_sim import Domain, Workflow

SEQ = {"n": 100}


async def issue(c, a, ctx):
    return {"number": a["number"]}


BodyInvoices = Domain("BodyInvoices", {"issue": issue})


@Workflow("body-invoice", examples=[{"c": "x"}], domains=[BodyInvoices])
async def invoice(wf, p):
    SEQ["n"] += 1
    number = SEQ["n"]
    await wf.sleep("wait", "1 hour")
    return await wf.BodyInvoices(p).issue(number=number)
"""


def test_state_the_body_changes_is_named_with_the_replay_from_the_top(tmp_path: Path) -> None:
    flow = tmp_path / "invoice.py"
    flow.write_text(FLOW, encoding="utf-8")
    ((target, _example),) = verification_targets(load_flow(flow))
    found = [f.violation for f in run_campaign(target, runs=20).findings]
    (state,) = [v for v in found if v.key.startswith("SEQ")]
    assert state.invariant == "determinism"
    assert state.message.startswith("the run changed the module-level variable SEQ")
    assert "runs again from the top on every replay" in state.hint
    assert "a step that runs twice" not in state.hint
