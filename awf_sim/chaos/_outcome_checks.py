"""The invariants about one run's own course: the outcome of the fault-free run, results that
serialise, events delivered once, no stuck instance, and retries as each step's config says
(with the step helpers they share). The invariants that compare lifetimes and effects, and
`check_run`, are in `_invariants`."""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Mapping, Sequence
from typing import Any

from awf_sim._report import entry_summary, format_at, unsent_event
from awf_sim.chaos._bigint import MAX_SAFE_INTEGER
from awf_sim.chaos._diff import (
    MAX_LINES,
    handler_site,
    workflow_site,
)
from awf_sim.chaos._model import Baseline, Observation, Violation
from awf_sim.dsl._example import expected_outcome
from awf_sim.engine._body import MAX_OUTPUT_BYTES
from awf_sim.engine._calls import TERMINAL
from awf_sim.engine._defaults import RUNAWAY_WAITS

__all__ = [
    "ENGINE_BUG",
    "STACK_SITE",
    "baseline_outcome",
    "events_delivered",
    "exhausted_by_faults",
    "no_stuck",
    "path_of",
    "retry_policy",
    "serializable",
]

ENGINE_BUG = (
    "This is the engine breaking Cloudflare's rules, not your workflow: please report it with "
    "the replay command below."
)


# -- helpers about steps ----------------------------------------------------------------------


def retry_delay(retries: Mapping[str, Any], attempt: int) -> int:
    """Cloudflare's backoff, derived here again on purpose: the invariant is an oracle for
    the engine, so it must not reuse the engine's own formula."""
    base: int = retries["delay"]
    if retries["backoff"] == "exponential":
        return int(base * 2 ** (attempt - 1))
    if retries["backoff"] == "linear":
        return base * attempt
    return base


def path_of(label: str | None) -> str | None:
    """ "Inventory.reserve#1" (a database write's step label) -> "Inventory.reserve"."""
    if label is None:
        return None
    return label.rsplit("#", 1)[0]


@functools.lru_cache(maxsize=8)
def _failures(
    base: Observation,
) -> tuple[frozenset[tuple[str | None, int | None]], frozenset[str | None]]:
    return (
        frozenset(
            (e["name"], e["attempt"]) for e in base.timeline if e["kind"] == "attempt-failure"
        ),
        frozenset(e["name"] for e in base.timeline if e["kind"] == "step-failure"),
    )


def exhausted_by_faults(base: Observation, obs: Observation) -> list[str]:
    """Steps that failed for good in this run because injected faults (or failures the
    baseline had too) used up every attempt, or took the last attempt of a step the baseline
    gave up on too: the outcome may change."""
    if not any(e["kind"] == "step-failure" for e in obs.timeline):
        return []
    base_failed, base_gave_up = _failures(base)
    failed: dict[str | None, list[int | None]] = {}
    for e in obs.timeline:
        if e["kind"] == "attempt-failure":
            failed.setdefault(e["name"], []).append(e["attempt"])
    out = []
    for e in obs.timeline:
        if e["kind"] != "step-failure":
            continue
        name = e["name"]
        attempts = failed.get(name, [])
        if name in base_gave_up:
            # The baseline gave up on this step too (an example declared to end errored), but
            # a fault took its last attempt: the run ends with the fault's error instead of
            # the handler's, by design.
            if attempts and (name, attempts[-1]) in obs.injected:
                out.append(e["path"] or name or "")
            continue
        if attempts and all(
            (name, a) in obs.injected or (name, a) in base_failed for a in attempts
        ):
            out.append(e["path"] or name or "")
    return out


# -- the invariants ---------------------------------------------------------------------------


