"""Flow files whose workflows are declared wrongly in shape: one line, exit 2, before running.

A dict passed as `examples=` ran its keys as inputs (the string "a"), a string its characters,
an int raised a bare TypeError; two workflows with one name in a file ran one of them and
dropped the other without a word, though Cloudflare binds workflows by name."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from awf_sim import Workflow
from awf_sim.cli import app
from awf_sim.errors import DefinitionError


def _run(tmp_path: Path, text: str, command: str = "run") -> tuple[int, str, str]:
    flow = tmp_path / "shape.py"
    flow.write_text(text, encoding="utf-8")
    result = CliRunner().invoke(app, [command, str(flow)])
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize(
    ("examples", "shown"),
    [('{"order": 1}', "got dict {'order': 1}"), ('"o-1"', "got str 'o-1'"), ("7", "got int 7")],
)
@pytest.mark.parametrize("command", ["run", "chaos"])
def test_examples_that_are_not_a_list_are_refused(
    tmp_path: Path, examples: str, shown: str, command: str
) -> None:
    code, out, err = _run(
        tmp_path,
        "from awf_sim import Workflow\n\n\n"
        f'@Workflow("shape-examples", examples={examples})\n'
        "async def shape(wf, params):\n"
        "    return params\n",
        command,
    )
    assert code == 2
    assert out == ""
    (line,) = err.splitlines()
    assert "shape.py:4" in line
    assert "examples must be a list of inputs" in line
    assert shown in line
    assert "examples=[...]" in line


def test_a_list_or_tuple_of_examples_is_kept() -> None:
    assert Workflow("shape-list", examples=[{"a": 1}]).examples == [{"a": 1}]
    assert Workflow("shape-tuple", examples=({"a": 1}, {"a": 2})).examples == [{"a": 1}, {"a": 2}]
    with pytest.raises(DefinitionError, match="examples must be a list"):
        Workflow("shape-dict", examples={"a": 1})  # type: ignore[arg-type]


def test_two_workflows_with_one_name_are_refused(tmp_path: Path) -> None:
    code, out, err = _run(
        tmp_path,
        "from awf_sim import Workflow\n\n\n"
        '@Workflow("twice", examples=[{}])\n'
        "async def first(wf, params):\n"
        "    return 1\n\n\n"
        '@Workflow("twice", examples=[{}])\n'
        "async def second(wf, params):\n"
        "    return 2\n",
    )
    assert code == 2
    assert out == ""
    (line,) = err.splitlines()
    assert "defines two workflows named 'twice'" in line
    assert "first" in line
    assert "second" in line


def test_one_workflow_under_two_module_names_is_one_workflow(tmp_path: Path) -> None:
    code, out, _err = _run(
        tmp_path,
        "from awf_sim import Workflow\n\n\n"
        '@Workflow("alias", examples=[{}])\n'
        "async def alias(wf, params):\n"
        "    return 1\n\n\n"
        "ALSO = alias\n",
    )
    assert code == 0
    assert "complete" in out


SET_EXAMPLE = (
    "from awf_sim import Workflow\n\n\n"
    '@Workflow("shape-json", examples=[{"a": 1}, {"a": {1, 2}}])\n'
    "async def shape(wf, params):\n"
    "    return 1\n"
)


@pytest.mark.parametrize(
    ("command", "example"),
    [("chaos", []), ("chaos", ["--example", "2"]), ("run", [])],
)
def test_an_example_that_is_not_json_names_its_number_and_workflow(
    tmp_path: Path, command: str, example: list[str]
) -> None:
    flow = tmp_path / "shape.py"
    text = SET_EXAMPLE if command == "chaos" else SET_EXAMPLE.replace('{"a": 1}, ', "")
    flow.write_text(text, encoding="utf-8")
    result = CliRunner().invoke(app, [command, str(flow), *example])
    assert result.exit_code == 2
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    number = 1 if command == "run" else 2
    assert f"shape.py:4: example {number} of workflow 'shape-json' is not a valid input" in line
    assert "params.a is not JSON (a set)" in line


def test_a_good_example_is_checked_alone_when_chosen(tmp_path: Path) -> None:
    # The other-process replay of example 1 must not trip over the bad example 2.
    flow = tmp_path / "shape.py"
    flow.write_text(SET_EXAMPLE, encoding="utf-8")
    result = CliRunner().invoke(app, ["chaos", str(flow), "--example", "1"])
    assert result.exit_code == 0, result.stdout
    assert "no invariant broken" in result.stdout


@pytest.mark.parametrize(
    ("event", "says"),
    [
        (
            '{"type": "go", "payload": {"tags": {"a"}}}',
            "workflow 'shape-events': events[0].payload.tags is not JSON (a set)",
        ),
        (
            '{"type": "go", "after": "soon"}',
            "workflow 'shape-events': invalid duration 'soon'",
        ),
    ],
)
def test_a_declared_event_that_cannot_be_sent_names_the_workflow_and_line(
    tmp_path: Path, event: str, says: str
) -> None:
    # It used to fail only when a run sent it: "SerializationError: event payload.tags ...",
    # with no workflow, no event and no line.
    code, out, err = _run(
        tmp_path,
        "from awf_sim import Workflow\n\n\n"
        f'@Workflow("shape-events", examples=[{{}}], events=[{event}])\n'
        "async def shape(wf, params):\n"
        '    return await wf.wait_for("w", type="go")\n',
    )
    assert code == 2
    assert out == ""
    (line,) = err.splitlines()
    assert "shape.py:4: importing it failed" in line
    assert says in line


def test_an_example_named_twice_is_checked_once(tmp_path: Path) -> None:
    flow = tmp_path / "shape.py"
    flow.write_text(SET_EXAMPLE.replace(', {"a": {1, 2}}', ', {"a": 2}'), encoding="utf-8")
    result = CliRunner().invoke(
        app, ["chaos", str(flow), "--example", "2", "--example", "1", "--example", "2"]
    )
    assert result.exit_code == 0, result.stdout
    assert (
        "inputs checked (2): shape-json (example 2 of 2), shape-json (example 1 of 2)"
        in " ".join(result.stdout.split())
    )


@pytest.mark.parametrize(
    ("events", "shown", "hint"),
    [
        ("{'approval': {'ok': True}}", "got dict {'approval': {'ok': True}}", ""),
        ("{'type': 'approval'}", "got dict {'type': 'approval'}", "events=[{...}]"),
        ("'approval'", "got str 'approval'", ""),
    ],
)
def test_events_that_are_not_a_list_are_refused(
    tmp_path: Path, events: str, shown: str, hint: str
) -> None:
    # A dict was read key by key ("events[0] must be a dict": its first key), a string
    # character by character.
    code, out, err = _run(
        tmp_path,
        "from awf_sim import Workflow\n\n\n"
        f'@Workflow("shape-events", events={events})\n'
        "async def shape(wf, params):\n"
        "    return params\n",
    )
    assert code == 2
    assert out == ""
    (line,) = err.splitlines()
    assert "events must be a list of events" in line
    assert shown in line
    assert hint in line
