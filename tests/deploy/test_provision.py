"""`awf-deploy push` provisions D1 (find or create, migrations recorded as wrangler does) and
refuses, before the upload, a database it cannot use."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from awf_deploy.cli import app

pytestmark = [
    pytest.mark.usefixtures("flow_registry"),
    # the examples define the same Domain names in different files
    pytest.mark.filterwarnings("ignore:Domain .* replaces the one defined:UserWarning"),
]

runner = CliRunner()
WRITES = {"PUT", "POST", "PATCH", "DELETE"}
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
EXAMPLE_FLOWS = sorted(p.name for p in EXAMPLES.glob("*.py") if not p.name.startswith("_"))


def run(*args: str) -> Result:
    return runner.invoke(app, list(args))


def writes(cf: Any) -> list[str]:
    """Requests that change the account (D1 reads go through POST .../query too)."""
    return [
        r.operation_id
        for r in cf.requests
        if r.method in WRITES
        and not (
            r.operation_id == "cloudflare-d1-query-database"
            and r.json["sql"].lstrip().upper().startswith("SELECT")
        )
    ]


LEDGER = """
from awf_sim import Database, Domain, Workflow

DATABASE = Database(schema="CREATE TABLE entries (key TEXT PRIMARY KEY, amount REAL);")


async def record(account, args, ctx):
    await ctx.db.execute("INSERT OR IGNORE INTO entries (key, amount) VALUES (?, ?)",
                         [ctx.idempotency_key, args["amount"]])
    return {"ok": True}


ProvLedger = Domain("ProvLedger", {"record": record})


@Workflow("prov-ledger", examples=[{"id": "a", "amount": 1.0}], domains=[ProvLedger])
async def ledger(wf, params):
    return await wf.ProvLedger({"id": params["id"]}).record(amount=params["amount"])
