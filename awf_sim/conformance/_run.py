"""What `awf-sim conformance` does, minus the printing: collect scenarios, run them on one
engine, write the traces, compare them with a folder of reference traces."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from awf_sim.conformance._compare import Engine, compare_traces, load_trace, trace_json
from awf_sim.conformance._interpreter import run_on_simulator
from awf_sim.conformance._miniflare import run_on_miniflare
from awf_sim.conformance._scenario import Scenario, ScenarioError, load_scenario

__all__ = ["ENGINES", "Outcome", "collect_scenarios", "run_conformance"]

ENGINES: tuple[Engine, ...] = ("sim", "miniflare")


@dataclass(frozen=True)
class Outcome:
    """One scenario's result: its trace and, when compared, the first difference."""

    scenario: Scenario
    trace: dict[str, Any]
    compared: bool = False
    difference: str | None = None

    @property
    def matched(self) -> bool:
        return self.compared and self.difference is None


def collect_scenarios(paths: Sequence[str | os.PathLike[str]]) -> list[Scenario]:
    """Load scenario files; a folder stands for every NAME.json in it (traces left out)."""
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(
                p for p in path.glob("*.json") if p.is_file() and not p.name.endswith(".trace.json")
            )
            if not found:
                raise ScenarioError(f"{path}: no scenario files (NAME.json) in this folder")
            files.extend(found)
        else:
            files.append(path)
    # `dir/*.json` names each trace beside its scenario: skip those, but not a lone trace.
    given = {f.resolve() for f in files}
    files = [
        f
        for f in files
        if not (
            f.name.endswith(".trace.json")
            and f.with_name(f.name.removesuffix(".trace.json") + ".json").resolve() in given
        )
    ]
    if not files:
        raise ScenarioError("no scenario files given")
    scenarios = [load_scenario(f) for f in files]
    seen: dict[str, str] = {}
    for s in scenarios:
        if s.name in seen:
            raise ScenarioError(
                f"{s.source}: scenario name {s.name!r} is also used by {seen[s.name]}; "
                "traces are written as NAME.trace.json, so names must differ"
            )
        seen[s.name] = s.source
    return scenarios


def run_conformance(
    scenarios: Sequence[Scenario],
    *,
    engine: Engine = "sim",
    out: str | os.PathLike[str] | None = None,
    compare_with: str | os.PathLike[str] | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[Outcome]:
    """Run `scenarios` on `engine`; write NAME.trace.json files to `out`; compare with the
    traces in `compare_with`. Reference traces are read first, so a missing one fails before
    anything runs."""
    if engine not in ENGINES:
        raise ScenarioError(f"unknown engine {engine!r}: use sim or miniflare")
    references: dict[str, dict[str, Any]] = {}
    if compare_with is not None:
        folder = Path(compare_with)
        if not folder.is_dir():
            raise ScenarioError(f"{folder}: not a folder of traces (NAME.trace.json)")
        for s in scenarios:
            references[s.name] = load_trace(folder / f"{s.name}.trace.json")

    if engine == "sim":
        traces = {s.name: run_on_simulator(s) for s in scenarios}
    else:
        traces = run_on_miniflare(scenarios, progress=progress)

    if out is not None:
        out_dir = Path(out)
        out_dir.mkdir(parents=True, exist_ok=True)
        for s in scenarios:
            (out_dir / f"{s.name}.trace.json").write_text(
                trace_json(traces[s.name]), encoding="utf-8"
            )

    outcomes = []
    for s in scenarios:
        trace = traces[s.name]
        if compare_with is None:
            outcomes.append(Outcome(s, trace))
        else:
            diff = compare_traces(s, references[s.name], trace, engine=engine)
            outcomes.append(Outcome(s, trace, compared=True, difference=diff))
    return outcomes
