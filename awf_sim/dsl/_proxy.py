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
import json.encoder
import types
import weakref
from collections.abc import Awaitable, Callable, Coroutine, Generator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Protocol, TypeVar, overload

from awf_sim.dsl._config import validate_config
from awf_sim.dsl._domain import _GENERATION, Domain, MethodSpec
from awf_sim.dsl._duration import MAX_SLEEP_MS, check_sleep, parse_duration
from awf_sim.dsl._errors import DefinitionError
from awf_sim.dsl._handlers import _WATCH, await_result
from awf_sim.dsl._identity import (
    _COPY_MEMO,
    MAX_STEP_NAME,
    canonical,
    canonical_or_none,
    hash8,
    json_copy,
    loads,
    pickle_loads,
    step_id_from_hashes,
    step_id_json,
    step_name,
)
from awf_sim.dsl._workflow import Workflow

__all__ = ["Runtime", "State", "StepCall", "WorkflowApi"]

_loads = loads
_C = TypeVar("_C")
_D = TypeVar("_D")
# What `wf.do` and `wf.state` hand back is the checkpoint's JSON, so their values are typed
# with JSON's own types: a dataclass given to either comes back a dict, and is a type error.
# Defaulted (PEP 696) so that a bare `State` means State[Any].
_JSON = Mapping[str, Any] | Sequence[Any] | str | int | float | None
if TYPE_CHECKING:
    from typing_extensions import TypeVar as _TypeVar

    _J = _TypeVar("_J", bound=_JSON, default=Any)
else:
    _J = TypeVar("_J", bound=_JSON)
_Coroutine = types.CoroutineType
_new = object.__new__
_encode_str: Callable[[str], str] = json.encoder.encode_basestring


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
        # json_copy's memo looked up here: a context seen lately costs no Python call.
        packed = _COPY_MEMO.get(self.context_json)
        context = pickle_loads(packed) if packed else json_copy(self.context_json)
        # `{}` (no args, the most common) is built as it is: no copy to look up.
        if args_json == "{}":
            args = {}
        else:
            packed = _COPY_MEMO.get(args_json)
            args = pickle_loads(packed) if packed else json_copy(args_json)
        value = spec.handler(context, args, ctx)
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
    # Coroutines (the engine's and the Cloudflare adapter's are): `wf.sleep` and `wf.wait_for`
    # hand them on, and a checker reports an unused coroutine, not an unused awaitable.
    def sleep(self, name: str, ms: int) -> Coroutine[Any, Any, None]: ...
    def sleep_until(self, name: str, epoch_ms: int) -> Awaitable[None]: ...
    def wait_for(self, name: str, type: str, timeout_ms: int) -> Coroutine[Any, Any, Any]: ...


