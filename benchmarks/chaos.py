"""Chaos throughput: fault-injected runs per second on the order example (memory store).

    python benchmarks/chaos.py [--runs N] [--repeat R] [--jobs J] [--flow FILE] [--cli]

Prints, from one process: the fault-free single-run time (the baseline: one Simulator, one
fresh database, the workflow to its end, the database digest), then the fault-injected runs
per second of a chaos campaign's plans (every single fault at every fault point, then random
plans of up to 3 faults), each run on fresh state and checked against every invariant, as
`awf-sim chaos` does; then the ratio of the two run times, and the rate per process against
the target. Times are the best of `--repeat` rounds, so that a busy machine disturbs them
less; each round is a campaign of its own (`evaluate` shares runs within a campaign, see
awf_sim/chaos/_memo.py, never across rounds). Target (issue #13): at least 3,000
fault-injected runs per second on one core.

With `--jobs J` (J > 1), the rate is also measured in CPU time, which a busy shared machine
disturbs far less than wall time: a round costs the parent's CPU time (planning, forking,
merging) plus the largest worker's (the critical path when each worker has a core of its
own); the same measure at `--jobs 1` (the parent alone) gives the scaling, J-fold at best.
Each round also runs J one-process campaigns side by side in forked processes: how much more
CPU time the same work takes when J processes share the machine (caches, memory bandwidth, a
hypervisor's cores), whatever the pool does; J over that is the most the pool can reach here.

With `--cli`, also `awf-sim chaos FLOW --runs N --max-runs N` end to end (start-up, every
example input, shrinking, the supervised child, the cross-process replays, the report), in
runs per second of wall time and CPU time against the rate above: the CLI's own overhead.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import awf_sim.chaos._pool as pool  # noqa: E402
from awf_sim.chaos import Target, build_baseline  # noqa: E402
from awf_sim.chaos._memo import evaluate  # noqa: E402
from awf_sim.chaos._pool import evaluate_all  # noqa: E402
from awf_sim.chaos._space import random_plans  # noqa: E402
from awf_sim.engine import Simulator  # noqa: E402
from awf_sim.flow import load_flow  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--flow", default=str(ROOT / "examples" / "order_processing.py"))
    parser.add_argument("--runs", type=int, default=1000, help="fault-injected runs per round")
    parser.add_argument("--repeat", type=int, default=5, help="rounds; the best one counts")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes (1: this one)")
    parser.add_argument("--cli", action="store_true", help="also time awf-sim chaos end to end")
    args = parser.parse_args()

    flow = load_flow(args.flow)
    workflow = flow.pick(None)
    params = workflow.examples[0] if workflow.examples else {}
    target = Target(workflow, params, db=flow.database)

    def single() -> None:
        with Simulator(seed=0, db=flow.database) as sim:
            inst = sim.create(workflow, params, id=target.iid)
            sim.run_until_done(inst)
            sim.db.digest()

    for _ in range(20):  # warm up: imports, freezegun's start, caches
        single()
    n_single = 300
    single_times = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        for _ in range(n_single):
            single()
        single_times.append((time.perf_counter() - start) / n_single)
    best_single = min(single_times)

    base = build_baseline(target)
    plans = [[f] for f in base.singles]
    seen: set[str] = set()
    plans += random_plans(base, max(0, args.runs - len(plans)), 3, random.Random(0), seen)
    for plan in plans[:50]:
        evaluate(base, plan)
    rates, cpu_rates, cpu_rates_1 = [], [], []
    scalings: list[float] = []  # each round's jobs=1 CPU time over its jobs=J critical path
    slower: list[float] = []  # one-process campaigns side by side: CPU time over one alone
    for _ in range(args.repeat):
        # Each round a new campaign: nothing recorded by an earlier round's runs is reused.
        base._memo = None
        start = time.perf_counter()
        cpu = _cpu_of(lambda: evaluate_all(base, plans, args.jobs, lambda n: None))
        rates.append(len(plans) / (time.perf_counter() - start))
        cpu_rates.append(len(plans) / cpu)
        if args.jobs > 1:
            base._memo = None
            one = _cpu_of(lambda: evaluate_all(base, plans, 1, _none))
            cpu_rates_1.append(len(plans) / one)
            scalings.append(one / (len(plans) / cpu_rates[-1]))
            # What the same work costs side by side, without a pool: the most to hope for.
            slower.append(max(_side_by_side(base, plans, args.jobs)) / one)
    best = max(rates)

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    per_core = best / args.jobs
    target_rate = 3000
    verdict = "meets" if per_core >= target_rate else "misses"
    singles = len(base.singles)
    print(f"flow: {os.path.relpath(args.flow)} ({workflow.name}), memory store, {cores} core(s)")
    print(
        f"baseline, a fault-free run:  {best_single * 1e3:6.3f} ms/run = "
        f"{1 / best_single:7,.0f} runs/s"
    )
    each = "ms/run" if args.jobs == 1 else "ms/run in each process"
    print(
        f"fault-injected runs, jobs={args.jobs}: {args.jobs / best * 1e3:6.3f} {each} = "
        f"{best:7,.0f} runs/s (median of rounds {statistics.median(rates):,.0f} runs/s)"
    )
    print(
        f"  {len(plans)} plans: {singles} single faults + {len(plans) - singles} random plans "
        "of up to 3 faults, each on fresh state and checked against every invariant"
    )
    print(f"ratio fault-injected / fault-free run time: {(args.jobs / best) / best_single:.2f}x")
    print(
        f"target {target_rate:,} fault-injected runs/s per core: {per_core:,.0f} runs/s per "
        f"process = {per_core / target_rate:.2f}x the target, {verdict} it"
    )
    if args.jobs > 1:
        one, many = max(cpu_rates_1), max(cpu_rates)
        print(
            f"CPU time, critical path (parent + largest worker): jobs={args.jobs} "
            f"{many:,.0f} runs/s, jobs=1 {one:,.0f} runs/s: scaling {many / one:.2f}x "
            f"(ideal {args.jobs}x; paired in each round: median "
            f"{statistics.median(scalings):.2f}x)"
        )
        slow = statistics.median(slower)
        print(
            f"  this machine's ceiling: {args.jobs} one-process campaigns side by side each "
            f"take {slow:.2f}x the CPU time of one alone (median of rounds), so {args.jobs} "
            f"workers sharing the work perfectly would scale {args.jobs / slow:.2f}x"
        )
    if args.cli:
        _cli(args, best)


def _none(n: int) -> None:
    pass


def _cpu_of(work: Callable[[], object]) -> float:
    """CPU seconds of `work` on its critical path: this process's, plus the largest of the
    pool workers' it forks (each reports its own when it ends)."""
    reports = multiprocessing.get_context("fork").SimpleQueue()
    work_in_pool = pool._work

    def timed(*args: Any) -> None:
        try:
            work_in_pool(*args)
        finally:
            reports.put(time.process_time())

    pool._work = timed  # type: ignore[assignment]
    try:
        start = time.process_time()
        work()
        parent = time.process_time() - start
    finally:
        pool._work = work_in_pool  # type: ignore[assignment]
    workers = []
    while not reports.empty():
        workers.append(reports.get())
    return parent + max(workers, default=0.0)


