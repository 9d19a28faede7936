"""`awf-deploy ... --json` as a script reads it: one JSON object on stdout, on failure too
(`{"ok": false, "error": {"kind", "message", ...}}`), with the exit code and the stderr lines of
the same command without --json. Each test failed before its fix: a failing command printed
nothing on stdout, and the client's retry notices went to stderr without `awf-deploy: `."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner, Result

from awf_deploy.cli import app

pytestmark = pytest.mark.usefixtures("flow_registry")

runner = CliRunner()


def run(*args: str, env: dict[str, str] | None = None) -> Result:
    return runner.invoke(app, list(args), env=env)


def one_object(result: Result) -> dict[str, Any]:
    """stdout is exactly one line, one JSON object; no traceback anywhere."""
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1, result.stdout
    data = json.loads(lines[0])
    assert isinstance(data, dict)
    return data


def same_as_without_json(args: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run `args` with and without --json: the same exit code (not 0) and stderr; the JSON's
    `error` is the failure stderr says."""
    plain = run(*args, env=env)
    as_json = run(*args, "--json", env=env)
    assert plain.exit_code != 0, plain.stdout + plain.stderr
    assert as_json.exit_code == plain.exit_code, as_json.stderr
    assert as_json.stderr == plain.stderr
    data = one_object(as_json)
    assert data["ok"] is False
    error = data["error"]
    assert error["kind"]
    assert error["message"]
    assert error["message"] in as_json.stderr  # the line stderr carries, without its prefix
    return data


@pytest.fixture
def shop(flows_dir: Path) -> str:
    return str(flows_dir / "shop.py")


def test_missing_credentials_are_a_json_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CLOUDFLARE_API_TOKEN", raising=False)
    monkeypatch.delenv("CLOUDFLARE_ACCOUNT_ID", raising=False)
    for args in (["status"], ["instances", "shop-order"], ["trigger", "shop-order"]):
        data = same_as_without_json(args)
        assert data["error"]["kind"] == "ConfigError"
        assert "CLOUDFLARE_API_TOKEN" in data["error"]["message"]
        assert run(*args, "--json").exit_code == 2


def test_a_flow_that_does_not_load_is_a_json_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.py"
    data = same_as_without_json(["build", str(missing), "--out", str(tmp_path / "b")])
    assert data["error"]["kind"] == "FlowError"
    assert run("build", str(missing), "--json").exit_code == 2
    broken = tmp_path / "syntax.py"
    broken.write_text("def f(:\n")
    data = same_as_without_json(["build", str(broken), "--out", str(tmp_path / "b")])
    assert data["error"]["kind"] == "FlowError"


def test_a_usage_error_click_finds_is_a_json_error() -> None:
    data = same_as_without_json(["instances", "shop-order", "--limit", "0"])
    assert data["error"]["kind"] == "UsageError"
    assert "--limit" in data["error"]["message"]
    assert run("instances", "shop-order", "--limit", "0", "--json").exit_code == 2


def test_an_api_error_is_a_json_error_with_its_status_and_hint(cli_env: Any) -> None:
    data = same_as_without_json(["status", "shop-order", "no-such-instance"])
    error = data["error"]
    assert error["kind"] == "NotFoundError"
    assert error["status"] == 404
    assert "awf-deploy status" in error["hint"]  # the hint stderr gives, in the object too
    assert run("status", "shop-order", "no-such-instance", "--json").exit_code == 1


def test_a_network_failure_is_a_json_error(cli_env: Any) -> None:
    cli_env.queue("wor-list-workflows", *[httpx.ConnectError("connection refused")] * 10)
    data = same_as_without_json(["status"])
    assert data["error"]["kind"] == "TransportError"


def test_a_refused_push_says_ok_false_and_why(shop: str, cli_env: Any) -> None:
    # Off a terminal without --yes: the plan is in the object, with the refusal.
    data = same_as_without_json(["push", shop, "--no-verify"])
    assert data["error"]["kind"] == "UsageError"
    assert data["error"]["message"].endswith("pass --yes")
    assert data["aborted"] is True
    assert data["plan"]
    assert not [r for r in cli_env.requests if r.method in {"PUT", "POST", "PATCH", "DELETE"}]


def test_a_push_refused_by_chaos_says_ok_false(cli_env: Any) -> None:
    result = run("push", "examples/nondeterministic.py", "--yes", "--json")
    assert result.exit_code == 1
    data = one_object(result)
    assert data["ok"] is False
    assert data["error"]["kind"] == "Violations"
    assert data["violations"]


def test_status_of_a_script_not_deployed_says_why(cli_env: Any) -> None:
    plain = run("status", "--name", "nothing-here")
    assert plain.exit_code == 1
    assert "awf-deploy: script 'nothing-here' is not deployed" in plain.stderr
    data = one_object(run("status", "--name", "nothing-here", "--json"))
    assert data["ok"] is False
    assert data["error"]["kind"] == "NotFoundError"
    assert data["script"]["deployed"] is False


