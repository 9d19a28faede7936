"""Replay a production instance's history against a flow's current code.

Cloudflare runs every instance on the newest code after a deploy, including instances already
sleeping or waiting for an event: the instance's `run` starts again from the top and each step
that completed is served from the instance's log by (name, occurrence). A deploy that changes a
step's name (a domain call's name hashes its context and args: `Payment.process@<id>`) makes a
running instance redo work it already did, or skip it. This module finds that before the deploy.

- A *history* is a versioned JSON file (`awf-deploy pull` writes it): the instance's status,
  params and Cloudflare's step log (`GET .../workflows/{w}/instances/{id}`: each step's `name`,
  `type` (`step`, `sleep`, `waitForEvent`), `output`, `attempts`, `config`, `success`, `end`).
- `replay(workflow, history)` runs the workflow in the simulator with the history pre-loaded
  into the instance's store: completed steps return their recorded output, finished sleeps and
  waits return at once, and the run goes on from where the instance stands (new steps run in
  the simulator, with the flow's database, HTTP mock and AI provider). It reports, step by
  step, where the code diverges from the history:

  - `not-called`: a completed step the code no longer calls (its work would be redone under a
    new name, or skipped);
  - `new-before-frontier`: a step the history does not have, called before the replay got past
    the last completed step of the history (the instance already passed that point);
  - `config-changed`: a completed domain step whose retries or timeout differ now;
  - `fails-on-history`: the code ends the instance errored before it gets past the history
    (every call it made was served from it), on the instance's own checkpoints or params.

The store is filled through the public `Store.commit` with the records the engine keeps per
call (`do:<name>#<k>`, `sleep:<name>#<k>`, `wait:<name>#<k>`, see awf_sim/engine/_simulator.py);
`tests/cli/test_replay.py` replays histories the simulator recorded itself, so a change of
those records fails there first.
"""

from __future__ import annotations

import datetime as _dt
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from awf_sim._history import (
    HISTORY_FORMAT,
    HISTORY_VERSION,
    History,
    history_from_instance,
    load_history,
)
from awf_sim.dsl._config import PROFILES, ResolvedConfig, merge_config
from awf_sim.dsl._duration import parse_duration
from awf_sim.dsl._identity import canonical
from awf_sim.dsl._workflow import Workflow
from awf_sim.errors import AwfError, HistoryError

if TYPE_CHECKING:  # the engine is imported when a replay runs, not with this module
    from awf_sim.engine import InstanceMeta, StepRecord

__all__ = [
    "HISTORY_FORMAT",
    "HISTORY_VERSION",
    "Divergence",
    "History",
    "ReplayReport",
    "history_from_instance",
    "load_history",
    "record_history",
    "replay",
]

# Their public home is this module (reprs, pickles, docs), as `_public.publish` does for a
# package's private modules.
for _public_name in ("History", "history_from_instance", "load_history"):
    globals()[_public_name].__module__ = __name__

_KINDS = {"step": "do", "sleep": "sleep", "waitForEvent": "wait"}


# -- the report ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Divergence:
    kind: str  # not-called | new-before-frontier | config-changed | fails-on-history
    name: str
    path: str
    detail: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.name}: {self.detail}"

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "path": self.path, "detail": self.detail}


@dataclass
class ReplayReport:
    workflow: str
    instance: str
    history_status: str
    completed: int  # finished steps, sleeps and waits in the history (the frontier)
    served: int  # of those, how many the new code called and got from the history
    steps: list[dict[str, Any]] = field(default_factory=list)
    divergences: list[Divergence] = field(default_factory=list)
    status: str = "unknown"  # the replay's status at its end
    output: Any = None
    error: Any = None

    @property
    def faithful(self) -> bool:
        return not self.divergences

    def __str__(self) -> str:
        """The human form, as `awf-sim replay` prints it: one line per step, then the verdict
        (so `assert report.faithful, report` shows what diverged, not the dataclass)."""
        lines = [
            f"replay of instance {self.instance} of {self.workflow} "
            f"(history: {self.history_status}, {self.completed} completed steps)"
        ]
        lines += [f"  {row['source']:<12} {row['kind']:<5} {row['name']}" for row in self.steps]
        if self.faithful:
            lines.append(
                f"faithful: {self.served} of {self.completed} completed steps served from the "
                f"history; the replay goes on to {self.status}"
            )
        else:
            lines.append(f"DIVERGES at {len(self.divergences)} step(s):")
            lines += [f"  {divergence}" for divergence in self.divergences]
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "workflow": self.workflow,
            "instance": self.instance,
            "faithful": self.faithful,
            "history_status": self.history_status,
            "completed": self.completed,
            "served": self.served,
            "status": self.status,
            "output": self.output,
            "error": self.error,
            "steps": self.steps,
            "divergences": [d.to_json() for d in self.divergences],
        }


