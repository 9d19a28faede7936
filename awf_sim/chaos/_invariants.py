"""The durability invariants chaos checks on every run, each under a stable name.

A run is compared with the fault-free baseline. Values that depend on the wall clock or on the
seed (a timestamp a handler writes, an AI answer) legitimately differ between runs, so chaos
also makes a *probe* run, fault-free on another clock and seed; a field that differs between
the baseline and the probe is volatile and is not compared (`Masks`).

- replay-equivalence: status, output and error equal the baseline's, unless injected faults
  used up every attempt of a step (retries legitimately exhausted: the outcome may change);
  and every step result the workflow receives has the type it had in the baseline
  (a dataclass, a model: chaos/_type_checks.py).
- checkpoint-once: no handler runs again for a step that was checkpointed, neither under the
  same name nor, in a later lifetime, under a new name at the same call (the k-th call of that
  step path: its arguments changed between lifetimes).
- idempotent-effects: the database (digest, then cell by cell) and the recorded external
  effects (ctx.http, ctx.ai) equal the baseline's.
- determinism: the lifetime that finishes the instance asks again for every step, sleep and
  wait that an earlier lifetime asked for (same name and occurrence).
- retry-policy: per step, attempts, their gaps and the final failure follow the step's config;
  and the workflow does not retry a step that exhausted its retries at once, by itself.
- serializable: every step result serialises to JSON within 1 MiB and the output within the
  2,199,955 bytes Cloudflare's engine stores (engine._body.MAX_OUTPUT_BYTES), with no int
  beyond JavaScript's safe range (Cloudflare's engine cannot store one: _bigint).
- events-delivered: every event sent is consumed at most once (a duplicated event counts as
  one event), or is still buffered.
- no-stuck-instance: the instance reaches a terminal status.
"""

from __future__ import annotations

from collections import Counter

from awf_sim.chaos._diff import (
    MAX_LINES,
    db_diff,
    effects_diff,
    handler_site,
    json_diff,
    same,
    show,
    workflow_site,
)
from awf_sim.chaos._faults import DEADLINE_KINDS
from awf_sim.chaos._lifetime_checks import checkpoint_once, determinism
from awf_sim.chaos._model import Baseline, Observation, Violation
from awf_sim.chaos._outcome_checks import (
    STACK_SITE,
    baseline_outcome,
    events_delivered,
    exhausted_by_faults,
    no_stuck,
    path_of,
    retry_policy,
    serializable,
)
from awf_sim.chaos._revalued import Rerun, revalued
from awf_sim.chaos._type_checks import type_changes
from awf_sim.engine._calls import TERMINAL

__all__ = ["INVARIANTS", "check_run", "exhausted_by_faults"]

INVARIANTS: tuple[str, ...] = (
    "baseline-outcome",
    "replay-equivalence",
    "checkpoint-once",
    "idempotent-effects",
    "determinism",
    "retry-policy",
    "serializable",
    "events-delivered",
    "no-stuck-instance",
)


def _replay_equivalence(
    base: Baseline, obs: Observation, run_again: Rerun | None = None
) -> list[Violation]:
    expected = base.obs
    masks = base.masks
    diff: list[str] = []
    if not masks.status and obs.status != expected.status:
        got = obs.status
        if obs.error:
            got += f" ({obs.error['name']}: {obs.error['message']})"
        diff.append(f"status: expected {expected.status}, got {got}")
    elif not masks.error and not same(obs.error, expected.error):
        diff.append(f"error: expected {show(expected.error)}, got {show(obs.error)}")
    if obs.status == expected.status and not masks.status:
        json_diff(expected.output, obs.output, masks.output, "output", diff)
    if not diff:
        return type_changes(base, obs)
    rerun = _failed_on_rerun(base, obs)
    if rerun is not None:
        # The usual cause, named: a step whose first attempt made its effect before the
        # fault, and whose retry then trips over that effect (a duplicate key, a "not
        # found"), or a step that fails whenever it is retried. Saying "something outside a
        # step changed the outcome" would mislead.
        path, fault, err = rerun
        again = "is retried" if fault == "transient-error" else "runs again"
        return [
            *type_changes(base, obs),
            Violation(
                "replay-equivalence",
                path,
                f"{path} fails when it {again} after {fault}: {err}",
                [*diff[:MAX_LINES], f"{path}: the fault-free run never failed with {err}"],
                _rerun_hint(path, fault, err),
                workflow_site(base.workflow),
            ),
        ]
    crashed = obs.status == "errored" and (obs.error or {}).get("name") in _CODE_BUGS
    if run_again and not crashed and not _more(base, obs) and revalued(base, obs, run_again):
        # The outcome follows from a step that read the clock or random and returned another
        # value when it ran again: the workflow went on from its checkpoint, as it must.
        return type_changes(base, obs)
    key = "status" if diff[0].startswith("status") else "output"
    hint = (
        "The outcome must depend only on the params, step results and events, which replays "
        "read back from the store. Something else changed it under this fault: a value read "
        "outside a step (module state, the clock, random), the order in which concurrent "
        "steps finished, a step whose result depends on ctx.attempt or on how often it ran, "
        "or a caught step failure that the workflow handles differently."
    )
    what = "the outcome differs from the fault-free run"
    swapped = _swapped_events(base.obs, obs)
    if swapped is not None:
        # Not the workflow's own non-determinism: the waits took the events in another order.
        type_, waits, lines = swapped
        what += f": its waits took the {type_!r} events in another order"
        diff = [*lines, *diff]
        hint = (
            f"The waits {', '.join(waits)} share the event type {type_!r}, so each takes "
            "whichever event of that type arrives first, and a sender may be late (here one "
            "was held back): the events went to other waits than in the fault-free run. Give "
            f'each wait its own event type (type="{type_}-{waits[0]}"), or check the '
            "payload (who sent it, for what) before using it."
        )
    return [
        *type_changes(base, obs),
        Violation(
            "replay-equivalence",
            key,
            what,
            diff[:MAX_LINES],
            hint,
            workflow_site(base.workflow),
        ),
    ]


