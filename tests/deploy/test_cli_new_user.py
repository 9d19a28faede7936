"""`awf-deploy` driven as a new user drives it, on flows of their own: what the flow prints
stays off stdout (the result's place, with --json one JSON object), and names and ids that
Cloudflare would refuse are refused in words. Each test failed before its fix."""

from __future__ import annotations

import http.server
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from awf_deploy.cli import app

pytestmark = pytest.mark.usefixtures("flow_registry")

runner = CliRunner()

CHATTY = """
from awf_sim import Domain, Workflow

print("chatty: imported")


async def greet(g, args, ctx):
    print("chatty: in a step")
    return {"hi": g["name"]}


Greeter = Domain("Greeter", {"greet": greet})


@Workflow("chatty", examples=[{"name": "bo"}])
async def chatty(wf, params):
    print("chatty: in the body")
    return await wf.Greeter(params).greet()
"""


def run(*args: str) -> Result:
    return runner.invoke(app, list(args))


def awf_deploy(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The installed CLI in its own process: the flow's prints from forked children too."""
    return subprocess.run(
        [sys.executable, "-m", "awf_deploy.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )


@pytest.fixture
def chatty(tmp_path: Path) -> Path:
    path = tmp_path / "chatty.py"
    path.write_text(CHATTY.lstrip(), encoding="utf-8")
    return path


@pytest.fixture
def refused_url() -> str:
    """An address where nothing listens: a port bound, then closed."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/client/v4"


def test_with_json_the_flow_s_prints_go_to_stderr(
    chatty: Path, tmp_path: Path, refused_url: str
) -> None:
    env = {
        **os.environ,
        "CLOUDFLARE_API_TOKEN": "t" * 40,
        "CLOUDFLARE_ACCOUNT_ID": "023e105f4ecef8ad9ca31a8372d0c353",
        "CLOUDFLARE_API_BASE_URL": refused_url,
    }
    built = awf_deploy("build", str(chatty), "--out", str(tmp_path / "b"), "--json", env=env)
    assert built.returncode == 0, built.stderr
    (line,) = built.stdout.splitlines()
    assert json.loads(line)["script"] == "chatty"
    assert "chatty: imported" in built.stderr

    # push runs chaos on the flow (its body and steps print), then cannot reach the account.
    pushed = awf_deploy("push", str(chatty), "--yes", "--json", env=env)
    assert pushed.returncode == 1, pushed.stderr
    (line,) = pushed.stdout.splitlines()
    data = json.loads(line)
    assert data["ok"] is False
    assert data["error"]["kind"] == "TransportError"
    assert data["verified"] is True
    assert "chatty: in a step" in pushed.stderr


def test_without_json_stdout_holds_only_the_result(chatty: Path, tmp_path: Path) -> None:
    result = run("build", str(chatty), "--out", str(tmp_path / "b"))
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("Wrote ")
    assert "chatty: imported" not in result.stdout
    assert "chatty: imported" in result.stderr


def test_trigger_with_flow_and_json_is_one_object(chatty: Path, cli_env: Any) -> None:
    result = run("trigger", "chatty", "--flow", str(chatty), "--json")
    (line,) = result.stdout.splitlines()  # the workflow is not deployed: a JSON error
    assert json.loads(line)["ok"] is False
    assert "chatty: imported" in result.stderr


# -- names Cloudflare would refuse -----------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["trigger", "bad!name"], "workflow name 'bad!name'"),
        (["trigger", "deploy-greeting", "--id", "-lead"], "instance id '-lead'"),
        (["instances", "a b"], "workflow name 'a b'"),
        (["send-event", "deploy-greeting", "g-1", "bad type!"], "event type 'bad type!'"),
    ],
)
def test_a_bad_name_says_the_rule_in_words(args: list[str], named: str, cli_env: Any) -> None:
    result = run(*args)
    assert result.exit_code == 2
    (line,) = [ln for ln in result.stderr.splitlines() if ln.startswith("awf-deploy: ")]
    assert named in line
    assert "letters, digits, '-' and '_', not '-' first" in line
    assert "pass e.g. 'order-1'" in line
    assert cli_env.requests == []


def test_a_malformed_account_id_flag_is_named_in_the_hint(cli_env: Any) -> None:
    result = run("status", "--account-id", "bad!acct")
    assert result.exit_code == 2
    assert "--account-id" in result.stderr
    assert "bad!acct" not in result.stderr  # not echoed: it may be a token in the wrong place
    assert cli_env.requests == []


def test_a_push_that_fails_before_chaos_never_says_verified(
    chatty: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CLOUDFLARE_API_TOKEN", raising=False)
    result = run("push", str(chatty), "--yes", "--json")
    assert result.exit_code == 2
    (line,) = result.stdout.splitlines()
    data = json.loads(line)
    assert data["error"]["kind"] == "ConfigError"
    assert data["verified"] is False  # chaos never ran


# -- --url at something that is not an awf Worker -----------------------------------------------


@pytest.fixture
def html_server() -> Iterator[Callable[[int], str]]:
    """Local HTTP servers answering every request with an HTML page and the given status."""
    servers: list[http.server.HTTPServer] = []

    def start(status: int) -> str:
        class Handler(http.server.BaseHTTPRequestHandler):
            def answer(self) -> None:
                body = b"<html><body><h1>Welcome to nginx!</h1></body></html>"
                self.send_response(status)
                self.send_header("content-type", "text/html")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = answer

            def log_message(self, *args: Any) -> None:
                pass

        server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("status", [200, 404])
@pytest.mark.parametrize(
    "args", [["status"], ["trigger", "wf"], ["instances", "wf"], ["send-event", "wf", "i", "t"]]
)
def test_a_url_that_is_no_awf_worker_says_check_the_url(
    html_server: Callable[[int], str], status: int, args: list[str]
) -> None:
    result = run(*args, "--url", html_server(status))
    assert result.exit_code == 1
    (line,) = [ln for ln in result.stderr.splitlines() if ln.startswith("awf-deploy: ")]
    assert "not the awf Worker API" in line
    assert "check --url" in line
