"""What `push` sets up besides the script: the D1 database, its migrations, the API key.

D1, the way wrangler 4 does it: when the flow uses `ctx.db` and no id is given, the database
`<script>-db` is found by name on the account or created, and the flow's schema is applied as
numbered migrations through D1's query API. Applied migrations are recorded in the table
`d1_migrations` (wrangler's own table and columns), so `npx wrangler d1 migrations list` agrees
and a second push applies only new ones. The migrations are the `NNNN_name.sql` files of a
`migrations/` folder next to the flow file when there is one, else the flow's `DATABASE` schema
as `0001_awf_schema.sql` (the file `awf-deploy build` writes).
"""

from __future__ import annotations

import re
import secrets
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from awf_sim.flow import FlowFile

from ._bundle import SCHEMA_FILE
from .cloudflare import CloudflareClient, NotFoundError, RequestRejected
from .errors import AwfDeployError

__all__ = [
    "D1Plan",
    "Migration",
    "ProvisionError",
    "apply_migration",
    "database_name_for",
    "flow_migrations",
    "new_api_key",
    "plan_d1",
]

MIGRATIONS_TABLE = "d1_migrations"
# wrangler's table, column for column (wrangler/src/d1/migrations/helpers.ts).
_CREATE_TABLE = (
    f"CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE}(\n"
    "    id         INTEGER PRIMARY KEY AUTOINCREMENT,\n"
    "    name       TEXT UNIQUE,\n"
    "    applied_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP NOT NULL\n"
    ");"
)
_MIGRATION_FILE = re.compile(r"(\d{4})_[A-Za-z0-9_\-]+\.sql")


class ProvisionError(AwfDeployError):
    """The account's database cannot be used as it is (exit 1 at the CLI, before any write)."""


@dataclass(frozen=True)
class Migration:
    name: str  # 0001_awf_schema.sql
    sql: str


@dataclass
class D1Plan:
    """What the D1 part of a push does: `create` the database `name` (else use `database_id`)
    and apply `pending` migrations; `applied` are those the database already has."""

    name: str
    database_id: str | None
    create: bool
    pending: list[Migration] = field(default_factory=list)
    applied: list[str] = field(default_factory=list)


def database_name_for(script: str) -> str:
    """`order-processing` -> `order-processing-db` (what the old hint told users to create)."""
    return f"{script}-db"


def flow_migrations(flow: FlowFile) -> list[Migration]:
    """The flow's migrations, in order (see the module doc)."""
    folder = Path(flow.path).resolve().parent / "migrations"
    if folder.is_dir():
        files = sorted(p for p in folder.iterdir() if _MIGRATION_FILE.fullmatch(p.name))
        if files:
            return [Migration(p.name, p.read_text(encoding="utf-8")) for p in files]
    schema = (getattr(flow.database, "schema", "") or "").strip()
    if not schema:
        return []
    return [Migration(SCHEMA_FILE.rsplit("/", 1)[-1], schema)]


def _applied(client: CloudflareClient, database_id: str) -> list[str]:
    found = client.query_d1(
        database_id,
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name = ?",
        [MIGRATIONS_TABLE],
    )
    if not found or not found[0].results:
        return []
    rows = client.query_d1(database_id, f"SELECT name FROM {MIGRATIONS_TABLE} ORDER BY id")
    return [str(row.get("name")) for row in (rows[0].results if rows else [])]


