"""The JSON Schema of `awf-sim chaos --json` (`CHAOS_JSON_SCHEMA`), versioned by
`CHAOS_JSON_VERSION`; the fields are described in awf_sim/chaos/README.md."""

from __future__ import annotations

from typing import Any

from awf_sim.chaos._faults import KINDS
from awf_sim.chaos._invariants import INVARIANTS

__all__ = ["CHAOS_JSON_SCHEMA", "CHAOS_JSON_VERSION"]

CHAOS_JSON_VERSION = 2

_FAULT = {"type": "object", "required": ["kind"], "properties": {"kind": {"type": "string"}}}
_PLAN = {"type": "array", "items": _FAULT}
_ENTRY = {
    "type": "object",
    "required": ["at_ms", "kind", "path", "name", "attempt"],
    "properties": {
        "at_ms": {"type": "integer"},
        "kind": {"type": "string"},
        "path": {"type": ["string", "null"]},
        "name": {"type": ["string", "null"]},
        "attempt": {"type": ["integer", "null"]},
        "fault": {"type": "string"},
    },
}
_ERROR = {
    "type": ["object", "null"],
    "required": ["name", "message"],
    "properties": {
        "name": {"type": "string"},
        "message": {"type": "string"},
        "stack": {"type": "string"},  # where the user's code raised it (file:line and code)
    },
}
# The JSON Schema of `awf-sim chaos --json` (documented in awf_sim/chaos/README.md).
CHAOS_JSON_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "awf-sim chaos --json",
    "type": "object",
    "required": [
        "version",
        "flow",
        "seed",
        "runs",
        "max_faults",
        "faults",
        "jobs",
        "clean",
        "workflows",
    ],
    "properties": {
        "version": {"const": CHAOS_JSON_VERSION},
        "flow": {"type": "string"},
        "seed": {"type": "integer"},
        "runs": {"type": "integer", "minimum": 0},
        "max_faults": {"type": "integer", "minimum": 1},
        "faults": {"type": "array", "items": {"enum": list(KINDS)}},
        "jobs": {"type": "integer", "minimum": 1},
        "clean": {"type": "boolean"},
        "workflows": {
            "type": "array",
            "items": {
                "type": "object",
                "required": [
                    "workflow",
                    "instance_id",
                    "input",
                    "input_from",
                    "expect",
                    "replay",
                    "baseline",
                    "runs",
                    "exhaustive_runs",
                    "random_runs",
                    "clean",
                    "invariants",
                    "coverage",
                    "violations",
                ],
                "properties": {
                    "workflow": {"type": "string"},
                    "instance_id": {"type": "string"},
                    "input": {},
                    "input_from": {"type": "string"},
                    "expect": {
                        "type": "object",
                        "required": ["status", "error"],
                        "properties": {
                            "status": {"enum": ["complete", "errored"]},
                            "error": {"type": ["string", "null"]},
                        },
                    },
                    "replay": {"type": ["string", "null"]},
                    "baseline": {
                        "type": "object",
                        "required": ["status", "output", "error", "steps", "duration_ms"],
                        "properties": {
                            "status": {"type": "string"},
                            "output": {},
                            "error": _ERROR,
                            "steps": {"type": "integer"},
                            "duration_ms": {"type": "integer"},
                        },
                    },
                    "runs": {"type": "integer"},
                    "exhaustive_runs": {"type": "integer"},
                    "random_runs": {"type": "integer"},
                    "clean": {"type": "boolean"},
                    "invariants": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["name", "checked", "violations"],
                            "properties": {
                                "name": {"enum": list(INVARIANTS)},
                                "checked": {"type": "integer"},
                                "violations": {"type": "integer"},
                            },
                        },
                    },
                    "coverage": {
                        "type": "object",
                        "required": [
                            "pairs",
                            "ran",
                            "points",
                            "kinds",
                            "matrix",
                            "not_ran",
                            "wait_timeouts",
                        ],
                        "properties": {
                            "pairs": {"type": "integer"},
                            "ran": {"type": "integer"},
                            "points": {"type": "array", "items": {"type": "string"}},
                            "kinds": {"type": "array", "items": {"enum": list(KINDS)}},
                            "matrix": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "required": ["point", "kind", "runs"],
                                },
                            },
                            "not_ran": {"type": "array"},
                            "wait_timeouts": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "required": ["wait", "runs"],
                                    "properties": {
                                        "wait": {"type": "string"},
                                        "runs": {"type": "integer"},
                                    },
                                },
                            },
                        },
                    },
                    # Only when --max-seconds stopped the campaign before every planned run:
                    # no verdict ("clean" is false); `ran` of `planned` runs were made.
                    "cut_short": {
                        "type": "object",
                        "required": ["ran", "planned"],
                        "properties": {
                            "ran": {"type": "integer", "minimum": 0},
                            "planned": {"type": "integer", "minimum": 1},
                        },
                    },
                    # Only when the CPU budget (--cpu-ms) stopped something: each step path
                    # whose attempt ran past it, or "the workflow body", and in how many runs.
                    "cpu_stopped": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["what", "runs"],
                            "properties": {
                                "what": {"type": "string"},
                                "runs": {"type": "integer", "minimum": 1},
                            },
                        },
                    },
                    "violations": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": [
                                "invariant",
                                "key",
                                "message",
                                "runs",
                                "plan",
                                "plan_text",
                                "token",
                                "original_plan",
                                "difference",
                                "hint",
                                "where",
                                "status",
                                "output",
                                "error",
                                "timeline",
                                "replay",
                                "related",
                            ],
                            "properties": {
                                "invariant": {"enum": list(INVARIANTS)},
                                "key": {"type": "string"},
                                "message": {"type": "string"},
                                "runs": {"type": "integer"},
                                "plan": _PLAN,
                                "plan_text": {"type": "string"},
                                "token": {"type": "string"},
                                "original_plan": _PLAN,
                                "difference": {"type": "array", "items": {"type": "string"}},
                                "hint": {"type": "string"},
                                "where": {"type": ["string", "null"]},
                                "status": {"type": "string"},
                                "output": {},
                                "error": _ERROR,
                                "timeline": {"type": "array", "items": _ENTRY},
                                "replay": {"type": "string"},
                                "related": {
                                    "type": "array",
                                    "items": {
                                        "type": "object",
                                        "required": ["invariant", "key", "message", "runs"],
                                        "properties": {
                                            "invariant": {"enum": list(INVARIANTS)},
                                            "key": {"type": "string"},
                                            "message": {"type": "string"},
                                            "runs": {"type": "integer"},
                                        },
                                    },
                                },
                            },
                        },
                    },
                },
            },
        },
    },
}
