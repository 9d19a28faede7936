"""Happy paths of every CloudflareClient call, against the schema-checking fake (conftest)."""

from __future__ import annotations

import json

import httpx
import pytest

from awf_deploy.cloudflare import (
    CloudflareClient,
    InstanceDetails,
    InstanceInfo,
    NotFoundError,
    Schedule,
    TokenVerification,
    UploadedScript,
    WorkflowInfo,
)

ENTRY = (
    "from workers import WorkflowEntrypoint\n\n\n"
    "class OrderProcessingWorkflow(WorkflowEntrypoint):\n    pass\n"
)
MODULES = {
    "entry.py": ENTRY,
    "flow.py": "import awf_sim\n",
    "awf_runtime/__init__.py": "# runtime\n",
}
BINDINGS = [
    {
        "type": "workflow",
        "name": "ORDER_PROCESSING_WORKFLOW",
        "workflow_name": "order-processing",
        "class_name": "OrderProcessingWorkflow",
    },
    {"type": "ai", "name": "AI"},
]


def deploy(client: CloudflareClient, script: str = "shop") -> None:
    client.upload_script(
        script, MODULES, "entry.py", compatibility_date="2025-06-01", bindings=BINDINGS
    )
    client.put_workflow("order-processing", script, "OrderProcessingWorkflow")


def test_verify_token(client, cf):
    verified = client.verify_token()

    assert isinstance(verified, TokenVerification)
    assert verified.status == "active"
    assert verified.expires_on is not None
    assert verified.expires_on.year == 2030
    assert cf.operations() == ["user-api-tokens-verify-token"]
    assert cf.requests[0].headers["authorization"] == f"Bearer {cf.token}"


def test_upload_script_sends_metadata_then_one_python_part_per_module(client, cf):
    uploaded = client.upload_script(
        "shop",
        MODULES,
        "entry.py",
        compatibility_date="2025-06-01",
        bindings=BINDINGS,
    )

    assert isinstance(uploaded, UploadedScript)
    assert uploaded.id == "shop"
    assert uploaded.etag == cf.scripts["shop"]["etag"]
    (request,) = cf.requests
    assert request.operation_id == "worker-script-upload-worker-module"
    assert request.method == "PUT"
    assert request.path == f"/accounts/{cf.account_id}/workers/scripts/shop"
    assert request.query == {}
    names = [name for name, *_ in request.parts]
    assert names == ["metadata", "entry.py", "flow.py", "awf_runtime/__init__.py"]
    metadata_part = request.parts[0]
    assert metadata_part[1] is None  # a plain form field, as wrangler sends it
    assert metadata_part[2] is None
    for name, filename, content_type, content in request.parts[1:]:
        assert filename == name
        assert content_type == "text/x-python"
        assert content.decode() == MODULES[name]
    assert request.metadata == {
        "main_module": "entry.py",
        "compatibility_date": "2025-06-01",
        "compatibility_flags": ["python_workers"],
        "bindings": BINDINGS,
    }


def test_upload_script_passes_compatibility_flags(client, cf):
    client.upload_script(
        "shop",
        {"entry.py": ENTRY},
        "entry.py",
        compatibility_date="2025-06-01",
        compatibility_flags=["python_workers", "python_workflows"],
    )

    assert cf.requests[0].metadata is not None
    assert cf.requests[0].metadata["compatibility_flags"] == ["python_workers", "python_workflows"]
    assert cf.requests[0].metadata["bindings"] == []


@pytest.mark.parametrize(
    ("name", "modules", "main", "match"),
    [
        ("shop", {"entry.py": ENTRY}, "main.py", "main_module 'main.py'"),
        ("shop", {}, "entry.py", "at least one module"),
        ("shop", {"entry.py": ENTRY, "data.json": "{}"}, "entry.py", "data.json"),
        ("Shop", {"entry.py": ENTRY}, "entry.py", "script name 'Shop'"),
        ("", {"entry.py": ENTRY}, "entry.py", "script name"),
    ],
)
def test_upload_script_rejects_bad_arguments_before_sending(client, cf, name, modules, main, match):
    with pytest.raises(ValueError, match=match):
        client.upload_script(name, modules, main, compatibility_date="2025-06-01")
    assert cf.requests == []


