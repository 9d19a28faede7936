"""`awf-sim run --store --id`: what the store does with an id is said, and a clash is one line.

`--id X --input P` on a store whose instance X was started with other params showed X's
stored result for its own params without a word; `--new --id X` on a store that holds X
failed with "an instance with id 'X' already exists" and no way out."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from awf_sim.cli import app

FLOW = """
from awf_sim import Workflow


@Workflow("store-ids", examples=[{"n": 1}])
async def store_ids(wf, params):
    return {"twice": params["n"] * 2}
"""


def _run(tmp_path: Path, *args: str) -> tuple[int, str, str]:
    flow = tmp_path / "store_ids.py"
    flow.write_text(FLOW, encoding="utf-8")
    result = CliRunner().invoke(
        app, ["run", str(flow), "--store", str(tmp_path / "s.db"), "--json", *args]
    )
    return result.exit_code, result.stdout, result.stderr


def test_an_id_started_with_other_params_says_it_keeps_its_own(tmp_path: Path) -> None:
    code, _out, _err = _run(tmp_path, "--id", "order-7")
    assert code == 0
    code, out, err = _run(tmp_path, "--id", "order-7", "--input", '{"n": 5}')
    assert code == 0
    assert json.loads(out)["output"] == {"twice": 2}  # the stored instance, as documented
    assert "order-7" in err
    assert "was started with other params than this run's" in err
    assert "pass another --id" in err
    # The same params: nothing to say about them.
    _code, _out, err = _run(tmp_path, "--id", "order-7")
    assert "other params" not in err


def test_new_with_an_id_the_store_holds_is_one_line(tmp_path: Path) -> None:
    _run(tmp_path, "--id", "order-8")
    code, out, err = _run(tmp_path, "--id", "order-8", "--new")
    assert code == 2
    (line,) = err.splitlines()
    # With --json (as _run passes), the failure is the one object on stdout too.
    assert json.loads(out) == {
        "ok": False,
        "error": {"kind": "BadInput", "message": line.partition(": ")[2], "exit_code": 2},
    }
    assert "--new --id order-8" in line
    assert "already holds an instance 'order-8'" in line
    assert "pass another --id, or leave --id out" in line
    code, out, _err = _run(tmp_path, "--id", "order-9", "--new")
    assert code == 0
    assert json.loads(out)["instance_id"] == "order-9"
