"""Verify, plan and push: the steps of `awf-deploy push`, without any printing.

- `verify(flow)`: the gate before a push: awf_sim.chaos on every workflow and example; every
  broken invariant is a Violation.
- `make_plan(client, bundle)`: reads the account (script, cron triggers, workflows) and says
  what a push would change. The script counts as unchanged when the deployed `entry.py`
  carries the same BUNDLE_SHA256 as the local bundle (the hash covers every module, the
  compatibility settings and the bindings), so a second push of the same code writes nothing.
- `push(client, plan)`: uploads the script, then puts the cron triggers, then each workflow,
  in that order, stopping at the first failure. The report says exactly what was done and
  what was not; since the plan is always computed from the account, the next push does only
  what is left.

A workflow is PUT when it is missing or bound to another script or class. Wrangler also
re-PUTs every workflow after each upload; awf-deploy does not, so that every write it makes is
visible in the account and an interrupted push is always completed by the next one (a
workflow runs its class from the script's current deployment; the PUT registers the binding).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from awf_sim.flow import FlowFile

from ._bundle import MAIN_MODULE, BuildError, Bundle, read_bundle_hash
from .cloudflare import CloudflareClient, CloudflareError

__all__ = [
    "Change",
    "Plan",
    "PushReport",
    "Violation",
    "make_plan",
    "push",
    "require_deployable",
    "verify",
]

Action = Literal["create", "update", "unchanged"]
Kind = Literal["script", "schedules", "workflow"]


# -- the verify gate -------------------------------------------------------------------------


@dataclass(frozen=True)
class Violation:
    """One durability problem chaos found: the workflow, the invariant it broke, what
    happened, the params of the run, and the token that replays the (shrunk) fault plan."""

    workflow: str
    invariant: str
    message: str
    params: Any = None
    replay: str | None = None

    def __str__(self) -> str:
        return f"{self.workflow}: {self.invariant}: {self.message}"

    def to_json(self) -> dict[str, Any]:
        return {
            "workflow": self.workflow,
            "invariant": self.invariant,
            "message": self.message,
            "params": self.params,
            "replay": self.replay,
        }


def verify(flow: FlowFile, *, runs: int = 200, seed: int = 0) -> list[Violation]:
    """The gate before a push: chaos (awf_sim.chaos) on every workflow of the flow, once per
    example (or with `{}` when it has none), with the flow's database, HTTP mock and AI
    provider. An empty list means the flow may be deployed."""
    from awf_sim.chaos import Target, run_campaign

    # The flow module's HTTP and AI are what ctx.http and ctx.ai use in the simulator (as in
    # `awf-sim run`); a module-level `AI` that is not a provider (a Domain named AI) is not.
    ai = flow.ai if hasattr(flow.ai, "generate") else None
    violations: list[Violation] = []
    seen: set[tuple[str, str, str]] = set()
    for workflow in flow.workflows.values():
        for params in workflow.examples or [{}]:
            target = Target(workflow, params, db=flow.database, http=flow.http, ai=ai, seed=seed)
            result = run_campaign(target, runs=runs, seed=seed)
            for finding in result.findings:
                found = finding.violation
                key = (workflow.name, found.invariant, found.message)
                if key in seen:
                    continue
                seen.add(key)
                violations.append(
                    Violation(workflow.name, found.invariant, found.message, params, finding.token)
                )
    return violations


# -- the plan ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    """One thing a push writes (or leaves alone): the script, its cron triggers, a workflow."""

    kind: Kind
    target: str
    action: Action
    detail: str = ""
    class_name: str | None = None  # workflows only

    @property
    def writes(self) -> bool:
        return self.action != "unchanged"

    def describe(self) -> str:
        """`upload script 'shop'`, `set cron triggers of 'shop'`, `create workflow 'x'`."""
        if self.kind == "script":
            verb = "upload" if self.action != "unchanged" else "keep"
            return f"{verb} script {self.target!r}"
        if self.kind == "schedules":
            return f"set cron triggers of {self.target!r} to {self.detail}"
        verb = {"create": "create", "update": "update", "unchanged": "keep"}[self.action]
        return f"{verb} workflow {self.target!r}"

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "target": self.target,
            "action": self.action,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class Plan:
    bundle: Bundle
    script: Change
    schedules: Change
    workflows: tuple[Change, ...]
    deployed_sha256: str | None = None

    @property
    def changes(self) -> list[Change]:
        """Every item, in the order push performs them."""
        return [self.script, self.schedules, *self.workflows]

    @property
    def writes(self) -> list[Change]:
        return [c for c in self.changes if c.writes]

    @property
    def has_changes(self) -> bool:
        return bool(self.writes)

    def to_json(self) -> dict[str, Any]:
        return {
            "script": self.bundle.name,
            "bundle_sha256": self.bundle.sha256,
            "deployed_sha256": self.deployed_sha256,
            "changes": [c.to_json() for c in self.changes],
            "has_changes": self.has_changes,
        }


def require_deployable(bundle: Bundle) -> None:
    """Refuse, before any request, a bundle Cloudflare would reject."""
    if bundle.uses_db and not bundle.d1_database_id:
        raise BuildError(
            f"the flow uses ctx.db, so the Worker needs a D1 database: create one with "
            f"`npx wrangler d1 create {bundle.name}-db`, apply the schema "
            f"(`npx wrangler d1 migrations apply {bundle.name}-db --remote` in the built "
            "bundle), then pass its id with --d1-id or AWF_D1_DATABASE_ID"
        )


def _crons(crons: list[str]) -> str:
    return ", ".join(repr(c) for c in crons) if crons else "none"


def make_plan(client: CloudflareClient, bundle: Bundle) -> Plan:
    """Read the account and compare it with the bundle (only GET requests)."""
    remote = client.get_script(bundle.name)
    deployed = read_bundle_hash(remote.modules.get(MAIN_MODULE, "")) if remote else None
    if remote is None:
        script = Change("script", bundle.name, "create", f"new, {len(bundle.modules)} modules")
    elif deployed == bundle.sha256:
        script = Change("script", bundle.name, "unchanged", f"bundle {bundle.sha256[:12]}")
    else:
        was = f"bundle {deployed[:12]}" if deployed else "a script not deployed by awf-deploy"
        script = Change("script", bundle.name, "update", f"{was} -> bundle {bundle.sha256[:12]}")

    current = [] if remote is None else [s.cron for s in client.get_schedules(bundle.name)]
    wanted = bundle.crons
    if sorted(set(current)) == sorted(set(wanted)):
        schedules = Change("schedules", bundle.name, "unchanged", _crons(wanted))
    else:
        schedules = Change(
            "schedules", bundle.name, "create" if not current else "update", _crons(wanted)
        )

    workflows: list[Change] = []
    for wf in bundle.workflows:
        existing = client.get_workflow(wf.name)
        if existing is None:
            change = Change("workflow", wf.name, "create", f"class {wf.class_name}", wf.class_name)
        elif (existing.script_name, existing.class_name) != (bundle.name, wf.class_name):
            change = Change(
                "workflow",
                wf.name,
                "update",
                f"now runs {existing.class_name} of script {existing.script_name!r}; "
                f"will run {wf.class_name} of {bundle.name!r}",
                wf.class_name,
            )
        else:
            change = Change("workflow", wf.name, "unchanged", f"class {wf.class_name}")
        workflows.append(change)
    return Plan(bundle, script, schedules, tuple(workflows), deployed)


# -- the push ----------------------------------------------------------------------------------


@dataclass
class PushReport:
    """What a push did: `done` in order, the one `failed` (with its error) and `not_done`."""

    done: list[Change] = field(default_factory=list)
    failed: Change | None = None
    error: CloudflareError | None = None
    not_done: list[Change] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.failed is None

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "done": [c.to_json() for c in self.done],
            "failed": None
            if self.failed is None
            else {**self.failed.to_json(), "error": str(self.error)},
            "not_done": [c.to_json() for c in self.not_done],
        }


def _perform(client: CloudflareClient, bundle: Bundle, change: Change) -> None:
    if change.kind == "script":
        client.upload_script(
            bundle.name,
            bundle.modules,
            bundle.main_module,
            compatibility_date=bundle.compatibility_date,
            compatibility_flags=bundle.compatibility_flags,
            bindings=bundle.bindings,
        )
    elif change.kind == "schedules":
        client.put_schedules(bundle.name, bundle.crons)
    else:
        assert change.class_name is not None
        client.put_workflow(change.target, bundle.name, change.class_name)


def push(
    client: CloudflareClient,
    plan: Plan,
    *,
    progress: Callable[[str], None] | None = None,
) -> PushReport:
    """Carry out the plan's writes in order (script, cron triggers, workflows); stop at the
    first failure."""
    report = PushReport()
    steps = plan.writes
    for index, change in enumerate(steps):
        if progress is not None:
            progress(f"{change.describe()} ...")
        try:
            _perform(client, plan.bundle, change)
        except CloudflareError as exc:
            report.failed = change
            report.error = exc
            report.not_done = steps[index + 1 :]
            return report
        report.done.append(change)
    return report
