"""Writes fidelity pass 2's scenarios (format 2) into scenarios/: one family per branch of
Cloudflare's engine code (README.md, "Pass 2" says which function and branch each covers).

    python tests/conformance/pass2.py            # writes scenarios/p2-*.json
    node tests/conformance/driver.mjs --out tests/conformance/scenarios \\
        tests/conformance/scenarios/p2-*.json    # records them on Miniflare

The JSON files are committed; this script is how they were made, and how to make more.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

OUT = Path(__file__).parent / "scenarios"
SCENARIOS: dict[str, dict[str, Any]] = {}

RETURN = [{"return": 1}]
NO_RETRY = {"limit": 0, "delay": 0}
NO_RETRIES = {"retries": NO_RETRY}


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower() or "empty"


def add(name: str, description: str, body: list[Any], **extra: Any) -> None:
    name = f"p2-{name}"
    assert name not in SCENARIOS, name
    SCENARIOS[name] = {
        "name": name,
        "format": 2,
        "description": description,
        "body": body,
        **extra,
    }


def do(name: str, attempts: list[Any], config: Any = None, catch: Any = "name") -> dict[str, Any]:
    op: dict[str, Any] = {"op": "do", "name": name, "attempts": attempts}
    if config is not None:
        op["config"] = config
    if catch is not False:
        op["catch"] = catch
    return op


# -- context.ts do(): config validation (isValidStepConfig) and ms() on the timeout ---------
# Each step hangs 300 ms under the timeout: a timeout shorter than that fails the attempt with
# "Execution timed out after <ms>ms", a longer one (1 s and more) lets it return, an invalid one
# throws the WorkflowFatalError before any attempt. The margins are wide: the timer starts only
# after the engine has written its deadline, which takes a while on a loaded machine.
TIMEOUTS: list[tuple[str, Any]] = [
    ("unit-capitalised", "1 Second"),
    ("unit-upper", "1 SECOND"),
    ("short-form-30s", "30s"),
    ("zero-with-unit", "0 seconds"),
    ("negative-with-unit", "-1 second"),
    ("numeric-string-fraction", "150.5"),
    ("numeric-string-exponent", "1e2"),
    ("numeric-string-hex", "0x40"),
    ("numeric-string-padded", " 50 "),
    ("numeric-string-plus", "+50"),
    ("numeric-string-underscore", "1_000"),
    ("numeric-string-infinity", "Infinity"),
    ("prototype-unit-constructor", "1 constructor"),
    ("prototype-unit-proto", "1 __proto__"),
    ("prototype-unit-valueof", "1 valueOf"),
    ("prototype-unit-tostring", "1 toString"),
    ("empty", ""),
    ("zero-string", "0"),
    ("zero-string-decimal", "0.0"),
    ("zero-string-hex", "0x0"),
    ("negative-zero-string", "-0"),
    ("blank", " "),
    ("garbage", "abc"),
    ("table-unit-m", "2 m"),
    ("ms-is-m-plural", "100 ms"),
    ("unknown-unit-mins", "5 mins"),
    ("unknown-unit-sec", "30 sec"),
    ("unknown-unit-milliseconds", "10 milliseconds"),
    ("unknown-unit-s", "1 s"),
    ("unknown-unit-foo", "50 foo"),
    ("trailing-space", "1 second "),
    ("leading-space", " 1 second"),
    ("tab-separator", "1\tsecond"),
    ("newline-separator", "1\nsecond"),
    ("trailing-newline", "1 second\n"),
    ("two-spaces", "1  second"),
    ("fraction-of-unit", "0.05 seconds"),
    ("fraction-no-leading-digit", ".05 seconds"),
    ("exponent-with-unit", "1e-1 seconds"),
    ("plural", "1 seconds"),
    ("hour", "1 hour"),
    ("year", "1 year"),
    ("months", "2 months"),
    ("fullwidth-digit", "\uff11 second"),
    ("non-ascii-unit", "1 s\u00e9cond"),
    ("number-fraction", 0.5),
    ("number-zero", 0),
    ("number-negative", -5),
    ("number-ok", 1500),
    ("null", None),
    ("bool", True),
]
for label, timeout in TIMEOUTS:
    add(
        f"config-timeout-{label}",
        f"step timeout {json.dumps(timeout)}: read by itty-time's ms() and checked by "
        "isValidStepConfig; the attempt hangs 300 ms",
        [do("s", [{"hang_ms": 300, "return": 1}], {"timeout": timeout, "retries": NO_RETRY})],
    )

# -- do(): retries.delay through ms() and calcRetryDuration ---------------------------------
DELAYS: list[tuple[str, Any, str | None]] = [
    ("empty", "", None),
    ("negative-string", "-100", None),
    ("unknown-unit", "1 foo", None),
    ("garbage", "abc", None),
    ("exponent", "1e1", None),
    ("unit-capitalised", "1 Second", None),
    ("fraction-of-unit", "0.05 seconds", None),
    ("numeric-string", "50", "constant"),
    ("number-fraction", 10.5, "constant"),
    ("number-fraction-linear", 10.5, "linear"),
    ("number-fraction-exponential", 10.5, "exponential"),
    ("short-form", "30s", None),
    ("prototype-unit", "1 constructor", None),
    ("number-negative", -1, None),
    ("null", None, None),
    ("hex", "0x20", "linear"),
]
for label, delay, backoff in DELAYS:
    retries: dict[str, Any] = {"limit": 2, "delay": delay}
    if backoff:
        retries["backoff"] = backoff
    add(
        f"config-delay-{label}",
        f"retry delay {json.dumps(delay)} ({backoff or 'default exponential'}): two failures, "
        "then success",
        [
            do(
                "s",
                [{"throw": "Error", "message": "x"}, {"throw": "Error", "message": "y"}, *RETURN],
                {"retries": retries},
            )
        ],
    )

# -- do(): retries.limit (attemptedCount <= limit) ------------------------------------------
LIMITS: list[tuple[str, Any]] = [
    ("fraction-1.5", 1.5),
    ("fraction-0.5", 0.5),
    ("whole-float-2.0", 2.0),
    ("fraction-0.999", 0.999),
    ("tiny", 1e-9),
    ("string", "3"),
    ("negative", -1),
    ("null", None),
]
for label, limit in LIMITS:
    add(
        f"config-limit-{label}",
        f"retries.limit {json.dumps(limit)}: attempts while attemptedCount <= limit",
        [
            do(
                "s",
                [{"throw": "Error", "message": "x"}],
                {"retries": {"limit": limit, "delay": 5, "backoff": "constant"}},
            )
        ],
    )

# -- do(): the rest of the schema (strict objects, enum, merge) ------------------------------
CONFIGS: list[tuple[str, Any]] = [
    ("empty-object", {}),
    ("retries-empty", {"retries": {}}),
    ("retries-null", {"retries": None}),
    ("retries-limit-only", {"retries": {"limit": 1}}),
    ("retries-delay-only", {"retries": {"delay": 1}}),
    ("backoff-null", {"retries": {"limit": 1, "delay": 1, "backoff": None}}),
    ("backoff-capitalised", {"retries": {"limit": 1, "delay": 1, "backoff": "Linear"}}),
    ("retries-unknown-key", {"retries": {"limit": 1, "delay": 1, "jitter": True}}),
    ("sensitive-output", {"sensitive": "output"}),
    ("timeout-only-number", {"timeout": 5000}),
]
for label, config in CONFIGS:
    add(
        f"config-{label}",
        f"step config {json.dumps(config)}: strict schema, merged over the defaults",
        [do("s", [{"throw": "Error", "message": "x"}, *RETURN], config)],
    )

# -- do(): numbering NAME#K skips a step the engine rejects before numbering it ---------------
add(
    "count-after-rejected-config",
    "a rejected config throws before the step is numbered: the next step of that name is s#1",
    [
        do("s", RETURN, {"timeout": "30s"}),
        do(
            "s",
            [{"throw": "Error", "message": "x"}, *RETURN],
            {"retries": {"limit": 1, "delay": 30, "backoff": "constant"}},
        ),
    ],
)
add(
    "count-after-rejected-name",
    "a rejected name is not numbered either; a retried step after a rejected step",
    [
        do("s\u0001", RETURN),
        do(
            "s",
            [{"throw": "Error", "message": "x"}, *RETURN],
            {"retries": {"limit": 1, "delay": 20}},
        ),
        do(
            "s",
            [{"throw": "Error", "message": "y"}, *RETURN],
            {"retries": {"limit": 1, "delay": 10}},
        ),
    ],
)
add(
    "count-rejected-between-retried",
    "retried steps of one name around a rejected one keep their own keys and gaps",
    [
        do(
            "s",
            [{"throw": "Error", "message": "x"}, *RETURN],
            {"retries": {"limit": 1, "delay": 40}},
        ),
        do("s", RETURN, {"retries": {"limit": 1}}),
        do(
            "s",
            [{"throw": "Error", "message": "y"}, *RETURN],
            {"retries": {"limit": 1, "delay": 10}},
        ),
    ],
)

# -- do(): error classification (NonRetryableError by name or message) and error text ---------
ERRORS: list[tuple[str, dict[str, Any]]] = [
    ("typeerror", {"throw": "TypeError", "message": "bad"}),
    ("rangeerror", {"throw": "RangeError", "message": "bad"}),
    ("syntaxerror", {"throw": "SyntaxError", "message": "bad"}),
    ("referenceerror", {"throw": "ReferenceError", "message": "bad"}),
    ("evalerror", {"throw": "EvalError", "message": "bad"}),
    ("urierror", {"throw": "URIError", "message": "bad"}),
    ("custom-class", {"throw": "PaymentDeclined", "message": "card refused"}),
    ("custom-class-empty-message", {"throw": "PaymentDeclined", "message": ""}),
    ("custom-class-named-like-timeout", {"throw": "WorkflowTimeoutError", "message": "fake"}),
    ("error-empty-message", {"throw": "Error", "message": ""}),
    ("typeerror-empty-message", {"throw": "TypeError", "message": ""}),
    ("nonretryable-empty-message", {"throw": "NonRetryableError", "message": ""}),
    ("message-starts-with-nonretryable", {"throw": "Error", "message": "NonRetryableError nope"}),
    (
        "message-starts-with-nonretryable-colon",
        {"throw": "Error", "message": "NonRetryableError: x"},
    ),
    ("message-contains-nonretryable", {"throw": "Error", "message": "a NonRetryableError"}),
    ("typeerror-message-nonretryable", {"throw": "TypeError", "message": "NonRetryableErrorX"}),
    ("custom-class-nonretryable-prefix", {"throw": "NonRetryableErrorish", "message": "m"}),
    ("message-multiline", {"throw": "Error", "message": "line 1\nline 2"}),
    ("message-unicode", {"throw": "Error", "message": "caf\u00e9 \u2615 \U0001f600"}),
    ("value-string", {"throw_value": "a string"}),
    ("value-empty-string", {"throw_value": ""}),
    ("value-number", {"throw_value": 42}),
    ("value-fraction", {"throw_value": 1.5}),
    ("value-null", {"throw_value": None}),
    ("value-true", {"throw_value": True}),
    ("value-object", {"throw_value": {"a": 1}}),
    ("value-array", {"throw_value": [1, "a", None]}),
    ("value-big-number", {"throw_value": 1e21}),
    ("value-string-nonretryable", {"throw_value": "NonRetryableError: as text"}),
]
for label, attempt in ERRORS:
    add(
        f"error-{label}-caught",
        f"a step throws {json.dumps(attempt)} on every attempt (limit 1): retried or not, and "
        "the name and message run() sees when it catches it",
        [do("s", [attempt], {"retries": {"limit": 1, "delay": 0}})],
    )
for label, attempt in ERRORS[::3]:
    add(
        f"error-{label}-uncaught",
        f"a step throws {json.dumps(attempt)} and run() lets it escape: the instance's error",
        [do("s", [attempt], {"retries": {"limit": 0, "delay": 0}}, catch=False)],
    )
# (A NonRetryableError "after replay" is left out: Miniflare never completes a pause after a
# caught one, a documented difference shown by pause-after-caught-nonretryable-never-completes.)
for label, attempt in [
    ("nonretryable", {"throw": "NonRetryableError", "message": "nope"}),
    ("error", {"throw": "Error", "message": "x"}),
    ("custom-class", {"throw": "PaymentDeclined", "message": "no"}),
    ("typeerror", {"throw": "TypeError", "message": "t"}),
    ("value", {"throw_value": "v"}),
]:
    add(
        f"error-{label}-rethrown",
        "run() catches the step's error and throws it again: the instance's error",
        [do("s", [attempt], {"retries": {"limit": 0, "delay": 0}}, catch="rethrow")],
    )
    if label == "nonretryable":
        continue
    add(
        f"error-{label}-after-replay",
        "the step's error is stored (exhausted retries) and replayed after a pause/resume: "
        "the same name and message the second time",
        [
            do("s", [attempt], {"retries": {"limit": 0, "delay": 0}}),
            {"op": "sleep", "name": "z", "duration": 1000},
            do("t", RETURN),
        ],
        control=[{"op": "pause", "after_ms": 150}, {"op": "resume", "after_ms": 350}],
    )

# -- sleep(): ms() on a string, nothing checked ----------------------------------------------
SLEEPS: list[tuple[str, Any]] = [
    ("short-form-30s", "30s"),
    ("unit-capitalised", "1 Second"),
    ("negative-string", "-500"),
    ("garbage", "abc"),
    ("negative-number", -100),
    ("empty", ""),
    ("fraction-number", 0.5),
    ("prototype-unit", "1 constructor"),
    ("unknown-unit", "200 foo"),
    ("hex", "0x10"),
]
for label, duration in SLEEPS:
    add(
        f"sleep-{label}",
        f"sleep {json.dumps(duration)}: ms() without any check; NaN fails the timer's insert",
        [{"op": "sleep", "name": "z", "duration": duration, "catch": "name"}, do("s", RETURN)],
    )

# -- sleepUntil(): a time in the past throws, on every call ----------------------------------
add(
    "sleep-until-past",
    "sleepUntil a second before the instance was created: time-traveler",
    [{"op": "sleepUntil", "name": "z", "at_ms": -1000, "catch": "name"}, do("s", RETURN)],
)
add(
    "sleep-until-past-uncaught",
    "sleepUntil in the past, not caught: the instance's error",
    [{"op": "sleepUntil", "name": "z", "at_ms": -1000}],
)
add(
    "sleep-until-future",
    "sleepUntil 1 s after creation",
    [{"op": "sleepUntil", "name": "z", "at_ms": 1000, "catch": "name"}, do("s", RETURN)],
)
add(
    "sleep-until-replayed-after-its-moment",
    "a pause/resume after the sleepUntil's moment replays it: it throws then",
    [
        {"op": "sleepUntil", "name": "z", "at_ms": 600, "catch": "name"},
        {"op": "sleep", "name": "y", "duration": 2000},
    ],
    control=[{"op": "pause", "after_ms": 1100}, {"op": "resume", "after_ms": 1300}],
)
add(
    "sleep-until-replayed-before-its-moment",
    "a pause/resume while sleeping until a later moment: the replay sleeps on",
    [{"op": "sleepUntil", "name": "z", "at_ms": 600, "catch": "name"}, do("s", RETURN)],
    control=[{"op": "pause", "after_ms": 100}, {"op": "resume", "after_ms": 200}],
)
add(
    "pause-during-caught-sleep",
    "a pause lands while a sleep that run() wraps in try/catch is waiting",
    [{"op": "sleep", "name": "z", "duration": 400, "catch": "name"}, do("s", RETURN)],
    control=[{"op": "pause", "after_ms": 100}, {"op": "resume", "after_ms": 200}],
)
add(
    "sleep-until-in-parallel",
    "sleepUntil beside a step in one Promise.all",
    [
        {
            "op": "parallel",
            "steps": [
                {"op": "sleepUntil", "name": "z", "at_ms": 800},
                do("s", [{"hang_ms": 50, "return": "s"}], catch=False),
            ],
        }
    ],
)

# -- waitForEvent(): `options.timeout || "24 hours"`, ms(), the timeout race -----------------
WAITS: list[tuple[str, Any]] = [
    ("number-zero", 0),
    ("empty", ""),
    ("zero-string", "0"),
    ("zero-with-unit", "0 seconds"),
    ("garbage", "abc"),
    ("unit-capitalised", "1 Second"),
    ("negative-number", -5),
    ("fraction", 0.5),
    ("absent", None),
    ("unknown-unit", "1 foo"),
]
for label, timeout in WAITS:
    op: dict[str, Any] = {"op": "waitForEvent", "name": "w", "type": "t", "catch": "name"}
    if timeout is not None:
        op["timeout"] = timeout
    add(
        f"wait-timeout-{label}",
        f"waitForEvent timeout {json.dumps(timeout)}; the event comes 300 ms after creation",
        [op],
        events=[{"type": "t", "payload": 1, "after_ms": 300}],
    )

# -- control actions and their own errors (changeInstanceStatus) -----------------------------
CONTROLS: list[tuple[str, list[Any], list[Any]]] = [
    ("terminate-complete", [do("s", RETURN)], [("terminate", 300)]),
    (
        "terminate-twice",
        [{"op": "sleep", "name": "z", "duration": 500}],
        [("terminate", 100), ("terminate", 200)],
    ),
    (
        "terminate-errored",
        [do("s", [{"throw": "Error", "message": "x"}], NO_RETRIES, catch=False)],
        [("terminate", 300)],
    ),
    ("pause-complete", [do("s", RETURN)], [("pause", 300)]),
    ("resume-complete", [do("s", RETURN)], [("resume", 300)]),
    (
        "resume-terminated",
        [{"op": "sleep", "name": "z", "duration": 500}],
        [("terminate", 100), ("resume", 200)],
    ),
    (
        "pause-terminated",
        [{"op": "sleep", "name": "z", "duration": 500}],
        [("terminate", 100), ("pause", 200)],
    ),
    (
        "restart-during-sleep",
        [{"op": "sleep", "name": "z", "duration": 200}, do("s", RETURN)],
        [("restart", 100)],
    ),
    ("restart-complete", [do("s", RETURN)], [("restart", 300)]),
    (
        "restart-errored",
        [do("s", [{"throw": "Error", "message": "x"}], NO_RETRIES, catch=False)],
        [("restart", 300)],
    ),
    (
        "restart-paused",
        [{"op": "sleep", "name": "z", "duration": 300}, do("s", RETURN)],
        [("pause", 100), ("restart", 200)],
    ),
]
for label, body, controls in CONTROLS:
    add(
        f"control-{label}",
        "control calls at these times; what each one throws is in control_errors",
        body,
        control=[{"op": op, "after_ms": at} for op, at in controls],
    )
add(
    "restart-during-hanging-step",
    "restart while a step's attempt is running: the run starts again from the top",
    [do("s", [{"hang_ms": 300, "return": 1}]), do("t", RETURN)],
    control=[{"op": "restart", "after_ms": 100}],
)
# (A restart during a retry wait is left out: attempt numbers start again at 1 in the new run,
# and the trace's one-record-per-attempt-number gaps then mix the two runs.)
add(
    "restart-after-wait-timeout",
    "restart after an event wait timed out (caught): the wait runs again and gets the event",
    [
        {"op": "waitForEvent", "name": "w", "type": "t", "timeout": 50, "catch": "name"},
        {"op": "sleep", "name": "z", "duration": 1000},
    ],
    control=[{"op": "restart", "after_ms": 300}],
    events=[{"type": "t", "payload": "second run", "after_ms": 600}],
)
add(
    "parallel-two-waits-same-type",
    "two waits for one type in one Promise.all: the first to register gets the first event",
    [
        {
            "op": "parallel",
            "steps": [
                {"op": "waitForEvent", "name": "a", "type": "t"},
                {"op": "waitForEvent", "name": "b", "type": "t"},
            ],
        }
    ],
    events=[
        {"type": "t", "payload": 1, "after_ms": 100},
        {"type": "t", "payload": 2, "after_ms": 200},
    ],
)
add(
    "event-at-creation",
    "an event sent at once, before the instance runs: buffered for the wait",
    [{"op": "waitForEvent", "name": "w", "type": "t", "catch": "name"}],
    events=[{"type": "t", "payload": "first", "after_ms": 0}],
)
add(
    "event-type-case-sensitive",
    'an event of type "T" does not match a wait for "t"',
    [{"op": "waitForEvent", "name": "w", "type": "t", "timeout": 300, "catch": "name"}],
    events=[{"type": "T", "payload": 1, "after_ms": 50}],
)
add(
    "event-after-complete",
    "an event sent to a finished instance is taken without an error",
    [do("s", RETURN)],
    events=[{"type": "late", "payload": 1, "after_ms": 300}],
)

# -- binding create(): an id in use, a caller's id ------------------------------------------
add(
    "duplicate-id-while-running",
    "create() again with the id of a running instance",
    [{"op": "sleep", "name": "z", "duration": 300}, do("s", RETURN)],
    id="p2-duplicate-id-while-running",
    control=[{"op": "create_again", "after_ms": 100}],
)
add(
    "duplicate-id-after-complete",
    "create() again with the id of a finished instance",
    [do("s", RETURN)],
    id="p2-duplicate-id-after-complete",
    control=[{"op": "create_again", "after_ms": 300}],
)
add(
    "duplicate-id-after-terminate",
    "create() again with the id of a terminated instance",
    [{"op": "sleep", "name": "z", "duration": 500}],
    id="p2-duplicate-id-after-terminate",
    control=[{"op": "terminate", "after_ms": 100}, {"op": "create_again", "after_ms": 200}],
)
add(
    "instance-id-100-chars",
    "an instance id of exactly 100 characters, the local limit",
    [do("s", RETURN)],
    id="p2-id-" + "x" * 94,
)

# -- waitForEvent(): a buffered event beats even a 0 ms timeout; a stored timeout replays -----
add(
    "wait-timeout-zero-string-event-buffered",
    'an event sent before the wait starts, and a "0" timeout: the buffered event wins',
    [
        {"op": "sleep", "name": "z", "duration": 1000},
        {"op": "waitForEvent", "name": "w", "type": "t", "timeout": "0", "catch": "name"},
    ],
    events=[{"type": "t", "payload": "early", "after_ms": 20}],
)
add(
    "wait-timeout-replayed",
    "a wait that timed out (caught), replayed after pause/resume: the stored timeout again",
    [
        {"op": "waitForEvent", "name": "w", "type": "t", "timeout": 50, "catch": "name"},
        {"op": "sleep", "name": "z", "duration": 1500},
    ],
    control=[{"op": "pause", "after_ms": 300}, {"op": "resume", "after_ms": 500}],
    events=[{"type": "t", "payload": "late", "after_ms": 600}],
)
add(
    "step-timeout-replayed",
    "a step whose only attempt timed out (caught), replayed after pause/resume",
    [
        do("s", [{"hang_ms": 300, "return": 1}], {"timeout": 50, "retries": NO_RETRY}),
        {"op": "sleep", "name": "z", "duration": 1500},
    ],
    control=[{"op": "pause", "after_ms": 600}, {"op": "resume", "after_ms": 800}],
)
add(
    "wait-event-replayed",
    "a wait that got its event, replayed after pause/resume: the stored payload again",
    [
        {"op": "waitForEvent", "name": "w", "type": "t", "catch": "name"},
        {"op": "sleep", "name": "z", "duration": 1500},
    ],
    events=[{"type": "t", "payload": {"n": 1}, "after_ms": 50}],
    control=[{"op": "pause", "after_ms": 300}, {"op": "resume", "after_ms": 500}],
)

# -- run() results, step results, parallel groups and races ---------------------------------
add(
    "run-returns-nothing",
    "run() returns undefined: output is null",
    [do("s", RETURN)],
    result="nothing",
)
add(
    "run-returns-nothing-empty",
    "run() with no steps returns undefined",
    [],
    result="nothing",
)
add("step-returns-nothing", "a step returns undefined", [do("s", [{"return_nothing": True}])])
add(
    "step-returns-nothing-replayed",
    "a step that returned undefined, replayed after pause/resume",
    [do("s", [{"return_nothing": True}]), {"op": "sleep", "name": "z", "duration": 1000}],
    control=[{"op": "pause", "after_ms": 150}, {"op": "resume", "after_ms": 350}],
)
add(
    "parallel-sleep-step-wait",
    "a sleep, a step and an event wait in one Promise.all",
    [
        {
            "op": "parallel",
            "steps": [
                {"op": "sleep", "name": "a", "duration": 200},
                do("b", RETURN, catch=False),
                {"op": "waitForEvent", "name": "c", "type": "t"},
            ],
        }
    ],
    events=[{"type": "t", "payload": 5, "after_ms": 100}],
)
add(
    "parallel-wait-timeout-caught-in-slot",
    "an event wait times out inside Promise.all; its slot catches it",
    [
        {
            "op": "parallel",
            "steps": [
                {"op": "waitForEvent", "name": "c", "type": "t", "timeout": 100, "catch": "name"},
                do("b", RETURN, catch=False),
            ],
        }
    ],
)
add(
    "race-step-beats-sleep",
    "Promise.race of a 300 ms sleep and a 50 ms step: the step wins",
    [
        {
            "op": "parallel",
            "race": True,
            "steps": [
                {"op": "sleep", "name": "a", "duration": 300},
                do("b", [{"hang_ms": 50, "return": "b"}], catch=False),
            ],
        }
    ],
)
add(
    "race-sleep-beats-step",
    "Promise.race of a 50 ms sleep and a 300 ms step: the sleep wins, the step runs on",
    [
        {
            "op": "parallel",
            "race": True,
            "steps": [
                {"op": "sleep", "name": "a", "duration": 50},
                do("b", [{"hang_ms": 300, "return": "b"}], catch=False),
            ],
        }
    ],
)
add(
    "race-wait-timeout-caught",
    "Promise.race of an event wait that times out (caught) and a longer sleep",
    [
        {
            "op": "parallel",
            "race": True,
            "steps": [
                {"op": "waitForEvent", "name": "c", "type": "t", "timeout": 100, "catch": True},
                {"op": "sleep", "name": "a", "duration": 400},
            ],
        }
    ],
)
add(
    "race-event-beats-sleep",
    "Promise.race of an event wait and a sleep; the event comes first",
    [
        {
            "op": "parallel",
            "race": True,
            "steps": [
                {"op": "waitForEvent", "name": "c", "type": "t"},
                {"op": "sleep", "name": "a", "duration": 400},
            ],
        }
    ],
    events=[{"type": "t", "payload": "ev", "after_ms": 100}],
)
add(
    "race-failure-first",
    "Promise.race where the first to settle is a step that fails (uncaught)",
    [
        {
            "op": "parallel",
            "race": True,
            "catch": True,
            "steps": [
                do("b", [{"throw": "Error", "message": "lost"}], NO_RETRIES, catch=False),
                {"op": "sleep", "name": "a", "duration": 300},
            ],
        }
    ],
)

# -- status(): Miniflare's __LOCAL_DEV_STEP_OUTPUTS, step results and payloads in log order ---
OUTPUTS = {"step_outputs": True}
add(
    "outputs-steps-and-events",
    "step results and an event's payload in completion order; undefined and null results",
    [
        do("a", [{"return": {"x": [1]}}]),
        {"op": "waitForEvent", "name": "w", "type": "t"},
        do("b", [{"return_nothing": True}]),
        do("c", [{"return": None}]),
        {"op": "sleep", "name": "z", "duration": 10},
        do("d", [{"return": "d"}]),
    ],
    events=[{"type": "t", "payload": {"by": "ana"}, "after_ms": 50}],
    **OUTPUTS,
)
add(
    "outputs-after-replay",
    "a pause/resume replays the first step from its cache: it is not listed twice",
    [do("a", RETURN), {"op": "sleep", "name": "z", "duration": 1000}, do("b", [{"return": 2}])],
    control=[{"op": "pause", "after_ms": 150}, {"op": "resume", "after_ms": 350}],
    **OUTPUTS,
)
add(
    "outputs-parallel-completion-order",
    "two steps in Promise.all listed in the order they finished, not started",
    [
        {
            "op": "parallel",
            "steps": [
                do("slow", [{"hang_ms": 200, "return": "slow"}], catch=False),
                do("fast", [{"hang_ms": 10, "return": "fast"}], catch=False),
            ],
        }
    ],
    **OUTPUTS,
)
add(
    "outputs-failures-not-listed",
    "a failed step, a NonRetryableError and a timed-out wait list nothing",
    [
        do("a", [{"throw": "Error", "message": "x"}], NO_RETRIES),
        do("b", [{"throw": "NonRetryableError", "message": "y"}], NO_RETRIES),
        {"op": "waitForEvent", "name": "w", "type": "t", "timeout": 20, "catch": True},
        do("c", [{"return": "c"}]),
    ],
    **OUTPUTS,
)

# -- lengths in UTF-16 code units; strings JSON carries but UTF-8 refuses --------------------
EMOJI = "\U0001f600"  # two UTF-16 code units
add(
    "name-256-utf16-units",
    "a step name of 128 emoji: 256 UTF-16 code units, the limit",
    [do(EMOJI * 128, RETURN)],
)
add(
    "name-258-utf16-units",
    "a step name of 129 emoji: 129 characters but 258 UTF-16 code units, over the limit",
    [do(EMOJI * 129, RETURN)],
)
add(
    "name-255-ascii-plus-emoji",
    "255 ASCII characters and one emoji: 257 UTF-16 code units, over the limit",
    [do("a" * 255 + EMOJI, RETURN)],
)
add(
    "name-lone-surrogate",
    "a step name with a lone surrogate (JSON can carry it, UTF-8 cannot)",
    [do("s\ud800", RETURN)],
)
add(
    "result-lone-surrogate",
    "a step returns a string with a lone surrogate",
    [do("s", [{"return": "x\udc00y"}])],
)
add(
    "error-message-lone-surrogate",
    "a step's error message has a lone surrogate",
    [do("s", [{"throw": "Error", "message": "bad \ud83d"}], NO_RETRIES)],
)
add(
    "event-payload-lone-surrogate",
    "an event payload with a lone surrogate",
    [{"op": "waitForEvent", "name": "w", "type": "t", "catch": "name"}],
    events=[{"type": "t", "payload": {"k\udfff": "\ud800"}, "after_ms": 50}],
)
add(
    "event-type-emoji",
    "an event type outside the BMP",
    [{"op": "waitForEvent", "name": "w", "type": "t" + EMOJI, "catch": "name"}],
    events=[{"type": "t" + EMOJI, "payload": 1, "after_ms": 50}],
)


def main() -> int:
    OUT.mkdir(exist_ok=True)
    for name, scenario in SCENARIOS.items():
        # ensure_ascii: lone surrogates stay \\uXXXX escapes, which any JSON reader takes.
        text = json.dumps(scenario, indent=2, ensure_ascii=True) + "\n"
        (OUT / f"{name}.json").write_text(text, encoding="ascii")
    print(f"{len(SCENARIOS)} scenarios written to {OUT}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
