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

from awf_sim.dsl._errors import DefinitionError

__all__ = ["World", "check_ai", "check_db", "check_env", "check_http"]


@dataclass(frozen=True)
class World:
    """What a simulation sees: db, ai, http, env, seed and profile (all optional)."""

    db: Any = None  # a Database spec (`mock_database({...})`), or None for an empty one
    ai: Any = None  # an AI provider, or None for the deterministic one derived from the seed
    http: Any = None  # what ctx.http reaches: a respx.Router, a transport or a function
    env: Mapping[str, Any] = field(default_factory=dict)
    seed: int = 0
    profile: str = "production"  # or "local" (Miniflare's defaults)

    def __post_init__(self) -> None:
        # Here, not at the first `ctx.db` of a handler: a wrong db used to fail every
        # attempt of every step that touched it, and chaos with a traceback of its own.
        check_db(self.db, "World")
        check_env(self.env, "World")
        check_http(self.http, "World")
        check_ai(self.ai, "World")

    def replace(self, **changes: Any) -> World:
        """A copy with some fields changed: `world.replace(seed=7)`."""
        return dataclasses.replace(self, **changes)


def check_db(db: Any, method: str, name: str = "db") -> None:
    """Refuse a `db=` that is neither a Database spec nor an open handle at once: it used to
    fail every handler's first `ctx.db` call, attempt after attempt, with an AttributeError.
    `name` is what the user wrote it as (`db`, or a flow file's `DATABASE`)."""
    if db is None or hasattr(db, "connect") or hasattr(db, "query_one"):
        return
    assign = "=" if name == "db" else " = "
    if isinstance(db, Mapping):
        hint = f"; for tables of rows write {name}{assign}mock_database({{...}})"
    elif isinstance(db, str) and ("create" in db.lower() or ";" in db):
        hint = f"; for a schema write {name}{assign}Database(schema=...)"
    else:
        hint = ""
    raise DefinitionError(
        f"{method}: {name} must be a Database (mock_database({{table: rows}}) or "
        f"Database(schema, rows)) or an open database handle, got {type(db).__name__}{hint}"
    )


def check_env(env: Any, method: str) -> None:
    """`env=` is what handlers read as `ctx.env`: a mapping, said so at once (a list or a
    "K=V" string used to fail inside dict() with a message about sequence lengths)."""
    if env is not None and not isinstance(env, Mapping):
        raise DefinitionError(
            f"{method}: env must be a dict of names to values (what handlers read as "
            f"ctx.env), got {type(env).__name__}"
        )


def check_http(http: Any, method: str, name: str = "http") -> None:
    """Refuse what ctx.http cannot reach at once (a dict of URLs, a real transport): it used
    to fail at the first request of every attempt, each retried with backoff."""
    if http is None:
        return
    from awf_sim.sdk._http import http_problem

    problem = http_problem(http)
    if problem is not None:
        raise DefinitionError(f"{method}: {name}: {problem.removeprefix('ctx.http: ')}")


def check_ai(ai: Any, method: str) -> None:
    """Refuse an `ai` that cannot serve `ctx.ai` at once: it used to fail a handler's first
    `ctx.ai` call, attempt after attempt through every retry."""
    if ai is not None and not all(hasattr(ai, m) for m in ("generate", "embed", "chat")):
        hint = "; for recorded answers write RecordedAI({...})" if isinstance(ai, Mapping) else ""
        raise DefinitionError(
            f"{method}: ai (a flow file's AI) must be an AI provider (DeterministicAI, "
            "RecordedAI or WorkersAI from awf_sim.sdk, or an object with async generate, embed "
            "and chat), got "
            f"{type(ai).__name__}{hint}"
        )
