"""Writes the restart({from}) scenarios (format 2) into scenarios/: README.md, "restart from a
step". The pinned Miniflare (4.20260426.0) has no `from`, so each says "engine":
">=4.20260430.0"; they were recorded on 4.20260730.0:

    python tests/conformance/pass4.py            # writes scenarios/p4-*.json
    (cd /tmp/mf-new && npm i miniflare@4.20260730.0)
    node tests/conformance/driver.mjs --miniflare /tmp/mf-new/node_modules/miniflare \\
        --out DIR $(ls tests/conformance/scenarios/p4-*.json | grep -v trace)

Record twice (two folders), check the two agree (compare.mjs), then commit one.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

OUT = Path(__file__).parent / "scenarios"
ENGINE = ">=4.20260430.0"  # the first Miniflare whose binding takes restart({from})
SCENARIOS: dict[str, dict[str, Any]] = {}


def add(name: str, description: str, body: list[Any], **extra: Any) -> None:
    name = f"p4-restart-from-{name}"
    assert name not in SCENARIOS, name
    SCENARIOS[name] = {
        "name": name,
        "format": 2,
        "engine": ENGINE,
        "description": description,
        "step_outputs": True,
        "runs": True,
        "body": body,
    }
    SCENARIOS[name].update(extra)


def do(name: str, value: Any = None, **more: Any) -> dict[str, Any]:
    return {
        "op": "do",
        "name": name,
        "attempts": [{"return": name if value is None else value}],
    } | more


def restart(after_ms: int, **where: Any) -> dict[str, Any]:
    return {"op": "restart", "after_ms": after_ms, "from": where}


ABC = [do("a"), do("b"), do("c")]

add(
    "first-step",
    "restart from the first step: everything runs again",
    ABC,
    control=[restart(400, name="a")],
)
add(
    "middle-step",
    "restart from b: a replays from storage, b and c run again",
    ABC,
    control=[restart(400, name="b")],
)
add("last-step", "restart from c: only c runs again", ABC, control=[restart(400, name="c")])
add(
    "repeated-name-second",
    "x runs twice; restart from the second x (count 2)",
    [do("a"), do("x", 1), do("x", 2), do("c")],
    control=[restart(400, name="x", count=2)],
)
add(
    "repeated-name-first",
    "x runs twice; restart from the first x (count 1, the default)",
    [do("a"), do("x", 1), do("x", 2), do("c")],
    control=[restart(400, name="x")],
)
add(
    "explicit-type-do",
    'type "do" said outright',
    ABC,
    control=[restart(400, name="b", type="do", count=1)],
)
add(
    "unknown-step",
    "a step never started: WorkflowError instance.cannot_restart, nothing aborted",
    ABC,
    control=[restart(400, name="nope")],
)
add(
    "count-past-the-end",
    "count 2 of a name that ran once: not found",
    ABC,
    control=[restart(400, name="b", count=2)],
)
add(
    "count-zero",
    "count 0: no occurrence is the 0th: not found",
    ABC,
    control=[restart(400, name="b", count=0)],
)
add(
    "count-string",
    'count "1": compared with ===, so not found',
    ABC,
    control=[restart(400, name="b", count="1")],
)
add(
    "wrong-type",
    "a do step asked for as a sleep: not found",
    ABC,
    control=[restart(400, name="b", type="sleep")],
)
add(
    "unknown-type",
    'type "step": no such kind, not found',
    ABC,
    control=[restart(400, name="b", type="step")],
)
add(
    "not-yet-started",
    "while a sleeps, restart from c (not started yet): not found, the run goes on",
    [do("a"), {"op": "sleep", "name": "nap", "duration": "600 millis"}, do("c")],
    control=[restart(200, name="c")],
)
add(
    "while-sleeping",
    "restart from a while the sleep after it runs: a and the sleep run again",
    [do("a"), {"op": "sleep", "name": "nap", "duration": "600 millis"}, do("c")],
    control=[restart(200, name="a")],
)
add(
    "sleep-step",
    "restart from a sleep (type sleep): a replays, the sleep and c run again",
    [do("a"), {"op": "sleep", "name": "nap", "duration": "300 millis"}, do("c")],
    control=[restart(800, name="nap", type="sleep")],
)
add(
    "sleep-while-sleeping",
    "restart from the sleep in progress: it starts over",
    [do("a"), {"op": "sleep", "name": "nap", "duration": "800 millis"}, do("c")],
    control=[restart(400, name="nap", type="sleep")],
)
add(
    "wait-step",
    "restart from a wait (type waitForEvent): the consumed event is gone with it, "
    "a second event ends the new wait",
    [do("a"), {"op": "waitForEvent", "name": "w", "type": "go", "timeout": "5 seconds"}, do("c")],
    events=[
        {"type": "go", "payload": 1, "after_ms": 100},
        {"type": "go", "payload": 2, "after_ms": 900},
    ],
    control=[restart(600, name="w", type="waitForEvent")],
)
add(
    "after-wait-keeps-it",
    "restart from c after a wait: the wait replays its event, no new one needed",
    [do("a"), {"op": "waitForEvent", "name": "w", "type": "go", "timeout": "5 seconds"}, do("c")],
    events=[{"type": "go", "payload": 1, "after_ms": 100}],
    control=[restart(600, name="c")],
)
add(
    "before-wait-drops-buffer",
    "restart from a while the wait waits: an event buffered before the "
    "restart is dropped, the wait times out",
    [
        do("a"),
        {"op": "sleep", "name": "nap", "duration": "400 millis"},
        {"op": "waitForEvent", "name": "w", "type": "go", "timeout": "700 millis", "catch": True},
    ],
    events=[{"type": "go", "payload": 1, "after_ms": 100}],
    control=[restart(200, name="a")],
)
add(
    "then-sleep-and-wait",
    "restart from b: the sleep and the wait after it run again",
    [
        do("a"),
        do("b"),
        {"op": "sleep", "name": "nap", "duration": "200 millis"},
        {"op": "waitForEvent", "name": "w", "type": "go", "timeout": "3 seconds"},
        do("c"),
    ],
    events=[
        {"type": "go", "payload": "first", "after_ms": 300},
        {"type": "go", "payload": "second", "after_ms": 1300},
    ],
    control=[restart(700, name="b")],
)
add(
    "while-paused",
    "pause during the sleep, then restart from the sleep: it runs again, unpaused",
    [do("a"), {"op": "sleep", "name": "nap", "duration": "500 millis"}, do("c")],
    control=[{"op": "pause", "after_ms": 100}, restart(400, name="nap", type="sleep")],
)
add(
    "while-paused-unknown",
    "paused, restart from an unknown step: refused, still paused",
    [do("a"), {"op": "sleep", "name": "nap", "duration": "500 millis"}, do("c")],
    control=[{"op": "pause", "after_ms": 100}, restart(400, name="c")],
)
add(
    "errored",
    "b fails for good; restart from b: it fails again, a is not run again",
    [
        do("a"),
        {
            "op": "do",
            "name": "b",
            "attempts": [{"throw": "Error", "message": "bad"}],
            "config": {"retries": {"limit": 0, "delay": 0}},
        },
    ],
    control=[restart(400, name="b")],
)
add(
    "errored-from-first",
    "b fails for good; restart from a: both run again",
    [
        do("a"),
        {
            "op": "do",
            "name": "b",
            "attempts": [{"throw": "Error", "message": "bad"}],
            "config": {"retries": {"limit": 0, "delay": 0}},
        },
    ],
    control=[restart(400, name="a")],
)
add(
    "terminated",
    "terminated during the sleep, restart from the sleep",
    [do("a"), {"op": "sleep", "name": "nap", "duration": "600 millis"}, do("c")],
    control=[{"op": "terminate", "after_ms": 150}, restart(400, name="nap", type="sleep")],
)
add(
    "twice",
    "restart from c, then from b: each time the steps from there run again",
    ABC,
    control=[restart(400, name="c"), restart(800, name="b")],
)
add(
    "retried-step",
    "b fails once then succeeds; restart from b: its attempts count afresh",
    [
        do("a"),
        {
            "op": "do",
            "name": "b",
            "attempts": [{"throw": "Error", "message": "flaky"}, {"return": "b"}],
            "config": {"retries": {"limit": 2, "delay": 50, "backoff": "constant"}},
        },
        do("c"),
    ],
    control=[restart(600, name="b")],
)


def main() -> None:
    for stale in OUT.glob("p4-*.json"):
        if not stale.name.endswith(".trace.json"):
            stale.unlink()
    for name, scenario in SCENARIOS.items():
        (OUT / f"{name}.json").write_text(json.dumps(scenario, indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {len(SCENARIOS)} scenarios", file=sys.stderr)


if __name__ == "__main__":
    main()
