"""A fake Cloudflare API that checks every request against Cloudflare's own OpenAPI schema.

``OpenAPISubset`` wraps ``workflows-deploy-subset.json``: it matches a request to its operation
(path template, method), validates path and query parameters, the bearer token and the body
(JSON via jsonschema with ``$ref``s resolved; the script upload's multipart parts one by one)
and validates every response the fake sends against the operation's response schema.

``FakeCloudflare`` is an ``httpx.MockTransport`` handler with a little account state (scripts,
schedules, workflows, instances, events), so a sequence of calls behaves like the real thing;
``queue`` injects canned answers (errors, 429s, transport failures) ahead of it. A request that
breaks the schema raises ``SpecViolation`` inside the transport and is also recorded, and the
``cf`` fixture fails the test at teardown if any was recorded, so a client that swallowed the
exception would still be caught.

Quirks of the subset handled here (see its README):
- OpenAPI 3.0 ``nullable`` is rewritten to JSON Schema before validation.
- The upload's multipart ``oneOf`` is checked against ``oneOf[0]`` only (its second branch
  matches anything), with ``metadata`` JSON-parsed first; module parts must be
  ``text/x-python``, which the 2024 ``encoding`` list predates.
- Several verbatim 4XX schemas are ``allOf`` a success envelope and the failure envelope, which
  no body can satisfy (``success`` must be both true and false); the success member is dropped.
- D1's list and query answers are ``allOf`` an envelope whose ``result`` is an object and a
  member whose ``result`` is an array; the envelope is checked with an object in its place.
- Statuses an operation does not declare (401/403/429/5xx on the Workflows operations) are
  checked against ``workers_api-response-common-failure``.
- The 2026 Workflows operations name all three security schemes in one requirement object;
  a bearer token alone is accepted for them, as it is by the live API.
"""

from __future__ import annotations

import email.parser
import email.policy
import hashlib
import json
import re
import sqlite3
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx
import pytest
from jsonschema import Draft4Validator, FormatChecker
from referencing import Registry
from referencing.jsonschema import DRAFT4

from awf_deploy.cloudflare import CloudflareClient

_HERE = Path(__file__).resolve().parent
SPEC_CANDIDATES = (
    _HERE / "cloudflare-openapi" / "workflows-deploy-subset.json",
    _HERE.parents[2] / "shared" / "cloudflare-openapi" / "workflows-deploy-subset.json",
)

TOKEN = "cfut_T0k3n-5ecr3t-never-print-me-91f2"
ACCOUNT = "023e105f4ecef8ad9ca31a8372d0c353"
BASE_URL = "https://api.cloudflare.com/client/v4"
NOW = "2025-06-01T12:00:00Z"

_SPEC_URI = "urn:cloudflare-openapi-subset"
_METHODS = ("get", "put", "post", "patch", "delete")
_PYTHON_TYPES = ("text/x-python", "text/x-python-requirement")
# What wrangler sends for pywrangler's vendor folder: the SDK's JavaScript as ES modules, every
# other file as data (both in the schema's list of part types).
_VENDOR_TYPES = ("application/javascript+module", "application/octet-stream")


class SpecViolation(AssertionError):
    """A request (or a fake response) that Cloudflare's schema does not allow."""


def _pointer(*parts: str) -> str:
    return "#/" + "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


