"""Durations and step configs read exactly as Cloudflare's engine reads them.

awf's own reading (`_duration.parse_duration`) refuses what it cannot read with certainty.
Cloudflare's engine does not: it parses every duration with itty-time's `ms()`
(itty-time 2.0.2, as bundled in Miniflare's workflows binding worker):

    const n = {year: 315576e5, month: 2592e6, week: 6048e5, day: 864e5, hour: 36e5,
               minute: 6e4, second: 1e3, m: 1}
    ms = (e) => { if (!isNaN(+e)) return +e
                  let [, t, r] = e.match(/^([^ ]+) +(\\w\\w*?)s?$/) || [, e]
                  return +t * (n[r] || 1) }

so "1 Second" and "30 sec" are milliseconds (an unknown unit multiplies by 1), "30s" is NaN,
"1 constructor" is NaN (the lookup finds Object.prototype's properties), "0x10" is 16, "-5 seconds"
is negative, and "" is 0. DESIGN §9: awf's default refuses these with a message; conformance runs
and `Simulator(durations="cloudflare")` take this reading, so the simulator can reproduce what
production will do. This module is that reading, kept apart from awf's.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

__all__ = [
    "DURATION_READINGS",
    "cloudflare_ms",
    "cloudflare_step_config",
    "js_loose_equals_zero",
    "js_number",
    "js_number_text",
    "wait_ms",
]

DURATION_READINGS = ("awf", "cloudflare")

_UNIT_MS: dict[str, float] = {
    "year": 31_557_600_000,
    "month": 2_592_000_000,
    "week": 604_800_000,
    "day": 86_400_000,
    "hour": 3_600_000,
    "minute": 60_000,
    "second": 1_000,
    "m": 1,
}
# Properties every JavaScript object inherits: `n[r]` finds them, and `+t * function` is NaN.
_PROTO = frozenset(
    {
        "constructor",
        "__proto__",
        "hasOwnProperty",
        "isPrototypeOf",
        "propertyIsEnumerable",
        "toString",
        "valueOf",
        "toLocaleString",
        "__defineGetter__",
        "__defineSetter__",
        "__lookupGetter__",
        "__lookupSetter__",
    }
)
# /^([^ ]+) +(\w\w*?)s?$/ : JavaScript's \w is ASCII; `$` without the m flag is the very end,
# which fullmatch gives (Python's `$` would also match before a final newline).
_FORM = re.compile(r"([^ ]+) +(\w\w*?)s?", re.ASCII | re.DOTALL)
# JavaScript's StrWhiteSpaceChar: WhiteSpace and LineTerminator.
_JS_SPACE = (
    "\t\n\v\f\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
    "\u2009\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
)
_DECIMAL = re.compile(r"[+-]?(?:\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)", re.ASCII)
_RADIX = re.compile(r"0([xXoObB])([0-9a-fA-F]+)", re.ASCII)
_RADIX_BASE = {"x": 16, "o": 8, "b": 2}


def js_number(value: Any) -> float:
    """JavaScript's unary `+` on a JSON value (ToNumber)."""
    if value is None:
        return 0.0
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        text = value.strip(_JS_SPACE)
        if not text:
            return 0.0
        if text in ("Infinity", "+Infinity"):
            return math.inf
        if text == "-Infinity":
            return -math.inf
        if _DECIMAL.fullmatch(text):
            return float(text)
        radix = _RADIX.fullmatch(text)
        if radix:
            try:
                return float(int(radix.group(2), _RADIX_BASE[radix.group(1).lower()]))
            except ValueError:
                return math.nan
        return math.nan
    if isinstance(value, list):
        return js_number(value[0]) if len(value) == 1 else (0.0 if not value else math.nan)
    return math.nan


def cloudflare_ms(value: Any) -> float:
    """A duration as Cloudflare's `ms()` reads it: a float that may be NaN, negative or
    infinite. Numbers pass through unchanged."""
    n = js_number(value)
    if not math.isnan(n):
        return n
    if not isinstance(value, str):
        return math.nan
    match = _FORM.fullmatch(value)
    if match is None:
        return math.nan
    number, unit = match.groups()
    if unit in _PROTO:
        return math.nan
    return js_number(number) * _UNIT_MS.get(unit, 1)


def js_loose_equals_zero(value: Any) -> bool:
    """`value == 0` in JavaScript, for a JSON number or string."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return False
    return js_number(value) == 0


def js_number_text(n: float) -> str:
    """`${n}` in JavaScript: how the engine prints a duration in "timed out after <n>ms"."""
    if math.isnan(n):
        return "NaN"
    if math.isinf(n):
        return "Infinity" if n > 0 else "-Infinity"
    if n == int(n) and abs(n) < 1e21:
        return str(int(n))
    text = repr(n)
    if "e" in text:
        mantissa, exp = text.split("e")
        sign = "-" if exp.startswith("-") else "+"
        text = f"{mantissa}e{sign}{int(exp.lstrip('+-'))}"
    return text


def wait_ms(n: float) -> int:
    """How long a timer set to `n` ms waits, in whole virtual milliseconds: NaN and negative
    values fire at once, as with setTimeout; fractions round up (a timer never fires early)."""
    if math.isnan(n) or n <= 0:
        return 0
    if n >= 2**53:  # infinity too: a timer that never fires in any run anyone could wait for
        return 2**53
    return math.ceil(n)


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def cloudflare_step_config(config: Any) -> dict[str, Any] | None:
    """Cloudflare's `isValidStepConfig` (its zod schema, `.strict()`, plus the NaN and zero
    checks): None when the engine rejects `config`, else the config to merge, with every
    duration kept as the user wrote it and its reading beside it (`timeout_ms`, `delay_ms`)."""
    if not isinstance(config, Mapping) or set(config) - {"retries", "timeout"}:
        return None
    out: dict[str, Any] = {}
    if "retries" in config:
        retries = config["retries"]
        if not isinstance(retries, Mapping) or set(retries) - {"limit", "delay", "backoff"}:
            return None
        delay: Any = retries.get("delay")
        limit: Any = retries.get("limit")
        if not (isinstance(delay, str) or (_is_number(delay) and delay >= 0)):
            return None
        if not _is_number(limit) or limit < 0:
            return None
        if "backoff" in retries and retries["backoff"] not in ("constant", "linear", "exponential"):
            return None
        delay_ms = cloudflare_ms(delay)
        if math.isnan(delay_ms):
            return None
        out["retries"] = {k: retries[k] for k in ("limit", "backoff") if k in retries}
        out["retries"]["delay"] = delay_ms
    if "timeout" in config:
        timeout = config["timeout"]
        if not ((_is_number(timeout) and timeout >= 0) or isinstance(timeout, str)):
            return None
        if js_loose_equals_zero(timeout) or math.isnan(cloudflare_ms(timeout)):
            return None
        out["timeout"] = cloudflare_ms(timeout)
    return out
