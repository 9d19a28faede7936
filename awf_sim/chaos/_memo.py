"""`evaluate`: one plan's verdict, without running again what earlier runs already ran.

Every run of a campaign starts from the same state and is deterministic, so two plans whose
hooks answer every engine call alike so far are, so far, the same run. The runs already made
are kept as a trie of engine calls (`_record`). A new plan first *walks* it: a `FaultHooks`
for the plan is handed the recorded calls in order, exactly as the engine would hand them, and
its answers pick the branch. Then:

- the walk reaches the end of a recorded run: the plan's run is that run. The engine's part of
  the observation (status, timeline, database...) is the recorded one, the hooks' part (what
  fired, the handler runs, the lifetimes' calls) is what the walk just computed; the verdict
  is the one already computed for that end (it depends on nothing else);
- the plan answers a call in a way no run has: it runs for real from the last recovery on its
  path that was captured (`engine._resume`: store, database image, clock, random state), its
  hooks first handed the calls before that point; without one, from the start. The run
  extends the trie.

What the walk hands the hooks is what the engine would, so the hooks end in the same state as
in a run from the start; tests/chaos/test_memo.py compares the two ways on many plans, random
multi-fault plans included. The trie is used only where that reasoning holds: no declared
events (their sending is not a hook call) and no event faults; and it is dropped when two
fault-free runs differ, or when a real run does not retrace the calls recorded before it (a
workflow that keeps state across runs, in a module or a mock).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from awf_sim.chaos._faults import EVENT_KINDS
from awf_sim.chaos._inject import AnswerHooks, FaultHooks
from awf_sim.chaos._model import Baseline, Observation, Verdict
from awf_sim.chaos._record import End, Recorder, Slot, Step, Trie
from awf_sim.chaos._run import finish, recorded, run_on, verdict_of
from awf_sim.dsl._handlers import watch_types
from awf_sim.engine import Simulator
from awf_sim.engine._resume import resume
from awf_sim.sdk._db import Database

__all__ = ["evaluate", "judge", "observe", "uses_trie"]

# The engine's part of an Observation: what an End keeps.
_ENGINE_FIELDS = (
    "status",
    "output",
    "error",
    "timeline",
    "end_ms",
    "bound_hit",
    "digest",
    "snapshot",
    "writes",
    "effects",
    "effect_steps",
    "value_types",
)


class _View:
    """The HookView a walked FaultHooks reads the virtual time from."""

    __slots__ = ("now_ms",)

    def __init__(self) -> None:
        self.now_ms = 0


def evaluate(base: Baseline, plan: Sequence[Mapping[str, Any]]) -> Verdict:
    """The verdict of one plan's run against every invariant."""
    verdict, shared = judge(base, plan)
    return _copy(verdict) if shared else verdict


def judge(base: Baseline, plan: Sequence[Mapping[str, Any]]) -> tuple[Verdict, bool]:
    """`evaluate`, and whether the verdict is the one object kept for every run that ended
    the same way (shared: to be read only; `evaluate` gives a copy)."""
    trie = _trie_of(base)
    if trie is None or trie.broken or any(f["kind"] in EVENT_KINDS for f in plan):
        return verdict_of(base, run_on(base, plan)), False
    obs, end, path = _walk(base, trie, plan)
    if end is None:
        assert obs is not None
        return verdict_of(base, obs), False
    if end.verdict is None:
        end.verdict = verdict_of(base, obs or _observation(end, plan, _fed(plan, path)))
    return end.verdict, True


def observe(base: Baseline, plan: Sequence[Mapping[str, Any]]) -> Observation:
    """The Observation `evaluate` judges: `run_on(base, plan)`'s, by way of the trie."""
    trie = _trie_of(base)
    if trie is None or trie.broken or any(f["kind"] in EVENT_KINDS for f in plan):
        return run_on(base, plan)
    obs, end, path = _walk(base, trie, plan)
    if obs is None:
        assert end is not None
        return _observation(end, plan, _fed(plan, path))
    return obs


def uses_trie(base: Baseline) -> bool:
    """Whether `evaluate` shares runs for this baseline (see the module docstring)."""
    trie = _trie_of(base)
    return trie is not None and not trie.broken


