"""The Cloudflare v4 HTTP client: one httpx.Client, one retry loop, one error boundary.

Every call goes through ``_send`` (retries, backoff, logging) and every non-2xx answer through
``_error_for`` (the mapping to ``_errors``), so behaviour is uniform across the API surface.
Paths, methods and bodies follow ``workflows-deploy-subset.json`` (Cloudflare's own schema);
the tests validate each request the client can send against it.
"""

from __future__ import annotations

import email.parser
import email.policy
import email.utils
import hmac
import json
import logging
import math
import os
import re
import time
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Final, Self, TypeVar, cast, get_args
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ValidationError

from ._bounded import (
    ACCEPT_ENCODING,
    BodyTooLarge,
    Deadline,
    DeadlineExceeded,
    bounded_transport,
    loads_bounded,
    read_body,
)
from ._errors import (
    AuthError,
    CloudflareError,
    ConfigError,
    NotFoundError,
    RateLimitedError,
    RequestRejected,
    ServerError,
    TransportError,
    UnexpectedResponse,
)
from ._models import (
    ApiMessage,
    D1Database,
    D1QueryResult,
    Envelope,
    InstanceDetails,
    InstanceInfo,
    InstanceStatus,
    InstanceStatusAction,
    InstanceStatusChange,
    Schedule,
    Script,
    TokenVerification,
    UploadedScript,
    WorkflowInfo,
)

__all__ = [
    "ACCOUNT_ID_ENV",
    "API_TOKEN_ENV",
    "BASE_URL_ENV",
    "DEFAULT_BASE_URL",
    "CloudflareClient",
    "Secret",
]

logger = logging.getLogger("awf_deploy.cloudflare")

DEFAULT_BASE_URL: Final = "https://api.cloudflare.com/client/v4"
API_TOKEN_ENV: Final = "CLOUDFLARE_API_TOKEN"
ACCOUNT_ID_ENV: Final = "CLOUDFLARE_ACCOUNT_ID"
BASE_URL_ENV: Final = "CLOUDFLARE_API_BASE_URL"

# Token permission names as the dashboard shows them; the schema's x-api-token-group puts
# every Workflows call under the Workers Scripts group, not a Workflows-specific one.
_SCRIPTS_WRITE: Final = "Workers Scripts Write"
_SCRIPTS_READ: Final = "Workers Scripts Read"
_D1_WRITE: Final = "D1 Write"
_D1_READ: Final = "D1 Read"
_D1_NAME = re.compile(r"[a-z0-9][a-z0-9\-_]*")

_TOKENS_PAGE: Final = "https://dash.cloudflare.com/profile/api-tokens"

# Name rules from the schema; checking them here turns a Cloudflare 400 into a local
# ValueError that names the offending argument.
_SCRIPT_NAME = re.compile(r"[a-z0-9_][a-z0-9\-_]*")
VENDOR_PREFIX = "python_modules/"
_WORKFLOW_NAME = re.compile(r"[a-zA-Z0-9_][a-zA-Z0-9\-_]*")
_ACCOUNT_ID = re.compile(r"[A-Za-z0-9]{1,32}")
_STATUS_ACTIONS: Final = get_args(InstanceStatusAction)

# 7000/7003 mean "no route": a 404 carrying them points at a wrong account id, not at a
# missing script or workflow, so get_script/get_workflow must not read it as "absent".
_ROUTING_CODES: Final = frozenset({7000, 7003})

_CODE_HINTS: Final[Mapping[int, str]] = {
    1000: (
        "Cloudflare does not recognise this API token. If it is an account-owned token, "
        "note that /user/tokens/verify only accepts user tokens."
    ),
    10001: "Cloudflare did not accept the upload's content type.",
    10021: (
        "Cloudflare could not validate the uploaded script: check that main_module names an "
        "uploaded module and that compatibility_flags include python_workers."
    ),
    10027: "The script bundle is larger than Cloudflare allows.",
    10075: "This needs the Workers Paid plan.",
    10208: "Cron triggers on a workflow need the Workers Paid plan.",
}

_MAX_PAGES: Final = 1000
# Bounds on one command's HTTP (README, "What the HTTP client bounds").
DEFAULT_REQUEST_DEADLINE: Final = 120.0  # seconds, one request from connect to the last byte
DEFAULT_COMMAND_DEADLINE: Final = 900.0  # seconds, every request and retry of one client
DEFAULT_MAX_RESPONSE_BYTES: Final = 32 * 1024 * 1024  # a body, compressed or decompressed
_PER_PAGE: Final = 100
_D1_PER_PAGE: Final = 100  # the schema allows 10 to 10,000

M = TypeVar("M", bound=BaseModel)


