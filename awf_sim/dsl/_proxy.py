"""The `wf` object a workflow receives, and the Runtime protocol that executes what it builds.

`wf.Inventory(product).check()` builds a pipeline; awaiting it asks the runtime for ONE
durable step. The runtime is the simulator's engine or, on Cloudflare, the adapter that maps
steps to `step.do`: the DSL itself never executes anything durably.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import functools
import inspect
import types
from collections.abc import Awaitable, Callable, Generator, Mapping
from typing import Any, Protocol, TypeVar

from awf_sim.dsl._config import validate_config
from awf_sim.dsl._domain import MethodSpec
from awf_sim.dsl._duration import check_sleep, parse_duration
from awf_sim.dsl._errors import DefinitionError
from awf_sim.dsl._identity import (
    MAX_STEP_NAME,
    canonical,
    canonical_in,
    hash8,
    json_copy,
    loads,
    step_id_from_hashes,
    step_name,
)
from awf_sim.dsl._values import await_result
from awf_sim.dsl._workflow import Workflow

__all__ = ["Runtime", "State", "StepCall", "WorkflowApi"]

_loads = loads
_C = TypeVar("_C")
_D = TypeVar("_D")
_Coroutine = types.CoroutineType


async def _value(value: Any) -> Any:
    return value


async def _chain(calls: tuple[tuple[MethodSpec, str], ...], value: Any, ctx: Any) -> Any:
    for spec, args_json in calls:
        value = spec.handler(value, json_copy(args_json), ctx)
        if inspect.isawaitable(value):
            value = await value
    return value


@dataclasses.dataclass(slots=True)
class StepCall:
    """One durable domain step: everything the runtime needs to run and identify it."""

    path: tuple[str, ...]
    name: str  # Cloudflare step name "Inventory.check@<16 hex>"
    label: str  # human path "Inventory.check"
    config: Mapping[str, Any]  # the first method's normalised config
    context_json: str
    calls: tuple[tuple[MethodSpec, str], ...]  # (method, canonical args) per chained call

    def invoke(self, ctx: Any) -> Awaitable[Any]:
        """Run the handler chain on fresh JSON copies; each handler gets the previous result.

        Returns what to await. For the common single call that is the handler's own awaitable
        (its coroutine, not one wrapped around it): one coroutine less on every step."""
        calls = self.calls
        if len(calls) != 1:
            return _chain(calls, json_copy(self.context_json), ctx)
        spec, args_json = calls[0]
        # `{}` (no args, the most common) is built as it is: no copy to look up.
        args = {} if args_json == "{}" else json_copy(args_json)
        value = spec.handler(json_copy(self.context_json), args, ctx)
        if type(value) is _Coroutine or inspect.isawaitable(value):
            return value
        return _value(value)


class Runtime(Protocol):
    """What executes steps: the simulator's engine, or the Cloudflare adapter."""

    @property
    def instance_id(self) -> str: ...
    @property
    def event(self) -> Mapping[str, Any]: ...
    def step(self, call: StepCall) -> Awaitable[Any]: ...
    def do(self, name: str, fn: Callable[[], Any], config: Mapping[str, Any]) -> Awaitable[Any]: ...
    def sleep(self, name: str, ms: int) -> Awaitable[None]: ...
    def sleep_until(self, name: str, epoch_ms: int) -> Awaitable[None]: ...
    def wait_for(self, name: str, type: str, timeout_ms: int) -> Awaitable[Any]: ...


