"""Typed values across a checkpoint: JSON in, the annotated type out.

A step's result is checkpointed as JSON, so what a replay gets back is a dict. A handler
annotated `-> Stock` (a dataclass or a pydantic model) means the workflow expects a `Stock`:
`revive(Stock, value)` rebuilds one from the JSON, the same on the first run (which also reads
the checkpoint back), on every replay, and inside a Worker bundle (standard library only here;
pydantic models are rebuilt through their own `model_validate`, found by duck typing).

Enums (their values), tuples and NamedTuples (JSON lists), a TypedDict or a union holding
any of these are rebuilt too. A type with nothing to rebuild (dict, list[int], Any, a TypedDict
of plain values) is left alone: `converter(tp)` is None for it, and the caller does nothing.
What a checkpoint cannot carry at all (a dataclass field that is a datetime, a set) is refused
where it is declared: awf_sim.dsl._carry.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import enum
import inspect
import sys
import types
import typing
from collections.abc import Awaitable, Callable, Generator, Iterator, Mapping
from typing import Any

from awf_sim.dsl._errors import SerializationError
from awf_sim.dsl._texts import from_text, text_type

__all__ = [
    "await_result",
    "check_shape",
    "converter",
    "handler_types",
    "input_adapter",
    "is_namedtuple",
    "is_structured",
    "is_typeddict",
    "result_converter",
    "revive",
    "type_name",
    "watch_types",
]

Convert = Callable[[Any, str], Any]

_NONE_TYPE = type(None)
_MISSING = object()


def is_model(tp: object) -> bool:
    return isinstance(tp, type) and hasattr(tp, "model_validate") and hasattr(tp, "model_fields")


def is_structured(tp: object) -> bool:
    """A dataclass or a pydantic model: a type a checkpoint's JSON is turned back into."""
    return is_model(tp) or (isinstance(tp, type) and dataclasses.is_dataclass(tp))


def type_name(tp: object) -> str:
    return getattr(tp, "__qualname__", None) or getattr(tp, "__name__", None) or repr(tp)


def _module_scope(owner: Any) -> dict[str, Any]:
    """The namespace of the module that defined `owner`: from sys.modules, else from one of
    its functions (a dataclass's generated __init__ keeps it), for a module that has since
    left sys.modules (a bundle imported in-process, then put away)."""
    module = sys.modules.get(getattr(owner, "__module__", "") or "")
    if module is not None:
        return vars(module)
    for value in vars(owner).values():
        scope = getattr(value, "__globals__", None)
        if isinstance(scope, dict) and scope.get("__name__") == owner.__module__:
            return scope
    return {}


def _hints(owner: Any) -> dict[str, Any]:
    scope = _module_scope(owner)
    try:
        return typing.get_type_hints(owner, scope)
    except Exception:  # one annotation names a TYPE_CHECKING import: resolve the others
        out: dict[str, Any] = {}
        for klass in reversed(owner.__mro__):
            for name, tp in inspect.get_annotations(klass).items():
                if isinstance(tp, str):
                    try:
                        tp = eval(tp, scope)
                    except Exception:
                        tp = Any
                out[name] = tp
        return out


def converter(tp: Any) -> Convert | None:
    """A function (value, path) -> value of type `tp`, or None when `tp` needs no conversion
    (nothing in it is a dataclass or a model)."""
    return _converter(tp, set())


