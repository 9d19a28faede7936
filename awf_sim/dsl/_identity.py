"""Step identity: canonical JSON, short hashes, step ids and Cloudflare step names.

Every step the engine runs goes through this module once or twice, so the success path is
kept lean: prebuilt encoders, no per-call encoder objects, and the (slow, friendly) search for
the offending field only happens once encoding has already failed.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import json.encoder
import marshal
import math
from collections.abc import Callable, Sequence
from typing import Any

from awf_sim.dsl._errors import SerializationError

try:
    import _pickle
except ImportError:  # pragma: no cover - a Python without the C pickler
    import pickle as _pickle  # type: ignore[no-redef]

__all__ = [
    "MAX_PAYLOAD_BYTES",
    "MAX_SAFE_INTEGER",
    "MAX_STEP_NAME",
    "canonical",
    "canonical_in",
    "canonical_or_none",
    "dump_result",
    "hash8",
    "json_copy",
    "loads",
    "pickle_loads",
    "scan_once",
    "step_id",
    "step_id_from_hashes",
    "step_id_json",
    "step_name",
    "utf8_size",
    "utf16_len",
]

MAX_STEP_NAME = 256
MAX_PAYLOAD_BYTES = 1 << 20
# JavaScript's Number.MAX_SAFE_INTEGER: past it an engine number is no longer exact.
MAX_SAFE_INTEGER = 2**53 - 1


def utf16_len(text: str) -> int:
    """Length as JavaScript counts it (UTF-16 code units): Cloudflare's limits are in these,
    so an emoji counts 2. A lone surrogate counts 1."""
    if text.isascii():
        return len(text)
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)


def utf8_size(text: str) -> int:
    """Bytes of `text` in UTF-8. JSON can carry a lone surrogate that Python's UTF-8 encoder
    refuses; counted as the 3 bytes a JavaScript TextEncoder writes for it, never an error."""
    return len(text.encode("utf-8", "surrogatepass"))


_ALLOWED = "return dicts, lists, str, int, float, bool or None"
_LEAVES = frozenset({str, int, float, bool, type(None)})
_STR = frozenset({str})
_encode_str: Callable[[str], str] = json.encoder.encode_basestring


def _to_json_value(value: object) -> object:
    """The encoders' `default` hook: pydantic models and dataclasses become plain values."""
    # Looked up on the type, not the instance: a Mock (or any __getattr__ object) would
    # otherwise "have" model_dump and recurse forever.
    kind = type(value)
    if hasattr(kind, "model_dump"):
        return value.model_dump(mode="json")  # type: ignore[attr-defined]
    if hasattr(kind, "__dataclass_fields__"):
        # A shallow dict instead of dataclasses.asdict: asdict deep-copies every field, while
        # the encoder recurses into the fields (and back into this hook) by itself.
        return {field.name: getattr(value, field.name) for field in dataclasses.fields(value)}  # type: ignore[arg-type]
    raise TypeError(kind.__name__)


def _make_encoder(*, sort_keys: bool) -> Callable[[object, int], Any]:
    """The encoder as JSON text in chunks: `"".join(encoder(value, 0))` is the text."""
    c_make_encoder: Any = getattr(json.encoder, "c_make_encoder", None)
    if c_make_encoder is None:  # pragma: no cover - only without CPython's _json accelerator
        iterencode = json.JSONEncoder(
            sort_keys=sort_keys,
            separators=(",", ":"),
            ensure_ascii=False,
            allow_nan=False,
            check_circular=False,
            default=_to_json_value,
        ).iterencode
        return lambda value, _level: iterencode(value)
    # The C encoder JSONEncoder.encode would build on every call, built once, and called
    # where the text is needed (no Python function around it: every step encodes its args
    # and its result). With no markers dict it skips the circular-reference bookkeeping; a
    # cycle then surfaces as RecursionError, which is reported like any other failure.
    return c_make_encoder(  # type: ignore[no-any-return]
        None, _to_json_value, _encode_str, None, ":", ",", sort_keys, False, False
    )


# Canonical JSON (sorted keys) and result JSON (the handler's key order), in chunks.
chunks_sorted = _make_encoder(sort_keys=True)
chunks_ordered = _make_encoder(sort_keys=False)
ENCODE_ERRORS = (TypeError, ValueError, RecursionError)


# --- the error path -------------------------------------------------------------------------


