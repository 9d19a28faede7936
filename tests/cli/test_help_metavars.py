"""Every --help of both CLIs shows readable value names and no type placeholders.

typer prints `<bool>`, `<str>` or `<int>` for an option without a metavar (and for its own
`--help`), which reads as a value to type after a flag. Walk every command of `awf-sim` and
`awf-deploy`, so an option added later without a metavar fails here.
"""

from __future__ import annotations

import re

import pytest
import typer
from typer.testing import CliRunner

from awf_deploy.cli import app as deploy_app
from awf_sim.cli import app as sim_app

runner = CliRunner()


def _invocations(app: typer.Typer) -> list[list[str]]:
    group = typer.main.get_command(app)
    names = sorted(group.commands)  # type: ignore[attr-defined]
    return [["--help"]] + [[name, "--help"] for name in names]


CASES = [("awf-sim", sim_app, args) for args in _invocations(sim_app)] + [
    ("awf-deploy", deploy_app, args) for args in _invocations(deploy_app)
]


@pytest.mark.parametrize(
    ("cli", "app", "args"), CASES, ids=[f"{c} {' '.join(a)}" for c, _, a in CASES]
)
def test_help_has_no_type_placeholders(cli: str, app: typer.Typer, args: list[str]) -> None:
    result = runner.invoke(app, args, terminal_width=200)
    assert result.exit_code == 0, result.output
    placeholders = re.findall(r"<(?:bool|str|int|float|path|text)[^>]*>", result.stdout)
    assert placeholders == [], f"{cli} {' '.join(args)}: {placeholders}\n{result.stdout}"
    # Every option line names its value or takes none: a flag shows nothing after its name.
    assert "--help " in result.stdout
