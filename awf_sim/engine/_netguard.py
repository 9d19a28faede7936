"""The network guard of a simulation scope: no real connection, datagram, bind, lookup or
process start while a simulation runs on this thread (or in work handed on with its context,
or in a thread started inside it, while the scope lasts).

It works at the lowest layer Python offers in-process: an audit hook (`sys.addaudithook`, PEP
578), which CPython's C socket module calls before it connects, sends a datagram, binds or
resolves, whatever the Python-level entry point (`_socket` included), and which `subprocess`,
`os.system`, `os.exec*`, `os.spawn*` and `os.posix_spawn` call before starting a program.
Patches on `socket.socket.connect`, `socket.create_connection` and `socket.getaddrinfo` give
the usual entry points their familiar messages; `_posixsubprocess.fork_exec` (multiprocessing's
spawn) raises no audit event and is patched too. The opt-in process isolation (`_fork`) adds
the operating system's own refusal (a network namespace) on top. `_ambient.simulation_scope`
opens a `scope()` here beside its virtual clock.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import os
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

from awf_sim.errors import NetworkAccessRefused

__all__ = ["ensure", "install", "scope"]


class _Guard:
    """One scope's network guard: threads started inside the scope keep a reference, and
    the guard stops refusing when the scope ends."""

    __slots__ = ("alive",)

    def __init__(self) -> None:
        self.alive = True


class _State(threading.local):
    # A class attribute is every thread's default, so a read never needs a hasattr check.
    guard: _Guard | None = None


_state = _State()
# Work handed to a thread with the context (asyncio.to_thread) is guarded too.
_guard_context: contextvars.ContextVar[_Guard | None] = contextvars.ContextVar(
    "awf_sim_network_guard", default=None
)


@contextlib.contextmanager
def scope() -> Iterator[None]:
    """Refuse the network and process starts on this thread (and its context) until exit."""
    outer_guard = _state.guard
    outer_context = _guard_context.get()
    guard = _Guard()
    _state.guard = guard
    _guard_context.set(guard)
    try:
        yield
    finally:
        guard.alive = False
        # set(), not reset(token): reset fails when exit runs in another context copy.
        _guard_context.set(outer_context)
        _state.guard = outer_guard


_INET_FAMILIES = frozenset(
    family
    for family in (getattr(socket, "AF_INET", None), getattr(socket, "AF_INET6", None))
    if family is not None
)


def _target(host: Any, port: Any) -> str:
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if isinstance(host, str) and ":" in host:
        return f"[{host}]:{port}"
    return f"{host}:{port}"


def _address(address: Any) -> str:
    if isinstance(address, tuple) and len(address) >= 2:
        return _target(address[0], address[1])
    return repr(address)


def _guard_connect(real: Callable[..., Any]) -> Callable[..., Any]:
    def connect(self: socket.socket, address: Any) -> Any:
        if _guarded() and self.family in _INET_FAMILIES:
            raise NetworkAccessRefused(_address(address), "connect to")
        return real(self, address)

    return connect


def _guard_create_connection(real: Callable[..., Any]) -> Callable[..., Any]:
    def create_connection(address: Any, *args: Any, **kwargs: Any) -> Any:
        if _guarded():
            raise NetworkAccessRefused(_address(address), "connect to")
        return real(address, *args, **kwargs)

    return create_connection


def _guard_getaddrinfo(real: Callable[..., Any]) -> Callable[..., Any]:
    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if _guarded():
            raise NetworkAccessRefused(_target(host, port), "resolve")
        return real(host, port, *args, **kwargs)

    return getaddrinfo


_audit_installed = False
# Where the Python-level guards go: (owner, attribute, wrapper factory). Each guard closes over
# the function it replaced, so putting guards back after another patch (see
# `_ensure_network_guard`) never mistakes a guard for the real function.
_PATCHES: tuple[tuple[Any, str, Callable[[Callable[..., Any]], Callable[..., Any]]], ...] = (
    (socket.socket, "connect", _guard_connect),
    (socket.socket, "connect_ex", _guard_connect),
    (socket, "create_connection", _guard_create_connection),
    (socket, "getaddrinfo", _guard_getaddrinfo),
)


def _is_guard(function: Any) -> bool:
    return getattr(function, "_awf_network_guard", False) is True


def _http_target(request: Any) -> str:
    """`GET https://host/path` of an httpcore request; the query is left out, as it may carry
    credentials."""
    url = request.url
    port = f":{url.port}" if url.port is not None else ""
    path = url.target.split(b"?", 1)[0]
    origin = f"{url.scheme.decode()}://{url.host.decode()}{port}"
    return f"{request.method.decode()} {origin}{path.decode('ascii', 'replace')}"


def _guard_async_http(real: Callable[..., Any]) -> Callable[..., Any]:
    async def handle_async_request(self: Any, request: Any) -> Any:
        if _guarded():
            raise NetworkAccessRefused(_http_target(request), "send")
        return await real(self, request)

    return handle_async_request


def _guard_sync_http(real: Callable[..., Any]) -> Callable[..., Any]:
    def handle_request(self: Any, request: Any) -> Any:
        if _guarded():
            raise NetworkAccessRefused(_http_target(request), "send")
        return real(self, request)

    return handle_request


_httpcore_guarded = False


def _install_httpcore() -> None:
    """A client of the user's own (`httpx.AsyncClient()`) is refused where httpcore opens a
    connection, before it takes the connection's lock: anyio's lock opens a cancel scope, and a
    handler resumed on another task than it started on (the engine starts a handler without a
    Task of its own) failed with anyio's "Attempted to exit cancel scope in a different task"
    instead of this refusal. The pool above stays as it is, so `respx.mock`, which patches the
    pool, still answers first. Wrapped once: the connection classes are also respx's targets,
    and wrapping respx's temporary patch would outlive it. Done once httpx is imported (httpx
    imports httpcore only when a client is built): httpcore is then a small import more."""
    global _httpcore_guarded
    _httpcore_guarded = True
    from httpcore import AsyncHTTPConnection, HTTPConnection

    for owner, name, factory in (
        (AsyncHTTPConnection, "handle_async_request", _guard_async_http),
        (HTTPConnection, "handle_request", _guard_sync_http),
    ):
        current = getattr(owner, name)
        if not _is_guard(current):
            guard: Any = functools.wraps(current)(factory(current))
            guard._awf_network_guard = True
            setattr(owner, name, guard)


def install() -> None:
    global _audit_installed
    if not _httpcore_guarded and "httpx" in sys.modules:
        _install_httpcore()
    for owner, name, factory in _PATCHES:
        current = getattr(owner, name)
        if _is_guard(current):
            continue
        guard: Any = functools.wraps(current)(factory(current))
        guard._awf_network_guard = True
        setattr(owner, name, guard)
    if not _audit_installed:
        # The patches above give the familiar messages for the common entry points; the audit
        # hook below is what makes the guard hold for every other one. It cannot be removed,
        # so it is added once and costs one set lookup per audited event outside a scope.
        _audit_installed = True
        _install_thread_inheritance()
        _install_spawn_guard()
        sys.addaudithook(_audit)


def _current_guard() -> _Guard | None:
    """The live guard on this thread: its own scope's, or the one the thread inherited (a
    pool thread may hold a finished scope's guard and run a later scope's work)."""
    guard = _state.guard
    if guard is not None and guard.alive:
        return guard
    guard = _guard_context.get()
    return guard if guard is not None and guard.alive else None


def _guarded() -> bool:
    """Whether network and process starts are refused on this thread now."""
    return _current_guard() is not None


def _family(sock: Any) -> Any:
    try:
        return sock.family
    except Exception:  # a half-built socket object
        return None


def _argv(value: Any) -> str:
    parts = value if isinstance(value, (list, tuple)) else [value]
    text = " ".join(os.fsdecode(part) if isinstance(part, bytes) else str(part) for part in parts)
    return repr(text if len(text) <= 80 else text[:77] + "...")


_SOCKET_EVENTS = frozenset({"socket.connect", "socket.sendto", "socket.sendmsg", "socket.bind"})
_RESOLVE_EVENTS = frozenset(
    {
        "socket.getaddrinfo",
        "socket.gethostbyname",
        "socket.gethostbyaddr",
        "socket.getnameinfo",
    }
)
_SPAWN_EVENTS = frozenset(
    {"subprocess.Popen", "os.system", "os.posix_spawn", "os.spawn", "os.exec", "os.startfile"}
)
_AUDITED = _SOCKET_EVENTS | _RESOLVE_EVENTS | _SPAWN_EVENTS
_OPERATIONS = {
    "socket.connect": "connect to",
    "socket.sendto": "send to",
    "socket.sendmsg": "send to",
    "socket.bind": "listen on",
}


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event not in _AUDITED or not _guarded():
        return
    if event in _SOCKET_EVENTS:
        if len(args) < 2 or args[1] is None or _family(args[0]) not in _INET_FAMILIES:
            return
        raise NetworkAccessRefused(_address(args[1]), _OPERATIONS[event])
    if event in _RESOLVE_EVENTS:
        if event == "socket.getaddrinfo" and len(args) >= 2:
            raise NetworkAccessRefused(_target(args[0], args[1]), "resolve")
        raise NetworkAccessRefused(str(args[0]) if args else "?", "resolve")
    # Starting a program: whatever it does is outside this process and its guard.
    if event == "subprocess.Popen":
        what = args[1] if len(args) > 1 and args[1] is not None else args[0]
    elif event == "os.system":
        what = args[0]
    elif event in ("os.posix_spawn", "os.exec"):
        what = args[1] if len(args) > 1 else args[0]
    elif event == "os.spawn":
        what = args[2] if len(args) > 2 else args[1]
    else:
        what = args[0] if args else "?"
    raise NetworkAccessRefused(
        f"{_argv(what)} (a process started from a simulation would be outside its network "
        "guard; mock what it does instead)",
        "start the process",
    )


def _install_thread_inheritance() -> None:
    """Threads started inside a scope carry its guard while the scope lasts."""
    import _thread as low

    for owner, name in (
        (low, "start_new_thread"),
        (low, "start_joinable_thread"),
        (threading, "_start_new_thread"),
        (threading, "_start_joinable_thread"),
    ):
        real = getattr(owner, name, None)
        if real is None or getattr(real, "_awf_guarded", False):
            continue
        setattr(owner, name, _inheriting(real))


def _inheriting(real: Callable[..., Any]) -> Callable[..., Any]:
    def start(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        guard = _current_guard()
        if guard is not None:
            target = function

            def function(*inner_args: Any, **inner_kwargs: Any) -> Any:
                _state.guard = guard
                return target(*inner_args, **inner_kwargs)

        return real(function, *args, **kwargs)

    start._awf_guarded = True  # type: ignore[attr-defined]
    functools.update_wrapper(start, real)
    return start


def _install_spawn_guard() -> None:
    """`_posixsubprocess.fork_exec` (what multiprocessing's spawn uses) raises no audit event."""
    try:
        import _posixsubprocess
    except ImportError:  # not POSIX
        return
    real = _posixsubprocess.fork_exec

    def fork_exec(*args: Any, **kwargs: Any) -> Any:
        if _guarded():
            raise NetworkAccessRefused(
                f"{_argv(args[0] if args else '?')} (a process started from a simulation "
                "would be outside its network guard; mock what it does instead)",
                "start the process",
            )
        return real(*args, **kwargs)

    module: Any = _posixsubprocess
    module.fork_exec = fork_exec


def ensure() -> None:
    """Put the guard back if something replaced it since (a test's monkeypatch undoing its own
    socket patch restores the function it saw, which may predate the guard): a simulation must
    never reach the network, whatever else patched `socket`. (The audit hook cannot be undone;
    the patches give the usual entry points their messages.)"""
    if not all(_is_guard(getattr(owner, name)) for owner, name, _ in _PATCHES):
        install()
    elif not _httpcore_guarded and "httpx" in sys.modules:
        _install_httpcore()
