"""The simulated database (`ctx.db`): API, write log, digest, transactions, errors."""

from __future__ import annotations

import asyncio
import gc
import pickle
import sqlite3
import subprocess
import sys
from collections.abc import Coroutine, Generator, Iterator
from copy import deepcopy
from types import SimpleNamespace
from typing import Any, TypeVar

import pytest

from awf_sim.dsl._errors import AwfError
from awf_sim.sdk._db import (
    Database,
    DatabaseError,
    DatabaseHandle,
    Write,
    mock_database,
)

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Drives a coroutine the way the engine does, and proves it never suspends."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    coro.close()
    raise AssertionError("the database coroutine suspended")


INVENTORY = {
    "inventory": [
        {"sku": "ABC", "quantity": 10, "reserved": 0, "reorderPoint": 3},
        {"sku": "XYZ", "quantity": 0, "reserved": 0, "reorderPoint": 5},
    ],
}


@pytest.fixture
def spec() -> Database:
    return mock_database(INVENTORY)


@pytest.fixture
def db(spec: Database) -> Iterator[DatabaseHandle]:
    with spec.connect() as handle:
        yield handle


# -- the seed's Inventory domain, in Python ---------------------------------------------------


async def check(product: dict[str, Any], args: dict[str, Any], ctx: Any) -> dict[str, Any]:
    stock = await ctx.db.query_one(
        "SELECT quantity, reserved, reorderPoint FROM inventory WHERE sku = ?", [product["sku"]]
    )
    available = stock["quantity"] - stock["reserved"]
    return {
        "available": available > 0,
        "quantity": available,
        "reorderPoint": stock["reorderPoint"],
    }


async def reserve(product: dict[str, Any], args: dict[str, Any], ctx: Any) -> dict[str, Any]:
    async with ctx.db.transaction() as tx:
        await tx.execute(
            "UPDATE inventory SET reserved = reserved + ? WHERE sku = ?",
            [args["quantity"], product["sku"]],
        )
        reservation = await tx.insert(
            "reservations",
            {"sku": product["sku"], "quantity": args["quantity"], "expiresAt": 900_000},
        )
    return {"reservationId": reservation["id"]}


async def release(reservation: dict[str, Any], args: dict[str, Any], ctx: Any) -> dict[str, Any]:
    await ctx.db.execute(
        "UPDATE inventory SET reserved = reserved - ? WHERE sku = ?",
        [reservation["quantity"], reservation["sku"]],
    )
    await ctx.db.delete("reservations", reservation["id"])
    return {"released": True}


def test_inventory_check_reserve_release(db: DatabaseHandle) -> None:
    ctx = SimpleNamespace(db=db)
    product = {"sku": "ABC"}

    db.step = "Inventory.check#1"
    assert run(check(product, {}, ctx)) == {"available": True, "quantity": 10, "reorderPoint": 3}
    assert run(check({"sku": "XYZ"}, {}, ctx))["available"] is False

    db.step = "Inventory.reserve#1"
    assert run(reserve(product, {"quantity": 4}, ctx)) == {"reservationId": 1}
    assert run(check(product, {}, ctx))["quantity"] == 6
    reservation = run(db.query_one("SELECT * FROM reservations WHERE id = ?", [1]))
    assert reservation == {"id": 1, "sku": "ABC", "quantity": 4, "expiresAt": 900_000}

    db.step = "Inventory.release#1"
    assert run(release(reservation, {}, ctx)) == {"released": True}
    assert run(check(product, {}, ctx))["quantity"] == 10
    assert run(db.query("SELECT * FROM reservations")) == []
    assert [(w.table, w.op, w.step) for w in db.writes] == [
        ("inventory", "update", "Inventory.reserve#1"),
        ("reservations", "insert", "Inventory.reserve#1"),
        ("inventory", "update", "Inventory.release#1"),
        ("reservations", "delete", "Inventory.release#1"),
    ]


def test_handlers_run_on_a_real_event_loop(db: DatabaseHandle) -> None:
    ctx = SimpleNamespace(db=db)
    assert asyncio.run(reserve({"sku": "ABC"}, {"quantity": 1}, ctx)) == {"reservationId": 1}
    assert run(db.query_one("SELECT reserved FROM inventory WHERE sku = 'ABC'")) == {"reserved": 1}


# -- the plain API -----------------------------------------------------------------------------


def test_execute_returns_the_number_of_changed_rows(db: DatabaseHandle) -> None:
    assert run(db.execute("UPDATE inventory SET reserved = 1")) == 2
    assert run(db.execute("UPDATE inventory SET reserved = 2 WHERE sku = ?", ["ABC"])) == 1
    assert run(db.execute("UPDATE inventory SET reserved = 2 WHERE sku = ?", ["nope"])) == 0
    assert run(db.execute("SELECT 1")) == 0


def test_numbers_read_as_a_python_worker_reads_them_from_d1() -> None:
    """D1 answers in JavaScript numbers and Pyodide makes a whole one an int: a REAL 420.0 is
    420 in a handler on Cloudflare (tests/runtime checks it there), and so it is here."""
    spec = Database(schema="CREATE TABLE t (id INTEGER PRIMARY KEY, x REAL)")
    with spec.connect() as db:
        row = run(db.insert("t", {"x": 420.0}))
        assert row == {"id": 1, "x": 420}
        assert type(row["x"]) is int
        run(db.execute("INSERT INTO t (x) VALUES (?), (?), (?)", [2.5, 2.0**60, -0.0]))
        values = [r["x"] for r in run(db.query("SELECT x FROM t ORDER BY id"))]
        assert values == [420, 2.5, 2.0**60, 0]
        assert [type(v) for v in values] == [int, float, float, int]  # 2**60 is past 2**53
        one = run(db.query_one("SELECT x FROM t WHERE id = 1"))
        assert one is not None
        assert type(one["x"]) is int
        assert db.snapshot()["t"][0]["x"] == 420.0  # what is stored is unchanged


