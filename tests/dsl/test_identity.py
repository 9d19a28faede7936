from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections import OrderedDict
from typing import Any
from unittest.mock import Mock

import pydantic
import pytest

from awf_sim.dsl._errors import SerializationError
from awf_sim.dsl._identity import (
    MAX_PAYLOAD_BYTES,
    MAX_STEP_NAME,
    canonical,
    dump_result,
    hash8,
    step_id,
    step_id_from_hashes,
    step_name,
)


def sha(text: str, digits: int) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:digits]


@dataclasses.dataclass
class Product:
    sku: str
    tags: tuple[str, ...] = ()


@dataclasses.dataclass
class Line:
    product: Product
    quantity: int
    extra: Any = None


class Order(pydantic.BaseModel):
    id: str
    total: float
    lines: list[str]


class Opaque:
    pass


class Holder(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(arbitrary_types_allowed=True)
    thing: Opaque


# --- canonical JSON ---------------------------------------------------------------------------


def test_canonical_vector() -> None:
    value = {"b": [1, 2.5, None, True], "a": {"z": "é", "y": "\n"}, "c": 10**20}
    assert (
        canonical(value)
        == '{"a":{"y":"\\n","z":"é"},"b":[1,2.5,null,true],"c":100000000000000000000}'
    )


def test_canonical_is_key_order_independent() -> None:
    one = {"sku": "ABC", "meta": {"x": 1, "y": [1, {"q": 1, "p": 2}]}}
    two = {"meta": {"y": [1, {"p": 2, "q": 1}], "x": 1}, "sku": "ABC"}
    assert canonical(one) == canonical(two)


def test_canonical_keeps_non_ascii_text() -> None:
    assert canonical("ünïcødé ✓") == '"ünïcødé ✓"'


def test_tuples_become_lists() -> None:
    assert canonical({"t": (1, (2, 3))}) == '{"t":[1,[2,3]]}'


def test_pydantic_model_equals_its_dict() -> None:
    order = Order(id="o-1", total=9.5, lines=["a", "b"])
    assert canonical(order) == canonical({"lines": ["a", "b"], "total": 9.5, "id": "o-1"})
    assert canonical({"order": order}) == '{"order":{"id":"o-1","lines":["a","b"],"total":9.5}}'


def test_dataclass_equals_its_dict() -> None:
    line = Line(Product("ABC", ("x", "y")), 2)
    expected = {"extra": None, "product": {"sku": "ABC", "tags": ["x", "y"]}, "quantity": 2}
    assert canonical(line) == canonical(expected)
    assert canonical(line) == json.dumps(
        dataclasses.asdict(line), sort_keys=True, separators=(",", ":")
    )


class Key(str):
    pass


class Row(list[object]):
    pass


def test_dict_list_and_str_subclasses_are_json() -> None:
    assert canonical(OrderedDict([("b", 1), ("a", 2)])) == '{"a":2,"b":1}'
    assert canonical({Key("k"): Row([1, 2])}) == '{"k":[1,2]}'


def test_keys_json_turns_into_strings_become_strings_as_with_json_dumps() -> None:
    # DESIGN's canonical form is json.dumps, which stringifies int, float, bool and None keys;
    # a handler receives the JSON copy, so it sees the same string keys.
    assert canonical({"counts": {1: "a"}}) == '{"counts":{"1":"a"}}'
    assert canonical({"a": {True: 1}}) == '{"a":{"true":1}}'
    assert canonical({None: 2}) == '{"null":2}'
    assert canonical({"o": OrderedDict([(1, "a")])}) == '{"o":{"1":"a"}}'
    assert canonical(Row([{2: 3}]), root="value") == '[{"2":3}]'
    assert dump_result(Row([{2: 3}]), root="value") == '[{"2":3}]'


def test_keys_json_refuses_are_errors_with_the_field_path() -> None:
    with pytest.raises(SerializationError, match=r"^value\.o has a non-string key \(1, 2\)"):
        canonical({"o": {(1, 2): "a"}})
    # sorting mixed key types fails, so such a dict has no canonical form
    with pytest.raises(SerializationError, match=r"^value\[0\] has a non-string key 2"):
        canonical([{"a": 1, 2: "b"}])


def test_dump_result_keeps_key_order() -> None:
    value = {"b": 1, "a": {"d": 1, "c": 2}}
    assert dump_result(value, root="result") == '{"b":1,"a":{"d":1,"c":2}}'
    assert canonical(value) == '{"a":{"c":2,"d":1},"b":1}'


def test_dump_result_dumps_models() -> None:
    order = Order(id="o-1", total=1, lines=[])
    assert dump_result([order], root="result") == '[{"id":"o-1","total":1.0,"lines":[]}]'


# --- errors -------------------------------------------------------------------------------------

ALLOWED = "return dicts, lists, str, int, float, bool or None"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            {"items": [{"price": 1}, {"price": 2}, {"price": {1, 2}}]},
            f"context.items[2].price is not JSON (a set); {ALLOWED}",
        ),
        ({"a": {"b": [[1, b"x"]]}}, f"context.a.b[0][1] is not JSON (bytes); {ALLOWED}"),
        ({"price": math.nan}, f"context.price is not JSON (NaN); {ALLOWED}"),
        ({"price": [math.inf]}, f"context.price[0] is not JSON (Infinity); {ALLOWED}"),
        ({"price": -math.inf}, f"context.price is not JSON (-Infinity); {ALLOWED}"),
        ({"my key": [Opaque()]}, f"context['my key'][0] is not JSON (an Opaque); {ALLOWED}"),
        ((1, frozenset()), f"context[1] is not JSON (a frozenset); {ALLOWED}"),
        ({"n": 1j}, f"context.n is not JSON (a complex); {ALLOWED}"),
        ({1}, f"context is not JSON (a set); {ALLOWED}"),
        (
            {(1, 2): 1},
            "context has a non-string key (1, 2) (a tuple); JSON object keys must be str",
        ),
        (
            [{"a": 1, 2: "b"}],
            "context[0] has a non-string key 2 (an int); JSON object keys must be str",
        ),
        (
            {"line": Line(Product("x"), 1, extra={"when": {1, 2}})},
            f"context.line.extra.when is not JSON (a set); {ALLOWED}",
        ),
        (Mock(), f"context is not JSON (a Mock); {ALLOWED}"),
        (Product, f"context is not JSON (a type); {ALLOWED}"),
    ],
)
def test_errors_name_the_field_path(value: object, message: str) -> None:
    with pytest.raises(SerializationError) as info:
        canonical(value, root="context")
    assert str(info.value) == message
    if "non-string key" in message:
        return  # results stringify keys instead (see the test below)
    with pytest.raises(SerializationError) as info:
        dump_result(value, root="context")
    assert str(info.value) == message


