"""Stores written by an earlier awf: a schema-1 store (a table per kind, written by awf up to
the log layout) is converted on open and its instances go on; its history reads as before."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from awf_sim import NonRetryableError, Simulator, Workflow
from awf_sim.engine import InstanceMeta, SqliteStore, StepRecord
from awf_sim.errors import StoreError

# Written by awf with schema 1 (commit 9baf9ec) running LEGACY below: instance "waiting" has
# both steps checkpointed, slept, and waits for an event; "finished" got its event and ended.
V1_DUMP = Path(__file__).parent / "data" / "store_v1.sql"

calls: list[str] = []


def _count(name: str, value: Any) -> Any:
    calls.append(name)
    return value


@Workflow("legacy")
async def LEGACY(wf: Any, params: Any) -> Any:
    a = await wf.do("first", lambda: _count("first", params["n"] + 1))
    b = await wf.do("second", lambda: _count("second", a * 2))
    await wf.sleep("nap", "1 hour")
    event = await wf.wait_for("go", type="approval", timeout="1 day")
    return {"a": a, "b": b, "event": event}


def _v1_store(tmp_path: Path) -> str:
    path = str(tmp_path / "v1.db")
    conn = sqlite3.connect(path)
    conn.executescript(V1_DUMP.read_text())
    conn.close()
    return path


def _v1_timeline(iid: str) -> list[dict[str, Any]]:
    """The timeline as schema 1 stored it: one JSON entry a row, in seq order."""
    rows = re.findall(
        r"INSERT INTO \"timeline\" VALUES\('([^']*)',(\d+),'(.*)'\);", V1_DUMP.read_text()
    )
    return [
        json.loads(data) for inst, _, data in sorted(rows, key=lambda r: int(r[1])) if inst == iid
    ]


def test_a_schema_1_store_is_converted_and_its_instances_go_on(tmp_path: Path) -> None:
    path = _v1_store(tmp_path)
    calls.clear()
    with Simulator(store=path) as sim:
        assert [i.id for i in sim.instances] == ["waiting", "finished"]
        assert sim.instance("finished").status()["output"] == {
            "a": 6,
            "b": 12,
            "event": {"ok": True},
        }
        before = _v1_timeline("waiting")
        assert len(before) > 5
        assert sim.instance("waiting").timeline == before
        sim.register(LEGACY)
        sim.recover()
        sim.run()
        sim.instance("waiting").send_event("approval", {"late": 1})
        sim.run()
        assert sim.instance("waiting").status()["output"] == {
            "a": 2,
            "b": 4,
            "event": {"late": 1},
        }
        assert calls == []  # the checkpoints of schema 1 were honoured: nothing ran again
        timeline = sim.instance("waiting").timeline
        assert timeline[: len(before)] == before
        assert timeline[-1]["kind"] == "workflow-success"
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone() == (2,)
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert tables == {"log"}
    conn.close()
    with Simulator(store=path) as again:  # and it opens as a schema-2 store from now on
        assert again.instance("waiting").status()["status"] == "complete"
        assert again.instance("waiting").timeline == timeline


def test_a_store_of_a_later_schema_is_refused_in_one_line(tmp_path: Path) -> None:
    path = str(tmp_path / "future.db")
    Simulator(store=path).close()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 3")
    conn.close()
    with pytest.raises(StoreError) as info:
        Simulator(store=path)
    message = str(info.value)
    assert "schema version 3" in message
    assert "reads versions 1 and 2" in message
    assert "\n" not in message


@Workflow("three_steps")
async def THREE(wf: Any, params: Any) -> Any:
    return [await wf.do(f"s{i}", lambda i=i: i * 10) for i in range(3)]


def test_what_a_run_checkpointed_is_in_the_file_when_the_run_returns(tmp_path: Path) -> None:
    """Results are written with the next commit (the next attempt's start): the last one is
    written when the run hands control back, before the caller could be killed."""
    path = str(tmp_path / "s.db")
    sim = Simulator(store=path)
    sim.create(THREE, {}, id="t")
    sim.run()
    reader = SqliteStore(path)  # a store of its own: reads the file, not the writer's memory
    steps = reader.steps("t")
    reader.close()
    assert {k: (r["state"], r.get("value")) for k, r in steps.items()} == {
        "do:s0#1": ("done", "0"),
        "do:s1#1": ("done", "10"),
        "do:s2#1": ("done", "20"),
    }
    sim.close()


def test_a_reopened_store_reads_the_same_history_as_the_writer(tmp_path: Path) -> None:
    path = str(tmp_path / "s.db")
    store = SqliteStore(path)
    with Simulator(store=store) as sim:
        inst = sim.create(THREE, {}, id="t")
        sim.run()
        written = (inst.status(), inst.timeline, store.steps("t"), store.events("t"))
    store = SqliteStore(path)
    with Simulator(store=store) as again:
        inst = again.instance("t")
        assert (inst.status(), inst.timeline, store.steps("t"), store.events("t")) == written


tries: dict[str, int] = {}


def _flaky(name: str) -> int:
    tries[name] = tries.get(name, 0) + 1
    if tries[name] == 1:
        raise RuntimeError("first attempt fails")
    return tries[name]


def _refuse() -> None:
    raise NonRetryableError("no")


@Workflow("every_record")
async def EVERY(wf: Any, params: Any) -> Any:
    retried = await wf.do("flaky", lambda: _flaky("flaky"), retries={"limit": 2, "delay": 1000})
    try:
        await wf.do("refused", _refuse)
    except NonRetryableError:
        pass
    await wf.sleep("nap", "1 minute")
    event = await wf.wait_for("go", type="go", timeout="1 hour")
    return {"retried": retried, "event": event}


@pytest.mark.parametrize("restart", [False, True])
def test_every_kind_of_record_reads_back_as_written(tmp_path: Path, restart: bool) -> None:
    """Retries (a record rewritten before its result), a removed record (NonRetryableError),
    a sleep, an event and its wait, and a restart (every step removed) read back from the file
    as the writer holds them."""
    path = str(tmp_path / "s.db")
    tries.clear()
    store = SqliteStore(path)
    with Simulator(store=store) as sim:
        inst = sim.create(EVERY, {}, id="e")
        sim.run()
        inst.send_event("go", {"n": 1})
        sim.run()
        if restart:
            inst.restart()
            sim.run()
        status = inst.status()["status"]
        written = (store.get_instance("e"), inst.timeline, store.steps("e"), store.events("e"))
    assert status == ("waiting" if restart else "complete")
    again = SqliteStore(path)
    read = (again.get_instance("e"), again.timeline("e"), again.steps("e"), again.events("e"))
    again.close()
    assert read == written


def test_a_result_written_with_a_wipe_reads_back_whole(tmp_path: Path) -> None:
    """A result is stored as a change of the step's stored record; one committed together
    with the removal of every step has no stored record left to change."""
    path = str(tmp_path / "s.db")
    meta: InstanceMeta = {
        "id": "w",
        "workflow": "x",
        "params": "{}",
        "status": "running",
        "output": None,
        "error": None,
        "created_ms": 0,
        "paused_ms": None,
    }
    running: StepRecord = {"kind": "do", "name": "a", "state": "running", "attempts": 1}
    store = SqliteStore(path)
    store.commit("w", meta=meta, steps={"do:a#1": running})
    store.commit("w", steps={"do:a#1": {**running, "state": "done", "value": "1"}}, wipe_steps=True)
    store.commit("w", steps={"do:b#1": running}, defer=True)
    store.commit("w", steps={"do:b#1": {**running, "state": "done", "value": "2"}}, defer=True)
    written = store.steps("w")
    store.close()
    again = SqliteStore(path)
    assert again.steps("w") == written
    assert written["do:a#1"]["value"] == "1"
    assert written["do:b#1"]["value"] == "2"
    again.close()