def test_integers_past_2_53_and_infinities_read_as_d1_gives_them() -> None:
    """Miniflare's D1 answers `SELECT 9007199254740993` with 9007199254740992 (a JavaScript
    number; Pyodide makes an unsafe integer a float) and an infinite REAL with null (JSON).
    Before, the exact 64-bit value came back here: a handler keeping a 64-bit id would pass
    in the simulator and read another id on Cloudflare."""
    spec = Database(schema="CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER, x REAL)")
    with spec.connect() as db:
        row = run(db.insert("t", {"n": 2**53 + 1, "x": float("inf")}))
        assert row == {"id": 1, "n": 9007199254740992.0, "x": None}
        assert type(row["n"]) is float
        run(db.execute("INSERT INTO t (n, x) VALUES (?, ?)", [-(2**53) - 1, -float("inf")]))
        run(db.execute("INSERT INTO t (n, x) VALUES (?, ?)", [2**53 - 1, 1.5]))
        rows = run(db.query("SELECT n, x FROM t ORDER BY id"))
        assert rows == [
            {"n": 9007199254740992.0, "x": None},
            {"n": -9007199254740992.0, "x": None},
            {"n": 2**53 - 1, "x": 1.5},
        ]
        assert type(rows[2]["n"]) is int  # the largest safe integer stays exact
        assert db.snapshot()["t"][0]["n"] == 2**53 + 1  # what is stored is unchanged


def test_insert_returns_the_stored_row_with_its_id(db: DatabaseHandle) -> None:
    first = run(db.insert("inventory", {"sku": "NEW", "quantity": 1}))
    second = run(db.insert("inventory", {"sku": "NEW2", "quantity": 2}))
    assert first == {"id": 3, "sku": "NEW", "quantity": 1, "reserved": None, "reorderPoint": None}
    assert second["id"] == 4


def test_insert_returns_defaults_from_the_schema() -> None:
    spec = Database("CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER NOT NULL DEFAULT 7);")
    with spec.connect() as db:
        assert run(db.insert("t", {})) == {"id": 1, "n": 7}


def test_insert_without_returning_support(db: DatabaseHandle) -> None:
    db._returning = False  # as on SQLite < 3.35
    assert run(db.insert("reservations", {"sku": "ABC"})) == {"id": 1, "sku": "ABC"}
    assert run(db.insert("reservations", {"sku": "XYZ"}))["id"] == 2


def test_insert_stores_json_and_booleans(db: DatabaseHandle) -> None:
    row = run(db.insert("events", {"payload": {"a": [1, 2]}, "tags": ["x"], "ok": True}))
    assert row == {"id": 1, "payload": '{"a":[1,2]}', "tags": '["x"]', "ok": 1}


def test_insert_refuses_values_that_are_not_json(db: DatabaseHandle) -> None:
    db.step = "S#1"
    with pytest.raises(DatabaseError, match=r"^S#1: insert into events: .*not JSON serializable"):
        run(db.insert("events", {"payload": {"when": object()}}))


def test_delete(db: DatabaseHandle) -> None:
    assert run(db.delete("inventory", 1)) == 1
    assert run(db.delete("inventory", 1)) == 0
    assert [r["sku"] for r in run(db.query("SELECT sku FROM inventory"))] == ["XYZ"]


def test_query_one_returns_none_when_nothing_matches(db: DatabaseHandle) -> None:
    assert run(db.query_one("SELECT * FROM inventory WHERE sku = ?", ["nope"])) is None
    assert run(db.query_one("SELECT sku FROM inventory ORDER BY sku")) == {"sku": "ABC"}


def test_query_returns_dicts(db: DatabaseHandle) -> None:
    rows = run(db.query("SELECT sku, quantity AS q FROM inventory ORDER BY sku"))
    assert rows == [{"sku": "ABC", "q": 10}, {"sku": "XYZ", "q": 0}]


def test_params_are_bound_never_formatted(db: DatabaseHandle) -> None:
    tricky = "O'Brien\"; DROP TABLE inventory; --"
    run(db.execute("UPDATE inventory SET sku = ? WHERE sku = ?", [tricky, "ABC"]))
    assert run(db.query_one("SELECT id FROM inventory WHERE sku = ?", (tricky,))) == {"id": 1}
    named = run(db.query_one("SELECT id FROM inventory WHERE sku = :sku", {"sku": tricky}))
    assert named == {"id": 1}
    assert len(run(db.query("SELECT * FROM inventory"))) == 2


def test_json_params_are_encoded(db: DatabaseHandle) -> None:
    run(db.execute("UPDATE inventory SET reserved = ? WHERE sku = ?", [{"k": [1]}, "ABC"]))
    value = run(db.query_one("SELECT reserved FROM inventory WHERE sku = :s", {"s": "ABC"}))
    assert value == {"reserved": '{"k":[1]}'}


@pytest.mark.parametrize(
    "table", ["inventory; DROP TABLE inventory", 'inventory"', "1abc", "", "a b", "ïnventory"]
)
def test_injection_in_table_names_is_refused(db: DatabaseHandle, table: str) -> None:
    db.step = "Inventory.reserve#1"
    with pytest.raises(DatabaseError, match=r"^Inventory\.reserve#1: invalid table name") as err:
        run(db.insert(table, {"sku": "x"}))
    assert "^[A-Za-z_][A-Za-z0-9_]*$" in str(err.value)
    with pytest.raises(DatabaseError, match="invalid table name"):
        run(db.delete(table, 1))
    assert len(run(db.query("SELECT * FROM inventory"))) == 2
    assert db.writes == []


def test_injection_in_column_names_is_refused(db: DatabaseHandle) -> None:
    with pytest.raises(DatabaseError, match="invalid column name 'sku\\) VALUES"):
        run(db.insert("inventory", {"sku) VALUES (1); DROP TABLE inventory; --": 1}))
    with pytest.raises(DatabaseError, match="invalid column name"):
        mock_database({"t": [{"bad name": 1}]})


