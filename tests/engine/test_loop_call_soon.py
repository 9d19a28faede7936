"""VirtualLoop.call_soon is asyncio's, built without its Python layers: the same order, the
same contexts, cancellable handles, and asyncio's own checks when the loop is closed or in
debug mode."""

from __future__ import annotations

import asyncio
import contextvars

import pytest

from awf_sim.engine._loop import VirtualLoop

where: contextvars.ContextVar[str] = contextvars.ContextVar("where", default="outside")


def _drain(loop: VirtualLoop) -> None:
    loop.run_until_complete(asyncio.sleep(0))


def test_callbacks_run_once_each_in_the_order_they_were_scheduled() -> None:
    loop = VirtualLoop()
    seen: list[tuple[str, int]] = []
    for n in range(5):
        loop.call_soon(seen.append, ("a", n))
    dropped = loop.call_soon(seen.append, ("dropped", 0))
    loop.call_soon(seen.append, ("b", 9))
    dropped.cancel()
    _drain(loop)
    _drain(loop)
    assert seen == [("a", n) for n in range(5)] + [("b", 9)]
    loop.close()


def test_a_callback_runs_in_a_copy_of_the_context_it_was_scheduled_in_or_the_one_given() -> None:
    loop = VirtualLoop()
    seen: list[str] = []
    token = where.set("at call_soon")
    loop.call_soon(lambda: seen.append(where.get()))
    where.set("changed after")
    given = contextvars.Context()
    given.run(where.set, "given")
    loop.call_soon(lambda: seen.append(where.get()), context=given)
    where.reset(token)
    _drain(loop)
    assert seen == ["at call_soon", "given"]
    loop.close()


def test_a_closed_loop_refuses_as_asyncio_does() -> None:
    loop = VirtualLoop()
    loop.close()
    with pytest.raises(RuntimeError, match="Event loop is closed"):
        loop.call_soon(print)


def test_debug_mode_keeps_asyncios_checks_and_source_tracebacks() -> None:
    loop = VirtualLoop()
    loop.set_debug(True)
    handle = loop.call_soon(print, "x")
    assert handle._source_traceback  # type: ignore[attr-defined]
    handle.cancel()
    with pytest.raises(TypeError, match="coroutines cannot be used with call_soon"):
        loop.call_soon(asyncio.sleep)  # type: ignore[arg-type]
    loop.close()
