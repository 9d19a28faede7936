"""What is deployed is what was tested: the generated entry.py, run in the simulator through
Cloudflare's Python step API (with a `workers` stand-in), gives the same output, the same step
names and the same database as the direct simulation, for every example flow."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from awf_deploy import build_bundle, bundle_in_process, write_bundle
from awf_deploy._harness import workers_ai_answer
from awf_sim import Simulator
from awf_sim._runner import send_events
from awf_sim.flow import FlowFile, load_flow
from awf_sim.sdk import idempotency_key as sim_idempotency_key

pytestmark = [
    pytest.mark.usefixtures("flow_registry"),
    # Examples may define Domains of the same name (Email, Inventory): loading them into one
    # process replaces one with another, which is what this warning says.
    pytest.mark.filterwarnings("ignore:Domain .* replaces the one defined:UserWarning"),
]

EXAMPLE_FILES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.py"))
OWN_FLOWS = ["paths.py", "shop.py", "ledger.py"]


def _trace(timeline: list[dict[str, Any]]) -> list[tuple[str, str | None]]:
    return [(e["kind"], e["name"]) for e in timeline]


def _run(
    flow: FlowFile, target: Any, workflow: Any, params: Any, env: Any = None
) -> tuple[dict[str, Any], list[dict[str, Any]], Any]:
    """One instance to its end, with the workflow's declared events (as `awf-sim run`). The
    direct run gets the flow's database, AI provider and HTTP mock as the simulator's; the
    deployed one reaches them through its bindings (`env`)."""
    direct = env is None
    kwargs: dict[str, Any] = {"env": env}
    if direct:
        kwargs.update(db=flow.database, http=flow.http, ai=_provider(flow))
    sim = Simulator(**kwargs)
    with sim:
        inst = sim.create(target, params)
        send_events(sim, inst, workflow.events)
        sim.run_until_done(inst)
        snapshot = sim.db.snapshot() if direct and flow.database is not None else None
        return inst.status(), inst.timeline, snapshot


def _provider(flow: FlowFile) -> Any:
    # A flow's module-level AI is its ctx.ai provider only if it is one (weekly_report's `AI`
    # is a Domain).
    return flow.ai if hasattr(flow.ai, "generate") else None


class WorkersAIBinding:
    """`env.AI`: the Workers AI binding, answering with the simulator's provider (the same
    deterministic answers as the direct run) in Workers AI's shapes."""

    def __init__(self, provider: Any) -> None:
        self.provider = provider

    async def run(self, model: str, body: dict[str, Any]) -> dict[str, Any]:
        answer: dict[str, Any] = await workers_ai_answer(self.provider, body)
        return answer


def _deployed_env(flow: FlowFile, runtime: ModuleType, db: Any, fake_d1: Any) -> dict[str, Any]:
    from awf_sim.sdk._ai import DeterministicAI
    from awf_sim.sdk._effects import EffectLog
    from awf_sim.sdk._http import make_http_client

    runtime._http.http_client_factory = lambda: make_http_client(flow.http, EffectLog())
    runtime._http._http_client = None
    env: dict[str, Any] = {"AI": WorkersAIBinding(_provider(flow) or DeterministicAI(0))}
    if db is not None:
        env["DB"] = fake_d1(db)
    return env


def _compare_all(flow_path: Path, tmp_path: Path, fake_d1: Any) -> int:
    flow = load_flow(flow_path)
    runnable = [wf for wf in flow.workflows.values() if wf.examples]
    if not runnable:
        pytest.skip(f"{flow_path.name} has no workflow with examples")
    bundle = build_bundle(
        flow_path, flow=flow, d1_database_id="00000000-0000-0000-0000-0000000000d1"
    )
    folder = write_bundle(bundle, tmp_path / "bundle")
    compared = 0
    with bundle_in_process(folder) as entry:
        for wf in runnable:
            cls = getattr(entry, next(b.class_name for b in bundle.workflows if b.name == wf.name))
            for params in wf.examples:
                direct_status, direct_timeline, direct_db = _run(flow, wf, wf, params)
                handle = flow.database.connect() if flow.database is not None else None
                env = _deployed_env(flow, entry.awf_runtime, handle, fake_d1)
                try:
                    status, timeline, _ = _run(flow, cls, wf, params, env=env)
                    deployed_db = handle.snapshot() if handle is not None else None
                finally:
                    if handle is not None:
                        handle.close()
                where = f"{flow_path.name} {wf.name} {json.dumps(params)}"
                assert status == direct_status, where
                assert _trace(timeline) == _trace(direct_timeline), where
                assert deployed_db == direct_db, where
                compared += 1
    return compared