def test_get_script_returns_the_uploaded_modules(client, cf):
    client.upload_script("shop", MODULES, "entry.py", compatibility_date="2025-06-01")

    script = client.get_script("shop")

    assert script is not None
    assert script.name == "shop"
    assert script.content_type.startswith("multipart/form-data")
    assert script.modules == MODULES
    assert cf.operations()[-1] == "worker-script-download-worker"
    assert cf.requests[-1].headers["accept"] == "*/*"


def test_get_script_plain_body(client, cf):
    cf.queue(
        "worker-script-download-worker",
        cf.answer(200, b"export default {}", {"content-type": "application/javascript"}),
    )

    script = client.get_script("legacy")

    assert script is not None
    assert script.modules == {"legacy": "export default {}"}


def test_get_script_returns_none_when_absent(client, cf):
    assert client.get_script("nope") is None
    assert cf.operations() == ["worker-script-download-worker"]


def test_get_script_on_a_wrong_account_raises_instead_of_none(cf):
    with (
        CloudflareClient(cf.token, "0" * 32, transport=cf.transport()) as other,
        pytest.raises(NotFoundError, match="7003") as caught,
    ):
        other.get_script("shop")
    assert "CLOUDFLARE_ACCOUNT_ID" in str(caught.value)


def test_put_schedules_replaces_and_get_schedules_reads(client, cf):
    client.upload_script("shop", MODULES, "entry.py", compatibility_date="2025-06-01")

    put = client.put_schedules("shop", ["*/30 * * * *", "0 3 * * *"])
    got = client.get_schedules("shop")
    cleared = client.put_schedules("shop", [])

    assert [s.cron for s in put] == ["*/30 * * * *", "0 3 * * *"]
    assert all(isinstance(s, Schedule) and s.created_on is not None for s in put)
    assert got == put
    assert cleared == []
    assert cf.requests[1].json == [{"cron": "*/30 * * * *"}, {"cron": "0 3 * * *"}]
    assert cf.requests[3].json == []
    assert cf.requests[1].headers["content-type"] == "application/json"


def test_put_schedules_refuses_a_bare_string(client, cf):
    with pytest.raises(TypeError, match="sequence"):
        client.put_schedules("shop", "0 * * * *")
    assert cf.requests == []


def test_put_workflow_sends_script_and_class(client, cf):
    client.upload_script("shop", MODULES, "entry.py", compatibility_date="2025-06-01")

    workflow = client.put_workflow("order-processing", "shop", "OrderProcessingWorkflow")

    assert isinstance(workflow, WorkflowInfo)
    assert workflow.name == "order-processing"
    assert workflow.script_name == "shop"
    assert workflow.class_name == "OrderProcessingWorkflow"
    assert workflow.version_id is not None
    request = cf.requests[-1]
    assert request.operation_id == "wor-create-or-modify-workflow"
    assert request.path == f"/accounts/{cf.account_id}/workflows/order-processing"
    assert request.json == {"script_name": "shop", "class_name": "OrderProcessingWorkflow"}


def test_get_workflow_with_instance_counts(client, cf):
    deploy(client)
    client.create_instance("order-processing", {"order": 1}, instance_id="job-1")

    workflow = client.get_workflow("order-processing")

    assert workflow is not None
    assert workflow.instances is not None
    assert workflow.instances.queued == 1
    assert workflow.instances.waiting_for_pause == 0
    assert workflow.triggered_on is None


def test_get_workflow_returns_none_when_absent(client, cf):
    assert client.get_workflow("missing") is None


def test_list_workflows_reads_every_page(client, cf):
    client.upload_script("shop", MODULES, "entry.py", compatibility_date="2025-06-01")
    for index in range(150):
        client.put_workflow(f"wf-{index:03d}", "shop", "W")
    cf.requests.clear()

    workflows = client.list_workflows()

    assert [w.name for w in workflows] == [f"wf-{i:03d}" for i in range(150)]
    assert [r.query for r in cf.requests] == [
        {"per_page": "100", "page": "1"},
        {"per_page": "100", "page": "2"},
    ]


def test_list_workflows_single_short_page(client, cf):
    deploy(client)
    cf.requests.clear()

    assert [w.name for w in client.list_workflows()] == ["order-processing"]
    assert len(cf.requests) == 1


