"""The engine's defaults: the epoch virtual time starts at, the compatibility date, the CPU
budget and the runaway bound, and the date a flag of Cloudflare's takes effect."""

from __future__ import annotations

import datetime as _dt

__all__ = [
    "DEFAULT_COMPATIBILITY_DATE",
    "DEFAULT_CPU_MS",
    "DEFAULT_EPOCH",
    "PRESERVE_NON_RETRYABLE_FROM",
    "RUNAWAY_WAITS",
]

DEFAULT_EPOCH = _dt.datetime(2026, 1, 1, tzinfo=_dt.UTC)
DEFAULT_COMPATIBILITY_DATE = "2026-11-01"
# Cloudflare stops an invocation past its CPU limit: 30 s by default (limits.cpu_ms in
# wrangler.toml, up to 5 minutes). The same bound ends a runaway handler or workflow body.
DEFAULT_CPU_MS = 30_000
# Where awf-sim run, chaos and test workflows give up on an instance that keeps sleeping or
# waiting (not steps: no step limit ends `while True: await wf.sleep(...)`). About a second.
RUNAWAY_WAITS = 100_000

# From this compatibility date an uncaught NonRetryableError keeps its own message
# (workflows_preserve_non_retryable_error_message, SEMANTICS §1.5).
PRESERVE_NON_RETRYABLE_FROM = "2026-05-14"
