"""wf.modifier follows Cloudflare's test modifier (SEMANTICS §5; workers-sdk modifier.ts)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from awf_sim import (
    DefinitionError,
    Domain,
    NonRetryableError,
    SerializationError,
    Simulator,
    StepError,
    Workflow,
)
from awf_sim.engine._hooks import Crash, Hooks, StepRef
from awf_sim.testing import (
    Modifier,
    ModifierError,
    TestWorkflow,
    UnmatchedSelector,
    WorkflowFailed,
    create_test_workflow,
)

RUNS: Counter[str] = Counter()
ATTEMPTS: list[int] = []


@pytest.fixture(autouse=True)
def _reset() -> None:
    RUNS.clear()
    ATTEMPTS.clear()


async def charge(order: Any, args: Any, ctx: Any) -> dict[str, Any]:
    RUNS["charge"] += 1
    ATTEMPTS.append(ctx.attempt)
    return {"charged": args["amount"], "attempt": ctx.attempt}


async def send(customer: Any, args: Any, ctx: Any) -> dict[str, Any]:
    RUNS["send"] += 1
    return {"sent": customer["email"], "n": args["n"]}


async def refund(order: Any, args: Any, ctx: Any) -> dict[str, Any]:
    RUNS["refund"] += 1
    return {"refunded": True}


ModPay = Domain(
    "ModPay",
    {
        "charge": {
            "handler": charge,
            "retries": {"limit": 3, "delay": "1 second", "backoff": "constant"},
        },
        "refund": {
            "handler": refund,
            "retries": {"limit": 1, "delay": "5 seconds", "backoff": "constant"},
        },
    },
)
ModMail = Domain("ModMail", {"send": send})


def _caught(exc: Exception) -> dict[str, Any]:
    return {
        "type": type(exc).__name__,
        "name": getattr(exc, "name", None),
        "message": getattr(exc, "message", str(exc)),
    }


async def checkout_fn(wf: Any, order: Any) -> Any:
    try:
        return await wf.ModPay(order).charge(amount=order.get("amount", 10))
    except (StepError, NonRetryableError) as exc:
        return {"error": _caught(exc)}


async def two_steps_fn(wf: Any, order: Any) -> Any:
    charged = await wf.ModPay(order).charge(amount=1)
    refunded = await wf.ModPay(order).refund()
    return [charged, refunded]


async def mails_fn(wf: Any, params: Any) -> Any:
    out = []
    for n in range(1, 4):
        out.append(await wf.ModMail({"email": f"u{n}@example.com"}).send(n=n))
    out.append(await wf.do("raw step", lambda: {"raw": True}))
    return out


async def sleepy_fn(wf: Any, params: Any) -> Any:
    for _ in range(3):
        await wf.sleep("nap", "1 hour")
    await wf.sleep("rest", "1 day")
    return "rested"


async def approval_fn(wf: Any, params: Any) -> Any:
    try:
        first = await wf.wait_for("await-approval", type="approval", timeout="1 hour")
    except StepError as exc:
        return {"error": _caught(exc)}
    second = await wf.wait_for("await-second", type="approval", timeout="1 hour")
    return [first, second]


CHECKOUT = Workflow("mod-checkout", checkout_fn, domains=[ModPay])
TWO_STEPS = Workflow("mod-two-steps", two_steps_fn, domains=[ModPay])
MAILS = Workflow("mod-mails", mails_fn, domains=[ModMail])
SLEEPY = Workflow("mod-sleepy", sleepy_fn)
APPROVAL = Workflow("mod-approval", approval_fn)


@pytest.fixture
def make() -> Iterator[Any]:
    made: list[TestWorkflow] = []

    def factory(workflow: Workflow, **kwargs: Any) -> TestWorkflow:
        wf = create_test_workflow(workflow, **kwargs)
        made.append(wf)
        return wf

    yield factory
    for wf in made:
        wf.close()


def kinds(wf: TestWorkflow, path: str) -> list[tuple[str, int | None]]:
    return [(e["kind"], e["attempt"]) for e in wf.timeline if e["path"] == path]


def failures(wf: TestWorkflow, path: str) -> list[tuple[int, str, str]]:
    return [
        (e["attempt"], e["error"]["name"], e["error"]["message"])
        for e in wf.timeline
        if e["path"] == path and e["kind"] == "attempt-failure"
    ]


def attempt_starts(wf: TestWorkflow, path: str) -> list[int]:
    return [e["at_ms"] for e in wf.timeline if e["path"] == path and e["kind"] == "attempt-start"]


# -- mock_step_result -------------------------------------------------------------------------


def test_mocked_step_skips_the_handler_but_keeps_its_attempt_and_checkpoint(make: Any) -> None:
    wf = make(CHECKOUT)
    wf.modifier.mock_step_result("ModPay.charge", {"charged": 99, "mocked": True})
    assert wf.run({"id": "o-1"}) == {"charged": 99, "mocked": True}
    assert RUNS["charge"] == 0
    assert kinds(wf, "ModPay.charge") == [
        ("step-start", None),
        ("attempt-start", 1),
        ("attempt-success", 1),
        ("checkpoint", 1),
    ]
    assert wf.steps == ["ModPay.charge"]


def test_a_mocked_value_is_a_json_round_trip_taken_when_mocked(make: Any) -> None:
    wf = make(CHECKOUT)
    value: dict[str, Any] = {"pair": (1, 2), "nested": {"k": "v"}}
    wf.modifier.mock_step_result("ModPay.charge", value)
    value["nested"]["k"] = "changed later"
    assert wf.run({"id": "o-1"}) == {"pair": [1, 2], "nested": {"k": "v"}}


def test_a_mocked_value_that_is_not_json_is_refused_when_mocked(make: Any) -> None:
    wf = make(CHECKOUT)
    with pytest.raises(SerializationError, match="mock_step_result"):
        wf.modifier.mock_step_result("ModPay.charge", {"ids": {1, 2}})


@pytest.mark.parametrize(
    ("first", "second", "output"),
    [
        ("ModPay.charge", "ModPay.charge", 1),
        ({"name": "ModPay.charge"}, {"name": "ModPay.charge", "index": 1}, 1),
        (
            {"name": "ModPay.charge", "index": 2},
            {"name": "ModPay.charge", "index": 2},
            {"charged": 10, "attempt": 1},  # there is no second charge
        ),
    ],
)
def test_mocking_the_same_step_twice_is_an_error(
    make: Any, first: Any, second: Any, output: Any
) -> None:
    wf = make(CHECKOUT, strict=False)  # the last case's selector matches no call, on purpose
    wf.modifier.mock_step_result(first, 1)
    with pytest.raises(ModifierError) as info:
        wf.modifier.mock_step_result(second, 2)
    assert str(info.value) == (
        "[WorkflowIntrospector] Trying to mock step 'ModPay.charge' multiple times!"
    )
    assert wf.run({"id": "o-1"}) == output  # the refused call changed nothing


def test_mock_error_after_mock_result_is_an_error(make: Any) -> None:
    wf = make(CHECKOUT)
    wf.modifier.mock_step_result("ModPay.charge", 1)
    with pytest.raises(ModifierError) as info:
        wf.modifier.mock_step_error("ModPay.charge", RuntimeError("boom"), times=1)
    assert str(info.value) == (
        "[WorkflowIntrospector] Trying to mock error on step 'ModPay.charge' after mocking "
        "its result!"
    )
    with pytest.raises(ModifierError) as info:
        wf.modifier.force_step_timeout("ModPay.charge")
    assert str(info.value) == (
        "[WorkflowIntrospector] Trying to force timeout on step 'ModPay.charge' after mocking "
        "its result!"
    )
    assert wf.run({"id": "o-1"}) == 1  # the refused calls changed nothing


# -- mock_step_error and force_step_timeout ----------------------------------------------------


def test_mock_error_without_times_fails_every_attempt(make: Any) -> None:
    wf = make(CHECKOUT)
    wf.modifier.disable_retry_delays()
    wf.modifier.mock_step_error("ModPay.charge", ValueError("card declined"))
    out = wf.run({"id": "o-1"})
    assert out == {"error": {"type": "StepError", "name": "ValueError", "message": "card declined"}}
    assert RUNS["charge"] == 0
    # limit 3 retries: 4 attempts
    assert failures(wf, "ModPay.charge") == [
        (n, "ValueError", "card declined") for n in (1, 2, 3, 4)
    ]
    assert kinds(wf, "ModPay.charge")[-1] == ("step-failure", 4)


def test_fail_n_times_then_succeed(make: Any) -> None:
    wf = make(CHECKOUT)
    wf.modifier.disable_retry_delays()
    wf.modifier.mock_step_error("ModPay.charge", RuntimeError("flaky"), times=2)
    wf.modifier.mock_step_result("ModPay.charge", {"charged": "mocked"})
    assert wf.run({"id": "o-1"}) == {"charged": "mocked"}
    assert RUNS["charge"] == 0
    assert failures(wf, "ModPay.charge") == [
        (1, "RuntimeError", "flaky"),
        (2, "RuntimeError", "flaky"),
    ]
    assert ("checkpoint", 3) in kinds(wf, "ModPay.charge")


def test_fail_n_times_then_the_real_handler_runs(make: Any) -> None:
    wf = make(CHECKOUT)
    wf.modifier.disable_retry_delays()
    wf.modifier.mock_step_error("ModPay.charge", RuntimeError("flaky"), times=2)
    assert wf.run({"id": "o-1", "amount": 5}) == {"charged": 5, "attempt": 3}
    assert ATTEMPTS == [3]


def test_times_counts_attempts_on_a_counter_shared_with_force_step_timeout(make: Any) -> None:
    wf = make(CHECKOUT)
    wf.modifier.disable_retry_delays()
    wf.modifier.mock_step_error("ModPay.charge", RuntimeError("first"), times=1)
    wf.modifier.force_step_timeout("ModPay.charge", times=2)
    wf.modifier.mock_step_error("ModPay.charge", RuntimeError("fourth"), times=1)
    out = wf.run({"id": "o-1"})
    assert failures(wf, "ModPay.charge") == [
        (1, "RuntimeError", "first"),
        (2, "WorkflowTimeoutError", "Execution timed out after 0ms"),
        (3, "WorkflowTimeoutError", "Execution timed out after 0ms"),
        (4, "RuntimeError", "fourth"),
    ]
    assert out["error"]["message"] == "fourth"


def test_force_step_timeout_still_starts_the_handler_and_ignores_its_result(make: Any) -> None:
    wf = make(CHECKOUT)
    wf.modifier.disable_retry_delays()
    wf.modifier.force_step_timeout("ModPay.charge", times=1)
    assert wf.run({"id": "o-1", "amount": 3}) == {"charged": 3, "attempt": 2}
    assert ATTEMPTS == [1, 2]  # attempt 1's handler ran; its result was ignored
    assert failures(wf, "ModPay.charge") == [
        (1, "WorkflowTimeoutError", "Execution timed out after 0ms")
    ]


def test_force_step_timeout_without_times_times_out_every_attempt(make: Any) -> None:
    wf = make(CHECKOUT)
    wf.modifier.disable_retry_delays()
    wf.modifier.force_step_timeout("ModPay.charge")
    out = wf.run({"id": "o-1"})
    assert out["error"]["name"] == "WorkflowTimeoutError"
    assert len(failures(wf, "ModPay.charge")) == 4


def test_a_mocked_error_is_checked_before_a_mocked_result(make: Any) -> None:
    wf = make(CHECKOUT)
    wf.modifier.disable_retry_delays()
    wf.modifier.mock_step_error("ModPay.charge", RuntimeError("always"))
    wf.modifier.mock_step_result("ModPay.charge", {"never": True})
    assert wf.run({"id": "o-1"})["error"]["message"] == "always"


def test_a_mocked_non_retryable_error_is_not_retried(make: Any) -> None:
    wf = make(CHECKOUT)
    wf.modifier.mock_step_error("ModPay.charge", NonRetryableError("card stolen"))
    out = wf.run({"id": "o-1"})
    assert out == {
        "error": {
            "type": "NonRetryableError",
            "name": "NonRetryableError",
            "message": "card stolen",
        }
    }
    assert failures(wf, "ModPay.charge") == [(1, "NonRetryableError", "card stolen")]


@pytest.mark.parametrize(
    ("error", "name", "message"),
    [
        ("Card declined", "Error", "Card declined"),
        (KeyError, "KeyError", ""),
        (StepError("gone", "GatewayError"), "GatewayError", "gone"),
        ({"name": "TypeError", "message": "bad"}, "TypeError", "bad"),
    ],
)
def test_a_mocked_error_keeps_its_name_and_message(
    make: Any, error: Any, name: str, message: str
) -> None:
    wf = make(CHECKOUT)
    wf.modifier.disable_retry_delays()
    wf.modifier.mock_step_error("ModPay.charge", error, times=1)
    wf.modifier.mock_step_result("ModPay.charge", "ok")
    assert wf.run({"id": "o-1"}) == "ok"
    assert failures(wf, "ModPay.charge") == [(1, name, message)]


@pytest.mark.parametrize("times", [0, -1, 1.5, True])
def test_times_must_be_a_positive_whole_number(make: Any, times: Any) -> None:
    wf = make(CHECKOUT)
    with pytest.raises(DefinitionError, match="times must be a positive whole number"):
        wf.modifier.mock_step_error("ModPay.charge", "x", times=times)
    with pytest.raises(DefinitionError, match="times must be a positive whole number"):
        wf.modifier.force_step_timeout("ModPay.charge", times=times)


# -- disable_retry_delays -------------------------------------------------------------------------


def test_retry_delays_apply_without_the_modifier(make: Any) -> None:
    wf = make(CHECKOUT)
    wf.modifier.mock_step_error("ModPay.charge", RuntimeError("x"), times=3)
    wf.run({"id": "o-1"})
    assert attempt_starts(wf, "ModPay.charge") == [0, 1000, 2000, 3000]


def test_disable_retry_delays_keeps_every_attempt_with_no_gap(make: Any) -> None:
    wf = make(CHECKOUT)
    wf.modifier.disable_retry_delays()
    wf.modifier.mock_step_error("ModPay.charge", RuntimeError("x"), times=3)
    assert wf.run({"id": "o-1", "amount": 2}) == {"charged": 2, "attempt": 4}
    assert attempt_starts(wf, "ModPay.charge") == [0, 0, 0, 0]
    retries = [e["retry_in_ms"] for e in wf.timeline if e["kind"] == "attempt-failure"]
    assert retries == [0, 0, 0]


def test_disable_retry_delays_for_selected_steps_only(make: Any) -> None:
    wf = make(TWO_STEPS)
    wf.modifier.disable_retry_delays(["ModPay.refund"])
    wf.modifier.mock_step_error("ModPay.charge", RuntimeError("x"), times=1)
    wf.modifier.mock_step_error("ModPay.refund", RuntimeError("y"), times=1)
    wf.run({"id": "o-1"})
    assert attempt_starts(wf, "ModPay.charge") == [0, 1000]
    assert attempt_starts(wf, "ModPay.refund") == [1000, 1000]  # 5 s delay disabled


# -- disable_sleeps ---------------------------------------------------------------------------


def sleep_durations(wf: TestWorkflow) -> list[tuple[str, int]]:
    return [(e["path"], e["duration_ms"]) for e in wf.timeline if e["kind"] == "sleep-start"]


HOUR, DAY = 3_600_000, 86_400_000


def test_sleeps_take_virtual_time_without_the_modifier(make: Any) -> None:
    wf = make(SLEEPY)
    assert wf.run() == "rested"
    assert wf.timeline[-1]["at_ms"] == 3 * HOUR + DAY


def test_disable_sleeps_resolves_every_sleep_at_once(make: Any) -> None:
    wf = make(SLEEPY)
    wf.modifier.disable_sleeps()
    assert wf.run() == "rested"
    assert wf.timeline[-1]["at_ms"] == 0
    assert [d for _, d in sleep_durations(wf)] == [0, 0, 0, 0]


def test_disable_sleeps_by_name(make: Any) -> None:
    wf = make(SLEEPY)
    wf.modifier.disable_sleeps(["rest"])
    wf.run()
    assert sleep_durations(wf) == [("nap", HOUR)] * 3 + [("rest", 0)]


def test_disable_sleeps_by_name_and_index(make: Any) -> None:
    wf = make(SLEEPY)
    wf.modifier.disableSleeps([{"name": "nap", "index": 2}, {"name": "rest"}])
    wf.run()
    assert sleep_durations(wf) == [("nap", HOUR), ("nap", 0), ("nap", HOUR), ("rest", 0)]


def test_disable_sleeps_with_an_empty_list_disables_none(make: Any) -> None:
    wf = make(SLEEPY)
    wf.modifier.disable_sleeps([])  # as on Cloudflare: a list, even empty, is a selection
    wf.run()
    assert wf.timeline[-1]["at_ms"] == 3 * HOUR + DAY


# -- events ------------------------------------------------------------------------------------


def test_force_event_timeout_times_out_the_wait_at_once(make: Any) -> None:
    wf = make(APPROVAL)
    wf.modifier.force_event_timeout("await-approval")
    out = wf.run()
    assert out["error"]["name"] == "WorkflowTimeoutError"
    assert out["error"]["type"] == "StepError"
    assert wf.timeline[-1]["at_ms"] == 0


def test_an_unanswered_wait_times_out_in_virtual_time(make: Any) -> None:
    wf = make(APPROVAL)
    out = wf.run()
    assert out["error"]["message"] == "Execution timed out after 3600000ms"
    assert wf.timeline[-1]["at_ms"] == HOUR


def test_mock_event_is_buffered_and_consumed_in_order_with_send_event(make: Any) -> None:
    wf = make(APPROVAL)
    wf.modifier.mock_event("approval", {"by": "ana"})
    wf.send_event("approval", {"by": "ben"})
    first, second = wf.run()
    assert (first["by"], second["by"]) == ("ana", "ben")
    assert wf.timeline[-1]["at_ms"] == 0


def test_mock_event_takes_cloudflares_dict_form(make: Any) -> None:
    wf = make(APPROVAL)
    wf.modifier.mockEvent({"type": "approval", "payload": {"by": "cy"}})
    wf.modifier.mock_event("approval", {"by": "di"})
    assert [e["by"] for e in wf.run()] == ["cy", "di"]


def test_mock_event_refuses_a_payload_that_is_not_json(make: Any) -> None:
    wf = make(APPROVAL)
    with pytest.raises(SerializationError):
        wf.modifier.mock_event("approval", {"at": object()})


# -- selectors -----------------------------------------------------------------------------------


def mail_outputs(out: Any) -> list[Any]:
    return list(out[:3])


def test_an_index_selector_picks_the_kth_call_whatever_its_args(make: Any) -> None:
    wf = make(MAILS)
    wf.modifier.mock_step_result({"name": "ModMail.send", "index": 2}, {"mocked": 2})
    out = wf.run()
    assert mail_outputs(out) == [
        {"sent": "u1@example.com", "n": 1},
        {"mocked": 2},
        {"sent": "u3@example.com", "n": 3},
    ]
    assert RUNS["send"] == 2
    assert wf.steps == ["ModMail.send", "raw step"]


def test_a_dotted_path_selects_every_call(make: Any) -> None:
    wf = make(MAILS)
    wf.modifier.mock_step_result("ModMail.send", {"mocked": True})
    assert mail_outputs(wf.run()) == [{"mocked": True}] * 3
    assert RUNS["send"] == 0


@pytest.mark.parametrize("glob", ["ModMail.*", "*.send", "Mod*l.se?d"])
def test_a_glob_selects_by_path(make: Any, glob: str) -> None:
    wf = make(MAILS)
    wf.modifier.mock_step_result(glob, {"mocked": True})
    out = wf.run()
    assert mail_outputs(out) == [{"mocked": True}] * 3
    assert out[3] == {"raw": True}


def test_a_raw_step_name_selects_that_step(make: Any) -> None:
    first = make(MAILS)
    first.run()
    names = [e["name"] for e in first.timeline if e["kind"] == "step-start"]
    assert names[0].startswith("ModMail.send@")
    wf = make(MAILS)
    wf.modifier.mock_step_result(names[2], {"third": True})
    wf.modifier.mock_step_result("raw step", {"raw": "mocked"})
    out = wf.run()
    assert out[2] == {"third": True}
    assert out[3] == {"raw": "mocked"}
    assert RUNS["send"] == 3 + 2


def test_the_most_specific_selector_wins(make: Any) -> None:
    wf = make(MAILS)
    wf.modifier.mock_step_result("ModMail.*", "glob")
    wf.modifier.mock_step_result("ModMail.send", "path")
    wf.modifier.mock_step_result({"name": "ModMail.*", "index": 3}, "third")
    assert mail_outputs(wf.run()) == ["path", "path", "third"]


class CrashAfterCheckpoint(Hooks):
    """Crash once, right after the checkpoint of the given (path, count-in-lifetime) call."""

    def __init__(self, path: str, nth: int) -> None:
        self.path, self.nth = path, nth
        self.seen = 0
        self.fired = False
        self.lifetimes: list[str] = []

    def lifetime_start(self, sim: Simulator, iid: str, kind: str) -> None:
        self.lifetimes.append(kind)
        self.seen = 0

    def step_call(self, iid: str, ref: StepRef) -> None:
        if ref.path == self.path:
            self.seen += 1

    def after_checkpoint(self, iid: str, ref: StepRef, attempt: int) -> Any:
        if not self.fired and ref.path == self.path and self.seen == self.nth:
            self.fired = True
            return Crash()
        return None


def test_index_counts_calls_per_lifetime_and_restarts_on_replay(make: Any) -> None:
    crash = CrashAfterCheckpoint("ModMail.send", 1)
    wf = make(MAILS, hooks=crash)
    wf.modifier.mock_step_result({"name": "ModMail.send", "index": 2}, {"mocked": 2})
    out = wf.run()
    assert crash.lifetimes == ["workflow-start", "recover"]
    assert mail_outputs(out)[1] == {"mocked": 2}
    assert [o.get("n") for o in mail_outputs(out)] == [1, None, 3]


# -- aliases and warnings -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("camel", "snake"),
    [
        ("disableSleeps", "disable_sleeps"),
        ("disableRetryDelays", "disable_retry_delays"),
        ("mockStepResult", "mock_step_result"),
        ("mockStepError", "mock_step_error"),
        ("forceStepTimeout", "force_step_timeout"),
        ("mockEvent", "mock_event"),
        ("forceEventTimeout", "force_event_timeout"),
    ],
)
def test_camel_case_names_are_the_same_methods(camel: str, snake: str) -> None:
    assert getattr(Modifier, camel) is getattr(Modifier, snake)
    modifier = Modifier()
    assert getattr(modifier, camel) == getattr(modifier, snake)


def test_a_selector_that_matches_nothing_is_a_warning_in_the_failure(make: Any) -> None:
    wf = make(TWO_STEPS)
    wf.modifier.disable_retry_delays()
    wf.modifier.mock_step_result("ModPay.chrage", {"typo": True})
    wf.modifier.mock_step_error("ModPay.refund", RuntimeError("nope"))
    wf.modifier.disable_sleeps(["nap"])
    wf.modifier.force_event_timeout({"name": "ModPay.charge", "index": 1})
    with pytest.raises(WorkflowFailed) as info:
        wf.run({"id": "o-1"})
    text = str(info.value)
    assert text.startswith("RuntimeError: nope\n")
    assert (
        "warning: mock_step_result('ModPay.chrage') matched no step of this run "
        "(did you mean 'ModPay.charge'?)"
    ) in text
    assert (
        "warning: disable_sleeps('nap') matched no sleep of this run (no sleep was called)" in text
    )
    assert (
        "force_event_timeout({'name': 'ModPay.charge', 'index': 1}) matched no event wait" in text
    )
    assert len(info.value.warnings) == 3


def test_an_index_beyond_the_calls_fails_the_run(make: Any) -> None:
    wf = make(MAILS)
    wf.modifier.mock_step_result({"name": "ModMail.send", "index": 4}, 4)
    with pytest.raises(UnmatchedSelector) as info:
        wf.run()
    assert wf.status == "complete"
    assert (
        info.value.warnings
        == wf.warnings
        == [
            "mock_step_result({'name': 'ModMail.send', 'index': 4}) matched no step of this run "
            "(fewer than 4 calls matched 'ModMail.send')"
        ]
    )


def test_a_typo_in_a_selector_fails_a_run_that_would_pass(make: Any) -> None:
    wf = make(TWO_STEPS)
    wf.modifier.mock_step_result("ModPay.chrage", {"typo": True})
    with pytest.raises(UnmatchedSelector) as info:
        wf.run({"id": "o-1"})
    text = str(info.value)
    assert "mock_step_result('ModPay.chrage') matched no step of this run" in text
    assert "(did you mean 'ModPay.charge'?)" in text
    assert "strict=False" in text


def test_strict_false_lets_an_intended_unmatched_selector_pass(make: Any) -> None:
    wf = make(TWO_STEPS, strict=False)
    wf.modifier.mock_step_result("ModPay.chrage", {"typo": True})
    wf.run({"id": "o-1"})
    assert wf.status == "complete"
    assert len(wf.warnings) == 1


def test_no_warning_when_every_selector_matched(make: Any) -> None:
    wf = make(MAILS)
    wf.modifier.mock_step_result("ModMail.send", 1)
    wf.modifier.disable_retry_delays(["raw step"])
    wf.run()
    assert wf.warnings == []


@pytest.mark.parametrize(
    ("selector", "message"),
    [
        ("", "empty string"),
        ({"index": 1}, "needs 'name'"),
        ({"name": "x", "index": 0}, "1-based"),
        ({"name": "x", "idx": 2}, "unknown selector key"),
        (42, "a step selector is a string"),
    ],
)
def test_bad_selectors_are_refused(selector: Any, message: str) -> None:
    with pytest.raises(DefinitionError, match=message):
        Modifier().mock_step_result(selector, 1)


# -- the modifier on its own ----------------------------------------------------------------------


def test_a_modifier_applies_to_every_instance_of_a_simulator() -> None:
    modifier = Modifier()
    modifier.mock_step_result("ModPay.charge", "mocked")
    modifier.mock_event("approval", {"by": "ana"})
    with Simulator(hooks=modifier) as sim:
        first = sim.create(CHECKOUT, {"id": "a"})
        second = sim.create(CHECKOUT, {"id": "b"})
        sim.run()
        assert first.status()["output"] == second.status()["output"] == "mocked"
        received = [e for e in first.timeline if e["kind"] == "event-received"]
        assert [e["type"] for e in received] == ["approval"]
    assert modifier.steps(first.id) == ["ModPay.charge"]


def test_mock_event_reaches_an_instance_that_is_already_running() -> None:
    modifier = Modifier()
    with Simulator(hooks=modifier) as sim:
        inst = sim.create(APPROVAL)
        sim.run()  # idle on the first wait
        assert inst.status()["status"] == "waiting"
        modifier.mock_event("approval", {"by": "ana"})
        modifier.mock_event("approval", {"by": "ben"})
        sim.run()
        assert inst.status()["output"] == [{"by": "ana"}, {"by": "ben"}]


# -- forced event timeouts, as Cloudflare's context.ts waitForEvent does them -------------------


def test_force_event_timeout_wins_over_a_buffered_event(make: Any) -> None:
    wf = make(APPROVAL)
    wf.modifier.force_event_timeout("await-approval")
    wf.modifier.mock_event("approval", {"by": "ana"})
    assert wf.run()["error"]["name"] == "WorkflowTimeoutError"


def test_a_forced_event_timeout_reports_the_configured_timeout(make: Any) -> None:
    wf = make(APPROVAL)
    wf.modifier.force_event_timeout("await-approval")
    assert wf.run()["error"]["message"] == "Execution timed out after 3600000ms"
