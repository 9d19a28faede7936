"""The simulator's seeded random state, moved in and out of the global `random` cheaply.

During a run, module-level `random` (and `from random import randint`, bound to the same hidden
instance) must draw from the simulator's seeded stream, and the caller's stream must be left as
it was. `getstate()`/`setstate()` do that by building and parsing a tuple of 625 ints: four of
them cost ~34 us, nearly all of a `sim.run()` that has little to do. Copying the Mersenne
Twister's C state (2.5 KB) between the two objects does the same in well under a microsecond.

The copy relies on CPython's layout of `_random.Random` (object header, then `index` and the
state array, up to `__basicsize__`); it is checked once, by copying a seeded generator into
another and comparing `getstate()` and the next draws. Where the check fails (another Python),
the tuple route is used: slower, same result.
"""

from __future__ import annotations

import random
from typing import Any

__all__ = ["GlobalRandomSwap"]

_Copy = Any  # (dst, src) -> None, copies the whole generator state


def _tuple_copy(dst: random.Random, src: random.Random) -> None:
    dst.setstate(src.getstate())


def _make_copy() -> _Copy:
    try:
        import _random
        import ctypes
    except ImportError:  # pragma: no cover - CPython always has both
        return _tuple_copy
    start = object.__basicsize__
    size = _random.Random.__basicsize__ - start
    memmove = ctypes.memmove

    def raw_copy(dst: random.Random, src: random.Random) -> None:
        memmove(id(dst) + start, id(src) + start, size)
        dst.gauss_next = src.gauss_next  # type: ignore[attr-defined]  # kept by random.Random

    if size <= 0 or size > 1 << 14:  # pragma: no cover - not CPython's layout
        return _tuple_copy
    a, b = random.Random(12345), random.Random(54321)
    a.random()  # a state mid-block, so `index` is exercised too
    raw_copy(b, a)
    if b.getstate() != a.getstate() or [b.random() for _ in range(700)] != [
        a.random() for _ in range(700)
    ]:  # pragma: no cover - not CPython's layout
        return _tuple_copy
    return raw_copy


_copy: _Copy | None = None


class GlobalRandomSwap:
    """Moves a generator's state into the global `random` for a run and back after it.

    `enter(rng)` saves the caller's global state and puts `rng`'s in; `leave(rng)` writes the
    draws made meanwhile back into `rng` and restores the caller's state. One saved state, so
    one swap at a time per object (a simulator never runs re-entrantly)."""

    __slots__ = ("_outer",)

    def __init__(self) -> None:
        self._outer: random.Random | None = None

    @staticmethod
    def target() -> random.Random | None:
        """The hidden instance module-level `random` draws from, or None when `random.random`
        was replaced (a mock): then the swap is left to the slower generic route."""
        inst = getattr(random.random, "__self__", None)
        return inst if isinstance(inst, random.Random) else None

    def enter(self, glob: random.Random, rng: random.Random) -> None:
        global _copy
        if _copy is None:
            _copy = _make_copy()
        outer = self._outer
        if outer is None:
            outer = self._outer = random.Random(0)
        _copy(outer, glob)
        _copy(glob, rng)

    def leave(self, glob: random.Random, rng: random.Random) -> None:
        assert _copy is not None
        assert self._outer is not None
        _copy(rng, glob)
        _copy(glob, self._outer)
