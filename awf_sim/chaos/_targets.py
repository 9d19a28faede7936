"""What is verified: the one definition `awf-sim chaos` and `awf-deploy push` share.

Every example input of every workflow of a flow file (a workflow without examples runs once,
on `{}`), in the world the flow file declares (its DATABASE, HTTP and AI), each example judged
by the outcome it declares (`Example(..., expect="errored", error=...)`; plain dicts should
complete). A subset is named by workflow and by example number (1-based).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from awf_sim.chaos._model import Target
from awf_sim.dsl._workflow import Workflow
from awf_sim.engine import World
from awf_sim.engine._defaults import DEFAULT_CPU_MS
from awf_sim.flow import FlowError, FlowFile, checked_example

__all__ = ["example_label", "verification_targets", "verification_world"]


def verification_targets(
    flow: FlowFile,
    *,
    workflows: Sequence[Workflow] | None = None,
    examples: Sequence[int] | None = None,
    seed: int = 0,
    cpu_ms: int | None = DEFAULT_CPU_MS,
) -> list[tuple[Target, int | None]]:
    """(target, example number or None for `{}`) for every input chaos and push verify, each
    with the CPU budget `cpu_ms` (`Target.cpu_ms`)."""
    world = verification_world(flow, seed)
    chosen = list(workflows) if workflows is not None else list(flow.workflows.values())
    out: list[tuple[Target, int | None]] = []
    for workflow in chosen:
        numbers = range(1, len(workflow.examples) + 1)
        inputs: list[tuple[Any, int | None]] = [(None, n) for n in numbers] or [({}, None)]
        if examples:
            known = len(workflow.examples)
            bad = [n for n in examples if not 1 <= n <= known]
            if bad:
                raise FlowError(
                    f"--example {bad[0]}: {workflow.name} has {known} example(s)"
                    + (f", numbered 1 to {known}" if known else "")
                )
            # `--example 1 --example 1` names one input: checked once.
            inputs = [(None, n) for n in dict.fromkeys(examples)]
        inputs = [
            (params if n is None else checked_example(workflow, n), n) for params, n in inputs
        ]
        out += [(Target.of(workflow, params, world, cpu_ms=cpu_ms), n) for params, n in inputs]
    return out


def verification_world(flow: FlowFile, seed: int = 0) -> World:
    """The world every input of `flow` is verified in: its DATABASE, HTTP and AI (only a
    provider: `load_flow` keeps no other), `seed`."""
    return flow.world.replace(seed=seed)


def example_label(workflow: Workflow, number: int | None) -> str:
    """`example 2 of 3`, or `no examples: {}`."""
    if number is None:
        return "no examples: {}"
    return f"example {number} of {len(workflow.examples)}"
