"""Promises of `awf-deploy` that a new user's session broke: a D1 id that is no D1 id, a key
rotated with nobody asked, another Worker's script or workflow replaced with no word, and
error hints that pointed the wrong way. Each test failed before its fix."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

import awf_deploy._cli_deploy
from awf_deploy.cli import app

pytestmark = pytest.mark.usefixtures("flow_registry")

runner = CliRunner()
WRITES = {"PUT", "POST", "PATCH", "DELETE"}
D1_ID = "6f2b8a1e-4c1d-4e0b-9a55-0d5c3b7e9f10"
NOW = "2025-06-01T12:00:00Z"


def run(*args: str, input: str | None = None, env: dict[str, str] | None = None) -> Result:
    return runner.invoke(app, list(args), input=input, env=env)


def writes(cf: Any) -> list[str]:
    return [r.operation_id for r in cf.requests if r.method in WRITES]


def error_lines(result: Result) -> list[str]:
    assert "Traceback" not in result.stdout + result.stderr
    return [
        line
        for line in result.stderr.splitlines()
        if line.startswith("awf-deploy") and "warning:" not in line and not line.endswith("...")
    ]


@pytest.fixture
def shop(flows_dir: Path) -> str:
    return str(flows_dir / "shop.py")


@pytest.fixture
def ledger(flows_dir: Path) -> str:
    return str(flows_dir / "ledger.py")


# -- --d1-id must be a D1 uuid --------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad", ["x", "123", "my-db", "6f2b8a1e4c1d4e0b9a550d5c3b7e9f10", D1_ID + "0"]
)
def test_build_refuses_a_d1_id_that_is_not_a_uuid(ledger: str, tmp_path: Path, bad: str) -> None:
    out = tmp_path / "bundle"
    result = run("build", ledger, "--out", str(out), "--d1-id", bad)
    assert result.exit_code == 2, result.stdout + result.stderr
    (line,) = error_lines(result)
    assert f"--d1-id (or AWF_D1_DATABASE_ID) {bad!r} is not a D1 database id" in line
    assert "npx wrangler d1 list" in line  # the fix
    assert not out.exists()


def test_push_and_key_refuse_a_bad_d1_id_before_any_request(ledger: str, cli_env: Any) -> None:
    pushed = run("push", ledger, "--yes", "--no-verify", "--d1-id", "x")
    assert pushed.exit_code == 2
    assert "is not a D1 database id" in error_lines(pushed)[0]
    rotated = run("key", ledger, "--rotate", "--yes", "--d1-id", "nope")
    assert rotated.exit_code == 2
    assert "is not a D1 database id" in error_lines(rotated)[0]
    assert cli_env.requests == []


def test_a_bad_d1_id_from_the_environment_is_refused_too(ledger: str, cli_env: Any) -> None:
    result = run("push", ledger, "--yes", "--no-verify", env={"AWF_D1_DATABASE_ID": "prod-db"})
    assert result.exit_code == 2
    (line,) = error_lines(result)
    assert "AWF_D1_DATABASE_ID" in line
    assert "'prod-db'" in line
    assert cli_env.requests == []


def test_a_long_bad_d1_id_is_not_echoed(ledger: str, tmp_path: Path) -> None:
    pasted = "cfut_" + "S3cr3t" * 8  # a token in the wrong variable must not be printed
    result = run("build", ledger, "--out", str(tmp_path / "b"), "--d1-id", pasted)
    assert result.exit_code == 2
    assert pasted not in result.stdout + result.stderr
    assert f"({len(pasted)} characters)" in error_lines(result)[0]


def test_a_d1_uuid_in_capitals_is_accepted_and_bound(ledger: str, tmp_path: Path) -> None:
    result = run("build", ledger, "--out", str(tmp_path / "b"), "--d1-id", D1_ID.upper(), "--json")
    assert result.exit_code == 0, result.stderr
    bound = [b for b in json.loads(result.stdout)["bindings"] if b["type"] == "d1"]
    assert bound == [{"type": "d1", "name": "DB", "id": D1_ID.upper()}]


def test_a_d1_id_for_a_flow_without_ctx_db_is_warned(shop: str, tmp_path: Path) -> None:
    result = run("build", shop, "--out", str(tmp_path / "b"), "--d1-id", D1_ID, "--json")
    assert result.exit_code == 0, result.stderr
    assert "no handler of this flow uses ctx.db" in result.stderr
    assert not [b for b in json.loads(result.stdout)["bindings"] if b["type"] == "d1"]


# -- key --rotate asks, or needs --yes --------------------------------------------------------


def test_key_rotate_off_a_terminal_needs_yes(shop: str, cli_env: Any, tmp_path: Path) -> None:
    assert run("push", shop, "--yes").exit_code == 0
    old = cli_env.secrets["shop"]["AWF_API_KEY"]
    before = writes(cli_env)
    result = run("key", shop, "--rotate")  # CliRunner's stdin is not a terminal
    assert result.exit_code == 2
    (line,) = error_lines(result)
    assert "not a terminal" in line
    assert line.endswith("pass --yes")
    assert writes(cli_env) == before  # nothing uploaded: the old key still works
    assert cli_env.secrets["shop"]["AWF_API_KEY"] == old
    assert "awf_" not in result.stdout

    rotated = run("key", shop, "--rotate", "--yes", "--key-file", str(tmp_path / "k"))
    assert rotated.exit_code == 0, rotated.stderr
    assert cli_env.secrets["shop"]["AWF_API_KEY"] != old


def test_key_rotate_on_a_terminal_asks_first(
    shop: str, cli_env: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert run("push", shop, "--yes").exit_code == 0
    old = cli_env.secrets["shop"]["AWF_API_KEY"]
    monkeypatch.setattr(awf_deploy._cli_deploy, "_interactive", lambda: True)
    declined = run("key", shop, "--rotate", input="n\n")
    assert declined.exit_code == 1
    assert "The old key stops working at once." in declined.stderr
    assert "the API key was not changed" in declined.stderr
    assert cli_env.secrets["shop"]["AWF_API_KEY"] == old
    accepted = run("key", shop, "--rotate", "--json", input="y\n")
    assert accepted.exit_code == 0, accepted.stderr
    # CliRunner echoes the typed answer onto stdout; the JSON is the last line.
    new = json.loads(accepted.stdout.splitlines()[-1])["api_key"]
    assert new != old
    assert cli_env.secrets["shop"]["AWF_API_KEY"] == new


# -- taking over what another deploy made --------------------------------------------------------


def _foreign_script(cf: Any, name: str) -> None:
    cf.scripts[name] = {
        "metadata": {"main_module": "index.js"},
        "modules": {
            "index.js": (
                "application/javascript+module",
                b"export default { fetch() { return new Response('theirs') } }",
            )
        },
        "etag": "theirs",
        "created_on": NOW,
    }


def _foreign_workflow(cf: Any, name: str, script: str, class_name: str) -> None:
    cf.workflows[name] = {
        "id": "5b1c9a4e-2f0d-4c8b-9e7a-1d3f5a7c9e0b",
        "name": name,
        "script_name": script,
        "class_name": class_name,
        "version_id": "7c2d0b5f-3a1e-4d9c-8f6b-2e4a6c8d0f1a",
        "created_on": NOW,
        "modified_on": NOW,
        "triggered_on": None,
        "is_deleted": 0,
        "terminator_running": 0,
    }


def test_push_over_a_script_awf_did_not_deploy_warns_in_every_mode(shop: str, cli_env: Any) -> None:
    _foreign_script(cli_env, "shop")
    expected = (
        "awf-deploy: warning: takeover: script 'shop' exists on the account and was not "
        "deployed by awf-deploy"
    )
    dry = run("push", shop, "--dry-run")
    assert dry.exit_code == 0, dry.stderr
    assert expected in dry.stderr
    as_json = run("push", shop, "--dry-run", "--json")
    assert expected in as_json.stderr
    (takeover,) = json.loads(as_json.stdout)["plan"]["takeovers"]
    assert takeover.startswith("script 'shop' exists on the account")
    assert writes(cli_env) == []
    pushed = run("push", shop, "--yes")
    assert pushed.exit_code == 0, pushed.stderr
    assert expected in pushed.stderr
    # Now it is awf's own: the next change is an ordinary update, with no warning.
    again = run("push", shop, "--yes", "--compatibility-date", "2026-06-01")
    assert again.exit_code == 0, again.stderr
    assert "takeover" not in again.stderr


def test_push_that_rebinds_another_scripts_workflow_warns(shop: str, cli_env: Any) -> None:
    _foreign_script(cli_env, "billing")
    _foreign_workflow(cli_env, "deploy-greeting", "billing", "Greeter")
    result = run("push", shop, "--yes", "--json")
    assert result.exit_code == 0, result.stderr
    assert (
        "awf-deploy: warning: takeover: workflow 'deploy-greeting' belongs to script 'billing' "
        "(class Greeter): the push rebinds it to 'shop', and 'billing' loses it"
    ) in result.stderr
    assert len(json.loads(result.stdout)["plan"]["takeovers"]) == 1
    assert cli_env.workflows["deploy-greeting"]["script_name"] == "shop"


def test_a_workflow_of_the_same_script_under_another_class_is_no_takeover(
    shop: str, cli_env: Any
) -> None:
    assert run("push", shop, "--yes").exit_code == 0
    cli_env.workflows["deploy-greeting"]["class_name"] = "OldClass"
    result = run("push", shop, "--yes")
    assert result.exit_code == 0, result.stderr
    assert "takeover" not in result.stderr
    assert cli_env.workflows["deploy-greeting"]["class_name"] == "DeployGreetingWorkflow"


def test_a_terminal_push_with_a_takeover_asks_about_it(
    shop: str, cli_env: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    _foreign_script(cli_env, "shop")
    monkeypatch.setattr(awf_deploy._cli_deploy, "_interactive", lambda: True)
    declined = run("push", shop, input="n\n")
    assert declined.exit_code == 1
    assert "taking over what another deploy made" in declined.stderr
    assert writes(cli_env) == []
    assert cli_env.scripts["shop"]["etag"] == "theirs"


# -- hints that pointed the wrong way ---------------------------------------------------------


def test_a_server_error_with_code_10001_does_not_blame_a_content_type(cli_env: Any) -> None:
    failure = cli_env.fail(500, 10001, "internal error")
    cli_env.queue("wor-list-workflows", failure, failure, failure, failure)
    result = run("status")
    assert result.exit_code == 1
    assert "content type" not in result.stderr
    assert "internal error; try again later" in result.stderr


def test_an_unknown_account_is_not_sent_to_awf_deploy_status(cli_env: Any) -> None:
    result = run("status", "--account-id", "1" * 32)
    assert result.exit_code == 1
    # --account-id was what was wrong here, so the hint names it too.
    assert "check the account id (CLOUDFLARE_ACCOUNT_ID or --account-id)" in result.stderr
    # `status` on the same account fails the same way: it is no way out.
    assert "`awf-deploy status` lists" not in result.stderr


# -- the Worker's HTTP API: an unknown instance ---------------------------------------------------


class _Request:
    def __init__(self, method: str, url: str) -> None:
        self.method = method
        self.url = url
        self.headers: dict[str, str] = {}

    async def text(self) -> str:
        return "{}"


class _MissingInstances:
    """A Workflows binding as Cloudflare's (and Miniflare's) answers an unknown id."""

    async def get(self, instance_id: str) -> Any:
        raise RuntimeError("Error: instance.not_found")


def test_the_worker_names_an_unknown_instance(flows_dir: Path, tmp_path: Path) -> None:
    """`awf-deploy status WF nope --url` printed `JsException: Error: instance.not_found`."""
    import asyncio

    from awf_deploy import build_bundle, bundle_in_process, write_bundle

    bundle = build_bundle(flows_dir / "shop.py", api_auth="public")
    base = "https://shop.example.workers.dev/workflows/deploy-greeting/instances/nope"
    with bundle_in_process(write_bundle(bundle, tmp_path / "b")) as entry:
        worker = entry.Default(None, {"DEPLOY_GREETING_WORKFLOW": _MissingInstances()})
        for request in (_Request("GET", base), _Request("POST", base + "/events/go")):
            answer = asyncio.run(worker.fetch(request))
            assert answer.status == 404
            assert answer.json() == {"error": "no instance 'nope' of workflow 'deploy-greeting'"}


def test_status_help_does_not_promise_a_params_check() -> None:
    """status has no --params; its --flow said they were checked."""
    flow_help = " ".join(run("status", "--help").stdout.split())
    assert "--params" not in flow_help
    assert "declared output type" in flow_help
    assert "--params are checked" in " ".join(run("trigger", "--help").stdout.split())


# -- key --rotate after a push given options ------------------------------------------------------


def test_key_rotate_names_the_options_a_push_was_given(shop: str, cli_env: Any) -> None:
    """A push with --compatibility-date builds another bundle than `key` without it: the
    refusal said only "push it first", which changes nothing."""
    assert run("push", shop, "--yes", "--compatibility-date", "2026-06-01").exit_code == 0
    refused = run("key", shop, "--rotate", "--yes")
    assert refused.exit_code == 2
    (line,) = error_lines(refused)
    assert "if the push was given --compatibility-date, pass the same here" in line
    again = run("key", shop, "--rotate", "--yes", "--compatibility-date", "2026-06-01")
    assert again.exit_code == 0, again.stderr


def test_key_rotate_of_a_public_worker_says_it_has_no_key(shop: str, cli_env: Any) -> None:
    assert run("push", shop, "--yes", "--public").exit_code == 0
    refused = run("key", shop, "--rotate", "--yes")
    assert refused.exit_code == 2
    (line,) = error_lines(refused)
    assert "was pushed with --public: its Worker has no API key to rotate" in line
    assert cli_env.secrets["shop"] == {}


# -- a --d1-id the account does not have -----------------------------------------------------------


def test_push_refuses_a_d1_id_the_account_does_not_have(ledger: str, cli_env: Any) -> None:
    """It was bound as given: Cloudflare refuses such an upload, after chaos's whole run."""
    for extra in ((), ("--dry-run",)):
        result = run("push", ledger, "--yes", "--no-verify", "--d1-id", D1_ID, *extra)
        assert result.exit_code == 2
        (line,) = error_lines(result)
        assert f"{D1_ID}: the account has no D1 database with this id" in line
        assert "npx wrangler d1 list" in line
    assert writes(cli_env) == []
    cli_env.add_database("mine", D1_ID)
    assert run("push", ledger, "--yes", "--no-verify", "--d1-id", D1_ID).exit_code == 0


