"""The size of run()'s output, as Cloudflare's engine treats it (scenarios p6-output-*).

The engine has no 1 MiB limit on the output (that one is a step result's): it writes the JSON
{"result": OUTPUT} into one SQLite row of at most 2,200,000 bytes, so 2,199,955 bytes of output
JSON complete and one byte more ends the instance errored with SQLite's own text.
"""

from __future__ import annotations

import itertools
import json
import textwrap
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from awf_sim import Workflow
from awf_sim.cli import app
from awf_sim.engine._body import MAX_OUTPUT_BYTES

TOO_BIG = {"name": "Error", "message": "string or blob too big: SQLITE_TOOBIG"}
PART = 700_000  # characters per step result: within a step's 1 MiB
_NUMBER = itertools.count()


def _flow(tail: str) -> Workflow:
    """Three step results under 1 MiB each, joined with `tail` into one output string."""

    @Workflow(f"output-size-{next(_NUMBER)}")
    async def flow(wf: Any, _: Any) -> Any:
        parts = [await wf.do(f"part{i}", lambda: "x" * PART) for i in range(3)]
        return "".join(parts) + tail

    return flow


def _end(make_sim: Any, tail: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    sim = make_sim()
    inst = sim.create(_flow(tail))
    sim.run()
    return inst.status(), inst.timeline


def test_an_output_at_the_engines_limit_completes(make_sim: Any) -> None:
    # The output's JSON is the string in quotes: 2 bytes more than its characters.
    tail = "y" * (MAX_OUTPUT_BYTES - 2 - 3 * PART)
    status, _ = _end(make_sim, tail)
    assert status["status"] == "complete"
    assert len(json.dumps(status["output"])) == MAX_OUTPUT_BYTES == 2_199_955


def test_one_byte_over_the_engines_limit_errors_with_sqlites_text(make_sim: Any) -> None:
    tail = "y" * (MAX_OUTPUT_BYTES - 1 - 3 * PART)
    status, timeline = _end(make_sim, tail)
    assert (status["status"], status["output"], status["error"]) == ("errored", None, TOO_BIG)
    # Every step completed and was kept; only the instance's end fails.
    assert [e["kind"] for e in timeline].count("checkpoint") == 3
    assert timeline[-1]["kind"] == "workflow-failure"
    assert timeline[-1]["error"] == TOO_BIG


def test_the_limit_counts_utf8_bytes_not_characters(make_sim: Any) -> None:
    # "é" is 2 bytes of UTF-8: half as many characters as the limit's bytes already overflow.
    tail = "é" * ((MAX_OUTPUT_BYTES - 3 * PART) // 2)
    status, _ = _end(make_sim, tail)
    assert status["error"] == TOO_BIG


def test_awf_sim_run_exits_by_the_output_size(tmp_path: Path) -> None:
    flow = tmp_path / "big_output.py"
    flow.write_text(
        textwrap.dedent(
            """
            from awf_sim import Domain, Workflow

            async def part(key, args, ctx):
                return "x" * args["n"]  # within a step's 1 MiB

            D = Domain("D", {"part": part})

            @Workflow("w", examples=[{"n": 400_000}, {"n": 800_000}], domains=[D])
            async def w(wf, p):
                return [await wf.D(k).part(n=p["n"]) for k in "abc"]
            """
        )
    )
    runner = CliRunner()
    # 1.2 MB of output: over 1 MiB, which Cloudflare's engine stores.
    ok = runner.invoke(app, ["run", str(flow), "--input", '{"n": 400000}', "--json"])
    assert ok.exit_code == 0, ok.output[-2000:]
    assert json.loads(ok.stdout)["status"] == "complete"
    # 2.4 MB: over what it stores.
    over = runner.invoke(app, ["run", str(flow), "--input", '{"n": 800000}', "--json"])
    assert over.exit_code == 1, over.output[-2000:]
    report = json.loads(over.stdout)
    assert (report["status"], report["error"]) == ("errored", TOO_BIG)
