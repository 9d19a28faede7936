"""Public names show their public home: `awf_sim.engine.Simulator`, not `..._simulator`.

Each public namespace calls `publish(__name__, __all__, globals())` after its imports: every
class and function it exports whose home is a private module below it (`awf_sim.engine._x`)
gets `__module__` rewritten to the namespace, as httpx does, so reprs, tracebacks, pickles and
the docs name the path users import. Objects whose home is another public module keep it
(`awf_sim.Database` stays `awf_sim.sdk.Database`). `awf_sim.dsl` does the same inline: it
ships alone in Worker bundles and imports nothing outside itself.
"""

from __future__ import annotations

import types
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["publish"]


def publish(namespace: str, names: Iterable[str], values: Mapping[str, Any]) -> None:
    for name in names:
        obj = values[name]
        if isinstance(obj, type | types.FunctionType) and obj.__module__.startswith(
            namespace + "._"
        ):
            obj.__module__ = namespace
