"""Running many plans: in this process, or spread over forked worker processes.

Workers are forked with the baseline and the plans already in memory, so nothing is pickled
but the verdicts coming back; they are merged in plan order, so a campaign's result does not
depend on the number of jobs.
"""

from __future__ import annotations

import multiprocessing
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from awf_sim.chaos._model import Baseline, Verdict
from awf_sim.chaos._run import evaluate

__all__ = ["evaluate_all"]


_WORKER: dict[str, Any] = {}


def _work(index: int) -> tuple[int, Verdict]:
    base: Baseline = _WORKER["base"]
    return index, evaluate(base, _WORKER["plans"][index])


def evaluate_all(
    base: Baseline,
    plans: Sequence[Sequence[Mapping[str, Any]]],
    jobs: int,
    on_done: Callable[[int], None],
) -> list[Verdict]:
    if jobs <= 1 or len(plans) < 2 * jobs or "fork" not in multiprocessing.get_all_start_methods():
        verdicts = []
        for plan in plans:
            verdicts.append(evaluate(base, plan))
            on_done(1)
        return verdicts
    # Workers are forked with the baseline and the plans in memory: nothing to pickle but
    # the verdicts coming back, which are merged in plan order.
    _WORKER.update(base=base, plans=plans)
    results: list[Verdict | None] = [None] * len(plans)
    try:
        ctx = multiprocessing.get_context("fork")
        with warnings.catch_warnings():
            # Python 3.12+ warns about forking with threads (a progress bar's): the workers
            # only run simulations and return verdicts, they take no lock of those threads.
            warnings.filterwarnings("ignore", ".*fork", DeprecationWarning)
            pool = ctx.Pool(jobs)
        with pool:
            chunk = max(1, min(64, len(plans) // (jobs * 8)))
            for index, verdict in pool.imap_unordered(_work, range(len(plans)), chunk):
                results[index] = verdict
                on_done(1)
    finally:
        _WORKER.clear()
    return [v for v in results if v is not None]