def _openapi_to_jsonschema(node: Any) -> Any:
    """Rewrite OpenAPI 3.0 ``nullable`` into JSON Schema ``type``/``enum`` with null."""
    if isinstance(node, list):
        return [_openapi_to_jsonschema(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _openapi_to_jsonschema(value) for key, value in node.items()}
    if out.get("nullable") is True:
        if isinstance(out.get("type"), str):
            out["type"] = [out["type"], "null"]
        if isinstance(out.get("enum"), list) and None not in out["enum"]:
            out["enum"] = [*out["enum"], None]
    return out


def _format_checker() -> FormatChecker:
    checker = FormatChecker(formats=())

    @checker.checks("date-time", raises=ValueError)
    def _date_time(value: object) -> bool:
        if not isinstance(value, str):
            return True
        if "T" not in value.upper():
            raise ValueError("no time part")
        return datetime.fromisoformat(value).tzinfo is not None

    @checker.checks("uuid", raises=ValueError)
    def _uuid(value: object) -> bool:
        return not isinstance(value, str) or bool(uuid.UUID(value))

    return checker


@dataclass
class Recorded:
    """One request as the schema understood it."""

    operation_id: str
    method: str
    path: str
    path_params: dict[str, str]
    query: dict[str, str]
    headers: httpx.Headers
    json: Any = None
    metadata: dict[str, Any] | None = None
    parts: list[tuple[str, str | None, str | None, bytes]] = field(default_factory=list)
    """Multipart parts as (name, filename, content type, content), in wire order."""


class OpenAPISubset:
    Violation = SpecViolation  # reachable from tests through the fixture

    def __init__(self, path: Path) -> None:
        self.raw: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        self.doc: dict[str, Any] = _openapi_to_jsonschema(self.raw)
        self.registry: Registry[Any] = Registry().with_resource(
            _SPEC_URI, DRAFT4.create_resource(self.doc)
        )
        self.format_checker = _format_checker()
        self.base_path = "/" + self.doc["servers"][0]["url"].split("://", 1)[1].split("/", 1)[1]
        self.routes: list[tuple[re.Pattern[str], str]] = []
        for template in self.doc["paths"]:
            regex = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(template))
            self.routes.append((re.compile(regex + "$"), template))
        self.operations: dict[str, tuple[str, str]] = {
            op["operationId"]: (template, method)
            for template, item in self.doc["paths"].items()
            for method, op in item.items()
            if method in _METHODS
        }

    # -- schema access ---------------------------------------------------------------------

    def validator(self, pointer: str) -> Draft4Validator:
        return Draft4Validator(
            {"$ref": _SPEC_URI + pointer},
            registry=self.registry,
            format_checker=self.format_checker,
        )

    def resolve(self, node: Any) -> Any:
        while isinstance(node, dict) and "$ref" in node:
            node = self.registry.resolver(_SPEC_URI).lookup(_SPEC_URI + node["$ref"]).contents
        return node

    def node(self, pointer: str) -> Any:
        return self.resolve({"$ref": pointer})

    def check(self, pointer: str, instance: Any, what: str) -> None:
        errors = sorted(self.validator(pointer).iter_errors(instance), key=lambda e: e.path)
        if errors:
            detail = "; ".join(
                f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
                for e in errors[:5]
            )
            raise SpecViolation(f"{what} does not match {pointer}: {detail}")

    def operation(self, operation_id: str) -> dict[str, Any]:
        template, method = self.operations[operation_id]
        op: dict[str, Any] = self.doc["paths"][template][method]
        return op

    def parameters(self, template: str, method: str) -> list[dict[str, Any]]:
        item = self.doc["paths"][template]
        params = [*item.get("parameters", []), *item[method].get("parameters", [])]
        return [self.resolve(p) for p in params]

    def _param_pointer(self, template: str, method: str, name: str, where: str) -> str:
        item = self.doc["paths"][template]
        for scope, params in (
            (("paths", template, method, "parameters"), item[method].get("parameters", [])),
            (("paths", template, "parameters"), item.get("parameters", [])),
        ):
            for index, param in enumerate(params):
                resolved = self.resolve(param)
                if resolved["name"] == name and resolved["in"] == where:
                    return _pointer(*scope, str(index), "schema")
        raise SpecViolation(f"{where} parameter {name!r} is not declared")

    # -- requests --------------------------------------------------------------------------

    def validate_request(self, request: httpx.Request) -> Recorded:
        # raw_path keeps %2F inside a segment from splitting it, as a server would.
        path = request.url.raw_path.decode("ascii").split("?", 1)[0]
        if not path.startswith(self.base_path + "/"):
            raise SpecViolation(f"{path} is outside the API base path {self.base_path}")
        api_path = path[len(self.base_path) :]
        matches = [(t, m) for r, t in self.routes if (m := r.match(api_path))]
        if not matches:
            raise SpecViolation(f"no path in the schema matches {api_path}")
        # Literal segments win over templated ones (`instances/batch` over `{instance_id}`).
        template, found = min(matches, key=lambda match: match[0].count("{"))
        method = request.method.lower()
        op = self.doc["paths"][template].get(method)
        if op is None:
            raise SpecViolation(f"{request.method} is not defined on {template}")
        where = f"{op['operationId']} ({request.method} {template})"

        self._check_security(op, request, where)
        path_params = {k: unquote(v) for k, v in found.groupdict().items()}
        declared = {(p["in"], p["name"]): p for p in self.parameters(template, method)}
        for (place, name), param in declared.items():
            if place == "path" and name not in path_params:
                raise SpecViolation(f"{where}: path parameter {name} missing")
            if place == "query" and param.get("required") and name not in request.url.params:
                raise SpecViolation(f"{where}: required query parameter {name} missing")
        for name, value in path_params.items():
            pointer = self._param_pointer(template, method, name, "path")
            self.check(pointer, value, f"{where}: path parameter {name}={value!r}")
        query: dict[str, str] = {}
        for name in request.url.params:
            values = request.url.params.get_list(name)
            if ("query", name) not in declared:
                raise SpecViolation(f"{where}: query parameter {name!r} is not in the schema")
            if len(values) != 1:
                raise SpecViolation(f"{where}: query parameter {name!r} repeated")
            pointer = self._param_pointer(template, method, name, "query")
            typed = self._coerce(values[0], self.node(pointer))
            self.check(pointer, typed, f"{where}: query parameter {name}={values[0]!r}")
            query[name] = values[0]

        recorded = Recorded(
            operation_id=op["operationId"],
            method=request.method,
            path=api_path,
            path_params=path_params,
            query=query,
            headers=request.headers,
        )
        self._check_body(template, method, op, request, recorded, where)
        return recorded

    @staticmethod
    def _coerce(value: str, schema: Mapping[str, Any]) -> Any:
        kind = schema.get("type")
        try:
            if kind == "number":
                return float(value) if "." in value else int(value)
            if kind == "integer":
                return int(value)
            if kind == "boolean":
                return {"true": True, "false": False}[value]
        except (KeyError, ValueError):
            return value
        return value

    def _check_security(self, op: Mapping[str, Any], request: httpx.Request, where: str) -> None:
        requirements = op.get("security", self.doc.get("security", []))
        if not any("api_token" in req for req in requirements):
            raise SpecViolation(f"{where}: the schema does not allow a bearer token here")
        auth = request.headers.get("authorization", "")
        if not re.fullmatch(r"Bearer [^\s]+", auth):
            raise SpecViolation(f"{where}: no 'Authorization: Bearer <token>' header")
        for legacy in ("x-auth-email", "x-auth-key", "x-auth-user-service-key"):
            if legacy in request.headers:
                raise SpecViolation(f"{where}: legacy auth header {legacy} sent with a token")

    def _check_body(
        self,
        template: str,
        method: str,
        op: Mapping[str, Any],
        request: httpx.Request,
        recorded: Recorded,
        where: str,
    ) -> None:
        body = request.read()
        spec = op.get("requestBody")
        if spec is None:
            if body:
                raise SpecViolation(f"{where}: the operation takes no body, got {body[:80]!r}")
            return
        if "$ref" in spec:
            body_pointer = spec["$ref"]
            spec = self.resolve(spec)
        else:
            body_pointer = _pointer("paths", template, method, "requestBody")
        if not body:
            if spec.get("required"):
                raise SpecViolation(f"{where}: request body is required")
            return
        content_type = request.headers.get("content-type", "")
        media = content_type.split(";", 1)[0].strip().lower()
        if media not in spec["content"]:
            raise SpecViolation(f"{where}: Content-Type {media!r} not in {sorted(spec['content'])}")
        schema_pointer = f"{body_pointer}/content/{media.replace('/', '~1')}/schema"
        if media == "application/json":
            try:
                recorded.json = json.loads(body)
            except ValueError as exc:
                raise SpecViolation(f"{where}: body is not JSON: {exc}") from exc
            self.check(schema_pointer, recorded.json, f"{where}: JSON body")
        elif media == "multipart/form-data":
            self._check_multipart(content_type, body, schema_pointer, recorded, where)
        else:
            raise SpecViolation(f"{where}: the client should not send {media}")

    def _check_multipart(
        self, content_type: str, body: bytes, schema_pointer: str, recorded: Recorded, where: str
    ) -> None:
        head = f"Content-Type: {content_type}\r\n\r\n".encode("latin-1")
        message: Any = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
        if not message.is_multipart():
            raise SpecViolation(f"{where}: body is not multipart")
        for part in message.iter_parts():
            if part.get_content_disposition() != "form-data":
                raise SpecViolation(f"{where}: part without Content-Disposition: form-data")
            name = part.get_param("name", header="content-disposition")
            if not name:
                raise SpecViolation(f"{where}: part without a name")
            explicit_type = part.get("content-type")
            recorded.parts.append(
                (
                    name,
                    part.get_filename(),
                    explicit_type and part.get_content_type(),
                    part.get_payload(decode=True) or b"",
                )
            )
        names = [name for name, *_ in recorded.parts]
        if len(set(names)) != len(names):
            raise SpecViolation(f"{where}: duplicate part names {names}")
        by_name = {name: rest for name, *rest in recorded.parts}
        if "metadata" not in by_name:
            raise SpecViolation(f"{where}: no metadata part (Cloudflare answers 10021)")
        _, meta_type, meta_bytes = by_name.pop("metadata")
        if meta_type not in (None, "application/json"):
            raise SpecViolation(f"{where}: metadata part has Content-Type {meta_type}")
        try:
            recorded.metadata = json.loads(meta_bytes)
        except ValueError as exc:
            raise SpecViolation(f"{where}: metadata part is not JSON: {exc}") from exc
        # Quirk: oneOf[1] (rollback message) matches any object, so only oneOf[0] is meaningful.
        instance: dict[str, Any] = {"metadata": recorded.metadata}
        instance.update({name: [content.decode()] for name, (_, _, content) in by_name.items()})
        self.check(f"{schema_pointer}/oneOf/0", instance, f"{where}: multipart body")
        if not by_name:
            raise SpecViolation(f"{where}: no module parts")
        main = recorded.metadata.get("main_module") or recorded.metadata.get("body_part")
        if main not in by_name:
            raise SpecViolation(f"{where}: main_module {main!r} is not a part ({sorted(by_name)})")
        for name, (filename, part_type, _) in by_name.items():
            if filename != name:
                raise SpecViolation(f"{where}: part {name!r} has filename {filename!r}")
            allowed = _VENDOR_TYPES if name.startswith("python_modules/") else _PYTHON_TYPES
            if part_type not in allowed:
                raise SpecViolation(f"{where}: module {name!r} has Content-Type {part_type!r}")

    # -- responses -------------------------------------------------------------------------

    def validate_response(self, operation_id: str, status: int, body: Any) -> None:
        template, method = self.operations[operation_id]
        responses = self.doc["paths"][template][method]["responses"]
        key = next(
            (k for k in (str(status), f"{str(status)[0]}XX", "default") if k in responses), None
        )
        pointer: str | None = None
        if key is not None and "application/json" in responses[key].get("content", {}):
            pointer = _pointer(
                "paths", template, method, "responses", key, "content", "application/json", "schema"
            )
        what = f"fake {status} answer to {operation_id}"
        if pointer is None:
            if status < 400:
                return  # a raw (non-JSON) success body, e.g. the script download
            self.check("#/components/schemas/workers_api-response-common-failure", body, what)
            return
        target = self.node(pointer)
        if status < 400 and "allOf" in target and isinstance(body, dict):
            # Quirk: D1's list and query answers are allOf(the common envelope, whose `result`
            # is an object, and a member whose `result` is an array), which no array satisfies:
            # the envelope is checked with an object in place of the array.
            arrays = [
                m
                for m in target["allOf"]
                if self.resolve(m).get("properties", {}).get("result", {}).get("type") == "array"
            ]
            if arrays and isinstance(body.get("result"), list):
                errors: list[str] = []
                for index, member in enumerate(target["allOf"]):
                    checked = body if member in arrays else {**body, "result": {}}
                    validator = self.validator(f"{pointer}/allOf/{index}")
                    errors.extend(e.message for e in validator.iter_errors(checked))
                if errors:
                    raise SpecViolation(f"{what} does not match {pointer}: {errors[:3]}")
                return
        if status >= 400 and "allOf" in target:
            # Quirk: allOf(success envelope, failure envelope) is unsatisfiable; drop the former.
            members = [m for m in target["allOf"] if not _is_success_envelope_ref(m)]
            errors = self._errors_for_members(members, body)
            if errors:
                raise SpecViolation(f"{what} does not match {pointer} (less success): {errors[:3]}")
            return
        self.check(pointer, body, what)

    def _errors_for_members(self, members: list[Any], body: Any) -> list[str]:
        errors: list[str] = []
        for member in members:
            if "$ref" in member:
                validator = self.validator(member["$ref"])
            else:
                validator = Draft4Validator(member, format_checker=self.format_checker)
            errors.extend(e.message for e in validator.iter_errors(body))
        return errors


