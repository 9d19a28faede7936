"""Driving a coroutine by hand: run it to its first suspension, then let a Task finish it.

The engine's fast path (a handler that never suspends costs no Task and no timer) and process
isolation both need this; it lives here so that neither imports the other.
"""

from __future__ import annotations

from collections.abc import Coroutine, Generator
from typing import Any

__all__ = ["HandCoroutine", "Resume", "finish"]


class HandCoroutine:
    """The iteration half of a coroutine written out as a class (its `send`, `throw` and
    `close` are its own): awaited, it is its own iterator, and `next` is `send(None)`. Classes
    instead of `async def`s where every waiting instance keeps one (a frame costs more)."""

    __slots__ = ()

    def send(self, value: Any) -> Any:
        raise NotImplementedError

    def __await__(self) -> Any:
        return self

    def __iter__(self) -> Any:
        return self

    def __next__(self) -> Any:
        return self.send(None)

    @staticmethod
    def thrown(typ: Any, val: Any = None, tb: Any = None) -> BaseException:
        """The exception `throw(typ, val, tb)` stands for, in each of the signature's forms."""
        if val is None:
            exc = typ if isinstance(typ, BaseException) else typ()
        else:
            exc = val if isinstance(val, BaseException) else typ(val)
        if tb is not None:
            exc = exc.with_traceback(tb)
        return exc


class Resume:
    """Continues a coroutine that suspended on its first send: awaiting this yields what the
    coroutine yielded (a future, to the Task driving it) and forwards what comes back."""

    __slots__ = ("coro", "first")

    def __init__(self, coro: Coroutine[Any, Any, Any], first: Any) -> None:
        self.coro = coro
        self.first = first

    def __await__(self) -> Generator[Any, Any, Any]:
        coro, pending = self.coro, self.first
        while True:
            try:
                sent = yield pending
            except BaseException as exc:  # cancellation or a thrown error goes to the coroutine
                try:
                    pending = coro.throw(exc)
                except StopIteration as stop:
                    return stop.value
            else:
                try:
                    pending = coro.send(sent)
                except StopIteration as stop:
                    return stop.value


async def finish(coro: Coroutine[Any, Any, Any], first: Any) -> Any:
    """A coroutine (for a Task) that completes `coro` from its first suspension."""
    return await Resume(coro, first)
