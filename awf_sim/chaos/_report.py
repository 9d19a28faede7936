"""What `awf-sim chaos` prints: a ChaosReport renders itself with rich, or as one JSON object.

rich is imported inside `__rich_console__` only, so importing this module stays light.
The JSON shape is documented in awf_sim/chaos/README.md (`CHAOS_JSON_VERSION`).
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from awf_sim._report import format_at, timeline_table
from awf_sim.chaos._faults import KINDS, REPLAY_KINDS, describe_fault
from awf_sim.chaos._invariants import INVARIANTS
from awf_sim.chaos._model import BODY_RUNAWAY, CampaignResult, Finding, Observation
from awf_sim.chaos._schema import CHAOS_JSON_SCHEMA, CHAOS_JSON_VERSION
from awf_sim.dsl._example import expected_outcome
from awf_sim.engine import TimelineEntry
from awf_sim.engine._timeline import failure_stack

__all__ = [
    "CHAOS_JSON_SCHEMA",
    "CHAOS_JSON_VERSION",
    "ChaosReport",
    "mark_timeline",
    "replay_command",
]

_SHORT = {
    "crash-before-step": "before",
    "crash-after-effect": "effect",
    "crash-after-checkpoint": "ckpt",
    "crash-during-sleep": "sleep",
    "crash-during-wait": "wait",
    "transient-error": "error",
    "timeout": "timeout",
    "event-early": "early",
    "event-late": "late",
    "event-at-deadline": "deadline",
    "event-withheld": "withheld",
    "event-duplicate": "dup",
    "clock-skew": "skew",
    "reseed": "reseed",
}
TIMELINE_ROWS = 40
_LEGEND = {
    "before": "crash before the step",
    "effect": "crash after its effect, before its checkpoint",
    "ckpt": "crash after its checkpoint",
    "sleep": "evicted while sleeping",
    "wait": "evicted while waiting",
    "error": "transient error",
    "timeout": "attempt timed out",
    "skew": "replay on a skewed clock",
    "reseed": "replay with new randomness",
    "early": "event before the wait",
    "late": "event just before the timeout",
    "deadline": "event exactly at the timeout",
    "withheld": "event withheld past the timeout",
    "dup": "event sent twice",
}


def mark_timeline(obs: Observation) -> list[TimelineEntry]:
    """A copy of the run's timeline where each entry a fault produced has `"fault": kind`."""
    timeline = [e.copy() for e in obs.timeline]
    crashes = [
        f
        for f in obs.fired
        if f.kind.startswith("crash-") or (f.kind in REPLAY_KINDS and f.ref_kind is not None)
    ]
    by_attempt = {
        (f.name, f.attempt): f.kind for f in obs.fired if f.kind in ("transient-error", "timeout")
    }
    sent: dict[tuple[str | None, int, int], int] = {
        (s.type, s.copy, s.at_ms): s.seq for s in obs.sent
    }
    by_seq = {
        sent[(f.path, f.occurrence, f.at_ms)]: f.kind
        for f in obs.fired
        if f.ref_kind == "event" and (f.path, f.occurrence, f.at_ms) in sent
    }
    replays = [f for f in obs.fired if f.kind in REPLAY_KINDS and f.ref_kind is None]
    queue = iter(crashes)
    for e in timeline:
        kind = e["kind"]
        if kind == "crash":
            f = next(queue, None)
            if f is not None:
                e["fault"] = f.kind
        elif kind == "attempt-failure" and (e.get("name"), e.get("attempt")) in by_attempt:
            e["fault"] = by_attempt.pop((e["name"], e["attempt"]))
        elif kind == "event-received" and e.get("seq") in by_seq:
            e["fault"] = by_seq[e["seq"]]
        elif kind == "recover" and replays and e["at_ms"] >= replays[0].at_ms:
            e["fault"] = replays.pop(0).kind
    return timeline


def replay_command(flow: str, workflow: str, token: str, extra: Sequence[str] = ()) -> str:
    """`awf-sim chaos FLOW --workflow NAME [--input ...] [--seed S] --replay TOKEN`."""
    parts = ["awf-sim", "chaos", flow, "--workflow", workflow, *extra, "--replay", token]
    return " ".join(shlex.quote(p) for p in parts)


