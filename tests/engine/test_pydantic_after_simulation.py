"""A pydantic model with date/datetime fields, defined after the first simulation, works.

The simulator fakes the clock with freezegun, which leaves `datetime.datetime` and
`datetime.date` its own classes for the rest of the process. A model defined later (a typed
workflow's output, awf_deploy's Cloudflare models imported late) saw FakeDatetime and
pydantic refused to build its schema. Runs in a fresh interpreter: the order is the point.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

SCRIPT = textwrap.dedent(
    """
    import datetime
    from typer.testing import CliRunner
    from awf_sim.cli import app

    # The order a test session meets: a command that simulates (the first simulation of
    # the process starts the fake clock), then models with datetime fields defined later.
    scenario = "tests/conformance/scenarios/retry-linear-backoff.json"
    assert CliRunner().invoke(app, ["conformance", scenario]).exit_code == 0
    assert datetime.datetime.__name__ == "FakeDatetime"  # the premise: freezegun stays

    import awf_deploy  # its Cloudflare and Worker API models have datetime fields
    from pydantic import BaseModel

    class Event(BaseModel):
        at: datetime.datetime | None
        day: datetime.date | None = None

    e = Event.model_validate({"at": "2026-01-02T03:04:05Z", "day": "2026-01-02"})
    assert (e.at.year, e.at.hour, e.day.day) == (2026, 3, 2)
    assert Event.model_validate_json(e.model_dump_json()) == e
    print("ok")
    """
)


def test_a_model_defined_after_a_simulation_validates_dates() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == "ok"
