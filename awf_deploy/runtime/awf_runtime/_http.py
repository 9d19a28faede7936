"""`ctx.http` on Cloudflare: httpx when it is vendored, else a client over the runtime's fetch."""

from __future__ import annotations

import importlib
import json
import json as _json_module
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlencode

from ._js import _ffi

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