def _describe(value: object) -> str:
    if isinstance(value, float):
        return "NaN" if math.isnan(value) else "Infinity" if value > 0 else "-Infinity"
    if isinstance(value, bytes):
        return "bytes"
    kind = type(value)
    if kind.__module__.startswith("freezegun") and kind.__mro__[1] is not object:
        # Inside a simulation datetime.now() returns freezegun's subclass; the user wrote
        # datetime, and the message should say so.
        kind = kind.__mro__[1]
    name = kind.__qualname__
    article = "an" if name[:1].lower() in "aeiou" else "a"
    return f"{article} {name}"


def _not_json(path: str, value: object) -> str:
    return f"{path} is not JSON ({_describe(value)}); {_ALLOWED}"


def _key_path(path: str, key: str) -> str:
    return f"{path}.{key}" if key.isidentifier() else f"{path}[{key!r}]"


def _find_problem(value: object, path: str, open_ids: set[int]) -> str | None:
    """Describe the first part of `value` that is not JSON, or None if it all is."""
    if value is None or isinstance(value, str | int):
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else _not_json(path, value)
    if id(value) in open_ids:
        return f"{path} is not JSON (it contains itself); {_ALLOWED}"
    kind = type(value)
    open_ids.add(id(value))
    try:
        if isinstance(value, dict):
            for key, item in value.items():
                if not isinstance(key, str):
                    return (
                        f"{path} has a non-string key {key!r} ({_describe(key)}); "
                        "JSON object keys must be str"
                    )
                problem = _find_problem(item, _key_path(path, key), open_ids)
                if problem is not None:
                    return problem
            return None
        if isinstance(value, list | tuple):
            for index, item in enumerate(value):
                problem = _find_problem(item, f"{path}[{index}]", open_ids)
                if problem is not None:
                    return problem
            return None
        if hasattr(kind, "model_dump"):
            try:
                dumped = value.model_dump(mode="json")  # type: ignore[attr-defined]
            except Exception as exc:
                return (
                    f"{path} is not JSON ({_describe(value)} whose model_dump(mode='json') "
                    f"failed: {exc}); {_ALLOWED}"
                )
            return _find_problem(dumped, path, open_ids)
        if hasattr(kind, "__dataclass_fields__"):
            for field in dataclasses.fields(value):  # type: ignore[arg-type]
                problem = _find_problem(
                    getattr(value, field.name), f"{path}.{field.name}", open_ids
                )
                if problem is not None:
                    return problem
            return None
        return _not_json(path, value)
    finally:
        open_ids.discard(id(value))


def _error(value: object, root: str, cause: BaseException | None) -> SerializationError:
    try:
        problem = _find_problem(value, root, set())
    except RecursionError:
        problem = f"{root} is nested too deeply to be JSON"
    if problem is None:  # pragma: no cover - the walk mirrors the encoder; kept as a backstop
        problem = f"{root} is not JSON ({cause}); {_ALLOWED}"
    return SerializationError(problem)


# Keys that json itself turns into strings (int, float, bool, None) are left to it, as DESIGN's
# canonical form is json.dumps: context and args cross a step boundary as JSON anyway, so a
# handler sees string keys either way. Walking every value to refuse them cost 8% of a step.


def canonical(value: object, *, root: str = "value") -> str:
    """Canonical JSON of `value`: sorted keys, no spaces, UTF-8 text, no NaN.

    Pydantic models and dataclasses are dumped to JSON values first and tuples become lists.
    Anything else raises SerializationError naming the field path, starting at `root`
    (e.g. `context.items[2].price is not JSON (a set); ...`).
    """
    if type(value) is str:  # a common context (an id): the encoder's own string rule
        return _encode_str(value)
    try:
        key = _marshal_dumps(value, 2)  # type: ignore[arg-type]
    except ValueError:  # something marshal does not write exactly (a subclass, a model)
        key = b""
    else:  # canonical_or_none's memo (below), looked up here: one call less per context
        text = _CANON_MEMO.get(key)
        if text is not None:
            return text
    try:
        text = "".join(chunks_sorted(value, 0))
    except ENCODE_ERRORS as exc:
        raise _error(value, root, exc) from None
    if key and len(key) <= _HASH8_MEMO_TEXT:
        if len(_CANON_MEMO) >= _CANON_MEMO_SIZE:
            _CANON_MEMO.clear()
        _CANON_MEMO[key] = text
    return text


