"""`awf-deploy dev`: a flow's Worker on the real runtime (Pyodide + Miniflare) as a local server,
driven by hand through the CLI's `--url` (the Worker's own HTTP API), in real time.

The dev servers are real subprocesses on the real harness; outside CI these tests are skipped
when the harness's npm packages are missing (as tests/runtime does). The checks that need no
harness (bad flow, port in use, nothing listening) always run.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner, Result

import awf_deploy._harness
from awf_deploy._worker_api import WorkerApi, WorkerApiError
from awf_deploy.cli import app

ROOT = Path(__file__).resolve().parents[2]
EXPENSES = ROOT / "examples" / "expense_approval.py"
runner = CliRunner()


# Skips unless the harness is installed (or under CI): the repository's conftest.py.
needs_harness = pytest.mark.usefixtures("real_runtime_installed")


def cli(*args: str) -> Result:
    return runner.invoke(app, list(args))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Dev:
    """`awf-deploy dev` as a subprocess; its stderr collected line by line."""

    def __init__(self, flow: Path, port: int, *extra: str) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "awf_deploy.cli", "dev", str(flow), "--port", str(port), *extra],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))

    @property
    def log(self) -> str:
        return "\n".join(self.lines)

    def wait_for_log(self, text: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not any(text in line for line in self.lines):
            if self.proc.poll() is not None:
                self._reader.join(2)
                raise AssertionError(f"dev exited with {self.proc.returncode}:\n{self.log}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no {text!r} within {timeout} s:\n{self.log}")
            time.sleep(0.05)

    def wait_ready(self) -> None:
        self.wait_for_log("Ctrl-C to stop", timeout=90)

    def stop(self) -> int:
        """SIGINT, as Ctrl-C: the exit code; it must come quickly."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        code = self.proc.wait(timeout=15)
        self.close()
        return code

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(5)
        if self.proc.stderr is not None:
            self.proc.stderr.close()


@pytest.fixture
def dev_servers() -> Iterator[list[Dev]]:
    started: list[Dev] = []
    yield started
    for dev in started:
        dev.close()


def start(servers: list[Dev], flow: Path, *extra: str) -> Dev:
    dev = Dev(flow, free_port(), *extra)
    servers.append(dev)
    dev.wait_ready()
    return dev


def wait_status(url: str, workflow: str, instance: str, want: str, timeout: float = 20) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        result = cli("status", workflow, instance, "--url", url, "--json")
        assert result.exit_code == 0, result.output
        details = json.loads(result.stdout)
        if details["status"] == want:
            return details
        assert time.monotonic() < deadline, f"{instance} is {details}, not {want}"
        time.sleep(0.1)


# -- with the harness ----------------------------------------------------------------------------


