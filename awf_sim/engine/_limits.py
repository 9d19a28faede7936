"""The limits of one handler attempt run in a separate process (`Simulator(limits=...)`).

Apart from `_fork`, which imports httpx, so that the engine's public namespace can export it
and `import awf_sim` stays light.
"""

from __future__ import annotations

from dataclasses import dataclass

from awf_sim.errors import DefinitionError

__all__ = ["Limits"]


@dataclass(frozen=True)
class Limits:
    """Limits of one isolated handler attempt.

    `cpu_seconds`: CPU time (user + system) of the child. `memory_mb`: address space the
    handler may add to what the child inherits from the parent at fork (RLIMIT_AS). A thread
    the handler starts reserves stack and malloc arena space against it. `wall_seconds`:
    real time, for handlers that block without using CPU (None: no limit).
    """

    cpu_seconds: float = 10.0
    memory_mb: int = 512
    wall_seconds: float | None = 60.0

    def __post_init__(self) -> None:
        for name in ("cpu_seconds", "memory_mb", "wall_seconds"):
            value = getattr(self, name)
            if value is None and name == "wall_seconds":
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise DefinitionError(f"Limits.{name} must be a positive number, got {value!r}")
