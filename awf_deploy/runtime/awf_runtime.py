"""awf's runtime inside a Cloudflare Python Worker (copied into every bundle as `awf_runtime.py`).

It implements the DSL's Runtime protocol on top of Cloudflare's Python Workflows `step` object:

- a domain call (`await wf.Inventory(p).check()`) is ONE `step.do` named `Inventory.check@<id>`
  with the method's retries and timeout (durations in milliseconds, which Cloudflare accepts);
- `wf.do`, `wf.sleep`, `wf.sleep_until` and `wf.wait_for` map to `step.do`, `step.sleep`,
  `step.sleep_until` and `step.wait_for_event` with the same names;
- handlers receive a `ctx` with `db` (D1 through the `DB` binding, same async API as the
  simulator's), `ai` (Workers AI through the `AI` binding), `http` (an httpx.AsyncClient, when
  httpx is vendored), `env`, `attempt`, `step` and `idempotency_key` (the simulator's formula,
  so keys are equal in tests and in production);
- errors raised into the workflow have the DSL's types (`StepError`, `NonRetryableError`), as
  in the simulator, and a handler's `NonRetryableError` is raised to Cloudflare as
  `workers.workflows.NonRetryableError`.

Standard library only. The modules the Workers runtime provides (`workers`, `js`,
`pyodide.ffi`) are imported lazily, so the module also runs in the simulator, where awf-deploy's
tests execute the generated entry module unchanged.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import hmac
import importlib
import inspect
import json
import json as _json_module
import re
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

from awf_sim.dsl import (
    NonRetryableError,
    SerializationError,
    StepCall,
    StepError,
    Workflow,
    WorkflowApi,
)
from awf_sim.dsl._identity import dump_result, loads

__all__ = [
    "AI_BINDING",
    "DB_BINDING",
    "CloudflareRuntime",
    "D1Database",
    "EnvView",
    "FetchClient",
    "FetchResponse",
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

DB_BINDING = "DB"
AI_BINDING = "AI"
API_KEY_VAR = "AWF_API_KEY"
DEFAULT_MODEL = "@cf/meta/llama-3.1-8b-instruct"
DEFAULT_EMBED_MODEL = "@cf/baai/bge-base-en-v1.5"
_NAME = re.compile(r"[a-zA-Z0-9_][a-zA-Z0-9\-_]*")
_ERROR_LINE = re.compile(r"([A-Za-z_][\w.]*(?:Error|Exception|Exit)): ?(.*)", re.DOTALL)
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NAMED_ERRORS = frozenset({"StepError", "NonRetryableError", "WorkflowFatalError"})


# -- the JavaScript boundary -------------------------------------------------------------------


def _ffi() -> tuple[Any, Any] | None:
    """(pyodide.ffi, js) inside a Worker; None anywhere else (the simulator, tests)."""
    try:
        return importlib.import_module("pyodide.ffi"), importlib.import_module("js")
    except ImportError:
        return None


def to_js(value: Any) -> Any:
    """A Python value as a plain JavaScript object (dicts become Objects, not Maps), None as
    `null` at any depth (Pyodide's own to_js makes it `undefined`, which JSON drops)."""
    ffi = _ffi()
    if ffi is None:
        return value
    pyffi, js = ffi
    null = _jsnull()
    if null is not None:
        value = _none_to_null(value, null)
    return pyffi.to_js(value, dict_converter=js.Object.fromEntries)


def _none_to_null(value: Any, null: Any) -> Any:
    if value is None:
        return null
    if isinstance(value, dict):
        return {key: _none_to_null(item, null) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_none_to_null(item, null) for item in value]
    return value


def to_py(value: Any) -> Any:
    """A JavaScript value as Python (dicts and lists), with JavaScript `null` as None at any
    depth (Pyodide keeps it as `pyodide.ffi.jsnull`, so `row["c"] is None` would be False);
    Python values pass through."""
    if value is None:
        return None
    convert = getattr(value, "to_py", None)
    if callable(convert):
        value = convert()
    null = _jsnull()
    return value if null is None else _nulls_to_none(value, null)


_JSNULL: list[Any] = []


def _jsnull() -> Any:
    """`pyodide.ffi.jsnull` inside a Worker, None elsewhere (looked up once)."""
    if not _JSNULL:
        ffi = _ffi()
        _JSNULL.append(getattr(ffi[0], "jsnull", None) if ffi is not None else None)
    return _JSNULL[0]


def _nulls_to_none(value: Any, null: Any) -> Any:
    if value is null:
        return None
    if isinstance(value, dict):
        return {key: _nulls_to_none(item, null) for key, item in value.items()}
    if isinstance(value, list):
        return [_nulls_to_none(item, null) for item in value]
    return value


def _js_null() -> Any:
    """JavaScript `null` (Pyodide turns None into `undefined`, which D1 refuses to bind)."""
    ffi = _ffi()
    if ffi is None:
        return None
    pyffi, js = ffi
    null = getattr(pyffi, "jsnull", None)
    return null if null is not None else js.JSON.parse("null")


async def _settle(value: Any) -> Any:
    """Await until the value is no longer awaitable (the SDK's wrappers return promises from
    `async def` methods, which must be awaited twice)."""
    while inspect.isawaitable(value):
        value = await value
    return value


def _jsonable(value: Any, what: str) -> Any:
    """The value as plain JSON data (pydantic models and dataclasses dumped), or unchanged if it
    is not serialisable: the engine then reports it as it does for any other value."""
    try:
        return loads(dump_result(value, root=what))
    except SerializationError:
        return value


# -- errors --------------------------------------------------------------------------------------


def error_parts(name: str, message: str) -> tuple[str, str]:
    """An error's {name, message} as the engine stores it, read back as the Python error it
    was, so that Cloudflare and the simulator name it alike:

    - a Python exception that left Pyodide is a `PythonError` whose message is the traceback,
      whose last line is "Type: message";
    - an error whose name is not one of JavaScript's own crosses workerd's RPC as an `Error`
      whose message starts "Name: " (`WorkflowTimeoutError: Execution timed out after 1ms`).
    """
    if name == "PythonError" or message.startswith("PythonError"):
        lines = [line for line in message.splitlines() if line.strip()]
        found = _ERROR_LINE.fullmatch(lines[-1]) if len(lines) > 1 else None
        if found:
            name, message = found.group(1).rsplit(".", 1)[-1], found.group(2)
    elif name == "Error":
        found = _ERROR_LINE.fullmatch(message)
        if found:
            name, message = found.group(1).rsplit(".", 1)[-1], found.group(2)
    if name in _NAMED_ERRORS:
        # awf's own errors print as "name: message" (a StepError keeps the original name).
        found = _ERROR_LINE.fullmatch(message)
        if found:
            return found.group(1).rsplit(".", 1)[-1], found.group(2)
    return name, message


def instance_error(error: Any) -> Any:
    """An instance's stored error ({name, message}) as `error_parts` reads it back."""
    if isinstance(error, Mapping):
        name, message = error.get("name"), error.get("message")
        if isinstance(name, str) and isinstance(message, str):
            name, message = error_parts(name, message)
            return {**error, "name": name, "message": message}
    return error


def _error_parts(exc: BaseException) -> tuple[str, str]:
    """{name, message} of an error that crossed the engine: a step that failed for good."""
    name = getattr(exc, "name", None)
    message = getattr(exc, "message", None)
    if isinstance(name, str) and isinstance(message, str):
        return error_parts(name, message)
    text = str(exc)
    found = _ERROR_LINE.fullmatch(text)
    if found and type(exc).__name__ in ("TypeError", "ValueError", "NonRetryableError"):
        # The Workers SDK re-creates TypeError, ValueError and NonRetryableError from the last
        # traceback line, "ValueError: boom": split it back into name and message.
        return found.group(1).rsplit(".", 1)[-1], found.group(2)
    return type(exc).__name__, text


def _into_workflow(exc: Exception) -> Exception:
    """The DSL error a workflow sees for a step that failed (same types as in the simulator)."""
    if isinstance(exc, StepError | NonRetryableError):
        return exc
    name, message = _error_parts(exc)
    if name == "NonRetryableError" or type(exc).__name__ == "NonRetryableError":
        return NonRetryableError(message)
    return StepError(message, name)


def _for_cloudflare(exc: NonRetryableError) -> Exception:
    """A handler's NonRetryableError as the class Cloudflare's engine recognises."""
    try:
        workflows = importlib.import_module("workers.workflows")
    except ImportError:
        return exc
    cls = getattr(workflows, "NonRetryableError", None)
    if cls is None or isinstance(exc, cls):
        return exc
    error: Exception = cls(exc.message)
    return error


# -- ctx.db: D1 --------------------------------------------------------------------------------


def _quote(name: str) -> str:
    if not isinstance(name, str) or not _IDENTIFIER.fullmatch(name):
        raise ValueError(
            f"invalid name {name!r}: names must match ^[A-Za-z_][A-Za-z0-9_]*$ "
            "(letters, digits and _, not starting with a digit)"
        )
    return '"' + name + '"'


def _positional(sql: str, params: Mapping[str, Any]) -> tuple[str, list[Any]]:
    """`:name`, `@name` and `$name` placeholders as `?N` (D1 binds positional values only)."""
    out: list[str] = []
    order: dict[str, int] = {}
    i, n = 0, len(sql)
    while i < n:
        ch = sql[i]
        if ch in "'\"`[":
            close = "]" if ch == "[" else ch
            end = sql.find(close, i + 1)
            end = n - 1 if end < 0 else end
            out.append(sql[i : end + 1])
            i = end + 1
        elif sql.startswith("--", i):
            end = sql.find("\n", i)
            end = n if end < 0 else end
            out.append(sql[i:end])
            i = end
        elif sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            end = n if end < 0 else end + 2
            out.append(sql[i:end])
            i = end
        elif ch in ":@$" and i + 1 < n and (sql[i + 1].isalpha() or sql[i + 1] == "_"):
            j = i + 1
            while j < n and (sql[j].isalnum() or sql[j] == "_"):
                j += 1
            key = sql[i + 1 : j]
            if key not in params:
                raise ValueError(f"no value for SQL parameter {sql[i:j]} in {sorted(params)}")
            index = order.setdefault(key, len(order) + 1)
            out.append(f"?{index}")
            i = j
        else:
            out.append(ch)
            i += 1
    return "".join(out), [params[key] for key in order]


def _bind_value(value: Any) -> Any:
    """A Python value as D1 binds it: the simulator's encoding (bool as 0/1, JSON text for
    dicts and lists), and None as JavaScript null."""
    if value is None:
        return _js_null()
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, dict | list | tuple):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return value


