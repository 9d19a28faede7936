"""The schema check itself: it covers every call the client makes and it catches bad requests.

A validator that accepted everything would make the other tests meaningless, so each rule is
shown to fire on a request that breaks it.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from awf_deploy.cloudflare import CloudflareClient

BASE = "https://api.cloudflare.com/client/v4"
ACCT = "023e105f4ecef8ad9ca31a8372d0c353"

# Every operation the client can send, by the schema's operationId.
CLIENT_OPERATIONS = {
    "user-api-tokens-verify-token",
    "worker-script-upload-worker-module",
    "worker-script-download-worker",
    "worker-cron-trigger-update-cron-triggers",
    "worker-cron-trigger-get-cron-triggers",
    "wor-create-or-modify-workflow",
    "wor-get-workflow-details",
    "wor-list-workflows",
    "wor-create-new-workflow-instance",
    "wor-describe-workflow-instance",
    "wor-list-workflow-instances",
    "wor-change-status-workflow-instance",
    "wor-send-event-workflow-instance",
    "cloudflare-d1-list-databases",
    "cloudflare-d1-create-database",
    "cloudflare-d1-get-database",
    "cloudflare-d1-query-database",
}


def exercise_every_call(client: CloudflareClient) -> None:
    client.verify_token()
    client.upload_script(
        "shop",
        {"entry.py": "x = 1\n", "pkg/__init__.py": ""},
        "entry.py",
        compatibility_date="2025-06-01",
        bindings=[
            {"type": "d1", "name": "DB", "id": "7b8c-db"},
            {"type": "secret_text", "name": "AWF_API_KEY", "text": "k"},
        ],
        keep_bindings=["secret_text"],
    )
    client.get_script("shop")
    client.get_script("absent")
    client.put_schedules("shop", ["0 * * * *"])
    client.get_schedules("shop")
    client.put_workflow("order-processing", "shop", "OrderProcessingWorkflow")
    client.get_workflow("order-processing")
    client.get_workflow("absent")
    client.list_workflows()
    client.create_instance("order-processing", {"a": [1, 2]}, instance_id="job-1")
    client.create_instance("order-processing", "a string param")
    client.create_instance("order-processing")
    client.get_instance("order-processing", "job-1")
    client.list_instances("order-processing")
    client.list_instances("order-processing", status="queued", limit=3)
    for action in ("pause", "resume", "terminate", "restart"):
        client.change_instance_status("order-processing", "job-1", action)  # type: ignore[arg-type]
    client.send_event("order-processing", "job-1", "approved", {"by": "ann"})
    client.send_event("order-processing", "job-1", "nudge")
    database = client.create_d1_database("shop-db")
    client.list_d1_databases()
    client.list_d1_databases("shop-db")
    assert client.get_d1_database(database.uuid) == database
    assert client.get_d1_database("00000000-0000-0000-0000-000000000000") is None
    client.query_d1(database.uuid, "CREATE TABLE t (a TEXT); INSERT INTO t VALUES ('x');")
    client.query_d1(database.uuid, "SELECT a FROM t WHERE a = ?", ["x"])


def test_every_client_call_is_validated_against_the_schema(client, cf, openapi):
    exercise_every_call(client)

    assert set(cf.operations()) == CLIENT_OPERATIONS
    assert set(openapi.operations) >= CLIENT_OPERATIONS
    assert cf.violations == []


def test_every_call_also_validates_with_cursor_paging(client, cf):
    cf.cursor_paging = True
    exercise_every_call(client)
    assert cf.violations == []


def request(method: str, path: str, **kwargs: Any) -> httpx.Request:
    headers = {"Authorization": "Bearer t0k", **kwargs.pop("headers", {})}
    return httpx.Request(method, BASE + path, headers=headers, **kwargs)


def upload(parts: list[tuple[str, tuple[str, bytes, str]]], metadata: Any) -> httpx.Request:
    data = {} if metadata is None else {"metadata": json.dumps(metadata)}
    return request("PUT", f"/accounts/{ACCT}/workers/scripts/shop", data=data, files=parts)


def raw_upload(*parts: tuple[dict[str, str], bytes]) -> httpx.Request:
    """A multipart upload built by hand, for shapes httpx would not produce."""
    boundary = "b0undary"
    body = b"".join(
        f"--{boundary}\r\n".encode()
        + "".join(f"{k}: {v}\r\n" for k, v in headers.items()).encode()
        + b"\r\n"
        + content
        + b"\r\n"
        for headers, content in parts
    )
    return request(
        "PUT",
        f"/accounts/{ACCT}/workers/scripts/shop",
        content=body + f"--{boundary}--\r\n".encode(),
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )


def disposition(name: str, filename: str | None = None) -> str:
    extra = f'; filename="{filename}"' if filename is not None else ""
    return f'form-data; name="{name}"{extra}'


GOOD_META = {"main_module": "entry.py", "compatibility_flags": ["python_workers"]}
GOOD_PART = ("entry.py", ("entry.py", b"x = 1", "text/x-python"))

BAD_REQUESTS = {
    "unknown path": request("GET", f"/accounts/{ACCT}/workers/services"),
    "outside the base path": httpx.Request(
        "GET",
        "https://api.cloudflare.com/user/tokens/verify",
        headers={"Authorization": "Bearer t"},
    ),
    "method not defined": request("POST", f"/accounts/{ACCT}/workflows/wf"),
    "no bearer token": httpx.Request("GET", BASE + "/user/tokens/verify"),
    "legacy key header with the token": request(
        "GET", "/user/tokens/verify", headers={"X-Auth-Key": "k"}
    ),
    "workflow name pattern": request("GET", f"/accounts/{ACCT}/workflows/bad.name"),
    "script name pattern": request("GET", f"/accounts/{ACCT}/workers/scripts/Shop"),
    "account id too long": request("GET", f"/accounts/{'a' * 33}/workers/scripts/shop"),
    "unknown query parameter": request("GET", f"/accounts/{ACCT}/workflows", params={"q": "x"}),
    "per_page over 100": request("GET", f"/accounts/{ACCT}/workflows", params={"per_page": 500}),
    "status filter enum": request(
        "GET", f"/accounts/{ACCT}/workflows/wf/instances", params={"status": "done"}
    ),
    "cursor on list workflows": request(
        "GET", f"/accounts/{ACCT}/workflows", params={"cursor": "abc"}
    ),
    "workflow body lacks class_name": request(
        "PUT", f"/accounts/{ACCT}/workflows/wf", json={"script_name": "shop"}
    ),
    "workflow body missing": request("PUT", f"/accounts/{ACCT}/workflows/wf"),
    "workflow body as form": request(
        "PUT", f"/accounts/{ACCT}/workflows/wf", data={"script_name": "s", "class_name": "C"}
    ),
    "status value": request(
        "PATCH", f"/accounts/{ACCT}/workflows/wf/instances/i/status", json={"status": "stop"}
    ),
    "status extra key": request(
        "PATCH",
        f"/accounts/{ACCT}/workflows/wf/instances/i/status",
        json={"status": "pause", "rollback": True},
    ),
    "instance id pattern": request(
        "POST", f"/accounts/{ACCT}/workflows/wf/instances", json={"instance_id": "a b"}
    ),
    "event payload not an object": request(
        "POST", f"/accounts/{ACCT}/workflows/wf/instances/i/events/ev", json=[1, 2]
    ),
    "body on a GET": request("GET", f"/accounts/{ACCT}/workflows", json={"x": 1}),
    "upload without metadata": upload([GOOD_PART], None),
    "upload metadata not JSON": request(
        "PUT",
        f"/accounts/{ACCT}/workers/scripts/shop",
        data={"metadata": "{main_module: entry.py}"},
        files=[GOOD_PART],
    ),
    "upload metadata wrong type": upload([GOOD_PART], {**GOOD_META, "bindings": {"a": 1}}),
    "upload usage_model outside the enum": upload(
        [GOOD_PART], {**GOOD_META, "usage_model": "standard"}
    ),
    "upload without modules": raw_upload(
        ({"Content-Disposition": disposition("metadata")}, json.dumps(GOOD_META).encode())
    ),
    "upload main_module not a part": upload([GOOD_PART], {**GOOD_META, "main_module": "m.py"}),
    "upload module typed as JavaScript": upload(
        [("entry.py", ("entry.py", b"x", "application/javascript+module"))], GOOD_META
    ),
    "upload module without filename": raw_upload(
        ({"Content-Disposition": disposition("metadata")}, json.dumps(GOOD_META).encode()),
        (
            {"Content-Disposition": disposition("entry.py"), "Content-Type": "text/x-python"},
            b"x = 1",
        ),
    ),
    "upload module under another filename": raw_upload(
        ({"Content-Disposition": disposition("metadata")}, json.dumps(GOOD_META).encode()),
        (
            {
                "Content-Disposition": disposition("entry.py", "main.py"),
                "Content-Type": "text/x-python",
            },
            b"x = 1",
        ),
    ),
    "upload module without a content type": raw_upload(
        ({"Content-Disposition": disposition("metadata")}, json.dumps(GOOD_META).encode()),
        ({"Content-Disposition": disposition("entry.py", "entry.py")}, b"x = 1"),
    ),
    "upload metadata typed as text": raw_upload(
        (
            {"Content-Disposition": disposition("metadata"), "Content-Type": "text/plain"},
            json.dumps(GOOD_META).encode(),
        ),
        (
            {
                "Content-Disposition": disposition("entry.py", "entry.py"),
                "Content-Type": "text/x-python",
            },
            b"x = 1",
        ),
    ),
    "upload as raw JavaScript": request(
        "PUT",
        f"/accounts/{ACCT}/workers/scripts/shop",
        content=b"export default {}",
        headers={"Content-Type": "application/javascript"},
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_REQUESTS))
def test_the_validator_rejects(openapi, case):
    with pytest.raises(openapi.Violation):
        openapi.validate_request(BAD_REQUESTS[case])


GOOD_REQUESTS = {
    "verify": request("GET", "/user/tokens/verify"),
    "upload": upload([GOOD_PART], GOOD_META),
    "hand-built upload with a JSON metadata part": raw_upload(
        (
            {"Content-Disposition": disposition("metadata"), "Content-Type": "application/json"},
            json.dumps(GOOD_META).encode(),
        ),
        (
            {
                "Content-Disposition": disposition("entry.py", "entry.py"),
                "Content-Type": "text/x-python",
            },
            b"x = 1",
        ),
    ),
    "list with paging": request(
        "GET", f"/accounts/{ACCT}/workflows", params={"page": 2, "per_page": 100}
    ),
    "status restart from a step": request(
        "PATCH",
        f"/accounts/{ACCT}/workflows/wf/instances/i/status",
        json={"status": "restart", "from": {"name": "charge", "type": "do"}},
    ),
    "batch is a literal segment": request(
        "POST", f"/accounts/{ACCT}/workflows/wf/instances/batch", json=[{"instance_id": "a"}]
    ),
}


@pytest.mark.parametrize("case", sorted(GOOD_REQUESTS))
def test_the_validator_accepts(openapi, case):
    openapi.validate_request(GOOD_REQUESTS[case])


def test_the_fake_checks_its_own_answers(openapi):
    workflow = {
        "id": "4e8d6f22-3b45-4b8a-9c1f-0a2b3c4d5e6f",
        "name": "wf",
        "script_name": "shop",
        "class_name": "W",
        "created_on": "2025-06-01T00:00:00Z",
        "modified_on": "2025-06-01T00:00:00Z",
        "triggered_on": None,
        "instances": {},
    }
    envelope = {"success": True, "errors": [], "messages": [], "result": workflow}
    openapi.validate_response("wor-get-workflow-details", 200, envelope)

    for broken in (
        {**workflow, "instances": None},
        {k: v for k, v in workflow.items() if k != "class_name"},
        {**workflow, "id": "not-a-uuid"},
        {**workflow, "created_on": "yesterday"},
    ):
        with pytest.raises(openapi.Violation):
            openapi.validate_response(
                "wor-get-workflow-details", 200, {**envelope, "result": broken}
            )
    with pytest.raises(openapi.Violation):
        openapi.validate_response("wor-get-workflow-details", 200, {**envelope, "success": False})


def test_failure_bodies_validate_where_the_schema_is_satisfiable(openapi, cf):
    failure = cf.fail(400, 10021, "could not read content for part metadata").body
    # Declared 4XX schemas, with the unsatisfiable success half dropped (README quirk).
    openapi.validate_response("worker-script-upload-worker-module", 400, failure)
    openapi.validate_response("worker-cron-trigger-update-cron-triggers", 400, failure)
    openapi.validate_response("user-api-tokens-verify-token", 401, cf.fail(401, 1000, "x").body)
    # Undeclared statuses fall back to the common failure envelope.
    openapi.validate_response("wor-get-workflow-details", 403, cf.fail(403, 10000, "x").body)
    openapi.validate_response("wor-list-workflows", 500, cf.fail(500, 10002, "x").body)
    with pytest.raises(openapi.Violation):
        openapi.validate_response("wor-list-workflows", 500, {"success": False})
    with pytest.raises(openapi.Violation):
        openapi.validate_response(
            "worker-script-upload-worker-module", 400, {**failure, "success": True}
        )


def test_quirk_upload_oneof_cannot_be_used_strictly(openapi):
    # Documents why the fake checks oneOf[0]: the rollback branch matches any object, so a
    # correct module upload matches both branches and fails `oneOf`.
    pointer = "#/components/requestBodies/workers_script_upload/content/multipart~1form-data/schema"
    body = {"metadata": GOOD_META, "entry.py": ["x = 1"]}
    assert not openapi.validator(pointer).is_valid(body)
    assert openapi.validator(pointer + "/oneOf/0").is_valid(body)


def test_quirk_some_declared_failure_schemas_are_unsatisfiable(openapi, cf):
    # allOf(success envelope with success: true, failure envelope with success: false).
    pointer = "#/paths/~1user~1tokens~1verify/get/responses/4XX/content/application~1json/schema"
    assert not openapi.validator(pointer).is_valid(cf.fail(401, 1000, "Invalid API Token").body)


def test_the_fake_checks_the_schedules_shape_the_schema_leaves_open(cf):
    bad = request(
        "PUT",
        f"/accounts/{cf.account_id}/workers/scripts/shop/schedules",
        json=["0 * * * *"],
        headers={"Authorization": f"Bearer {cf.token}"},
    )

    with pytest.raises(cf.spec.Violation, match="schedules body"):
        cf.handle(bad)
    cf.violations.clear()  # expected here; the fixture fails the test on any left over