class _Pipeline:
    """`wf.Domain(context)` and its attribute/call chain; awaiting it runs one step."""

    __slots__ = ("_calls", "_context", "_context_json", "_domain", "_pending", "_spec", "_wf")

    def __init__(
        self,
        wf: WorkflowApi,
        domain: str,
        context: Any,
        context_json: str,
        calls: tuple[tuple[MethodSpec, Mapping[str, Any]], ...],
        pending: tuple[str, ...],
    ) -> None:
        self._wf = wf
        self._domain = domain
        self._context = context
        self._context_json = context_json
        self._calls = calls
        self._pending = pending
        self._spec: MethodSpec | None = None  # the method `pending` names, once resolved

    def __getattr__(self, attr: str) -> _Pipeline:
        if attr.startswith("__"):
            raise AttributeError(attr)
        pending = (*self._pending, attr)
        # Resolve now, so an unknown method fails where the pipeline is built, not later.
        spec = self._wf._workflow.resolve_domain(self._domain).spec(
            ".".join(pending) if self._pending else attr
        )
        nxt = _Pipeline(
            self._wf, self._domain, self._context, self._context_json, self._calls, pending
        )
        nxt._spec = spec
        return nxt

    def __call__(self, *args: Any, **kwargs: Any) -> _Pipeline:
        spec = self._spec
        if spec is None:
            raise DefinitionError(
                f"wf.{self._domain}(...) was called twice; call a method: "
                f"wf.{self._domain}(context).method(args)"
            )
        call_args = _call_args(spec.path, args, kwargs) if args else kwargs
        return _Pipeline(
            self._wf,
            self._domain,
            self._context,
            self._context_json,
            (*self._calls, (spec, call_args)),
            (),
        )

    def _step_call(self) -> StepCall:
        if not self._calls or self._pending:
            missing = ".".join(self._pending) or "method"
            raise DefinitionError(
                f"wf.{self._domain}(...).{missing} must be called before it is awaited"
            )
        if len(self._calls) == 1:  # the common case, without the chain's bookkeeping
            spec, args = self._calls[0]
            path: tuple[str, ...] = (self._domain, spec.name)
            args_json = canonical_in(args, lambda: f"args of {spec.path}") if args else "{}"
            # hash8 remembers recent texts: the context and `{}` are hashed once per run, and
            # a step's identity usually costs the one hash of step_id itself.
            sid = step_id_from_hashes(path, hash8(self._context_json), hash8(args_json))
            label = f"{self._domain}.{spec.name}"
            return StepCall(
                path,
                f"{label}@{sid}" if len(label) + 17 <= MAX_STEP_NAME else step_name(path, sid),
                label,
                spec.config,
                self._context_json,
                ((spec, args_json),),
            )
        path = (self._domain, *(spec.name for spec, _ in self._calls))
        label = ".".join(path)
        arg_jsons = tuple(canonical(a, root=f"args of {spec.path}") for spec, a in self._calls)
        # One call: its args dict is the identity; a chain: the list of each call's args.
        args_json = arg_jsons[0] if len(arg_jsons) == 1 else "[" + ",".join(arg_jsons) + "]"
        sid = step_id_from_hashes(path, hash8(self._context_json), hash8(args_json))
        return StepCall(
            path=path,
            name=step_name(path, sid),
            label=label,
            config=self._calls[0][0].config,
            context_json=self._context_json,
            calls=tuple((spec, aj) for (spec, _), aj in zip(self._calls, arg_jsons, strict=True)),
        )

    def __await__(self) -> Generator[Any, None, Any]:
        call = self._step_call()
        # A handler declaring a dataclass or model result gets it back from the checkpoint.
        return await_result(self._wf._runtime.step(call), call, self._wf)

    def __repr__(self) -> str:
        segs = "".join(f".{spec.name}(...)" for spec, _ in self._calls)
        return f"<pipeline wf.{self._domain}(...){segs}>"


