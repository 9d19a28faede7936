"""Chaos tests: flow files are loaded in-process, so each test leaves the registries as it
found them (the two order examples define the same Domain names in different files)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from awf_sim.flow import FlowFile, load_flow

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


@pytest.fixture(autouse=True)
def _isolated_registries(flow_registry: None) -> None:
    """Every chaos test gets the repository conftest's flow_registry."""


def _load_example(name: str) -> FlowFile:
    # The examples define the same Domain names in different files; each flow's workflows
    # resolve their own (DESIGN §2), so loading one after another needs no warning filter.
    return load_flow(EXAMPLES / name)


@pytest.fixture
def load_example() -> Callable[[str], FlowFile]:
    return _load_example


@pytest.fixture
def order() -> FlowFile:
    return _load_example("order_processing.py")


@pytest.fixture
def order_fixed() -> FlowFile:
    return _load_example("order_processing_fixed.py")
