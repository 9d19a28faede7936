"""Fault kinds, fault plans and replay tokens: the vocabulary of chaos (`_inject` injects them).

A fault is a dict (DESIGN §6):

    {"kind": "crash-after-effect", "step": "Inventory.reserve", "attempt": 1}
    {"kind": "crash-during-sleep", "step": "cool-off"}
    {"kind": "event-duplicate", "type": "approval"}
    {"kind": "clock-skew", "step": "Inventory.check", "ms": 3600000}
    {"kind": "reseed", "step": "Inventory.check", "seed": 7}

`step` is a selector as in the test modifier (dotted path, glob, raw step name, or
`{"name": ..., "index": k}`: the k-th matching call of one lifetime). A plan is a list of faults;
`plan_token` turns it into a short URL-safe token and `decode_token` gives the same plan back.

What each kind does, and why that is what Cloudflare can do to a workflow:

- crash-before-step: the engine dies just before the step starts (attempt 1: nothing of it is
  stored yet), or, for attempt n > 1, after attempt n's count was stored and before its
  handler ran; the instance replays at once.
- crash-after-effect: the handler of attempt n returned, its checkpoint was not written; the
  replay runs the handler again (at-least-once, SEMANTICS §7) as attempt n + 1.
- crash-after-checkpoint: the engine dies right after the checkpoint; the replay must read the
  step from the store and not run it again.
- crash-during-sleep, crash-during-wait: the instance is evicted while it hibernates and is
  woken by its timer (the sleep's end, the wait's timeout) or by an event sent to it, then
  replays from the top at that later time, as Cloudflare does after hibernation.
- transient-error: attempt n throws (the handler does not run) and is retried per the config.
- timeout: attempt n times out after the step's configured timeout; the handler still ran (its
  effects happened) and its result is ignored, as on Cloudflare.
- event-early, event-late, event-duplicate: the first declared event of that type
  (`Workflow(events=[...])`) is sent at time 0 (before any wait starts; Cloudflare buffers it),
  held back until 1 ms before the timeout of the wait that received it in the fault-free run
  (timed from when that wait starts in this run: the latest it still counts), or sent twice
  (a sender that retried; Cloudflare does not deduplicate `sendEvent`).
- event-at-deadline, event-withheld: that event is sent exactly at the timeout of the wait that
  received it in the fault-free run, or withheld until 1 ms after it, so the wait times out and
  the workflow takes its timeout branch (the event arrives late, to a later wait or none). The
  outcome may differ from the fault-free run by design: outcome and effects are not compared.
- clock-skew, reseed: the engine crashes after the step's checkpoint and the replay runs on a
  machine whose wall clock is `ms` off, or whose randomness is seeded with `seed`. Without a
  `step`, they change the next replay that another fault causes.

Every fault fires at most once per run.
"""

from __future__ import annotations

import base64
import json
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

from awf_sim.chaos._model import Fault, Plan
from awf_sim.dsl._errors import DefinitionError
from awf_sim.engine._selectors import parse_selector
from awf_sim.errors import FaultPlanError

__all__ = [
    "DEADLINE_KINDS",
    "DEFAULT_SKEW_MS",
    "EVENT_KINDS",
    "HOLD_OFFSET_MS",
    "KINDS",
    "KIND_GROUPS",
    "STEP_KINDS",
    "FaultPlanError",
    "decode_token",
    "describe_fault",
    "normalize_fault",
    "normalize_plan",
    "parse_kinds",
    "plan_token",
]

