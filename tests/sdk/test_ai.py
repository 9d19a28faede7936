"""`ctx.ai`: the deterministic, recorded and Workers AI providers, and effect recording."""

from __future__ import annotations

import datetime as dt
import enum
import json
import math
import random
import re
from collections.abc import Coroutine, Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar

import httpx
import jsonschema
import pydantic
import pytest
import respx
from hypothesis import given, settings
from hypothesis import strategies as st

from awf_sim.sdk._ai import (
    AIClient,
    AIError,
    AIProvider,
    DeterministicAI,
    RecordedAI,
    WorkersAI,
)
from awf_sim.sdk._effects import EffectLog

T = TypeVar("T")

OPENAPI = (
    Path(__file__).resolve().parents[1] / "deploy/cloudflare-openapi/workflows-deploy-subset.json"
)
ACCOUNT = "023e105f4ecef8ad9ca31a8372d0c353"
TOKEN = "cf-secret-token-123"
MODEL = "@cf/meta/llama-3.1-8b-instruct"
RUN_URL = f"https://api.cloudflare.com/client/v4/accounts/{ACCOUNT}/ai/run/{MODEL}"
EMBED_URL = (
    f"https://api.cloudflare.com/client/v4/accounts/{ACCOUNT}/ai/run/@cf/baai/bge-base-en-v1.5"
)


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Drives a coroutine as the engine's fast path does, and proves it never suspends."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    coro.close()
    raise AssertionError("the AI call suspended")


def validate(instance: Any, schema: Mapping[str, Any]) -> None:
    validator = jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    validator.validate(instance)


def generate(ai: AIProvider, prompt: str, schema: Any = None, system: str | None = None) -> Any:
    return run(ai.generate(system=system, prompt=prompt, schema=schema))


# --- DeterministicAI: determinism ---------------------------------------------------------------


def test_same_seed_and_prompt_give_the_same_answer() -> None:
    one, two = DeterministicAI(seed=7), DeterministicAI(seed=7)
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}}
    assert generate(one, "classify this") == generate(two, "classify this")
    assert generate(one, "classify this", schema) == generate(two, "classify this", schema)
    assert run(one.embed("x")) == run(two.embed("x"))
    assert run(one.chat([{"role": "user", "content": "hi"}])) == run(
        two.chat([{"role": "user", "content": "hi"}])
    )


def test_answers_depend_on_seed_prompt_system_and_method() -> None:
    base = generate(DeterministicAI(0), "p")
    others = {
        generate(DeterministicAI(1), "p"),
        generate(DeterministicAI(0), "q"),
        generate(DeterministicAI(0), "p", system="be brief"),
        run(DeterministicAI(0).chat([{"role": "user", "content": "p"}])),
    }
    assert base not in others
    assert len(others) == 4


def test_answers_are_pinned_across_versions_and_platforms() -> None:
    # sha256 and IEEE arithmetic only: a change here changes every recorded simulation.
    ai = DeterministicAI(seed=42)
    assert generate(ai, "hello") == GOLDEN_TEXT
    assert generate(ai, "hello", {"type": "integer", "minimum": 0, "maximum": 100}) == GOLDEN_INT
    assert run(ai.embed("hello"))[:2] == GOLDEN_EMBED


GOLDEN_TEXT = (
    "Cinder pebble granite quill indigo iris amber breeze juniper cinder brook signal orbit."
)
GOLDEN_INT = 61
GOLDEN_EMBED = [-0.49928523512891754, 0.1917231079137341]


def test_never_touches_the_global_random_module(monkeypatch: pytest.MonkeyPatch) -> None:
    state = random.getstate()

    def refuse(*args: Any) -> Any:
        raise AssertionError("the global random module was used")

    for name in ("random", "randint", "choice", "uniform", "getrandbits", "shuffle", "sample"):
        monkeypatch.setattr(random, name, refuse)
    ai = DeterministicAI(3)
    generate(ai, "x")
    generate(ai, "x", {"type": "array", "items": {"type": "number"}, "minItems": 5})
    run(ai.embed("x"))
    run(ai.chat([{"role": "user", "content": "x"}]))
    monkeypatch.undo()
    assert random.getstate() == state


def test_text_without_schema_never_echoes_the_prompt() -> None:
    secret = "sk_live_abcdef the customer's card 4242"
    answer = generate(DeterministicAI(), secret)
    assert isinstance(answer, str)
    assert answer
    assert answer.endswith(".")
    for word in ("sk_live_abcdef", "4242", "customer"):
        assert word not in answer