def _converter(tp: Any, seen: set[int]) -> Convert | None:
    if tp is Any or tp is None or tp is _NONE_TYPE:
        return None
    if is_model(tp):
        return _model(tp)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if id(tp) in seen:  # a recursive dataclass: look its fields up when converting
            return lambda value, path: _dataclass(tp, set())(value, path)
        return _dataclass(tp, seen | {id(tp)})
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return _enum(tp)
    if text_type(tp) is not None:  # params only: _carry refuses them where Python writes JSON
        return from_text(tp)
    if is_namedtuple(tp):
        if id(tp) in seen:
            return lambda value, path: _namedtuple(tp, set())(value, path)
        return _namedtuple(tp, seen | {id(tp)})
    if is_typeddict(tp):
        if id(tp) in seen:  # a recursive TypedDict: look its keys up when converting
            return lambda value, path: (_typeddict(tp, set()) or _as_is)(value, path)
        return _typeddict(tp, seen | {id(tp)})
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Annotated:
        return _converter(args[0], seen)
    if origin in (typing.Union, types.UnionType):
        return _union(args, seen)
    if tp is tuple or origin is tuple:  # JSON has lists: a declared tuple is made one again
        return _tuple(args, seen)
    if origin in (list, set, frozenset) or (
        getattr(origin, "__name__", "") in ("Sequence", "MutableSequence")
    ):
        if not args:
            return None
        each = _converter(args[0], seen)
        if each is None:
            return None
        return lambda value, path: (
            [each(v, f"{path}[{i}]") for i, v in enumerate(value)]
            if isinstance(value, list)
            else value
        )
    if origin is dict or getattr(origin, "__name__", "") in ("Mapping", "MutableMapping"):
        item = _converter(args[1], seen) if len(args) == 2 else None
        if item is None:
            return None
        return lambda value, path: (
            {k: item(v, f"{path}.{k}") for k, v in value.items()}
            if isinstance(value, dict)
            else value
        )
    return None


def _union(args: tuple[Any, ...], seen: set[int]) -> Convert | None:
    parts = [a for a in args if a is not _NONE_TYPE]
    if len(parts) == 1:
        inner = _converter(parts[0], seen)
        if inner is None:
            return None
        return lambda value, path: None if value is None else inner(value, path)
    plan = [(part, _converter(part, seen)) for part in parts]
    if all(convert is None for _, convert in plan):
        return None

    def convert(value: Any, path: str) -> Any:
        # X | Y: the first member, in the order declared, that the value fits.
        if value is None:
            return None
        first: SerializationError | None = None
        for part, inner in plan:
            if inner is None:
                if _fits_plain(part, value):
                    return value
                continue
            try:
                return inner(value, path)
            except (SerializationError, TypeError, ValueError) as exc:
                if first is None:
                    first = exc if isinstance(exc, SerializationError) else None
        names = " | ".join(type_name(p) for p in parts)
        detail = f" ({first})" if first is not None else ""
        raise SerializationError(
            f"{path} is {_describe(value)}, which fits none of {names}{detail}"
        )

    return convert


def _fits_plain(tp: Any, value: Any) -> bool:
    """Whether JSON `value` is a value of `tp`, a member of a union with nothing to rebuild."""
    if tp is Any or tp is object:
        return True
    origin = typing.get_origin(tp) or tp
    if origin is typing.Literal:
        return value in typing.get_args(tp)
    if origin is typing.Annotated:
        return _fits_plain(typing.get_args(tp)[0], value)
    allowed = _LEAF_TYPES.get(origin)
    if allowed is None:
        if not isinstance(origin, type):  # a NewType, a protocol alias: not checked here
            return True
        if issubclass(origin, dict):  # a TypedDict
            return isinstance(value, dict)
        return isinstance(value, origin)
    if origin is int and isinstance(value, bool):
        return False
    return isinstance(value, allowed)


def _as_is(value: Any, path: str) -> Any:
    return value


def _enum(tp: Any) -> Convert:
    def convert(value: Any, path: str) -> Any:
        if isinstance(value, tp):
            return value
        try:
            return tp(value)
        except ValueError:
            members = ", ".join(repr(m.value) for m in tp)
            raise SerializationError(
                f"{path} is {_describe(value)}, not a value of {type_name(tp)} ({members})"
            ) from None

    return convert


def _not_a_list(value: Any, path: str, tp: str) -> SerializationError:
    return SerializationError(f"{path} is {_describe(value)}, not the list a {tp} is made from")


def _tuple(args: tuple[Any, ...], seen: set[int]) -> Convert:
    if len(args) == 2 and args[1] is Ellipsis:
        each = _converter(args[0], seen)

        def convert_all(value: Any, path: str) -> Any:
            if not isinstance(value, list | tuple):
                raise _not_a_list(value, path, "tuple")
            if each is None:
                return tuple(value)
            return tuple(each(v, f"{path}[{i}]") for i, v in enumerate(value))

        return convert_all
    items = [_converter(a, seen) for a in args if a != ()]  # tuple[()] is the empty tuple

    def convert(value: Any, path: str) -> Any:
        if not isinstance(value, list | tuple):
            raise _not_a_list(value, path, "tuple")
        if args and len(value) != len(items):
            raise SerializationError(
                f"{path} has {len(value)} items, not the {len(items)} of tuple"
                f"[{', '.join(type_name(a) for a in args)}]"
            )
        return tuple(
            v if not args or items[i] is None else items[i](v, f"{path}[{i}]")  # type: ignore[misc]
            for i, v in enumerate(value)
        )

    return convert