KINDS: tuple[str, ...] = (
    "crash-before-step",
    "crash-after-effect",
    "crash-after-checkpoint",
    "crash-during-sleep",
    "crash-during-wait",
    "transient-error",
    "timeout",
    "event-early",
    "event-late",
    "event-at-deadline",
    "event-withheld",
    "event-duplicate",
    "clock-skew",
    "reseed",
)
# Kinds aimed at a `do` step and one of its attempts.
ATTEMPT_KINDS = frozenset(
    {
        "crash-before-step",
        "crash-after-effect",
        "crash-after-checkpoint",
        "transient-error",
        "timeout",
    }
)
# Kinds that crash after a step's checkpoint and change the machine the replay runs on.
REPLAY_KINDS = frozenset({"clock-skew", "reseed"})
STEP_KINDS = ATTEMPT_KINDS | REPLAY_KINDS
SLEEP_KINDS = frozenset({"crash-during-sleep"})
WAIT_KINDS = frozenset({"crash-during-wait"})
EVENT_KINDS = frozenset(
    {"event-early", "event-late", "event-at-deadline", "event-withheld", "event-duplicate"}
)
# Event faults that may let a wait time out: the run's outcome may change by design.
DEADLINE_KINDS = frozenset({"event-at-deadline", "event-withheld"})
# When a held-back event is sent, relative to its wait's timeout.
HOLD_OFFSET_MS = {"event-late": -1, "event-at-deadline": 0, "event-withheld": 1}
KIND_GROUPS: dict[str, tuple[str, ...]] = {
    "all": KINDS,
    "crash": tuple(k for k in KINDS if k.startswith("crash-")),
    "events": tuple(k for k in KINDS if k.startswith("event-")),
}
# A replay a day, an hour, a minute, a second and a millisecond later than the first run (after
# a crash or a long sleep, or on a machine whose clock is ahead): every reading of the clock, at
# any granularity (date, hour, minute, second, ms), differs from the first run's.
DEFAULT_SKEW_MS = 90_061_001

# Compact codes for tokens; never reuse a code for another kind (old tokens must still decode).
_CODES = {
    "crash-before-step": "B",
    "crash-after-effect": "E",
    "crash-after-checkpoint": "C",
    "crash-during-sleep": "S",
    "crash-during-wait": "W",
    "transient-error": "T",
    "timeout": "O",
    "event-early": "e",
    "event-late": "l",
    "event-at-deadline": "a",
    "event-withheld": "w",
    "event-duplicate": "d",
    "clock-skew": "K",
    "reseed": "R",
}
_KIND_OF = {code: kind for kind, code in _CODES.items()}
TRANSIENT_ERROR = ("Error", "transient error injected by awf-sim chaos")


def _kind_list() -> str:
    return ", ".join(KINDS)


def _selector(value: Any, where: str) -> str | dict[str, Any]:
    try:
        sel = parse_selector(value, method=where)
    except DefinitionError as exc:
        raise FaultPlanError(str(exc)) from None
    if sel.index is None:
        return sel.name
    return {"name": sel.name, "index": sel.index}