# -- transactions ------------------------------------------------------------------------------


def test_transaction_commits(db: DatabaseHandle) -> None:
    async def body() -> None:
        async with db.transaction() as tx:
            await tx.insert("reservations", {"sku": "ABC", "quantity": 1})
            assert await tx.query("SELECT sku FROM reservations") == [{"sku": "ABC"}]
            assert await tx.query_one("SELECT count(*) AS n FROM reservations") == {"n": 1}
            assert await tx.delete("inventory", 2) == 1

    run(body())
    assert run(db.query("SELECT sku FROM reservations")) == [{"sku": "ABC"}]
    assert [(w.table, w.op) for w in db.writes] == [
        ("reservations", "insert"),
        ("inventory", "delete"),
    ]


def test_rollback_on_exception_restores_state_and_writes(db: DatabaseHandle) -> None:
    run(db.execute("UPDATE inventory SET reserved = 1 WHERE sku = 'ABC'"))
    before = db.snapshot()

    async def body() -> None:
        async with db.transaction() as tx:
            await tx.execute("UPDATE inventory SET reserved = reserved + 5")
            await tx.insert("reservations", {"sku": "ABC", "quantity": 5})
            assert len(db.writes) == 4  # visible while the transaction is open
            raise RuntimeError("payment declined")

    with pytest.raises(RuntimeError, match="payment declined"):
        run(body())
    assert db.snapshot() == before
    assert [(w.table, w.op) for w in db.writes] == [("inventory", "update")]
    # The handle stays usable, and the next transaction starts cleanly.
    run(reserve({"sku": "ABC"}, {"quantity": 2}, SimpleNamespace(db=db)))
    assert len(db.writes) == 3


def test_rollback_when_a_statement_fails(db: DatabaseHandle) -> None:
    async def body() -> None:
        async with db.transaction() as tx:
            await tx.execute("UPDATE inventory SET reserved = 9")
            await tx.execute("UPDATE nowhere SET x = 1")

    with pytest.raises(DatabaseError, match="no such table: nowhere"):
        run(body())
    assert run(db.query("SELECT DISTINCT reserved FROM inventory")) == [{"reserved": 0}]
    assert db.writes == []


def test_nested_transactions_are_refused(db: DatabaseHandle) -> None:
    db.step = "Inventory.reserve#1"

    async def body() -> None:
        async with db.transaction() as tx:
            await tx.execute("UPDATE inventory SET reserved = 1")
            async with db.transaction():
                pass

    with pytest.raises(DatabaseError, match=r"^Inventory\.reserve#1: nested transaction"):
        run(body())
    # The outer transaction rolled back because the error escaped it.
    assert db.writes == []
    assert run(db.query_one("SELECT max(reserved) AS r FROM inventory")) == {"r": 0}


def test_transaction_object_is_dead_after_its_block(db: DatabaseHandle) -> None:
    async def body() -> Any:
        async with db.transaction() as tx:
            pass
        return tx

    tx = run(body())
    with pytest.raises(DatabaseError, match="transaction is not open"):
        run(tx.execute("UPDATE inventory SET reserved = 1"))

    async def reuse() -> None:
        async with tx:
            pass

    with pytest.raises(DatabaseError, match="already used"):
        run(reuse())


def test_transaction_rolls_back_when_the_coroutine_is_closed(db: DatabaseHandle) -> None:
    """A crash fault drops a suspended handler: closing it must not leave a transaction open."""

    class Suspend:
        def __await__(self) -> Generator[None, None, None]:
            yield None

    async def body() -> None:
        async with db.transaction() as tx:
            await tx.execute("UPDATE inventory SET reserved = 3")
            await Suspend()

    coro = body()
    coro.send(None)
    coro.close()
    assert db.writes == []
    assert not db._conn.in_transaction


# -- the write log -----------------------------------------------------------------------------


def test_writes_are_recorded_in_order_with_step_labels(db: DatabaseHandle) -> None:
    run(db.insert("reservations", {"sku": "ABC", "quantity": 1}))
    db.step = "Inventory.reserve#1"
    run(db.execute("UPDATE inventory SET reserved = 1 WHERE sku = ?", ["ABC"]))
    db.step = "Inventory.release#2"
    run(db.delete("reservations", 1))
    assert db.writes == [
        Write("reservations", "insert", {"id": 1, "sku": "ABC", "quantity": 1}, None),
        Write(
            "inventory",
            "update",
            {"id": 1, "sku": "ABC", "quantity": 10, "reserved": 1, "reorderPoint": 3},
            "Inventory.reserve#1",
        ),
        Write(
            "reservations",
            "delete",
            {"id": 1, "sku": "ABC", "quantity": 1},
            "Inventory.release#2",
        ),
    ]
    assert db.writes[0].to_dict() == {
        "table": "reservations",
        "op": "insert",
        "row": {"id": 1, "sku": "ABC", "quantity": 1},
        "step": None,
    }


def test_writes_returns_a_copy(db: DatabaseHandle) -> None:
    run(db.delete("inventory", 1))
    db.writes.clear()
    assert len(db.writes) == 1


def test_seed_rows_are_not_writes(db: DatabaseHandle) -> None:
    assert db.writes == []


