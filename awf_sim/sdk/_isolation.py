"""Opt-in process isolation: one handler attempt in a forked child with limits and no network.

`run_isolated(invoke, ctx, limits)` forks. The child sets its limits (CPU time, address space),
cuts itself off the network, runs `invoke(child_ctx)` on a fresh event loop and sends the
result back as JSON over a pipe. While it waits, the parent serves the child's `ctx.db`,
`ctx.ai` and `ctx.http` calls against the real objects (a small RPC over a second pipe), so
database writes land in the parent's database and AI calls and HTTP requests are recorded in
the parent's effect log, exactly as without isolation.

Why fork rather than spawn: handlers are closures and bound methods that cannot be pickled,
and the child must see the same modules, mocks and environment as the parent. Linux only.

Nothing the child sends is unpickled: messages are JSON, and an exception crosses back as its
class path and constructor arguments, rebuilt only for classes of builtins, awf_sim and httpx
that are already imported. Anything else arrives as `IsolatedHandlerError` with the original
{name, message}, which is all the engine keeps of an error anyway.

Wire format: each message is a 4-byte big-endian length and that many bytes of ASCII JSON.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ctypes
import inspect
import json
import math
import os
import select
import signal
import socket
import struct
import sys
import time
import traceback
import warnings
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from types import TracebackType
from typing import Any, NoReturn

import httpx

from awf_sim._coro import Resume
from awf_sim.dsl._errors import AwfError, DefinitionError
from awf_sim.dsl._identity import dump_result
from awf_sim.sdk._db import DatabaseError

__all__ = ["IsolatedHandlerError", "IsolationError", "Limits", "run_isolated"]

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
_CLONE_NEWNET = 0x40000000
_CLONE_NEWUSER = 0x10000000
_PR_SET_PDEATHSIG = 1
_REAP_GRACE_SECONDS = 5.0


@dataclass(frozen=True)
class Limits:
    """Limits of one isolated handler attempt.

    `cpu_seconds`: CPU time (user + system) of the child. `memory_mb`: address space the
    handler may add to what the child inherits from the parent at fork (RLIMIT_AS). A thread
    the handler starts reserves stack and malloc arena space against it. `wall_seconds`:
    real time, for handlers that block without using CPU (None: no limit).
    """

    cpu_seconds: float = 10.0
    memory_mb: int = 512
    wall_seconds: float | None = 60.0

    def __post_init__(self) -> None:
        for name in ("cpu_seconds", "memory_mb", "wall_seconds"):
            value = getattr(self, name)
            if value is None and name == "wall_seconds":
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise DefinitionError(f"Limits.{name} must be a positive number, got {value!r}")


class IsolationError(AwfError):
    """An isolated attempt broke a limit or its process died; the engine retries it like any
    failure. `limit` is "cpu", "memory", "wall", "crash" or "unsupported"."""

    def __init__(self, limit: str, message: str) -> None:
        self.limit = limit
        super().__init__(message)

    def __reduce__(self) -> tuple[type[IsolationError], tuple[str, str]]:
        return (type(self), (self.limit, str(self)))


class IsolatedHandlerError(AwfError):
    """A handler exception from the child whose class cannot be rebuilt in the parent.

    `name` and `message` are the original's (the engine's `error_of` reads them), so the
    attempt fails with the same {name, message} as without isolation.
    """

    def __init__(self, name: str, message: str) -> None:
        self.name = name
        self.message = message
        super().__init__(message)

    def __str__(self) -> str:
        return f"{self.name}: {self.message}"

    def __reduce__(self) -> tuple[type[IsolatedHandlerError], tuple[str, str]]:
        return (type(self), (self.name, self.message))


# --- JSON payloads and errors -------------------------------------------------------------


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
    # The engine's error_of, repeated here: sdk must not import the engine.
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


_libc: Any = None


def _load_libc() -> Any:
    # Loaded in the parent, once, so that the child does not pay for dlopen.
    global _libc
    if _libc is None:
        try:
            _libc = ctypes.CDLL(None, use_errno=True)
        except OSError:
            _libc = False
    return _libc


def _leave_network(libc: Any) -> None:
    """An empty network namespace, where the kernel itself refuses every connection (also
    from native code and subprocesses). Best effort: it needs CAP_SYS_ADMIN or unprivileged
    user namespaces; the Python-level refusal below applies either way."""
    if not libc:
        return
    with contextlib.suppress(Exception):
        if libc.unshare(_CLONE_NEWNET) != 0:
            libc.unshare(_CLONE_NEWUSER | _CLONE_NEWNET)


def _refuse_python_network() -> None:
    from awf_sim.engine._ambient import NetworkAccessRefused

    inet = {socket.AF_INET, getattr(socket, "AF_INET6", socket.AF_INET)}

    def where(address: Any) -> str:
        if isinstance(address, tuple) and len(address) >= 2:
            host = address[0]
            return f"[{host}]:{address[1]}" if ":" in str(host) else f"{host}:{address[1]}"
        return repr(address)

    def connect(self: socket.socket, address: Any) -> NoReturn:
        raise NetworkAccessRefused(where(address), "connect to")

    def sendto(self: socket.socket, data: Any, *args: Any) -> int:
        if self.family in inet:
            raise NetworkAccessRefused(where(args[-1]) if args else "?", "send to")
        return real_sendto(self, data, *args)

    def create_connection(address: Any, *args: Any, **kwargs: Any) -> NoReturn:
        raise NetworkAccessRefused(where(address), "connect to")

    def resolve(host: Any, *args: Any, **kwargs: Any) -> NoReturn:
        port = args[0] if args else ""
        raise NetworkAccessRefused(f"{host}:{port}" if port else str(host), "resolve")

    real_sendto = socket.socket.sendto
    sock: Any = socket.socket
    sock.connect = connect
    sock.connect_ex = connect
    sock.sendto = sendto
    module: Any = socket
    module.create_connection = create_connection
    module.getaddrinfo = resolve
    module.gethostbyname = resolve
    module.gethostbyname_ex = resolve


def _apply_limits(limits: Limits) -> int:
    """Sets the child's limits; returns its address-space budget in bytes."""
    import resource

    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # SIGXCPU would otherwise dump core
    # ITIMER_PROF counts CPU time with sub-second precision; its SIGPROF ends the process.
    # RLIMIT_CPU (whole seconds) stays as a backstop for a handler that catches SIGPROF.
    signal.signal(signal.SIGPROF, signal.SIG_DFL)
    signal.signal(signal.SIGXCPU, signal.SIG_DFL)
    signal.setitimer(signal.ITIMER_PROF, limits.cpu_seconds)
    soft = math.ceil(limits.cpu_seconds) + 1
    _, cpu_hard = resource.getrlimit(resource.RLIMIT_CPU)
    if cpu_hard == resource.RLIM_INFINITY:
        cpu_hard = soft + 1
    resource.setrlimit(resource.RLIMIT_CPU, (min(soft, cpu_hard), cpu_hard))
    budget = _vm_size() + limits.memory_mb * 1024 * 1024
    _, as_hard = resource.getrlimit(resource.RLIMIT_AS)
    if as_hard != resource.RLIM_INFINITY:
        budget = min(budget, as_hard)
    resource.setrlimit(resource.RLIMIT_AS, (budget, budget))
    return budget