def _int(value: Any, where: str, *, minimum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise FaultPlanError(f"{where} must be a whole number, got {value!r}")
    if minimum is not None and value < minimum:
        raise FaultPlanError(f"{where} must be >= {minimum}, got {value!r}")
    return value


def normalize_fault(fault: Any, where: str = "fault") -> Fault:
    """The canonical form of one fault (defaults filled in); FaultPlanError if it is not one."""
    if not isinstance(fault, Mapping):
        raise FaultPlanError(
            f"{where} must be a dict such as "
            '{"kind": "crash-after-effect", "step": "Inventory.reserve"}, '
            f"got {type(fault).__name__}"
        )
    kind = fault.get("kind")
    if kind not in _CODES:
        raise FaultPlanError(f"{where}: unknown fault kind {kind!r}; the kinds are: {_kind_list()}")
    if kind in EVENT_KINDS:
        allowed = {"kind", "type"}
    elif kind == "clock-skew":
        allowed = {"kind", "step", "ms"}
    elif kind == "reseed":
        allowed = {"kind", "step", "seed"}
    elif kind in ATTEMPT_KINDS:
        allowed = {"kind", "step", "attempt"}
    else:
        allowed = {"kind", "step", "attempt"}  # sleeps and waits: attempt may only be 1
    extra = set(fault) - allowed
    if extra:
        raise FaultPlanError(
            f"{where} ({kind}): unknown key(s) {', '.join(sorted(map(str, extra)))}; "
            f"a {kind} fault has {', '.join(sorted(allowed))}"
        )
    out: Fault = {"kind": kind}
    if kind in EVENT_KINDS:
        etype = fault.get("type")
        if not isinstance(etype, str) or not etype:
            raise FaultPlanError(f"{where} ({kind}) needs 'type', the event type, got {etype!r}")
        out["type"] = etype
        return out
    if kind in REPLAY_KINDS:
        if fault.get("step") is not None:
            out["step"] = _selector(fault["step"], f"{where} ({kind})")
        if kind == "clock-skew":
            out["ms"] = _int(fault.get("ms", DEFAULT_SKEW_MS), f"{where} (clock-skew) 'ms'")
        else:
            out["seed"] = _int(fault.get("seed", 1), f"{where} (reseed) 'seed'", minimum=0)
        return out
    if fault.get("step") is None:
        raise FaultPlanError(
            f"{where} ({kind}) needs 'step': a dotted path such as \"Inventory.reserve\", a glob, "
            'a step name, or {"name": ..., "index": k}'
        )
    out["step"] = _selector(fault["step"], f"{where} ({kind})")
    attempt = _int(fault.get("attempt", 1), f"{where} ({kind}) 'attempt'", minimum=1)
    if kind in ATTEMPT_KINDS:
        out["attempt"] = attempt
    elif attempt != 1:
        raise FaultPlanError(f"{where} ({kind}): sleeps and waits have no attempts; drop 'attempt'")
    return out


def normalize_plan(plan: Any) -> Plan:
    """A plan in canonical form: a list of normalised faults."""
    if isinstance(plan, (Mapping, str, bytes)) or not isinstance(plan, Sequence):
        raise FaultPlanError(
            "a fault plan is a list of fault dicts, e.g. "
            '[{"kind": "crash-after-effect", "step": "Inventory.reserve"}]'
        )
    return [normalize_fault(f, f"fault {i + 1}") for i, f in enumerate(plan)]


def earlier_attempt_aimed(fault: Mapping[str, Any], plan: Sequence[Mapping[str, Any]]) -> bool:
    """Does another fault of `plan` aim at the same step at an earlier attempt? Then a fault at
    an attempt the fault-free run never makes may be reached (the earlier one fails it)."""
    attempt = fault.get("attempt", 1)
    return any(
        other is not fault
        and other.get("step") == fault.get("step")
        and other.get("attempt", 1) < attempt
        for other in plan
    )


def parse_kinds(text: str | Sequence[str] | None) -> tuple[str, ...]:
    """`--faults`: comma-separated kinds or groups (crash, events, all); None means all."""
    if text is None:
        return KINDS
    items = text.split(",") if isinstance(text, str) else list(text)
    chosen: set[str] = set()
    for raw in items:
        item = raw.strip()
        if not item:
            continue
        if item in KIND_GROUPS:
            chosen.update(KIND_GROUPS[item])
        elif item in _CODES:
            chosen.add(item)
        else:
            raise FaultPlanError(
                f"unknown fault kind {item!r}; the kinds are: {_kind_list()} "
                f"(or the groups {', '.join(KIND_GROUPS)})"
            )
    if not chosen:
        raise FaultPlanError(f"no fault kinds given; the kinds are: {_kind_list()}")
    return tuple(k for k in KINDS if k in chosen)


def describe_fault(fault: Mapping[str, Any]) -> str:
    """One line for humans: `crash-after-effect on Inventory.reserve (attempt 1)`."""
    kind = fault["kind"]
    if kind in EVENT_KINDS:
        return f"{kind} of event {fault['type']!r}"
    step = fault.get("step")
    target = ""
    if isinstance(step, Mapping):
        target = f"call {step['index']} of {step['name']}"
    elif step is not None:
        target = str(step)
    if kind in REPLAY_KINDS:
        where = f"after {target}" if target else "at the next replay"
        if kind == "clock-skew":
            ms = fault["ms"]
            return f"clock-skew {'+' if ms >= 0 else '-'}{_human_ms(abs(ms))} {where}"
        return f"reseed to {fault['seed']} {where}"
    if kind in ATTEMPT_KINDS:
        return f"{kind} on {target} (attempt {fault['attempt']})"
    return f"{kind} on {target}"


def _human_ms(ms: int) -> str:
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("min", 60_000), ("s", 1000)):
        if ms >= size and ms % size == 0:
            return f"{ms // size} {unit}"
    return f"{ms} ms"


