"""A client for the HTTP API of a Worker built by awf-deploy: `awf-deploy dev`'s local server or a
deployed Worker (`--local`, `--url BASE` of trigger, send-event, instances and status).

Routes (the generated `entry.py`, awf_deploy/runtime/awf_runtime/_front.py `fetch`):

    GET  /                                               the workflows this Worker runs
    POST /workflows/<name>/instances[?id=ID]              start one; the JSON body is its params
    GET  /workflows/<name>/instances/<id>                 its status, output and error
    POST /workflows/<name>/instances/<id>/events/<type>   send an event; the body is its payload
    GET  /workflows/<name>/instances                      (dev server only) the instances it saw

With `AWF_API_KEY` set, every request carries `Authorization: Bearer <key>`. Errors are
`WorkerApiError`: `NotListening` when nothing answers at the address.
"""

from __future__ import annotations

import os
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote

import httpx

from .errors import AwfDeployError

__all__ = [
    "API_KEY_ENV",
    "LOCAL_URL",
    "NotListening",
    "WorkerApi",
    "WorkerApiError",
]

LOCAL_URL = "http://127.0.0.1:8787"
API_KEY_ENV = "AWF_API_KEY"


class WorkerApiError(AwfDeployError):
    """A request to the Worker's API failed; `status` is the HTTP status (None: no answer)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class NotListening(WorkerApiError):
    """Nothing accepts connections at the base URL."""


def _segment(value: str) -> str:
    return quote(value, safe="")


class WorkerApi:
    """The Worker's HTTP API at `base_url` (`transport` is a test seam)."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        base = base_url.strip().rstrip("/")
        if not base.startswith(("http://", "https://")):
            raise ValueError(f"--url must start with http:// or https://, got {base_url!r}")
        self.base_url = base
        key = api_key if api_key is not None else os.environ.get(API_KEY_ENV) or None
        key = key.strip() if key else None
        if key and not all("!" <= ch <= "~" for ch in key):
            # Refused, not echoed: httpx's "Illegal header value" error would print the key.
            raise ValueError(
                f"{API_KEY_ENV} contains a space, a line break or another character no key "
                "has; set it to the key alone (no quotes, no line breaks)"
            )
        headers = {"authorization": f"Bearer {key}"} if key else {}
        self._http = httpx.Client(
            base_url=base, headers=headers, timeout=timeout, transport=transport
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    @property
    def is_local(self) -> bool:
        host = httpx.URL(self.base_url).host
        return host in ("127.0.0.1", "localhost", "::1")

    # -- calls ----------------------------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        """`GET /`: the script, its bundle hash and its workflows."""
        return dict(self._request("GET", "/"))

    def create(self, workflow: str, params: Any, instance_id: str | None = None) -> dict[str, Any]:
        """Start an instance; its `{"workflow", "id", "status"}`."""
        query = {"id": instance_id} if instance_id is not None else None
        created = self._request(
            "POST", f"/workflows/{_segment(workflow)}/instances", json=params, params=query
        )
        new_id = str(created["id"])
        try:
            status = self.instance(workflow, new_id).get("status", "queued")
        except WorkerApiError:
            status = "queued"
        return {"workflow": workflow, "id": new_id, "status": status}

    def instance(self, workflow: str, instance_id: str) -> dict[str, Any]:
        """An instance's status, output and error."""
        return dict(
            self._request(
                "GET", f"/workflows/{_segment(workflow)}/instances/{_segment(instance_id)}"
            )
        )

    def send_event(self, workflow: str, instance_id: str, type: str, payload: Any) -> None:
        self._request(
            "POST",
            f"/workflows/{_segment(workflow)}/instances/{_segment(instance_id)}"
            f"/events/{_segment(type)}",
            json=payload,
        )

    def list_instances(self, workflow: str) -> list[dict[str, Any]]:
        """The instances an `awf-deploy dev` server has seen (a deployed Worker cannot list)."""
        try:
            answer = self._request("GET", f"/workflows/{_segment(workflow)}/instances")
        except WorkerApiError as exc:
            if exc.status == 405:
                raise WorkerApiError(
                    f"{self.base_url} cannot list instances (only `awf-deploy dev` can): "
                    f"list a deployed workflow through the Cloudflare API, "
                    f"`awf-deploy instances {workflow}` without --url",
                    405,
                ) from None
            raise
        return [dict(row) for row in answer.get("instances", [])]

    # -- transport ------------------------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, str] | None = None,
    ) -> Any:
        try:
            response = self._http.request(
                method,
                path,
                params=params,
                content=None if json is None and method == "GET" else _dumps(json),
                headers={"content-type": "application/json"} if method != "GET" else None,
            )
        except httpx.ConnectError:
            hint = "start `awf-deploy dev FLOW.py`" if self.is_local else "check the URL"
            raise NotListening(f"nothing is listening on {self.base_url}: {hint}") from None
        except httpx.TimeoutException:
            raise WorkerApiError(f"{method} {self.base_url}{path}: no answer in time") from None
        except httpx.HTTPError as exc:
            raise WorkerApiError(f"{method} {self.base_url}{path}: {exc}") from None
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.is_success and isinstance(body, dict):
            return body
        if response.is_success or (response.status_code == 404 and body is None):
            # The awf front answers JSON, its 404s too: a page is some other server's.
            raise WorkerApiError(
                f"{method} {self.base_url}{path}: not the awf Worker API "
                f"(HTTP {response.status_code}, not a JSON object): {self._url_hint()}",
                response.status_code,
            )
        detail = body.get("error") if isinstance(body, dict) else None
        if not detail:
            detail = response.text.strip().splitlines()[0][:200] if response.text.strip() else ""
        hint = ""
        if response.status_code == 401:
            hint = f" (set {API_KEY_ENV} to the Worker's key)"
        raise WorkerApiError(
            f"{method} {path}: HTTP {response.status_code}: {detail}{hint}", response.status_code
        )

    def _url_hint(self) -> str:
        if self.base_url == LOCAL_URL:
            return (
                f"something else listens on {LOCAL_URL}: stop it, or run `awf-deploy dev "
                "FLOW.py --port N` and pass --url http://127.0.0.1:N"
            )
        return (
            "check --url: the Worker's base URL, as `awf-deploy dev` prints it or "
            "https://SCRIPT.SUBDOMAIN.workers.dev"
        )


def _dumps(value: Any) -> bytes:
    import json

    return json.dumps(value, ensure_ascii=False).encode()
