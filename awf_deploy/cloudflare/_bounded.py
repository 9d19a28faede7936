"""Bounds on what one Cloudflare answer may cost: time, bytes, decompressed bytes, nesting.

httpx's timeouts are per socket operation, so a server that sends a byte every few seconds never
trips them. Here every socket read and write of a request is cut to what is left of an overall
deadline (`DeadlineBackend`, an httpcore network backend), the body is read in chunks and
refused past a size cap, and gzip/deflate are decoded here, chunk by chunk with a bounded
output, so a small compressed body cannot expand into gigabytes (`read_body`).
"""

from __future__ import annotations

import json
import ssl
import threading
import time
import zlib
from collections.abc import Iterable, Iterator
from typing import Any, Final

import httpcore
import httpx

from ..errors import AwfDeployError

__all__ = [
    "ACCEPT_ENCODING",
    "MAX_JSON_DEPTH",
    "BodyTooLarge",
    "Deadline",
    "DeadlineBackend",
    "DeadlineExceeded",
    "json_depth_exceeds",
    "read_body",
]

# Only encodings this module can decode with a bounded output; httpx would also offer brotli
# and zstd when their packages are installed.
ACCEPT_ENCODING: Final = "gzip, deflate"
MAX_JSON_DEPTH: Final = 64


class DeadlineExceeded(AwfDeployError):
    """The request's overall deadline passed (the message says which one)."""


class BodyTooLarge(AwfDeployError):
    """The response body (after decompression) is larger than the cap."""


class Deadline:
    """The instant (monotonic) by which the current request must be done, per thread."""

    def __init__(self) -> None:
        self._local = threading.local()

    def set(self, at: float | None, what: str) -> None:
        self._local.at = at
        self._local.what = what

    def remaining(self) -> float | None:
        at: float | None = getattr(self._local, "at", None)
        if at is None:
            return None
        left = at - time.monotonic()
        if left <= 0:
            raise DeadlineExceeded(getattr(self._local, "what", "the deadline"))
        return left

    def clamp(self, timeout: float | None) -> float | None:
        left = self.remaining()
        if left is None:
            return timeout
        return left if timeout is None else min(timeout, left)


class _Stream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream, deadline: Deadline) -> None:
        self._inner = inner
        self._deadline = deadline

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, self._timeout(timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, self._timeout(timeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        inner = self._inner.start_tls(ssl_context, server_hostname, self._timeout(timeout))
        return _Stream(inner, self._deadline)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)

    def _timeout(self, timeout: float | None) -> float | None:
        try:
            return self._deadline.clamp(timeout)
        except DeadlineExceeded as exc:
            # httpcore maps this to httpx.ReadTimeout; the client reports the deadline.
            raise httpcore.ReadTimeout(str(exc)) from None


class DeadlineBackend(httpcore.NetworkBackend):
    """httpcore's synchronous backend with every operation cut to the deadline."""

    def __init__(self, deadline: Deadline) -> None:
        self._inner = httpcore.SyncBackend()
        self._deadline = deadline

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        try:
            timeout = self._deadline.clamp(timeout)
        except DeadlineExceeded as exc:
            raise httpcore.ConnectTimeout(str(exc)) from None
        stream = self._inner.connect_tcp(host, port, timeout, local_address, socket_options)
        return _Stream(stream, self._deadline)

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:  # pragma: no cover - the client never uses Unix sockets
        stream = self._inner.connect_unix_socket(path, timeout, socket_options)
        return _Stream(stream, self._deadline)

    def sleep(self, seconds: float) -> None:  # pragma: no cover
        self._inner.sleep(seconds)


def bounded_transport(deadline: Deadline, **kwargs: Any) -> httpx.HTTPTransport:
    """httpx's transport on the deadline backend (httpx offers no argument for it)."""
    transport = httpx.HTTPTransport(**kwargs)
    pool: Any = transport._pool
    if not hasattr(pool, "_network_backend"):  # pragma: no cover - an httpcore that moved it
        raise RuntimeError("httpcore's ConnectionPool has no _network_backend")
    pool._network_backend = DeadlineBackend(deadline)
    return transport


class _Decoder:
    def __init__(self, encoding: str, limit: int) -> None:
        self.limit = limit
        wbits = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS}.get(encoding)
        self._deflate = encoding == "deflate"
        self._z = zlib.decompressobj(wbits if wbits is not None else zlib.MAX_WBITS)
        self._first = True
        self._raw_checked = False

    def feed(self, data: bytes, room: int) -> Iterator[bytes]:
        """Decoded output, never more than `room + 1` bytes in total (enough to see it is over)."""
        if self._first and data:
            self._first = False
        if self._deflate and not self._raw_checked and data:
            self._raw_checked = True
            # Servers send "deflate" both zlib-wrapped and raw; zlib's header says which
            # (compression method 8 and a header checksum divisible by 31).
            wrapped = (
                len(data) >= 2 and (data[0] & 0x0F) == 8 and (data[0] << 8 | data[1]) % 31 == 0
            )
            if not wrapped:
                self._z = zlib.decompressobj(-zlib.MAX_WBITS)
        pending = data
        while True:
            out = self._z.decompress(pending, room + 1)
            if out:
                room -= len(out)
                yield out
                if room < 0:
                    return
            pending = self._z.unconsumed_tail
            if not pending:
                return

    def flush(self) -> bytes:
        tail = self._z.flush()
        if not self._first and not self._z.eof:  # an empty body (a 204) is no stream at all
            raise zlib.error("the compressed stream is truncated")
        return tail


