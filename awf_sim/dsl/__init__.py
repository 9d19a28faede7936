"""The awf DSL: Domain, Workflow, the `wf` proxy, step identity, durations and schedules.

Standard library only: this package ships inside the Worker bundle that awf_deploy builds.
"""

from awf_sim.dsl._config import PROFILES, merge_config, validate_config
from awf_sim.dsl._domain import Domain, MethodSpec, registered_domains
from awf_sim.dsl._duration import MAX_SLEEP_MS, parse_duration
from awf_sim.dsl._errors import (
    AwfError,
    DefinitionError,
    NonRetryableError,
    SerializationError,
    StepError,
    WorkflowFatalError,
)
from awf_sim.dsl._example import Example, expected_outcome
from awf_sim.dsl._identity import canonical, step_id, step_name
from awf_sim.dsl._proxy import Runtime, State, StepCall, WorkflowApi
from awf_sim.dsl._schedule import to_cron
from awf_sim.dsl._typed import Call, Method, TypedDomain, step
from awf_sim.dsl._workflow import Workflow, isolated_registries, registered_workflows

__all__ = [
    "MAX_SLEEP_MS",
    "PROFILES",
    "AwfError",
    "Call",
    "DefinitionError",
    "Domain",
    "Example",
    "Method",
    "MethodSpec",
    "NonRetryableError",
    "Runtime",
    "SerializationError",
    "State",
    "StepCall",
    "StepError",
    "TypedDomain",
    "Workflow",
    "WorkflowApi",
    "WorkflowFatalError",
    "canonical",
    "expected_outcome",
    "isolated_registries",
    "merge_config",
    "parse_duration",
    "registered_domains",
    "registered_workflows",
    "step",
    "step_id",
    "step_name",
    "to_cron",
    "validate_config",
]