class D1Database:
    """`ctx.db` on Cloudflare: the simulator's database API over a D1 binding.

    `query` / `query_one` / `execute` / `insert` / `delete` / `transaction()`, all async, with
    `?` placeholders (and `:name` ones, rewritten to positional for D1). D1 has no
    interactive transactions: statements inside `transaction()` run one by one, each
    committed on its own (see the bundle's README).
    """

    __slots__ = ("_binding",)

    def __init__(self, binding: Any) -> None:
        self._binding = binding

    def _statement(self, sql: str, params: Sequence[Any] | Mapping[str, Any]) -> Any:
        if isinstance(params, Mapping):
            sql, values = _positional(sql, params)
        else:
            values = list(params)
        statement = self._binding.prepare(sql)
        if values:
            statement = statement.bind(*[_bind_value(v) for v in values])
        return statement

    async def query(
        self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()
    ) -> list[dict[str, Any]]:
        """Rows of a statement as dicts (column -> value)."""
        result = to_py(await _settle(self._statement(sql, params).all())) or {}
        return [dict(row) for row in (result.get("results") or [])]

    async def query_one(
        self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()
    ) -> dict[str, Any] | None:
        """The first row, or None."""
        row = to_py(await _settle(self._statement(sql, params).first()))
        return dict(row) if row else None

    async def execute(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> int:
        """Runs a statement; returns the number of rows it changed."""
        result = to_py(await _settle(self._statement(sql, params).run())) or {}
        changes = (result.get("meta") or {}).get("changes") or 0
        return max(0, int(changes))

    async def insert(self, table: str, row: Mapping[str, Any]) -> dict[str, Any]:
        """Inserts one row; returns it as stored, with its id and defaults."""
        columns = [_quote(column) for column in row]
        if columns:
            marks = ", ".join("?" * len(columns))
            sql = f"INSERT INTO {_quote(table)} ({', '.join(columns)}) VALUES ({marks})"
        else:
            sql = f"INSERT INTO {_quote(table)} DEFAULT VALUES"
        rows = await self.query(sql + " RETURNING *", list(row.values()))
        return rows[0] if rows else {}

    async def delete(self, table: str, id: Any) -> int:
        """Deletes the row whose `id` column equals `id`; returns 0 or 1."""
        return await self.execute(f"DELETE FROM {_quote(table)} WHERE id = ?", [id])

    def transaction(self) -> _Transaction:
        """`async with ctx.db.transaction() as tx:`; on D1 its statements are not atomic."""
        return _Transaction(self)

    def __repr__(self) -> str:
        return "<D1Database>"


class _Transaction:
    __slots__ = ("_db",)

    def __init__(self, db: D1Database) -> None:
        self._db = db

    async def __aenter__(self) -> D1Database:
        return self._db

    async def __aexit__(self, *exc: object) -> None:
        return None


# -- ctx.ai: Workers AI ------------------------------------------------------------------------


class WorkersAI:
    """`ctx.ai` on Cloudflare: `generate`, `embed` and `chat` over the AI binding, with the
    request and answer shapes of the simulator's Workers AI provider."""

    __slots__ = ("_binding", "embed_model", "model")

    def __init__(
        self, binding: Any, model: str = DEFAULT_MODEL, embed_model: str = DEFAULT_EMBED_MODEL
    ) -> None:
        self._binding = binding
        self.model = model
        self.embed_model = embed_model

    async def _run(self, model: str, body: Mapping[str, Any]) -> Any:
        return to_py(await _settle(self._binding.run(model, to_js(dict(body)))))

    @staticmethod
    def _response(model: str, result: Any) -> Any:
        if not isinstance(result, Mapping) or "response" not in result:
            raise RuntimeError(f"Workers AI {model}: expected a response, got {result!r:.200}")
        return result["response"]

    async def generate(
        self,
        *,
        system: str | None = None,
        prompt: str,
        schema: Mapping[str, Any] | None = None,
    ) -> Any:
        body: dict[str, Any]
        if system is None:
            body = {"prompt": prompt}
        else:
            body = {
                "messages": [
                    {"role": "system", "content": system},
                    {"role": "user", "content": prompt},
                ]
            }
        if schema is not None:
            body["response_format"] = {"type": "json_schema", "json_schema": dict(schema)}
        answer = self._response(self.model, await self._run(self.model, body))
        if schema is not None and isinstance(answer, str):
            return json.loads(answer)
        return answer

    async def embed(self, text: str) -> list[float]:
        result = await self._run(self.embed_model, {"text": text})
        data = result.get("data") if isinstance(result, Mapping) else None
        if not (isinstance(data, list) and data and isinstance(data[0], list)):
            raise RuntimeError(f"Workers AI {self.embed_model}: expected data, got {result!r:.200}")
        return [float(v) for v in data[0]]

    async def chat(self, messages: Sequence[Mapping[str, str]]) -> str:
        result = await self._run(self.model, {"messages": [dict(m) for m in messages]})
        answer = self._response(self.model, result)
        return answer if isinstance(answer, str) else json.dumps(answer, sort_keys=True)

    def __repr__(self) -> str:
        return f"WorkersAI(model={self.model!r})"


# -- ctx.http ------------------------------------------------------------------------------------

# What `ctx.http` returns is made by this factory when it is set (the simulator's mock client in
# awf-deploy's tests); else an `httpx.AsyncClient` when httpx is vendored with the Worker; else
# `FetchClient`, the same calls over the Workers runtime's own `fetch`.
http_client_factory: Callable[[], Any] | None = None
_http_client: Any = None


class HTTPStatusError(Exception):
    """`raise_for_status()` on a 4xx or 5xx answer (httpx's name, so handlers read alike)."""

    def __init__(self, message: str, response: FetchResponse) -> None:
        super().__init__(message)
        self.response = response


class FetchResponse:
    """The part of `httpx.Response` handlers use: status_code, headers, content, text, json(),
    is_success, raise_for_status()."""

    __slots__ = ("content", "headers", "method", "status_code", "url")

    def __init__(
        self, method: str, url: str, status_code: int, headers: dict[str, str], content: bytes
    ) -> None:
        self.method = method
        self.url = url
        self.status_code = status_code
        self.headers = headers
        self.content = content

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json.loads(self.content)

    @property
    def is_success(self) -> bool:
        return 200 <= self.status_code < 300

    def raise_for_status(self) -> FetchResponse:
        if self.status_code >= 400:
            kind = "Client error" if self.status_code < 500 else "Server error"
            raise HTTPStatusError(
                f"{kind} '{self.status_code}' for url '{self.url}'", response=self
            )
        return self

    def __repr__(self) -> str:
        return f"<FetchResponse [{self.status_code}]>"


class FetchClient:
    """`ctx.http` over the Workers runtime's `fetch`: `request`, `get`, `post`, `put`,
    `patch`, `delete`, with httpx's `json=`, `content=`, `data=`, `params=` and `headers=`."""

    async def request(
        self,
        method: str,
        url: str,
        *,
        json: Any = None,
        content: str | bytes | None = None,
        data: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> FetchResponse:
        ffi = _ffi()
        if ffi is None:
            raise RuntimeError("FetchClient needs the Workers runtime's fetch")
        pyffi, js = ffi
        out_headers = {str(k): str(v) for k, v in (headers or {}).items()}
        body: Any = None
        if json is not None:
            body = _json_module.dumps(json, ensure_ascii=False, separators=(",", ":"))
            out_headers.setdefault("content-type", "application/json")
        elif data is not None:
            body = urlencode(dict(data))
            out_headers.setdefault("content-type", "application/x-www-form-urlencoded")
        elif content is not None:
            body = content.decode("utf-8") if isinstance(content, bytes) else content
        if params:
            url += ("&" if "?" in url else "?") + urlencode(dict(params))
        init: dict[str, Any] = {"method": method.upper(), "headers": out_headers}
        if body is not None:
            init["body"] = body
        response = await js.fetch(url, pyffi.to_js(init, dict_converter=js.Object.fromEntries))
        raw = await response.arrayBuffer()
        got = {str(k).lower(): str(v) for k, v in response.headers.entries()}
        return FetchResponse(method.upper(), url, int(response.status), got, raw.to_bytes())

    async def get(self, url: str, **kwargs: Any) -> FetchResponse:
        return await self.request("GET", url, **kwargs)

    async def post(self, url: str, **kwargs: Any) -> FetchResponse:
        return await self.request("POST", url, **kwargs)

    async def put(self, url: str, **kwargs: Any) -> FetchResponse:
        return await self.request("PUT", url, **kwargs)

    async def patch(self, url: str, **kwargs: Any) -> FetchResponse:
        return await self.request("PATCH", url, **kwargs)

    async def delete(self, url: str, **kwargs: Any) -> FetchResponse:
        return await self.request("DELETE", url, **kwargs)


def http_client() -> Any:
    global _http_client
    if _http_client is None:
        if http_client_factory is not None:
            _http_client = http_client_factory()
        else:
            try:
                httpx = importlib.import_module("httpx")
            except Exception:  # not vendored (Pyodide refuses to fetch a package at run time)
                _http_client = FetchClient()
            else:
                _http_client = httpx.AsyncClient()
    return _http_client


# -- ctx -----------------------------------------------------------------------------------------


def idempotency_key(instance_id: str, step_name: str, count: int) -> str:
    """Stable for one step occurrence of one instance: the simulator's formula, unchanged."""
    raw = f"{instance_id}\x1f{step_name}\x1f{count}".encode()
    return hashlib.sha256(raw).hexdigest()[:32]


class EnvView(Mapping[str, Any]):
    """`ctx.env` on Cloudflare: the Worker's `env` (a JavaScript object behind the SDK's
    wrapper) read as the simulator's dict, `ctx.env.get("KEY", default)` and `ctx.env["KEY"]`,
    with attribute access (`ctx.env.DB`) kept. Read-only."""

    __slots__ = ("_env",)

    def __init__(self, env: Any) -> None:
        self._env = env

    def __getitem__(self, key: str) -> Any:
        if isinstance(self._env, Mapping):
            return self._env[key]
        try:
            value = getattr(self._env, key)
        except AttributeError:
            raise KeyError(key) from None
        if value is None or value is _jsnull() or type(value).__name__ == "JsUndefined":
            raise KeyError(key)
        return value

    def _keys(self) -> list[str]:
        if isinstance(self._env, Mapping):
            return [str(k) for k in self._env]
        ffi = _ffi()
        target = getattr(self._env, "_env", self._env)  # the SDK's wrapper keeps the JS env
        if ffi is not None:
            try:
                return [str(k) for k in ffi[1].Object.keys(target)]
            except Exception:  # not a JavaScript object
                pass
        return [k for k in dir(self._env) if not k.startswith("_")]

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys())

    def __len__(self) -> int:
        return len(self._keys())

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self._env, name)

    def __repr__(self) -> str:
        return f"<env {sorted(self._keys())}>"


