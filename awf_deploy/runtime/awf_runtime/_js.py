"""The JavaScript boundary: Pyodide's `pyodide.ffi` and `js` inside a Worker, nothing outside
(the simulator runs the same code under a stand-in `workers` module). Values cross as plain data,
JavaScript `null` as None both ways."""

from __future__ import annotations

import importlib
import inspect
from typing import Any

from awf_sim.dsl import SerializationError
from awf_sim.dsl._identity import dump_result, loads


def _ffi() -> tuple[Any, Any] | None:
    """(pyodide.ffi, js) inside a Worker; None anywhere else (the simulator, tests)."""
    try:
        return importlib.import_module("pyodide.ffi"), importlib.import_module("js")
    except ImportError:
        return None


def to_js(value: Any) -> Any:
    """A Python value as a plain JavaScript object (dicts become Objects, not Maps), None as
    `null` at any depth (Pyodide's own to_js makes it `undefined`, which JSON drops)."""
    ffi = _ffi()
    if ffi is None:
        return value
    pyffi, js = ffi
    null = _jsnull()
    if null is not None:
        value = _none_to_null(value, null)
    return pyffi.to_js(value, dict_converter=js.Object.fromEntries)


def _none_to_null(value: Any, null: Any) -> Any:
    if value is None:
        return null
    if isinstance(value, dict):
        return {key: _none_to_null(item, null) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_none_to_null(item, null) for item in value]
    return value


def to_py(value: Any) -> Any:
    """A JavaScript value as Python (dicts and lists), with JavaScript `null` as None at any
    depth (Pyodide keeps it as `pyodide.ffi.jsnull`, so `row["c"] is None` would be False);
    Python values pass through."""
    if value is None:
        return None
    convert = getattr(value, "to_py", None)
    if callable(convert):
        value = convert()
    null = _jsnull()
    return value if null is None else _nulls_to_none(value, null)


_JSNULL: list[Any] = []


def _jsnull() -> Any:
    """`pyodide.ffi.jsnull` inside a Worker, None elsewhere (looked up once)."""
    if not _JSNULL:
        ffi = _ffi()
        _JSNULL.append(getattr(ffi[0], "jsnull", None) if ffi is not None else None)
    return _JSNULL[0]


def _nulls_to_none(value: Any, null: Any) -> Any:
    if value is null:
        return None
    if isinstance(value, dict):
        return {key: _nulls_to_none(item, null) for key, item in value.items()}
    if isinstance(value, list):
        return [_nulls_to_none(item, null) for item in value]
    return value


async def _settle(value: Any) -> Any:
    """Await until the value is no longer awaitable (the SDK's wrappers return promises from
    `async def` methods, which must be awaited twice)."""
    while inspect.isawaitable(value):
        value = await value
    return value


def _jsonable(value: Any, what: str) -> Any:
    """The value as plain JSON data (pydantic models and dataclasses dumped), or unchanged if it
    is not serialisable: the engine then reports it as it does for any other value."""
    try:
        return loads(dump_result(value, root=what))
    except SerializationError:
        return value