@pytest.mark.parametrize("flow_path", EXAMPLE_FILES, ids=[p.stem for p in EXAMPLE_FILES])
def test_generated_entry_matches_direct_simulation_for_every_example(
    flow_path: Path, tmp_path: Path, fake_d1: Any
) -> None:
    assert _compare_all(flow_path, tmp_path, fake_d1) > 0


@pytest.mark.parametrize("name", OWN_FLOWS)
def test_generated_entry_matches_direct_simulation_on_every_adapter_path(
    name: str, flows_dir: Path, tmp_path: Path, fake_d1: Any
) -> None:
    assert _compare_all(flows_dir / name, tmp_path, fake_d1) > 0


def test_the_examples_are_really_covered() -> None:
    # The parametrisation above is by file at collection time: make sure it saw the seed's.
    assert {"order_processing", "weekly_report", "expense_approval"} <= {
        p.stem for p in EXAMPLE_FILES
    }


def test_paths_flow_exercises_retries_errors_events_and_state(
    flows_dir: Path, tmp_path: Path
) -> None:
    flow = load_flow(flows_dir / "paths.py")
    folder = write_bundle(build_bundle(flows_dir / "paths.py", flow=flow), tmp_path / "b")
    wf = flow.workflows["deploy-paths"]
    with bundle_in_process(folder) as entry:
        ok, timeline, _ = _run(flow, entry.DeployPathsWorkflow, wf, wf.examples[0], env={})
        failed, _, _ = _run(flow, entry.DeployPathsWorkflow, wf, wf.examples[1], env={})
    out = ok["output"]
    assert ok["status"] == "complete"
    assert out["first"]["attempt"] == 3
    assert out["first"]["key"] == sim_idempotency_key(
        out["instance"], _names(timeline, "DeployPaths.flaky")[0], 1
    )
    assert out["refused"] == ["NonRetryableError", "NonRetryableError", "p-1 refused"]
    assert out["exploded"] == ["StepError", "ValueError", "boom"]
    assert out["timed_out"] == "WorkflowTimeoutError"
    assert out["go"] == {"ok": True}
    assert out["raw"] == {"n": 1}
    assert out["state"] == {"count": 1}
    assert failed["status"] == "errored"
    assert failed["error"] == {"name": "NonRetryableError", "message": "p-2 refused"}


def _names(timeline: list[dict[str, Any]], prefix: str) -> list[str]:
    return [
        e["name"] for e in timeline if e["kind"] == "step-start" and e["name"].startswith(prefix)
    ]


def test_the_bundle_runs_with_its_own_awf_sim_not_the_installed_one(
    flows_dir: Path, tmp_path: Path
) -> None:
    folder = write_bundle(build_bundle(flows_dir / "shop.py"), tmp_path / "b")
    installed = sys.modules["awf_sim"]
    workers_before = sys.modules.get("workers")
    with bundle_in_process(folder) as entry:
        flow_module = sys.modules.get("shop")
        assert flow_module is None  # the bundle's modules are not left behind
        bundled = entry.awf_runtime._workflow.Workflow
        assert bundled.__module__ == "awf_sim.dsl._workflow"
        assert bundled is not sys.modules["awf_sim.dsl._workflow"].Workflow
        assert Path(sys.modules["awf_sim"].__file__ or "") == Path(installed.__file__ or "")
        assert sys.modules["workers"] is not workers_before  # the bundle's, for its import
    assert sys.modules.get("workers") is workers_before  # as it was, imported or not
    assert sys.modules["awf_sim"] is installed


# -- the fetch and scheduled handlers ----------------------------------------------------------


class Request:
    def __init__(
        self, method: str, url: str, body: str = "", headers: dict[str, str] | None = None
    ) -> None:
        self.method = method
        self.url = url
        self._body = body
        self.headers = {k.lower(): v for k, v in (headers or {}).items()}

    async def text(self) -> str:
        return self._body


class SimInstance:
    def __init__(self, inst: Any) -> None:
        self._inst = inst
        self.id = inst.id

    async def status(self) -> dict[str, Any]:
        return dict(self._inst.status())

    async def send_event(self, event: dict[str, Any]) -> None:
        self._inst.send_event(event["type"], event["payload"])


