"""`awf-sim`: run flow files in the simulator. Parses arguments and prints; nothing else.

Exit codes: 0 success, 1 the workflow (or a check) failed, 2 bad usage or input.
Results go to stdout, progress and errors to stderr.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer

from awf_sim._flow import FlowError, load_flow, parse_input
from awf_sim.dsl._errors import AwfError

app = typer.Typer(
    name="awf-sim",
    help="Run awf workflows in a deterministic simulator of Cloudflare Workflows.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


@app.callback()
def _root() -> None:
    """Run awf workflows in a deterministic simulator of Cloudflare Workflows."""


def _fail_usage(message: str) -> None:
    typer.echo(f"awf-sim: {message}", err=True)
    raise typer.Exit(EXIT_USAGE)


FlowArg = Annotated[str, typer.Argument(help="The flow file (.py) that defines the workflow.")]
WorkflowOpt = Annotated[
    str | None, typer.Option("--workflow", "-w", help="Workflow name, when the file has several.")
]
InputOpt = Annotated[
    str | None, typer.Option("--input", "-i", help="Params as JSON (default: first example).")
]
InputFileOpt = Annotated[str | None, typer.Option("--input-file", help="Params from a JSON file.")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed for all randomness in the run.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")]


@app.command()
def run(
    flow: FlowArg,
    workflow: WorkflowOpt = None,
    input: InputOpt = None,
    input_file: InputFileOpt = None,
    seed: SeedOpt = 0,
    store: Annotated[
        str | None,
        typer.Option(
            "--store", help="SQLite file for checkpoints; an unfinished run in it is resumed."
        ),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Run one instance to its end and print its timeline and output."""
    from awf_sim._runner import run_flow

    try:
        loaded = load_flow(flow)
        wf = loaded.pick(workflow)
        params = parse_input(wf, input, input_file)
        result = run_flow(
            loaded,
            wf,
            params,
            seed=seed,
            store=store,
            on_resume=lambda iid: typer.echo(
                f"awf-sim: resuming unfinished instance {iid} from {store}", err=True
            ),
        )
    except FlowError as exc:
        _fail_usage(str(exc))
        return
    except AwfError as exc:
        _fail_usage(f"{type(exc).__name__}: {exc}")
        return
    if json_out:
        sys.stdout.write(json.dumps(result.to_json(), ensure_ascii=False) + "\n")
    else:
        _console().print(result)
    raise typer.Exit(EXIT_OK if result.status == "complete" else EXIT_FAILED)


def _console() -> Any:
    from rich.console import Console

    return Console()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
