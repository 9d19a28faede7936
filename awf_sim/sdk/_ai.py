"""`ctx.ai`: text generation, embeddings and chat, with swappable providers.

- `DeterministicAI` (the simulator's default): answers derived from sha256(seed, method,
  input), so the same seed and prompt give the same answer on every run and platform. With a
  JSON schema the answer validates against it.
- `RecordedAI`: answers looked up by prompt (exact text, then regular expressions).
- `WorkersAI`: Cloudflare Workers AI over its REST API (`POST /accounts/{id}/ai/run/{model}`).

`AIClient` is what handlers hold as `ctx.ai`: it forwards to the provider and records every
call (input and answer) in the `EffectLog`, because a model call is an external effect.
"""

from __future__ import annotations

import asyncio
import copy
import json
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

import httpx

from awf_sim.errors import AIError
from awf_sim.sdk._ai_deterministic import (
    AIProvider,
    DeterministicAI,
    _check_messages,
    _check_text,
    _digest,
    _Messages,
)
from awf_sim.sdk._ai_schema import _canonical
from awf_sim.sdk._effects import EffectLog

__all__ = [
    "AIClient",
    "AIError",
    "AIProvider",
    "DeterministicAI",
    "RecordedAI",
    "WorkersAI",
]

T = TypeVar("T")

# --- the recorded provider -----------------------------------------------------------------


Answers = Mapping[str, Any] | Sequence[tuple["str | re.Pattern[str]", Any]]


class RecordedAI:
    """Answers looked up by prompt: exact text first, then each regex (`re.search`) in order.

    The lookup key is the prompt for `generate`, the text for `embed` and the content of the
    last user message for `chat`. An answer may be a callable, called with that key. An
    unknown key raises AIError showing it, so it can be pasted into the recording.
    """

    __slots__ = ("_exact", "_patterns")

    def __init__(self, answers: Answers) -> None:
        self._exact: dict[str, Any] = {}
        self._patterns: list[tuple[re.Pattern[str], Any]] = []
        pairs = answers.items() if isinstance(answers, Mapping) else answers
        for entry in pairs:
            if not (isinstance(entry, tuple) and len(entry) == 2):
                raise AIError(
                    f"RecordedAI: expected (prompt or re.compile(...), answer) pairs, got {entry!r}"
                )
            key, answer = entry
            if not callable(answer):
                try:
                    json.dumps(answer)
                except (TypeError, ValueError) as exc:
                    raise AIError(
                        f"RecordedAI: the answer for {key!r} is not JSON ({exc})"
                    ) from None
            if isinstance(key, re.Pattern):
                self._patterns.append((key, answer))
            elif isinstance(key, str):
                self._exact.setdefault(key, answer)
            else:
                raise AIError(f"RecordedAI: a key must be a str or a compiled regex, got {key!r}")

    def _answer(self, method: str, key: str) -> Any:
        if key in self._exact:
            answer = self._exact[key]
        else:
            for pattern, candidate in self._patterns:
                if pattern.search(key):
                    answer = candidate
                    break
            else:
                raise AIError(
                    f"RecordedAI: no recorded answer for ctx.ai.{method} with this input:\n"
                    f"    {key!r}\n"
                    f"Record it: RecordedAI({{{key!r}: <answer>}}), or add a pair "
                    "(re.compile(r'...'), <answer>) that matches it."
                )
        if callable(answer):
            return answer(key)
        return copy.deepcopy(answer)

    async def generate(
        self, *, system: str | None, prompt: str, schema: Mapping[str, Any] | None
    ) -> Any:
        return self._answer("generate", prompt)

    async def embed(self, text: str) -> list[float]:
        answer = self._answer("embed", text)
        if not (isinstance(answer, list) and all(isinstance(v, (int, float)) for v in answer)):
            raise AIError(f"RecordedAI: the embedding for {text!r} must be a list of numbers")
        return [float(v) for v in answer]

    async def chat(self, messages: _Messages) -> str:
        users = [m["content"] for m in messages if m.get("role") == "user"]
        key = users[-1] if users else (messages[-1]["content"] if messages else "")
        answer = self._answer("chat", key)
        if not isinstance(answer, str):
            raise AIError(f"RecordedAI: the chat answer for {key!r} must be a str")
        return answer

    def __repr__(self) -> str:
        return f"RecordedAI({len(self._exact)} exact, {len(self._patterns)} patterns)"


