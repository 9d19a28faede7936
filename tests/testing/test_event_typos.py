"""A test that sends an event no wait of the run is for fails, as a mistyped selector does.

`wf.modifier.mock_event("card_added", ...)` for a workflow waiting on "card-added" left the
event buffered and the wait timing out: the test failed on its own assertion (or passed, if it
asserted nothing about the branch) with nothing pointing at the typo. Now the run fails with
`UnmatchedSelector` and a did-you-mean, as for a step selector; `strict=False` allows it.

A selector that names a call of another kind (a sleep given to mock_step_result, a wait's
event type given to force_event_timeout) says so, instead of listing the calls of its kind."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from awf_sim import Domain, StepError, Workflow
from awf_sim.testing import TestWorkflow, UnmatchedSelector, WorkflowFailed, create_test_workflow


async def activate(account: Any, args: Any, ctx: Any) -> dict[str, Any]:
    return {"active": account["id"], "card": args["card"]}


EvAccounts = Domain("EvAccounts", {"activate": activate})


@Workflow("event-typos", domains=[EvAccounts])
async def signup(wf: Any, account: Any) -> dict[str, Any]:
    try:
        card = await wf.wait_for("card", type="card-added", timeout="3 days")
    except StepError:
        return {"status": "cancelled"}
    return await wf.EvAccounts(account).activate(card=card["card"])


@Workflow("event-typos-uncaught", domains=[EvAccounts])
async def strict_signup(wf: Any, account: Any) -> dict[str, Any]:
    card = await wf.wait_for("card", type="card-added", timeout="3 days")
    return await wf.EvAccounts(account).activate(card=card["card"])


@Workflow("event-typos-no-wait", domains=[EvAccounts])
async def no_wait(wf: Any, account: Any) -> dict[str, Any]:
    return await wf.EvAccounts(account).activate(card="none")


@Workflow("event-typos-napping", domains=[EvAccounts])
async def napping_signup(wf: Any, account: Any) -> dict[str, Any]:
    await wf.sleep("nap", "1 hour")
    card = await wf.wait_for("card", type="card-added", timeout="3 days")
    return await wf.EvAccounts(account).activate(card=card["card"])


ACCOUNT = {"id": "acc-1"}


@pytest.fixture
def make() -> Iterator[Callable[..., TestWorkflow]]:
    made: list[TestWorkflow] = []

    def factory(workflow: Any, **kwargs: Any) -> TestWorkflow:
        made.append(create_test_workflow(workflow, **kwargs))
        return made[-1]

    yield factory
    for wf in made:
        wf.close()


def test_a_mistyped_mock_event_fails_the_run_with_a_did_you_mean(make: Any) -> None:
    wf = make(signup)
    wf.modifier.mock_event("card_added", {"card": "tok_visa"})
    with pytest.raises(UnmatchedSelector) as info:
        wf.run(ACCOUNT)
    assert wf.output == {"status": "cancelled"}  # the wait timed out: the event never reached it
    assert info.value.warnings == [
        "mock_event('card_added') matched no event wait of this run (did you mean 'card-added'?)"
    ]
    assert "strict=False" in str(info.value)


def test_a_mistyped_send_event_fails_too_before_or_during_the_run(make: Any) -> None:
    before = make(signup)
    before.send_event("card_added", {"card": "tok_visa"})
    with pytest.raises(UnmatchedSelector, match=r"send_event\('card_added'\) matched no event"):
        before.run(ACCOUNT)

    during = make(signup)
    during.start(ACCOUNT)
    during.wait_for_status("waiting")
    during.send_event("cardadded", {"card": "tok_visa"})
    with pytest.raises(UnmatchedSelector) as info:
        during.run()
    assert info.value.warnings == [
        "send_event('cardadded') matched no event wait of this run (did you mean 'card-added'?)"
    ]


def test_the_waits_name_for_its_type_is_explained(make: Any) -> None:
    wf = make(signup)
    wf.modifier.mockEvent({"type": "card", "payload": {"card": "tok_visa"}})
    with pytest.raises(UnmatchedSelector) as info:
        wf.run(ACCOUNT)
    assert info.value.warnings == [
        "mock_event('card') matched no event wait of this run ('card' is the name of an event "
        "wait; an event reaches a wait by its type: 'card-added')"
    ]


def test_an_event_for_a_workflow_that_waits_for_nothing(make: Any) -> None:
    wf = make(no_wait)
    wf.modifier.mock_event("card-added", {"card": "tok_visa"})
    with pytest.raises(UnmatchedSelector, match=r"\(no event wait was called\)"):
        wf.run(ACCOUNT)


def test_an_errored_run_lists_the_event_beside_its_error(make: Any) -> None:
    wf = make(strict_signup)
    wf.modifier.mock_event("card_added", {"card": "tok_visa"})
    with pytest.raises(WorkflowFailed) as info:
        wf.run(ACCOUNT)
    assert info.value.warnings == [
        "mock_event('card_added') matched no event wait of this run (did you mean 'card-added'?)"
    ]
    assert "warning: mock_event('card_added') matched no event wait" in str(info.value)


def test_events_that_reached_their_wait_pass(make: Any) -> None:
    wf = make(signup)
    wf.modifier.mock_event("card-added", {"card": "tok_visa"})
    assert wf.run(ACCOUNT) == {"active": "acc-1", "card": "tok_visa"}
    assert wf.warnings == []

    mid = make(signup)
    mid.start(ACCOUNT)
    mid.wait_for_status("waiting")
    mid.send_event("card-added", {"card": "tok_amex"})
    assert mid.run()["card"] == "tok_amex"
    assert mid.warnings == []


def test_strict_false_allows_an_event_nothing_waits_for(make: Any) -> None:
    wf = make(signup, strict=False)
    wf.send_event("ignored", {"x": 1})
    assert wf.run(ACCOUNT) == {"status": "cancelled"}
    assert wf.warnings == [
        "send_event('ignored') matched no event wait of this run (its waits were for: 'card-added')"
    ]


@pytest.mark.parametrize(
    ("call", "warning"),
    [
        (
            lambda m: m.mock_step_result("nap", 1),
            "mock_step_result('nap') matched no step of this run ('nap' is a sleep, not a step)",
        ),
        (
            lambda m: m.disable_sleeps("EvAccounts.activate"),
            "disable_sleeps('EvAccounts.activate') matched no sleep of this run "
            "('EvAccounts.activate' is a step, not a sleep)",
        ),
        (
            lambda m: m.disable_sleeps("card"),
            "disable_sleeps('card') matched no sleep of this run ('card' is an event wait, not a "
            "sleep)",
        ),
        (
            lambda m: m.force_event_timeout("card-added"),
            "force_event_timeout('card-added') matched no event wait of this run ('card-added' is "
            "the event type of the wait 'card'; a wait is selected by its name)",
        ),
    ],
    ids=["sleep-as-step", "step-as-sleep", "wait-as-sleep", "type-as-wait-name"],
)
def test_a_selector_that_names_a_call_of_another_kind_says_so(
    make: Any, call: Callable[[Any], None], warning: str
) -> None:
    wf = make(napping_signup)
    wf.modifier.mock_event("card-added", {"card": "tok_visa"})
    call(wf.modifier)
    with pytest.raises(UnmatchedSelector) as info:
        wf.run(ACCOUNT)
    assert info.value.warnings == [warning]