def _binding(env: Any, name: str) -> Any:
    if isinstance(env, Mapping):
        return env.get(name)
    return getattr(env, name, None)


class HandlerContext:
    """What a handler receives as `ctx` on Cloudflare: `db`, `ai`, `http`, `env`, `attempt`,
    `step` (`{"name", "path", "count"}`) and `idempotency_key`. Built fresh for every attempt."""

    __slots__ = ("_ai", "_db", "_instance_id", "attempt", "env", "step")

    def __init__(
        self, *, instance_id: str, step: Mapping[str, Any], attempt: int, env: Any
    ) -> None:
        self._instance_id = instance_id
        self.step = step
        self.attempt = attempt
        self.env = env if isinstance(env, Mapping) else EnvView(env)
        self._db: D1Database | None = None
        self._ai: WorkersAI | None = None

    @property
    def db(self) -> D1Database:
        """D1 through the Worker's `DB` binding."""
        if self._db is None:
            binding = _binding(self.env, DB_BINDING)
            if binding is None:
                raise AttributeError(
                    f"ctx.db: this Worker has no {DB_BINDING} binding (D1); awf-deploy adds it "
                    "when a handler uses ctx.db: rebuild with `awf-deploy build`"
                )
            self._db = D1Database(binding)
        return self._db

    @property
    def ai(self) -> WorkersAI:
        """Workers AI through the Worker's `AI` binding (models from AWF_AI_MODEL and
        AWF_AI_EMBED_MODEL when set)."""
        if self._ai is None:
            binding = _binding(self.env, AI_BINDING)
            if binding is None:
                raise AttributeError(
                    f"ctx.ai: this Worker has no {AI_BINDING} binding; awf-deploy adds it when "
                    "a handler uses ctx.ai: rebuild with `awf-deploy build`"
                )
            model = _binding(self.env, "AWF_AI_MODEL")
            embed = _binding(self.env, "AWF_AI_EMBED_MODEL")
            self._ai = WorkersAI(
                binding,
                model if isinstance(model, str) and model else DEFAULT_MODEL,
                embed if isinstance(embed, str) and embed else DEFAULT_EMBED_MODEL,
            )
        return self._ai

    @property
    def http(self) -> Any:
        """An HTTP client (one per Worker isolate): httpx's when it is vendored, else
        `FetchClient` over the runtime's fetch."""
        return http_client()

    @property
    def idempotency_key(self) -> str:
        return idempotency_key(self._instance_id, self.step["name"], self.step["count"])

    def __repr__(self) -> str:
        return f"<ctx step={self.step.get('path')} attempt={self.attempt}>"


