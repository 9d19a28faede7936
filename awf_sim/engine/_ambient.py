"""Ambient process state made virtual while a simulation runs: wall clock, `random`, network.

The engine wraps each run in `simulation_scope(wall_ms, rng)`. Inside it, on that thread (and in
work handed on with its context, such as `asyncio.to_thread`):

- wall-clock reads (`time.time()`, `time.time_ns()`, `datetime.now()/utcnow()/today()`,
  `date.today()`, `time.localtime()/gmtime()/strftime()` without a time argument) return the
  virtual instant `wall_ms()`. Only the instant changes: local time is still the process's time
  zone, so `datetime.now()` is the local wall time at the virtual instant;
- the module-level `random` functions draw from `rng`'s state;
- a real network connection attempt raises `NetworkAccessRefused`, and so does starting a
  process (a child process would be outside the guard).

The network guard lives in `_netguard` (an audit hook, so every socket API and process start is
covered); threads started inside a scope inherit the guard, not the virtual clock, for as long
as the scope lasts.

Everywhere else, reads are real. `time.monotonic`/`time.perf_counter` are never faked: asyncio
loops, timeouts and pytest's durations depend on them.

How the clock is faked (DESIGN §3, §9): freezegun is started once per process, lazily, on the
first scope entry, because its start scans every loaded module (milliseconds); it is never
stopped. Its fakes only ask this module what time it is, so leaving it running costs a thread
check per read. This relies on freezegun 1.5.5 internals (the version is pinned in
pyproject.toml):

- the module-level stacks `freeze_factories`, `tz_offsets`, `ignore_lists`, `tick_flags`, and
  that `_freeze_time.start()` only patches when the stacks are empty and `stop()` only unpatches
  when they become empty again: our entry sits at the bottom of the stacks forever, so another
  `freeze_time` started by user code nests above it and its stop never unpatches ours;
- the module globals `get_current_time` and `_should_use_real_time`, which every fake looks up
  at call time (we replace both), and `call_stack_inspection_limit`;
- `real_time`, `real_datetime`, ...: the genuine functions and classes it saved at import;
- `fake_time`, `fake_monotonic`, ...: the functions its start scan puts into other modules
  (we put ours, or the real clocks, in their place), and `FakeDatetime`/`FakeDate`, whose
  clock classmethods we replace so that they are real outside a scope (freezegun's own treat a
  naive datetime as UTC, which is wrong outside a freeze when the time zone is not UTC).

Once started, `datetime.datetime`/`datetime.date` are freezegun's classes for good, but reads
called on them return plain `datetime`/`date` objects (same values and reprs as without
freezegun). Pickles of datetimes made in this process name `freezegun.api.FakeDatetime`
(freezegun's copyreg entries, needed because `datetime.datetime` is no longer the real class).

A `freeze_time` started by user code still works outside a simulation (its factory is on top of
the stacks, so every read is handed to freezegun's own code), except that it can no longer
freeze `time.monotonic`/`perf_counter`. Inside a simulation, virtual time wins.

Randomness: as DESIGN §9 says, the simulator's state is swapped into the global `random.Random`
on entry and written back on exit. That state is process-wide, so two simulations running at
the same time on two threads share it; only the clock and the network guard are per thread.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as _dt
import random
import sys
import threading
import time
import types
from collections.abc import Callable, Iterator
from typing import Any

import freezegun
import freezegun.api as _fg

from awf_sim.engine import _netguard
from awf_sim.errors import NetworkAccessRefused

__all__ = [
    "NetworkAccessRefused",
    "current_wall_ms",
    "in_simulation",
    "simulation_scope",
]

# Never bind freezegun's saved real functions or classes (`_fg.real_time`, `_fg.real_datetime`)
# to names in this module: freezegun's start scan would replace them with its fakes. They are
# always read through `_fg`. The descriptors below are not scanned for.
_REAL_DATETIME_NOW = _fg.real_datetime.__dict__["now"]
_REAL_DATETIME_UTCNOW = _fg.real_datetime.__dict__["utcnow"]
_REAL_DATETIME_FROMTIMESTAMP = _fg.real_datetime.__dict__["fromtimestamp"]
_REAL_DATE_TODAY = _fg.real_date.__dict__["today"]
_REAL_DATE_FROMTIMESTAMP = _fg.real_date.__dict__["fromtimestamp"]
# freezegun's versions, still used while a freeze_time started by user code is on top.
_FG_NOW = _fg.FakeDatetime.__dict__["now"]
_FG_UTCNOW = _fg.FakeDatetime.__dict__["utcnow"]
_FG_DATETIME_TODAY = _fg.FakeDatetime.__dict__["today"]
_FG_FROMTIMESTAMP = _fg.FakeDatetime.__dict__["fromtimestamp"]
_FG_TIMESTAMP = _fg.FakeDatetime.__dict__["timestamp"]
_FG_DATE_TODAY = _fg.FakeDate.__dict__["today"]
# What datetime.datetime / datetime.date are once freezegun has started.
_FakeDatetime: type[_dt.datetime] = _fg.FakeDatetime
_FakeDate: type[_dt.date] = _fg.FakeDate


class _ThreadState(threading.local):
    # A class attribute is every thread's default, so a read never needs a hasattr check.
    wall_ms: Callable[[], int] | None = None


_thread = _ThreadState()
# Besides the thread, the scope is set in the context, so that work the simulation hands to a
# thread with its context (asyncio.to_thread) is virtual and guarded too. Plain threads do not
# inherit contexts, so they stay real.
_context: contextvars.ContextVar[Callable[[], int] | None] = contextvars.ContextVar(
    "awf_sim_wall_ms", default=None
)
_context_get = _context.get

# The same list objects freezegun mutates (append/pop), read on every fake call.
_ignore_lists: list[tuple[str, ...]] = _fg.ignore_lists
# Identifies our freeze_time entry: its ignore tuple, created before start(), so that our seams
# recognise it even during the start scan (the factory object only exists after start()).
# The module name in it keeps the tuple unique (an empty tuple is a shared singleton) and keeps
# freezegun's scan out of this module.
_own_ignore: tuple[str, ...] | None = None
_installed = False
_install_lock = threading.Lock()


def _active() -> Callable[[], int] | None:
    wall_ms = _thread.wall_ms
    return wall_ms if wall_ms is not None else _context_get()


def _foreign() -> bool:
    """A freeze_time started by user code is on top and no scope is active here."""
    return _ignore_lists[-1] is not _own_ignore and _active() is None


# --- the clock functions put on the `time` module ---
#
# These run on every wall-clock read in the process, so `_active()` is inlined: outside a scope
# a read costs two lookups and an identity check on top of the real call.


def _time() -> float:
    wall_ms = _thread.wall_ms
    if wall_ms is None:
        wall_ms = _context_get()
        if wall_ms is None:
            if _ignore_lists[-1] is _own_ignore:
                return _fg.real_time()
            return _fg.fake_time()
    return wall_ms() / 1000


def _time_ns() -> int:
    wall_ms = _thread.wall_ms
    if wall_ms is None:
        wall_ms = _context_get()
        if wall_ms is None:
            if _ignore_lists[-1] is _own_ignore:
                return _fg.real_time_ns()
            return _fg.fake_time_ns()
    return wall_ms() * 1_000_000


def _localtime(secs: float | None = None, /) -> time.struct_time:
    if secs is None:
        wall_ms = _thread.wall_ms
        if wall_ms is None:
            wall_ms = _context_get()
            if wall_ms is None:
                if _ignore_lists[-1] is _own_ignore:
                    return _fg.real_localtime()
                return _fg.fake_localtime()
        return _fg.real_gmtime(wall_ms() // 1000)  # a simulation's local zone is UTC
    return _fg.real_localtime(secs)


def _gmtime(secs: float | None = None, /) -> time.struct_time:
    if secs is None:
        wall_ms = _thread.wall_ms
        if wall_ms is None:
            wall_ms = _context_get()
            if wall_ms is None:
                if _ignore_lists[-1] is _own_ignore:
                    return _fg.real_gmtime()
                return _fg.fake_gmtime()
        return _fg.real_gmtime(wall_ms() // 1000)
    return _fg.real_gmtime(secs)


def _strftime(fmt: str, /, *t: Any) -> str:
    # *t rather than t=None: real strftime rejects an explicit None, and so should this.
    if t:
        return _fg.real_strftime(fmt, *t)
    wall_ms = _active()
    if wall_ms is not None:
        return _fg.real_strftime(fmt, _fg.real_gmtime(wall_ms() // 1000))
    if _ignore_lists[-1] is _own_ignore:
        return _fg.real_strftime(fmt)
    return _fg.fake_strftime(fmt)


# --- classmethods put on freezegun's FakeDatetime / FakeDate (datetime.datetime/date) ---
#
# Called on FakeDatetime/FakeDate themselves, they return plain datetime/date objects, so that
# values (and their reprs) are the same as without freezegun; a subclass gets its own type.


def _datetime_at(cls: type[_dt.datetime], ms: int, tz: _dt.tzinfo | None) -> _dt.datetime:
    # Whole seconds through the real conversion (local zone, DST, fold), then the exact
    # milliseconds: a float timestamp could round them.
    seconds, millis = divmod(ms, 1000)
    if cls is _FakeDatetime:
        moment = _fg.real_datetime.fromtimestamp(seconds, tz)
    else:
        moment = _REAL_DATETIME_FROMTIMESTAMP.__get__(None, cls)(seconds, tz)
    return moment.replace(microsecond=millis * 1000)


def _now(cls: type[_dt.datetime], tz: _dt.tzinfo | None = None) -> _dt.datetime:
    wall_ms = _thread.wall_ms
    if wall_ms is None:
        wall_ms = _context_get()
        if wall_ms is None:
            if _ignore_lists[-1] is _own_ignore:
                if cls is _FakeDatetime:
                    return _fg.real_datetime.now(tz)
                return _REAL_DATETIME_NOW.__get__(None, cls)(tz)  # type: ignore[no-any-return]
            return _FG_NOW.__func__(cls, tz)  # type: ignore[no-any-return]
    if tz is None:
        # A simulation's local zone is UTC, as on Cloudflare's Workers, so a seed replays the
        # same way on every machine whatever its TZ.
        return _datetime_at(cls, wall_ms(), _dt.UTC).replace(tzinfo=None)
    return _datetime_at(cls, wall_ms(), tz)


def _utcnow(cls: type[_dt.datetime]) -> _dt.datetime:
    wall_ms = _thread.wall_ms
    if wall_ms is None:
        wall_ms = _context_get()
        if wall_ms is None:
            if _ignore_lists[-1] is _own_ignore:
                if cls is _FakeDatetime:
                    return _fg.real_datetime.utcnow()
                return _REAL_DATETIME_UTCNOW.__get__(None, cls)()  # type: ignore[no-any-return]
            return _FG_UTCNOW.__func__(cls)  # type: ignore[no-any-return]
    return _datetime_at(cls, wall_ms(), _dt.UTC).replace(tzinfo=None)


def _datetime_today(cls: type[_dt.datetime]) -> _dt.datetime:
    if _foreign():
        return _FG_DATETIME_TODAY.__func__(cls)  # type: ignore[no-any-return]
    return _now(cls)


def _fromtimestamp(cls: type[_dt.datetime], t: float, tz: _dt.tzinfo | None = None) -> _dt.datetime:
    if _foreign():
        return _FG_FROMTIMESTAMP.__func__(cls, t, tz)  # type: ignore[no-any-return]
    if cls is _FakeDatetime:
        return _fg.real_datetime.fromtimestamp(t, tz)
    return _REAL_DATETIME_FROMTIMESTAMP.__get__(None, cls)(t, tz)  # type: ignore[no-any-return]


def _timestamp(self: _dt.datetime) -> float:
    if _foreign():
        return _FG_TIMESTAMP(self)  # type: ignore[no-any-return]
    return _fg.real_datetime.timestamp(self)


def _date_today(cls: type[_dt.date]) -> _dt.date:
    wall_ms = _thread.wall_ms
    if wall_ms is None:
        wall_ms = _context_get()
        if wall_ms is None:
            if _ignore_lists[-1] is _own_ignore:
                if cls is _FakeDate:
                    return _fg.real_date.today()
                return _REAL_DATE_TODAY.__get__(None, cls)()  # type: ignore[no-any-return]
            return _FG_DATE_TODAY.__func__(cls)  # type: ignore[no-any-return]
    day = _fg.real_datetime.fromtimestamp(wall_ms() // 1000, _dt.UTC)  # local zone is UTC
    if cls is _FakeDate:
        return _fg.real_date(day.year, day.month, day.day)
    return cls(day.year, day.month, day.day)


# --- seams inside freezegun, reached by its own fakes where they are still referenced ---


def _pydantic_datetime_schema(cls: type, source: Any, handler: Any) -> Any:
    from pydantic_core import core_schema

    return core_schema.datetime_schema()


def _pydantic_date_schema(cls: type, source: Any, handler: Any) -> Any:
    from pydantic_core import core_schema

    return core_schema.date_schema()


def _get_current_time() -> _dt.datetime:
    """freezegun's frozen instant: naive UTC."""
    wall_ms = _active()
    if wall_ms is not None:
        return _fg.real_datetime(1970, 1, 1) + _dt.timedelta(milliseconds=wall_ms())
    if _ignore_lists[-1] is _own_ignore:
        return _fg.real_datetime.now(_dt.UTC).replace(tzinfo=None)
    return _fg.freeze_factories[-1]()