def is_namedtuple(tp: object) -> bool:
    return isinstance(tp, type) and issubclass(tp, tuple) and hasattr(tp, "_fields")


def _namedtuple(tp: Any, seen: set[int]) -> Convert:
    hints = _hints(tp)
    fields = [(name, _converter(hints.get(name, Any), seen)) for name in tp._fields]

    def convert(value: Any, path: str) -> Any:
        if isinstance(value, tp):
            return value
        if not isinstance(value, list | tuple):
            raise _not_a_list(value, path, type_name(tp))
        if len(value) > len(fields):
            raise SerializationError(
                f"{path} has {len(value)} items; {type_name(tp)} has {len(fields)} fields"
            )
        return tp(
            *(
                v if fields[i][1] is None else fields[i][1](v, f"{path}.{fields[i][0]}")  # type: ignore[misc]
                for i, v in enumerate(value)
            )
        )

    return convert


def is_typeddict(tp: object) -> bool:
    return isinstance(tp, type) and issubclass(tp, dict) and hasattr(tp, "__required_keys__")


def _typeddict(tp: Any, seen: set[int]) -> Convert | None:
    keys = {k: c for k, t in _hints(tp).items() if (c := _converter(t, seen)) is not None}
    if not keys:  # plain values only: the JSON object is the TypedDict
        return None

    def convert(value: Any, path: str) -> Any:
        if not isinstance(value, Mapping):
            raise SerializationError(f"{path} is {_describe(value)}, not a {type_name(tp)} object")
        return {
            k: (keys[k](v, f"{path}.{k}") if k in keys and v is not None else v)
            for k, v in value.items()
        }

    return convert


def _model(model: Any) -> Convert:
    def convert(value: Any, path: str) -> Any:
        if isinstance(value, model):
            return value
        try:
            return model.model_validate(value)
        except ValueError as exc:  # pydantic's ValidationError is a ValueError
            first = _first_pydantic_error(exc)
            raise SerializationError(
                f"{path}{first} does not fit {type_name(model)}: {_oneline(exc)}"
            ) from None

    return convert


def _first_pydantic_error(exc: Exception) -> str:
    errors = getattr(exc, "errors", None)
    try:
        loc = errors()[0]["loc"] if callable(errors) else ()
    except Exception:
        loc = ()
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc)


def _oneline(exc: Exception) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        try:
            first = errors()[0]
            return str(first.get("msg", exc))
        except Exception:
            pass
    return str(exc).splitlines()[0]


def _dataclass(cls: Any, seen: set[int]) -> Convert:
    fields = [f for f in dataclasses.fields(cls) if f.init]
    hints = _hints(cls)
    plan: list[tuple[str, Convert | None, Any, bool]] = []
    for f in fields:
        tp = hints.get(f.name, Any)
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        plan.append((f.name, _converter(tp, seen), tp, required))
    names = {name for name, *_ in plan}

    def convert(value: Any, path: str) -> Any:
        if isinstance(value, cls):
            return value
        if not isinstance(value, Mapping):
            raise SerializationError(
                f"{path} is {_describe(value)}, not the object a {type_name(cls)} is made from"
            )
        extra = [k for k in value if k not in names]
        if extra:
            raise SerializationError(
                f"{path}.{extra[0]} is not a field of {type_name(cls)} "
                f"(fields: {', '.join(sorted(names))})"
            )
        kwargs: dict[str, Any] = {}
        for name, inner, tp, required in plan:
            item = value.get(name, _MISSING)
            if item is _MISSING:
                if required:
                    raise SerializationError(
                        f"{path}.{name} is missing: {type_name(cls)} requires it"
                    )
                continue
            where = f"{path}.{name}"
            _check_leaf(tp, item, where)
            kwargs[name] = inner(item, where) if inner is not None else item
        return cls(**kwargs)

    return convert


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    name = type(value).__name__
    return f"{'an' if name[:1] in 'aeiou' else 'a'} {name} ({value!r:.40})"


