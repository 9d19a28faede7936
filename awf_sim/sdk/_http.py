"""`ctx.http`: an `httpx.AsyncClient` whose transport is a mock, never the network.

The mock is what the test gives: a `respx.Router`, an httpx transport (`httpx.MockTransport`)
or a function from request to response (sync or async). Every request is recorded in the
`EffectLog` before it is handed to the mock, so a request that fails still counts as an effect
that was attempted. A request nothing answers raises `UnmockedRequest`, naming method and URL.

A synchronous mock answers without suspending the handler's coroutine (httpx itself only
suspends where a stream or the transport does), so the engine's `coro.send(None)` fast path
still applies. A respx router is resolved directly (`Router.aresolve`), never through respx's
global patching of httpx, so two simulators with different routers never see each other's.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import re
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeAlias, Union

import httpx

if TYPE_CHECKING:
    import respx

from awf_sim.errors import UnmockedRequest
from awf_sim.sdk._effects import EffectLog

__all__ = ["HttpMock", "UnmockedRequest", "http_problem", "make_http_client", "request_summary"]

# Union[...] rather than |: "respx.Router" must stay a string at runtime, because respx is
# only imported when a router is actually given.
HttpMock: TypeAlias = Union[
    "respx.Router",
    httpx.AsyncBaseTransport,
    httpx.BaseTransport,
    Callable[[httpx.Request], "httpx.Response | Awaitable[httpx.Response]"],
]
_Dispatch = Callable[[httpx.Request], Awaitable[httpx.Response]]

# Headers httpx adds by itself: the same on every request, so they are noise in a report.
_DEFAULT_HEADERS = frozenset(
    {"host", "accept", "accept-encoding", "connection", "user-agent", "content-length"}
)
# Header and query parameter names whose values are credentials; an idempotency key is not one.
_SECRET_NAME = re.compile(
    r"auth|token|secret|passw|cookie|signature|^sig$|api[-_]?key|^key$|private", re.IGNORECASE
)
_REDACTED = "<redacted>"
# Bodies up to this size appear in the summary as they are; bigger ones by their digest, so
# summaries stay short enough to diff.
_SUMMARY_BODY_MAX = 2048
_DETAIL_BODY_MAX = 65536


def _canonical_body(request: httpx.Request) -> tuple[str | None, str | None]:
    """(text, sha256) of the body: JSON re-encoded with sorted keys, other UTF-8 text as it
    is, anything else only by digest."""
    content = request.content
    if not content:
        return None, None
    digest = hashlib.sha256(content).hexdigest()
    if "json" in request.headers.get("content-type", ""):
        try:
            parsed = json.loads(content)
        except ValueError:
            pass
        else:
            text = json.dumps(parsed, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
            return text, digest
    try:
        return content.decode("utf-8"), digest
    except UnicodeDecodeError:
        return None, digest


def _is_secret(name: str) -> bool:
    return _SECRET_NAME.search(name) is not None and "idempotency" not in name.lower()


def _redacted_url(url: httpx.URL) -> str:
    if not url.query or not any(_is_secret(name) for name in url.params):
        return str(url)
    params = [(k, _REDACTED if _is_secret(k) else v) for k, v in url.params.multi_items()]
    return str(url.copy_with(params=params))


def request_summary(request: httpx.Request) -> tuple[str, dict[str, Any]]:
    """The stable one-line summary of a request and the JSON detail the log keeps.

    Credentials (Authorization, cookies, API keys, in headers or the query) are redacted.
    """
    method = request.method
    url = _redacted_url(request.url)
    text, digest = _canonical_body(request)
    if text is not None and len(text) <= _SUMMARY_BODY_MAX:
        summary = f"{method} {url} {text}"
    elif digest is not None:
        summary = f"{method} {url} sha256:{digest}"
    else:
        summary = f"{method} {url}"
    headers = {
        name: _REDACTED if _is_secret(name) else value
        for name, value in request.headers.items()
        if name not in _DEFAULT_HEADERS
    }
    detail: dict[str, Any] = {"method": method, "url": url, "headers": headers}
    if text is not None and len(text) <= _DETAIL_BODY_MAX:
        detail["body"] = text
    if digest is not None:
        detail["body_sha256"] = digest
        detail["body_bytes"] = len(request.content)
    return summary, detail


def _unmocked(request: httpx.Request, reason: str | None = None) -> UnmockedRequest:
    # The message ends up in timelines and reports: no credentials in it either.
    return UnmockedRequest(request.method, _redacted_url(request.url), reason)


def _checked(response: Any, request: httpx.Request) -> httpx.Response:
    if not isinstance(response, httpx.Response):
        raise TypeError(
            f"ctx.http: the mock answered {request.method} {request.url} with "
            f"{type(response).__name__}; it must return an httpx.Response"
        )
    if not isinstance(response.stream, httpx.AsyncByteStream):
        # A response built for a sync client: AsyncClient can only read async streams.
        sync_stream: Any = response.stream
        response.stream = httpx.ByteStream(b"".join(sync_stream))
    return response


def _respx_dispatch(router: Any) -> _Dispatch:
    from respx.models import AllMockedAssertionError, PassThrough

    async def dispatch(request: httpx.Request) -> httpx.Response:
        try:
            resolved = await router.aresolve(request)
        except AllMockedAssertionError:
            raise _unmocked(request) from None
        except PassThrough:
            raise _unmocked(
                request, "pass-through is not allowed in the simulator (no network) for"
            ) from None
        return _checked(resolved.response, request)

    return dispatch


def _dispatch_for(mock: HttpMock | None) -> _Dispatch:
    if mock is None:

        async def refuse(request: httpx.Request) -> httpx.Response:
            raise _unmocked(request)

        return refuse
    problem = http_problem(mock)
    if problem is not None:
        raise TypeError(problem)
    respx = sys.modules.get("respx")
    if respx is not None and isinstance(mock, respx.Router):
        return _respx_dispatch(mock)
    if isinstance(mock, httpx.AsyncBaseTransport):
        transport = mock

        async def via_async_transport(request: httpx.Request) -> httpx.Response:
            return _checked(await transport.handle_async_request(request), request)

        return via_async_transport
    if isinstance(mock, httpx.BaseTransport):
        sync_transport = mock

        async def via_sync_transport(request: httpx.Request) -> httpx.Response:
            return _checked(sync_transport.handle_request(request), request)

        return via_sync_transport
    if callable(mock):
        handler = mock

        async def via_function(request: httpx.Request) -> httpx.Response:
            response = handler(request)
            if inspect.isawaitable(response):
                response = await response
            return _checked(response, request)

        return via_function
    raise AssertionError(f"http_problem passed {mock!r}")  # pragma: no cover


def http_problem(mock: Any) -> str | None:
    """What is wrong with `mock` as what ctx.http reaches, or None. Asked when the mock is
    given, not only at the first request of every attempt of every step."""
    if mock is None:
        return None
    respx = sys.modules.get("respx")
    if respx is not None and isinstance(mock, respx.Router):
        return None
    if isinstance(mock, (httpx.AsyncHTTPTransport, httpx.HTTPTransport)):
        return (
            f"ctx.http: {type(mock).__name__} reaches the real network; in the simulator give "
            "a respx.Router, an httpx.MockTransport or a function from request to response"
        )
    if isinstance(mock, (httpx.AsyncBaseTransport, httpx.BaseTransport)) or callable(mock):
        return None
    return (
        f"ctx.http: cannot use {type(mock).__name__} as a mock; give a respx.Router, an httpx "
        "transport (httpx.MockTransport) or a function from httpx.Request to httpx.Response"
    )


class _RecordingTransport(httpx.AsyncBaseTransport):
    __slots__ = ("_dispatch", "_log")

    def __init__(self, dispatch: _Dispatch, log: EffectLog) -> None:
        self._dispatch = dispatch
        self._log = log

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        summary, detail = request_summary(request)
        self._log.record("http", summary, detail)
        return await self._dispatch(request)

    async def aclose(self) -> None:
        # The mock belongs to the test, which may share it between attempts and simulators.
        pass


def make_http_client(mock: HttpMock | None, log: EffectLog) -> httpx.AsyncClient:
    """The `ctx.http` client: requests go to `mock` and are recorded in `log`.

    `mock`: a `respx.Router`, an `httpx.AsyncBaseTransport`/`BaseTransport` (not a real
    network transport), a function `request -> response` (sync or async), or None (every
    request raises `UnmockedRequest`).
    """
    # trust_env=False: environment proxies would mount real transports next to the mock, and
    # reading ~/.netrc is I/O the simulator must not depend on.
    return httpx.AsyncClient(
        transport=_RecordingTransport(_dispatch_for(mock), log), trust_env=False
    )