def test_create_instance_with_id_and_params(client, cf):
    deploy(client)

    instance = client.create_instance(
        "order-processing", {"order": {"id": 7, "items": ["a"]}}, instance_id="job-7"
    )

    assert isinstance(instance, InstanceInfo)
    assert instance.id == "job-7"
    assert instance.status == "queued"
    assert instance.trigger_source == "api"
    request = cf.requests[-1]
    assert request.operation_id == "wor-create-new-workflow-instance"
    # params travel as a JSON value, as wrangler sends them (the 2026 spec says string).
    assert request.json == {"instance_id": "job-7", "params": {"order": {"id": 7, "items": ["a"]}}}


def test_create_instance_without_id_or_params(client, cf):
    deploy(client)

    instance = client.create_instance("order-processing")

    assert instance.id
    assert cf.requests[-1].json == {}


def test_create_instance_checks_the_id(client, cf):
    with pytest.raises(ValueError, match="instance id"):
        client.create_instance("order-processing", instance_id="has space")
    with pytest.raises(ValueError, match="instance id"):
        client.create_instance("order-processing", instance_id="x" * 101)
    assert cf.requests == []


def test_get_instance(client, cf):
    deploy(client)
    client.create_instance("order-processing", {"n": 1}, instance_id="job-1")

    details = client.get_instance("order-processing", "job-1")

    assert isinstance(details, InstanceDetails)
    assert details.status == "queued"
    assert details.params == {"n": 1}
    assert details.version_id == cf.workflows["order-processing"]["version_id"]
    assert details.trigger is not None
    assert details.trigger.source == "api"
    assert cf.requests[-1].path_params["instance_id"] == "job-1"


def test_instance_ids_are_escaped_in_paths(client, cf):
    deploy(client)
    cf.queue("wor-describe-workflow-instance", cf.ok({"status": "complete"}))

    client.get_instance("order-processing", "cron/0 * * * */2025")

    assert cf.requests[-1].path.endswith("/instances/cron%2F0%20%2A%20%2A%20%2A%20%2A%2F2025")
    assert cf.requests[-1].path_params["instance_id"] == "cron/0 * * * */2025"


def test_list_instances_with_status_filter(client, cf):
    deploy(client)
    client.create_instance("order-processing", instance_id="a")
    client.create_instance("order-processing", instance_id="b")
    client.change_instance_status("order-processing", "b", "pause")
    cf.requests.clear()

    paused = client.list_instances("order-processing", status="paused")
    everything = client.list_instances("order-processing")

    assert [i.id for i in paused] == ["b"]
    assert [i.id for i in everything] == ["a", "b"]
    assert cf.requests[0].query == {"status": "paused", "per_page": "100", "page": "1"}


def test_list_instances_follows_cursors_and_honours_limit(client, cf):
    deploy(client)
    for index in range(230):
        client.create_instance("order-processing", instance_id=f"job-{index}")
    cf.cursor_paging = True
    cf.requests.clear()

    everything = client.list_instances("order-processing")
    first = client.list_instances("order-processing", limit=5)

    assert len(everything) == 230
    assert [r.query for r in cf.requests[:3]] == [
        {"per_page": "100", "page": "1"},
        {"per_page": "100", "cursor": "100"},
        {"per_page": "100", "cursor": "200"},
    ]
    assert [i.id for i in first] == [f"job-{i}" for i in range(5)]
    assert cf.requests[3].query == {"per_page": "5", "page": "1"}
    assert len(cf.requests) == 4


@pytest.mark.parametrize(
    ("action", "status"),
    [
        ("pause", "paused"),
        ("resume", "running"),
        ("terminate", "terminated"),
        ("restart", "queued"),
    ],
)
def test_change_instance_status(client, cf, action, status):
    deploy(client)
    client.create_instance("order-processing", instance_id="job-1")

    change = client.change_instance_status("order-processing", "job-1", action)

    assert change.status == status
    assert change.timestamp.year == 2025
    assert cf.requests[-1].operation_id == "wor-change-status-workflow-instance"
    assert cf.requests[-1].json == {"status": action}


def test_list_instances_checks_the_status(client, cf):
    with pytest.raises(ValueError, match="status must be one of"):
        client.list_instances("order-processing", status="done")  # type: ignore[arg-type]
    assert cf.requests == []


def test_change_instance_status_rejects_unknown_actions(client, cf):
    with pytest.raises(ValueError, match="status must be one of"):
        client.change_instance_status("order-processing", "job-1", "stop")  # type: ignore[arg-type]
    assert cf.requests == []


