"""Cloudflare's Python Workflows step API (`step.do`, `step.sleep`, ...) over the engine.

So a class written for Cloudflare (`async def run(self, event, step)`), including the entry
module awf_deploy generates, runs in the simulator unchanged. Implicit-dependency mode
(SEMANTICS §6): a step function's parameters named after other step functions are resolved
first (memoised per run by name), `ctx` receives the step context dict.
"""

from __future__ import annotations

import asyncio
import copy
import datetime as _dt
import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from awf_sim.dsl._cfduration import (
    cloudflare_ms,
    cloudflare_step_config,
    js_number_text,
    wait_ms,
)
from awf_sim.dsl._config import validate_config
from awf_sim.dsl._duration import check_sleep, parse_duration
from awf_sim.dsl._errors import DefinitionError, StepError
from awf_sim.engine._calls import CallbackStep, StepInfo
from awf_sim.engine._hooks import INVALID_CONFIG
from awf_sim.engine._lifetime import Lifetime

__all__ = ["PythonStep", "instantiate"]


def instantiate(cls: type, env: Mapping[str, Any]) -> Any:
    """Create the entrypoint object as Cloudflare does: `cls(ctx, env)` when it takes them."""
    try:
        params = [
            p
            for p in inspect.signature(cls).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
    except (TypeError, ValueError):
        params = []
    obj = cls(None, env) if len(params) >= 2 else cls()
    if not hasattr(obj, "env"):
        obj.env = env
    return obj


class _StepFunction:
    """What `@step.do(...)` returns: calling it runs the step (a new occurrence each call)."""

    def __init__(
        self,
        step: PythonStep,
        name: str,
        func: Callable[..., Any],
        concurrent: bool,
        config: Mapping[str, Any],
        depends: Sequence[Any] | None,
    ) -> None:
        self._step = step
        self.name = name
        self.func = func
        self.concurrent = concurrent
        self.config = config
        params = list(inspect.signature(func).parameters)
        self.wants_ctx = "ctx" in params
        names = [p for p in params if p != "ctx"]
        if depends is not None:
            # Legacy mode: dependencies matched in order to the non-ctx parameters.
            deps = [d.name if isinstance(d, _StepFunction) else str(d) for d in depends]
            if len(deps) != len(names):
                raise TypeError(
                    f"step {name!r}: {len(deps)} dependencies for {len(names)} parameters"
                )
            self.deps = list(zip(names, deps, strict=True))
        else:
            self.deps = [(n, n) for n in names]

    def __call__(self) -> Any:
        return self._step._run(self)

    def __repr__(self) -> str:
        return f"<step function {self.name}>"


class PythonStep:
    """The `step` object passed to `run(self, event, step)`."""

    def __init__(self, lt: Lifetime, durations: str = "awf") -> None:
        self._lt = lt
        # "cloudflare": durations and configs read exactly as Cloudflare's engine reads them
        # (itty-time's ms(), its zod schema), however odd; "awf": refused with a message.
        self._cf = durations == "cloudflare"
        self._functions: dict[str, _StepFunction] = {}
        self._memo: dict[str, asyncio.Future[Any]] = {}

    def do(
        self,
        name: str | None = None,
        *,
        depends: Sequence[Any] | None = None,
        concurrent: bool = False,
        config: Mapping[str, Any] | None = None,
    ) -> Callable[[Callable[..., Any]], _StepFunction]:
        def register(func: Callable[..., Any]) -> _StepFunction:
            step_name = name or func.__name__
            normalised: Any
            if self._cf:
                normalised = cloudflare_step_config({} if config is None else config)
                normalised = INVALID_CONFIG if normalised is None else _whole(normalised)
            else:
                try:
                    normalised = validate_config(config, f"step {step_name!r}")
                except DefinitionError:
                    # Cloudflare checks the config when the step is called, after the step
                    # limit and the name, and throws its own fixed text: the engine does too.
                    normalised = INVALID_CONFIG
                else:
                    _refuse_misread_config(config, step_name)
            fn = _StepFunction(self, step_name, func, concurrent, normalised, depends)
            self._functions[step_name] = fn
            return fn

        if callable(name):  # bare `@step.do` without parentheses
            func, name = name, None
            return register(func)
        return register

    async def sleep(self, name: str, duration: str | int | float) -> None:
        if self._cf:
            # Cloudflare's sleep checks nothing: NaN and negative lengths end at once.
            ms = cloudflare_ms(duration) if isinstance(duration, str) else float(duration)
            _refuse_nan(ms)
            await self._lt.sleep(name, wait_ms(ms))
            return
        what = f"step.sleep({name!r})"
        await self._lt.sleep(name, check_sleep(_as_cloudflare_reads(duration, what), what))

    async def sleep_until(self, name: str, timestamp: _dt.datetime | int | float) -> None:
        if isinstance(timestamp, _dt.datetime):
            aware = timestamp if timestamp.tzinfo else timestamp.replace(tzinfo=_dt.UTC)
            epoch_ms = round(aware.timestamp() * 1000)
        elif isinstance(timestamp, int | float) and not isinstance(timestamp, bool):
            epoch_ms = round(timestamp)
        else:
            raise DefinitionError(
                f"step.sleep_until({name!r}): pass a datetime or epoch milliseconds"
            )
        await self._lt.sleep_until(name, epoch_ms)

    async def wait_for_event(
        self, name: str, event_type: str, timeout: str | int | float = "24 hours"
    ) -> dict[str, Any]:
        """Returns the event: {"payload", "timestamp", "type"}."""
        if self._cf:
            # `options.timeout || "24 hours"`: a falsy timeout (0, "") is the default.
            if not timeout:
                timeout = "24 hours"
            ms: Any = cloudflare_ms(timeout)
            _refuse_nan(ms)
            ms = int(ms) if ms == ms and abs(ms) != float("inf") and ms == int(ms) else ms
        else:
            ms = _as_cloudflare_reads(timeout, f"step.wait_for_event({name!r}) timeout")
        event: dict[str, Any] = await self._lt.wait_for_event(name, event_type, ms)
        # Stored as the virtual ms it arrived at; Cloudflare hands a Date, which the Workers
        # SDK makes a datetime (as the run's own event["timestamp"] is here).
        at = event.get("timestamp")
        if isinstance(at, int | float) and not isinstance(at, bool):
            event["timestamp"] = self._lt.wall_datetime(at)
        return event

    async def _resolve(self, param: str, dep: str) -> Any:
        fn = self._functions.get(dep)
        if fn is None:
            raise TypeError(
                f"step parameter {param!r} names no step function; define "
                f"`@step.do() async def {dep}(...)` before it, or rename the parameter"
            )
        memo = self._memo.get(dep)
        if memo is None:
            memo = self._memo[dep] = self._lt.spawn(fn())
        return await asyncio.shield(memo)

    async def _run(self, fn: _StepFunction) -> Any:
        if fn.concurrent:
            values = await asyncio.gather(*(self._resolve(p, d) for p, d in fn.deps))
        else:
            values = [await self._resolve(p, d) for p, d in fn.deps]
        kwargs = {p: v for (p, _), v in zip(fn.deps, values, strict=True)}

        def callback(info: StepInfo) -> Any:
            if fn.wants_ctx:
                ctx = {
                    "step": {"name": info.name, "count": info.count},
                    "attempt": info.attempt,
                    # A copy: the resolved config may be one dict shared by many steps.
                    "config": copy.deepcopy(info.config),
                }
                return fn.func(**kwargs, ctx=ctx)
            return fn.func(**kwargs)

        return await self._lt.do_callback(fn.name, fn.config, CallbackStep(callback))


def _whole(config: dict[str, Any]) -> dict[str, Any]:
    """Cloudflare's readings are floats; whole ones become ints, as awf's own config has."""

    def whole(v: Any) -> Any:
        return int(v) if isinstance(v, float) and v.is_integer() else v

    out = dict(config)
    if "timeout" in out:
        out["timeout"] = whole(out["timeout"])
    if "retries" in out:
        out["retries"] = {k: whole(v) for k, v in out["retries"].items()}
    return out


# What Miniflare's engine says when a duration reads as NaN: its timer's deadline (now + NaN)
# goes into a NOT NULL column of its SQLite priority queue.
NAN_DEADLINE = (
    "NOT NULL constraint failed: priority_queue.target_timestamp: SQLITE_CONSTRAINT "
    "(extended: SQLITE_CONSTRAINT_NOTNULL)"
)


def _refuse_nan(ms: float) -> None:
    if ms != ms:
        raise StepError(NAN_DEADLINE, "Error")


_CF_FORMS = "a number of milliseconds or '<n> second|minute|hour|day|week|month|year[s]'"
_CF_UNITS = ((86_400_000, "day"), (3_600_000, "hour"), (60_000, "minute"), (1_000, "second"))


def _as_cloudflare_reads(value: Any, what: str) -> int:
    """awf's reading of a duration given to Cloudflare's step API, in milliseconds. Cloudflare
    parses such a string itself (itty-time's ms()), so one it would read otherwise ("30 sec"
    is 30 ms there, "30s" NaN) is refused with what it would do and how to write it
    (DESIGN §9); `Simulator(durations="cloudflare")` takes Cloudflare's reading instead."""
    ms = parse_duration(value)
    if not isinstance(value, str):
        return ms
    cf = cloudflare_ms(value)
    if not math.isnan(cf) and math.floor(cf + 0.5) == ms:
        return ms
    if math.isnan(cf):
        reading = f"cannot read {value!r} (its step API takes {_CF_FORMS})"
    else:
        reading = (
            f"reads {value!r} as {js_number_text(cf)} ms (units are lowercase and spelled "
            "out; it counts an unknown unit as milliseconds)"
        )
    good = next(
        (
            f"'{ms // unit} {name}{'s' if ms != unit else ''}'"
            for unit, name in _CF_UNITS
            if ms and ms % unit == 0
        ),
        str(ms),
    )
    raise DefinitionError(
        f"{what}: Cloudflare {reading}; write {good} for what awf read "
        "(Simulator(durations='cloudflare') runs it as Cloudflare would)"
    )


def _refuse_misread_config(config: Mapping[str, Any] | None, step: str) -> None:
    """A step config's string durations, refused as `_as_cloudflare_reads` refuses them."""
    if not config:
        return
    retries = config.get("retries")
    if isinstance(retries, Mapping) and isinstance(retries.get("delay"), str):
        _as_cloudflare_reads(retries["delay"], f"retries.delay of step {step!r}")
    if isinstance(config.get("timeout"), str):
        _as_cloudflare_reads(config["timeout"], f"timeout of step {step!r}")