def test_success_says_ok_true(shop: str, tmp_path: Path, cli_env: Any) -> None:
    built = one_object(run("build", shop, "--out", str(tmp_path / "b"), "--json"))
    assert built["ok"] is True
    assert "error" not in built
    assert one_object(run("status", "--json"))["ok"] is True


def test_help_and_version_print_no_json_object() -> None:
    assert run("status", "--help", "--json").exit_code == 0
    assert not run("--version").stdout.startswith("{")


# -- retry notices ---------------------------------------------------------------------------------


def test_retry_notices_carry_the_awf_deploy_prefix(cli_env: Any) -> None:
    cli_env.queue(
        "wor-list-workflows",
        cli_env.fail(503, None, "upstream busy"),
        cli_env.fail(429, 10000, "slow down"),
    )
    result = run("status")
    assert result.exit_code == 0, result.stderr
    notices = [line for line in result.stderr.splitlines() if "retrying in" in line]
    assert len(notices) == 2, result.stderr
    for line in notices:
        assert line.startswith("awf-deploy: GET "), line
    assert "HTTP 503" in notices[0]
    assert "HTTP 429" in notices[1]


def test_the_cli_leaves_the_client_logger_as_it_found_it(cli_env: Any) -> None:
    import logging

    logger = logging.getLogger("awf_deploy.cloudflare")
    handlers, propagate = list(logger.handlers), logger.propagate
    run("status")
    run("status", "--limit")  # a usage error too
    assert logger.handlers == handlers
    assert logger.propagate is propagate


# -- trigger --params: any JSON value, as Cloudflare and awf workflows take -----------------------

TYPED = str(Path(__file__).resolve().parents[2] / "examples" / "order_processing_typed.py")


@pytest.mark.parametrize("params", [[1, 2], 3, "x", True])
def test_trigger_sends_params_that_are_no_object_as_they_are(
    shop: str, cli_env: Any, params: Any
) -> None:
    # Cloudflare types `params` as any JSON (the event payload) and an awf workflow gets it as
    # it is: refusing a list would refuse what `awf-sim run --input '[1, 2]'` runs.
    assert run("push", shop, "--yes").exit_code == 0
    result = run("trigger", "deploy-greeting", "--params", json.dumps(params), "--id", "p-1")
    assert result.exit_code == 0, result.stderr
    assert cli_env.instances["deploy-greeting"]["p-1"]["params"] == params


def test_trigger_with_flow_refuses_a_list_for_a_typed_input(cli_env: Any) -> None:
    result = run("trigger", "order-processing", "--params", "[1, 2]", "--flow", TYPED)
    assert result.exit_code == 2
    (line,) = [ln for ln in result.stderr.splitlines() if ln.startswith("awf-deploy: ")]
    assert "--params do not fit" in line
    assert cli_env.requests == []


def test_trigger_help_says_params_take_any_json_value() -> None:
    shown = " ".join(run("trigger", "--help").stdout.split())
    assert "any JSON value" in shown


# -- an address that is not Cloudflare's API ------------------------------------------------------

HTML = b"<html><body><h1>Not Found</h1></body></html>"


@pytest.fixture
def answers(monkeypatch: pytest.MonkeyPatch) -> list[httpx.Response]:
    """The CLI's client talking to a fake server that gives these answers, the last one for
    every later request."""
    import awf_deploy.cli

    queued: list[httpx.Response] = []

    def handle(request: httpx.Request) -> httpx.Response:
        return queued.pop(0) if len(queued) > 1 else queued[0]

    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", "t" * 40)
    monkeypatch.setenv("CLOUDFLARE_ACCOUNT_ID", "023e105f4ecef8ad9ca31a8372d0c353")
    monkeypatch.setitem(awf_deploy.cli._CLIENT_OPTIONS, "transport", httpx.MockTransport(handle))
    monkeypatch.setitem(awf_deploy.cli._CLIENT_OPTIONS, "sleep", lambda seconds: None)
    return queued


def error_and_hint(result: Result) -> tuple[str, str]:
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    lines = [ln for ln in result.stderr.splitlines() if "retrying in" not in ln]
    errors = [ln for ln in lines if ln.startswith("awf-deploy: ")]
    hints = [ln for ln in lines if ln.startswith("  hint: ")]
    assert len(errors) == 1, result.stderr
    assert len(hints) == 1, result.stderr
    return errors[0], hints[0]


@pytest.mark.parametrize("status", [200, 404])
def test_an_html_page_at_the_api_address_names_the_base_url(
    answers: list[httpx.Response], status: int
) -> None:
    answers.append(httpx.Response(status, content=HTML, headers={"content-type": "text/html"}))
    result = run("status")
    assert result.exit_code == 1
    _, hint = error_and_hint(result)
    assert "CLOUDFLARE_API_BASE_URL" in hint
    assert "awf-deploy status" not in hint  # the command that just failed is no way out