_LEAF_TYPES: dict[Any, tuple[type, ...]] = {
    str: (str,),
    int: (int,),
    float: (int, float),
    bool: (bool,),
    list: (list,),
    dict: (dict,),
}


def _check_leaf(tp: Any, value: Any, path: str) -> None:
    """A field declared str, int, float, bool, list or dict (or optional) holds one."""
    optional = False
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        parts = [a for a in typing.get_args(tp) if a is not _NONE_TYPE]
        optional = len(parts) < len(typing.get_args(tp))
        if len(parts) != 1:
            return
        tp = parts[0]
        origin = typing.get_origin(tp)
    if value is None:
        if optional or tp is Any:
            return
        if tp in _LEAF_TYPES or origin in _LEAF_TYPES:
            raise SerializationError(f"{path} is null, not {type_name(origin or tp)}")
        return
    allowed = _LEAF_TYPES.get(origin or tp)
    if allowed is None:
        return
    if not isinstance(value, allowed) or (tp is int and isinstance(value, bool)):
        raise SerializationError(f"{path} is {_describe(value)}, not {type_name(origin or tp)}")


def revive(tp: Any, value: Any, path: str = "value") -> Any:
    """`value` (JSON data) as `tp`: dataclasses and models rebuilt, anything else as it is."""
    convert = converter(tp)
    return value if convert is None else convert(value, path)


def check_shape(tp: Any, value: Any, path: str) -> None:
    """Raise SerializationError naming the first field of `value` (JSON data) that does not
    fit `tp`: a dataclass, a pydantic model or a TypedDict (keys and leaf types)."""
    if is_typeddict(tp):
        _check_typeddict(tp, value, path)
        return
    if is_structured(tp):
        converter(tp)(value, path)  # type: ignore[misc]


def _check_typeddict(tp: Any, value: Any, path: str) -> None:
    if not isinstance(value, Mapping):
        raise SerializationError(f"{path} is {_describe(value)}, not a {type_name(tp)} object")
    hints = _hints(tp)
    for key in sorted(tp.__required_keys__):
        if key not in value:
            raise SerializationError(f"{path}.{key} is missing: {type_name(tp)} requires it")
    for key, item in value.items():
        if key not in hints:
            raise SerializationError(
                f"{path}.{key} is not a key of {type_name(tp)} (keys: {', '.join(sorted(hints))})"
            )
        check_shape(hints[key], item, f"{path}.{key}")
        _check_leaf(hints[key], item, f"{path}.{key}")


# -- handlers ------------------------------------------------------------------------------


def handler_types(handler: Any) -> tuple[Any, Any, Any]:
    """(context type, args type, result type) from a handler's annotations; Any where there
    is none, or where one names something not importable at run time (a TYPE_CHECKING
    import). A coroutine function's result is what it returns, not the coroutine."""
    return _handler_types(handler)[0]


def _handler_types(handler: Any) -> tuple[tuple[Any, Any, Any], bool]:
    """handler_types, and whether the context's or args' annotation named nothing (yet)."""
    target = inspect.unwrap(handler)
    try:
        params = list(inspect.signature(target).parameters.values())
        raw = inspect.get_annotations(target)
    except Exception:  # a builtin, a callable object
        return (Any, Any, Any), False
    scope = getattr(target, "__globals__", {})
    unresolved = [False]

    def resolve(name: str | None, track: bool) -> Any:
        if name is None or name not in raw:
            return Any
        tp = raw[name]
        if isinstance(tp, str):
            try:
                tp = eval(tp, scope)  # an annotation, resolved as typing.get_type_hints does
            except Exception:
                unresolved[0] = unresolved[0] or track
                return Any
        return tp

    found = (
        resolve(params[0].name if params else None, True),
        resolve(params[1].name if len(params) > 1 else None, True),
        resolve("return", False),
    )
    return found, unresolved[0]


