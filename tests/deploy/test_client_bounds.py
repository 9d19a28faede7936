"""The client's bounds on one answer: size before and after decompression, encodings, nesting,
deadlines, the base URL. (The hostile-server versions are in tests/reliability.)"""

from __future__ import annotations

import gzip
import json
import time
import zlib
from collections.abc import Iterator

import httpx
import pytest

from awf_deploy.cloudflare import CloudflareClient
from awf_deploy.cloudflare._errors import ConfigError, TransportError, UnexpectedResponse

ACCOUNT = "0123456789abcdef0123456789abcdef"
TOKEN = "tok-bounds-0123456789"
OK = json.dumps(
    {"success": True, "errors": [], "messages": [], "result": {"id": "t", "status": "active"}}
).encode()


class Chunks(httpx.SyncByteStream):
    def __init__(self, chunks: list[bytes], pause: float = 0.0) -> None:
        self._chunks = chunks
        self._pause = pause

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._chunks:
            if self._pause:
                time.sleep(self._pause)
            yield chunk


def client(
    body: httpx.SyncByteStream, headers: dict[str, str] | None = None, **kw: object
) -> CloudflareClient:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.headers["accept-encoding"] == "gzip, deflate"
        return httpx.Response(200, headers=headers or {}, stream=body)

    options: dict[str, object] = {"max_retries": 0, "sleep": lambda s: None, **kw}
    return CloudflareClient(TOKEN, ACCOUNT, transport=httpx.MockTransport(handler), **options)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("encoding", "data"),
    [
        ("gzip", gzip.compress(OK)),
        ("deflate", zlib.compress(OK)),
        ("deflate", zlib.compress(OK)[2:-4]),  # raw deflate, as some servers send it
        ("identity", OK),
    ],
)
def test_encodings_are_decoded_in_chunks(encoding: str, data: bytes) -> None:
    chunks = [data[i : i + 7] for i in range(0, len(data), 7)]
    with client(Chunks(chunks), {"Content-Encoding": encoding}) as c:
        assert c.verify_token().status == "active"


def test_decompressed_size_is_capped() -> None:
    bomb = gzip.compress(b" " * (8 * 1024 * 1024))
    with (
        client(Chunks([bomb]), {"Content-Encoding": "gzip"}, max_response_bytes=1 << 20) as c,
        pytest.raises(TransportError, match=r"too large .*once decompressed"),
    ):
        c.verify_token()


def test_raw_size_is_capped() -> None:
    with (
        client(Chunks([b" " * 4096] * 300), max_response_bytes=1 << 20) as c,
        pytest.raises(TransportError, match="too large"),
    ):
        c.verify_token()


@pytest.mark.parametrize("encoding", ["br", "zstd", "compress"])
def test_unasked_encodings_are_refused(encoding: str) -> None:
    with (
        client(Chunks([b"xx"]), {"Content-Encoding": encoding}) as c,
        pytest.raises(TransportError, match="could not be decoded"),
    ):
        c.verify_token()


def test_corrupt_gzip_is_one_error() -> None:
    with (
        client(Chunks([b"\x1f\x8b\x08\x00garbage"]), {"Content-Encoding": "gzip"}) as c,
        pytest.raises(TransportError, match="corrupt"),
    ):
        c.verify_token()


def test_deep_json_is_not_json() -> None:
    with (
        client(Chunks([b"[" * 100_000, b"]" * 100_000])) as c,
        pytest.raises(UnexpectedResponse, match="not JSON"),
    ):
        c.verify_token()


def test_a_slow_body_stops_at_the_request_deadline() -> None:
    with client(Chunks([b" "] * 100, pause=0.05), request_deadline=0.5) as c:
        started = time.monotonic()
        with pytest.raises(TransportError, match=r"request deadline \(0.5 s\)"):
            c.verify_token()
    assert time.monotonic() - started < 2


@pytest.mark.parametrize("url", ["", "example.com", "ftp://example.com", "https://", "::"])
def test_base_url_must_be_http(url: str) -> None:
    with pytest.raises(ConfigError, match="not an http\\(s\\) URL") as caught:
        CloudflareClient(TOKEN, ACCOUNT, base_url=url)
    assert "\n" not in caught.value.message


@pytest.mark.parametrize(
    "kw", [{"request_deadline": 0}, {"command_deadline": -1}, {"max_response_bytes": 0}]
)
def test_bounds_must_be_positive(kw: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=r"positive|>= 1"):
        CloudflareClient(TOKEN, ACCOUNT, **kw)  # type: ignore[arg-type]