# -- the Runtime -------------------------------------------------------------------------------


def _cf_config(config: Mapping[str, Any]) -> dict[str, Any] | None:
    """A normalised DSL step config in Cloudflare's shape (durations as milliseconds)."""
    out: dict[str, Any] = {}
    retries = config.get("retries")
    if retries:
        out["retries"] = dict(retries)
    if config.get("timeout") is not None:
        out["timeout"] = config["timeout"]
    return out or None


class CloudflareRuntime:
    """The DSL's Runtime over Cloudflare's Python `step` object (one per `run`)."""

    __slots__ = ("_counts", "_env", "_event", "_step")

    def __init__(self, step: Any, event: Mapping[str, Any], env: Any) -> None:
        self._step = step
        self._event = event
        self._env = env
        self._counts: dict[str, int] = {}

    @property
    def instance_id(self) -> str:
        return str(self._event.get("instanceId", ""))

    @property
    def event(self) -> Mapping[str, Any]:
        return self._event

    def _count(self, name: str) -> int:
        # Cloudflare's cache key is (name, occurrence); counted in call order, as the engine.
        count = self._counts.get(name, 0) + 1
        self._counts[name] = count
        return count

    async def _do(
        self,
        name: str,
        config: Mapping[str, Any],
        body: Callable[[Any], Awaitable[Any]],
    ) -> Any:
        do = self._step.do(name, config=_cf_config(config))
        try:
            result = await _settle(do(body)())
        except Exception as exc:
            raise _into_workflow(exc) from None
        return to_py(result)

    def step(self, call: StepCall) -> Awaitable[Any]:
        count = self._count(call.name)
        instance_id = self.instance_id
        env = self._env

        async def body(ctx: Any) -> Any:
            info = to_py(ctx) or {}
            step = info.get("step") or {}
            handler_ctx = HandlerContext(
                instance_id=instance_id,
                step={
                    "name": call.name,
                    "path": call.label,
                    "count": step.get("count") or count,
                },
                attempt=info.get("attempt") or 1,
                env=env,
            )
            try:
                value = await call.invoke(handler_ctx)
            except NonRetryableError as exc:
                raise _for_cloudflare(exc) from None
            # Plain data: the SDK's python_to_rpc turns it into JavaScript, None as null.
            return _jsonable(value, f"result of {call.label}")

        return self._do(call.name, call.config, body)

    def do(self, name: str, fn: Callable[[], Any], config: Mapping[str, Any]) -> Awaitable[Any]:
        self._count(name)

        async def body(ctx: Any) -> Any:
            try:
                value = await _settle(fn())
            except NonRetryableError as exc:
                raise _for_cloudflare(exc) from None
            return _jsonable(value, f"result of {name}")

        return self._do(name, config, body)

    async def sleep(self, name: str, ms: int) -> None:
        await _settle(self._step.sleep(name, ms))

    async def sleep_until(self, name: str, epoch_ms: int) -> None:
        await _settle(self._step.sleep_until(name, epoch_ms))

    async def wait_for(self, name: str, type: str, timeout_ms: int) -> Any:
        try:
            event = to_py(await _settle(self._step.wait_for_event(name, type, timeout=timeout_ms)))
        except Exception as exc:
            raise _into_workflow(exc) from None
        return event.get("payload") if isinstance(event, Mapping) else event