def _call_args(where: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    """`.reserve({"quantity": 2})` and `.reserve(quantity=2)` both mean {"quantity": 2}."""
    if len(args) > 1:
        raise DefinitionError(
            f"{where}: pass arguments as one dict or as keywords, got {len(args)} positional"
        )
    merged: dict[str, Any] = {}
    if args:
        first = args[0]
        if hasattr(first, "model_dump"):
            first = first.model_dump(mode="json")
        elif dataclasses.is_dataclass(first) and not isinstance(first, type):
            first = dataclasses.asdict(first)
        if not isinstance(first, Mapping):
            raise DefinitionError(
                f"{where}: arguments must be a dict or keywords, got {type(first).__name__} "
                f"{first!r}; pass e.g. {{'value': ...}}"
            )
        merged.update(first)
    merged.update(kwargs)
    return merged


class _DomainRef:
    __slots__ = ("_name", "_wf")

    def __init__(self, wf: WorkflowApi, name: str) -> None:
        self._wf = wf
        self._name = name

    def __call__(self, context: Any = None) -> _Pipeline:
        ctx_json = canonical(context, root="context")
        return _Pipeline(self._wf, self._name, context, ctx_json, (), ())


class State:
    """`wf.state(initial)`: a value that lives in the workflow; each update is a durable step."""

    __slots__ = ("_current", "_runtime")

    def __init__(self, runtime: Runtime, initial: Any) -> None:
        self._runtime = runtime
        self._current = _loads(canonical(initial, root="state"))

    @property
    def current(self) -> Any:
        return self._current

    async def update(self, value: Any) -> Any:
        snapshot = canonical(value, root="state")
        # A step named "state.update": replays return the stored value, not a recomputed one.
        self._current = await self._runtime.do("state.update", lambda: _loads(snapshot), {})
        return self._current


class WorkflowApi:
    """The `wf` a workflow function receives."""

    # A __dict__ (made on first use) holds the domain refs: once `wf.Inventory` is resolved,
    # it is an instance attribute, found without the failed lookup and the call of
    # __getattr__ that every step would otherwise pay. Only names that are not attributes
    # of the class reach __getattr__, so no method is ever shadowed.
    __slots__ = ("__dict__", "_runtime", "_workflow")

    def __init__(self, runtime: Runtime, workflow: Workflow) -> None:
        self._runtime = runtime
        self._workflow = workflow

    def __getattr__(self, name: str) -> _DomainRef:
        if name.startswith("__"):
            raise AttributeError(name)
        self._workflow.resolve_domain(name)  # unknown domain: error names the known ones
        ref = self.__dict__[name] = _DomainRef(self, name)
        return ref

    def __getitem__(self, domain: Callable[[WorkflowApi, _C], _D]) -> Callable[[_C], _D]:
        """`wf[Inventory](product).check()`: a TypedDomain, checked by mypy and pyright."""
        return functools.partial(domain, self)

    @property
    def instance_id(self) -> str:
        return self._runtime.instance_id

    @property
    def event(self) -> Mapping[str, Any]:
        """The triggering event: {"payload", "timestamp", "instanceId", "workflowName"}."""
        return self._runtime.event

    async def sleep(self, name: str, duration: str | int | float) -> None:
        ms = check_sleep(parse_duration(duration), f"wf.sleep({name!r})")
        await self._runtime.sleep(name, ms)

    async def sleep_until(self, name: str, when: _dt.datetime | _dt.date | int | float) -> None:
        """Sleep until `when`: a datetime (naive means UTC) or epoch milliseconds."""
        if isinstance(when, _dt.datetime):
            aware = when if when.tzinfo else when.replace(tzinfo=_dt.UTC)
            epoch_ms = round(aware.timestamp() * 1000)
        elif isinstance(when, _dt.date):
            epoch_ms = round(
                _dt.datetime(when.year, when.month, when.day, tzinfo=_dt.UTC).timestamp() * 1000
            )
        elif isinstance(when, int | float) and not isinstance(when, bool):
            epoch_ms = round(when)
        else:
            raise DefinitionError(
                f"wf.sleep_until({name!r}, {when!r}): pass a datetime or epoch milliseconds"
            )
        await self._runtime.sleep_until(name, epoch_ms)

    def wait_for(
        self, name: str, *, type: str, timeout: str | int | float = "24 hours"
    ) -> Awaitable[Any]:
        """Wait for an event of exactly this `type`; awaiting it returns its payload."""
        # Not a coroutine of its own: the runtime's is returned as it is, so that a waiting
        # instance keeps one coroutine fewer alive.
        if not isinstance(type, str) or not type:
            raise DefinitionError(f"wf.wait_for({name!r}): type must be a non-empty string")
        return self._runtime.wait_for(name, type, parse_duration(timeout))

    def state(self, initial: Any) -> State:
        return State(self._runtime, initial)

    async def do(
        self,
        name: str,
        fn: Callable[[], Any],
        *,
        retries: Mapping[str, Any] | None = None,
        timeout: str | int | None = None,
    ) -> Any:
        """A raw step named `name`: `fn()` (sync or async) runs with Cloudflare step semantics."""
        config: dict[str, Any] = {}
        if retries is not None:
            config["retries"] = retries
        if timeout is not None:
            config["timeout"] = timeout
        return await self._runtime.do(name, fn, validate_config(config, f"wf.do({name!r})"))

    def __repr__(self) -> str:
        return f"<wf {self._workflow.name} instance={self._runtime.instance_id}>"