def test_ddl_through_execute_is_recorded_afterwards(db: DatabaseHandle) -> None:
    run(db.execute("CREATE TABLE audit (id INTEGER PRIMARY KEY, what TEXT)"))
    run(db.execute("INSERT INTO audit (what) VALUES (?)", ["created"]))
    run(db.execute("ALTER TABLE audit ADD COLUMN who TEXT DEFAULT 'sim'"))
    run(db.execute("UPDATE audit SET what = 'changed'"))
    run(db.execute("ALTER TABLE audit DROP COLUMN who"))
    run(db.execute("-- a comment first\n ALTER TABLE audit RENAME TO journal"))
    run(db.insert("journal", {"what": "renamed"}))
    assert [w.to_dict() for w in db.writes] == [
        {"table": "audit", "op": "insert", "row": {"id": 1, "what": "created"}, "step": None},
        {
            "table": "audit",
            "op": "update",
            "row": {"id": 1, "what": "changed", "who": "sim"},
            "step": None,
        },
        {"table": "journal", "op": "insert", "row": {"id": 2, "what": "renamed"}, "step": None},
    ]
    run(db.execute("DROP TABLE journal"))
    assert "journal" not in db.snapshot()


def test_wide_tables_and_blobs_are_recorded() -> None:
    columns = {f"c{i}": i for i in range(150)}
    with mock_database({"wide": [], "files": []}).connect() as db:
        run(db.insert("wide", columns))
        run(db.insert("files", {"data": b"\x00\xff"}))
        assert db.writes[0].row == {"id": 1, **columns}
        assert db.writes[1].row == {"id": 1, "data": "00FF"}
        assert db.snapshot()["files"] == [{"id": 1, "data": b"\x00\xff"}]
        assert len(db.digest()) == 64


# -- digest and snapshot -----------------------------------------------------------------------


def test_digest_is_equal_for_equal_content_whatever_the_order() -> None:
    rows = [{"id": i, "sku": f"S{i}", "quantity": i * 2} for i in range(1, 6)]
    one = mock_database({"inventory": rows, "reservations": []})
    other = mock_database({"reservations": [], "inventory": list(reversed(rows))})
    with one.connect() as a, other.connect() as b, one.connect() as c:
        assert a.digest() == b.digest()
        # Same content reached through different writes.
        run(a.execute("UPDATE inventory SET quantity = quantity + 1 WHERE id = 3"))
        run(c.execute("UPDATE inventory SET quantity = 7 WHERE id = 3"))
        assert a.digest() == c.digest()
        assert a.digest() != b.digest()
        run(b.insert("reservations", {"sku": "S1"}))
        run(b.delete("reservations", 1))
        assert b.digest() == one_digest(one)


def one_digest(spec: Database) -> str:
    with spec.connect() as handle:
        return handle.digest()


def test_digest_changes_with_any_change(db: DatabaseHandle) -> None:
    seen = {db.digest()}
    run(db.execute("UPDATE inventory SET reserved = 1 WHERE sku = 'ABC'"))
    seen.add(db.digest())
    run(db.execute("UPDATE inventory SET reserved = 2 WHERE sku = 'XYZ'"))
    seen.add(db.digest())
    run(db.insert("reservations", {"sku": "ABC"}))
    seen.add(db.digest())
    run(db.execute("DELETE FROM reservations"))
    seen.add(db.digest())  # an empty table is content too
    assert len(seen) == 5
    assert all(len(d) == 64 and int(d, 16) >= 0 for d in seen)


def test_digest_tells_integer_from_real() -> None:
    spec = Database("CREATE TABLE t (v);")  # no affinity: 1 and 1.0 stay distinct
    with spec.connect() as a, spec.connect() as b:
        run(a.insert("t", {"v": 1}))
        run(b.insert("t", {"v": 1.0}))
        assert a.digest() != b.digest()


def test_digest_ignores_private_tables(db: DatabaseHandle) -> None:
    before = db.digest()
    run(db.execute("UPDATE inventory SET reserved = 0"))  # same values, but a logged write
    assert db.writes
    assert db.digest() == before


def test_snapshot_is_sorted_and_excludes_private_tables(spec: Database) -> None:
    with spec.connect() as db:
        run(db.insert("inventory", {"id": 0, "sku": "AAA", "quantity": 1}))
        snapshot = db.snapshot()
    assert list(snapshot) == ["inventory"]
    assert [row["id"] for row in snapshot["inventory"]] == [0, 1, 2]
    assert snapshot["inventory"][1] == {
        "id": 1,
        "sku": "ABC",
        "quantity": 10,
        "reserved": 0,
        "reorderPoint": 3,
    }


# -- errors ------------------------------------------------------------------------------------


def test_database_error_names_step_statement_and_sqlite_message(db: DatabaseHandle) -> None:
    db.step = "Inventory.check#1"
    sql = "SELECT quantity FROM inventry WHERE sku = ?"
    with pytest.raises(DatabaseError) as err:
        run(db.query(sql, ["ABC"]))
    assert str(err.value) == (
        "Inventory.check#1: no such table: inventry in "
        '"SELECT quantity FROM inventry WHERE sku = ?"'
    )
    assert isinstance(err.value, AwfError)
    assert (err.value.step, err.value.sql, err.value.detail) == (
        "Inventory.check#1",
        sql,
        "no such table: inventry",
    )


def test_database_error_without_a_step(db: DatabaseHandle) -> None:
    with pytest.raises(DatabaseError) as err:
        run(db.execute("INSERT INTO inventory (id, sku) VALUES (1, 'dup')"))
    assert str(err.value) == (
        "UNIQUE constraint failed: inventory.id in "
        "\"INSERT INTO inventory (id, sku) VALUES (1, 'dup')\""
    )


def test_database_error_for_wrong_bindings_and_long_sql(db: DatabaseHandle) -> None:
    with pytest.raises(DatabaseError, match="Incorrect number of bindings"):
        run(db.query("SELECT * FROM inventory WHERE sku = ?", []))
    long_sql = "SELECT\n  " + " + ".join(["1"] * 400) + " FROM nowhere"
    with pytest.raises(DatabaseError) as err:
        run(db.query(long_sql))
    assert "\n" not in str(err.value)
    assert str(err.value).endswith('…"')


def test_database_error_survives_pickling() -> None:
    error = DatabaseError("no such table: x", "SELECT * FROM x", "A.b#1")
    copy = pickle.loads(pickle.dumps(error))
    assert (str(copy), copy.detail, copy.sql, copy.step) == (
        str(error),
        error.detail,
        error.sql,
        error.step,
    )


