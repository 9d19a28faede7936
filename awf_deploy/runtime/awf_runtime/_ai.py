"""`ctx.ai` on Cloudflare: Workers AI through the `AI` binding, in the simulator's shapes."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from ._js import _settle, to_js, to_py

DEFAULT_MODEL = "@cf/meta/llama-3.1-8b-instruct"
DEFAULT_EMBED_MODEL = "@cf/baai/bge-base-en-v1.5"


class WorkersAI:
    """`ctx.ai` on Cloudflare: `generate`, `embed` and `chat` over the AI binding, with the
    request and answer shapes of the simulator's Workers AI provider."""

    __slots__ = ("_binding", "embed_model", "model")

    def __init__(
        self, binding: Any, model: str = DEFAULT_MODEL, embed_model: str = DEFAULT_EMBED_MODEL
    ) -> None:
        self._binding = binding
        self.model = model
        self.embed_model = embed_model

    async def _run(self, model: str, body: Mapping[str, Any]) -> Any:
        return to_py(await _settle(self._binding.run(model, to_js(dict(body)))))

    @staticmethod
    def _response(model: str, result: Any) -> Any:
        if not isinstance(result, Mapping) or "response" not in result:
            raise RuntimeError(f"Workers AI {model}: expected a response, got {result!r:.200}")
        return result["response"]

    async def generate(
        self,
        *,
        system: str | None = None,
        prompt: str,
        schema: Mapping[str, Any] | None = None,
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
            body["response_format"] = {"type": "json_schema", "json_schema": dict(schema)}
        answer = self._response(self.model, await self._run(self.model, body))
        if schema is not None and isinstance(answer, str):
            return json.loads(answer)
        return answer

    async def embed(self, text: str) -> list[float]:
        result = await self._run(self.embed_model, {"text": text})
        data = result.get("data") if isinstance(result, Mapping) else None
        if not (isinstance(data, list) and data and isinstance(data[0], list)):
            raise RuntimeError(f"Workers AI {self.embed_model}: expected data, got {result!r:.200}")
        return [float(v) for v in data[0]]

    async def chat(self, messages: Sequence[Mapping[str, str]]) -> str:
        result = await self._run(self.model, {"messages": [dict(m) for m in messages]})
        answer = self._response(self.model, result)
        return answer if isinstance(answer, str) else json.dumps(answer, sort_keys=True)

    def __repr__(self) -> str:
        return f"WorkersAI(model={self.model!r})"
