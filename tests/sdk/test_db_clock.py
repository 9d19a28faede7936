"""SQL's 'now' in ctx.db is the simulation's virtual wall time, as `datetime.now()` is.

Before, `datetime('now')`, `DEFAULT CURRENT_TIMESTAMP` and the like read the process's real
clock: `awf-sim run` showed today's date where the handler's own clock said the virtual one,
two runs with one seed differed, and chaos reported an idempotent step (`INSERT OR IGNORE ...
datetime('now')`) as breaking idempotent-effects and replay-equivalence, even on its
fault-free run.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from awf_sim import Database, Domain, Simulator, Workflow
from awf_sim.chaos import run_campaign, verification_targets
from awf_sim.errors import DatabaseError
from awf_sim.flow import load_flow

EPOCH = dt.datetime(2031, 5, 17, 8, 30, 15, 250_000, tzinfo=dt.UTC)

AUDIT = """
from awf_sim import Domain, Workflow

async def record(order, args, ctx):
    await ctx.db.execute("CREATE TABLE IF NOT EXISTS log (id TEXT PRIMARY KEY, at TEXT)")
    await ctx.db.execute(
        "INSERT OR IGNORE INTO log (id, at) VALUES (?, datetime('now'))", [ctx.idempotency_key]
    )
    row = await ctx.db.query_one("SELECT at FROM log WHERE id = ?", [ctx.idempotency_key])
    return row["at"]

Audit = Domain("ClockAudit", {"record": record})

@Workflow("clock-audit", domains=[Audit], examples=[{"id": "o1"}])
async def audit(wf, order):
    at = await wf.ClockAudit(order).record()
    await wf.sleep("wait", "1 day")
    return at
"""


_CLI = (sys.executable, "-m", "awf_sim.cli")


def _run_sql(sql: str, *, db: Database | None = None, **sim: Any) -> Any:
    """What `sql`'s first row is in a step of a simulated run started at EPOCH."""

    async def ask(_entity: Any, _args: Any, ctx: Any) -> Any:
        row = await ctx.db.query_one(sql)
        return None if row is None else dict(row)

    domain = Domain(f"ClockAsk{abs(hash((sql, tuple(sim))))}", {"ask": ask})

    @Workflow(f"clock-ask-{abs(hash((sql, tuple(sim))))}", domains=[domain])
    async def flow(wf: Any, _inp: Any) -> Any:
        return await getattr(wf, domain.name)({}).ask()

    with Simulator(epoch=EPOCH, db=db, **sim) as s:
        inst = s.create(flow, {})
        s.run()
        status = inst.status()
    assert status["status"] == "complete", status
    return status["output"]


def test_now_functions_read_the_virtual_clock() -> None:
    row = _run_sql(
        "SELECT datetime('now') AS dt, date('NOW') AS d, time('Now') AS t, "
        "strftime('%Y-%m-%d %H:%M:%f', 'now') AS f, strftime('%s', 'now') AS s, "
        "unixepoch('now') AS u, julianday('now') AS j, CURRENT_TIMESTAMP AS ts, "
        "CURRENT_DATE AS cd, CURRENT_TIME AS ct, date() AS bare"
    )
    assert row == {
        "dt": "2031-05-17 08:30:15",
        "d": "2031-05-17",
        "t": "08:30:15",
        "f": "2031-05-17 08:30:15.250",
        "s": str(int(EPOCH.timestamp())),
        "u": int(EPOCH.timestamp()),
        "j": pytest.approx(EPOCH.timestamp() / 86400 + 2440587.5, abs=1e-8),
        "ts": "2031-05-17 08:30:15",
        "cd": "2031-05-17",
        "ct": "08:30:15",
        "bare": "2031-05-17",
    }


