"""A failing test workflow's timeline shows each entry's exact virtual time.

Times were cut to their two largest units: after a 14-day sleep, a retry 90 s later showed as
"14 d 1 min" (it was at 14 d 1 min 30 s), so retry gaps and timeouts read wrong exactly where a
test's failure is read to find out what happened."""

from __future__ import annotations

from typing import Any

import pytest

from awf_sim import Domain, Workflow
from awf_sim.testing import WorkflowFailed, create_test_workflow, format_timeline


async def charge(account: Any, args: Any, ctx: Any) -> dict[str, Any]:
    return {"charged": True}


TimesPay = Domain(
    "TimesPay",
    {
        "charge": {
            "handler": charge,
            "retries": {"limit": 2, "delay": "90 seconds", "backoff": "constant"},
        }
    },
)


@Workflow("timeline-times", domains=[TimesPay])
async def renew(wf: Any, account: Any) -> Any:
    await wf.sleep("trial", "14 days")
    return await wf.TimesPay(account).charge()


def test_times_past_two_units_are_shown_exactly() -> None:
    wf = create_test_workflow(renew)
    wf.modifier.mock_step_error("TimesPay.charge", "gateway down")
    with pytest.raises(WorkflowFailed) as failed:
        wf.run({"id": "acc-1"})
    wf.close()
    starts = [
        line.split("attempt-start")[0].strip()
        for line in format_timeline(failed.value.timeline).splitlines()
        if "attempt-start" in line
    ]
    assert starts == ["14 d", "14 d 1 min 30 s", "14 d 3 min"]
    assert "14 d 1 min 30 s attempt-start    TimesPay.charge" in str(failed.value)
    assert "(retry in 1 min 30 s)" in str(failed.value)