def test_default_root_is_value() -> None:
    with pytest.raises(SerializationError, match=r"^value\[0\] is not JSON \(NaN\)"):
        canonical([math.nan])


def test_serialization_error_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="is not JSON"):
        canonical({1, 2})


def test_pydantic_model_that_cannot_dump() -> None:
    with pytest.raises(SerializationError) as info:
        canonical({"h": Holder(thing=Opaque())}, root="args")
    assert str(info.value).startswith(
        "args.h is not JSON (a Holder whose model_dump(mode='json') failed:"
    )


def test_pydantic_model_with_nan_names_the_field() -> None:
    with pytest.raises(SerializationError, match=r"^args\.total is not JSON \(NaN\)"):
        canonical(Order(id="o", total=math.nan, lines=[]), root="args")


def test_cycles_are_reported_not_looped() -> None:
    loop: list[object] = []
    loop.append(loop)
    with pytest.raises(
        SerializationError, match=r"^context\.x\[0\] is not JSON \(it contains itself\)"
    ):
        canonical({"x": loop}, root="context")


def test_shared_values_are_not_cycles() -> None:
    shared = {"a": 1}
    assert canonical([shared, shared]) == '[{"a":1},{"a":1}]'
    with pytest.raises(SerializationError, match=r"^value\[2\] is not JSON \(a set\)"):
        canonical([shared, shared, {1}])


def test_deep_nesting_is_an_error() -> None:
    deep: list[object] = []
    current = deep
    for _ in range(10_000):
        child: list[object] = []
        current.append(child)
        current = child
    with pytest.raises(SerializationError, match="nested too deeply"):
        canonical(deep, root="result")


# --- hashes and ids ---------------------------------------------------------------------------


def test_hash8() -> None:
    assert hash8('{"sku":"ABC"}') == hashlib.sha256(b'{"sku":"ABC"}').hexdigest()[:8]
    assert hash8("é") == hashlib.sha256("é".encode()).hexdigest()[:8]
    assert len(hash8("")) == 8


def test_hash8_tolerates_lone_surrogates() -> None:
    text = canonical("\ud800")
    assert hash8(text) == hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:8]


def test_step_id_follows_the_design_formula() -> None:
    context = {"sku": "ABC", "name": "Widget"}
    args = {"quantity": 2}
    context_hash = sha('{"name":"Widget","sku":"ABC"}', 8)
    args_hash = sha('{"quantity":2}', 8)
    identity = (
        '{"argsHash":"' + args_hash + '","contextHash":"' + context_hash + '",'
        '"path":["Inventory","reserve"]}'
    )
    assert step_id(["Inventory", "reserve"], context, args) == sha(identity, 16)


def test_step_id_is_stable_across_releases() -> None:
    # Changing this id would orphan the checkpoints of every running instance.
    assert step_id(["Inventory", "check"], {"sku": "ABC"}, {}) == "fcf721a49b0eb128"


