"""`awf-sim replay FLOW.py HISTORY.json`: print a replay report (see awf_sim.replay).

Exit codes: 0 the replay is faithful, 1 the code diverges from the history (or ended the
process that replayed it: the replay runs in a supervised child), 2 bad input (a flow
that does not load, a history that is not JSON, of another version or of another workflow).
"""

from __future__ import annotations

import contextlib
import json
import sys

import typer

from awf_sim.dsl._errors import AwfError
from awf_sim.engine import run_supervised
from awf_sim.engine._blocked import DEFAULT_BLOCK_SECONDS
from awf_sim.errors import HistoryError, ProcessDied
from awf_sim.flow import FlowError, load_flow
from awf_sim.replay import ReplayReport, load_history, replay

__all__ = ["print_report", "replay_command"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def print_report(report: ReplayReport) -> None:
    """The human form: one line per step, then the verdict."""
    typer.echo(str(report))


def _replay(flow: str, history_path: str) -> ReplayReport:
    loaded = load_flow(flow)
    history = load_history(history_path)
    workflow = loaded.workflows.get(history.workflow)
    if workflow is None:
        known = ", ".join(loaded.workflows) or "none"
        raise HistoryError(
            f"{history_path}: the history is of workflow {history.workflow!r}; "
            f"{flow} defines: {known}"
        )
    return replay(workflow, history, db=loaded.database, http=loaded.http, ai=loaded.ai)


def replay_command(
    flow: str,
    history_path: str,
    *,
    json_out: bool = False,
    block_s: float | None = DEFAULT_BLOCK_SECONDS,
) -> int:
    """Replay and print the report; returns the exit code. A handler or workflow body that
    blocks its thread for `block_s` seconds of real time (None: never) ends the replay with
    the line saying where, instead of hanging it: the replay goes on past the history."""
    # With --json, stdout holds the one JSON object: the code's own prints go to stderr.
    quiet = contextlib.redirect_stdout(sys.stderr) if json_out else contextlib.nullcontext()
    try:
        # In a child process: code that ends the process it runs in (os._exit, a fatal
        # signal) must not make this command exit 0, which says "faithful".
        with quiet:
            report = run_supervised(
                lambda: _replay(flow, history_path), "the replay", block_s=block_s
            )
    except ProcessDied as exc:
        typer.echo(f"awf-sim: {exc}", err=True)
        return EXIT_FAILED
    except (FlowError, HistoryError, AwfError) as exc:
        typer.echo(f"awf-sim: {exc}", err=True)
        return EXIT_USAGE
    if json_out:
        sys.stdout.write(json.dumps(report.to_json(), ensure_ascii=False, default=str) + "\n")
    else:
        print_report(report)
    return EXIT_OK if report.faithful else EXIT_FAILED