def test_closed_handle_raises(spec: Database) -> None:
    db = spec.connect()
    db.close()
    db.close()  # idempotent
    with pytest.raises(DatabaseError, match="closed database"):
        run(db.query("SELECT 1"))


# -- specs, connections, mock_database ---------------------------------------------------------


def test_each_connect_is_fresh_and_identical(spec: Database) -> None:
    with spec.connect() as first, spec.connect() as second:
        run(first.execute("UPDATE inventory SET quantity = 0"))
        run(first.insert("reservations", {"sku": "ABC"}))
        run(first.execute("CREATE TABLE extra (x)"))
        assert second.snapshot() == mock_snapshot()
        assert second.writes == []
        with spec.connect() as third:
            assert third.digest() == second.digest() != first.digest()
            assert third.writes == []


def mock_snapshot() -> dict[str, list[dict[str, Any]]]:
    return {
        "inventory": [
            {"id": 1, "sku": "ABC", "quantity": 10, "reserved": 0, "reorderPoint": 3},
            {"id": 2, "sku": "XYZ", "quantity": 0, "reserved": 0, "reorderPoint": 5},
        ]
    }


def test_mock_database_types_columns_by_value() -> None:
    spec = mock_database(
        {
            "t": [
                {"i": 1, "f": 1.5, "s": "x", "b": True, "j": {"a": 1}, "n": None},
                {"i": 2, "f": 2, "l": [1], "late": "y"},
            ],
            "keyed": [{"code": "A", "id": 7}],
        }
    )
    with spec.connect() as db:
        info = run(db.query("SELECT name, type, pk FROM pragma_table_info('t')"))
        assert [(c["name"], c["type"], c["pk"]) for c in info] == [
            ("id", "INTEGER", 1),
            ("i", "INTEGER", 0),
            ("f", "REAL", 0),
            ("s", "TEXT", 0),
            ("b", "INTEGER", 0),
            ("j", "TEXT", 0),
            ("n", "", 0),
            ("l", "TEXT", 0),
            ("late", "TEXT", 0),
        ]
        assert run(db.query_one("SELECT b, j FROM t WHERE id = 1")) == {"b": 1, "j": '{"a":1}'}
        keyed = run(db.query("SELECT name, pk FROM pragma_table_info('keyed')"))
        assert keyed == [{"name": "code", "pk": 0}, {"name": "id", "pk": 1}]
        assert run(db.insert("keyed", {"code": "B"}))["id"] == 8


def test_mock_database_grows_missing_tables_and_columns(db: DatabaseHandle) -> None:
    row = run(db.insert("reservations", {"sku": "ABC", "quantity": 2}))
    assert row == {"id": 1, "sku": "ABC", "quantity": 2}
    row = run(db.insert("reservations", {"sku": "ABC", "note": "gift", "price": 9.5}))
    assert row == {"id": 2, "sku": "ABC", "quantity": None, "note": "gift", "price": 9.5}
    assert [w.op for w in db.writes] == ["insert", "insert"]


def test_explicit_schema_does_not_grow() -> None:
    spec = Database("CREATE TABLE t (id INTEGER PRIMARY KEY, a TEXT);", {"t": [{"a": "x"}]})
    with spec.connect() as db:
        with pytest.raises(DatabaseError, match="no such table: missing"):
            run(db.insert("missing", {"a": 1}))
        with pytest.raises(DatabaseError, match="table t has no column named b"):
            run(db.insert("t", {"b": 1}))
        assert db.snapshot() == {"t": [{"id": 1, "a": "x"}]}


def test_bad_specs_fail_where_they_are_declared() -> None:
    with pytest.raises(DatabaseError, match='near "TABLEX": syntax error in "CREATE TABLEX'):
        Database("CREATE TABLEX t (a);")
    with pytest.raises(DatabaseError, match="no such table: t"):
        Database("", {"t": [{"a": 1}]})
    with pytest.raises(DatabaseError, match="must be a list of dicts"):
        mock_database({"t": {"a": 1}})  # type: ignore[dict-item]
    with pytest.raises(DatabaseError, match="must be dicts"):
        mock_database({"t": [1]})  # type: ignore[list-item]


def test_foreign_keys_are_enforced_as_on_d1() -> None:
    schema = """
        CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT);
        CREATE TABLE orders (id INTEGER PRIMARY KEY, user_id INTEGER REFERENCES users(id));
    """
    # Seed order is free: orders may come before the users they reference.
    spec = Database(schema, {"orders": [{"user_id": 1}], "users": [{"id": 1, "name": "a"}]})
    with (
        spec.connect() as db,
        pytest.raises(DatabaseError, match="FOREIGN KEY constraint failed"),
    ):
        run(db.insert("orders", {"user_id": 99}))
    with pytest.raises(DatabaseError, match="references a missing row of 'users'"):
        Database(schema, {"orders": [{"user_id": 5}]})


def test_empty_database(spec: Database) -> None:
    with Database().connect() as db:
        assert db.snapshot() == {}
        assert db.writes == []
        assert len(db.digest()) == 64
    assert "auto_schema=True" in repr(spec)


def test_closing_inside_a_transaction_keeps_the_original_error(spec: Database) -> None:
    db = spec.connect()

    async def body() -> None:
        async with db.transaction() as tx:
            await tx.execute("UPDATE inventory SET reserved = 1")
            db.close()
            raise RuntimeError("handler crashed")

    with pytest.raises(RuntimeError, match="handler crashed"):
        run(body())


def test_mock_columns_grow_case_insensitively(db: DatabaseHandle) -> None:
    row = run(db.insert("inventory", {"SKU": "NEW", "colour": "red"}))
    assert row["sku"] == "NEW"
    assert row["colour"] == "red"


