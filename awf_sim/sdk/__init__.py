"""What handlers receive as `ctx`: the database, the environment, step identity; and
Cloudflare's `workers` SDK as the simulator stands it in outside Pyodide."""

from awf_sim._public import publish
from awf_sim.sdk._context import HandlerContext, idempotency_key
from awf_sim.sdk._db import Database, DatabaseError, DatabaseHandle, Write, mock_database
from awf_sim.sdk._workers import install_workers_stand_in, workers_shim

__all__ = [
    "Database",
    "DatabaseError",
    "DatabaseHandle",
    "HandlerContext",
    "Write",
    "idempotency_key",
    "install_workers_stand_in",
    "mock_database",
    "workers_shim",
]

publish(__name__, __all__, globals())
