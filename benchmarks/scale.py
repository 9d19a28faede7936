"""Scale: memory per waiting instance and time per event with many instances waiting.

    python benchmarks/scale.py [--instances N[,N...]] [--events E] [--gc-freeze]

For each N: create N instances of a workflow that does one step and then waits for an event
(`wf.wait_for`, with its 24-hour timeout timer), run them until all wait, and report the memory
they hold: the growth of the process's resident set divided by N (tracemalloc would be exact
but too slow at this size; the store, the lifetimes, their tasks and timers all count). Then
send E events one at a time to instances picked at random, with `sim.run()` after each (the
way a test or a server would drive the engine), and report the time per event. Nothing in that
path may grow with N: the target is at most 100 us per event at N = 100,000, and at most 4 KB
of heap per waiting instance.

Times are CPU time (`time.process_time`) and wall time, best of three batches of E events; the
collector is left on, as it would be in use (`--gc-freeze` moves the instances out of its
reach after creation, as a server would after bulk loading, and shows what that changes).
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from awf_sim import Domain, Simulator, Workflow  # noqa: E402


async def accept(order: Any, args: Any, ctx: Any) -> Any:
    return {"accepted": order["id"]}


async def ship(order: Any, args: Any, ctx: Any) -> Any:
    return {"shipped": order["id"], "by": args["by"]}


Scale = Domain("Scale", {"accept": accept, "ship": ship})


@Workflow("scale", domains=[Scale])
async def scale_flow(wf: Any, order: Any) -> Any:
    await wf.Scale(order).accept()
    approval = await wf.wait_for("approval", type="approve")
    return await wf.Scale(order).ship(by=approval["by"])


def rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:  # not Linux: no RSS figure
        return 0


def measure(n: int, events: int, freeze: bool) -> dict[str, float]:
    gc.collect()
    rss0 = rss_bytes()
    sim = Simulator()
    t0 = time.perf_counter()
    instances = [sim.create(scale_flow, {"id": f"o-{i}"}) for i in range(n)]
    sim.run()
    create_s = time.perf_counter() - t0
    gc.collect()
    if freeze:
        gc.freeze()
    rss1 = rss_bytes()
    sample = instances[:: max(1, n // 1000)]
    assert all(inst.status()["status"] == "waiting" for inst in sample), "all should wait"

    rng = random.Random(0)
    order = rng.sample(range(n), min(n, 3 * events))
    best_cpu = best_wall = float("inf")
    for batch in range(3):
        picked = order[batch * events : (batch + 1) * events]
        if len(picked) < events:
            break
        c0, w0 = time.process_time(), time.perf_counter()
        for i in picked:
            instances[i].send_event("approve", {"by": "ops"})
            sim.run()
        cpu, wall = time.process_time() - c0, time.perf_counter() - w0
        best_cpu, best_wall = min(best_cpu, cpu / events), min(best_wall, wall / events)
    done = instances[order[0]].status()
    assert done["status"] == "complete", done
    if freeze:
        gc.unfreeze()
    sim.close()
    return {
        "create_us": create_s / n * 1e6,
        "rss_per_instance": (rss1 - rss0) / n,
        "event_cpu_us": best_cpu * 1e6,
        "event_wall_us": best_wall * 1e6,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--instances", default="100,10000,100000")
    parser.add_argument("--events", type=int, default=1000, help="events per timed batch")
    parser.add_argument("--gc-freeze", action="store_true", help="gc.freeze() after creation")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.instances.split(",")]
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores; gc.freeze: {args.gc_freeze}")
    print(f"{'N':>9} {'create':>12} {'RSS/instance':>14} {'event (CPU)':>13} {'event (wall)':>13}")
    for n in sizes:
        r = measure(n, min(args.events, n // 3 or 1), args.gc_freeze)
        print(
            f"{n:>9,} {r['create_us']:>9.1f} us {r['rss_per_instance'] / 1024:>11.2f} KB"
            f" {r['event_cpu_us']:>10.1f} us {r['event_wall_us']:>10.1f} us"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