def test_embed_is_a_unit_vector_of_16_floats() -> None:
    ai = DeterministicAI(5)
    vector = run(ai.embed("the quick brown fox"))
    assert len(vector) == 16
    assert all(isinstance(v, float) for v in vector)
    assert math.isclose(math.fsum(v * v for v in vector), 1.0, rel_tol=1e-12)
    assert vector != run(ai.embed("the lazy dog"))


# --- DeterministicAI: schema-valid answers ---------------------------------------------------


class Colour(enum.Enum):
    RED = "red"
    GREEN = "green"


class Address(pydantic.BaseModel):
    street: str
    zip: str = pydantic.Field(min_length=5, max_length=5)


class Person(pydantic.BaseModel):
    name: str = pydantic.Field(min_length=1, max_length=20)
    age: int = pydantic.Field(ge=0, lt=130)
    score: float = pydantic.Field(gt=0, le=1)
    colour: Colour
    kind: Literal["customer", "supplier"]
    nickname: str | None = None
    addresses: list[Address] = pydantic.Field(min_length=1, max_length=3)
    manager: Person | None = None
    tags: dict[str, int] = {}


SCHEMAS: dict[str, dict[str, Any]] = {
    "string": {"type": "string"},
    "string-lengths": {"type": "string", "minLength": 50, "maxLength": 60},
    "string-short": {"type": "string", "maxLength": 3},
    "string-empty": {"type": "string", "maxLength": 0},
    "integer": {"type": "integer"},
    "integer-bounds": {"type": "integer", "minimum": -5, "maximum": 5},
    "integer-exclusive": {"type": "integer", "exclusiveMinimum": 1, "exclusiveMaximum": 4},
    "integer-point": {"type": "integer", "minimum": 7, "maximum": 7},
    "integer-multiple": {"type": "integer", "minimum": 1, "maximum": 100, "multipleOf": 7},
    "integer-only-max": {"type": "integer", "maximum": -1000000},
    "number": {"type": "number"},
    "number-bounds": {"type": "number", "minimum": 0.25, "maximum": 0.5},
    "number-exclusive": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1e-9},
    "number-multiple": {"type": "number", "minimum": 0, "maximum": 1, "multipleOf": 0.1},
    "number-only-min": {"type": "number", "minimum": 1e12},
    "boolean": {"type": "boolean"},
    "null": {"type": "null"},
    "enum": {"enum": ["low", "medium", "high"]},
    "enum-mixed": {"enum": [1, "two", None, {"three": 3}]},
    "const": {"const": {"fixed": [1, 2]}},
    "nullable-list": {"type": ["null", "string"], "maxLength": 5},
    "no-type": {"properties": {"a": {"type": "integer"}}, "required": ["a"]},
    "empty": {},
    "true-subschema": {"type": "object", "properties": {"any": True}, "required": ["any"]},
    "object": {
        "type": "object",
        "properties": {
            "sentiment": {"enum": ["positive", "negative", "neutral"]},
            "confidence": {"type": "number", "minimum": 0, "maximum": 1},
            "summary": {"type": "string", "maxLength": 80},
        },
        "required": ["sentiment", "confidence"],
        "additionalProperties": False,
    },
    "object-required-only": {
        "type": "object",
        "required": ["id", "name"],
        "additionalProperties": {"type": "integer"},
    },
    "object-min-properties": {
        "type": "object",
        "minProperties": 3,
        "additionalProperties": {"type": "boolean"},
    },
    "object-max-properties": {
        "type": "object",
        "properties": {c: {"type": "integer"} for c in "abcdef"},
        "required": ["a"],
        "maxProperties": 2,
    },
    "array": {"type": "array", "items": {"type": "integer", "minimum": 0}},
    "array-sizes": {"type": "array", "items": {"type": "string"}, "minItems": 4, "maxItems": 6},
    "array-empty": {"type": "array", "maxItems": 0},
    "array-unique": {
        "type": "array",
        "items": {"type": "integer", "minimum": 0, "maximum": 9},
        "minItems": 5,
        "uniqueItems": True,
    },
    "array-prefix": {
        "type": "array",
        "prefixItems": [{"type": "string"}, {"type": "integer"}],
        "items": False,
    },
    "nested": {
        "type": "object",
        "properties": {
            "order": {
                "type": "object",
                "properties": {
                    "id": {"type": "string", "format": "uuid"},
                    "lines": {
                        "type": "array",
                        "minItems": 1,
                        "items": {
                            "type": "object",
                            "properties": {
                                "sku": {"type": "string", "minLength": 3},
                                "qty": {"type": "integer", "minimum": 1, "maximum": 9},
                                "price": {"type": "number", "exclusiveMinimum": 0},
                            },
                            "required": ["sku", "qty", "price"],
                        },
                    },
                },
                "required": ["id", "lines"],
            }
        },
        "required": ["order"],
    },
    "formats": {
        "type": "object",
        "properties": {
            f: {"type": "string", "format": f}
            for f in ("date-time", "date", "time", "email", "uri", "uuid", "ipv4", "ipv6")
        },
    },
    "anyOf-first": {"anyOf": [{"type": "integer", "minimum": 10}, {"type": "string"}]},
    "oneOf-first": {"oneOf": [{"type": "boolean"}, {"type": "string"}]},
    "allOf": {
        "allOf": [
            {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]},
            {"properties": {"b": {"type": "string"}}, "required": ["b"]},
            {"properties": {"a": {"maximum": 3}}},
        ]
    },
    "ref": {
        "$defs": {"money": {"type": "object", "properties": {"cents": {"type": "integer"}}}},
        "type": "object",
        "properties": {"price": {"$ref": "#/$defs/money"}, "tax": {"$ref": "#/$defs/money"}},
        "required": ["price"],
    },
    "recursive": {
        "$defs": {
            "node": {
                "type": "object",
                "properties": {
                    "value": {"type": "integer"},
                    "children": {"type": "array", "items": {"$ref": "#/$defs/node"}},
                },
                "required": ["value"],
            }
        },
        "$ref": "#/$defs/node",
    },
    "pattern-with-example": {
        "type": "string",
        "pattern": "^[A-Z]{3}-\\d{4}$",
        "examples": ["ABC-1234", "XYZ-0001"],
    },
    "pydantic": Person.model_json_schema(),
    # Keywords the generator once ignored, answering values that did not validate:
    "contains": {"type": "array", "contains": {"type": "string", "const": "X"}},
    "contains-min": {
        "type": "array",
        "items": {"type": "integer"},
        "contains": {"minimum": 100},
        "minContains": 2,
    },
    "dependent-required": {
        "type": "object",
        "properties": {"card": {"type": "string"}},
        "required": ["card"],
        "dependentRequired": {"card": ["billing"], "billing": ["zip"]},
    },
    "dependencies-draft7": {
        "type": "object",
        "properties": {"a": {"type": "integer"}},
        "required": ["a"],
        "dependencies": {"a": ["b"]},
    },
    "if-then-else": {
        "type": "object",
        "properties": {"country": {"enum": ["US", "CA"]}},
        "required": ["country"],
        "if": {"properties": {"country": {"const": "US"}}},
        "then": {"required": ["state"], "properties": {"state": {"type": "string"}}},
        "else": {"required": ["province"]},
    },
    "if-else-only": {
        "type": "object",
        "properties": {"k": {"type": "integer"}},
        "if": {"required": ["k"]},
        "else": {"required": ["missing"]},
    },
    "not-type": {"not": {"type": "string"}},
    "not-enum": {"type": "string", "not": {"enum": ["a", "b"]}},
    "not-with-examples": {"type": "string", "not": {"pattern": "x"}, "examples": ["abc", "def"]},
    "pattern-properties": {
        "type": "object",
        "patternProperties": {"^n_": {"type": "integer"}},
        "additionalProperties": False,
        "required": ["n_a"],
    },
    "unevaluated-properties": {
        "type": "object",
        "properties": {"a": {"type": "integer"}},
        "unevaluatedProperties": False,
        "minProperties": 1,
    },
}


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_answers_validate_against_the_schema(name: str) -> None:
    schema = SCHEMAS[name]
    ai = DeterministicAI(seed=11)
    answers = [generate(ai, f"prompt {i}", schema) for i in range(25)]
    for answer in answers:
        validate(answer, schema)
        json.dumps(answer, allow_nan=False)
    if name not in ("const", "null", "integer-point", "string-empty", "array-empty"):
        assert len({json.dumps(a, sort_keys=True) for a in answers}) > 1, "answers never vary"