def _plan_text(plan: Sequence[Mapping[str, Any]]) -> str:
    if not plan:
        return "no fault (the fault-free run)"
    return "; ".join(describe_fault(f) for f in plan)


def _expect_json(params: Any) -> dict[str, Any]:
    status, error = expected_outcome(params)
    return {"status": status, "error": error}


@dataclass
class WorkflowChaos:
    """One workflow's campaign and how to replay its findings."""

    result: CampaignResult
    replay_args: list[str] = field(default_factory=list)  # --example/--input/--seed
    # Which input ran: "example 2 of 3", "given input", "no examples: {}".
    input_from: str = ""


@dataclass
class ChaosReport:
    """The result of `awf-sim chaos`: one campaign per workflow."""

    flow: str
    workflows: list[WorkflowChaos]
    runs: int
    seed: int
    max_faults: int
    kinds: tuple[str, ...] = KINDS
    jobs: int = 1

    @property
    def clean(self) -> bool:
        return all(w.result.clean for w in self.workflows)

    @property
    def exit_code(self) -> int:
        return 0 if self.clean else 1

    # -- JSON --------------------------------------------------------------------------------
    def _finding_json(self, w: WorkflowChaos, f: Finding) -> dict[str, Any]:
        v = f.violation
        return {
            "invariant": v.invariant,
            "key": v.key,
            "message": v.message,
            "runs": f.runs,
            "plan": f.plan,
            "plan_text": _plan_text(f.plan),
            "token": f.token,
            "original_plan": f.original_plan,
            "difference": v.difference,
            "hint": v.hint,
            "where": v.where,
            "related": [
                {
                    "invariant": r.violation.invariant,
                    "key": r.violation.key,
                    "message": r.violation.message,
                    "runs": r.runs,
                }
                for r in f.related
            ],
            "status": f.observation.status,
            "output": f.observation.output,
            "error": _with_stack(f.observation.error, f.observation.timeline),
            "timeline": mark_timeline(f.observation),
            "replay": replay_command(
                self.flow, w.result.target.workflow.name, f.token, w.replay_args
            ),
        }

    def _coverage(self, r: CampaignResult) -> dict[str, Any]:
        rank: dict[str, int] = {}
        for i, p in enumerate(r.baseline.points):
            rank.setdefault(p.label, i)
        pairs = sorted(
            {(p.label, k) for p in r.baseline.points for k in _point_kinds(r, p.label)},
            key=lambda pk: (rank[pk[0]], KINDS.index(pk[1])),
        )
        ran = [pk for pk in pairs if r.coverage.get(pk, 0)]
        return {
            "pairs": len(pairs),
            "ran": len(ran),
            "points": [p.label for p in r.baseline.points],
            "kinds": [k for k in KINDS if k in r.baseline.kinds],
            "matrix": [
                {"point": p, "kind": k, "runs": r.coverage.get((p, k), 0)} for p, k in pairs
            ],
            "not_ran": [{"point": p, "kind": k} for p, k in pairs if not r.coverage.get((p, k))],
            "wait_timeouts": [
                {"wait": name, "runs": n} for name, n in sorted(r.wait_timeouts.items())
            ],
        }

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "version": CHAOS_JSON_VERSION,
            "flow": self.flow,
            "seed": self.seed,
            "runs": self.runs,
            "max_faults": self.max_faults,
            "faults": list(self.kinds),
            "jobs": self.jobs,
            "clean": self.clean,
            "workflows": [],
        }
        for w in self.workflows:
            r = w.result
            base = r.baseline.obs
            out["workflows"].append(
                {
                    "workflow": r.target.workflow.name,
                    "instance_id": r.target.iid,
                    "input": r.target.params,
                    "input_from": w.input_from,
                    "expect": _expect_json(r.target.params),
                    "replay": r.replay,
                    "baseline": {
                        "status": base.status,
                        "output": base.output,
                        "error": base.error,
                        "steps": sum(1 for p in r.baseline.points if p.kind == "do"),
                        "duration_ms": base.end_ms,
                    },
                    "runs": r.runs,
                    "exhaustive_runs": r.exhaustive,
                    "random_runs": r.random,
                    "clean": r.clean,
                    "invariants": [
                        {
                            "name": name,
                            "checked": r.checked.get(name, 0),
                            "violations": r.violating.get(name, 0),
                        }
                        for name in INVARIANTS
                    ],
                    "coverage": self._coverage(r),
                    "violations": [self._finding_json(w, f) for f in r.findings],
                }
            )
            if r.planned is not None:  # only then, as cpu_stopped
                out["workflows"][-1]["cut_short"] = {"ran": r.runs, "planned": r.planned}
            if r.cpu_stopped:  # only then: a report without a runaway keeps its old shape
                out["workflows"][-1]["cpu_stopped"] = [
                    {"what": what, "runs": n} for what, n in r.cpu_stopped.items()
                ]
        return out

    def to_json_text(self) -> str:
        """UTF-8 as is; with a lone surrogate somewhere (a step may return one, as JavaScript
        strings can hold one; UTF-8 cannot carry it), everything non-ASCII escaped."""
        text = json.dumps(self.to_json(), ensure_ascii=False, default=str)
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return json.dumps(self.to_json(), ensure_ascii=True, default=str)
        return text

    # -- rich ----------------------------------------------------------------------------------
    def __rich_console__(self, console: Any, options: Any) -> Iterator[Any]:
        from rich.text import Text

        for w in self.workflows:
            yield from self._render_workflow(w)
        # Say what ran: a clean verdict covers these inputs and no others.
        ran = [f"{w.result.target.workflow.name} ({w.input_from})" for w in self.workflows]
        inputs = len(ran)
        yield Text(f"inputs checked ({inputs}): " + ", ".join(ran), style="dim")
        if self.clean:
            yield Text("chaos: no invariant broken", style="bold green")
        elif not any(w.result.findings for w in self.workflows):
            stopped = ", ".join(
                f"{w.result.target.workflow.name} ({w.input_from})"
                for w in self.workflows
                if w.result.cut_short
            )
            yield Text(
                f"chaos: no verdict: --max-seconds stopped {stopped} before every fault was "
                "injected (no invariant broken in the runs made)",
                style="bold red",
            )
        else:
            # The same bug reached from several inputs (examples) is one violation.
            seen = {
                (w.result.target.workflow.name, f.violation.invariant, f.violation.key)
                for w in self.workflows
                for f in w.result.findings
            }
            n = len(seen)
            total = sum(len(w.result.findings) for w in self.workflows)
            more = f" (reached {total} times across the inputs)" if total > n else ""
            yield Text(f"chaos: {n} violation{'' if n == 1 else 's'} found{more}", style="bold red")

    def _render_workflow(self, w: WorkflowChaos) -> Iterator[Any]:
        from rich.rule import Rule
        from rich.table import Table
        from rich.text import Text

        r = w.result
        base = r.baseline.obs
        params = json.dumps(r.target.params, ensure_ascii=False)
        if len(params) > 70:
            params = params[:67] + "..."
        yield Rule(f"{r.target.workflow.name}", align="left")
        status, error = expected_outcome(r.target.params)
        expects = "" if status == "complete" else f"; expects errored with {error or 'any error'}"
        source = f" ({w.input_from}{expects})" if w.input_from or expects else ""
        yield Text.assemble(("input ", "bold"), params, source)
        steps = sum(1 for p in r.baseline.points if p.kind == "do")
        yield Text(
            f"seed {r.seed}; baseline: {base.status} after {format_at(base.end_ms)}, "
            f"{steps} step(s); "
            + (
                f"replayed 1 plan ({_plan_text(r.findings[0].plan if r.findings else [])})"
                if r.replay is not None
                else f"{r.runs} fault-injected runs ({r.exhaustive} exhaustive, {r.random} "
                f"random with up to {r.max_faults} faults)"
            )
        )
        table = Table(title=None, show_edge=False)
        table.add_column("invariant")
        table.add_column("runs checked", justify="right")
        table.add_column("violations", justify="right")
        for name in INVARIANTS:
            bad = r.violating.get(name, 0)
            table.add_row(
                name,
                str(r.checked.get(name, 0)),
                Text(str(bad), style="bold red" if bad else "green"),
            )
        yield table
        yield from _render_cpu(r)
        if r.replay is None:
            yield from self._render_coverage(r)
        for i, f in enumerate(r.findings, start=1):
            yield from self._render_finding(w, f, i)

    def _render_coverage(self, r: CampaignResult) -> Iterator[Any]:
        from rich.table import Table
        from rich.text import Text

        cov = self._coverage(r)
        style = "green" if cov["ran"] == cov["pairs"] else "yellow"
        yield Text(
            f"coverage: {cov['ran']} of {cov['pairs']} (fault point × kind) pairs ran",
            style=style,
        )
        if not cov["pairs"]:
            # "no invariant broken" would otherwise read as verified under faults.
            asked = "" if self.kinds == KINDS else f" of --faults {','.join(self.kinds)}"
            yield Text(
                f"nothing was injected: no fault kind{asked} applies to any step, sleep, wait "
                "or event of this run, so only the fault-free run was checked",
                style="yellow",
            )
            return
        steps = [p for p in r.baseline.points if p.kind == "do"]
        others = [p for p in r.baseline.points if p.kind != "do" and _point_kinds(r, p.label)]
        kinds = [k for k in KINDS if any(k in _point_kinds(r, p.label) for p in steps)]
        if steps and kinds:
            table = Table(show_edge=False, pad_edge=False)
            table.add_column("step", no_wrap=True)
            for k in kinds:
                table.add_column(_SHORT[k], justify="right")
            for p in steps[:_LISTED]:
                applicable = _point_kinds(r, p.label)
                cells: list[Any] = []
                for k in kinds:
                    if k not in applicable:
                        cells.append(Text("·", style="dim"))
                    else:
                        n = r.coverage.get((p.label, k), 0)
                        cells.append(Text(str(n), style="green" if n else "bold red"))
                table.add_row(p.label, *cells)
            yield table
            yield from _more(len(steps), "steps")
        width = max((len(p.label) for p in others[:_LISTED]), default=0)
        for p in others[:_LISTED]:
            parts: list[Any] = [f"{p.label:<{width}}  "]
            for i, k in enumerate(_point_kinds(r, p.label)):
                n = r.coverage.get((p.label, k), 0)
                parts += [
                    " · " if i else "",
                    f"{_SHORT[k]} ",
                    (str(n), "green" if n else "bold red"),
                ]
            yield Text.assemble(*parts)
        yield from _more(len(others), "sleeps and waits")
        shown = dict.fromkeys(
            _SHORT[k] for p in r.baseline.points for k in _point_kinds(r, p.label)
        )
        yield Text(
            "; ".join(f"{s}: {_LEGEND[s]}" for s in shown) + ". Numbers: runs in which it fired.",
            style="dim",
        )
        # Say what was not covered, by name: a clean verdict says nothing about it.
        for item in cov["not_ran"][:_LISTED]:
            yield Text(
                f"not covered: {item['kind']} at {item['point']} never fired", style="yellow"
            )
        if len(cov["not_ran"]) > _LISTED:
            yield Text(
                f"not covered: {len(cov['not_ran']) - _LISTED:,} more (fault point × kind) "
                "pairs; --json lists them all",
                style="yellow",
            )
        for item in cov["wait_timeouts"]:
            if not item["runs"]:
                yield Text(
                    f"not covered: the timeout branch of wait_for {item['wait']!r} never ran",
                    style="yellow",
                )

    def _render_finding(self, w: WorkflowChaos, f: Finding, number: int) -> Iterator[Any]:
        from rich.padding import Padding
        from rich.text import Text

        v = f.violation
        yield Text("")
        yield Text.assemble(
            (f"✗ violation {number}: {v.invariant}", "bold red"),
            f" · {v.key} · {f.runs} run(s)",
        )
        yield Padding(Text(v.message), (0, 0, 0, 2))
        if f.related:
            yield Padding(
                Text("also caused by this (not counted again):", style="bold"), (0, 0, 0, 2)
            )
            for r in f.related:
                yield Padding(
                    Text(f"{r.violation.invariant} · {r.runs} run(s): {r.violation.message}"),
                    (0, 0, 0, 4),
                )
        shrunk = ""
        if len(f.original_plan) != len(f.plan) or f.original_plan != f.plan:
            shrunk = f" (shrunk from {len(f.original_plan)} fault(s))"
        yield Padding(
            Text.assemble(("plan", "bold"), shrunk, ": ", _plan_text(f.plan)), (0, 0, 0, 2)
        )
        if v.difference:
            yield Padding(Text("difference:", style="bold"), (0, 0, 0, 2))
            for line in v.difference:
                yield Padding(Text(line, style="red"), (0, 0, 0, 4))
        timeline = mark_timeline(f.observation)
        shown = timeline
        start = 0
        if len(shown) > TIMELINE_ROWS:
            first_fault = next((i for i, e in enumerate(shown) if e.get("fault")), 0)
            start = max(0, min(first_fault - 5, len(shown) - TIMELINE_ROWS))
            shown = shown[start : start + TIMELINE_ROWS]
        title = "timeline"
        if len(shown) < len(timeline):
            # Say what was cut, so a reader never takes a window for the whole run.
            after = len(timeline) - start - len(shown)
            title = (
                f"timeline: entries {start + 1} to {start + len(shown)} of {len(timeline)}"
                f" ({start} earlier and {after} later not shown; --json has them all)"
            )
        table = timeline_table(
            shown, show_edge=False, pad_edge=False, title=title, title_justify="left"
        )
        yield Padding(table, (0, 0, 0, 2))
        if f.observation.status != w.result.baseline.obs.status:
            err = f.observation.error
            extra = f" ({err['name']}: {err['message']})" if err else ""
            yield Padding(Text(f"status: {f.observation.status}{extra}"), (0, 0, 0, 2))
            stack = failure_stack(f.observation.timeline) if err else None
            if stack:
                yield Padding(Text(stack, style="red"), (0, 0, 0, 4))
        where = f"  [{v.where}]" if v.where and v.where not in v.hint else ""
        yield Padding(
            Text.assemble(("hint: ", "bold yellow"), v.hint, (where, "dim")), (0, 0, 0, 2)
        )
        command = replay_command(self.flow, w.result.target.workflow.name, f.token, w.replay_args)
        # One line whatever the width, so that it can be copied as it is.
        yield Text.assemble(("  replay: ", "bold"), command, no_wrap=True, overflow="ignore")