def _vm_size() -> int:
    """The address space mapped right now (what the child inherited)."""
    with open("/proc/self/statm", "rb") as statm:
        pages = int(statm.read().split()[0])
    return pages * os.sysconf("SC_PAGE_SIZE")


async def _await(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


def _run_handler(
    invoke: Callable[[Any], Any],
    ctx: _ChildContext,
    scope: Callable[[], AbstractContextManager[Any]] | None,
) -> Any:
    with scope() if scope is not None else contextlib.nullcontext():
        result = invoke(ctx)
        if not inspect.isawaitable(result):
            return result
        # The fork may have come from a thread that runs a loop; this process runs its own.
        asyncio.events._set_running_loop(None)
        loop = asyncio.new_event_loop()
        try:
            return loop.run_until_complete(_await(result))
        finally:
            loop.close()


def _child(
    invoke: Callable[[Any], Any],
    snapshot: Mapping[str, Any],
    limits: Limits,
    out_fd: int,
    in_fd: int,
    scope: Callable[[], AbstractContextManager[Any]] | None,
    parent_pid: int,
    libc: Any,
) -> NoReturn:
    # Built before any limit applies: after a MemoryError there may be no room to build it.
    memory_message = json.dumps({"op": "limit", "limit": "memory"}).encode("ascii")
    memory_frame = _HEADER.pack(len(memory_message)) + memory_message
    code = 0
    try:
        if libc:
            # Die with the parent thread instead of running on unsupervised.
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
            if os.getppid() != parent_pid:
                os._exit(1)
        _leave_network(libc)
        _refuse_python_network()
        _apply_limits(limits)
        ctx = _ChildContext(snapshot, _Channel(out_fd, in_fd))
        value = _run_handler(invoke, ctx, scope)
        path = snapshot["step"].get("path") if isinstance(snapshot["step"], Mapping) else None
        text = dump_result(value, root=f"result of {path}" if path else "result")
        _send(out_fd, {"op": "result", "json": text})
    except MemoryError:
        with contextlib.suppress(BaseException):
            _write_all(out_fd, memory_frame)
    except BaseException as exc:
        try:
            _send(out_fd, {"op": "error", "error": _error_json(exc, with_traceback=True)})
        except BaseException:
            code = 70
    finally:
        with contextlib.suppress(BaseException):
            sys.stdout.flush()
            sys.stderr.flush()
        # Never return into the parent's code (pytest, the engine...): leave right here,
        # without atexit handlers or finalizers that belong to the parent.
        os._exit(code)


# --- the parent ----------------------------------------------------------------------------


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


def _snapshot(ctx: Any) -> dict[str, Any]:
    db = getattr(ctx, "_db", None)
    return {
        "env": getattr(ctx, "env", {}),
        "attempt": getattr(ctx, "attempt", 1),
        "step": dict(getattr(ctx, "step", None) or {}),
        "idempotency_key": getattr(ctx, "idempotency_key", None),
        "db_step": getattr(db, "step", None) if db is not None else None,
    }


def _reap(pid: int, grace: float) -> tuple[int, Any]:
    """Waits for the child (killing it after `grace` seconds); returns (status, rusage)."""
    done, status, usage = os.wait4(pid, os.WNOHANG)
    if done:
        return status, usage
    if grace > 0:
        reaped = _wait_exit(pid, grace)
        if reaped is not None:
            return reaped
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    _, status, usage = os.wait4(pid, 0)
    return status, usage


def _wait_exit(pid: int, timeout: float) -> tuple[int, Any] | None:
    """Reaps the child if it exits within `timeout`; None if it did not."""
    try:
        # A pidfd becomes readable the moment the process exits: no polling delay.
        fd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        deadline = time.monotonic() + timeout
        pause = 0.0002
        while time.monotonic() < deadline:
            time.sleep(pause)
            pause = min(pause * 2, 0.02)
            done, status, usage = os.wait4(pid, os.WNOHANG)
            if done:
                return status, usage
        return None
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        poller.poll(math.ceil(timeout * 1000))
    finally:
        os.close(fd)
    done, status, usage = os.wait4(pid, os.WNOHANG)
    return (status, usage) if done else None


def _death_error(status: int, usage: Any, limits: Limits) -> IsolationError:
    cpu_used = usage.ru_utime + usage.ru_stime
    cpu_text = f"handler exceeded the CPU-time limit of {limits.cpu_seconds} s (process isolation)"
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        if sig in (signal.SIGPROF, signal.SIGXCPU):
            return IsolationError("cpu", cpu_text)
        if sig == signal.SIGKILL and cpu_used >= limits.cpu_seconds * 0.95:
            return IsolationError("cpu", cpu_text)
        if sig == signal.SIGKILL and usage.ru_maxrss * 1024 >= limits.memory_mb * 1024 * 1024:
            return IsolationError(
                "memory",
                f"handler exceeded the memory limit of {limits.memory_mb} MB "
                "(process isolation; killed by the kernel)",
            )
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = str(sig)
        return IsolationError(
            "crash", f"the isolated handler process died from signal {name} (process isolation)"
        )
    code = os.waitstatus_to_exitcode(status)
    return IsolationError(
        "crash",
        f"the isolated handler process exited with status {code} before sending a result "
        "(process isolation)",
    )


def run_isolated(
    invoke: Callable[[Any], Awaitable[Any] | Any],
    ctx: Any,
    limits: Limits | None = None,
    *,
    scope: Callable[[], AbstractContextManager[Any]] | None = None,
    run_call: Callable[[Callable[[], Awaitable[Any]]], Any] | None = None,
) -> Any:
    """Runs `invoke(child_ctx)` in a forked child under `limits`; returns its result, which
    crossed back as JSON. Blocks: call it from a worker thread, not the simulator's loop.

    Raises what the handler raised (rebuilt from {name, message}: NonRetryableError stays
    one), SerializationError for a result that is not JSON, or IsolationError when a limit
    was broken or the child died. `scope`: a context manager factory entered in the child
    around the handler (the engine's simulation scope). `run_call`: how the parent runs one
    awaitable call of the child's ctx.db/ai/http (default: a private event loop on this
    thread); pass one that hands it to the simulator's loop to keep those objects on it.
    """
    limits = limits if limits is not None else Limits()
    if not sys.platform.startswith("linux") or not hasattr(os, "fork"):
        raise IsolationError(
            "unsupported",
            f"process isolation needs Linux (fork, setrlimit); this is {sys.platform}. "
            "Run without isolation='process'.",
        )
    snapshot = _snapshot(ctx)
    libc = _load_libc()
    to_parent_r, to_parent_w = os.pipe()
    try:
        to_child_r, to_child_w = os.pipe()
    except BaseException:
        os.close(to_parent_r)
        os.close(to_parent_w)
        raise
    # Unflushed output would be written twice: once by each process.
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    parent_pid = os.getpid()
    try:
        with warnings.catch_warnings():
            # Python 3.12+ warns about fork in a threaded process; the child only runs the
            # handler and this module's code, then os._exit()s.
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
    except BaseException:
        for fd in (to_parent_r, to_parent_w, to_child_r, to_child_w):
            os.close(fd)
        raise
    if pid == 0:  # pragma: no cover - the child's coverage is not collected
        try:
            os.close(to_parent_r)
            os.close(to_child_w)
        finally:
            _child(invoke, snapshot, limits, to_parent_w, to_child_r, scope, parent_pid, libc)
    os.close(to_parent_w)
    os.close(to_child_r)
    server = _Server(ctx, run_call)
    reaped = False
    try:
        deadline = None if limits.wall_seconds is None else time.monotonic() + limits.wall_seconds
        reader = _Reader(to_parent_r, deadline)
        while True:
            try:
                message = reader.message()
            except _Deadline:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                _reap(pid, 0)
                reaped = True
                raise IsolationError(
                    "wall",
                    f"handler exceeded the wall-clock limit of {limits.wall_seconds} s "
                    "(process isolation)",
                ) from None
            if message is None:
                status, usage = _reap(pid, _REAP_GRACE_SECONDS)
                reaped = True
                raise _death_error(status, usage, limits)
            op = message.get("op")
            if op == "call":
                reply = server.handle(message)
                try:
                    _send(to_child_w, reply)
                except BrokenPipeError:
                    pass  # the child died; the next read sees the end of its pipe
                except (TypeError, ValueError) as exc:
                    # The answer was not JSON (a custom ctx.db returning objects, say).
                    with contextlib.suppress(BrokenPipeError):
                        _send(to_child_w, {"error": _error_json(exc)})
                continue
            status, usage = _reap(pid, _REAP_GRACE_SECONDS)
            reaped = True
            if op == "result":
                return json.loads(message["json"])
            if op == "error":
                raise _rebuild_error(message["error"])
            if op == "limit" and message.get("limit") == "memory":
                raise IsolationError(
                    "memory",
                    f"handler exceeded the memory limit of {limits.memory_mb} MB "
                    "(process isolation)",
                )
            raise IsolationError("crash", f"the isolated handler sent an unknown message {op!r}")
    finally:
        if not reaped:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            _reap(pid, 0)
        os.close(to_parent_r)
        os.close(to_child_w)
        server.close()