class _Pipeline:
    """`wf.Domain(context)` and its method/call chain; awaiting it runs one step.

    `wf.Inventory(p).check` is a `_Method` (the pipeline with one method pending); calling it
    gives a new pipeline with one call more. Each Domain gets a subclass of this class on
    which its methods become properties as they are first used (`_install`), so that
    `.check` is found on the class: a miss that reaches `__getattr__` costs an AttributeError
    made and dropped, and two lookups, on every step.

    Its `__getattr__` also keeps Python from specialising any attribute read on a pipeline
    (each goes the slow way), so its state is two slots: `_calls`, and `_base`, the tuple
    (domain name, context JSON, the run's _Built, runtime, wf) that every pipeline of one
    bound context shares, unpacked where it is used."""

    __slots__ = ("_base", "_calls")
    # The Domain of a subclass, weakly: _CLASSES would otherwise keep every Domain alive.
    _awf_domain: ClassVar[Callable[[], Domain | None]] = staticmethod(lambda: None)

    def __init__(
        self,
        wf: WorkflowApi,
        domain: str,
        context_json: str,
        calls: tuple[tuple[MethodSpec, Mapping[str, Any]], ...],
    ) -> None:
        self._base = (domain, context_json, wf._steps, wf._runtime, wf)
        self._calls = calls

    def __getattr__(self, attr: str) -> _Method:
        if attr.startswith("__"):
            raise AttributeError(attr)
        # Resolved now, so an unknown method fails where the pipeline is built, not later.
        name, _, _, _, wf = self._base
        domain = wf._workflow.resolve_domain(name)
        domain.spec(attr)
        cls = type(self)
        if cls._awf_domain() is domain:
            return _install(cls, domain, attr).__get__(self, cls)  # type: ignore[no-any-return]
        return _Method(_caller(domain, attr), self)

    def __call__(self, *args: Any, **kwargs: Any) -> _Pipeline:
        domain = self._base[0]
        raise DefinitionError(
            f"wf.{domain}(...) was called twice; call a method: wf.{domain}(context).method(args)"
        )

    def _step_call(self) -> StepCall:
        calls = self._calls
        domain, context_json = self._base[:2]
        if not calls:
            raise DefinitionError(f"wf.{domain}(...).method must be called before it is awaited")
        path = (domain, *(spec.name for spec, _ in calls))
        label = ".".join(path)
        arg_jsons = tuple(canonical(a, root=f"args of {spec.path}") for spec, a in calls)
        if len(calls) == 1:  # its args dict is the identity
            sid = step_id_json(path, context_json, arg_jsons[0])
        else:  # a chain: the list of each call's args
            args_json = "[" + ",".join(arg_jsons) + "]"
            sid = step_id_from_hashes(path, hash8(context_json), hash8(args_json))
        return StepCall(
            path=path,
            name=step_name(path, sid),
            label=label,
            config=calls[0][0].config,
            context_json=context_json,
            calls=tuple((spec, aj) for (spec, _), aj in zip(calls, arg_jsons, strict=True)),
        )

    def __await__(self) -> Generator[Any, None, Any]:
        calls = self._calls
        domain, context_json, steps, runtime, wf = self._base
        steps.count -= 1
        if steps.last is self:
            steps.last = None
        if len(calls) == 1:
            # The common case, built here: what _step_call does, without its call, the
            # chain's bookkeeping, or StepCall's __init__ (its six fields are set below).
            spec, args = calls[0]
            path = (domain, spec.name)
            if args:
                # The error's root is only built when there is an error (or a model).
                args_json = canonical_or_none(args) or canonical(args, root=f"args of {spec.path}")
            else:
                args_json = "{}"
            sid = step_id_json(path, context_json, args_json)
            label = spec.path if spec.domain == domain else f"{domain}.{spec.name}"
            call: StepCall = _new(StepCall)
            call.path = path
            call.name = (
                f"{label}@{sid}" if len(label) + 17 <= MAX_STEP_NAME else step_name(path, sid)
            )
            call.label = label
            call.config = spec.config
            call.context_json = context_json
            call.calls = ((spec, args_json),)
        else:
            call = self._step_call()
            spec = call.calls[-1][0]
        # A handler declaring a dataclass or model result gets it back from the checkpoint.
        revive = getattr(spec.handler, "__awf_result__", _UNSEEN)  # result_converter's cache
        if revive is None and _WATCH.get() is None:  # the common case: the runtime's value
            return runtime.step(call).__await__()
        return await_result(runtime.step(call), call, wf)

    def __repr__(self) -> str:
        segs = "".join(f".{spec.name}(...)" for spec, _ in self._calls)
        return f"<pipeline wf.{self._base[0]}(...){segs}>"


# Each Domain's subclass of _Pipeline; weak, so a Domain that is gone takes its class along.
_CLASSES: weakref.WeakKeyDictionary[Domain, type[_Pipeline]] = weakref.WeakKeyDictionary()
_UNSEEN = object()


def _pipeline_class(domain: Domain) -> type[_Pipeline]:
    cls = _CLASSES.get(domain)
    if cls is None:
        cls = type(f"_Pipeline_{domain.name}", (_Pipeline,), {"__slots__": ()})
        cls._awf_domain = weakref.ref(domain)
        _CLASSES[domain] = cls
    return cls


def _install(cls: type[_Pipeline], domain: Domain, name: str) -> property:
    """Make method `name` a property of the domain's pipeline class (the attribute reads of
    every later step find it there), unless the name is one of the pipeline's own."""
    prop = property(functools.partial(_Method, _caller(domain, name)))
    if not hasattr(_Pipeline, name):
        setattr(cls, name, prop)
    return prop


