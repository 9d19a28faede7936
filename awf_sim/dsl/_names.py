"""Names Cloudflare accepts for workflows, domains and instance ids."""

from __future__ import annotations

import re

from awf_sim.dsl._errors import DefinitionError

__all__ = ["MAX_INSTANCE_ID", "MAX_NAME", "NAME_RE", "validate_instance_id", "validate_name"]

# Cloudflare's own pattern (workers-sdk workflows-shared lib/validators.ts). Always used with
# fullmatch: `$` alone would also accept a trailing newline.
NAME_RE = re.compile(r"^[a-zA-Z0-9_][a-zA-Z0-9-_]*$")

MAX_NAME = 64
# The local engine allows 100; older docs said 64. Following the engine keeps ids that work
# under `wrangler dev` working here.
MAX_INSTANCE_ID = 100


def validate_name(kind: str, name: object, max_len: int = MAX_NAME) -> str:
    """Return `name` if Cloudflare accepts it as a `kind` name, else raise DefinitionError."""
    if isinstance(name, str) and len(name) <= max_len and NAME_RE.fullmatch(name):
        return name
    raise DefinitionError(
        f"invalid {kind} {name!r}: use letters, digits, '_' and '-' (not first), "
        f"at most {max_len} characters"
    )


def validate_instance_id(id: object) -> str:
    """Return `id` if Cloudflare accepts it as an instance id, else raise DefinitionError."""
    return validate_name("instance id", id, MAX_INSTANCE_ID)