def _is_success_envelope_ref(member: Mapping[str, Any]) -> bool:
    ref = member.get("$ref", "")
    return bool(ref) and not ref.endswith("-failure")


# -- the fake account ----------------------------------------------------------------------


@dataclass
class Canned:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    validate: bool = True


def failure(
    status: int,
    code: int | None,
    message: str,
    *,
    headers: Mapping[str, str] | None = None,
    string_messages: tuple[str, ...] = (),
) -> Canned:
    """A v4 failure envelope, as Cloudflare sends with a 4xx/5xx."""
    errors = [] if code is None else [{"code": code, "message": message}]
    body = {"success": False, "errors": errors, "messages": list(string_messages), "result": None}
    return Canned(status, body, dict(headers or {}))


def _uuid(*parts: object) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "/".join(map(str, parts))))


class FakeCloudflare:
    """An in-memory Cloudflare account behind an ``httpx.MockTransport``."""

    def __init__(
        self, spec: OpenAPISubset, *, token: str = TOKEN, account_id: str = ACCOUNT
    ) -> None:
        self.spec = spec
        self.token = token
        self.account_id = account_id
        self.requests: list[Recorded] = []
        self.violations: list[str] = []
        self.scripts: dict[str, dict[str, Any]] = {}
        self.schedules: dict[str, list[dict[str, Any]]] = {}
        self.workflows: dict[str, dict[str, Any]] = {}
        self.instances: dict[str, dict[str, dict[str, Any]]] = {}
        self.events: list[tuple[str, str, str, Any]] = []
        # D1 databases by uuid: name, created_at and a real SQLite database for queries.
        self.databases: dict[str, dict[str, Any]] = {}
        # Worker secrets by script (secret_text bindings, kept by keep_bindings).
        self.secrets: dict[str, dict[str, str]] = {}
        # Step histories by (workflow, instance), in the instance API's shape.
        self.histories: dict[tuple[str, str], dict[str, Any]] = {}
        self.cursor_paging = False
        self._queued: dict[str, deque[Canned | Exception]] = {}
        self._counter = 0

    # -- configuration ---------------------------------------------------------------------

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def client(self, **options: Any) -> CloudflareClient:
        options.setdefault("transport", self.transport())
        return CloudflareClient(self.token, self.account_id, **options)

    def queue(self, operation_id: str, *answers: Canned | Exception) -> None:
        """Answer the next calls of ``operation_id`` with these, before the account state."""
        assert operation_id in self.spec.operations, operation_id
        self._queued.setdefault(operation_id, deque()).extend(answers)

    def operations(self) -> list[str]:
        return [r.operation_id for r in self.requests]

    # -- transport -------------------------------------------------------------------------

    def handle(self, request: httpx.Request) -> httpx.Response:
        try:
            recorded = self.spec.validate_request(request)
        except SpecViolation as exc:
            self.violations.append(str(exc))
            raise
        self.requests.append(recorded)
        queued = self._queued.get(recorded.operation_id)
        if queued:
            answer = queued.popleft()
            if isinstance(answer, Exception):
                raise answer
            return self._respond(recorded, answer)
        if request.headers["authorization"] != f"Bearer {self.token}":
            code = 1000 if recorded.operation_id == "user-api-tokens-verify-token" else 10000
            text = "Invalid API Token" if code == 1000 else "Authentication error"
            return self._respond(recorded, failure(401, code, text))
        account = recorded.path_params.get("account_id")
        if account is not None and account != self.account_id:
            return self._respond(
                recorded,
                failure(
                    404,
                    7003,
                    f"Could not route to /accounts/{account}, "
                    "perhaps your object identifier is invalid?",
                ),
            )
        handler: Callable[[Recorded], Canned] = getattr(
            self, "_op_" + recorded.operation_id.replace("-", "_")
        )
        return self._respond(recorded, handler(recorded))

    def _respond(self, recorded: Recorded, canned: Canned) -> httpx.Response:
        headers = {"cf-ray": "8f0c0ffee0000000-SJC", **canned.headers}
        if isinstance(canned.body, bytes):
            return httpx.Response(canned.status, content=canned.body, headers=headers)
        if canned.validate:
            self.spec.validate_response(recorded.operation_id, canned.status, canned.body)
        return httpx.Response(canned.status, json=canned.body, headers=headers)

    # -- canned answers (tests reach these through the fixture, not by importing conftest) ---

    fail = staticmethod(failure)

    @staticmethod
    def answer(
        status: int,
        body: Any,
        headers: Mapping[str, str] | None = None,
        *,
        validate: bool = True,
    ) -> Canned:
        """Any answer; ``validate=False`` for deliberately off-schema bodies."""
        return Canned(status, body, dict(headers or {}), validate)

    # -- operations ------------------------------------------------------------------------

    @staticmethod
    def ok(result: Any, *, result_info: dict[str, Any] | None = None) -> Canned:
        body: dict[str, Any] = {"success": True, "errors": [], "messages": [], "result": result}
        if result_info is not None:
            body["result_info"] = result_info
        return Canned(200, body)

    def _op_user_api_tokens_verify_token(self, r: Recorded) -> Canned:
        canned = self.ok(
            {
                "id": "ed17574386854bf78a67040be0a770b0",
                "status": "active",
                "expires_on": "2030-01-01T00:00:00Z",
                "not_before": "2025-01-01T00:00:00Z",
            }
        )
        canned.body["messages"] = [{"code": 10000, "message": "This API Token is valid and active"}]
        return canned

    def _op_worker_script_upload_worker_module(self, r: Recorded) -> Canned:
        name = r.path_params["script_name"]
        modules = {n: (t, c) for n, f, t, c in r.parts if n != "metadata"}
        digest = hashlib.sha256(
            json.dumps(r.metadata, sort_keys=True).encode()
            + b"".join(n.encode() + c for n, (_, c) in sorted(modules.items()))
        ).hexdigest()
        previous = self.scripts.get(name)
        assert r.metadata is not None
        kept = (
            self.secrets.get(name, {})
            if "secret_text" in r.metadata.get("keep_bindings", [])
            else {}
        )
        given = {
            b["name"]: b["text"]
            for b in r.metadata.get("bindings", [])
            if b.get("type") == "secret_text"
        }
        self.secrets[name] = {**kept, **given}
        self.scripts[name] = {
            "metadata": r.metadata,
            "modules": modules,
            "etag": digest,
            "created_on": previous["created_on"] if previous else NOW,
        }
        return self.ok(
            {
                "id": name,
                "etag": digest,
                "handlers": ["fetch", "scheduled"],
                "created_on": self.scripts[name]["created_on"],
                "modified_on": NOW,
                "logpush": False,
                "placement_mode": "smart",
                "startup_time_ms": 10,
                "tail_consumers": [],
            }
        )

    def _op_worker_script_download_worker(self, r: Recorded) -> Canned:
        script = self.scripts.get(r.path_params["script_name"])
        if script is None:
            return failure(404, 10007, "workers.api.error.script_not_found")
        boundary = "fakecloudflareboundary"
        chunks = []
        for name, (ctype, content) in script["modules"].items():
            chunks.append(
                f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
                f'filename="{name}"\r\nContent-Type: {ctype}\r\n\r\n'.encode()
                + content
                + b"\r\n"
            )
        body = b"".join(chunks) + f"--{boundary}--\r\n".encode()
        return Canned(200, body, {"content-type": f"multipart/form-data; boundary={boundary}"})

    def _schedules_result(self, script: str) -> Canned:
        return self.ok({"schedules": self.schedules.get(script, [])})

    def _op_worker_cron_trigger_update_cron_triggers(self, r: Recorded) -> Canned:
        # The 2024 schema gives this body only an example, so check the documented shape here.
        if not isinstance(r.json, list) or not all(
            isinstance(item, dict) and set(item) == {"cron"} and isinstance(item["cron"], str)
            for item in r.json
        ):
            self.violations.append(f"schedules body is not [{{'cron': str}}, ...]: {r.json!r}")
            raise SpecViolation(self.violations[-1])
        script = r.path_params["script_name"]
        if script not in self.scripts:
            return failure(404, 10007, "workers.api.error.script_not_found")
        self.schedules[script] = [
            {"cron": item["cron"], "created_on": NOW, "modified_on": NOW} for item in r.json
        ]
        return self._schedules_result(script)

    def _op_worker_cron_trigger_get_cron_triggers(self, r: Recorded) -> Canned:
        script = r.path_params["script_name"]
        if script not in self.scripts:
            return failure(404, 10007, "workers.api.error.script_not_found")
        return self._schedules_result(script)

    def _workflow_view(self, name: str, *, with_counts: bool) -> dict[str, Any]:
        record = dict(self.workflows[name])
        if with_counts:
            record.pop("version_id")
            record.pop("is_deleted")
            record.pop("terminator_running")
            counts = dict.fromkeys(
                (
                    "queued",
                    "running",
                    "paused",
                    "errored",
                    "terminated",
                    "complete",
                    "waiting",
                    "waitingForPause",
                    "rollingBack",
                ),
                0,
            )
            for instance in self.instances.get(name, {}).values():
                counts[instance["status"]] += 1
            record["instances"] = counts
        return record

    def _op_wor_create_or_modify_workflow(self, r: Recorded) -> Canned:
        name = r.path_params["workflow_name"]
        if r.json["script_name"] not in self.scripts:
            # The code is the fake's own; the schema only promises a 400 envelope.
            return failure(400, 10200, f"script {r.json['script_name']!r} is not deployed")
        previous = self.workflows.get(name)
        self.workflows[name] = {
            "id": _uuid("workflow", name),
            "name": name,
            "script_name": r.json["script_name"],
            "class_name": r.json["class_name"],
            "version_id": _uuid("version", name, r.json["script_name"], r.json["class_name"]),
            "created_on": previous["created_on"] if previous else NOW,
            "modified_on": NOW,
            "triggered_on": None,
            "is_deleted": 0,
            "terminator_running": 0,
        }
        return self.ok(self._workflow_view(name, with_counts=False))

    def _op_wor_get_workflow_details(self, r: Recorded) -> Canned:
        name = r.path_params["workflow_name"]
        if name not in self.workflows:
            return failure(404, 10200, "workflow.not_found")
        return self.ok(self._workflow_view(name, with_counts=True))

    def _page(self, items: list[Any], r: Recorded) -> Canned:
        per_page = int(r.query.get("per_page", "10"))
        if "cursor" in r.query:
            start = int(r.query["cursor"])
        else:
            start = (int(r.query.get("page", "1")) - 1) * per_page
        chunk = items[start : start + per_page]
        info: dict[str, Any] = {
            "per_page": per_page,
            "count": len(chunk),
            "total_count": len(items),
        }
        if self.cursor_paging:
            if start + per_page < len(items):
                info["cursor"] = str(start + per_page)
        else:
            info["page"] = start // per_page + 1
            info["total_pages"] = max(1, -(-len(items) // per_page))
        return self.ok(chunk, result_info=info)

    def _op_wor_list_workflows(self, r: Recorded) -> Canned:
        views = [self._workflow_view(n, with_counts=True) for n in sorted(self.workflows)]
        return self._page(views, r)

    def _instance(self, r: Recorded) -> dict[str, Any] | Canned:
        workflow = r.path_params["workflow_name"]
        if workflow not in self.workflows:
            return failure(404, 10200, "workflow.not_found")
        instance = self.instances.get(workflow, {}).get(r.path_params["instance_id"])
        if instance is None:
            return failure(404, 10201, "instance.not_found")
        return instance

    def _op_wor_create_new_workflow_instance(self, r: Recorded) -> Canned:
        workflow = r.path_params["workflow_name"]
        if workflow not in self.workflows:
            return failure(404, 10200, "workflow.not_found")
        body = r.json or {}
        self._counter += 1
        instance_id = body.get("instance_id") or _uuid("instance", workflow, self._counter)
        existing = self.instances.setdefault(workflow, {})
        if instance_id in existing:
            return failure(409, 10202, "instance.already_exists")
        existing[instance_id] = {
            "id": instance_id,
            "status": "queued",
            "params": body.get("params"),
            "version_id": self.workflows[workflow]["version_id"],
            "workflow_id": self.workflows[workflow]["id"],
            "trigger_source": "api",
            "created_on": NOW,
            "modified_on": NOW,
        }
        return self.ok(
            {k: existing[instance_id][k] for k in ("id", "status", "version_id", "workflow_id")}
            | {"trigger_source": "api"}
        )

    def _op_wor_describe_workflow_instance(self, r: Recorded) -> Canned:
        instance = self._instance(r)
        if isinstance(instance, Canned):
            return instance
        history = self.histories.get((r.path_params["workflow_name"], instance["id"]))
        if history is not None:
            return self.ok(
                {
                    "status": instance["status"],
                    "params": instance["params"],
                    "output": history.get("output"),
                    "error": history.get("error"),
                    "queued": NOW,
                    "start": NOW,
                    "end": None,
                    "success": None,
                    "versionId": instance["version_id"],
                    "step_count": len(history["steps"]),
                    "steps": history["steps"],
                    "trigger": {"source": "api"},
                }
            )
        return self.ok(
            {
                "status": instance["status"],
                "params": instance["params"],
                "output": None,
                "error": None,
                "queued": NOW,
                "start": None,
                "end": None,
                "success": None,
                "versionId": instance["version_id"],
                "step_count": 0,
                "steps": [],
                "trigger": {"source": "api"},
            }
        )

    def add_instance(self, history: Any, *, status: str | None = None) -> str:
        """Put an instance with this history (an awf_sim History, or its JSON) on the account,
        as the instance API would show it; its workflow must exist. Returns its id."""
        data = history.to_json() if hasattr(history, "to_json") else dict(history)
        workflow, iid = data["workflow"], data["instance"]
        assert workflow in self.workflows, f"put workflow {workflow!r} on the account first"
        self.instances.setdefault(workflow, {})[iid] = {
            "id": iid,
            "status": status or data["status"],
            "params": data.get("params"),
            "version_id": self.workflows[workflow]["version_id"],
            "workflow_id": self.workflows[workflow]["id"],
            "trigger_source": "api",
            "created_on": NOW,
            "modified_on": NOW,
        }
        self.histories[(workflow, iid)] = {
            "steps": data["steps"],
            "output": data.get("output"),
            "error": data.get("error"),
        }
        return str(iid)

    # -- D1 --------------------------------------------------------------------------------

    def _d1_view(self, uuid_: str) -> dict[str, Any]:
        db = self.databases[uuid_]
        return {
            "uuid": uuid_,
            "name": db["name"],
            "version": "production",
            "created_at": db["created_at"],
        }

    def _op_cloudflare_d1_list_databases(self, r: Recorded) -> Canned:
        wanted = r.query.get("name", "")
        views = [self._d1_view(u) for u, db in self.databases.items() if wanted in db["name"]]
        page, per_page = int(r.query.get("page", "1")), int(r.query.get("per_page", "1000"))
        chunk = views[(page - 1) * per_page : page * per_page]
        info = {"page": page, "per_page": per_page, "count": len(chunk), "total_count": len(views)}
        return self.ok(chunk, result_info=info)

    def _op_cloudflare_d1_get_database(self, r: Recorded) -> Canned:
        uuid_ = r.path_params["database_id"]
        if uuid_ not in self.databases:
            # D1's answer for an unknown id (the schema promises only a 4XX envelope).
            return failure(404, 7404, f"The database {uuid_} could not be found")
        return self.ok(self._d1_view(uuid_))

    def add_database(self, name: str, uuid_: str) -> None:
        """A D1 database made outside awf-deploy (`wrangler d1 create`), empty."""
        self.databases[uuid_] = {
            "name": name,
            "created_at": NOW,
            "conn": sqlite3.connect(":memory:", isolation_level=None),
        }

    def _op_cloudflare_d1_create_database(self, r: Recorded) -> Canned:
        name = r.json["name"]
        if any(db["name"] == name for db in self.databases.values()):
            return failure(400, 7502, "A database with that name already exists")
        uuid_ = _uuid("d1", name)
        self.databases[uuid_] = {
            "name": name,
            "created_at": NOW,
            "conn": sqlite3.connect(":memory:", isolation_level=None),
        }
        return self.ok(self._d1_view(uuid_))

    def d1_rows(self, name: str, sql: str) -> list[dict[str, Any]]:
        """Read a fake D1 database by name (for assertions)."""
        db = next(db for db in self.databases.values() if db["name"] == name)
        cursor = db["conn"].execute(sql)
        columns = [c[0] for c in cursor.description or ()]
        return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]

    def _op_cloudflare_d1_query_database(self, r: Recorded) -> Canned:
        db = self.databases.get(r.path_params["database_id"])
        if db is None:
            return failure(404, 7404, "The database could not be found")
        conn: sqlite3.Connection = db["conn"]
        # Statements joined by semicolons run as one batch (a `;` inside a string literal or a
        # trigger body does not end a statement: complete_statement knows).
        statements: list[str] = []
        pending = ""
        for piece in r.json["sql"].split(";"):
            pending += piece + ";"
            if sqlite3.complete_statement(pending):
                if pending.strip(" \n\t;"):
                    statements.append(pending.strip())
                pending = ""
        if pending.strip(" \n\t;"):
            statements.append(pending.strip())
        params = r.json.get("params") or []
        results = []
        conn.execute("BEGIN")
        try:
            for sql in statements:
                cursor = conn.execute(sql, params if len(statements) == 1 else [])
                columns = [c[0] for c in cursor.description or ()]
                rows = [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
                results.append(
                    {
                        "results": rows,
                        "success": True,
                        "meta": {"changes": cursor.rowcount if cursor.rowcount > 0 else 0},
                    }
                )
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            conn.execute("ROLLBACK")
            return failure(400, 7500, f"{exc}: SQLITE_ERROR")
        return self.ok(results)

    def _op_wor_list_workflow_instances(self, r: Recorded) -> Canned:
        workflow = r.path_params["workflow_name"]
        if workflow not in self.workflows:
            return failure(404, 10200, "workflow.not_found")
        rows = [
            {k: v for k, v in inst.items() if k != "params"}
            for inst in self.instances.get(workflow, {}).values()
            if "status" not in r.query or inst["status"] == r.query["status"]
        ]
        return self._page(rows, r)

    def _op_wor_change_status_workflow_instance(self, r: Recorded) -> Canned:
        instance = self._instance(r)
        if isinstance(instance, Canned):
            return instance
        instance["status"] = {
            "pause": "paused",
            "resume": "running",
            "terminate": "terminated",
            "restart": "queued",
        }[r.json["status"]]
        return self.ok({"status": instance["status"], "timestamp": NOW})

    def _op_wor_send_event_workflow_instance(self, r: Recorded) -> Canned:
        instance = self._instance(r)
        if isinstance(instance, Canned):
            return instance
        self.events.append(
            (
                r.path_params["workflow_name"],
                r.path_params["instance_id"],
                r.path_params["event_type"],
                r.json,
            )
        )
        return self.ok({})


# -- fixtures ------------------------------------------------------------------------------


def _spec_path() -> Path:
    for candidate in SPEC_CANDIDATES:
        if candidate.is_file():
            return candidate
    # Failing, not skipping: a silently skipped schema check would let any request through.
    pytest.fail(
        "workflows-deploy-subset.json not found; looked in "
        + ", ".join(str(c) for c in SPEC_CANDIDATES)
    )


@pytest.fixture(scope="session")
def openapi() -> OpenAPISubset:
    return OpenAPISubset(_spec_path())


@pytest.fixture
def cf(openapi: OpenAPISubset) -> Iterator[FakeCloudflare]:
    fake = FakeCloudflare(openapi)
    yield fake
    assert not fake.violations, "requests broke the OpenAPI schema:\n" + "\n".join(fake.violations)


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def client(cf: FakeCloudflare, sleeps: list[float]) -> Iterator[CloudflareClient]:
    with cf.client(sleep=sleeps.append) as c:
        yield c


# -- awf-deploy: build, push and CLI fixtures ----------------------------------------------------
# (appended for tests/deploy/test_build.py, test_entry_in_sim.py, test_push.py, test_cli.py)

EXAMPLES_DIR = _HERE.parents[1] / "examples"

# Small flow files the deploy tests build and push. Their Domain and Workflow names are unique
# in the test session (the DSL's registry is process-wide), and they are written once per
# session, so loading one twice never counts as a redefinition.
TEST_FLOWS: dict[str, str] = {
    "shop.py": """
from awf_sim import Domain, Workflow


async def greet(person, args, ctx):
    return {"text": f"{args.get('greeting', 'hello')} {person['name']}"}


DeployGreeter = Domain("DeployGreeter", {"greet": greet})


@Workflow("deploy-greeting", examples=[{"name": "ana"}], domains=[DeployGreeter])
async def greeting(wf, params):
    return await wf.DeployGreeter(params).greet(greeting="hi")


async def nightly(wf):
    return await wf.DeployGreeter({"name": "night"}).greet()


Nightly = Workflow("deploy-nightly", domains=[DeployGreeter]).every("every day at 02:00").run(
    nightly
)
""",
    "ledger.py": """
from awf_sim import Database, Domain, Workflow

DATABASE = Database(
    schema="CREATE TABLE entries (key TEXT PRIMARY KEY, account TEXT, amount REAL);",
)


async def record(account, args, ctx):
    await ctx.db.execute(
        "INSERT OR IGNORE INTO entries (key, account, amount) VALUES (?, ?, ?)",
        [ctx.idempotency_key, account["id"], args["amount"]],
    )
    row = await ctx.db.query_one("SELECT SUM(amount) AS total FROM entries WHERE account = ?",
                                 [account["id"]])
    return {"total": row["total"]}


async def summarize(account, args, handler_ctx):
    return await handler_ctx.ai.generate(prompt=f"summarize {account['id']}")


DeployLedger = Domain("DeployLedger", {"record": record, "summarize": summarize})


@Workflow("deploy-ledger", examples=[{"id": "acc-1", "amount": 5.0}], domains=[DeployLedger])
async def ledger(wf, params):
    return await wf.DeployLedger({"id": params["id"]}).record(amount=params["amount"])
""",
    "broken.py": """
from awf_sim import Database, Domain, Workflow

DATABASE = Database(
    schema="CREATE TABLE counters (name TEXT PRIMARY KEY, n INTEGER);"
    "INSERT INTO counters VALUES ('visits', 0);"
)


async def bump(counter, args, ctx):
    # Not idempotent: a crash after the UPDATE, before the checkpoint, counts twice.
    await ctx.db.execute("UPDATE counters SET n = n + 1 WHERE name = ?", [counter["name"]])
    return {"bumped": True}


DeployCounter = Domain("DeployCounter", {"bump": bump})


@Workflow("deploy-counter", examples=[{"name": "visits"}], domains=[DeployCounter])
async def counter(wf, params):
    return await wf.DeployCounter(params).bump()
""",
    # Every path of the adapter: retries, NonRetryableError caught and uncaught, a failed
    # step caught, sleeps, an event wait that times out and one that is answered, wf.do, state.
    "paths.py": """
import asyncio

from awf_sim import Domain, NonRetryableError, StepError, Workflow


async def flaky(item, args, ctx):
    if ctx.attempt < 3:
        raise ConnectionError(f"try {ctx.attempt} of {ctx.step['path']}")
    return {"item": item["id"], "attempt": ctx.attempt, "key": ctx.idempotency_key}


async def refuse(item, args, ctx):
    raise NonRetryableError(f"{item['id']} refused")


async def explode(item, args, ctx):
    raise ValueError("boom")


DeployPaths = Domain(
    "DeployPaths",
    {
        "flaky": {"handler": flaky, "retries": {"limit": 4, "delay": "1 second"}},
        "refuse": refuse,
        "explode": {"handler": explode, "retries": {"limit": 1, "delay": 10, "backoff": "constant"},
                    "timeout": "5 seconds"},
    },
)


@Workflow(
    "deploy-paths",
    examples=[{"id": "p-1"}, {"id": "p-2", "fail": True}],
    events=[{"type": "go", "payload": {"ok": True}, "after": "1 hour"}],
    domains=[DeployPaths],
)
async def paths(wf, params):
    first, second = await asyncio.gather(
        wf.DeployPaths(params).flaky(), wf.DeployPaths({"id": "other"}).flaky()
    )
    out = {"first": first, "second": second, "instance": wf.instance_id}
    try:
        await wf.DeployPaths(params).refuse()
    except NonRetryableError as exc:
        out["refused"] = [type(exc).__name__, exc.name, exc.message]
    try:
        await wf.DeployPaths(params).explode()
    except StepError as exc:
        out["exploded"] = [type(exc).__name__, exc.name, exc.message]
    await wf.sleep("nap", "10 minutes")
    try:
        await wf.wait_for("never", type="never", timeout="5 minutes")
    except StepError as exc:
        out["timed_out"] = exc.name
    out["go"] = await wf.wait_for("go", type="go", timeout="2 hours")
    out["raw"] = await wf.do("raw", lambda: {"n": 1})
    state = wf.state({"count": 0})
    await state.update({"count": state.current["count"] + 1})
    out["state"] = state.current
    if params.get("fail"):
        await wf.DeployPaths(params).refuse()
    return out
""",
    # A handler that spins 3 s of CPU on every attempt: past a budget of 50 ms, an endless loop
    # (and a budget that does not reach it fails the test in seconds, not forever).
    "spin.py": """
import time

from awf_sim import Domain, Workflow


def crunch(c, a, ctx):
    end = time.process_time() + 3.0
    while time.process_time() < end:
        pass
    return {"ok": True}


DeployCrunch = Domain(
    "DeployCrunch", {"crunch": {"handler": crunch, "retries": {"limit": 0, "delay": 1}}}
)


@Workflow("deploy-crunch", examples=[{"n": 1}], domains=[DeployCrunch])
async def crunching(wf, params):
    return await wf.DeployCrunch(params).crunch()
""",
    "empty.py": """
from awf_sim import Domain

DeployNothing = Domain("DeployNothing", {})
""",
    "badname.py": """
from awf_sim import Workflow


@Workflow("bad name!")
async def bad(wf, params):
    return None
""",
}


@pytest.fixture(scope="session")
def flows_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("flows")
    for name, text in TEST_FLOWS.items():
        (folder / name).write_text(text.lstrip(), encoding="utf-8")
    return folder


class FakeD1Statement:
    """A D1 prepared statement over the simulator's SQLite database (`bind` / `all` / `first`
    / `run`), answering in D1's shapes."""

    def __init__(self, db: Any, sql: str, values: tuple[Any, ...] = ()) -> None:
        self.db = db
        self.sql = sql
        self.values = values

    def bind(self, *values: Any) -> FakeD1Statement:
        return FakeD1Statement(self.db, self.sql, values)

    async def all(self) -> dict[str, Any]:
        rows = await self.db.query(self.sql, list(self.values))
        return {"results": rows, "success": True, "meta": {"changes": 0}}

    async def first(self) -> dict[str, Any] | None:
        row: dict[str, Any] | None = await self.db.query_one(self.sql, list(self.values))
        return row

    async def run(self) -> dict[str, Any]:
        changes = await self.db.execute(self.sql, list(self.values))
        return {"results": [], "success": True, "meta": {"changes": changes}}


class FakeD1:
    """`env.DB`: a D1 binding backed by an awf_sim DatabaseHandle; records every statement."""

    def __init__(self, db: Any) -> None:
        self.db = db
        self.statements: list[str] = []

    def prepare(self, sql: str) -> FakeD1Statement:
        self.statements.append(sql)
        return FakeD1Statement(self.db, sql)


@pytest.fixture
def cli_env(cf: FakeCloudflare, monkeypatch: pytest.MonkeyPatch) -> FakeCloudflare:
    """The awf-deploy CLI talking to the fake account: credentials in the environment, the
    fake's transport and no real sleeping between retries."""
    import awf_deploy.cli

    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", cf.token)
    monkeypatch.setenv("CLOUDFLARE_ACCOUNT_ID", cf.account_id)
    monkeypatch.delenv("CLOUDFLARE_API_BASE_URL", raising=False)
    monkeypatch.delenv("AWF_D1_DATABASE_ID", raising=False)
    monkeypatch.setitem(awf_deploy.cli._CLIENT_OPTIONS, "transport", cf.transport())
    monkeypatch.setitem(awf_deploy.cli._CLIENT_OPTIONS, "sleep", lambda seconds: None)
    return cf


@pytest.fixture
def fake_d1() -> type[FakeD1]:
    """The FakeD1 class (tests reach conftest helpers through fixtures, not imports)."""
    return FakeD1