class SimWorkflowBinding:
    """`env.<WORKFLOW>`: a Workflow binding whose instances run in a Simulator."""

    def __init__(self, sim: Simulator, cls: type) -> None:
        self.sim = sim
        self.cls = cls
        self.created: list[dict[str, Any]] = []

    async def create(self, options: dict[str, Any]) -> SimInstance:
        self.created.append(options)
        if options.get("id") and any(i.id == options["id"] for i in self.sim.instances):
            raise RuntimeError(f"instance.already_exists: {options['id']}")
        return SimInstance(self.sim.create(self.cls, options.get("params"), options.get("id")))

    async def get(self, instance_id: str) -> SimInstance:
        return SimInstance(self.sim.instance(instance_id))


@pytest.fixture
def shop(flows_dir: Path, tmp_path: Path) -> Iterator[ModuleType]:
    folder = write_bundle(build_bundle(flows_dir / "shop.py"), tmp_path / "shop")
    with bundle_in_process(folder) as entry:
        yield entry


def _fetch(entry: ModuleType, env: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
    worker = entry.Default(None, env)
    return asyncio.run(worker.fetch(Request(*args, **kwargs)))


def test_fetch_starts_an_instance_reports_its_status_and_sends_events(
    shop: ModuleType, flows_dir: Path, tmp_path: Path
) -> None:
    sim = Simulator()
    with sim:
        binding = SimWorkflowBinding(sim, shop.DeployGreetingWorkflow)
        env = {"DEPLOY_GREETING_WORKFLOW": binding}
        root = _fetch(shop, env, "GET", "https://shop.example.workers.dev/")
        assert root.status == 200
        assert root.json()["workflows"][0]["binding"] == "DEPLOY_GREETING_WORKFLOW"
        assert root.json()["bundle"] == shop.BUNDLE_SHA256

        url = "https://shop.example.workers.dev/workflows/deploy-greeting/instances"
        started = _fetch(shop, env, "POST", url + "?id=g-1", json.dumps({"name": "bo"}))
        assert started.status == 201
        assert started.json() == {"workflow": "deploy-greeting", "id": "g-1"}
        assert started.headers["content-type"] == "application/json"
        sent = _fetch(shop, env, "POST", url + "/g-1/events/approval", '{"ok": true}')
        assert sent.status == 202
        assert sent.json()["sent"] == "approval"
        sim.run()
        status = _fetch(shop, env, "GET", url + "/g-1")
        assert status.status == 200
        assert status.json()["status"] == "complete"
        assert status.json()["output"] == {"text": "hi bo"}
        # an instance that has ended takes no more events: the binding's error comes back
        late = _fetch(shop, env, "POST", url + "/g-1/events/approval", "")
        assert late.status == 500
        assert "InstanceError" in late.json()["error"]


def test_starting_an_id_that_exists_is_409_whether_the_engine_refuses_or_returns_it(
    shop: ModuleType,
) -> None:
    url = "https://shop.example.workers.dev/workflows/deploy-greeting/instances"
    sim = Simulator()
    with sim:
        # Cloudflare's binding refuses the id (SimWorkflowBinding raises as it does), even
        # when reading it first did not find it (a race): 409, not a 500.
        class Refusing(SimWorkflowBinding):
            async def get(self, instance_id: str) -> SimInstance:
                raise LookupError(f"instance.not_found: {instance_id}")

        env = {"DEPLOY_GREETING_WORKFLOW": Refusing(sim, shop.DeployGreetingWorkflow)}
        assert _fetch(shop, env, "POST", url + "?id=g-1", '{"name": "bo"}').status == 201
        again = _fetch(shop, env, "POST", url + "?id=g-1", '{"name": "al"}')
        assert again.status == 409
        assert "already exists" in again.json()["error"]

        # Miniflare's engine returns the existing instance instead of refusing.
        class Returning(SimWorkflowBinding):
            async def create(self, options: dict[str, Any]) -> SimInstance:
                for instance in self.sim.instances:
                    if instance.id == options.get("id"):
                        return SimInstance(instance)
                return await super().create(options)

        env = {"DEPLOY_GREETING_WORKFLOW": Returning(sim, shop.DeployGreetingWorkflow)}
        local = _fetch(shop, env, "POST", url + "?id=g-1", '{"name": "al"}')
        assert local.status == 409
        assert [i.id for i in sim.instances] == ["g-1"]
        sim.run()
        assert sim.instances[0].status()["output"] == {"text": "hi bo"}


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "fragment"),
    [
        ("GET", "/nowhere", "", 404, "no route"),
        ("POST", "/workflows/unknown/instances", "", 404, "no workflow 'unknown'"),
        ("POST", "/workflows/deploy-greeting/instances", "{not json", 400, "not valid JSON"),
        ("POST", "/workflows/deploy-greeting/instances?id=bad%20id", "{}", 400, "invalid"),
        ("DELETE", "/workflows/deploy-greeting/instances", "", 405, "use POST"),
        (
            "GET",
            "/workflows/deploy-greeting/instances/missing",
            "",
            404,
            "no instance 'missing' of workflow 'deploy-greeting'",
        ),
    ],
)
def test_fetch_answers_bad_requests_with_json_errors(
    shop: ModuleType, method: str, path: str, body: str, status: int, fragment: str
) -> None:
    class Missing:
        async def get(self, instance_id: str) -> Any:
            raise LookupError(f"instance.not_found: {instance_id}")

    env = {"DEPLOY_GREETING_WORKFLOW": Missing()}
    response = _fetch(shop, env, method, "https://x.workers.dev" + path, body)
    assert response.status == status
    assert fragment in response.json()["error"]


