"""`ctx.db` on Cloudflare: the simulator's database API over a D1 binding."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from ._js import _jsnull, _settle, to_py

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _quote(name: str) -> str:
    if not isinstance(name, str) or not _IDENTIFIER.fullmatch(name):
        raise ValueError(
            f"invalid name {name!r}: names must match ^[A-Za-z_][A-Za-z0-9_]*$ "
            "(letters, digits and _, not starting with a digit)"
        )
    return '"' + name + '"'


def _positional(sql: str, params: Mapping[str, Any]) -> tuple[str, list[Any]]:
    """`:name`, `@name` and `$name` placeholders as `?N` (D1 binds positional values only)."""
    out: list[str] = []
    order: dict[str, int] = {}
    i, n = 0, len(sql)
    while i < n:
        ch = sql[i]
        if ch in "'\"`[":
            close = "]" if ch == "[" else ch
            end = sql.find(close, i + 1)
            end = n - 1 if end < 0 else end
            out.append(sql[i : end + 1])
            i = end + 1
        elif sql.startswith("--", i):
            end = sql.find("\n", i)
            end = n if end < 0 else end
            out.append(sql[i:end])
            i = end
        elif sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            end = n if end < 0 else end + 2
            out.append(sql[i:end])
            i = end
        elif ch in ":@$" and i + 1 < n and (sql[i + 1].isalpha() or sql[i + 1] == "_"):
            j = i + 1
            while j < n and (sql[j].isalnum() or sql[j] == "_"):
                j += 1
            key = sql[i + 1 : j]
            if key not in params:
                raise ValueError(f"no value for SQL parameter {sql[i:j]} in {sorted(params)}")
            index = order.setdefault(key, len(order) + 1)
            out.append(f"?{index}")
            i = j
        else:
            out.append(ch)
            i += 1
    return "".join(out), [params[key] for key in order]


def _bind_value(value: Any) -> Any:
    """A Python value as D1 binds it: the simulator's encoding (bool as 0/1, JSON text for
    dicts and lists), and None as JavaScript null."""
    if value is None:
        return _jsnull()
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, dict | list | tuple):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return value


class D1Database:
    """`ctx.db` on Cloudflare: the simulator's database API over a D1 binding.

    `query` / `query_one` / `execute` / `insert` / `delete` / `transaction()`, all async, with
    `?` placeholders (and `:name` ones, rewritten to positional for D1). D1 has no
    interactive transactions: statements inside `transaction()` run one by one, each
    committed on its own (see the bundle's README).
    """

    __slots__ = ("_binding",)

    def __init__(self, binding: Any) -> None:
        self._binding = binding

    def _statement(self, sql: str, params: Sequence[Any] | Mapping[str, Any]) -> Any:
        if isinstance(params, Mapping):
            sql, values = _positional(sql, params)
        else:
            values = list(params)
        statement = self._binding.prepare(sql)
        if values:
            statement = statement.bind(*[_bind_value(v) for v in values])
        return statement

    async def query(
        self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()
    ) -> list[dict[str, Any]]:
        """Rows of a statement as dicts (column -> value)."""
        result = to_py(await _settle(self._statement(sql, params).all())) or {}
        return [dict(row) for row in (result.get("results") or [])]

    async def query_one(
        self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()
    ) -> dict[str, Any] | None:
        """The first row, or None."""
        row = to_py(await _settle(self._statement(sql, params).first()))
        return dict(row) if row else None

    async def execute(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> int:
        """Runs a statement; returns the number of rows it changed."""
        result = to_py(await _settle(self._statement(sql, params).run())) or {}
        changes = (result.get("meta") or {}).get("changes") or 0
        return max(0, int(changes))

    async def insert(self, table: str, row: Mapping[str, Any]) -> dict[str, Any]:
        """Inserts one row; returns it as stored, with its id and defaults."""
        columns = [_quote(column) for column in row]
        if columns:
            marks = ", ".join("?" * len(columns))
            sql = f"INSERT INTO {_quote(table)} ({', '.join(columns)}) VALUES ({marks})"
        else:
            sql = f"INSERT INTO {_quote(table)} DEFAULT VALUES"
        rows = await self.query(sql + " RETURNING *", list(row.values()))
        return rows[0] if rows else {}

    async def delete(self, table: str, id: Any) -> int:
        """Deletes the row whose `id` column equals `id`; returns 0 or 1."""
        return await self.execute(f"DELETE FROM {_quote(table)} WHERE id = ?", [id])

    def transaction(self) -> _Transaction:
        """`async with ctx.db.transaction() as tx:`; on D1 its statements are not atomic."""
        return _Transaction(self)

    def __repr__(self) -> str:
        return "<D1Database>"


class _Transaction:
    __slots__ = ("_db",)

    def __init__(self, db: D1Database) -> None:
        self._db = db

    async def __aenter__(self) -> D1Database:
        return self._db

    async def __aexit__(self, *exc: object) -> None:
        return None
