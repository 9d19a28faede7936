"""Comparing runs: which values legitimately differ (volatility masks), the concrete
differences a report prints (`inventory.reserved for ABC: expected 1, got 2`), and where in
the user's code a step's handler or a workflow is defined.

Values that depend on the wall clock or on the seed (a timestamp a handler writes, an AI
answer) differ between two fault-free runs on different clocks and seeds: `build_masks`
compares the baseline with such a probe run, and whatever differs there is not compared.
"""

from __future__ import annotations

import functools
import inspect
import json
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from awf_sim.chaos._model import Masks, Observation, TableMask
from awf_sim.dsl._errors import DefinitionError
from awf_sim.dsl._workflow import Workflow

__all__ = [
    "MAX_LINES",
    "build_masks",
    "db_diff",
    "effects_diff",
    "handler_site",
    "json_diff",
    "json_mask",
    "same",
    "show",
    "workflow_site",
]

MAX_LINES = 12  # difference lines per violation


def same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a == b


def json_mask(a: Any, b: Any) -> Any:
    """Where two JSON values differ: None (nowhere), True (everywhere), or a dict of parts."""
    if same(a, b):
        return None
    if isinstance(a, dict) and isinstance(b, dict) and a.keys() == b.keys():
        sub = {k: m for k in a if (m := json_mask(a[k], b[k])) is not None}
        return sub or None
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        subl = {i: m for i, (x, y) in enumerate(zip(a, b, strict=True)) if (m := json_mask(x, y))}
        return subl or None
    return True


def _key_column(rows: Sequence[Mapping[str, Any]]) -> str | None:
    if not rows:
        return None
    first = next(iter(rows[0]), None)
    if first is None:
        return None
    values = [_hashable(r.get(first)) for r in rows]
    return first if len(set(values)) == len(values) else None


def _hashable(value: Any) -> Any:
    return value if isinstance(value, (str, int, float, bytes, type(None))) else repr(value)


def _row_text(row: Mapping[str, Any]) -> str:
    """A row as JSON in its column order (rows of one table have the same column order)."""
    return json.dumps(row, ensure_ascii=False, default=str)


def _table_mask(a: Sequence[Mapping[str, Any]], b: Sequence[Mapping[str, Any]]) -> TableMask:
    key = _key_column(a) or _key_column(b)
    if key is None:
        alike = sorted(map(_row_text, a)) == sorted(map(_row_text, b))
        return TableMask(None, not alike, {})
    ka = {_hashable(r.get(key)): r for r in a}
    kb = {_hashable(r.get(key)): r for r in b}
    if len(ka) != len(a) or len(kb) != len(b) or set(ka) != set(kb):
        return TableMask(key, True, {})
    cells: dict[Any, set[str]] = {}
    for k, row in ka.items():
        other = kb[k]
        cols = {c for c in set(row) | set(other) if not same(row.get(c), other.get(c))}
        if cols:
            cells[k] = cols
    return TableMask(key, False, cells)


def build_masks(base: Observation, probe: Observation) -> Masks:
    """What may differ between runs without a fault being the cause (clock- or seed-bound)."""
    snap_a = base.snapshot or {}
    snap_b = probe.snapshot or {}
    tables = {
        t: _table_mask(snap_a.get(t, []), snap_b.get(t, [])) for t in set(snap_a) | set(snap_b)
    }
    effects = (
        base.effects is not None and probe.effects is not None and base.effects != probe.effects
    )
    return Masks(
        status=base.status != probe.status,
        error=not same(base.error, probe.error),
        output=json_mask(base.output, probe.output),
        tables=tables,
        effects=bool(effects),
    )


# -- differences ----------------------------------------------------------------------------


