"""A db, ai or http that cannot serve `ctx` is refused when the simulation is made, in one line
that says what to give instead (the World's checks, which the Simulator makes too).

Before, each was taken as it was: `HTTP = 42` or a real `httpx.AsyncHTTPTransport()` failed the
handler's first request, through every retry (5 min 10 s of virtual time, exit 1), and a flow
file's `DATABASE = {"t": [...]}` was handed to handlers as `ctx.db` itself.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from awf_sim import Domain, Simulator, Workflow
from awf_sim.dsl._errors import DefinitionError
from awf_sim.testing import create_test_workflow


async def fetch(context: Any, args: Any, ctx: Any) -> int:
    return (await ctx.http.get("https://api.example.com/")).status_code


Fetcher = Domain("Fetcher", {"fetch": fetch})
flow = Workflow("fetcher", lambda wf, p: wf.Fetcher({}).fetch(), domains=[Fetcher])


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"db": {"t": [{"a": 1}]}}, r"db must be a Database .*mock_database"),
        ({"db": "orders.db"}, r"db must be a Database .* got str$"),
        ({"ai": "gpt-4"}, r"ai \(a flow file's AI\) must be an AI provider .* got str$"),
        ({"ai": {"hello": "world"}}, r"got dict; for recorded answers write RecordedAI"),
        ({"http": 42}, r"cannot use int as a mock; give a respx"),
        ({"http": httpx.AsyncHTTPTransport()}, r"AsyncHTTPTransport reaches the real network"),
    ],
)
def test_the_simulator_refuses_what_cannot_serve_ctx(options: dict[str, Any], message: str) -> None:
    with pytest.raises(DefinitionError, match=message) as info:
        Simulator(**options)
    assert "\n" not in str(info.value)
    with pytest.raises(DefinitionError) as info:  # its own check may speak first, as itself
        create_test_workflow(flow, **options).run({})
    assert "\n" not in str(info.value)


def test_what_can_serve_ctx_is_taken() -> None:
    with Simulator(http=lambda request: httpx.Response(204)) as sim:
        inst = sim.create(flow, {})
        sim.run()
        assert inst.status()["output"] == 204


def test_a_flow_files_bad_http_is_exit_2_and_one_line(tmp_path: Path) -> None:
    path = tmp_path / "flow.py"
    path.write_text(
        "from awf_sim import Domain, Workflow\n"
        "HTTP = 42\n"
        "async def fetch(c, a, ctx):\n"
        "    return (await ctx.http.get('https://api.example.com/')).status_code\n"
        "F = Domain('F', {'fetch': fetch})\n"
        "@Workflow('f', examples=[{}])\n"
        "async def f(wf, p):\n"
        "    return await wf.F({}).fetch()\n"
    )
    for command in ("run", "chaos"):
        done = subprocess.run(
            [sys.executable, "-m", "awf_sim.cli", command, str(path)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 2, done.stderr
        assert done.stderr.count("\n") == 1, done.stderr
        assert "HTTP: cannot use int as a mock" in done.stderr
        assert "Traceback" not in done.stderr
