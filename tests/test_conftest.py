"""DESIGN §1: the repository-level conftest.py holds the fixtures tests/ and examples/ share,
so no folder keeps its own copy of them (issue 15 point 11)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ("flow_registry", "under_ci", "_under_ci", "real_runtime_installed", "miniflare_installed")


def test_the_repository_has_a_conftest_with_the_shared_fixtures() -> None:
    text = (ROOT / "conftest.py").read_text(encoding="utf-8")
    for name in ("flow_registry", "under_ci", "real_runtime_installed", "miniflare_installed"):
        assert re.search(rf"^def {name}\(", text, re.M), name


def test_no_test_folder_defines_a_shared_fixture_again() -> None:
    copies = [
        f"{path.relative_to(ROOT)}: {name}"
        for path in [*ROOT.glob("tests/**/*.py"), *ROOT.glob("examples/**/*.py")]
        if "node_modules" not in path.parts
        for name in SHARED
        if re.search(rf"^def {name}\(", path.read_text(encoding="utf-8"), re.M)
    ]
    assert copies == []


def test_flow_registry_puts_the_registries_back(flow_registry: None, under_ci: bool) -> None:
    from awf_sim import Domain
    from awf_sim.dsl import registered_domains

    Domain("ConftestProbe", {"m": lambda c, a, x: None})
    assert "ConftestProbe" in registered_domains()
    assert isinstance(under_ci, bool)


@pytest.mark.usefixtures("flow_registry")
def test_the_probe_did_not_outlive_its_test() -> None:
    from awf_sim.dsl import registered_domains

    assert "ConftestProbe" not in registered_domains()