# Canonical texts of values seen lately, by the value's marshal form. A workflow passes the
# same context to step after step (`wf.Orders(order).validate()`, `.price()`, ...), and marshal
# writes a value four times faster than the JSON encoder can (no sorting, no float repr).
# Sound because marshal is exact: it refuses subclasses, keeps dict order, int/bool/float
# and list/tuple apart and floats bit for bit, so equal bytes are equal values, and equal
# values have one canonical text. Version 2: no back-references, which depend on how many
# references an object has, not on its value.
_CANON_MEMO: dict[bytes, str] = {}
_CANON_MEMO_SIZE = 1024


def canonical_or_none(value: object) -> str | None:
    """`canonical(value)`, or None where that raises or `value` is not plain JSON data (a
    model, a dataclass: the caller encodes those, or names the error, with `canonical`)."""
    if type(value) is str:  # a common context (an id): the encoder's own string rule
        return _encode_str(value)
    try:
        key = _marshal_dumps(value, 2)  # type: ignore[arg-type]
    except ValueError:  # something marshal does not write exactly (a subclass, a model)
        return None
    text = _CANON_MEMO.get(key)
    if text is not None:
        return text
    try:
        text = "".join(chunks_sorted(value, 0))
    except ENCODE_ERRORS:
        return None
    if len(key) <= _HASH8_MEMO_TEXT:
        if len(_CANON_MEMO) >= _CANON_MEMO_SIZE:
            _CANON_MEMO.clear()
        _CANON_MEMO[key] = text
    return text


def canonical_in(value: object, where: Callable[[], str]) -> str:
    """`canonical(value, root=where())`, with the root only built when encoding fails: the
    DSL encodes every step's args, and naming them costs more than encoding `{}`."""
    try:
        return "".join(chunks_sorted(value, 0))
    except ENCODE_ERRORS as exc:
        raise _error(value, where(), exc) from None


def dump_result(value: object, *, root: str) -> str:
    """JSON of a step result, like `canonical` but keeping the handler's key order.

    Non-string keys are turned into strings here rather than refused: that is what crossing
    Cloudflare's JavaScript boundary does to a result, and results are on the hot path.
    """
    try:
        return "".join(chunks_ordered(value, 0))
    except ENCODE_ERRORS as exc:
        raise _error(value, root, exc) from None


def result_error(value: object, root: str, cause: BaseException) -> SerializationError:
    """The error `dump_result(value, root=root)` raises, for a caller that encoded with
    `chunks_ordered` itself and caught one of ENCODE_ERRORS."""
    return _error(value, root, cause)


def _js_number(text: str) -> float | int:
    """A JSON number with a fraction or exponent, as it comes back from Cloudflare's engine:
    JavaScript numbers carry no int/float distinction, and Pyodide hands a whole number in the
    safe-integer range to Python as an `int` (`59.0` -> `59`)."""
    value = float(text)
    if value.is_integer() and -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
        return int(value)
    return value


# The scanner calls parse_float for every number with a fraction or an exponent; behind an
# lru_cache, a number text seen before is answered in C, without a Python call (the results
# are ints and floats, which nothing can change).
_parse_float = functools.lru_cache(maxsize=1024)(_js_number)
_scan_once = json.decoder.JSONDecoder(parse_float=_parse_float).scan_once  # type: ignore[attr-defined]
# `loads` without its checks, for a text the encoder has just written: (value, end).
scan_once: Callable[[str, int], tuple[Any, int]] = _scan_once


def loads(text: str) -> Any:
    """Parse JSON that awf itself wrote (compact, one value): the C scanner without
    `json.loads`' Python-level wrapper, which costs more than the parse for small values.

    Values that cross the engine (params, step results, event payloads, output) go through
    here, so whole-number floats come back as ints, as they do on Cloudflare."""
    try:
        value, end = _scan_once(text, 0)
    except StopIteration:
        return json.loads(text, parse_float=_js_number)  # let json produce its usual error
    if end != len(text):
        return json.loads(text, parse_float=_js_number)
    return value


# Recent hashes of short texts: a workflow passes the same context (and the same `{}` args) to
# step after step, so most steps need only the one hash of their identity itself.
_HASH8_MEMO: dict[str, str] = {}
_HASH8_MEMO_TEXT = 4096  # longer texts are hashed each time (and not kept alive here)
_HASH8_MEMO_SIZE = 1024