# -- replay ----------------------------------------------------------------------------------------


@dataclass
class _Entry:
    kind: str  # do | sleep | wait
    name: str
    count: int
    finished: bool
    record: StepRecord | None  # what the store holds for it; None: runs again
    config: ResolvedConfig | None

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.name}#{self.count}"

    @property
    def path(self) -> str:
        return self.name.split("@", 1)[0] if self.kind == "do" else self.name


def _norm_config(raw: Any) -> ResolvedConfig | None:
    """Cloudflare's step config (durations as text or ms) in the engine's form, or None."""
    if not isinstance(raw, Mapping):
        return None
    try:
        retries = raw.get("retries") or {}
        if not isinstance(retries, Mapping):
            return None
        base = PROFILES["production"]
        return {
            "retries": {
                "limit": int(retries.get("limit", base["retries"]["limit"])),
                "delay": parse_duration(retries.get("delay", base["retries"]["delay"])),
                "backoff": str(retries.get("backoff", base["retries"]["backoff"])),
            },
            "timeout": parse_duration(raw.get("timeout", base["timeout"])),
        }
    except (AwfError, TypeError, ValueError):
        return None


def _wait_value(output: Any) -> str:
    if isinstance(output, Mapping) and "payload" in output:
        event = {
            "payload": output.get("payload"),
            "timestamp": output.get("timestamp"),
            "type": output.get("type"),
        }
    else:
        event = {"payload": output, "timestamp": None, "type": None}
    return json.dumps(event)


def _error_of(step: Mapping[str, Any]) -> dict[str, str]:
    error = step.get("error")
    attempts = step.get("attempts") or []
    if not isinstance(error, Mapping) and attempts and isinstance(attempts[-1], Mapping):
        error = attempts[-1].get("error")
    if not isinstance(error, Mapping):
        return {"name": "Error", "message": ""}
    return {"name": str(error.get("name") or "Error"), "message": str(error.get("message") or "")}


def _entries(steps: tuple[Mapping[str, Any], ...]) -> list[_Entry]:
    entries: list[_Entry] = []
    counts: dict[tuple[str, str], int] = {}
    for step in steps:
        kind = _KINDS.get(str(step.get("type")))
        name = step.get("name")
        if kind is None or not isinstance(name, str):
            continue  # termination and rollback records carry no step
        count = counts[(kind, name)] = counts.get((kind, name), 0) + 1
        record: StepRecord | None = None
        config = _norm_config(step.get("config")) if kind == "do" else None
        if kind == "do":
            finished = step.get("success") is not None and step.get("end") is not None
            if finished:
                attempts = len(step.get("attempts") or []) or 1
                record = {
                    "kind": "do",
                    "name": name,
                    "state": "running",
                    "path": name.split("@", 1)[0],
                    "count": count,
                    "config": config or PROFILES["production"],
                    "attempts": attempts,
                    "retry_at": None,
                }
                if step.get("success"):
                    record["state"] = "done"
                    record["value"] = json.dumps(step.get("output"))
                else:
                    record["state"] = "failed"
                    record["error"] = _error_of(step)
        elif kind == "sleep":
            finished = bool(step.get("finished"))
            if finished:
                record = {"kind": "sleep", "name": name, "state": "done", "until": 0}
        else:
            finished = bool(step.get("finished"))
            if finished:
                record = {"kind": "wait", "name": name, "state": "done", "type": None}
                record["deadline"] = 0
                error = step.get("error")
                if isinstance(error, Mapping) and error:
                    record["state"] = "failed"
                    record["error"] = _error_of(step)
                    record["timeout_ms"] = 0
                else:
                    record["value"] = _wait_value(step.get("output"))
        entries.append(_Entry(kind, name, count, finished, record, config))
    return entries


