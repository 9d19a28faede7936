"""The durable engine: virtual clock and loop, stores, instances, steps, events, replay."""

from awf_sim.engine._ambient import NetworkAccessRefused
from awf_sim.engine._simulator import (
    DEFAULT_COMPATIBILITY_DATE,
    DEFAULT_EPOCH,
    Instance,
    InstanceError,
    Simulator,
    StepInfo,
)
from awf_sim.engine._store import MemoryStore, SqliteStore, Store
from awf_sim.engine._world import World

__all__ = [
    "DEFAULT_COMPATIBILITY_DATE",
    "DEFAULT_EPOCH",
    "Instance",
    "InstanceError",
    "MemoryStore",
    "NetworkAccessRefused",
    "Simulator",
    "SqliteStore",
    "StepInfo",
    "Store",
    "World",
]
