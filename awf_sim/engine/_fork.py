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

The wire format, the child's stand-in `ctx` objects and the parent's server are in
`_fork_wire`; `_runners.ForkRunner` is how the engine uses this module.
"""

from __future__ import annotations

import asyncio
import contextlib
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
import warnings
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractContextManager
from typing import Any, NoReturn

from awf_sim.dsl._identity import dump_result
from awf_sim.engine._ambient import NetworkAccessRefused
from awf_sim.engine._fork_wire import (
    IsolatedHandlerError,
    IsolationError,
    _await,
    _Channel,
    _ChildContext,
    _Deadline,
    _error_json,
    _Reader,
    _rebuild_error,
    _send,
    _Server,
    _write_all,
)
from awf_sim.engine._lifeline import die_with_parent, load_libc
from awf_sim.engine._limits import Limits

__all__ = ["IsolatedHandlerError", "IsolationError", "Limits", "run_isolated"]

_HEADER = struct.Struct(">I")
_CLONE_NEWNET = 0x40000000
_CLONE_NEWUSER = 0x10000000
_REAP_GRACE_SECONDS = 5.0


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
        die_with_parent(libc, parent_pid)  # instead of running on unsupervised
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
    libc = load_libc()
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
