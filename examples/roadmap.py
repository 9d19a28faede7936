"""The seed's Roadmap domain: AI-prioritised backlog and a generated PRD stored in the database.

`ctx.ai.generate(..., schema=...)` returns a value that validates against the JSON schema. In
the simulator the default provider is deterministic (derived from the seed and the prompt);
pass `ai=RecordedAI({...})` or `ai=WorkersAI(...)` to `Simulator` or `create_test_workflow`
for recorded or real answers.

    awf-sim run examples/roadmap.py
"""

from __future__ import annotations

import json
from typing import Any

from awf_sim import Database, Domain, Workflow

DATABASE = Database(
    schema="""
    CREATE TABLE backlog (id TEXT PRIMARY KEY, startup_id TEXT, title TEXT, status TEXT);
    CREATE TABLE features (id TEXT PRIMARY KEY, startup_id TEXT, title TEXT, created_at INTEGER);
    CREATE TABLE documents (
        feature_id TEXT PRIMARY KEY, type TEXT, startup_id TEXT, content TEXT);
    """,
    rows={
        "backlog": [
            {"id": "B-1", "startup_id": "s-1", "title": "SSO login", "status": "open"},
            {"id": "B-2", "startup_id": "s-1", "title": "Usage billing", "status": "open"},
            {"id": "B-3", "startup_id": "s-1", "title": "Dark mode", "status": "done"},
        ],
        "features": [
            {"id": "F-1", "startup_id": "s-1", "title": "Team workspaces", "created_at": 1},
        ],
    },
)

PRIORITIES = {
    "type": "object",
    "required": ["items"],
    "properties": {
        "items": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["id", "priority", "reasoning"],
                "properties": {
                    "id": {"type": "string"},
                    "priority": {"type": "number", "minimum": 1, "maximum": 5},
                    "reasoning": {"type": "string"},
                },
            },
        }
    },
}


async def prioritize_backlog(startup: dict[str, Any], _: dict[str, Any], ctx: Any) -> Any:
    backlog = await ctx.db.query(
        "SELECT id, title FROM backlog WHERE startup_id = ? AND status = ? ORDER BY id",
        [startup["id"], "open"],
    )
    # The schema names the backlog's own ids, so any valid answer refers to real items.
    schema = json.loads(json.dumps(PRIORITIES))
    schema["properties"]["items"]["items"]["properties"]["id"]["enum"] = [b["id"] for b in backlog]
    return await ctx.ai.generate(
        system="You are a product strategist. Prioritize backlog items by business impact, "
        f"feasibility, user demand and alignment with: {startup['mission']}",
        prompt=f"Prioritize these backlog items:\n{json.dumps(backlog, indent=2)}",
        schema=schema,
    )


async def generate_prd(startup: dict[str, Any], args: dict[str, Any], ctx: Any) -> Any:
    context = await ctx.db.query(
        "SELECT title FROM features WHERE startup_id = ? ORDER BY created_at DESC LIMIT 10",
        [startup["id"]],
    )
    prd = await ctx.ai.generate(
        system="You are a senior product manager writing detailed PRDs.",
        prompt=f"Write a PRD for: {args['feature']['title']}\n\nContext: {json.dumps(context)}",
    )
    # Keyed by feature: writing the PRD again (a retried step) replaces it, never duplicates.
    await ctx.db.execute(
        "INSERT OR REPLACE INTO documents (feature_id, type, startup_id, content) "
        "VALUES (?, 'prd', ?, ?)",
        [args["feature"]["id"], startup["id"], prd],
    )
    return {"prd": prd, "documentId": args["feature"]["id"]}


Roadmap = Domain(
    "ProductRoadmap", {"prioritizeBacklog": prioritize_backlog, "generatePRD": generate_prd}
)


@Workflow(
    "roadmap",
    examples=[{"id": "s-1", "mission": "make onboarding effortless"}],
    domains=[Roadmap],
)
async def roadmap(wf: Any, startup: dict[str, Any]) -> dict[str, Any]:
    priorities = await wf.ProductRoadmap(startup).prioritizeBacklog()
    top = priorities["items"][0]
    prd = await wf.ProductRoadmap(startup).generatePRD(
        feature={"id": top["id"], "title": top["id"]}
    )
    return {"top": top["id"], "documentId": prd["documentId"], "ranked": len(priorities["items"])}
