"""`awf-deploy` as a new user drives it: the failures each promise must turn into one clear
line and the right exit code, never a traceback, a leaked token or a misleading result."""

from __future__ import annotations

import errno
import http.server
import json
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from awf_deploy.cli import app

pytestmark = pytest.mark.usefixtures("flow_registry")

runner = CliRunner()


def run(*args: str, input: str | None = None) -> Result:
    return runner.invoke(app, list(args), input=input)


def one_error_line(result: Result) -> str:
    """The single `awf-deploy: ...` line on stderr; no traceback anywhere."""
    out = result.stdout + result.stderr
    assert "Traceback" not in out, out
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    lines = [line for line in result.stderr.splitlines() if line.startswith("awf-deploy: ")]
    errors = [line for line in lines if "warning:" not in line and not line.endswith("...")]
    assert len(errors) == 1, result.stderr
    return errors[0]


@pytest.fixture
def shop(flows_dir: Path) -> str:
    return str(flows_dir / "shop.py")


def test_build_into_a_folder_that_cannot_be_created_is_one_line(shop: str, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder\n")
    result = run("build", shop, "--out", str(blocker / "bundle"))
    assert result.exit_code == 2
    line = one_error_line(result)
    assert "cannot write the bundle" in line
    assert "--out" in line


# -- secrets with characters no secret has -------------------------------------------------------


@pytest.fixture
def listening_url() -> Iterator[str]:
    """A local HTTP server that answers every request with an empty JSON object."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.mark.parametrize("inner", ["\n", " ", "\t", "\x7f"])
def test_a_token_with_a_line_break_inside_is_refused_and_never_printed(
    inner: str, cli_env: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # httpx refuses such a header with an error that quotes it escaped (b'Bearer abc\\ndef'),
    # where a plain replace() of the token cannot find it.
    token = "cfut_AAAAsecretpart" + inner + "BBBBsecretpart"
    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", token)
    result = run("status", "--json")
    assert result.exit_code == 2
    line = one_error_line(result)
    assert "CLOUDFLARE_API_TOKEN" in result.stderr
    assert "token" in line
    out = result.stdout + result.stderr
    assert "secretpart" not in out
    assert cli_env.requests == []


def test_surrounding_whitespace_of_a_token_is_still_accepted(
    cli_env: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", f"  {cli_env.token}\r\n")
    result = run("status", "--json")
    assert result.exit_code == 0, result.stderr


def test_an_api_key_with_a_line_break_inside_is_refused_and_never_printed(
    listening_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWF_API_KEY", "awf_KEYsecretpart\nKEYsecretpart")
    result = run("status", "--url", listening_url)
    assert result.exit_code == 2
    line = one_error_line(result)
    assert "AWF_API_KEY" in line
    assert "secretpart" not in result.stdout + result.stderr


# -- push --json -------------------------------------------------------------------------------


def test_push_json_is_not_verified_when_chaos_finds_violations(
    flows_dir: Path, cli_env: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWF_D1_DATABASE_ID", "6f2b8a1e-4c1d-4e0b-9a55-0d5c3b7e9f10")
    cli_env.add_database("counters", "6f2b8a1e-4c1d-4e0b-9a55-0d5c3b7e9f10")
    refused = run("push", str(flows_dir / "broken.py"), "--yes", "--json", "--dry-run")
    assert refused.exit_code == 1
    data = json.loads(refused.stdout)
    assert data["violations"]
    assert data["verified"] is False

    skipped = run("push", str(flows_dir / "broken.py"), "--json", "--dry-run", "--no-verify")
    assert skipped.exit_code == 0, skipped.stderr
    assert json.loads(skipped.stdout)["verified"] is False


def test_push_json_is_verified_when_chaos_passes(shop: str, cli_env: Any) -> None:
    result = run("push", shop, "--json", "--dry-run")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["violations"] == []
    assert data["verified"] is True


# -- --key-file --------------------------------------------------------------------------------


def test_a_key_file_that_is_a_folder_is_refused_before_anything_is_sent(
    shop: str, cli_env: Any, tmp_path: Path
) -> None:
    result = run("push", shop, "--yes", "--key-file", str(tmp_path))
    assert result.exit_code == 2
    assert "is a folder" in one_error_line(result)
    assert cli_env.requests == []


def test_a_key_that_cannot_be_written_after_the_upload_is_shown_not_lost(
    shop: str, cli_env: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The disk fills (or the folder goes away) between the check and the write: by then the
    # key is set on the Worker, so it must reach the user some other way.
    real_open = os.open

    def full_disk(path: Any, flags: int, mode: int = 0o777, **kwargs: Any) -> int:
        if str(path).endswith("shop.key"):
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real_open(path, flags, mode, **kwargs)

    monkeypatch.setattr(os, "open", full_disk)
    result = run("push", shop, "--yes", "--key-file", str(tmp_path / "shop.key"))
    key = cli_env.secrets["shop"]["AWF_API_KEY"]
    assert result.exit_code == 1
    assert "Traceback" not in result.stdout + result.stderr
    assert key in result.stdout
    assert "could not write the API key" in result.stderr

    as_json = run(
        "key", shop, "--rotate", "--yes", "--json", "--key-file", str(tmp_path / "shop.key")
    )
    assert as_json.exit_code == 1
    data = json.loads(as_json.stdout)
    assert data["api_key"] == cli_env.secrets["shop"]["AWF_API_KEY"] != key
    assert "api_key_file_error" in data


# -- what to do after a 4xx --------------------------------------------------------------------


def test_triggering_an_id_that_exists_says_to_pick_another(shop: str, cli_env: Any) -> None:
    assert run("push", shop, "--yes").exit_code == 0
    assert run("trigger", "deploy-greeting", "--id", "g-1").exit_code == 0
    again = run("trigger", "deploy-greeting", "--id", "g-1")
    assert again.exit_code == 1
    assert "HTTP 409" in again.stderr
    assert "hint:" in again.stderr
    assert "--id" in again.stderr.split("hint:", 1)[1]


def test_a_missing_instance_points_at_the_workflows_instances(shop: str, cli_env: Any) -> None:
    assert run("push", shop, "--yes").exit_code == 0
    for args in (
        ["status", "deploy-greeting", "nope-1"],
        ["send-event", "deploy-greeting", "nope-1", "approval"],
        ["pull", "deploy-greeting", "nope-1"],
    ):
        result = run(*args)
        assert result.exit_code == 1, args
        assert "HTTP 404" in result.stderr
        assert "awf-deploy instances deploy-greeting" in result.stderr, args


# -- bad flags -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["build", "FLOW.py", "--bogus"], "No such option: --bogus"),
        (["push", "FLOW.py", "--replay-limit", "0"], "--replay-limit"),
        (["instances", "w", "--limit", "many"], "--limit"),
        (["dev", "FLOW.py", "--port", "70000"], "--port"),
        (["send-event", "w", "i"], "Missing argument"),
        (["no-such-command"], "No such command"),
        (["--bogus"], "No such option"),
    ],
)
def test_a_bad_flag_is_one_line_naming_it_and_exit_2(args: list[str], says: str) -> None:
    result = run(*args)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert says in lines[0]
    assert lines[0].startswith("awf-deploy")
    assert "--help" in lines[0]
    assert "╭" not in result.stderr


def test_help_and_no_arguments_still_show_the_help() -> None:
    assert "Usage" in run("--help").stdout
    bare = run()
    assert bare.exit_code == 2
    assert "Usage" in bare.stdout + bare.stderr


# -- dev -----------------------------------------------------------------------------------------


def test_dev_persist_that_is_a_file_or_cannot_be_created_is_one_line_before_node_starts(
    shop: str, tmp_path: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder\n")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
    for persist, says in ((blocker, "is a file"), (blocker / "state", "cannot create it")):
        result = run("dev", shop, "--port", port, "--persist", str(persist))
        assert result.exit_code == 2
        line = one_error_line(result)
        assert "--persist" in line
        assert says in line


def test_status_help_says_what_name_defaults_to() -> None:
    # status takes no flow file, so "default: the flow file's name" (the other commands')
    # promised a default that does not exist.
    text = " ".join(run("status", "--help").stdout.replace("│", " ").split())
    assert "flow file's name" not in text
    assert "every workflow on the account" in text


def test_version_like_awf_sim() -> None:
    from importlib.metadata import version

    result = run("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"awf-deploy {version('awf')}"


# -- pull ----------------------------------------------------------------------------------------


def test_pull_json_says_what_the_text_says(shop: str, cli_env: Any, tmp_path: Path) -> None:
    assert run("push", shop, "--yes").exit_code == 0
    assert run("trigger", "deploy-greeting", "--id", "g-1").exit_code == 0
    out = tmp_path / "g-1.json"
    result = run("pull", "deploy-greeting", "g-1", "--out", str(out), "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    saved = json.loads(out.read_text())
    assert data["status"] == saved["status"] == "queued"
    assert data["steps"] == len(saved["steps"])


def test_pull_to_a_place_that_cannot_be_written_sends_nothing(cli_env: Any, tmp_path: Path) -> None:
    for out, says in ((tmp_path, "is a folder"), (tmp_path / "no" / "h.json", "does not exist")):
        result = run("pull", "deploy-greeting", "g-1", "--out", str(out))
        assert result.exit_code == 2
        assert says in one_error_line(result)
    assert cli_env.requests == []
