"""Handlers and typed values: what a handler declares, and each step's values handed to it,
and back to the workflow, as those types (the conversions themselves are in `_values`).

A handler's annotations give (context, args, result) types. `input_adapter` wraps a handler
whose context or args is a dataclass or model so it gets those; `await_result` hands the
workflow a step's result as the last handler declares it; `watch_types` lets chaos record the
type of every result a workflow receives.
"""

from __future__ import annotations

import contextlib
import contextvars
import inspect
from collections.abc import Awaitable, Callable, Generator, Iterator
from typing import Any

from awf_sim.dsl._values import _MISSING, _NONE_TYPE, converter, type_name

__all__ = [
    "await_result",
    "handler_types",
    "input_adapter",
    "result_converter",
    "watch_types",
]


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
