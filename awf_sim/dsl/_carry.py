"""What a checkpoint can carry: declared types refused where they are declared.

Steps keep their context, args and result as JSON (DESIGN §2: pydantic models and dataclasses
are dumped to JSON values first, anything else is an error). A handler or workflow annotated
with a type that JSON cannot hold (a dataclass with a `datetime` field, a `set[str]`) used to
pass definition and then fail at run time, on the first instance that reached the step
(`WorkflowFatalError: ... is not serialisable`), or, for a workflow input, hand the workflow a
`str` where it declared a `datetime`. `refusal(tp)` names the first such part of a declared
type, and the Domain, TypedDomain and Workflow definitions raise DefinitionError with it.

Pydantic models carry their own fields as JSON (`model_dump(mode="json")`, `model_validate`),
so a model is accepted as it is, datetimes and all: it is the fix the message proposes.
Classes this module does not know are left to the run, as before.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import decimal
import enum
import pathlib
import types
import typing
import uuid
from typing import Any

from awf_sim.dsl._errors import DefinitionError
from awf_sim.dsl._texts import text_type
from awf_sim.dsl._values import (
    _hints,
    is_model,
    is_namedtuple,
    is_typeddict,
    type_name,
)

__all__ = ["refusal", "refuse_handler_types", "refuse_workflow_types"]

_NONE_TYPE = type(None)

# Types JSON has no form for, and what to declare instead (inside a dataclass, a TypedDict, a
# NamedTuple, or as the whole value).
_NOT_JSON: dict[type, str] = {
    _dt.datetime: "declare it str (an ISO 8601 text) or an int of epoch ms",
    _dt.date: "declare it str (an ISO 8601 date)",
    _dt.time: "declare it str (an ISO 8601 time)",
    _dt.timedelta: "declare it a number of seconds or milliseconds",
    decimal.Decimal: "declare it str (exact) or float",
    uuid.UUID: "declare it str",
    bytes: "declare it str (base64 or hex)",
    bytearray: "declare it str (base64 or hex)",
    complex: "declare it a pair of floats",
    pathlib.PurePath: "declare it str",
}
_MODEL_FIX = " (or use a pydantic model, which stores it as JSON)"


def refusal(tp: Any, what: str, *, read_only: bool = False) -> str | None:
    """Why a checkpoint cannot carry values of the declared type `tp`, or None when it can
    (or when `tp` is not a type this module knows). `what` names the whole value: `result`.
    `read_only`: the value only comes in as JSON (a workflow's params), so what is rebuilt
    from JSON text (a datetime, a Decimal, any Enum: awf_sim.dsl._texts) is fine."""
    return _walk(tp, what, set(), read_only)


def refuse_handler_types(where: str, types: tuple[Any, Any, Any]) -> None:
    """DefinitionError when the handler of `where` (`Inventory.check`) declares a context,
    args or result type that a checkpoint cannot carry."""
    for tp, what in zip(types, ("context", "args", "result"), strict=True):
        found = refusal(tp, what)
        if found is not None:
            raise DefinitionError(f"{where}: {_declared(tp, what)}: {found}")
    bad = _not_an_object(types[1])
    if bad is not None:
        # A step's args are one JSON object (`.reserve({"quantity": 2})`, DESIGN §2): a
        # handler taking `args: int` type-checks as `.reserve(2)` and fails on every call.
        raise DefinitionError(
            f"{where}: its args type {type_name(bad)} is not an object: a step's args are one "
            "JSON object (or none); declare a dataclass, a TypedDict, a pydantic model, "
            "dict[str, ...] or None, and put the value in a field"
        )


def _not_an_object(tp: Any) -> Any:
    """The part of an args type that is no JSON object (int, list[str], an Enum), or None."""
    if tp is Any or tp is None or tp is _NONE_TYPE or isinstance(tp, typing.TypeVar | str):
        return None
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _not_an_object(typing.get_args(tp)[0])
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            found = _not_an_object(arg)
            if found is not None:
                return found
        return None
    kind = origin if origin is not None else tp
    if not isinstance(kind, type) or kind is object:
        return None
    if (
        is_model(kind)
        or dataclasses.is_dataclass(kind)
        or issubclass(kind, dict)
        or _named(kind, "Mapping", "MutableMapping")
    ):
        return None
    return kind


def refuse_workflow_types(name: str, input_type: Any, output_type: Any) -> None:
    """DefinitionError when workflow `name` declares params or an output that JSON cannot
    carry (an instance's params and output are stored as JSON)."""
    for tp, what in ((input_type, "params"), (output_type, "output")):
        found = refusal(tp, what, read_only=what == "params")
        if found is not None:
            raise DefinitionError(f"workflow {name!r}: {_declared(tp, what)}: {found}")


def _declared(tp: Any, what: str) -> str:
    name = type_name(tp) if isinstance(tp, type) else repr(tp)
    return f"its {what} type {name} cannot be checkpointed"


def _walk(tp: Any, path: str, seen: set[int], read_only: bool) -> str | None:
    if tp is Any or tp is None or tp is _NONE_TYPE or isinstance(tp, typing.TypeVar | str):
        return None
    if is_model(tp):
        return None  # a model dumps and validates its own fields
    supertype = getattr(tp, "__supertype__", None)
    if supertype is not None:  # NewType
        return _walk(supertype, path, seen, read_only)
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Annotated:
        return _walk(args[0], path, seen, read_only)
    if origin in (typing.Union, types.UnionType):
        for arg in args:
            found = _walk(arg, path, seen, read_only)
            if found is not None:
                return found
        return None
    if origin is typing.Literal or origin is typing.ClassVar:
        return None
    if origin in (set, frozenset) or tp in (set, frozenset) or _named(origin, "Set"):
        return (
            f"{path} is declared a set, which JSON has no form for (and whose order differs "
            "between processes): declare it list[...] (sorted, if the order should not matter)"
        )
    if origin is not None:
        if origin is dict or _named(origin, "Mapping", "MutableMapping"):
            if args and not _string_key(args[0]):
                return (
                    f"{path} is declared dict[{type_name(args[0])}, ...], but JSON object keys "
                    "are strings, so its keys would come back as str: declare dict[str, ...]"
                )
            return _walk(args[1], f"{path}[...]", seen, read_only) if len(args) == 2 else None
        for arg in args:
            if arg is not Ellipsis and arg != ():
                found = _walk(arg, f"{path}[...]", seen, read_only)
                if found is not None:
                    return found
        return None
    if not isinstance(tp, type):
        return None
    if id(tp) in seen:
        return None
    if read_only and (text_type(tp) is not None or issubclass(tp, enum.Enum)):
        return None  # rebuilt from the JSON text or value a caller sends
    for kind, fix in _NOT_JSON.items():
        if issubclass(tp, kind):
            return f"{path} is a {type_name(kind)}, which JSON has no form for; {fix}{_MODEL_FIX}"
    if issubclass(tp, enum.Enum):
        if issubclass(tp, str | int):
            return None  # its members are JSON strings or numbers
        return (
            f"{path} is the Enum {type_name(tp)}, whose members are not JSON: derive it from "
            f"str or int (class {type_name(tp)}(str, Enum), StrEnum or IntEnum)"
        )
    inner = seen | {id(tp)}
    if dataclasses.is_dataclass(tp):
        hints = _hints(tp)
        for field in dataclasses.fields(tp):
            found = _walk(
                hints.get(field.name, Any), f"{type_name(tp)}.{field.name}", inner, read_only
            )
            if found is not None:
                return found
        return None
    if is_typeddict(tp) or is_namedtuple(tp):
        for name, hint in _hints(tp).items():
            found = _walk(hint, f"{type_name(tp)}.{name}", inner, read_only)
            if found is not None:
                return found
    return None


def _named(origin: Any, *names: str) -> bool:
    return getattr(origin, "__module__", "") == "collections.abc" and (
        getattr(origin, "__name__", "") in names
    )


def _string_key(tp: Any) -> bool:
    if tp is Any or tp is str or isinstance(tp, typing.TypeVar):
        return True
    origin = typing.get_origin(tp)
    if origin is typing.Literal:
        return all(isinstance(a, str) for a in typing.get_args(tp))
    if origin is typing.Annotated:
        return _string_key(typing.get_args(tp)[0])
    supertype = getattr(tp, "__supertype__", None)
    if supertype is not None:
        return _string_key(supertype)
    return isinstance(tp, type) and issubclass(tp, str)
