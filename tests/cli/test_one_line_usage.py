"""awf-sim's usage errors are one line on stderr naming the problem and the help to read, exit
2, as awf-deploy's (the shared `awf_sim.cli.JsonFailureGroup`): scripts and CI logs read the
first line, not click's banner and boxed error."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from awf_sim.cli import app

ORDER = str(Path(__file__).resolve().parents[2] / "examples" / "order_processing.py")


@pytest.mark.parametrize(
    ("args", "says", "where"),
    [
        (["chaos", ORDER, "--seed", "abc"], "Invalid value for '--seed'", "awf-sim chaos"),
        (["chaos", ORDER, "--runs", "many"], "'--runs'", "awf-sim chaos"),
        (["run", ORDER, "--nope"], "No such option: --nope", "awf-sim run"),
        (["run"], "Missing argument 'FLOW.py'", "awf-sim run"),
        (["no-such-command"], "No such command 'no-such-command'", "awf-sim"),
        (["--bogus"], "No such option: --bogus", "awf-sim"),
    ],
)
def test_a_bad_flag_is_one_line_naming_it_and_exit_2(
    args: list[str], says: str, where: str
) -> None:
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"{where}: ")
    assert says in lines[0]
    assert lines[0].endswith(f"see `{where} --help`")
    assert "╭" not in result.stderr
    assert result.stdout == ""


def test_help_and_no_arguments_still_show_the_help() -> None:
    assert "Usage" in CliRunner().invoke(app, ["--help"]).stdout
    bare = CliRunner().invoke(app, [])
    assert bare.exit_code == 2
    assert "Usage" in bare.stdout + bare.stderr