def test_pydantic_models_accept_the_answers() -> None:
    ai = DeterministicAI(seed=1)
    for i in range(20):
        person = Person.model_validate(generate(ai, f"person {i}", Person.model_json_schema()))
        assert 0 <= person.age < 130


def test_date_time_format_parses() -> None:
    ai = DeterministicAI()
    for i in range(10):
        value = generate(ai, str(i), {"type": "string", "format": "date-time"})
        assert dt.datetime.fromisoformat(value.replace("Z", "+00:00")).tzinfo is not None


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        (False, "is `false`"),
        ({"type": "string", "minLength": 5, "maxLength": 2}, "minLength 5 is above maxLength 2"),
        ({"type": "integer", "minimum": 3, "maximum": 2}, "no integer between the bounds"),
        ({"type": "integer", "exclusiveMinimum": 1, "exclusiveMaximum": 2}, "no integer"),
        ({"type": "number", "exclusiveMinimum": 1, "maximum": 1}, "no number between"),
        ({"type": "array", "minItems": 3, "maxItems": 1}, "minItems 3 is above maxItems 1"),
        ({"enum": []}, "enum at \\$ is empty"),
        ({"type": "string", "pattern": "^a+$"}, "cannot generate; give the schema an `examples`"),
        ({"$ref": "#/$defs/missing"}, "points nowhere"),
        ({"$ref": "https://example.com/schema"}, "only local \\$refs"),
        (
            {"type": "array", "items": {"type": "boolean"}, "minItems": 3, "uniqueItems": True},
            "unique",
        ),
        (
            {"type": "object", "minProperties": 2, "additionalProperties": False},
            "needs 2 properties",
        ),
        ({"type": "thing"}, "unknown type 'thing'"),
        ({"not": {"pattern": "x"}}, "uses `not`, which DeterministicAI cannot satisfy"),
        ({"type": "object", "propertyNames": {"maxLength": 1}}, "uses `propertyNames`"),
        ({"type": "array", "contains": {}, "maxContains": 1}, "uses `maxContains`"),
        ({"type": "array", "contains": False}, "`contains` is `false`"),
        ({"type": "object", "dependentSchemas": {"a": {}}}, "uses `dependentSchemas`"),
    ],
)
def test_unsatisfiable_schemas_are_errors(schema: Any, message: str) -> None:
    with pytest.raises(AIError, match=f"cannot satisfy the schema: .*{message}"):
        generate(DeterministicAI(), "p", schema)