def read_body(response: httpx.Response, deadline: Deadline, limit: int) -> bytes:
    """The streamed response's body, decoded, refusing more than `limit` bytes (compressed or
    not) and stopping at the deadline. Raises BodyTooLarge, DeadlineExceeded,
    httpx.DecodingError or an httpx transport error; closes the response."""
    if hasattr(response, "_content"):
        # Already read (a test transport's prebuilt response): httpx decoded it then.
        response.close()
        if len(response.content) > limit:
            raise BodyTooLarge(f"more than {limit} bytes")
        return response.content
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    decoder = None
    if encoding not in ("", "identity"):
        if encoding not in ("gzip", "x-gzip", "deflate"):
            response.close()
            raise httpx.DecodingError(f"unsupported Content-Encoding {encoding[:40]!r}")
        decoder = _Decoder(encoding, limit)
    chunks: list[bytes] = []
    size = 0
    raw_size = 0
    try:
        for raw in response.iter_raw():
            deadline.remaining()
            raw_size += len(raw)
            if raw_size > limit:
                raise BodyTooLarge(f"more than {limit} bytes")
            pieces = [raw] if decoder is None else decoder.feed(raw, limit - size)
            for piece in pieces:
                size += len(piece)
                if size > limit:
                    raise BodyTooLarge(f"more than {limit} bytes once decompressed")
                chunks.append(piece)
        if decoder is not None:
            tail = decoder.flush()
            size += len(tail)
            if size > limit:
                raise BodyTooLarge(f"more than {limit} bytes once decompressed")
            chunks.append(tail)
    except zlib.error as exc:
        raise httpx.DecodingError(f"the {encoding} body is corrupt ({exc})") from None
    finally:
        response.close()
    return b"".join(chunks)


def json_depth_exceeds(value: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether a parsed JSON value nests deeper than `limit` (iteratively: no recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Iterable[Any] = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def loads_bounded(text: str | bytes, limit: int = MAX_JSON_DEPTH) -> Any:
    """json.loads that raises ValueError (never RecursionError) for nesting past `limit`."""
    try:
        value = json.loads(text)
    except RecursionError:
        raise ValueError(f"JSON nested deeper than {limit} levels") from None
    if json_depth_exceeds(value, limit):
        raise ValueError(f"JSON nested deeper than {limit} levels")
    return value
