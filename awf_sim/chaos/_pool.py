"""Running many plans: in this process, or spread over forked worker processes.

Workers are forked with the baseline and the plans already in memory, so nothing is pickled
but plan numbers going out and verdicts coming back (a chunk's verdicts in one message); they
are merged in plan order, so a campaign's result does not depend on the number of jobs. Each
worker shares runs among the plans it gets (`_memo`); plans that begin with the same fault are
sent to the same worker, so that the sharing survives the split (`_Schedule`). Chunks shrink
as the campaign ends, and a worker with nothing of its own left takes the tail of another's
group: a group's cost is not its size (some first faults leave nothing to resume from), and
the last worker busy is the campaign's wall time. The parent's objects are frozen out of the
cyclic collector before the fork, so that the workers' collections do not write to (and so
copy) the pages they share with it, nor walk them; a campaign in this process freezes them
for the same second reason.

A worker that dies (the code under test called `os._exit`, or a signal killed it) is noticed at
once: the plan it was running is named in a `ProcessDied`, never waited for (a
`multiprocessing.Pool` would wait forever for the lost task).
"""

from __future__ import annotations

import contextlib
import gc
import multiprocessing
import selectors
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from multiprocessing.connection import Connection
from typing import Any

from awf_sim.chaos._faults import describe_fault, plan_token
from awf_sim.chaos._memo import judge, uses_trie
from awf_sim.chaos._model import Baseline, Verdict
from awf_sim.errors import ProcessDied

__all__ = ["evaluate_all"]


_WORKER: dict[str, Any] = {}


def _work(conn: Connection, current: Any, slot: int) -> None:
    base: Baseline = _WORKER["base"]
    plans = _WORKER["plans"]
    # Most runs end as an earlier run did (`_memo`), with that run's verdict: each such
    # verdict crosses the pipe once, then as its number (see _Received).
    sent: dict[int, int] = {}
    while True:
        chunk = conn.recv()
        if chunk is None:
            return
        done: list[tuple[int, Any]] = []
        for index in chunk:
            current[slot] = index  # the plan to name if this process dies while running it
            verdict, shared = judge(base, plans[index])
            if not shared:
                done.append((index, verdict))
                continue
            known = sent.get(id(verdict))  # the trie keeps it alive: its id stays its own
            if known is None:
                sent[id(verdict)] = len(sent)
                done.append((index, (verdict,)))
            else:
                done.append((index, known))
        conn.send(done)


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


