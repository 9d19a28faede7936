"""`awf-deploy`: every command against the fake account, bad input, and the token's secrecy."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

import awf_deploy._cli_deploy
import awf_deploy.cli
from awf_deploy.cli import app

pytestmark = pytest.mark.usefixtures("flow_registry")

runner = CliRunner()
WRITES = {"PUT", "POST", "PATCH", "DELETE"}
D1_ID = "6f2b8a1e-4c1d-4e0b-9a55-0d5c3b7e9f10"


def run(*args: str, input: str | None = None) -> Result:
    return runner.invoke(app, list(args), input=input)


def writes(cf: Any) -> list[str]:
    return [r.operation_id for r in cf.requests if r.method in WRITES]


@pytest.fixture
def shop(flows_dir: Path) -> str:
    return str(flows_dir / "shop.py")


# -- build -----------------------------------------------------------------------------------


def test_build_writes_the_folder(shop: str, tmp_path: Path) -> None:
    out = tmp_path / "bundle"
    result = run("build", shop, "--out", str(out), "--name", "my-shop")
    assert result.exit_code == 0, result.stderr
    assert "DeployGreetingWorkflow" in result.stdout
    assert "npx wrangler deploy" in result.stdout
    config = tomllib.loads((out / "wrangler.toml").read_text())
    assert config["name"] == "my-shop"
    assert (out / "entry.py").is_file()


def test_build_json_and_default_folder(
    shop: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = run("build", shop, "--json", "--compatibility-date", "2026-06-01")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["out"] == str(Path("build") / "shop")
    assert data["compatibility_date"] == "2026-06-01"
    assert data["crons"] == ["0 2 * * *"]
    assert "entry.py" in data["modules"]
    assert (tmp_path / "build" / "shop" / "wrangler.toml").is_file()


def test_build_warns_when_ctx_db_has_no_d1_id(flows_dir: Path, tmp_path: Path) -> None:
    result = run("build", str(flows_dir / "ledger.py"), "--out", str(tmp_path / "b"))
    assert result.exit_code == 0
    assert "warning: the flow uses ctx.db but no D1 database id" in result.stderr
    # Not a step a new user must take before `push`, which provisions D1 (its output says
    # "Deploy it with `awf-deploy push`"): the warning had sent them to wrangler first.
    assert "`awf-deploy push` creates the database ledger-db itself" in result.stderr


@pytest.mark.parametrize(
    ("flow", "message"),
    [
        ("empty.py", "defines no workflow"),
        ("badname.py", "invalid workflow name 'bad name!'"),
        ("missing.py", "no such file"),
    ],
)
@pytest.mark.parametrize("command", ["build", "push"])
def test_flows_that_cannot_be_deployed_are_bad_input(
    command: str, flow: str, message: str, flows_dir: Path, cli_env: Any
) -> None:
    result = run(command, str(flows_dir / flow), *(["--yes"] if command == "push" else []))
    assert result.exit_code == 2
    assert message in result.stderr
    assert cli_env.requests == []


# -- push ------------------------------------------------------------------------------------


def test_push_verifies_plans_and_pushes_then_a_second_push_writes_nothing(
    shop: str, cli_env: Any
) -> None:
    first = run("push", shop, "--yes")
    assert first.exit_code == 0, first.stderr
    assert "chaos on deploy-greeting, deploy-nightly" in first.stderr
    assert "+ script" in first.stdout
    assert "Pushed: upload script 'shop'" in first.stdout
    assert len(writes(cli_env)) == 4

    second = run("push", shop, "--yes")
    assert second.exit_code == 0, second.stderr
    assert "Nothing to push" in second.stdout
    assert len(writes(cli_env)) == 4


def test_dry_run_sends_no_write(shop: str, cli_env: Any) -> None:
    result = run("push", shop, "--dry-run")
    assert result.exit_code == 0, result.stderr
    assert "Dry run: nothing was sent." in result.stdout
    assert cli_env.requests  # it did read the account
    assert writes(cli_env) == []


def test_push_json(shop: str, cli_env: Any) -> None:
    result = run("push", shop, "--yes", "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["script"] == "shop"
    assert data["violations"] == []
    assert data["plan"]["has_changes"] is True
    assert data["report"]["ok"] is True
    assert len(data["report"]["done"]) == 4


def test_push_refuses_on_violations_and_prints_them(
    flows_dir: Path, cli_env: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = str(flows_dir / "broken.py")
    monkeypatch.setenv("AWF_D1_DATABASE_ID", D1_ID)  # the flow uses ctx.db
    cli_env.add_database("counters", D1_ID)
    result = run("push", broken, "--yes")
    assert result.exit_code == 1
    assert "idempotent-effects" in result.stdout
    assert "replay: awf-sim chaos" in result.stdout
    assert "refusing to push" in result.stderr
    assert cli_env.requests == []

    as_json = run("push", broken, "--yes", "--json")
    assert as_json.exit_code == 1
    assert json.loads(as_json.stdout)["violations"][0]["workflow"] == "deploy-counter"

    forced = run("push", broken, "--yes", "--no-verify")
    assert forced.exit_code == 0, forced.stderr
    assert "--no-verify" in forced.stderr
    assert "worker-script-upload-worker-module" in writes(cli_env)


def test_push_cpu_budget_reaches_the_chaos_check_and_its_replay_line(
    flows_dir: Path, cli_env: Any
) -> None:
    spin = str(flows_dir / "spin.py")
    result = run("push", spin, "--yes", "--cpu-ms", "50")
    assert result.exit_code == 1
    assert "baseline-outcome" in result.stdout
    assert "more than 50 ms of CPU time" in result.stdout
    # The token was found under that budget, so the command that replays it carries it.
    (line,) = [ln.strip() for ln in result.stdout.splitlines() if "replay: awf-sim" in ln]
    assert line.endswith("--cpu-ms 50")
    assert cli_env.requests == []
    assert writes(cli_env) == []

    bad = run("push", spin, "--yes", "--cpu-ms", "0")
    assert bad.exit_code == 2
    assert "--cpu-ms" in bad.stderr


def test_push_asks_for_confirmation_on_a_terminal(
    shop: str, cli_env: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(awf_deploy._cli_deploy, "_interactive", lambda: True)
    declined = run("push", shop, input="n\n")
    assert declined.exit_code == 1
    assert "Push these changes?" in declined.stderr
    assert writes(cli_env) == []
    accepted = run("push", shop, input="y\n")
    assert accepted.exit_code == 0, accepted.stderr
    assert len(writes(cli_env)) == 4


def test_push_without_a_terminal_refuses_without_yes(shop: str, cli_env: Any) -> None:
    result = run("push", shop)  # CliRunner's stdin is not a TTY
    assert result.exit_code == 2
    assert "Push these changes?" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last == "awf-deploy: refusing to push: not a terminal, nobody to confirm; pass --yes"
    assert writes(cli_env) == []
    assert run("push", shop, "--yes").exit_code == 0


def test_a_push_that_fails_halfway_reports_and_the_next_completes(
    shop: str, cli_env: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(awf_deploy.cli._CLIENT_OPTIONS, "max_retries", 2)
    failure = cli_env.fail(500, 10013, "workflow service unavailable")
    cli_env.queue("wor-create-or-modify-workflow", failure, failure, failure)
    first = run("push", shop, "--yes")
    assert first.exit_code == 1
    assert "Push stopped halfway." in first.stdout
    assert "  done:     upload script 'shop'" in first.stdout
    assert "  done:     set cron triggers of 'shop' to '0 2 * * *'" in first.stdout
    assert "  FAILED:   create workflow 'deploy-greeting'" in first.stdout
    assert "HTTP 500" in first.stdout
    assert "  not done: create workflow 'deploy-nightly'" in first.stdout
    assert "Run the same push again" in first.stdout

    second = run("push", shop, "--yes")
    assert second.exit_code == 0, second.stderr
    assert "= script" in second.stdout
    assert "Pushed: create workflow 'deploy-greeting'; create workflow 'deploy-nightly'." in (
        second.stdout
    )
    assert set(cli_env.workflows) == {"deploy-greeting", "deploy-nightly"}


def test_push_of_a_ctx_db_flow_with_a_d1_id_binds_it(flows_dir: Path, cli_env: Any) -> None:
    ledger = str(flows_dir / "ledger.py")
    cli_env.add_database("my-ledger", D1_ID)  # made with `wrangler d1 create`
    given = run("push", ledger, "--yes", "--d1-id", D1_ID)
    assert given.exit_code == 0, given.stderr
    assert {"type": "d1", "name": "DB", "id": D1_ID} in (
        cli_env.scripts["ledger"]["metadata"]["bindings"]
    )
    assert list(cli_env.databases) == [D1_ID]  # an id given wins over provisioning


# -- credentials and API errors ----------------------------------------------------------------


@pytest.mark.parametrize("variable", ["CLOUDFLARE_API_TOKEN", "CLOUDFLARE_ACCOUNT_ID"])
def test_missing_credentials_name_the_variable_to_set(
    variable: str, shop: str, cli_env: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(variable)
    for args in (["push", shop, "--yes"], ["status"], ["trigger", "deploy-greeting"]):
        result = run(*args)
        assert result.exit_code == 2, args
        assert f"{variable} is not set" in result.stderr
    assert cli_env.requests == []


def test_401_says_the_token_was_rejected(shop: str, cli_env: Any) -> None:
    cli_env.queue("worker-script-download-worker", cli_env.fail(401, 10000, "Authentication error"))
    result = run("push", shop, "--yes")
    assert result.exit_code == 1
    assert "rejected the API token" in result.stderr
    assert "CLOUDFLARE_API_TOKEN" in result.stderr


def test_403_names_the_missing_permission(shop: str, cli_env: Any) -> None:
    cli_env.queue(
        "worker-script-upload-worker-module", cli_env.fail(403, 10000, "Authentication error")
    )
    result = run("push", shop, "--yes")
    assert result.exit_code == 1
    assert "lacks the 'Workers Scripts Write' permission" in result.stderr
    assert "FAILED:   upload script 'shop'" in result.stdout


def test_a_rejected_upload_prints_cloudflares_code_and_a_hint(shop: str, cli_env: Any) -> None:
    cli_env.queue(
        "worker-script-upload-worker-module",
        cli_env.fail(400, 10021, "Uncaught ModuleNotFoundError: No module named 'pydantic'"),
    )
    result = run("push", shop, "--yes")
    assert result.exit_code == 1
    assert "[10021] Uncaught ModuleNotFoundError" in result.stderr
    assert "compatibility_flags include python_workers" in result.stderr
    assert "not done: create workflow 'deploy-greeting'" in result.stdout


def test_the_token_never_appears_in_any_output(
    shop: str, cli_env: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = cli_env.token
    monkeypatch.setitem(awf_deploy.cli._CLIENT_OPTIONS, "max_retries", 0)
    outputs: list[str] = []
    cli_env.queue(
        "worker-script-upload-worker-module",
        cli_env.fail(400, 10021, f"bad script; token {token} was used"),  # echoed back
    )
    cli_env.queue("wor-create-or-modify-workflow", cli_env.fail(500, 10013, f"oops {token}"))
    for args in (
        ["push", shop, "--yes"],
        ["push", shop, "--yes"],
        ["push", shop, "--yes", "--json"],
        ["push", shop, "--dry-run", "--json"],
        ["status", "--name", "shop"],
        ["trigger", "nope", "--params", "{}"],
    ):
        result = run(*args)
        outputs += [result.stdout, result.stderr]
    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", "wrong-" + token)
    result = run("push", shop, "--yes")
    assert result.exit_code == 1
    outputs += [result.stdout, result.stderr]
    everything = "\n".join(outputs)
    for status in ("HTTP 400", "HTTP 401", "HTTP 500"):
        assert status in everything
    assert token not in everything


# -- status, trigger, send-event, instances -------------------------------------------------------


@pytest.fixture
def deployed(shop: str, cli_env: Any) -> Any:
    assert run("push", shop, "--yes").exit_code == 0
    return cli_env


def test_status(deployed: Any) -> None:
    result = run("status", "--name", "shop")
    assert result.exit_code == 0, result.stderr
    assert "script shop: deployed, bundle" in result.stdout
    assert "cron triggers: 0 2 * * *" in result.stdout
    assert "workflow deploy-greeting: DeployGreetingWorkflow of 'shop'" in result.stdout
    data = json.loads(run("status", "--name", "shop", "--json").stdout)
    assert data["script"]["deployed"] is True
    assert data["script"]["crons"] == ["0 2 * * *"]
    assert {w["name"] for w in data["workflows"]} == {"deploy-greeting", "deploy-nightly"}
    everything = json.loads(run("status", "--json").stdout)
    assert "script" not in everything
    assert len(everything["workflows"]) == 2
    missing = run("status", "--name", "nothing-here")
    assert missing.exit_code == 1
    assert "script nothing-here: not deployed" in missing.stdout


def test_trigger_send_event_and_instances(deployed: Any) -> None:
    started = run("trigger", "deploy-greeting", "--params", '{"name": "bo"}', "--id", "g-1")
    assert started.exit_code == 0, started.stderr
    assert "started instance g-1 of deploy-greeting (queued)" in started.stdout
    assert deployed.instances["deploy-greeting"]["g-1"]["params"] == {"name": "bo"}

    as_json = json.loads(run("trigger", "deploy-greeting", "--json").stdout)
    assert as_json["workflow"] == "deploy-greeting"
    assert as_json["status"] == "queued"

    sent = run("send-event", "deploy-greeting", "g-1", "approval", "--payload", '{"ok": true}')
    assert sent.exit_code == 0, sent.stderr
    assert deployed.events == [("deploy-greeting", "g-1", "approval", {"ok": True})]

    listed = run("instances", "deploy-greeting", "--status", "queued")
    assert listed.exit_code == 0, listed.stderr
    assert "g-1" in listed.stdout
    data = json.loads(run("instances", "deploy-greeting", "--json").stdout)
    assert len(data["instances"]) == 2


def test_404_on_a_workflow_or_an_instance(deployed: Any) -> None:
    for args in (
        ["trigger", "no-such-workflow"],
        ["instances", "no-such-workflow"],
        ["send-event", "deploy-greeting", "no-such-instance", "approval"],
    ):
        result = run(*args)
        assert result.exit_code == 1, args
        assert "HTTP 404" in result.stderr
        assert "not_found" in result.stderr
        assert "awf-deploy status" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["trigger", "deploy-greeting", "--params", "{oops"], "--params is not valid JSON"),
        (["send-event", "w", "i", "t", "--payload", "[1"], "--payload is not valid JSON"),
        (["send-event", "w", "i", "t", "--payload", "[1, 2]"], "must be a JSON object"),
        (["instances", "w", "--status", "sleeping"], "--status must be one of"),
        (["trigger", "bad name!"], "workflow name 'bad name!' must match"),
        (["trigger", "deploy-greeting", "--id", "a b"], "instance id 'a b' must match"),
        (["status", "--name", "Not_A_Script!"], "script name"),
    ],
)
def test_bad_input_is_exit_2_and_sends_nothing(args: list[str], message: str, cli_env: Any) -> None:
    result = run(*args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert cli_env.requests == []


def test_push_lists_one_bug_once_with_its_consequences_under_it(
    cli_env: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # examples/nondeterministic.py: datetime.now() outside a step makes Coupons.issue run
    # again under a new name; the checkpoint-once and idempotent-effects failures that follow
    # are that bug's consequences, as `awf-sim chaos` reports them.
    monkeypatch.setenv("AWF_D1_DATABASE_ID", D1_ID)
    result = run("push", "examples/nondeterministic.py", "--yes")
    assert result.exit_code == 1, result.stderr
    assert "Chaos found 2 violation(s):" in result.stdout
    lines = result.stdout.splitlines()
    first = next(i for i, line in enumerate(lines) if "determinism" in line)
    under = [line.strip() for line in lines[first + 1 : first + 3]]
    assert sorted(line.split(":")[0] for line in under) == [
        "also checkpoint-once",
        "also idempotent-effects",
    ]
    data = json.loads(run("push", "examples/nondeterministic.py", "--yes", "--json").stdout)
    first_json = data["violations"][0]
    assert first_json["invariant"] == "determinism"
    assert {r["invariant"] for r in first_json["related"]} == {
        "checkpoint-once",
        "idempotent-effects",
    }
    assert cli_env.requests == []
