"""Running many plans: in this process, or spread over forked worker processes.

Workers are forked with the baseline and the plans already in memory, so nothing is pickled
but verdicts coming back; they are merged in plan order, so a campaign's result does not depend
on the number of jobs. Each worker shares runs among the plans it gets (`_memo`), so plans that
begin at the same fault point (step and attempt) go to the same worker, in the order of their
faults, so that the sharing survives the split (`_Schedule`). The workers take their plans from
a schedule in shared memory themselves and send their verdicts a few times a second: the parent
only merges them, and no worker waits for it between chunks. Chunks shrink as the campaign
ends, and a worker with nothing of its own left takes the second half of what is left of the
largest group: a group's cost is not its size (some first faults leave nothing to resume
from), and the last worker busy is the campaign's wall time. The parent's objects are frozen
out of the cyclic collector before the fork, so that the workers' collections do not write to
(and so copy) the pages they share with it, nor walk them; a campaign in this process freezes
them for the same second reason.

The parent runs no plan itself, though its core waits on the workers: a plan whose code ends
the process (`os._exit`, a signal) would end the campaign with it, where a worker's end is a
`ProcessDied` naming that plan (with one job the plans run in this process, and `_beacon`
lets the command's supervisor name the plan that ended it). A worker that dies is noticed at
once (its sentinel), never waited for (a `multiprocessing.Pool` would wait forever for the
lost task).
"""

from __future__ import annotations

import contextlib
import gc
import mmap
import multiprocessing
import os
import selectors
import threading
import time
import warnings
from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from multiprocessing.connection import Connection
from typing import Any

from awf_sim.chaos._beacon import running
from awf_sim.chaos._faults import describe_fault, plan_token
from awf_sim.chaos._memo import judge, uses_trie
from awf_sim.chaos._model import Baseline, Verdict
from awf_sim.chaos._space import fault_key, plan_order
from awf_sim.engine._lifeline import die_with_parent, load_libc
from awf_sim.engine._supervise import how_it_ended, watch_forked
from awf_sim.errors import ProcessDied

__all__ = ["evaluate_all", "plan_words"]


_WORKER: dict[str, Any] = {}
_FLUSH_S = 0.1  # how often a worker sends the verdicts it has (the progress bar's pace)
_POLL_S = 0.05  # how often the parent asks `stop()` while the workers run
# An object's identity for a dict key, as id() but not audited: `id()` raises the audit event
# builtins.id, and with the network guard's hook installed (`engine._netguard`) each call runs
# that hook's Python code (some 0.3 us). Unique among live objects (the address, rotated).
_identity = object.__hash__


def _work(conn: Connection, todo: _Schedule, slot: int) -> None:
    # A campaign whose process is killed takes its workers along, not leaves them its plans.
    die_with_parent(_WORKER["libc"], _WORKER["parent"])
    base: Baseline = _WORKER["base"]
    plans = _WORKER["plans"]
    cells = todo.cells
    running = todo.running + slot
    # Most runs end as an earlier run did (`_memo`), with that run's verdict: each such
    # verdict crosses the pipe once, then as its number (see _Received).
    sent: dict[int, int] = {}
    identity = _identity
    done: list[tuple[int, Any]] = []
    flush_at = time.monotonic() + _FLUSH_S
    sending = threading.Lock()

    def blocked(message: str) -> None:
        # A handler blocked this worker's thread (`_supervise.watch_forked`): the campaign
        # ends with the line the supervised process would, and the plan that did it.
        index = cells[running]
        if index >= 0:
            what, token = plan_words(plans[index])
            message += f" It blocked under fault plan {what} (replay it with --replay {token})."
        with sending:
            conn.send((None, message))
        os._exit(0)

    watch_forked(blocked)
    while True:
        chunk = todo.take(slot)
        for index in chunk:
            if cells[_STOP]:
                break
            cells[running] = index  # the plan to name if this process dies while running it
            verdict, shared = judge(base, plans[index])
            if not shared:
                done.append((index, verdict))
                continue
            key = identity(verdict)  # the trie keeps it alive: its key stays its own
            known = sent.get(key)
            if known is None:
                sent[key] = len(sent)
                done.append((index, (verdict,)))
            else:
                done.append((index, known))
        last = not chunk or bool(cells[_STOP])
        if last or time.monotonic() >= flush_at:
            with sending:
                conn.send((done, last))
            done = []
            flush_at = time.monotonic() + _FLUSH_S
        if last:
            return