def _swapped_events(base: Observation, obs: Observation) -> tuple[str, list[str], list[str]] | None:
    """(event type, its waits, difference lines) when an event fault let the waits that share
    a type take its declared events in another order than the fault-free run."""
    timing = {f.path for f in obs.fired if f.kind in ("event-late", "event-early")}
    for type_ in sorted(t for t in timing if t is not None):
        took_base, took = _taken(base, type_), _taken(obs, type_)
        if len(took_base) < 2 or took == took_base:
            continue
        lines = [
            f"wait {w} took {type_!r} event {took[w] + 1}, in the fault-free run event "
            f"{took_base[w] + 1}"
            for w in took_base
            if w in took and took[w] != took_base[w]
        ]
        if lines:
            return type_, list(took_base), lines[:3]
    return None


def _taken(obs: Observation, type_: str) -> dict[str, int]:
    """Wait name -> the declared event (0-based, Workflow(events=[...])) it took."""
    index = {s.seq: s.index for s in obs.sent}
    return {
        str(e["name"]): index[e["seq"]]
        for e in obs.timeline
        if e["kind"] == "wait-end" and e.get("type") == type_ and e.get("seq") in index
    }


# The failure the engine records for an attempt a crash interrupted: not the step's own.
_INTERRUPTED = "WorkflowInternalError"
_TIMED_OUT = "WorkflowTimeoutError"
# Faults after which the engine runs the step again: its effect has happened (the first two),
# or the attempt failed before the handler ran.
_RERUN_FAULTS = ("crash-after-effect", "timeout", "transient-error")


def _failed_on_rerun(base: Baseline, obs: Observation) -> tuple[str, str, str] | None:
    """(step path, the fault, "Name: message") of the first step that, run again after a
    fault hit one of its attempts, failed with an error the fault-free run never saw there."""
    faulted: dict[str, str] = {}
    for f in obs.fired:  # per step, a fault after which its effect happened comes first
        if (
            f.ref_kind == "do"
            and f.path
            and f.kind in _RERUN_FAULTS
            and faulted.get(f.path) in (None, "transient-error")
        ):
            faulted[f.path] = f.kind
    if not faulted:
        return None
    hit = {(f.name, f.attempt) for f in obs.fired if f.ref_kind == "do"}
    seen = set()
    for e in base.obs.timeline:
        failed = e.get("error")
        if e["kind"] == "attempt-failure" and failed:
            seen.add((e.get("path"), failed["name"], failed["message"]))
    for e in obs.timeline:
        path, error = e.get("path"), e.get("error")
        if e["kind"] != "attempt-failure" or not error or path not in faulted:
            continue
        if error["name"] == _INTERRUPTED:
            continue  # the mark of a crash on the attempt it interrupted
        if error["name"] == _TIMED_OUT and (e["name"], e["attempt"]) in hit:
            continue  # the timeout the plan injected; a retry that times out by itself counts
        if (e["name"], e["attempt"]) in obs.injected:
            continue  # a transient error the plan injected: not the step's own failure
        if (path, error["name"], error["message"]) in seen:
            continue
        assert path is not None
        return path, faulted[path], f"{error['name']}: {error['message']}"
    return None


