"""Timeline entries are stored as rows (tuples) and read as dicts: every reader sees the dicts
the engine always gave, keys in the same order (timelines are dumped as JSON byte for byte),
from the memory store, from the SQLite store that wrote them, and from a reopened file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from awf_sim import Simulator, Workflow
from awf_sim.engine import SqliteStore
from awf_sim.engine._timeline import as_entries, as_row, row

tries: dict[str, int] = {}


def _flaky() -> str:
    tries["n"] = tries.get("n", 0) + 1
    if tries["n"] == 1:
        raise RuntimeError("first attempt fails")
    return "ok"


@Workflow("rows")
async def ROWS(wf: Any, params: Any) -> Any:
    done = await wf.do("flaky", _flaky, retries={"limit": 1, "delay": 500})
    await wf.sleep("nap", "1 minute")
    event = await wf.wait_for("go", type="go", timeout="1 hour")
    try:
        await wf.wait_for("late", type="never", timeout="1 second")
    except Exception:
        pass
    if params.get("fail"):
        raise ValueError("the body fails")
    return {"done": done, "event": event}


def _run(store: Any, fail: bool) -> list[dict[str, Any]]:
    tries.clear()
    with Simulator(store=store) as sim:
        inst = sim.create(ROWS, {"fail": fail}, id="r")
        sim.run()
        inst.send_event("go", {"n": 1})
        sim.run_until_done(inst)
        return inst.timeline


def test_entries_keep_their_keys_and_order_in_every_store(tmp_path: Path) -> None:
    for fail in (False, True):
        memory = _run(None, fail)
        path = str(tmp_path / f"s{fail}.db")
        written = _run(path, fail)
        reopened = SqliteStore(path)
        read = reopened.timeline("r")
        reopened.close()
        text = json.dumps(memory)
        assert json.dumps(written) == text
        assert json.dumps(read) == text
        keys = {e["kind"]: list(e) for e in memory}
        five = ["at_ms", "kind", "path", "name", "attempt"]
        assert keys["step-start"] == [*five, "config"]
        assert keys["checkpoint"] == [*five, "count"]
        assert keys["sleep-start"] == [*five, "duration_ms", "until_ms"]
        assert keys["wait-start"] == [*five, "type", "timeout_ms"]
        assert keys["event-received"] == [*five, "type", "seq"]
        # A retried failure of the user's code: its delay, then where it was raised.
        assert keys["attempt-failure"] == [*five, "error", "retry_in_ms", "stack"]
        ends = [list(e) for e in memory if e["kind"] == "wait-end"]
        assert ends == [[*five, "type", "seq"], [*five, "type", "timed_out"]]
        if fail:
            assert keys["workflow-failure"] == [*five, "error", "stack"]
        else:
            assert keys["workflow-success"] == five


def test_a_reader_gets_new_dicts_it_may_change() -> None:
    tries.clear()
    with Simulator() as sim:
        inst = sim.create(ROWS, {}, id="r")
        sim.run()
        first = inst.timeline
        first[0]["kind"] = "changed"
        first[-1]["extra"] = 1
        assert inst.timeline[0]["kind"] == "workflow-start"
        assert "extra" not in inst.timeline[-1]


def test_a_row_and_its_dict_convert_both_ways() -> None:
    r = row(5, "attempt-failure", "A.b", "A.b@x", 2, error={"name": "E", "message": "m"})
    (e,) = as_entries(r)
    assert list(e.items()) == [
        ("at_ms", 5),
        ("kind", "attempt-failure"),
        ("path", "A.b"),
        ("name", "A.b@x"),
        ("attempt", 2),
        ("error", {"name": "E", "message": "m"}),
    ]
    assert as_row(e) == r
    paused = {"at_ms": 0, "kind": "paused", "path": None, "name": None, "attempt": None}
    # Rows back to back, as a store keeps them, read back one dict each.
    assert as_entries(row(0, "paused") + r + row(0, "paused")) == [paused, e, paused]


def test_calls_are_numbered_per_name_however_many_names_a_lifetime_has() -> None:
    """A lifetime counts each kind and name apart (the k-th call of a name is count k), first
    in a short tuple of names called once, then in a dict: both give the same numbers."""

    @Workflow("numbered")
    async def flow(wf: Any, _: Any) -> Any:
        for i in range(20):
            await wf.do(f"s{i}", lambda i=i: i)
            await wf.do("same", lambda: 0)
        await wf.sleep("same", "1 second")
        await wf.sleep("same", "1 second")
        return "ok"

    with Simulator() as sim:
        inst = sim.create(flow)
        sim.run()
        assert inst.status()["output"] == "ok"
        counts = [(e["name"], e["count"]) for e in inst.timeline if e["kind"] == "checkpoint"]
        assert counts[:4] == [("s0", 1), ("same", 1), ("s1", 1), ("same", 2)]
        assert counts[-2:] == [("s19", 1), ("same", 20)]
        steps = sim._store.steps(inst.id)
        assert {"do:same#20", "do:s19#1", "sleep:same#1", "sleep:same#2"} <= set(steps)
        assert "do:same#21" not in steps
