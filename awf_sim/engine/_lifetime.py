"""One lifetime of an instance: a run of its workflow from the top, until it ends or is cut off.

A lifetime is what the `wf` proxy (and Cloudflare's Python `step` object) talks to: it numbers
the calls as Cloudflare does, refuses every write once it is dead (`commit`), owns the tasks
and timers it started, and waits in virtual time. It does not decide how a step executes
(`_executor`), nor how sleeps and event waits behave (`_waits`): it hands those calls on.

Three things can end a lifetime early: a pending pause, an injected crash, a fatal error. Each
is decided by the simulator, which knows every other instance and timer; it is reached through
the small `Owner` protocol below, so nothing here imports the simulator.
"""

from __future__ import annotations

import asyncio
import datetime as _dt
from collections.abc import Callable, Coroutine, Iterable, Mapping
from typing import Any, Protocol, Unpack

from awf_sim.dsl._identity import loads
from awf_sim.dsl._proxy import StepCall
from awf_sim.engine._calls import Abandoned, CallbackStep, RawStep
from awf_sim.engine._hooks import Action, Crash, Hooks, StepRef
from awf_sim.engine._loop import HORIZON_MS, VirtualLoop
from awf_sim.engine._records import EventRecord, InstanceMeta, StepRecord
from awf_sim.engine._store import Store
from awf_sim.engine._timeline import EntryDetails, TimelineEntry

__all__ = ["Lifetime", "Owner", "Steps", "Tally", "WaitQueue", "Waits"]

_new = tuple.__new__


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class Owner(Protocol):
    """What a lifetime asks of the simulator that runs it: the ways a lifetime ends early."""

    def end_paused(self, lt: Lifetime) -> None:
        """A pending pause completes now: the instance is paused and this lifetime ends."""

    def end_crashed(
        self, lt: Lifetime, action: Crash, ref: StepRef | None, attempt: int | None
    ) -> Abandoned:
        """The engine dies here (an injected fault); returns what to raise."""
        ...

    def end_fatal(self, lt: Lifetime, message: str) -> Abandoned:
        """The instance ends errored with a WorkflowFatalError; returns what to raise."""
        ...


class Steps(Protocol):
    """Runs `do` steps (the executor in `_executor`)."""

    def do(
        self, lt: Lifetime, name: str, path: str, user_config: Mapping[str, Any], call: Any
    ) -> Coroutine[Any, Any, Any]: ...


class Waits(Protocol):
    """Runs sleeps and event waits (`_waits`)."""

    def sleep(
        self, lt: Lifetime, name: str, ms: int | None, until_epoch_ms: int | None
    ) -> Coroutine[Any, Any, None]: ...

    def wait(
        self, lt: Lifetime, name: str, type: str, timeout_ms: int, payload_only: bool = False
    ) -> Coroutine[Any, Any, Any]: ...


class WaitQueue(list[tuple[str, "asyncio.Future[Any]"]]):
    """The event waits of one type in one lifetime, oldest first: a list, not a deque,
    because a deque's first block costs ~600 bytes per waiting instance and a queue holds one
    or two waits."""

    __slots__ = ()

    def popleft(self) -> tuple[str, asyncio.Future[Any]]:
        return self.pop(0)


class Tally:
    """What the simulator's quiescence test needs, kept by the lifetimes as their counters
    change, so that it reads two numbers instead of scanning every instance: how many
    registered lifetimes are not waiting on an event alone (`busy`: on a sleep or retry wait,
    or on nothing yet), and how many attempts run in them all (`executing`)."""

    __slots__ = ("busy", "executing")

    def __init__(self) -> None:
        self.busy = 0
        self.executing = 0


