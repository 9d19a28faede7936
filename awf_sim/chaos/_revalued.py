"""Steps that legitimately returned another value: a run's outcome that follows from them is
durable, not a bug.

A step that reads the clock or `random` inside its handler returns another value when it runs
again (a retry after a timeout, a replay on a later clock), and the workflow then goes on from
the value that was checkpointed: that is what durability means. The probe run
(`_space.baseline`, another clock and seed) cannot see all of these: a coin flip comes out the
same in both with even odds, and an elapsed-time check (`time.time() - start`) gives the same
answer on any clock until a fault puts a day between `start` and the check. So when a run's
outcome or effects differ from the fault-free run's, `revalued` runs its plan once more, with
every read of the clock and of `random` attributed to the step whose handler made it (the
engine's `current_step`, which every handler attempt runs under) or to the workflow body. The
difference is excused when

- some step, asked for with the same name (the same arguments), has another checkpointed
  result than in the fault-free run, and each such step read the clock or `random` itself;
- and the workflow body read neither outside a step (such a read is the bug chaos looks for,
  and its value may reach a step only through a closure, which this could not tell apart).

A step whose result changed for another reason (it returns `ctx.attempt`, reads what an
earlier attempt wrote, or keeps module state) is not excused; repeated effects are judged by
`idempotent-effects` before this is asked (`_invariants`).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

from awf_sim.chaos._diff import same
from awf_sim.chaos._model import Baseline, Observation, Plan
from awf_sim.sdk._effects import current_step

__all__ = ["Reads", "Rerun", "revalued", "watching"]

Rerun = Callable[..., Observation]  # `_run.run_on(base, plan, full=True)`

BODY = None  # the label of reads made outside any step's handler
# The methods of `random.Random` in C that every draw ends in (not seed, getstate, setstate,
# which the engine calls to swap a simulation's randomness in and out).
_DRAWS = frozenset({"random", "getrandbits", "randbytes"})


class Reads:
    """Reads of the clock and of `random` during one run, by step label ("path#count", the
    engine's `current_step`) or BODY."""

    def __init__(self) -> None:
        self.clock: set[str | None] = set()
        self.random: set[str | None] = set()


def _sources() -> tuple[Any, Any, str]:
    import random

    from awf_sim.engine import _ambient
    from awf_sim.engine._simulator import Simulator

    inst = getattr(random, "_inst", None)
    return inst, Simulator.wall_ms.__code__, str(_ambient.__file__)


@contextlib.contextmanager
def watching() -> Iterator[Reads]:
    """Attribute every read of the virtual clock (through `_ambient`'s fakes) and every draw
    from the global `random` made on this thread to the step whose handler made it."""
    reads = Reads()
    rng, wall_code, ambient = _sources()
    get = current_step.get

    def profile(frame: FrameType, event: str, arg: Any) -> None:
        if event == "c_call":
            if getattr(arg, "__self__", None) is rng and arg.__name__ in _DRAWS:
                reads.random.add(get())
        elif event == "call" and frame.f_code is wall_code:
            caller = frame.f_back
            if caller is not None and caller.f_code.co_filename == ambient:
                reads.clock.add(get())

    before = sys.getprofile()
    sys.setprofile(profile)
    try:
        yield reads
    finally:
        sys.setprofile(before)


def revalued(base: Baseline, obs: Observation, rerun: Rerun) -> list[str] | None:
    """The steps whose changed results explain how `obs` differs from the fault-free run
    (each line: the step and what it read), or None when the difference is not explained so.
    Worked out once per plan."""
    if not obs.plan:
        return None
    key = ("revalued", repr(obs.plan))
    if key in base._derived:
        found: list[str] | None = base._derived[key]
        return found
    found = _revalued(base, obs.plan, rerun)
    if len(base._derived) < 4096:
        base._derived[key] = found
    return found


def _revalued(base: Baseline, plan: Plan, rerun: Rerun) -> list[str] | None:
    expected = base.obs.results
    if expected is None:
        return None
    with watching() as reads:
        again = rerun(base, plan, full=True)
    if BODY in reads.clock or BODY in reads.random or again.results is None:
        return None
    timeline = again.timeline
    # Each checkpointed step: where its checkpoint is in the timeline, and where the attempt
    # that made it started.
    done: dict[tuple[str, int], tuple[int, int, str]] = {}
    started: dict[str, int] = {}
    for i, e in enumerate(timeline):
        name = e["name"]
        if e["kind"] == "attempt-start" and name:
            started[name] = i
        elif e["kind"] == "checkpoint" and name:
            done[(name, e.get("count") or 1)] = (i, started.get(name, i), e["path"] or name)
    changed = sorted(
        (done[key], key)
        for key, value in again.results.items()
        if key in expected and key in done and not same(expected[key], value)
    )
    lines: list[str] = []
    first: int | None = None  # the checkpoint of the first step that changed by itself
    for (at, start, path), (_name, count) in changed:
        label = f"{path}#{count}"
        what = [
            w for w, got in (("the clock", reads.clock), ("random", reads.random)) if label in got
        ]
        if what:
            lines.append(
                f"{path} returned another value than in the fault-free run "
                f"(it reads {' and '.join(what)})"
            )
            first = at if first is None else first
        elif first is None or start < first:
            # Another value for another reason (ctx.attempt, what an earlier attempt wrote,
            # state), not downstream of a step that changed by itself: a bug.
            return None
    return lines or None