def test_modifiers_apply_to_the_virtual_now() -> None:
    row = _run_sql(
        "SELECT datetime('now', '+1 day') AS tomorrow, date('now', 'start of month') AS month, "
        "date('now', 'start of month', '+1 month', '-1 day') AS last, "
        "strftime('%w', 'now', 'weekday 0') AS sunday, datetime('now', 'unixepoch') AS bad"
    )
    assert row == {
        "tomorrow": "2031-05-18 08:30:15",
        "month": "2031-05-01",
        "last": "2031-05-31",
        "sunday": "0",
        "bad": None,  # as SQLite's: 'unixepoch' applies to numbers, not to 'now'
    }


def test_default_current_timestamp_column_gets_the_virtual_time() -> None:
    db = Database(
        "CREATE TABLE ev (id INTEGER PRIMARY KEY, at TEXT DEFAULT CURRENT_TIMESTAMP, "
        "d TEXT DEFAULT (date('now', '+7 days')))"
    )

    async def add(_e: Any, _a: Any, ctx: Any) -> Any:
        await ctx.db.execute("INSERT INTO ev (id) VALUES (1)")
        inserted = await ctx.db.insert("ev", {"id": 2})
        return [await ctx.db.query("SELECT at, d FROM ev ORDER BY id"), inserted["at"]]

    domain = Domain("ClockDefault", {"add": add})

    @Workflow("clock-default", domains=[domain])
    async def flow(wf: Any, _inp: Any) -> Any:
        await wf.sleep("later", "3 hours")
        return await wf.ClockDefault({}).add()

    with Simulator(epoch=EPOCH, db=db) as s:
        inst = s.create(flow, {})
        s.run()
    rows, inserted_at = inst.status()["output"]
    assert rows == [{"at": "2031-05-17 11:30:15", "d": "2031-05-24"}] * 2
    assert inserted_at == "2031-05-17 11:30:15"


def test_the_forked_handler_writes_the_virtual_time_too() -> None:
    # The parent process serves the child's ctx.db, on a thread of its own.
    assert _run_sql("SELECT datetime('now') AS now", isolation="process") == {
        "now": "2031-05-17 08:30:15"
    }


