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
import contextvars
import datetime as _dt
import sys
from collections.abc import Callable, Coroutine, Iterable, Mapping
from typing import Any, Protocol, Unpack

from awf_sim.dsl._identity import loads
from awf_sim.dsl._proxy import StepCall
from awf_sim.engine._calls import Abandoned, CallbackStep, RawStep
from awf_sim.engine._hooks import Action, Crash, Hooks, StepRef
from awf_sim.engine._loop import HORIZON_MS, NO_CONTEXT, Alarm, VirtualLoop
from awf_sim.engine._records import EventRecord, InstanceMeta, StepRecord
from awf_sim.engine._store import Store
from awf_sim.engine._timeline import EntryDetails, Row, shape

__all__ = ["NO_CONTEXT", "Lifetime", "Owner", "Steps", "Tally", "Waiter", "Waits", "utc_datetime"]

_new = tuple.__new__
# What a lifetime cancels when it ends: asyncio's timers, and the loop's shared ones.
Timer = asyncio.TimerHandle | Alarm
_intern = sys.intern
_unregister_task: Callable[[asyncio.Task[Any]], None] = getattr(
    asyncio.tasks, "_unregister_task", lambda task: None
)


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

    clone_engine_errors: bool

    def sleep(
        self, lt: Lifetime, name: str, ms: int | None, until_epoch_ms: int | None
    ) -> Coroutine[Any, Any, None]: ...

    def wait(
        self, lt: Lifetime, name: str, type: str, timeout_ms: int, payload_only: bool = False
    ) -> Coroutine[Any, Any, Any]: ...


class Waiter(Protocol):
    """An event wait in progress (`_waits.EventWait`), as the lifetime lists it."""

    @property
    def type(self) -> str: ...

    def receive(self, ev: EventRecord) -> None:
        """The event `ev` arrived for this wait: checkpoint it and wake the wait."""


class Tally:
    """What the simulator's quiescence test needs, kept by the lifetimes as their counters
    change, so that it reads two numbers instead of scanning every instance: how many
    registered lifetimes are not waiting on an event alone (`busy`: on a sleep or retry wait,
    or on nothing yet), and how many attempts run in them all (`executing`). Also how many
    sleeps and event waits they have begun (`waits`): what bounds a run that never ends,
    since those are not steps and no step limit stops a loop of them."""

    __slots__ = ("busy", "executing", "waits")

    def __init__(self) -> None:
        self.busy = 0
        self.executing = 0
        self.waits = 0


def utc_datetime(epoch_ms: float) -> _dt.datetime:
    """Epoch milliseconds as an aware UTC datetime: how the engine shows a virtual moment."""
    return _dt.datetime.fromtimestamp(epoch_ms / 1000, tz=_dt.UTC)