class _Received:
    """One worker's verdicts: for each plan, its verdict; `(verdict,)` for a verdict that
    later plans share, which gets the next number; or the number of one sent so. A shared
    verdict is one object for all its plans, to be read only."""

    __slots__ = ("shared",)

    def __init__(self) -> None:
        self.shared: list[Verdict] = []

    def take(self, done: list[tuple[int, Any]], results: list[Verdict | None]) -> None:
        shared = self.shared
        for index, got in done:
            if type(got) is int:
                results[index] = shared[got]
            elif type(got) is tuple:
                shared.append(got[0])
                results[index] = got[0]
            else:
                results[index] = got


def _groups(base: Baseline, plans: Sequence[Sequence[Mapping[str, Any]]]) -> list[list[int]]:
    """Plan indices by the fault point (step or sleep, attempt) of their first fault, each
    group in the order of the plans' faults. Plans that share a first fault point share the
    most runs: a plan whose later fault does not fire (an attempt never made), or whose first
    fault answers the engine as another kind at that point would, ends as a run of the same
    group. In fault order, plans that share more are next to each other, so that a split of
    a group cuts few ties. (Grouped by the first fault itself, 1,000 plans of the order
    example ran 5 more plans for real with 2 workers than with one, 40 at 10,000; grouped so,
    none, in a simulation of the schedule.)"""
    universe = [*base.singles, *base.extra]
    # Plans are made of the universe's own fault objects: ranked by identity, not by text.
    rank = {_identity(f): n for n, f in enumerate(universe)}.__getitem__
    points = [_point(f) for f in universe]
    # A plan's ranks as bytes when they fit: compared as tuples of ranks are, at C speed.
    pack: Callable[[Iterable[int]], Any] = bytes if len(universe) < 256 else tuple
    keys: list[Any] = []
    order: dict[str, int] | None = None
    by_first: dict[int, list[int]] = {}  # by the rank of the first fault
    for i, plan in enumerate(plans):
        try:
            key = pack(map(rank, map(_identity, plan)))
        except KeyError:  # a copy (a replayed plan): by its text
            order = order if order is not None else plan_order(base)
            key = pack([order.get(fault_key(f), len(universe)) for f in plan])
        keys.append(key)
        first = key[0] if key else -1
        members = by_first.get(first)
        if members is None:
            by_first[first] = [i]
        else:
            members.append(i)
    by_point: dict[Any, list[int]] = {}
    for first, members in by_first.items():
        if first < 0:
            point = None
        elif first < len(points):
            point = points[first]
        else:
            point = _point(plans[members[0]][0])
        by_point.setdefault(point, []).extend(members)
    groups = list(by_point.values())
    for group in groups:
        group.sort(key=keys.__getitem__)
    return groups


def _point(f: Mapping[str, Any]) -> tuple[Any, ...]:
    step = f.get("step")
    if step is not None and not isinstance(step, str):
        step = repr(step)  # a {"name", "index"} selector
    return (step, f.get("attempt"), f.get("type"))


# The schedule's cells (int64, in memory shared by the forked workers): how many plans are
# left, the next group nobody started, how many group slots are in use, whether to stop; then
# each worker's group and the plan it runs; then each group's remaining range (lo, hi) of
# `order`; then `order`, the plan indices group after group.
_LEFT, _FRESH, _USED, _STOP, _HEAD = range(5)