# -- tokens -----------------------------------------------------------------------------------


def _compact(fault: Mapping[str, Any]) -> list[Any]:
    kind = fault["kind"]
    code = _CODES[kind]
    if kind in EVENT_KINDS:
        return [code, fault["type"]]
    step = fault.get("step")
    target = [step["name"], step["index"]] if isinstance(step, Mapping) else step
    if kind == "clock-skew":
        return [code, target, fault["ms"]]
    if kind == "reseed":
        return [code, target, fault["seed"]]
    if kind in ATTEMPT_KINDS and fault["attempt"] != 1:
        return [code, target, fault["attempt"]]
    return [code, target]


def _expand(item: Any) -> Fault:
    if not isinstance(item, list) or not item or item[0] not in _KIND_OF:
        raise ValueError(item)
    kind = _KIND_OF[item[0]]
    out: Fault = {"kind": kind}
    if kind in EVENT_KINDS:
        (out["type"],) = item[1:]
        return out
    target = item[1]
    if isinstance(target, list):
        target = {"name": target[0], "index": target[1]}
    if target is not None:
        out["step"] = target
    rest = item[2:]
    if kind == "clock-skew":
        (out["ms"],) = rest
    elif kind == "reseed":
        (out["seed"],) = rest
    elif rest:
        (out["attempt"],) = rest
    return out


_MAX_TOKEN_PLAN = 1 << 20  # bytes of a decoded plan


def plan_token(plan: Sequence[Mapping[str, Any]]) -> str:
    """A short URL-safe token for a plan; `decode_token` gives the normalised plan back."""
    return token_of_compact([_compact(f) for f in normalize_plan(plan)])


def compact_fault(fault: Mapping[str, Any]) -> list[Any]:
    """One fault as a plan token holds it (normalised first)."""
    return _compact(normalize_fault(fault))


def token_of_compact(items: Sequence[list[Any]]) -> str:
    """`plan_token` of a plan whose faults `compact_fault` gave: what random plan generation
    uses, which normalises each fault of its universe once instead of once per plan."""
    raw = json.dumps(list(items), separators=(",", ":"), ensure_ascii=False).encode()
    packed = zlib.compress(raw, 9)
    prefix, data = ("z", packed) if len(packed) < len(raw) else ("j", raw)
    return prefix + base64.urlsafe_b64encode(data).decode().rstrip("=")


def compact_text(item: list[Any]) -> str:
    """One compact fault as a token's JSON holds it: the JSON of a plan is these, joined by
    commas in brackets (`token_text`)."""
    return json.dumps(item, separators=(",", ":"), ensure_ascii=False)


def token_text(token: str) -> str:
    """The JSON text a token made by `plan_token` stands for (equal texts, equal tokens)."""
    data = base64.urlsafe_b64decode(token[1:] + "=" * (-len(token[1:]) % 4))
    return (zlib.decompress(data) if token[0] == "z" else data).decode()


def decode_token(token: str) -> Plan:
    """The plan a token stands for; FaultPlanError if it is not a token `plan_token` made."""
    shown = repr(token[:57] + "..." if isinstance(token, str) and len(token) > 60 else token)
    bad = FaultPlanError(
        f"{shown} is not a chaos replay token; copy it from the replay command that "
        "`awf-sim chaos` printed"
    )
    if not isinstance(token, str) or len(token) < 2 or token[0] not in "jz":
        raise bad
    try:
        data = base64.urlsafe_b64decode(token[1:] + "=" * (-len(token[1:]) % 4))
        if token[0] == "z":
            # Bounded: a crafted token must not expand into gigabytes.
            inflater = zlib.decompressobj()
            data = inflater.decompress(data, _MAX_TOKEN_PLAN)
            if inflater.unconsumed_tail or not inflater.eof:
                raise ValueError("too large or truncated")
        items = json.loads(data.decode())
        if not isinstance(items, list):
            raise ValueError(items)
        plan = [_expand(item) for item in items]
    except (
        ValueError,
        TypeError,
        zlib.error,
        UnicodeDecodeError,
        RecursionError,
        KeyError,
        IndexError,
        AttributeError,
    ):
        raise bad from None
    return normalize_plan(plan)
