"""Domains: named groups of step handlers, and where `wf.<Name>` finds them.

Every Domain remembers the module that defined it. A workflow resolves `wf.<Name>` to the
Domain visible where the workflow was defined (DESIGN §2): its `domains=`, else a Domain bound
in its module, else one defined in its module, else one defined in a module its module imports,
else the only definition of that name in the process. Two flow files that each define
`Domain("Email")` therefore never see each other's, in one pytest session or one chaos process
as in two Worker bundles.
"""

from __future__ import annotations

import os
import sys
import types
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, overload

from awf_sim.dsl._carry import refuse_handler_types
from awf_sim.dsl._config import validate_config
from awf_sim.dsl._errors import DefinitionError
from awf_sim.dsl._handlers import input_adapter
from awf_sim.dsl._names import validate_name

__all__ = ["Domain", "Handler", "MethodSpec", "domain_definitions", "registered_domains"]

Handler = Callable[..., Any]

_DSL_DIR = os.path.dirname(os.path.abspath(__file__))
_DOMAINS: dict[str, Domain] = {}
# Every definition still in force, by name: the latest one per defining module.
_DEFINITIONS: dict[str, list[Domain]] = {}
# Bumped on every definition, so workflows can cache what they resolved.
_GENERATION = [0]


@dataclass(frozen=True, slots=True)
class MethodSpec:
    """One domain method: its handler and normalised step config (durations in ms)."""

    domain: str
    name: str
    handler: Handler
    config: Mapping[str, Any]
    # "Domain.method", made once: every step of it keeps this text in its record and
    # timeline, so a waiting instance holds one shared string instead of its own copy.
    path: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", f"{self.domain}.{self.name}")


def _definition_frame() -> Any:
    """The user's frame that is defining something (the first frame outside awf_sim.dsl)."""
    frame = sys._getframe(1)
    while frame is not None and os.path.dirname(os.path.abspath(frame.f_code.co_filename)) == (
        _DSL_DIR
    ):
        frame = frame.f_back  # type: ignore[assignment]
    return frame


# Domain's own public attributes: a method of that name would hide behind them.
_OWN = frozenset({"name", "methods", "method", "spec"})


class Domain:
    """A named group of handlers; each method becomes one durable step when called through `wf`.

    `Domain("Inventory", {"check": check, "reserve": {"handler": reserve, "retries": {...}}})`
    or `@Inventory.method(retries=..., timeout=...)`. `Inventory.check` is the plain handler,
    so it can be unit-tested directly.
    """

    def __init__(self, name: str, methods: Mapping[str, Any] | None = None) -> None:
        self._name = validate_name("domain name", name)
        self._methods: dict[str, MethodSpec] = {}
        self._plain: dict[str, Handler] = {}
        frame = _definition_frame()
        self._site = (
            ("<unknown>", 0) if frame is None else (frame.f_code.co_filename, frame.f_lineno)
        )
        # The defining module's namespace: the scope this Domain belongs to (DESIGN §2).
        self._scope: dict[str, Any] = {} if frame is None else frame.f_globals
        del frame
        if methods is not None:
            if not isinstance(methods, Mapping):
                raise DefinitionError(
                    f"Domain({name!r}, methods): methods must be a dict of name -> handler, "
                    f"got {type(methods).__name__}"
                )
            for method_name, spec in methods.items():
                self._add_spec(method_name, spec)
        _register(self)

    @property
    def name(self) -> str:
        return self._name

    @property
    def methods(self) -> Mapping[str, MethodSpec]:
        return dict(self._methods)

    def _add_spec(self, method_name: str, spec: Any) -> None:
        if isinstance(spec, Mapping):
            if "handler" not in spec:
                extra = set(spec) - {"retries", "timeout"}
                raise DefinitionError(
                    f"{self._name}.{method_name}: a method given as a dict needs 'handler' and "
                    f"may have 'retries' and 'timeout'"
                    + (f" (unknown keys: {sorted(extra)})" if extra else "")
                )
            # The rest is the step config: validate_config names any key it does not know.
            config = {k: v for k, v in spec.items() if k != "handler"}
            self._add(method_name, spec["handler"], config)
        else:
            self._add(method_name, spec, {})

    def _add(self, method_name: str, handler: Any, config: Mapping[str, Any]) -> None:
        if not isinstance(method_name, str) or not method_name.isidentifier():
            raise DefinitionError(
                f"{self._name}: method name {method_name!r} must be a Python identifier"
            )
        if method_name.startswith("_") or method_name in _OWN:
            # wf.<Domain>(c).__init__ or ._calls is the pipeline's own attribute, and
            # <Domain>.name the domain's: neither would reach the handler.
            why = (
                f"starts with '_', which names the step pipeline's own attributes "
                f"(wf.{self._name}(c).{method_name} would not reach the handler)"
                if method_name.startswith("_")
                else f"is Domain's own attribute ({self._name}.{method_name} would not be the "
                "handler)"
            )
            raise DefinitionError(
                f"{self._name}: method name {method_name!r} {why}; rename the method"
            )
        if not callable(handler):
            raise DefinitionError(
                f"{self._name}.{method_name}: handler must be a function "
                f"(context, args, ctx), got {handler!r}"
            )
        where = f"{self._name}.{method_name}"
        # The spec's handler gets its context and args as the types it declares (a dataclass,
        # a model); `Domain.<method>` stays the plain function, for unit tests.
        self._methods[method_name] = MethodSpec(
            self._name,
            method_name,
            input_adapter(handler, lambda types: refuse_handler_types(where, types)),
            validate_config(config, where),
        )
        self._plain[method_name] = handler

    @overload
    def method(self, fn: Handler, /) -> Handler: ...
    @overload
    def method(
        self,
        fn: None = None,
        /,
        *,
        name: str | None = None,
        retries: Mapping[str, Any] | None = None,
        timeout: str | int | None = None,
    ) -> Callable[[Handler], Handler]: ...
    def method(
        self,
        fn: Handler | None = None,
        /,
        *,
        name: str | None = None,
        retries: Mapping[str, Any] | None = None,
        timeout: str | int | None = None,
    ) -> Handler | Callable[[Handler], Handler]:
        """Decorator adding a method: `@Payment.method` or `@Payment.method(retries=..., ...)`."""

        def add(handler: Handler) -> Handler:
            config: dict[str, Any] = {}
            if retries is not None:
                config["retries"] = retries
            if timeout is not None:
                config["timeout"] = timeout
            self._add(name or handler.__name__, handler, config)
            return handler

        return add(fn) if fn is not None else add

    def spec(self, method_name: str) -> MethodSpec:
        """The method's spec; an unknown name is an error listing the known ones."""
        try:
            return self._methods[method_name]
        except KeyError:
            known = ", ".join(sorted(self._methods)) or "none yet"
            raise DefinitionError(
                f"domain {self._name!r} has no method {method_name!r}; known methods: {known}"
            ) from None

    def __getattr__(self, attr: str) -> Handler:
        # Only reached for names that are not real attributes: the plain handler.
        methods = self.__dict__.get("_methods", {})
        if attr in methods:
            return self.__dict__["_plain"][attr]  # type: ignore[no-any-return]
        if attr.startswith("__"):
            raise AttributeError(attr)
        known = ", ".join(sorted(methods)) or "none yet"
        raise AttributeError(
            f"domain {self.__dict__.get('_name')!r} has no method {attr!r}; known methods: {known}"
        )

    def __repr__(self) -> str:
        return f"Domain({self._name!r}, methods=[{', '.join(self._methods)}])"


