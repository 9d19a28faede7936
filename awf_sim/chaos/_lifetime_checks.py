"""The invariants that compare an instance's lifetimes: each replay asks again for what the
earlier ones asked for (`determinism`), and never runs the handler of a checkpointed step
again (`checkpoint-once`). The other comparisons, and `check_run`, are in `_invariants`."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from awf_sim.chaos._diff import workflow_site
from awf_sim.chaos._model import Baseline, Observation, Violation
from awf_sim.chaos._outcome_checks import ENGINE_BUG
from awf_sim.engine._calls import TERMINAL

__all__ = ["checkpoint_once", "determinism"]


def determinism(base: Baseline, obs: Observation) -> list[Violation]:
    if len(obs.lifetimes) < 2 or obs.status not in TERMINAL:
        return []
    _final_kind, final_calls = obs.lifetimes[-1]
    final = {(k, n, c) for k, _p, n, c in final_calls}
    final_raw = _raw_names(final_calls)
    out: dict[str, Violation] = {}
    renamed_at: set[tuple[str, int]] = set()  # (kind, position) of a raw name reported
    for number, (_kind, calls) in enumerate(obs.lifetimes[:-1], start=1):
        asked = {n for _k, _p, n, _c in calls}
        raw = _raw_names(calls)
        missing = [(k, p, n, c) for k, p, n, c in calls if (k, n, c) not in final]
        for kind, path, name, count in missing:
            if path in out:
                continue
            at = raw.get((kind, name))
            if at is not None:
                # A name the user wrote (`wf.do(f"snapshot-{time.time()}")`): the call at the
                # same position of the final lifetime is the same call under another name.
                if (kind, at) in renamed_at:
                    continue  # that call's name changed again in a later lifetime: one bug
                renamed_at.add((kind, at))
                now = next((n for (k, n), i in final_raw.items() if k == kind and i == at), None)
                if now is not None and now not in asked:
                    last = len(obs.lifetimes)
                    out[path] = _renamed_violation(base, kind, number, name, last, now)
                    continue
            instead = sorted(
                {n2 for k2, p2, n2, _c in final_calls if p2 == path and k2 == kind} - {name}
            )
            what = _WHAT.get(kind, kind)
            diff = [
                f"lifetime {number} called {what} {name}"
                + (f" (call {count})" if count > 1 else "")
            ]
            if instead:
                diff.append(
                    f"lifetime {len(obs.lifetimes)} (the replay that finished) called "
                    + ", ".join(instead)
                    + " instead"
                )
            else:
                diff.append(
                    f"lifetime {len(obs.lifetimes)} (the replay that finished) never called it"
                )
            hint = (
                "The workflow function runs again from the top on every replay, so whatever it "
                f"computes outside steps must come out the same; here {path}'s context or "
                "arguments (or whether it is called at all) changed between lifetimes. Move the "
                "non-deterministic read (datetime.now(), time.time(), random, uuid4, a global "
                "counter) into a step, so that its value is checkpointed: "
                '`now = await wf.do("now", lambda: datetime.now().isoformat())`. Do not '
                "decide on the order in which concurrent steps finish (asyncio.as_completed, "
                "a list appended to as they finish): on replay, checkpointed steps return at "
                "once, in call order; use `a, b = await asyncio.gather(...)`."
            )
            out[path] = Violation(
                "determinism",
                path,
                f"the replay did not ask for {what} {path} as lifetime {number} had: "
                "the workflow is not deterministic",
                diff,
                hint,
                workflow_site(base.workflow),
            )
    return list(out.values())


_WHAT = {"do": "step", "sleep": "sleep", "wait": "event wait"}


def _raw_names(calls: Iterable[tuple[str, str, str, int]]) -> dict[tuple[str, str], int]:
    """(kind, name) -> position among the lifetime's calls of that kind, for the names the
    user wrote (a `wf.do`, a sleep or a wait: its path is its name; a domain step's name
    carries the hash of its arguments)."""
    positions: dict[tuple[str, str], int] = {}
    seen: Counter[str] = Counter()
    for kind, path, name, _count in calls:
        if path == name:
            positions.setdefault((kind, name), seen[kind])
            seen[kind] += 1
    return positions


def _renamed_violation(
    base: Baseline, kind: str, number: int, name: str, last: int, now: str
) -> Violation:
    what = _WHAT.get(kind, kind)
    return Violation(
        "determinism",
        name,
        f"the {what} name {name!r} changed on replay: the workflow is not deterministic",
        [
            f"lifetime {number} called {what} {name}",
            f"lifetime {last} (the replay that finished) called {now} at that place instead",
        ],
        f"A {what} is found again on replay by its name, and this name is computed from "
        "something that changes between replays (the clock, random, a counter), so the "
        f"replay did not find {name} and "
        + ("ran the step again under the new name. " if kind == "do" else "started afresh. ")
        + "Give it a constant name, or one made only from params, step results and events; "
        'read the clock inside the step (`await wf.do("snapshot", lambda: time.time())`).',
        workflow_site(base.workflow),
    )


def checkpoint_once(base: Baseline, obs: Observation) -> list[Violation]:
    out: dict[str, Violation] = {}
    # The engine: a handler that runs for a step (name and occurrence) already checkpointed.
    done: set[tuple[str, int]] = set()
    for event, lifetime, path, _occ, name, count, attempt in obs.log:
        if event == "ckpt":
            done.add((name, count))
        elif (name, count) in done and path not in out:
            out[path] = Violation(
                "checkpoint-once",
                path,
                f"{path} ran its handler again (attempt {attempt}) after its result was "
                "checkpointed",
                [f"{name}: checkpointed, then run again in lifetime {lifetime}"],
                ENGINE_BUG,
            )
    # The workflow: the replay that finished never asked for a step an earlier lifetime had
    # checkpointed, and ran the handler of the same step path under a new name instead (its
    # arguments changed). Judged on whole lifetimes: concurrent steps may be asked for in
    # another order on replay.
    if len(obs.lifetimes) < 2 or obs.status not in TERMINAL:
        return list(out.values())
    last = len(obs.lifetimes)
    final = {(n, c) for k, _p, n, c in obs.lifetimes[-1][1] if k == "do"}
    earlier = {(n, c) for _kind, calls in obs.lifetimes[:-1] for k, _p, n, c in calls if k == "do"}
    orphans: dict[str, tuple[int, str]] = {}
    for event, lifetime, path, _occ, name, count, _attempt in obs.log:
        if event == "ckpt" and lifetime < last and (name, count) not in final:
            orphans.setdefault(path, (lifetime, name))
    for event, lifetime, path, _occ, name, count, _attempt in obs.log:
        if event != "run" or lifetime != last or path in out or path not in orphans:
            continue
        if (name, count) in earlier:
            continue
        was_in, old = orphans[path]
        out[path] = Violation(
            "checkpoint-once",
            path,
            f"{path} was checkpointed in lifetime {was_in}, and its handler ran again in "
            f"lifetime {lifetime} under another name: its arguments changed on replay",
            [
                f"lifetime {was_in}: {old} (checkpointed, never asked for again)",
                f"lifetime {lifetime}: {name} (handler ran again)",
            ],
            "A step is found again on replay by its name, which hashes its context and "
            f"arguments; {path} got different ones after the replay, so its checkpoint was "
            "not found and its effects happened twice. Compute step arguments only from "
            "params, step results and events: move reads of the clock, random or other "
            'outside state into a step (`await wf.do("now", lambda: ...)`).',
            workflow_site(base.workflow),
        )
    return list(out.values())
