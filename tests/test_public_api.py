"""The public names users and outside tests rely on (DESIGN.md). Changing them is a decision."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import awf_sim
import awf_sim.dsl
import awf_sim.engine


def test_awf_sim_exports() -> None:
    required = {
        "Database",
        "DefinitionError",
        "Domain",
        "Instance",
        "NonRetryableError",
        "Simulator",
        "StepError",
        "Workflow",
        "mock_database",
        "parse_duration",
        "step_id",
        "to_cron",
    }
    assert required <= set(awf_sim.__all__)
    for name in awf_sim.__all__:
        assert getattr(awf_sim, name) is not None, name


def test_all_lists_only_what_exists() -> None:
    for module in (awf_sim, awf_sim.dsl, awf_sim.engine):
        assert len(module.__all__) == len(set(module.__all__))
        for name in module.__all__:
            assert hasattr(module, name), f"{module.__name__}.{name}"


def test_import_awf_sim_stays_light() -> None:
    code = (
        "import sys, awf_sim; "
        "heavy = [m for m in ('hypothesis', 'rich', 'httpx', 'typer') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_dsl_imports_only_the_standard_library(tmp_path: Path) -> None:
    # As in the Worker bundle: awf_sim/dsl alone, under an empty awf_sim package.
    pkg = tmp_path / "awf_sim"
    shutil.copytree(Path(awf_sim.dsl.__file__).parent, pkg / "dsl")
    (pkg / "__init__.py").write_text("")
    code = (
        "import sys; before = set(sys.modules); import awf_sim.dsl; "
        "new = {m.split('.')[0] for m in set(sys.modules) - before}; "
        "std = set(sys.stdlib_module_names) | {'awf_sim'}; "
        "print(','.join(sorted(new - std)))"
    )
    out = subprocess.run(
        [sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(tmp_path)!r}); {code}"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == ""


def test_helpers_have_the_contract_signatures() -> None:
    assert awf_sim.parse_duration("2 minutes") == 120_000
    assert awf_sim.to_cron("Monday at 9am") == "0 9 * * 1"
    assert len(awf_sim.step_id(["Inventory", "check"], {"sku": "ABC"}, {})) == 16
