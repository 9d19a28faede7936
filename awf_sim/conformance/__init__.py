"""Conformance: the same scenarios on awf_sim and on Cloudflare's local engine (Miniflare).

A scenario (tests/conformance/FORMAT.md, format versions 1 and 2) describes one workflow
instance as data; each engine turns it into a trace, and two traces are compared by FORMAT.md's
rules. `awf-sim conformance` is the command-line front end.
"""

from awf_sim._public import publish
from awf_sim.conformance._compare import (
    REAL_ENGINE_SLACK_MS,
    Engine,
    compare_traces,
    gap_formula,
    load_trace,
    paused_allowance_ms,
    trace_json,
)
from awf_sim.conformance._interpreter import (
    COMPATIBILITY_DATE,
    SCENARIO_LIMIT_MS,
    run_on_simulator,
)
from awf_sim.conformance._miniflare import MiniflareError, driver_dir, run_on_miniflare
from awf_sim.conformance._run import ENGINES, Outcome, collect_scenarios, run_conformance
from awf_sim.conformance._scenario import (
    Action,
    Attempt,
    DoOp,
    Op,
    ParallelOp,
    Scenario,
    ScenarioError,
    SleepOp,
    WaitOp,
    load_scenario,
    parse_scenario,
)

__all__ = [
    "COMPATIBILITY_DATE",
    "ENGINES",
    "REAL_ENGINE_SLACK_MS",
    "SCENARIO_LIMIT_MS",
    "Action",
    "Attempt",
    "DoOp",
    "Engine",
    "MiniflareError",
    "Op",
    "Outcome",
    "ParallelOp",
    "Scenario",
    "ScenarioError",
    "SleepOp",
    "WaitOp",
    "collect_scenarios",
    "compare_traces",
    "driver_dir",
    "gap_formula",
    "load_scenario",
    "load_trace",
    "parse_scenario",
    "paused_allowance_ms",
    "run_conformance",
    "run_on_miniflare",
    "run_on_simulator",
    "trace_json",
]

publish(__name__, __all__, globals())
