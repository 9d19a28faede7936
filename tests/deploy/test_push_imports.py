"""A flow whose module-level import the Worker lacks (a package awf-deploy does not upload, a part
of awf_sim other than the DSL) cannot start on Cloudflare. `push` used to warn and upload anyway
(after creating the D1 database), leaving Cloudflare to refuse it with error 10021, whose hint
is about main_module; now it refuses before any request, naming the file, the module and the
fix. `build` keeps warning for a package (whoever deploys the folder may vendor it: pywrangler
does) and refuses an import of the simulator (nothing can give the Worker that).

Only imports that run for certain when the Worker starts are refused: one under an `if`, in a
`try` that catches ImportError, or in a sibling module the flow only imports inside a handler,
stays a warning (or nothing, for the guarded one)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from awf_deploy import build_bundle
from awf_deploy.cli import app

from .conftest import FakeCloudflare

pytestmark = pytest.mark.usefixtures("flow_registry")

runner = CliRunner()

FLOW = """
{header}
from awf_sim import Domain, Workflow


async def quote(item, args, ctx):
{body}
    return {{"price": item["n"] * 2}}


ImportQuote = Domain("ImportQuote", {{"quote": quote}})


@Workflow("import-quote", examples=[{{"n": 1}}], domains=[ImportQuote])
async def quoting(wf, params):
    return await wf.ImportQuote(params).quote()
"""

LEDGER = """
import httpx
from awf_sim import Database, Domain, Workflow

DATABASE = Database(schema="CREATE TABLE entries (key TEXT PRIMARY KEY, amount REAL);")


async def record(item, args, ctx):
    await ctx.db.execute("INSERT OR IGNORE INTO entries VALUES (?, ?)", [ctx.step, 1.0])
    return {"ok": True}


ImportLedger = Domain("ImportLedger", {"record": record})


@Workflow("import-ledger", examples=[{"id": "a"}], domains=[ImportLedger])
async def ledger(wf, params):
    return await wf.ImportLedger(params).record()
"""


def write_flow(folder: Path, header: str, body: str = "    pass") -> Path:
    path = folder / "quoting.py"
    path.write_text(FLOW.format(header=header, body=body).lstrip(), encoding="utf-8")
    return path


def nothing_sent(cf: FakeCloudflare) -> None:
    assert cf.operations() == []
    assert cf.scripts == {}
    assert cf.databases == {}
    assert cf.workflows == {}


@pytest.mark.parametrize("json_out", [False, True])
def test_push_refuses_a_module_level_package_import_before_any_request(
    cli_env: FakeCloudflare, tmp_path: Path, json_out: bool
) -> None:
    flow = write_flow(tmp_path, "import httpx")
    result = runner.invoke(
        app, ["push", str(flow), "--yes", "--no-verify", *(["--json"] if json_out else [])]
    )
    assert result.exit_code == 1, result.stdout + result.stderr
    nothing_sent(cli_env)
    lines = [line for line in result.stderr.splitlines() if line]
    assert len(lines) == 1, result.stderr  # one line: no warning before it, no traceback
    line = lines[0]
    assert line.startswith("awf-deploy: refusing to push: quoting.py:1 imports 'httpx'")
    assert "move the import into the handler" in line
    assert "pywrangler" in line
    assert "next to the flow" in line
    if json_out:
        data = json.loads(result.stdout)
        assert data["ok"] is False
        assert data["verified"] is False
        assert data["error"]["kind"] == "MissingModule"
        assert data["error"]["message"] in line
        assert data["missing_imports"] == [
            {"where": "quoting.py:1", "module": "httpx", "kind": "package"}
        ]


def test_push_refuses_before_creating_the_database(cli_env: FakeCloudflare, tmp_path: Path) -> None:
    flow = tmp_path / "ledger.py"
    flow.write_text(LEDGER.lstrip(), encoding="utf-8")
    result = runner.invoke(app, ["push", str(flow), "--yes"])
    assert result.exit_code == 1, result.stdout + result.stderr
    assert "imports 'httpx'" in result.stderr
    nothing_sent(cli_env)


def test_push_names_an_unstartable_import_in_a_sibling_module(
    cli_env: FakeCloudflare, tmp_path: Path
) -> None:
    (tmp_path / "pricing.py").write_text("import awf_sim.chaos\nfrom typer import echo\n")
    flow = write_flow(tmp_path, "import pricing")
    result = runner.invoke(app, ["push", str(flow), "--yes", "--no-verify"])
    assert result.exit_code == 1, result.stdout + result.stderr
    nothing_sent(cli_env)
    assert "pricing.py:1 imports awf_sim.chaos at module level" in result.stderr
    assert "also pricing.py:2 imports 'typer'" in result.stderr


@pytest.mark.parametrize(
    ("header", "body", "warned"),
    [
        # guarded: a missing module is what the `except` expects
        ("try:\n    import httpx\nexcept ImportError:\n    httpx = None", "    pass", False),
        # inside the handler: fails only if that handler runs without the package
        ("", "    import httpx", False),
        # under a condition: may never run on the Worker
        ("import sys\nif sys.platform != 'emscripten':\n    import httpx", "    pass", True),
    ],
    ids=["guarded", "in-handler", "conditional"],
)
def test_imports_that_may_not_run_do_not_stop_a_push(
    cli_env: FakeCloudflare, tmp_path: Path, header: str, body: str, warned: bool
) -> None:
    flow = write_flow(tmp_path, header, body)
    bundle = build_bundle(flow)
    assert bundle.missing_imports == ()
    assert any("httpx" in w for w in bundle.warnings) is warned
    result = runner.invoke(app, ["push", str(flow), "--yes", "--no-verify"])
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "quoting" in cli_env.scripts


def test_a_sibling_imported_only_in_a_handler_is_a_warning(tmp_path: Path) -> None:
    (tmp_path / "pricing.py").write_text("import httpx\n")
    flow = write_flow(tmp_path, "", "    import pricing")
    bundle = build_bundle(flow)
    assert bundle.missing_imports == ()
    assert any(w.startswith("pricing.py:1 imports 'httpx'") for w in bundle.warnings)


def test_build_warns_about_a_package_and_refuses_the_simulator(tmp_path: Path) -> None:
    flow = write_flow(tmp_path, "import httpx")
    out = tmp_path / "out"
    built = runner.invoke(app, ["build", str(flow), "--out", str(out)])
    assert built.exit_code == 0, built.stderr
    assert "awf-deploy: warning: quoting.py:1 imports 'httpx'" in built.stderr
    assert "pywrangler" in built.stderr
    assert (out / "entry.py").is_file()

    flow = write_flow(tmp_path, "from awf_sim.testing import TestWorkflow")
    out = tmp_path / "out2"
    refused = runner.invoke(app, ["build", str(flow), "--out", str(out), "--json"])
    assert refused.exit_code == 2, refused.stdout + refused.stderr
    data = json.loads(refused.stdout)
    assert data["error"]["kind"] == "BuildError"
    assert data["error"]["message"].startswith(
        "refusing to build: quoting.py:1 imports awf_sim.testing at module level"
    )
    assert not out.exists()


def test_the_else_of_a_type_checking_block_runs_on_the_worker(tmp_path: Path) -> None:
    header = (
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    pass\nelse:\n    import httpx"
    )
    bundle = build_bundle(write_flow(tmp_path, header))
    assert [(m.where, m.module) for m in bundle.missing_imports] == [("quoting.py:5", "httpx")]
    header = "if __name__ == '__main__':\n    import httpx"
    assert build_bundle(write_flow(tmp_path, header)).missing_imports == ()
