"""ctx.db answers as Miniflare's D1 did, recorded in d1_functions.json, on three points:

- 'now', `date()` without a time value and the 'localtime'/'utc' modifiers are refused where a
  value must be deterministic (CHECK constraints, generated columns, indexes), with SQLite's
  words: "non-deterministic use of datetime() in a CHECK constraint". They ran here before
  (the virtual-clock functions were registered as deterministic), and failed on D1.
- 'localtime' and 'utc' change nothing, as in a Worker (UTC), whatever the machine's TZ: they
  used to shift by the machine's time zone.
- `concat`, `concat_ws`, `string_agg`, `timediff`, `octet_length` and `unhex` run, as on D1:
  SQLite 3.40 lacks them and failed with "no such function".
- The 'subsec' and 'ceiling' modifiers and strftime's %e %F %I %k %l %p %P %R %T %u %U %G %g
  %V give D1's values: SQLite 3.40 gave NULL (`datetime('now', 'subsec')` was NULL).
- `strftime(FORMAT)` without a time value is 'now' on the virtual clock: it read the real one.

`python tests/sdk/test_db_d1_functions.py` records the file again from its cases.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from awf_sim import Database, Domain, Simulator, Workflow
from awf_sim.errors import DatabaseError
from awf_sim.sdk import _db_functions
from awf_sim.sdk._db_clock import Clock

HERE = Path(__file__).parent
RECORDING = HERE / "d1_functions.json"
RECORDED: dict[str, Any] = json.loads(RECORDING.read_text())
CASES: list[dict[str, Any]] = RECORDED["cases"]
_PROBE = HERE / "d1_probe.mjs"
_MINIFLARE = HERE.parent / "conformance" / "node_modules" / "miniflare" / "package.json"


def _d1_words(error: str) -> str:
    """SQLite's message inside D1's: without `D1_ERROR: `, ` at offset N` and `: SQLITE_...`."""
    error = error.removeprefix("D1_ERROR: ")
    error = re.sub(r": SQLITE_[A-Z]+$", "", error)
    return re.sub(r" at offset \d+$", "", error)


def _as_d1(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # The probe's JSON gives a blob as its list of bytes.
    return [{k: list(v) if isinstance(v, bytes) else v for k, v in r.items()} for r in rows]


def _on_the_simulator() -> list[dict[str, Any]]:
    answers: list[dict[str, Any]] = []
    with Database().connect() as db:
        for case in CASES:
            try:
                rows = asyncio.run(db.query(case["sql"], case["params"]))
            except DatabaseError as exc:
                answers.append({"ok": False, "error": exc.detail})
            else:
                answers.append({"ok": True, "rows": _as_d1(rows)})
    return answers


@pytest.fixture(params=["UTC", "America/New_York", "Asia/Kolkata"])
def machine_tz(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("TZ", request.param)
    time.tzset()
    yield request.param
    monkeypatch.undo()
    time.tzset()


def test_the_recording_covers_each_point() -> None:
    refused = {_d1_words(c["error"]) for c in CASES if not c["ok"]}
    assert {
        "non-deterministic use of datetime() in a CHECK constraint",
        "non-deterministic use of datetime() in a generated column",
        "non-deterministic use of datetime() in an index",
        "non-deterministic use of date() in an index",
        "non-deterministic use of timediff() in a CHECK constraint",
    } <= refused
    sqls = " ".join(c["sql"] for c in CASES if c["ok"])
    for name in ("concat(", "concat_ws(", "string_agg(", "timediff(", "octet_length(", "unhex("):
        assert sum(c["sql"].count(name) for c in CASES if c["ok"]) >= 5, name
    assert "'localtime'" in sqls
    assert "'utc'" in sqls
    assert "'subsec'" in sqls
    drawn = " ".join(str(c["params"]) for c in CASES)
    for code in "eFIklpPRTuUGgV":
        assert f"%{code}" in sqls + drawn, code
    assert any(None in c["params"] for c in CASES)


def test_the_simulator_answers_as_miniflares_d1_did_in_any_machine_time_zone(
    machine_tz: str,
) -> None:
    mismatches = []
    for case, got in zip(CASES, _on_the_simulator(), strict=True):
        if got["ok"] != case["ok"]:
            mismatches.append(f"{case['sql']!r}: D1 {case.get('error', 'ran it')}, here {got}")
        elif case["ok"] and got["rows"] != case["rows"]:
            mismatches.append(f"{case['sql']!r}: D1 gave {case['rows']}, here {got['rows']}")
        elif not case["ok"] and not got["error"].startswith(_d1_words(case["error"])):
            mismatches.append(f"{case['sql']!r}: D1 said {case['error']}, here {got['error']}")
    assert mismatches == []


def test_a_refusal_names_the_function_the_place_and_the_fix_and_writes_nothing() -> None:
    spec = Database("CREATE TABLE orders (id INTEGER PRIMARY KEY, at TEXT CHECK (at <= date()))")
    with spec.connect() as db:
        db.step = "Orders.place#1"
        with pytest.raises(DatabaseError) as info:
            asyncio.run(db.execute("INSERT INTO orders (at) VALUES (?)", ["2026-01-01"]))
        message = str(info.value)
        assert message.startswith("Orders.place#1: non-deterministic use of date() in a CHECK")
        assert "pass the time in as a parameter" in message
        assert "\n" not in message
        assert db.snapshot()["orders"] == []
        assert db.writes == []
        # The handle goes on: a statement that needs no 'now' runs.
        asyncio.run(db.execute("CREATE TABLE ok (at TEXT CHECK (at <= '2030-01-01'))"))
        asyncio.run(db.execute("INSERT INTO ok (at) VALUES (datetime('now'))"))


def test_localtime_and_a_bare_strftime_in_a_simulation_are_the_virtual_utc_time(
    machine_tz: str,
) -> None:
    async def ask(_entity: Any, _args: Any, ctx: Any) -> Any:
        return await ctx.db.query_one(
            "SELECT datetime('now', 'localtime') AS local, datetime('now') AS utc, "
            "datetime('2026-07-01 12:00', 'utc') AS shifted, strftime('%F %T') AS bare, "
            "datetime('now', '+1.5 seconds', 'subsec') AS subsec"
        )

    domain = Domain("TzAsk", {"ask": ask})

    @Workflow("tz-ask", domains=[domain])
    async def flow(wf: Any, _inp: Any) -> Any:
        return await wf.TzAsk({}).ask()

    with Simulator() as sim:
        inst = sim.create(flow, {})
        sim.run()
        out = inst.status()["output"]
    assert out == {
        "local": "2026-01-01 00:00:00",
        "utc": "2026-01-01 00:00:00",
        "shifted": "2026-07-01 12:00:00",
        "bare": "2026-01-01 00:00:00",
        "subsec": "2026-01-01 00:00:01.500",
    }


def test_only_functions_this_sqlite_lacks_are_registered() -> None:
    # A newer SQLite's own would win over ours: registering them anyway would shadow it.
    conn = sqlite3.connect(":memory:")
    try:
        builtin = {
            n for (n,) in conn.execute("SELECT name FROM pragma_function_list WHERE builtin")
        }
        _db_functions.install_functions(conn, Clock())
        added = {
            n for (n,) in conn.execute("SELECT name FROM pragma_function_list WHERE NOT builtin")
        }
    finally:
        conn.close()
    wanted = {"concat", "concat_ws", "string_agg", "timediff", "octet_length", "unhex"}
    assert added & wanted == wanted - builtin == _db_functions.MISSING


def test_a_schema_may_use_d1s_functions() -> None:
    spec = Database(
        "CREATE TABLE people (first TEXT, last TEXT, full AS (concat_ws(' ', first, last)));"
        "CREATE VIEW initials AS SELECT string_agg(substr(first, 1, 1), '') AS i FROM people",
        {"people": [{"first": "Ada", "last": "Lovelace"}, {"first": "Alan", "last": None}]},
    )
    with spec.connect() as db:
        assert db.rows("SELECT full FROM people") == [{"full": "Ada Lovelace"}, {"full": "Alan"}]
        assert db.rows("SELECT i FROM initials") == [{"i": "AA"}]


@pytest.mark.conformance
@pytest.mark.skipif(
    os.environ.get("CI") != "true" and (shutil.which("node") is None or not _MINIFLARE.is_file()),
    reason="needs node and `npm ci` in tests/conformance (mandatory under CI=true)",
)
def test_the_recording_is_what_miniflares_d1_does_today(tmp_path: Path) -> None:
    live = _probe(tmp_path)
    for case, answer in zip(CASES, live, strict=True):
        assert answer["ok"] == case["ok"], (case, answer)
        if case["ok"]:
            assert answer["rows"] == case["rows"], case
        else:
            assert answer["error"] == case["error"]


def _probe(folder: Path) -> list[dict[str, Any]]:
    """Miniflare's D1's answers to the cases, under TZ=UTC (a Worker's time zone; Miniflare's
    D1 takes 'localtime' from the host's)."""
    cases = folder / "cases.json"
    cases.write_text(json.dumps([{"sql": c["sql"], "params": c["params"]} for c in CASES]))
    done = subprocess.run(
        ["node", str(_PROBE), str(cases)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "TZ": "UTC"},
    )
    assert done.returncode == 0, done.stderr
    answers: list[dict[str, Any]] = json.loads(done.stdout)
    return answers


if __name__ == "__main__":  # records the answers again, for the same cases
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        answers = _probe(Path(folder))
    for case, answer in zip(CASES, answers, strict=True):
        case.pop("rows", None)
        case.pop("error", None)
        case.update(answer)
    RECORDING.write_text(json.dumps(RECORDED, indent=1, ensure_ascii=False) + "\n")
    print(f"recorded {len(CASES)} cases into {RECORDING}", file=sys.stderr)
