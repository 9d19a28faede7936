"""The body of `awf-sim chaos` (the CLI only parses arguments and calls `chaos_command`).

Exit codes: 0 no invariant broken, 1 violations found (or a fault-free run that ran past the
CPU budget: one line, no report), 2 bad usage or input.
The report goes to stdout (rich, or one JSON object with --json); progress and errors to stderr.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

from awf_sim.chaos._beacon import watch
from awf_sim.chaos._campaign import (
    DEFAULT_MAX_RUNS,
    DEFAULT_MAX_STEPS,
    Caps,
    run_campaign,
    runaway_baseline,
)
from awf_sim.chaos._crossproc import Replayers
from awf_sim.chaos._faults import FaultPlanError, decode_token, parse_kinds
from awf_sim.chaos._model import Target
from awf_sim.chaos._pool import plan_words
from awf_sim.chaos._report import ChaosReport, WorkflowChaos
from awf_sim.chaos._targets import example_label, verification_targets, verification_world
from awf_sim.dsl._errors import AwfError
from awf_sim.dsl._workflow import Workflow
from awf_sim.engine import run_supervised
from awf_sim.engine._simulator import DEFAULT_CPU_MS
from awf_sim.errors import ProcessDied
from awf_sim.flow import FlowError, FlowFile, error_line, load_flow, parse_input

__all__ = ["EXIT_CLEAN", "EXIT_USAGE", "EXIT_VIOLATIONS", "chaos_command"]

EXIT_CLEAN, EXIT_VIOLATIONS, EXIT_USAGE = 0, 1, 2
PLAIN_EVERY_S = 10.0


class _Usage(Exception):
    pass


def _pick(loaded: FlowFile, name: str | None, need_one: str | None) -> list[Workflow] | None:
    """The workflows asked for; None for all of them."""
    if name is not None:
        return [loaded.pick(name)]
    if need_one is not None and len(loaded.workflows) > 1:
        known = ", ".join(loaded.workflows)
        raise _Usage(f"{need_one} needs --workflow NAME: {loaded.path} defines {known}")
    return None


def _example_args(target: Target, number: int | None) -> list[str]:
    # The replay command names the example it needs; with only one, it is the default.
    if number is None or len(target.workflow.examples) == 1:
        return []
    return ["--example", str(number)]


class _ProgressBar:
    """A rich progress bar on stderr, one line per (workflow, phase); silent when stderr is
    not a terminal."""

    def __init__(self) -> None:
        self.workflow = ""
        self._said = time.monotonic()
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
            # Not a terminal (CI, a pipe): a line every PLAIN_EVERY_S on long campaigns.
            now = time.monotonic()
            if now - self._said >= PLAIN_EVERY_S and total > 1:
                self._said = now
                print(f"chaos: {self.workflow}: {phase} {done:,}/{total:,}", file=sys.stderr)
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
    examples: list[int] | None = None,
    input_json: str | None = None,
    input_file: str | None = None,
    runs: int = 200,
    seed: int = 0,
    max_faults: int = 3,
    faults: str | None = None,
    json_out: bool = False,
    replay: str | None = None,
    jobs: int = 1,
    max_runs: int = DEFAULT_MAX_RUNS,
    max_steps: int = DEFAULT_MAX_STEPS,
    max_seconds: float | None = None,
    cpu_ms: int = DEFAULT_CPU_MS,
    block_s: float | None = None,
) -> int:
    """Run chaos on a flow file and print the report; returns the exit code.

    The flow runs in a supervised child (`_supervise`): code that ends that process
    (os._exit, a fatal signal) is reported as a failure, never as a clean run, and so is a
    handler that blocks its thread for `block_s` seconds of real time."""
    beacon = watch()  # the plan running when the child died or blocked (one job)
    try:
        return run_supervised(
            lambda: _json_only_on_stdout(
                json_out,
                lambda out: _chaos_in(
                    flow,
                    workflow,
                    examples,
                    input_json,
                    input_file,
                    runs,
                    seed,
                    max_faults,
                    faults,
                    json_out,
                    replay,
                    jobs,
                    Caps(max_runs, max_steps, max_seconds, _say),
                    cpu_ms,
                    out,
                ),
            ),
            "awf-sim chaos",
            block_s=block_s,
        )
    except ProcessDied as exc:
        plan = beacon.last()
        told = ""
        if plan is not None:  # as a --jobs N worker's end says it
            what, token = plan_words(plan)
            told = f" It was running fault plan {what} (replay it with --replay {token})."
        print(f"awf-sim: {exc}{told}", file=sys.stderr)
        return EXIT_VIOLATIONS
    finally:
        beacon.close()


def _json_only_on_stdout(json_out: bool, body: Callable[[TextIO], int]) -> int:
    """`body(stdout)` in the supervised child; with --json, stdout holds the one JSON object,
    so what the code under test prints (on import, in a handler, in thousands of runs) goes
    to stderr meanwhile."""
    out = sys.stdout
    quiet = contextlib.redirect_stdout(sys.stderr) if json_out else contextlib.nullcontext()
    with quiet:
        return body(out)


def _chaos_in(
    flow: str,
    workflow: str | None,
    examples: list[int] | None,
    input_json: str | None,
    input_file: str | None,
    runs: int,
    seed: int,
    max_faults: int,
    faults: str | None,
    json_out: bool,
    replay: str | None,
    jobs: int,
    caps: Caps,
    cpu_ms: int,
    out: TextIO,
) -> int:
    try:
        if cpu_ms < 1:
            raise _Usage(f"--cpu-ms must be 1 or more, got {cpu_ms}")
        for name, value in (("--max-runs", caps.max_runs), ("--max-steps", caps.max_steps)):
            if value < 1:
                raise _Usage(f"{name} must be 1 or more, got {value}")
        if caps.max_seconds is not None and not caps.max_seconds > 0:
            raise _Usage(f"--max-seconds must be more than 0, got {caps.max_seconds}")
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
        if examples and (input_json is not None or input_file is not None):
            raise _Usage("pass either --example or --input/--input-file, not both")
        chosen = _pick(loaded, workflow, need_one)
        if input_json is not None or input_file is not None:
            # One given input: the only (or the named) workflow.
            w = chosen[0] if chosen else loaded.pick(None)
            params = parse_input(w, input_json, input_file)
            world = verification_world(loaded, seed)
            targets: list[tuple[Target, str, list[str]]] = [
                (Target.of(w, params, world, cpu_ms=cpu_ms), "given input", [])
            ]
        else:
            # What push verifies: every example of every workflow (or the named subset).
            targets = [
                (t, example_label(t.workflow, n), _example_args(t, n))
                for t, n in verification_targets(
                    loaded, workflows=chosen, examples=examples, seed=seed, cpu_ms=cpu_ms
                )
            ]
        if replay is not None and len(targets) > 1:
            raise _Usage(
                f"--replay needs one input: {targets[0][0].workflow.name} has "
                f"{len(targets)} examples; pass --example N (the replay command names it)"
            )
    except (_Usage, FaultPlanError, FlowError) as exc:
        print(f"awf-sim: {exc}", file=sys.stderr)
        return EXIT_USAGE
    replay_args: list[str] = []
    if input_json is not None:
        replay_args += ["--input", json.dumps(json.loads(input_json), ensure_ascii=False)]
    elif input_file == "-":  # standard input is read once: the replay command inlines it
        replay_args += ["--input", json.dumps(targets[0][0].params, ensure_ascii=False)]
    elif input_file is not None:
        replay_args += ["--input-file", input_file]
    if seed:
        replay_args += ["--seed", str(seed)]
    if cpu_ms != DEFAULT_CPU_MS:  # a handler may need more CPU than a smaller budget allows
        replay_args += ["--cpu-ms", str(cpu_ms)]
    bar = _ProgressBar()
    results = []
    replayers = Replayers()  # one set of cross-process replayers for every input
    try:
        for target, label, example_args in targets:
            bar.workflow = f"{target.workflow.name} ({label})"
            caps.label = f"chaos: {bar.workflow}"
            result = run_campaign(
                target,
                runs=runs,
                seed=seed,
                max_faults=max_faults,
                kinds=kinds,
                jobs=jobs,
                progress=bar,
                replay=plan,
                flow_path=flow,
                caps=caps,
                replayers=replayers,
            )
            runaway = runaway_baseline(result.baseline, bar.workflow)
            if runaway is not None:
                # A fault-free run that fails is `baseline-outcome` (exit 1); this one stopped
                # the campaign (each run would pay the budget again): no report, one line.
                print(f"awf-sim: {runaway}", file=sys.stderr)
                return EXIT_VIOLATIONS
            results.append(WorkflowChaos(result, example_args + replay_args, label))
    except ProcessDied as exc:  # a worker of --jobs N: a failure, as for the run's own process
        print(f"awf-sim: {exc}", file=sys.stderr)
        return EXIT_VIOLATIONS
    except AwfError as exc:
        print(f"awf-sim: {error_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        bar.stop()
        replayers.close()
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
        out.write(report.to_json_text() + "\n")
    else:
        from rich.console import Console

        console = Console()
        try:
            with console.capture() as captured:
                console.print(report, crop=False)
            text = captured.get()
            text.encode("utf-8")
        except UnicodeEncodeError:
            # A lone surrogate in a result (JavaScript strings can hold one): shown escaped.
            text = text.encode("utf-8", "backslashreplace").decode("utf-8")
        sys.stdout.write(text)
    if caps.cut_short:
        return EXIT_VIOLATIONS  # not every plan ran: no verdict, whatever was found
    return report.exit_code


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)