def _how(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        import signal

        try:
            return f"was killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"was killed by signal {-exitcode}"
    return f"exited with status {exitcode} (os._exit or a fatal error)"


def _affinity(plan: Sequence[Mapping[str, Any]]) -> Any:
    """Plans with the same first fault (plans list earlier fault points first)."""
    if not plan:
        return None
    f = plan[0]
    step = f.get("step")
    if step is not None and not isinstance(step, str):
        step = repr(step)  # a {"name", "index"} selector
    return (f["kind"], step, f.get("attempt"), f.get("type"), f.get("ms"), f.get("seed"))


class _Schedule:
    """Which plans a worker runs next: more of the group it is on (plans with the same first
    fault share runs), else a group nobody started (the largest first), else the tail of the
    group with the most left. A chunk is a share of what is left (`jobs` * 4 shares, at most
    `most`), so chunks shrink as the campaign ends."""

    def __init__(self, groups: list[list[int]], jobs: int, most: int) -> None:
        self.groups = sorted(groups, key=len, reverse=True)
        self.fresh = list(range(len(self.groups) - 1, -1, -1))  # popped from the end
        self.left = sum(map(len, groups))
        self.jobs = jobs
        self.most = most

    def __bool__(self) -> bool:
        return self.left > 0

    def take(self, group: int) -> tuple[int, list[int]]:
        """The next chunk for a worker last on `group` (-1: none): (its group, plan indices).
        Small groups go whole, several to a chunk: fewer, larger messages."""
        size = max(4, min(self.most, self.left // (self.jobs * 4)))
        groups = self.groups
        chunk: list[int] = []
        if group >= 0 and groups[group]:
            todo = groups[group]
            chunk, groups[group] = todo[:size], todo[size:]
        fresh = self.fresh
        while len(chunk) < size and fresh:
            todo = groups[fresh[-1]]
            if chunk and len(chunk) + len(todo) > size:
                break  # no group is split to fill a chunk
            group = fresh.pop()
            room = size - len(chunk)
            chunk += todo[:room]
            groups[group] = todo[room:]
        if not chunk:
            group = max(range(len(groups)), key=lambda g: len(groups[g]))
            todo = groups[group]
            # Its tail: a chunk, but no more than half of what is left of it (at least one).
            cut = len(todo) - max(1, min(size, len(todo) // 2))
            chunk, groups[group] = todo[cut:], todo[:cut]
        self.left -= len(chunk)
        return group, chunk


class _Worker:
    """A worker process, its pipe, and the chunk it is running (empty: idle)."""

    __slots__ = ("conn", "current", "group", "proc", "received", "running", "slot")

    def __init__(self, proc: Any, conn: Connection, current: Any, slot: int) -> None:
        self.proc = proc
        self.conn = conn
        self.current = current  # current[slot]: the plan it is running, as it says
        self.slot = slot
        self.group = -1  # the group of plans it was last given (see _Schedule)
        self.running: list[int] = []
        self.received = _Received()

    def give(self, todo: _Schedule) -> None:
        self.group, self.running = todo.take(self.group)
        self.conn.send(self.running)


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
        with _frozen():
            for plan in plans:
                if stop():
                    break
                verdicts.append(judge(base, plan)[0])
                on_done(1)
        return verdicts + [None] * (len(plans) - len(verdicts))
    results: list[Verdict | None] = [None] * len(plans)
    if uses_trie(base):
        # The campaign's first runs (`_memo`) run once, here: every worker inherits them.
        # Plans that begin with the same fault share the most of their runs: see _Schedule.
        by_fault: dict[Any, list[int]] = {}
        for i, plan in enumerate(plans):
            by_fault.setdefault(_affinity(plan), []).append(i)
        todo = _Schedule(list(by_fault.values()), jobs, 64)
    else:
        todo = _Schedule([list(range(len(plans)))], jobs, 16)
    _WORKER.update(base=base, plans=plans)
    ctx = multiprocessing.get_context("fork")
    workers: list[_Worker] = []
    try:
        with warnings.catch_warnings():
            # Python 3.12+ warns about forking with threads (a progress bar's): the workers
            # only run simulations and return verdicts, they take no lock of those threads.
            warnings.filterwarnings("ignore", ".*fork", DeprecationWarning)
            with _frozen():
                running_now = ctx.RawArray("q", jobs)  # one shared page for all workers
                for n in range(jobs):
                    mine, theirs = ctx.Pipe()
                    proc = ctx.Process(target=_work, args=(theirs, running_now, n), daemon=True)
                    proc.start()
                    theirs.close()
                    workers.append(_Worker(proc, mine, running_now, n))
        # One selector for the whole campaign (connection.wait makes one per call): a
        # worker's pipe says it finished a chunk, its sentinel that it died.
        with selectors.DefaultSelector() as ready:
            for w in workers:
                ready.register(w.conn, selectors.EVENT_READ, (w, True))
                ready.register(w.proc.sentinel, selectors.EVENT_READ, (w, False))
                if todo:
                    w.give(todo)
            while any(w.running for w in workers):
                for key, _events in ready.select():
                    w, finished = key.data
                    if not w.running:
                        continue
                    if finished:
                        try:
                            done = w.conn.recv()
                        except (EOFError, OSError):
                            continue  # it died: its sentinel says so
                        w.received.take(done, results)
                        w.running = []
                        on_done(len(done))
                        if todo and not stop():
                            w.give(todo)
                        continue
                    while w.conn.poll():  # the chunk it sent before it died
                        try:
                            done = w.conn.recv()
                        except (EOFError, OSError):
                            break
                        w.received.take(done, results)
                        w.running = []
                        on_done(len(done))
                    if not w.running:
                        continue
                    w.proc.join()
                    index = w.current[w.slot]
                    plan = plans[index if index in w.running else w.running[0]]
                    what = "; ".join(describe_fault(f) for f in plan) or "no fault"
                    raise ProcessDied(
                        f"the code under test ended a chaos worker process: it "
                        f"{_how(w.proc.exitcode)} while running fault plan {what} (replay "
                        f"it with --replay {plan_token(list(plan))}). A handler or workflow "
                        "that calls os._exit() or crashes the interpreter cannot be verified."
                    )
    finally:
        for w in workers:
            try:
                w.conn.send(None)
            except (OSError, ValueError):
                pass
            w.conn.close()
        for w in workers:
            proc = w.proc
            proc.join(timeout=1)
            if proc.is_alive():
                proc.kill()
                proc.join()
        _WORKER.clear()
    return results