class Lifetime:
    """One run of an instance's workflow from the top; the Runtime the `wf` proxy talks to."""

    __slots__ = (
        "_blocked",
        "_event",
        "_executing",
        "_waits_open",
        "alive",
        "counters",
        "hooks",
        "iid",
        "loop",
        "owner",
        "pause_gate",
        "step_calls",
        "steps",
        "store",
        "tally",
        "tasks",
        "timers",
        "waiters",
        "waits",
    )

    def __init__(
        self,
        owner: Owner,
        store: Store,
        loop: VirtualLoop,
        hooks: Hooks | None,
        steps: Steps,
        waits: Waits,
        iid: str,
        meta: InstanceMeta,
        timestamp: _dt.datetime,
    ) -> None:
        self.owner = owner
        self.store = store
        self.loop = loop
        self.hooks = hooks
        self.steps = steps
        self.waits = waits
        self.iid = iid
        self.alive = True
        self.counters: dict[str, int] = {}
        self.step_calls = 0
        self.tasks: set[asyncio.Task[Any]] = set()
        self.timers: set[asyncio.TimerHandle] = set()
        self._executing = 0  # attempts whose callback is running (a pause waits for these)
        self._blocked = 0  # sleeps and retry waits in progress (time must pass for these)
        self._waits_open = 0  # event waits in progress (only the outside or a timeout ends these)
        self.tally: Tally | None = None  # set while the simulator counts this lifetime
        self.waiters: dict[str, WaitQueue] = {}
        self.pause_gate: asyncio.Future[None] | None = None
        self._event = {
            "payload": loads(meta["params"]),
            "timestamp": timestamp,
            "instanceId": iid,
            "workflowName": meta["workflow"],
        }

    # -- idleness -------------------------------------------------------------------------
    # Idle means waiting on event waits alone: a lifetime on a sleep, a retry wait or a
    # running handler needs time to pass or work to finish; one blocked on nothing the engine
    # knows lets time pass too. The simulator is quiescent when every lifetime is idle, that
    # is when its tally's `busy` and `executing` are both 0.
    @property
    def waiting_only(self) -> bool:
        """On event waits, and on no sleep or retry wait (running attempts aside)."""
        return self._blocked == 0 and self._waits_open > 0

    def count_in(self, tally: Tally) -> None:
        """Be counted in `tally` (the simulator's) from now on."""
        self.tally = tally
        tally.executing += self._executing
        if not self.waiting_only:
            tally.busy += 1

    def count_out(self) -> None:
        tally = self.tally
        if tally is not None:
            tally.executing -= self._executing
            if not self.waiting_only:
                tally.busy -= 1
            self.tally = None

    @property
    def executing(self) -> int:
        return self._executing

    @executing.setter
    def executing(self, n: int) -> None:
        # Twice per step: kept to one subtraction.
        tally = self.tally
        if tally is not None:
            tally.executing += n - self._executing
        self._executing = n

    @property
    def blocked(self) -> int:
        return self._blocked

    @blocked.setter
    def blocked(self, n: int) -> None:
        was = self.waiting_only
        self._blocked = n
        if self.tally is not None and was is not self.waiting_only:
            self.tally.busy += 1 if was else -1

    @property
    def waits_open(self) -> int:
        return self._waits_open

    @waits_open.setter
    def waits_open(self, n: int) -> None:
        was = self.waiting_only
        self._waits_open = n
        if self.tally is not None and was is not self.waiting_only:
            self.tally.busy += 1 if was else -1

    # -- Runtime protocol ----------------------------------------------------------------
    @property
    def instance_id(self) -> str:
        return self.iid

    @property
    def event(self) -> Mapping[str, Any]:
        return self._event

    def step(self, call: StepCall) -> Coroutine[Any, Any, Any]:
        return self.steps.do(self, call.name, call.label, call.config, call)

    def do(
        self, name: str, fn: Callable[[], Any], config: Mapping[str, Any]
    ) -> Coroutine[Any, Any, Any]:
        return self.steps.do(self, name, name, config, RawStep(fn))

    def do_callback(
        self, name: str, config: Mapping[str, Any], call: CallbackStep
    ) -> Coroutine[Any, Any, Any]:
        """A step whose callback receives the StepInfo (Cloudflare's Python step API)."""
        return self.steps.do(self, name, name, config, call)

    def sleep(self, name: str, ms: int) -> Coroutine[Any, Any, None]:
        return self.waits.sleep(self, name, ms, None)

    def sleep_until(self, name: str, epoch_ms: int) -> Coroutine[Any, Any, None]:
        return self.waits.sleep(self, name, None, epoch_ms)

    def wait_for(self, name: str, type: str, timeout_ms: int) -> Coroutine[Any, Any, Any]:
        return self.waits.wait(self, name, type, timeout_ms, payload_only=True)

    def wait_for_event(self, name: str, type: str, timeout_ms: int) -> Coroutine[Any, Any, Any]:
        """The whole event {"payload", "timestamp", "type"} (Cloudflare's Python step API)."""
        return self.waits.wait(self, name, type, timeout_ms)

    # -- bookkeeping ---------------------------------------------------------------------
    def commit(
        self,
        *,
        meta: InstanceMeta | None = None,
        steps: Mapping[str, StepRecord | None] | None = None,
        events: Iterable[EventRecord] = (),
        timeline: Iterable[TimelineEntry] = (),
        defer: bool = False,
    ) -> None:
        if not self.alive:
            raise Abandoned  # nothing is written after a crash point
        self.store.commit(
            self.iid, meta=meta, steps=steps, events=events, timeline=timeline, defer=defer
        )

    def entry(
        self,
        kind: str,
        path: str | None = None,
        name: str | None = None,
        attempt: int | None = None,
        **details: Unpack[EntryDetails],
    ) -> TimelineEntry:
        # `_timeline.entry` inlined: this runs several times per step.
        e: TimelineEntry = {
            "at_ms": self.loop.now_ms,
            "kind": kind,
            "path": path,
            "name": name,
            "attempt": attempt,
            **details,
        }
        return e

    def next_count(self, key: str) -> int:
        count = self.counters.get(key, 0) + 1
        self.counters[key] = count
        return count

    def begin(self, kind: str, name: str, path: str) -> tuple[int, str, StepRef | None]:
        """Number this call as Cloudflare does (the k-th call of a name in this lifetime), give
        its store key, and tell the hooks, which see every call, cached or not."""
        counters = self.counters
        counted = kind + "\x1f" + name
        count = counters[counted] = counters.get(counted, 0) + 1
        key = f"{kind}:{name}#{count}"
        ref = None
        if self.hooks is not None:
            seq = self.next_count("\x1fseq:" + kind)
            ref = _new(StepRef, (kind, path, name, count, seq))  # no Python-level __new__
            self.hooks.step_call(self.iid, ref)
        return count, key, ref

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = self.loop.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    def act(self, action: Action | None, ref: StepRef, attempt: int | None) -> Action | None:
        """Carry out a crash now; hand any other action back to the caller."""
        if isinstance(action, Crash):
            raise self.owner.end_crashed(self, action, ref, attempt)
        return action

    def pause_point(self) -> None:
        """A step that ends while a pause is pending completes the pause and ends the run."""
        if self.pause_gate is not None and self.executing == 0:
            self.owner.end_paused(self)
            raise Abandoned

    async def wait_until(self, at_ms: int) -> None:
        """Wait in virtual time until `at_ms` (a sleep, a retry wait): time must pass."""
        loop = self.loop
        if at_ms <= loop.now_ms:
            return
        if at_ms > HORIZON_MS:
            years = (at_ms - loop.now_ms) / 31_557_600_000
            raise self.owner.end_fatal(
                self,
                f"the workflow would wait {years:.3g} years of virtual time (a retry backoff or a "
                f"sleep), past the simulator's horizon of {HORIZON_MS} ms (about 285,000 years): "
                "it would never continue; lower the retry limit or delay",
            )
        fut: asyncio.Future[None] = loop.create_future()
        # A module-level callback, not a closure: it lives as long as the wait does.
        handle = loop.call_at(at_ms / 1000, _wake, fut)
        self.timers.add(handle)
        self.blocked += 1
        try:
            await fut
        finally:
            self.blocked -= 1
            handle.cancel()
            self.timers.discard(handle)