# --- Workers AI over HTTP ------------------------------------------------------------------


class WorkersAI:
    """Cloudflare Workers AI through the REST API: `POST {base_url}/accounts/{account_id}/
    ai/run/{model}` with `Authorization: Bearer <token>`.

    With `transport` (an httpx mock in tests) the request goes through an AsyncClient on the
    caller's loop. Without one it is a real HTTPS call, made by a synchronous client in the
    loop's executor thread: the simulator's loop has no sockets, and an executor thread is
    outside the simulation's network guard, which is the point of choosing this provider.
    The token never appears in repr() or in error messages.
    """

    __slots__ = (
        "_async_client",
        "_sync_client",
        "_token",
        "_transport",
        "account_id",
        "base_url",
        "embed_model",
        "model",
        "timeout",
    )

    def __init__(
        self,
        account_id: str,
        token: str,
        model: str = "@cf/meta/llama-3.1-8b-instruct",
        *,
        base_url: str = "https://api.cloudflare.com/client/v4",
        transport: httpx.AsyncBaseTransport | None = None,
        embed_model: str = "@cf/baai/bge-base-en-v1.5",
        timeout: float = 60.0,
    ) -> None:
        self.account_id = account_id
        self._token = token
        self.model = model
        self.embed_model = embed_model
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._transport = transport
        self._async_client: httpx.AsyncClient | None = None
        self._sync_client: httpx.Client | None = None

    def _url(self, model: str) -> str:
        # Model names keep their slashes (`@cf/meta/...`): the API routes on the raw path.
        return f"{self.base_url}/accounts/{self.account_id}/ai/run/{model}"

    async def _run(self, model: str, body: Mapping[str, Any]) -> Any:
        url = self._url(model)
        headers = {"Authorization": f"Bearer {self._token}"}
        try:
            if self._transport is not None:
                if self._async_client is None:
                    self._async_client = httpx.AsyncClient(
                        transport=self._transport, timeout=self.timeout, trust_env=False
                    )
                response = await self._async_client.post(url, json=body, headers=headers)
            else:
                loop = asyncio.get_running_loop()
                response = await loop.run_in_executor(None, self._post_sync, url, body, headers)
        except httpx.HTTPError as exc:
            raise AIError(f"Workers AI {model}: {type(exc).__name__}: {exc}") from None
        return self._result(model, response)

    def _post_sync(self, url: str, body: Mapping[str, Any], headers: dict[str, str]) -> Any:
        if self._sync_client is None:
            self._sync_client = httpx.Client(timeout=self.timeout)
        return self._sync_client.post(url, json=body, headers=headers)

    def _result(self, model: str, response: httpx.Response) -> Any:
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if not isinstance(payload, Mapping):
            raise AIError(
                f"Workers AI {model}: HTTP {response.status_code} with a non-JSON body "
                f"{response.text[:200]!r}"
            )
        if response.is_error or payload.get("success") is False:
            errors = payload.get("errors") or []
            text = "; ".join(
                str(e.get("message", e)) if isinstance(e, Mapping) else str(e) for e in errors
            )
            raise AIError(
                f"Workers AI {model}: HTTP {response.status_code}: {text or 'request failed'}"
            )
        if "result" not in payload:
            raise AIError(f"Workers AI {model}: the response has no `result`")
        return payload["result"]

    def _response_text(self, model: str, result: Any) -> Any:
        if not isinstance(result, Mapping) or "response" not in result:
            raise AIError(f"Workers AI {model}: expected result.response, got {result!r:.200}")
        return result["response"]

    async def generate(
        self, *, system: str | None, prompt: str, schema: Mapping[str, Any] | None
    ) -> Any:
        body: dict[str, Any]
        if system is None:
            body = {"prompt": prompt}
        else:
            body = {
                "messages": [
                    {"role": "system", "content": system},
                    {"role": "user", "content": prompt},
                ]
            }
        if schema is not None:
            # Workers AI's JSON mode; the answer arrives as an object or as JSON text.
            body["response_format"] = {"type": "json_schema", "json_schema": dict(schema)}
        answer = self._response_text(self.model, await self._run(self.model, body))
        if schema is not None and isinstance(answer, str):
            try:
                return json.loads(answer)
            except ValueError:
                raise AIError(
                    f"Workers AI {self.model}: asked for JSON, got text {answer[:200]!r}"
                ) from None
        return answer

    async def embed(self, text: str) -> list[float]:
        result = await self._run(self.embed_model, {"text": text})
        data = result.get("data") if isinstance(result, Mapping) else None
        if not (isinstance(data, list) and data and isinstance(data[0], list)):
            raise AIError(
                f"Workers AI {self.embed_model}: expected result.data, got {result!r:.200}"
            )
        return [float(v) for v in data[0]]

    async def chat(self, messages: _Messages) -> str:
        result = await self._run(self.model, {"messages": [dict(m) for m in messages]})
        answer = self._response_text(self.model, result)
        if not isinstance(answer, str):
            return _canonical(answer)
        return answer

    async def aclose(self) -> None:
        self.close_sync()
        if self._async_client is not None:
            client, self._async_client = self._async_client, None
            await client.aclose()

    def close_sync(self) -> None:
        if self._sync_client is not None:
            client, self._sync_client = self._sync_client, None
            client.close()

    def __repr__(self) -> str:
        return (
            f"WorkersAI(account_id={self.account_id!r}, token='***', model={self.model!r}, "
            f"base_url={self.base_url!r})"
        )