def _caller(domain: Domain, name: str) -> Callable[..., _Pipeline]:
    """What calling `wf.<domain>(context).<name>` does: the pipeline with one call more."""
    methods = domain._methods

    def call(pipeline: _Pipeline, *args: Any, **kwargs: Any) -> _Pipeline:
        spec = methods[name]  # looked up each time: a method added again replaces its spec
        nxt: _Pipeline = _new(type(pipeline))
        base = nxt._base = pipeline._base
        steps = base[2]
        call_args = _call_args(spec.path, args, kwargs) if args else kwargs
        calls = pipeline._calls
        nxt._calls = (*calls, (spec, call_args))
        # A step is built: counted until awaited (`WorkflowApi._unawaited`). A chain counts
        # once, its newest link standing for it.
        if not calls:
            steps.count += 1
            steps.last = nxt
        elif steps.last is pipeline:
            steps.last = nxt
        return nxt

    call.__qualname__ = call.__name__ = name
    return call


class _Method(functools.partial):  # type: ignore[type-arg]
    """`wf.Inventory(p).check`: a pipeline with a method pending. Calling it (a partial's own
    C call, no Python frame) adds the call; awaiting it is an error that says what to do."""

    __slots__ = ()

    def _where(self) -> tuple[_Pipeline, str]:
        return self.args[0], self.func.__name__

    def __await__(self) -> Generator[Any, None, Any]:
        pipeline, name = self._where()
        raise DefinitionError(
            f"wf.{pipeline._base[0]}(...).{name} must be called before it is awaited"
        )

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__"):
            raise AttributeError(attr)
        pipeline, name = self._where()
        domain, _, _, _, wf = pipeline._base
        wf._workflow.resolve_domain(domain).spec(f"{name}.{attr}")
        raise AttributeError(attr)  # pragma: no cover - a method name has no dot

    def __repr__(self) -> str:
        pipeline, name = self._where()
        return f"{repr(pipeline)[:-1]}.{name}>"


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


def _required_params(fn: Any) -> list[str]:
    """The parameters `fn()` would miss: read off a plain function's (or bound method's) code
    object, which costs no signature object; other callables are taken as they are."""
    bound = 0
    if type(fn) is types.MethodType:
        fn, bound = fn.__func__, 1
    if type(fn) is not types.FunctionType:
        return []
    code = fn.__code__
    positional = code.co_varnames[bound : code.co_argcount]
    optional = len(fn.__defaults__ or ())
    required = list(positional[: max(0, len(positional) - optional)])
    kwdefaults = fn.__kwdefaults__ or {}
    names = code.co_varnames[code.co_argcount : code.co_argcount + code.co_kwonlyargcount]
    return required + [n for n in names if n not in kwdefaults]


class _Built:
    """The steps (`wf.Email(u).send()`) a run has built and not awaited yet, and the last one
    built: a step runs only when awaited, and one left unawaited is a step silently skipped.
    Its own object, shared by the run's pipelines: WorkflowApi's attributes are slow to read
    (its `__getattr__` keeps Python from specialising them), and these change every step."""

    __slots__ = ("count", "last")

    def __init__(self) -> None:
        self.count = 0
        self.last: _Pipeline | None = None


class _DomainRef:
    """`wf.Inventory`: binds a context to the domain the workflow resolves that name to."""

    __slots__ = ("_cls", "_gen", "_name", "_runtime", "_steps", "_wf")

    def __init__(self, wf: WorkflowApi, name: str) -> None:
        self._wf = wf
        # Read here, for bind: WorkflowApi's attributes are slow to read.
        self._steps = wf._steps
        self._runtime = wf._runtime
        self._name = name
        self._gen = -1
        self._cls: type[_Pipeline] = _Pipeline

    def __call__(self, context: Any = None) -> _Pipeline:
        return self.bind(context)

    def bind(self, context: Any = None) -> _Pipeline:
        # Encoded first: a context that is not JSON is the error, whatever else is wrong. A
        # string (an id, the most common context) is quoted here, without canonical()'s call.
        if type(context) is str:
            ctx_json = _encode_str(context)
        else:
            ctx_json = canonical(context, root="context")
        cls = self._cls
        if self._gen != _GENERATION[0]:  # a Domain was defined since: resolve afresh
            cls = self._cls = _pipeline_class(self._wf._workflow.resolve_domain(self._name))
            self._gen = _GENERATION[0]
        pipeline: _Pipeline = _new(cls)
        pipeline._base = (self._name, ctx_json, self._steps, self._runtime, self._wf)
        pipeline._calls = ()
        return pipeline


