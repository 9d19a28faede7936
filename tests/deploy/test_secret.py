"""Secure by default: `push` sets a generated API key as the Worker's secret, keeps it on later
pushes, shows it once; the Worker answers 401 without it; `key --rotate` replaces it."""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from awf_deploy import build_bundle, bundle_in_process, write_bundle
from awf_deploy.cli import app
from awf_sim.dsl import isolated_registries

pytestmark = pytest.mark.usefixtures("flow_registry")

runner = CliRunner()


def run(*args: str) -> Result:
    return runner.invoke(app, list(args))


@pytest.fixture
def shop(flows_dir: Path) -> str:
    return str(flows_dir / "shop.py")


def _key_in(stdout: str) -> str:
    lines = stdout.splitlines()
    index = next(i for i, line in enumerate(lines) if "shown once" in line)
    return lines[index + 1].strip()


def test_first_push_sets_a_key_shows_it_once_and_later_pushes_keep_it(
    shop: str, cli_env: Any, tmp_path: Path
) -> None:
    with isolated_registries():
        first = run("push", shop, "--yes")
    assert first.exit_code == 0, first.stderr
    key = _key_in(first.stdout)
    assert key.startswith("awf_")
    assert len(key) > 40
    assert cli_env.secrets["shop"] == {"AWF_API_KEY": key}
    assert key not in first.stderr  # progress and logs never carry it
    upload = next(
        r for r in cli_env.requests if r.operation_id == "worker-script-upload-worker-module"
    )
    assert upload.metadata is not None
    assert upload.metadata["keep_bindings"] == ["secret_text"]
    assert {"type": "secret_text", "name": "AWF_API_KEY", "text": key} in upload.metadata[
        "bindings"
    ]
    entry = cli_env.scripts["shop"]["modules"]["entry.py"][1].decode()
    assert 'API_AUTH = "key"' in entry

    # a changed flow is uploaded again without a secret: Cloudflare keeps the one it has
    changed = tmp_path / "shop.py"
    changed.write_text(Path(shop).read_text().replace("'hello'", "'hey'"))
    with isolated_registries():  # the same Domain names from another file
        second = run("push", str(changed), "--yes", "--name", "shop")
    assert second.exit_code == 0, second.stderr
    assert "upload script 'shop'" in second.stdout
    assert "API key" not in second.stdout
    assert cli_env.secrets["shop"] == {"AWF_API_KEY": key}
    last = [r for r in cli_env.requests if r.operation_id == "worker-script-upload-worker-module"]
    assert last[-1].metadata is not None
    assert not [b for b in last[-1].metadata["bindings"] if b["type"] == "secret_text"]


def test_key_file_gets_the_key_and_nothing_prints_it(
    shop: str, cli_env: Any, tmp_path: Path
) -> None:
    key_file = tmp_path / "shop.key"
    result = run("push", shop, "--yes", "--key-file", str(key_file))
    assert result.exit_code == 0, result.stderr
    key = key_file.read_text().strip()
    assert cli_env.secrets["shop"]["AWF_API_KEY"] == key
    assert key not in result.stdout + result.stderr
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    assert f"export AWF_API_KEY=$(cat {key_file})" in result.stdout
    assert cli_env.token not in result.stdout + result.stderr + key_file.read_text()


def test_json_push_reports_the_key_once(shop: str, cli_env: Any) -> None:
    import json

    result = run("push", shop, "--yes", "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["api_key"] == cli_env.secrets["shop"]["AWF_API_KEY"]
    assert data["plan"]["new_api_key"] is True


def test_public_push_sets_no_key(shop: str, cli_env: Any) -> None:
    result = run("push", shop, "--yes", "--public")
    assert result.exit_code == 0, result.stderr
    assert "open to anyone" in result.stderr
    assert cli_env.secrets["shop"] == {}
    entry = cli_env.scripts["shop"]["modules"]["entry.py"][1].decode()
    assert 'API_AUTH = "public"' in entry


def test_a_flow_can_say_public(flows_dir: Path, cli_env: Any, tmp_path: Path) -> None:
    flow = tmp_path / "open_shop.py"
    flow.write_text((flows_dir / "shop.py").read_text() + "\nPUBLIC_API = True\n")
    with isolated_registries():
        result = run("push", str(flow), "--yes")
    assert result.exit_code == 0, result.stderr
    assert cli_env.secrets["open-shop"] == {}


def test_key_rotate_uploads_a_new_secret(shop: str, cli_env: Any, tmp_path: Path) -> None:
    assert run("key", shop, "--rotate").exit_code == 2  # nothing deployed yet
    assert run("push", shop, "--yes").exit_code == 0
    old = cli_env.secrets["shop"]["AWF_API_KEY"]
    plain = run("key", shop)
    assert plain.exit_code == 2
    assert "--rotate" in plain.stderr
    key_file = tmp_path / "new.key"
    rotated = run("key", shop, "--rotate", "--yes", "--key-file", str(key_file))
    assert rotated.exit_code == 0, rotated.stderr
    new = key_file.read_text().strip()
    assert new != old
    assert cli_env.secrets["shop"] == {"AWF_API_KEY": new}
    assert new not in rotated.stdout + rotated.stderr
    # the bundle is the same, so the next push changes nothing
    again = run("push", shop, "--yes")
    assert "Nothing to push" in again.stdout


# -- the Worker side, through the bundle --------------------------------------------------------


class Request:
    def __init__(self, method: str, url: str, headers: dict[str, str] | None = None) -> None:
        self.method = method
        self.url = url
        self.headers = {k.lower(): v for k, v in (headers or {}).items()}

    async def text(self) -> str:
        return ""


def _fetch(entry: ModuleType, env: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
    worker = entry.Default(None, env)
    return asyncio.run(worker.fetch(Request("GET", "https://shop.example.workers.dev/", headers)))


@pytest.mark.parametrize("auth", ["key", "public", "optional"])
def test_the_worker_answers_401_without_the_key(auth: str, flows_dir: Path, tmp_path: Path) -> None:
    bundle = build_bundle(flows_dir / "shop.py", api_auth=auth)
    with bundle_in_process(write_bundle(bundle, tmp_path / auth)) as entry:
        assert auth == entry.API_AUTH
        unset = _fetch(entry, {})
        if auth == "key":
            assert unset.status == 401
            assert "AWF_API_KEY" in unset.json()["error"]
            assert "awf-deploy key" in unset.json()["error"]
        else:
            assert unset.status == 200  # no secret: public, or optional (local runs)
        env = {"AWF_API_KEY": "k-1"}
        denied = _fetch(entry, env)
        assert denied.status == (200 if auth == "public" else 401)
        wrong = _fetch(entry, env, {"Authorization": "Bearer k-2"})
        assert wrong.status == (200 if auth == "public" else 401)
        allowed = _fetch(entry, env, {"Authorization": "Bearer k-1"})
        assert allowed.status == 200
        assert "k-1" not in str(denied.body)


def test_build_is_secure_by_default_and_says_so(flows_dir: Path, tmp_path: Path) -> None:
    result = run("build", str(flows_dir / "shop.py"), "--out", str(tmp_path / "b"))
    assert result.exit_code == 0, result.stderr
    assert "Authorization: Bearer <AWF_API_KEY>" in result.stdout
    assert 'API_AUTH = "key"' in (tmp_path / "b" / "entry.py").read_text()
    public = run("build", str(flows_dir / "shop.py"), "--out", str(tmp_path / "p"), "--public")
    assert "public" in public.stdout
    assert 'API_AUTH = "public"' in (tmp_path / "p" / "entry.py").read_text()