# Texts seen lately -> their value pickled. A handler gets a fresh copy of its context and
# args every step; the same context often comes step after step, and unpickling rebuilds a
# value faster than parsing its JSON again (with the whole-float rule applied once, when it
# was parsed). Pickle, not marshal: marshal.loads is an audited event, and the simulator's
# network guard keeps an audit hook, a Python call on every event. The values are JSON data
# (dict, list, str, int, float, bool, None): no class is pickled.
_COPY_MEMO: dict[str, bytes] = {}
_COPY_MEMO_SIZE = 1024
_marshal_dumps = marshal.dumps
pickle_loads = _pickle.loads
_pickle_dumps = _pickle.dumps


def json_copy(text: str) -> Any:
    """`loads(text)`: a fresh value, for JSON that awf wrote; repeated texts cost less."""
    packed = _COPY_MEMO.get(text)
    if packed is not None:
        return pickle_loads(packed)
    value = loads(text)
    if len(text) <= _HASH8_MEMO_TEXT:
        # Kept from the first sight: a context usually comes again at the next step, and
        # pickling it once costs less than parsing it a second time.
        if len(_COPY_MEMO) >= _COPY_MEMO_SIZE:
            _COPY_MEMO.clear()
        _COPY_MEMO[text] = _pickle_dumps(value, 5)
    return value


def hash8(canonical_json: str) -> str:
    """First 8 hex digits of the SHA-256 of `canonical_json`."""
    digest = _HASH8_MEMO.get(canonical_json)
    if digest is not None:
        return digest
    # surrogatepass: ensure_ascii=False lets a lone surrogate through, and hashing it must not
    # crash the step that carries it.
    digest = hashlib.sha256(canonical_json.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    if len(canonical_json) <= _HASH8_MEMO_TEXT:
        if len(_HASH8_MEMO) >= _HASH8_MEMO_SIZE:
            _HASH8_MEMO.clear()
        _HASH8_MEMO[canonical_json] = digest
    return digest


# A step path's part of the identity text (`"path":[...]`), by path: a workflow calls the
# same few methods step after step.
_PATH_JSON: dict[tuple[str, ...], str] = {}
_PATH_JSON_SIZE = 1024


def step_id_from_hashes(path: Sequence[str], context_hash: str, args_hash: str) -> str:
    """`step_id` for an engine that already hashed the canonical context and args."""
    tail = _PATH_JSON.get(path) if type(path) is tuple else None
    if tail is None:
        if isinstance(path, str):
            raise TypeError(f"step path must be a sequence of names, not the string {path!r}")
        tail = f'"path":[{",".join(map(_encode_str, path))}]}}'
        if type(path) is tuple and all(type(part) is str for part in path):
            if len(_PATH_JSON) >= _PATH_JSON_SIZE:
                _PATH_JSON.clear()
            _PATH_JSON[path] = tail
    # Spelled out rather than encoded: this is exactly canonical({"path": ..., "contextHash":
    # ..., "argsHash": ...}) with its keys already in sorted order.
    text = f'{{"argsHash":{_encode_str(args_hash)},"contextHash":{_encode_str(context_hash)},{tail}'
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


_sha256 = hashlib.sha256


def step_id_json(path: tuple[str, ...], context_json: str, args_json: str) -> str:
    """`step_id` of a step whose context and args are canonical JSON already: the DSL's one
    call per step, with the short hashes of texts seen lately looked up here, not hashed."""
    context_hash = _HASH8_MEMO.get(context_json) or hash8(context_json)
    args_hash = _HASH8_MEMO.get(args_json) or hash8(args_json)
    tail = _PATH_JSON.get(path)
    if tail is None:
        return step_id_from_hashes(path, context_hash, args_hash)
    # As step_id_from_hashes: the hashes are hex digits, so quoting is all their encoding does.
    text = f'{{"argsHash":"{args_hash}","contextHash":"{context_hash}",{tail}'
    return _sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def step_id(path: Sequence[str], context: object, args: object) -> str:
    """16 hex digits identifying a step by its path, context and args."""
    return step_id_from_hashes(
        path,
        hash8(canonical(context, root="context")),
        hash8(canonical(args, root="args")),
    )


def step_name(path: Sequence[str], sid: str) -> str:
    """Cloudflare step name `"Inventory.check@<sid>"`, at most MAX_STEP_NAME characters.

    A long dotted path is cut at its end, so the name still starts with the domain and the
    step id, which carries the identity, stays whole.
    """
    dotted = ".".join(path)
    if len(dotted) + 1 + len(sid) <= MAX_STEP_NAME:
        return f"{dotted}@{sid}"
    return f"{dotted[: max(0, MAX_STEP_NAME - 1 - len(sid))]}@{sid}"
