"""Issue 17.1, 17.2 and the size limits: busy coroutines are bounded (also off the main thread,
as in `arun`), chaos has caps and says how long it will take, a dying `--jobs` worker is a
failure, and a run output over what the engine stores or a lone surrogate is judged, never a
crash."""

from __future__ import annotations

import asyncio
import json
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import awf_sim.cli
from awf_sim import Domain, Simulator, Workflow
from awf_sim.chaos import _campaign
from awf_sim.cli import app
from awf_sim.testing import WorkflowFailed, create_test_workflow
from tests.reliability.conftest import check_failure

pytestmark = pytest.mark.filterwarnings("ignore:Domain '.*' defined at:UserWarning")
runner = CliRunner()


def write(tmp_path: Path, text: str, name: str = "flow.py") -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


# -- busy coroutines: `await asyncio.sleep(0)` forever ---------------------------------------


async def _spinning_handler(c: Any, a: Any, ctx: Any) -> Any:
    while True:
        await asyncio.sleep(0)


SPINNER = Domain(
    "Spinner", {"spin": {"handler": _spinning_handler, "retries": {"limit": 0, "delay": 1}}}
)


@Workflow("spins-in-a-handler", domains=[SPINNER])
async def spins_in_a_handler(wf: Any, p: Any) -> Any:
    await wf.Spinner({}).spin()


@Workflow("spins-in-the-body")
async def spins_in_the_body(wf: Any, p: Any) -> Any:
    while True:
        await asyncio.sleep(0)


def _run(flow: Workflow) -> dict[str, Any]:
    with Simulator(cpu_ms=300) as sim:
        inst = sim.create(flow, {})
        sim.run()
        return inst.status()


@pytest.mark.parametrize("on", ["main thread", "worker thread"])
@pytest.mark.parametrize("flow", [spins_in_a_handler, spins_in_the_body], ids=lambda f: f.name)
def test_a_coroutine_that_spins_forever_fails_by_name(within: Any, flow: Workflow, on: str) -> None:
    out: list[dict[str, Any]] = []
    with within(60):
        if on == "main thread":
            out.append(_run(flow))
        else:  # where arun() and asyncio.to_thread run a simulation: no signals there
            worker = threading.Thread(target=lambda: out.append(_run(flow)))
            worker.start()
            worker.join(50)
    (status,) = out
    assert status["status"] == "errored"
    assert status["error"]["name"] == "CpuLimitExceeded"
    assert "300 ms of CPU time" in status["error"]["message"]
    if flow is spins_in_a_handler:
        assert "Spinner.spin" in status["error"]["message"]
        assert "asyncio.sleep(0)" in status["error"]["message"]