"""


@pytest.fixture
def ledger(tmp_path: Path) -> Path:
    folder = tmp_path / "ledgerflow"
    folder.mkdir()
    path = folder / "prov_ledger.py"
    path.write_text(LEDGER.lstrip())
    return path


@pytest.mark.parametrize("example", EXAMPLE_FLOWS)
def test_every_example_pushes_to_an_empty_account_then_a_second_push_is_a_noop(
    example: str, cli_env: Any, tmp_path: Path
) -> None:
    key_file = tmp_path / "key"
    first = run(
        "push", str(EXAMPLES / example), "--yes", "--no-verify", "--key-file", str(key_file)
    )
    assert first.exit_code == 0, first.stdout + first.stderr
    script = example.removesuffix(".py").replace("_", "-")
    metadata = cli_env.scripts[script]["metadata"]
    d1 = [b for b in metadata["bindings"] if b["type"] == "d1"]
    if d1:
        assert "create database" in first.stdout
        assert "apply migration 0001_awf_schema.sql" in first.stdout
        (database,) = [u for u, db in cli_env.databases.items() if db["name"] == f"{script}-db"]
        assert d1[0]["id"] == database
        applied = cli_env.d1_rows(f"{script}-db", "SELECT name FROM d1_migrations")
        assert applied == [{"name": "0001_awf_schema.sql"}]
    assert set(cli_env.secrets[script]) == {"AWF_API_KEY"}
    assert cli_env.secrets[script]["AWF_API_KEY"] == key_file.read_text().strip()
    assert cli_env.token not in first.stdout + first.stderr

    before = len(writes(cli_env))
    second = run("push", str(EXAMPLES / example), "--yes", "--no-verify")
    assert second.exit_code == 0, second.stdout + second.stderr
    assert "Nothing to push" in second.stdout
    assert len(writes(cli_env)) == before
    assert "API key" not in second.stdout


def test_d1_is_found_by_name_and_only_new_migrations_are_applied(
    ledger: Path, cli_env: Any
) -> None:
    migrations = ledger.parent / "migrations"
    migrations.mkdir()
    (migrations / "0001_entries.sql").write_text(
        "CREATE TABLE entries (key TEXT PRIMARY KEY, amount REAL);"
    )
    first = run("push", str(ledger), "--yes", "--no-verify")
    assert first.exit_code == 0, first.stderr
    assert "+ create database 'prov-ledger-db'" in first.stdout
    assert "apply migration 0001_entries.sql" in first.stdout

    (migrations / "0002_notes.sql").write_text("ALTER TABLE entries ADD COLUMN note TEXT;")
    second = run("push", str(ledger), "--yes", "--no-verify")
    assert second.exit_code == 0, second.stderr
    assert "create database" not in second.stdout  # found, not created again
    assert "apply migration 0002_notes.sql" in second.stdout
    assert "0001_entries.sql" not in second.stdout
    assert len(cli_env.databases) == 1
    rows = cli_env.d1_rows("prov-ledger-db", "SELECT id, name, applied_at FROM d1_migrations")
    assert [r["name"] for r in rows] == ["0001_entries.sql", "0002_notes.sql"]
    assert all(r["applied_at"] for r in rows)  # wrangler's columns: id, name, applied_at
    columns = cli_env.d1_rows("prov-ledger-db", "PRAGMA table_info(entries)")
    assert [c["name"] for c in columns] == ["key", "amount", "note"]
    # the script is unchanged (same database id): only the migration was written
    assert writes(cli_env).count("worker-script-upload-worker-module") == 1


def test_an_edited_database_schema_that_never_reached_d1_is_refused_with_the_fix(
    ledger: Path, cli_env: Any
) -> None:
    assert run("push", str(ledger), "--yes", "--no-verify").exit_code == 0
    # The user adds a column and a table to DATABASE: its 0001 is applied already, so nothing
    # would create them, and the new code would fail on D1 in production.
    ledger.write_text(
        ledger.read_text().replace(
            "amount REAL);",
            "amount REAL, note TEXT); CREATE TABLE audit (at TEXT);",
        )
    )
    before = len(writes(cli_env))
    refused = run("push", str(ledger), "--yes", "--no-verify")
    assert refused.exit_code == 1
    assert "Traceback" not in refused.stdout + refused.stderr
    assert "missing there: table audit" in refused.stderr
    assert "defined differently there: table entries" in refused.stderr
    assert "migrations/0002_" in refused.stderr
    assert len(writes(cli_env)) == before

    # The fix the message names works: the schema as pushed, then the change.
    migrations = ledger.parent / "migrations"
    migrations.mkdir()
    (migrations / "0001_awf_schema.sql").write_text(
        "CREATE TABLE entries (key TEXT PRIMARY KEY, amount REAL);"
    )
    (migrations / "0002_note_and_audit.sql").write_text(
        "ALTER TABLE entries ADD COLUMN note TEXT; CREATE TABLE audit (at TEXT);"
    )
    fixed = run("push", str(ledger), "--yes", "--no-verify")
    assert fixed.exit_code == 0, fixed.stderr
    assert "apply migration 0002_note_and_audit.sql" in fixed.stdout
    again = run("push", str(ledger), "--yes", "--no-verify")
    assert again.exit_code == 0, again.stderr
    assert "Nothing to push" in again.stdout


def test_dry_run_plans_the_database_and_writes_nothing(ledger: Path, cli_env: Any) -> None:
    result = run("push", str(ledger), "--dry-run", "--no-verify")
    assert result.exit_code == 0, result.stderr
    assert "create database" in result.stdout
    assert "apply migration" in result.stdout
    assert writes(cli_env) == []


def test_given_d1_id_and_env_win_over_provisioning(
    ledger: Path, cli_env: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWF_D1_DATABASE_ID", "11111111-2222-3333-4444-555555555555")
    cli_env.add_database("mine", "11111111-2222-3333-4444-555555555555")
    result = run("push", str(ledger), "--yes", "--no-verify")
    assert result.exit_code == 0, result.stderr
    # Only read to check it exists: nothing provisioned, no migration applied.
    assert [op for op in cli_env.operations() if "d1" in op] == ["cloudflare-d1-get-database"]
    binding = next(
        b for b in cli_env.scripts["prov-ledger"]["metadata"]["bindings"] if b["type"] == "d1"
    )
    assert binding["id"] == "11111111-2222-3333-4444-555555555555"


def test_d1_create_refused_names_the_token_permission(ledger: Path, cli_env: Any) -> None:
    cli_env.queue("cloudflare-d1-create-database", cli_env.fail(403, 10000, "Authentication error"))
    result = run("push", str(ledger), "--yes", "--no-verify")
    assert result.exit_code == 1
    assert "FAILED:   create database 'prov-ledger-db'" in result.stdout
    assert "D1 Write" in result.stderr
    assert "not done: upload script 'prov-ledger'" in result.stdout
    assert cli_env.scripts == {}
    assert cli_env.token not in result.stdout + result.stderr


def test_a_database_of_that_name_set_up_by_something_else_is_refused(
    ledger: Path, cli_env: Any
) -> None:
    with cli_env.client() as client:
        database = client.create_d1_database("prov-ledger-db")
        client.query_d1(
            database.uuid,
            "CREATE TABLE d1_migrations (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT UNIQUE,"
            " applied_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP NOT NULL);\n"
            "INSERT INTO d1_migrations (name) VALUES ('0001_orders.sql');",
        )
    before = len(writes(cli_env))
    result = run("push", str(ledger), "--yes", "--no-verify")
    assert result.exit_code == 1
    assert "has migrations this flow does not define: 0001_orders.sql" in result.stderr
    assert "--d1-id" in result.stderr
    assert len(writes(cli_env)) == before


def test_a_migration_with_a_syntax_error_stops_the_push_before_the_upload(
    ledger: Path, cli_env: Any
) -> None:
    migrations = ledger.parent / "migrations"
    migrations.mkdir()
    (migrations / "0001_bad.sql").write_text("CREAT TABLE entries (key TEXT);")
    result = run("push", str(ledger), "--yes", "--no-verify")
    assert result.exit_code == 1
    assert "FAILED:   apply migration 0001_bad.sql" in result.stdout
    assert 'near "CREAT": syntax error' in result.stdout + result.stderr
    assert "[7500]" in result.stderr
    assert cli_env.scripts == {}
    # the failed batch left nothing behind, so the next push applies it again
    assert cli_env.d1_rows("prov-ledger-db", "SELECT name FROM sqlite_master") == []


def test_key_rotation_finds_the_provisioned_database(ledger: Path, cli_env: Any) -> None:
    assert run("push", str(ledger), "--yes", "--no-verify").exit_code == 0
    old = cli_env.secrets["prov-ledger"]["AWF_API_KEY"]
    rotated = run("key", str(ledger), "--rotate", "--yes", "--json")
    assert rotated.exit_code == 0, rotated.stderr
    assert cli_env.secrets["prov-ledger"]["AWF_API_KEY"] not in (old, "")
    assert len(cli_env.databases) == 1


def test_the_plan_never_shows_a_bundle_hash_other_than_the_one_uploaded(
    ledger: Path, cli_env: Any
) -> None:
    # Creating the database binds an id the plan cannot know: the bundle hash (which covers the
    # bindings) used to be printed from the bundle without it, and differed from what `status`
    # showed after the push.
    first = run("push", str(ledger), "--yes", "--no-verify", "--json")
    assert first.exit_code == 0, first.stdout + first.stderr
    data = json.loads(first.stdout)
    assert data["plan"]["bundle_sha256"] is None
    uploaded = data["report"]["bundle_sha256"]
    status = json.loads(run("status", "--name", "prov-ledger", "--json").stdout)
    assert status["script"]["bundle_sha256"] == uploaded

    # Text: the plan says the hash comes later, the push says which one it uploaded.
    cli_env.scripts.clear()
    cli_env.databases.clear()
    cli_env.workflows.clear()
    text = run("push", str(ledger), "--yes", "--no-verify")
    assert text.exit_code == 0, text.stdout + text.stderr
    assert "(its bundle hash is known once the new database is bound)" in text.stdout
    shown = re.findall(r"bundle ([0-9a-f]{12})", text.stdout)
    status = json.loads(run("status", "--name", "prov-ledger", "--json").stdout)
    assert shown == [status["script"]["bundle_sha256"][:12]]

    # The database exists now: the plan's hash is the uploaded one.
    ledger.write_text(ledger.read_text() + "\n# a change\n")
    again = run("push", str(ledger), "--yes", "--no-verify", "--json")
    assert again.exit_code == 0, again.stdout + again.stderr
    data = json.loads(again.stdout)
    assert data["plan"]["bundle_sha256"] == data["report"]["bundle_sha256"] is not None