def workflows_of(module: Any, names: Sequence[str]) -> dict[str, Workflow]:
    """The flow module's Workflow objects by name; a missing one is an error at import."""
    found = {
        value.name: value
        for value in vars(module).values()
        if isinstance(value, Workflow) and value.fn is not None
    }
    missing = [name for name in names if name not in found]
    if missing:
        raise ImportError(f"the flow module defines no workflow named {', '.join(missing)}")
    return {name: found[name] for name in names}


async def run_workflow(workflow: Workflow, env: Any, event: Any, step: Any) -> Any:
    """`WorkflowEntrypoint.run`: call the workflow function with a `wf` over `step`."""
    payload = _event(to_py(event) or {}, workflow.name)
    runtime = CloudflareRuntime(step, payload, env)
    params = payload.get("payload")
    model: Any = workflow.input_model
    if model is not None:
        params = model.model_validate(params)
    try:
        result = await _settle(workflow.call(WorkflowApi(runtime, workflow), params))
    except NonRetryableError as exc:
        raise _for_cloudflare(exc) from None
    # Plain data: the SDK's python_to_rpc turns it into JavaScript, None as null (to_js would
    # make it `undefined`, which the engine's JSON drops from the output).
    return _jsonable(result, "workflow output")


def _event(event: Mapping[str, Any], workflow: str) -> dict[str, Any]:
    """The triggering event as the simulator's `wf.event` has it: the engine's `timestamp`
    (a Date, which the SDK makes a naive UTC datetime) as an aware UTC datetime, and the
    `workflowName` that the engine's event lacks."""
    out = dict(event)
    stamp = out.get("timestamp")
    if isinstance(stamp, _dt.datetime) and stamp.tzinfo is None:
        out["timestamp"] = stamp.replace(tzinfo=_dt.UTC)
    elif isinstance(stamp, int | float) and not isinstance(stamp, bool):
        out["timestamp"] = _dt.datetime.fromtimestamp(stamp / 1000, tz=_dt.UTC)
    out.setdefault("workflowName", workflow)
    return out