def test_fetch_requires_the_api_key_when_one_is_set(shop: ModuleType) -> None:
    env: dict[str, Any] = {"AWF_API_KEY": "k-123"}
    denied = _fetch(shop, env, "GET", "https://x.workers.dev/")
    assert denied.status == 401
    assert "k-123" not in str(denied.body)
    allowed = _fetch(
        shop, env, "GET", "https://x.workers.dev/", headers={"Authorization": "Bearer k-123"}
    )
    assert allowed.status == 200


def test_scheduled_starts_the_cron_workflows_once_per_tick(shop: ModuleType) -> None:
    sim = Simulator()
    with sim:
        nightly = SimWorkflowBinding(sim, shop.DeployNightlyWorkflow)
        greeting = SimWorkflowBinding(sim, shop.DeployGreetingWorkflow)
        env = {"DEPLOY_NIGHTLY_WORKFLOW": nightly, "DEPLOY_GREETING_WORKFLOW": greeting}
        worker = shop.Default(None, env)

        class Controller:
            cron = "0 2 * * *"
            scheduledTime = 1_767_225_600_000

        asyncio.run(worker.scheduled(Controller()))
        asyncio.run(worker.scheduled(Controller()))  # the same tick delivered twice
        sim.run()
        assert [i.id for i in sim.instances] == ["deploy-nightly-1767225600000"]
        assert sim.instances[0].status()["output"] == {"text": "hello night"}
        assert greeting.created == []
        assert nightly.created[0]["params"] == {"cron": "0 2 * * *", "scheduledTime": 1767225600000}


# -- the adapter's pieces -----------------------------------------------------------------------


@pytest.fixture
def runtime(flows_dir: Path, tmp_path: Path) -> Iterator[ModuleType]:
    folder = write_bundle(build_bundle(flows_dir / "shop.py"), tmp_path / "rt")
    with bundle_in_process(folder) as entry:
        yield entry.awf_runtime


def test_idempotency_key_is_the_simulators_formula(runtime: ModuleType) -> None:
    for args in [("i-1", "Payment.process@0123456789abcdef", 1), ("x", "y", 7)]:
        assert runtime.idempotency_key(*args) == sim_idempotency_key(*args)


def test_d1_database_speaks_the_simulators_api(runtime: ModuleType, fake_d1: Any) -> None:
    from awf_sim import Database

    handle = Database(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, meta TEXT, flag INTEGER);"
    ).connect()
    d1 = fake_d1(handle)
    db = runtime.D1Database(d1)

    async def scenario() -> None:
        row = await db.insert("t", {"name": "a", "meta": {"k": [1]}, "flag": True})
        assert row == {"id": 1, "name": "a", "meta": '{"k":[1]}', "flag": 1}
        await db.insert("t", {"name": "b:c", "meta": None, "flag": False})
        named = await db.query(
            "SELECT name FROM t WHERE name = :n OR name = ':n' OR flag = :f ORDER BY id",
            {"n": "a", "f": 0},
        )
        assert named == [{"name": "a"}, {"name": "b:c"}]
        assert await db.query_one("SELECT * FROM t WHERE name = ?", ["zzz"]) is None
        async with db.transaction() as tx:
            assert await tx.execute("UPDATE t SET flag = ? WHERE id > ?", [1, 0]) == 2
        assert await db.delete("t", 2) == 1
        assert await db.delete("t", 2) == 0

    asyncio.run(scenario())
    assert "?1" in d1.statements[2]
    assert "':n'" in d1.statements[2]
    assert d1.statements[0].endswith("RETURNING *")
    handle.close()