def _side_by_side(base: Any, plans: list[Any], jobs: int) -> list[float]:
    """CPU seconds of the one-process campaign run by `jobs` forked processes at once, each
    its own: what running side by side costs on this machine (shared caches, memory, a
    hypervisor's cores) whatever the pool does."""
    ctx = multiprocessing.get_context("fork")
    reports = ctx.SimpleQueue()
    go = ctx.Event()

    def campaign() -> None:
        base._memo = None
        go.wait()
        start = time.process_time()
        evaluate_all(base, plans, 1, _none)
        reports.put(time.process_time() - start)

    procs = [ctx.Process(target=campaign, daemon=True) for _ in range(jobs)]
    for proc in procs:
        proc.start()
    time.sleep(0.05)  # every one forked and waiting: they start together
    go.set()
    times = [reports.get() for _ in procs]
    for proc in procs:
        proc.join()
    base._memo = None
    return times


def _cli(args: argparse.Namespace, rate: float) -> None:
    """`awf-sim chaos` end to end, best of `--repeat`: wall and CPU (this process's children:
    the CLI, its supervised child, its replayers and workers). The CLI's processes get a
    bytecode cache of their own (PYTHONPYCACHEPREFIX), as an installed package has its .pyc
    files: with PYTHONDONTWRITEBYTECODE set and no cache, every process would compile awf_sim
    from source at each start (~0.1 s of CPU each), which is not the CLI's cost."""
    runs = str(args.runs)
    cmd = [sys.executable, "-c", "from awf_sim.cli import main; main()", "chaos", args.flow]
    cmd += ["--runs", runs, "--max-runs", runs, "--jobs", str(args.jobs), "--json"]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    walls, cpus, total = [], [], 0
    with tempfile.TemporaryDirectory(prefix="awf-bench-pyc-") as pyc:
        env["PYTHONPYCACHEPREFIX"] = pyc
        # Fills the cache: every module the command and its replayers import.
        warm = [*cmd[:5], "--runs", "1", "--max-runs", "1", "--json"]
        subprocess.run(warm, capture_output=True, cwd=ROOT, env=env, check=False)
        for _ in range(args.repeat):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            start = time.perf_counter()
            done = subprocess.run(
                cmd, capture_output=True, text=True, cwd=ROOT, env=env, check=False
            )
            walls.append(time.perf_counter() - start)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpus.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
            if done.returncode not in (0, 1):
                raise SystemExit(f"awf-sim chaos failed ({done.returncode}): {done.stderr}")
            # Every input's fault-injected runs, and its fault-free one.
            total = sum(w["runs"] + 1 for w in json.loads(done.stdout)["workflows"])
    wall, cpu = min(walls), min(cpus)
    print(
        f"awf-sim chaos --runs {runs} --jobs {args.jobs} ({total:,} runs over every example "
        f"input): {total / wall:7,.0f} runs/s wall = {total / wall / rate:.2f}x the rate above; "
        f"{total / cpu:,.0f} runs per CPU second in all its processes"
    )


if __name__ == "__main__":
    main()
