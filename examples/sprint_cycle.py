"""The sprint cycle, ported from the seed: plan, then hibernate two weeks for the sprint's end.

awf-sim run examples/sprint_cycle.py
"""

from __future__ import annotations

from typing import Any

from awf_sim import Database, Domain, Workflow

DATABASE = Database(
    schema="""
    CREATE TABLE backlog (id TEXT PRIMARY KEY, title TEXT, impact INTEGER, effort INTEGER);
    CREATE TABLE sprints (startup_id TEXT, number INTEGER, items TEXT,
                          PRIMARY KEY (startup_id, number));
    CREATE TABLE standups (idempotency_key TEXT PRIMARY KEY, channel TEXT, time TEXT);
    """,
    rows={
        "backlog": [
            {"id": f"B-{i}", "title": f"feature {i}", "impact": (i * 7) % 10, "effort": 1 + i % 4}
            for i in range(1, 15)
        ]
    },
)


async def prioritize_backlog(startup: dict[str, Any], _: dict[str, Any], ctx: Any) -> list[Any]:
    rows = await ctx.db.query("SELECT id, impact, effort FROM backlog ORDER BY id")
    ranked = sorted(rows, key=lambda r: (-r["impact"] / r["effort"], r["id"]))
    return [{"id": r["id"], "priority": n + 1} for n, r in enumerate(ranked)]


async def create_sprint(startup: dict[str, Any], args: dict[str, Any], ctx: Any) -> dict[str, Any]:
    import json

    await ctx.db.execute(
        "INSERT OR IGNORE INTO sprints (startup_id, number, items) VALUES (?, 1, ?)",
        [startup["id"], json.dumps([i["id"] for i in args["items"]])],
    )
    return {"number": 1, "items": len(args["items"]), "duration": args["duration"]}


async def schedule_daily(team: Any, args: dict[str, Any], ctx: Any) -> dict[str, Any]:
    await ctx.db.execute(
        "INSERT OR IGNORE INTO standups (idempotency_key, channel, time) VALUES (?, ?, ?)",
        [ctx.idempotency_key, args["channel"], args["time"]],
    )
    return {"scheduled": True}


async def aggregate_feedback(team: Any, _: dict[str, Any], ctx: Any) -> list[str]:
    return ["more pairing", "fewer meetings"]


async def generate_retro(startup: dict[str, Any], args: dict[str, Any], ctx: Any) -> dict[str, Any]:
    done = args["sprint"].get("completed", 0)
    return {"summary": f"{done} items done", "actions": args["teamFeedback"][:1]}


async def plan_next(startup: dict[str, Any], args: dict[str, Any], ctx: Any) -> dict[str, Any]:
    return {"next": 2, "carried": len(args["remainingItems"])}


Roadmap = Domain("Roadmap", {"prioritizeBacklog": prioritize_backlog})
Sprint = Domain("Sprint", {"create": create_sprint, "planNext": plan_next})
Standup = Domain(
    "Standup", {"scheduleDaily": schedule_daily, "aggregateFeedback": aggregate_feedback}
)
Retro = Domain("Retro", {"generate": generate_retro})


@Workflow(
    "sprint-cycle",
    examples=[{"id": "s-1", "team": ["ana", "ben"], "slackChannel": "#eng"}],
    events=[{"type": "sprint-ended", "payload": {"completed": 9}, "after": "13 days"}],
    domains=[Roadmap, Sprint, Standup, Retro],
)
async def sprint_cycle(wf: Any, startup: dict[str, Any]) -> dict[str, Any]:
    priorities = await wf.Roadmap(startup).prioritizeBacklog()
    await wf.Sprint(startup).create(items=priorities[:10], duration="2 weeks")
    await wf.Standup(startup["team"]).scheduleDaily(time="9am", channel=startup["slackChannel"])

    # Hibernates for up to two weeks, waiting for the sprint to end.
    sprint_result = await wf.wait_for("sprint-complete", type="sprint-ended", timeout="2 weeks")

    retro = await wf.Retro(startup).generate(
        sprint=sprint_result, teamFeedback=await wf.Standup(startup["team"]).aggregateFeedback()
    )
    await wf.Sprint(startup).planNext(previousRetro=retro, remainingItems=priorities[10:])
    return {"sprint": sprint_result, "retro": retro}
