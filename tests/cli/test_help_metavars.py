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


@pytest.mark.parametrize(
    ("cli", "app", "args"), CASES, ids=[f"{c} {' '.join(a)}" for c, _, a in CASES]
)
def test_a_help_paragraph_flows_as_one_text(cli: str, app: typer.Typer, args: list[str]) -> None:
    # A docstring's line breaks are where its source wraps, not where a terminal does: kept,
    # they end lines mid-sentence once the terminal wraps again. On a wide terminal, each
    # paragraph of the command's description is one line.
    group = typer.main.get_command(app)
    command = group.commands[args[0]] if len(args) > 1 else group  # type: ignore[attr-defined]
    result = runner.invoke(app, args, env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    lines = [" ".join(line.split()) for line in result.stdout.splitlines()]
    for paragraph in (command.help or "").split("\n\n"):
        flowing = " ".join(paragraph.split())
        assert flowing in lines, f"{cli} {' '.join(args)}: {flowing!r} is not one line"


@pytest.mark.parametrize(
    ("cli", "app", "args"), CASES, ids=[f"{c} {' '.join(a)}" for c, _, a in CASES]
)
def test_dash_h_is_help_too(cli: str, app: typer.Typer, args: list[str]) -> None:
    # -h as most command-line tools take it: the same page as --help, on every command.
    short = runner.invoke(app, [*args[:-1], "-h"], terminal_width=200)
    assert short.exit_code == 0, short.output
    assert short.stdout == runner.invoke(app, args, terminal_width=200).stdout
