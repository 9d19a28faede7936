"""Workflows: a named async function `(wf, params)` run durably, optionally on a schedule."""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Generic, overload

from awf_sim.dsl import _domain as _domain_module
from awf_sim.dsl._carry import refuse_workflow_types
from awf_sim.dsl._domain import Domain, domain_definitions, resolve_in_scope
from awf_sim.dsl._duration import parse_duration
from awf_sim.dsl._errors import DefinitionError, SerializationError
from awf_sim.dsl._identity import canonical, dump_result, loads
from awf_sim.dsl._names import validate_name
from awf_sim.dsl._schedule import to_cron
from awf_sim.dsl._values import check_shape, converter, is_model, is_structured, type_name

if TYPE_CHECKING:
    # Defaults (PEP 696) so a bare `Workflow` means Workflow[Any, Any]; the checkers read
    # this, and at run time a TypeVar needs none.
    from typing import Self

    from typing_extensions import TypeVar

    In = TypeVar("In", default=Any)
    Out = TypeVar("Out", default=Any)
else:
    from typing import TypeVar

    In = TypeVar("In")
    Out = TypeVar("Out")
In2 = TypeVar("In2")
Out2 = TypeVar("Out2")

__all__ = ["Workflow", "WorkflowFn", "isolated_registries", "registered_workflows"]

WorkflowFn = Callable[..., Any]

_WORKFLOWS: dict[str, Workflow] = {}
_UNSET = object()


