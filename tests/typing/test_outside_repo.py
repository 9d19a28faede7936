"""mypy and pyright see awf's types from a user's own project folder, not only from inside this
repository. Under `pip install -e .` setuptools used to install awf through an import hook
(a meta-path finder), which type checkers cannot follow: run from anywhere but the repository
root, both reported `awf_sim` as not found and typed every workflow as Any. pyproject.toml's
`package-dir` makes the editable install a plain path entry that both checkers read.
(A venv installed before that change needs `pip install -e .` again.)"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

USER_FLOW = """
from awf_sim import Workflow
from awf_sim.dsl import WorkflowApi
from awf_sim.testing import create_test_workflow


@Workflow("outside")
async def outside(wf: WorkflowApi, n: int) -> int:
    return n + 1


reveal_type(create_test_workflow(outside).run(1))
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "user_flow.py").write_text(USER_FLOW)
    (tmp_path / "mypy.ini").write_text("[mypy]\n")
    return tmp_path


def test_mypy_sees_awf_from_a_user_project(project: Path) -> None:
    run = subprocess.run(
        [
            *(sys.executable, "-m", "mypy", "--strict", "--config-file", "mypy.ini"),
            *("--no-incremental", "--no-error-summary", "user_flow.py"),
        ],
        capture_output=True,
        text=True,
        cwd=project,
        check=False,
    )
    lines = [re.sub(r"^.*?:\d+: ", "", line) for line in run.stdout.splitlines()]
    assert lines == ['note: Revealed type is "int"'], run.stdout + run.stderr


def test_pyright_sees_awf_from_a_user_project(project: Path) -> None:
    exe = shutil.which("pyright", path=str(Path(sys.executable).parent)) or shutil.which("pyright")
    if exe is None:
        pytest.fail("pyright is not installed: pip install -e '.[dev]' (it is in the dev extra)")
    run = subprocess.run(
        [exe, "--outputjson", "--pythonpath", sys.executable, "user_flow.py"],
        capture_output=True,
        text=True,
        cwd=project,
        check=False,
    )
    report = json.loads(run.stdout)
    found = [d["message"] for d in report["generalDiagnostics"]]
    assert found == ['Type of "create_test_workflow(outside).run(1)" is "int"']
