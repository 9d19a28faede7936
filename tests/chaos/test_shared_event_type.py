"""Several waits on one event type: what event faults do to them is reported as it is.

Three `go` events feed waits a, b and c (c with a 1-hour timeout). event-late holds the first
`go` until just before a's 24-hour timeout; a and b take the other two and c times out: the
event came too late for the wait that ends up needing it, a withheld event by design, not
"the outcome differs" with a hint about clocks and module state. event-duplicate sends the
first `go` twice: every later wait takes the wrong one, which is one bug (events-delivered),
with the changed outcome as its consequence, not a second violation.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from awf_sim.cli import app

FLOW = """
from awf_sim import Workflow


@Workflow(
    "shared-go",
    examples=[{"x": 1}],
    events=[
        {"type": "go", "payload": 1},
        {"type": "go", "payload": 2},
        {"type": "go", "payload": 3, "after": "5 minutes"},
    ],
)
async def shared_go(wf, p):
    await wf.sleep("first", "1 minute")
    a = await wf.wait_for("a", type="go")
    b = await wf.wait_for("b", type="go")
    c = await wf.wait_for("c", type="go", timeout="1 hour")
    return [a, b, c]
"""


def _chaos(tmp_path: Path, kinds: str) -> tuple[int, dict[str, Any]]:
    flow = tmp_path / "shared_go.py"
    flow.write_text(FLOW, encoding="utf-8")
    result = CliRunner().invoke(
        app, ["chaos", str(flow), "--faults", kinds, "--runs", "20", "--json"]
    )
    (workflow,) = json.loads(result.stdout)["workflows"]
    return result.exit_code, workflow


def test_a_late_event_that_another_wait_needed_is_no_outcome_violation(tmp_path: Path) -> None:
    code, workflow = _chaos(tmp_path, "event-late")
    assert workflow["violations"] == []
    assert code == 0


def test_a_duplicated_event_is_one_violation_with_the_outcome_as_its_consequence(
    tmp_path: Path,
) -> None:
    code, workflow = _chaos(tmp_path, "event-duplicate")
    assert code == 1
    (finding,) = workflow["violations"]
    assert (finding["invariant"], finding["key"]) == ("events-delivered", "go")
    assert [r["invariant"] for r in finding["related"]] == ["replay-equivalence"]
