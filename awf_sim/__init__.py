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
    5. awf_sim.flow awf_sim._report awf_sim._history
                                    flow files; results that render themselves; the history
                                    file of an instance
    6. awf_sim.testing              test workflows, the modifier, the pytest plugin
    7. awf_sim.chaos                fault plans, invariants, campaigns, reports
    8. awf_sim.strategies awf_sim.conformance awf_sim._runner awf_sim.replay awf_sim._replay_command
                                    Hypothesis; scenarios on two engines; `awf-sim run`;
                                    production histories replayed
    9. awf_sim.cli awf_sim._cli_classes
                                    the command line; what both CLIs are made of
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

if TYPE_CHECKING:
    from awf_sim.chaos._durable import DurabilityViolation, assert_durable
    from awf_sim.engine import Instance, Simulator, World
    from awf_sim.sdk import Database, HandlerContext, mock_database

# Loaded on first use, so that `import awf_sim` (a flow file, a Worker's tests, `awf-sim
# --help`) does not pay for asyncio, the engine and the SDK until something asks for them.
_LAZY = {
    "Instance": "awf_sim.engine",
    "Simulator": "awf_sim.engine",
    "World": "awf_sim.engine",
    "Database": "awf_sim.sdk",
    "HandlerContext": "awf_sim.sdk",
    "mock_database": "awf_sim.sdk",
    "assert_durable": "awf_sim.chaos._durable",
    "DurabilityViolation": "awf_sim.chaos._durable",
}
_SUBMODULES = frozenset({"engine", "sdk", "errors", "dsl"})

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
    import importlib

    home = _LAZY.get(name)
    if home is None:
        if name in _SUBMODULES:  # `import awf_sim; awf_sim.engine` worked when it was eager
            return importlib.import_module(f"awf_sim.{name}")
        raise AttributeError(f"module 'awf_sim' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # once: later reads are plain module attributes
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