def test_where_in_the_schema_is_named() -> None:
    schema = {
        "type": "object",
        "properties": {"items": {"type": "array", "minItems": 1, "items": {"enum": []}}},
    }
    with pytest.raises(AIError, match=r"the enum at \$\.items\[0\] is empty"):
        generate(DeterministicAI(), "p", schema)


# A generated family of satisfiable schemas: every answer must validate.
_NAMES = st.text(alphabet="abcdefghij_", min_size=1, max_size=6)
_JSON_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-1000, 1000), st.text(max_size=5))


@st.composite
def _integer_schema(draw: st.DrawFn) -> dict[str, Any]:
    lo = draw(st.integers(-(10**6), 10**6))
    span = draw(st.integers(2, 10**6))
    schema: dict[str, Any] = {"type": "integer"}
    if draw(st.booleans()):
        schema["exclusiveMinimum" if draw(st.booleans()) else "minimum"] = lo
    if draw(st.booleans()):
        schema["exclusiveMaximum" if draw(st.booleans()) else "maximum"] = lo + span
    return schema


@st.composite
def _number_schema(draw: st.DrawFn) -> dict[str, Any]:
    lo = draw(st.floats(-1e9, 1e9))
    span = draw(st.floats(1e-3, 1e9))
    schema: dict[str, Any] = {"type": "number"}
    if draw(st.booleans()):
        schema["exclusiveMinimum" if draw(st.booleans()) else "minimum"] = lo
    if draw(st.booleans()):
        schema["exclusiveMaximum" if draw(st.booleans()) else "maximum"] = lo + span
    return schema


@st.composite
def _string_schema(draw: st.DrawFn) -> dict[str, Any]:
    lo = draw(st.integers(0, 30))
    schema: dict[str, Any] = {"type": "string"}
    if draw(st.booleans()):
        schema["minLength"] = lo
    if draw(st.booleans()):
        schema["maxLength"] = lo + draw(st.integers(0, 30))
    return schema