def test_arun_enforces_the_budget(within: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # arun runs the simulation on a worker thread; the budget used to be off there.
    defaults = dict(Simulator.__init__.__kwdefaults__ or {})
    monkeypatch.setattr(Simulator.__init__, "__kwdefaults__", {**defaults, "cpu_ms": 300})
    test_workflow = create_test_workflow(spins_in_a_handler)
    with within(60), pytest.raises(WorkflowFailed, match=r"CpuLimitExceeded: .* Spinner\.spin"):
        asyncio.run(test_workflow.arun({}))


def test_a_coroutine_that_yields_while_time_moves_is_not_stopped(within: Any) -> None:
    async def ticking(c: Any, a: Any, ctx: Any) -> Any:
        for _ in range(2000):
            await asyncio.sleep(0.001)  # virtual time moves: progress, not a spin
        return "done"

    ticker = Domain("Ticker", {"tick": ticking})

    @Workflow("ticks", domains=[ticker])
    async def ticks(wf: Any, p: Any) -> Any:
        return await wf.Ticker({}).tick()

    with within(60):
        status = _run(ticks)
    assert status["status"] == "complete", status["error"]


def test_awf_sim_run_reports_a_spinning_handler_by_name(within: Any, tmp_path: Path) -> None:
    flow = write(
        tmp_path,
        """
        import asyncio
        from awf_sim import Domain, Workflow

        async def spin(c, a, ctx):
            while True:
                await asyncio.sleep(0)

        D = Domain("D", {"spin": {"handler": spin, "retries": {"limit": 0, "delay": 1}}})

        @Workflow("w", domains=[D])
        async def w(wf, p):
            await wf.D({}).spin()
        """,
    )
    with within(60):
        result = runner.invoke(app, ["run", flow, "--cpu-ms", "300", "--json"])
    assert result.exit_code == 1
    error = json.loads(result.stdout)["error"]
    assert error["name"] == "CpuLimitExceeded"
    assert "D.spin" in error["message"]


# -- a --jobs worker that the code under test ends -------------------------------------------

EXITS_UNDER_FAULTS = """
import os
from awf_sim import Domain, Workflow

async def boom(key, args, ctx):
    if ctx.attempt > 2:
        os._exit(3)
    return 1

D = Domain("D", {"boom": boom})

@Workflow("w", examples=[{}], domains=[D])
async def w(wf, p):
    await wf.D("x").boom()
    await wf.sleep("s", "1 hour")
    return {"ok": True}
"""


@pytest.mark.parametrize("json_out", [False, True], ids=["rich", "json"])
def test_a_worker_that_os_exits_is_a_failure_not_a_hang(
    within: Any, tmp_path: Path, json_out: bool
) -> None:
    flow = write(tmp_path, EXITS_UNDER_FAULTS)
    args = ["chaos", flow, "--jobs", "2", "--runs", "60"] + (["--json"] if json_out else [])
    with within(120):
        result = runner.invoke(app, args)
    line = check_failure(result, 1, prefix="awf-sim: the code under test ended a chaos worker")
    assert "exited with status 3" in line
    assert "--replay " in line
    if json_out:  # no report (there is no verdict): the failure is the one object on stdout
        failure = json.loads(result.stdout)
        assert (failure["ok"], failure["error"]["kind"]) == (False, "Failed")
        assert failure["error"]["message"] in line
    else:
        assert result.stdout == ""


# -- sizes and lone surrogates ---------------------------------------------------------------


def test_a_run_output_over_what_the_engine_stores_is_flagged_by_serializable(
    tmp_path: Path,
) -> None:
    # Cloudflare's engine stores up to 2,199,955 bytes of output JSON (p6-output-*).
    flow = write(
        tmp_path,
        """
        from awf_sim import Domain, Workflow

        async def part(key, args, ctx):
            return "x" * 800_000  # each step result is within 1 MiB

        D = Domain("D", {"part": part})

        @Workflow("w", examples=[{}], domains=[D])
        async def w(wf, p):
            return [await wf.D(k).part() for k in "abc"]
        """,
    )
    result = runner.invoke(app, ["chaos", flow, "--runs", "5", "--json"])
    assert result.exit_code == 1
    found = [v for w in json.loads(result.stdout)["workflows"] for v in w["violations"]]
    assert [(v["invariant"], v["key"]) for v in found] == [("serializable", "output")]
    assert "2,199,955 bytes" in found[0]["message"]


def test_an_output_over_1_mib_passes(tmp_path: Path) -> None:
    # 1 MiB is a step result's limit, not the output's: Miniflare completes with 1 MiB + 1
    # byte (p6-output-just-over-1mib). {"a":"x...x"} is 8 bytes of JSON around the string.
    flow = write(
        tmp_path,
        """
        from awf_sim import Workflow

        @Workflow("w", examples=[{}])
        async def w(wf, p):
            return {"a": "x" * (2**20 - 7)}
        """,
    )
    result = runner.invoke(app, ["chaos", flow, "--runs", "1", "--json"])
    assert result.exit_code == 0, result.stdout[-2000:]


LONE_SURROGATES = """
from awf_sim import Domain, Workflow

async def odd(key, args, ctx):
    return {"s": "\\udc80 lone", "k": args["v"]}

D = Domain("D", {"odd": odd})

@Workflow("w", examples=[{"v": "\\ud83d"}], domains=[D])
async def w(wf, p):
    r = await wf.D("a").odd(v=p["v"])
    await wf.sleep("s", "1 minute")
    return {"r": r, "t": "\\ud800"}
"""


@pytest.mark.parametrize("json_out", [False, True], ids=["rich", "json"])
def test_lone_surrogates_in_results_and_output_do_not_crash_chaos(
    tmp_path: Path, json_out: bool
) -> None:
    flow = write(tmp_path, LONE_SURROGATES)
    result = runner.invoke(app, ["chaos", flow, "--runs", "10"] + (["--json"] if json_out else []))
    assert result.exit_code == 0, (result.stdout[-2000:], result.stderr)
    assert "Traceback" not in result.stdout + result.stderr
    if json_out:
        report = json.loads(result.stdout)
        assert report["workflows"][0]["input"] == {"v": "\ud83d"}
    else:
        assert "\\ud83d" in result.stdout


# -- chaos's caps, estimate and progress -----------------------------------------------------

LONG_FLOW = """
from awf_sim import Domain, Workflow

async def add(key, args, ctx):
    return args["i"] + 1

D = Domain("D", {"add": add})

@Workflow("many", examples=[{}], domains=[D])
async def many(wf, p):
    total = 0
    for i in range(30):
        total += await wf.D("k").add(i=i)
    return {"total": total}
"""


def test_the_cli_defaults_are_the_campaigns() -> None:
    assert awf_sim.cli.DEFAULT_MAX_RUNS == _campaign.DEFAULT_MAX_RUNS
    assert awf_sim.cli.DEFAULT_MAX_STEPS == _campaign.DEFAULT_MAX_STEPS


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--max-runs", "0"], "--max-runs must be 1 or more"),
        (["--max-steps", "-5"], "--max-steps must be 1 or more"),
        (["--max-seconds", "0"], "--max-seconds must be more than 0"),
    ],
)
def test_bad_caps_are_one_line_and_exit_2(tmp_path: Path, args: list[str], says: str) -> None:
    result = runner.invoke(app, ["chaos", write(tmp_path, LONG_FLOW), *args])
    check_failure(result, 2, prefix="awf-sim: ", must_say=says)


