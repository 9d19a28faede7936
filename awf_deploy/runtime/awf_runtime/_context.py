"""What a handler receives as `ctx` on Cloudflare, built fresh for every attempt."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from typing import Any

from ._ai import DEFAULT_EMBED_MODEL, DEFAULT_MODEL, WorkersAI
from ._d1 import D1Database
from ._http import http_client
from ._js import _ffi, _jsnull

DB_BINDING = "DB"
AI_BINDING = "AI"


def idempotency_key(instance_id: str, step_name: str, count: int) -> str:
    """Stable for one step occurrence of one instance: the simulator's formula, unchanged."""
    raw = f"{instance_id}\x1f{step_name}\x1f{count}".encode()
    return hashlib.sha256(raw).hexdigest()[:32]


class EnvView(Mapping[str, Any]):
    """`ctx.env` on Cloudflare: the Worker's `env` (a JavaScript object behind the SDK's
    wrapper) read as the simulator's dict, `ctx.env.get("KEY", default)` and `ctx.env["KEY"]`,
    with attribute access (`ctx.env.DB`) kept. Read-only."""

    __slots__ = ("_env",)

    def __init__(self, env: Any) -> None:
        self._env = env

    def __getitem__(self, key: str) -> Any:
        if isinstance(self._env, Mapping):
            return self._env[key]
        try:
            value = getattr(self._env, key)
        except AttributeError:
            raise KeyError(key) from None
        if value is None or value is _jsnull() or type(value).__name__ == "JsUndefined":
            raise KeyError(key)
        return value

    def _keys(self) -> list[str]:
        if isinstance(self._env, Mapping):
            return [str(k) for k in self._env]
        ffi = _ffi()
        target = getattr(self._env, "_env", self._env)  # the SDK's wrapper keeps the JS env
        if ffi is not None:
            try:
                return [str(k) for k in ffi[1].Object.keys(target)]
            except Exception:  # not a JavaScript object
                pass
        return [k for k in dir(self._env) if not k.startswith("_")]

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys())

    def __len__(self) -> int:
        return len(self._keys())

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self._env, name)

    def __repr__(self) -> str:
        return f"<env {sorted(self._keys())}>"


def _binding(env: Any, name: str) -> Any:
    if isinstance(env, Mapping):
        return env.get(name)
    return getattr(env, name, None)


class HandlerContext:
    """What a handler receives as `ctx` on Cloudflare: `db`, `ai`, `http`, `env`, `attempt`,
    `step` (`{"name", "path", "count"}`) and `idempotency_key`. Built fresh for every attempt."""

    __slots__ = ("_ai", "_db", "_instance_id", "attempt", "env", "step")

    def __init__(
        self, *, instance_id: str, step: Mapping[str, Any], attempt: int, env: Any
    ) -> None:
        self._instance_id = instance_id
        self.step = step
        self.attempt = attempt
        self.env = env if isinstance(env, Mapping) else EnvView(env)
        self._db: D1Database | None = None
        self._ai: WorkersAI | None = None

    @property
    def db(self) -> D1Database:
        """D1 through the Worker's `DB` binding."""
        if self._db is None:
            binding = _binding(self.env, DB_BINDING)
            if binding is None:
                raise AttributeError(
                    f"ctx.db: this Worker has no {DB_BINDING} binding (D1); awf-deploy adds it "
                    "when a handler uses ctx.db: rebuild with `awf-deploy build`"
                )
            self._db = D1Database(binding)
        return self._db

    @property
    def ai(self) -> WorkersAI:
        """Workers AI through the Worker's `AI` binding (models from AWF_AI_MODEL and
        AWF_AI_EMBED_MODEL when set)."""
        if self._ai is None:
            binding = _binding(self.env, AI_BINDING)
            if binding is None:
                raise AttributeError(
                    f"ctx.ai: this Worker has no {AI_BINDING} binding; awf-deploy adds it when "
                    "a handler uses ctx.ai: rebuild with `awf-deploy build`"
                )
            model = _binding(self.env, "AWF_AI_MODEL")
            embed = _binding(self.env, "AWF_AI_EMBED_MODEL")
            self._ai = WorkersAI(
                binding,
                model if isinstance(model, str) and model else DEFAULT_MODEL,
                embed if isinstance(embed, str) and embed else DEFAULT_EMBED_MODEL,
            )
        return self._ai

    @property
    def http(self) -> Any:
        """An HTTP client (one per Worker isolate): httpx's when it is vendored, else
        `FetchClient` over the runtime's fetch."""
        return http_client()

    @property
    def idempotency_key(self) -> str:
        return idempotency_key(self._instance_id, self.step["name"], self.step["count"])

    def __repr__(self) -> str:
        return f"<ctx step={self.step.get('path')} attempt={self.attempt}>"