def _should_use_real_time() -> bool:
    if _active() is not None:
        return False
    ignore = _ignore_lists[-1] if _ignore_lists else None
    if ignore is None or ignore is _own_ignore:
        return True
    # A freeze_time started by user code: freezegun 1.5.5's own rule, which skips reads made
    # from modules on its ignore list. Its frame arithmetic assumes it is called by the fake
    # that user code called; our clock functions may sit in between, so skip them.
    limit = _fg.call_stack_inspection_limit
    if not limit or not ignore:
        return False
    frame: types.FrameType | None = sys._getframe(2)
    own_globals = globals()
    while frame is not None and frame.f_globals is own_globals:
        frame = frame.f_back
    for _ in range(limit):
        if frame is None:
            break
        module_name = frame.f_globals.get("__name__")
        if module_name and module_name.startswith(ignore):
            return True
        frame = frame.f_back
    return False


# --- installation, once per process ---


def _start_without_lazy_imports(freezer: Any) -> None:
    """`freezer.start()`, with lazily loaded module attributes left unloaded: freezegun reads
    every attribute of every module to find clocks to patch, and reading `awf_sim.assert_durable`
    or `concurrent.futures.ProcessPoolExecutor` imports chaos, multiprocessing and more (80 ms,
    on the first run of every process, a recovery's included). With a module's `__getattr__`
    set aside for the scan, such a name is an AttributeError, which freezegun skips; none of
    them is a clock. Runs once per process, under the install lock."""
    lazy = []
    for module in list(sys.modules.values()):
        namespace = getattr(module, "__dict__", None)
        if type(namespace) is dict and type(namespace.get("__getattr__")) is types.FunctionType:
            lazy.append((namespace, namespace.pop("__getattr__")))
    try:
        freezer.start()
    finally:
        for namespace, getter in lazy:
            namespace["__getattr__"] = getter