def _config_for(workflow: Workflow, path: str) -> ResolvedConfig | None:
    """The resolved config the current code gives a domain step at `path`, if it is one."""
    parts = path.split(".")
    if len(parts) < 2:
        return None
    try:
        spec = workflow.resolve_domain(parts[0]).spec(parts[1])
    except AwfError:
        return None
    return merge_config(PROFILES["production"], spec.config)


def _describe_config(config: ResolvedConfig) -> str:
    r = config["retries"]
    return (
        f"retries limit {r['limit']}, delay {r['delay']} ms, {r['backoff']}; "
        f"timeout {config['timeout']} ms"
    )


def replay(
    workflow: Workflow,
    history: History,
    *,
    db: Any = None,
    http: Any = None,
    ai: Any = None,
    seed: int = 0,
) -> ReplayReport:
    """Run `workflow`'s current code against `history` in the simulator; see the module doc.
    `db`, `http` and `ai` left out are the flow file's `DATABASE`, `HTTP` and `AI`, as for
    `awf-sim replay` and `create_test_workflow`."""
    from awf_sim.engine import MemoryStore, Simulator
    from awf_sim.engine._hooks import Hooks, StepRef
    from awf_sim.engine._timeline import failure_stack
    from awf_sim.testing._workflow import with_flow_defaults

    if history.workflow != workflow.name:
        raise HistoryError(
            f"the history is of workflow {history.workflow!r}, not {workflow.name!r}"
        )
    db, ai, http = with_flow_defaults(workflow, db, ai, http)
    entries = _entries(history.steps)
    by_key = {e.key: e for e in entries}
    completed = [e for e in entries if e.finished]

    calls: list[StepRef] = []

    class _Recorder(Hooks):
        def step_call(self, iid: str, ref: StepRef) -> None:
            calls.append(ref)

    iid = history.instance
    store = MemoryStore()
    meta: InstanceMeta = {
        "id": iid,
        "workflow": workflow.name,
        "params": canonical({} if history.params is None else history.params, root="params"),
        "status": "running",
        "output": None,
        "error": None,
        "created_ms": 0,
        "paused_ms": None,
    }
    store.commit(iid, meta=meta, steps={e.key: e.record for e in entries if e.record is not None})
    sim = Simulator(seed=seed, store=store, db=db, http=http, ai=ai, hooks=_Recorder())
    try:
        sim.register(workflow)
        sim.recover()
        sim.run()
        final = sim.instance(iid).status()
        stack = failure_stack(sim.instance(iid).timeline)
    finally:
        sim.close()
    if stack and isinstance(final.get("error"), Mapping):
        # Where the new code failed, as `awf-sim run --json` gives it (error.stack).
        final = {**final, "error": {**final["error"], "stack": stack}}

    report = ReplayReport(
        workflow=workflow.name,
        instance=iid,
        history_status=history.status,
        completed=len(completed),
        served=0,
        status=str(final.get("status")),
        output=final.get("output"),
        error=final.get("error"),
    )
    seen: set[str] = set()
    for ref in calls:
        key = f"{ref.kind}:{ref.name}#{ref.count}"
        if key in seen:
            continue  # the same call seen again by a later lifetime
        seen.add(key)
        entry = by_key.get(key)
        row: dict[str, Any] = {"kind": ref.kind, "name": ref.name, "path": ref.path}
        if entry is not None and entry.finished:
            report.served += 1
            row["source"] = "history"
            if ref.kind == "do" and entry.config is not None:
                now = _config_for(workflow, ref.path)
                if now is not None and now != entry.config:
                    report.divergences.append(
                        Divergence(
                            "config-changed",
                            ref.name,
                            ref.path,
                            f"the instance ran it with {_describe_config(entry.config)}; "
                            f"the code now says {_describe_config(now)}",
                        )
                    )
        elif entry is not None:
            row["source"] = "in progress"
        else:
            row["source"] = "new"
            if report.served < len(completed):
                twin = next(
                    (
                        c
                        for c in completed
                        if c.key not in seen and c.kind == ref.kind and c.path == ref.path
                    ),
                    None,
                )
                if twin is not None:
                    detail = (
                        f"the code now calls {ref.path} as {ref.name} where the instance "
                        f"completed {twin.name} (its context or args changed): the step would "
                        "run again under the new name"
                    )
                else:
                    detail = (
                        f"a {ref.kind} step the instance never ran, before the history's last "
                        f"completed step ({completed[-1].name}): the instance is past this point"
                    )
                report.divergences.append(
                    Divergence("new-before-frontier", ref.name, ref.path, detail)
                )
        report.steps.append(row)
    _fails_on_history(report, history)
    for entry in completed:
        if entry.key not in seen:
            report.divergences.append(
                Divergence(
                    "not-called",
                    entry.name,
                    entry.path,
                    "the instance completed this step and the code no longer calls it: its "
                    "work would be redone under a new name, or skipped",
                )
            )
    return report