@needs_harness
def test_an_approval_clicked_through_by_hand_survives_a_restart(
    tmp_path: Path, dev_servers: list[Dev]
) -> None:
    state = tmp_path / "state"
    dev = start(dev_servers, EXPENSES, "--persist", str(state))
    assert dev.url in dev.log
    assert "/workflows/expense-approval/instances" in dev.log
    assert str(state) in dev.log
    assert "seeded from DATABASE (2 tables)" in dev.log

    expense = {"id": "e-1", "amount": 420.0, "approver": "#finance", "submitter": "a@x.org"}
    started = cli(
        "trigger", "expense-approval", "--url", dev.url, "--params", json.dumps(expense),
        "--id", "e1",
    )  # fmt: skip
    assert started.exit_code == 0, started.output
    assert started.stdout.startswith("started instance e1 of expense-approval (")

    # It waits for the manager (real time: the 7-day timeout is not skipped).
    time.sleep(0.5)
    shown = cli("status", "expense-approval", "e1", "--url", dev.url)
    assert shown.exit_code == 0, shown.output
    assert shown.stdout.startswith("instance e1 of expense-approval: running")

    sent = cli(
        "send-event", "expense-approval", "e1", "expense-decision", "--url", dev.url,
        "--payload", '{"approved": true, "approver": "boss@x.org"}',
    )  # fmt: skip
    assert sent.exit_code == 0, sent.output
    assert sent.stdout.strip() == "sent event 'expense-decision' to instance e1 of expense-approval"
    done = wait_status(dev.url, "expense-approval", "e1", "complete")
    assert done["output"] == {"status": "approved", "reimbursementId": "rb-e-1"}
    # Starting e1 again is refused, as Cloudflare refuses it (Miniflare's engine alone would
    # hand back the finished instance, and trigger would say "started").
    twice = cli(
        "trigger", "expense-approval", "--url", dev.url, "--params", json.dumps(expense),
        "--id", "e1",
    )  # fmt: skip
    assert twice.exit_code == 1, twice.output
    assert "HTTP 409" in twice.stderr
    assert "already exists" in twice.stderr

    # A second one is left waiting across the restart.
    second = {**expense, "id": "e-2"}
    started = cli(
        "trigger", "expense-approval", "--url", dev.url, "--params", json.dumps(second),
        "--id", "e2", "--json",
    )  # fmt: skip
    assert json.loads(started.stdout)["id"] == "e2"
    listed = cli("instances", "expense-approval", "--url", dev.url)
    assert listed.exit_code == 0, listed.output
    assert [line.split()[:2] for line in listed.stdout.splitlines()] == [
        ["e2", "running"],
        ["e1", "complete"],
    ]
    assert "POST /workflows/expense-approval/instances?id=e1 -> 201" in dev.log

    began = time.monotonic()
    assert dev.stop() == 0
    assert time.monotonic() - began < 10
    assert "Traceback" not in dev.log
    assert dev.lines[-1] == "awf-deploy dev: stopped"

    again = start(dev_servers, EXPENSES, "--persist", str(state))
    assert "kept the existing database" in again.log
    shown = cli("status", "expense-approval", "e1", "--url", again.url, "--json")
    assert shown.exit_code == 0, shown.output
    details = json.loads(shown.stdout)
    assert details["status"] == "complete"
    assert details["output"] == {"status": "approved", "reimbursementId": "rb-e-1"}
    listed = cli("instances", "expense-approval", "--url", again.url, "--json")
    assert {i["id"] for i in json.loads(listed.stdout)["instances"]} == {"e1", "e2"}
    sent = cli(
        "send-event", "expense-approval", "e2", "expense-decision", "--url", again.url,
        "--payload", '{"approved": false, "reason": "no"}',
    )  # fmt: skip
    assert sent.exit_code == 0, sent.output
    done = wait_status(again.url, "expense-approval", "e2", "complete")
    assert done["output"] == {"status": "rejected", "reason": "no"}
    missing = cli("status", "expense-approval", "nope", "--url", again.url)
    assert missing.exit_code == 1
    assert "HTTP 404" in missing.stderr
    assert again.stop() == 0


TINY = """
from awf_sim import Domain, Workflow

async def hello(name, _, ctx):
    return {"greeting": f"hello {name}"}

Greeter = Domain("Greeter", {"hello": hello})

@Workflow("tiny", domains=[Greeter])
async def tiny(wf, params):
    said = await wf.Greeter(params["name"]).hello()
    return {"said": said["greeting"], "version": VERSION}
"""


def write_flow(path: Path, version: str) -> None:
    path.write_text(f"VERSION = {version!r}\n{TINY}", encoding="utf-8")
    stamp = time.time() + len(version)  # a new mtime even within the clock's resolution
    os.utime(path, (stamp, stamp))


