"""Which fault plan a chaos process is running, for the process that supervises it.

`awf-sim chaos` runs in a supervised child (`engine._supervise`). With one job the child runs
the plans itself, so a plan whose code ends that process (`os._exit`, a signal) or blocks its
thread ends the command; the supervisor then names that plan and its replay token, as a
`--jobs N` worker's end does (`_pool`). The child writes the plans it is about to run into
memory shared across the fork, once, and then only the number of the plan that runs (a
fraction of a microsecond per plan); the supervisor reads them after the child has ended.
"""

from __future__ import annotations

import mmap
import pickle
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["Beacon", "running", "watch"]

_SIZE = 1 << 24  # plans of a campaign beyond 16 MiB pickled are not named (nor paged in)
_NOW, _LENGTH, _PLANS = 0, 8, 16  # offsets: the plan running (its index + 1), the plans


class Beacon:
    """Shared memory: made before the fork, written by the child, read by the parent."""

    def __init__(self) -> None:
        self._page = mmap.mmap(-1, _SIZE)  # anonymous and shared: a forked child writes here

    def plans(self, plans: Sequence[Sequence[Mapping[str, Any]]]) -> None:
        """The plans about to run, numbered from 0; none runs yet."""
        self.running(None)
        data = pickle.dumps([[dict(f) for f in plan] for plan in plans])
        if len(data) > _SIZE - _PLANS:
            data = b""  # too many to keep: a death is not named
        self._page[_PLANS : _PLANS + len(data)] = data
        self._page[_LENGTH:_PLANS] = len(data).to_bytes(8, "big")

    def running(self, index: int | None) -> None:
        """Plan `index` of `plans()` runs now (None: no plan runs)."""
        self._page[_NOW:_LENGTH] = (0 if index is None else index + 1).to_bytes(8, "big")

    def last(self) -> list[dict[str, Any]] | None:
        """The plan that was running when the child ended, or None."""
        now = int.from_bytes(self._page[_NOW:_LENGTH], "big")
        size = int.from_bytes(self._page[_LENGTH:_PLANS], "big")
        if now == 0 or not 0 < size <= _SIZE - _PLANS:
            return None
        try:
            plans = pickle.loads(self._page[_PLANS : _PLANS + size])
            plan = plans[now - 1]
        except Exception:  # a page the code under test wrote over: say nothing
            return None
        return plan if isinstance(plan, list) else None

    def close(self) -> None:
        """Nobody watches any more: the plans run from now on are not told."""
        if self in _ACTIVE:
            _ACTIVE.remove(self)
        self._page.close()


_ACTIVE: list[Beacon] = []


def watch() -> Beacon:
    """A beacon that the plans run in this process (and its forked children) write to."""
    beacon = Beacon()
    _ACTIVE[:] = [beacon]
    return beacon


def running(plans: Sequence[Sequence[Mapping[str, Any]]]) -> Beacon | None:
    """The beacon to tell which of `plans` runs (None when nobody watches)."""
    if not _ACTIVE:
        return None
    _ACTIVE[0].plans(plans)
    return _ACTIVE[0]
