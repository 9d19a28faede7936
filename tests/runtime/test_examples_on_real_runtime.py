"""What is deployed behaves as what was tested: every example bundle, and a probe flow that walks
the places where they once differed, runs on Cloudflare's real Python runtime (Pyodide with the
vendored SDK, Miniflare's Workflows engine and D1) and gives the simulator's status, output,
error, step names and D1 rows for every example input.

Differences that cannot be made equal are listed in awf_deploy/README.md ("Real runtime"): the
engine's own record of an uncaught error (compared here through the Worker's HTTP API, which
reads it back as name and message), and sleeps and retry delays, which the engine's test
modifier skips so a two-week sleep does not take two weeks.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from awf_deploy import build_bundle, write_bundle
from awf_deploy._harness import RealRuntime, flow_http
from awf_sim import Simulator
from awf_sim._runner import send_events
from awf_sim.flow import FlowFile, load_flow

pytestmark = [
    pytest.mark.usefixtures("flow_registry"),
    pytest.mark.filterwarnings("ignore:Domain .* replaces the one defined:UserWarning"),
]

ROOT = Path(__file__).resolve().parents[2]
# nondeterministic.py reads the wall clock outside a step on purpose (chaos's example of a
# replay bug): real time and the simulator's virtual time differ there, and nowhere else.
EXAMPLES = sorted(p for p in (ROOT / "examples").glob("*.py") if p.stem != "nondeterministic")
PROBE = Path(__file__).parent / "probe.py"
_START_KINDS = {"step-start", "sleep-start", "wait-start"}


def _provider(flow: FlowFile) -> Any:
    return flow.ai if hasattr(flow.ai, "generate") else None


def _canonical(value: Any) -> Any:
    """JSON data with whole-number floats as ints: JavaScript numbers carry no int/float
    distinction, so `2.0` comes back from the engine as `2` (a documented difference)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _canonical(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_canonical(v) for v in value]
    return value


def _clock_free(row: dict[str, Any]) -> dict[str, Any]:
    """A row with epoch-millisecond timestamps masked: a handler that reads the clock sees real
    time on the runtime and virtual time in the simulator (a documented difference)."""
    return {
        k: "<epoch ms>" if isinstance(v, int) and 10**12 <= v < 10**13 else v
        for k, v in row.items()
    }


def _rows(tables: dict[str, list[dict[str, Any]]]) -> dict[str, list[str]]:
    return {
        table: sorted(json.dumps(_clock_free(_canonical(row)), sort_keys=True) for row in rows)
        for table, rows in tables.items()
    }


def _simulate(flow: FlowFile, workflow: Any, params: Any, instance: str) -> dict[str, Any]:
    from awf_sim.sdk._ai import DeterministicAI

    ai = _provider(flow) or DeterministicAI(0)
    with Simulator(db=flow.database, http=flow.http, ai=ai) as sim:
        inst = sim.create(workflow, params, id=instance)
        send_events(sim, inst, workflow.events)
        sim.run_until_done(inst)
        status = inst.status()
        names = [e["name"] for e in inst.timeline if e["kind"] in _START_KINDS]
        tables = sim.db.snapshot() if flow.database is not None else {}
    return {
        "status": status["status"],
        "output": _canonical(status.get("output")),
        "error": status.get("error"),
        "steps": names,
        "tables": _rows(tables),
    }


def _on_runtime(
    runtime: RealRuntime, flow: FlowFile, workflow: Any, params: Any, instance: str
) -> dict[str, Any]:
    if runtime.bundle is not None and runtime.bundle.uses_db:
        runtime.reset_database(flow.database)
    runtime.create(workflow.name, params, id=instance, fast=True)
    for event in sorted(workflow.events, key=lambda e: e["after_ms"]):
        runtime.send_event(workflow.name, instance, event["type"], event["payload"])
    raw = runtime.wait(workflow.name, instance, timeout=30)
    assert not raw.get("timedOut"), f"{instance} did not finish: {raw}"
    # The instance as the Worker's own HTTP API reports it: status, output, error.
    code, _, body = runtime.fetch(
        "GET", f"https://awf.test/workflows/{workflow.name}/instances/{instance}"
    )
    assert code == 200, body
    api = json.loads(body)
    return {
        "status": raw["status"],
        "output": _canonical(raw.get("output")),
        "error": api.get("error"),
        "api_output": _canonical(api.get("output")),
        "steps": [name for _, name in runtime.steps(instance)],
        "tables": _rows(runtime.tables()) if runtime.bundle and runtime.bundle.uses_db else {},
    }


def _compare_flow(runtime: RealRuntime, flow_path: Path, tmp_path: Path) -> int:
    flow = load_flow(flow_path)
    runnable = [wf for wf in flow.workflows.values() if wf.examples]
    if not runnable:
        pytest.skip(f"{flow_path.name} has no workflow with examples")
    bundle = build_bundle(
        flow_path, flow=flow, d1_database_id="00000000-0000-0000-0000-0000000000d1"
    )
    runtime.http = flow_http(flow.http) if flow.http is not None else None
    runtime.ai = _provider(flow)
    if runtime.ai is None:
        from awf_sim.sdk._ai import DeterministicAI

        runtime.ai = DeterministicAI(0)
    runtime.load(bundle, write_bundle(bundle, tmp_path / "bundle"))
    compared = 0
    for wf in runnable:
        for index, params in enumerate(wf.examples):
            where = f"{flow_path.name} {wf.name} example {index} {json.dumps(params)}"
            # One id on both sides (idempotency keys hash it), new in this Miniflare.
            instance = f"{bundle.name}-{wf.name}-{index}"
            expected = _simulate(flow, wf, params, instance)
            got = _on_runtime(runtime, flow, wf, params, instance)
            assert got["status"] == expected["status"], where
            assert got["output"] == expected["output"], where
            assert got["api_output"] == expected["output"], where
            assert got["error"] == expected["error"], where
            assert got["steps"] == expected["steps"], where
            assert got["tables"] == expected["tables"], where
            compared += 1
    return compared


@pytest.mark.parametrize("flow_path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_every_example_runs_on_the_real_runtime_as_in_the_simulator(
    real_runtime: RealRuntime, flow_path: Path, tmp_path: Path
) -> None:
    assert _compare_flow(real_runtime, flow_path, tmp_path) > 0


def test_the_probe_flow_runs_on_the_real_runtime_as_in_the_simulator(
    real_runtime: RealRuntime, tmp_path: Path
) -> None:
    assert _compare_flow(real_runtime, PROBE, tmp_path) == 5
