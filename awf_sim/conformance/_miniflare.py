"""Runs scenarios on Cloudflare's local engine through the Node driver in tests/conformance.

The driver (driver.mjs) starts Miniflare once and writes one NAME.trace.json per scenario; this
module only finds it, checks that Node and its npm packages are there, runs it as a
subprocess, and reads the traces back. Every way this can fail ends in one MiniflareError that
says what to install or run.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import tempfile
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from awf_sim.conformance._compare import load_trace
from awf_sim.conformance._interpreter import SCENARIO_LIMIT_MS
from awf_sim.conformance._scenario import (
    ParallelOp,
    Scenario,
    ScenarioError,
    SleepOp,
    SleepUntilOp,
    ThrowOp,
    WaitOp,
    cloudflare_ms,
)
from awf_sim.errors import MiniflareError

__all__ = ["MiniflareError", "driver_dir", "run_on_miniflare"]

# Where the driver lives when it is not in the repository checkout next to the package.
DIR_ENV = "AWF_CONFORMANCE_DIR"
_NODE_MIN_MAJOR = 20
# Per scenario the driver stops after 20 s; the rest is Miniflare's start and stop.
_START_BUDGET_S = 120
_PER_SCENARIO_S = 30


def driver_dir() -> Path:
    """The folder with driver.mjs: $AWF_CONFORMANCE_DIR, else the repository's
    tests/conformance (the driver is test tooling and is not installed with the package)."""
    configured = os.environ.get(DIR_ENV)
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parents[2] / "tests" / "conformance"


def _check_setup(node: str | None, folder: Path) -> str:
    if not (folder / "driver.mjs").is_file():
        raise MiniflareError(
            f"no Miniflare driver at {folder / 'driver.mjs'}: it ships in the awf repository's "
            f"tests/conformance; run from a checkout or set {DIR_ENV} to that folder"
        )
    exe = shutil.which(node or "node")
    if exe is None:
        raise MiniflareError(
            f"node is not on PATH: install Node.js >= {_NODE_MIN_MAJOR}, then run "
            f"`npm ci` in {folder}"
        )
    try:
        version = subprocess.run(
            [exe, "--version"], capture_output=True, text=True, timeout=30, check=True
        ).stdout.strip()
        major = int(version.lstrip("v").split(".")[0])
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        raise MiniflareError(f"cannot run {exe} --version: {exc}") from None
    if major < _NODE_MIN_MAJOR:
        raise MiniflareError(
            f"{exe} is Node {version}; the pinned miniflare needs Node >= {_NODE_MIN_MAJOR}"
        )
    if not (folder / "node_modules" / "miniflare" / "package.json").is_file():
        raise MiniflareError(
            f"miniflare is not installed in {folder}: run `npm ci` there first "
            "(it installs the pinned versions from package-lock.json)"
        )
    return exe


def run_on_miniflare(
    scenarios: Sequence[Scenario],
    *,
    node: str | None = None,
    progress: Callable[[str], None] | None = None,
    jobs: int = 1,
    concurrency: int = 4,
) -> dict[str, dict[str, Any]]:
    """Run every scenario on Miniflare and return name -> trace.

    `jobs` > 1 splits the scenarios over that many driver processes, each with its own
    Miniflare; a scenario that idles until the 20 s limit then costs no one else any time.
    `concurrency`: how many scenarios each driver runs at a time in its Miniflare (its
    `--jobs`); more is faster, but on a loaded machine the driver's actions land later.
    `progress` receives the drivers' per-scenario lines as they come.
    """
    folder = driver_dir()
    exe = _check_setup(node, folder)
    batches = _split(scenarios, jobs)
    with tempfile.TemporaryDirectory(prefix="awf-conformance-") as tmp:
        if len(batches) == 1:
            return _run_batch(exe, folder, batches[0], Path(tmp), progress, concurrency)
        traces: dict[str, dict[str, Any]] = {}
        with ThreadPoolExecutor(max_workers=len(batches)) as pool:
            futures = [
                pool.submit(
                    _run_batch, exe, folder, batch, Path(tmp) / str(i), progress, concurrency
                )
                for i, batch in enumerate(batches)
            ]
            for future in futures:
                traces.update(future.result())
        return {s.name: traces[s.name] for s in scenarios}


def _estimate_ms(scenario: Scenario) -> float:
    """A rough upper bound of a scenario's wall time, only for sharing work between drivers:
    its sleeps, hangs and event-wait timeouts in a row, capped by a terminate and the limit."""
    total = 0.0
    sent = {e.type for e in scenario.events}

    def cost(op: Any) -> float:
        if isinstance(op, SleepOp):
            return max(0.0, cloudflare_ms(op.duration) or 0.0)
        if isinstance(op, SleepUntilOp):
            return max(0.0, op.at_ms)
        if isinstance(op, WaitOp):
            if op.type in sent:
                return 0.0  # an event of its type ends it: its time is in the actions' bound
            return max(0.0, cloudflare_ms(op.timeout) or 0.0) if op.timeout else math.inf
        if isinstance(op, ParallelOp):
            return max(cost(sub) for sub in op.steps)
        if isinstance(op, ThrowOp):
            return 0.0
        return float(sum(a.hang_ms for a in op.attempts))

    for op in scenario.body:
        total += cost(op)
    actions = scenario.actions()
    if actions:
        total = max(total, actions[-1].after_ms)
    controls = [a.op for a in actions if a.kind == "control"]
    if "pause" in controls and controls[-1] == "pause":
        # An instance left pausing may never settle (a pending pause can hang): assume the limit.
        total = math.inf
    ends = [a.after_ms for a in actions if a.kind == "control" and a.op == "terminate"]
    return min([total, SCENARIO_LIMIT_MS, *ends])


def _split(scenarios: Sequence[Scenario], jobs: int) -> list[list[Scenario]]:
    """Longest first, each to the least loaded driver (LPT), so one scenario that idles until
    the 20 s limit gets a driver to itself while the others share the rest."""
    batches: list[list[Scenario]] = [[] for _ in range(max(1, min(jobs, len(scenarios))))]
    totals = [0.0] * len(batches)
    for scenario in sorted(scenarios, key=_estimate_ms, reverse=True):
        i = totals.index(min(totals))
        batches[i].append(scenario)
        totals[i] += _estimate_ms(scenario)
    return [b for b in batches if b]


def _run_batch(
    exe: str,
    folder: Path,
    scenarios: Sequence[Scenario],
    work: Path,
    progress: Callable[[str], None] | None,
    concurrency: int,
) -> dict[str, dict[str, Any]]:
    inputs, out = work / "in", work / "out"
    inputs.mkdir(parents=True)
    files = []
    for scenario in scenarios:
        # Written afresh, so a scenario parsed from memory runs exactly as validated.
        path = inputs / f"{scenario.name}.json"
        # ASCII with \u escapes: a lone surrogate (which JSON carries and UTF-8 cannot) stays
        # exactly what the scenario says.
        path.write_text(json.dumps(dict(scenario.raw), ensure_ascii=True), encoding="ascii")
        files.append(str(path))
    stderr = _run_driver(
        [exe, str(folder / "driver.mjs"), "--out", str(out), "--jobs", str(concurrency), *files],
        cwd=folder,
        timeout=_START_BUDGET_S + _PER_SCENARIO_S * len(scenarios),
        progress=progress,
    )
    traces = {}
    for scenario in scenarios:
        try:
            traces[scenario.name] = load_trace(out / f"{scenario.name}.trace.json")
        except ScenarioError as exc:
            raise MiniflareError(
                f"the driver wrote no usable trace for {scenario.name}: {exc}\n{stderr}"
            ) from None
    return traces


def _run_driver(
    argv: list[str], *, cwd: Path, timeout: float, progress: Callable[[str], None] | None
) -> str:
    lines: list[str] = []
    try:
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
            # Its own process group, so a timeout also stops the workerd it started.
            start_new_session=os.name == "posix",
        )
    except OSError as exc:
        raise MiniflareError(f"cannot start the driver: {exc}") from None
    assert proc.stderr is not None
    timed_out = threading.Event()

    def stop() -> None:
        if os.name == "posix":
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        else:
            proc.kill()

    def kill() -> None:
        timed_out.set()
        stop()

    # A watchdog rather than wait(timeout): reading stderr line by line would block past it.
    watchdog = threading.Timer(timeout, kill)
    watchdog.start()
    try:
        # The driver prints one line per finished scenario; forward them as they arrive.
        for line in proc.stderr:
            lines.append(line.rstrip("\n"))
            if progress is not None:
                progress(lines[-1])
        code = proc.wait()
    except BaseException:
        # Ctrl-C or a failing progress callback: the driver has its own session, stop it too.
        stop()
        proc.wait()
        raise
    finally:
        watchdog.cancel()
        proc.stderr.close()
    if timed_out.is_set():
        raise MiniflareError(f"the Miniflare driver took longer than {timeout:.0f} s; stopped it")
    text = "\n".join(lines)
    if code != 0:
        detail = lines[-1] if lines else f"exit status {code}"
        raise MiniflareError(f"the Miniflare driver failed ({detail})\n{text}".rstrip())
    return text