def _install() -> None:
    global _own_ignore, _installed
    with _install_lock:
        if _installed:
            return
        freezer = freezegun.freeze_time(
            _fg.real_datetime(1970, 1, 1),
            ignore=[__name__],
            # Not needed (monotonic is made real below), and it would patch the loop class
            # and open a throwaway event loop.
            real_asyncio=False,
        )
        _own_ignore = freezer.ignore
        # Seams first, so that from the moment start() patches the clocks, other threads read
        # real time (they would read the 1970 freeze during its scan otherwise).
        _fg.get_current_time = _get_current_time
        _fg._should_use_real_time = _should_use_real_time
        fake_datetime: Any = _fg.FakeDatetime
        fake_date: Any = _fg.FakeDate
        fake_datetime.now = classmethod(_now)
        fake_datetime.utcnow = classmethod(_utcnow)
        fake_datetime.today = classmethod(_datetime_today)
        fake_datetime.fromtimestamp = classmethod(_fromtimestamp)
        fake_datetime.timestamp = _timestamp
        fake_date.today = classmethod(_date_today)
        # datetime.datetime/date stay freezegun's classes for the rest of the process, so a
        # pydantic model with a `datetime` field defined after the first simulation (the
        # user's, or awf_deploy's Cloudflare models imported late) meets FakeDatetime, which
        # pydantic has no schema for. They validate as what they stand for.
        fake_datetime.__get_pydantic_core_schema__ = classmethod(_pydantic_datetime_schema)
        fake_date.__get_pydantic_core_schema__ = classmethod(_pydantic_date_schema)

        # When user code's freeze_time is already running, start() patches nothing: the fakes
        # in other modules are theirs, and only a scan of every module finds them.
        theirs_running = len(_fg.freeze_factories) > 0
        _start_without_lazy_imports(freezer)
        # If user code's freeze_time was already running, start() only pushed ours on top
        # (without patching: theirs did); move ours to the bottom so that their stop() pops
        # theirs and finds the stacks non-empty, leaving the patches in place.
        stacks: tuple[list[Any], ...] = (
            _fg.freeze_factories,
            _fg.tz_offsets,
            _fg.ignore_lists,
            _fg.tick_flags,
        )
        for stack in stacks:
            stack.insert(0, stack.pop())

        clock: Any = time
        clock.time = _time
        clock.time_ns = _time_ns
        clock.localtime = _localtime
        clock.gmtime = _gmtime
        clock.strftime = _strftime
        clock.monotonic = _fg.real_monotonic
        clock.monotonic_ns = _fg.real_monotonic_ns
        clock.perf_counter = _fg.real_perf_counter
        clock.perf_counter_ns = _fg.real_perf_counter_ns
        _replace_scanned_fakes(None if theirs_running else freezer.undo_changes)
        _netguard.install()
        _installed = True


