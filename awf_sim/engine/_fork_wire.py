"""The wire between a forked handler attempt and its parent, and the parent's side of it.

Each message is a 4-byte big-endian length and that many bytes of ASCII JSON. Nothing is ever
unpickled: an exception crosses back as its class path and constructor arguments, rebuilt only
for classes of builtins, awf_sim and httpx that are already imported; anything else arrives as
`IsolatedHandlerError` with the original {name, message}, which is all the engine keeps of an
error anyway.

The child's `ctx.db`, `ctx.ai` and `ctx.http` are stand-ins that send each call to the parent
(`_Channel`); the parent's `_Server` runs it against the real objects, so database writes and
recorded effects land exactly where they would without isolation. `_fork` does the forking.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import inspect
import json
import math
import os
import select
import struct
import sys
import time
import traceback
from collections.abc import Awaitable, Callable, Mapping
from types import TracebackType
from typing import Any

import httpx

from awf_sim._coro import Resume
from awf_sim.errors import IsolatedHandlerError, IsolationError
from awf_sim.sdk._db import DatabaseError

__all__ = ["IsolatedHandlerError", "IsolationError"]

_HEADER = struct.Struct(">I")
_READ_CHUNK = 1 << 20
_BYTES_TAG = "__awf_bytes__"
# Rebuilding an exception runs its class's __init__ with arguments the other side chose, so
# only classes from these modules qualify, and only if already imported (never imported here).
_SAFE_MODULES = ("builtins", "awf_sim", "httpx")
_DB_METHODS = frozenset({"query", "query_one", "execute", "insert", "delete"})
_AI_METHODS = frozenset({"generate", "embed", "chat"})
# Recomputed by whichever side builds the message from its own content.
_HOP_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "content-encoding"})


def _pack(value: Any) -> Any:
    """A value as JSON can carry it: bytes (BLOB columns and params) are tagged base64."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {_BYTES_TAG: base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, Mapping):
        return {str(k): _pack(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_pack(v) for v in value]
    return value


def _unpack(value: Any) -> Any:
    if isinstance(value, dict):
        if len(value) == 1 and _BYTES_TAG in value:
            return base64.b64decode(value[_BYTES_TAG])
        return {k: _unpack(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unpack(v) for v in value]
    return value


def _safe_str(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:
        return f"<{type(exc).__name__} whose str() failed>"


def _name_message(exc: BaseException) -> tuple[str, str]:
    # As `_calls.error_of`, but str() of an exception from the child's code may itself fail.
    name = getattr(exc, "name", None)
    message = getattr(exc, "message", None)
    if isinstance(name, str) and isinstance(message, str):
        return name, message
    return type(exc).__name__, _safe_str(exc)


def _error_json(exc: BaseException, with_traceback: bool = False) -> dict[str, Any]:
    name, message = _name_message(exc)
    cls = type(exc)
    data: dict[str, Any] = {
        "name": name,
        "message": message,
        "module": cls.__module__,
        "qualname": cls.__qualname__,
    }
    try:
        reduced = exc.__reduce__()
        if isinstance(reduced, tuple) and reduced[0] is cls:
            args = list(reduced[1])
            json.dumps(args)
            data["args"] = args
            state = reduced[2] if len(reduced) > 2 else None
            if isinstance(state, dict) and state:
                json.dumps(state)
                data["state"] = state
    except Exception:
        pass  # the class is rebuilt from {name, message} alone
    if with_traceback:
        data["traceback"] = "".join(traceback.format_exception(exc))
    return data


def _safe_class(module_name: Any, qualname: Any) -> type[Exception] | None:
    if not isinstance(module_name, str) or not isinstance(qualname, str):
        return None
    if not any(module_name == m or module_name.startswith(m + ".") for m in _SAFE_MODULES):
        return None
    node: Any = sys.modules.get(module_name)
    for part in qualname.split("."):
        if node is None or part.startswith("<"):
            return None
        node = getattr(node, part, None)
    if isinstance(node, type) and issubclass(node, Exception):
        return node
    return None


def _rebuild_error(data: Mapping[str, Any]) -> Exception:
    name, message = str(data.get("name")), str(data.get("message"))
    cls = _safe_class(data.get("module"), data.get("qualname"))
    exc: Exception | None = None
    if cls is not None and isinstance(data.get("args"), list):
        try:
            exc = cls(*data["args"])
            state = data.get("state")
            if isinstance(state, dict):
                exc.__dict__.update(state)
        except Exception:
            exc = None
    if exc is None or _name_message(exc) != (name, message):
        exc = IsolatedHandlerError(name, message)
    text = data.get("traceback")
    if isinstance(text, str):
        exc.add_note(f"raised in the isolated handler process:\n{text.rstrip()}")
    return exc


# --- framing -------------------------------------------------------------------------------


class _Deadline(Exception):
    pass


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _send(fd: int, message: Mapping[str, Any]) -> None:
    body = json.dumps(message, separators=(",", ":")).encode("ascii")
    _write_all(fd, _HEADER.pack(len(body)) + body)


class _Reader:
    """Reads whole messages; with a deadline, waits with poll() so it can give up."""

    __slots__ = ("_deadline", "_fd", "_poll")

    def __init__(self, fd: int, deadline: float | None) -> None:
        self._fd = fd
        self._deadline = deadline
        self._poll: Any = None
        if deadline is not None:
            self._poll = select.poll()
            self._poll.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)

    def _read(self, n: int) -> bytes:
        if self._poll is not None and self._deadline is not None:
            while True:
                left = self._deadline - time.monotonic()
                if left <= 0:
                    raise _Deadline
                if self._poll.poll(max(1, math.ceil(left * 1000))):
                    break
        return os.read(self._fd, n)

    def _exact(self, n: int) -> bytes | None:
        chunks: list[bytes] = []
        while n:
            chunk = self._read(min(n, _READ_CHUNK))
            if not chunk:
                return None
            chunks.append(chunk)
            n -= len(chunk)
        return b"".join(chunks)

    def message(self) -> dict[str, Any] | None:
        """The next message, or None when the other side closed its end."""
        header = self._exact(_HEADER.size)
        if header is None:
            return None
        body = self._exact(_HEADER.unpack(header)[0])
        if body is None:
            return None
        message: dict[str, Any] = json.loads(body)
        return message


# --- the child -----------------------------------------------------------------------------


class _Channel:
    """The child's end of the RPC: one blocking call at a time."""

    __slots__ = ("_out", "_reader")

    def __init__(self, out_fd: int, in_fd: int) -> None:
        self._out = out_fd
        self._reader = _Reader(in_fd, None)

    def call(self, target: str, method: str, *args: Any, **kwargs: Any) -> Any:
        _send(
            self._out,
            {
                "op": "call",
                "target": target,
                "method": method,
                "args": _pack(args),
                "kwargs": _pack(kwargs),
            },
        )
        reply = self._reader.message()
        if reply is None:
            raise IsolationError("crash", "the parent process closed the isolation channel")
        if "error" in reply:
            raise _rebuild_error(reply["error"])
        return _unpack(reply.get("ok"))


class _RemoteTransaction:
    __slots__ = ("_channel", "_id")

    def __init__(self, channel: _Channel) -> None:
        self._channel = channel
        self._id: int | None = None

    async def __aenter__(self) -> _RemoteTransaction:
        if self._id is not None:
            # What the real Transaction says; the parent would happily open a second one.
            raise DatabaseError("this transaction was already used; call transaction() again")
        self._id = self._channel.call("db", "__tx_begin__")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._channel.call("tx", "__tx_end__", self._id, exc_type is None)

    async def query(self, sql: str, params: Any = ()) -> Any:
        return self._channel.call("tx", "query", self._id, sql, params)

    async def query_one(self, sql: str, params: Any = ()) -> Any:
        return self._channel.call("tx", "query_one", self._id, sql, params)

    async def execute(self, sql: str, params: Any = ()) -> Any:
        return self._channel.call("tx", "execute", self._id, sql, params)

    async def insert(self, table: str, row: Mapping[str, Any]) -> Any:
        return self._channel.call("tx", "insert", self._id, table, row)

    async def delete(self, table: str, id: Any) -> Any:
        return self._channel.call("tx", "delete", self._id, table, id)


class _RemoteDatabase:
    """`ctx.db` in the child: every call runs in the parent, against the real database."""

    __slots__ = ("_channel", "step")

    def __init__(self, channel: _Channel, step: str | None) -> None:
        self._channel = channel
        self.step = step

    async def query(self, sql: str, params: Any = ()) -> Any:
        return self._channel.call("db", "query", sql, params)

    async def query_one(self, sql: str, params: Any = ()) -> Any:
        return self._channel.call("db", "query_one", sql, params)

    async def execute(self, sql: str, params: Any = ()) -> Any:
        return self._channel.call("db", "execute", sql, params)

    async def insert(self, table: str, row: Mapping[str, Any]) -> Any:
        return self._channel.call("db", "insert", table, row)

    async def delete(self, table: str, id: Any) -> Any:
        return self._channel.call("db", "delete", table, id)

    def transaction(self) -> _RemoteTransaction:
        return _RemoteTransaction(self._channel)


class _RemoteAI:
    __slots__ = ("_channel",)

    def __init__(self, channel: _Channel) -> None:
        self._channel = channel

    async def generate(
        self,
        *,
        system: str | None = None,
        prompt: str,
        schema: Mapping[str, Any] | None = None,
    ) -> Any:
        return self._channel.call("ai", "generate", system=system, prompt=prompt, schema=schema)

    async def embed(self, text: str) -> Any:
        return self._channel.call("ai", "embed", text)

    async def chat(self, messages: Any) -> Any:
        # As it is: the parent's ctx.ai checks it and gives the usual errors.
        return self._channel.call("ai", "chat", messages)


class _RemoteTransport(httpx.AsyncBaseTransport):
    """The child's ctx.http transport: the parent's ctx.http sends the request."""

    __slots__ = ("_channel",)

    def __init__(self, channel: _Channel) -> None:
        self._channel = channel

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        headers = [[k, v] for k, v in request.headers.multi_items() if k not in _HOP_HEADERS]
        try:
            answer = self._channel.call(
                "http", "request", request.method, str(request.url), headers, body
            )
        except httpx.RequestError as exc:
            # Rebuilt without its request, which handlers may read (exc.request).
            raise type(exc)(str(exc), request=request) from None
        except IsolatedHandlerError as exc:
            # httpx's own errors need the request to be rebuilt; handlers catch them by class.
            cls = _safe_class("httpx", exc.name)
            if cls is not None and issubclass(cls, httpx.RequestError):
                raise cls(exc.message, request=request) from None
            raise
        return httpx.Response(
            answer["status"], headers=answer["headers"], content=answer["body"], request=request
        )


class _ChildContext:
    """`ctx` inside the isolated process: copies of env/attempt/step/idempotency_key, and
    db/ai/http that forward to the parent."""

    __slots__ = ("_channel", "_http", "ai", "attempt", "db", "env", "idempotency_key", "step")

    def __init__(self, snapshot: Mapping[str, Any], channel: _Channel) -> None:
        self._channel = channel
        self.env = snapshot["env"]
        self.attempt = snapshot["attempt"]
        self.step = snapshot["step"]
        self.idempotency_key = snapshot["idempotency_key"]
        self.db = _RemoteDatabase(channel, snapshot["db_step"])
        self.ai = _RemoteAI(channel)
        self._http: httpx.AsyncClient | None = None

    @property
    def http(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(
                transport=_RemoteTransport(self._channel), trust_env=False
            )
        return self._http

    def __repr__(self) -> str:
        path = self.step.get("path") if isinstance(self.step, Mapping) else None
        return f"<ctx step={path} attempt={self.attempt} isolated>"


async def _await(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


# --- the parent's side ---------------------------------------------------------------------


class _Server:
    """Serves the child's calls against the parent's real ctx objects."""

    __slots__ = ("_ctx", "_loop", "_open_txs", "_run_call", "_txs")

    def __init__(
        self, ctx: Any, run_call: Callable[[Callable[[], Awaitable[Any]]], Any] | None
    ) -> None:
        self._ctx = ctx
        self._run_call = run_call
        self._loop: asyncio.AbstractEventLoop | None = None
        # Ended transactions stay, so that using one afterwards gets the real error.
        self._txs: list[Any] = []
        self._open_txs: set[int] = set()

    def _run(self, make: Callable[[], Any]) -> Any:
        if self._run_call is not None:
            return self._run_call(make)
        outer = asyncio.events._get_running_loop()
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
        loop = self._loop
        # Most calls never suspend (db, deterministic AI, synchronous mocks): drive them with
        # send(None) under our loop as the running one, which costs no loop iteration, and
        # give the loop only the rest.
        asyncio.events._set_running_loop(loop)
        try:
            result = make()
            if not inspect.isawaitable(result):
                return result
            coro = _await(result)
            try:
                first = coro.send(None)
            except StopIteration as stop:
                return stop.value
        finally:
            asyncio.events._set_running_loop(outer)
        if outer is not None:
            coro.close()
            raise RuntimeError(
                "an isolated handler's ctx call suspended on a thread that runs an event "
                "loop; call run_isolated from a worker thread, or pass run_call="
            )
        return loop.run_until_complete(_await(Resume(coro, first)))

    def handle(self, message: Mapping[str, Any]) -> dict[str, Any]:
        try:
            value = self._dispatch(
                str(message.get("target")),
                str(message.get("method")),
                _unpack(message.get("args") or []),
                _unpack(message.get("kwargs") or {}),
            )
            return {"ok": _pack(value)}
        except Exception as exc:
            return {"error": _error_json(exc)}

    def _dispatch(self, target: str, method: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
        ctx = self._ctx
        if target == "db" and method in _DB_METHODS:
            db = ctx.db
            return self._run(lambda: getattr(db, method)(*args, **kwargs))
        if target == "db" and method == "__tx_begin__":
            tx = ctx.db.transaction()
            self._run(tx.__aenter__)
            self._txs.append(tx)
            self._open_txs.add(len(self._txs) - 1)
            return len(self._txs) - 1
        if target == "tx" and args and isinstance(args[0], int) and 0 <= args[0] < len(self._txs):
            tx_id, rest = args[0], args[1:]
            if method == "__tx_end__":
                return self._end_tx(tx_id, commit=bool(rest and rest[0]))
            if method in _DB_METHODS:
                tx = self._txs[tx_id]
                return self._run(lambda: getattr(tx, method)(*rest, **kwargs))
        if target == "ai" and method in _AI_METHODS:
            ai = ctx.ai
            return self._run(lambda: getattr(ai, method)(*args, **kwargs))
        if target == "http" and method == "request" and len(args) == 4:
            return self._http(*args)
        raise IsolationError(
            "crash", f"the isolated handler made an unknown call {target}.{method}"
        )

    def _end_tx(self, tx_id: int, *, commit: bool) -> None:
        if tx_id not in self._open_txs:
            return
        self._open_txs.discard(tx_id)
        tx = self._txs[tx_id]
        if commit:
            self._run(lambda: tx.__aexit__(None, None, None))
        else:
            # Any exception makes the transaction roll back; which one does not matter.
            error = RuntimeError("the isolated handler left the transaction with an error")
            self._run(lambda: tx.__aexit__(RuntimeError, error, None))

    def _http(self, method: str, url: str, headers: list[list[str]], body: bytes) -> Any:
        client: httpx.AsyncClient = self._ctx.http
        pairs = [(k, v) for k, v in headers]

        async def send() -> httpx.Response:
            return await client.request(method, url, headers=pairs, content=body)

        response = self._run(send)
        return {
            "status": response.status_code,
            "headers": [[k, v] for k, v in response.headers.multi_items() if k not in _HOP_HEADERS],
            "body": response.content,
        }

    def close(self) -> None:
        # A child that died inside a transaction leaves it open: roll it back, as a crash
        # would have.
        for tx_id in sorted(self._open_txs, reverse=True):
            with contextlib.suppress(Exception):
                self._end_tx(tx_id, commit=False)
        if self._loop is not None:
            loop, self._loop = self._loop, None
            try:
                # On a thread that runs a loop ours never ran, so it has no executor to stop.
                if asyncio.events._get_running_loop() is None:
                    loop.run_until_complete(loop.shutdown_default_executor())
            finally:
                loop.close()