def test_workers_ai_sends_workers_ai_shapes(runtime: ModuleType) -> None:
    calls: list[tuple[str, dict[str, Any]]] = []

    class AIBinding:
        async def run(self, model: str, body: dict[str, Any]) -> dict[str, Any]:
            calls.append((model, body))
            if "text" in body:
                return {"shape": [1, 3], "data": [[0.5, 1, 2]]}
            if "response_format" in body:
                return {"response": '{"score": 3}'}
            return {"response": "fine"}

    ctx = runtime.HandlerContext(
        instance_id="i",
        step={"name": "A.b@x", "path": "A.b", "count": 1},
        attempt=1,
        env={"AI": AIBinding(), "AWF_AI_MODEL": "@cf/test/model"},
    )

    async def scenario() -> None:
        assert await ctx.ai.generate(prompt="p", schema={"type": "object"}) == {"score": 3}
        assert await ctx.ai.generate(system="s", prompt="p") == "fine"
        assert await ctx.ai.embed("t") == [0.5, 1.0, 2.0]
        assert await ctx.ai.chat([{"role": "user", "content": "hi"}]) == "fine"

    asyncio.run(scenario())
    assert calls[0] == (
        "@cf/test/model",
        {
            "prompt": "p",
            "response_format": {"type": "json_schema", "json_schema": {"type": "object"}},
        },
    )
    assert calls[1][1]["messages"][0] == {"role": "system", "content": "s"}
    assert calls[2][0] == "@cf/baai/bge-base-en-v1.5"


def test_missing_bindings_say_what_to_do(runtime: ModuleType) -> None:
    ctx = runtime.HandlerContext(
        instance_id="i", step={"name": "A.b@x", "path": "A.b", "count": 1}, attempt=1, env={}
    )
    with pytest.raises(AttributeError, match="no DB binding"):
        _ = ctx.db
    with pytest.raises(AttributeError, match="no AI binding"):
        _ = ctx.ai


def test_ctx_http_is_one_client_per_isolate_and_falls_back_to_fetch(
    runtime: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = runtime.HandlerContext(
        instance_id="i", step={"name": "A.b@x", "path": "A.b", "count": 1}, attempt=1, env={}
    )
    monkeypatch.setattr(runtime._http, "http_client_factory", lambda: object())
    assert ctx.http is ctx.http
    monkeypatch.setattr(runtime._http, "http_client_factory", None)
    monkeypatch.setattr(runtime._http, "_http_client", None)
    monkeypatch.setitem(sys.modules, "httpx", None)  # not vendored in the Worker
    # the runtime's own fetch, with httpx's calling conventions (run for real on Pyodide by
    # tests/runtime, where examples/payment.py charges through it)
    assert isinstance(ctx.http, runtime.FetchClient)


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (
            type(
                "JsException",
                (Exception,),
                {
                    "name": "Error",
                    "message": (
                        "PythonError: Traceback (most recent call last):\n  File ...\n"
                        "ValueError: out of stock\n"
                    ),
                },
            )(),
            ("StepError", "ValueError", "out of stock"),
        ),
        (ValueError("ValueError: bad"), ("StepError", "ValueError", "bad")),
        (
            type("NonRetryableError", (Exception,), {})(
                "workers.workflows.NonRetryableError: card declined"
            ),
            ("NonRetryableError", "NonRetryableError", "card declined"),
        ),
        (RuntimeError("plain"), ("StepError", "RuntimeError", "plain")),
    ],
)
def test_errors_from_cloudflare_become_the_dsls(
    runtime: ModuleType, error: Exception, expected: tuple[str, str, str]
) -> None:
    converted = runtime._errors._into_workflow(error)
    assert (type(converted).__name__, converted.name, converted.message) == expected


def test_js_conversion_uses_plain_objects_inside_a_worker(
    runtime: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[Any] = []
    ffi = ModuleType("pyodide.ffi")
    ffi.to_js = lambda value, dict_converter: seen.append(dict_converter) or ("js", value)  # type: ignore[attr-defined]
    ffi.jsnull = "NULL"  # type: ignore[attr-defined]
    pyodide = ModuleType("pyodide")
    pyodide.ffi = ffi  # type: ignore[attr-defined]
    pyodide.__path__ = []  # type: ignore[attr-defined]
    js = ModuleType("js")
    js.Object = type("Object", (), {"fromEntries": "Object.fromEntries"})  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pyodide", pyodide)
    monkeypatch.setitem(sys.modules, "pyodide.ffi", ffi)
    monkeypatch.setitem(sys.modules, "js", js)
    assert runtime.to_js({"a": 1}) == ("js", {"a": 1})
    assert seen == ["Object.fromEntries"]
    assert runtime._d1._bind_value(None) == "NULL"

    class Proxy:
        def to_py(self) -> dict[str, Any]:
            return {"converted": True}

    assert runtime.to_py(Proxy()) == {"converted": True}