_SCALAR_SCHEMAS = st.one_of(
    _integer_schema(),
    _number_schema(),
    _string_schema(),
    st.just({"type": "boolean"}),
    st.just({"type": "null"}),
    st.lists(_JSON_SCALARS, min_size=1, max_size=4).map(lambda xs: {"enum": xs}),
    _JSON_SCALARS.map(lambda x: {"const": x}),
    st.sampled_from(["date", "email", "uuid", "ipv4", "ipv6"]).map(
        lambda f: {"type": "string", "format": f}
    ),
)


@st.composite
def _object_schema(draw: st.DrawFn, children: st.SearchStrategy[Any]) -> dict[str, Any]:
    props = draw(st.dictionaries(_NAMES, children, max_size=4))
    required = draw(st.lists(st.sampled_from(sorted(props)), unique=True)) if props else []
    schema: dict[str, Any] = {"type": "object", "properties": props, "required": required}
    if draw(st.booleans()):
        schema["additionalProperties"] = False
    return schema


@st.composite
def _array_schema(draw: st.DrawFn, children: st.SearchStrategy[Any]) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "array", "items": draw(children)}
    lo = draw(st.integers(0, 4))
    if draw(st.booleans()):
        schema["minItems"] = lo
    if draw(st.booleans()):
        schema["maxItems"] = lo + draw(st.integers(0, 4))
    return schema


