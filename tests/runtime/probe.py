"""A flow that walks every path where Cloudflare's Python runtime and the simulator once
disagreed, so the real-runtime check compares them there:

1. a handler's NonRetryableError under a retry policy (the runtime's own SDK retried it);
2. JavaScript null: `None` in params, NULL columns from D1, `None` bound as a parameter, and
   `None` in a workflow's output (the runtime dropped it); and a whole-number REAL from D1;
3. two identical domain calls in parallel (the SDK keyed in-flight steps by name);
4. an uncaught step failure (the runtime stored a Python traceback as the message);
5. an event wait that times out (the error arrived named `Error`);
and a cron workflow, started through the Worker's `scheduled` handler.
"""

from __future__ import annotations

import asyncio
from typing import Any

from awf_sim import Database, Domain, NonRetryableError, StepError, Workflow

DATABASE = Database(
    schema="""
CREATE TABLE attempts (step TEXT PRIMARY KEY, count INTEGER NOT NULL);
CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT, amount REAL, whole REAL);
CREATE TABLE ticks (id INTEGER PRIMARY KEY AUTOINCREMENT, what TEXT NOT NULL);
""",
    rows={"notes": [{"id": 1, "body": None, "amount": 420.5, "whole": 7.0}]},
)

_COUNT = (
    "INSERT INTO attempts (step, count) VALUES (?, 1) "
    "ON CONFLICT(step) DO UPDATE SET count = count + 1"
)


async def decline(order: dict[str, Any], _: dict[str, Any], ctx: Any) -> None:
    await ctx.db.execute(_COUNT, ["decline"])
    raise NonRetryableError(f"declined {order['id']}")


async def read_note(order: dict[str, Any], args: dict[str, Any], ctx: Any) -> dict[str, Any]:
    row = await ctx.db.query_one("SELECT body, amount, whole FROM notes WHERE id = ?", [1])
    await ctx.db.execute(
        "INSERT INTO notes (id, body, amount) VALUES (?, ?, ?)", [2, args.get("body"), 1.5]
    )
    back = await ctx.db.query_one("SELECT body FROM notes WHERE id = ?", [2])
    return {
        "columnIsNone": row is not None and row["body"] is None,
        "boundIsNone": back is not None and back["body"] is None,
        "argIsNone": args.get("body") is None,
        "amount": row["amount"] if row else None,
        # D1 answers in JavaScript numbers: a whole REAL is an int in Python on Cloudflare
        "wholeType": type(row["whole"]).__name__ if row else None,
        "missing": None,
    }


async def bump(order: dict[str, Any], _: dict[str, Any], ctx: Any) -> int:
    await ctx.db.execute("INSERT INTO ticks (what) VALUES (?)", [f"bump {order['id']}"])
    return 1


async def explode(order: dict[str, Any], _: dict[str, Any], ctx: Any) -> None:
    await ctx.db.execute(_COUNT, ["explode"])
    raise ValueError(f"boom {order['id']}")


Probe = Domain(
    "Probe",
    {
        "decline": {
            "handler": decline,
            "retries": {"limit": 3, "delay": "1 second", "backoff": "constant"},
        },
        "read_note": read_note,
        "bump": bump,
        "explode": {
            "handler": explode,
            "retries": {"limit": 1, "delay": "1 second", "backoff": "constant"},
        },
    },
)


@Workflow("probe-nonretryable", examples=[{"id": "o-1"}], domains=[Probe])
async def probe_nonretryable(wf: Any, order: dict[str, Any]) -> dict[str, Any]:
    try:
        await wf.Probe(order).decline()
    except NonRetryableError as exc:
        return {"caught": "NonRetryableError", "message": exc.message}
    return {"caught": None}


@Workflow("probe-nulls", examples=[{"id": "o-2", "maybe": None, "body": None}], domains=[Probe])
async def probe_nulls(wf: Any, order: dict[str, Any]) -> dict[str, Any]:
    note = await wf.Probe(order).read_note(body=order.get("body"))
    return {"note": note, "paramIsNone": order.get("maybe") is None, "nothing": None}


@Workflow("probe-parallel", examples=[{"id": "o-3"}], domains=[Probe])
async def probe_parallel(wf: Any, order: dict[str, Any]) -> dict[str, Any]:
    first, second = await asyncio.gather(wf.Probe(order).bump(), wf.Probe(order).bump())
    return {"sum": first + second}


@Workflow("probe-uncaught", examples=[{"id": "o-4"}], domains=[Probe])
async def probe_uncaught(wf: Any, order: dict[str, Any]) -> None:
    await wf.Probe(order).explode()


@Workflow("probe-wait", examples=[{"id": "o-5"}], domains=[Probe])
async def probe_wait(wf: Any, order: dict[str, Any]) -> dict[str, Any]:
    try:
        await wf.wait_for("approval", type="approval", timeout="1 second")
    except StepError as exc:
        return {"timedOut": exc.name}
    return {"timedOut": None}


@Workflow("probe-cron", domains=[Probe]).every("every 5 minutes").run
async def probe_cron(wf: Any, tick: dict[str, Any]) -> dict[str, Any]:
    await wf.Probe({"id": "cron"}).bump()
    return {"cron": tick["cron"], "at": tick["scheduledTime"]}
