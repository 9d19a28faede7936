"""Every example that is not broken on purpose passes chaos, through the command users run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from awf_sim.cli import app

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
BROKEN_ON_PURPOSE = {"order_processing.py", "nondeterministic.py"}
# The examples define the same Domain names in different files (order_processing and its
# fixed version), and other tests load them into this process too: replacing one with the
# other is expected here, so its warning is.
REDEFINITION_EXPECTED = pytest.mark.filterwarnings(
    "ignore:Domain '.*' defined at .* replaces the one defined at:UserWarning"
)
pytestmark = REDEFINITION_EXPECTED
CLEAN = sorted(p.name for p in EXAMPLES.glob("*.py") if p.name not in BROKEN_ON_PURPOSE)


def test_every_example_is_accounted_for() -> None:
    assert CLEAN == [
        "expense_approval.py",
        "onboarding.py",
        "order_processing_fixed.py",
        "order_processing_typed.py",
        "payment.py",
        "roadmap.py",
        "sprint_cycle.py",
        "stateful.py",
        "weekly_report.py",
    ]


@pytest.mark.parametrize("name", CLEAN)
def test_example_is_clean_under_chaos(name: str) -> None:
    result = CliRunner().invoke(
        app, ["chaos", str(EXAMPLES / name), "--runs", "40", "--json"], catch_exceptions=False
    )
    report = json.loads(result.stdout)
    problems = [
        (w["workflow"], v["invariant"], v["plan_text"])
        for w in report["workflows"]
        for v in w["violations"]
    ]
    assert result.exit_code == 0, problems
    for w in report["workflows"]:
        assert w["baseline"]["status"] == "complete", (w["workflow"], w["baseline"])
