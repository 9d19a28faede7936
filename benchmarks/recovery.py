"""Recovery after a crash deep into a run: cold start of a new process on a SQLite store.

    python benchmarks/recovery.py [--steps N] [--repeat R] [--smoke]

A child process runs one instance of a workflow of N+1 steps on a fresh SQLite store and kills
itself with SIGKILL inside the handler of step N+1, so N steps are checkpointed and one attempt
is in flight. Then, R times, a new process (cold: nothing cached but the imported code) opens a
copy of that store, recovers the instance and runs it until it completes (the N checkpointed
steps replay from the store, step N+1 runs again). Printed: the median and best of R of

  open      `Simulator(store=path)`: open the file, check it, load what recovery reads
  replay    `recover()` and `run()`: N cached steps, one real one, the instance's end
  total     open + replay (the recovery time; imports and the flow definition are not in it)

each in CPU time (the process's, so other work on a shared machine is left out; it includes
the kernel's time in SQLite's reads) and in wall time.

`--smoke` is a tiny run (N=200, R=1) that only checks the script still works. Linux/macOS.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def _flow(steps: int) -> Any:
    from awf_sim import Domain, Workflow

    async def work(ctx: Any, args: Any, c: Any) -> Any:
        if args["i"] == steps and os.environ.get("AWF_RECOVERY_KILL") == "1":
            os.kill(os.getpid(), signal.SIGKILL)  # the crash: mid-attempt of the last step
        return {"i": args["i"], "sum": ctx["n"] + args["i"]}

    rec = Domain("Rec", {"work": work})

    @Workflow("recovery_bench", domains=[rec])
    async def recovery_bench(wf: Any, p: Any) -> Any:
        total = 0
        for i in range(1, steps + 1):
            total += (await wf.Rec({"n": p["n"]}).work(i=i))["sum"]
        return total

    return recovery_bench


def child(mode: str, steps: int, store: str) -> None:
    flow = _flow(steps)
    # Imports are not part of the recovery time (see the docstring): the first run imports
    # the clock patching (freezegun, about 25 ms) lazily, so it is imported here, untimed.
    # Its installation (a scan of the loaded modules) stays inside the timed window.
    import awf_sim.engine._ambient
    import awf_sim.engine._netguard  # noqa: F401
    from awf_sim import Simulator

    if mode == "crash":
        os.environ["AWF_RECOVERY_KILL"] = "1"
        with Simulator(store=store, step_limit=steps) as sim:
            sim.create(flow, {"n": 1}, id="deep")
            sim.run()
        raise SystemExit("the run finished: the crash did not happen")
    t0, c0 = time.perf_counter(), time.process_time()
    sim = Simulator(store=store, step_limit=steps)
    t1, c1 = time.perf_counter(), time.process_time()
    sim.register(flow)
    (inst,) = sim.recover()
    sim.run()
    t2, c2 = time.perf_counter(), time.process_time()
    status = inst.status()
    sim.close()
    expected = sum(1 + i for i in range(1, steps + 1))
    if status["status"] != "complete" or status["output"] != expected:
        raise SystemExit(f"recovered instance ended {status}")
    print(json.dumps({"open": [c1 - c0, t1 - t0], "replay": [c2 - c1, t2 - t1]}))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)  # mode, store
    args = parser.parse_args(argv)
    if args.smoke:
        args.steps, args.repeat = 200, 1
    steps = args.steps + 1  # N checkpointed, the crash in the one after
    if args.child:
        child(args.child[0], steps, args.child[1])
        return 0
    me = [sys.executable, __file__, "--steps", str(args.steps)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with tempfile.TemporaryDirectory(prefix="awf-recovery-") as tmp:
        crashed = os.path.join(tmp, "crashed.db")
        proc = subprocess.run([*me, "--child", "crash", crashed], env=env, check=False)
        if proc.returncode != -signal.SIGKILL:
            print(f"the crashing child exited {proc.returncode}, not by SIGKILL", file=sys.stderr)
            return 1
        runs = []
        for r in range(args.repeat):
            copy = os.path.join(tmp, f"run-{r}.db")
            for suffix in ("", "-wal"):
                if os.path.exists(crashed + suffix):
                    shutil.copyfile(crashed + suffix, copy + suffix)
            out = subprocess.run(
                [*me, "--child", "recover", copy], env=env, check=True, capture_output=True
            )
            runs.append(json.loads(out.stdout))
    print(f"recovery of one instance crashed at step {args.steps + 1} ({args.steps} checkpointed)")
    print(f"python {sys.version.split()[0]}, {args.repeat} cold processes")
    print("           CPU time: median     best       wall time: median     best")
    for part in ("open", "replay", "total"):
        line = f"{part:8}"
        for clock in (0, 1):
            values = [
                r["open"][clock] + r["replay"][clock] if part == "total" else r[part][clock]
                for r in runs
            ]
            line += f"  {statistics.median(values) * 1e3:13.1f} ms {min(values) * 1e3:6.1f} ms"
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
