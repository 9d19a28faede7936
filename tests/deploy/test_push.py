"""Plan and push against the schema-checking fake account; the chaos gate."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from awf_deploy import (
    BuildError,
    Bundle,
    build_bundle,
    make_plan,
    push,
    require_deployable,
    verify,
)
from awf_sim.flow import load_flow

pytestmark = pytest.mark.usefixtures("flow_registry")

WRITES = {"PUT", "POST", "PATCH", "DELETE"}
D1_ID = "6f2b8a1e-4c1d-4e0b-9a55-0d5c3b7e9f10"


def writes(cf: Any) -> list[str]:
    return [r.operation_id for r in cf.requests if r.method in WRITES]


@pytest.fixture
def shop(flows_dir: Path) -> Bundle:
    return build_bundle(flows_dir / "shop.py", name="shop")


def test_first_push_uploads_the_script_then_schedules_then_workflows(
    client: Any, cf: Any, shop: Bundle
) -> None:
    plan = make_plan(client, shop)
    assert [(c.kind, c.target, c.action) for c in plan.changes] == [
        ("script", "shop", "create"),
        ("schedules", "shop", "create"),
        ("workflow", "deploy-greeting", "create"),
        ("workflow", "deploy-nightly", "create"),
    ]
    assert writes(cf) == []  # planning only reads
    report = push(client, plan)
    assert report.ok
    assert [c.kind for c in report.done] == ["script", "schedules", "workflow", "workflow"]
    assert writes(cf) == [
        "worker-script-upload-worker-module",
        "worker-cron-trigger-update-cron-triggers",
        "wor-create-or-modify-workflow",
        "wor-create-or-modify-workflow",
    ]
    script = cf.scripts["shop"]
    assert script["metadata"] == {**shop.metadata(), "keep_bindings": ["secret_text"]}
    assert set(script["modules"]) == set(shop.modules)
    from awf_deploy.cloudflare._client import module_content_type

    for path, (ctype, _) in script["modules"].items():
        assert ctype == module_content_type(path), path
        assert (ctype == "text/x-python") == (not path.startswith("python_modules/")), path
    assert script["modules"]["python_modules/workers/workflows.js"][0] == (
        "application/javascript+module"
    )
    assert [s["cron"] for s in cf.schedules["shop"]] == ["0 2 * * *"]
    assert {name: (w["script_name"], w["class_name"]) for name, w in cf.workflows.items()} == {
        "deploy-greeting": ("shop", "DeployGreetingWorkflow"),
        "deploy-nightly": ("shop", "DeployNightlyWorkflow"),
    }


def test_a_second_push_of_the_same_code_sends_no_write(client: Any, cf: Any, shop: Bundle) -> None:
    push(client, make_plan(client, shop))
    before = len(writes(cf))
    plan = make_plan(client, build_bundle(Path(shop.flow_path), name="shop"))
    assert not plan.has_changes
    assert plan.deployed_sha256 == shop.sha256
    assert push(client, plan).done == []
    assert len(writes(cf)) == before


def test_changed_code_uploads_the_script_and_nothing_else(
    client: Any, cf: Any, shop: Bundle, flows_dir: Path
) -> None:
    push(client, make_plan(client, shop))
    before = len(writes(cf))
    newer = build_bundle(flows_dir / "shop.py", name="shop", compatibility_date="2026-10-01")
    plan = make_plan(client, newer)
    assert [(c.kind, c.action) for c in plan.changes] == [
        ("script", "update"),
        ("schedules", "unchanged"),
        ("workflow", "unchanged"),
        ("workflow", "unchanged"),
    ]
    assert plan.script.detail == f"bundle {shop.sha256[:12]} -> bundle {newer.sha256[:12]}"
    assert push(client, plan).ok
    assert writes(cf)[before:] == ["worker-script-upload-worker-module"]
    assert cf.scripts["shop"]["metadata"]["compatibility_date"] == "2026-10-01"


def test_a_push_that_fails_halfway_says_what_was_done_and_the_next_one_finishes(
    cf: Any, shop: Bundle
) -> None:
    with cf.client(sleep=lambda s: None, max_retries=2) as client:
        cf.queue(
            "wor-create-or-modify-workflow",
            cf.fail(500, 10013, "internal error"),
            cf.fail(500, 10013, "internal error"),
            cf.fail(500, 10013, "internal error"),
        )
        report = push(client, make_plan(client, shop))
        assert not report.ok
        assert [c.describe() for c in report.done] == [
            "upload script 'shop'",
            "set cron triggers of 'shop' to '0 2 * * *'",
        ]
        assert report.failed is not None
        assert report.failed.describe() == "create workflow 'deploy-greeting'"
        assert report.error is not None
        assert report.error.status == 500
        assert report.error.attempts == 3
        assert [c.describe() for c in report.not_done] == ["create workflow 'deploy-nightly'"]
        assert cf.workflows == {}
        json_report = report.to_json()
        assert json_report["failed"]["target"] == "deploy-greeting"
        assert "HTTP 500" in json_report["failed"]["error"]

        retry = make_plan(client, shop)
        assert [(c.kind, c.action) for c in retry.changes] == [
            ("script", "unchanged"),
            ("schedules", "unchanged"),
            ("workflow", "create"),
            ("workflow", "create"),
        ]
        assert push(client, retry).ok
        assert set(cf.workflows) == {"deploy-greeting", "deploy-nightly"}
        assert not make_plan(client, shop).has_changes


def test_upload_metadata_with_d1_and_ai_bindings_matches_the_schema(
    client: Any, cf: Any, flows_dir: Path
) -> None:
    ledger = build_bundle(flows_dir / "ledger.py", name="ledger", d1_database_id=D1_ID)
    assert push(client, make_plan(client, ledger)).ok
    bindings = cf.scripts["ledger"]["metadata"]["bindings"]
    assert bindings == [
        {
            "type": "workflow",
            "name": "DEPLOY_LEDGER_WORKFLOW",
            "workflow_name": "deploy-ledger",
            "class_name": "DeployLedgerWorkflow",
        },
        {"type": "d1", "name": "DB", "id": D1_ID},
        {"type": "ai", "name": "AI"},
    ]
    # no cron: nothing to set, nothing sent
    assert "worker-cron-trigger-update-cron-triggers" not in writes(cf)


def test_a_flow_using_ctx_db_needs_a_d1_id_before_anything_is_sent(flows_dir: Path) -> None:
    with pytest.raises(BuildError, match="wrangler d1 create ledger-db"):
        require_deployable(build_bundle(flows_dir / "ledger.py", name="ledger"))
    require_deployable(build_bundle(flows_dir / "ledger.py", name="ledger", d1_database_id=D1_ID))


def test_a_workflow_owned_by_another_script_is_taken_over_in_the_open(
    client: Any, cf: Any, shop: Bundle
) -> None:
    client.upload_script(
        "legacy", {"entry.py": "x = 1\n"}, "entry.py", compatibility_date="2025-06-01"
    )
    client.put_workflow("deploy-greeting", "legacy", "Old")
    plan = make_plan(client, shop)
    greeting = next(c for c in plan.workflows if c.target == "deploy-greeting")
    assert greeting.action == "update"
    assert "Old of script 'legacy'" in greeting.detail


def test_a_script_not_deployed_by_awf_deploy_counts_as_changed(
    client: Any, cf: Any, shop: Bundle
) -> None:
    client.upload_script(
        "shop", {"entry.py": "x = 1\n"}, "entry.py", compatibility_date="2025-06-01"
    )
    plan = make_plan(client, shop)
    assert plan.script.action == "update"
    assert "not deployed by awf-deploy" in plan.script.detail


def test_schedules_removed_from_the_flow_are_cleared(client: Any, cf: Any, shop: Bundle) -> None:
    push(client, make_plan(client, shop))
    client.put_schedules("shop", ["0 2 * * *", "*/5 * * * *"])
    plan = make_plan(client, shop)
    assert (plan.schedules.action, plan.schedules.detail) == ("update", "'0 2 * * *'")
    push(client, plan)
    assert [s["cron"] for s in cf.schedules["shop"]] == ["0 2 * * *"]


def test_verify_runs_chaos_and_reports_broken_invariants(flows_dir: Path) -> None:
    broken = verify(load_flow(flows_dir / "broken.py"), runs=30)
    assert broken, "chaos should find the non-idempotent UPDATE"
    assert {v.invariant for v in broken} >= {"idempotent-effects"}
    assert all(v.workflow == "deploy-counter" and v.replay for v in broken)
    assert broken[0].params == {"name": "visits"}
    assert verify(load_flow(flows_dir / "shop.py"), runs=30) == []


def test_verify_runs_handlers_under_the_cpu_budget_it_is_given(flows_dir: Path) -> None:
    # The handler spins 3 s per attempt: a budget of 50 ms stops it, and the gate says so.
    found = verify(load_flow(flows_dir / "spin.py"), runs=10, cpu_ms=50)
    assert [v.invariant for v in found] == ["baseline-outcome"]
    assert "CpuLimitExceeded" in found[0].message
    assert "more than 50 ms of CPU time" in found[0].message
