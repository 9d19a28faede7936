"""Engine overhead per step, as ratios against direct calls in the same process.

    python benchmarks/engine.py [--instances N] [--repeat R]

Times a 6-step workflow (a) as direct function calls of the same handlers, (b) in the
simulator with the memory store, (c) with the SQLite store, and prints the engine's overhead
per step in microseconds and the ratios b/a and c/a; then (d) the fixed cost of a `sim.run()`
call that finds nothing to do, and (e) a workflow of 100 trivial steps per instance on the
memory store (N/10 instances), where the per-step path is nearly all there is: creating and
completing an instance is spread over 100 steps instead of 6. Each figure is the best of R
repeats,
which filters out noise from other work on a shared machine. As `timeit` does, the garbage
collector is off while a variant is timed (and collected before), so a collection that falls
in one variant's window does not decide the comparison.

The timer is the process's CPU time (`time.process_time`): the variants are single-threaded
and CPU-bound, and on a shared machine CPU time leaves out the time other processes took the
core. Wall time is printed beside it; for SQLite it also holds the waits on the disk.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import sys
import tempfile
import time
from typing import Any

from awf_sim import Domain, Simulator, Workflow

STEPS = 6


async def validate(order: Any, args: Any, ctx: Any) -> Any:
    return {"id": order["id"], "valid": bool(order["items"])}


async def price(order: Any, args: Any, ctx: Any) -> Any:
    return {"total": sum(i["price"] * i["qty"] for i in order["items"])}


async def reserve(order: Any, args: Any, ctx: Any) -> Any:
    return {"reservation": f"r-{order['id']}", "qty": args["qty"]}


async def charge(order: Any, args: Any, ctx: Any) -> Any:
    return {"charge": f"ch-{order['id']}", "amount": args["amount"]}


async def ship(order: Any, args: Any, ctx: Any) -> Any:
    return {"tracking": f"TRK-{order['id']}"}


async def notify(customer: Any, args: Any, ctx: Any) -> Any:
    return {"sent": True, "template": args["template"]}


Bench = Domain(
    "Bench",
    {
        "validate": validate,
        "price": price,
        "reserve": reserve,
        "charge": charge,
        "ship": ship,
        "notify": notify,
    },
)


@Workflow("bench", domains=[Bench])
async def bench_flow(wf: Any, order: Any) -> Any:
    await wf.Bench(order).validate()
    total = await wf.Bench(order).price()
    await wf.Bench(order).reserve(qty=len(order["items"]))
    await wf.Bench(order).charge(amount=total["total"])
    ship_info = await wf.Bench(order).ship()
    await wf.Bench(order["customer"]).notify(template="confirmed")
    return ship_info


async def tick(key: Any, args: Any, ctx: Any) -> Any:
    return {"n": args["n"]}


Loop = Domain("Loop", {"tick": tick})
LOOP_STEPS = 100


@Workflow("bench_loop", domains=[Loop])
async def loop_flow(wf: Any, order: Any) -> Any:
    for n in range(LOOP_STEPS):
        await wf.Loop(order["id"]).tick(n=n)
    return LOOP_STEPS


def order(i: int) -> dict[str, Any]:
    return {
        "id": f"o-{i}",
        "items": [{"sku": "ABC", "price": 9.5, "qty": 2}, {"sku": "XYZ", "price": 3.0, "qty": 1}],
        "customer": {"email": f"c{i}@example.com"},
    }


async def direct(o: dict[str, Any]) -> Any:
    """The same handlers called in the same order, with no engine at all."""
    await validate(o, {}, None)
    total = await price(o, {}, None)
    await reserve(o, {"qty": len(o["items"])}, None)
    await charge(o, {"amount": total["total"]}, None)
    ship_info = await ship(o, {}, None)
    await notify(o["customer"], {"template": "confirmed"}, None)
    return ship_info


def untimed_gc(fn: Any) -> Any:
    def timed(*args: Any) -> tuple[float, float]:
        gc.collect()
        gc.disable()
        try:
            return fn(*args)  # type: ignore[no-any-return]  # (cpu, wall) seconds
        finally:
            gc.enable()

    return timed


@untimed_gc
def run_direct(n: int) -> tuple[float, float]:
    orders = [order(i) for i in range(n)]
    t0, c0 = time.perf_counter(), time.process_time()
    for o in orders:
        coro = direct(o)
        try:
            coro.send(None)
        except StopIteration:
            pass
    return time.process_time() - c0, time.perf_counter() - t0


@untimed_gc
def run_sim(n: int, store: str | None, flow: Any = bench_flow) -> tuple[float, float]:
    orders = [order(i) for i in range(n)]
    with Simulator(store=store) as sim:
        t0, c0 = time.perf_counter(), time.process_time()
        instances = [sim.create(flow, o) for o in orders]
        sim.run()
        elapsed = time.process_time() - c0, time.perf_counter() - t0
        assert all(inst.status()["status"] == "complete" for inst in instances)
    return elapsed


@untimed_gc
def run_idle(n: int) -> tuple[float, float]:
    """`sim.run()` on a simulator with nothing to do: the fixed cost every call pays."""
    with Simulator() as sim:
        sim.run()
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(n):
            sim.run()
        return time.process_time() - c0, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--instances", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    n, repeat = args.instances, args.repeat
    asyncio.set_event_loop_policy(None)

    a, a_wall = min(run_direct(n) for _ in range(repeat))
    b, b_wall = min(run_sim(n, None) for _ in range(repeat))
    with tempfile.TemporaryDirectory() as tmp:
        c, c_wall = min(run_sim(n, os.path.join(tmp, f"bench-{i}.db")) for i in range(repeat))

    d, d_wall = min(run_idle(n * 10) for _ in range(repeat))
    loops = max(1, n // 10)
    e, e_wall = min(run_sim(loops, None, loop_flow) for _ in range(repeat))

    steps = n * STEPS
    us = 1e6 / steps
    print(f"{n} instances x {STEPS} steps, best of {repeat} (python {sys.version.split()[0]})")
    print("                        CPU time              wall time")
    print(f"(a) direct calls       {a * us:8.2f} us/step       {a_wall * us:8.2f} us/step")
    print(
        f"(b) simulator, memory  {b * us:8.2f} us/step       {b_wall * us:8.2f} us/step"
        f"   b/a = {b / a:6.1f}x"
    )
    print(
        f"(c) simulator, sqlite  {c * us:8.2f} us/step       {c_wall * us:8.2f} us/step"
        f"   c/a = {c / a:6.1f}x"
    )
    print(
        f"engine overhead per step (CPU): memory {(b - a) * us:.2f} us, "
        f"sqlite {(c - a) * us:.2f} us"
    )
    print(
        f"(d) sim.run() with nothing to do: {d / (n * 10) * 1e6:.2f} us CPU, "
        f"{d_wall / (n * 10) * 1e6:.2f} us wall"
    )
    e_us = 1e6 / (loops * LOOP_STEPS)
    print(
        f"(e) {LOOP_STEPS} trivial steps per instance, memory ({loops} instances): "
        f"{e * e_us:.2f} us/step CPU, {e_wall * e_us:.2f} us/step wall"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
