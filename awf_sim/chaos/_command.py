"""The body of `awf-sim chaos` (the CLI only parses arguments and calls `chaos_command`).

Exit codes: 0 no invariant broken, 1 violations found, 2 bad usage or input.
The report goes to stdout (rich, or one JSON object with --json); progress and errors to stderr.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from awf_sim.chaos._campaign import run_campaign
from awf_sim.chaos._faults import FaultPlanError, decode_token, parse_kinds
from awf_sim.chaos._model import Target
from awf_sim.chaos._report import ChaosReport, WorkflowChaos
from awf_sim.chaos._supervise import run_supervised
from awf_sim.dsl._errors import AwfError
from awf_sim.dsl._workflow import Workflow
from awf_sim.errors import ProcessDied
from awf_sim.flow import FlowError, FlowFile, load_flow, parse_input

__all__ = ["EXIT_CLEAN", "EXIT_USAGE", "EXIT_VIOLATIONS", "chaos_command"]

EXIT_CLEAN, EXIT_VIOLATIONS, EXIT_USAGE = 0, 1, 2


class _Usage(Exception):
    pass


def _pick(loaded: FlowFile, name: str | None, need_one: str | None) -> list[Workflow]:
    if name is not None:
        return [loaded.pick(name)]
    if need_one is not None and len(loaded.workflows) > 1:
        known = ", ".join(loaded.workflows)
        raise _Usage(f"{need_one} needs --workflow NAME: {loaded.path} defines {known}")
    if len(loaded.workflows) == 1:
        return list(loaded.workflows.values())
    chosen = [w for w in loaded.workflows.values() if w.examples]
    if not chosen:
        known = ", ".join(loaded.workflows)
        raise _Usage(
            f"{loaded.path}: no workflow has examples to run chaos on ({known}); pass "
            "--workflow NAME and --input JSON, or add examples=[...] to the workflow"
        )
    return chosen


class _ProgressBar:
    """A rich progress bar on stderr, one line per (workflow, phase); silent when stderr is
    not a terminal."""

    def __init__(self) -> None:
        self.workflow = ""
        self._tasks: dict[str, Any] = {}
        self._progress: Any = None
        if sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

            self._progress = Progress(
                TextColumn("{task.description:<32}"),
                BarColumn(),
                MofNCompleteColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self._progress.start()

    def __call__(self, phase: str, done: int, total: int) -> None:
        if self._progress is None:
            return
        key = f"{self.workflow} {phase}"
        if key not in self._tasks:
            self._tasks[key] = self._progress.add_task(key, total=max(total, 1))
        self._progress.update(self._tasks[key], completed=done, total=max(total, 1))

    def stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


def chaos_command(
    flow: str,
    *,
    workflow: str | None = None,
    input_json: str | None = None,
    input_file: str | None = None,
    runs: int = 200,
    seed: int = 0,
    max_faults: int = 3,
    faults: str | None = None,
    json_out: bool = False,
    replay: str | None = None,
    jobs: int = 1,
) -> int:
    """Run chaos on a flow file and print the report; returns the exit code.

    The flow runs in a supervised child (`_supervise`): code that ends that process
    (os._exit, a fatal signal) is reported as a failure, never as a clean run."""
    try:
        return run_supervised(
            lambda: _chaos(
                flow,
                workflow,
                input_json,
                input_file,
                runs,
                seed,
                max_faults,
                faults,
                json_out,
                replay,
                jobs,
            ),
            "awf-sim chaos",
        )
    except ProcessDied as exc:
        print(f"awf-sim: {exc}", file=sys.stderr)
        return EXIT_VIOLATIONS


def _chaos(
    flow: str,
    workflow: str | None,
    input_json: str | None,
    input_file: str | None,
    runs: int,
    seed: int,
    max_faults: int,
    faults: str | None,
    json_out: bool,
    replay: str | None,
    jobs: int,
) -> int:
    try:
        if runs < 0:
            raise _Usage(f"--runs must be 0 or more, got {runs}")
        if max_faults < 1:
            raise _Usage(f"--max-faults must be 1 or more, got {max_faults}")
        if jobs < 1:
            raise _Usage(f"--jobs must be 1 or more, got {jobs}")
        kinds = parse_kinds(faults)
        plan = decode_token(replay) if replay is not None else None
        loaded = load_flow(flow)
        need_one = None
        if replay is not None:
            need_one = "--replay"
        elif input_json is not None or input_file is not None:
            need_one = "--input" if input_json is not None else "--input-file"
        chosen = _pick(loaded, workflow, need_one)
        targets = [
            Target.of(w, parse_input(w, input_json, input_file), loaded.world.replace(seed=seed))
            for w in chosen
        ]
    except (_Usage, FaultPlanError, FlowError) as exc:
        print(f"awf-sim: {exc}", file=sys.stderr)
        return EXIT_USAGE
    replay_args: list[str] = []
    if input_json is not None:
        replay_args += ["--input", json.dumps(json.loads(input_json), ensure_ascii=False)]
    elif input_file is not None:
        replay_args += ["--input-file", input_file]
    if seed:
        replay_args += ["--seed", str(seed)]
    bar = _ProgressBar()
    results = []
    try:
        for target in targets:
            bar.workflow = target.workflow.name
            result = run_campaign(
                target,
                runs=runs,
                seed=seed,
                max_faults=max_faults,
                kinds=kinds,
                jobs=jobs,
                progress=bar,
                replay=plan,
            )
            results.append(WorkflowChaos(result, replay_args))
    except AwfError as exc:
        print(f"awf-sim: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        bar.stop()
    report = ChaosReport(
        flow=flow,
        workflows=results,
        runs=runs,
        seed=seed,
        max_faults=max_faults,
        kinds=kinds,
        jobs=jobs,
    )
    if json_out:
        sys.stdout.write(report.to_json_text() + "\n")
    else:
        from rich.console import Console

        Console().print(report, crop=False)
    return report.exit_code
