"""Issue 17.5: a store refuses what is not its own, in one line; two processes on one store
are refused, never an IntegrityError."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from awf_sim import DefinitionError, Simulator
from awf_sim.cli import app
from awf_sim.errors import StoreError

ROOT = Path(__file__).resolve().parents[2]
ORDER = str(ROOT / "examples" / "order_processing.py")


def _sqlite(path: Path, *statements: str) -> None:
    conn = sqlite3.connect(path)
    for sql in statements:
        conn.execute(sql)
    conn.commit()
    conn.close()


def _cases(tmp: Path) -> dict[str, tuple[str, str]]:
    (tmp / "text.db").write_text("not a database, just text\n" * 40)
    good = tmp / "good.db"
    Simulator(store=str(good)).close()
    (tmp / "cut.db").write_bytes(good.read_bytes()[:3000])
    _sqlite(tmp / "app.db", "CREATE TABLE users (id INTEGER)")
    _sqlite(
        tmp / "v7.db",
        "PRAGMA application_id = 1635214897",
        "PRAGMA user_version = 7",
        "CREATE TABLE instances (id TEXT)",
    )
    return {
        "missing folder": (str(tmp / "no" / "such" / "s.db"), "does not exist"),
        "directory": (str(tmp), "is a directory"),
        "not sqlite": (str(tmp / "text.db"), "not a database"),
        "truncated": (str(tmp / "cut.db"), "is it an awf store"),
        "another app": (str(tmp / "app.db"), "not an awf store (it holds users)"),
        "another schema": (str(tmp / "v7.db"), "schema version 7"),
    }


NAMES = ["missing folder", "directory", "not sqlite", "truncated", "another app", "another schema"]


@pytest.mark.parametrize("case", NAMES)
def test_unusable_stores_are_one_line_and_exit_2(tmp_path: Path, case: str) -> None:
    path, message = _cases(tmp_path)[case]
    before = Path(path).read_bytes() if Path(path).is_file() else None
    with pytest.raises(StoreError, match=re.escape(message)):
        Simulator(store=path)
    result = CliRunner().invoke(app, ["run", ORDER, "--store", path])
    assert result.exit_code == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr
    if before is not None:
        assert Path(path).read_bytes() == before  # nothing was added to it


def test_a_second_process_on_an_open_store_is_refused(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.db")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
                import sys
                from awf_sim import Simulator
                sim = Simulator(store={path!r})
                print("open", flush=True)
                sys.stdin.read()
                sim.close()
            """),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "open"
        with pytest.raises(StoreError, match="in use by another process"):
            Simulator(store=path)
    finally:
        holder.communicate("")
    Simulator(store=path).close()  # free again once the holder has closed it


def test_the_same_process_may_reopen_its_store(tmp_path: Path) -> None:
    path = str(tmp_path / "twice.db")
    first = Simulator(store=path)
    second = Simulator(store=path)
    second.close()
    first.close()


@pytest.mark.parametrize("store", [5, {}, b"store.db", object()])
def test_a_store_that_is_not_one_is_refused_when_the_simulator_is_made(store: Any) -> None:
    # Not at the first create(), as an AttributeError from inside the engine.
    with pytest.raises(
        DefinitionError, match=r"store must be None .* got \w+, which has no instance_ids\(\)"
    ):
        Simulator(store=store)