_SCHEMAS = st.recursive(
    _SCALAR_SCHEMAS,
    lambda children: st.one_of(
        _object_schema(children),
        _array_schema(children),
        st.lists(children, min_size=1, max_size=3).map(lambda xs: {"anyOf": xs}),
        children.map(lambda s: {"type": [s["type"], "null"]} | s if "type" in s else s),
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(schema=_SCHEMAS, seed=st.integers(0, 2**32), prompt=st.text(max_size=20))
def test_generated_schemas_always_get_valid_answers(
    schema: dict[str, Any], seed: int, prompt: str
) -> None:
    answer = generate(DeterministicAI(seed), prompt, schema)
    validate(answer, schema)


# --- RecordedAI ------------------------------------------------------------------------------


def test_recorded_exact_then_regex_in_order() -> None:
    ai = RecordedAI(
        [
            (re.compile(r"refund"), {"intent": "refund"}),
            ("refund my order", {"intent": "exact"}),
            (re.compile(r"order"), {"intent": "order"}),
        ]
    )
    assert generate(ai, "refund my order") == {"intent": "exact"}
    assert generate(ai, "please refund my order now") == {"intent": "refund"}
    assert generate(ai, "where is my order") == {"intent": "order"}


def test_recorded_mapping_form_and_copies() -> None:
    ai = RecordedAI({"summarize": {"points": [1, 2]}})
    first = generate(ai, "summarize")
    first["points"].append(3)
    assert generate(ai, "summarize") == {"points": [1, 2]}


def test_recorded_callable_answers() -> None:
    ai = RecordedAI([(re.compile(r"^echo "), lambda prompt: prompt[5:].upper())])
    assert generate(ai, "echo hello") == "HELLO"


def test_unknown_prompt_prints_it_and_how_to_record_it() -> None:
    ai = RecordedAI({"known": "yes"})
    with pytest.raises(AIError) as info:
        generate(ai, "Summarize order 42 for the customer")
    message = str(info.value)
    assert "no recorded answer for ctx.ai.generate" in message
    assert "'Summarize order 42 for the customer'" in message
    assert "RecordedAI({'Summarize order 42 for the customer': <answer>})" in message
    assert "re.compile" in message


def test_recorded_embed_and_chat() -> None:
    ai = RecordedAI(
        {
            "cat": [1, 0, 0],
            "how are you?": "fine, thanks",
        }
    )
    assert run(ai.embed("cat")) == [1.0, 0.0, 0.0]
    conversation = [
        {"role": "system", "content": "be nice"},
        {"role": "user", "content": "how are you?"},
    ]
    assert run(ai.chat(conversation)) == "fine, thanks"
    with pytest.raises(AIError, match=r"no recorded answer for ctx\.ai\.embed"):
        run(ai.embed("dog"))
    with pytest.raises(AIError, match="must be a list of numbers"):
        run(ai.embed("how are you?"))
    with pytest.raises(AIError, match="must be a str"):
        run(ai.chat([{"role": "user", "content": "cat"}]))


@pytest.mark.parametrize(
    ("answers", "message"),
    [
        ({"p": {1, 2}}, "the answer for 'p' is not JSON"),
        ([("p",)], "expected \\(prompt or re.compile"),
        ([(42, "x")], "a key must be a str or a compiled regex"),
    ],
)
def test_recorded_refuses_bad_recordings(answers: Any, message: str) -> None:
    with pytest.raises(AIError, match=message):
        RecordedAI(answers)


# --- AIClient: what ctx.ai records -----------------------------------------------------------


def test_every_call_is_recorded_with_input_and_answer() -> None:
    log = EffectLog()
    ai = AIClient(DeterministicAI(seed=2), log)
    log.step = "Review.classify#1"
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
    answer = run(ai.generate(system="You classify.", prompt="Is this fine?", schema=schema))
    vector = run(ai.embed("text"))
    reply = run(ai.chat([{"role": "user", "content": "hi"}]))
    generate_effect, embed_effect, chat_effect = log.effects
    assert [e.kind for e in log.effects] == ["ai", "ai", "ai"]
    assert {e.step for e in log.effects} == {"Review.classify#1"}
    assert re.fullmatch(r"ai\.generate [0-9a-f]{16}", generate_effect.summary)
    assert re.fullmatch(r"ai\.embed [0-9a-f]{16}", embed_effect.summary)
    assert re.fullmatch(r"ai\.chat [0-9a-f]{16}", chat_effect.summary)
    assert generate_effect.detail == {
        "method": "generate",
        "system": "You classify.",
        "prompt": "Is this fine?",
        "schema": schema,
        "provider": "DeterministicAI",
        "answer": answer,
    }
    assert embed_effect.detail["answer"] == vector
    assert chat_effect.detail["messages"] == [{"role": "user", "content": "hi"}]
    assert chat_effect.detail["answer"] == reply
    json.dumps([e.to_dict() for e in log.effects])


def test_summaries_depend_on_the_input_only() -> None:
    one, two = EffectLog(), EffectLog()
    run(AIClient(DeterministicAI(1), one).generate(prompt="same"))
    run(AIClient(RecordedAI({"same": "x"}), two).generate(prompt="same"))
    assert one.summaries() == two.summaries()
    run(AIClient(DeterministicAI(1), one).generate(prompt="other"))
    assert one.summaries()[0] != one.summaries()[1]


def test_failed_calls_are_recorded_with_the_error() -> None:
    log = EffectLog()
    ai = AIClient(RecordedAI({}), log)
    with pytest.raises(AIError):
        run(ai.generate(prompt="unknown"))
    (effect,) = log.effects
    assert effect.detail["error"]["name"] == "AIError"
    assert "answer" not in effect.detail


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda ai: ai.generate(prompt=42), "prompt must be a str"),
        (lambda ai: ai.generate(prompt="p", system=1), "system must be a str"),
        (lambda ai: ai.generate(prompt="p", schema="object"), "schema must be a dict"),
        (lambda ai: ai.embed(b"bytes"), "text must be a str"),
        (lambda ai: ai.chat("hello"), "expected a list"),
        (lambda ai: ai.chat([{"role": "user"}]), r"messages\[0\] must be a dict"),
        # Before: TypeError "Object of type type is not JSON serializable" from the digest.
        (
            lambda ai: ai.generate(prompt="p", schema={"type": str}),
            r"ctx\.ai\.generate: its input must be JSON .*not \{\"type\": str\}",
        ),
        (
            lambda ai: ai.generate(prompt="p", schema=_Answer),
            r"got ModelMetaclass; for a pydantic model pass _Answer\.model_json_schema\(\)",
        ),
    ],
)
def test_bad_input_is_refused_before_the_provider(call: Any, message: str) -> None:
    log = EffectLog()
    with pytest.raises(AIError, match=message):
        run(call(AIClient(DeterministicAI(), log)))
    assert len(log) == 0


class _Answer(pydantic.BaseModel):
    score: int


def test_generate_takes_keywords() -> None:
    generate_any: Any = AIClient(DeterministicAI(), EffectLog()).generate
    with pytest.raises(TypeError, match="positional"):
        generate_any("a prompt")


# --- WorkersAI ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def openapi() -> dict[str, Any]:
    spec: dict[str, Any] = json.loads(OPENAPI.read_text())
    return spec["paths"]["/accounts/{account_id}/ai/run/{model_name}"]["post"]  # type: ignore[no-any-return]


def _branch(options: list[dict[str, Any]], title: str) -> dict[str, Any]:
    # The official oneOf lists every task, and a body of one task often matches others too:
    # check against the task's own branch (as the subset's README advises for uploads).
    (found,) = [o for o in options if o.get("title") == title]
    return found