def _rerun_hint(path: str, fault: str, err: str) -> str:
    """The fix for a step that failed when the engine ran it again after `fault`."""
    if err.startswith(_TIMED_OUT):
        return (
            f"{path} ran past its timeout when the engine ran it again after the fault, "
            "which its first attempt never did: every attempt must finish within the step's "
            "`timeout`, whatever an earlier attempt did (a cold cache, a lock the first "
            "attempt still holds). Raise the step's timeout, or make the retry's path as "
            "fast as the first attempt's."
        )
    if fault == "transient-error":
        return (
            f"{path} fails whenever the engine retries it: Cloudflare retries a step after "
            "any failed attempt (an infrastructure error, a timeout, a crash), so every "
            "attempt must be able to succeed. Do not fail an attempt because it is not the "
            "first (ctx.attempt > 1) or because of what an earlier attempt may have done; "
            "if an earlier attempt may have made the effect, look it up by "
            "ctx.idempotency_key and return it."
        )
    return (
        f"{path} is not safe to run twice: its first attempt did its work before the fault, "
        "the engine ran it again (as Cloudflare does), and the second attempt failed on "
        "what the first had done (or only because it was not the first: ctx.attempt > 1). "
        "Make it idempotent: key its write on ctx.idempotency_key (INSERT ... ON CONFLICT "
        "DO NOTHING, or look the row up first), and send that key as the Idempotency-Key "
        "of HTTP calls."
    )


def _idempotent_effects(
    base: Baseline, obs: Observation, rerun: Rerun | None = None
) -> list[Violation]:
    expected = base.obs
    # A run that ended otherwise (errored where the fault-free run completed) never made
    # some of its writes: only a surplus is a repeated effect; the rest is the outcome's.
    surplus = obs.status != expected.status
    diff: list[str] = []
    if obs.digest != expected.digest and obs.snapshot is not None:
        # The rows are the digest's: the same digest gives the same lines.
        known = ("db_diff", obs.digest, surplus)
        lines = base._derived.get(known)
        if lines is None:
            lines = db_diff(
                expected.snapshot or {},
                obs.snapshot,
                base.masks.tables,
                surplus_only=surplus,
                inserted=expected.inserted,
            )
            if len(base._derived) < 4096:
                base._derived[known] = lines
        diff += lines
    if expected.effects is not None and obs.effects is not None:
        diff += effects_diff(
            expected.effects, obs.effects, base.masks.effects, surplus_only=surplus
        )
    if not diff:
        return []
    more = _more(base, obs)
    other = [] if more else _called_otherwise(base.obs, obs)
    if other and rerun and revalued(base, obs, rerun):
        return []  # called so because a step legitimately returned another value
    if other:
        # Not a repeated effect: the workflow called a step with other context or arguments
        # than in the fault-free run (it decided otherwise), and that step wrote something
        # else. Blaming the faulted step, which may write nothing at all, would mislead.
        path, name = other[0]
        hint = (
            f"The workflow called {path} with other context or arguments under this fault "
            "than in the fault-free run, so it wrote something else. What the workflow "
            "computes between steps must depend only on params, step results and events: "
            "not on the order or the time in which concurrent steps finish "
            "(asyncio.as_completed, a list appended to as steps finish, a race), nor on the "
            "clock, random or module state; on replay, checkpointed steps return at once, in "
            "call order. Combine concurrent results by what they are (`a, b = await "
            "asyncio.gather(...)`), or decide inside a step."
        )
        return [
            Violation(
                "idempotent-effects",
                path,
                f"{path} was called with other arguments than in the fault-free run "
                "(the workflow decided otherwise), and its effects differ",
                [f"{path}: called as {name}, never called so in the fault-free run", *diff][
                    :MAX_LINES
                ],
                hint,
                workflow_site(base.workflow),
            )
        ]
    culprits = _culprits(obs, more)
    key = culprits[0] if culprits else "database"
    where = handler_site(base.workflow, key) if culprits else None
    if culprits:
        named = f"{key} ({where})" if where else key
        hint = (
            f"{named} is not idempotent. Cloudflare runs a step again when the engine restarts "
            "after its handler finished but before its result was saved (at-least-once), and a "
            "timed-out attempt's handler keeps running while the retry starts. Make it "
            "idempotent with `ctx.idempotency_key`, which is the same for every attempt and "
            "replay of this step: store it with the write (a UNIQUE column, INSERT ... ON "
            "CONFLICT DO NOTHING) and skip the work when it is already there; send it as the "
            "Idempotency-Key header of HTTP calls."
        )
        what = f"{key} changed the database or the outside world more than once"
    else:
        hint = (
            "The database or external effects differ from the fault-free run. Make every step "
            "that writes idempotent with `ctx.idempotency_key`."
        )
        what = "the effects differ from the fault-free run"
    return [Violation("idempotent-effects", key, what, diff[:MAX_LINES], hint, where)]