def _register(domain: Domain) -> None:
    definitions = _DEFINITIONS.setdefault(domain.name, [])
    same_scope = [d for d in definitions if d._scope is domain._scope]
    # Within one module, a later Domain of the same name replaces the earlier one there.
    # Redefinition from the same place (a parametrised test, a Hypothesis body, a re-imported
    # module) is silent; a second definition elsewhere in the same module is probably a mistake
    # worth a warning. A Domain of the same name in another module is that module's own.
    for old in same_scope:
        if old._site != domain._site:
            warnings.warn(
                f"Domain {domain.name!r} defined at {domain._site[0]}:{domain._site[1]} replaces "
                f"the one defined at {old._site[0]}:{old._site[1]}",
                stacklevel=3,
            )
        definitions.remove(old)
    definitions.append(domain)
    _DOMAINS[domain.name] = domain
    _GENERATION[0] += 1


def domain_definitions() -> Mapping[str, list[Domain]]:
    """Every Domain definition in force, by name: the latest one of each defining module."""
    return _DEFINITIONS


def resolve_in_scope(name: str, scope: Mapping[str, Any]) -> Domain | None:
    """The Domain named `name` visible from the module whose namespace is `scope`.

    In order: a Domain of that name bound in the module (defined there or imported); the
    latest defined in the module; one defined in a module the module imports; the only
    definition of that name in the process. None when there is none, or several and none of
    them is visible from this module."""
    for value in scope.values():
        if isinstance(value, Domain) and value._name == name:
            return value
    definitions = _DEFINITIONS.get(name, [])
    for domain in reversed(definitions):
        if domain._scope is scope:
            return domain
    imported = [
        d
        for d in reversed(definitions)
        if any(getattr(v, "__dict__", None) is d._scope for v in scope.values() if _is_module(v))
    ]
    if imported:
        return imported[0]
    if len(definitions) == 1:
        return definitions[0]
    return None


def _is_module(value: Any) -> bool:
    return isinstance(value, types.ModuleType)


def registered_domains() -> Mapping[str, Domain]:
    """Every Domain defined in this process, by name (the latest definition of each name).

    Workflows do not resolve `wf.<Name>` here but where they were defined (resolve_in_scope)."""
    return _DOMAINS