def _trie_of(base: Baseline) -> Trie | None:
    memo = base._memo
    if memo is None:
        memo = False
        world = base.world
        if not base.workflow.events and (world.db is None or type(world.db) is Database):
            trie = Trie()
            # Two fault-free runs, the second retracing the first: a workflow that behaves
            # otherwise the second time (module state) breaks the trie at once.
            for _ in range(2):
                _real(base, trie, [], FaultHooks(()), None, (trie.top, None))
            if not trie.broken:
                memo = trie
        base._memo = memo
    return memo or None


_VIEW = _View()  # what every walk hands the hooks it feeds (walks do not nest)


def _feed(hooks: FaultHooks, step: Step) -> Any:
    _VIEW.now_ms = step.now
    if step.start:
        return hooks.lifetime_start(_VIEW, *step.args)
    return step.fn(hooks, *step.args)


def _fed(plan: Sequence[Mapping[str, Any]], steps: Sequence[Step]) -> FaultHooks:
    """A plan's hooks, handed `steps` as the engine would: in the state a run has there."""
    hooks = FaultHooks(plan)
    for step in steps:
        _feed(hooks, step)
    return hooks


def _walk(
    base: Baseline, trie: Trie, plan: Sequence[Mapping[str, Any]]
) -> tuple[Observation | None, End | None, list[Step]]:
    """(the run's Observation, its End, the recorded calls the walk followed). At a recorded
    End no Observation: a verdict known for that End needs none, and one is made from the End
    and hooks fed the calls when wanted. The walk itself only needs the plan's answers
    (`AnswerHooks`)."""
    hooks = AnswerHooks(plan)
    view = _VIEW
    path: list[Step] = []
    where: dict[Any, Step | End] = trie.top
    key: Any = None
    deepest = -1  # index in path of the last captured recovery passed
    deepest_slot: Slot = (where, key)
    while True:
        node = where.get(key)
        if node is None:
            break
        if type(node) is End:
            return None, node, path
        assert type(node) is Step
        if node.cap is not None:
            deepest, deepest_slot = len(path), (where, key)
        # _feed, inlined: this loop runs some thirty times per plan.
        view.now_ms = node.now
        path.append(node)
        where = node.next
        if node.start:
            key = tuple(hooks.lifetime_start(view, *node.args) or ())
        else:
            key = node.answer(hooks, *node.args)
    # Nobody ran this far this way: run for real from the deepest capture (or the start),
    # with hooks that were handed exactly the calls before it.
    start: Step | None = None
    if deepest >= 0:
        start = path[deepest]
    else:
        deepest, deepest_slot = 0, (trie.top, None)
    full = _fed(plan, path[:deepest])
    return (*_real(base, trie, plan, full, start, deepest_slot), path)


def _observation(end: End, plan: Sequence[Mapping[str, Any]], hooks: FaultHooks) -> Observation:
    return Observation(
        plan=[dict(f) for f in plan],  # type: ignore[misc]
        **recorded(hooks),
        **end.fields,
    )


def _copy(v: Verdict) -> Verdict:
    """A verdict of its own (a caller may change the violations it gets)."""
    return Verdict(
        list(v.checked),
        [dataclasses.replace(x, difference=list(x.difference)) for x in v.violations],
        list(v.pairs),
        list(v.waits),
        list(v.cpu),
    )


def _real(
    base: Baseline,
    trie: Trie,
    plan: Sequence[Mapping[str, Any]],
    hooks: FaultHooks,
    start: Step | None,
    slot: Slot,
) -> tuple[Observation, End | None]:
    """Run `plan` for real, from `start`'s capture or from the beginning, recording it."""
    target = base.target
    world = base.world
    saved = start.cap if start is not None else None
    if saved is not None and saved.state.db is not None:
        world = world.replace(db=saved.state.db)
    watch = watch_types()
    seen = watch.__enter__()
    rec = Recorder(hooks, seen, trie, slot)
    sim = Simulator(world=world, hooks=rec, cpu_ms=target.cpu_ms)
    rec.sim = sim
    try:
        if saved is None:
            inst = sim.create(target.workflow, target.params, id=target.iid)
        else:
            seen += saved.seen
            rec.marks = list(saved.marks)
            resume(sim, saved.state, target.workflow)
            inst = sim.instance(target.iid)
        expect = base.obs.digest
        obs = finish(
            sim, inst, rec, plan, base.bound_ms, expect, False, trie.digests, trie.snapshots
        )
    finally:
        watch.__exit__(None, None, None)
        sim.close()
    end = rec.end({name: getattr(obs, name) for name in _ENGINE_FIELDS})
    return obs, end