def _called_otherwise(base: Observation, obs: Observation) -> list[tuple[str, str]]:
    """(path, name) of the steps this run called under a name (its context and arguments
    hashed) that the fault-free run never used, though it called that step path too."""
    before: dict[str, set[str]] = {}
    for _kind, calls in base.lifetimes:
        for k, p, n, _c in calls:
            if k == "do":
                before.setdefault(p, set()).add(n)
    found: dict[str, str] = {}
    for _kind, calls in obs.lifetimes:
        for k, p, n, _c in calls:
            if k == "do" and p in before and n not in before[p]:
                found.setdefault(p, n)
    return list(found.items())


def _more(base: Baseline, obs: Observation) -> Counter[str]:
    """Step path -> how many more writes (and external calls) it made than in the fault-free
    run, for the steps that made more."""
    more: Counter[str] = Counter()
    if obs.writes is not None and base.obs.writes is not None:
        mine = Counter(path_of(step) for _t, _op, step in obs.writes)
        theirs = Counter(path_of(step) for _t, _op, step in base.obs.writes)
        for path, n in mine.items():
            if path is not None and n > theirs.get(path, 0):
                more[path] += n - theirs.get(path, 0)
    if obs.effect_steps is not None and base.obs.effect_steps is not None:
        mine = Counter(path_of(s) for s in obs.effect_steps)
        theirs = Counter(path_of(s) for s in base.obs.effect_steps)
        for path, n in mine.items():
            if path is not None and n > theirs.get(path, 0):
                more[path] += n - theirs.get(path, 0)
    return more


def _culprits(obs: Observation, more: Counter[str]) -> list[str]:
    """Step paths that wrote (or called out) more often than in the fault-free run (`more`);
    else the steps a fault made run again, if they write at all (a step that writes nothing
    cannot have changed the database)."""
    if more:
        return [p for p, _n in more.most_common()]
    wrote: set[str | None] | None = None
    if obs.writes is not None and obs.effect_steps is not None:
        wrote = {path_of(step) for _t, _op, step in obs.writes}
        wrote |= {path_of(s) for s in obs.effect_steps}
    return [
        f.path
        for f in obs.fired
        if f.kind in ("crash-after-effect", "timeout")
        and f.path is not None
        and (wrote is None or f.path in wrote)
    ]


_COMPARES = {"replay-equivalence": _replay_equivalence, "idempotent-effects": _idempotent_effects}
_CHECKS = {
    "checkpoint-once": checkpoint_once,
    "baseline-outcome": baseline_outcome,
    "determinism": determinism,
    "retry-policy": retry_policy,
    "serializable": serializable,
    "events-delivered": events_delivered,
    "no-stuck-instance": no_stuck,
}


def _more_wait_timeouts(base: Observation, obs: Observation) -> bool:
    """Whether some wait timed out more often in this run than in the fault-free one."""

    def timeouts(o: Observation) -> Counter[str | None]:
        return Counter(
            e["name"] for e in o.timeline if e["kind"] == "wait-end" and e.get("timed_out")
        )

    return bool(timeouts(obs) - timeouts(base))


# Errors that only a bug in the workflow's own code raises, never a deliberate outcome.
_CODE_BUGS = frozenset(
    {
        "AttributeError",
        "TypeError",
        "KeyError",
        "IndexError",
        "NameError",
        "UnboundLocalError",
        "ZeroDivisionError",
        "RecursionError",
    }
)


