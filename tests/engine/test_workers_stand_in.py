"""A workflow written for Cloudflare (`from workers import WorkflowEntrypoint`) runs on the
simulator unchanged: outside Pyodide, Cloudflare's SDK cannot import (it needs `js`), and
awf answers `import workers` with stand-ins (`awf_sim.sdk.install_workers_stand_in`, which
the pytest plugin and the flow loader install)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from awf_sim import Simulator

CLOUDFLARE_STYLE = """
from workers import WorkflowEntrypoint
from workers.workflows import NonRetryableError


class Greeter(WorkflowEntrypoint):
    async def run(self, event, step):
        @step.do("fetch name")
        async def fetch_name():
            name = event["payload"].get("name")
            if name is None:
                raise NonRetryableError("no name")
            return name

        name = await fetch_name()
        await step.sleep("nap", "1 hour")

        @step.do("greet")
        async def greet():
            return f"hello {name} at {self.env['PLACE']}"

        return await greet()
"""


def _import(path: Path) -> Any:
    spec = importlib.util.spec_from_file_location(f"cf_style_{path.stem}", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_cloudflare_workflow_class_runs_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "greeter.py"
    path.write_text(CLOUDFLARE_STYLE)
    greeter = _import(path).Greeter  # this session's plugin installed the stand-in
    with Simulator(env={"PLACE": "home"}) as sim:
        ok = sim.create(greeter, {"name": "ann"})
        refused = sim.create(greeter, {})
        sim.run()
        assert ok.status()["output"] == "hello ann at home"
        status = refused.status()
        assert (status["status"], status["error"]["name"]) == ("errored", "NonRetryableError")
        # The SDK's NonRetryableError is the simulator's: one attempt, no retry.
        assert sum(e["kind"] == "attempt-start" for e in refused.timeline) == 1


def _python(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_without_the_stand_in_the_sdk_does_not_import_and_with_it_it_does(
    tmp_path: Path,
) -> None:
    code = """
        try:
            import workers
        except ImportError as exc:
            print("real:", exc)
        from awf_sim.sdk import install_workers_stand_in
        install_workers_stand_in()
        from workers import WorkflowEntrypoint
        from workers.workflows import NonRetryableError
        from awf_sim import NonRetryableError as SimNRE
        print("stand-in:", WorkflowEntrypoint.__name__, issubclass(NonRetryableError, SimNRE))
    """
    out = _python(code, tmp_path)
    assert out.returncode == 0, out.stderr
    assert "real: No module named 'js'" in out.stdout
    assert "stand-in: WorkflowEntrypoint True" in out.stdout


def test_another_package_named_workers_is_not_hidden(tmp_path: Path) -> None:
    (tmp_path / "workers").mkdir()
    (tmp_path / "workers" / "__init__.py").write_text("MINE = True\n")
    code = """
        import sys
        sys.path.insert(0, ".")
        from awf_sim.sdk import install_workers_stand_in
        install_workers_stand_in()
        import workers
        print("mine:", getattr(workers, "MINE", False))
    """
    out = _python(code, tmp_path)
    assert out.returncode == 0, out.stderr
    assert "mine: True" in out.stdout
