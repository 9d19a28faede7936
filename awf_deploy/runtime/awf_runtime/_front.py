"""The Worker's front door: its HTTP API (`fetch`) and its cron handler (`scheduled`)."""

from __future__ import annotations

import hmac
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from ._context import _binding
from ._errors import instance_error
from ._js import _settle, to_js, to_py

API_KEY_VAR = "AWF_API_KEY"
_NAME = re.compile(r"[a-zA-Z0-9_][a-zA-Z0-9\-_]*")


class _HttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _header(request: Any, name: str) -> str | None:
    headers = getattr(request, "headers", None)
    if headers is None:
        return None
    value = headers.get(name)
    return value if isinstance(value, str) else None


async def _json_body(request: Any) -> Any:
    text = await _settle(request.text())
    if not text or not str(text).strip():
        return None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise _HttpError(400, f"the request body is not valid JSON: {exc}") from None


def _check_name(kind: str, value: str, max_len: int = 100) -> str:
    if not (0 < len(value) <= max_len and _NAME.fullmatch(value)):
        raise _HttpError(
            400,
            f"invalid {kind} {value!r}: use letters, digits, '_' and '-' (not first), "
            f"at most {max_len} characters",
        )
    return value


def _response(response_cls: Any, status: int, body: Any) -> Any:
    return response_cls(
        json.dumps(body, ensure_ascii=False, default=str),
        status=status,
        headers={"content-type": "application/json"},
    )


async def fetch(
    request: Any,
    env: Any,
    workflows: Sequence[Mapping[str, Any]],
    response_cls: Any,
    *,
    script: str = "",
    bundle: str = "",
    auth: str = "optional",
) -> Any:
    """The Worker's HTTP API.

    - `GET /`: the workflows this Worker runs
    - `POST /workflows/<name>/instances[?id=ID]`: start an instance; the JSON body is its params
    - `GET /workflows/<name>/instances/<id>`: the instance's status
    - `POST /workflows/<name>/instances/<id>/events/<type>`: send an event; the body is its payload

    `auth` (the entry's API_AUTH): "key" (what `awf-deploy push` deploys) needs the secret
    `AWF_API_KEY` and `Authorization: Bearer <that key>` on every request, and answers 401
    while the secret is missing; "public" is open to anyone; "optional" checks the key only
    when the secret is set.
    """
    try:
        status, body = await _route(request, env, workflows, script, bundle, auth)
    except _HttpError as exc:
        status, body = exc.status, {"error": str(exc)}
    except Exception as exc:  # a binding call failed
        text = f"{type(exc).__name__}: {exc}"
        status = 404 if "not_found" in text or "not found" in text.lower() else 500
        body = {"error": text}
    return _response(response_cls, status, body)