def request_schema(openapi: dict[str, Any], task: str) -> dict[str, Any]:
    schema = openapi["requestBody"]["content"]["application/json"]["schema"]
    return _branch(schema["oneOf"], task)


def response_schema(openapi: dict[str, Any], task: str) -> dict[str, Any]:
    schema = openapi["responses"]["200"]["content"]["application/json"]["schema"]
    result = _branch(schema["properties"]["result"]["oneOf"], task)
    return {**schema, "properties": {**schema["properties"], "result": result}}


class FakeWorkersAI:
    """A respx router answering like the API, checking both sides against the OpenAPI subset."""

    def __init__(self, openapi: dict[str, Any]) -> None:
        self.openapi = openapi
        self.router = respx.Router()
        self.bodies: list[Any] = []

    def text(self, response: Any, task: str = "Text Generation") -> respx.Route:
        envelope = {"result": {"response": response}, "success": True, "errors": [], "messages": []}
        return self._route(RUN_URL, task, envelope)

    def embeddings(self, data: list[list[float]]) -> respx.Route:
        envelope = {
            "result": {"shape": [len(data), len(data[0])], "data": data},
            "success": True,
            "errors": [],
            "messages": [],
        }
        return self._route(EMBED_URL, "Text Embeddings", envelope)

    def _route(self, url: str, task: str, envelope: dict[str, Any]) -> respx.Route:
        jsonschema.validate(envelope, response_schema(self.openapi, task))

        def answer(request: httpx.Request) -> httpx.Response:
            body = json.loads(request.content)
            jsonschema.validate(body, request_schema(self.openapi, task))
            self.bodies.append(body)
            return httpx.Response(200, json=envelope)

        return self.router.post(url).mock(side_effect=answer)

    def provider(self) -> WorkersAI:
        return WorkersAI(ACCOUNT, TOKEN, transport=httpx.MockTransport(self.router.handler))


@pytest.fixture
def fake(openapi: dict[str, Any]) -> FakeWorkersAI:
    return FakeWorkersAI(openapi)


def test_workers_ai_generate_prompt(fake: FakeWorkersAI) -> None:
    route = fake.text("Paris.")
    assert generate(fake.provider(), "Capital of France?") == "Paris."
    request = route.calls.last.request
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert request.url.path == f"/client/v4/accounts/{ACCOUNT}/ai/run/{MODEL}"
    assert fake.bodies == [{"prompt": "Capital of France?"}]


def test_workers_ai_generate_with_system_uses_messages(fake: FakeWorkersAI) -> None:
    fake.text("Bonjour")
    generate(fake.provider(), "Say hello", system="Answer in French")
    assert fake.bodies == [
        {
            "messages": [
                {"role": "system", "content": "Answer in French"},
                {"role": "user", "content": "Say hello"},
            ]
        }
    ]


@pytest.mark.parametrize(
    "response", ['{"label": "spam", "score": 0.9}', {"label": "spam", "score": 0.9}]
)
def test_workers_ai_generate_with_schema_returns_json(fake: FakeWorkersAI, response: Any) -> None:
    if isinstance(response, dict):
        fake.router.post(RUN_URL).respond(
            200,
            json={"result": {"response": response}, "success": True, "errors": [], "messages": []},
        )
    else:
        fake.text(response)
    schema = {
        "type": "object",
        "properties": {"label": {"type": "string"}, "score": {"type": "number"}},
    }
    assert generate(fake.provider(), "Classify", schema) == {"label": "spam", "score": 0.9}
    if fake.bodies:
        assert fake.bodies[0]["response_format"] == {"type": "json_schema", "json_schema": schema}


def test_workers_ai_schema_answer_that_is_not_json(fake: FakeWorkersAI) -> None:
    fake.text("I think it is spam")
    with pytest.raises(AIError, match="asked for JSON, got text 'I think it is spam'"):
        generate(fake.provider(), "Classify", {"type": "object"})


def test_workers_ai_embed_and_chat(fake: FakeWorkersAI) -> None:
    fake.embeddings([[0.1, 0.2, 0.3]])
    fake.text("Hi there")
    ai = fake.provider()
    assert run(ai.embed("hello")) == [0.1, 0.2, 0.3]
    messages = [{"role": "user", "content": "hello"}]
    assert run(ai.chat(messages)) == "Hi there"
    assert fake.bodies == [{"text": "hello"}, {"messages": messages}]


