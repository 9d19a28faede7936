"""`awf-sim run --store` keeps ctx.db beside the store, as D1 keeps it: an instance resumed in a
new process sees the rows its checkpointed steps wrote.

Before, every process started from the flow's DATABASE afresh: the resumed instance did not
run its checkpointed `write` step again (rightly), and its `read` step found the row gone.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

FLOW = """
import os
from awf_sim import Database, Domain, Workflow

DATABASE = Database("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT)")
MARKER = {marker!r}

async def write(c, a, ctx):
    return await ctx.db.insert("notes", {{"text": "from the first process"}})

async def read(c, a, ctx):
    if not os.path.exists(MARKER):  # the first process dies here, after write's checkpoint
        open(MARKER, "w").close()
        os._exit(9)
    return [row["text"] for row in await ctx.db.query("SELECT text FROM notes ORDER BY id")]

Notes = Domain("Notes", {{"write": write, "read": read}})

@Workflow("notes", examples=[{{}}])
async def notes(wf, p):
    await wf.Notes({{}}).write()
    return await wf.Notes({{}}).read()
"""


def _run(flow: Path, store: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "awf_sim.cli", "run", str(flow), "--store", str(store), *extra],
        capture_output=True,
        text=True,
        timeout=120,
    )


def _flow(tmp_path: Path) -> Path:
    flow = tmp_path / "notes.py"
    flow.write_text(FLOW.format(marker=str(tmp_path / "died-once")))
    return flow


def test_a_resumed_instance_reads_what_its_checkpointed_steps_wrote(tmp_path: Path) -> None:
    flow, store = _flow(tmp_path), tmp_path / "run.db"
    first = _run(flow, store)
    assert first.returncode == 1, first.stderr  # the handler ended the process
    second = _run(flow, store, "--json")
    assert second.returncode == 0, second.stderr
    result: dict[str, Any] = json.loads(second.stdout)
    assert result["output"] == ["from the first process"]
    # One D1 database per Worker: a new instance on the same store sees the rows too.
    third = _run(flow, store, "--new", "--json")
    assert json.loads(third.stdout)["output"] == ["from the first process"] * 2
    with sqlite3.connect(tmp_path / "run.db.d1") as conn:
        assert conn.execute("SELECT count(*) FROM notes").fetchone() == (2,)


def test_a_database_file_awf_did_not_make_is_refused_in_one_line(tmp_path: Path) -> None:
    flow, store = _flow(tmp_path), tmp_path / "run.db"
    with sqlite3.connect(tmp_path / "run.db.d1") as conn:
        conn.execute("CREATE TABLE someone_elses (x)")
    (tmp_path / "died-once").touch()
    done = _run(flow, store)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    assert "run.db.d1 is not a database awf made" in done.stderr
    assert "Traceback" not in done.stderr
    with sqlite3.connect(tmp_path / "run.db.d1") as conn:  # and it was left as it was
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master")]
        assert tables == ["someone_elses"]


def test_a_database_file_that_is_not_sqlite_is_refused_in_one_line(tmp_path: Path) -> None:
    flow, store = _flow(tmp_path), tmp_path / "run.db"
    (tmp_path / "run.db.d1").write_text("not a database at all, just some notes\n" * 20)
    done = _run(flow, store)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    assert "cannot use the database file" in done.stderr
