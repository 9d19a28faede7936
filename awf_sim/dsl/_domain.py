"""Domains: named groups of step handlers, and the process-wide registry `wf.<Name>` resolves in."""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, overload

from awf_sim.dsl._config import validate_config
from awf_sim.dsl._errors import DefinitionError
from awf_sim.dsl._names import validate_name

__all__ = ["Domain", "Handler", "MethodSpec", "registered_domains"]

Handler = Callable[..., Any]

_DSL_DIR = os.path.dirname(os.path.abspath(__file__))
_DOMAINS: dict[str, Domain] = {}


@dataclass(frozen=True, slots=True)
class MethodSpec:
    """One domain method: its handler and normalised step config (durations in ms)."""

    domain: str
    name: str
    handler: Handler
    config: Mapping[str, Any]

    @property
    def path(self) -> str:
        return f"{self.domain}.{self.name}"


def _definition_site() -> tuple[str, int]:
    """The user's file and line that defined something (the first frame outside awf_sim.dsl)."""
    frame = sys._getframe(1)
    while frame is not None and os.path.dirname(os.path.abspath(frame.f_code.co_filename)) == (
        _DSL_DIR
    ):
        frame = frame.f_back  # type: ignore[assignment]
    if frame is None:
        return ("<unknown>", 0)
    return (frame.f_code.co_filename, frame.f_lineno)


class Domain:
    """A named group of handlers; each method becomes one durable step when called through `wf`.

    `Domain("Inventory", {"check": check, "reserve": {"handler": reserve, "retries": {...}}})`
    or `@Inventory.method(retries=..., timeout=...)`. `Inventory.check` is the plain handler,
    so it can be unit-tested directly.
    """

    def __init__(self, name: str, methods: Mapping[str, Any] | None = None) -> None:
        self._name = validate_name("domain name", name)
        self._methods: dict[str, MethodSpec] = {}
        self._site = _definition_site()
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
            extra = set(spec) - {"handler", "retries", "timeout"}
            if "handler" not in spec or extra:
                raise DefinitionError(
                    f"{self._name}.{method_name}: a method given as a dict needs 'handler' and "
                    f"may have 'retries' and 'timeout'"
                    + (f" (unknown keys: {sorted(extra)})" if extra else "")
                )
            config = {k: spec[k] for k in ("retries", "timeout") if k in spec}
            self._add(method_name, spec["handler"], config)
        else:
            self._add(method_name, spec, {})

    def _add(self, method_name: str, handler: Any, config: Mapping[str, Any]) -> None:
        if not isinstance(method_name, str) or not method_name.isidentifier():
            raise DefinitionError(
                f"{self._name}: method name {method_name!r} must be a Python identifier"
            )
        if not callable(handler):
            raise DefinitionError(
                f"{self._name}.{method_name}: handler must be a function "
                f"(context, args, ctx), got {handler!r}"
            )
        where = f"{self._name}.{method_name}"
        self._methods[method_name] = MethodSpec(
            self._name, method_name, handler, validate_config(config, where)
        )

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
            return methods[attr].handler  # type: ignore[no-any-return]
        if attr.startswith("__"):
            raise AttributeError(attr)
        known = ", ".join(sorted(methods)) or "none yet"
        raise AttributeError(
            f"domain {self.__dict__.get('_name')!r} has no method {attr!r}; known methods: {known}"
        )

    def __repr__(self) -> str:
        return f"Domain({self._name!r}, methods=[{', '.join(self._methods)}])"


def _register(domain: Domain) -> None:
    old = _DOMAINS.get(domain.name)
    # Redefinition from the same place (a parametrised test, a Hypothesis body, a re-imported
    # module) is silent; a second definition elsewhere is probably a mistake worth a warning.
    if old is not None and old._site != domain._site:
        warnings.warn(
            f"Domain {domain.name!r} defined at {domain._site[0]}:{domain._site[1]} replaces "
            f"the one defined at {old._site[0]}:{old._site[1]}",
            stacklevel=3,
        )
    _DOMAINS[domain.name] = domain


def registered_domains() -> Mapping[str, Domain]:
    """Every Domain defined in this process, by name (the latest definition of each name)."""
    return _DOMAINS
