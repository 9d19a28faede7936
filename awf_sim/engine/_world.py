"""The world a simulation sees: one value instead of six loose keyword arguments.

A `World` is what a workflow's handlers and its replays can observe apart from their inputs:
the database (`ctx.db`), the AI provider (`ctx.ai`), what `ctx.http` reaches, the environment
(`ctx.env`), the seed every random draw comes from, and the engine profile (Cloudflare's
documented defaults or Miniflare's). Flow files, chaos targets, test workflows and the
Simulator pass it along whole, so adding to it changes one class, not ten signatures.

It holds *specifications*: `db` is a Database spec each simulator connects afresh (so each
chaos run starts from the same rows), not an open connection.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["World"]


@dataclass(frozen=True)
class World:
    """What a simulation sees: db, ai, http, env, seed and profile (all optional)."""

    db: Any = None  # a Database spec (`mock_database({...})`), or None for an empty one
    ai: Any = None  # an AI provider, or None for the deterministic one derived from the seed
    http: Any = None  # what ctx.http reaches: a respx.Router, a transport or a function
    env: Mapping[str, Any] = field(default_factory=dict)
    seed: int = 0
    profile: str = "production"  # or "local" (Miniflare's defaults)

    def replace(self, **changes: Any) -> World:
        """A copy with some fields changed: `world.replace(seed=7)`."""
        return dataclasses.replace(self, **changes)
