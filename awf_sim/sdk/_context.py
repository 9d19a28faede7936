"""The `ctx` every domain handler receives: `(context, args, ctx)`."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

__all__ = ["FrozenEnv", "HandlerContext", "freeze_env", "idempotency_key", "step_context"]


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


_new = object.__new__


class HandlerContext:
    """What a handler sees of the world: `ctx.db`, `ctx.env`, `ctx.attempt`, `ctx.step` and
    `ctx.idempotency_key`. Built fresh for every attempt.

    Most attempts read none of it, so the engine's `step_context` sets four fields and the
    rest (the `step` dict, the database, the key) is made on first use: a slot never set is
    what "not made yet" means here, read with `try`/`except AttributeError`."""

    __slots__ = (
        "_ai",
        "_db",
        "_factories",
        "_http",
        "_idem",
        "_iid",
        "_info",
        "_services",
        "_step",
        "attempt",
        "env",
    )
    # Slots set on first use (or by step_context / __init__); unset until then.
    _ai: Any
    _db: Any
    _factories: tuple[Any, Any, Any]
    _http: Any
    _idem: str
    _iid: str
    _info: Any
    _services: Any
    _step: Mapping[str, Any]

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
        self._iid = instance_id
        self._step = step  # {"name": Cloudflare step name, "path": dotted path, "count": k}
        self.attempt = attempt  # 1-based
        self.env = env
        if db is not None:
            self._db = db
        if ai is not None:
            self._ai = ai
        if http is not None:
            self._http = http
        self._factories = (db_factory, ai_factory, http_factory)
        # The engine hands over its services (anything with db_for/ai_for/http_for) instead
        # of three factories: building closures for every attempt costs more than the
        # attempts that never touch ctx.db/ai/http save.
        self._services = services

    @property
    def step(self) -> Mapping[str, Any]:
        """{"name": Cloudflare step name, "path": dotted path, "count": k}."""
        try:
            return self._step
        except AttributeError:
            info = self._info
            step = self._step = {"name": info.name, "path": info.path, "count": info.count}
            return step

    def _step_label(self) -> str:
        step = self.step
        return f"{step.get('path')}#{step.get('count')}"

    def _made(self, which: int) -> Any:
        """The db (0), ai (1) or http (2) of this attempt, made on first use."""
        services = self._services
        if services is not None:
            label = self._step_label()
            if which == 0:
                return services.db_for(label)
            return services.ai_for(label) if which == 1 else services.http_for(label)
        factory = self._factories[which]
        if factory is None:
            raise AttributeError(_MISSING[which])
        return factory()

    @property
    def db(self) -> Any:
        """The database (SQLite in the simulator, D1 on Cloudflare)."""
        try:
            return self._db
        except AttributeError:
            db = self._made(0)
            if db is not None:
                self._db = db
            return db

    @property
    def ai(self) -> Any:
        """Text generation, embeddings and chat: `generate(system=, prompt=, schema=)`,
        `embed(text)`, `chat(messages)`. Every call is recorded as an external effect."""
        try:
            return self._ai
        except AttributeError:
            ai = self._made(1)
            if ai is not None:
                self._ai = ai
            return ai

    @property
    def http(self) -> Any:
        """An httpx.AsyncClient. In the simulator it never reaches the network: requests go
        to the mock given as http=... and every request is recorded as an external effect."""
        try:
            return self._http
        except AttributeError:
            http = self._made(2)
            if http is not None:
                self._http = http
            return http

    @property
    def idempotency_key(self) -> str:
        try:
            return self._idem
        except AttributeError:
            step = self.step
            try:
                iid = self._iid
            except AttributeError:
                iid = self._info.instance_id
            key = self._idem = idempotency_key(iid, step["name"], step["count"])
            return key

    def __repr__(self) -> str:
        return f"<ctx step={self.step.get('path')} attempt={self.attempt}>"


_MISSING = (
    "ctx.db: no database is configured; pass db=Database(...) or "
    "db=mock_database({...}) to the Simulator or create_test_context",
    "ctx.ai: no AI provider is configured; pass ai=... ",
    "ctx.http: no HTTP client is configured; pass http=...",
)


def step_context(info: Any, env: Mapping[str, Any], services: Any) -> HandlerContext:
    """The engine's `ctx` for one attempt: `info` is its StepInfo (instance_id, name, path,
    count, attempt), `services` what makes its db/ai/http. No keyword parsing, four fields
    (InProcessRunner.start sets the same four itself)."""
    ctx: HandlerContext = _new(HandlerContext)
    ctx._info = info
    ctx.attempt = info.attempt
    ctx.env = env
    ctx._services = services
    return ctx
