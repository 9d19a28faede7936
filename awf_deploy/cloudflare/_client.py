"""The Cloudflare v4 HTTP client: one httpx.Client, one retry loop, one error boundary.

Every call goes through ``_send`` (retries, backoff, logging) and every non-2xx answer through
``_error_for`` (the mapping to ``_errors``), so behaviour is uniform across the API surface.
Paths, methods and bodies follow ``workflows-deploy-subset.json`` (Cloudflare's own schema);
the tests validate each request the client can send against it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, get_args

from ._errors import (
    NotFoundError,
)
from ._models import (
    D1Database,
    D1QueryResult,
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
from ._session import _Session
from ._wire import (
    _D1_NAME,
    _D1_PER_PAGE,
    _D1_READ,
    _D1_WRITE,
    _MAX_PAGES,
    _SCRIPT_NAME,
    _SCRIPTS_READ,
    _SCRIPTS_WRITE,
    _STATUS_ACTIONS,
    _WORKFLOW_NAME,
    ACCOUNT_ID_ENV,
    API_TOKEN_ENV,
    BASE_URL_ENV,
    DEFAULT_BASE_URL,
    VENDOR_PREFIX,
    Secret,
    _Call,
    _check_d1_id,
    _check_name,
    _segment,
    _split_multipart,
    module_content_type,
)

__all__ = [
    "ACCOUNT_ID_ENV",
    "API_TOKEN_ENV",
    "BASE_URL_ENV",
    "DEFAULT_BASE_URL",
    "CloudflareClient",
    "Secret",
    "module_content_type",
]


class CloudflareClient(_Session):
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
            if exc.routing:
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
        return self._result_or_none(call, WorkflowInfo)

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

    def get_d1_database(self, database_id: str) -> D1Database | None:
        """The D1 database with this id (uuid), or ``None`` if the account has none."""
        _check_d1_id(database_id)
        call = _Call(
            "GET",
            self._account(f"/d1/database/{_segment(database_id)}"),
            f"reading D1 database {database_id!r}",
            _D1_READ,
        )
        return self._result_or_none(call, D1Database)

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
        _check_d1_id(database_id)
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