# -- the Worker's fetch and scheduled handlers ---------------------------------------------------


class _HttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _header(request: Any, name: str) -> str | None:
    headers = getattr(request, "headers", None)
    if headers is None:
        return None
    value = headers.get(name)
    return value if isinstance(value, str) else None


async def _json_body(request: Any) -> Any:
    text = await _settle(request.text())
    if not text or not str(text).strip():
        return None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise _HttpError(400, f"the request body is not valid JSON: {exc}") from None


def _check_name(kind: str, value: str, max_len: int = 100) -> str:
    if not (0 < len(value) <= max_len and _NAME.fullmatch(value)):
        raise _HttpError(
            400,
            f"invalid {kind} {value!r}: use letters, digits, '_' and '-' (not first), "
            f"at most {max_len} characters",
        )
    return value


def _response(response_cls: Any, status: int, body: Any) -> Any:
    return response_cls(
        json.dumps(body, ensure_ascii=False, default=str),
        status=status,
        headers={"content-type": "application/json"},
    )


async def fetch(
    request: Any,
    env: Any,
    workflows: Sequence[Mapping[str, Any]],
    response_cls: Any,
    *,
    script: str = "",
    bundle: str = "",
) -> Any:
    """The Worker's HTTP API.

    - `GET /`: the workflows this Worker runs
    - `POST /workflows/<name>/instances[?id=ID]`: start an instance; the JSON body is its params
    - `GET /workflows/<name>/instances/<id>`: the instance's status
    - `POST /workflows/<name>/instances/<id>/events/<type>`: send an event; the body is its payload

    When the Worker has an `AWF_API_KEY` secret, every request needs
    `Authorization: Bearer <that key>`.
    """
    try:
        status, body = await _route(request, env, workflows, script, bundle)
    except _HttpError as exc:
        status, body = exc.status, {"error": str(exc)}
    except Exception as exc:  # a binding call failed
        text = f"{type(exc).__name__}: {exc}"
        status = 404 if "not_found" in text or "not found" in text.lower() else 500
        body = {"error": text}
    return _response(response_cls, status, body)


