"""Conformance scenarios (docs/conformance-format.md): loading and validation.

A scenario is checked completely before any engine runs it, and the first problem is reported
as one line naming the file and the field (`x.json: body[1].attempts[0]: ...`), so a typo never
shows up later as a confusing mismatch between engines.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from awf_sim.dsl._duration import parse_duration
from awf_sim.dsl._errors import DefinitionError
from awf_sim.errors import ScenarioError

__all__ = [
    "Action",
    "Attempt",
    "DoOp",
    "Op",
    "ParallelOp",
    "Scenario",
    "ScenarioError",
    "SleepOp",
    "WaitOp",
    "cloudflare_ms",
    "load_scenario",
    "parse_scenario",
]

_NAME = re.compile(r"[A-Za-z0-9._-]+")
_TOP_KEYS = frozenset({"name", "description", "params", "body", "events", "control"})
_THROWS = ("Error", "NonRetryableError")
_CONTROLS = ("pause", "resume", "terminate")

# itty-time's ms(), which Cloudflare's engine uses for every duration (SEMANTICS §1.1).
_CF_UNIT_MS = {
    "year": 31_557_600_000,
    "month": 2_592_000_000,
    "week": 604_800_000,
    "day": 86_400_000,
    "hour": 3_600_000,
    "minute": 60_000,
    "second": 1_000,
}
# Used with fullmatch (Python's `$` would also match before a final newline) and ASCII \w, so
# it accepts exactly what the JavaScript regex /^([^ ]+) +(\w\w*?)s?$/ accepts.
_CF_FORM = re.compile(r"([^ ]+) +(\w\w*?)s?", re.ASCII)
_JS_NUMBER = re.compile(r"\s*[+-]?(?:\d+\.?\d*(?:e[+-]?\d+)?|\.\d+(?:e[+-]?\d+)?)\s*", re.I)


@dataclass(frozen=True)
class Attempt:
    """What one attempt of a `do` step does."""

    returns: Any = None
    throw: Literal["Error", "NonRetryableError"] | None = None
    message: str = ""
    hang_ms: float = 0


@dataclass(frozen=True)
class DoOp:
    name: str
    attempts: tuple[Attempt, ...]
    config: Mapping[str, Any] | None = None
    catch: bool = False
    op: Literal["do"] = "do"

    def attempt(self, n: int) -> Attempt:
        """The entry for 1-based attempt `n`: the last entry repeats."""
        return self.attempts[min(n, len(self.attempts)) - 1]


@dataclass(frozen=True)
class SleepOp:
    name: str
    duration: int | float | str
    catch: bool = False
    op: Literal["sleep"] = "sleep"


@dataclass(frozen=True)
class WaitOp:
    name: str
    type: str
    timeout: int | float | str | None = None
    catch: bool = False
    op: Literal["waitForEvent"] = "waitForEvent"


@dataclass(frozen=True)
class ParallelOp:
    steps: tuple[DoOp, ...]
    catch: bool = False
    op: Literal["parallel"] = "parallel"


Op = DoOp | SleepOp | WaitOp | ParallelOp


@dataclass(frozen=True)
class Action:
    """A driver action: an event sent, or pause/resume/terminate, `after_ms` after creation."""

    after_ms: float
    kind: Literal["event", "control"]
    type: str = ""  # event type, for kind "event"
    payload: Any = None
    op: str = ""  # pause | resume | terminate, for kind "control"


@dataclass(frozen=True)
class Scenario:
    name: str
    body: tuple[Op, ...]
    params: Any = field(default_factory=dict)
    description: str = ""
    events: tuple[Action, ...] = ()
    control: tuple[Action, ...] = ()
    source: str = ""
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def actions(self) -> list[Action]:
        """Driver actions in time order; at equal times events come first, then file order
        (the Node driver's stable sort)."""
        return sorted((*self.events, *self.control), key=lambda a: a.after_ms)

    def do_steps(self) -> dict[str, DoOp]:
        """Every `do` operation keyed NAME#K, K its 1-based occurrence in body order."""
        seen: dict[str, int] = {}
        out: dict[str, DoOp] = {}

        def visit(op: Op) -> None:
            if isinstance(op, ParallelOp):
                for sub in op.steps:
                    visit(sub)
            elif isinstance(op, DoOp):
                seen[op.name] = seen.get(op.name, 0) + 1
                out[f"{op.name}#{seen[op.name]}"] = op

        for op in self.body:
            visit(op)
        return out


def cloudflare_ms(value: int | float | str) -> float:
    """A duration as Cloudflare's engine reads it (itty-time `ms()`); NaN when it cannot."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    text = str(value)
    if _JS_NUMBER.fullmatch(text) or not text.strip():
        # JavaScript's +"" is 0 and +" 12 " is 12: numeric strings are plain milliseconds.
        return float(text) if text.strip() else 0.0
    match = _CF_FORM.fullmatch(text)
    if match is None:
        return math.nan
    number, unit = match.groups()
    if not _JS_NUMBER.fullmatch(number):
        return math.nan
    return float(number) * _CF_UNIT_MS.get(unit, 1)


class _Checker:
    """Validates one scenario; `fail` raises with the file and the field."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, where: str, problem: str) -> ScenarioError:
        prefix = f"{self.source}: " if self.source else ""
        at = f"{where}: " if where else ""
        return ScenarioError(f"{prefix}{at}{problem}")

    def obj(self, value: Any, where: str) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise self.fail(where, f"must be an object, got {_show(value)}")
        return value

    def keys(self, value: Mapping[str, Any], allowed: Sequence[str], where: str) -> None:
        unknown = sorted(set(value) - set(allowed))
        if unknown:
            raise self.fail(
                where,
                f"unknown field {unknown[0]!r} (allowed here: {', '.join(sorted(allowed))})",
            )

    def text(self, value: Any, where: str) -> str:
        if not isinstance(value, str) or not value:
            raise self.fail(where, f"must be a non-empty string, got {_show(value)}")
        return value

    def flag(self, value: Any, where: str) -> bool:
        if not isinstance(value, bool):
            raise self.fail(where, f"must be true or false, got {_show(value)}")
        return value

    def number(self, value: Any, where: str) -> float:
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or value < 0
        ):
            raise self.fail(where, f"must be a number >= 0, got {_show(value)}")
        return value

    def duration(self, value: Any, where: str) -> int | float | str:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise self.fail(where, f"must be a number of ms or a string, got {_show(value)}")
        cf = cloudflare_ms(value)
        try:
            ours = parse_duration(value)
        except DefinitionError as exc:
            raise self.fail(where, str(exc)) from None
        # Both engines must read the same length, or a mismatch would be the scenario's fault.
        if not math.isfinite(cf) or round(cf) != ours:
            raise self.fail(
                where,
                f"{value!r} means {ours} ms to awf but {cf} ms to Cloudflare's ms(); "
                "write it as '<n> <unit>' (e.g. '200 millis', '1 second') or a number of ms",
            )
        return value


