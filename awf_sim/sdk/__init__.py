"""What handlers receive as `ctx`: the database, the environment, step identity."""

from awf_sim._public import publish
from awf_sim.sdk._context import HandlerContext, idempotency_key
from awf_sim.sdk._db import Database, DatabaseError, DatabaseHandle, Write, mock_database

__all__ = [
    "Database",
    "DatabaseError",
    "DatabaseHandle",
    "HandlerContext",
    "Write",
    "idempotency_key",
    "mock_database",
]

publish(__name__, __all__, globals())
