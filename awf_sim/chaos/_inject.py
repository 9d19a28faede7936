"""The Hooks that inject one fault plan into the engine and record what the run did.

`FaultHooks` answers the engine at each hook point with the action a fault asks for (crash,
throw, time out, evict), fires each fault at most once, sends the declared events on the
plan's schedule, and records for the invariants: each lifetime's step calls, handler runs and
checkpoints, the attempts faults used up, the faults that fired, the waits that waited.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Mapping, Sequence
from fnmatch import fnmatchcase
from typing import Any

from awf_sim.chaos._faults import (
    REPLAY_KINDS,
    SLEEP_KINDS,
    TRANSIENT_ERROR,
    WAIT_KINDS,
)
from awf_sim.chaos._model import Fired, HandlerRun, LateEvent, SentEvent
from awf_sim.engine._hooks import (
    Action,
    Control,
    Crash,
    ForceTimeout,
    Hooks,
    HookView,
    MockError,
    Reseed,
    SkewClock,
    StepRef,
)
from awf_sim.engine._selectors import StepSelector, parse_selector

__all__ = ["AnswerHooks", "FaultHooks"]

_new = tuple.__new__

# The actions faults answer with, made once: they are frozen, and a walk of recorded runs
# (`_memo`) looks its answers up as keys.
_CRASH: dict[str, Crash] = {}
_TRANSIENT = MockError(*TRANSIENT_ERROR)
_HUNG = ForceTimeout(after_config=True)


def _crash(kind: str) -> Crash:
    crash = _CRASH.get(kind)
    if crash is None:
        crash = _CRASH[kind] = Crash(fault=kind)
    return crash


def _attempt_action(kind: str) -> Action:
    """What a fault that fires before an attempt answers."""
    if kind == "transient-error":
        return _TRANSIENT
    if kind == "timeout":
        return _HUNG
    return _crash(kind)


# What a fault's selector works out to, by what the plan says: chaos builds hooks for
# thousands of plans drawn from one small set of faults. (selector, name, is a glob)
_SELECTORS: dict[Any, tuple[StepSelector, str, bool]] = {}


def _selector(step: Any) -> tuple[StepSelector, str, bool]:
    key = tuple(step.items()) if isinstance(step, Mapping) else step
    try:
        return _SELECTORS[key]
    except (KeyError, TypeError):
        pass
    sel = parse_selector(step, method="fault plan")
    parsed = (sel, sel.name, sel.is_glob)
    if len(_SELECTORS) < 10_000:
        try:
            _SELECTORS[key] = parsed
        except TypeError:  # an unhashable name: parse_selector refused it already
            pass
    return parsed


class _Armed:
    __slots__ = (
        "attempt",
        "counts",
        "fault",
        "fired",
        "glob",
        "index",
        "kind",
        "name",
        "pending",
        "sel",
        "slot",
    )

    def __init__(self, index: int, fault: Mapping[str, Any]) -> None:
        self.index = index
        self.fault = fault
        kind: str = fault["kind"]
        self.kind = kind
        self.attempt: int = fault.get("attempt", 1)
        step = fault.get("step")
        # StepSelector.matches, with what it works out on every call worked out once.
        if step is None:
            self.sel: StepSelector | None = None
            self.name = ""
            self.glob = False
        else:
            self.sel, self.name, self.glob = _selector(step)
        # Which calls an indexed selector counts: do steps, sleeps or waits, by fault kind.
        self.counts = "sleep" if kind in SLEEP_KINDS else "wait" if kind in WAIT_KINDS else "do"
        self.fired = False
        self.pending = False  # a replay fault whose crash happened; it applies at the recovery
        self.slot = -1  # position among the indexed selectors


class FaultHooks(Hooks):
    """Injects one plan, and records what a run did for the invariants.

    Records: each lifetime's step calls (kind, path, name, count) in await-start order;
    handler runs and checkpoints (`log`); the attempts that injected faults used up
    (`injected`); the faults that fired (`fired`).
    """

    def __init__(
        self, plan: Sequence[Mapping[str, Any]] = (), late: Sequence[LateEvent] = ()
    ) -> None:
        self._late = {ev.wait: ev for ev in late}
        self.iid = ""
        self.sent: list[SentEvent] = []
        self.plan = list(plan)
        # The armed faults, by the hook that can fire them (one pass: chaos makes hooks for
        # every plan it walks, thousands per campaign).
        self._armed = armed = [_Armed(i, f) for i, f in enumerate(plan)]
        self._before_step: list[_Armed] = []
        self._before_attempt: list[_Armed] = []
        self._after_effect: list[_Armed] = []
        self._after_checkpoint: list[_Armed] = []
        self._replay: list[_Armed] = []
        self._sleep: list[_Armed] = []
        self._wait: list[_Armed] = []
        self._indexed: list[_Armed] = []
        for a in armed:
            kind = a.kind
            if kind == "crash-before-step":
                if a.attempt == 1:
                    self._before_step.append(a)
                elif a.attempt > 1:
                    self._before_attempt.append(a)
            elif kind in ("transient-error", "timeout"):
                self._before_attempt.append(a)
            elif kind == "crash-after-effect":
                self._after_effect.append(a)
            elif kind == "crash-after-checkpoint":
                self._after_checkpoint.append(a)
            elif kind in REPLAY_KINDS:
                if a.sel is not None:
                    self._after_checkpoint.append(a)
                else:
                    a.pending = True  # step-less: the next replay, whatever causes it
                self._replay.append(a)
            elif kind in SLEEP_KINDS:
                self._sleep.append(a)
            elif kind in WAIT_KINDS:
                self._wait.append(a)
            if a.sel is not None and a.sel.index is not None:
                a.slot = len(self._indexed)
                self._indexed.append(a)
        self.sim: HookView | None = None  # observed virtual time, from lifetime_start
        # How events reach the instance: set by whoever runs the simulator (chaos's run);
        # answers False when the instance has ended and takes no more events.
        self.deliver: Callable[[str, Any], bool] | None = None
        self.lifetimes: list[tuple[str, list[tuple[str, str, str, int]]]] = []
        self.log: list[HandlerRun] = []
        self.injected: set[tuple[str, int]] = set()  # (step name, attempt) used up by a fault
        self.fired: list[Fired] = []
        self.waited: set[tuple[str, int]] = set()  # waits that found no buffered event
        self._calls: list[tuple[str, str, str, int]] = []
        self._occ: dict[str, int] = {}
        self._ref_occ: dict[tuple[str, int], int] = {}
        self._counts: list[int] = []
        self._targets: list[StepRef | None] = []
        self._sleep_until: dict[tuple[str, int], int] = {}
        self._wait_deadline: dict[tuple[str, int], int] = {}

    # -- bookkeeping ---------------------------------------------------------------------
    def _fire(self, a: _Armed, ref: StepRef | None, attempt: int | None) -> None:
        a.fired = True
        sim = self.sim
        occ = 0
        if ref is not None:
            occ = self._ref_occ.get((ref.name, ref.count), ref.count)
        self.fired.append(
            Fired(
                a.index,
                a.kind,
                sim.now_ms if sim is not None else 0,
                ref.kind if ref is not None else None,
                ref.path if ref is not None else None,
                ref.name if ref is not None else None,
                ref.count if ref is not None else 0,
                occ,
                attempt,
                len(self.lifetimes),
            )
        )

    def _match(self, a: _Armed, ref: StepRef) -> bool:
        sel = a.sel
        if sel is None:
            return False
        if sel.index is None:
            return _matches(a, ref)
        # By value: a recorded call (`_record`) hands over an equal ref, not the same object;
        # within a lifetime `seq` tells calls apart, so equal is the same call.
        target = self._targets[a.slot]
        return target is ref or target == ref

    # -- the Hooks protocol --------------------------------------------------------------
    def lifetime_start(self, sim: HookView, iid: str, kind: str) -> list[Control]:
        self._calls = []
        self.lifetimes.append((kind, self._calls))
        self._occ = {}
        self._ref_occ = {}
        return self._begin(sim, iid, kind)

    def _begin(self, sim: HookView, iid: str, kind: str) -> list[Control]:
        """A lifetime starts: call counts start over, and a replay fault that the lifetime
        before armed takes effect now."""
        self.sim = sim
        self.iid = iid
        if self._indexed:
            self._counts = [0] * len(self._indexed)
            self._targets = [None] * len(self._indexed)
        controls: list[Control] = []
        if kind == "recover":
            for a in self._replay:
                if a.pending:
                    a.pending = False
                    if a.sel is None:
                        self._fire(a, None, None)
                    if a.kind == "clock-skew":
                        controls.append(SkewClock(a.fault["ms"]))
                    else:
                        controls.append(Reseed(a.fault["seed"]))
        return controls

    def step_call(self, iid: str, ref: StepRef) -> None:
        self._calls.append((ref.kind, ref.path, ref.name, ref.count))
        if ref.kind == "do":
            occ = self._occ.get(ref.path, 0) + 1
            self._occ[ref.path] = occ
            self._ref_occ[(ref.name, ref.count)] = occ
        self._count(ref)

    def _count(self, ref: StepRef) -> None:
        """Count a call for the faults that target the n-th call of a step."""
        for a in self._indexed:
            if a.counts == ref.kind and _matches(a, ref):
                n = self._counts[a.slot] + 1
                self._counts[a.slot] = n
                assert a.sel is not None
                if n == a.sel.index:
                    self._targets[a.slot] = ref

    def before_step(self, iid: str, ref: StepRef) -> Action | None:
        for a in self._before_step:
            if not a.fired and self._match(a, ref):
                self._fire(a, ref, 1)
                return _crash(a.kind)
        return None

    def before_attempt(self, iid: str, ref: StepRef, attempt: int) -> Action | None:
        action = self._attempt_fault(ref, attempt)
        if action is not None:
            self.injected.add((ref.name, attempt))
        if action is None or isinstance(action, ForceTimeout):
            # tuple.__new__: a NamedTuple's own constructor costs a Python call per run.
            self.log.append(
                _new(
                    HandlerRun,
                    (
                        "run",
                        len(self.lifetimes),
                        ref.path,
                        self._ref_occ.get((ref.name, ref.count), ref.count),
                        ref.name,
                        ref.count,
                        attempt,
                    ),
                )
            )
        return action

    def _attempt_fault(self, ref: StepRef, attempt: int) -> Action | None:
        for a in self._before_attempt:
            if not a.fired and a.attempt == attempt and self._match(a, ref):
                self._fire(a, ref, attempt)
                return _attempt_action(a.kind)
        return None

    def after_effect(self, iid: str, ref: StepRef, attempt: int) -> Action | None:
        action = self._effect_fault(ref, attempt)
        if action is not None:
            self.injected.add((ref.name, attempt))
        return action

    def _effect_fault(self, ref: StepRef, attempt: int) -> Action | None:
        for a in self._after_effect:
            if not a.fired and a.attempt == attempt and self._match(a, ref):
                self._fire(a, ref, attempt)
                return _crash(a.kind)
        return None

    def after_checkpoint(self, iid: str, ref: StepRef, attempt: int) -> Action | None:
        self.log.append(
            _new(
                HandlerRun,
                (
                    "ckpt",
                    len(self.lifetimes),
                    ref.path,
                    self._ref_occ.get((ref.name, ref.count), ref.count),
                    ref.name,
                    ref.count,
                    attempt,
                ),
            )
        )
        return self._checkpoint_fault(ref, attempt)

    def _checkpoint_fault(self, ref: StepRef, attempt: int) -> Action | None:
        for a in self._after_checkpoint:
            if a.fired or not self._match(a, ref):
                continue
            if a.kind == "crash-after-checkpoint" and a.attempt != attempt:
                continue
            self._fire(a, ref, attempt)
            if a.kind in REPLAY_KINDS:
                a.pending = True
            return _crash(a.kind)
        return None

    def sleep_ms(self, iid: str, ref: StepRef, ms: int) -> int:
        if self._sleep and self.sim is not None:
            self._sleep_until[(ref.name, ref.count)] = self.sim.now_ms + ms
        return ms

    def during_sleep(self, iid: str, ref: StepRef) -> Action | None:
        for a in self._sleep:
            if not a.fired and self._match(a, ref):
                self._fire(a, ref, None)
                return self._hibernate(self._sleep_until.get((ref.name, ref.count)), a.kind)
        return None

    def wait_timeout_ms(self, iid: str, ref: StepRef, timeout_ms: int) -> int:
        if self.sim is not None:
            deadline = self.sim.now_ms + timeout_ms
            self._wait_deadline[(ref.name, ref.count)] = deadline
            late = self._late.pop(ref.name, None)
            if late is not None:
                at = max(self.sim.now_ms, deadline + late.offset_ms)
                if late.offset_ms >= 0:
                    # Held to or past the deadline: the wait may time out and the instance end
                    # before the event goes out, so the fault takes effect now, when it is held.
                    kind = self.plan[late.fault]["kind"]
                    lifetime = len(self.lifetimes)
                    self.fired.append(
                        Fired(
                            late.fault,
                            kind,
                            self.sim.now_ms,
                            "event",
                            late.type,
                            None,
                            0,
                            0,
                            None,
                            lifetime,
                        )
                    )
                    late = dataclasses.replace(late, fault=-1)
                asyncio.get_running_loop().call_at(at / 1000, self._send_late, late)
        return timeout_ms

    def during_wait(self, iid: str, ref: StepRef) -> Action | None:
        self.waited.add((ref.name, ref.count))
        return self._wait_fault(ref)

    def _wait_fault(self, ref: StepRef) -> Action | None:
        for a in self._wait:
            if not a.fired and self._match(a, ref):
                self._fire(a, ref, None)
                return self._hibernate(self._wait_deadline.get((ref.name, ref.count)), a.kind)
        return None

    # -- events --------------------------------------------------------------------------
    def send(
        self, index: int, copy: int, etype: str, payload: Any, fault: int | None = None
    ) -> bool:
        """Send a declared event (or its copy) now, unless the instance has ended; an event
        wakes an evicted instance, as on Cloudflare."""
        sim = self.sim
        if sim is None or self.deliver is None or not self.deliver(etype, payload):
            return False  # like `awf-sim run`: an ended instance receives no more events
        self.sent.append(SentEvent(len(self.sent), index, copy, etype, sim.now_ms))
        if fault is not None:
            kind = self.plan[fault]["kind"]
            lifetime = len(self.lifetimes)
            self.fired.append(
                Fired(fault, kind, sim.now_ms, "event", etype, None, 0, copy, None, lifetime)
            )
        return True

    def _send_late(self, late: LateEvent) -> None:
        self.send(late.index, 0, late.type, late.payload, late.fault if late.fault >= 0 else None)

    # -- hibernation ---------------------------------------------------------------------
    def _hibernate(self, wake_at: int | None, kind: str) -> Action | None:
        """Evict the instance while it hibernates: it replays when its timer fires or an
        event arrives, whichever comes first, as an evicted instance does on Cloudflare."""
        sim = self.sim
        if sim is None or wake_at is None or wake_at <= sim.now_ms:
            return _crash(kind)
        return Crash(fault=kind, wake_at_ms=wake_at)


class AnswerHooks(FaultHooks):
    """A FaultHooks that only answers: the same answers to the same calls, with nothing
    recorded for the invariants (`lifetimes`, `log`, `fired`, `injected`, `waited` stay
    empty). What a walk of the recorded runs needs to find its way (`_memo`), at a fraction
    of the cost; tests/chaos/test_memo.py holds walks to the verdicts of real runs."""

    def _fire(self, a: _Armed, ref: StepRef | None, attempt: int | None) -> None:
        a.fired = True

    def lifetime_start(self, sim: HookView, iid: str, kind: str) -> list[Control]:
        return self._begin(sim, iid, kind)

    def step_call(self, iid: str, ref: StepRef) -> None:
        self._count(ref)

    def before_attempt(self, iid: str, ref: StepRef, attempt: int) -> Action | None:
        return self._attempt_fault(ref, attempt)

    def after_effect(self, iid: str, ref: StepRef, attempt: int) -> Action | None:
        return self._effect_fault(ref, attempt)

    def after_checkpoint(self, iid: str, ref: StepRef, attempt: int) -> Action | None:
        return self._checkpoint_fault(ref, attempt)

    def during_wait(self, iid: str, ref: StepRef) -> Action | None:
        return self._wait_fault(ref)


def _matches(a: _Armed, ref: StepRef) -> bool:
    """`a.sel.matches(ref)`."""
    name = a.name
    if ref.path == name or ref.name == name:
        return True
    return a.glob and (fnmatchcase(ref.path, name) or fnmatchcase(ref.name, name))
