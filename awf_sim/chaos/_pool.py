"""Running many plans: in this process, or spread over forked worker processes.

Workers are forked with the baseline and the plans already in memory, so nothing is pickled
but plan numbers going out and verdicts coming back (a chunk's verdicts in one message); they
are merged in plan order, so a campaign's result does not depend on the number of jobs. Each
worker shares runs among the plans it gets (`_memo`); plans that begin with the same fault are
sent to the same worker, in chunks, so that the sharing survives the split. The
parent's objects are frozen out of the cyclic collector before the fork, so that the workers'
collections do not write to (and so copy) the pages they share with it.

A worker that dies (the code under test called `os._exit`, or a signal killed it) is noticed at
once: the plan it was running is named in a `ProcessDied`, never waited for (a
`multiprocessing.Pool` would wait forever for the lost task).
"""

from __future__ import annotations

import gc
import json
import multiprocessing
import warnings
from collections.abc import Callable, Mapping, Sequence
from multiprocessing.connection import Connection, wait
from typing import Any

from awf_sim.chaos._faults import describe_fault, plan_token
from awf_sim.chaos._memo import evaluate, uses_trie
from awf_sim.chaos._model import Baseline, Verdict
from awf_sim.errors import ProcessDied

__all__ = ["evaluate_all"]


_WORKER: dict[str, Any] = {}


def _work(conn: Connection, current: Any) -> None:
    base: Baseline = _WORKER["base"]
    plans = _WORKER["plans"]
    while True:
        chunk = conn.recv()
        if chunk is None:
            return
        done = []
        for index in chunk:
            current.value = index  # the plan to name if this process dies while running it
            done.append((index, evaluate(base, plans[index])))
        conn.send(done)


def _how(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        import signal

        try:
            return f"was killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"was killed by signal {-exitcode}"
    return f"exited with status {exitcode} (os._exit or a fatal error)"


def _affinity(plan: Sequence[Mapping[str, Any]]) -> str:
    """Plans with the same first fault (plans list earlier fault points first)."""
    return json.dumps(dict(plan[0]), sort_keys=True, default=str) if plan else ""


def _never() -> bool:
    return False


def evaluate_all(
    base: Baseline,
    plans: Sequence[Sequence[Mapping[str, Any]]],
    jobs: int,
    on_done: Callable[[int], None],
    stop: Callable[[], bool] = _never,
) -> list[Verdict | None]:
    """The verdict of each plan, in plan order; None for a plan not run because `stop()`
    turned true (no new plan starts then; running ones finish)."""
    if jobs <= 1 or len(plans) < 2 * jobs or "fork" not in multiprocessing.get_all_start_methods():
        verdicts: list[Verdict | None] = []
        for plan in plans:
            if stop():
                break
            verdicts.append(evaluate(base, plan))
            on_done(1)
        return verdicts + [None] * (len(plans) - len(verdicts))
    results: list[Verdict | None] = [None] * len(plans)
    if uses_trie(base):
        # The campaign's first runs (`_memo`) run once, here: every worker inherits them.
        # Plans that begin with the same fault share the most of their runs, so each such
        # group goes to one worker whole, the largest first; verdicts land in plan order.
        groups: dict[str, list[int]] = {}
        for i, plan in enumerate(plans):
            groups.setdefault(_affinity(plan), []).append(i)
        cap = max(1, len(plans) // (jobs * 4))  # no group so large that it unbalances the jobs
        todo = [g[k : k + cap] for g in groups.values() for k in range(0, len(g), cap)]
        todo.sort(key=len)  # popped from the end: the largest first
    else:
        chunk = max(1, min(16, len(plans) // (jobs * 8)))
        todo = [list(range(i, min(i + chunk, len(plans)))) for i in range(0, len(plans), chunk)]
        todo.reverse()
    _WORKER.update(base=base, plans=plans)
    ctx = multiprocessing.get_context("fork")
    workers: list[tuple[Any, Connection, list[int]]] = []
    current: dict[Connection, Any] = {}
    try:
        with warnings.catch_warnings():
            # Python 3.12+ warns about forking with threads (a progress bar's): the workers
            # only run simulations and return verdicts, they take no lock of those threads.
            warnings.filterwarnings("ignore", ".*fork", DeprecationWarning)
            gc.freeze()
            try:
                for _ in range(min(jobs, len(todo))):
                    mine, theirs = ctx.Pipe()
                    running_now = ctx.RawValue("q", -1)
                    proc = ctx.Process(target=_work, args=(theirs, running_now), daemon=True)
                    proc.start()
                    theirs.close()
                    workers.append((proc, mine, []))
                    current[mine] = running_now
            finally:
                gc.unfreeze()
        for _proc, conn, running in workers:
            if todo:
                running += todo.pop()
                conn.send(running)
        while any(running for _p, _c, running in workers):
            by_conn = {conn: (proc, running) for proc, conn, running in workers if running}
            ready = wait([*by_conn, *(p.sentinel for p, _c, r in workers if r)])
            for item in ready:
                if item in by_conn:
                    proc, running = by_conn[item]
                    conn = item
                    try:
                        done = conn.recv()
                    except (EOFError, OSError):
                        continue  # it died: its sentinel says so
                    for index, verdict in done:
                        results[index] = verdict
                    running.clear()
                    on_done(len(done))
                    if todo and not stop():
                        running += todo.pop()
                        conn.send(running)
                    continue
                for proc, conn, running in workers:
                    if proc.sentinel == item and running:
                        while conn.poll():  # the chunk it sent before it died
                            try:
                                done = conn.recv()
                            except (EOFError, OSError):
                                break
                            for index, verdict in done:
                                results[index] = verdict
                            running.clear()
                            on_done(len(done))
                        if not running:
                            continue
                        proc.join()
                        index = current[conn].value
                        plan = plans[index if index in running else running[0]]
                        what = "; ".join(describe_fault(f) for f in plan) or "no fault"
                        raise ProcessDied(
                            f"the code under test ended a chaos worker process: it "
                            f"{_how(proc.exitcode)} while running fault plan {what} (replay "
                            f"it with --replay {plan_token(list(plan))}). A handler or workflow "
                            "that calls os._exit() or crashes the interpreter cannot be verified."
                        )
    finally:
        for _proc, conn, _running in workers:
            try:
                conn.send(None)
            except (OSError, ValueError):
                pass
            conn.close()
        for proc, _conn, _running in workers:
            proc.join(timeout=1)
            if proc.is_alive():
                proc.kill()
                proc.join()
        _WORKER.clear()
    return results