class _Schedule:
    """Which plans a worker runs next, taken by the workers themselves (under a lock): more
    of the group it is on, else groups nobody started (the largest first; small ones whole,
    several to a chunk), else the second half of what is left of the largest group, which
    becomes its own. A chunk is a share of what is left (`jobs` * 4 shares, at most `most`,
    at least 4), so chunks shrink as the campaign ends. Works in one process too."""

    def __init__(self, groups: list[list[int]], jobs: int, most: int) -> None:
        groups = sorted((g for g in groups if g), key=len, reverse=True)
        plans = sum(map(len, groups))
        self.jobs = jobs
        self.most = most
        self.running = _HEAD + jobs
        self.spans = self.running + jobs
        slots = len(groups) + plans  # each split of a group makes one more
        self.order = self.spans + 2 * slots
        self._map = mmap.mmap(-1, 8 * (self.order + plans))
        cells = self.cells = memoryview(self._map).cast("q")
        cells[_LEFT] = plans
        cells[_FRESH] = 0
        cells[_USED] = len(groups)
        cells[_STOP] = 0
        at = self.order
        for n, group in enumerate(groups):
            cells[self.spans + 2 * n] = at
            cells[self.spans + 2 * n + 1] = at + len(group)
            cells[at : at + len(group)] = memoryview(array("q", group))
            at += len(group)
        self.fresh = len(groups)  # groups 0 .. fresh-1 are the ones nobody started at first
        for slot in range(jobs):
            cells[_HEAD + slot] = -1
            cells[self.running + slot] = -1
        # A lock for the forked processes: a token in a pipe (no shared semaphore needed).
        self._get, self._put = os.pipe()
        os.write(self._put, b"x")

    def __bool__(self) -> bool:
        return self.cells[_LEFT] > 0

    def stop(self) -> None:
        """No worker starts a plan from now on."""
        self.cells[_STOP] = 1

    def plan_of(self, slot: int) -> int:
        """The plan worker `slot` runs or ran last (-1: none yet)."""
        return int(self.cells[self.running + slot])

    def take(self, slot: int) -> list[int]:
        """The next plans for worker `slot` (empty: none left)."""
        os.read(self._get, 1)
        try:
            return self._take(slot)
        finally:
            os.write(self._put, b"x")

    def _take(self, slot: int) -> list[int]:
        cells = self.cells
        left = cells[_LEFT]
        if left <= 0:
            return []
        size = max(4, min(self.most, left // (self.jobs * 4)))
        spans = self.spans
        group = cells[_HEAD + slot]
        chunk: list[int] = []
        if group >= 0:
            chunk = self._cut(group, size)
        while len(chunk) < size and cells[_FRESH] < self.fresh:
            fresh = cells[_FRESH]
            has = cells[spans + 2 * fresh + 1] - cells[spans + 2 * fresh]
            if chunk and len(chunk) + has > size:
                break  # no group is split to fill a chunk
            cells[_FRESH] = fresh + 1
            group = fresh
            chunk += self._cut(group, size - len(chunk))
        if not chunk:
            used = cells[_USED]
            group = max(range(used), key=lambda g: cells[spans + 2 * g + 1] - cells[spans + 2 * g])
            lo, hi = cells[spans + 2 * group], cells[spans + 2 * group + 1]
            if hi - lo >= 2:  # its second half, a group of this worker's own from now on
                mid = hi - (hi - lo) // 2
                cells[spans + 2 * group + 1] = mid
                group = used
                cells[_USED] = used + 1
                cells[spans + 2 * group] = mid
                cells[spans + 2 * group + 1] = hi
            chunk = self._cut(group, size)
        cells[_HEAD + slot] = group
        cells[_LEFT] = left - len(chunk)
        return chunk

    def _cut(self, group: int, most: int) -> list[int]:
        cells = self.cells
        at = self.spans + 2 * group
        lo = cells[at]
        hi = min(cells[at + 1], lo + most)
        cells[at] = hi
        return cells[lo:hi].tolist()

    def close(self) -> None:
        os.close(self._get)
        os.close(self._put)
        self.cells.release()
        self._map.close()


class _Worker:
    """A worker process, its pipe, and whether it sent its last verdicts."""

    __slots__ = ("conn", "finished", "proc", "received", "slot")

    def __init__(self, proc: Any, conn: Connection, slot: int) -> None:
        self.proc = proc
        self.conn = conn
        self.slot = slot
        self.finished = False
        self.received = _Received()


def _never() -> bool:
    return False


@contextlib.contextmanager
def _frozen() -> Iterator[None]:
    """The process's objects out of the cyclic collector's reach for a while (`gc.freeze`).
    Left alone when the process froze some itself (a server after loading): `gc.unfreeze`
    can only release every frozen object, the caller's with ours."""
    if gc.get_freeze_count():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def evaluate_all(
    base: Baseline,
    plans: Sequence[Sequence[Mapping[str, Any]]],
    jobs: int,
    on_done: Callable[[int], None],
    stop: Callable[[], bool] = _never,
) -> list[Verdict | None]:
    """The verdict of each plan, in plan order; None for a plan not run because `stop()`
    turned true (no new plan starts then; running ones finish). Plans whose runs ended the
    same way may share one verdict object (`_memo.judge`): read them, do not change them."""
    if jobs <= 1 or len(plans) < 2 * jobs or "fork" not in multiprocessing.get_all_start_methods():
        verdicts: list[Verdict | None] = []
        # Out of the collector's reach while the campaign runs, as in a forked worker: a
        # campaign makes garbage at every run, and each full collection would walk every
        # object of the process (the modules, the flow, the baseline), some 50 ms each,
        # 16% of a 1,000-plan campaign of the order example.
        beacon = running(plans)  # a plan that ends this process is named (`_beacon`)
        try:
            with _frozen():
                for index, plan in enumerate(plans):
                    if stop():
                        break
                    if beacon is not None:
                        beacon.running(index)
                    verdicts.append(judge(base, plan)[0])
                    on_done(1)
        finally:
            if beacon is not None:
                beacon.running(None)
        return verdicts + [None] * (len(plans) - len(verdicts))
    results: list[Verdict | None] = [None] * len(plans)
    if uses_trie(base):
        # The campaign's first runs (`_memo`) run once, here: every worker inherits them.
        todo = _Schedule(_groups(base, plans), jobs, 64)
    else:
        todo = _Schedule([list(range(len(plans)))], jobs, 16)
    if stop():
        todo.stop()
    _WORKER.update(base=base, plans=plans, libc=load_libc(), parent=os.getpid())
    ctx = multiprocessing.get_context("fork")
    workers: list[_Worker] = []
    ended = False
    try:
        with warnings.catch_warnings():
            # Python 3.12+ warns about forking with threads (a progress bar's): the workers
            # only run simulations and return verdicts, they take no lock of those threads.
            warnings.filterwarnings("ignore", ".*fork", DeprecationWarning)
            with _frozen():
                for n in range(jobs):
                    mine, theirs = ctx.Pipe(duplex=False)
                    proc = ctx.Process(target=_work, args=(theirs, todo, n), daemon=True)
                    proc.start()
                    theirs.close()
                    workers.append(_Worker(proc, mine, n))
        # One selector for the whole campaign (connection.wait makes one per call): a
        # worker's pipe brings its verdicts, its sentinel says that it ended.
        poll = None if stop is _never else _POLL_S
        with selectors.DefaultSelector() as ready:
            for w in workers:
                ready.register(w.conn, selectors.EVENT_READ, (w, True))
                ready.register(w.proc.sentinel, selectors.EVENT_READ, (w, False))
            busy = len(workers)
            while busy:
                events = ready.select(poll)
                if poll is not None and stop():
                    todo.stop()
                for key, _events in events:
                    w, is_pipe = key.data
                    if w.finished:
                        continue
                    # From its sentinel (it ended), what it sent before is still to be read.
                    while (is_pipe or w.conn.poll()) and not w.finished:
                        is_pipe = False
                        try:
                            done, last = w.conn.recv()
                        except (EOFError, OSError):
                            break  # it died: its sentinel says so
                        if done is None:  # a handler blocked it: `last` says which, where
                            raise ProcessDied(last)
                        w.received.take(done, results)
                        w.finished = last
                        on_done(len(done))
                    if w.finished:
                        busy -= 1
                        ready.unregister(w.conn)  # at its end the pipe reads as ready for ever
                        ready.unregister(w.proc.sentinel)
                    elif not key.data[1]:
                        w.proc.join()
                        raise ProcessDied(_died(w, todo, plans))
        ended = True
    finally:
        if not ended:
            todo.stop()
        for w in workers:
            proc = w.proc
            if not ended and proc.is_alive():
                proc.kill()  # its verdicts are not wanted any more
            proc.join(timeout=1)
            if proc.is_alive():
                proc.kill()
                proc.join()
            w.conn.close()
        todo.close()
        _WORKER.clear()
    return results


def _died(w: _Worker, todo: _Schedule, plans: Sequence[Sequence[Mapping[str, Any]]]) -> str:
    index = todo.plan_of(w.slot)
    how = how_it_ended(w.proc.exitcode)
    if index < 0:
        return (
            f"a chaos worker process {how} before it ran a fault plan: the code under test "
            "cannot be verified with --jobs (try --jobs 1)."
        )
    what, token = plan_words(plans[index])
    return (
        f"the code under test ended a chaos worker process: it {how} while running fault "
        f"plan {what} (replay it with --replay {token}). A handler or "
        "workflow that calls os._exit() or crashes the interpreter cannot be verified."
    )


def plan_words(plan: Sequence[Mapping[str, Any]]) -> tuple[str, str]:
    """A plan's faults in words, and the token that replays it."""
    return "; ".join(describe_fault(f) for f in plan) or "no fault", plan_token(list(plan))