async def _route(
    request: Any,
    env: Any,
    workflows: Sequence[Mapping[str, Any]],
    script: str,
    bundle: str,
    auth: str = "optional",
) -> tuple[int, Any]:
    key = _binding(env, API_KEY_VAR) if auth != "public" else None
    if auth == "key" and not (isinstance(key, str) and key):
        raise _HttpError(
            401,
            f"this Worker's API needs the secret {API_KEY_VAR}, which is not set: run "
            f"`awf-deploy key FLOW.py --rotate` (or `npx wrangler secret put {API_KEY_VAR}`), "
            "or push with --public to open the API",
        )
    if isinstance(key, str) and key:
        given = _header(request, "authorization") or ""
        if not hmac.compare_digest(given.encode(), f"Bearer {key}".encode()):
            raise _HttpError(401, f"missing or wrong `Authorization: Bearer <{API_KEY_VAR}>`")
    method = str(getattr(request.method, "value", request.method)).upper()
    url = urlsplit(str(request.url))
    parts = [unquote(p) for p in url.path.split("/") if p]
    table = {w["name"]: w for w in workflows}
    if not parts:
        if method != "GET":
            raise _HttpError(405, "use GET /")
        return 200, {"script": script, "bundle": bundle, "workflows": list(workflows)}
    if parts[0] != "workflows" or len(parts) < 3 or parts[2] != "instances":
        raise _HttpError(404, f"no route {url.path}; see GET / for the API")
    name = parts[1]
    if name not in table:
        raise _HttpError(404, f"no workflow {name!r}; this Worker runs: {', '.join(table)}")
    binding = _binding(env, str(table[name]["binding"]))
    if binding is None:
        raise _HttpError(500, f"the Worker has no binding {table[name]['binding']}")
    if len(parts) == 3:
        if method != "POST":
            raise _HttpError(405, f"use POST /workflows/{name}/instances to start an instance")
        params = await _json_body(request)
        options: dict[str, Any] = {"params": {} if params is None else params}
        instance_id = parse_qs(url.query).get("id", [None])[0]
        if instance_id is not None:
            options["id"] = _check_name("instance id", instance_id)
            # Cloudflare refuses an id that exists; Miniflare's engine silently returns the
            # existing instance, so `awf-deploy dev` would report a start that never happened.
            if await _exists(binding, instance_id):
                raise _already_exists(name, instance_id)
        try:
            instance = await _settle(binding.create(to_js(options)))
        except Exception as exc:
            if instance_id is not None and _says_already_exists(exc):
                raise _already_exists(name, instance_id) from None
            raise
        return 201, {"workflow": name, "id": str(instance.id)}
    instance_id = _check_name("instance id", parts[3], 271)
    if len(parts) == 4:
        if method != "GET":
            raise _HttpError(405, f"use GET /workflows/{name}/instances/{instance_id}")
        try:
            instance = await _settle(binding.get(instance_id))
            status = to_py(await _settle(instance.status()))
        except Exception as exc:
            raise _not_found_or(exc, name, instance_id) from None
        details = dict(status) if isinstance(status, Mapping) else {"status": status}
        details = {k: v for k, v in details.items() if not str(k).startswith("__")}
        if "error" in details:
            details["error"] = instance_error(details["error"])
        return 200, {"workflow": name, "id": instance_id, **details}
    if len(parts) == 6 and parts[4] == "events":
        if method != "POST":
            raise _HttpError(405, "use POST to send an event")
        event_type = _check_name("event type", parts[5])
        payload = await _json_body(request)
        try:
            instance = await _settle(binding.get(instance_id))
            send = getattr(instance, "send_event", None) or instance.sendEvent
            await _settle(send(to_js({"type": event_type, "payload": payload})))
        except Exception as exc:
            raise _not_found_or(exc, name, instance_id) from None
        return 202, {"workflow": name, "id": instance_id, "sent": event_type}
    raise _HttpError(404, f"no route {url.path}; see GET / for the API")


def _not_found_or(exc: Exception, name: str, instance_id: str) -> Exception:
    """The binding's "instance.not_found" as a 404 that names the instance (it reached the
    client as `JsException: Error: instance.not_found`); any other failure as it was."""
    if "not_found" in str(exc) or "not found" in str(exc).lower():
        return _HttpError(404, f"no instance {instance_id!r} of workflow {name!r}")
    return exc


def _says_already_exists(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "already" in text and "exist" in text


def _already_exists(workflow: str, instance_id: str) -> _HttpError:
    return _HttpError(
        409,
        f"instance {instance_id!r} of {workflow} already exists: start it with another id, "
        "or none for a random one",
    )


async def _exists(binding: Any, instance_id: str) -> bool:
    try:
        instance = await _settle(binding.get(instance_id))
        await _settle(instance.status())
    except Exception:  # not found (or unreadable): let create() decide
        return False
    return True


async def scheduled(controller: Any, env: Any, workflows: Sequence[Mapping[str, Any]]) -> list[str]:
    """The Worker's cron handler: start one instance of every workflow on this schedule.

    Its params are `{"cron": ..., "scheduledTime": <epoch ms>}`; its id is
    `<workflow>-<scheduledTime>`, so a tick delivered twice starts one instance.
    """
    cron = getattr(controller, "cron", None)
    when = getattr(controller, "scheduledTime", None)
    started: list[str] = []
    for workflow in workflows:
        if workflow.get("schedule") != cron:
            continue
        binding = _binding(env, str(workflow["binding"]))
        options: dict[str, Any] = {"params": {"cron": cron, "scheduledTime": when}}
        if isinstance(when, int | float):
            options["id"] = f"{workflow['name']}-{int(when)}"
        try:
            instance = await _settle(binding.create(to_js(options)))
        except Exception as exc:
            if _says_already_exists(exc):
                continue
            raise
        started.append(str(instance.id))
    return started