_DO_KEYS = ("op", "name", "config", "attempts", "catch")


def _do(c: _Checker, raw: Mapping[str, Any], where: str, *, catch: bool) -> DoOp:
    c.keys(raw, _DO_KEYS, where)
    name = c.text(raw.get("name"), f"{where}.name")
    config = raw.get("config")
    if config is not None:
        config = c.obj(config, f"{where}.config")
    attempts_raw = raw.get("attempts")
    if not isinstance(attempts_raw, list) or not attempts_raw:
        raise c.fail(f"{where}.attempts", f"must be a non-empty list, got {_show(attempts_raw)}")
    attempts = []
    for j, entry in enumerate(attempts_raw):
        w = f"{where}.attempts[{j}]"
        entry = c.obj(entry, w)
        c.keys(entry, ("return", "throw", "message", "hang_ms"), w)
        if ("return" in entry) == ("throw" in entry):
            raise c.fail(w, 'needs exactly one of "return" or "throw"')
        hang = c.number(entry.get("hang_ms", 0), f"{w}.hang_ms")
        if "throw" in entry:
            if entry["throw"] not in _THROWS:
                raise c.fail(
                    f"{w}.throw",
                    f'must be "Error" or "NonRetryableError", got {_show(entry["throw"])}',
                )
            message = entry.get("message")
            if not isinstance(message, str):
                raise c.fail(f"{w}.message", f"must be a string, got {_show(message)}")
            attempts.append(Attempt(throw=entry["throw"], message=message, hang_ms=hang))
        else:
            if "message" in entry:
                raise c.fail(f"{w}.message", 'only an attempt that has "throw" takes a message')
            attempts.append(Attempt(returns=entry["return"], hang_ms=hang))
    return DoOp(name=name, attempts=tuple(attempts), config=config, catch=catch)


