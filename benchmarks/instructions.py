"""Instruction counts under callgrind: the repeatable measure on a shared, noisy machine.

    python benchmarks/instructions.py engine   # instructions per step (benchmarks/engine.py's)
    python benchmarks/instructions.py loop     # per step of engine.py's 100-step workflow (e)
    python benchmarks/instructions.py peers    # per instance of peers.py's awf-memory row
    python benchmarks/instructions.py chaos    # instructions per fault-injected run
                                               # (runs 21-520 of a campaign, order example)
    python benchmarks/instructions.py chaos-jobs [PLANS]  # --jobs 2 against --jobs 1: the
                                               # critical path (parent + largest worker)

`chaos-jobs` runs a campaign of PLANS plans (default 1,000) with one process and with two
workers, each process counted on its own. Callgrind counts a forked process from its parent's
count at the fork, so each process forks a probe that ends at once (its count is the forking
process's count then): one where the campaign starts, and one at the start of each worker,
whose count is taken off the worker's. The scaling is the one-process count over the critical
path: the parent's count (its work before the fork, then coordinating) plus the largest
worker's own.

Each other mode runs its workload twice under `valgrind --tool=callgrind` (small and large) and
divides the difference by the extra work, so start-up and warm-up cancel out. Set
PYTHONHASHSEED=0 to compare two versions of the code: hash seeds move the count by about
0.5%. Needs valgrind. `_workload` is what runs inside valgrind.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import runpy
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SIZES = {"engine": (100, 300), "loop": (10, 30), "peers": (100, 300), "chaos": (20, 520)}
UNIT = {"engine": 6, "loop": 100, "peers": 1, "chaos": 1}  # steps per instance; runs per plan


def _workload(mode: str, n: int) -> None:
    # The simulator's CPU watch ticks on SIGPROF and restores the previous handler when a run
    # ends; valgrind may deliver a tick after that, which with the default action would end
    # the process. Ignored is what the watch restores then.
    signal.signal(signal.SIGPROF, signal.SIG_IGN)
    if mode in ("engine", "loop"):
        bench = runpy.run_path(str(ROOT / "benchmarks" / "engine.py"), run_name="bench")
        flow = bench["bench_flow" if mode == "engine" else "loop_flow"]
        bench["run_sim"](10, None, flow)  # warm: imports, first-use paths
        bench["run_sim"](n, None, flow)
        return
    if mode == "peers":
        sys.path.insert(0, str(ROOT / "benchmarks"))
        peers = runpy.run_path(str(ROOT / "benchmarks" / "peers.py"), run_name="bench")
        awf = peers["Awf"](sqlite=False)
        awf.start()
        awf.run([f"w-{i}" for i in range(10)])  # warm
        awf.run([f"o-{i}" for i in range(n)])
        return
    from awf_sim.chaos import Target, build_baseline
    from awf_sim.chaos._memo import evaluate
    from awf_sim.chaos._pool import evaluate_all
    from awf_sim.chaos._space import random_plans
    from awf_sim.flow import load_flow

    flow = load_flow(ROOT / "examples" / "order_processing.py")
    workflow = flow.pick(None)
    base = build_baseline(Target(workflow, workflow.examples[0], db=flow.database))
    plans = [[f] for f in base.singles]
    plans += random_plans(base, 600, 3, random.Random(0), set())
    for plan in plans[:50]:  # warm up
        evaluate(base, plan)
    base._memo = None  # then a campaign of n runs from scratch (no run recorded yet)
    if mode.startswith("chaos-jobs"):
        jobs = int(mode.rsplit("-", 1)[1])
        # The plans of benchmarks/chaos.py --runs n.
        plans = [[f] for f in base.singles]
        plans += random_plans(base, n - len(plans), 3, random.Random(0), set())
        import awf_sim.chaos._pool as pool

        marks = open(os.environ["AWF_BENCH_MARKS"], "a")  # noqa: SIM115 (closed by _exit)
        work = pool._work

        def marked(*args: object) -> None:
            # A worker's own count starts where its probe's ends (it began with its parent's).
            print(f"worker {os.getpid()} {_probe()}", file=marks, flush=True)
            work(*args)  # type: ignore[arg-type]

        pool._work = marked  # type: ignore[assignment]
        print(f"parent {os.getpid()} {_probe()}", file=marks, flush=True)
        # Kept to the end, as a campaign keeps its verdicts (with one process the trie holds
        # them): freeing them is no part of the campaign's count.
        kept = evaluate_all(base, plans[:n], jobs, lambda done: None)
        os._exit(0 if kept else 1)  # no interpreter teardown in this process's count
    for plan in plans[:n]:
        evaluate(base, plan)


def _probe() -> int:
    """A child that ends at once: its count is this process's count now. Its pid."""
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    return pid


