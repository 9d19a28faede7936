"""The durable engine: virtual clock and loop, stores, instances, steps, events, replay, and
the hooks through which test modifiers and fault plans bend it."""

from awf_sim._public import publish
from awf_sim.engine._hooks import (
    Action,
    Control,
    Crash,
    ForceTimeout,
    HookChain,
    Hooks,
    HookView,
    MockError,
    MockResult,
    Reseed,
    SendEvent,
    SkewClock,
    StepRef,
)
from awf_sim.engine._limits import Limits
from awf_sim.engine._records import EventRecord, InstanceMeta, StepRecord
from awf_sim.engine._selectors import StepSelector
from awf_sim.engine._simulator import (
    DEFAULT_COMPATIBILITY_DATE,
    DEFAULT_CPU_MS,
    DEFAULT_EPOCH,
    Instance,
    InstanceError,
    Simulator,
    StepInfo,
)
from awf_sim.engine._store import MemoryStore, SqliteStore, Store
from awf_sim.engine._supervise import run_supervised
from awf_sim.engine._timeline import TimelineEntry
from awf_sim.engine._world import World
from awf_sim.errors import NetworkAccessRefused

__all__ = [
    "DEFAULT_COMPATIBILITY_DATE",
    "DEFAULT_CPU_MS",
    "DEFAULT_EPOCH",
    "Action",
    "Control",
    "Crash",
    "EventRecord",
    "ForceTimeout",
    "HookChain",
    "HookView",
    "Hooks",
    "Instance",
    "InstanceError",
    "InstanceMeta",
    "Limits",
    "MemoryStore",
    "MockError",
    "MockResult",
    "NetworkAccessRefused",
    "Reseed",
    "SendEvent",
    "Simulator",
    "SkewClock",
    "SqliteStore",
    "StepInfo",
    "StepRecord",
    "StepRef",
    "StepSelector",
    "Store",
    "TimelineEntry",
    "World",
    "run_supervised",
]

publish(__name__, __all__, globals())
