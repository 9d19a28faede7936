"""awf_sim: write durable workflows for Cloudflare in Python and prove them in a simulator.

`import awf_sim` stays light: it imports no Hypothesis, rich or httpx.
"""

from awf_sim.dsl import (
    AwfError,
    DefinitionError,
    Domain,
    NonRetryableError,
    SerializationError,
    StepError,
    Workflow,
    WorkflowFatalError,
    parse_duration,
    step_id,
    to_cron,
)
from awf_sim.engine import Instance, InstanceError, NetworkAccessRefused, Simulator
from awf_sim.sdk import Database, HandlerContext, mock_database

__all__ = [
    "AwfError",
    "Database",
    "DefinitionError",
    "Domain",
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
    "mock_database",
    "parse_duration",
    "step_id",
    "to_cron",
]
