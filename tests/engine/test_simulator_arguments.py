"""What the Simulator's own methods are given wrong gets one line that names the fix."""

from __future__ import annotations

import pytest

from awf_sim import DefinitionError, Simulator


def test_run_until_done_names_what_it_takes_when_given_an_id() -> None:
    with Simulator() as sim, pytest.raises(DefinitionError, match=r"sim\.instance\(id\)"):
        sim.run_until_done("some-id")  # type: ignore[arg-type]