class State(Generic[_J]):
    """`wf.state(initial)`: a value that lives in the workflow; each update is a durable step.
    A `State[T]` for an initial value of JSON type `T` (annotate `State[dict[str, Any]]` to
    loosen what `wf.state({...})` infers)."""

    __slots__ = ("_current", "_runtime")

    def __init__(self, runtime: Runtime, initial: _J) -> None:
        self._runtime = runtime
        self._current: _J = _loads(canonical(initial, root="state"))

    @property
    def current(self) -> _J:
        return self._current

    if not TYPE_CHECKING:  # at run time only: a type checker still flags `state["n"]`

        def __getitem__(self, key):
            # What a dict user writes first: say where the value is, and that a change is
            # a durable step.
            raise TypeError(
                f"wf.state(...) is not the value itself: read state.current[{key!r}], and "
                "change it with `await state.update({...})` (each update is a durable step)"
            )

        def __setitem__(self, key, value):
            raise TypeError(
                "wf.state(...) is changed only by `await state.update(new_value)` (a durable "
                f"step), not by state[{key!r}] = ...: build the new value from state.current"
            )

    async def update(self, value: _J) -> _J:
        snapshot = canonical(value, root="state")
        # A step named "state.update": replays return the stored value, not a recomputed one.
        current: _J = await self._runtime.do("state.update", lambda: _loads(snapshot), {})
        self._current = current
        return current


