"""`build_bundle` / `write_bundle`: wrangler.toml, the modules, names, bindings and the hash."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path
from typing import Any

import pytest

import awf_sim.dsl
from awf_deploy import (
    BuildError,
    binding_name,
    build_bundle,
    class_name,
    read_bundle_hash,
    script_name_for,
    write_bundle,
)
from awf_deploy._bundle import bundle_hash
from awf_deploy.runtime import ADAPTER, AWF_SIM_INIT
from awf_sim.flow import FlowError

pytestmark = [
    pytest.mark.usefixtures("flow_registry"),
    pytest.mark.filterwarnings("ignore:Domain .* replaces the one defined:UserWarning"),
]

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
ORDER = EXAMPLES / "order_processing.py"
WEEKLY = EXAMPLES / "weekly_report.py"
D1_ID = "6f2b8a1e-4c1d-4e0b-9a55-0d5c3b7e9f10"


def toml(folder: Path) -> dict[str, Any]:
    return tomllib.loads((folder / "wrangler.toml").read_text())


def test_wrangler_toml_of_order_processing(tmp_path: Path) -> None:
    folder = write_bundle(build_bundle(ORDER, d1_database_id=D1_ID), tmp_path / "b")
    config = toml(folder)
    assert config["name"] == "order-processing"
    assert config["main"] == "entry.py"
    assert config["compatibility_date"] == "2026-11-01"
    assert config["compatibility_flags"] == ["python_workers"]
    assert config["workflows"] == [
        {
            "name": "order-processing",
            "binding": "ORDER_PROCESSING_WORKFLOW",
            "class_name": "OrderProcessingWorkflow",
        }
    ]
    assert config["d1_databases"] == [
        {
            "binding": "DB",
            "database_name": "order-processing-db",
            "database_id": D1_ID,
            "migrations_dir": "migrations",
        }
    ]
    assert "triggers" not in config
    assert "ai" not in config


def test_crons_come_from_every(tmp_path: Path) -> None:
    bundle = build_bundle(WEEKLY, d1_database_id=D1_ID)
    folder = write_bundle(bundle, tmp_path / "b")
    assert toml(folder)["triggers"] == {"crons": ["0 9 * * 1"]}
    assert bundle.crons == ["0 9 * * 1"]
    assert bundle.workflows[0].schedule == "0 9 * * 1"


def test_ai_and_d1_bindings_follow_what_handlers_use(flows_dir: Path, tmp_path: Path) -> None:
    # ledger.py reads ctx.db in one handler and handler_ctx.ai (a renamed ctx) in another.
    ledger = build_bundle(flows_dir / "ledger.py", d1_database_id=D1_ID)
    assert (ledger.uses_db, ledger.uses_ai) == (True, True)
    config = toml(write_bundle(ledger, tmp_path / "ledger"))
    assert config["ai"] == {"binding": "AI"}
    assert config["d1_databases"][0]["binding"] == "DB"
    assert {"type": "ai", "name": "AI"} in ledger.bindings
    assert {"type": "d1", "name": "DB", "id": D1_ID} in ledger.bindings

    shop = build_bundle(flows_dir / "shop.py")
    assert (shop.uses_db, shop.uses_ai) == (False, False)
    config = toml(write_bundle(shop, tmp_path / "shop"))
    assert "d1_databases" not in config
    assert "ai" not in config
    assert [b["type"] for b in shop.bindings] == ["workflow", "workflow"]
    assert config["triggers"] == {"crons": ["0 2 * * *"]}


def test_modules_are_present_and_the_dsl_is_copied_verbatim(tmp_path: Path) -> None:
    bundle = build_bundle(ORDER, d1_database_id=D1_ID)
    folder = write_bundle(bundle, tmp_path / "b")
    dsl = Path(awf_sim.dsl.__file__).parent
    expected = {"entry.py", "order_processing.py", "awf_sim/__init__.py"} | {
        f"awf_sim/dsl/{p.name}" for p in dsl.glob("*.py")
    }
    expected |= {f"awf_runtime/{p.name}" for p in ADAPTER.glob("*.py")}
    assert "awf_runtime/__init__.py" in expected
    vendored = {path for path in bundle.modules if path.startswith("python_modules/")}
    assert set(bundle.modules) == expected | vendored
    for path in expected | vendored:
        assert (folder / path).is_file(), path
    for source in dsl.glob("*.py"):
        assert (folder / "awf_sim" / "dsl" / source.name).read_bytes() == source.read_bytes()
    assert (folder / "order_processing.py").read_bytes() == ORDER.read_bytes()
    for source in ADAPTER.glob("*.py"):
        assert (folder / "awf_runtime" / source.name).read_bytes() == source.read_bytes()
    assert (folder / "awf_sim" / "__init__.py").read_bytes() == AWF_SIM_INIT.read_bytes()
    schema = (folder / "migrations" / "0001_awf_schema.sql").read_text()
    assert "CREATE TABLE inventory" in schema


def test_the_runtime_is_standard_library_only() -> None:
    import sys

    dsl = Path(awf_sim.dsl.__file__).parent.glob("*.py")
    for path in (*ADAPTER.glob("*.py"), AWF_SIM_INIT, *dsl):
        tree = ast.parse(path.read_text())
        # What only type checkers read (`if TYPE_CHECKING:`) never runs in the Worker.
        checking_only = {
            id(inner)
            for node in ast.walk(tree)
            if isinstance(node, ast.If) and ast.unparse(node.test) in ("TYPE_CHECKING",)
            for stmt in node.body
            for inner in ast.walk(stmt)
        }
        for node in ast.walk(tree):
            if id(node) in checking_only:
                continue
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                assert top in sys.stdlib_module_names or top in {"awf_sim", "awf_runtime"}, (
                    f"{path.name} imports {name}"
                )


def test_entry_defines_one_class_per_workflow_and_the_worker(flows_dir: Path) -> None:
    bundle = build_bundle(flows_dir / "shop.py")
    entry = bundle.modules["entry.py"]
    tree = ast.parse(entry)
    classes = {
        node.name: [ast.unparse(b) for b in node.bases]
        for node in tree.body
        if isinstance(node, ast.ClassDef)
    }
    assert classes == {
        "DeployGreetingWorkflow": ["WorkflowEntrypoint"],
        "DeployNightlyWorkflow": ["WorkflowEntrypoint"],
        "Default": ["WorkerEntrypoint"],
    }
    assert "import shop as _flow" in entry
    assert "async def scheduled(self, controller" in entry
    assert "async def fetch(self, request" in entry
    assert read_bundle_hash(entry) == bundle.sha256


@pytest.mark.parametrize(
    ("workflow", "binding", "cls"),
    [
        ("order-processing", "ORDER_PROCESSING_WORKFLOW", "OrderProcessingWorkflow"),
        ("weekly_report", "WEEKLY_REPORT_WORKFLOW", "WeeklyReportWorkflow"),
        ("sendEmail", "SEND_EMAIL_WORKFLOW", "SendEmailWorkflow"),
        ("2fa-check", "WF_2FA_CHECK_WORKFLOW", "Wf2faCheckWorkflow"),
    ],
)
def test_binding_and_class_names(workflow: str, binding: str, cls: str) -> None:
    assert binding_name(workflow) == binding
    assert class_name(workflow) == cls


def test_hash_is_stable_and_covers_code_and_settings(flows_dir: Path) -> None:
    first = build_bundle(flows_dir / "shop.py")
    again = build_bundle(flows_dir / "shop.py")
    assert first.sha256 == again.sha256
    assert first.modules == again.modules
    assert bundle_hash(first.modules, first.metadata()) == first.sha256
    assert build_bundle(flows_dir / "shop.py", compatibility_date="2026-06-01").sha256 != (
        first.sha256
    )
    assert build_bundle(flows_dir / "shop.py", name="other-shop").sha256 != first.sha256
    ledger = flows_dir / "ledger.py"
    assert build_bundle(ledger, d1_database_id="00000000-0000-0000-0000-00000000000a").sha256 != (
        build_bundle(ledger, d1_database_id="00000000-0000-0000-0000-00000000000b").sha256
    )


def test_the_workers_sdk_is_vendored_as_pywrangler_lays_it_out(tmp_path: Path) -> None:
    """From 2026-04-21 the runtime brings no SDK: `from workers import ...` needs the bundle's
    own, in python_modules/, copied from the installed distribution (no network at build)."""
    from importlib.metadata import distribution

    bundle = build_bundle(ORDER, d1_database_id=D1_ID)
    folder = write_bundle(bundle, tmp_path / "b")
    dist = distribution("workers-runtime-sdk")
    assert dist.version == "1.9.5"
    for file in dist.files or ():
        if "__pycache__" in str(file):
            continue
        vendored = folder / "python_modules" / str(file)
        assert vendored.read_bytes() == Path(str(dist.locate_file(file))).read_bytes(), file
    assert (folder / "python_modules" / "pyvenv.cfg").is_file()
    # the step wrapper that makes a step's NonRetryableError non-retryable (workers-py #266)
    assert "wrapWorkflowStep" in (folder / "python_modules/workers/workflows.js").read_text()


def test_dates_before_the_external_sdk_opt_in_to_it(flows_dir: Path) -> None:
    old = build_bundle(flows_dir / "shop.py", compatibility_date="2025-10-01")
    assert old.compatibility_flags == ("python_workers", "enable_python_external_sdk")
    new = build_bundle(flows_dir / "shop.py", compatibility_date="2026-04-21")
    assert new.compatibility_flags == ("python_workers",)


@pytest.mark.parametrize("date", ["2025-09-28", "2025-06-01", "2024-01-01"])
def test_dates_the_adapter_does_not_support_are_refused_with_the_reason(
    flows_dir: Path, date: str
) -> None:
    with pytest.raises(BuildError, match=r"too old.*Pyodide 0\.26.*2025-09-29 or later"):
        build_bundle(flows_dir / "shop.py", compatibility_date=date)


@pytest.mark.parametrize(
    ("date", "message"),
    [("2099-01-01", "in the future"), ("01/06/2025", "YYYY-MM-DD"), ("2025-6-1", "YYYY-MM-DD")],
)
def test_bad_compatibility_dates(flows_dir: Path, date: str, message: str) -> None:
    with pytest.raises(BuildError, match=message):
        build_bundle(flows_dir / "shop.py", compatibility_date=date)


def test_script_names(flows_dir: Path) -> None:
    assert script_name_for("examples/order_processing.py") == "order-processing"
    assert script_name_for("My Flow.py") == "my-flow"
    for bad in ("Shop", "-shop", "a" * 64, "shop.v2"):
        with pytest.raises(BuildError, match="invalid script name"):
            build_bundle(flows_dir / "shop.py", name=bad)


def test_a_flow_without_workflows_or_with_a_name_cloudflare_rejects(flows_dir: Path) -> None:
    with pytest.raises(FlowError, match="defines no workflow"):
        build_bundle(flows_dir / "empty.py")
    with pytest.raises(FlowError, match="invalid workflow name 'bad name!'"):
        build_bundle(flows_dir / "badname.py")


def test_sibling_modules_are_bundled_and_foreign_imports_warned(tmp_path: Path) -> None:
    (tmp_path / "pricing.py").write_text("def price(n):\n    return n * 2\n")
    (tmp_path / "billing.py").write_text(
        "import httpx\n"
        "import pricing\n"
        "from awf_sim import Domain, Workflow\n"
        "import awf_sim.testing\n\n\n"
        "async def quote(item, args, ctx):\n"
        "    return {'price': pricing.price(item['n'])}\n\n\n"
        "DeployBilling = Domain('DeployBilling', {'quote': quote})\n\n\n"
        "@Workflow('deploy-billing', domains=[DeployBilling])\n"
        "async def billing(wf, params):\n"
        "    return await wf.DeployBilling(params).quote()\n"
    )
    bundle = build_bundle(tmp_path / "billing.py")
    assert bundle.modules["pricing.py"] == (tmp_path / "pricing.py").read_text()
    warnings = "\n".join(bundle.warnings)
    assert "imports 'httpx'" in warnings
    assert "awf_sim.testing" in warnings
    assert "pricing" not in warnings


def test_write_bundle_replaces_its_own_folder_and_refuses_others(
    flows_dir: Path, tmp_path: Path
) -> None:
    target = tmp_path / "out"
    write_bundle(build_bundle(flows_dir / "shop.py"), target)
    (target / "stale.py").write_text("# from an older build\n")
    write_bundle(build_bundle(flows_dir / "shop.py"), target)
    assert not (target / "stale.py").exists()
    assert (target / "entry.py").is_file()

    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(BuildError, match="refusing to overwrite"):
        write_bundle(build_bundle(flows_dir / "shop.py"), foreign)
    assert (foreign / "notes.txt").read_text() == "keep me"


def test_the_folder_is_what_wrangler_deploy_needs(tmp_path: Path) -> None:
    """`npx wrangler deploy` in the folder: main exists, every module is a relative .py path
    under it (wrangler uploads **/*.py next to a Python main module) or a vendored file under
    python_modules/ (uploaded as pywrangler's vendor folder), migrations_dir exists."""
    bundle = build_bundle(ORDER, d1_database_id=D1_ID)
    folder = write_bundle(bundle, tmp_path / "b")
    config = toml(folder)
    assert (folder / config["main"]).is_file()
    on_disk = {p.relative_to(folder).as_posix() for p in folder.rglob("*.py")}
    python = {path for path in bundle.modules if path.endswith(".py")}
    assert on_disk == python
    assert all(p.endswith(".py") or p.startswith("python_modules/") for p in bundle.modules)
    assert (folder / config["d1_databases"][0]["migrations_dir"]).is_dir()
    for path, source in bundle.modules.items():
        if path.endswith(".py"):
            compile(source, path, "exec")


def test_public_names() -> None:
    import awf_deploy

    assert awf_deploy.__all__ == [
        "BuildError",
        "Bundle",
        "BundledWorkflow",
        "Change",
        "GateViolation",
        "Plan",
        "PushReport",
        "binding_name",
        "build_bundle",
        "bundle_in_process",
        "class_name",
        "make_plan",
        "push",
        "read_bundle_hash",
        "require_deployable",
        "script_name_for",
        "verify",
        "write_bundle",
    ]
    for name in awf_deploy.__all__:
        assert getattr(awf_deploy, name) is not None, name


def test_a_flow_next_to_the_awf_sim_sources_bundles_only_the_dsl(
    flows_dir: Path, tmp_path: Path
) -> None:
    (tmp_path / "awf_sim").mkdir()
    (tmp_path / "awf_sim" / "__init__.py").write_text("# the simulator's sources\n")
    (tmp_path / "shop.py").write_text((flows_dir / "shop.py").read_text())
    bundle = build_bundle(tmp_path / "shop.py")
    assert bundle.modules["awf_sim/__init__.py"] == AWF_SIM_INIT.read_text()
    assert not any(path.startswith("awf_sim/engine") for path in bundle.modules)