class Secret:
    """A string that never shows itself: ``str`` and ``repr`` print ``***``.

    Use ``get_secret_value()`` at the one place the real value is needed.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str | Secret) -> None:
        self._value = value.get_secret_value() if isinstance(value, Secret) else value

    def get_secret_value(self) -> str:
        return self._value

    def __str__(self) -> str:
        return "***"

    def __repr__(self) -> str:
        return "Secret('***')"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)


class _BearerAuth(httpx.Auth):
    # An httpx.Auth rather than a default header keeps the token out of the client's
    # header mapping, which is what other code is likely to inspect or log.
    def __init__(self, token: Secret) -> None:
        self._token = token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self._token.get_secret_value()}"
        yield request

    def __repr__(self) -> str:
        return "_BearerAuth(token=***)"


@dataclass(frozen=True)
class _Call:
    method: str
    path: str
    what: str  # human description, e.g. "upload of script 'shop'"
    permission: str | None
    # Whether repeating the request after an ambiguous failure (timeout, 5xx) is harmless.
    # Non-idempotent calls are only retried when the request provably was not processed.
    idempotent: bool = True


def module_content_type(path: str) -> str:
    """A Python Worker module's part type, as wrangler sends it: the Worker's own files as
    Python; under ``python_modules/`` (pywrangler's vendor folder) the SDK's JavaScript under
    ``workers/`` as ES modules, which the SDK imports at run time, and every other file as data,
    which the runtime puts on Python's path."""
    if path.startswith(VENDOR_PREFIX):
        if path.startswith(VENDOR_PREFIX + "workers/") and path.endswith((".js", ".mjs")):
            return "application/javascript+module"
        return "application/octet-stream"
    return "text/x-python"


def _segment(value: str) -> str:
    return quote(value, safe="")


def _check_name(kind: str, value: str, pattern: re.Pattern[str], max_len: int) -> None:
    if not isinstance(value, str) or not (0 < len(value) <= max_len):
        raise ValueError(f"{kind} must be a string of 1 to {max_len} characters, got {value!r}")
    if not pattern.fullmatch(value):
        raise ValueError(f"{kind} {value!r} must match {pattern.pattern}")


def _parse_retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def _split_multipart(content_type: str, body: bytes) -> dict[str, str]:
    head = f"Content-Type: {content_type}\r\n\r\n".encode("latin-1")
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    modules: dict[str, str] = {}
    for index, part in enumerate(cast(Any, message).iter_parts()):
        name = part.get_param("name", header="content-disposition")
        name = email.utils.collapse_rfc2231_value(name) if name else f"part-{index}"
        payload = part.get_payload(decode=True) or b""
        modules[name] = payload.decode("utf-8", errors="replace")
    return modules


class CloudflareClient:
    """A small synchronous client for the Workers and Workflows calls a deploy needs.

    ``transport`` is the test seam (``httpx.MockTransport``, respx); ``sleep`` lets tests see
    the backoff without waiting. 429, 5xx and transport failures are retried up to
    ``max_retries`` times: after ``Retry-After`` seconds when Cloudflare sends it, otherwise
    after 0.5·2ⁿ s. A ``Retry-After`` beyond ``max_retry_after`` is not waited out: the
    client raises ``RateLimitedError`` at once (Cloudflare blocks a token for 5 minutes once
    it is over its limit, and a CLI should say so rather than hang). Calls that are not
    idempotent (creating an instance without an id, sending an event, restarting an
    instance) are retried only on 429 and on connection failures, where Cloudflare has
    provably not acted on them.

    ``get_script`` and ``get_workflow`` return ``None`` when the resource does not exist,
    because a deploy plan treats absence as an ordinary state; ``get_instance`` and the
    other calls raise ``NotFoundError``. A 404 that Cloudflare marks as a routing failure
    (codes 7000/7003, usually a wrong account id) always raises.
    """

    def __init__(
        self,
        token: str | Secret,
        account_id: str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        transport: httpx.BaseTransport | None = None,
        max_retries: int = 3,
        max_retry_after: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
        timeout: float = 30.0,
        request_deadline: float = DEFAULT_REQUEST_DEADLINE,
        command_deadline: float | None = DEFAULT_COMMAND_DEADLINE,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> None:
        secret = Secret(token)
        if not secret.get_secret_value().strip():
            raise ConfigError("No Cloudflare API token given.", hint=_missing_hint(API_TOKEN_ENV))
        account_id = (account_id or "").strip()
        if not account_id:
            raise ConfigError("No Cloudflare account id given.", hint=_missing_hint(ACCOUNT_ID_ENV))
        if not _ACCOUNT_ID.fullmatch(account_id):
            # The value is not echoed: a token pasted into the wrong variable would leak.
            raise ConfigError(
                f"The Cloudflare account id is malformed ({len(account_id)} characters; "
                "expected up to 32 letters and digits).",
                hint=f"Set {ACCOUNT_ID_ENV} to the 32-character id shown on the dashboard.",
            )
        if max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        if not request_deadline > 0 or (command_deadline is not None and not command_deadline > 0):
            raise ValueError("deadlines must be positive numbers of seconds")
        if max_response_bytes < 1:
            raise ValueError("max_response_bytes must be >= 1")
        self._token = Secret(secret.get_secret_value().strip())
        self.account_id = account_id
        self.base_url = _check_base_url(base_url)
        self.max_retries = max_retries
        self.max_retry_after = max_retry_after
        self.request_deadline = request_deadline
        self.command_deadline = command_deadline
        self.max_response_bytes = max_response_bytes
        self._ends_at = None if command_deadline is None else time.monotonic() + command_deadline
        self._deadline = Deadline()
        self._sleep = sleep
        self._http = httpx.Client(
            base_url=self.base_url,
            auth=_BearerAuth(self._token),
            transport=transport if transport is not None else bounded_transport(self._deadline),
            timeout=httpx.Timeout(timeout),
            headers={
                "Accept": "application/json",
                "Accept-Encoding": ACCEPT_ENCODING,
                "User-Agent": "awf-deploy",
            },
        )

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        token: str | Secret | None = None,
        account_id: str | None = None,
        base_url: str | None = None,
        transport: httpx.BaseTransport | None = None,
        max_retries: int = 3,
        max_retry_after: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
        timeout: float = 30.0,
        request_deadline: float = DEFAULT_REQUEST_DEADLINE,
        command_deadline: float | None = DEFAULT_COMMAND_DEADLINE,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> CloudflareClient:
        """Build a client from ``CLOUDFLARE_API_TOKEN``, ``CLOUDFLARE_ACCOUNT_ID`` and
        ``CLOUDFLARE_API_BASE_URL``; explicit arguments (CLI flags) win over the environment.
        """
        env = os.environ if environ is None else environ
        token = token if token is not None else env.get(API_TOKEN_ENV, "")
        account_id = account_id if account_id is not None else env.get(ACCOUNT_ID_ENV, "")
        token_value = token.get_secret_value() if isinstance(token, Secret) else token
        missing = [
            name
            for name, value in ((API_TOKEN_ENV, token_value), (ACCOUNT_ID_ENV, account_id))
            if not value.strip()
        ]
        if missing:
            raise ConfigError(
                f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set.",
                hint=" ".join(_missing_hint(name) for name in missing),
            )
        return cls(
            token,
            account_id,
            base_url=base_url or env.get(BASE_URL_ENV) or DEFAULT_BASE_URL,
            transport=transport,
            max_retries=max_retries,
            max_retry_after=max_retry_after,
            sleep=sleep,
            timeout=timeout,
            request_deadline=request_deadline,
            command_deadline=command_deadline,
            max_response_bytes=max_response_bytes,
        )

    def __repr__(self) -> str:
        return (
            f"CloudflareClient(account_id={self.account_id!r}, base_url={self.base_url!r}, "
            "token=***)"
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- calls -----------------------------------------------------------------------------

    def verify_token(self) -> TokenVerification:
        """``GET /user/tokens/verify``: is the token valid (active, disabled or expired)?"""
        call = _Call("GET", "/user/tokens/verify", "token verification", None)
        return self._result(call, TokenVerification)

    def upload_script(
        self,
        name: str,
        modules: Mapping[str, str],
        main_module: str,
        *,
        compatibility_date: str,
        compatibility_flags: Sequence[str] = ("python_workers",),
        bindings: Sequence[Mapping[str, Any]] = (),
        keep_bindings: Sequence[str] = (),
    ) -> UploadedScript:
        """Upload a Python Worker: a ``metadata`` part, then one part per module, each named
        by its path (``entry.py``, ``awf_runtime/__init__.py``) and typed as wrangler types it
        (`module_content_type`): the Worker's ``.py`` files and the vendored packages under
        ``python_modules/``.

        ``compatibility_flags`` defaults to ``["python_workers"]``, which a ``.py`` main module
        needs; ``bindings`` are passed through as Cloudflare's binding objects
        (``{"type": "workflow", "name": ..., "workflow_name": ..., "class_name": ...}``).
        ``keep_bindings`` names binding types Cloudflare keeps from the previous upload
        (``["secret_text"]`` keeps the Worker's secrets).
        """
        _check_name("script name", name, _SCRIPT_NAME, 255)
        if not modules:
            raise ValueError("upload_script needs at least one module")
        if main_module not in modules:
            raise ValueError(f"main_module {main_module!r} is not one of the modules")
        not_python = [
            path for path in modules if not (path.endswith(".py") or path.startswith(VENDOR_PREFIX))
        ]
        if not_python:
            raise ValueError(
                f"modules must be Python files (*.py) or vendored under {VENDOR_PREFIX}: "
                f"{not_python}"
            )
        metadata = {
            "main_module": main_module,
            "compatibility_date": compatibility_date,
            "compatibility_flags": list(compatibility_flags),
            "bindings": [dict(binding) for binding in bindings],
        }
        if keep_bindings:
            metadata["keep_bindings"] = list(keep_bindings)
        files = [
            (path, (path, source.encode("utf-8"), module_content_type(path)))
            for path, source in modules.items()
        ]
        call = _Call(
            "PUT",
            self._account(f"/workers/scripts/{_segment(name)}"),
            f"upload of script {name!r}",
            _SCRIPTS_WRITE,
        )
        # The metadata part goes as a plain form field (no part Content-Type), as wrangler
        # sends it; that is the form Cloudflare is known to accept.
        response = self._send(call, data={"metadata": json.dumps(metadata)}, files=files)
        return self._parse(call, response, UploadedScript)

    def get_script(self, name: str) -> Script | None:
        """The deployed content of ``name``, or ``None`` if there is no such script."""
        _check_name("script name", name, _SCRIPT_NAME, 255)
        call = _Call(
            "GET",
            self._account(f"/workers/scripts/{_segment(name)}"),
            f"download of script {name!r}",
            _SCRIPTS_READ,
        )
        try:
            # The download is the raw upload, not an envelope, so ask for anything.
            response = self._send(call, headers={"Accept": "*/*"})
        except NotFoundError as exc:
            if _ROUTING_CODES.intersection(exc.codes):
                raise
            return None
        content_type = response.headers.get("content-type", "application/octet-stream")
        if content_type.lower().startswith("multipart/"):
            modules = _split_multipart(content_type, response.content)
        else:
            modules = {name: response.text}
        return Script(name=name, content_type=content_type, modules=modules)

    def put_schedules(self, script: str, crons: Sequence[str]) -> list[Schedule]:
        """Replace all cron triggers of ``script`` (an empty list clears them)."""
        _check_name("script name", script, _SCRIPT_NAME, 255)
        if isinstance(crons, str):
            raise TypeError("crons must be a sequence of cron expressions, not one string")
        call = _Call(
            "PUT",
            self._account(f"/workers/scripts/{_segment(script)}/schedules"),
            f"setting cron triggers of script {script!r}",
            _SCRIPTS_WRITE,
        )
        response = self._send(call, json=[{"cron": cron} for cron in crons])
        return self._schedules(call, response)

    def get_schedules(self, script: str) -> list[Schedule]:
        _check_name("script name", script, _SCRIPT_NAME, 255)
        call = _Call(
            "GET",
            self._account(f"/workers/scripts/{_segment(script)}/schedules"),
            f"reading cron triggers of script {script!r}",
            _SCRIPTS_READ,
        )
        return self._schedules(call, self._send(call))

    def put_workflow(self, name: str, script_name: str, class_name: str) -> WorkflowInfo:
        """Create or update workflow ``name`` to run ``class_name`` from ``script_name``.

        Cloudflare requires the script to be uploaded first.
        """
        _check_name("workflow name", name, _WORKFLOW_NAME, 64)
        _check_name("script name", script_name, _SCRIPT_NAME, 255)
        if not 0 < len(class_name) <= 255:
            raise ValueError(f"class_name must have 1 to 255 characters, got {class_name!r}")
        call = _Call(
            "PUT",
            self._account(f"/workflows/{_segment(name)}"),
            f"creating or updating workflow {name!r}",
            _SCRIPTS_WRITE,
        )
        body = {"script_name": script_name, "class_name": class_name}
        return self._parse(call, self._send(call, json=body), WorkflowInfo)

    def get_workflow(self, name: str) -> WorkflowInfo | None:
        """Workflow ``name`` with its instance counts, or ``None`` if it does not exist."""
        _check_name("workflow name", name, _WORKFLOW_NAME, 64)
        call = _Call(
            "GET",
            self._account(f"/workflows/{_segment(name)}"),
            f"reading workflow {name!r}",
            _SCRIPTS_READ,
        )
        try:
            return self._result(call, WorkflowInfo)
        except NotFoundError as exc:
            if _ROUTING_CODES.intersection(exc.codes):
                raise
            return None

    def list_workflows(self) -> list[WorkflowInfo]:
        """All workflows on the account (every page)."""
        call = _Call("GET", self._account("/workflows"), "listing workflows", _SCRIPTS_READ)
        return self._paginate(call, {}, WorkflowInfo, limit=None, cursor=False)

    # -- D1 --------------------------------------------------------------------------------

    def list_d1_databases(self, name: str | None = None) -> list[D1Database]:
        """The account's D1 databases (``name``: only those whose name contains it)."""
        params: dict[str, str] = {}
        if name is not None:
            params["name"] = name
        call = _Call("GET", self._account("/d1/database"), "listing D1 databases", _D1_READ)
        items: list[D1Database] = []
        page = 1
        for _ in range(_MAX_PAGES):
            query: dict[str, str | int] = {**params, "page": page, "per_page": _D1_PER_PAGE}
            response = self._send(call, params=query)
            envelope = self._envelope(call, response)
            if not isinstance(envelope.result, list):
                raise self._unexpected(call, response, "result is not a list")
            batch = self._items(call, response, D1Database, envelope.result)
            items.extend(batch)
            info = envelope.result_info
            total = info.total_count if info is not None else None
            if len(batch) < _D1_PER_PAGE or (total is not None and len(items) >= total):
                return items
            page += 1
        return items

    def create_d1_database(self, name: str) -> D1Database:
        """Create a D1 database (the name must be new on the account)."""
        _check_name("D1 database name", name, _D1_NAME, 64)
        call = _Call(
            "POST",
            self._account("/d1/database"),
            f"creating D1 database {name!r}",
            _D1_WRITE,
            idempotent=False,
        )
        return self._parse(call, self._send(call, json={"name": name}), D1Database)

    def query_d1(
        self, database_id: str, sql: str, params: Sequence[str] = ()
    ) -> list[D1QueryResult]:
        """Run SQL on a D1 database (several statements run as one batch); one result per
        statement. D1 refuses a statement it cannot run with HTTP 400 and its message."""
        if not isinstance(database_id, str) or not 0 < len(database_id) <= 64:
            raise ValueError(f"D1 database id must have 1 to 64 characters, got {database_id!r}")
        call = _Call(
            "POST",
            self._account(f"/d1/database/{_segment(database_id)}/query"),
            f"query on D1 database {database_id!r}",
            _D1_WRITE,
            # A batch of writes is not safe to repeat after an ambiguous failure.
            idempotent=False,
        )
        body: dict[str, Any] = {"sql": sql}
        if params:
            body["params"] = [str(p) for p in params]
        response = self._send(call, json=body)
        envelope = self._envelope(call, response)
        if not isinstance(envelope.result, list):
            raise self._unexpected(call, response, "result is not a list")
        return self._items(call, response, D1QueryResult, envelope.result)

    # -- workflows and instances ----------------------------------------------------------

    def create_instance(
        self, workflow: str, params: Any = None, *, instance_id: str | None = None
    ) -> InstanceInfo:
        """Start an instance of ``workflow``; ``params`` is sent as a JSON value."""
        _check_name("workflow name", workflow, _WORKFLOW_NAME, 64)
        body: dict[str, Any] = {}
        if instance_id is not None:
            _check_name("instance id", instance_id, _WORKFLOW_NAME, 100)
            body["instance_id"] = instance_id
        if params is not None:
            body["params"] = params
        call = _Call(
            "POST",
            self._account(f"/workflows/{_segment(workflow)}/instances"),
            f"creating an instance of workflow {workflow!r}",
            _SCRIPTS_WRITE,
            # With an id, a repeated create cannot start a second instance.
            idempotent=instance_id is not None,
        )
        return self._parse(call, self._send(call, json=body), InstanceInfo)

    def get_instance(self, workflow: str, instance_id: str) -> InstanceDetails:
        call = self._instance_call("GET", workflow, instance_id, "", "reading", _SCRIPTS_READ)
        return self._result(call, InstanceDetails)

    def list_instances(
        self, workflow: str, status: InstanceStatus | None = None, *, limit: int | None = None
    ) -> list[InstanceInfo]:
        """Instances of ``workflow``, optionally only those in ``status`` (every page, or the
        first ``limit``)."""
        _check_name("workflow name", workflow, _WORKFLOW_NAME, 64)
        params: dict[str, str] = {}
        if status is not None:
            if status not in get_args(InstanceStatus):
                raise ValueError(
                    f"status must be one of {get_args(InstanceStatus)}, got {status!r}"
                )
            params["status"] = status
        if limit is not None and limit < 1:
            raise ValueError("limit must be >= 1")
        call = _Call(
            "GET",
            self._account(f"/workflows/{_segment(workflow)}/instances"),
            f"listing instances of workflow {workflow!r}",
            _SCRIPTS_READ,
        )
        return self._paginate(call, params, InstanceInfo, limit=limit, cursor=True)

    def change_instance_status(
        self, workflow: str, instance_id: str, status: InstanceStatusAction
    ) -> InstanceStatusChange:
        """Pause, resume, terminate or restart an instance."""
        if status not in _STATUS_ACTIONS:
            raise ValueError(f"status must be one of {_STATUS_ACTIONS}, got {status!r}")
        call = self._instance_call(
            "PATCH",
            workflow,
            instance_id,
            "/status",
            f"{status} of",
            _SCRIPTS_WRITE,
            idempotent=status != "restart",
        )
        return self._parse(call, self._send(call, json={"status": status}), InstanceStatusChange)

    def send_event(
        self,
        workflow: str,
        instance_id: str,
        event_type: str,
        payload: Mapping[str, Any] | None = None,
    ) -> None:
        """Deliver an event to a waiting instance. The schema types the payload as an object."""
        _check_name("event type", event_type, _WORKFLOW_NAME, 100)
        call = self._instance_call(
            "POST",
            workflow,
            instance_id,
            f"/events/{_segment(event_type)}",
            f"sending event {event_type!r} to",
            _SCRIPTS_WRITE,
            idempotent=False,
        )
        body = None if payload is None else dict(payload)
        self._envelope(call, self._send(call, json=body))

    # -- plumbing --------------------------------------------------------------------------

    def _account(self, tail: str) -> str:
        return f"/accounts/{_segment(self.account_id)}{tail}"

    def _instance_call(
        self,
        method: str,
        workflow: str,
        instance_id: str,
        tail: str,
        verb: str,
        permission: str,
        *,
        idempotent: bool = True,
    ) -> _Call:
        _check_name("workflow name", workflow, _WORKFLOW_NAME, 64)
        if not isinstance(instance_id, str) or not 0 < len(instance_id) <= 271:
            raise ValueError(f"instance id must have 1 to 271 characters, got {instance_id!r}")
        path = self._account(
            f"/workflows/{_segment(workflow)}/instances/{_segment(instance_id)}{tail}"
        )
        what = f"{verb} instance {instance_id!r} of workflow {workflow!r}"
        return _Call(method, path, what, permission, idempotent)

    def _redact(self, text: str) -> str:
        token = self._token.get_secret_value()
        return text.replace(token, "***") if token else text

    def _send(
        self,
        call: _Call,
        *,
        params: Mapping[str, str | int] | None = None,
        json: Any = None,
        data: Mapping[str, str] | None = None,
        files: Sequence[tuple[str, tuple[str, bytes, str]]] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        attempt = 0
        while True:
            attempt += 1
            logger.debug("%s %s (attempt %d)", call.method, call.path, attempt)
            failure: str | None = None
            safe = call.idempotent
            retryable = True
            try:
                response = self._request(call, params, json, data, files, headers)
            except httpx.TransportError as exc:
                # A connect failure means Cloudflare never saw the request.
                safe = safe or isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)
                failure = self._redact(f"{type(exc).__name__}: {exc}" if str(exc) else repr(exc))
            except DeadlineExceeded as exc:
                failure = f"no complete answer within {exc}"
            except BodyTooLarge as exc:
                failure = f"the answer is too large ({exc}; the cap is max_response_bytes)"
                retryable = False
            except httpx.DecodingError as exc:
                failure = self._redact(f"the answer could not be decoded ({exc})")
                retryable = False
            except (httpx.HTTPError, httpx.InvalidURL) as exc:
                failure = self._redact(f"{type(exc).__name__}: {exc}")
                retryable = False
            if failure is not None:
                if retryable and safe and attempt <= self.max_retries and self._can_wait(attempt):
                    self._backoff(call, attempt, None, failure)
                    continue
                # Raised outside the except block so that neither __cause__ nor __context__
                # holds the httpx exception: it carries the request, Authorization header
                # included, and error reporters walk exception chains.
                raise TransportError(
                    f"{_cap(call.what)} failed: {' '.join(failure.split())} "
                    f"({call.method} {call.path}; {_attempts(attempt)})",
                    method=call.method,
                    path=call.path,
                    attempts=attempt,
                    hint=f"Check the network connection and {BASE_URL_ENV}.",
                )
            status = response.status_code
            logger.debug("%s %s -> %d", call.method, call.path, status)
            if status == 429 or status >= 500:
                retry_after = _parse_retry_after(response.headers.get("retry-after"))
                waitable = retry_after is None or retry_after <= self.max_retry_after
                safe = status == 429 or call.idempotent
                if (
                    safe
                    and waitable
                    and attempt <= self.max_retries
                    and self._can_wait(attempt, retry_after)
                ):
                    self._backoff(call, attempt, retry_after, f"HTTP {status}")
                    continue
            if response.is_success:
                return response
            raise self._error_for(call, response, attempt)

    def _request(
        self,
        call: _Call,
        params: Mapping[str, str | int] | None,
        json: Any,
        data: Mapping[str, str] | None,
        files: Sequence[tuple[str, tuple[str, bytes, str]]] | None,
        headers: Mapping[str, str] | None,
    ) -> httpx.Response:
        """One request under the deadlines, its body read whole within the size cap."""
        now = time.monotonic()
        at = now + self.request_deadline
        what = f"the request deadline ({self.request_deadline:g} s)"
        if self._ends_at is not None and self._ends_at < at:
            at = self._ends_at
            what = f"the command deadline ({self.command_deadline:g} s)"
        self._deadline.set(at, what)
        try:
            self._deadline.remaining()
            request = self._http.build_request(
                call.method,
                call.path,
                params=params,
                json=json,
                data=data,
                files=files,
                headers=headers,
            )
            streamed = self._http.send(request, stream=True)
            body = read_body(streamed, self._deadline, self.max_response_bytes)
        except httpx.TimeoutException:
            # The backend cut the socket timeout to what was left of the deadline.
            if time.monotonic() >= at - 0.05:
                raise DeadlineExceeded(what) from None
            raise
        finally:
            self._deadline.set(None, "")
        kept = [
            (name, value)
            for name, value in streamed.headers.multi_items()
            if name.lower() not in ("content-encoding", "content-length", "transfer-encoding")
        ]
        return httpx.Response(
            streamed.status_code,
            headers=kept,
            content=body,
            request=request,
            extensions={
                key: streamed.extensions[key]
                for key in ("reason_phrase", "http_version")
                if key in streamed.extensions
            },
        )

    def _can_wait(self, attempt: int, retry_after: float | None = None) -> bool:
        """Whether the backoff before the next attempt ends within the command deadline."""
        if self._ends_at is None:
            return True
        return time.monotonic() + self._delay(attempt, retry_after) < self._ends_at

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return retry_after
        return float(min(0.5 * 2 ** (attempt - 1), self.max_retry_after))

    def _backoff(self, call: _Call, attempt: int, retry_after: float | None, reason: str) -> None:
        delay = self._delay(attempt, retry_after)
        logger.warning(
            "%s %s: %s; retrying in %.1f s (attempt %d of %d)",
            call.method,
            call.path,
            reason,
            delay,
            attempt + 1,
            self.max_retries + 1,
        )
        self._sleep(delay)

    def _error_for(self, call: _Call, response: httpx.Response, attempts: int) -> CloudflareError:
        status = response.status_code
        errors = self._error_messages(response)
        codes = {e.code for e in errors if e.code is not None}
        detail = "; ".join(str(e) for e in errors) or response.reason_phrase or "no details"
        message = self._redact(
            f"{_cap(call.what)} failed with HTTP {status}: {detail} "
            f"({call.method} {call.path}; {_attempts(attempts)})"
        )
        hints = [_CODE_HINTS[code] for code in sorted(codes) if code in _CODE_HINTS]
        common: dict[str, Any] = {
            "status": status,
            "errors": errors,
            "method": call.method,
            "path": call.path,
            "attempts": attempts,
            "ray_id": response.headers.get("cf-ray"),
        }
        if status == 401:
            hints.append(
                f"Cloudflare rejected the API token (invalid, expired or revoked): "
                f"check {API_TOKEN_ENV}, or create a new token at {_TOKENS_PAGE}."
            )
            return AuthError(message, permission=call.permission, hint=" ".join(hints), **common)
        if status == 403:
            needs = f"the {call.permission!r} permission" if call.permission else "a permission"
            hints.append(
                f"The API token lacks {needs} on account {self.account_id} (or "
                f"{ACCOUNT_ID_ENV} names the wrong account): edit the token at {_TOKENS_PAGE}."
            )
            return AuthError(message, permission=call.permission, hint=" ".join(hints), **common)
        if status == 404:
            if codes & _ROUTING_CODES:
                hints.append(f"Cloudflare found no such route: check {ACCOUNT_ID_ENV}.")
            return NotFoundError(message, hint=" ".join(hints) or None, **common)
        if status == 429:
            retry_after = _parse_retry_after(response.headers.get("retry-after"))
            wait = f" Cloudflare asks to wait {retry_after:g} s." if retry_after else ""
            hints.append(
                "The account is over Cloudflare's API rate limit (1200 requests per 5 "
                f"minutes).{wait} Try again later."
            )
            return RateLimitedError(
                message, retry_after=retry_after, hint=" ".join(hints), **common
            )
        if status >= 500:
            hints.append(
                "Cloudflare had an internal error; try again later "
                "(https://www.cloudflarestatus.com)."
            )
            return ServerError(message, hint=" ".join(hints), **common)
        return RequestRejected(message, hint=" ".join(hints) or None, **common)

    def _error_messages(self, response: httpx.Response) -> list[ApiMessage]:
        envelope = _validate(Envelope, _json(response))
        if isinstance(envelope, str):
            text = " ".join(response.text.split())[:200]
            return [ApiMessage(message=self._redact(text))] if text else []
        # Workflows error bodies sometimes say more in `messages` than in `errors`.
        return [
            ApiMessage(code=e.code, message=self._redact(e.message))
            for e in envelope.errors or envelope.messages
        ]

    def _unexpected(self, call: _Call, response: httpx.Response, why: str) -> UnexpectedResponse:
        return UnexpectedResponse(
            self._redact(
                f"{_cap(call.what)}: unexpected answer from Cloudflare ({why}) "
                f"({call.method} {call.path}; HTTP {response.status_code})"
            ),
            status=response.status_code,
            method=call.method,
            path=call.path,
            ray_id=response.headers.get("cf-ray"),
        )

    def _envelope(self, call: _Call, response: httpx.Response) -> Envelope:
        envelope = _validate(Envelope, _json(response))
        if isinstance(envelope, str):
            raise self._unexpected(call, response, f"not a v4 envelope: {envelope}")
        if not envelope.success:
            # A 2xx with success: false is still a refusal.
            raise RequestRejected(
                self._redact(
                    f"{_cap(call.what)} failed: "
                    f"{'; '.join(str(e) for e in envelope.errors) or 'success: false'} "
                    f"({call.method} {call.path})"
                ),
                status=response.status_code,
                errors=envelope.errors,
                method=call.method,
                path=call.path,
            )
        return envelope

    def _parse(self, call: _Call, response: httpx.Response, model: type[M]) -> M:
        parsed = _validate(model, self._envelope(call, response).result)
        if isinstance(parsed, str):
            raise self._unexpected(call, response, parsed)
        return parsed

    def _result(self, call: _Call, model: type[M]) -> M:
        return self._parse(call, self._send(call), model)

    def _schedules(self, call: _Call, response: httpx.Response) -> list[Schedule]:
        envelope = self._envelope(call, response)
        result = envelope.result if isinstance(envelope.result, dict) else {}
        return self._items(call, response, Schedule, result.get("schedules") or [])

    def _items(
        self, call: _Call, response: httpx.Response, model: type[M], raw: list[Any]
    ) -> list[M]:
        items: list[M] = []
        for item in raw:
            parsed = _validate(model, item)
            if isinstance(parsed, str):
                raise self._unexpected(call, response, parsed)
            items.append(parsed)
        return items

    def _paginate(
        self,
        call: _Call,
        params: Mapping[str, str],
        model: type[M],
        *,
        limit: int | None,
        cursor: bool,
    ) -> list[M]:
        items: list[M] = []
        page = 1
        next_cursor: str | None = None
        seen_cursors: set[str] = set()
        per_page = min(_PER_PAGE, limit) if limit is not None else _PER_PAGE
        for _ in range(_MAX_PAGES):
            query: dict[str, str | int] = {**params, "per_page": per_page}
            if next_cursor is not None:
                query["cursor"] = next_cursor
            else:
                query["page"] = page
            response = self._send(call, params=query)
            envelope = self._envelope(call, response)
            if not isinstance(envelope.result, list):
                raise self._unexpected(call, response, "result is not a list")
            batch = self._items(call, response, model, envelope.result)
            items.extend(batch)
            if limit is not None and len(items) >= limit:
                return items[:limit]
            info = envelope.result_info
            if not batch or info is None:
                return items
            if info.total_count is not None and len(items) >= info.total_count:
                return items
            if len(batch) < (info.per_page or per_page):
                return items
            if cursor and info.cursor and info.cursor not in seen_cursors:
                seen_cursors.add(info.cursor)
                next_cursor = info.cursor
            elif next_cursor is not None:
                return items  # cursor paging without a new cursor: nothing further
            elif info.total_pages is not None and page >= info.total_pages:
                return items
            else:
                page += 1
        logger.warning("%s %s: stopped after %d pages", call.method, call.path, _MAX_PAGES)
        return items


def _missing_hint(env_var: str) -> str:
    if env_var == API_TOKEN_ENV:
        return (
            f"Create an API token with the {_SCRIPTS_WRITE!r} permission at {_TOKENS_PAGE} "
            f"and set {API_TOKEN_ENV}."
        )
    return f"Set {ACCOUNT_ID_ENV} to your account id (Workers & Pages overview on the dashboard)."


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _attempts(count: int) -> str:
    return f"{count} attempt{'s' if count != 1 else ''}"


_NOT_JSON: Final = object()


def _json(response: httpx.Response) -> Any:
    try:
        return loads_bounded(response.content)
    except ValueError:  # not JSON, not UTF-8, or nested deeper than MAX_JSON_DEPTH
        return _NOT_JSON


def _check_base_url(base_url: str) -> str:
    """The base URL without its trailing slash, or a ConfigError (one line, value not echoed:
    a token pasted into the wrong variable would leak)."""
    hint = f"Set {BASE_URL_ENV} to an http(s) URL such as {DEFAULT_BASE_URL}, or unset it."
    try:
        url = httpx.URL(base_url)
    except (httpx.InvalidURL, TypeError, ValueError):
        url = None
    if url is None or url.scheme not in ("http", "https") or not url.host:
        raise ConfigError(
            f"The Cloudflare API base URL is not an http(s) URL ({len(str(base_url))} characters).",
            hint=hint,
        )
    return str(base_url).rstrip("/")


def _validate(model: type[M], data: Any) -> M | str:
    """The parsed model, or why not.

    Returning the reason instead of raising lets callers raise their own error outside the
    ``except`` block, so it does not chain pydantic's error, whose input echoes the body.
    """
    if data is _NOT_JSON:
        return "the body is not JSON"
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ()))
        return f"{where}: {first.get('msg', 'invalid')}" if where else str(first.get("msg"))
