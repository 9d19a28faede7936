"""What handlers receive as `ctx`: the database, the environment, step identity, the AI
providers a simulation may give `ctx.ai`; and Cloudflare's `workers` SDK as the simulator
stands it in outside Pyodide."""

from typing import TYPE_CHECKING, Any

from awf_sim._public import publish
from awf_sim.sdk._context import HandlerContext, idempotency_key
from awf_sim.sdk._db import Database, DatabaseError, DatabaseHandle, Write, mock_database
from awf_sim.sdk._workers import install_workers_stand_in, workers_shim

if TYPE_CHECKING:
    from awf_sim.sdk._ai import RecordedAI, WorkersAI
    from awf_sim.sdk._ai_deterministic import DeterministicAI

__all__ = [
    "Database",
    "DatabaseError",
    "DatabaseHandle",
    "DeterministicAI",
    "HandlerContext",
    "RecordedAI",
    "WorkersAI",
    "Write",
    "idempotency_key",
    "install_workers_stand_in",
    "mock_database",
    "workers_shim",
]

# The providers `ai=` takes (Simulator, create_test_workflow, a flow file's AI), loaded on
# first use: they import httpx, which a flow that only reads `awf_sim.Database` should not pay
# for.
_LAZY = {
    "DeterministicAI": "awf_sim.sdk._ai_deterministic",
    "RecordedAI": "awf_sim.sdk._ai",
    "WorkersAI": "awf_sim.sdk._ai",
}

publish(__name__, [name for name in __all__ if name not in _LAZY], globals())


def __getattr__(name: str) -> Any:
    import importlib

    home = _LAZY.get(name)
    if home is None:
        raise AttributeError(f"module 'awf_sim.sdk' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    publish(__name__, [name], {name: value})
    globals()[name] = value  # once: later reads are plain module attributes
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