def plan_d1(client: CloudflareClient, name: str, migrations: list[Migration]) -> D1Plan:
    """Read the account (GET and read-only queries) and say what the push must do."""
    matches = [db for db in client.list_d1_databases(name) if db.name == name]
    if not matches:
        return D1Plan(name, None, True, list(migrations), [])
    database = matches[0]
    try:
        applied = _applied(client, database.uuid)
    except (NotFoundError, RequestRejected) as exc:
        raise ProvisionError(
            f"D1 database {name!r} ({database.uuid}) exists but cannot be read: "
            f"{str(exc).splitlines()[0]}; pass another database with --d1-id, or another "
            "--name"
        ) from None
    ours = [m.name for m in migrations]
    foreign = [n for n in applied if n not in ours]
    if foreign:
        raise ProvisionError(
            f"D1 database {name!r} ({database.uuid}) has migrations this flow does not define: "
            f"{', '.join(foreign)}; it was set up by something else (or the flow's migrations "
            "were renamed). Pass the database to use with --d1-id, or push under another --name"
        )
    _check_applied_unchanged(
        client, name, database.uuid, [m for m in migrations if m.name in applied]
    )
    pending = [m for m in migrations if m.name not in applied]
    return D1Plan(name, database.uuid, False, pending, applied)


_SCHEMA_QUERY = (
    "SELECT type, name, sql FROM sqlite_master "
    "WHERE sql IS NOT NULL AND substr(name, 1, 7) != 'sqlite_' AND substr(name, 1, 4) != '_cf_'"
)


def _schema_of(rows: list[dict[str, object]]) -> dict[str, str]:
    return {f"{r['type']} {r['name']}": " ".join(str(r["sql"]).split()) for r in rows}


def _expected_schema(migrations: list[Migration]) -> dict[str, str] | None:
    """What D1 must hold after these migrations, as SQLite itself records it; None when
    SQLite here cannot run them (then nothing is claimed)."""
    db = sqlite3.connect(":memory:")
    try:
        for migration in migrations:
            db.executescript(migration.sql)
        db.row_factory = sqlite3.Row
        return _schema_of([dict(row) for row in db.execute(_SCHEMA_QUERY)])
    except sqlite3.Error:
        return None
    finally:
        db.close()


def _check_applied_unchanged(
    client: CloudflareClient, name: str, database_id: str, applied: list[Migration]
) -> None:
    """A migration is applied once: one edited after that (the flow's DATABASE schema, most
    often) never reaches D1, and the new code would meet the old tables in production. Compare
    what the applied migrations create now with what the database holds (a read-only query)."""
    expected = _expected_schema(applied)
    if not expected:
        return
    rows = client.query_d1(database_id, _SCHEMA_QUERY)
    live = _schema_of(rows[0].results if rows else [])
    missing = [key for key in expected if key not in live]
    changed = [key for key in expected if key in live and live[key] != expected[key]]
    if not missing and not changed:
        return
    what = "; ".join(
        part
        for part in (
            f"missing there: {', '.join(missing)}" if missing else "",
            f"defined differently there: {', '.join(changed)}" if changed else "",
        )
        if part
    )
    names = ", ".join(m.name for m in applied)
    from_schema = [m.name for m in applied] == [SCHEMA_FILE.rsplit("/", 1)[-1]]
    fix = (
        "put the schema as it was first pushed in migrations/0001_awf_schema.sql next to the "
        "flow and the change in migrations/0002_<what>.sql (CREATE TABLE, ALTER TABLE ...)"
        if from_schema
        else "undo the edit, and put the change in a new migrations/NNNN_<what>.sql"
    )
    raise ProvisionError(
        f"D1 database {name!r} ({database_id}) does not hold what its applied migrations "
        f"({names}) now create: {what}. A migration is applied once, so an edit to an applied "
        f"one never reaches D1; {fix}, then push again"
    )


def apply_migration(client: CloudflareClient, database_id: str, migration: Migration) -> None:
    """Apply one migration and record it, in one D1 batch (as `wrangler d1 migrations apply`):
    a statement that fails leaves neither the change nor the record."""
    sql = migration.sql.strip()
    if not sql.endswith(";"):
        sql += ";"
    escaped = migration.name.replace("'", "''")
    client.query_d1(
        database_id,
        f"{_CREATE_TABLE}\n{sql}\nINSERT INTO {MIGRATIONS_TABLE} (name) VALUES ('{escaped}');",
    )


def new_api_key() -> str:
    """A new key for the Worker's HTTP API (256 bits, URL-safe)."""
    return "awf_" + secrets.token_urlsafe(32)