@pytest.mark.parametrize(
    ("args", "runs", "why"),
    [
        (["--max-runs", "25"], 25, "--max-runs 25"),
        (["--max-steps", "600"], 20, "--max-steps 600 / 30 step calls per run"),
    ],
)
def test_runs_beyond_a_cap_are_sampled_and_said(
    tmp_path: Path, args: list[str], runs: int, why: str
) -> None:
    result = runner.invoke(app, ["chaos", write(tmp_path, LONG_FLOW), "--json", *args])
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)  # stdout stays the report alone
    assert report["workflows"][0]["runs"] == runs
    notes = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(notes) == 1, notes
    assert why in notes[0]
    assert "210 single faults" in notes[0]


def test_a_capped_campaign_is_the_same_for_the_same_seed(tmp_path: Path) -> None:
    flow = write(tmp_path, LONG_FLOW)
    reports = [
        json.loads(runner.invoke(app, ["chaos", flow, "--json", "--max-runs", "15"]).stdout)
        for _ in range(2)
    ]
    assert reports[0]["workflows"][0]["coverage"] == reports[1]["workflows"][0]["coverage"]


def test_max_seconds_cuts_a_campaign_short_and_exits_1(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["chaos", write(tmp_path, LONG_FLOW), "--json", "--max-seconds", "0.05"]
    )
    assert result.exit_code == 1
    notes = [line for line in result.stderr.splitlines() if "--max-seconds" in line]
    assert len(notes) == 1, result.stderr
    assert "no verdict" in notes[0]
    assert json.loads(result.stdout)["workflows"][0]["runs"] < 210


def test_a_long_campaign_estimates_and_reports_progress_on_stderr(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from awf_sim.chaos import _command

    monkeypatch.setattr(_campaign, "ESTIMATE_AFTER_S", 0.0)
    monkeypatch.setattr(_campaign, "ESTIMATE_NOTE_S", 0.0)
    monkeypatch.setattr(_command, "PLAIN_EVERY_S", 0.0)
    result = runner.invoke(app, ["chaos", write(tmp_path, LONG_FLOW), "--json"])
    assert result.exit_code == 0
    json.loads(result.stdout)
    lines = result.stderr.splitlines()
    assert any("210 runs planned, about" in line for line in lines), lines[:5]
    assert any(line.endswith("exhaustive 210/210") for line in lines), lines[-5:]
