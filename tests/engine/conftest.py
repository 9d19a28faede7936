from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from awf_sim import Simulator


@pytest.fixture
def make_sim() -> Iterator[Any]:
    """Build simulators that are closed after the test."""
    made: list[Simulator] = []

    def make(**kwargs: Any) -> Simulator:
        sim = Simulator(**kwargs)
        made.append(sim)
        return sim

    yield make
    for sim in made:
        sim.close()
