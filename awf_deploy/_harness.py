"""A bundle on Cloudflare's real Python runtime, offline: Pyodide with the vendored Workers SDK,
and Miniflare's own Workflows engine and D1.

workerd's Python loader downloads its Pyodide at start-up, so it cannot run here. The harness
(`awf_deploy/harness/`, Node) does for a Workflow what that loader does: it loads the Pyodide
version workerd uses for the bundle's compatibility date (npm `pyodide`), puts the bundle where
workerd puts it, computes the compatibility flags, imports `entry.py` and calls `run`, `fetch`
and `scheduled` on its entrypoint classes. Every `step.do`, `sleep`, `sleepUntil` and
`waitForEvent` is carried out by Miniflare's Workflows engine (a JavaScript Worker in Miniflare
forwards them), and `ctx.db` is Miniflare's D1.

`RealRuntime` starts one harness process (one Pyodide, one Miniflare) and talks to it in JSON
lines. What the Worker would get from the network it asks this process for: outbound HTTP is
answered by the flow's `HTTP` mock, Workers AI by the flow's AI provider.

Errors: `HarnessError` (the harness is missing, did not start, or did not answer in time) and
its subclass `BundleImportError` (the bundle's Python failed at import: the module and the
Python traceback).
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import os
import re
import shutil
import sqlite3
import subprocess
import threading
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any

from ._bundle import AI_BINDING, DB_BINDING, Bundle
from .errors import AwfDeployError

__all__ = [
    "HARNESS_DIR",
    "BundleImportError",
    "HarnessError",
    "RealRuntime",
    "seed_statements",
    "workers_ai_answer",
]

HARNESS_DIR = Path(__file__).resolve().parent / "harness"
_NODE_PACKAGES = ("miniflare", "pyodide")
TERMINAL = ("complete", "errored", "terminated")
# Answers the Worker's outbound requests: (method, url, headers, body) -> (status, headers, body).
HttpAnswer = Callable[[str, str, list[list[str]], bytes | None], tuple[int, Any, bytes]]


class HarnessError(AwfDeployError, RuntimeError):
    """The real-runtime harness is missing, failed or did not answer in time."""


class BundleImportError(HarnessError):
    """The bundle's Python failed at import on the runtime: `module` and `traceback` say where."""

    def __init__(self, message: str, module: str, traceback: str) -> None:
        super().__init__(message)
        self.module = module
        self.traceback = traceback


def install_hint() -> str:
    return f"npm ci --no-audit --no-fund --prefix {HARNESS_DIR}"


def check_installed() -> str:
    """The path of `node`, once Node and the harness's npm packages are there; else the error
    says which command installs them."""
    node = shutil.which("node")
    if node is None:
        raise HarnessError("the real-runtime harness needs Node.js 20 or newer on PATH")
    missing = [p for p in _NODE_PACKAGES if not (HARNESS_DIR / "node_modules" / p).is_dir()]
    if missing:
        raise HarnessError(
            f"the real-runtime harness's npm packages are not installed ({', '.join(missing)} "
            f"missing): run `{install_hint()}`"
        )
    return node


def _statements(schema: str) -> list[str]:
    out: list[str] = []
    pending = ""
    # Cut after every ";" that ends a statement (not one inside a string or a trigger body):
    # two statements on one line are two statements.
    for piece in re.split(r"(?<=;)", schema):
        pending += piece
        if sqlite3.complete_statement(pending):
            if pending.strip().strip(";").strip():
                out.append(pending.strip())
            pending = ""
    if pending.strip():
        out.append(pending.strip())
    return out


def _tables_of(statements: list[str]) -> list[set[str]]:
    """For each schema statement, the tables whose objects it creates (a table, its indexes,
    its triggers), found by running the statements in turn in an in-memory SQLite."""
    db = sqlite3.connect(":memory:")
    seen: set[tuple[str, str, str]] = set()
    out: list[set[str]] = []
    try:
        for sql in statements:
            try:
                db.executescript(sql)
            except sqlite3.Error:
                out.append(set())
                continue
            now = set(db.execute("SELECT type, name, tbl_name FROM sqlite_master").fetchall())
            out.append({table for _, _, table in now - seen})
            seen |= now
    finally:
        db.close()
    return out