class Workflow(Generic[In, Out]):
    """A durable workflow, generic over its input and output types.

    `@Workflow("order-processing", examples=[...])` on `async def fn(wf, order)`, or
    `Workflow("weekly-report").every("Monday at 9am").run(fn)` for a scheduled one (its function
    may take `wf` alone). `wf.<Domain>` resolves among `domains` when given, else to the Domain
    visible in the module that defined the workflow function (see awf_sim.dsl._domain), never
    to a Domain of the same name that another flow defines.

    Typed: `async def fn(wf, order: OrderInput) -> OrderResult` makes a
    `Workflow[OrderInput, OrderResult]` (each a pydantic model, a dataclass or a TypedDict).
    The params are given to the function as that type, and the output is checked against its
    declared type when the instance completes (an error names the first field that does not
    fit); `revive_output` turns the JSON output back into it.
    """

    # `Workflow(name, fn)` is typed from fn, as the decorator and `.run(fn)` forms are.
    @overload
    def __init__(
        self: Workflow[In2, Out2],
        name: str,
        fn: Callable[[Any, In2], Awaitable[Out2]],
        *,
        examples: Sequence[Any] | None = None,
        domains: Iterable[Domain] | None = None,
        events: Sequence[Mapping[str, Any]] | None = None,
    ) -> None: ...
    @overload
    def __init__(
        self: Workflow[None, Out2],
        name: str,
        fn: Callable[[Any], Awaitable[Out2]],
        *,
        examples: Sequence[Any] | None = None,
        domains: Iterable[Domain] | None = None,
        events: Sequence[Mapping[str, Any]] | None = None,
    ) -> None: ...
    @overload
    def __init__(
        self,
        name: str,
        fn: WorkflowFn | None = None,
        *,
        examples: Sequence[Any] | None = None,
        domains: Iterable[Domain] | None = None,
        events: Sequence[Mapping[str, Any]] | None = None,
    ) -> None: ...
    def __init__(
        self,
        name: str,
        fn: WorkflowFn | None = None,
        *,
        examples: Sequence[Any] | None = None,
        domains: Iterable[Domain] | None = None,
        events: Sequence[Mapping[str, Any]] | None = None,
    ) -> None:
        self.name = validate_name("workflow name", name)
        self.examples: list[Any] = _validate_examples(self.name, examples)
        self.events = _validate_events(self.name, events)
        self._domains: dict[str, Domain] | None = None
        if domains is not None:
            self._domains = {}
            for domain in domains:
                # A TypedDomain class stands for the Domain it defines.
                domain = getattr(domain, "domain", domain) if isinstance(domain, type) else domain
                if not isinstance(domain, Domain):
                    raise DefinitionError(
                        f"Workflow({name!r}, domains=...): expected Domain objects, got {domain!r}"
                    )
                self._domains[domain.name] = domain
        self.schedule: str | None = None
        self.fn: WorkflowFn | None = None
        self._takes_params = True
        self._input_model: object = _UNSET
        self._types: tuple[Any, Any] | None = None  # (input type, output type) once resolved
        # What `call` does with those types (a converter of the params or None, the output
        # type to check or None), decided once: asking per instance whether typing.Any is a
        # model or a dataclass cost more than the rest of starting an instance's body.
        self._call_plan: tuple[Any, Any] | None = None
        self._scope: Mapping[str, Any] | None = None  # the workflow function's module namespace
        self._resolved: dict[str, Domain] = {}
        self._resolved_at = -1
        # What `wf.<name>` binds to, kept by the DSL (_proxy): (Domain generation, class).
        self._pipelines: dict[str, tuple[int, Any]] = {}
        if fn is not None:
            self._set_fn(fn)
        _WORKFLOWS[self.name] = self

    @overload
    def __call__(self, fn: Callable[[Any, In2], Awaitable[Out2]], /) -> Workflow[In2, Out2]: ...
    @overload
    def __call__(self, fn: Callable[[Any], Awaitable[Out2]], /) -> Workflow[None, Out2]: ...
    @overload
    def __call__(self, fn: WorkflowFn, /) -> Workflow[Any, Any]: ...
    def __call__(self, fn: WorkflowFn, /) -> Workflow[Any, Any]:
        """Decorator form: `@Workflow("name")` above `async def fn(wf, params)`."""
        self._set_fn(fn)
        return self

    def every(self, schedule: str) -> Self:
        """Run on a schedule: a 5-field cron or a phrase such as "Monday at 9am"."""
        self.schedule = to_cron(schedule)
        return self

    @overload
    def run(self, fn: Callable[[Any, In2], Awaitable[Out2]], /) -> Workflow[In2, Out2]: ...
    @overload
    def run(self, fn: Callable[[Any], Awaitable[Out2]], /) -> Workflow[None, Out2]: ...
    @overload
    def run(self, fn: WorkflowFn, /) -> Workflow[Any, Any]: ...
    def run(self, fn: WorkflowFn, /) -> Workflow[Any, Any]:
        """Set the workflow function (the `.every(...).run(fn)` form)."""
        self._set_fn(fn)
        return self

    def _set_fn(self, fn: WorkflowFn) -> None:
        if self.fn is not None:
            raise DefinitionError(f"workflow {self.name!r} already has a function ({self.fn!r})")
        if not callable(fn):
            raise DefinitionError(
                f"workflow {self.name!r}: expected an async function (wf, params), got {fn!r}"
            )
        try:
            params = [
                p
                for p in inspect.signature(fn).parameters.values()
                if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
            ]
        except (TypeError, ValueError):  # builtins and some callables have no signature
            params = []
        if len(params) == 0 or len(params) > 2:
            raise DefinitionError(
                f"workflow {self.name!r}: its function must take (wf) or (wf, params), "
                f"got {len(params)} positional parameters"
            )
        self._takes_params = len(params) == 2
        self.fn = fn
        scope = getattr(inspect.unwrap(fn), "__globals__", None)
        self._scope = scope if isinstance(scope, dict) else None
        self._resolved_at = -1
        self._pipelines = {}
        self._input_model = _UNSET  # resolved on first use: annotations may name later types
        self._types = None
        self._call_plan = None
        try:  # refused here when they resolve already, else when the first instance starts
            hints = inspect.get_annotations(fn, eval_str=True)
        except Exception:
            return
        names = [p.name for p in params]
        refuse_workflow_types(
            self.name,
            hints.get(names[1], Any) if self._takes_params else None,
            hints.get("return", Any),
        )

    @property
    def input_model(self) -> type | None:
        """The pydantic model the params are annotated with, if any (duck-typed)."""
        if self._input_model is _UNSET:
            self._input_model = self._find_input_model()
        return self._input_model  # type: ignore[return-value]

    def _find_input_model(self) -> type | None:
        if self.fn is None or not self._takes_params:
            return None
        try:
            hints = inspect.get_annotations(self.fn, eval_str=True)
        except Exception:  # unresolvable string annotations: no model
            return None
        params = list(inspect.signature(self.fn).parameters)
        model = hints.get(params[1])
        return model if isinstance(model, type) and hasattr(model, "model_validate") else None

    def _declared(self) -> tuple[Any, Any]:
        """(input type, output type) from the function's annotations; Any where unknown."""
        if self._types is None:
            found: tuple[Any, Any] = (Any, Any)
            if self.fn is not None:
                try:
                    hints = inspect.get_annotations(self.fn, eval_str=True)
                    params = list(inspect.signature(self.fn).parameters)
                    found = (
                        hints.get(params[1], Any) if self._takes_params else None,
                        hints.get("return", Any),
                    )
                except Exception:  # unresolvable string annotations: nothing declared
                    pass
            self._types = found
        return self._types

    @property
    def input_type(self) -> Any:
        """The type the params are annotated with (Any when they are not)."""
        return self._declared()[0]

    @property
    def output_type(self) -> Any:
        """The type the function declares it returns (Any when it does not)."""
        return self._declared()[1]

    def revive_output(self, output: Any) -> Out:
        """An output as JSON (a status, a checkpoint) as the declared output type: a dataclass
        or a pydantic model is rebuilt, anything else is returned as it is."""
        convert = converter(self.output_type)
        return output if convert is None else convert(output, "output")  # type: ignore[no-any-return]

    def check_params(self, params: Any, root: str = "params") -> None:
        """Raise SerializationError naming the first field of `params` (JSON) that does not
        fit the declared input type; nothing when it fits or nothing is declared."""
        tp = self.input_type
        if _is_typeddict(tp):
            check_shape(tp, params, root)
        elif is_structured(tp):
            converter(tp)(params, root)  # type: ignore[misc]

    def check_output(self, output: Any, root: str = "output") -> None:
        """Raise SerializationError naming the first field of `output` (JSON) that does not
        fit the declared output type; nothing when it fits or nothing is declared."""
        check_shape(self.output_type, output, root)

    def call(self, wf: Any, params: Any) -> Any:
        """Invoke the workflow function with the `wf` proxy (and the params if it takes them)."""
        if self.fn is None:
            raise DefinitionError(
                f"workflow {self.name!r} has no function: decorate one or call .run(fn)"
            )
        plan = self._call_plan
        if plan is None:
            plan = self._call_plan = self._plan_call()
        convert, out_type = plan
        if not self._takes_params:
            result = self.fn(wf)
        else:
            if convert is not None:
                try:
                    params = convert(params, "params")
                except SerializationError as exc:
                    raise SerializationError(f"workflow {self.name!r}: {exc}") from None
            result = self.fn(wf, params)
        if out_type is None:
            return result
        return self._checked(result, out_type)

    def _plan_call(self) -> tuple[Any, Any]:
        in_type, out_type = self._declared()
        refuse_workflow_types(self.name, in_type, out_type)
        convert = None
        if self._takes_params and not is_model(in_type):
            convert = converter(in_type)  # models: validated by create
        if out_type is Any or not (is_structured(out_type) or _is_typeddict(out_type)):
            out_type = None
        return convert, out_type

    async def _checked(self, result: Any, out_type: Any) -> Any:
        if inspect.isawaitable(result):
            result = await result
        data = loads(dump_result(result, root="workflow output"))
        try:
            check_shape(out_type, data, "output")
        except SerializationError as exc:
            raise SerializationError(
                f"workflow {self.name!r} returned an output that does not match "
                f"{type_name(out_type)}: {exc}"
            ) from None
        return result

    def resolve_domain(self, name: str) -> Domain:
        """The Domain `wf.<name>` refers to; unknown names are an error listing the known ones."""
        if self._domains is not None:
            try:
                return self._domains[name]
            except KeyError:
                known = ", ".join(sorted(self._domains)) or "none"
                raise DefinitionError(
                    f"unknown domain {name!r} in workflow {self.name!r}; domains in this "
                    f"workflow's domains=: {known}"
                ) from None
        generation = _domain_module._GENERATION[0]
        if self._resolved_at != generation:  # a Domain was defined since: resolve afresh
            self._resolved = {}
            self._resolved_at = generation
        found = self._resolved.get(name)
        if found is not None:
            return found
        definitions = domain_definitions()
        found = resolve_in_scope(name, self._scope if self._scope is not None else {})
        if found is None:
            several = definitions.get(name, [])
            if several:
                places = ", ".join(f"{d._site[0]}:{d._site[1]}" for d in several)
                raise DefinitionError(
                    f"domain {name!r} in workflow {self.name!r} is defined in several places "
                    f"({places}) and none of them in or imported by the workflow's module; "
                    f"import the one you mean there, or pass domains=[...]"
                )
            known = ", ".join(sorted(n for n, ds in definitions.items() if ds)) or "none"
            raise DefinitionError(
                f"unknown domain {name!r} in workflow {self.name!r}; domains defined: {known}"
            )
        self._resolved[name] = found
        return found

    def __repr__(self) -> str:
        extra = f", every={self.schedule!r}" if self.schedule else ""
        return f"Workflow({self.name!r}{extra})"


