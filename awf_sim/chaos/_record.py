"""What the engine asked a run's hooks, and what they answered: the trie that `_memo` walks.

A chaos run is deterministic: given the same target, the engine makes the same hook call next
(the same method, arguments and virtual time) as long as the hooks gave the same answers so
far. So the runs of a campaign form a trie: each `Step` is one hook call, its children are
keyed by the answer, and a run that ends leaves an `End` (what the engine produced: status,
timeline, database digest...). `Recorder` sits between the engine and a run's `FaultHooks`:
it passes every call on, and, when given a place in the trie, extends it with what it sees.
When a lifetime of kind "recover" starts it also captures the simulator there
(`engine._resume`), so that a later run reaching the same place starts from the capture
instead of running everything before it again.

The recorder also marks where each lifetime begins in the list of step-result types the DSL
records (`watch_types`), so that those types are told apart by lifetime number.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from awf_sim.chaos._inject import AnswerHooks, FaultHooks
from awf_sim.engine._hooks import Action, Control, Hooks, HookView, StepRef
from awf_sim.engine._resume import Capture, capture
from awf_sim.engine._simulator import Simulator

__all__ = ["End", "Recorder", "Saved", "Step", "Trie"]

# Bounds on what one campaign keeps (its trie lives as long as its baseline).
MAX_STEPS = 200_000
MAX_CAPTURES = 1_000  # each holds a database image (tens of KB)


class Saved:
    """A capture, and the recorder's own state at that point."""

    __slots__ = ("marks", "seen", "state")

    def __init__(self, state: Capture, seen: list[tuple[int, str, str]], marks: list[int]):
        self.state = state
        self.seen = seen
        self.marks = marks


# What a walk calls for each method, looked up once per recorded call: the plan's answers
# (AnswerHooks), or everything a run records too (FaultHooks).
_FAULT_HOOKS = {name: getattr(FaultHooks, name) for name in dir(Hooks) if not name.startswith("_")}
_ANSWERS = {name: getattr(AnswerHooks, name) for name in _FAULT_HOOKS}


class Step:
    """One hook call of the engine: `method(*args)` at virtual time `now`."""

    __slots__ = ("answer", "args", "cap", "fn", "method", "next", "now", "start")

    def __init__(self, method: str, args: tuple[Any, ...], now: int) -> None:
        self.method = method
        self.args = args
        self.now = now
        self.fn = _FAULT_HOOKS[method]  # what hands a plan's hooks this call
        self.answer = _ANSWERS[method]  # ... and what a walk calls for the answer only
        self.start = method == "lifetime_start"  # called with a HookView before the args
        self.next: dict[Any, Step | End] = {}  # answer key -> what came next
        self.cap: Saved | None = None


class End:
    """A run's end: the engine's part of its Observation, and the verdict once computed."""

    __slots__ = ("fields", "verdict")

    def __init__(self, fields: dict[str, Any]) -> None:
        self.fields = fields
        self.verdict: Any = None


class Trie:
    """The recorded runs of one campaign (one baseline)."""

    __slots__ = ("broken", "captures", "digests", "snapshots", "steps", "top")

    def __init__(self) -> None:
        self.digests: list[tuple[bytes, str]] = []  # database images at runs' ends, digested
        self.snapshots: dict[str, Any] = {}  # digest -> the rows (of runs' ends that differ)
        self.top: dict[Any, Step | End] = {}  # None -> the first call of every run
        self.broken = False  # a run did not retrace a recorded one: stop trusting the trie
        self.steps = 0
        self.captures = 0


Slot = tuple[dict[Any, "Step | End"], Any]


