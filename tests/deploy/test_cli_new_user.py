"""`awf-deploy` driven as a new user drives it: names and ids that Cloudflare would refuse are
refused in words. Each test failed before its fix."""

from __future__ import annotations

from typing import Any

import pytest
from typer.testing import CliRunner, Result

from awf_deploy.cli import app

pytestmark = pytest.mark.usefixtures("flow_registry")

runner = CliRunner()


def run(*args: str) -> Result:
    return runner.invoke(app, list(args))


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