def test_send_event(client, cf):
    deploy(client)
    client.create_instance("order-processing", instance_id="job-1")

    result = client.send_event("order-processing", "job-1", "payment-received", {"amount": 12})
    client.send_event("order-processing", "job-1", "ping")

    assert result is None
    assert cf.events == [
        ("order-processing", "job-1", "payment-received", {"amount": 12}),
        ("order-processing", "job-1", "ping", None),
    ]
    assert cf.requests[-2].operation_id == "wor-send-event-workflow-instance"
    assert cf.requests[-1].headers.get("content-type") is None


def test_send_event_checks_the_type(client, cf):
    with pytest.raises(ValueError, match="event type"):
        client.send_event("order-processing", "job-1", "bad type")
    assert cf.requests == []


def test_a_deploy_in_wrangler_order(client, cf):
    client.verify_token()
    deploy(client)
    client.put_schedules("shop", ["0 * * * *"])

    assert cf.operations() == [
        "user-api-tokens-verify-token",
        "worker-script-upload-worker-module",
        "wor-create-or-modify-workflow",
        "worker-cron-trigger-update-cron-triggers",
    ]


def test_models_accept_newer_fields_than_the_2024_schema(client, cf):
    # What the live API returns today (HTTP-API.md §1): usage_model "standard" and a
    # `placement` object, neither allowed by the 2024 schema, plus fields no schema names.
    live = {
        "success": True,
        "errors": [],
        "messages": [],
        "result": {
            "id": "shop",
            "etag": "777f",
            "handlers": ["fetch"],
            "created_on": "2022-05-05T05:15:11.602148Z",
            "modified_on": "2022-05-20T19:02:56.446492Z",
            "startup_time_ms": 10,
            "logpush": False,
            "placement": {"mode": "smart"},
            "tail_consumers": [],
            "usage_model": "standard",
            "deployment_id": "d-1",
        },
    }
    cf.queue("worker-script-upload-worker-module", cf.answer(200, live, validate=False))

    uploaded = client.upload_script("shop", MODULES, "entry.py", compatibility_date="2025-06-01")

    assert uploaded.usage_model == "standard"
    assert uploaded.model_extra == {
        "logpush": False,
        "placement": {"mode": "smart"},
        "tail_consumers": [],
        "deployment_id": "d-1",
    }


def test_from_env_reads_base_url_and_credentials(cf, sleeps):
    environ = {
        "CLOUDFLARE_API_TOKEN": cf.token,
        "CLOUDFLARE_ACCOUNT_ID": cf.account_id,
        "CLOUDFLARE_API_BASE_URL": "https://cf-proxy.internal/client/v4/",
    }
    seen: list[httpx.URL] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url)
        return cf.handle(request)

    with CloudflareClient.from_env(environ, transport=httpx.MockTransport(handler)) as client:
        assert client.base_url == "https://cf-proxy.internal/client/v4"
        client.verify_token()

    assert str(seen[0]) == "https://cf-proxy.internal/client/v4/user/tokens/verify"


def test_from_env_arguments_override_the_environment(cf):
    environ = {"CLOUDFLARE_API_TOKEN": "stale", "CLOUDFLARE_ACCOUNT_ID": "f" * 32}

    with CloudflareClient.from_env(
        environ, token=cf.token, account_id=cf.account_id, transport=cf.transport()
    ) as client:
        assert client.account_id == cf.account_id
        assert client.base_url == "https://api.cloudflare.com/client/v4"
        assert client.verify_token().status == "active"


def test_timeout_reaches_every_request(cf):
    seen: list[dict[str, float]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.extensions["timeout"])
        return cf.handle(request)

    with cf.client(transport=httpx.MockTransport(handler), timeout=12.5) as client:
        client.verify_token()

    assert seen == [{"connect": 12.5, "read": 12.5, "write": 12.5, "pool": 12.5}]


def test_workflow_messages_as_strings_parse(client, cf):
    body = {
        "success": False,
        "errors": [{"code": 10200, "message": "workflow.not_found"}],
        "messages": ["Workflow not found"],
        "result": None,
    }
    cf.queue("wor-get-workflow-details", cf.answer(404, body))

    assert client.get_workflow("gone") is None


def test_metadata_is_json_text(client, cf):
    client.upload_script("shop", {"entry.py": ENTRY}, "entry.py", compatibility_date="2025-06-01")

    raw = cf.requests[0].parts[0][3]
    assert json.loads(raw)["main_module"] == "entry.py"