def test_step_id_from_hashes_matches_canonical_identity() -> None:
    path = ["Dom", 'quote"d', "ünï", "back\\slash"]
    expected = canonical({"path": path, "contextHash": "0badc0de", "argsHash": "12345678"})
    assert step_id_from_hashes(path, "0badc0de", "12345678") == sha(expected, 16)
    assert step_id_from_hashes(tuple(path), "0badc0de", "12345678") == sha(expected, 16)


def test_step_id_from_hashes_agrees_with_step_id() -> None:
    context, args = {"id": "o-1"}, [{"a": 1}, {}]
    expected = step_id(["Order", "validate", "enrich"], context, args)
    actual = step_id_from_hashes(
        ["Order", "validate", "enrich"], hash8(canonical(context)), hash8(canonical(args))
    )
    assert actual == expected


def test_step_id_rejects_a_bare_string_path() -> None:
    with pytest.raises(TypeError, match="sequence of names"):
        step_id_from_hashes("Inventory.check", "00000000", "00000000")


def test_step_id_ignores_key_order_and_models() -> None:
    order = Order(id="o-1", total=1.0, lines=[])
    as_dict = {"total": 1.0, "lines": [], "id": "o-1"}
    assert step_id(["P", "pay"], order, {"b": 1, "a": 2}) == step_id(
        ["P", "pay"], as_dict, {"a": 2, "b": 1}
    )


@pytest.mark.parametrize(
    ("path", "context", "args"),
    [
        (["Inventory", "reserve"], {"sku": "ABC"}, {"quantity": 2}),
        (["Inventory", "check"], {"sku": "ABD"}, {"quantity": 2}),
        (["Inventory", "check"], {"sku": "ABC"}, {"quantity": 3}),
        (["Inventory", "check"], {"sku": "ABC"}, [{"quantity": 2}]),
        (["Inventory.check"], {"sku": "ABC"}, {"quantity": 2}),
    ],
)
def test_step_id_changes_with_each_part(path: list[str], context: object, args: object) -> None:
    base = step_id(["Inventory", "check"], {"sku": "ABC"}, {"quantity": 2})
    assert step_id(path, context, args) != base


def test_step_id_errors_name_context_and_args() -> None:
    with pytest.raises(SerializationError, match=r"^context\.when is not JSON"):
        step_id(["A", "b"], {"when": {1}}, {})
    with pytest.raises(SerializationError, match=r"^args\.n is not JSON \(NaN\)"):
        step_id(["A", "b"], {}, {"n": math.nan})


# --- step names --------------------------------------------------------------------------------


def test_step_name() -> None:
    assert (
        step_name(["Inventory", "check"], "0123456789abcdef") == "Inventory.check@0123456789abcdef"
    )


def test_step_name_at_the_limit_is_kept_whole() -> None:
    sid = "0123456789abcdef"
    path = ["D", "m" * (MAX_STEP_NAME - len(sid) - 3)]
    name = step_name(path, sid)
    assert len(name) == MAX_STEP_NAME
    assert name == ".".join(path) + "@" + sid


def test_long_step_name_is_cut_from_the_end_of_the_path() -> None:
    sid = "0123456789abcdef"
    path = ["Domain", "x" * 300, "last"]
    name = step_name(path, sid)
    assert len(name) == MAX_STEP_NAME
    assert name == ("Domain." + "x" * 300)[: MAX_STEP_NAME - 17] + "@" + sid


def test_constants() -> None:
    assert MAX_STEP_NAME == 256
    assert MAX_PAYLOAD_BYTES == 1_048_576


def test_canonical_of_values_marshal_cannot_tell_apart_by_value_stays_exact() -> None:
    # Equal as Python values, different as JSON: the remembered texts must not mix them up.
    pairs = [
        ({"a": 1}, '{"a":1}'),
        ({"a": True}, '{"a":true}'),
        ({"a": 1.0}, '{"a":1.0}'),
        ({"a": -0.0}, '{"a":-0.0}'),
        ({"a": 0.0}, '{"a":0.0}'),
        ({"a": (1, 2)}, '{"a":[1,2]}'),
        ({"b": 1, "a": 2}, '{"a":2,"b":1}'),
    ]
    for _ in range(2):  # the second time from the memo
        for value, text in pairs:
            assert canonical(value) == text


def test_canonical_of_subclasses_and_models_is_not_remembered_wrongly() -> None:
    class Tag(str):
        pass

    @dataclasses.dataclass
    class Point:
        x: int

    for _ in range(2):
        assert canonical({"t": Tag("x")}) == '{"t":"x"}'
        assert canonical(Point(1)) == '{"x":1}'
        point = Point(1)
        assert canonical(point) == '{"x":1}'
        point.x = 2  # the same object changed: its text changes with it
        assert canonical(point) == '{"x":2}'
    mutable = {"a": [1]}
    assert canonical(mutable) == '{"a":[1]}'
    mutable["a"].append(2)
    assert canonical(mutable) == '{"a":[1,2]}'
