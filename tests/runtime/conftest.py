"""One real runtime (Pyodide + Miniflare, awf_deploy/harness) for the whole test session.

Outside CI the real-runtime tests are skipped when the harness's npm packages are missing; under
CI (CI=true) they always run, so a broken install fails instead of passing quietly.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from awf_deploy._harness import HARNESS_DIR, RealRuntime, install_hint


def _under_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


@pytest.fixture(scope="session")
def real_runtime() -> Iterator[RealRuntime]:
    if not _under_ci() and not (HARNESS_DIR / "node_modules" / "pyodide").is_dir():
        pytest.skip(f"the real-runtime harness is not installed: run `{install_hint()}`")
    with RealRuntime(timeout=90) as runtime:
        yield runtime


@pytest.fixture
def flow_registry() -> Iterator[None]:
    """The DSL's registries put back after the test: examples define Domains of the same name."""
    from awf_sim.dsl import isolated_registries

    with isolated_registries():
        yield