def _render_cpu(r: CampaignResult) -> Iterator[Any]:
    """What the CPU budget stopped: a runaway is a bug even when a retry gets past it."""
    from rich.text import Text

    runs = r.runs + 1  # the fault-free run too
    for what, n in r.cpu_stopped.items():
        if what == BODY_RUNAWAY:
            did = (
                f"the workflow body ran past {r.target.cpu_ms} ms of CPU without awaiting; "
                "the instance ended errored with CpuLimitExceeded"
            )
        else:
            did = (
                f"an attempt of {what} ran past {r.target.cpu_ms} ms of CPU; it was stopped "
                "as CpuLimitExceeded and retried per the step's config"
            )
        yield Text(
            f"CPU budget: in {n} of {runs} runs {did}, as Cloudflare stops an invocation "
            "over its CPU limit (an endless loop?); --cpu-ms MS sets the budget",
            style="yellow",
        )


def _with_stack(
    error: dict[str, str] | None, timeline: list[TimelineEntry]
) -> dict[str, str] | None:
    """The stored {name, message}, with `stack` beside them when the user's code raised it."""
    stack = failure_stack(timeline) if error else None
    return {**error, "stack": stack} if error and stack else error


# Fault points listed by name, at most: a loop of 10,000 steps has 10,000, and the report is
# read by a person (--json has them all).
_LISTED = 40


def _more(count: int, what: str) -> Iterator[Any]:
    """The line that stands for the points past the first `_LISTED`, if any."""
    from rich.text import Text

    if count > _LISTED:
        yield Text(f"... and {count - _LISTED:,} more {what}; --json lists them all", style="dim")


def _point_kinds(r: CampaignResult, label: str) -> list[str]:
    """The kinds the exhaustive phase aimed at this point."""
    return r.baseline.aimed.get(label, [])