def _replace_scanned_fakes(changes: list[tuple[Any, str, object]] | None) -> None:
    """Where freezegun's scan put its fakes into other modules (`from time import monotonic`),
    put the real monotonic clocks back, and our wall-clock functions in place of its.

    `changes` is the list of (module, attribute, original) the scan patched (freezegun keeps
    it to undo them): going through it, not through every attribute of every loaded module
    again, is most of this function's cost on the first run of a process (a recovery's
    included). None: the fakes were put there by another freezer, so every module is read."""
    replacements: dict[int, tuple[object, object]] = {
        id(fake): (fake, replacement)
        for fake, replacement in (
            (_fg.fake_time, _time),
            (_fg.fake_time_ns, _time_ns),
            (_fg.fake_localtime, _localtime),
            (_fg.fake_gmtime, _gmtime),
            (_fg.fake_strftime, _strftime),
            (_fg.fake_monotonic, _fg.real_monotonic),
            (_fg.fake_monotonic_ns, _fg.real_monotonic_ns),
            (_fg.fake_perf_counter, _fg.real_perf_counter),
            (_fg.fake_perf_counter_ns, _fg.real_perf_counter_ns),
        )
    }
    if changes is not None:
        for module, attribute, _original in changes:
            value = getattr(module, attribute, None)
            entry = replacements.get(id(value))
            if entry is not None and entry[0] is value:
                setattr(module, attribute, entry[1])
        return
    for name, module in list(sys.modules.items()):
        if not isinstance(module, types.ModuleType) or name == __name__:
            continue
        if name == "freezegun" or name.startswith("freezegun."):
            continue
        namespace = vars(module)
        found = [
            (attribute, entry[1])
            for attribute, value in list(namespace.items())
            if (entry := replacements.get(id(value))) is not None and entry[0] is value
        ]
        for attribute, replacement in found:
            setattr(module, attribute, replacement)