_ENDED = ("complete", "errored", "terminated")
_FRAME = re.compile(r'File "([^"]+)", line (\d+)')  # a frame of a Python traceback


def _fails_on_history(report: ReplayReport, history: History) -> None:
    """A `fails-on-history` divergence when the new code ends an instance that still runs
    errored before it gets past what the instance already did: every call it made was served
    from the history (or it made none), so the failure does not depend on the simulator's
    database, mocks or the waits it times out past the frontier, but on the instance itself (a
    result type that gained a required field and no longer fits the checkpoint, params the new
    input type refuses). Such a replay used to count as faithful, and push uploaded it."""
    if report.status != "errored" or history.status in _ENDED:
        return
    if any(row["source"] != "history" for row in report.steps):
        return  # it failed past the frontier: new work, run against local stand-ins
    error = report.error if isinstance(report.error, Mapping) else {}
    last = report.steps[-1] if report.steps else None
    where = f"after {last['name']}" if last is not None else "before its first step"
    frames = _FRAME.findall(str(error.get("stack") or ""))
    at = f" at {frames[-1][0]}:{frames[-1][1]}" if frames else ""
    report.divergences.append(
        Divergence(
            "fails-on-history",
            last["name"] if last is not None else "-",
            last["path"] if last is not None else "-",
            f"the new code ends this instance errored {where}, on what the instance already "
            f"did ({error.get('name')}: {error.get('message')}{at}): after the deploy it would "
            "fail the same way; keep the old types and params readable (new fields optional)",
        )
    )


# -- recording a history in the simulator (tests, demos) -------------------------------------------


def _refuse_unwaited_events(
    workflow: Workflow, events: Mapping[str, Any] | None, timeline: list[Any]
) -> None:
    """An event given to record_history that no wait of the run was for is a typo: the
    history would be of an instance still waiting, or of its timeout branch, not the one meant
    (as a test workflow's `mock_event` of such a type fails its run)."""
    from awf_sim.testing._modifier import unwaited_hint

    waits = {
        str(e.get("path")): e["type"]
        for e in timeline
        if e.get("kind") == "wait-start" and isinstance(e.get("type"), str)
    }
    for type_ in events or {}:
        if type_ not in waits.values():
            raise HistoryError(
                f"record_history({workflow.name!r}): the event {type_!r} reached no event wait "
                f"of the run{unwaited_hint(type_, waits)}; the history would not be of the "
                "instance meant"
            )