def test_a_token_that_cannot_read_d1_pushes_a_given_id_with_a_warning(
    ledger: str, cli_env: Any
) -> None:
    cli_env.queue("cloudflare-d1-get-database", cli_env.fail(403, 10000, "Authentication error"))
    result = run("push", ledger, "--yes", "--no-verify", "--d1-id", D1_ID)
    assert result.exit_code == 0, result.stderr
    assert f"warning: could not check --d1-id {D1_ID}" in result.stderr
    bound = [b for b in cli_env.scripts["ledger"]["metadata"]["bindings"] if b["type"] == "d1"]
    assert bound == [{"type": "d1", "name": "DB", "id": D1_ID}]


# -- a push that stops: what to do next ----------------------------------------------------------


def test_a_refused_first_write_is_not_halfway_and_not_retried_as_is(
    shop: str, cli_env: Any
) -> None:
    """A 400 on the upload said "Push stopped halfway ... Run the same push again", which
    fails the same way: nothing was done, and the refusal has to be fixed first."""
    refusal = cli_env.fail(400, 10021, "could not read content for part metadata")
    cli_env.queue("worker-script-upload-worker-module", refusal)
    result = run("push", shop, "--yes", "--no-verify")
    assert result.exit_code == 1
    assert "Push stopped before changing anything." in result.stdout
    assert "halfway" not in result.stdout
    assert "Cloudflare refused the request: fix what the error says" in result.stdout
    assert "Run the same push again" not in result.stdout
    assert writes(cli_env) == ["worker-script-upload-worker-module"]