def no_stuck(base: Baseline, obs: Observation) -> list[Violation]:
    if obs.status in TERMINAL:
        return []
    last_at = obs.timeline[-1]["at_ms"] if obs.timeline else 0
    hint = (
        "The workflow awaits something that no step, sleep or event will complete. A common "
        "cause is in-memory coordination (an asyncio.Event or Future, a module-level variable) "
        "set by a step on the first run: on replay that step is read from its checkpoint and "
        "does not run, so nothing sets it. Pass data between steps through their results, "
        "wf.wait_for events or the database."
    )
    if obs.end_ms - last_at >= 86_400_000 or not obs.bound_hit:
        what = (
            f"the instance is still {obs.status} at {format_at(obs.end_ms)} and nothing has "
            f"happened since {format_at(last_at)}: it waits on something that no step, sleep, "
            "retry or event wait will complete"
        )
    else:
        if obs.end_ms >= base.bound_ms:
            what = (
                f"the instance is still {obs.status} after {format_at(obs.end_ms)} of virtual "
                "time (the chaos time bound: twice the fault-free run, and at least 2 days)"
            )
        else:
            what = (
                f"the instance is still {obs.status} after {RUNAWAY_WAITS:,} sleeps and event "
                f"waits ({format_at(obs.end_ms)} of virtual time): it does not end on its own"
            )
        hint = (
            "The workflow keeps going: a loop of sleeps, waits or retries with no end? Give "
            "the loop an end (a count, or a condition a step's result decides). A workflow "
            "meant to run for ever cannot be judged by its outcome: test it mid-run "
            "(create_test_workflow(...).start(params), then wait_for_status)."
        )
    last = [e for e in obs.timeline if e["kind"] not in ("crash", "recover")][-1:]
    diff = [f"last timeline entry: {entry_summary(e)}" for e in last]
    return [
        Violation("no-stuck-instance", "instance", what, diff, hint, workflow_site(base.workflow))
    ]


STACK_SITE = re.compile(r"([^\s\"'(]+\.py)\W+(?:line\s+)?(\d+)")


def _error_site(base: Baseline, obs: Observation) -> str | None:
    """`flow.py:12`: where the fault-free run's error was raised. The innermost user frame of
    the failure's stack when the engine recorded one; else the handler of the step whose
    failure ended the run, else the workflow function."""
    for e in reversed(obs.timeline):
        stack = e.get("stack")
        if e["kind"] in ("workflow-failure", "attempt-failure", "step-failure") and stack:
            found = STACK_SITE.findall(str(stack))
            if found:
                return f"{found[-1][0]}:{found[-1][1]}"
    error = obs.error or {}
    for e in reversed(obs.timeline):
        if e["kind"] in ("step-failure", "attempt-failure") and e.get("error") == error:
            site = handler_site(base.workflow, e["path"] or "")
            if site is not None:
                return site
    return workflow_site(base.workflow)


def baseline_outcome(base: Baseline, obs: Observation) -> list[Violation]:
    # Faults are measured against the fault-free run; a fault-free run that fails where its
    # example does not say it should is a bug by itself, and every comparison with it is moot.
    status, error_name = expected_outcome(base.target.params)
    if obs.status not in TERMINAL:
        return []  # no-stuck-instance says it
    got = (obs.error or {}).get("name")
    if obs.status == status and (error_name is None or got == error_name):
        return []
    workflow = base.workflow.name
    if obs.status == "errored":
        error = obs.error or {}
        where = _error_site(base, obs)
        what = (
            f"the fault-free run of {workflow} errored: {error.get('name')}: "
            f"{error.get('message')}" + (f" ({where})" if where else "")
        )
        expected = "complete" if status == "complete" else f"errored with {error_name}"
        diff = [f"expected the example to end {expected}, it ended errored with {got}"]
        if not base.workflow.examples and base.target.params == {}:
            # The first run of a new flow: chaos had no input but `{}` to give it.
            hint = (
                f"{workflow} declares no examples, so it ran on {{}}: give it the input it "
                f"expects, @Workflow({workflow!r}, examples=[{{...}}]) (or --input JSON); "
                "chaos checks every example."
            )
        else:
            hint = (
                "Fix the error, or, if this input should fail (a declined payment), declare "
                f'it: examples=[Example({{...}}, expect="errored", error="{got}")].'
            )
            unsent = unsent_event(base.workflow, obs.timeline)
            if got == "WorkflowTimeoutError" and unsent is not None:
                hint = (
                    f"{unsent} If this input should time out, declare it: examples=["
                    'Example({...}, expect="errored", error="WorkflowTimeoutError")].'
                )
        return [Violation("baseline-outcome", workflow, what, diff, hint, where)]
    expected = "errored" + (f" with {error_name}" if error_name else "")
    what = f"the fault-free run of {workflow} ended {obs.status}, its example expects {expected}"
    hint = "The example declares a failure that the workflow no longer produces."
    return [
        Violation("baseline-outcome", workflow, what, [what], hint, workflow_site(base.workflow))
    ]


_SERIAL_MARKS = ("not serialisable", "is not JSON", "output is too large", "SQLITE_TOOBIG")
_STEP_IN_MESSAGE = re.compile(r'as the step "([^"]+)" returned')
_PARAMS_MISFIT = re.compile(r"workflow '[^']*': params\b")


