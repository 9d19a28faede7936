"""`awf-deploy` as a new user drives it: the failures each promise must turn into one clear
line and the right exit code, never a traceback, a leaked token or a misleading result."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from awf_deploy.cli import app

pytestmark = pytest.mark.usefixtures("flow_registry")

runner = CliRunner()


def run(*args: str, input: str | None = None) -> Result:
    return runner.invoke(app, list(args), input=input)


def one_error_line(result: Result) -> str:
    """The single `awf-deploy: ...` line on stderr; no traceback anywhere."""
    out = result.stdout + result.stderr
    assert "Traceback" not in out, out
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    lines = [line for line in result.stderr.splitlines() if line.startswith("awf-deploy: ")]
    errors = [line for line in lines if "warning:" not in line and not line.endswith("...")]
    assert len(errors) == 1, result.stderr
    return errors[0]


@pytest.fixture
def shop(flows_dir: Path) -> str:
    return str(flows_dir / "shop.py")


def test_build_into_a_folder_that_cannot_be_created_is_one_line(shop: str, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder\n")
    result = run("build", shop, "--out", str(blocker / "bundle"))
    assert result.exit_code == 2
    line = one_error_line(result)
    assert "cannot write the bundle" in line
    assert "--out" in line
