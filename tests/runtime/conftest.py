"""One real runtime (Pyodide + Miniflare, awf_deploy/harness) for the whole test session.

Outside CI the real-runtime tests are skipped when the harness's npm packages are missing; under
CI (CI=true) they always run, so a broken install fails instead of passing quietly.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from awf_deploy._harness import RealRuntime


@pytest.fixture(scope="session")
def real_runtime(real_runtime_installed: None) -> Iterator[RealRuntime]:
    # real_runtime_installed and flow_registry come from the repository's conftest.py.
    with RealRuntime(timeout=90) as runtime:
        yield runtime