def seed_statements(database: Any, only: set[str] | None = None) -> list[dict[str, Any]]:
    """A flow's `DATABASE` (schema and seed rows) as D1 statements: the schema's statements,
    then one INSERT per seed row, with values as the simulator stores them. `only`: just what
    creates and fills these tables."""
    schema = _statements(database.schema or "")
    if only is not None:
        schema = [sql for sql, made in zip(schema, _tables_of(schema), strict=True) if made & only]
    statements = [{"sql": sql, "params": []} for sql in schema]
    handle = database.connect()
    try:
        snapshot = handle.snapshot()
    finally:
        handle.close()
    for table, rows in snapshot.items():
        if only is not None and table not in only:
            continue
        for row in rows:
            columns = ", ".join(f'"{c}"' for c in row)
            marks = ", ".join("?" for _ in row)
            statements.append(
                {
                    "sql": f'INSERT INTO "{table}" ({columns}) VALUES ({marks})',
                    "params": list(row.values()),
                }
            )
    return statements


async def workers_ai_answer(provider: Any, inputs: Mapping[str, Any]) -> Any:
    """What the Workers AI binding answers, in its shapes (`{"response": ...}`, `{"data":
    ...}`), computed by a simulator AI provider: the same deterministic answers as a direct
    simulator run."""
    if "text" in inputs:
        return {"shape": [1], "data": [await provider.embed(inputs["text"])]}
    schema = (inputs.get("response_format") or {}).get("json_schema")
    if "prompt" in inputs:
        answer = await provider.generate(system=None, prompt=inputs["prompt"], schema=schema)
        return {"response": answer}
    messages = inputs["messages"]
    if schema is not None or (len(messages) == 2 and messages[0]["role"] == "system"):
        answer = await provider.generate(
            system=messages[0]["content"], prompt=messages[1]["content"], schema=schema
        )
        return {"response": answer}
    return {"response": await provider.chat(messages)}


