"""A hostile HTTP server on 127.0.0.1: each answer is a scripted misbehaviour.

`HostileServer(behaviour)` serves every connection with `behaviour(conn)` (raw socket writes)
on a daemon thread; it listens only on 127.0.0.1, and `close()` (or leaving the `with`) stops
it. A connection is closed after its behaviour returns; the server also stops by itself after
`lifetime` seconds, so a test that forgets it cannot leave it behind.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import socket
import threading
import time
import zlib
from collections.abc import Callable
from typing import Any

Behaviour = Callable[[socket.socket], None]


class HostileServer:
    def __init__(self, behaviour: Behaviour, *, lifetime: float = 30.0) -> None:
        self._behaviour = behaviour
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self._listener.settimeout(0.2)
        self.port = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/client/v4"
        self.requests = 0
        self._stop = threading.Event()
        self._ends = time.monotonic() + lifetime
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set() and time.monotonic() < self._ends:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                continue
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()
        self._listener.close()

    def _handle(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            try:
                _read_request(conn)
                self.requests += 1
                if not self._stop.is_set():
                    self._behaviour(conn)
            except OSError:
                pass

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def __enter__(self) -> HostileServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _read_request(conn: socket.socket) -> None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            return
        body += chunk


def head(
    status: int = 200, headers: dict[str, str] | None = None, length: int | None = None
) -> bytes:
    lines = [f"HTTP/1.1 {status} X"]
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    if length is not None:
        lines.append(f"Content-Length: {length}")
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def respond(body: bytes, status: int = 200, headers: dict[str, str] | None = None) -> Behaviour:
    def behaviour(conn: socket.socket) -> None:
        conn.sendall(
            head(status, {"Content-Type": "application/json", **(headers or {})}, len(body)) + body
        )

    return behaviour


def respond_json(value: Any, status: int = 200) -> Behaviour:
    return respond(json.dumps(value).encode(), status)


def envelope(result: Any) -> bytes:
    return json.dumps({"success": True, "errors": [], "messages": [], "result": result}).encode()


def trickle(interval: float, *, in_headers: bool = False) -> Behaviour:
    """A byte every `interval` seconds, forever (until the client gives up)."""

    def behaviour(conn: socket.socket) -> None:
        if not in_headers:
            conn.sendall(head(200, {"Content-Type": "application/json"}, 1_000_000))
        while True:
            conn.sendall(b" " if not in_headers else b"X")
            time.sleep(interval)

    return behaviour


def silence(seconds: float) -> Behaviour:
    def behaviour(conn: socket.socket) -> None:
        time.sleep(seconds)

    return behaviour


def close_at_once() -> Behaviour:
    def behaviour(conn: socket.socket) -> None:
        with contextlib.suppress(OSError):
            conn.shutdown(socket.SHUT_RDWR)

    return behaviour


def gzip_bomb(decompressed: int) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = b"\0" * (1 << 20)
    parts = [compressor.compress(block) for _ in range(decompressed >> 20)]
    parts.append(compressor.flush())
    return b"".join(parts)


def gzipped(body: bytes) -> bytes:
    return gzip.compress(body)


def nested_json(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def respond_raw(data: bytes) -> Behaviour:
    def behaviour(conn: socket.socket) -> None:
        conn.sendall(data)

    return behaviour
