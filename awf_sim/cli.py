"""`awf-sim`: run flow files in the simulator. Parses arguments and prints; nothing else.

Exit codes: 0 success, 1 the workflow (or a check) failed, 2 bad usage or input.
Results go to stdout, progress and errors to stderr.
"""

from __future__ import annotations

import contextlib
import json
import sys
import warnings
from typing import Annotated, Any, NoReturn

import typer

# Command, JsonFailureGroup and show_version are awf-deploy's too, which imports them from here.
from awf_sim._cli_classes import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    FLAG,
)
from awf_sim._cli_classes import Command as Command
from awf_sim._cli_classes import JsonFailureGroup as JsonFailureGroup
from awf_sim._cli_classes import show_version as show_version
from awf_sim.dsl._errors import AwfError
from awf_sim.errors import FlowError, ProcessDied, UnawaitedStepWarning

# chaos's caps; the same values as awf_sim.chaos._campaign's (a test pins them), repeated here
# so that `awf-sim --help` does not import chaos.
DEFAULT_MAX_RUNS = 1000
DEFAULT_MAX_STEPS = 500_000
# The CPU budget of `run` and `chaos` (--cpu-ms): the engine's DEFAULT_CPU_MS, Cloudflare's
# default limit (a test pins them equal).
DEFAULT_CPU_MS = 30_000
# Real time a handler may block the thread in `run` and `chaos` (--block-seconds): the
# engine's DEFAULT_BLOCK_SECONDS (a test pins them equal).
DEFAULT_BLOCK_SECONDS = 3.0
app = typer.Typer(
    cls=JsonFailureGroup,
    name="awf-sim",
    help="Run awf workflows in a deterministic simulator of Cloudflare Workflows.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # -h as most command-line tools take it; inherited by every subcommand.
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        show_version("awf-sim")


@app.callback()
def _root(
    _show_version: Annotated[
        bool,
        typer.Option(
            "--version",
            metavar=FLAG,
            is_eager=True,
            callback=_version,
            help="Print the version and exit.",
        ),
    ] = False,
) -> None:
    """Run awf workflows in a deterministic simulator of Cloudflare Workflows."""


def _fail_usage(message: str) -> NoReturn:
    typer.echo(f"awf-sim: {message}", err=True)
    raise typer.Exit(EXIT_USAGE)


FlowArg = Annotated[
    str, typer.Argument(metavar="FLOW.py", help="The flow file (.py) that defines the workflow.")
]
WorkflowOpt = Annotated[
    str | None,
    typer.Option(
        "--workflow", "-w", metavar="NAME", help="Workflow name, when the file has several."
    ),
]
InputOpt = Annotated[
    str | None,
    typer.Option("--input", "-i", metavar="JSON", help="Params as JSON (default: first example)."),
]
InputFileOpt = Annotated[
    str | None,
    typer.Option(
        "--input-file", metavar="FILE", help="Params from a JSON file ('-': standard input)."
    ),
]
SeedOpt = Annotated[
    int, typer.Option("--seed", metavar="N", help="Seed for all randomness in the run.")
]
JsonOpt = Annotated[
    bool, typer.Option("--json", metavar=FLAG, help="Print one JSON object on stdout.")
]
CpuMsOpt = Annotated[
    int,
    typer.Option(
        "--cpu-ms",
        metavar="MS",
        min=1,
        help="CPU time a handler or the workflow body may run without yielding before it "
        "fails (Cloudflare's default limit: 30000).",
    ),
]
BlockSecondsOpt = Annotated[
    float,
    typer.Option(
        "--block-seconds",
        metavar="S",
        min=0,
        help="Real time a handler or the workflow body may block the thread (time.sleep, a "
        "blocking socket) before the run fails, naming the step (0: never).",
    ),
]


def _block_s(seconds: float) -> float | None:
    return seconds if seconds > 0 else None


@app.command(cls=Command)
def run(
    flow: FlowArg,
    workflow: WorkflowOpt = None,
    input: InputOpt = None,
    input_file: InputFileOpt = None,
    seed: SeedOpt = 0,
    store: Annotated[
        str | None,
        typer.Option(
            "--store",
            metavar="FILE",
            help="SQLite file for checkpoints. It remembers: this workflow's instance for the "
            "same input (or --id) is resumed if unfinished, or its stored result shown.",
        ),
    ] = None,
    instance_id: Annotated[
        str | None,
        typer.Option(
            "--id", metavar="ID", help="Instance id: the stored instance to resume or show."
        ),
    ] = None,
    new: Annotated[
        bool, typer.Option("--new", help="Start a new instance even if the store has one.")
    ] = False,
    cpu_ms: CpuMsOpt = DEFAULT_CPU_MS,
    block_seconds: BlockSecondsOpt = DEFAULT_BLOCK_SECONDS,
    isolation: Annotated[
        str | None,
        typer.Option(
            "--isolation",
            metavar="process",
            help="'process': run each handler attempt in a forked process with CPU and "
            "memory limits and no network.",
        ),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Run one instance to its end and print its timeline and output."""
    from awf_sim._report import RunResult
    from awf_sim._runner import run_flow
    from awf_sim.engine import run_supervised
    from awf_sim.flow import (  # the engine: not for `awf-sim --help`
        error_line,
        load_flow,
        parse_input,
    )

    def run_it() -> RunResult:
        loaded = load_flow(flow)
        wf = loaded.pick(workflow)
        params = parse_input(wf, input, input_file)
        return run_flow(
            loaded,
            wf,
            params,
            seed=seed,
            store=store,
            isolation=isolation,
            id=instance_id,
            new=new,
            cpu_ms=cpu_ms,
            notice=lambda message: typer.echo(f"awf-sim: {message}", err=True),
        )

    resume = (
        f" Its checkpoints are in {store}: the same command resumes the instance from them."
        if store
        else ""
    )
    # With --json, stdout holds the one JSON object: the code's own prints go to stderr.
    quiet = contextlib.redirect_stdout(sys.stderr) if json_out else contextlib.nullcontext()
    try:
        # In a child process: a handler that ends the process it runs in (os._exit, a
        # fatal signal) must not end this command with exit 0 and nothing said.
        with quiet:
            result = run_supervised(
                run_it,
                "the run",
                goal="finished the instance",
                advice="Nothing after its last checkpoint ran." + resume,
                block_s=_block_s(block_seconds),
            )
    except ProcessDied as exc:
        typer.echo(f"awf-sim: {exc}", err=True)
        raise typer.Exit(EXIT_FAILED) from None
    except FlowError as exc:
        _fail_usage(str(exc))
        return
    except AwfError as exc:
        _fail_usage(error_line(exc))
        return
    if json_out:
        sys.stdout.write(_json_text(result.to_json()) + "\n")
    else:
        console = _console()
        try:
            console.print(result)
        except UnicodeEncodeError:
            # A step may return a lone surrogate (JavaScript strings can hold one); the
            # terminal cannot show it, so the rest is printed with it escaped.
            with console.capture() as captured:
                console.print(result)
            sys.stdout.write(captured.get().encode("utf-8", "backslashreplace").decode("utf-8"))
    raise typer.Exit(EXIT_OK if result.status == "complete" else EXIT_FAILED)


@app.command(cls=Command)
def conformance(
    scenarios: Annotated[
        list[str],
        typer.Argument(
            help="Scenario files (NAME.json), or folders of them.",
            metavar="SCENARIO",
            show_default=False,
        ),
    ],
    engine: Annotated[
        str,
        typer.Option(
            "--engine", metavar="sim|miniflare", help="Where to run them: sim or miniflare."
        ),
    ] = "sim",
    out: Annotated[
        str | None,
        typer.Option("--out", metavar="DIR", help="Write NAME.trace.json files to this folder."),
    ] = None,
    compare_with: Annotated[
        str | None,
        typer.Option(
            "--compare-with",
            metavar="DIR",
            help="Compare with the NAME.trace.json files in this folder.",
        ),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Run conformance scenarios on one engine; write and compare their traces."""
    from awf_sim.conformance import (
        ENGINES,
        MiniflareError,
        ScenarioError,
        collect_scenarios,
        run_conformance,
    )
    from awf_sim.conformance._compare import json_text

    if engine not in ENGINES:
        _fail_usage(f"--engine must be one of {', '.join(ENGINES)}, got {engine!r}")
        return
    try:
        loaded = collect_scenarios(scenarios)
        outcomes = run_conformance(
            loaded,
            engine=engine,
            out=out,
            compare_with=compare_with,
            progress=None if json_out else lambda line: typer.echo(line, err=True),
        )
    except (ScenarioError, MiniflareError) as exc:
        _fail_usage(str(exc))
        return
    except RecursionError:
        _fail_usage("a scenario or a trace is nested too deeply to compare")
        return
    mismatched = sum(1 for o in outcomes if o.compared and not o.matched)
    if json_out:
        report = {
            "engine": engine,
            "scenarios": [
                {
                    "name": o.scenario.name,
                    "status": o.trace["status"],
                    "matched": o.matched if o.compared else None,
                    "difference": o.difference,
                    "trace": o.trace,
                }
                for o in outcomes
            ],
            "run": len(outcomes),
            "matched": sum(1 for o in outcomes if o.matched),
            "mismatched": mismatched,
        }
        sys.stdout.write(json_text(report) + "\n")
    else:
        for o in outcomes:
            if not o.compared:
                typer.echo(f"{o.scenario.name}: {o.trace['status']}")
            elif o.matched:
                typer.echo(f"match     {o.scenario.name}")
            else:
                typer.echo(f"MISMATCH  {o.scenario.name}: {o.difference}")
        if compare_with is not None:
            typer.echo(
                f"{len(outcomes)} scenarios on {engine}: {len(outcomes) - mismatched} matched, "
                f"{mismatched} mismatched",
                err=True,
            )
    raise typer.Exit(EXIT_FAILED if mismatched else EXIT_OK)


@app.command(cls=Command)
def chaos(
    flow: FlowArg,
    workflow: Annotated[
        str | None,
        typer.Option(
            "--workflow",
            "-w",
            metavar="NAME",
            help="Workflow name (default: every workflow of the file).",
        ),
    ] = None,
    example: Annotated[
        list[int] | None,
        typer.Option(
            "--example",
            "-e",
            metavar="N",
            help="Only example N (1-based; repeatable). Default: every example.",
        ),
    ] = None,
    input: Annotated[
        str | None,
        typer.Option(
            "--input",
            "-i",
            metavar="JSON",
            help="Params as JSON, checked instead of the examples (default: every example).",
        ),
    ] = None,
    input_file: InputFileOpt = None,
    runs: Annotated[
        int,
        typer.Option(
            "--runs",
            metavar="N",
            help="Fault-injected runs per workflow (at least all singles).",
        ),
    ] = 200,
    seed: SeedOpt = 0,
    max_faults: Annotated[
        int, typer.Option("--max-faults", metavar="K", help="Most faults in one random plan.")
    ] = 3,
    faults: Annotated[
        str | None,
        typer.Option(
            "--faults",
            metavar="KINDS",
            help="Fault kinds to inject, comma-separated (default: all).",
        ),
    ] = None,
    json_out: JsonOpt = False,
    replay: Annotated[
        str | None,
        typer.Option("--replay", metavar="TOKEN", help="Run just the plan of this replay token."),
    ] = None,
    jobs: Annotated[int, typer.Option("--jobs", "-j", metavar="J", help="Worker processes.")] = 1,
    max_runs: Annotated[
        int,
        typer.Option(
            "--max-runs",
            metavar="N",
            help="Most fault-injected runs per input (single faults beyond it are sampled).",
        ),
    ] = DEFAULT_MAX_RUNS,
    max_steps: Annotated[
        int,
        typer.Option(
            "--max-steps",
            metavar="N",
            help="Most step calls across all runs of one input (caps runs of long workflows).",
        ),
    ] = DEFAULT_MAX_STEPS,
    max_seconds: Annotated[
        float | None,
        typer.Option(
            "--max-seconds",
            metavar="S",
            help="Stop injecting after S seconds of wall time per input; exit 1 if cut short.",
        ),
    ] = None,
    cpu_ms: CpuMsOpt = DEFAULT_CPU_MS,
    block_seconds: BlockSecondsOpt = DEFAULT_BLOCK_SECONDS,
) -> None:
    """Run a workflow under every crash, retry, timeout and event fault; check durability.

    Exit 0 when no invariant is broken, 1 on violations (or a campaign cut short), 2 on bad
    usage or input."""
    from awf_sim.chaos._command import chaos_command

    raise typer.Exit(
        chaos_command(
            flow,
            workflow=workflow,
            examples=example,
            input_json=input,
            input_file=input_file,
            runs=runs,
            seed=seed,
            max_faults=max_faults,
            faults=faults,
            json_out=json_out,
            replay=replay,
            jobs=jobs,
            max_runs=max_runs,
            max_steps=max_steps,
            max_seconds=max_seconds,
            cpu_ms=cpu_ms,
            block_s=_block_s(block_seconds),
        )
    )


@app.command("replay", cls=Command)
def replay_cmd(
    flow: FlowArg,
    history: Annotated[
        str,
        typer.Argument(
            metavar="HISTORY.json", help="The instance history (`awf-deploy pull` writes it)."
        ),
    ],
    json_out: JsonOpt = False,
    block_seconds: BlockSecondsOpt = DEFAULT_BLOCK_SECONDS,
) -> None:
    """Replay a production instance's history against the flow's current code.

    Exit 0 when the code follows the history; 1 where it diverges (a completed step no longer
    called, a new step before the frontier, a changed step config, a failure on what the
    instance already did); 2 on bad usage or input."""
    from awf_sim._replay_command import replay_command

    raise typer.Exit(
        replay_command(flow, history, json_out=json_out, block_s=_block_s(block_seconds))
    )


@app.command(cls=Command)
def instances(
    instance: Annotated[
        str | None,
        typer.Argument(metavar="[INSTANCE]", help="Show this instance: status and timeline."),
    ] = None,
    store: Annotated[
        str | None,
        typer.Option(
            "--store",
            metavar="FILE",
            help="The SQLite file `awf-sim run --store` wrote. [required]",
        ),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """List the instances a store holds, or show one of them."""
    import os

    from awf_sim.engine import Simulator

    if store is None:
        # `awf-sim instances runs.db` reads naturally; the file went to [INSTANCE].
        if instance is not None and os.path.isfile(instance):
            _fail_usage(
                f"missing --store; to list the instances in {instance} write: "
                f"awf-sim instances --store {instance}"
            )
        _fail_usage("missing --store FILE: the SQLite file `awf-sim run --store` wrote")
    if not os.path.isfile(store):
        _fail_usage(f"--store {store}: no such file")
    try:
        with Simulator(store=store) as sim:
            rows = [
                {"instance_id": inst.id, "workflow": inst.workflow, **inst.status()}
                for inst in sim.instances
            ]
            timeline = None
            if instance is not None:
                rows = [r for r in rows if r["instance_id"] == instance]
                if not rows:
                    known = ", ".join(i.id for i in sim.instances) or "none"
                    _fail_usage(f"{store} holds no instance {instance!r} (it holds: {known})")
                timeline = next(i for i in sim.instances if i.id == instance).timeline
    except AwfError as exc:
        _fail_usage(f"--store {store}: {type(exc).__name__}: {exc}")
        return
    if json_out:
        payload: Any = rows if timeline is None else {**rows[0], "timeline": timeline}
        sys.stdout.write(json.dumps(payload, ensure_ascii=False) + "\n")
        raise typer.Exit(EXIT_OK)
    from rich.table import Table

    from awf_sim._report import timeline_table

    console = _console()
    if timeline is None:
        table = Table(title=f"{len(rows)} instance(s) in {store}", title_justify="left")
        for column in ("instance", "workflow", "status"):
            table.add_column(column)
        for r in rows:
            table.add_row(r["instance_id"], r["workflow"] or "", r["status"])
        console.print(table)
    else:
        r = rows[0]
        console.print(timeline_table(timeline, title=f"{r['workflow']} · instance {instance}"))
        console.print(f"status: {r['status']}")
        if r.get("error"):
            console.print(f"error: {r['error'].get('name')}: {r['error'].get('message')}")
        else:
            console.print(f"output: {json.dumps(r.get('output'), ensure_ascii=False)}")
    raise typer.Exit(EXIT_OK)


def _json_text(value: Any) -> str:
    """JSON for stdout: UTF-8 as is, and a lone surrogate (which UTF-8 cannot carry) escaped."""
    text = json.dumps(value, ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(value, ensure_ascii=True)
    return text


def _console() -> Any:
    from rich.console import Console

    return Console()


def show_warnings_not_raise() -> None:
    """A command prints the unawaited-step warning even where PYTHONWARNINGS=error turns
    warnings into errors: raised inside a run, it ended the command with a traceback. For
    the main() of both CLIs (forked children inherit it)."""
    warnings.filterwarnings("default", category=UnawaitedStepWarning)


def main() -> None:
    show_warnings_not_raise()
    app()


if __name__ == "__main__":
    main()