def _iso(epoch: _dt.datetime, at_ms: Any) -> str | None:
    if not isinstance(at_ms, int | float):
        return None
    when = epoch + _dt.timedelta(milliseconds=at_ms)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def record_history(
    workflow: Workflow,
    params: Any = None,
    *,
    instance_id: str = "replay-1",
    db: Any = None,
    http: Any = None,
    ai: Any = None,
    seed: int = 0,
    events: Mapping[str, Any] | None = None,
) -> History:
    """Run `workflow` in the simulator until it is done or waits for an event nobody sent, and
    return its history in the shape Cloudflare's instance API gives (`events`: type -> payload,
    sent before the run). What `awf-deploy pull` would save for such an instance. `db`,
    `http` and `ai` left out are the flow file's, as for `replay`."""
    from awf_sim.engine import DEFAULT_EPOCH, MemoryStore, Simulator
    from awf_sim.testing._workflow import with_flow_defaults

    db, ai, http = with_flow_defaults(workflow, db, ai, http)

    store = MemoryStore()
    sim = Simulator(seed=seed, store=store, db=db, http=http, ai=ai)
    try:
        instance = sim.create(workflow, params, id=instance_id)
        for type_, payload in (events or {}).items():
            instance.send_event(type_, payload)
        sim.run()
        status = instance.status()
        timeline = list(instance.timeline)
        values = store.steps(instance_id)
    finally:
        sim.close()

    steps: list[dict[str, Any]] = []
    open_: dict[tuple[str, str], dict[str, Any]] = {}
    counts: dict[tuple[str, str], int] = {}

    def stored(kind: str, name: str) -> Any:
        rec = values.get(f"{kind}:{name}#{counts.get((kind, name), 1)}")
        return json.loads(rec["value"]) if rec is not None and "value" in rec else None

    step: dict[str, Any]
    for entry in timeline:
        kind, name, at = entry.get("kind"), entry.get("name"), _iso(DEFAULT_EPOCH, entry["at_ms"])
        if not isinstance(name, str):
            continue
        if kind == "step-start":
            counts[("do", name)] = counts.get(("do", name), 0) + 1
            cfg = entry.get("config") or PROFILES["production"]
            step = {
                "type": "step",
                "name": name,
                "start": at,
                "end": None,
                "attempts": [],
                "config": cfg,
                "output": None,
                "success": None,
            }
            open_[("do", name)] = step
            steps.append(step)
        elif kind in ("attempt-start", "attempt-failure", "attempt-success") and (
            ("do", name) in open_
        ):
            step = open_[("do", name)]
            if kind == "attempt-start":
                step["attempts"].append({"start": at, "end": None, "success": None, "error": None})
            elif step["attempts"]:
                last = step["attempts"][-1]
                last.update(end=at, success=kind == "attempt-success")
                if kind == "attempt-failure":
                    last["error"] = entry.get("error")
        elif kind == "checkpoint" and ("do", name) in open_:
            step = open_.pop(("do", name))
            step.update(end=at, success=True, output=stored("do", name))
        elif kind == "step-failure" and ("do", name) in open_:
            step = open_.pop(("do", name))
            step.update(end=at, success=False, error=entry.get("error"))
        elif kind == "sleep-start":
            counts[("sleep", name)] = counts.get(("sleep", name), 0) + 1
            step = {
                "type": "sleep",
                "name": name,
                "start": at,
                "end": _iso(DEFAULT_EPOCH, entry.get("until_ms")),
                "finished": False,
            }
            open_[("sleep", name)] = step
            steps.append(step)
        elif kind == "sleep-end" and ("sleep", name) in open_:
            open_.pop(("sleep", name))["finished"] = True
        elif kind == "wait-start":
            counts[("wait", name)] = counts.get(("wait", name), 0) + 1
            step = {
                "type": "waitForEvent",
                "name": name,
                "start": at,
                "end": None,
                "finished": False,
                "error": None,
                "output": None,
            }
            open_[("wait", name)] = step
            steps.append(step)
        elif kind == "wait-end" and ("wait", name) in open_:
            step = open_.pop(("wait", name))
            step.update(end=at, finished=True)
            if entry.get("timed_out"):
                step["error"] = {"name": "WorkflowTimeoutError", "message": "timed out"}
            else:
                step["output"] = stored("wait", name)
    _refuse_unwaited_events(workflow, events, timeline)
    return History(
        workflow=workflow.name,
        instance=instance_id,
        status=str(status.get("status")),
        params=params,
        steps=tuple(steps),
        output=status.get("output"),
        error=status.get("error"),
        source={"recorded_by": "awf_sim"},
    )