@needs_harness
def test_editing_the_flow_rebuilds_and_a_broken_edit_keeps_the_last_good_bundle(
    tmp_path: Path, dev_servers: list[Dev]
) -> None:
    flow = tmp_path / "tiny.py"
    write_flow(flow, "one")
    dev = start(dev_servers, flow)
    assert "a temporary folder" in dev.log

    def run(instance: str) -> dict:
        result = cli(
            "trigger", "tiny", "--url", dev.url, "--params", '{"name": "ana"}', "--id", instance
        )
        assert result.exit_code == 0, result.output
        return wait_status(dev.url, "tiny", instance, "complete")["output"]

    assert run("a") == {"said": "hello ana", "version": "one"}

    write_flow(flow, "two")
    dev.wait_for_log("rebuilt and reloaded tiny.py", timeout=30)
    assert run("b") == {"said": "hello ana", "version": "two"}

    # A package the Worker lacks: the build's warning (with its fix), then Pyodide's error by
    # its name (it was the last line of Pyodide's advice: `await pyodide.loadPackage(...)`).
    flow.write_text(f"import httpx\nVERSION = 'three'\n{TINY}", encoding="utf-8")
    os.utime(flow, (time.time() + 5, time.time() + 5))
    dev.wait_for_log("still serving the last good bundle", timeout=60)
    (warned,) = [line for line in dev.lines if "imports 'httpx'" in line]
    assert warned.startswith("awf-deploy dev: warning: tiny.py:1 imports 'httpx'")
    failed = next(line for line in dev.lines if "failed at import" in line)
    assert "ModuleNotFoundError: No module named 'httpx'" in failed
    assert dev.lines.index(warned) < dev.lines.index(failed)
    assert run("b2") == {"said": "hello ana", "version": "two"}

    flow.write_text("VERSION = (\n", encoding="utf-8")
    os.utime(flow, (time.time() + 10, time.time() + 10))
    dev.wait_for_log("rebuild failed, still serving the last good bundle", timeout=30)
    failed = next(line for line in dev.lines if "rebuild failed" in line)
    assert "syntax error" in failed
    assert run("c") == {"said": "hello ana", "version": "two"}
    # The instances of the earlier bundles are still there.
    assert wait_status(dev.url, "tiny", "a", "complete")["output"]["version"] == "one"
    assert dev.stop() == 0


NOTES = """
from awf_sim import Database, Domain, Workflow

DATABASE = Database(
    schema="CREATE TABLE notes (key TEXT PRIMARY KEY, body TEXT);" + EXTRA,
    rows=ROWS,
)


async def add(key, args, ctx):
    await ctx.db.execute("INSERT OR IGNORE INTO notes (key, body) VALUES (?, ?)", [key, "x"])
    return USE


DevNotes = Domain("DevNotes", {"add": add})


@Workflow("dev-notes", examples=[{"key": "k"}], domains=[DevNotes])
async def notes(wf, params):
    return await wf.DevNotes(params["key"]).add()
"""


def write_notes(path: Path, *, with_tags: bool) -> None:
    extra = '" CREATE TABLE tags (tag TEXT PRIMARY KEY);"' if with_tags else '""'
    rows = '{"tags": [{"tag": "seeded"}]}' if with_tags else "None"
    use = '[r["tag"] for r in await ctx.db.query("SELECT tag FROM tags")]' if with_tags else "[]"
    text = NOTES.replace("EXTRA", extra).replace("ROWS", rows).replace("USE", use)
    path.write_text(text.lstrip(), encoding="utf-8")
    stamp = time.time() + (10 if with_tags else 0)
    os.utime(path, (stamp, stamp))


@needs_harness
def test_a_table_added_to_database_while_dev_runs_is_created_in_the_kept_d1(
    tmp_path: Path, dev_servers: list[Dev]
) -> None:
    # The kept D1 had `notes` only: the rebuilt code's new table must exist there (with its
    # seed rows), or every step that uses it fails with "no such table" under dev.
    flow = tmp_path / "dev_notes.py"
    write_notes(flow, with_tags=False)
    dev = start(dev_servers, flow)
    started = cli("trigger", "dev-notes", "--url", dev.url, "--params", '{"key": "a"}', "--id", "a")
    assert started.exit_code == 0, started.output
    assert wait_status(dev.url, "dev-notes", "a", "complete")["output"] == []

    write_notes(flow, with_tags=True)
    dev.wait_for_log("rebuilt and reloaded dev_notes.py", timeout=30)
    reloaded = next(line for line in dev.lines if "rebuilt and reloaded" in line)
    assert "created tags from DATABASE" in reloaded
    started = cli("trigger", "dev-notes", "--url", dev.url, "--params", '{"key": "b"}', "--id", "b")
    assert started.exit_code == 0, started.output
    assert wait_status(dev.url, "dev-notes", "b", "complete")["output"] == ["seeded"]
    assert dev.stop() == 0


# -- without the harness ------------------------------------------------------------------------


