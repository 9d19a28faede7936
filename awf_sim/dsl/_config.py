"""Step configuration: validation at definition time, merging with an engine profile's defaults.

A user config is `{"retries": {"limit", "delay", "backoff"}, "timeout"}` with any key left out;
validation normalises durations to milliseconds so the engine never parses them again.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypedDict

from awf_sim.dsl._duration import parse_duration
from awf_sim.dsl._errors import DefinitionError

__all__ = ["BACKOFFS", "PROFILES", "ResolvedConfig", "Retries", "merge_config", "validate_config"]

BACKOFFS = ("constant", "linear", "exponential")


class Retries(TypedDict):
    limit: int
    delay: int
    backoff: str


class ResolvedConfig(TypedDict):
    retries: Retries
    timeout: int


# Cloudflare documents a 10 s default retry delay; its local engine (Miniflare) uses 1 s.
# The `local` profile mirrors Miniflare so conformance traces compare exactly.
PROFILES: dict[str, ResolvedConfig] = {
    "production": {
        "retries": {"limit": 5, "delay": 10_000, "backoff": "exponential"},
        "timeout": 600_000,
    },
    "local": {
        "retries": {"limit": 5, "delay": 1_000, "backoff": "exponential"},
        "timeout": 600_000,
    },
}


def validate_config(config: Mapping[str, Any] | None, where: str) -> dict[str, Any]:
    """Check a user step config and return it normalised (durations in ms, nothing merged)."""
    if config is None:
        return {}
    if not isinstance(config, Mapping):
        raise DefinitionError(f"step config for {where} must be a dict, got {config!r}")
    unknown = set(config) - {"retries", "timeout"}
    if "sensitive" in unknown:
        # Cloudflare's engine redacts a step's output from its logs with `sensitive: "output"`
        # since Miniflare 4.20260721.0 (Node >= 22); the engine awf checks flows and bundles
        # on, the pinned 4.20260426.0, refuses the key as an invalid config.
        raise DefinitionError(
            f"step config for {where}: 'sensitive' (Cloudflare's redaction of a step's output "
            "from its logs) is not supported yet: the Miniflare engine awf verifies flows on "
            "predates it and refuses the config; leave it out"
        )
    if unknown:
        raise DefinitionError(
            f"step config for {where} has unknown keys {sorted(unknown)}: "
            "use 'retries' and 'timeout'"
        )
    out: dict[str, Any] = {}
    if config.get("retries") is not None:
        retries = config["retries"]
        if not isinstance(retries, Mapping):
            raise DefinitionError(
                f"retries for {where} must be a dict like "
                f"{{'limit': 3, 'delay': '1 second', 'backoff': 'exponential'}}, got {retries!r}"
            )
        bad = set(retries) - {"limit", "delay", "backoff"}
        if bad:
            raise DefinitionError(
                f"retries for {where} has unknown keys {sorted(bad)}: use limit, delay, backoff"
            )
        missing = [k for k in ("limit", "delay") if k not in retries]
        if missing:
            # Cloudflare's schema requires both whenever `retries` is given (SEMANTICS §1.1).
            raise DefinitionError(
                f"retries for {where} needs both 'limit' and 'delay' (as on Cloudflare), "
                f"missing {' and '.join(repr(k) for k in missing)}: e.g. "
                "{'limit': 3, 'delay': '1 second'}"
            )
        norm: dict[str, Any] = {}
        if "limit" in retries:
            limit = retries["limit"]
            if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
                raise DefinitionError(
                    f"retries.limit for {where} must be a whole number >= 0, got {limit!r}"
                )
            norm["limit"] = limit
        if "delay" in retries:
            norm["delay"] = _duration(retries["delay"], f"retries.delay for {where}")
        if "backoff" in retries:
            if retries["backoff"] not in BACKOFFS:
                raise DefinitionError(
                    f"retries.backoff for {where} must be one of {', '.join(BACKOFFS)}, "
                    f"got {retries['backoff']!r}"
                )
            norm["backoff"] = retries["backoff"]
        out["retries"] = norm
    if config.get("timeout") is not None:
        timeout = _duration(config["timeout"], f"timeout for {where}")
        if timeout == 0:
            raise DefinitionError(f"timeout for {where} must not be 0 (as on Cloudflare)")
        out["timeout"] = timeout
    return out


def merge_config(defaults: ResolvedConfig, user: Mapping[str, Any]) -> ResolvedConfig:
    """Cloudflare's merge: user values over defaults, `retries` merged key by key."""
    retries: Retries = {**defaults["retries"], **user.get("retries", {})}
    return {"retries": retries, "timeout": user.get("timeout", defaults["timeout"])}


def _duration(value: object, what: str) -> int:
    try:
        return parse_duration(value)  # type: ignore[arg-type]
    except DefinitionError as exc:
        raise DefinitionError(f"{what}: {exc}") from None