class WorkflowApi:
    """The `wf` a workflow function receives."""

    # A __dict__ (made on first use) holds the domain refs: once `wf.Inventory` is resolved,
    # it is an instance attribute, found without the failed lookup and the call of
    # __getattr__ that every step would otherwise pay. Only names that are not attributes
    # of the class reach __getattr__, so no method is ever shadowed.
    __slots__ = ("__dict__", "_runtime", "_steps", "_workflow")

    def __init__(self, runtime: Runtime, workflow: Workflow) -> None:
        self._runtime = runtime
        self._workflow = workflow
        self._steps = _Built()

    def _unawaited(self) -> tuple[int, str | None]:
        """How many steps this run built and did not await (a pipeline awaited twice counts
        against one), and the last such step as written (`wf.Email(...).send(...)`), if
        known. Called when the run has ended: a step not awaited by then never ran."""
        steps = self._steps
        last = None if steps.last is None else repr(steps.last)[len("<pipeline ") : -1]
        return steps.count, last

    def __getattr__(self, name: str) -> Callable[[Any], _Pipeline]:
        if name.startswith("__"):
            raise AttributeError(name)
        # Once per name in each run of a workflow: what the name resolved to last time is
        # kept on the Workflow, good until another Domain is defined.
        workflow = self._workflow
        generation = _GENERATION[0]
        known = workflow._pipelines.get(name)
        if known is None or known[0] != generation:
            # An unknown domain: resolve_domain's error names the known ones.
            known = (generation, _pipeline_class(workflow.resolve_domain(name)))
            workflow._pipelines[name] = known
        ref = _DomainRef(self, name)
        ref._gen, ref._cls = known
        # The bound method, not the ref: Python calls it without the slot wrapper that
        # calling an object with __call__ goes through.
        bind = self.__dict__[name] = ref.bind
        return bind

    def _end_run(self) -> None:
        """The run is over (its lifetime ended): the domain refs `__getattr__` keeps, which
        hold this `wf` in turn, are dropped, so it is freed when its last user lets go, not
        left to the cyclic collector. Attributes a workflow set on `wf` stay; a later
        `wf.Inventory` makes its ref again."""
        kept = self.__dict__
        for name in [
            n for n, v in kept.items() if type(getattr(v, "__self__", None)) is _DomainRef
        ]:
            del kept[name]

    def __getitem__(self, domain: Callable[[WorkflowApi, _C], _D]) -> Callable[[_C], _D]:
        """`wf[Inventory](product).check()`: a TypedDomain, checked by mypy and pyright."""
        try:
            return functools.partial(domain, self)
        except TypeError:  # not callable: a Domain object (`Inventory.domain`), a string
            name = getattr(domain, "name", None) or "Name"
            raise DefinitionError(
                f"wf[{domain!r}]: wf[...] takes a TypedDomain class, as in "
                f"wf[Inventory](context).check(); a Domain is called as wf.{name}(context)"
            ) from None

    @property
    def instance_id(self) -> str:
        return self._runtime.instance_id

    @property
    def event(self) -> Mapping[str, Any]:
        """The triggering event: {"payload", "timestamp", "instanceId", "workflowName"}."""
        return self._runtime.event

    def sleep(self, name: str, duration: str | int | float) -> Coroutine[Any, Any, None]:
        """Sleep `duration` of virtual time; awaiting it returns when the time has passed."""
        # Not a coroutine of its own (as wait_for): the runtime's is returned as it is.
        ms = parse_duration(duration)
        if ms > MAX_SLEEP_MS:
            check_sleep(ms, f"wf.sleep({name!r})")  # raises, naming the limit
        return self._runtime.sleep(name, ms)

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
    ) -> Coroutine[Any, Any, Any]:
        """Wait for an event of exactly this `type`; awaiting it returns its payload."""
        # Not a coroutine of its own: the runtime's is returned as it is, so that a waiting
        # instance keeps one coroutine fewer alive.
        if not isinstance(type, str) or not type:
            raise DefinitionError(f"wf.wait_for({name!r}): type must be a non-empty string")
        return self._runtime.wait_for(name, type, parse_duration(timeout))

    def state(self, initial: _J) -> State[_J]:
        return State(self._runtime, initial)

    @overload
    async def do(
        self,
        name: str,
        fn: Callable[[], _J],
        *,
        retries: Mapping[str, Any] | None = None,
        timeout: str | int | None = None,
    ) -> _J: ...
    @overload
    async def do(
        self,
        name: str,
        fn: Callable[[], Awaitable[_J]],
        *,
        retries: Mapping[str, Any] | None = None,
        timeout: str | int | None = None,
    ) -> _J: ...
    async def do(
        self,
        name: str,
        fn: Callable[[], Any],
        *,
        retries: Mapping[str, Any] | None = None,
        timeout: str | int | None = None,
    ) -> Any:
        """A raw step named `name`: `fn()` (sync or async) runs with Cloudflare step semantics.
        Its result comes back as the checkpoint's JSON, typed as what `fn` returns: a JSON
        type (a dataclass would come back a dict, so the checkers refuse it)."""
        if not callable(fn):
            # Else each attempt fails with "'X' object is not callable", retried 5 times.
            if inspect.iscoroutine(fn):
                fn.close()  # wf.do("x", fetch()): the call, not the function; never awaited
            raise DefinitionError(
                f"wf.do({name!r}, fn): fn must be a function that takes no arguments (sync or "
                f"async), got {type(fn).__name__}; pass the function itself, e.g. "
                f"wf.do({name!r}, lambda: fetch(url))"
            )
        needs = _required_params(fn)
        if needs:
            # Else each attempt fails with "missing 1 required positional argument", retried.
            raise DefinitionError(
                f"wf.do({name!r}, fn): fn is called with no arguments, but "
                f"{getattr(fn, '__qualname__', 'it')} needs {', '.join(map(repr, needs))}; "
                f"pass a function that takes none, e.g. wf.do({name!r}, lambda: "
                f"{getattr(fn, '__name__', 'fn')}({', '.join(needs)}))"
            )
        config: dict[str, Any] = {}
        if retries is not None:
            config["retries"] = retries
        if timeout is not None:
            config["timeout"] = timeout
        return await self._runtime.do(name, fn, validate_config(config, f"wf.do({name!r})"))

    def __repr__(self) -> str:
        return f"<wf {self._workflow.name} instance={self._runtime.instance_id}>"