def _is_typeddict(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, dict) and hasattr(tp, "__required_keys__")


def _validate_examples(workflow: str, examples: Sequence[Any] | None) -> list[Any]:
    """The example inputs as a list. A dict or a string is iterable too, but its keys or
    characters are no inputs: one input passed without its list is refused."""
    if examples is None:
        return []
    if isinstance(examples, list | tuple):
        return list(examples)
    raise DefinitionError(
        f"workflow {workflow!r}: examples must be a list of inputs, got "
        f"{type(examples).__name__} {_short(examples)}; for one input write examples=[...]"
    )


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:50] + "..."


def _validate_events(
    workflow: str, events: Sequence[Mapping[str, Any]] | None
) -> list[dict[str, Any]]:
    """The events a run of this workflow receives from the outside (a human approving, a
    webhook): [{"type", "payload", "after"}], `after` a duration from the instance's start.
    `awf-sim run` sends them, and `awf-sim chaos` sends them early, late and twice."""
    out: list[dict[str, Any]] = []
    given: Any = events  # what a flow file wrote, whatever its annotation says
    if given is not None and not isinstance(given, list | tuple):
        # A dict would be read key by key (events[0] the string "approval"), a string
        # character by character: name the shape instead.
        hint = (
            "; for one event write events=[{...}]"
            if isinstance(given, Mapping) and "type" in given
            else ""
        )
        raise DefinitionError(
            f"workflow {workflow!r}: events must be a list of events, got "
            f"{type(given).__name__} {_short(given)}, e.g. events=[{{'type': 'approval', "
            f"'payload': {{...}}, 'after': '1 hour'}}]{hint}"
        )
    for i, ev in enumerate(events or ()):
        if not isinstance(ev, Mapping) or not isinstance(ev.get("type"), str) or not ev["type"]:
            raise DefinitionError(
                f"workflow {workflow!r}: events[{i}] must be a dict with a non-empty 'type', "
                "e.g. {'type': 'approval', 'payload': {...}, 'after': '1 hour'}"
            )
        extra = set(ev) - {"type", "payload", "after"}
        if extra:
            raise DefinitionError(
                f"workflow {workflow!r}: events[{i}] has unknown keys {sorted(extra)}; "
                "use type, payload, after"
            )
        try:
            after = parse_duration(ev.get("after", 0))
            # Checked here, where the file and line are known, not when a run sends it.
            canonical(ev.get("payload"), root=f"events[{i}].payload")
        except (DefinitionError, SerializationError) as exc:
            raise type(exc)(f"workflow {workflow!r}: {exc}") from None
        out.append({"type": ev["type"], "payload": ev.get("payload"), "after_ms": after})
    return out


@contextlib.contextmanager
def isolated_registries() -> Iterator[None]:
    """Put the process-wide Domain and Workflow registries back as they were on exit.

    For tests and tools that load several flow files into one process (the examples define
    the same domain names in different files): what one loads cannot become a redefinition,
    with its warning, for the next."""
    domains, definitions = _domain_module._DOMAINS, _domain_module._DEFINITIONS
    saved_domains, saved_workflows = dict(domains), dict(_WORKFLOWS)
    saved_definitions = {name: list(ds) for name, ds in definitions.items()}
    try:
        yield
    finally:
        domains.clear()
        domains.update(saved_domains)
        definitions.clear()
        definitions.update(saved_definitions)
        _domain_module._GENERATION[0] += 1
        _WORKFLOWS.clear()
        _WORKFLOWS.update(saved_workflows)


def registered_workflows() -> Mapping[str, Workflow]:
    """Every Workflow defined in this process, by name (recovery resolves stored names here)."""
    return _WORKFLOWS
