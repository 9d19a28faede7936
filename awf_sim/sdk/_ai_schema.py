"""The schema walker behind `DeterministicAI.generate(schema=...)`: a value that validates
against a JSON schema, drawn from a deterministic stream.

It builds the answer from the schema (types, enums, consts, formats, bounds, required and
dependent keys, pattern properties, `contains`, combinators, local `$ref`s); where a keyword
cannot be met by construction (a `pattern`, a general `not`) it takes the schema's `examples`
or says so, rather than answer something that does not validate.
"""

from __future__ import annotations

import copy
import datetime as _dt
import hashlib
import itertools
import json
import math
import re
import struct
from collections.abc import Mapping, Sequence
from typing import Any, TypeGuard

from awf_sim.errors import AIError

__all__: list[str] = []  # private to the SDK: _ai_deterministic imports what it needs


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


class _Stream:
    """Counter-mode sha256: an endless, platform-independent stream of random bits.

    Never the `random` module: its global state belongs to the simulation (DESIGN §9), and
    drawing from it would shift every later draw of the workflow.
    """

    __slots__ = ("_buffer", "_counter", "_key")

    def __init__(self, key: bytes) -> None:
        self._key = key
        self._counter = 0
        self._buffer = b""

    def u64(self) -> int:
        if len(self._buffer) < 8:
            block = hashlib.sha256(self._key + self._counter.to_bytes(8, "big")).digest()
            self._counter += 1
            self._buffer += block
        value: int = struct.unpack(">Q", self._buffer[:8])[0]
        self._buffer = self._buffer[8:]
        return value

    def below(self, n: int) -> int:
        """Uniform in [0, n); n > 0."""
        return self.u64() % n  # the bias is below 2**-40 for the ranges used here

    def between(self, lo: int, hi: int) -> int:
        return lo + self.below(hi - lo + 1)

    def unit(self) -> float:
        """Uniform in the open interval (0, 1)."""
        return ((self.u64() >> 11) + 0.5) / 2.0**53

    def choice(self, items: Sequence[Any]) -> Any:
        return items[self.below(len(items))]


_WORDS = (
    "amber", "anchor", "aspen", "atlas", "beacon", "birch", "breeze", "brook", "canyon",
    "cedar", "cinder", "cobalt", "comet", "coral", "crest", "delta", "drift", "ember", "fable",
    "fern", "fjord", "flint", "garnet", "glade", "granite", "harbor", "hazel", "heron", "indigo",
    "iris", "jade", "juniper", "kestrel", "lagoon", "lantern", "lark", "linden", "lumen",
    "maple", "meadow", "meridian", "mesa", "nectar", "nimbus", "oak", "opal", "orbit", "pebble",
    "pine", "prairie", "quartz", "quill", "raven", "reef", "ridge", "river", "saffron", "sage",
    "signal", "summit", "tide", "timber", "violet", "willow",
)  # fmt: skip

_DEFAULT_SPAN = 1000
_MAX_ANSWER = 1 << 20
_MAX_DEPTH = 32
# Below this nesting, optional properties are left out, so recursive schemas terminate.
_OPTIONAL_DEPTH = 6


# Keywords whose constraint the generator does not build into its answer: a schema with one
# needs `examples` (or RecordedAI); an answer that ignored it would not validate.
_OPAQUE = ("dependentSchemas", "propertyNames", "maxContains")
_TYPES = ("string", "integer", "boolean", "object", "array", "null", "number")


class _Unsatisfiable(AIError):
    pass


