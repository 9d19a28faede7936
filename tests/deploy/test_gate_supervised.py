"""Issue 17.1: a flow that ends the verify gate's process makes push fail, with no write."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from awf_deploy.cli import app

pytestmark = pytest.mark.usefixtures("flow_registry")

OS_EXIT = """
import os
from awf_sim import Domain, Workflow

async def die(c, a, ctx):
    os._exit(0)

Killer = Domain("Killer", {"die": die})

@Workflow("dies", examples=[{}])
async def dies(wf, p):
    await wf.Killer({}).die()
"""


def test_push_fails_when_the_flow_kills_the_gate(tmp_path: Path, cli_env: Any) -> None:
    flow = tmp_path / "dies.py"
    flow.write_text(OS_EXIT)
    result = CliRunner().invoke(app, ["push", str(flow), "--yes"])
    assert result.exit_code == 1, result.stdout + result.stderr
    assert "before it reached a verdict" in result.stderr
    assert [r for r in cli_env.requests if r.method in {"PUT", "POST", "PATCH", "DELETE"}] == []
