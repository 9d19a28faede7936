"""Conformance scenarios (tests/conformance/FORMAT.md, formats 1 and 2): load and validate.

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

from awf_sim.conformance._json_values import non_finite, show
from awf_sim.dsl._cfduration import cloudflare_ms, cloudflare_step_config
from awf_sim.dsl._duration import parse_duration
from awf_sim.dsl._errors import DefinitionError
from awf_sim.dsl._identity import utf16_len
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
    "SleepUntilOp",
    "ThrowOp",
    "WaitOp",
    "cloudflare_ms",
    "load_scenario",
    "parse_scenario",
]

_NAME = re.compile(r"[A-Za-z0-9._-]+")
_TOP_KEYS = frozenset({"name", "description", "params", "body", "events", "control"})
# Format 2 adds these (FORMAT.md, "Format 2"); a format-1 file may not use them.
_TOP_KEYS_2 = frozenset({"format", "result", "id", "step_outputs", "step_limit", "engine", "runs"})
# "engine": ">=VERSION", the oldest Miniflare with what the scenario uses.
_ENGINE = re.compile(r">=(\d+(?:\.\d+)*)")
# Cloudflare's ceiling for a workflow's configured step limit (limits.steps).
MAX_STEP_LIMIT = 25_000
_THROWS = ("Error", "NonRetryableError")
_CLASS_NAME = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")
_CONTROLS = ("pause", "resume", "terminate")
_CONTROLS_2 = ("pause", "resume", "terminate", "restart", "create_again")
_CATCHES_2 = (True, False, "name", "rethrow")
_NOTHING = object()  # an attempt without throw_value


@dataclass(frozen=True)
class Attempt:
    """What one attempt of a `do` step does."""

    returns: Any = None
    throw: str | None = None  # an error class name (format 1: Error or NonRetryableError)
    message: str = ""
    hang_ms: float = 0
    throw_value: Any = _NOTHING  # format 2: a value thrown that is not an Error
    return_nothing: bool = False  # format 2: the callback returns undefined

    @property
    def throws_value(self) -> bool:
        return self.throw_value is not _NOTHING


@dataclass(frozen=True)
class DoOp:
    name: str
    attempts: tuple[Attempt, ...]
    config: Mapping[str, Any] | None = None
    catch: bool | str = False
    op: Literal["do"] = "do"

    def attempt(self, n: int) -> Attempt:
        """The entry for 1-based attempt `n`: the last entry repeats."""
        return self.attempts[min(n, len(self.attempts)) - 1]


@dataclass(frozen=True)
class SleepOp:
    name: str
    duration: int | float | str
    catch: bool | str = False
    op: Literal["sleep"] = "sleep"


@dataclass(frozen=True)
class SleepUntilOp:
    """Format 2: `step.sleepUntil(name, creation time + at_ms)`."""

    name: str
    at_ms: float
    catch: bool | str = False
    op: Literal["sleepUntil"] = "sleepUntil"


@dataclass(frozen=True)
class WaitOp:
    name: str
    type: str
    timeout: int | float | str | None = None
    catch: bool | str = False
    op: Literal["waitForEvent"] = "waitForEvent"


@dataclass(frozen=True)
class ParallelOp:
    steps: tuple[DoOp | SleepOp | SleepUntilOp | WaitOp, ...]
    catch: bool | str = False
    race: bool = False  # format 2: Promise.race instead of Promise.all
    op: Literal["parallel"] = "parallel"


@dataclass(frozen=True)
class ThrowOp:
    """Format 2: `run` itself throws `error` (its `throw` and `message`, or its `throw_value`),
    outside any step; top level only, never caught."""

    error: Attempt
    catch: bool | str = False
    op: Literal["throw"] = "throw"


Op = DoOp | SleepOp | SleepUntilOp | WaitOp | ParallelOp | ThrowOp


@dataclass(frozen=True)
class Action:
    """A driver action: an event sent, or pause/resume/terminate, `after_ms` after creation."""

    after_ms: float
    kind: Literal["event", "control"]
    type: str = ""  # event type, for kind "event"
    payload: Any = None
    op: str = ""  # pause | resume | terminate | restart, for kind "control"
    from_: Any = None  # restart: {"name", "count"?, "type"?} (restart({from})), as written


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
    format: int = 1
    result: str = "results"  # format 2: "nothing" makes run() return undefined
    id: str | None = None  # format 2: the instance id to create it with
    step_outputs: bool = False  # format 2: trace the status field of step outputs too
    step_limit: int | None = None  # format 2: the workflow's step limit (default 10,000)
    engine: tuple[int, ...] | None = None  # format 2: the oldest Miniflare version it needs
    runs: bool = False  # format 2: trace how many attempts of each step started, re-runs too

    def actions(self) -> list[Action]:
        """Driver actions in time order; at equal times events come first, then file order
        (the Node driver's stable sort)."""
        return sorted((*self.events, *self.control), key=lambda a: a.after_ms)

    def do_steps(self) -> dict[str, DoOp]:
        """Every `do` operation keyed NAME#K as the engine numbers it: K counts the calls of
        that name in body order that got past the engine's step limit, name and config checks
        (a step Cloudflare rejects throws before it takes a number, so a later step of the
        same name is #1, not #2)."""
        seen: dict[str, int] = {}
        out: dict[str, DoOp] = {}
        calls = 0
        limit = self.step_limit or 10_000

        def visit(op: Op) -> None:
            nonlocal calls
            if isinstance(op, ParallelOp):
                for sub in op.steps:
                    visit(sub)
            elif isinstance(op, DoOp):
                calls += 1  # the step limit counts rejected calls too, before any other check
                if calls > limit or _rejected(op):
                    return
                seen[op.name] = seen.get(op.name, 0) + 1
                out[f"{op.name}#{seen[op.name]}"] = op

        for op in self.body:
            visit(op)
        return out


def _rejected(op: DoOp) -> bool:
    """Whether Cloudflare's `do` throws before numbering this step: its name is too long or
    has a control character, or its config is invalid."""
    if utf16_len(op.name) > 256 or re.search(r"[\x00-\x1f]", op.name):
        return True
    return cloudflare_step_config({} if op.config is None else op.config) is None


class _Checker:
    """Validates one scenario; `fail` raises with the file and the field."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.format = 1

    def fail(self, where: str, problem: str) -> ScenarioError:
        prefix = f"{self.source}: " if self.source else ""
        at = f"{where}: " if where else ""
        return ScenarioError(f"{prefix}{at}{problem}")

    def obj(self, value: Any, where: str) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise self.fail(where, f"must be an object, got {show(value)}")
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
            raise self.fail(where, f"must be a non-empty string, got {show(value)}")
        return value

    def flag(self, value: Any, where: str) -> bool:
        if not isinstance(value, bool):
            raise self.fail(where, f"must be true or false, got {show(value)}")
        return value

    def number(self, value: Any, where: str) -> float:
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or value < 0
        ):
            raise self.fail(where, f"must be a number >= 0, got {show(value)}")
        return value

    def duration(self, value: Any, where: str) -> int | float | str:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise self.fail(where, f"must be a number of ms or a string, got {show(value)}")
        if self.format >= 2:
            # Both engines read it with Cloudflare's parser, odd values included: what the
            # engine makes of them is what a format-2 scenario records.
            return value
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


def _catch(c: _Checker, raw: Mapping[str, Any], where: str) -> bool | str:
    value = raw.get("catch", False)
    if c.format >= 2:
        if value not in _CATCHES_2 or (value in (0, 1) and not isinstance(value, bool)):
            raise c.fail(where, f'must be true, false, "name" or "rethrow", got {show(value)}')
        return value  # type: ignore[no-any-return]
    return c.flag(value, where)


def _do(c: _Checker, raw: Mapping[str, Any], where: str, *, catch: bool | str) -> DoOp:
    c.keys(raw, _DO_KEYS, where)
    name = c.text(raw.get("name"), f"{where}.name")
    config = raw.get("config")
    if config is not None:
        config = c.obj(config, f"{where}.config")
    attempts_raw = raw.get("attempts")
    if not isinstance(attempts_raw, list) or not attempts_raw:
        raise c.fail(f"{where}.attempts", f"must be a non-empty list, got {show(attempts_raw)}")
    attempts = []
    for j, entry in enumerate(attempts_raw):
        w = f"{where}.attempts[{j}]"
        entry = c.obj(entry, w)
        kinds = ["return", "throw"]
        if c.format >= 2:
            kinds += ["throw_value", "return_nothing", "return_repeat"]
        c.keys(entry, (*kinds, "message", "hang_ms"), w)
        if sum(k in entry for k in kinds) != 1:
            quoted = [f'"{k}"' for k in kinds]
            raise c.fail(w, f"needs exactly one of {', '.join(quoted[:-1])} or {quoted[-1]}")
        hang = c.number(entry.get("hang_ms", 0), f"{w}.hang_ms")
        if "throw_value" in entry:
            attempts.append(Attempt(throw_value=entry["throw_value"], hang_ms=hang))
            continue
        if "return_nothing" in entry:
            if entry["return_nothing"] is not True:
                raise c.fail(f"{w}.return_nothing", "must be true")
            attempts.append(Attempt(return_nothing=True, hang_ms=hang))
            continue
        if "return_repeat" in entry:
            attempts.append(Attempt(returns=_repeat(c, entry["return_repeat"], w), hang_ms=hang))
            continue
        if "throw" in entry:
            if c.format >= 2:
                if not isinstance(entry["throw"], str) or not _CLASS_NAME.fullmatch(entry["throw"]):
                    raise c.fail(f"{w}.throw", f"must be a class name, got {show(entry['throw'])}")
            elif entry["throw"] not in _THROWS:
                raise c.fail(
                    f"{w}.throw",
                    f'must be "Error" or "NonRetryableError", got {show(entry["throw"])}',
                )
            message = entry.get("message")
            if not isinstance(message, str):
                raise c.fail(f"{w}.message", f"must be a string, got {show(message)}")
            attempts.append(Attempt(throw=entry["throw"], message=message, hang_ms=hang))
        else:
            if "message" in entry:
                raise c.fail(f"{w}.message", 'only an attempt that has "throw" takes a message')
            attempts.append(Attempt(returns=entry["return"], hang_ms=hang))
    return DoOp(name=name, attempts=tuple(attempts), config=config, catch=catch)


_MAX_REPEAT = 1 << 24  # characters: enough to pass any size limit, bounded in memory


def _repeat(c: _Checker, raw: Any, where: str) -> str:
    """`{"text": TEXT, "times": N}`: the callback returns TEXT repeated N times (a big result
    from a small scenario, whose params would otherwise hit the engine's limits first)."""
    spec = c.obj(raw, f"{where}.return_repeat")
    c.keys(spec, ("text", "times"), f"{where}.return_repeat")
    text, times = spec.get("text"), spec.get("times")
    if not isinstance(text, str):
        raise c.fail(f"{where}.return_repeat.text", f"must be a string, got {show(text)}")
    if type(times) is not int or times < 0 or len(text) * times > _MAX_REPEAT:
        raise c.fail(
            f"{where}.return_repeat.times",
            f"must be a whole number >= 0 with at most {_MAX_REPEAT:,} characters in all, "
            f"got {show(times)}",
        )
    return text * times


def _throw(c: _Checker, raw: Mapping[str, Any], where: str, *, catch: bool | str) -> ThrowOp:
    c.keys(raw, ("op", "throw", "message", "throw_value", "catch"), where)
    if catch is not False:
        raise c.fail(f"{where}.catch", 'a "throw" is never caught: leave "catch" out')
    if ("throw" in raw) == ("throw_value" in raw):
        raise c.fail(where, 'needs exactly one of "throw" or "throw_value"')
    if "throw_value" in raw:
        if "message" in raw:
            raise c.fail(f"{where}.message", 'only a "throw" takes a message')
        return ThrowOp(error=Attempt(throw_value=raw["throw_value"]))
    if not isinstance(raw["throw"], str) or not _CLASS_NAME.fullmatch(raw["throw"]):
        raise c.fail(f"{where}.throw", f"must be a class name, got {show(raw['throw'])}")
    message = raw.get("message")
    if not isinstance(message, str):
        raise c.fail(f"{where}.message", f"must be a string, got {show(message)}")
    return ThrowOp(error=Attempt(throw=raw["throw"], message=message))


def _op(c: _Checker, raw: Any, where: str, *, in_parallel: bool = False) -> Op:
    raw = c.obj(raw, where)
    catch = _catch(c, raw, f"{where}.catch")
    kind = raw.get("op")
    if kind == "sleepUntil" and c.format >= 2:
        c.keys(raw, ("op", "name", "at_ms", "catch"), where)
        at = raw.get("at_ms")
        if isinstance(at, bool) or not isinstance(at, int | float) or not math.isfinite(at):
            raise c.fail(f"{where}.at_ms", f"must be a number, got {show(at)}")
        return SleepUntilOp(name=c.text(raw.get("name"), f"{where}.name"), at_ms=at, catch=catch)
    if kind == "do":
        return _do(c, raw, where, catch=catch)
    if kind == "throw" and c.format >= 2:
        if in_parallel:
            raise c.fail(f"{where}.op", '"throw" inside "parallel" (a throw is run()\'s own)')
        return _throw(c, raw, where, catch=catch)
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
    if kind == "parallel" and not in_parallel:
        c.keys(raw, ("op", "steps", "catch", *(("race",) if c.format >= 2 else ())), where)
        steps_raw = raw.get("steps")
        if not isinstance(steps_raw, list) or not steps_raw:
            raise c.fail(f"{where}.steps", f"must be a non-empty list, got {show(steps_raw)}")
        steps: list[Any] = []
        for j, sub in enumerate(steps_raw):
            w = f"{where}.steps[{j}]"
            sub = c.obj(sub, w)
            if c.format < 2 and sub.get("op") != "do":
                raise c.fail(f"{w}.op", 'only "do" operations may be inside "parallel"')
            step = _op(c, sub, w, in_parallel=True)
            if any((s.op, s.name) == (step.op, step.name) for s in steps):  # type: ignore[union-attr]
                # Each engine may number same-named concurrent steps in either order.
                raise c.fail(f"{w}.name", f"two steps named {step.name!r} in one parallel")  # type: ignore[union-attr]
            steps.append(step)
        return ParallelOp(
            steps=tuple(steps), catch=catch, race=c.flag(raw.get("race", False), f"{where}.race")
        )
    if kind == "parallel":
        raise c.fail(f"{where}.op", '"parallel" inside "parallel"')
    raise c.fail(
        f"{where}.op",
        f"unknown op {show(kind)} (use do, sleep, waitForEvent or parallel"
        + (", or sleepUntil and throw in format 2)" if c.format < 2 else ", sleepUntil, throw)"),
    )


def parse_scenario(raw: Any, source: str = "") -> Scenario:
    """Validate a decoded scenario; raise ScenarioError naming `source` and the field."""
    c = _Checker(source)
    raw = c.obj(raw, "")
    try:
        where = non_finite(raw, "")
    except RecursionError:
        raise c.fail("", "nested too deeply") from None
    if where is not None:
        # JSON has no NaN or Infinity (Python's reader takes them, and 1e400 reads as inf):
        # neither engine could be handed such a scenario.
        raise c.fail(where.lstrip("."), "is not a finite number (JSON has no NaN or Infinity)")
    fmt = raw.get("format", 1)
    if fmt not in (1, 2) or isinstance(fmt, bool):
        raise c.fail("format", f"must be 1 or 2, got {show(fmt)}")
    c.format = fmt
    c.keys(raw, sorted(_TOP_KEYS | _TOP_KEYS_2) if fmt >= 2 else sorted(_TOP_KEYS), "")
    result = raw.get("result", "results")
    if result not in ("results", "nothing"):
        raise c.fail("result", f'must be "results" or "nothing", got {show(result)}')
    iid = raw.get("id")
    # Any string: an id the engine refuses is what such a scenario records (create()'s error).
    if "id" in raw and not isinstance(iid, str):
        raise c.fail("id", f"must be a string, got {show(iid)}")
    step_limit = raw.get("step_limit")
    if "step_limit" in raw and (
        isinstance(step_limit, bool)
        or not isinstance(step_limit, int)
        or not 1 <= step_limit <= MAX_STEP_LIMIT
    ):
        raise c.fail(
            "step_limit",
            f"must be a whole number from 1 to {MAX_STEP_LIMIT}, got {show(step_limit)}",
        )
    name = raw.get("name")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise c.fail("name", f"must be letters, digits, '.', '_' or '-', got {show(name)}")
    description = raw.get("description", "")
    if not isinstance(description, str):
        raise c.fail("description", f"must be a string, got {show(description)}")
    body_raw = raw.get("body")
    if not isinstance(body_raw, list):
        raise c.fail("body", f"must be a list of operations, got {show(body_raw)}")
    body = tuple(_op(c, op, f"body[{i}]") for i, op in enumerate(body_raw))

    events = []
    events_raw = raw.get("events", [])
    if not isinstance(events_raw, list):
        raise c.fail("events", f"must be a list, got {show(events_raw)}")
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
        raise c.fail("control", f"must be a list, got {show(control_raw)}")
    for i, ctl in enumerate(control_raw):
        w = f"control[{i}]"
        ctl = c.obj(ctl, w)
        c.keys(ctl, ("op", "after_ms", "from") if fmt >= 2 else ("op", "after_ms"), w)
        if ctl.get("op") not in (_CONTROLS_2 if fmt >= 2 else _CONTROLS):
            raise c.fail(
                f"{w}.op",
                (
                    'must be "pause", "resume", "terminate", "restart" or "create_again"'
                    if fmt >= 2
                    else 'must be "pause", "resume" or "terminate" (format 2 adds "restart")'
                )
                + f", got {show(ctl.get('op'))}",
            )
        control.append(
            Action(
                after_ms=c.number(ctl.get("after_ms"), f"{w}.after_ms"),
                kind="control",
                op=ctl["op"],
                from_=_restart_from(c, ctl, w),
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
        format=fmt,
        result=result,
        id=iid,
        step_outputs=c.flag(raw.get("step_outputs", False), "step_outputs"),
        step_limit=step_limit,
        engine=_engine(c, raw),
        runs=c.flag(raw.get("runs", False), "runs"),
    )


def _restart_from(c: _Checker, ctl: Mapping[str, Any], where: str) -> Any:
    """A restart's `from` ({"name": STEP, "count"?: K, "type"?: TYPE}), handed to the engine
    as written: what it makes of an odd count or type is what the scenario records."""
    if "from" not in ctl:
        return None
    if ctl["op"] != "restart":
        raise c.fail(f"{where}.from", f'goes with "restart" only, not {show(ctl["op"])}')
    got = c.obj(ctl["from"], f"{where}.from")
    c.keys(got, ("name", "count", "type"), f"{where}.from")
    if not isinstance(got.get("name"), str):
        raise c.fail(f"{where}.from.name", f"must be a step name, got {show(got.get('name'))}")
    return dict(got)


def _engine(c: _Checker, raw: Mapping[str, Any]) -> tuple[int, ...] | None:
    if "engine" not in raw:
        return None
    got = raw["engine"]
    match = _ENGINE.fullmatch(got) if isinstance(got, str) else None
    if match is None:
        raise c.fail("engine", f'must be ">=VERSION", like ">=4.20260430.0", got {show(got)}')
    return tuple(int(part) for part in match.group(1).split("."))


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
    except RecursionError:
        raise ScenarioError(f"{source}: nested too deeply to read") from None
    return parse_scenario(raw, source)
