"""What `ctx.db`, `ctx.ai` and `ctx.http` reach inside a simulation, bound per attempt.

The services live as long as the simulator: the database and the effect log are outside the
engine, so they survive its crashes, which is what lets chaos compare them between runs. Each
is created on first use (most runs never touch ctx.ai or ctx.http, and `import awf_sim` must
not import httpx). A `HandlerContext` asks for one with the attempt's label
("Inventory.check#1"). The handles are shared by every step, so they carry no label of
their own: the runner sets `awf_sim.sdk._effects.current_step` per task while a handler runs,
and the database and effect log read it, so steps that run at once each own their effects.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Services"]


class Services:
    """The database, AI provider and HTTP client of one simulator, created on first use."""

    __slots__ = (
        "_ai_client",
        "_db",
        "_effects",
        "_http_client",
        "_seed",
        "ai_spec",
        "db_spec",
        "http_spec",
    )

    def __init__(self, db: Any, ai: Any, http: Any, seed: int) -> None:
        self.db_spec = db
        self.ai_spec = ai
        self.http_spec = http
        self._seed = seed
        self._db: Any = None
        self._effects: Any = None
        self._ai_client: Any = None
        self._http_client: Any = None

    @property
    def db(self) -> Any:
        if self._db is None:
            from awf_sim.sdk._db import Database

            spec = self.db_spec if self.db_spec is not None else Database()
            self._db = spec.connect() if hasattr(spec, "connect") else spec
        return self._db

    @property
    def effects(self) -> Any:
        if self._effects is None:
            from awf_sim.sdk._effects import EffectLog

            self._effects = EffectLog()
        return self._effects

    # What a HandlerContext asks for on first use of ctx.db / ctx.ai / ctx.http.
    def db_for(self, label: str) -> Any:
        return self.db

    def ai_for(self, label: str) -> Any:
        if self._ai_client is None:
            from awf_sim.sdk._ai import AIClient, DeterministicAI

            provider = self.ai_spec if self.ai_spec is not None else DeterministicAI(self._seed)
            self._ai_client = AIClient(provider, self.effects)
        return self._ai_client

    def http_for(self, label: str) -> Any:
        if self._http_client is None:
            from awf_sim.sdk._http import make_http_client

            self._http_client = make_http_client(self.http_spec, self.effects)
        return self._http_client

    @property
    def http_client(self) -> Any:
        """The HTTP client if one was made (it needs closing on its loop), else None."""
        return self._http_client

    def close_db(self) -> None:
        if self._db is not None and hasattr(self._db, "close"):
            self._db.close()