def serializable(base: Baseline, obs: Observation) -> list[Violation]:
    out: dict[str, Violation] = {}
    for e in obs.timeline:
        err = e.get("error")
        if not err or e["kind"] not in ("attempt-failure", "workflow-failure"):
            continue
        message = str(err.get("message", ""))
        if err.get("name") != "SerializationError" and not any(m in message for m in _SERIAL_MARKS):
            continue
        if e["kind"] == "workflow-failure" and _PARAMS_MISFIT.match(message):
            # Params that do not fit the declared input type: no output was made, and
            # baseline-outcome says which field and to give the workflow examples.
            continue
        key = e.get("path") or "output"
        named = _STEP_IN_MESSAGE.search(message)
        if named is not None:  # the engine ended the instance over a step's result
            key = named.group(1).split("@", 1)[0]
        if key in out:
            continue
        where = (
            handler_site(base.workflow, key) if key != "output" else workflow_site(base.workflow)
        )
        if key == "output" and "SQLITE_TOOBIG" in message:
            what = (
                f"the workflow's output is over the {MAX_OUTPUT_BYTES:,} bytes of JSON that "
                "Cloudflare's engine can store, so the instance errors"
            )
        elif key == "output":
            what = "the workflow's output does not serialise to JSON"
        elif "too large" in message:
            what = f"{key} returned a result over Cloudflare's 1 MiB limit"
        else:
            what = f"{key} returned a value that does not serialise to JSON"
        attempt = e.get("attempt")
        if attempt is not None:
            what += f" (attempt {attempt})"
        who = key if key != "output" else "the workflow"
        hint = (
            "Everything that crosses a step boundary is stored as JSON: return only dicts, "
            f"lists, str, int, float, bool and None from {who}"
            " (datetime -> .isoformat(), set -> sorted list, objects -> dicts), and keep results "
            "under 1 MiB (store big data in the database and return its id)."
        )
        if key == "output" and "SQLITE_TOOBIG" in message:
            hint = "Return less: store big data in the database (or R2) and return its id."
        out[key] = Violation("serializable", key, what, [f"{err['name']}: {message}"], hint, where)
    for key, at, number in obs.unsafe_ints or ():
        if key in out:
            continue
        who = f"{key} returned" if key != "output" else "the workflow's output holds"
        out[key] = Violation(
            "serializable",
            key,
            f"{who} the integer {number}{f' at {at[1:]}' if at else ''}, beyond JavaScript's "
            f"safe range (±{MAX_SAFE_INTEGER}): on Cloudflare the instance errors at once "
            "(TypeError: Do not know how to serialize a BigInt)",
            [f"{key}{at}: {number}"],
            "Return such numbers as strings (str(n)), or in coarser units (milliseconds, "
            "not nanoseconds): a Python int crosses to the engine as a JavaScript BigInt, "
            "which it cannot store.",
            handler_site(base.workflow, key) if key != "output" else workflow_site(base.workflow),
        )
    return list(out.values())


def events_delivered(base: Baseline, obs: Observation) -> list[Violation]:
    if not obs.sent:
        return []
    consumers: dict[int, list[str]] = {}
    for e in obs.timeline:
        if e["kind"] == "wait-end" and e.get("seq") is not None:
            consumers.setdefault(e["seq"], []).append(e.get("name") or "?")
    out: list[Violation] = []
    for seq, waits in consumers.items():
        if len(waits) > 1:
            out.append(
                Violation(
                    "events-delivered",
                    f"event #{seq}",
                    f"event #{seq} was consumed {len(waits)} times (waits: {', '.join(waits)})",
                    [],
                    ENGINE_BUG,
                )
            )
    by_event: dict[int, list[Any]] = {}
    for s in obs.sent:
        by_event.setdefault(s.index, []).append(s)
    for copies in by_event.values():
        used = [(s, w) for s in copies for w in consumers.get(s.seq, [])]
        if len(used) <= 1:
            continue
        etype = copies[0].type
        diff = [
            f"copy {s.copy + 1} sent at {format_at(s.at_ms)} consumed by wait {w!r}"
            for s, w in used
        ]
        hint = (
            "Cloudflare delivers every sendEvent, duplicates included (a sender that retries "
            "after a timeout sends twice), and buffers events per type until a wait takes them. "
            "Deduplicate: put an id in the payload and skip ids already handled (keep them in a "
            "step result or the database), or give each wait its own event type."
        )
        out.append(
            Violation(
                "events-delivered",
                etype,
                f"event {etype!r} was delivered {len(used)} times: its duplicate was taken by "
                "another wait",
                diff,
                hint,
                workflow_site(base.workflow),
            )
        )
    return out