# -- reused connections ------------------------------------------------------------------------
#
# connect() reuses the connection of a closed handle: it must be indistinguishable from a new
# one. `_conn` tells the tests which connection a handle got.

RESERVATIONS = """
    CREATE TABLE inventory (sku TEXT PRIMARY KEY, quantity INTEGER NOT NULL);
    CREATE TABLE reservations (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        sku TEXT NOT NULL REFERENCES inventory(sku),
        quantity INTEGER);
"""


@pytest.fixture
def keyed() -> Database:
    """A schema with AUTOINCREMENT (sqlite_sequence) and a foreign key."""
    return Database(
        RESERVATIONS,
        {"inventory": [{"sku": "ABC", "quantity": 10}], "reservations": [{"sku": "ABC"}]},
    )


def use(db: DatabaseHandle) -> None:
    """Changes every kind of state a run ordinarily changes."""
    db.step = "Inventory.reserve#1"

    async def body() -> None:
        async with db.transaction() as tx:
            await tx.execute("UPDATE inventory SET quantity = quantity - 1")
            await tx.insert("reservations", {"sku": "ABC", "quantity": 1})
            await tx.insert("reservations", {"sku": "ABC", "quantity": 2})
        await db.delete("reservations", 3)  # the highest id: a fresh count would reuse it
        await db.query("SELECT * FROM pragma_table_info('reservations')")
        await db.query("PRAGMA foreign_key_list(reservations)")

    run(body())
    assert db.writes


def test_a_closed_handles_connection_is_reused_as_new(keyed: Database) -> None:
    with keyed.connect() as fresh:
        expected = (fresh.snapshot(), fresh.digest())
        fresh_id = run(fresh.insert("reservations", {"sku": "ABC"}))["id"]
    first = keyed.connect()
    conn = first._conn
    use(first)
    first.close()
    with keyed.connect() as again:
        assert again._conn is conn  # reused
        assert again.step is None
        assert again.writes == []
        assert (again.snapshot(), again.digest()) == expected
        assert run(again.query_one("PRAGMA foreign_keys")) == {"foreign_keys": 1}
        assert run(again.query("SELECT * FROM temp.sqlite_master")) == []
        # AUTOINCREMENT and rowids count from the spec's rows, as on a new connection.
        row = run(again.insert("reservations", {"sku": "ABC"}))
        assert row["id"] == fresh_id == 2
        with pytest.raises(DatabaseError, match="FOREIGN KEY constraint failed"):
            run(again.insert("reservations", {"sku": "NOPE"}))
        again.step = "Shipping.create#1"
        run(again.execute("UPDATE inventory SET quantity = 0"))
        assert [(w.table, w.op, w.step) for w in again.writes] == [
            ("reservations", "insert", None),
            ("inventory", "update", "Shipping.create#1"),
        ]


def test_a_closed_handle_cannot_reach_a_reused_connection(keyed: Database) -> None:
    old = keyed.connect()
    old.step = "Old.step#1"
    old.close()
    new = keyed.connect()
    old.step = "Old.step#2"  # must not label the new handle's writes
    with pytest.raises(DatabaseError, match="closed database"):
        run(old.execute("UPDATE inventory SET quantity = 0"))
    with pytest.raises(DatabaseError, match="closed database"):
        old.digest()
    old.close()  # still idempotent, and must not give the connection back twice
    run(new.execute("UPDATE inventory SET quantity = 1"))
    assert [w.step for w in new.writes] == [None]
    with keyed.connect() as other:
        assert other._conn is not new._conn
    new.close()


@pytest.mark.parametrize(
    "sql",
    [
        "PRAGMA foreign_keys = OFF",
        "PRAGMA recursive_triggers = ON",
        "CREATE TABLE extra (x)",
        "CREATE INDEX by_quantity ON inventory (quantity)",
        "ATTACH ':memory:' AS other",
        "ANALYZE",
        "SELECT last_insert_rowid()",
        "SELECT changes()",
        "SELECT total_changes()",
        "BEGIN",
    ],
)
def test_a_connection_left_changed_is_not_reused(keyed: Database, sql: str) -> None:
    first = keyed.connect()
    conn = first._conn
    run(first.insert("reservations", {"sku": "ABC"}))
    if sql.startswith(("ATTACH", "BEGIN")):
        # ctx.db refuses these as D1 does; the connection's own guard must hold regardless.
        conn.execute(sql)
    else:
        run(first.query(sql))
    first.close()
    with keyed.connect() as again:
        assert again._conn is not conn
        assert run(again.query_one("PRAGMA foreign_keys")) == {"foreign_keys": 1}
        assert run(again.query_one("PRAGMA recursive_triggers")) == {"recursive_triggers": 0}
        assert run(again.query("SELECT name FROM temp.sqlite_master")) == []
        # D1 refuses PRAGMA database_list (and the temp schema: tests/sdk/test_db_d1.py).
        with pytest.raises(DatabaseError, match=r"no such table: other\.sqlite_master"):
            run(again.query("SELECT name FROM other.sqlite_master"))
        assert run(again.query_one("SELECT last_insert_rowid() AS n")) == {"n": 0}
        assert run(again.query_one("SELECT total_changes() AS n")) == {"n": 0}
        assert "extra" not in again.snapshot()
    with pytest.raises(sqlite3.ProgrammingError, match="closed database"):
        conn.execute("SELECT 1")


def test_connections_are_reused_per_database(keyed: Database, spec: Database) -> None:
    with keyed.connect() as a, keyed.connect() as b:
        conns = {a._conn, b._conn}
    with keyed.connect() as a, keyed.connect() as b, spec.connect() as c:
        assert {a._conn, b._conn} == conns
        assert c._conn not in conns
        assert c.snapshot() == mock_snapshot()


