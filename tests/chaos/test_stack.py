"""Chaos findings say where (issue 15 point 4): a violation whose run errored carries the
user's traceback (file:line and code) in the report and in --json's `error.stack`."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
from typer.testing import CliRunner

from awf_sim.chaos import CHAOS_JSON_SCHEMA
from awf_sim.cli import app

FLOW = """
from awf_sim import Database, Domain, Workflow

DATABASE = Database(schema="CREATE TABLE sent (id INTEGER PRIMARY KEY, k TEXT);")


async def send(to, args, ctx):
    await ctx.db.execute("INSERT INTO sent (k) VALUES (?)", [to])
    rows = await ctx.db.query("SELECT * FROM sent")
    if len(rows) > 1:  # a second run of the handler trips over the first one's row
        return {"vendor": {}["vendor"]}
    return {"ok": True}


Mail = Domain("Mail", {"send": {"handler": send, "retries": {"limit": 1, "delay": 0}}})


@Workflow("mailer", examples=[{"to": "a"}])
async def mailer(wf, p):
    return await wf.Mail(p["to"]).send()
"""


def test_a_violation_that_errored_shows_the_users_traceback(tmp_path: Path) -> None:
    flow = tmp_path / "mailer.py"
    flow.write_text(FLOW.lstrip())
    runner = CliRunner()
    result = runner.invoke(app, ["chaos", str(flow), "--runs", "5", "--json"])
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    jsonschema.validate(data, CHAOS_JSON_SCHEMA)
    errors = [v["error"] for v in data["workflows"][0]["violations"] if v["error"]]
    assert errors
    for error in errors:
        assert (error["name"], error["message"]) == ("KeyError", "'vendor'")
        assert f'File "{flow}", line 10, in send' in error["stack"]
        assert '{}["vendor"]' in error["stack"]
        assert f'File "{flow}", line 19, in mailer' in error["stack"]
    text = runner.invoke(app, ["chaos", str(flow), "--runs", "5"]).stdout
    assert "line 10, in send" in text
