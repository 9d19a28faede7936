"""Bad values given on the command line: one line on stderr that says what a good one is."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from awf_sim.cli import app

FLOW = """
from awf_sim import Workflow


@Workflow("named-ids", examples=[{"n": 1}])
async def named_ids(wf, params):
    return params
"""


@pytest.mark.parametrize("bad", ["bad id", "-lead", "a" * 101, "dot.ted"])
def test_an_invalid_instance_id_says_what_an_id_may_hold(tmp_path: Path, bad: str) -> None:
    flow = tmp_path / "named_ids.py"
    flow.write_text(FLOW, encoding="utf-8")
    result = CliRunner().invoke(app, ["run", str(flow), "--id", bad])
    assert result.exit_code == 2
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    # Cloudflare's own text, then what an id may hold; no private class name.
    assert "Workflow instance has invalid id" in line
    assert repr(bad) in line
    assert "letters, digits, '_' and '-'" in line
    assert "at most 100 characters" in line
    assert "_Invalid" not in line