# --- public API ---


@contextlib.contextmanager
def simulation_scope(wall_ms: Callable[[], int], rng: random.Random) -> Iterator[None]:
    """Make wall-clock reads, module-level `random` and the network virtual on this thread.

    `wall_ms()` is the virtual wall time in epoch milliseconds (UTC); it is called on every
    read, so the reads move with it. `rng`'s state is swapped into the global `random.Random`
    on entry, written back into `rng` on exit, and the caller's global state restored. A real
    network connection attempt raises `NetworkAccessRefused`. Nested scopes on one thread work:
    the inner one wins and the outer one is restored. The scope holds no OS resources.
    """
    if not _installed:
        _install()
    else:
        _netguard.ensure()
    # Passing the global instance itself: swapping would undo its own draws on exit.
    swap = getattr(random.random, "__self__", None) is not rng
    if swap:
        state = rng.getstate()  # first, so that a generator without state changes nothing
        outer_random = random.getstate()
        random.setstate(state)
    outer_thread = _thread.wall_ms
    outer_context = _context.get()
    _thread.wall_ms = wall_ms
    _context.set(wall_ms)
    try:
        with _netguard.scope():
            yield
    finally:
        # set(), not reset(token): reset fails when exit runs in another context copy.
        _context.set(outer_context)
        _thread.wall_ms = outer_thread
        if swap:
            rng.setstate(random.getstate())
            random.setstate(outer_random)


def current_wall_ms() -> int | None:
    """The active scope's virtual wall time (epoch ms) on this thread, or None outside one."""
    wall_ms = _active()
    return None if wall_ms is None else wall_ms()


def in_simulation() -> bool:
    """Whether a simulation scope is active on this thread (or in this context)."""
    return _active() is not None
