"""The weekly report, ported from the seed: scheduled every Monday at 9am, with parallel steps.

`asyncio.gather` runs the three metric steps at once; each is its own durable step.

    awf-sim run examples/weekly_report.py
"""

from __future__ import annotations

import asyncio
from typing import Any

from awf_sim import Database, Domain, Workflow

DATABASE = Database(
    schema="""
    CREATE TABLE reports (week TEXT PRIMARY KEY, body TEXT);
    CREATE TABLE posts (idempotency_key TEXT PRIMARY KEY, channel TEXT, week TEXT);
    """,
    rows={"reports": [{"week": "2025-W52", "body": '{"sales": {"revenue": 9000}}'}]},
)


async def weekly_metrics(source: str, _: dict[str, Any], ctx: Any) -> dict[str, Any]:
    return {"source": source, "revenue": 12_500, "orders": 311}


async def weekly_stats(source: str, _: dict[str, Any], ctx: Any) -> dict[str, Any]:
    return {"source": source, "opened": 42, "closed": 39, "medianHours": 5.5}


async def sprint_metrics(source: str, _: dict[str, Any], ctx: Any) -> dict[str, Any]:
    return {"source": source, "velocity": 34, "carryOver": 3}


async def generate_insights(analyst: str, args: dict[str, Any], ctx: Any) -> list[str]:
    sales, previous = args["sales"], args["previousWeek"]
    trend = "up" if sales["revenue"] >= previous.get("sales", {}).get("revenue", 0) else "down"
    return [
        f"revenue is {trend} week over week",
        f"support closed {args['support']['closed']} of {args['support']['opened']} tickets",
    ]


async def get_report(week: str, _: dict[str, Any], ctx: Any) -> dict[str, Any]:
    import json

    row = await ctx.db.query_one("SELECT body FROM reports WHERE week = ?", [week])
    return json.loads(row["body"]) if row else {}


async def create_report(week: str, args: dict[str, Any], ctx: Any) -> dict[str, Any]:
    import json

    report = {"week": week, **args}
    await ctx.db.execute(
        "INSERT OR REPLACE INTO reports (week, body) VALUES (?, ?)", [week, json.dumps(report)]
    )
    return report


async def post(channel: str, args: dict[str, Any], ctx: Any) -> dict[str, Any]:
    await ctx.db.execute(
        "INSERT OR IGNORE INTO posts (idempotency_key, channel, week) VALUES (?, ?, ?)",
        [ctx.idempotency_key, channel, args["data"]["week"]],
    )
    return {"posted": True}


Analytics = Domain("Analytics", {"weeklyMetrics": weekly_metrics})
Support = Domain("Support", {"weeklyStats": weekly_stats})
Engineering = Domain("Engineering", {"sprintMetrics": sprint_metrics})
Analyst = Domain("AI", {"generateInsights": generate_insights})
Reports = Domain("Reports", {"get": get_report, "create": create_report})
ReportSlack = Domain("ReportSlack", {"post": post})


async def weekly_report(wf: Any) -> dict[str, Any]:
    sales, support, engineering = await asyncio.gather(
        wf.Analytics("sales").weeklyMetrics(),
        wf.Support("tickets").weeklyStats(),
        wf.Engineering("velocity").sprintMetrics(),
    )
    insights = await wf.AI("analyst").generateInsights(
        sales=sales,
        support=support,
        engineering=engineering,
        previousWeek=await wf.Reports("2025-W52").get(),
    )
    report = await wf.Reports("2026-W01").create(
        metrics={"sales": sales, "support": support, "engineering": engineering},
        insights=insights,
    )
    await wf.ReportSlack("#leadership").post(template="weekly-report", data=report)
    return report


WeeklyReport = (
    Workflow(
        "weekly-report",
        examples=[{}],
        domains=[Analytics, Support, Engineering, Analyst, Reports, ReportSlack],
    )
    .every("Monday at 9am")
    .run(weekly_report)
)
