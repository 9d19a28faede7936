"""awf_sim inside a Cloudflare Worker bundle: the DSL only (awf-deploy copies this file in as
`awf_sim/__init__.py`, next to `awf_sim/dsl/`, which is copied verbatim).

A flow file imports from `awf_sim` exactly as it does on a laptop. What only makes sense in the
simulator is not deployed: the engine, the test tools and the SQLite database. `Database` is a
no-op spec here: on Cloudflare the schema is applied by D1 migrations (awf-deploy writes the
flow's schema to `migrations/0001_awf_schema.sql` in the bundle), and handlers reach D1
through `ctx.db`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from awf_sim.dsl import (
    AwfError,
    DefinitionError,
    Domain,
    Example,
    NonRetryableError,
    SerializationError,
    StepError,
    TypedDomain,
    Workflow,
    WorkflowFatalError,
    parse_duration,
    step,
    step_id,
    to_cron,
)

__all__ = [
    "AwfError",
    "Database",
    "DefinitionError",
    "Domain",
    "Example",
    "NonRetryableError",
    "SerializationError",
    "StepError",
    "TypedDomain",
    "Workflow",
    "WorkflowFatalError",
    "mock_database",
    "parse_duration",
    "step",
    "step_id",
    "to_cron",
]

_SIMULATOR_ONLY = frozenset({"Simulator", "Instance", "InstanceError", "NetworkAccessRefused"})


class Database:
    """A database spec, kept for the flow file's sake; it does nothing on Cloudflare."""

    def __init__(
        self,
        schema: str = "",
        rows: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
        *,
        auto_schema: bool = False,
    ) -> None:
        self.schema = schema
        self.rows = dict(rows or {})
        self.auto_schema = auto_schema

    def connect(self) -> Any:
        raise AwfError(
            "Database.connect() is the simulator's; on Cloudflare handlers use ctx.db (D1)"
        )

    def __repr__(self) -> str:
        return "<Database spec (D1 on Cloudflare)>"


def mock_database(tables: Mapping[str, Sequence[Mapping[str, Any]]]) -> Database:
    return Database("", tables, auto_schema=True)


def __getattr__(name: str) -> Any:
    # HandlerContext (for annotations) is the runtime's; resolved lazily to avoid an import cycle.
    if name == "HandlerContext":
        from awf_runtime import HandlerContext  # type: ignore[import-not-found]

        return HandlerContext
    if name in _SIMULATOR_ONLY:
        raise AttributeError(
            f"awf_sim.{name} belongs to the simulator and is not deployed in the Worker bundle; "
            "import it only in tests"
        )
    raise AttributeError(f"module 'awf_sim' has no attribute {name!r}")