# --- what handlers hold ----------------------------------------------------------------------


def _summary(method: str, payload: Any) -> str:
    return f"ai.{method} {_digest(payload)[:16]}"


class AIClient:
    """`ctx.ai`: `generate(system=, prompt=, schema=)`, `embed(text)`, `chat(messages)`.

    Every call is recorded in the effect log with its input and its answer (or error), after
    the provider answers. The summary is a digest of the input, so equal inputs compare equal
    between runs whatever the answer.
    """

    __slots__ = ("_log", "provider")

    def __init__(self, provider: AIProvider, log: EffectLog) -> None:
        self.provider = provider
        self._log = log

    async def _call(
        self, method: str, payload: dict[str, Any], run: Callable[[], Awaitable[T]]
    ) -> T:
        try:
            summary = _summary(method, payload)
        except (TypeError, ValueError) as exc:
            # The digest is the first to read the input as JSON.
            raise AIError(
                f"ctx.ai.{method}: its input must be JSON ({exc}); a schema is JSON too, "
                'e.g. {"type": "string"}, not {"type": str}'
            ) from None
        detail: dict[str, Any] = {
            "method": method,
            **payload,
            "provider": type(self.provider).__name__,
        }
        try:
            answer = await run()
        except Exception as exc:
            self._log.record(
                "ai",
                summary,
                {**detail, "error": {"name": type(exc).__name__, "message": str(exc)}},
            )
            raise
        self._log.record("ai", summary, {**detail, "answer": answer})
        return answer

    async def generate(
        self,
        *,
        system: str | None = None,
        prompt: str,
        schema: Mapping[str, Any] | None = None,
    ) -> Any:
        """An answer to `prompt`; with a JSON `schema`, a JSON value shaped by it."""
        _check_text("prompt", prompt)
        if system is not None:
            _check_text("system", system)
        if schema is not None and not isinstance(schema, (Mapping, bool)):
            hint = (
                f"; for a pydantic model pass {schema.__name__}.model_json_schema()"
                if hasattr(schema, "model_json_schema")
                else ""
            )
            raise AIError(
                f"ctx.ai.generate: schema must be a dict (a JSON schema), got "
                f"{type(schema).__name__}{hint}"
            )
        payload = {"system": system, "prompt": prompt, "schema": schema}
        return await self._call(
            "generate",
            payload,
            lambda: self.provider.generate(system=system, prompt=prompt, schema=schema),
        )

    async def embed(self, text: str) -> list[float]:
        """An embedding vector of `text`."""
        _check_text("text", text)
        return await self._call("embed", {"text": text}, lambda: self.provider.embed(text))

    async def chat(self, messages: _Messages) -> str:
        """The assistant's reply to a conversation of {"role", "content"} messages."""
        checked = _check_messages(messages)
        return await self._call("chat", {"messages": checked}, lambda: self.provider.chat(checked))

    def __repr__(self) -> str:
        return f"<ctx.ai provider={self.provider!r}>"