def test_databases_with_virtual_tables_get_new_connections() -> None:
    spec = Database("CREATE VIRTUAL TABLE docs USING fts5(body);", {"docs": [{"body": "a b"}]})
    first = spec.connect()
    conn = first._conn
    assert run(first.query("SELECT body FROM docs WHERE docs MATCH 'a'")) == [{"body": "a b"}]
    first.close()
    with spec.connect() as again:
        assert again._conn is not conn
        assert run(again.query("SELECT body FROM docs WHERE docs MATCH 'b'")) == [{"body": "a b"}]


def test_pooled_connections_close_with_their_database() -> None:
    spec = mock_database(INVENTORY)
    handle = spec.connect()
    conn = handle._conn
    handle.close()
    conn.execute("SELECT 1")  # idle in the pool, still open
    del spec, handle
    gc.collect()
    with pytest.raises(sqlite3.ProgrammingError, match="closed database"):
        conn.execute("SELECT 1")


def test_pooled_connections_close_at_interpreter_exit() -> None:
    # The check is registered with atexit before anything creates a weakref.finalize, so it
    # runs after finalize's own exit hook (atexit runs in reverse order).
    script = """
import atexit, sqlite3
kept = []
def check():
    try:
        kept[0].execute("SELECT 1")
        print("open")
    except sqlite3.ProgrammingError:
        print("closed")
atexit.register(check)
from awf_sim.sdk._db import mock_database
spec = mock_database({"t": [{"a": 1}]})
handle = spec.connect()
kept.append(handle._conn)
handle.close()
"""
    done = subprocess.run(
        [sys.executable, "-W", "error", "-X", "dev", "-c", script],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert done.stdout.strip() == "closed"
    assert done.stderr == ""


def test_copies_of_a_database_connect_on_their_own(keyed: Database) -> None:
    with keyed.connect() as db:
        use(db)
    for copy in (pickle.loads(pickle.dumps(keyed)), deepcopy(keyed)):
        with copy.connect() as db:
            assert db.writes == []
            assert run(db.insert("reservations", {"sku": "ABC"}))["id"] == 2


def test_digest_is_stable_across_versions() -> None:
    # Digests are compared between runs and reported: their format must not drift.
    spec = Database(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, a, b BLOB); "
        "CREATE TABLE u (k TEXT PRIMARY KEY, v REAL);",
        {
            "t": [{"a": 'é\n"x', "b": b"\x00\xff"}, {"a": 1.5}, {"a": None, "b": b""}, {"a": 2}],
            "u": [{"k": "z", "v": 1e20}, {"k": "a", "v": -0.0}],
        },
    )
    with spec.connect() as db:
        assert db.digest() == "d7661f201382414bb776fdef04d465a235b5145788544dde79a99d73eaa4fe65"
    with mock_database(INVENTORY).connect() as db:
        assert db.digest() == "87d50837d80b8bdacd5e0341e59d9bed79fc3efe033e37fb8ab9473407790093"


def test_full_text_search_tables_work_and_their_shadow_tables_get_no_triggers() -> None:
    """FTS5 keeps its data in shadow tables; a write-log trigger on one crashed SQLite."""
    db = Database(
        schema="CREATE VIRTUAL TABLE docs USING fts5(title, body);"
        "CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT);"
    )
    with db.connect() as handle:
        run(handle.execute("INSERT INTO docs (title, body) VALUES (?, ?)", ["a", "hello world"]))
        run(handle.insert("notes", {"text": "kept"}))
        rows = run(handle.query("SELECT title FROM docs WHERE docs MATCH ?", ["hello"]))
        assert rows == [{"title": "a"}]
        assert [(w.table, w.op) for w in handle.writes] == [("notes", "insert")]


@pytest.mark.parametrize(
    ("sql", "refused"),
    [
        ("BEGIN", "BEGIN is refused: D1 runs no transaction statements"),
        ("begin transaction", "BEGIN is refused"),
        ("/* a comment */ SAVEPOINT s", "SAVEPOINT is refused"),
        ("RELEASE s", "RELEASE is refused"),
        ("COMMIT", "COMMIT is refused"),
        ("END", "END is refused"),
        ("ROLLBACK", "ROLLBACK is refused"),
        ("ATTACH ':memory:' AS other", "ATTACH is refused: D1 is one database"),
        ("DETACH other", "DETACH is refused"),
        ("VACUUM", "VACUUM is refused"),
        ("", "no SQL statement"),
        ("  -- only a comment\n", "no SQL statement"),
    ],
)
def test_statements_d1_fails_are_refused(spec: Database, sql: str, refused: str) -> None:
    # Checked on Miniflare's D1: each of these is an error there, so a handler that ran them
    # here would pass in the simulator and fail on Cloudflare. Before, SQLite ran them: a
    # BEGIN left a transaction open on the connection every step shares.
    with spec.connect() as db:
        db.step = "Orders.place#1"
        with pytest.raises(DatabaseError) as info:
            run(db.execute(sql))
        message = str(info.value)
        assert message.startswith("Orders.place#1: ")
        assert refused in message
        assert "\n" not in message
        assert not db._conn.in_transaction
        if "transaction statements" in message:
            assert "async with ctx.db.transaction() as tx:" in message
        # The refusal lost nothing: the handle still works, and a real transaction opens.
        assert run(db.query_one("SELECT 1 AS one")) == {"one": 1}

        async def in_transaction() -> int:
            async with db.transaction() as tx:
                return await tx.execute("UPDATE inventory SET quantity = quantity")

        assert run(in_transaction()) >= 0


def test_sql_that_is_not_a_string_is_one_clear_error(spec: Database) -> None:
    with spec.connect() as db:
        for bad in (None, ["SELECT 1"], b"SELECT 1"):
            with pytest.raises(DatabaseError, match=r"the SQL must be a str, got \w+"):
                run(db.query(bad))  # type: ignore[arg-type]


