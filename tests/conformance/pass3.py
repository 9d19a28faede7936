"""Writes fidelity pass 3's scenarios (format 2) into scenarios/: the engine's branches that pass 2
could not express, the step limit and instance id validation (README.md, "Pass 3").

    python tests/conformance/pass3.py            # writes scenarios/p3-*.json
    node tests/conformance/driver.mjs --out DIR tests/conformance/scenarios/p3-*.json

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
    name = f"p3-{name}"
    assert name not in SCENARIOS, name
    SCENARIOS[name] = {"name": name, "format": 2, "description": description, "body": body}
    SCENARIOS[name].update(extra)


def do(name: str, attempts: list[Any] = RETURN, catch: Any = "name", **more: Any) -> dict[str, Any]:
    op: dict[str, Any] = {"op": "do", "name": name, "attempts": attempts, **more}
    if catch is not False:
        op["catch"] = catch
    return op


# -- context.ts do(): `++lifetimeStepCounter > stepLimit` throws a WorkflowFatalError, before
# the name and config checks. The counter lives in the run's Context: every do() call of this
# run counts (rejected and replayed ones too); sleeps, waits and retries do not.
add(
    "step-limit-caught",
    "step limit 3: the fourth do() throws the limit's WorkflowFatalError, which run() catches",
    [do("a"), do("b"), do("c"), do("d")],
    step_limit=3,
)
add(
    "step-limit-uncaught",
    "step limit 2: the third do() throws the limit's error and run() lets it escape",
    [do("a"), do("b"), do("c", catch=False)],
    step_limit=2,
)
add(
    "step-limit-one",
    "step limit 1 (the smallest): the second do() of the same name is over it",
    [do("a"), do("a")],
    step_limit=1,
)
add(
    "step-limit-counts-rejected-names",
    "a call whose name the engine rejects still counts: the counter goes up before the check",
    [do("bad\u0001name"), do("a"), do("b")],
    step_limit=2,
)
add(
    "step-limit-counts-rejected-configs",
    "a call whose config the engine rejects still counts toward the limit",
    [do("a", config={"timeout": 0}), do("b"), do("c")],
    step_limit=2,
)
add(
    "step-limit-calls-over-the-limit-count-too",
    "every call past the limit throws again: the counter keeps rising, nothing resets it",
    [do("a"), do("b"), do("c"), do("a")],
    step_limit=1,
)
add(
    "step-limit-ignores-sleeps-and-waits",
    "sleep, sleepUntil and waitForEvent do not count: two do() calls fit a limit of 2",
    [
        {"op": "sleep", "name": "z1", "duration": 10},
        {"op": "sleepUntil", "name": "z2", "at_ms": 400},
        {"op": "waitForEvent", "name": "w", "type": "t", "timeout": 20, "catch": "name"},
        do("a"),
        {"op": "sleep", "name": "z3", "duration": 10},
        do("b"),
    ],
    step_limit=2,
)
add(
    "step-limit-ignores-retries",
    "one do() with three attempts is one step: it fits a limit of 1",
    [
        do(
            "a",
            [{"throw": "Error", "message": "x"}, {"throw": "Error", "message": "x"}, {"return": 3}],
            config={"retries": {"limit": 2, "delay": 10}},
        )
    ],
    step_limit=1,
)
add(
    "step-limit-replay-counts-from-zero",
    "the counter is per run: a replay after pause/resume counts the cached steps again from 0, "
    "so two steps fit a limit of 2 although the instance called do() three times in all",
    [do("a"), {"op": "sleep", "name": "z", "duration": 600}, do("b")],
    step_limit=2,
    control=[{"op": "pause", "after_ms": 200}, {"op": "resume", "after_ms": 400}],
)
add(
    "step-limit-replay-then-over",
    "after a replay the cached step counts again, so a third distinct step is over a limit of 2",
    [do("a"), {"op": "sleep", "name": "z", "duration": 600}, do("b"), do("c")],
    step_limit=2,
    control=[{"op": "pause", "after_ms": 200}, {"op": "resume", "after_ms": 400}],
)
add(
    "step-limit-in-parallel",
    "step limit 2, three do() calls started together: the third call is over it",
    [{"op": "parallel", "steps": [do("a"), do("b"), do("c")]}],
    step_limit=2,
)
add(
    "step-limit-restart-counts-again",
    "restart() starts a new run with a new counter: the limit applies to each run on its own",
    [do("a"), {"op": "sleep", "name": "z", "duration": 500}, do("b"), do("c")],
    step_limit=2,
    control=[{"op": "restart", "after_ms": 200}],
)

# -- binding.ts create(): isValidWorkflowInstanceId: a string, at most 100 UTF-16 units,
# ^[a-zA-Z0-9_][a-zA-Z0-9-_]*$ (JavaScript's `$`: no trailing newline). Otherwise
# WorkflowError "Workflow instance has invalid id", and no instance exists.
INVALID_IDS: list[tuple[str, str]] = [
    ("101-chars", "p3-" + "x" * 98),
    ("empty", ""),
    ("leading-dash", "-abc"),
    ("space", "a b"),
    ("dot", "a.b"),
    ("slash", "a/b"),
    ("trailing-newline", "abc\n"),
    ("non-ascii-letter", "caf\u00e9"),
    ("emoji", "a\U0001f642"),
    ("lone-surrogate", "a\ud800"),
]
for case, iid in INVALID_IDS:
    add(
        f"instance-id-invalid-{case}",
        f"create() with the instance id {iid!r}: the binding refuses it",
        [do("a")],
        id=iid,
    )

VALID_IDS: list[tuple[str, str]] = [
    ("leading-underscore", "_p3-underscore"),
    ("digits-only", "3141592653"),
    ("single-char", "Q"),
    ("trailing-dash", "p3-trailing-"),
    ("mixed-case", "P3-MiXeD_case"),
]
for case, iid in VALID_IDS:
    add(
        f"instance-id-valid-{case}",
        f"create() with the instance id {iid!r}: the binding takes it",
        [do("a")],
        id=iid,
    )


# -- engine.ts changeInstanceStatus / userTriggeredPause / attemptResume / attemptRestart, and
# the pause abort inside context.ts: the control branches pass 2 left out.
SLEEP = {"op": "sleep", "name": "z", "duration": 600}
add(
    "terminate-paused",
    "terminate() of a paused instance: only finished states refuse it, so it ends terminated",
    [SLEEP, do("a")],
    control=[{"op": "pause", "after_ms": 100}, {"op": "terminate", "after_ms": 300}],
)
add(
    "pause-twice",
    "a second pause() of a paused instance returns without a word; one resume() is enough",
    [SLEEP, do("a")],
    control=[
        {"op": "pause", "after_ms": 100},
        {"op": "pause", "after_ms": 200},
        {"op": "resume", "after_ms": 300},
    ],
)
add(
    "resume-twice",
    "a second resume() finds the instance running and does nothing",
    [SLEEP, do("a")],
    control=[
        {"op": "pause", "after_ms": 100},
        {"op": "resume", "after_ms": 200},
        {"op": "resume", "after_ms": 300},
    ],
)
add(
    "restart-waiting-for-pause",
    "restart() while a pause waits for a running step: the run starts over and is not paused",
    [do("a", [{"hang_ms": 400, "return": 1}]), do("b")],
    control=[{"op": "pause", "after_ms": 100}, {"op": "restart", "after_ms": 200}],
)
add(
    "restart-drops-buffered-event",
    "attemptRestart deletes the stored event map: an event buffered before restart() is gone, "
    "so the new run's wait times out",
    [
        {"op": "sleep", "name": "z", "duration": 500},
        {"op": "waitForEvent", "name": "w", "type": "t", "timeout": 400, "catch": "name"},
    ],
    events=[{"type": "t", "payload": 1, "after_ms": 50}],
    control=[{"op": "restart", "after_ms": 150}],
)
add(
    "restart-consumed-event-not-redelivered",
    "an event consumed before restart() is not handed to the new run's wait of its type",
    [
        {"op": "waitForEvent", "name": "w", "type": "t", "timeout": 400, "catch": "name"},
        {"op": "sleep", "name": "z", "duration": 500},
    ],
    events=[{"type": "t", "payload": 1, "after_ms": 50}],
    control=[{"op": "restart", "after_ms": 200}],
)
add(
    "restart-then-new-event",
    "an event sent after restart() reaches the new run's wait",
    [
        {"op": "sleep", "name": "z", "duration": 300},
        {"op": "waitForEvent", "name": "w", "type": "t", "timeout": 3000, "catch": "name"},
    ],
    events=[{"type": "t", "payload": "after", "after_ms": 700}],
    control=[{"op": "restart", "after_ms": 100}],
)
add(
    "wait-timeout-shifted-by-pause",
    "attemptResume offsets every timer by the paused time: a 500 ms wait paused for 600 ms "
    "still takes an event sent at 900 ms",
    # Not caught: a caught wait would catch the pause itself (p3-pause-during-caught-wait).
    [{"op": "waitForEvent", "name": "w", "type": "t", "timeout": 500}],
    events=[{"type": "t", "payload": "late", "after_ms": 900}],
    control=[{"op": "pause", "after_ms": 100}, {"op": "resume", "after_ms": 700}],
)
add(
    "same-name-across-kinds",
    "do, sleep and waitForEvent keep separate counters ('run-', 'sleep-', 'waitForEvent-' "
    "prefixes): one name for all three is no clash",
    [
        do("x"),
        {"op": "sleep", "name": "x", "duration": 10},
        {"op": "waitForEvent", "name": "x", "type": "t", "timeout": 2000, "catch": "name"},
        do("x", [{"return": 2}]),
    ],
    events=[{"type": "t", "payload": "e", "after_ms": 100}],
)
add(
    "sleep-same-name-different-durations-replayed",
    "sleep's cache key is its name and duration: two sleeps named z of different lengths both "
    "replay as done after pause/resume",
    [
        {"op": "sleep", "name": "z", "duration": 50},
        {"op": "sleep", "name": "z", "duration": 60},
        {"op": "sleep", "name": "y", "duration": 600},
        do("a"),
    ],
    control=[{"op": "pause", "after_ms": 300}, {"op": "resume", "after_ms": 500}],
)
add(
    "pause-during-caught-wait",
    "a pause while a caught waitForEvent waits: the engine rejects the wait with an ordinary "
    "Error that run() catches (the pause is lost), as for a sleep",
    [
        {"op": "waitForEvent", "name": "w", "type": "t", "timeout": 2000, "catch": "name"},
        do("a"),
    ],
    control=[{"op": "pause", "after_ms": 100}, {"op": "resume", "after_ms": 400}],
)
add(
    "pause-during-caught-retry-wait",
    "a pause during the retry wait of a caught step: the engine rejects do() with an ordinary "
    "Error that run() catches (the pause is lost), as for a sleep",
    [
        do(
            "a",
            [{"throw": "Error", "message": "x"}, {"return": 2}],
            config={"retries": {"limit": 1, "delay": 800}},
        ),
        do("b"),
    ],
    control=[{"op": "pause", "after_ms": 200}, {"op": "resume", "after_ms": 500}],
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
