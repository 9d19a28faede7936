"""The engine's seam for changing what happens at a step: test modifiers and fault injection.

The engine calls a Hooks object at every point where Cloudflare's behaviour can be bent: each
step call (cached or not, in the order the awaits start), before a step first executes, before
each attempt, after a handler's effect, after a checkpoint, around retry waits, sleeps and
event waits. A hook answers with an action (mock the result, throw, time out, crash) or None.

Hooks are never handed the Simulator: they observe and answer, as trio keeps observing
(Instrument) apart from controlling (Clock). At the start of each lifetime a hook gets a
read-only `HookView` (virtual time) and may answer with controls (`SkewClock`, `Reseed`,
`SendEvent`), which the engine applies before the lifetime runs; controls a hook decides on
between runs (an event mocked after an instance started) wait in `pending()`, which the engine
takes each time it starts to run.

The testing modifier and chaos fault plans are both Hooks; `HookChain` runs several, the
first action wins and durations pass through each in turn.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

__all__ = [
    "INVALID_CONFIG",
    "Action",
    "Control",
    "Crash",
    "ForceTimeout",
    "HookChain",
    "HookView",
    "Hooks",
    "LoopView",
    "MockError",
    "MockResult",
    "Reseed",
    "SendEvent",
    "SkewClock",
    "StepRef",
]


class StepRef(NamedTuple):
    """One call of a step in one lifetime (immutable; a NamedTuple because the engine makes
    one per call when hooks are set, and a frozen dataclass costs five times as much).

    kind: "do", "sleep" or "wait"; path: the dotted path ("Inventory.check", or the raw
    name); name: the Cloudflare step name; count: the occurrence of that name in this
    lifetime (Cloudflare's ctx.step.count); seq: 1-based order of this call among all calls
    of its kind in this lifetime.
    """

    kind: str
    path: str
    name: str
    count: int  # type: ignore[assignment]  # a field named as tuple.count, on purpose (ctx.step.count)
    seq: int


@dataclass(frozen=True, slots=True)
class Crash:
    """Crash the engine here: in-memory state is dropped, the instance replays from the store.

    `wake_at_ms` None: the engine restarts at once. A virtual time: the instance is evicted
    (it was hibernating on a sleep or an event wait) and replays when that time comes or an
    event arrives for it, whichever is first, as Cloudflare wakes an evicted instance.
    """

    fault: str = "crash"
    wake_at_ms: int | None = None


@dataclass(frozen=True, slots=True)
class MockResult:
    """The attempt succeeds with `value`; the handler does not run."""

    value: Any


@dataclass(frozen=True, slots=True)
class MockError:
    """The attempt throws an error with this name and message; the handler does not run."""

    name: str
    message: str


@dataclass(frozen=True, slots=True)
class ForceTimeout:
    """The attempt times out. The handler still starts (its effects happen) and its result is
    ignored. `after_config` False: at once, "after 0ms" (Cloudflare's forceStepTimeout); True:
    when the step's configured timeout expires (a handler that hung)."""

    after_config: bool = False


Action = Crash | MockResult | MockError | ForceTimeout


@dataclass(frozen=True, slots=True)
class SkewClock:
    """The virtual wall clock jumps by `ms` from this lifetime on (a replay on a machine whose
    clock is off); virtual monotonic time, and so every timer, is unaffected."""

    ms: int


@dataclass(frozen=True, slots=True)
class Reseed:
    """The randomness stream is reseeded with `seed` from this lifetime on (a replay on a
    new machine)."""

    seed: int


@dataclass(frozen=True, slots=True)
class SendEvent:
    """Send instance `iid` an event, as `Instance.send_event` does."""

    iid: str
    type: str
    payload: Any = None


Control = SkewClock | Reseed | SendEvent

# A step config that failed validation, passed through so the engine can reject it at the
# point of the call where Cloudflare does (after the step-limit and name checks).
INVALID_CONFIG: dict[str, object] = {"__invalid__": True}


class LoopView:
    """What hooks see of a simulator (a `HookView`): the virtual time of its loop."""

    __slots__ = ("_loop",)

    def __init__(self, loop: Any) -> None:
        self._loop = loop

    @property
    def now_ms(self) -> int:
        now: int = self._loop.now_ms
        return now


class HookView(Protocol):
    """What `Hooks.lifetime_start` is handed instead of the Simulator: it can only be read."""

    @property
    def now_ms(self) -> int:
        """Virtual milliseconds since the simulator started."""
        ...


class Hooks:
    """No-op base: override what you need. Every method is called on the simulator's thread."""

    def lifetime_start(self, sim: HookView, iid: str, kind: str) -> Sequence[Control] | None:
        """A lifetime begins: kind is workflow-start, recover, resumed or restarted. The
        controls returned are applied before the lifetime runs."""
        return None

    def pending(self) -> Sequence[Control]:
        """Controls decided outside any call of the engine, applied when it next runs."""
        return ()

    def step_call(self, iid: str, ref: StepRef) -> None:
        """Every do/sleep/wait call, cached or not, in the order the awaits start."""

    def before_step(self, iid: str, ref: StepRef) -> Action | None:
        """A `do` step is about to execute for the first time (nothing of it is stored yet)."""
        return None

    def before_attempt(self, iid: str, ref: StepRef, attempt: int) -> Action | None:
        """The attempt count is stored; the handler is about to run."""
        return None

    def after_effect(self, iid: str, ref: StepRef, attempt: int) -> Action | None:
        """The handler returned; its checkpoint is not written yet."""
        return None

    def after_checkpoint(self, iid: str, ref: StepRef, attempt: int) -> Action | None:
        """The result is checkpointed."""
        return None

    def retry_delay(self, iid: str, ref: StepRef, attempt: int, delay_ms: int) -> int:
        return delay_ms

    def sleep_ms(self, iid: str, ref: StepRef, ms: int) -> int:
        return ms

    def during_sleep(self, iid: str, ref: StepRef) -> Action | None:
        """A sleep's deadline is stored and the sleep has begun."""
        return None

    def wait_timeout_ms(self, iid: str, ref: StepRef, timeout_ms: int) -> int:
        return timeout_ms

    def force_wait_timeout(self, iid: str, ref: StepRef) -> bool:
        """True: the wait times out at once, before any buffered event is looked at, with its
        configured timeout in the message (Cloudflare's forceEventTimeout)."""
        return False

    def during_wait(self, iid: str, ref: StepRef) -> Action | None:
        """An event wait is stored and has begun (no buffered event matched yet)."""
        return None


class HookChain(Hooks):
    """Several Hooks in order: the first action wins; durations pass through each."""

    def __init__(self, hooks: Sequence[Hooks]) -> None:
        self.hooks = list(hooks)

    def lifetime_start(self, sim: HookView, iid: str, kind: str) -> Sequence[Control] | None:
        controls: list[Control] = []
        for h in self.hooks:
            controls += h.lifetime_start(sim, iid, kind) or ()
        return controls

    def pending(self) -> Sequence[Control]:
        return [c for h in self.hooks for c in h.pending()]

    def step_call(self, iid: str, ref: StepRef) -> None:
        for h in self.hooks:
            h.step_call(iid, ref)

    def before_step(self, iid: str, ref: StepRef) -> Action | None:
        return _first(h.before_step(iid, ref) for h in self.hooks)

    def before_attempt(self, iid: str, ref: StepRef, attempt: int) -> Action | None:
        return _first(h.before_attempt(iid, ref, attempt) for h in self.hooks)

    def after_effect(self, iid: str, ref: StepRef, attempt: int) -> Action | None:
        return _first(h.after_effect(iid, ref, attempt) for h in self.hooks)

    def after_checkpoint(self, iid: str, ref: StepRef, attempt: int) -> Action | None:
        return _first(h.after_checkpoint(iid, ref, attempt) for h in self.hooks)

    def retry_delay(self, iid: str, ref: StepRef, attempt: int, delay_ms: int) -> int:
        for h in self.hooks:
            delay_ms = h.retry_delay(iid, ref, attempt, delay_ms)
        return delay_ms

    def sleep_ms(self, iid: str, ref: StepRef, ms: int) -> int:
        for h in self.hooks:
            ms = h.sleep_ms(iid, ref, ms)
        return ms

    def during_sleep(self, iid: str, ref: StepRef) -> Action | None:
        return _first(h.during_sleep(iid, ref) for h in self.hooks)

    def wait_timeout_ms(self, iid: str, ref: StepRef, timeout_ms: int) -> int:
        for h in self.hooks:
            timeout_ms = h.wait_timeout_ms(iid, ref, timeout_ms)
        return timeout_ms

    def force_wait_timeout(self, iid: str, ref: StepRef) -> bool:
        return any(h.force_wait_timeout(iid, ref) for h in self.hooks)

    def during_wait(self, iid: str, ref: StepRef) -> Action | None:
        return _first(h.during_wait(iid, ref) for h in self.hooks)


def _first(actions: Any) -> Action | None:
    # A generator, so later hooks are not asked once one has answered.
    for action in actions:
        if action is not None:
            return action  # type: ignore[no-any-return]
    return None
