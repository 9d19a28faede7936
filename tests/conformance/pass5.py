"""Writes fidelity pass 5's scenarios (format 2) into scenarios/: what a real workflow meets that
passes 1-4 left out: control actions at the statuses they skipped, retries with timeouts and
backoff kinds together, race losers that still wait, sleeps and waits that the engine does not
check the names of (README.md, "Pass 5").

    python tests/conformance/pass5.py            # writes scenarios/p5-*.json
    node tests/conformance/driver.mjs --out DIR tests/conformance/scenarios/p5-*.json

Record twice (two folders), check the two agree (compare.mjs), then commit one.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

OUT = Path(__file__).parent / "scenarios"
SCENARIOS: dict[str, dict[str, Any]] = {}

RETURN = [{"return": 1}]


def add(name: str, description: str, body: list[Any], **extra: Any) -> None:
    name = f"p5-{name}"
    assert name not in SCENARIOS, name
    SCENARIOS[name] = {"name": name, "format": 2, "description": description, "body": body}
    SCENARIOS[name].update(extra)


def do(name: str, attempts: list[Any] = RETURN, catch: Any = "name", **more: Any) -> dict[str, Any]:
    op: dict[str, Any] = {"op": "do", "name": name, "attempts": attempts, **more}
    if catch is not False:
        op["catch"] = catch
    return op


def sleep(name: str, duration: Any, catch: Any = False) -> dict[str, Any]:
    op: dict[str, Any] = {"op": "sleep", "name": name, "duration": duration}
    if catch is not False:
        op["catch"] = catch
    return op


def wait(name: str, type: str, timeout: Any = None, catch: Any = "name") -> dict[str, Any]:
    op: dict[str, Any] = {"op": "waitForEvent", "name": name, "type": type}
    if timeout is not None:
        op["timeout"] = timeout
    if catch is not False:
        op["catch"] = catch
    return op


def ctl(op: str, after_ms: int) -> dict[str, Any]:
    return {"op": op, "after_ms": after_ms}


def ev(type: str, payload: Any, after_ms: int) -> dict[str, Any]:
    return {"type": type, "payload": payload, "after_ms": after_ms}


FAIL = {"throw": "Error", "message": "down"}
NRE = {"throw": "NonRetryableError", "message": "declined"}
HANG = {"hang_ms": 400, "return": "late"}

# -- engine.ts changeInstanceStatus at the statuses passes 2 and 3 left out --------------------
add(
    "control-pause-errored",
    "pause of an errored instance: userTriggeredPause returns (not running), no error",
    [do("a", [NRE], catch=False)],
    control=[ctl("pause", 300)],
)
add(
    "control-resume-errored",
    "resume of an errored instance: nothing happens, no error",
    [do("a", [NRE], catch=False)],
    control=[ctl("resume", 300)],
)
add(
    "control-restart-terminated",
    "restart of a terminated instance: everything is wiped and the run starts over",
    [do("a"), sleep("z", 600), do("b")],
    control=[ctl("terminate", 200), ctl("restart", 400)],
    runs=True,
    step_outputs=True,
)
add(
    "control-pause-while-waiting-for-pause",
    "a second pause while the first waits for a running step: nothing more happens",
    [do("a", [{"hang_ms": 500, "return": 1}], catch=False), do("b", catch=False)],
    control=[ctl("pause", 100), ctl("pause", 250), ctl("resume", 900)],
)
add(
    "control-terminate-waiting-for-pause",
    "terminate while a pause waits for a running step",
    [do("a", [{"hang_ms": 500, "return": 1}], catch=False), do("b", catch=False)],
    control=[ctl("pause", 100), ctl("terminate", 250)],
)
add(
    "control-restart-while-waiting-for-event",
    "restart while waiting for an event; an event sent after the restart reaches the new run",
    [do("a"), wait("w", "go", 3000)],
    control=[ctl("restart", 200)],
    events=[ev("go", {"n": 1}, 500)],
    runs=True,
    step_outputs=True,
)
add(
    "control-resume-while-sleeping",
    "resume of a running (sleeping) instance does nothing",
    [sleep("z", 400), do("a")],
    control=[ctl("resume", 100)],
)
add(
    "control-two-pause-cycles-during-sleep",
    "two pause/resume cycles during one sleep: the sleep ends later by both paused spans",
    [do("a"), sleep("z", 800), do("b")],
    control=[ctl("pause", 100), ctl("resume", 300), ctl("pause", 500), ctl("resume", 700)],
    step_outputs=True,
)
add(
    "control-terminate-then-event",
    "an event sent to a terminated instance is taken without an error",
    [wait("w", "go", 3000, catch=False)],
    control=[ctl("terminate", 100)],
    events=[ev("go", 1, 300)],
)
add(
    "control-event-after-errored",
    "an event sent to an errored instance is taken without an error",
    [do("a", [NRE], catch=False)],
    events=[ev("go", 1, 300)],
)
add(
    "control-pause-then-terminate-then-resume",
    "terminate a paused instance, then resume: resume of a terminated instance does nothing",
    [sleep("z", 600), do("a")],
    control=[ctl("pause", 100), ctl("terminate", 300), ctl("resume", 500)],
)
add(
    "control-restart-twice",
    "two restarts in a row: the run starts over each time",
    [do("a"), sleep("z", 500), do("b")],
    control=[ctl("restart", 100), ctl("restart", 300)],
    runs=True,
)
add(
    "control-pause-during-event-wait-then-event-then-resume",
    "an event sent while paused in a wait is delivered to that wait after resume",
    [do("a", catch=False), wait("w", "go", 3000, catch=False), do("b", catch=False)],
    control=[ctl("pause", 150), ctl("resume", 600)],
    events=[ev("go", "x", 350)],
    step_outputs=True,
)

# -- context.ts do(): retries with timeouts and each backoff kind ----------------------------
add(
    "retry-timeout-exponential-exhausted",
    "every attempt times out at 100 ms; exponential backoff 50 ms: gaps 50, 100; caught",
    [
        do(
            "a",
            [HANG],
            config={"retries": {"limit": 2, "delay": 50, "backoff": "exponential"}, "timeout": 100},
        )
    ],
)
add(
    "retry-timeout-linear-then-success",
    "two timeouts, linear backoff 60 ms, then a quick success",
    [
        do(
            "a",
            [HANG, HANG, {"return": 3}],
            config={
                "retries": {"limit": 3, "delay": 60, "backoff": "linear"},
                "timeout": "100 millis",
            },
        )
    ],
)
add(
    "retry-timeout-then-nonretryable",
    "a timeout, then a NonRetryableError on attempt 2: no third attempt",
    [do("a", [HANG, NRE], config={"retries": {"limit": 5, "delay": 50}, "timeout": 100})],
)
add(
    "retry-constant-second-string",
    'constant backoff with a "1 second" delay, limit 2',
    [do("a", [FAIL], config={"retries": {"limit": 2, "delay": "1 second", "backoff": "constant"}})],
)
add(
    "retry-exponential-string-delay",
    'exponential backoff with a "200 millis" delay, limit 3: 200, 400, 800',
    [
        do(
            "a",
            [FAIL, FAIL, FAIL, {"return": "ok"}],
            config={"retries": {"limit": 3, "delay": "200 millis", "backoff": "exponential"}},
        )
    ],
)
add(
    "retry-linear-limit-1-uncaught",
    "linear backoff, limit 1, both attempts fail: the error escapes run()",
    [
        do(
            "a",
            [FAIL],
            catch=False,
            config={"retries": {"limit": 1, "delay": 100, "backoff": "linear"}},
        )
    ],
)
add(
    "retry-timeout-limit-0-uncaught",
    "one attempt, timed out, no retries: the timeout error escapes run()",
    [do("a", [HANG], catch=False, config={"retries": {"limit": 0, "delay": 10}, "timeout": 100})],
)
add(
    "retry-timeout-exact-boundary",
    "an attempt that ends exactly at its timeout races the timer; a far shorter one wins",
    [do("a", [{"hang_ms": 20, "return": "fast"}], config={"timeout": 300})],
)
add(
    "retry-custom-class-retried",
    "a custom error class is an ordinary error: retried until the limit",
    [
        do(
            "a",
            [{"throw": "PaymentError", "message": "gateway"}],
            config={"retries": {"limit": 2, "delay": 30, "backoff": "constant"}},
        )
    ],
)
add(
    "retry-custom-class-named-nonretryable-like",
    "a custom class whose name starts with NonRetryableError is not retried",
    [
        do(
            "a",
            [{"throw": "NonRetryableErrorX", "message": "m"}],
            config={"retries": {"limit": 2, "delay": 30}},
        )
    ],
)
add(
    "retry-then-replayed-after-pause",
    "a step that succeeded after retries is replayed from storage after a pause",
    [
        do("a", [FAIL, {"return": 7}], config={"retries": {"limit": 2, "delay": 50}}),
        sleep("z", 500),
        do("b"),
    ],
    control=[ctl("pause", 200), ctl("resume", 400)],
    runs=True,
)
add(
    "retry-exhausted-replayed-after-pause",
    "a step whose retries ran out, caught, is replayed from storage after a pause: same error",
    [do("a", [FAIL], config={"retries": {"limit": 1, "delay": 50}}), sleep("z", 500), do("b")],
    control=[ctl("pause", 250), ctl("resume", 450)],
    runs=True,
)

# -- sleep / sleepUntil / waitForEvent: names the engine does not check ------------------------
add(
    "sleep-name-control-character",
    "a sleep's name is not checked: a control character is fine",
    [sleep("z\u0001", 10, catch="name"), do("a")],
)
add(
    "sleep-name-300-chars",
    "a sleep's name is not checked: 300 characters are fine",
    [sleep("s" * 300, 10, catch="name"), do("a")],
)
add(
    "wait-name-control-character",
    "a wait's name is not checked: a control character is fine",
    [wait("w\u0007", "go", 2000)],
    events=[ev("go", 1, 100)],
)
add(
    "wait-name-300-chars",
    "a wait's name is not checked: 300 characters are fine",
    [wait("w" * 300, "go", 2000)],
    events=[ev("go", 1, 100)],
)
add(
    "wait-type-300-chars",
    "an event type is not checked: 300 characters are fine",
    [wait("w", "t" * 300, 2000)],
    events=[ev("t" * 300, 1, 100)],
)
add(
    "wait-type-with-spaces-and-symbols",
    "an event type is any string: spaces and punctuation match exactly",
    [wait("w", "order paid: #1/ok", 2000)],
    events=[ev("order paid: #1/ok", 1, 100)],
)
add(
    "sleep-zero-string-units",
    '"0 seconds" and 0 sleep nothing',
    [sleep("z1", "0 seconds"), sleep("z2", 0), do("a")],
)
add(
    "sleep-until-far-future-terminated",
    "sleepUntil a day ahead, terminated while it waits",
    [{"op": "sleepUntil", "name": "u", "at_ms": 86_400_000}],
    control=[ctl("terminate", 200)],
)
add(
    "sleep-until-past-then-step",
    "sleepUntil in the past caught, then a step runs",
    [{"op": "sleepUntil", "name": "u", "at_ms": -60_000, "catch": "name"}, do("a")],
)

# -- waitForEvent: buffering, several events, race losers ------------------------------------
add(
    "wait-two-events-one-wait",
    "two events of one type before the wait: the wait takes the first, the second stays",
    [sleep("z", 300), wait("w", "go", 2000)],
    events=[ev("go", "first", 50), ev("go", "second", 100)],
    step_outputs=True,
)
add(
    "wait-events-of-two-types-interleaved",
    "events of two types sent out of order reach the waits of their own type",
    [sleep("z", 300), wait("w1", "b", 2000), wait("w2", "a", 2000), wait("w3", "b", 2000)],
    events=[ev("a", "a1", 50), ev("b", "b1", 100), ev("b", "b2", 150)],
    step_outputs=True,
)
add(
    "race-losing-wait-takes-later-event",
    "a wait that lost a race still waits: it takes the next event of its type, and a later "
    "wait of that type times out",
    [
        {
            "op": "parallel",
            "race": True,
            "steps": [sleep("z", 50), wait("w1", "go", 3000, catch=False)],
        },
        wait("w2", "go", 1000),
    ],
    events=[ev("go", "x", 300)],
    step_outputs=True,
)
add(
    "parallel-wait-and-failing-step-uncaught",
    "a parallel group whose step fails for good while a wait waits: the instance errors",
    [
        {
            "op": "parallel",
            "steps": [wait("w", "go", 3000, catch=False), do("a", [NRE], catch=False)],
        }
    ],
    events=[ev("go", 1, 300)],
)
add(
    "wait-timeout-string-minutes-event-arrives",
    'a wait with a "1 minute" timeout takes an event sent after 200 ms',
    [wait("w", "go", "1 minute")],
    events=[ev("go", {"ok": True}, 200)],
)
add(
    "wait-same-name-sequential",
    "two waits of one name in a row take two events (counted per name)",
    [wait("w", "go", 2000), wait("w", "go", 2000)],
    events=[ev("go", 1, 100), ev("go", 2, 200)],
    step_outputs=True,
)

# -- do(): names, results, many steps ---------------------------------------------------------
add(
    "many-steps-200",
    "200 steps of distinct names in a row",
    [do(f"s{i}", [{"return": i}], catch=False) for i in range(200)],
)
add(
    "many-steps-same-name-100",
    "100 steps of one name: numbered 1 to 100",
    [do("s", [{"return": i}], catch=False) for i in range(100)],
)
add(
    "step-name-unicode-mixed",
    "a name of letters from several scripts and an emoji",
    [do("注文-处理 ✓ 🚚 naïve")],
)
add(
    "step-name-exactly-256-ascii",
    "a 256-character name is the longest allowed",
    [do("n" * 256)],
)
add(
    "step-result-large-nested",
    "a nested result with many keys round-trips",
    [do("a", [{"return": {f"k{i}": [i, str(i), {"v": i % 2 == 0}] for i in range(300)}}])],
)
add(
    "step-name-tab-invalid",
    "a tab is a control character: the name is refused",
    [do("a\tb"), do("c")],
)
add(
    "step-name-del-allowed",
    "DEL (0x7f) is not in the engine's control range: the name is accepted",
    [do("a\u007fb"), do("c")],
)
add(
    "step-name-c1-control-allowed",
    "a C1 control character (0x85) is not in the engine's range: the name is accepted",
    [do("a\u0085b"), do("c")],
)


# -- engine.ts userTriggeredPause / attemptResume with steps that time out, fail or run in a
# group: the pause waits for the running step (waitUntilNothingIsRunning), and resume shifts
# every stored timer by the paused span (offsetAll).
add(
    "pause-during-step-that-times-out",
    "a pause while a step runs past its timeout: the timeout fails the attempt, the pause "
    "completes in the retry wait, and after resume attempt 2 runs",
    [
        do(
            "a",
            [{"hang_ms": 1000, "return": 1}, {"return": 2}],
            catch=False,
            config={"retries": {"limit": 1, "delay": 300}, "timeout": 400},
        ),
        do("b", catch=False),
    ],
    control=[ctl("pause", 100), ctl("resume", 900)],
    runs=True,
)
add(
    "pause-during-step-that-fails",
    "a pause while a step runs that then fails: the pause completes in its retry wait; after "
    "resume the retry wait's rest runs, then attempt 2",
    [
        do(
            "a",
            [{"hang_ms": 300, "throw": "Error", "message": "x"}, {"return": 2}],
            catch=False,
            config={"retries": {"limit": 1, "delay": 500}},
        ),
        do("b", catch=False),
    ],
    control=[ctl("pause", 100), ctl("resume", 700)],
    runs=True,
)
add(
    "pause-during-parallel-steps",
    "a pause while two steps of a group run: it completes when both end; resume replays them",
    [
        {
            "op": "parallel",
            "steps": [
                do("a", [{"hang_ms": 300, "return": 1}], catch=False),
                do("b", [{"hang_ms": 500, "return": 2}], catch=False),
            ],
        },
        do("c", catch=False),
    ],
    control=[ctl("pause", 100), ctl("resume", 900)],
    runs=True,
    step_outputs=True,
)
add(
    "pause-while-step-runs-beside-sleep",
    "a pause while a step runs beside a sleep that ends first",
    [
        {
            "op": "parallel",
            "steps": [do("a", [{"hang_ms": 600, "return": 1}], catch=False), sleep("z", 200)],
        },
        do("c", catch=False),
    ],
    control=[ctl("pause", 100), ctl("resume", 1000)],
    runs=True,
    step_outputs=True,
)
add(
    "pause-while-step-runs-beside-wait",
    "a pause while a step runs beside a wait whose event comes during the pause",
    [
        {
            "op": "parallel",
            "steps": [
                do("a", [{"hang_ms": 500, "return": 1}], catch=False),
                wait("w", "go", 3000, catch=False),
            ],
        },
        do("c", catch=False),
    ],
    control=[ctl("pause", 100), ctl("resume", 1000)],
    events=[ev("go", "e", 700)],
    runs=True,
    step_outputs=True,
)
add(
    "pause-resume-then-timeout-of-wait",
    "a wait paused and resumed, then timed out uncaught: the instance errors",
    [do("a", catch=False), wait("w", "go", 500, catch=False)],
    control=[ctl("pause", 100), ctl("resume", 300)],
)
add(
    "terminate-during-parallel-steps",
    "terminate while two steps of a group run",
    [
        {
            "op": "parallel",
            "steps": [
                do("a", [{"hang_ms": 300, "return": 1}], catch=False),
                do("b", [{"hang_ms": 500, "return": 2}], catch=False),
            ],
        }
    ],
    control=[ctl("terminate", 100)],
    runs=True,
)
add(
    "restart-during-parallel-steps",
    "restart while two steps of a group run: both run again from attempt 1",
    [
        {
            "op": "parallel",
            "steps": [
                do("a", [{"hang_ms": 300, "return": 1}], catch=False),
                do("b", [{"hang_ms": 500, "return": 2}], catch=False),
            ],
        }
    ],
    control=[ctl("restart", 100)],
    runs=True,
    step_outputs=True,
)


# -- context.ts sleepUntil: `this.sleep(name, timestamp - now)` on every call. A replay after a
# resume asks for the time left until the moment (a new sleep: its key has the new length), so
# a pause does not move the moment; resume shifts only the stored timers.
add(
    "sleep-until-paused-ends-at-its-moment",
    "a pause/resume during a sleepUntil: it still ends at its moment, not later by the pause",
    [{"op": "sleepUntil", "name": "u", "at_ms": 800}, do("b", catch=False), sleep("z", 5000)],
    control=[ctl("pause", 200), ctl("resume", 600), ctl("terminate", 1000)],
    runs=True,
    step_outputs=True,
)
add(
    "sleep-paused-ends-later-by-the-pause",
    "the same with a sleep of the same length: it ends later by the paused span",
    [sleep("u", 800), do("b", catch=False), sleep("z", 5000)],
    control=[ctl("pause", 200), ctl("resume", 600), ctl("terminate", 1000)],
    runs=True,
    step_outputs=True,
)
add(
    "sleep-until-in-parallel-paused",
    "a sleepUntil beside a sleep in a group, paused and resumed: the sleepUntil keeps its moment",
    [
        {
            "op": "parallel",
            "steps": [{"op": "sleepUntil", "name": "u", "at_ms": 700}, sleep("z", 300)],
        },
        do("b", catch=False),
        sleep("y", 5000),
    ],
    control=[ctl("pause", 100), ctl("resume", 500), ctl("terminate", 900)],
    runs=True,
)


# -- gracePeriodSemaphore: a do() called while a pause waits for a running step blocks in
# acquire(); when the pause completes, the blocked steps are let go, run their attempt, and only
# then meet #checkForPendingPause.
add(
    "pause-pending-step-called-beside-running-step",
    "a step called while a pause waits for another running step (a race's loser) runs once the "
    "pause completes; terminate then",
    [
        {
            "op": "parallel",
            "race": True,
            "steps": [
                do("a", [{"hang_ms": 600, "return": 1}], catch=False),
                do("x", [{"hang_ms": 150, "return": 2}], catch=False),
            ],
        },
        do("b", catch=False),
    ],
    control=[ctl("pause", 50), ctl("terminate", 1200)],
    runs=True,
    step_outputs=True,
)
add(
    "pause-pending-step-after-caught-exhaustion",
    "a pause while a step fails for good (caught): the next step, called once the pause is "
    "pending, runs when the pause completes; terminate then",
    [
        do(
            "a",
            [{"hang_ms": 300, "throw": "Error", "message": "x"}],
            config={"retries": {"limit": 0, "delay": 10}},
        ),
        do("b", catch=False),
    ],
    control=[ctl("pause", 100), ctl("terminate", 900)],
    runs=True,
    step_outputs=True,
)


# -- engine.ts init(): what run() itself throws, outside any step (format 2's `throw`). It
# crosses RPC on its way out, as a step's error does; init then keeps an Error's name and
# message, rewrites a NonRetryableError (by name or message start) to the fixed text, and
# takes a thrown non-Error as it arrives.
def throw(cls: str, message: str) -> dict[str, Any]:
    return {"op": "throw", "throw": cls, "message": message}


def throw_value(value: Any) -> dict[str, Any]:
    return {"op": "throw", "throw_value": value}


add("throw-error-before-any-step", "run() throws an Error first", [throw("Error", "bad input")])
add(
    "throw-error-after-steps",
    "run() throws after two steps: their outputs stay",
    [do("a", catch=False), do("b", [{"return": {"k": 2}}], catch=False), throw("Error", "no")],
    step_outputs=True,
)
add("throw-typeerror", "run() throws a TypeError", [throw("TypeError", "x is undefined")])
add("throw-rangeerror-empty", "run() throws a RangeError without text", [throw("RangeError", "")])
add(
    "throw-custom-class",
    "run() throws an error class of its own",
    [throw("ValidationError", "bad")],
)
add(
    "throw-custom-class-empty-message",
    "run() throws an error class of its own without text",
    [throw("ValidationError", "")],
)
add(
    "throw-nonretryable",
    "run() throws a NonRetryableError itself: the engine's fixed text",
    [do("a", catch=False), throw("NonRetryableError", "stop")],
)
add(
    "throw-message-starts-with-nonretryable",
    "run() throws an Error whose message starts with NonRetryableError: the fixed text",
    [throw("Error", "NonRetryableError: stop")],
)
add(
    "throw-custom-class-named-nonretryable-prefix",
    "run() throws a class whose name starts with NonRetryableError",
    [throw("NonRetryableErrorLike", "m")],
)
add("throw-value-string", "run() throws a string", [throw_value("boom")])
add("throw-value-number", "run() throws a number", [throw_value(42)])
add("throw-value-null", "run() throws null", [throw_value(None)])
add("throw-value-false", "run() throws false", [throw_value(False)])
add("throw-value-object", "run() throws an object", [throw_value({"code": 7})])
add("throw-value-array", "run() throws an array", [throw_value([1, 2])])
add(
    "throw-value-string-nonretryable",
    "run() throws a string that starts with NonRetryableError",
    [throw_value("NonRetryableError: x")],
)
add(
    "throw-after-caught-step-failure",
    "a step fails for good, run() catches it, then throws an error of its own",
    [do("a", [FAIL], config={"retries": {"limit": 0, "delay": 1}}), throw("Error", "gave up")],
)
add(
    "throw-while-race-loser-runs",
    "run() throws while a race's losing step still runs",
    [
        {
            "op": "parallel",
            "race": True,
            "steps": [do("a", [{"hang_ms": 400, "return": 1}], catch=False), sleep("z", 50)],
        },
        throw("Error", "early"),
    ],
    runs=True,
)
add(
    "throw-then-event",
    "an event sent after run() threw is taken without an error",
    [throw("Error", "x")],
    events=[ev("go", 1, 200)],
)
add(
    "throw-then-restart",
    "restart of an instance whose run() threw: it runs again and throws again",
    [do("a", catch=False), throw("Error", "again")],
    control=[ctl("restart", 300)],
    runs=True,
    step_outputs=True,
)
add(
    "throw-after-paused-sleep",
    "run() throws after a sleep that a pause interrupted; the replay reaches the throw",
    [do("a", catch=False), sleep("z", 400), throw("Error", "after sleep")],
    control=[ctl("pause", 100), ctl("resume", 300)],
    runs=True,
)


# -- more of what a real workflow meets: a sleepUntil whose moment passes during a pause, an
# approval that arrives during a retry wait, a wait that times out beside a running step.
add(
    "sleep-until-moment-passes-while-paused",
    "a pause during a sleepUntil, resumed after its moment: the replay throws time-traveler",
    [{"op": "sleepUntil", "name": "u", "at_ms": 500}, do("b", catch=False)],
    control=[ctl("pause", 100), ctl("resume", 800)],
    runs=True,
)
add(
    "sleep-until-moment-passes-while-paused-caught",
    "the same, caught: run() goes on to the next step",
    [{"op": "sleepUntil", "name": "u", "at_ms": 500, "catch": "name"}, do("b", catch=False)],
    control=[ctl("pause", 100), ctl("resume", 800)],
    runs=True,
)
add(
    "event-arrives-during-retry-wait",
    "an approval sent while a step waits to retry is buffered for the wait that follows",
    [
        do("charge", [FAIL, {"return": "paid"}], config={"retries": {"limit": 1, "delay": 400}}),
        wait("approval", "approved", 2000),
    ],
    events=[ev("approved", {"by": "ana"}, 150)],
    step_outputs=True,
)
add(
    "wait-times-out-beside-running-step-uncaught",
    "a wait in a group times out (uncaught) while the group's step still runs",
    [
        {
            "op": "parallel",
            "steps": [
                do("a", [{"hang_ms": 500, "return": 1}], catch=False),
                wait("w", "go", 100, catch=False),
            ],
        }
    ],
    runs=True,
)
add(
    "wait-times-out-then-same-type-event-to-next-wait",
    "a timed-out wait and a second wait of the same name: the late event goes to the second",
    [wait("w", "go", 100), wait("w", "go", 2000)],
    events=[ev("go", "late", 400)],
    step_outputs=True,
)
add(
    "nonretryable-in-parallel-caught-others-complete",
    "a NonRetryableError in one slot, caught there; the other slots complete",
    [
        {
            "op": "parallel",
            "steps": [
                do("a", [NRE]),
                do(
                    "b",
                    [FAIL, {"return": 2}],
                    catch=False,
                    config={"retries": {"limit": 1, "delay": 50}},
                ),
                sleep("z", 100),
            ],
        }
    ],
    step_outputs=True,
)
add(
    "retry-limit-fraction-with-timeout",
    "limit 1.5 (two attempts: attemptedCount <= limit) with a timeout on each",
    [do("a", [HANG], config={"retries": {"limit": 1.5, "delay": 20}, "timeout": 100})],
)


# -- context.ts sleep() and do()'s retry wait: after the wait, `getStatus()`; Paused or
# WaitingForPause throws the pause error. So a sleep or a retry wait that ends while a pause
# waits for a running step stops the run there (the replay after resume goes on from it); an
# event wait that gets its event, or times out, goes on.
RACE_LONG_STEP = {
    "op": "parallel",
    "race": True,
    "steps": [do("a", [{"hang_ms": 1000, "return": 1}], catch=False), sleep("z", 300)],
}
RETRY_BESIDE_LONG_STEP = {
    "op": "parallel",
    "race": True,
    "steps": [
        do("a", [{"hang_ms": 1000, "return": 1}], catch=False),
        do(
            "r",
            [{"hang_ms": 250, "throw": "Error", "message": "x"}, {"return": 2}],
            catch=False,
            config={"retries": {"limit": 1, "delay": 100}},
        ),
    ],
}
add(
    "pause-pending-sleep-end-stops-the-run",
    "a sleep that ends while a pause waits for a running step does not return: the run stops "
    "there and the instance pauses when the step ends (it does not run on to completion)",
    [RACE_LONG_STEP, sleep("y", 200)],
    control=[ctl("pause", 150)],
)
add(
    "pause-pending-sleep-end-then-resume",
    "the same, resumed: the replay goes on from the sleep",
    [RACE_LONG_STEP, sleep("y", 200), do("b", catch=False)],
    control=[ctl("pause", 150), ctl("resume", 1500)],
    runs=True,
    step_outputs=True,
)
add(
    "pause-pending-wait-gets-event-then-sleep",
    "an event wait that gets its event while a pause is pending returns; the sleep after it "
    "ends while the pause still waits, and stops the run",
    [
        {
            "op": "parallel",
            "race": True,
            "steps": [
                do("a", [{"hang_ms": 1000, "return": 1}], catch=False),
                wait("w", "t", 3000, catch=False),
            ],
        },
        sleep("y", 200),
    ],
    events=[ev("t", 1, 300)],
    control=[ctl("pause", 150)],
)
add(
    "pause-pending-wait-timeout-goes-on",
    "an event wait that times out while a pause is pending throws its timeout as usual",
    [
        {
            "op": "parallel",
            "race": True,
            "steps": [
                do("a", [{"hang_ms": 1000, "return": 1}], catch=False),
                wait("w", "t", 300, catch=False),
            ],
        }
    ],
    control=[ctl("pause", 150)],
)
add(
    "pause-pending-retry-wait-end-stops-the-run",
    "a retry wait that ends while a pause waits for another running step starts no attempt",
    [RETRY_BESIDE_LONG_STEP],
    control=[ctl("pause", 150)],
    runs=True,
)
add(
    "pause-pending-retry-wait-end-then-resume",
    "the same, resumed: the replay runs the second attempt",
    [RETRY_BESIDE_LONG_STEP, do("b", catch=False)],
    control=[ctl("pause", 150), ctl("resume", 1500)],
    runs=True,
    step_outputs=True,
)
add(
    "pause-pending-sleep-end-then-resume-cancels",
    "a resume while the pause still waits cancels it; Miniflare's run had already stopped at "
    "the sleep's end, so the instance stays running with nothing to run (documented)",
    [RACE_LONG_STEP, sleep("y", 200), do("b", catch=False)],
    control=[ctl("pause", 150), ctl("resume", 700)],
    runs=True,
)


# -- engine.ts init(): WORKFLOW_SUCCESS and `complete` once run() returns; nothing stops a step
# still running then (a race's loser): on Miniflare it runs on, retries and stores its result.
# The pause at 1500 ms (ignored: the instance is complete) keeps the driver watching until then.
add(
    "race-loser-retries-after-completion",
    "a race's losing step retries on after run() returned (documented: awf_sim ends it)",
    [
        {
            "op": "parallel",
            "race": True,
            "steps": [
                do(
                    "a",
                    [FAIL],
                    catch=False,
                    config={"retries": {"limit": 2, "delay": 300, "backoff": "constant"}},
                ),
                sleep("z", 50),
            ],
        }
    ],
    control=[ctl("pause", 1500)],
    runs=True,
    step_outputs=True,
)
add(
    "race-loser-result-stored-after-completion",
    "a race's losing step ends after run() returned and its result is stored (documented)",
    [
        {
            "op": "parallel",
            "race": True,
            "steps": [do("a", [{"hang_ms": 600, "return": 5}], catch=False), sleep("z", 50)],
        }
    ],
    control=[ctl("pause", 1500)],
    runs=True,
    step_outputs=True,
)


# -- context.ts storage keys: a do step's is `hash(NAME)-K`, a wait's `hash(NAME-K)-K`, a
# sleep's `hash(NAME + length)-K`, all `-value` in one key space. A do named "approval-1" and
# the first wait named "approval" (or a 1 ms sleep named "x-" and a do named "x-1") share a key,
# so the second one finds the first one's stored value and returns at once (documented).
add(
    "key-clash-wait-then-step",
    "a wait named approval, then a step named approval-1: Miniflare finds the wait's stored "
    "event under the step's key and returns undefined without running the step (documented)",
    [wait("approval", "ok", 2000, catch=False), do("approval-1", [{"return": 5}], catch=False)],
    events=[ev("ok", {"by": "ana"}, 100)],
    runs=True,
    step_outputs=True,
)
add(
    "key-clash-step-then-wait",
    "a step named approval-1, then a wait named approval: Miniflare returns the step's stored "
    "value as the event at once (payload undefined) and never takes the event (documented)",
    [do("approval-1", [{"return": 5}], catch=False), wait("approval", "ok", 2000, catch=False)],
    events=[ev("ok", {"by": "ana"}, 300)],
    runs=True,
    step_outputs=True,
)
add(
    "key-clash-sleep-then-step",
    "a 1 ms sleep named x-, then a step named x-1: the step is not run (documented)",
    [sleep("x-", 1), do("x-1", [{"return": 5}], catch=False)],
    runs=True,
    step_outputs=True,
)
add(
    "key-clash-step-then-sleep",
    "the other order: the sleep finds the step's value as its own marker and returns; no clash "
    "shows",
    [
        do("x-1", [{"return": 5}], catch=False),
        sleep("x-", 1),
        do("after", [{"return": 5}], catch=False),
    ],
    runs=True,
    step_outputs=True,
)


# -- engine.ts storeEventMap/restoreEventMap: buffered events are stored under
# "EVENT_MAP\nTYPE\nINDEX" and read back in key order, which is text order: after a resume,
# with more than ten of one type buffered, index 10 comes before index 2 (documented).
TWELVE_WAITS = [sleep("z", 700)] + [wait("w", "v", 2000, catch=False) for _ in range(12)]
TWELVE_EVENTS = [ev("v", i, 50 + 10 * i) for i in range(12)]
add(
    "twelve-buffered-events-in-order",
    "twelve events of one type buffered before the waits: taken first in, first out",
    TWELVE_WAITS,
    events=TWELVE_EVENTS,
)
add(
    "twelve-buffered-events-across-pause",
    "the same with a pause/resume while they are buffered: Miniflare reads them back in text "
    "order of their index (0, 1, 10, 11, 2, ...) (documented)",
    TWELVE_WAITS,
    events=TWELVE_EVENTS,
    control=[ctl("pause", 350), ctl("resume", 500)],
)


# -- the pending-pause stop at a sleep's end, met by the other control actions and by sleepUntil.
add(
    "pause-pending-sleep-end-then-terminate",
    "a run stopped at a sleep's end by a pending pause, terminated before the pause completes",
    [RACE_LONG_STEP, sleep("y", 200), do("b", catch=False)],
    control=[ctl("pause", 150), ctl("terminate", 700)],
    runs=True,
)
add(
    "pause-pending-sleep-end-then-restart",
    "a run stopped at a sleep's end by a pending pause, restarted before the pause completes",
    [RACE_LONG_STEP, sleep("y", 200), do("b", catch=False)],
    control=[ctl("pause", 150), ctl("restart", 700)],
    runs=True,
    step_outputs=True,
)
add(
    "pause-pending-sleep-until-end",
    "a sleepUntil whose moment comes while a pause waits for a running step stops the run "
    "there too; after resume (past the moment) the replay throws time-traveler",
    [
        {
            "op": "parallel",
            "race": True,
            "steps": [
                do("a", [{"hang_ms": 1000, "return": 1}], catch=False),
                {"op": "sleepUntil", "name": "u", "at_ms": 300},
            ],
        },
        do("b", catch=False),
    ],
    control=[ctl("pause", 150), ctl("resume", 1500)],
    runs=True,
)
add(
    "pause-pending-event-wait-then-step",
    "an event wait that gets its event while a pause is pending returns; the step after it "
    "waits for the pause and runs after resume",
    [
        {
            "op": "parallel",
            "race": True,
            "steps": [
                do("a", [{"hang_ms": 1000, "return": 1}], catch=False),
                wait("w", "t", 3000, catch=False),
            ],
        },
        do("b", catch=False),
    ],
    events=[ev("t", 1, 300)],
    control=[ctl("pause", 150), ctl("resume", 1500)],
    runs=True,
    step_outputs=True,
)


def main() -> int:
    OUT.mkdir(exist_ok=True)
    for name, scenario in SCENARIOS.items():
        text = json.dumps(scenario, indent=2, ensure_ascii=True) + "\n"
        (OUT / f"{name}.json").write_text(text, encoding="ascii")
    print(f"{len(SCENARIOS)} scenarios written to {OUT}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