def test_two_runs_with_one_seed_agree_and_chaos_finds_nothing(tmp_path: Path) -> None:
    flow = tmp_path / "clock_audit.py"
    flow.write_text(AUDIT, encoding="utf-8")
    ((target, _example),) = verification_targets(load_flow(flow))
    result = run_campaign(target, runs=50)
    assert [f.violation for f in result.findings] == []

    outputs = []
    for _ in range(2):
        done = subprocess.run(
            [sys.executable, "-m", "awf_sim.cli", "run", str(flow), "--seed", "7"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        outputs.append(done.stdout.strip().splitlines()[-1])
        time.sleep(1.1)  # the real clock moves on between the two runs
    assert outputs == ['output: "2026-01-01 00:00:00"'] * 2


def test_run_store_keeps_the_virtual_time_on_disk(tmp_path: Path) -> None:
    flow = tmp_path / "clock_audit.py"
    flow.write_text(AUDIT, encoding="utf-8")
    store = tmp_path / "run.db"
    for extra in ([], ["--isolation", "process"]):
        done = subprocess.run(
            [*_CLI, "run", str(flow), "--store", str(store), *extra, "--new"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
    conn = sqlite3.connect(f"{store}.d1")
    try:
        # The second instance starts where the store's clock stands: after the first one's
        # 1-day sleep (a store is one world with one clock, as D1 is).
        assert [at for (at,) in conn.execute("SELECT at FROM log")] == [
            "2026-01-01 00:00:00",
            "2026-01-02 00:00:00",
        ]
    finally:
        conn.close()


def test_outside_a_simulation_now_is_the_real_clock() -> None:
    handle = Database("CREATE TABLE t (at TEXT DEFAULT CURRENT_TIMESTAMP)").connect()
    try:
        before = int(time.time())
        handle.rows("INSERT INTO t DEFAULT VALUES")
        (row,) = handle.rows("SELECT unixepoch(at) AS at, unixepoch('now') AS now FROM t")
        after = int(time.time())
        assert before <= row["at"] <= after
        assert before <= row["now"] <= after
    finally:
        handle.close()


def test_now_is_one_instant_within_a_statement(monkeypatch: pytest.MonkeyPatch) -> None:
    ticks = iter(range(1_000_000_000_000, 2_000_000_000_000, 7_000_000_000))
    monkeypatch.setattr(time, "time_ns", lambda: next(ticks))
    handle = Database(
        "CREATE TABLE n (i INTEGER); INSERT INTO n VALUES (1), (2), (3), (4)"
    ).connect()
    try:
        rows = handle.rows(
            "SELECT strftime('%s', 'now') AS a, CURRENT_TIMESTAMP AS b, "
            "datetime(i || ' seconds', 'now') AS c, unixepoch('now', '+' || i || ' days') AS d "
            "FROM n"
        )
        assert len({(r["a"], r["b"]) for r in rows}) == 1
        assert [r["d"] - int(rows[0]["a"]) for r in rows] == [86400 * i for i in range(1, 5)]
        (later,) = handle.rows("SELECT strftime('%s', 'now') AS a")
        assert later["a"] != rows[0]["a"]  # the next statement reads the clock again
    finally:
        handle.close()


_PLAIN = sqlite3.connect(":memory:")
_VALUES = st.one_of(
    st.sampled_from(
        [
            "2024-02-29",
            "2024-02-29 23:59:59.999",
            "2024-02-29T12:00",
            "12:34",
            "1970-01-01 00:00:00Z",
            "2000-01-01 10:00:00+05:30",
            "now ",
            "nowx",
            "",
            "2461000.5",
        ]
    ),
    st.integers(-(10**11), 10**11),
    st.floats(-1e7, 1e7, allow_nan=False),
    st.text(max_size=12),
    st.none(),
    st.binary(max_size=6),
)
_MODIFIERS = st.lists(
    st.one_of(
        st.sampled_from(
            [
                "+1 day",
                "-3 months",
                "start of month",
                "start of year",
                "start of day",
                "weekday 3",
                "unixepoch",
                "auto",
                "subsec",
                "+01:30",
                "-0002-01-00 10:00:00",
                "bogus",
            ]
        ),
        st.text(max_size=8),
    ),
    max_size=3,
)


@settings(max_examples=300, deadline=None)
@given(
    function=st.sampled_from(["date", "time", "datetime", "julianday", "unixepoch", "strftime"]),
    value=_VALUES,
    modifiers=_MODIFIERS,
    fmt=st.sampled_from(["%Y-%m-%d %H:%M:%f", "%s %j %W %w", "%J", "%%x"]),
)
def test_other_values_are_computed_as_sqlite_does(
    function: str, value: Any, modifiers: list[str], fmt: str
) -> None:
    # 'now' itself (a text or a blob, any case) reads the clock: two reads a millisecond apart
    # differ; the tests above cover it.
    assume(not isinstance(value, str | bytes) or value.lower() not in ("now", b"now"))
    # 'localtime' and 'utc' are UTC here whatever TZ says, and 'subsec' and 'ceiling' are
    # D1's newer SQLite's (test_db_d1_functions.py).
    newer = ("localtime", "utc", "subsec", "subsecond", "ceiling")
    assume(all(m.lower() not in newer for m in modifiers))
    args = ([fmt] if function == "strftime" else []) + [value, *modifiers]
    sql = f"SELECT {function}({', '.join('?' * len(args))})"
    (expected,) = _PLAIN.execute(sql, args).fetchone()
    handle = Database().connect()
    try:
        got = handle._conn.execute(sql, args).fetchone()[0]
    finally:
        handle.close()
    assert got == expected or (got != got and expected != expected)


def test_d1_refusals_still_hold() -> None:
    handle = Database().connect()
    try:
        for sql in ("SELECT sqlite_version()", "CREATE TEMP TABLE t (at TEXT)"):
            with pytest.raises(DatabaseError, match="refused"):
                handle.rows(sql)
        with pytest.raises(DatabaseError, match="syntax error"):
            handle.rows("SELECT current_timestamp(1)")
        assert handle.rows("SELECT date('2024-01-31', '+1 month') AS d") == [{"d": "2024-03-02"}]
    finally:
        handle.close()
