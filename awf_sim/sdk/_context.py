"""The `ctx` every domain handler receives: `(context, args, ctx)`."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

__all__ = ["FrozenEnv", "HandlerContext", "freeze_env", "idempotency_key"]


class FrozenEnv(Mapping[str, Any]):
    """`ctx.env`: read-only, so that no attempt can change what the next one sees (on
    Cloudflare each invocation gets its bindings afresh)."""

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[str, Any]) -> None:
        self._data = data

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Any:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"FrozenEnv({self._data!r})"

    def _refuse(self, *_: Any, **__: Any) -> Any:
        raise TypeError(
            "ctx.env is read-only: every attempt sees the env the simulation was given. Keep "
            "state in ctx.db or pass it on as a step's result"
        )

    __setitem__ = __delitem__ = _refuse
    pop = popitem = clear = update = setdefault = _refuse


def freeze_env(value: Any) -> Any:
    """A read-only deep view of an env: mappings become FrozenEnv, lists and sets tuples and
    frozensets; other values (bindings, mocks) are left as they are."""
    if isinstance(value, Mapping):
        return FrozenEnv({k: freeze_env(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return tuple(freeze_env(v) for v in value)
    if isinstance(value, set | frozenset):
        return frozenset(value)
    return value


def idempotency_key(instance_id: str, step_name: str, count: int) -> str:
    """Stable for one step occurrence of one instance across attempts, crashes and replays."""
    raw = f"{instance_id}\x1f{step_name}\x1f{count}".encode("utf-8", "surrogatepass")
    return hashlib.sha256(raw).hexdigest()[:32]


class HandlerContext:
    """What a handler sees of the world: `ctx.db`, `ctx.env`, `ctx.attempt`, `ctx.step` and
    `ctx.idempotency_key`. Built fresh for every attempt."""

    __slots__ = (
        "_ai",
        "_ai_factory",
        "_db",
        "_db_factory",
        "_http",
        "_http_factory",
        "_idem",
        "_instance_id",
        "_services",
        "attempt",
        "env",
        "step",
    )

    def __init__(
        self,
        *,
        instance_id: str,
        step: Mapping[str, Any],
        attempt: int,
        env: Mapping[str, Any],
        db: Any = None,
        db_factory: Any = None,
        ai: Any = None,
        ai_factory: Any = None,
        http: Any = None,
        http_factory: Any = None,
        services: Any = None,
    ) -> None:
        self._instance_id = instance_id
        self.step = step  # {"name": Cloudflare step name, "path": dotted path, "count": k}
        self.attempt = attempt  # 1-based
        self.env = env
        self._db = db
        self._db_factory = db_factory
        self._ai = ai
        self._ai_factory = ai_factory
        self._http = http
        self._http_factory = http_factory
        # The engine hands over its services (anything with db_for/ai_for/http_for) instead
        # of three factories: building closures for every attempt costs more than the
        # attempts that never touch ctx.db/ai/http save.
        self._services = services
        # The label under which the services record ctx.db/ai/http use is built on first
        # use: most attempts never touch them.
        self._idem: str | None = None

    def _step_label(self) -> str:
        return f"{self.step.get('path')}#{self.step.get('count')}"

    @property
    def db(self) -> Any:
        """The database (SQLite in the simulator, D1 on Cloudflare)."""
        if self._db is None:
            if self._services is not None:
                self._db = self._services.db_for(self._step_label())
                return self._db
            if self._db_factory is None:
                raise AttributeError(
                    "ctx.db: no database is configured; pass db=Database(...) or "
                    "db=mock_database({...}) to the Simulator or create_test_context"
                )
            self._db = self._db_factory()
        return self._db

    @property
    def ai(self) -> Any:
        """Text generation, embeddings and chat: `generate(system=, prompt=, schema=)`,
        `embed(text)`, `chat(messages)`. Every call is recorded as an external effect."""
        if self._ai is None:
            if self._services is not None:
                self._ai = self._services.ai_for(self._step_label())
                return self._ai
            if self._ai_factory is None:
                raise AttributeError("ctx.ai: no AI provider is configured; pass ai=... ")
            self._ai = self._ai_factory()
        return self._ai

    @property
    def http(self) -> Any:
        """An httpx.AsyncClient. In the simulator it never reaches the network: requests go
        to the mock given as http=... and every request is recorded as an external effect."""
        if self._http is None:
            if self._services is not None:
                self._http = self._services.http_for(self._step_label())
                return self._http
            if self._http_factory is None:
                raise AttributeError("ctx.http: no HTTP client is configured; pass http=...")
            self._http = self._http_factory()
        return self._http

    @property
    def idempotency_key(self) -> str:
        if self._idem is None:
            self._idem = idempotency_key(self._instance_id, self.step["name"], self.step["count"])
        return self._idem

    def __repr__(self) -> str:
        return f"<ctx step={self.step.get('path')} attempt={self.attempt}>"