def show(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 80 else text[:77] + "..."


def json_diff(expected: Any, got: Any, mask: Any, path: str, out: list[str]) -> None:
    """Lines `path: expected X, got Y` where two JSON values differ outside the mask."""
    if mask is True or same(expected, got) or len(out) >= MAX_LINES:
        return
    sub = mask if isinstance(mask, dict) else {}
    if isinstance(expected, dict) and isinstance(got, dict):
        for k in list(expected) + [k for k in got if k not in expected]:
            where = f"{path}.{k}"
            if k not in got:
                out.append(f"{where}: expected {show(expected[k])}, missing")
            elif k not in expected:
                out.append(f"{where}: not expected, got {show(got[k])}")
            else:
                json_diff(expected[k], got[k], sub.get(k), where, out)
        return
    if isinstance(expected, list) and isinstance(got, list) and len(expected) == len(got):
        for i, (x, y) in enumerate(zip(expected, got, strict=True)):
            json_diff(x, y, sub.get(i), f"{path}[{i}]", out)
        return
    out.append(f"{path}: expected {show(expected)}, got {show(got)}")


def _key_text(value: Any) -> str:
    return value if isinstance(value, str) else repr(value)


def db_diff(
    expected: Mapping[str, list[dict[str, Any]]],
    got: Mapping[str, list[dict[str, Any]]],
    masks: Mapping[str, TableMask],
    *,
    surplus_only: bool = False,
    inserted: Mapping[str, frozenset[Any]] | None = None,
) -> list[str]:
    """`inventory.reserved for ABC: expected 2, got 4`, row by row (key: the first column).
    `surplus_only`: only rows that should not be there (a run that ended otherwise than the
    fault-free one never made some of its writes; that is not a repeated effect).
    `inserted`: per table, the keys of the rows the fault-free run inserted (see
    `_renumbered`)."""
    out: list[str] = []
    for table in sorted(set(expected) | set(got)):
        a, b = expected.get(table, []), got.get(table, [])
        tm = masks.get(table)
        if tm is not None and tm.count_only:
            if len(b) > len(a) or (len(b) < len(a) and not surplus_only):
                out.append(f"{table}: expected {_rows(len(a))}, got {len(b)}")
            continue
        key = tm.key if tm is not None else _key_column(a) or _key_column(b)
        ka = {_hashable(r.get(key)): r for r in a} if key else {}
        kb = {_hashable(r.get(key)): r for r in b} if key else {}
        if key is None or len(ka) != len(a) or len(kb) != len(b):
            ca, cb = Counter(map(_row_text, a)), Counter(map(_row_text, b))
            out += [f"{table}: extra row {text}" for text in sorted((cb - ca).elements())]
            if not surplus_only:
                out += [f"{table}: missing row {text}" for text in sorted((ca - cb).elements())]
            continue
        if inserted is not None and table in inserted:
            ka, kb = _renumbered(ka, kb, key, inserted[table], tm.cells if tm else {})
        out += [f"{table}: extra row {_row_text(row)}" for k, row in kb.items() if k not in ka]
        if surplus_only:
            continue
        volatile_cells = tm.cells if tm is not None else {}
        for k, row in ka.items():
            if k not in kb:
                out.append(f"{table}: row {key}={_key_text(k)} missing (expected {_row_text(row)})")
                continue
            other = kb[k]
            volatile = volatile_cells.get(k, set())
            for col in list(row) + [c for c in other if c not in row]:
                if col == key or col in volatile or same(row.get(col), other.get(col)):
                    continue
                out.append(
                    f"{table}.{col} for {_key_text(k)}: expected {show(row.get(col))}, "
                    f"got {show(other.get(col))}"
                )
    return out


def _renumbered(
    ka: dict[Any, dict[str, Any]],
    kb: dict[Any, dict[str, Any]],
    key: str,
    fresh: frozenset[Any],
    volatile: Mapping[Any, set[str]],
) -> tuple[dict[Any, dict[str, Any]], dict[Any, dict[str, Any]]]:
    """`ka` and `kb` without the rows the runs inserted, when those rows are the same but for
    their integer key: SQLite numbers rows (INTEGER PRIMARY KEY) in the order they are
    inserted, and steps that run concurrently (asyncio.gather) insert in another order once a
    fault delays one of them, as they may on Cloudflare. The same rows under other numbers are
    not a repeated effect; rows that differ otherwise are compared as before."""
    if None in fresh or not all(isinstance(k, int) for k in (*ka, *kb)):
        return ka, kb
    seed = set(ka) - fresh  # rows the database started with (or a step updated)
    new_a = [row for k, row in ka.items() if k not in seed]
    new_b = [row for k, row in kb.items() if k not in seed]
    if not new_a or len(new_a) != len(new_b):
        return ka, kb
    # Clock- or seed-bound cells of inserted rows (a created_at) are not compared either.
    skip = {key}.union(*(volatile.get(k, set()) for k in ka if k not in seed))

    def texts(rows: list[dict[str, Any]]) -> Counter[str]:
        return Counter(_row_text({c: v for c, v in r.items() if c not in skip}) for r in rows)

    if texts(new_a) != texts(new_b):
        return ka, kb
    return (
        {k: r for k, r in ka.items() if k in seed},
        {k: r for k, r in kb.items() if k in seed},
    )


def _rows(n: int) -> str:
    return f"{n} row" if n == 1 else f"{n} rows"


def effects_diff(
    expected: Mapping[str, int],
    got: Mapping[str, int],
    volatile: bool,
    *,
    surplus_only: bool = False,
) -> list[str]:
    """External effects (identity -> count) that differ; with volatile identities (they depend
    on the clock or seed), only the totals compare. `surplus_only`: only effects made more
    often than in the fault-free run."""
    if volatile:
        a, b = sum(expected.values()), sum(got.values())
        return (
            [f"external effects: expected {a}, got {b}"]
            if a != b and not (surplus_only and b < a)
            else []
        )
    out = []
    for identity in sorted(set(expected) | set(got)):
        a, b = expected.get(identity, 0), got.get(identity, 0)
        if a != b and not (surplus_only and b < a):
            times = "once" if b == 1 else f"{b} times"
            out.append(f"external effect made {times}, expected {a}: {identity}")
    return out


@functools.lru_cache(maxsize=256)
def _site(obj: Any) -> str | None:
    try:
        target = inspect.unwrap(obj)
        file = inspect.getsourcefile(target)
        line = inspect.getsourcelines(target)[1]
    except (TypeError, OSError):
        return None
    if file is None:
        return None
    try:
        rel = os.path.relpath(file)
    except ValueError:  # another drive (Windows)
        rel = file
    return f"{file if rel.startswith('..') else rel}:{line}"


def handler_site(workflow: Workflow, path: str) -> str | None:
    """`examples/order_processing.py:56`: where the handler of a domain step is defined."""
    parts = path.split(".")
    if len(parts) < 2:
        return None
    try:
        spec = workflow.resolve_domain(parts[0]).spec(parts[1])
    except DefinitionError:
        return None
    return _site(spec.handler)


def workflow_site(workflow: Workflow) -> str | None:
    return _site(workflow.fn) if workflow.fn is not None else None
