"""Instruction counts under callgrind: the repeatable measure on a shared, noisy machine.

    python benchmarks/instructions.py engine   # instructions per step (benchmarks/engine.py's)
    python benchmarks/instructions.py loop     # per step of engine.py's 100-step workflow (e)
    python benchmarks/instructions.py peers    # per instance of peers.py's awf-memory row
    python benchmarks/instructions.py chaos    # instructions per fault-injected run
                                               # (runs 21-520 of a campaign, order example)
    python benchmarks/instructions.py chaos-jobs [PLANS]  # --jobs 2 against --jobs 1: the
                                               # critical path (parent + largest worker)

`chaos-jobs` runs a campaign of PLANS plans (default 1,000) with one process and with two
workers, each process counted on its own (callgrind counts each forked process from the
count of its parent at the fork, which a child forked just before the campaign and ended at
once gives); the scaling is the one-process count over the parent's plus the largest worker's.

Each other mode runs its workload twice under `valgrind --tool=callgrind` (small and large) and
divides the difference by the extra work, so start-up and warm-up cancel out. Set
PYTHONHASHSEED=0 to compare two versions of the code: hash seeds move the count by about
0.5%. Needs valgrind. `_workload` is what runs inside valgrind.
"""

from __future__ import annotations

import os
import random
import re
import runpy
import signal
import subprocess
import sys
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
        probe = os.fork()  # its count is this process's now: where the campaign starts
        if probe == 0:
            os._exit(0)
        os.waitpid(probe, 0)
        evaluate_all(base, plans[:n], jobs, lambda done: None)
        os._exit(0)  # no interpreter teardown in this process's count
    for plan in plans[:n]:
        evaluate(base, plan)


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
    def campaign(jobs: int) -> tuple[int, list[int]]:
        parent, *children = _counts(f"chaos-jobs-{jobs}", plans).values()
        start = min(children)  # the probe: the count where the campaign starts
        children.remove(start)
        return parent - start, [c - start for c in children]

    one, _ = campaign(1)
    parent, workers = campaign(2)
    path = parent + max(workers)
    print(
        f"{plans:,} plans: jobs=1 {one / plans:,.0f} instructions per run; jobs=2 parent "
        f"{parent / plans:,.0f} + workers "
        + " / ".join(f"{w / plans:,.0f}" for w in workers)
        + f" per run: scaling {one / path:.2f}x (ideal 2x; all processes together "
        f"{(parent + sum(workers)) / one:.2f}x the one-process work)"
    )


def main() -> None:
    if sys.argv[1:2] == ["--workload"]:
        _workload(sys.argv[2], int(sys.argv[3]))
        return
    mode = sys.argv[1] if len(sys.argv) > 1 else "engine"
    if mode == "chaos-jobs":
        _jobs(int(sys.argv[2]) if len(sys.argv) > 2 else 1000)
        return
    small, large = SIZES[mode]
    per = (_count(mode, large) - _count(mode, small)) / ((large - small) * UNIT[mode])
    what = {"chaos": "fault-injected run", "peers": "instance"}.get(mode, "step")
    print(f"{per:,.0f} instructions per {what}")


if __name__ == "__main__":
    main()