class Recorder(Hooks):
    """The engine's hooks for one chaos run: `inner` answers; calls go into the trie."""

    def __init__(
        self,
        inner: FaultHooks,
        seen: list[tuple[int, str, str]],
        trie: Trie | None = None,
        slot: Slot | None = None,
    ) -> None:
        self.inner = inner
        self.seen = seen
        self.marks: list[int] = []  # len(seen) as each lifetime began
        self.trie = trie
        # Where the next call goes in the trie: the children of the last call, and the key
        # of its answer (`_where` None: not recording).
        self._where: dict[Any, Step | End] | None = None
        self._key: Any = None
        if slot is not None:
            self._where, self._key = slot
        self.sim: Simulator | None = None  # set by the runner, for captures
        self._view: HookView | None = None

    def _note(self, method: str, args: tuple[Any, ...], key: Any) -> Step | None:
        """Record a call whose answer, as a trie key, is `key`."""
        where = self._where
        assert where is not None
        assert self._view is not None
        node = where.get(self._key)
        now = self._view.now_ms
        if node is None:
            trie = self.trie
            assert trie is not None
            if trie.steps >= MAX_STEPS:
                self._where = None
                return None
            trie.steps += 1
            node = where[self._key] = Step(method, args, now)
        elif type(node) is not Step or (
            node.method != method or node.args != args or node.now != now
        ):
            assert self.trie is not None
            self.trie.broken = True
            self._where = None
            return None
        try:
            hash(key)
        except TypeError:  # an answer that cannot be a key: nothing more to record
            self._where = None
            return node
        self._where = node.next
        self._key = key
        return node

    def end(self, fields: dict[str, Any]) -> End | None:
        """The run ended: its End, new or (when a run retraced this one) the same."""
        where = self._where
        if where is None:
            return None
        assert self.trie is not None
        key = self._key
        node = where.get(key)
        if node is None:
            node = where[key] = End(fields)
            return node
        if type(node) is not End or node.fields != fields:
            self.trie.broken = True
            return None
        return node

    def value_types(self) -> list[tuple[int, str, str]]:
        """The step-result types the workflow received: (lifetime number, step name, type)."""
        marks = self.marks
        n = len(marks)
        j = 0
        out = []
        for i, (_token, name, kind) in enumerate(self.seen):
            while j < n and marks[j] <= i:
                j += 1
            out.append((j, name, kind))
        return out

    # -- the Hooks protocol, passed on ------------------------------------------------------
    def lifetime_start(self, sim: HookView, iid: str, kind: str) -> Sequence[Control] | None:
        self._view = sim
        where = self._where
        if where is not None and kind == "recover":
            node = where.get(self._key)
            trie = self.trie
            assert trie is not None
            if (
                (node is None or (type(node) is Step and node.cap is None))
                and self.sim is not None
                and trie.captures < MAX_CAPTURES
                and not trie.broken
            ):
                state = capture(self.sim, iid)
                if state is not None:
                    saved = Saved(state, list(self.seen), list(self.marks))
                    answer = self.inner.lifetime_start(sim, iid, kind)
                    self.marks.append(len(self.seen))
                    step = self._note("lifetime_start", (iid, kind), tuple(answer or ()))
                    if step is not None:
                        trie.captures += 1
                        step.cap = saved
                    return answer
        answer = self.inner.lifetime_start(sim, iid, kind)
        self.marks.append(len(self.seen))
        if where is not None:
            self._note("lifetime_start", (iid, kind), tuple(answer or ()))
        return answer

    def pending(self) -> Sequence[Control]:
        return self.inner.pending()

    def step_call(self, iid: str, ref: StepRef) -> None:
        self.inner.step_call(iid, ref)
        if self._where is not None:
            self._note("step_call", (iid, ref), None)

    def before_step(self, iid: str, ref: StepRef) -> Action | None:
        answer = self.inner.before_step(iid, ref)
        if self._where is not None:
            self._note("before_step", (iid, ref), answer)
        return answer

    def before_attempt(self, iid: str, ref: StepRef, attempt: int) -> Action | None:
        answer = self.inner.before_attempt(iid, ref, attempt)
        if self._where is not None:
            self._note("before_attempt", (iid, ref, attempt), answer)
        return answer

    def after_effect(self, iid: str, ref: StepRef, attempt: int) -> Action | None:
        answer = self.inner.after_effect(iid, ref, attempt)
        if self._where is not None:
            self._note("after_effect", (iid, ref, attempt), answer)
        return answer

    def after_checkpoint(self, iid: str, ref: StepRef, attempt: int) -> Action | None:
        answer = self.inner.after_checkpoint(iid, ref, attempt)
        if self._where is not None:
            self._note("after_checkpoint", (iid, ref, attempt), answer)
        return answer

    def retry_delay(self, iid: str, ref: StepRef, attempt: int, delay_ms: int) -> int:
        answer = self.inner.retry_delay(iid, ref, attempt, delay_ms)
        if self._where is not None:
            self._note("retry_delay", (iid, ref, attempt, delay_ms), answer)
        return answer

    def sleep_ms(self, iid: str, ref: StepRef, ms: int) -> int:
        answer = self.inner.sleep_ms(iid, ref, ms)
        if self._where is not None:
            self._note("sleep_ms", (iid, ref, ms), answer)
        return answer

    def during_sleep(self, iid: str, ref: StepRef) -> Action | None:
        answer = self.inner.during_sleep(iid, ref)
        if self._where is not None:
            self._note("during_sleep", (iid, ref), answer)
        return answer

    def wait_timeout_ms(self, iid: str, ref: StepRef, timeout_ms: int) -> int:
        answer = self.inner.wait_timeout_ms(iid, ref, timeout_ms)
        if self._where is not None:
            self._note("wait_timeout_ms", (iid, ref, timeout_ms), answer)
        return answer

    def force_wait_timeout(self, iid: str, ref: StepRef) -> bool:
        answer = self.inner.force_wait_timeout(iid, ref)
        if self._where is not None:
            self._note("force_wait_timeout", (iid, ref), answer)
        return answer

    def during_wait(self, iid: str, ref: StepRef) -> Action | None:
        answer = self.inner.during_wait(iid, ref)
        if self._where is not None:
            self._note("during_wait", (iid, ref), answer)
        return answer
