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

import dataclasses
import enum
import inspect
import sys
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any

from awf_sim.dsl._errors import SerializationError
from awf_sim.dsl._texts import from_text, text_type

__all__ = [
    "check_shape",
    "converter",
    "is_namedtuple",
    "is_structured",
    "is_typeddict",
    "revive",
    "type_name",
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
                f"{path} is {_describe(value)}, not the object {type_name(cls)} is made from"
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
