"""What a waiting instance holds stays small: issue 13's bound is 4 KB per instance at
N = 100,000 (benchmarks/scale.py measures it; 3.8 KB of heap at 5,000 instances, 4.0 KB at
this test's 400, whose memos of recent texts are not yet full, on CPython 3.11). This
checks the heap a few hundred waiting instances hold, counted by tracemalloc (byte counts, not
times: they do not depend on the machine's load), against a bound with room for Python
versions, so that a change that makes every waiting instance keep much more (a dict per
timeline entry, a coroutine frame per wait: about 8 KB before) fails here and not in production."""

from __future__ import annotations

import gc
import tracemalloc
from typing import Any

from awf_sim import Domain, Simulator, Workflow


async def accept(order: Any, args: Any, ctx: Any) -> Any:
    return {"accepted": order["id"]}


Orders = Domain("MemOrders", {"accept": accept})


@Workflow("memory-per-instance", domains=[Orders])
async def flow(wf: Any, order: Any) -> Any:
    await wf.MemOrders(order).accept()
    return await wf.wait_for("approval", type="approve")


def test_a_waiting_instance_holds_under_five_kilobytes() -> None:
    n = 400
    with Simulator() as sim:
        warm = [sim.create(flow, {"id": f"w-{i}"}) for i in range(50)]  # first-use caches
        sim.run()
        gc.collect()
        tracing = tracemalloc.is_tracing()  # already (PYTHONTRACEMALLOC): leave it on
        if not tracing:
            tracemalloc.start(1)
        try:
            before = tracemalloc.get_traced_memory()[0]
            waiting = [sim.create(flow, {"id": f"o-{i}"}) for i in range(n)]
            sim.run()
            gc.collect()
            per_instance = (tracemalloc.get_traced_memory()[0] - before) / n
        finally:
            if not tracing:
                tracemalloc.stop()
        assert all(i.status()["status"] == "waiting" for i in warm + waiting)
        assert per_instance < 5 * 1024, f"{per_instance:.0f} bytes per waiting instance"
