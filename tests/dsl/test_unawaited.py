"""A step built and never awaited (`wf.Email(u).send()` without `await`) does not run; like
Python's "coroutine was never awaited", the run that completes with one says so: a
RuntimeWarning placed at the workflow, naming the step, once per place and process."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from awf_sim import Domain, Simulator, TypedDomain, Workflow, step
from awf_sim.errors import UnawaitedStepWarning


async def send(user: Any, args: Any, ctx: Any) -> Any:
    return {"sent": user, **args}


async def enrich(prev: Any, args: Any, ctx: Any) -> Any:
    return {**prev, "rich": True}


Mail = Domain("UnawMail", {"send": send, "enrich": enrich})


def completed(flow: Workflow, params: Any = None) -> tuple[dict[str, Any], list[str], list[Any]]:
    """(status, step paths the timeline shows, warnings raised by run())."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with Simulator() as sim:
            inst = sim.create(flow, params)
            sim.run()
            status = inst.status()
            steps = [e["path"] for e in inst.timeline if e["kind"] == "checkpoint"]
    assert status["status"] == "complete", status
    return status, steps, [w for w in caught if issubclass(w.category, RuntimeWarning)]


def test_a_step_built_and_not_awaited_did_not_run_and_the_run_says_so() -> None:
    @Workflow("unaw-forgot", domains=[Mail])
    async def forgot(wf: Any, p: Any) -> Any:
        await wf.UnawMail("a").send(n=1)
        wf.UnawMail("b").send(n=2)  # no await
        return "done"

    _, steps, caught = completed(forgot)
    assert steps == ["UnawMail.send"]  # only the awaited one ran
    (w,) = caught
    assert w.category is UnawaitedStepWarning  # a filter can pick it out by class
    text = str(w.message)
    assert "'unaw-forgot' built a step it never awaited" in text
    assert "wf.UnawMail(...).send(...)" in text
    assert "add `await`" in text
    assert w.filename == __file__  # placed at the workflow, not inside awf


def test_a_chain_counts_once_and_is_named_by_its_last_call() -> None:
    @Workflow("unaw-chain", domains=[Mail])
    async def chain(wf: Any, p: Any) -> Any:
        wf.UnawMail("a").send().enrich()
        wf.UnawMail("b").send()
        return 1

    _, steps, caught = completed(chain)
    assert steps == []
    (w,) = caught
    assert "built 2 steps it never awaited" in str(w.message)


def test_every_way_of_awaiting_a_step_is_no_warning() -> None:
    @Workflow("unaw-fine", domains=[Mail])
    async def fine(wf: Any, p: Any) -> Any:
        first = wf.UnawMail("a").send()  # built now, awaited later
        await wf.UnawMail("b").send().enrich()
        both = await asyncio.gather(wf.UnawMail("c").send(), wf.UnawMail("d").send())
        return [await first, both]

    _, steps, caught = completed(fine)
    assert len(steps) == 4
    assert caught == []


def test_a_typed_step_not_awaited_is_found_too() -> None:
    @dataclass(frozen=True)
    class User:
        name: str

    async def greet(user: User, args: None, ctx: Any) -> str:
        return f"hi {user.name}"

    class UnawTyped(TypedDomain[User]):
        hello = step(greet)

    @Workflow("unaw-typed", domains=[UnawTyped.domain])
    async def typed(wf: Any, p: Any) -> Any:
        wf[UnawTyped](User("x")).hello()
        return 0

    _, steps, caught = completed(typed)
    assert steps == []
    (w,) = caught
    assert "wf.UnawTyped(...).hello(...)" in str(w.message)


def test_under_warnings_as_errors_the_run_ends_first_and_then_raises() -> None:
    @Workflow("unaw-strict", domains=[Mail])
    async def strict(wf: Any, p: Any) -> Any:
        wf.UnawMail("a").send()
        return "done"

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with Simulator() as sim:
            inst = sim.create(strict, None)
            with pytest.raises(RuntimeWarning, match="never awaited"):
                sim.run()
            # The engine finished its bookkeeping before the warning was raised.
            assert inst.status()["status"] == "complete"


FORGETFUL_FLOW = """
from awf_sim import Domain, Workflow


async def send(user, args, ctx):
    return {"sent": user}


UnawCli = Domain("UnawCli", {"send": send})


@Workflow("unaw-cli", examples=[{}])
async def forgot(wf, p):
    wf.UnawCli("a").send()
    return "done"
"""


@pytest.mark.parametrize("command", ["run", "chaos"])
def test_the_commands_print_it_even_under_pythonwarnings_error(
    command: str, tmp_path: Path
) -> None:
    # PYTHONWARNINGS=error made the warning an exception inside the run (and inside chaos's
    # replayers in other processes): a traceback, or a determinism violation that is not one.
    flow = tmp_path / "forgetful.py"
    flow.write_text(FORGETFUL_FLOW)
    args = [command, str(flow)] + (["--runs", "10"] if command == "chaos" else [])
    done = subprocess.run(
        [sys.executable, "-m", "awf_sim.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONWARNINGS": "error"},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "UnawaitedStepWarning: workflow 'unaw-cli' built a step" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_domain_may_be_named_like_the_count_of_unawaited_steps() -> None:
    # `wf.<Name>` is every Domain's: the count lives under a private name, shadowing none.
    unawaited = Domain("unawaited", {"send": send})

    @Workflow("unaw-named", domains=[unawaited])
    async def named(wf: Any, p: Any) -> Any:
        return await wf.unawaited("x").send()

    status, steps, caught = completed(named)
    assert status["output"] == {"sent": "x"}
    assert (steps, caught) == (["unawaited.send"], [])
