"""The deterministic AI provider, `ctx.ai`'s default in the simulator (`_ai` has the others).

Answers are derived from sha256(seed, method, input): the same seed and prompt give the same
answer on every run and platform. With a JSON schema, the generated answer validates against
it (`_ai_schema` walks the schema), so handlers that parse the model's answer work in tests
without a model.
Also the pieces every provider shares: the `AIProvider` protocol and the input checks.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from awf_sim.errors import AIError
from awf_sim.sdk._ai_schema import _WORDS, _canonical, _Generator, _Stream, _Unsatisfiable

__all__ = ["EMBEDDING_SIZE", "AIProvider", "DeterministicAI"]

EMBEDDING_SIZE = 16
_Messages = Sequence[Mapping[str, str]]


@runtime_checkable
class AIProvider(Protocol):
    async def generate(
        self, *, system: str | None, prompt: str, schema: Mapping[str, Any] | None
    ) -> Any: ...

    async def embed(self, text: str) -> list[float]: ...

    async def chat(self, messages: _Messages) -> str: ...


def _digest(value: Any) -> str:
    return hashlib.sha256(_canonical(value).encode("utf-8", "surrogatepass")).hexdigest()


def _check_text(what: str, value: Any) -> str:
    if not isinstance(value, str):
        raise AIError(f"ctx.ai: {what} must be a str, got {type(value).__name__}")
    return value


def _check_messages(messages: Any) -> list[dict[str, str]]:
    if isinstance(messages, (str, bytes, Mapping)) or not isinstance(messages, Sequence):
        raise AIError(
            "ctx.ai.chat(messages): expected a list of {'role': ..., 'content': ...} dicts, "
            f"got {type(messages).__name__}"
        )
    checked = []
    for index, message in enumerate(messages):
        if not (
            isinstance(message, Mapping)
            and isinstance(message.get("role"), str)
            and isinstance(message.get("content"), str)
        ):
            raise AIError(
                f"ctx.ai.chat(messages): messages[{index}] must be a dict with str 'role' and "
                f"'content', got {message!r}"
            )
        checked.append({"role": message["role"], "content": message["content"]})
    return checked


# --- the deterministic provider ------------------------------------------------------------


class DeterministicAI:
    """Answers derived from sha256(seed, method, input): same seed and input, same answer.

    `generate` with a JSON schema returns a value that validates against it (type, enum,
    const, properties/required, items/prefixItems, min/maxItems, uniqueItems, minimum/maximum
    and their exclusive forms, multipleOf, min/maxLength, common formats, local $ref, allOf;
    anyOf/oneOf take their first branch). Without a schema it returns a short sentence made of
    neutral words: it never echoes the prompt, which may hold secrets. `embed` returns a
    unit-length vector of 16 floats, `chat` a sentence.
    """

    __slots__ = ("seed",)

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def _stream(self, method: str, payload: Any) -> _Stream:
        return _Stream(_digest([self.seed, method, payload]).encode())

    def _sentence(self, stream: _Stream) -> str:
        words = [stream.choice(_WORDS) for _ in range(stream.between(6, 14))]
        return " ".join(words).capitalize() + "."

    async def generate(
        self, *, system: str | None, prompt: str, schema: Mapping[str, Any] | None
    ) -> Any:
        stream = self._stream("generate", {"system": system, "prompt": prompt, "schema": schema})
        if schema is None:
            return self._sentence(stream)
        try:
            return _Generator(stream, schema).value(schema)
        except RecursionError:
            raise AIError("ctx.ai.generate: the schema nests too deeply") from None
        except _Unsatisfiable as exc:
            raise AIError(f"ctx.ai.generate: cannot satisfy the schema: {exc}") from None
        except (OverflowError, ValueError, TypeError) as exc:
            # A bound that is no finite number: `"minimum": 1e400`, `"minLength": "many"`.
            raise AIError(
                f"ctx.ai.generate: cannot satisfy the schema: a bound in it is not a finite "
                f"number ({exc})"
            ) from None

    async def embed(self, text: str) -> list[float]:
        stream = self._stream("embed", text)
        raw = [stream.unit() * 2.0 - 1.0 for _ in range(EMBEDDING_SIZE)]
        norm = math.sqrt(math.fsum(v * v for v in raw))
        return [v / norm for v in raw]

    async def chat(self, messages: _Messages) -> str:
        return self._sentence(self._stream("chat", list(messages)))

    def __repr__(self) -> str:
        return f"DeterministicAI(seed={self.seed!r})"