def test_a_push_stopped_by_a_server_error_still_says_run_it_again(
    shop: str, cli_env: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import awf_deploy.cli

    monkeypatch.setitem(awf_deploy.cli._CLIENT_OPTIONS, "max_retries", 0)
    cli_env.queue("wor-create-or-modify-workflow", cli_env.fail(500, 10013, "unavailable"))
    result = run("push", shop, "--yes", "--no-verify")
    assert result.exit_code == 1
    assert "Push stopped halfway." in result.stdout
    assert "Run the same push again" in result.stdout


def test_push_of_another_flow_under_the_same_script_name_warns(
    shop: str, flows_dir: Path, cli_env: Any
) -> None:
    """`--name` (or two flow files of one name) made one flow replace another's Worker as an
    ordinary update."""
    assert run("push", shop, "--yes").exit_code == 0
    paths = str(flows_dir / "paths.py")
    result = run("push", paths, "--name", "shop", "--yes", "--no-verify", "--dry-run", "--json")
    assert result.exit_code == 0, result.stderr
    expected = "script 'shop' runs the flow shop.py (pushed by awf-deploy): the push replaces it"
    assert f"awf-deploy: warning: takeover: {expected} with paths.py" in result.stderr
    assert json.loads(result.stdout)["plan"]["takeovers"][0].startswith(expected)
    again = run("push", shop, "--yes", "--compatibility-date", "2026-06-01", "--dry-run")
    assert "takeover" not in again.stderr  # the same flow, changed: its own update


def test_an_unknown_workflow_is_not_sent_to_its_instances(cli_env: Any) -> None:
    """`status WF ID` of a workflow the account lacks hinted `awf-deploy instances WF`, which
    fails the same way."""
    result = run("status", "nope", "i1")
    assert result.exit_code == 1
    assert "workflow.not_found" in result.stderr
    assert "awf-deploy instances nope" not in result.stderr
    assert "`awf-deploy status` lists what is deployed on the account." in result.stderr