def test_a_row_that_is_not_a_dict_is_named_as_such(spec: Database) -> None:
    # Before: a list row said "invalid column name 1", an int row raised TypeError from tuple().
    with spec.connect() as db:
        db.step = "Orders.place#1"
        for row in ([1, 2], 7, "sku"):
            with pytest.raises(DatabaseError) as info:
                run(db.insert("inventory", row))  # type: ignore[arg-type]
            assert str(info.value) == (
                "Orders.place#1: insert('inventory', row): row must be a dict of column -> "
                f"value, got {type(row).__name__}"
            )


def test_a_schema_that_is_not_sql_text_is_one_clear_error() -> None:
    # Before: TypeError "executescript() argument must be str, not dict".
    for schema in (123, {"inventory": [{"sku": "A"}]}, None):
        with pytest.raises(DatabaseError, match=r"Database\(schema\): expected the schema as SQL"):
            Database(schema)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("sql", "refused"),
    [
        ("DELETE FROM _awf_writes", "_awf_writes is the simulator's record of every write"),
        ("UPDATE _awf_writes SET op = 'insert'", "a handler may read it, never change it"),
        ("INSERT INTO _awf_writes (tbl, op, row) VALUES ('t', 'insert', '{}')", "never change"),
        ("DROP TABLE _awf_writes", "names starting with _awf_ are the simulator's own"),
        ("CREATE TABLE _awf_audit (x)", "names starting with _awf_ are the simulator's own"),
        ("CREATE TABLE _cf_cache (x)", "names starting with _cf_ are D1's own"),
        ("CREATE INDEX _CF_by_sku ON inventory (sku)", "names starting with _cf_ are D1's own"),
    ],
)
def test_the_write_log_and_reserved_names_are_out_of_a_handlers_reach(
    spec: Database, sql: str, refused: str
) -> None:
    # Before: each ran. A handler could empty the write log chaos compares (its writes then
    # went unseen), a table named _awf_* was left out of snapshot() and digest(), and _cf_*
    # names, which D1 refuses ("not authorized" on Miniflare), passed here.
    with spec.connect() as db:
        db.step = "Audit.log#1"
        run(db.execute("UPDATE inventory SET quantity = 3 WHERE sku = 'ABC'"))
        with pytest.raises(DatabaseError) as info:
            run(db.execute(sql))
        assert str(info.value).startswith("Audit.log#1: ")
        assert refused in str(info.value)
        assert [(w.table, w.op) for w in db.writes] == [("inventory", "update")]
        run(db.execute("UPDATE inventory SET quantity = 4 WHERE sku = 'ABC'"))  # still logged
        assert len(db.writes) == 2
        assert run(db.query("SELECT count(*) AS n FROM _awf_writes")) == [{"n": 2}]  # readable


def test_a_trigger_of_the_handlers_own_cannot_change_the_write_log(spec: Database) -> None:
    with spec.connect() as db:
        run(
            db.execute(
                "CREATE TRIGGER zap AFTER UPDATE ON inventory BEGIN DELETE FROM _awf_writes; END"
            )
        )
        with pytest.raises(DatabaseError, match="_awf_writes is the simulator's record"):
            run(db.execute("UPDATE inventory SET quantity = 3"))
        assert db.writes == []  # the refused statement changed nothing


def test_a_schema_cannot_declare_reserved_names() -> None:
    for schema in ("CREATE TABLE _awf_audit (x)", "CREATE TABLE _cf_kv (x)"):
        with pytest.raises(DatabaseError, match="names starting with _awf_ are the simulator"):
            Database(schema)
    with pytest.raises(DatabaseError, match="names starting with _awf_"):
        mock_database({"_awf_audit": [{"x": 1}]})


def test_params_that_are_not_a_list_or_dict_say_how_to_write_them(spec: Database) -> None:
    # Before: "parameters are of unsupported type" for 5, and "Incorrect number of bindings
    # supplied ... 3 supplied" for "ABC" (sqlite3 takes a str as a sequence of characters).
    with spec.connect() as db:
        db.step = "Inventory.check#1"
        for params, shown in ((5, "int: write [5]"), ("ABC", "str: write ['ABC']")):
            with pytest.raises(DatabaseError) as info:
                run(db.query_one("SELECT * FROM inventory WHERE sku = ?", params))  # type: ignore[arg-type]
            assert str(info.value) == (
                "Inventory.check#1: params must be a list of values for ? placeholders or a "
                f'dict for :name ones, got {shown} in "SELECT * FROM inventory WHERE sku = ?"'
            )
        row = run(db.query_one("SELECT sku FROM inventory WHERE sku = ?", ["ABC"]))
        assert row == {"sku": "ABC"}


def test_several_statements_in_one_call_run_as_d1_runs_them(spec: Database) -> None:
    # Miniflare's D1 runs them all, answers with the last one's rows and counts the changes
    # of all; before, the simulator failed with "You can only execute one statement at a
    # time", so code that worked on Cloudflare failed here.
    with spec.connect() as db:
        db.step = "Stock.reset#1"
        changed = run(
            db.execute("UPDATE inventory SET quantity = 0; UPDATE inventory SET reserved = 1")
        )
        assert changed == 4  # two rows, twice
        # A new table among them gets its writes recorded like any other.
        run(db.execute("CREATE TABLE notes (text TEXT); INSERT INTO notes VALUES ('a;b')"))
        rows = run(
            db.query("INSERT INTO notes VALUES ('c'); SELECT text FROM notes WHERE text = ?", ["c"])
        )
        assert rows == [{"text": "c"}]
        assert run(db.query("SELECT text FROM notes")) == [{"text": "a;b"}, {"text": "c"}]
        assert [w.table for w in db.writes][-3:] == ["inventory", "notes", "notes"]
        # D1 fails parameters on any but the last, and what it refuses stays refused.
        with pytest.raises(DatabaseError, match="only the last may have parameters"):
            run(db.execute("INSERT INTO notes VALUES (?); INSERT INTO notes VALUES (?)", [1, 2]))
        with pytest.raises(DatabaseError, match="BEGIN is refused"):
            run(db.execute("SELECT 1; BEGIN"))
