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
from collections.abc import Callable
from typing import Any

__all__ = ["GlobalRandomSwap", "copy_state", "uuid4_from"]

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


def copy_state(dst: random.Random, src: random.Random) -> None:
    """dst's whole generator state := src's, by the cheap C-state copy where it works."""
    global _copy
    if _copy is None:
        _copy = _make_copy()
    _copy(dst, src)


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
        outer = self._outer
        if outer is None:
            outer = self._outer = random.Random(0)
        copy_state(outer, glob)
        copy_state(glob, rng)

    def run_in_scope(
        self, rng: random.Random, wall_ms: Callable[[], int], run: Callable[..., None], *args: Any
    ) -> None:
        """`run(*args)` in a simulation scope (virtual clock, no network) that draws module-level
        `random` from `rng`: its state goes into the global generator by a cheap copy, and the
        scope, handed the global generator itself, leaves `random` alone."""
        # Imported on first run, not with awf_sim: it imports and starts freezegun.
        from awf_sim.engine._ambient import simulation_scope

        glob = self.target()
        if glob is None or glob is rng:
            with simulation_scope(wall_ms, rng):
                run(*args)
            return
        self.enter(glob, rng)
        try:
            with simulation_scope(wall_ms, glob):
                run(*args)
        finally:
            self.leave(glob, rng)

    def leave(self, glob: random.Random, rng: random.Random) -> None:
        assert _copy is not None
        assert self._outer is not None
        _copy(rng, glob)
        _copy(glob, self._outer)


_UUID4_CLEAR = ~((0xC000 << 48) | (0xF000 << 64))
_UUID4_SET = (0x8000 << 48) | (4 << 76)


def uuid4_from(rng: random.Random) -> str:
    """`str(uuid.UUID(int=rng.getrandbits(128), version=4))`, the same text and the same draw,
    without building the UUID object (once per instance created)."""
    h = f"{(rng.getrandbits(128) & _UUID4_CLEAR) | _UUID4_SET:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
