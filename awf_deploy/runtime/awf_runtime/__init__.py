"""awf's runtime inside a Cloudflare Python Worker (copied into every bundle as the `awf_runtime/`
package).

It implements the DSL's Runtime protocol on top of Cloudflare's Python Workflows `step` object:

- a domain call (`await wf.Inventory(p).check()`) is ONE `step.do` named `Inventory.check@<id>`
  with the method's retries and timeout (durations in milliseconds, which Cloudflare accepts);
- `wf.do`, `wf.sleep`, `wf.sleep_until` and `wf.wait_for` map to `step.do`, `step.sleep`,
  `step.sleep_until` and `step.wait_for_event` with the same names;
- handlers receive a `ctx` with `db` (D1 through the `DB` binding, same async API as the
  simulator's), `ai` (Workers AI through the `AI` binding), `http` (httpx when vendored, else
  a client over the runtime's fetch), `env`, `attempt`, `step` and `idempotency_key` (the
  simulator's formula, so keys are equal in tests and in production);
- errors raised into the workflow have the DSL's types (`StepError`, `NonRetryableError`), as
  in the simulator, and a handler's `NonRetryableError` is raised to Cloudflare as
  `workers.workflows.NonRetryableError`.

One module per job: `_js` (the JavaScript boundary), `_errors`, `_d1` (ctx.db), `_ai` (ctx.ai),
`_http` (ctx.http), `_context` (ctx), `_workflow` (the Runtime and `run`), `_front` (the
Worker's HTTP API and cron handler). Standard library only. The modules the Workers runtime
provides (`workers`, `js`, `pyodide.ffi`) are imported lazily, so the package also runs in the
simulator, where awf-deploy's tests execute the generated entry module unchanged.
"""

from ._ai import DEFAULT_EMBED_MODEL, DEFAULT_MODEL, WorkersAI
from ._context import AI_BINDING, DB_BINDING, EnvView, HandlerContext, idempotency_key
from ._d1 import D1Database
from ._errors import error_parts, instance_error
from ._front import API_KEY_VAR, fetch, scheduled
from ._http import FetchClient, FetchResponse, HTTPStatusError, http_client
from ._js import to_js, to_py
from ._workflow import CloudflareRuntime, run_workflow, workflows_of

__all__ = [
    "AI_BINDING",
    "API_KEY_VAR",
    "DB_BINDING",
    "DEFAULT_EMBED_MODEL",
    "DEFAULT_MODEL",
    "CloudflareRuntime",
    "D1Database",
    "EnvView",
    "FetchClient",
    "FetchResponse",
    "HTTPStatusError",
    "HandlerContext",
    "WorkersAI",
    "error_parts",
    "fetch",
    "http_client",
    "idempotency_key",
    "instance_error",
    "run_workflow",
    "scheduled",
    "to_js",
    "to_py",
    "workflows_of",
]
