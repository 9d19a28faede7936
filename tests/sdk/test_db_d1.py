"""The simulated D1 refuses what D1 refuses and runs what D1 runs: PRAGMA statements, the temp
schema (CREATE TEMP TABLE/VIEW/TRIGGER), functions that describe the SQLite build, and the date
and time functions given parameters.

The answers are Miniflare's D1, recorded by `node tests/sdk/d1_probe.mjs` into
d1_authorizer.json. Before, SQLite ran every refused one here: `PRAGMA journal_mode = DELETE`,
`CREATE TEMP TABLE`, `SELECT sqlite_version()` passed in the simulator and failed on Cloudflare.

Left out of the recording: functions newer than this Python's SQLite (3.40: timediff,
octet_length, unhex, concat, string_agg) and 'now' where a value must be deterministic, both in
d1_functions.json (test_db_d1_functions.py), and values that are not deterministic ('now',
random()).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from awf_sim.errors import DatabaseError
from awf_sim.sdk._db import Database

HERE = Path(__file__).parent
RECORDED: dict[str, Any] = json.loads((HERE / "d1_authorizer.json").read_text())
CASES: list[dict[str, Any]] = RECORDED["cases"]


def _on_the_simulator() -> list[dict[str, Any]]:
    """Every case in order on one handle, answered as the probe answers."""
    answers: list[dict[str, Any]] = []
    with Database().connect() as db:
        db.step = "Probe.run#1"
        for case in CASES:
            try:
                rows = asyncio.run(db.query(case["sql"], case["params"]))
            except DatabaseError as exc:
                answers.append({"ok": False, "error": str(exc)})
            else:
                answers.append({"ok": True, "rows": rows})
    return answers


def test_the_recording_covers_what_the_fix_is_about() -> None:
    # A recording that lost these would make the comparison below say nothing about them.
    refused = {c["sql"] for c in CASES if not c["ok"]}
    assert {
        "PRAGMA journal_mode = DELETE",
        "PRAGMA user_version",
        "CREATE TEMP TABLE tt (x)",
        "CREATE TEMP VIEW tv AS SELECT 1",
        "CREATE TEMP TRIGGER ttr AFTER INSERT ON t BEGIN SELECT 1; END",
        "CREATE TABLE temp.tt3 (x)",
        "SELECT sqlite_version()",
        "PRAGMA TABLE_INFO(t)",
    } <= refused
    ran = {c["sql"] for c in CASES if c["ok"]}
    assert {"PRAGMA table_info(t)", "PRAGMA foreign_keys = OFF", "SELECT date(?, ?)"} <= ran
    assert sum("rows" in c for c in CASES) >= 8  # date and time functions, with their values


def test_the_simulator_refuses_and_runs_what_miniflares_d1_did() -> None:
    mismatches = []
    for case, got in zip(CASES, _on_the_simulator(), strict=True):
        if got["ok"] != case["ok"]:
            mismatches.append(f"{case['sql']!r}: D1 {case.get('error', 'ran it')}, here {got}")
        elif "rows" in case and got["rows"] != case["rows"]:
            mismatches.append(f"{case['sql']!r}: D1 gave {case['rows']}, here {got['rows']}")
    assert mismatches == []


@pytest.mark.parametrize(
    ("sql", "says"),
    [
        ("PRAGMA journal_mode = DELETE", "PRAGMA journal_mode is refused: D1 does not authorize"),
        ("PRAGMA TABLE_INFO(inventory)", "PRAGMA TABLE_INFO is refused"),
        ("PRAGMA table_info", "PRAGMA table_info without a table or index is refused"),
        ("PRAGMA data_version = 1", "PRAGMA data_version = ... is refused"),
        ("PRAGMA temp.table_list", "PRAGMA temp.table_list is refused"),
        ("CREATE TEMP TABLE scratch (x)", "CREATE TEMP TABLE is refused"),
        ("CREATE TEMPORARY VIEW v AS SELECT 1", "CREATE TEMP VIEW is refused"),
        ("CREATE TABLE temp.scratch (x)", "CREATE TEMP TABLE is refused"),
        ("SELECT sqlite_version()", "sqlite_version() is refused"),
        ("SELECT soundex('a')", "soundex() is refused: D1's SQLite has no such function"),
    ],
)
def test_a_refusal_is_one_line_naming_the_step_the_statement_and_the_fix(
    sql: str, says: str
) -> None:
    spec = Database("CREATE TABLE inventory (id INTEGER PRIMARY KEY, sku TEXT)")
    with spec.connect() as db:
        db.step = "Orders.place#1"
        with pytest.raises(DatabaseError) as info:
            asyncio.run(db.query(sql))
        message = str(info.value)
        assert message.startswith("Orders.place#1: ")
        assert says in message
        assert "\n" not in message
        assert sql.split()[0] in message  # the statement is named
        # Nothing was left behind: the handle serves the next statement, and no temp object.
        assert asyncio.run(db.query("SELECT count(*) AS n FROM temp.sqlite_master")) == [{"n": 0}]


def test_the_simulators_own_statements_still_run_under_the_d1_rules() -> None:
    # snapshot/digest/auto-schema use table_list, table_info and table_xinfo themselves.
    spec = Database(
        "CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT);"
        "CREATE VIRTUAL TABLE docs USING fts5(body);"
    )
    with spec.connect() as db:
        asyncio.run(db.insert("notes", {"text": "a"}))
        asyncio.run(db.execute("INSERT INTO docs (body) VALUES (?)", ["hello world"]))
        assert asyncio.run(db.query("SELECT body FROM docs WHERE docs MATCH ?", ["hello"])) == [
            {"body": "hello world"}
        ]
        assert db.snapshot()["notes"] == [{"id": 1, "text": "a"}]
        assert len(db.digest()) == 64


_PROBE = HERE / "d1_probe.mjs"
_MINIFLARE = HERE.parent / "conformance" / "node_modules" / "miniflare" / "package.json"


@pytest.mark.conformance
@pytest.mark.skipif(
    os.environ.get("CI") != "true" and (shutil.which("node") is None or not _MINIFLARE.is_file()),
    reason="needs node and `npm ci` in tests/conformance (mandatory under CI=true)",
)
def test_the_recording_is_what_miniflares_d1_does_today(tmp_path: Path) -> None:
    cases = tmp_path / "cases.json"
    cases.write_text(json.dumps([{"sql": c["sql"], "params": c["params"]} for c in CASES]))
    done = subprocess.run(
        ["node", str(_PROBE), str(cases)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    live = json.loads(done.stdout)
    for case, answer in zip(CASES, live, strict=True):
        assert answer["ok"] == case["ok"], (case, answer)
        if not case["ok"]:
            assert answer["error"] == case["error"]
        elif "rows" in case:
            assert answer["rows"] == case["rows"], case