def result_converter(handler: Any) -> Callable[[Any, str], Any] | None:
    """What turns a step's checkpointed result back into the handler's declared result
    type, given the value and what to call it in an error (`result of Mailer.notify`); None
    (the common case) when that type is plain JSON. Computed once per handler."""
    cached: Any = getattr(handler, "__awf_result__", _MISSING)
    if cached is not _MISSING:
        return cached  # type: ignore[no-any-return]
    found = converter(handler_types(handler)[2])
    try:  # kept on the function: it goes when the function goes
        handler.__awf_result__ = found
    except AttributeError:  # a bound method or a builtin: looked up again next time
        pass
    return found


# While set (chaos, see awf_sim.chaos._type_checks), the type of every step result handed to
# a workflow: (lifetime token, step name, type name), in order.
_WATCH: contextvars.ContextVar[list[tuple[int, str, str]] | None] = contextvars.ContextVar(
    "awf_value_types", default=None
)


def await_result(step: Awaitable[Any], call: Any, lifetime: object) -> Generator[Any, None, Any]:
    """The generator awaiting a domain step: its result as the last handler declares it.

    `call` is the StepCall, `lifetime` the `wf` of this run of the workflow function."""
    revive = result_converter(call.calls[-1][0].handler)
    seen = _WATCH.get()
    if revive is None and seen is None:  # the common case: the runtime's own value
        return step.__await__()
    # Named by the step's path, as the user wrote it: one handler may serve two domains.
    return _received(step, revive, seen, id(lifetime), call.name, f"result of {call.label}")


def _received(
    step: Awaitable[Any],
    revive: Callable[[Any, str], Any] | None,
    seen: list[tuple[int, str, str]] | None,
    token: int,
    name: str,
    where: str,
) -> Generator[Any, None, Any]:
    value = yield from step.__await__()
    if revive is not None:
        value = revive(value, where)
    if seen is not None:
        seen.append((token, name, type_name(type(value))))
    return value


@contextlib.contextmanager
def watch_types() -> Iterator[list[tuple[int, str, str]]]:
    """Record the type of every step result a workflow receives in this context."""
    seen: list[tuple[int, str, str]] = []
    token = _WATCH.set(seen)
    try:
        yield seen
    finally:
        _WATCH.reset(token)


def _no_args(value: Any, path: str) -> None:
    return None


Check = Callable[[tuple[Any, Any, Any]], None]


def input_adapter(handler: Any, check: Check | None = None) -> Any:
    """`handler` itself, or a wrapper handing it its context and args as the types it
    declares for them (a dataclass or a model), rebuilt from the JSON the step carries.
    `check` is given the declared (context, args, result) types once they resolve, to refuse
    what a checkpoint cannot carry: here, or at the first call for a type defined later."""
    types, unresolved = _handler_types(handler)
    if unresolved:  # names a type defined later in its module: look again at the first call
        return _lazy_adapter(handler, check)
    if check is not None:
        check(types)
    return _adapter(handler, types[0], types[1])


def _adapter(handler: Any, context_tp: Any, args_tp: Any) -> Any:
    to_context, to_args = converter(context_tp), converter(args_tp)
    if args_tp is None or args_tp is _NONE_TYPE:  # `args: None`: a method called without any
        to_args = _no_args
    if to_context is None and to_args is None:
        return handler

    def adapted(context: Any, args: Any, ctx: Any) -> Any:
        if to_context is not None:
            context = to_context(context, "context")
        if to_args is not None:
            args = to_args(args, "args")
        return handler(context, args, ctx)

    adapted.__wrapped__ = handler  # type: ignore[attr-defined]
    adapted.__qualname__ = getattr(handler, "__qualname__", "handler")
    return adapted


def _lazy_adapter(handler: Any, check: Check | None) -> Any:
    resolved: list[Any] = []

    def adapted(context: Any, args: Any, ctx: Any) -> Any:
        if not resolved:  # what still names nothing now is Any
            types = handler_types(handler)
            if check is not None:
                check(types)
            resolved.append(_adapter(handler, types[0], types[1]))
        return resolved[0](context, args, ctx)

    adapted.__wrapped__ = handler  # type: ignore[attr-defined]
    adapted.__qualname__ = getattr(handler, "__qualname__", "handler")
    return adapted
