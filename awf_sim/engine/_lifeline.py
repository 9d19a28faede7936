"""A forked child that dies with its parent, so that no orphan outlives the one it works for.

A supervised run (`_supervise`), an isolated attempt (`_fork`) and a chaos worker (`--jobs`)
each fork a child that the parent waits for. Were the parent killed (SIGKILL, an OOM kill, a
closed terminal), the child would run on unseen: still writing the `--store` file that the
next `awf-sim run` opens, still spending a core. On Linux the kernel kills it instead
(PR_SET_PDEATHSIG); other systems have no such request, and the child then outlives a killed
parent as before.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

__all__ = ["die_with_parent", "load_libc"]

_PR_SET_PDEATHSIG = 1
_libc: Any = None


def load_libc() -> Any:
    """The C library, or False where it cannot be loaded; load it in the parent, once, so
    that a child does not pay for dlopen."""
    global _libc
    if _libc is None:
        import ctypes  # here: `import awf_sim` does not need it

        try:
            _libc = ctypes.CDLL(None, use_errno=True)
        except OSError:
            _libc = False
    return _libc


def die_with_parent(libc: Any, parent_pid: int) -> None:
    """In a just-forked child: be killed when the thread that forked it ends. If the parent
    has already gone (it died between the fork and this request), end now."""
    if not libc or not sys.platform.startswith("linux"):
        return
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent_pid:
        os._exit(1)
