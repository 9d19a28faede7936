"""Cloudflare's Python Workers SDK (`workers`) as the simulator needs it, outside Pyodide.

A workflow written for Cloudflare begins `from workers import WorkflowEntrypoint`. The real
SDK (workers-runtime-sdk) imports Pyodide's `js` module, so outside Cloudflare's runtime that
line fails, and the class cannot reach `Simulator.create`. `install_workers_stand_in()` puts a
finder first on `sys.meta_path` that answers `import workers` and `import workers.workflows`,
outside Pyodide only, with small stand-ins: `WorkflowEntrypoint` and `WorkerEntrypoint` (built
with `(ctx, env)`), `Response`, `fetch` (which says to mock it) and
`workers.workflows.NonRetryableError` (the simulator's own, so it is not retried). The pytest
plugin and `awf_sim.flow.load_flow` install it; a script calls it before its imports.
awf-deploy imports built bundles with the same modules (`workers_shim`).
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import Any

from awf_sim.dsl._errors import NonRetryableError as _SimNonRetryableError

__all__ = ["Response", "install_workers_stand_in", "workers_shim"]


class _Entrypoint:
    """`WorkflowEntrypoint` / `WorkerEntrypoint`: the runtime constructs them with (ctx, env)."""

    def __init__(self, ctx: Any = None, env: Any = None) -> None:
        self.ctx = ctx
        self.env = env if env is not None else {}


class Response:
    """`workers.Response` as a Worker's fetch handler uses it: a body, a status and headers."""

    def __init__(
        self, body: str | bytes | None = None, status: int = 200, headers: Any = None
    ) -> None:
        self.body = body
        self.status = status
        self.headers = dict(headers or {})

    def json(self) -> Any:
        import json

        return json.loads(self.body or "null")

    def __repr__(self) -> str:
        return f"Response(status={self.status})"


def workers_shim() -> dict[str, ModuleType]:
    """Fresh `workers` and `workers.workflows` modules."""
    workers = ModuleType("workers", "Stand-in for Cloudflare's Python Workers SDK (awf)")
    workflows = ModuleType("workers.workflows")

    class WorkflowEntrypoint(_Entrypoint):
        pass

    class WorkerEntrypoint(_Entrypoint):
        pass

    class NonRetryableError(_SimNonRetryableError):
        """`workers.workflows.NonRetryableError`, recognised by the simulator as its own."""

    # Named where the workflow imported it from: Cloudflare's class, not one of awf's errors.
    NonRetryableError.__module__ = workflows.__name__
    NonRetryableError.__qualname__ = "NonRetryableError"

    async def fetch(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("workers.fetch is not available in the simulator; mock it")

    workers.WorkflowEntrypoint = WorkflowEntrypoint  # type: ignore[attr-defined]
    workers.WorkerEntrypoint = WorkerEntrypoint  # type: ignore[attr-defined]
    workers.Response = Response  # type: ignore[attr-defined]
    workers.fetch = fetch  # type: ignore[attr-defined]
    workers.workflows = workflows  # type: ignore[attr-defined]
    workers.__path__ = []  # a package, so `import workers.workflows` works
    workflows.NonRetryableError = NonRetryableError  # type: ignore[attr-defined]
    return {"workers": workers, "workers.workflows": workflows}


class _StandIn(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Answers `import workers` with the stand-ins where Cloudflare's SDK cannot load."""

    def __init__(self) -> None:
        self._modules: dict[str, ModuleType] | None = None  # one pair, made on first import

    def find_spec(
        self, name: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if name not in ("workers", "workers.workflows") or sys.platform == "emscripten":
            return None  # in Pyodide the real SDK works
        if name == "workers" and not _is_cloudflares_or_absent():
            return None  # another package of that name: not ours to hide
        return importlib.util.spec_from_loader(name, self, is_package=name == "workers")

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        if self._modules is None:
            self._modules = workers_shim()
        return self._modules[spec.name]

    def exec_module(self, module: ModuleType) -> None:
        pass  # made whole by workers_shim


def _is_cloudflares_or_absent() -> bool:
    found = importlib.machinery.PathFinder.find_spec("workers")
    if found is None or not found.origin:
        return True
    # Cloudflare's SDK: its entry points and workflows modules beside its __init__.
    folder = os.path.dirname(found.origin)
    return all(os.path.exists(os.path.join(folder, f)) for f in ("entrypoints.py", "workflows.py"))


_FINDER = _StandIn()


def install_workers_stand_in() -> None:
    """Make `from workers import WorkflowEntrypoint` work in this process (outside Pyodide),
    for workflow classes written for Cloudflare; once is enough, again does nothing."""
    if _FINDER not in sys.meta_path:
        sys.meta_path.insert(0, _FINDER)