def _op(c: _Checker, raw: Any, where: str) -> Op:
    raw = c.obj(raw, where)
    catch = c.flag(raw.get("catch", False), f"{where}.catch")
    kind = raw.get("op")
    if kind == "do":
        return _do(c, raw, where, catch=catch)
    if kind == "sleep":
        c.keys(raw, ("op", "name", "duration", "catch"), where)
        return SleepOp(
            name=c.text(raw.get("name"), f"{where}.name"),
            duration=c.duration(raw.get("duration"), f"{where}.duration"),
            catch=catch,
        )
    if kind == "waitForEvent":
        c.keys(raw, ("op", "name", "type", "timeout", "catch"), where)
        timeout = raw.get("timeout")
        return WaitOp(
            name=c.text(raw.get("name"), f"{where}.name"),
            type=c.text(raw.get("type"), f"{where}.type"),
            timeout=None if timeout is None else c.duration(timeout, f"{where}.timeout"),
            catch=catch,
        )
    if kind == "parallel":
        c.keys(raw, ("op", "steps", "catch"), where)
        steps_raw = raw.get("steps")
        if not isinstance(steps_raw, list) or not steps_raw:
            raise c.fail(f"{where}.steps", f"must be a non-empty list, got {_show(steps_raw)}")
        steps: list[DoOp] = []
        for j, sub in enumerate(steps_raw):
            w = f"{where}.steps[{j}]"
            sub = c.obj(sub, w)
            if sub.get("op") != "do":
                raise c.fail(f"{w}.op", 'only "do" operations may be inside "parallel"')
            step = _do(c, sub, w, catch=c.flag(sub.get("catch", False), f"{w}.catch"))
            if any(s.name == step.name for s in steps):
                # Each engine may number same-named concurrent steps in either order.
                raise c.fail(f"{w}.name", f"two steps named {step.name!r} in one parallel")
            steps.append(step)
        return ParallelOp(steps=tuple(steps), catch=catch)
    raise c.fail(
        f"{where}.op", f"unknown op {_show(kind)} (use do, sleep, waitForEvent or parallel)"
    )


def parse_scenario(raw: Any, source: str = "") -> Scenario:
    """Validate a decoded scenario; raise ScenarioError naming `source` and the field."""
    c = _Checker(source)
    raw = c.obj(raw, "")
    c.keys(raw, sorted(_TOP_KEYS), "")
    name = raw.get("name")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise c.fail("name", f"must be letters, digits, '.', '_' or '-', got {_show(name)}")
    description = raw.get("description", "")
    if not isinstance(description, str):
        raise c.fail("description", f"must be a string, got {_show(description)}")
    body_raw = raw.get("body")
    if not isinstance(body_raw, list):
        raise c.fail("body", f"must be a list of operations, got {_show(body_raw)}")
    body = tuple(_op(c, op, f"body[{i}]") for i, op in enumerate(body_raw))

    events = []
    events_raw = raw.get("events", [])
    if not isinstance(events_raw, list):
        raise c.fail("events", f"must be a list, got {_show(events_raw)}")
    for i, ev in enumerate(events_raw):
        w = f"events[{i}]"
        ev = c.obj(ev, w)
        c.keys(ev, ("type", "payload", "after_ms"), w)
        events.append(
            Action(
                after_ms=c.number(ev.get("after_ms"), f"{w}.after_ms"),
                kind="event",
                type=c.text(ev.get("type"), f"{w}.type"),
                payload=ev.get("payload"),
            )
        )
    control = []
    control_raw = raw.get("control", [])
    if not isinstance(control_raw, list):
        raise c.fail("control", f"must be a list, got {_show(control_raw)}")
    for i, ctl in enumerate(control_raw):
        w = f"control[{i}]"
        ctl = c.obj(ctl, w)
        c.keys(ctl, ("op", "after_ms"), w)
        if ctl.get("op") not in _CONTROLS:
            raise c.fail(
                f"{w}.op", f'must be "pause", "resume" or "terminate", got {_show(ctl.get("op"))}'
            )
        control.append(
            Action(
                after_ms=c.number(ctl.get("after_ms"), f"{w}.after_ms"),
                kind="control",
                op=ctl["op"],
            )
        )
    return Scenario(
        name=name,
        body=body,
        params=raw.get("params", {}),
        description=description,
        events=tuple(events),
        control=tuple(control),
        source=source,
        raw=raw,
    )


def load_scenario(path: str | os.PathLike[str]) -> Scenario:
    """Read and validate one scenario file."""
    source = os.fspath(path)
    if source.endswith(".trace.json"):
        raise ScenarioError(f"{source}: this is a trace, not a scenario (pass NAME.json)")
    try:
        with open(source, encoding="utf-8") as f:
            raw = json.load(f)
    except FileNotFoundError:
        raise ScenarioError(f"{source}: no such file") from None
    except IsADirectoryError:
        raise ScenarioError(f"{source}: is a directory, not a scenario file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(f"{source}: cannot read it: {exc}") from None
    except json.JSONDecodeError as exc:
        raise ScenarioError(f"{source}: not valid JSON: {exc}") from None
    return parse_scenario(raw, source)


def _show(value: Any) -> str:
    if value is None:
        return "nothing (missing or null)"
    text = json.dumps(value, ensure_ascii=False) if _is_json(value) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _is_json(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True