def test_an_html_page_from_a_base_url_the_user_set_says_it_is_set(
    answers: list[httpx.Response], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The hint said "check CLOUDFLARE_API_BASE_URL (unset, it is https://api.cloudflare.com/...)"
    # to a user who had set it: the address it names is where the requests went.
    monkeypatch.setenv("CLOUDFLARE_API_BASE_URL", "https://user:pw@proxy.corp.example:8443/cf/v4")
    answers.append(httpx.Response(404, content=HTML, headers={"content-type": "text/html"}))
    _, hint = error_and_hint(run("status"))
    assert "CLOUDFLARE_API_BASE_URL sends the requests to proxy.corp.example:8443" in hint
    assert "not set" not in hint
    assert "unset, it is" not in hint
    assert "pw" not in hint  # the address's credentials are not echoed
    monkeypatch.delenv("CLOUDFLARE_API_BASE_URL")
    _, hint = error_and_hint(run("status"))
    assert "CLOUDFLARE_API_BASE_URL is not set" in hint
    assert "proxy" in hint


def test_an_html_404_is_not_a_script_that_does_not_exist(answers: list[httpx.Response]) -> None:
    # Read as "absent", every script and workflow would be planned as new and a push
    # --dry-run would show a plan of an account it never read.
    answers.append(httpx.Response(404, content=HTML, headers={"content-type": "text/html"}))
    result = run("status", "--name", "shop")
    assert result.exit_code == 1
    assert "not deployed" not in result.stdout
    error, hint = error_and_hint(result)
    assert "script 'shop'" in error
    assert "CLOUDFLARE_API_BASE_URL" in hint


def test_a_404_of_the_account_s_workflow_list_points_at_the_account_id(
    answers: list[httpx.Response],
) -> None:
    body = {"success": False, "errors": [{"code": 10000, "message": "not found"}], "result": None}
    answers.append(httpx.Response(404, json=body))
    result = run("status")
    assert result.exit_code == 1
    _, hint = error_and_hint(result)
    assert "CLOUDFLARE_ACCOUNT_ID" in hint
    assert "awf-deploy status" not in hint


# -- a usage error names the command's own help, and its kind -------------------------------------


@pytest.mark.parametrize(
    ("args", "command"),
    [
        (["trigger", "wf", "--params"], "trigger"),
        (["instances", "wf", "--limit"], "instances"),
        (["dev", "flow.py", "--port"], "dev"),
    ],
)
def test_an_option_without_its_value_points_at_the_command_s_help(
    args: list[str], command: str
) -> None:
    result = run(*args)
    assert result.exit_code == 2
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"awf-deploy {command}: Option ")
    assert line.endswith(f"see `awf-deploy {command} --help`")


@pytest.mark.parametrize(
    "args",
    [["trigger", "wf", "--params", "{bad"], ["send-event", "wf", "i", "t", "--payload", "{"]],
)
def test_bad_json_in_an_option_is_a_usage_error_not_a_flow_error(
    args: list[str], cli_env: Any
) -> None:
    data = same_as_without_json(args)
    assert data["error"]["kind"] == "UsageError"
    assert run(*args).exit_code == 2
    assert cli_env.requests == []


# -- one failure object for both CLIs --------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["instances", "shop-order", "--limit", "0"],  # click's usage error, before the command
        ["build", "nope.py"],  # the command's own failure (FlowError)
        ["status", "shop-order", "no-such-instance"],  # an API error, with its hint and status
    ],
    ids=["click", "flow", "api"],
)
def test_a_failure_object_carries_its_exit_code_as_awf_sim_s_does(
    args: list[str], cli_env: Any
) -> None:
    # Printed by awf-sim's JsonFailureGroup for both CLIs: awf-deploy's objects gained the
    # `exit_code` awf-sim's carry, and a usage error click finds is said without its
    # `awf-deploy COMMAND: ` prefix, as every other message of awf-deploy's objects.
    result = run(*args, "--json")
    error = one_object(result)["error"]
    assert error["exit_code"] == result.exit_code != 0
    assert not error["message"].startswith("awf-deploy")


def test_awf_sim_and_awf_deploy_print_the_same_object_for_a_usage_error() -> None:
    from awf_sim.cli import app as sim_app

    deploy = one_object(run("instances", "wf", "--limit", "x", "--json"))
    sim = one_object(runner.invoke(sim_app, ["chaos", "flow.py", "--seed", "x", "--json"]))
    assert deploy.keys() == sim.keys() == {"ok", "error"}
    assert deploy["error"].keys() == sim["error"].keys() == {"kind", "message", "exit_code"}
    assert (deploy["error"]["kind"], deploy["error"]["exit_code"]) == ("UsageError", 2)
    assert (sim["error"]["kind"], sim["error"]["exit_code"]) == ("UsageError", 2)