def test_nothing_listening_is_one_line_and_exit_1() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    for args in (
        ("trigger", "expense-approval", "--url", url),
        ("status", "expense-approval", "e1", "--url", url),
        ("send-event", "expense-approval", "e1", "t", "--url", url),
        ("instances", "expense-approval", "--url", url),
        ("status", "--url", url),
    ):
        result = cli(*args)
        assert result.exit_code == 1, (args, result.output)
        assert result.stderr == (
            f"awf-deploy: nothing is listening on {url}: start `awf-deploy dev FLOW.py`\n"
        )


def test_local_means_the_default_dev_port() -> None:
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", 8787)) == 0:
            pytest.skip("something listens on 127.0.0.1:8787")
    result = cli("instances", "expense-approval", "--local")
    assert result.exit_code == 1
    assert result.stderr == (
        "awf-deploy: nothing is listening on http://127.0.0.1:8787: "
        "start `awf-deploy dev FLOW.py`\n"
    )
    both = cli("instances", "expense-approval", "--local", "--url", "http://127.0.0.1:1")
    assert both.exit_code == 2
    assert "either --local or --url" in both.stderr


def test_dev_refuses_a_port_in_use_a_bad_flow_and_a_missing_harness(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = cli("dev", str(EXPENSES), "--port", str(port))
    assert result.exit_code == 2
    assert result.stderr == (
        f"awf-deploy: port {port} on 127.0.0.1 is in use: stop what listens there, "
        "or pass another --port\n"
    )

    broken = tmp_path / "broken.py"
    broken.write_text("def (\n", encoding="utf-8")
    result = cli("dev", str(broken), "--port", str(free_port()))
    assert result.exit_code == 2
    assert result.stderr == f"awf-deploy: {broken}:1: syntax error: invalid syntax\n"

    monkeypatch.setattr(awf_deploy._harness, "HARNESS_DIR", tmp_path)  # not installed
    result = cli("dev", str(EXPENSES), "--port", str(free_port()))
    assert result.exit_code == 2
    assert result.stderr.startswith("awf-deploy: the real-runtime harness's npm packages")
    assert f"npm ci --no-audit --no-fund --prefix {tmp_path}" in result.stderr


# -- a deployed Worker, and `status WORKFLOW INSTANCE` through the Cloudflare API ------------


def test_a_deployed_worker_cannot_list_and_gets_the_api_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[httpx.Request] = []

    def worker(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == "/workflows/greet/instances" and request.method == "GET":
            return httpx.Response(405, json={"error": "use POST /workflows/greet/instances"})
        return httpx.Response(404, json={"error": "no workflow 'nope'; this Worker runs: greet"})

    monkeypatch.setenv("AWF_API_KEY", "k-123")
    url = "https://shop.example.workers.dev"
    with WorkerApi(url, transport=httpx.MockTransport(worker)) as api:
        with pytest.raises(WorkerApiError) as listing:
            api.list_instances("greet")
        assert str(listing.value) == (
            f"{url} cannot list instances (only `awf-deploy dev` can): list a deployed "
            "workflow through the Cloudflare API, `awf-deploy instances greet` without --url"
        )
        with pytest.raises(WorkerApiError) as missing:
            api.instance("nope", "i-1")
        assert missing.value.status == 404
        assert "HTTP 404: no workflow 'nope'" in str(missing.value)
    assert {r.headers["authorization"] for r in seen} == {"Bearer k-123"}

    bad = cli("status", "--url", "ftp://x")
    assert bad.exit_code == 2
    assert "--url must start with http:// or https://" in bad.stderr


@pytest.mark.usefixtures("flow_registry")
def test_status_of_one_instance_through_the_cloudflare_api(flows_dir: Path, cli_env: Any) -> None:
    assert cli("push", str(flows_dir / "shop.py"), "--yes").exit_code == 0
    assert cli("trigger", "deploy-greeting", "--id", "g-1", "--params", "{}").exit_code == 0
    shown = cli("status", "deploy-greeting", "g-1")
    assert shown.exit_code == 0, shown.output
    assert shown.stdout.startswith("instance g-1 of deploy-greeting: queued")
    assert json.loads(cli("status", "deploy-greeting", "g-1", "--json").stdout)["id"] == "g-1"
    half = cli("status", "deploy-greeting")
    assert half.exit_code == 2
    assert "pass both WORKFLOW and INSTANCE" in half.stderr
