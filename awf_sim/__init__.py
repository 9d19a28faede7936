"""awf_sim: write durable workflows for Cloudflare in Python and prove them in a simulator.

`import awf_sim` stays light: it imports no Hypothesis, rich or httpx.

The layers, lowest first. A module imports from its own layer and the layers below it, never
from a layer above, not even lazily or for type checking only; and no modules import each
other in a cycle. tests/test_layers.py reads this list and checks every import.

    1. awf_sim.dsl awf_sim._coro awf_sim._public
                                    the DSL; standard library only, it ships in Worker bundles
    2. awf_sim.errors               every error awf_sim raises
    3. awf_sim.sdk                  what handlers receive as ctx
    4. awf_sim.engine               the simulator: loop, stores, steps, runners, hooks
    5. awf_sim.flow awf_sim._report
                                    flow files; results that render themselves
    6. awf_sim.testing              test workflows, the modifier, the pytest plugin
    7. awf_sim.chaos                fault plans, invariants, campaigns, reports
    8. awf_sim.strategies awf_sim.conformance awf_sim._runner awf_sim.replay awf_sim._replay_command
                                    Hypothesis; scenarios on two engines; `awf-sim run`;
                                    production histories replayed
    9. awf_sim.cli                  the command line
   10. awf_sim                      this namespace: the facade over all of them
"""

from typing import TYPE_CHECKING, Any

import awf_sim.dsl
from awf_sim._public import publish
from awf_sim.dsl import (
    Domain,
    Example,
    TypedDomain,
    Workflow,
    parse_duration,
    step,
    step_id,
    to_cron,
)
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
    "Example",
    "HandlerContext",
    "Instance",
    "InstanceError",
    "NetworkAccessRefused",
    "NonRetryableError",
    "SerializationError",
    "Simulator",
    "StepError",
    "TypedDomain",
    "Workflow",
    "WorkflowFatalError",
    "World",
    "assert_durable",
    "mock_database",
    "parse_duration",
    "step",
    "step_id",
    "to_cron",
]

# The DSL's public names show awf_sim.dsl as their home. Done here, not in awf_sim.dsl: the
# Worker bundle copies awf_sim/dsl verbatim under its own awf_sim package, and there the DSL
# keeps its module paths.
publish("awf_sim.dsl", awf_sim.dsl.__all__, vars(awf_sim.dsl))


def __getattr__(name: str) -> Any:
    # Chaos is loaded on first use: `awf_sim.assert_durable`, `awf_sim.DurabilityViolation`.
    if name in ("assert_durable", "DurabilityViolation"):
        from awf_sim.chaos import _durable

        return getattr(_durable, name)
    raise AttributeError(f"module 'awf_sim' has no attribute {name!r}")