def _broken_branch(base: Baseline, obs: Observation) -> list[Violation]:
    """A run whose faults took a branch the fault-free run never took, by design (a wait
    timed out, a step failed for good), where the workflow body then crashed on its own code
    (an AttributeError on the None a timeout left, say). Its outcome is not compared with the
    fault-free run's, but such a crash is a bug, not another outcome by design."""
    error = obs.error or {}
    name = error.get("name")
    if obs.status != "errored" or name not in _CODE_BUGS:
        return []
    if base.obs.status == "errored" and (base.obs.error or {}).get("name") == name:
        return []
    if any(e["kind"] == "step-failure" and e.get("error") == error for e in obs.timeline):
        return []  # a step's own failure, passed on uncaught: not the body's code
    timed_out = Counter(
        e["name"] for e in obs.timeline if e["kind"] == "wait-end" and e.get("timed_out")
    ) - Counter(
        e["name"] for e in base.obs.timeline if e["kind"] == "wait-end" and e.get("timed_out")
    )
    if timed_out:
        wait = str(next(iter(timed_out)))
        key = wait
        cause = f"the event wait {wait} times out"
        how = f"an event comes late or never (test it with modifier.force_event_timeout({wait!r}))"
    else:
        steps = exhausted_by_faults(base.obs, obs)
        key = steps[0] if steps else base.workflow.name
        cause = f"{key} fails for good" if steps else "a step fails for good"
        how = (
            "a step keeps failing until its retries are used up (test it with "
            f"modifier.mock_step_error({key!r}, ...))"
        )
    site = _body_site(obs) or workflow_site(base.workflow)
    at = f" ({site})" if site else ""
    message = f"{name}: {error.get('message')}"
    return [
        Violation(
            "replay-equivalence",
            key,
            f"when {cause}, the workflow fails with {message}{at}",
            [
                f"status: expected {base.obs.status}, got errored ({message})",
                f"{cause} in this run, never in the fault-free run",
            ],
            f"This run took a branch the fault-free run never takes: {cause}, as on "
            f"Cloudflare when {how}. The workflow's code on that branch raises {name}"
            f"{at}: fix that branch so that it ends the way you mean it to.",
            site,
        )
    ]


def _body_site(obs: Observation) -> str | None:
    """`flow.py:19`: the innermost user frame of the workflow-failure's stack."""
    for e in reversed(obs.timeline):
        if e["kind"] == "workflow-failure" and e.get("stack"):
            found = STACK_SITE.findall(str(e["stack"]))
            if found:
                return f"{found[-1][0]}:{found[-1][1]}"
    return None


def check_run(
    base: Baseline, obs: Observation, rerun: Rerun | None = None
) -> tuple[list[str], list[Violation]]:
    """Check one run: (the invariants that applied to it, the violations found). `rerun`
    (`_run.run_on`) runs a plan again: with it, an outcome that follows from a step that
    legitimately returned another value is not a violation (`_revalued`)."""
    checked: list[str] = []
    found: list[Violation] = []
    exhausted = bool(obs.plan) and bool(exhausted_by_faults(base.obs, obs))
    # An event at or past its wait's deadline may take the timeout branch: another outcome,
    # by design, so outcome and effects are not compared (the other invariants still are).
    exhausted = exhausted or any(f.kind in DEADLINE_KINDS for f in obs.fired)
    # An event held until just before its own wait's timeout still counts for that wait, but
    # when several events share its type, the waits take the others first and a later wait
    # (with a shorter timeout) may time out before it comes: a withheld event, by design.
    exhausted = exhausted or (
        any(f["kind"] == "event-late" for f in obs.plan) and _more_wait_timeouts(base.obs, obs)
    )
    broken_branch = _broken_branch(base, obs) if exhausted and obs.plan else []
    for name in INVARIANTS:
        if name == "replay-equivalence" and broken_branch:
            checked.append(name)
            found += broken_branch
            continue
        # Comparisons with the baseline: the fault-free run itself is the reference, and a run
        # whose faults exhausted a step's retries may end differently by design.
        if name in ("replay-equivalence", "idempotent-effects") and (
            not obs.plan or exhausted or obs.status not in TERMINAL
        ):
            continue
        if name == "determinism" and (len(obs.lifetimes) < 2 or obs.status not in TERMINAL):
            continue
        if name == "events-delivered" and not obs.sent:
            continue
        if name == "baseline-outcome" and obs.plan:
            continue  # the fault-free run only
        checked.append(name)
        if name in ("replay-equivalence", "idempotent-effects"):
            found += _COMPARES[name](base, obs, rerun)
        else:
            found += _CHECKS[name](base, obs)
    # A step that ran again because its arguments changed on replay wrote twice, but the
    # cause is the workflow's non-determinism, not the handler: say so.
    renamed = {v.key for v in found if v.invariant in ("determinism", "checkpoint-once")}
    for v in found:
        if v.invariant == "idempotent-effects" and v.key in renamed and _more(base, obs)[v.key]:
            v.message = (
                f"{v.key} ran again under another name (its arguments changed on replay) and "
                "its effects happened twice"
            )
            v.hint = (
                f"{v.key}'s checkpoint was not found on replay because the workflow computed "
                "other arguments for it, so its idempotency key changed too: fix the "
                "determinism violation first (move the non-deterministic read into a step, "
                '`await wf.do("now", lambda: ...)`).'
            )
            v.where = workflow_site(base.workflow)
    return checked, found