def _pack(value: Any) -> Any:
    # codec.mjs's tags, for the few non-JSON values Python sends (bytes, from BLOB seed rows).
    if isinstance(value, bytes | bytearray):
        return {"$awf": "bytes", "data": list(value)}
    if isinstance(value, dict):
        return {k: _pack(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_pack(v) for v in value]
    return value


def _unpack(value: Any) -> Any:
    if isinstance(value, list):
        return [_unpack(v) for v in value]
    if isinstance(value, dict):
        tag = value.get("$awf")
        if tag == "undefined":
            return None
        if tag == "date":
            return value["ms"]
        if tag == "bytes":
            return bytes(value["data"])
        if tag in ("number", "bigint"):
            return float(value["text"]) if tag == "number" else int(value["text"])
        return {k: _unpack(v) for k, v in value.items()}
    return value


class RealRuntime:
    """One harness process: one Pyodide and one Miniflare, a bundle loaded at a time.

    `http` answers the Worker's outbound requests (a function `(method, url, headers, body) ->
    (status, headers, body)`), `ai` is a simulator AI provider for the `AI` binding. Every wait
    is bounded by `timeout` seconds.
    """

    def __init__(
        self,
        *,
        http: HttpAnswer | None = None,
        ai: Any = None,
        timeout: float = 60.0,
        stderr: IO[str] | None = None,
    ) -> None:
        self.http = http
        self.ai = ai
        self.timeout = timeout
        self._stderr = stderr
        self._proc: subprocess.Popen[str] | None = None
        self._pending: dict[int, Future[Any]] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="awf-harness")
        self._reader: threading.Thread | None = None
        self.pyodide_version: str | None = None
        self.bundle: Bundle | None = None

    # -- the process ---------------------------------------------------------------------------

    def start(self) -> RealRuntime:
        node = check_installed()
        ready: Future[Any] = Future()
        self._pending[0] = ready
        self._proc = subprocess.Popen(
            # JSPI on, as in workerd (the SDK's run_sync needs it).
            [node, "--experimental-wasm-stack-switching", str(HARNESS_DIR / "main.mjs")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr if self._stderr is not None else None,
            text=True,
            encoding="utf-8",
            bufsize=1,
            cwd=str(HARNESS_DIR),
            env={**os.environ, "NODE_NO_WARNINGS": "1"},
        )
        self._reader = threading.Thread(target=self._read, name="awf-harness-reader", daemon=True)
        self._reader.start()
        try:
            info = ready.result(timeout=self.timeout)
        except TimeoutError:
            self.close()
            raise HarnessError(
                f"the real-runtime harness did not start within {self.timeout:g} s"
            ) from None
        self.pyodide_version = info.get("pyodideVersion")
        return self

    def __enter__(self) -> RealRuntime:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            try:
                if proc.stdin is not None:
                    proc.stdin.write(json.dumps({"op": "close"}) + "\n")
                    proc.stdin.flush()
                    proc.stdin.close()
                proc.wait(timeout=10)
            except (OSError, ValueError, subprocess.TimeoutExpired):
                proc.kill()
                proc.wait()
            if self._reader is not None:
                self._reader.join(timeout=5)
            if proc.stdout is not None:
                proc.stdout.close()
        self._fail_pending("the real-runtime harness was closed")
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _fail_pending(self, message: str) -> None:
        for future in list(self._pending.values()):
            if not future.done():
                future.set_exception(HarnessError(message))
        self._pending.clear()

    def _write(self, message: Mapping[str, Any]) -> None:
        proc = self._proc
        if proc is None or proc.stdin is None:
            raise HarnessError("the real-runtime harness is not running")
        line = json.dumps(_pack(dict(message)), ensure_ascii=False) + "\n"
        with self._lock:
            try:
                proc.stdin.write(line)
                proc.stdin.flush()
            except (OSError, ValueError) as exc:
                raise HarnessError(f"the real-runtime harness stopped: {exc}") from None

    def _read(self) -> None:
        proc = self._proc
        assert proc is not None
        assert proc.stdout is not None
        for line in proc.stdout:
            try:
                message = _unpack(json.loads(line))
            except ValueError:
                continue
            ident = message.get("id")
            if isinstance(ident, str):  # Node asks us something
                self._pool.submit(self._answer, message)
                continue
            future = self._pending.pop(ident, None)
            if future is None or future.done():
                continue
            if message.get("ok"):
                future.set_result(message.get("value"))
            else:
                future.set_exception(self._error(message.get("error") or {}))
        code = proc.wait()
        self._fail_pending(f"the real-runtime harness exited with code {code}")

    @staticmethod
    def _error(error: Mapping[str, Any]) -> HarnessError:
        if error.get("name") == "PythonImportError":
            return BundleImportError(
                str(error.get("message")), str(error.get("module")), str(error.get("traceback"))
            )
        return HarnessError(f"{error.get('name', 'Error')}: {error.get('message', '')}")

    def _answer(self, message: Mapping[str, Any]) -> None:
        try:
            if message["op"] == "fetch":
                value = self._outbound(message)
            elif message["op"] == "ai":
                if self.ai is None:
                    raise RuntimeError("this run has no AI provider")
                value = asyncio.run(workers_ai_answer(self.ai, message["inputs"]))
            else:
                raise RuntimeError(f"unknown request {message['op']!r}")
            reply: dict[str, Any] = {"id": message["id"], "ok": True, "value": value}
        except Exception as exc:  # the answer is an error for the Worker, not a crash here
            reply = {"id": message["id"], "ok": False, "error": {"message": f"{exc}"}}
        try:
            self._write(reply)
        except HarnessError:
            pass

    def _outbound(self, message: Mapping[str, Any]) -> dict[str, Any]:
        url = message["url"]
        if self.http is None:
            raise RuntimeError(f"no HTTP mock answers {message['method']} {url}")
        body = base64.b64decode(message["body"]) if message.get("body") else None
        status, headers, content = self.http(message["method"], url, message["headers"], body)
        return {
            "status": status,
            "headers": headers,
            "body": base64.b64encode(content).decode() if content else None,
        }

    def call(self, op: str, timeout: float | None = None, **fields: Any) -> Any:
        """One request to the harness, answered within `timeout` (default: the runtime's)."""
        ident = next(self._ids)
        future: Future[Any] = Future()
        self._pending[ident] = future
        self._write({"id": ident, "op": op, **fields})
        try:
            return future.result(timeout=self.timeout if timeout is None else timeout)
        except TimeoutError:
            self._pending.pop(ident, None)
            raise HarnessError(
                f"the real-runtime harness did not answer {op!r} within "
                f"{self.timeout if timeout is None else timeout:g} s"
            ) from None

    # -- a bundle --------------------------------------------------------------------------------

    def load(
        self,
        bundle: Bundle,
        folder: str | os.PathLike[str],
        *,
        vars: Mapping[str, str] | None = None,
        persist: str | os.PathLike[str] | None = None,
    ) -> dict[str, Any]:
        """Load a written bundle (its Miniflare bindings, then its Python); returns the
        entrypoints found, the compatibility flags in effect and the Pyodide version."""
        config = {
            "bundleDir": str(Path(folder).resolve()),
            "mainModule": bundle.main_module,
            "compatibilityDate": bundle.compatibility_date,
            "compatibilityFlags": list(bundle.compatibility_flags),
            "workflows": [
                {"name": w.name, "binding": w.binding, "className": w.class_name}
                for w in bundle.workflows
            ],
            "d1": DB_BINDING if bundle.uses_db else None,
            "ai": AI_BINDING if bundle.uses_ai else None,
            "vars": dict(vars or {}),
        }
        info = self.call("load", config=config, persist=str(persist) if persist else None)
        self.bundle = bundle
        return dict(info)

    def _binding(self, workflow: str) -> str:
        if self.bundle is None:
            raise HarnessError("no bundle is loaded")
        for w in self.bundle.workflows:
            if w.name == workflow:
                return w.binding
        known = ", ".join(w.name for w in self.bundle.workflows)
        raise HarnessError(f"the bundle has no workflow {workflow!r} (it has: {known})")

    def reset_database(self, database: Any) -> None:
        """D1 as the flow's `DATABASE` describes it: every table dropped, then the schema and
        the seed rows applied."""
        existing = self.call("tables", binding=DB_BINDING)
        drops = [{"sql": f'DROP TABLE "{t}"', "params": []} for t in existing]
        if drops:
            defer = {"sql": "PRAGMA defer_foreign_keys = on", "params": []}
            self.call("seed", binding=DB_BINDING, statements=[defer, *drops])
        if database is not None:
            self.call("seed", binding=DB_BINDING, statements=seed_statements(database))

    def tables(self) -> dict[str, list[dict[str, Any]]]:
        return dict(self.call("tables", binding=DB_BINDING))

    def workflow(self, workflow: str, call: str, **fields: Any) -> Any:
        return self.call("workflow", binding=self._binding(workflow), call=call, fields=fields)

    def create(
        self, workflow: str, params: Any, *, id: str | None = None, fast: bool = False
    ) -> str:
        """Start an instance. `fast` skips its sleeps and retry delays with the engine's own
        test modifier (Cloudflare's vitest integration does the same); then `id` is needed."""
        options: dict[str, Any] = {"params": params}
        if id is not None:
            options["id"] = id
        if fast:
            if id is None:
                raise ValueError("fast=True needs an instance id")
            self.workflow(workflow, "modify", id=id, disableSleeps=True, disableRetryDelays=True)
        return str(self.workflow(workflow, "create", options=options)["id"])

    def status(self, workflow: str, id: str) -> dict[str, Any]:
        return dict(self.workflow(workflow, "status", id=id))

    def send_event(self, workflow: str, id: str, type: str, payload: Any) -> None:
        self.workflow(workflow, "sendEvent", id=id, event={"type": type, "payload": payload})

    def wait(
        self, workflow: str, id: str, *, timeout: float = 30.0, until: Iterable[str] = TERMINAL
    ) -> dict[str, Any]:
        """The instance's status once it reaches one of `until` (or `timedOut: true`)."""
        return dict(
            self.call(
                "wait",
                timeout=timeout + 10,
                binding=self._binding(workflow),
                instance=id,
                timeoutMs=int(timeout * 1000),
                until=list(until),
            )
        )

    def steps(self, id: str) -> list[tuple[str, str]]:
        """The step calls the newest run of an instance made: (kind, name), in order."""
        return [(kind, name) for kind, name in self.call("steps", instance=id)]

    def fetch(
        self,
        method: str,
        url: str,
        *,
        body: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[int, dict[str, str], str]:
        """A request to the Worker's `fetch` handler: (status, headers, body text)."""
        answer = self.call("fetch", method=method, url=url, body=body, headers=dict(headers or {}))
        return int(answer["status"]), dict(answer["headers"]), str(answer["body"])

    def scheduled(self, cron: str, scheduled_time: int) -> None:
        self.call("scheduled", cron=cron, scheduledTime=scheduled_time)

    def serve(self, port: int = 0) -> int:
        """Serve the Worker's HTTP API on 127.0.0.1:`port` (0: any free one); returns the port."""
        return int(self.call("serve", port=port)["port"])


def flow_http(spec: Any) -> HttpAnswer:
    """An outbound-HTTP answerer from a flow's `HTTP` mock (what `ctx.http` reaches in the
    simulator): the client a handler's `ctx.http` is in a test."""
    from awf_sim.testing import create_test_context

    def answer(
        method: str, url: str, headers: list[list[str]], body: bytes | None
    ) -> tuple[int, Any, bytes]:
        async def go() -> tuple[int, Any, bytes]:
            client = create_test_context(http=spec).http
            async with client:
                response = await client.request(
                    method, url, headers=[(k, v) for k, v in headers], content=body
                )
                return response.status_code, list(response.headers.items()), response.content

        return asyncio.run(go())

    return answer