async def _route(
    request: Any,
    env: Any,
    workflows: Sequence[Mapping[str, Any]],
    script: str,
    bundle: str,
) -> tuple[int, Any]:
    key = _binding(env, API_KEY_VAR)
    if isinstance(key, str) and key:
        given = _header(request, "authorization") or ""
        if not hmac.compare_digest(given.encode(), f"Bearer {key}".encode()):
            raise _HttpError(401, f"missing or wrong `Authorization: Bearer <{API_KEY_VAR}>`")
    method = str(getattr(request.method, "value", request.method)).upper()
    url = urlsplit(str(request.url))
    parts = [unquote(p) for p in url.path.split("/") if p]
    table = {w["name"]: w for w in workflows}
    if not parts:
        if method != "GET":
            raise _HttpError(405, "use GET /")
        return 200, {"script": script, "bundle": bundle, "workflows": list(workflows)}
    if parts[0] != "workflows" or len(parts) < 3 or parts[2] != "instances":
        raise _HttpError(404, f"no route {url.path}; see GET / for the API")
    name = parts[1]
    if name not in table:
        raise _HttpError(404, f"no workflow {name!r}; this Worker runs: {', '.join(table)}")
    binding = _binding(env, str(table[name]["binding"]))
    if binding is None:
        raise _HttpError(500, f"the Worker has no binding {table[name]['binding']}")
    if len(parts) == 3:
        if method != "POST":
            raise _HttpError(405, f"use POST /workflows/{name}/instances to start an instance")
        params = await _json_body(request)
        options: dict[str, Any] = {"params": {} if params is None else params}
        instance_id = parse_qs(url.query).get("id", [None])[0]
        if instance_id is not None:
            options["id"] = _check_name("instance id", instance_id)
        instance = await _settle(binding.create(to_js(options)))
        return 201, {"workflow": name, "id": str(instance.id)}
    instance_id = _check_name("instance id", parts[3], 271)
    if len(parts) == 4:
        if method != "GET":
            raise _HttpError(405, f"use GET /workflows/{name}/instances/{instance_id}")
        instance = await _settle(binding.get(instance_id))
        status = to_py(await _settle(instance.status()))
        details = dict(status) if isinstance(status, Mapping) else {"status": status}
        details = {k: v for k, v in details.items() if not str(k).startswith("__")}
        if "error" in details:
            details["error"] = instance_error(details["error"])
        return 200, {"workflow": name, "id": instance_id, **details}
    if len(parts) == 6 and parts[4] == "events":
        if method != "POST":
            raise _HttpError(405, "use POST to send an event")
        event_type = _check_name("event type", parts[5])
        payload = await _json_body(request)
        instance = await _settle(binding.get(instance_id))
        send = getattr(instance, "send_event", None) or instance.sendEvent
        await _settle(send(to_js({"type": event_type, "payload": payload})))
        return 202, {"workflow": name, "id": instance_id, "sent": event_type}
    raise _HttpError(404, f"no route {url.path}; see GET / for the API")


async def scheduled(controller: Any, env: Any, workflows: Sequence[Mapping[str, Any]]) -> list[str]:
    """The Worker's cron handler: start one instance of every workflow on this schedule.

    Its params are `{"cron": ..., "scheduledTime": <epoch ms>}`; its id is
    `<workflow>-<scheduledTime>`, so a tick delivered twice starts one instance.
    """
    cron = getattr(controller, "cron", None)
    when = getattr(controller, "scheduledTime", None)
    started: list[str] = []
    for workflow in workflows:
        if workflow.get("schedule") != cron:
            continue
        binding = _binding(env, str(workflow["binding"]))
        options: dict[str, Any] = {"params": {"cron": cron, "scheduledTime": when}}
        if isinstance(when, int | float):
            options["id"] = f"{workflow['name']}-{int(when)}"
        try:
            instance = await _settle(binding.create(to_js(options)))
        except Exception as exc:
            if "already" in str(exc).lower() and "exist" in str(exc).lower():
                continue
            raise
        started.append(str(instance.id))
    return started
