"""Repository-level pytest configuration (DESIGN §1): the fixtures that tests/ and examples/
share, defined once here instead of copied into each folder's conftest.

- `flow_registry`: the DSL's process-wide Domain and Workflow registries put back as they were
  after the test, for tests that load flow files (the examples define Domains of the same
  names in different files; each workflow resolves its own, but the registries still list
  what a test loaded);
- `under_ci`: True when CI is set (CI=true): tests that need npm packages then fail instead of
  skipping, so a broken install cannot pass quietly;
- `within`: a deadline for a block, for tests of bounds that must not hang;
- `real_runtime_installed`, `miniflare_installed`: skip the test unless the real-runtime
  harness (awf_deploy/harness) or Miniflare (tests/conformance) is installed, or under CI.

awf is imported inside the fixtures, so collecting a test that uses none of them costs nothing.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

import pytest


def _under_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


@pytest.fixture(scope="session")
def under_ci() -> bool:
    """True under CI (CI=true): missing npm packages are a failure there, not a skip."""
    return _under_ci()


@pytest.fixture
def flow_registry() -> Iterator[None]:
    """Put the DSL's Domain and Workflow registries back after the test."""
    from awf_sim.dsl import isolated_registries

    with isolated_registries():
        yield


@pytest.fixture(scope="session")
def real_runtime_installed(under_ci: bool) -> None:
    """Skip unless awf_deploy/harness's npm packages (Pyodide, Miniflare) are installed."""
    from awf_deploy._harness import HARNESS_DIR, install_hint

    if not under_ci and not (HARNESS_DIR / "node_modules" / "pyodide").is_dir():
        pytest.skip(f"the real-runtime harness is not installed: run `{install_hint()}`")


@pytest.fixture(scope="session")
def miniflare_installed(under_ci: bool) -> None:
    """Skip unless tests/conformance's npm packages (Miniflare) are installed."""
    from awf_sim.conformance import driver_dir

    if not under_ci and not (driver_dir() / "node_modules" / "miniflare").is_dir():
        pytest.skip("Miniflare is not installed: run `npm ci` in tests/conformance")


@pytest.fixture
def within() -> Callable[[int], AbstractContextManager[None]]:
    """`with within(30): ...` fails the test with TimeoutError if the block is still running
    after that many seconds, so a test of a bound (a CPU budget, virtual time) cannot hang."""

    @contextmanager
    def bounded(seconds: int) -> Iterator[None]:
        def expire(*_: object) -> None:
            raise TimeoutError(f"still running after {seconds} s")

        previous = signal.signal(signal.SIGALRM, expire)
        signal.alarm(seconds)
        try:
            yield
        finally:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, previous)

    return bounded
