"""The real runtime's other doors and failures: the five differences it once had with the
simulator, pinned one by one; the Worker's HTTP API through `fetch`; cron through `scheduled`;
compatibility flags from the date; a bundle whose Python fails at import; a missing install."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from awf_deploy import _harness as harness
from awf_deploy import build_bundle, write_bundle
from awf_deploy._harness import BundleImportError, HarnessError, RealRuntime
from awf_sim.flow import load_flow

pytestmark = [
    pytest.mark.usefixtures("flow_registry"),
    pytest.mark.filterwarnings("ignore:Domain .* replaces the one defined:UserWarning"),
]

PROBE = Path(__file__).parent / "probe.py"


@pytest.fixture
def probe(real_runtime: RealRuntime, tmp_path: Path) -> RealRuntime:
    flow = load_flow(PROBE)
    bundle = build_bundle(PROBE, flow=flow, name="probe-paths")
    real_runtime.http = None
    real_runtime.load(
        bundle, write_bundle(bundle, tmp_path / "bundle"), vars={"AWF_API_KEY": "k-1"}
    )
    real_runtime.reset_database(flow.database)
    return real_runtime


def _finish(runtime: RealRuntime, workflow: str, params: Any, instance: str) -> dict[str, Any]:
    runtime.create(workflow, params, id=instance, fast=True)
    status = runtime.wait(workflow, instance, timeout=30)
    assert not status.get("timedOut"), status
    return status


def _api(runtime: RealRuntime, method: str, path: str, body: Any = None, key: str | None = "k-1"):
    headers = {"authorization": f"Bearer {key}"} if key else {}
    code, _, text = runtime.fetch(
        method,
        f"https://probe.test{path}",
        body=None if body is None else json.dumps(body),
        headers=headers,
    )
    return code, json.loads(text)


def test_a_steps_nonretryable_error_is_not_retried(probe: RealRuntime) -> None:
    status = _finish(probe, "probe-nonretryable", {"id": "n1"}, "pp-n1")
    assert status["output"] == {"caught": "NonRetryableError", "message": "declined n1"}
    assert probe.tables()["attempts"] == [{"step": "decline", "count": 1}]  # one attempt of 4


def test_js_null_is_none_in_params_d1_rows_and_output(probe: RealRuntime) -> None:
    status = _finish(probe, "probe-nulls", {"id": "u1", "maybe": None, "body": None}, "pp-u1")
    note = {
        "columnIsNone": True,
        "boundIsNone": True,
        "argIsNone": True,
        "amount": 420.5,
        "wholeType": "int",
        "missing": None,
    }
    assert status["output"] == {"note": note, "paramIsNone": True, "nothing": None}
    assert "nothing" in status["output"]  # stored as null, not dropped


def test_identical_parallel_steps_both_run(probe: RealRuntime) -> None:
    status = _finish(probe, "probe-parallel", {"id": "p1"}, "pp-p1")
    assert status["output"] == {"sum": 2}
    assert [kind for kind, _ in probe.steps("pp-p1")] == ["do", "do"]


def test_an_uncaught_step_failure_reads_back_as_its_python_error(probe: RealRuntime) -> None:
    status = _finish(probe, "probe-uncaught", {"id": "x1"}, "pp-x1")
    assert status["status"] == "errored"
    # what the engine stores: its RPC folds a non-JavaScript name into the message
    assert status["error"]["name"] == "Error"
    assert "ValueError: boom x1" in status["error"]["message"]
    code, api = _api(probe, "GET", "/workflows/probe-uncaught/instances/pp-x1")
    assert code == 200
    assert api["error"] == {"name": "ValueError", "message": "boom x1"}


def test_an_event_wait_timeout_is_a_workflow_timeout_error(probe: RealRuntime) -> None:
    status = _finish(probe, "probe-wait", {"id": "w1"}, "pp-w1")
    assert status["output"] == {"timedOut": "WorkflowTimeoutError"}


def test_the_workers_http_api_through_fetch(probe: RealRuntime) -> None:
    assert _api(probe, "GET", "/", key=None)[0] == 401
    assert _api(probe, "GET", "/", key="wrong")[0] == 401
    code, root = _api(probe, "GET", "/")
    assert code == 200
    assert "probe-nulls" in [w["name"] for w in root["workflows"]]
    code, created = _api(
        probe, "POST", "/workflows/probe-nulls/instances?id=api-1", {"id": "a", "maybe": None}
    )
    assert (code, created) == (201, {"workflow": "probe-nulls", "id": "api-1"})
    probe.wait("probe-nulls", "api-1", timeout=30)
    code, got = _api(probe, "GET", "/workflows/probe-nulls/instances/api-1")
    assert code == 200
    assert got["status"] == "complete"
    assert got["output"]["paramIsNone"] is True  # the null in the POST body reached params
    assert not any(key.startswith("__") for key in got)  # Miniflare's local-dev fields
    code, missing = _api(probe, "GET", "/workflows/nope/instances/x")
    assert code == 404
    assert "probe-nulls" in missing["error"]


def test_cron_through_the_workers_scheduled_handler(probe: RealRuntime) -> None:
    workflow = load_flow(PROBE).workflows["probe-cron"]
    at = 1_796_000_000_000
    probe.scheduled(workflow.schedule, at)
    status = probe.wait("probe-cron", f"probe-cron-{at}", timeout=30)
    assert status["status"] == "complete"
    assert status["output"] == {"cron": workflow.schedule, "at": at}
    probe.scheduled(workflow.schedule, at)  # the same tick again starts nothing new
    assert probe.status("probe-cron", f"probe-cron-{at}")["status"] == "complete"


def test_compatibility_flags_follow_the_date(real_runtime: RealRuntime, tmp_path: Path) -> None:
    old = build_bundle(PROBE, name="probe-old", compatibility_date="2025-10-01")
    info = real_runtime.load(old, write_bundle(old, tmp_path / "old"))
    assert info["pyodideVersion"] == "0.28.2"
    flags = info["flags"]
    assert flags["enable_python_external_sdk"]  # opted in: the vendored SDK runs
    assert flags["python_workers_20250116"]  # Pyodide 0.28 from 2025-09-29
    assert not flags["python_workflows_implicit_dependencies"]  # from 2026-02-25
    new = build_bundle(PROBE, name="probe-new", compatibility_date="2026-11-01")
    flags = real_runtime.load(new, write_bundle(new, tmp_path / "new"))["flags"]
    assert flags["enable_python_external_sdk"]
    assert flags["python_workflows_implicit_dependencies"]
    assert "WorkerEntrypoint" in real_runtime.load(new, tmp_path / "new")["entrypoints"].values()


def test_a_bundle_that_fails_at_import_names_the_module_and_the_traceback(
    real_runtime: RealRuntime, tmp_path: Path
) -> None:
    flow = tmp_path / "needs_numpy.py"
    flow.write_text(
        "import json\n"
        "import http.cookies\n"
        "from awf_sim import Workflow\n"
        "import jsonschema  # installed here, not in the Worker\n\n"
        "@Workflow('needs-numpy', examples=[{}])\n"
        "async def needs(wf, params):\n"
        "    return jsonschema.__name__\n",
        encoding="utf-8",
    )
    bundle = build_bundle(flow)
    assert any("jsonschema" in warning for warning in bundle.warnings)
    with pytest.raises(BundleImportError) as caught:
        real_runtime.load(bundle, write_bundle(bundle, tmp_path / "bundle"))
    assert caught.value.module == "needs_numpy"
    assert "jsonschema" in str(caught.value)
    assert "Traceback" in caught.value.traceback
    assert "needs_numpy.py" in caught.value.traceback
    # the runtime is still usable after a failed load
    good = build_bundle(PROBE, name="probe-after")
    assert real_runtime.load(good, write_bundle(good, tmp_path / "good"))["entrypoints"]


def test_a_package_pyodide_has_but_the_worker_lacks_is_named_not_pyodide_s_advice(
    real_runtime: RealRuntime, tmp_path: Path
) -> None:
    # httpx is in Pyodide's distribution, so its ModuleNotFoundError message goes on with
    # lines of advice (micropip.install, pyodide.loadPackage) that do not apply to a Worker;
    # the last of them was the whole message: `failed at import:   await
    # pyodide.loadPackage("httpx") in JavaScript`, naming neither the error nor the package.
    flow = tmp_path / "needs_httpx.py"
    flow.write_text(
        "from awf_sim import Workflow\n"
        "import httpx  # installed here, in Pyodide's distribution, not in the Worker\n\n"
        "@Workflow('needs-httpx', examples=[{}])\n"
        "async def needs(wf, params):\n"
        "    return httpx.__name__\n",
        encoding="utf-8",
    )
    bundle = build_bundle(flow)
    with pytest.raises(BundleImportError) as caught:
        real_runtime.load(bundle, write_bundle(bundle, tmp_path / "bundle"))
    assert str(caught.value) == (
        "needs_httpx failed at import: ModuleNotFoundError: No module named 'httpx'"
    )
    assert "loadPackage" in caught.value.traceback  # Pyodide's own words stay in the traceback


def test_a_missing_npm_install_says_which_command_to_run(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(harness, "HARNESS_DIR", tmp_path)
    with pytest.raises(HarnessError, match=r"npm ci --no-audit --no-fund --prefix"):
        RealRuntime(timeout=5).start()