def _counts(mode: str, n: int) -> dict[int, int]:
    """Instructions per process (pid: count), the first the one started."""
    cmd = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null"]
    cmd += [sys.executable, __file__, "--workload", mode, str(n)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=os.environ).stderr
    pids = [int(p) for p in re.findall(r"==(\d+)== Command:", out)]
    counts = {int(p): int(c) for p, c in re.findall(r"==(\d+)== Collected : (\d+)", out)}
    if not pids or pids[0] not in counts:
        raise SystemExit(f"no instruction count in valgrind's output:\n{out}")
    return {pids[0]: counts.pop(pids[0]), **counts}


def _count(mode: str, n: int) -> int:
    return next(iter(_counts(mode, n).values()))


def _jobs(plans: int) -> None:
    def campaign(jobs: int) -> tuple[int, int, list[int]]:
        """(the parent's count before the first fork, after it, each worker's own)."""
        for _ in range(3):
            with tempfile.NamedTemporaryFile("r", prefix="awf-marks-") as marks:
                os.environ["AWF_BENCH_MARKS"] = marks.name
                counts = _counts(f"chaos-jobs-{jobs}", plans)
                lines = [line.split() for line in marks.read().splitlines()]
            # A worker slow to end under valgrind is killed by the pool (it waits 1 s),
            # before it reports its count: measured again.
            if all(int(pid) in counts for _who, pid, _probe in lines):
                break
        else:
            raise SystemExit("a worker ended without an instruction count three times")
        start = counts[next(int(probe) for who, _, probe in lines if who == "parent")]
        forks = {int(pid): counts[int(probe)] for who, pid, probe in lines if who == "worker"}
        parent = next(iter(counts.values()))
        first = min(forks.values(), default=parent)
        own = [counts[pid] - at for pid, at in forks.items()]
        return first - start, parent - first, own

    one, _, _ = campaign(1)
    before, after, workers = campaign(2)
    path = before + after + max(workers)
    # The schedule balances the workers' time, not their counts: under valgrind on a busy
    # machine one may get more plans. Evenly shared, the path would be:
    even = before + after + sum(workers) / len(workers)
    print(
        f"{plans:,} plans: jobs=1 {one / plans:,.0f} instructions per run; jobs=2 parent "
        f"{before / plans:,.0f} before the fork + {after / plans:,.0f} after, workers "
        + " / ".join(f"{w / plans:,.0f}" for w in workers)
        + f" per run: scaling {one / path:.2f}x ({one / even:.2f}x with the workers' work "
        f"evenly shared; ideal 2x); all processes together "
        f"{(before + after + sum(workers)) / one:.3f}x the one-process work"
    )


def main() -> None:
    if sys.argv[1:2] == ["--workload"]:  # inside valgrind: not for people
        _workload(sys.argv[2], int(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(
        description="Instruction counts under valgrind's callgrind (repeatable on a noisy "
        "machine); set PYTHONHASHSEED=0 to compare two versions of the code.",
        epilog=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "mode", nargs="?", default="engine", choices=[*SIZES, "chaos-jobs"], help="what to count"
    )
    parser.add_argument(
        "plans", nargs="?", type=int, default=1000, help="chaos-jobs only: plans a campaign runs"
    )
    args = parser.parse_args()
    if args.mode == "chaos-jobs":
        _jobs(args.plans)
        return
    small, large = SIZES[args.mode]
    per = (_count(args.mode, large) - _count(args.mode, small)) / (
        (large - small) * UNIT[args.mode]
    )
    what = {"chaos": "fault-injected run", "peers": "instance"}.get(args.mode, "step")
    print(f"{per:,.0f} instructions per {what}")


if __name__ == "__main__":
    main()