def test_workers_ai_errors_name_the_model_and_hide_the_token(openapi: dict[str, Any]) -> None:
    failure = {"result": {}, "success": False, "errors": [{"message": "Invalid model input"}]}
    jsonschema.validate(
        failure, openapi["responses"]["400"]["content"]["application/json"]["schema"]
    )
    router = respx.Router()
    router.post(RUN_URL).respond(400, json=failure)
    ai = WorkersAI(ACCOUNT, TOKEN, transport=httpx.MockTransport(router.handler))
    with pytest.raises(AIError) as info:
        generate(ai, "x")
    assert str(info.value) == f"Workers AI {MODEL}: HTTP 400: Invalid model input"
    assert TOKEN not in repr(ai)
    assert "token='***'" in repr(ai)


@pytest.mark.parametrize(
    ("response", "message"),
    [
        (httpx.Response(502, text="<html>bad gateway</html>"), "HTTP 502 with a non-JSON body"),
        (httpx.Response(200, json={"success": True}), "the response has no `result`"),
        (
            httpx.Response(200, json={"result": {"x": 1}, "success": True}),
            "expected result.response",
        ),
    ],
)
def test_workers_ai_malformed_responses(response: httpx.Response, message: str) -> None:
    ai = WorkersAI(ACCOUNT, TOKEN, transport=httpx.MockTransport(lambda r: response))
    with pytest.raises(AIError, match=message) as info:
        generate(ai, "x")
    assert TOKEN not in str(info.value)


def test_workers_ai_transport_errors_become_ai_errors() -> None:
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    ai = WorkersAI(ACCOUNT, TOKEN, transport=httpx.MockTransport(down))
    with pytest.raises(AIError, match="ConnectError: connection refused"):
        generate(ai, "x")


def test_workers_ai_through_ctx_ai_is_recorded(fake: FakeWorkersAI) -> None:
    fake.text("ok")
    log = EffectLog()
    assert run(AIClient(fake.provider(), log).generate(prompt="p")) == "ok"
    (effect,) = log.effects
    assert effect.detail["provider"] == "WorkersAI"
    assert effect.detail["answer"] == "ok"
    assert TOKEN not in json.dumps(effect.to_dict())


def test_workers_ai_without_transport_posts_from_a_worker_thread(
    fake: FakeWorkersAI, openapi: dict[str, Any]
) -> None:
    import asyncio

    ai = WorkersAI(ACCOUNT, TOKEN, base_url="https://api.cloudflare.com/client/v4/")
    envelope = {"result": {"response": "real"}, "success": True, "errors": [], "messages": []}
    with respx.mock(assert_all_called=True) as mock:  # patches httpx itself, for this test only
        mock.post(RUN_URL).respond(200, json=envelope)

        async def call() -> Any:
            try:
                return await ai.generate(system=None, prompt="p", schema=None)
            finally:
                await ai.aclose()

        assert asyncio.run(call()) == "real"


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        ({"type": "string", "minLength": 10**8}, r"over 1,048,576 .* \(minLength 100000000\)"),
        ({"type": "array", "minItems": 10**8}, r"over 1,048,576 .* \(100000000 items\)"),
        ({"type": "object", "minProperties": 10**7}, r"over 1,048,576 .* \(its properties\)"),
        (
            {
                "type": "array",
                "items": {"type": "array", "minItems": 3000, "items": {"minItems": 3000}},
            },
            r"\$\[\d+\]\[\d+\]\[\d+\]: the schema asks for an answer over 1,048,576",
        ),
        ({"type": "integer", "minimum": 1e400}, "a bound in it is not a finite number"),
        ({"type": "string", "minLength": "many"}, "a bound in it is not a finite number"),
    ],
)
def test_a_schema_asking_for_too_much_is_refused_at_once(schema: Any, message: str) -> None:
    # Before: the first three and the arrays of arrays built their answer for minutes (the
    # text one quadratically), the last two raised OverflowError and ValueError from inside.
    with pytest.raises(AIError, match=f"cannot satisfy the schema: .*{message}") as info:
        generate(DeterministicAI(), "p", schema)
    assert "\n" not in str(info.value)


def test_a_long_minimum_within_the_bound_is_met() -> None:
    text = generate(DeterministicAI(), "p", {"type": "string", "minLength": 200_000})
    assert len(text) >= 200_000