def _occurrences(timeline: Sequence[Mapping[str, Any]]) -> dict[str, list[list[Mapping[str, Any]]]]:
    """Per step name, each execution (from its step-start) with its attempt entries."""
    occ: dict[str, list[list[Mapping[str, Any]]]] = {}
    kinds = ("attempt-start", "attempt-failure", "attempt-success", "step-failure", "checkpoint")
    for e in timeline:
        kind = e["kind"]
        if kind == "step-start":
            occ.setdefault(e["name"], []).append([e])
        elif kind in kinds and e.get("name") in occ:
            occ[e["name"]][-1].append(e)
    return occ


def retry_policy(base: Baseline, obs: Observation) -> list[Violation]:
    # Fast path: no step failed and every step succeeded at its first attempt.
    if all(
        e["kind"] not in ("attempt-failure", "step-failure")
        and (e["kind"] != "attempt-start" or e["attempt"] == 1)
        for e in obs.timeline
    ):
        return []
    out: list[Violation] = []
    engine: list[str] = []
    for name, runs in _occurrences(obs.timeline).items():
        path = runs[0][0].get("path") or name
        config = base.config_of(path, name)
        for run in runs:
            starts = [e for e in run if e["kind"] == "attempt-start"]
            numbers = [e["attempt"] for e in starts]
            if numbers != list(range(1, len(numbers) + 1)):
                engine.append(f"{path}: attempts numbered {numbers}")
            for i, e in enumerate(run):
                if e["kind"] != "attempt-failure" or e.get("retry_in_ms") is None:
                    continue
                nxt = next((x for x in run[i + 1 :] if x["kind"] == "attempt-start"), None)
                if nxt is not None and nxt["at_ms"] - e["at_ms"] != e["retry_in_ms"]:
                    engine.append(
                        f"{path}: attempt {nxt['attempt']} started "
                        f"{nxt['at_ms'] - e['at_ms']} ms after attempt {e['attempt']} failed, "
                        f"not the {e['retry_in_ms']} ms announced"
                    )
                if config is not None:
                    want = retry_delay(config["retries"], e["attempt"])
                    if e["retry_in_ms"] != want:
                        engine.append(
                            f"{path}: retry delay after attempt {e['attempt']} was "
                            f"{e['retry_in_ms']} ms, its config gives {want} ms"
                        )
            if config is not None:
                limit = config["retries"]["limit"]
                if numbers and numbers[-1] > limit + 1:
                    engine.append(f"{path}: {numbers[-1]} attempts, its limit allows {limit + 1}")
                final = [e for e in run if e["kind"] == "step-failure"]
                if final and numbers:
                    err = final[-1].get("error") or {}
                    if err.get("name") != "NonRetryableError" and numbers[-1] < limit + 1:
                        engine.append(
                            f"{path}: gave up after attempt {numbers[-1]}, its limit allows "
                            f"{limit + 1}"
                        )
        # The workflow retrying a step that just exhausted its retries, at once, by itself.
        chain = 1
        total = 0
        for prev, cur in itertools.pairwise(runs):
            failed = [e for e in prev if e["kind"] == "step-failure"]
            total += sum(1 for e in prev if e["kind"] == "attempt-start")
            err = failed[-1].get("error") or {} if failed else {}
            if (
                failed
                and err.get("name") != "NonRetryableError"
                and cur[0]["at_ms"] == failed[-1]["at_ms"]
            ):
                chain += 1
                continue
            chain, total = 1, 0
        if chain > 1:
            total += sum(1 for e in runs[-1] if e["kind"] == "attempt-start")
            policy = "its retry config"
            if config is not None:
                r = config["retries"]
                policy = (
                    f"retries limit {r['limit']}, delay {format_at(r['delay'])}, {r['backoff']}"
                )
            out.append(
                Violation(
                    "retry-policy",
                    path,
                    f"the workflow called {path} again at once each time it exhausted its "
                    f"retries: {chain} calls, {total} attempts, no backoff between calls",
                    [f"{path}: {policy}; {total} attempts were made"],
                    f"The workflow catches {path}'s failure and calls the same step again "
                    "immediately, which bypasses the step's retry policy (its limit and "
                    "backoff). Raise `retries` (limit, delay, backoff) in the step's config "
                    "instead of looping in the workflow, or wait with `await wf.sleep(...)` "
                    "between calls.",
                    workflow_site(base.workflow),
                )
            )
    if engine:
        out.append(
            Violation(
                "retry-policy",
                engine[0].split(":", 1)[0],
                "attempts did not follow the step's retry config",
                engine[:MAX_LINES],
                ENGINE_BUG,
            )
        )
    return out
