"""The modifier recorded mid-run (after `start()`, as a test that interacts with a waiting
instance does): it applies to the calls still to come, and `{"name", "index": k}` still means
the k-th call of the instance's lifetime, as Cloudflare counts steps."""

from __future__ import annotations

from typing import Any

import pytest

from awf_sim import Domain, Workflow
from awf_sim.testing import UnmatchedSelector, create_test_workflow

SENT: list[str] = []


async def send(person: Any, args: Any, ctx: Any) -> dict[str, Any]:
    SENT.append(args["subject"])
    return {"sent": args["subject"]}


MrMail = Domain("MrMail", {"send": send})


@Workflow("mr-onboarding")
async def onboarding(wf: Any, person: Any) -> Any:
    first = await wf.MrMail(person).send(subject="welcome")
    decision = await wf.wait_for("decide", type="decision", timeout="1 day")
    second = await wf.MrMail(person).send(subject="decided")
    await wf.sleep("grace", "3 days")
    third = await wf.MrMail(person).send(subject="follow-up")
    return [first, decision, second, third]


@pytest.fixture(autouse=True)
def _clear() -> None:
    SENT.clear()


def test_an_index_recorded_mid_run_counts_from_the_lifetime_start() -> None:
    wf = create_test_workflow(onboarding)
    wf.start({"email": "a@b.c"})
    wf.wait_for_status("waiting")
    # Call 2 is the first call after this point; it used to count as call 1, so index 2 hit
    # the third email (or nothing, failing the run as a typo).
    wf.modifier.mock_step_result({"name": "MrMail.send", "index": 2}, {"sent": "mocked"})
    wf.modifier.disable_sleeps()
    wf.send_event("decision", {"ok": True})
    assert wf.run() == [
        {"sent": "welcome"},
        {"ok": True},
        {"sent": "mocked"},
        {"sent": "follow-up"},
    ]
    assert SENT == ["welcome", "follow-up"]
    assert wf.timeline[-1]["at_ms"] == 0  # the sleep recorded mid-run was disabled too


def test_a_selector_whose_call_came_before_it_says_so() -> None:
    wf = create_test_workflow(onboarding)
    wf.start({"email": "a@b.c"})
    wf.wait_for_status("waiting")
    wf.modifier.mock_step_result({"name": "MrMail.send", "index": 1}, {"sent": "late"})
    wf.send_event("decision", {"ok": True})
    with pytest.raises(UnmatchedSelector) as failed:
        wf.run()
    assert failed.value.warnings == [
        "mock_step_result({'name': 'MrMail.send', 'index': 1}) matched no step of this run "
        "(call 1 of 'MrMail.send' was made before the modifier call recorded it: "
        "record it before start())"
    ]


def test_a_plain_selector_whose_calls_all_came_before_it_says_so() -> None:
    wf = create_test_workflow(onboarding)
    wf.start({"email": "a@b.c"})
    wf.wait_for_status("waiting")
    wf.send_event("decision", {"ok": True})
    wf.wait_for_step_result({"name": "MrMail.send", "index": 2})
    wf.modifier.force_event_timeout("decide")
    with pytest.raises(UnmatchedSelector) as failed:
        wf.run()
    assert failed.value.warnings == [
        "force_event_timeout('decide') matched no event wait of this run ('decide' was "
        "called only before the modifier call recorded it: record it before start())"
    ]
