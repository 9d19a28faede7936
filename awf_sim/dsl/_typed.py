"""Typed domains: `wf[Inventory](product).check()`, checked by mypy and pyright.

    async def check(product: Product, args: None, ctx: HandlerContext) -> Stock: ...
    async def reserve(product: Product, args: Hold, ctx: HandlerContext) -> Held: ...

    class Inventory(TypedDomain[Product]):
        check = step(check)
        reserve = step(reserve, retries={"limit": 5, "delay": "1 second"}, timeout="30 seconds")

    stock = await wf[Inventory](order.product).check()          # stock: Stock
    held = await wf[Inventory](order.product).reserve(Hold(2))  # held: Held

The types come from the handlers' own annotations through plain generics (no checker plugin):
`step(handler)` is a `Method[context, args, result]`; reading it on an `Inventory(wf, context)`
gives a `Call[args, result]` whose `__call__` takes the args and returns an awaitable of the
result. A misspelt method is an unknown attribute, a wrong argument an argument error, and a
domain whose methods take another context a mismatch at the access.

At run time a typed domain is an ordinary `Domain` of the class's name (so `wf.Inventory(p)
.check()` still works) and a call builds the same pipeline, with the same step identity
(DESIGN §2), as the dict form: a typed call costs one small object and no checks.
docs/typing.md has the whole design.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any, ClassVar, Generic, TypeVar, overload

from awf_sim.dsl._domain import Domain, MethodSpec
from awf_sim.dsl._errors import DefinitionError
from awf_sim.dsl._identity import canonical
from awf_sim.dsl._proxy import WorkflowApi, _call_args, _Pipeline

__all__ = ["Call", "Method", "TypedDomain", "step"]

C = TypeVar("C")
A = TypeVar("A")
R = TypeVar("R")


class Method(Generic[C, A, R]):
    """One method of a TypedDomain: its handler `(context: C, args: A, ctx) -> R` and config.

    `Inventory.check.handler` is the plain function, for unit tests."""

    __slots__ = ("_spec", "config", "handler", "name")

    def __init__(self, handler: Callable[[C, A, Any], Any], config: Mapping[str, Any]) -> None:
        self.handler = handler
        self.config = config
        self.name = ""
        self._spec: MethodSpec | None = None

    def __set_name__(self, owner: type[Any], name: str) -> None:
        self.name = name

    @overload
    def __get__(self, obj: None, owner: type[Any] | None = None) -> Method[C, A, R]: ...
    @overload
    def __get__(self, obj: TypedDomain[C], owner: type[Any] | None = None) -> Call[A, R]: ...
    def __get__(self, obj: Any, owner: type[Any] | None = None) -> Any:
        if obj is None:
            return self
        spec = self._spec
        if spec is None:  # pragma: no cover - __init_subclass__ sets it
            raise DefinitionError(f"{self.name}: step() is only meaningful in a TypedDomain")
        return Call(obj, spec)

    def __repr__(self) -> str:
        return f"<step {self.name} -> {getattr(self.handler, '__qualname__', self.handler)}>"


class Call(Generic[A, R]):
    """A typed domain method bound to a context: call it with its args, await the result."""

    __slots__ = ("_domain", "_spec")

    def __init__(self, domain: TypedDomain[Any], spec: MethodSpec) -> None:
        self._domain = domain
        self._spec = spec

    # Typed as a coroutine, though it is a step pipeline (awaitable, nothing more): mypy
    # (unused-coroutine) and pyright (reportUnusedCoroutine) report a call left without
    # `await` only for a Coroutine, and a step that is never awaited never runs.
    @overload
    def __call__(self: Call[None, R], /) -> Coroutine[Any, Any, R]: ...
    @overload
    def __call__(self, args: A, /) -> Coroutine[Any, Any, R]: ...
    def __call__(self, args: Any = None, /) -> Any:
        spec = self._spec
        domain = self._domain
        call_args = _call_args(spec.path, () if args is None else (args,), {})
        built = _Pipeline(domain._wf, spec.domain, domain._context_json, ((spec, call_args),))
        # Counted as the untyped call counts it (`WorkflowApi._unawaited`).
        steps = domain._wf._steps
        steps.count += 1
        steps.last = built
        return built


class TypedDomain(Generic[C]):
    """Base of a typed domain whose methods all take a context of type `C`.

    `class Inventory(TypedDomain[Product]): check = step(check)`; the domain's name is the
    class name unless given: `class Stock(TypedDomain[Product], name="Inventory")`. Inside a
    workflow, `wf[Inventory](product)` is an `Inventory` bound to that context; its methods
    are typed steps. `Inventory.domain` is the underlying Domain (for `domains=[...]`)."""

    __slots__ = ("_context", "_context_json", "_wf")
    domain: ClassVar[Domain]

    def __init_subclass__(cls, *, name: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        methods = {k: v for k, v in vars(cls).items() if isinstance(v, Method)}
        domain = Domain(
            name or cls.__name__,
            {k: {"handler": m.handler, **m.config} for k, m in methods.items()},
        )
        for key, method in methods.items():
            method._spec = domain.spec(key)
        cls.domain = domain

    def __init__(self, wf: WorkflowApi, context: C) -> None:
        self._wf = wf
        self._context = context
        self._context_json = canonical(context, root="context")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} domain {self.domain.name!r} on {self._context!r}>"


@overload
def step(
    handler: Callable[[C, A, Any], Awaitable[R]],
    /,
    *,
    retries: Mapping[str, Any] | None = None,
    timeout: str | int | None = None,
) -> Method[C, A, R]: ...
@overload
def step(
    handler: Callable[[C, A, Any], R],
    /,
    *,
    retries: Mapping[str, Any] | None = None,
    timeout: str | int | None = None,
) -> Method[C, A, R]: ...
def step(
    handler: Callable[[C, A, Any], Any],
    /,
    *,
    retries: Mapping[str, Any] | None = None,
    timeout: str | int | None = None,
) -> Method[Any, Any, Any]:
    """A TypedDomain method running `handler(context, args, ctx)` with this step config."""
    if not callable(handler):
        raise DefinitionError(
            f"step({handler!r}): pass the handler function (context, args, ctx) -> result"
        )
    config: dict[str, Any] = {}
    if retries is not None:
        config["retries"] = retries
    if timeout is not None:
        config["timeout"] = timeout
    return Method(handler, config)
