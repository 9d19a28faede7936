"""The push gate for running instances: replay each against the new code before uploading.

Cloudflare runs every instance, including those sleeping or waiting for an event, on the newest
code after a deploy. Before uploading, `push` lists each workflow's instances that are
`running`, `waiting`, `paused` or `queued` (every page), pulls each one's step history and
replays it in the simulator (awf_sim.replay): an instance whose history the new code does not
follow would redo or skip work. With very many instances, `limit` caps how many are replayed,
chosen by a seeded sample so that the same account gives the same choice.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from awf_sim.cli import DEFAULT_BLOCK_SECONDS
from awf_sim.engine import run_supervised
from awf_sim.flow import FlowFile
from awf_sim.replay import Divergence, History, ReplayReport, history_from_instance, replay

from .cloudflare import CloudflareClient, NotFoundError

__all__ = [
    "ACTIVE_STATUSES",
    "GateReport",
    "Removed",
    "pull_history",
    "removed_workflows",
    "replay_running",
]

ACTIVE_STATUSES = ("running", "waiting", "paused", "queued")
DEFAULT_LIMIT = 200


def pull_history(client: CloudflareClient, workflow: str, instance: str) -> History:
    """An instance's status and step history from the account (`awf-deploy pull`)."""
    details = client.get_instance(workflow, instance)
    data = details.model_dump(mode="json", by_alias=True)
    return history_from_instance(
        workflow,
        instance,
        data,
        source={"account": client.account_id, "version_id": details.version_id},
    )


@dataclass
class Removed:
    """A workflow of this script on the account that the new code no longer defines: it stays
    bound to a class the new script does not have, so its `active` instances would fail."""

    workflow: str
    class_name: str
    active: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        what = (
            f"{len(self.active)} running instance{'s' if len(self.active) != 1 else ''} "
            f"({', '.join(self.active[:3])}{', ...' if len(self.active) > 3 else ''}) would fail"
            if self.active
            else "no running instances; new ones would fail to start"
        )
        return (
            f"workflow {self.workflow} is no longer in the flow but stays on the account, bound "
            f"to class {self.class_name}, which the new code does not have: {what}"
        )

    def to_json(self) -> dict[str, Any]:
        return {"workflow": self.workflow, "class": self.class_name, "active": self.active}


@dataclass
class GateReport:
    listed: int = 0  # active instances on the account
    replays: list[ReplayReport] = field(default_factory=list)
    gone: list[str] = field(default_factory=list)  # listed, then no longer there
    sampled: bool = False
    removed: list[Removed] = field(default_factory=list)

    @property
    def divergent(self) -> list[ReplayReport]:
        return [r for r in self.replays if not r.faithful]

    @property
    def stranded(self) -> list[Removed]:
        """Removed workflows with running instances: the push would break those."""
        return [r for r in self.removed if r.active]

    def summary(self) -> str:
        """One line on the replayed instances. Those of dropped workflows are not replayed (the
        new code has no class for them) but listed after it: then the line says it speaks of
        the flow's own workflows, not of the account's, and points at that list."""
        count = len(self.replays)
        scope, after = "", ""
        if self.stranded:
            scope = " of the flow's own workflows"
            after = "; the dropped workflows' running instances are below"
        if count == 0 and not self.gone:
            return f"no running instances{scope} to replay{after}"
        what = f"{count} running instance{'s' if count != 1 else ''}{scope} replayed"
        if self.sampled:
            what += f" (a sample of {self.listed})"
        if self.gone:
            what += f" ({len(self.gone)} more ended meanwhile)"
        if not self.divergent:
            return f"{what}: all faithful{after}"
        return f"{what}: {len(self.divergent)} diverge{after}"

    def to_json(self) -> dict[str, Any]:
        return {
            "listed": self.listed,
            "replayed": len(self.replays),
            "sampled": self.sampled,
            "gone": self.gone,
            "faithful": not self.divergent and not self.stranded,
            "removed": [r.to_json() for r in self.removed],
            "divergent": [
                {
                    "workflow": r.workflow,
                    "instance": r.instance,
                    "first": str(r.divergences[0]),
                    "divergences": [d.to_json() for d in r.divergences],
                }
                for r in self.divergent
            ],
        }


def replay_running(
    client: CloudflareClient,
    flow: FlowFile,
    workflows: Iterable[str],
    *,
    limit: int = DEFAULT_LIMIT,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
    script: str | None = None,
) -> GateReport:
    """List the active instances of `workflows` and replay (at most `limit` of) them. With
    `script`: also the account's workflows of that script that `workflows` leaves out."""
    report = GateReport()
    workflows = list(workflows)
    if script is not None:
        report.removed = removed_workflows(client, script, workflows)
    found: list[tuple[str, str]] = []
    for name in workflows:
        if client.get_workflow(name) is None:
            continue  # a new workflow has no instances yet
        for status in ACTIVE_STATUSES:
            for row in client.list_instances(name, status):  # type: ignore[arg-type]
                found.append((name, row.id))
    found = list(dict.fromkeys(found))
    report.listed = len(found)
    if len(found) > limit:
        found = sorted(random.Random(seed).sample(found, limit))
        report.sampled = True
    histories: list[tuple[str, History]] = []
    for name, instance in found:
        try:
            histories.append((name, pull_history(client, name, instance)))
        except NotFoundError:
            report.gone.append(instance)  # it ended and was removed meanwhile
    if histories:
        # The new code runs in a supervised child, as chaos does: a workflow body that ends
        # the process (os._exit) on a running instance's params must fail the push, not end
        # it with exit 0 and nothing said.
        report.replays = run_supervised(
            lambda: _replay_all(flow, histories, progress),
            "the running-instance replay gate",
            goal="replayed every running instance",
            # A handler that blocks its thread would hang the push: it fails it, named.
            block_s=DEFAULT_BLOCK_SECONDS,
            block_option=None,
        )
    return report


def removed_workflows(client: CloudflareClient, script: str, keep: Iterable[str]) -> list[Removed]:
    """The account's workflows bound to `script` that are not in `keep`, with their active
    instances (Cloudflare keeps a workflow when the code that defined it is replaced)."""
    kept = set(keep)
    removed: list[Removed] = []
    for wf in client.list_workflows():
        if wf.script_name != script or wf.name in kept:
            continue
        active: list[str] = []
        for status in ACTIVE_STATUSES:
            active += [row.id for row in client.list_instances(wf.name, status)]  # type: ignore[arg-type]
        removed.append(Removed(wf.name, wf.class_name, list(dict.fromkeys(active))))
    return removed


def _replay_all(
    flow: FlowFile,
    histories: list[tuple[str, History]],
    progress: Callable[[str], None] | None,
) -> list[ReplayReport]:
    outcomes: list[ReplayReport] = []
    for name, history in histories:
        if progress is not None:
            progress(f"replaying instance {history.instance} of {name} ...")
        try:
            outcome = replay(
                flow.workflows[name], history, db=flow.database, http=flow.http, ai=flow.ai
            )
        except Exception as exc:  # a history the simulator cannot take counts as divergent
            outcome = ReplayReport(name, history.instance, history.status, 0, 0)
            outcome.divergences.append(
                Divergence("replay-failed", "-", "-", f"{type(exc).__name__}: {exc}")
            )
        outcomes.append(outcome)
    return outcomes