class Lifetime:
    """One run of an instance's workflow from the top; the Runtime the `wf` proxy talks to."""

    # Every instance that waits keeps its lifetime, so what a lifetime holds is counted in
    # bytes: what most lifetimes never need (a second task or timer, the event dict) is made
    # on first use, and nothing here is a copy of what the store or the workflow holds.
    __slots__ = (
        "_blocked",
        "_created_ms",
        "_epoch_ms",
        "_event",
        "_executing",
        "_payload",
        "_task",
        "_tasks",
        "_timer",
        "_timers",
        "_waits_open",
        "_workflow",
        "alive",
        "api",
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
        epoch_ms: int,
    ) -> None:
        self.owner = owner
        self.store = store
        self.loop = loop
        self.hooks = hooks
        self.steps = steps
        self.waits = waits
        self.iid = iid
        self.alive = True
        self.api: Any = None  # the `wf` of this run, once the body is called (a DSL workflow)
        # Calls numbered so far, per kind and name: a `do` under its name itself (the string
        # its record holds anyway), others under an interned "kind\x1fname" (see `begin`).
        # A tuple of the keys while each was called once and they are few (a dict costs
        # three times the memory, and most lifetimes call each name once), then a dict of
        # the counts (`count`).
        self.counters: tuple[str, ...] | dict[str, int] = ()
        self.step_calls = 0
        self._task: asyncio.Task[Any] | None = None  # the first task spawned: the workflow's
        self._tasks: set[asyncio.Task[Any]] | None = None  # any others, while they run
        self._timer: Timer | None = None  # one timer, then a set for more
        self._timers: set[Timer] | None = None
        self._executing = 0  # attempts whose callback is running (a pause waits for these)
        self._blocked = 0  # sleeps and retry waits in progress (time must pass for these)
        self._waits_open = 0  # event waits in progress (only the outside or a timeout ends these)
        self.tally: Tally | None = None  # set while the simulator counts this lifetime
        # Event waits in progress, oldest first: the one, or a list of them.
        self.waiters: Waiter | list[Waiter] | None = None
        self.pause_gate: asyncio.Future[None] | None = None
        # The event the workflow is called with, built when first asked for (`event`), from
        # what the meta record holds and the simulator's epoch at this lifetime's start.
        self._payload: Any = loads(meta["params"])
        self._workflow = meta["workflow"]
        self._created_ms = meta["created_ms"]
        self._epoch_ms = epoch_ms
        self._event: dict[str, Any] | None = None

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
        # waiting_only before and after, written out: each sleep and retry wait sets this
        # twice. With no event wait open it is False both times.
        if self._waits_open > 0 and self.tally is not None and (self._blocked == 0) != (n == 0):
            self.tally.busy += 1 if self._blocked == 0 else -1
        self._blocked = n

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
        event = self._event
        if event is None:
            event = self._event = {
                "payload": self._payload,
                "timestamp": self.wall_datetime(self._created_ms),
                "instanceId": self.iid,
                "workflowName": self._workflow,
            }
        return event

    def wall_datetime(self, at_ms: float) -> _dt.datetime:
        """The virtual moment `at_ms` (virtual ms) as an aware UTC datetime."""
        return utc_datetime(self._epoch_ms + at_ms)

    @property
    def payload(self) -> Any:
        """The event's payload: the instance's params, decoded once per lifetime."""
        return self._payload

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
        timeline: Iterable[Row] = (),
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
    ) -> Row:
        """A timeline entry now, as stored (`_timeline.row`)."""
        if not details:
            return ((), self.loop._now_ms, kind, path, name, attempt)
        return (shape(*details), self.loop._now_ms, kind, path, name, attempt, *details.values())

    def count(self, key: str) -> int:
        """How many times `key` has been counted in this lifetime, this time included."""
        counters = self.counters
        if type(counters) is tuple:
            if len(counters) < 16 and key not in counters:
                self.counters = (*counters, key)
                return 1
            counters = self.counters = dict.fromkeys(counters, 1)
        count = counters[key] = counters.get(key, 0) + 1  # type: ignore[union-attr,index]
        return count

    def begin(self, kind: str, name: str, path: str) -> tuple[int, str, StepRef | None]:
        """Number this call as Cloudflare does (the k-th call of a name in this lifetime), give
        its store key, and tell the hooks, which see every call, cached or not. (StepExecutor.do
        spells out the "do" branch for a lifetime without hooks: one call less per step.)"""
        if kind == "do":
            # A do step's name has no control character (the executor refuses those), so it
            # is its own counter key, and the string is the one its record keeps anyway.
            count = self.count(name)
            key = f"do:{name}#{count}"
        else:
            # Sleep and wait names are mostly literals of the workflow's code: the keys are
            # interned, so a thousand waiting instances share one string, not a thousand.
            count = self.count(_intern(kind + "\x1f" + name))
            key = _intern(f"{kind}:{name}#{count}")
            if self.tally is not None:
                self.tally.waits += 1
        ref = None
        if self.hooks is not None:
            seq = self.count("\x1fseq:" + kind)
            ref = _new(StepRef, (kind, path, name, count, seq))  # no Python-level __new__
            self.hooks.step_call(self.iid, ref)
        return count, key, ref

    # -- tasks and timers, cancelled all at once when the lifetime ends (`stop`) ------------
    def spawn(
        self, coro: Coroutine[Any, Any, Any], context: contextvars.Context | None = None
    ) -> asyncio.Task[Any]:
        # Named after the instance: a shared string, where asyncio would make "Task-<n>".
        task = self.loop.create_task(coro, name=self.iid, context=context)
        if self._task is None:
            self._task = task  # kept till the lifetime ends: no set, no done callback
            # asyncio also lists every task in a weak set for all_tasks(), at ~150 bytes a
            # task; the engine holds its lifetimes' own, so the workflow's task is left out.
            _unregister_task(task)
        else:
            tasks = self._tasks
            if tasks is None:
                tasks = self._tasks = set()
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        return task

    def add_timer(self, handle: Timer) -> None:
        if self._timer is None:
            self._timer = handle
        else:
            self.timers.add(handle)

    def drop_timer(self, handle: Timer) -> None:
        if self._timer is handle:
            self._timer = None
        elif self._timers is not None:
            self._timers.discard(handle)

    @property
    def timers(self) -> set[Timer]:
        """The timers beyond the first (`add_timer`); adding one here has the same effect."""
        timers = self._timers
        if timers is None:
            timers = self._timers = set()
        return timers

    def stop(self, current: asyncio.Task[Any] | None) -> None:
        """Cancel every timer and task of this lifetime but `current` (the one ending it)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._timers:
            for handle in self._timers:
                handle.cancel()
            self._timers.clear()
        task = self._task
        if task is not None and task is not current:
            task.cancel()
        if self._tasks:
            for task in list(self._tasks):
                if task is not current:
                    task.cancel()
        # Over: what holds this lifetime in turn is let go (its first task's coroutine, the
        # run's `wf` and the domain refs `wf` keeps, which hold `wf`), so the lifetime is
        # freed when its last task ends, not left to the cyclic collector.
        self._task = None
        api, self.api = self.api, None
        if api is not None:
            api._end_run()

    # -- event waits -------------------------------------------------------------------------
    def add_waiter(self, waiter: Waiter) -> None:
        waiters = self.waiters
        if waiters is None:
            self.waiters = waiter  # the common case, one wait: no list
        elif isinstance(waiters, list):
            waiters.append(waiter)
        else:
            self.waiters = [waiters, waiter]

    def take_waiter(self, type: str) -> Waiter | None:
        """The oldest wait of `type` in progress, no longer a waiter."""
        waiters = self.waiters
        if waiters is None:
            return None
        if not isinstance(waiters, list):
            if waiters.type != type:
                return None
            self.waiters = None
            return waiters
        for i, waiter in enumerate(waiters):
            if waiter.type == type:
                del waiters[i]
                return waiter
        return None

    def drop_waiter(self, waiter: Waiter) -> None:
        waiters = self.waiters
        if waiters is waiter:
            self.waiters = None
        elif isinstance(waiters, list):
            for i, w in enumerate(waiters):
                if w is waiter:
                    del waiters[i]
                    return

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
        handle = loop.wake_at(at_ms, fut)
        self.add_timer(handle)
        self.blocked = self._blocked + 1
        try:
            await fut
        except BaseException:
            handle.cancel()  # not when the wait ended: only the timer's own run ends it
            raise
        finally:
            self.blocked = self._blocked - 1
            self.drop_timer(handle)