def _type_of(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "integer" if value.is_integer() else "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _is_number(value: Any) -> TypeGuard[float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _merge(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """Both schemas at once (allOf), for the keywords the generator understands."""
    merged = dict(base)
    for key, value in extra.items():
        if key not in merged:
            merged[key] = value
        elif key == "properties":
            props = dict(merged[key])
            for name, sub in value.items():
                props[name] = {"allOf": [props[name], sub]} if name in props else sub
            merged[key] = props
        elif key == "required":
            merged[key] = list(dict.fromkeys([*merged[key], *value]))
        elif key in ("minimum", "exclusiveMinimum", "minLength", "minItems", "minProperties"):
            merged[key] = max(merged[key], value)
        elif key in ("maximum", "exclusiveMaximum", "maxLength", "maxItems", "maxProperties"):
            merged[key] = min(merged[key], value)
        elif key == "type":
            mine = merged[key] if isinstance(merged[key], list) else [merged[key]]
            theirs = value if isinstance(value, list) else [value]
            common = [t for t in mine if t in theirs or (t == "integer" and "number" in theirs)]
            if not common and "integer" in theirs and "number" in mine:
                common = ["integer"]
            merged[key] = common or mine
        elif key == "enum":
            merged[key] = [v for v in merged[key] if v in value]
        else:
            merged[key] = value
    return merged


class _Generator:
    __slots__ = ("_root", "_spent", "_stream")

    def __init__(self, stream: _Stream, root: Mapping[str, Any]) -> None:
        self._stream = stream
        self._root = root
        self._spent = 0  # characters, items and properties made so far

    def _spend(self, amount: int, where: str, what: str) -> None:
        """Bound the answer: a model's answer is bounded (max_tokens), and a schema asking for
        more (`minLength: 100000000`, arrays of arrays) hung here building it."""
        self._spent += amount
        if self._spent > _MAX_ANSWER:
            raise _Unsatisfiable(
                f"{where}: the schema asks for an answer over {_MAX_ANSWER:,} characters, items "
                f"and keys ({what}); a model's answer is bounded: lower the minimum"
            )

    def value(self, schema: Any, depth: int = 0, where: str = "$") -> Any:
        if depth > _MAX_DEPTH:
            raise _Unsatisfiable(f"the schema at {where} nests deeper than {_MAX_DEPTH} levels")
        if schema is True or schema == {}:
            return self.text({}, where)
        if schema is False:
            raise _Unsatisfiable(f"the schema at {where} is `false`: no value satisfies it")
        if not isinstance(schema, Mapping):
            raise _Unsatisfiable(f"the schema at {where} is not an object: {schema!r}")
        schema = self._flatten(schema, where)
        opaque = next((k for k in _OPAQUE if k in schema), None)
        if opaque is not None or "not" in schema:
            return self._constrained(schema, opaque, depth, where)
        if "const" in schema:
            return copy.deepcopy(schema["const"])
        if "enum" in schema:
            options = schema["enum"]
            if not options:
                raise _Unsatisfiable(f"the enum at {where} is empty")
            return copy.deepcopy(self._stream.choice(options))
        kind = self._type(schema)
        if kind == "object":
            return self.object(schema, depth, where)
        if kind == "array":
            return self.array(schema, depth, where)
        if kind == "string":
            return self.text(schema, where)
        if kind == "integer":
            return self.integer(schema, where)
        if kind == "number":
            return self.number(schema, where)
        if kind == "boolean":
            return self._stream.below(2) == 1
        if kind == "null":
            return None
        raise _Unsatisfiable(f"unknown type {kind!r} at {where}")

    def _constrained(
        self, schema: dict[str, Any], opaque: str | None, depth: int, where: str
    ) -> Any:
        """A value for a schema with a keyword the generator cannot meet by construction: one
        of its `examples`, or for a `not` of types, consts or enums a value it excludes."""
        examples = schema.get("examples")
        if isinstance(examples, list) and examples:
            return copy.deepcopy(self._stream.choice(examples))
        excluded = schema.pop("not") if opaque is None else None
        if isinstance(excluded, Mapping) and set(excluded) <= {"type", "const", "enum"}:
            banned = excluded.get("type", [])
            banned = {banned} if isinstance(banned, str) else set(banned)
            if "number" in banned:
                banned.add("integer")
            if "type" not in schema and banned:
                kinds = [k for k in _TYPES if k not in banned]
                if not kinds:
                    raise _Unsatisfiable(f"the `not` at {where} excludes every type")
                schema["type"] = kinds[0]
            values = [excluded["const"]] if "const" in excluded else []
            values += excluded.get("enum") or []
            for _ in range(50):
                value = self.value(schema, depth, where)
                if not (banned and _type_of(value) in banned) and value not in values:
                    return value
            raise _Unsatisfiable(f"no value at {where} escapes its `not`")
        keyword = opaque if opaque is not None else "not"
        raise _Unsatisfiable(
            f"{where} uses `{keyword}`, which DeterministicAI cannot satisfy by construction; "
            "give the schema an `examples` entry, or use RecordedAI"
        )

    def _flatten(self, schema: Mapping[str, Any], where: str) -> dict[str, Any]:
        """Resolves $ref, allOf and the first branch of anyOf/oneOf into one schema."""
        flat = dict(schema)
        for _ in range(_MAX_DEPTH):
            if "$ref" in flat:
                target = self._resolve(flat.pop("$ref"), where)
                flat = _merge(target, flat)
            elif "allOf" in flat:
                for part in flat.pop("allOf"):
                    if part is False:
                        raise _Unsatisfiable(f"an allOf branch at {where} is `false`")
                    if isinstance(part, Mapping):
                        flat = _merge(flat, self._flatten(part, where))
            elif "if" in flat:
                # A value that meets `if` and `then` is valid whatever `else` says.
                condition, then = flat.pop("if"), flat.pop("then", True)
                flat.pop("else", None)
                for part in (condition, then):
                    if part is False:
                        raise _Unsatisfiable(f"the if/then at {where} is `false`")
                    if isinstance(part, Mapping):
                        flat = _merge(flat, self._flatten(part, where))
            elif "anyOf" in flat or "oneOf" in flat:
                # The first branch: for a pydantic Optional[X] that is X rather than null.
                key = "anyOf" if "anyOf" in flat else "oneOf"
                branches = flat.pop(key)
                if not branches:
                    raise _Unsatisfiable(f"the {key} at {where} has no branches")
                first = branches[0]
                flat = _merge(flat, first if isinstance(first, Mapping) else {})
            else:
                return flat
        raise _Unsatisfiable(f"the schema at {where} refers to itself without end")

    def _resolve(self, ref: Any, where: str) -> dict[str, Any]:
        if not isinstance(ref, str) or not ref.startswith("#"):
            raise _Unsatisfiable(
                f"only local $refs ('#/...') are supported, got {ref!r} at {where}"
            )
        node: Any = self._root
        for part in ref[1:].split("/")[1:] if ref != "#" else []:
            part = part.replace("~1", "/").replace("~0", "~")
            if isinstance(node, Mapping) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                raise _Unsatisfiable(f"$ref {ref!r} at {where} points nowhere")
        if not isinstance(node, Mapping):
            raise _Unsatisfiable(f"$ref {ref!r} at {where} is not a schema object")
        return dict(node)

    def _type(self, schema: Mapping[str, Any]) -> str:
        kind = schema.get("type")
        if isinstance(kind, list):
            # A nullable field gets a value: more useful to the handler than null.
            kinds = [k for k in kind if k != "null"] or ["null"]
            return str(kinds[0])
        if isinstance(kind, str):
            return kind
        if any(k in schema for k in ("properties", "required", "additionalProperties")):
            return "object"
        if any(k in schema for k in ("items", "prefixItems", "minItems", "maxItems")):
            return "array"
        if any(k in schema for k in ("minimum", "maximum", "exclusiveMinimum", "multipleOf")):
            return "number"
        return "string"

    # -- containers --------------------------------------------------------------------
    def object(self, schema: Mapping[str, Any], depth: int, where: str) -> dict[str, Any]:
        props: Mapping[str, Any] = schema.get("properties") or {}
        required = list(schema.get("required") or ())
        extra = schema.get("additionalProperties", schema.get("unevaluatedProperties", True))
        patterns: Mapping[str, Any] = schema.get("patternProperties") or {}
        names = list(props) if depth < _OPTIONAL_DEPTH else [n for n in props if n in required]
        names += [n for n in required if n not in names]
        needs = schema.get("dependentRequired") or schema.get("dependencies") or {}
        for name in names:  # grows while it is read: the dependencies' own dependencies too
            wanted = needs.get(name) if isinstance(needs, Mapping) else None
            if isinstance(wanted, list):
                required += [n for n in wanted if n not in required]
                names += [n for n in wanted if n not in names]
        max_props = schema.get("maxProperties")
        if max_props is not None and len(names) > max_props:
            optional = [n for n in names if n not in required]
            keep = set(required) | set(optional[: max(0, max_props - len(required))])
            names = [n for n in names if n in keep]
        self._spend(max(len(names), schema.get("minProperties", 0)), where, "its properties")
        out: dict[str, Any] = {}
        for name in names:
            subs = [sub for pattern, sub in patterns.items() if re.search(pattern, name)]
            if name in props:
                subs.append(props[name])
            elif not subs:
                subs.append(extra if isinstance(extra, Mapping) else {})
            sub = subs[0] if len(subs) == 1 else {"allOf": subs}
            out[name] = self.value(sub, depth + 1, f"{where}.{name}")
        min_props = schema.get("minProperties", 0)
        index = 0
        while len(out) < min_props:
            if extra is False:
                raise _Unsatisfiable(f"{where} needs {min_props} properties but allows fewer")
            index += 1
            name = f"extra{index}"
            if name not in out:
                sub = extra if isinstance(extra, Mapping) else {}
                out[name] = self.value(sub, depth + 1, f"{where}.{name}")
        return out

    def array(self, schema: Mapping[str, Any], depth: int, where: str) -> list[Any]:
        lo = int(schema.get("minItems", 0))
        hi = schema.get("maxItems")
        prefix = schema.get("prefixItems")
        items = schema.get("items", schema.get("unevaluatedItems", {}))
        contains = schema.get("contains")
        # The first items are drawn from `contains` too: as many as it asks for.
        need = 0 if contains is None else int(schema.get("minContains", 1))
        if need and contains is False:
            raise _Unsatisfiable(f"{where}: `contains` is `false`: no item satisfies it")
        lo = max(lo, need)
        if isinstance(items, list):  # draft 4-7 tuple form
            prefix, items = items, schema.get("additionalItems", {})
        prefix = list(prefix or [])
        if hi is None:
            hi = max(lo, len(prefix), 3 if depth < _OPTIONAL_DEPTH else lo)
        hi = int(hi)
        if lo > hi:
            raise _Unsatisfiable(f"{where}: minItems {lo} is above maxItems {hi}")
        if items is False:
            hi = min(hi, len(prefix))
        floor = lo if depth >= _OPTIONAL_DEPTH else max(lo, min(1, hi))
        count = self._stream.between(floor, hi)
        self._spend(count, where, f"{count} items")
        unique = bool(schema.get("uniqueItems"))
        out: list[Any] = []
        seen: set[str] = set()
        attempts = 0
        while len(out) < count:
            index = len(out)
            sub = prefix[index] if index < len(prefix) else items
            if index < need:
                sub = {"allOf": [sub, contains]}
            value = self.value(sub, depth + 1, f"{where}[{index}]")
            if unique:
                key = _canonical(value)
                if key in seen:
                    attempts += 1
                    if attempts > 50:
                        if len(out) >= lo:
                            break
                        raise _Unsatisfiable(f"{where}: cannot find {lo} unique items")
                    continue
                seen.add(key)
            out.append(value)
        return out

    # -- scalars -----------------------------------------------------------------------
    def text(self, schema: Mapping[str, Any], where: str) -> str:
        stream = self._stream
        fmt = schema.get("format")
        if "pattern" in schema:
            examples = schema.get("examples")
            samples = (
                [e for e in examples if isinstance(e, str)] if isinstance(examples, list) else []
            )
            if isinstance(schema.get("default"), str):
                samples.append(schema["default"])
            if samples:
                return str(stream.choice(samples))
            raise _Unsatisfiable(
                f"{where} must match the pattern {schema['pattern']!r}, which DeterministicAI "
                "cannot generate; give the schema an `examples` entry, or use RecordedAI"
            )
        if isinstance(fmt, str) and (formatted := self._formatted(fmt)) is not None:
            return formatted
        lo = int(schema.get("minLength", 0))
        hi = int(schema.get("maxLength", max(lo, 40)))
        if lo > hi:
            raise _Unsatisfiable(f"{where}: minLength {lo} is above maxLength {hi}")
        self._spend(max(lo, 1), where, f"minLength {lo}")
        words = [stream.choice(_WORDS) for _ in range(stream.between(1, 4))]
        length = len(words) - 1 + sum(map(len, words))
        while length < lo:
            word = stream.choice(_WORDS)
            words.append(word)
            length += 1 + len(word)
        text = " ".join(words)
        text = text[:hi] if len(text) > hi else text
        self._spend(len(text) - max(lo, 1), where, "its text")
        return text

    def _formatted(self, fmt: str) -> str | None:
        stream = self._stream
        word = stream.choice(_WORDS)
        if fmt == "date-time":
            moment = _dt.datetime(2026, 1, 1, tzinfo=_dt.UTC) + _dt.timedelta(
                seconds=stream.below(365 * 86400)
            )
            return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
        if fmt == "date":
            return (_dt.date(2026, 1, 1) + _dt.timedelta(days=stream.below(365))).isoformat()
        if fmt == "time":
            s = stream.below(86400)
            return f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}Z"
        if fmt in ("email", "idn-email"):
            return f"{word}.{stream.below(1000)}@example.com"
        if fmt in ("uri", "url", "iri", "uri-reference", "iri-reference"):
            return f"https://example.com/{word}/{stream.below(1000)}"
        if fmt in ("hostname", "idn-hostname"):
            return f"{word}.example.com"
        if fmt == "ipv4":
            return f"192.0.2.{stream.below(256)}"
        if fmt == "ipv6":
            return f"2001:db8::{stream.below(65536):x}"
        if fmt == "uuid":
            raw = bytearray(stream.u64().to_bytes(8, "big") + stream.u64().to_bytes(8, "big"))
            raw[6] = (raw[6] & 0x0F) | 0x40
            raw[8] = (raw[8] & 0x3F) | 0x80
            h = raw.hex()
            return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
        return None

    def _bounds(self, schema: Mapping[str, Any]) -> tuple[float | None, bool, float | None, bool]:
        lo, lo_open = schema.get("minimum"), False
        hi, hi_open = schema.get("maximum"), False
        ex_lo, ex_hi = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
        if ex_lo is True:  # draft 4: a flag on minimum
            lo_open = True
        elif _is_number(ex_lo) and (lo is None or ex_lo >= lo):
            lo, lo_open = ex_lo, True
        if ex_hi is True:
            hi_open = True
        elif _is_number(ex_hi) and (hi is None or ex_hi <= hi):
            hi, hi_open = ex_hi, True
        return lo, lo_open, hi, hi_open

    def integer(self, schema: Mapping[str, Any], where: str) -> int:
        lo_f, lo_open, hi_f, hi_open = self._bounds(schema)
        lo = None if lo_f is None else (math.floor(lo_f) + 1 if lo_open else math.ceil(lo_f))
        hi = None if hi_f is None else (math.ceil(hi_f) - 1 if hi_open else math.floor(hi_f))
        if lo is None and hi is None:
            lo, hi = 0, _DEFAULT_SPAN
        elif lo is None:
            assert hi is not None
            lo = hi - _DEFAULT_SPAN
        elif hi is None:
            hi = lo + _DEFAULT_SPAN
        step = schema.get("multipleOf")
        if _is_number(step) and step > 0:
            if float(step).is_integer():
                k_lo, k_hi = math.ceil(lo / step), math.floor(hi / step)
                if k_lo > k_hi:
                    raise _Unsatisfiable(f"{where}: no multiple of {step} in [{lo}, {hi}]")
                return int(self._stream.between(k_lo, k_hi) * step)
            for candidate in range(lo, min(hi, lo + 10_000) + 1):
                if (candidate / step).is_integer():
                    return candidate
            raise _Unsatisfiable(f"{where}: no integer multiple of {step} in [{lo}, {hi}]")
        if lo > hi:
            raise _Unsatisfiable(f"{where}: no integer between the bounds ({lo} > {hi})")
        return self._stream.between(lo, hi)

    def number(self, schema: Mapping[str, Any], where: str) -> float | int:
        lo, lo_open, hi, hi_open = self._bounds(schema)
        step = schema.get("multipleOf")
        if _is_number(step) and step > 0:
            return self._multiple(float(step), lo, lo_open, hi, hi_open, where)
        if lo is None and hi is None:
            lo, hi = 0.0, float(_DEFAULT_SPAN)
        elif lo is None:
            assert hi is not None
            lo = hi - _DEFAULT_SPAN
        elif hi is None:
            hi = lo + _DEFAULT_SPAN
        if lo > hi or (lo == hi and (lo_open or hi_open)):
            raise _Unsatisfiable(f"{where}: no number between the bounds ({lo}, {hi})")

        def inside(v: float) -> bool:
            return (v > lo if lo_open else v >= lo) and (v < hi if hi_open else v <= hi)

        if lo == hi:
            return lo
        value = lo + self._stream.unit() * (hi - lo)
        rounded = round(value, 2)
        if inside(rounded):
            return rounded
        if inside(value):
            return value
        middle = lo / 2 + hi / 2
        if inside(middle):
            return middle
        raise _Unsatisfiable(f"{where}: the interval ({lo}, {hi}) is too narrow for a float")

    def _multiple(
        self,
        step: float,
        lo: float | None,
        lo_open: bool,
        hi: float | None,
        hi_open: bool,
        where: str,
    ) -> float | int:
        k_lo = 0 if lo is None else math.ceil(lo / step)
        k_hi = k_lo + _DEFAULT_SPAN if hi is None else math.floor(hi / step)
        if lo is None and hi is not None:
            k_lo = k_hi - _DEFAULT_SPAN
        start = self._stream.between(k_lo, k_hi) if k_lo <= k_hi else k_lo
        # k * step in floats is not always a multiple that validators accept (0.1 * 3), so
        # walk to the first k whose product divides back evenly.
        for k in itertools.islice(
            itertools.chain(range(start, k_hi + 1), range(k_lo, start)), 10_000
        ):
            value: float | int = k * step
            if float(value).is_integer():
                value = int(value)
            inside = (lo is None or (value > lo if lo_open else value >= lo)) and (
                hi is None or (value < hi if hi_open else value <= hi)
            )
            if inside and (value / step).is_integer():
                return value
        raise _Unsatisfiable(f"{where}: no multiple of {step} found between the bounds")
