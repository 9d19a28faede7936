"""awf_sim: write durable workflows for Cloudflare in Python and prove them in a simulator.

`import awf_sim` stays light: it imports no Hypothesis, rich or httpx.
"""

from typing import TYPE_CHECKING, Any

from awf_sim.dsl import Domain, Workflow, parse_duration, step_id, to_cron
from awf_sim.engine import Instance, Simulator, World
from awf_sim.errors import (
    AwfError,
    DefinitionError,
    InstanceError,
    NetworkAccessRefused,
    NonRetryableError,
    SerializationError,
    StepError,
    WorkflowFatalError,
)
from awf_sim.sdk import Database, HandlerContext, mock_database

if TYPE_CHECKING:
    from awf_sim.chaos._durable import DurabilityViolation, assert_durable

__all__ = [
    "AwfError",
    "Database",
    "DefinitionError",
    "Domain",
    "DurabilityViolation",
    "HandlerContext",
    "Instance",
    "InstanceError",
    "NetworkAccessRefused",
    "NonRetryableError",
    "SerializationError",
    "Simulator",
    "StepError",
    "Workflow",
    "WorkflowFatalError",
    "World",
    "assert_durable",
    "mock_database",
    "parse_duration",
    "step_id",
    "to_cron",
]


def __getattr__(name: str) -> Any:
    # Chaos is loaded on first use: `awf_sim.assert_durable`, `awf_sim.DurabilityViolation`.
    if name in ("assert_durable", "DurabilityViolation"):
        from awf_sim.chaos import _durable

        return getattr(_durable, name)
    raise AttributeError(f"module 'awf_sim' has no attribute {name!r}")
