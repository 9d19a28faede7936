"""A flow file's DATABASE, and any db= a Simulator or World is given, is a Database spec or an
open handle. A schema string (what a D1 user writes first) used to pass through as `ctx.db`:
every handler's `ctx.db.execute` failed attempt after attempt with an AttributeError, and
`awf-sim chaos` ended in a traceback of its own (`'str' object has no attribute 'digest'`)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from awf_sim import Database, DefinitionError, Simulator
from awf_sim.cli import app
from awf_sim.engine import World

_FLOW = """
from awf_sim import Domain, Workflow

async def ship(order, args, ctx):
    await ctx.db.execute("INSERT OR IGNORE INTO shipments(order_id) VALUES (?)", [order["id"]])
    return {{"ok": True}}

Shipping = Domain("Shipping", {{"ship": ship}})
DATABASE = {database}

@Workflow("ship-it", examples=[{{"id": "o1"}}])
async def ship_it(wf, order):
    return await wf.Shipping(order).ship()
"""


def _refused(flow: Path, text: str, command: str) -> str:
    """The one line `awf-sim <command>` refuses the flow file with (exit 2, nothing on stdout)."""
    flow.write_text(text, encoding="utf-8")
    result = CliRunner().invoke(app, [command, str(flow)])
    assert result.exit_code == 2
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    return line


@pytest.mark.parametrize("command", ["run", "chaos"])
@pytest.mark.parametrize(
    ("database", "hint"),
    [
        ('"CREATE TABLE shipments(order_id TEXT);"', "DATABASE = Database(schema=...)"),
        ('{"shipments": []}', "DATABASE = mock_database({...})"),
        ("42", "got int"),
    ],
)
def test_a_database_that_is_not_one_is_one_line_exit_2(
    tmp_path: Path, command: str, database: str, hint: str
) -> None:
    line = _refused(tmp_path / "flow_db.py", _FLOW.format(database=database), command)
    assert "flow_db.py: DATABASE must be a Database" in line
    assert hint in line


def test_a_schema_wrapped_in_database_runs(tmp_path: Path) -> None:
    flow = tmp_path / "flow_db.py"
    flow.write_text(
        _FLOW.format(
            database='Database(schema="CREATE TABLE shipments(order_id TEXT PRIMARY KEY);")'
        ).replace(
            "from awf_sim import Domain, Workflow", "from awf_sim import Database, Domain, Workflow"
        ),
        encoding="utf-8",
    )
    result = CliRunner().invoke(app, ["chaos", str(flow), "--runs", "20"])
    assert result.exit_code == 0, result.stderr


@pytest.mark.parametrize("make", [lambda db: Simulator(db=db), lambda db: World(db=db)])
def test_simulator_and_world_refuse_a_schema_string_at_once(make: object) -> None:
    with pytest.raises(DefinitionError, match=r"db must be a Database .* got str; for a schema"):
        make("CREATE TABLE t(a)")  # type: ignore[operator]
    assert make(Database(schema="CREATE TABLE t(a)")) is not None  # type: ignore[operator]


_HTTP_FLOW = """
import httpx
from awf_sim import Domain, Workflow

async def charge(order, args, ctx):
    response = await ctx.http.post("https://pay.example/charge", json={{"amount": 5}})
    return response.json()

Payments = Domain("Payments", {{"charge": charge}})
HTTP = {http}

@Workflow("pay", examples=[{{"id": "o1"}}])
async def pay(wf, order):
    return await wf.Payments(order).charge()
"""


@pytest.mark.parametrize("command", ["run", "chaos"])
@pytest.mark.parametrize(
    ("http", "said"),
    [
        ('{"https://pay.example/charge": {"id": "ch_1"}}', "HTTP: cannot use dict as a mock"),
        ("httpx.AsyncHTTPTransport()", "HTTP: AsyncHTTPTransport reaches the real network"),
    ],
)
def test_an_http_mock_that_is_not_one_is_one_line_exit_2(
    tmp_path: Path, command: str, http: str, said: str
) -> None:
    # It used to fail at the first request of every attempt, retried with backoff, and the
    # instance errored minutes of virtual time later.
    line = _refused(tmp_path / "flow_http.py", _HTTP_FLOW.format(http=http), command)
    assert f"flow_http.py: {said}" in line


def test_a_domain_named_http_is_not_taken_for_the_mock(tmp_path: Path) -> None:
    flow = tmp_path / "flow_http.py"
    text = _HTTP_FLOW.format(http='Domain("HTTP", {"noop": charge})')
    flow.write_text(text.replace("await wf.Payments(order).charge()", "1"), "utf-8")
    result = CliRunner().invoke(app, ["run", str(flow)])
    assert result.exit_code == 0, result.stderr


def test_simulator_and_world_refuse_a_dict_as_http_at_once() -> None:
    for make in (lambda: Simulator(http={"u": 1}), lambda: World(http={"u": 1})):
        with pytest.raises(DefinitionError, match=r": http: cannot use dict as a mock; give"):
            make()
