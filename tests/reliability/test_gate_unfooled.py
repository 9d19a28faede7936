"""Flows that passed push's verify gate (awf_deploy.verify: chaos on every example) although
they break on Cloudflare, or that the gate named for the wrong problem.

- A step returning `time.time_ns()` (an int beyond JavaScript's safe range) errors on
  Cloudflare's engine at once (`TypeError: Do not know how to serialize a BigInt`,
  awf_deploy/README.md's table of differences); the simulator kept the int, so chaos and the
  gate said "no invariant broken" and push uploaded it.
- A typed workflow (dataclass params) without examples runs on `{}`, which does not fit its
  input type: the gate's first line said "the workflow's output does not serialise to JSON"
  (no output was ever made) and put the real reason under it.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from awf_deploy import verify
from awf_sim.flow import load_flow

pytestmark = pytest.mark.filterwarnings("ignore:Domain 'Clock' defined at:UserWarning")

BIG_INT_FLOW = """
from awf_sim import Domain, Workflow

async def stamp(context, args, ctx):
    return {"at_ns": RESULT}

Clock = Domain("Clock", {"stamp": stamp})

@Workflow("stamps", examples=[{}])
async def stamps(wf, params):
    s = await wf.Clock("x").stamp()
    return {"at": OUTPUT}
"""


def _flow(tmp_path: Path, text: str, **replace: str) -> Path:
    text = textwrap.dedent(text)
    for key, value in replace.items():
        text = text.replace(key, value)
    path = tmp_path / "flow.py"
    path.write_text(text)
    return path


def test_a_step_result_beyond_javascripts_safe_integers_fails_the_gate(tmp_path: Path) -> None:
    flow = load_flow(_flow(tmp_path, BIG_INT_FLOW, RESULT="2**53", OUTPUT="1"))
    found = verify(flow, runs=5)
    assert [(v.invariant, v.message) for v in found] == [
        (
            "serializable",
            "Clock.stamp returned the integer 9007199254740992 at at_ns, beyond JavaScript's "
            "safe range (±9007199254740991): on Cloudflare the instance errors at once "
            "(TypeError: Do not know how to serialize a BigInt)",
        )
    ]


def test_an_output_beyond_javascripts_safe_integers_fails_the_gate(tmp_path: Path) -> None:
    flow = load_flow(_flow(tmp_path, BIG_INT_FLOW, RESULT="1", OUTPUT="[1, -(2**63)]"))
    found = verify(flow, runs=5)
    assert [(v.invariant, v.message.split(",")[0]) for v in found] == [
        ("serializable", "the workflow's output holds the integer -9223372036854775808 at at[1]")
    ]


def test_the_largest_safe_integer_passes_the_gate(tmp_path: Path) -> None:
    flow = load_flow(_flow(tmp_path, BIG_INT_FLOW, RESULT="2**53 - 1", OUTPUT="-(2**53 - 1)"))
    assert verify(flow, runs=5) == []


TYPED_NO_EXAMPLES = """
from dataclasses import dataclass
from awf_sim import Workflow

@dataclass
class Order:
    id: str

@Workflow("typed-no-examples")
async def typed_no_examples(wf, order: Order) -> dict:
    return {"id": order.id}
"""


def test_params_that_do_not_fit_the_input_type_are_not_called_an_output_problem(
    tmp_path: Path,
) -> None:
    found = verify(load_flow(_flow(tmp_path, TYPED_NO_EXAMPLES)), runs=5)
    assert [v.invariant for v in found] == ["baseline-outcome"]
    assert "params.id is missing: Order requires it" in found[0].message
    assert found[0].related == ()
