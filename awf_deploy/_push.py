"""Verify, plan and push: the steps of `awf-deploy push`, without any printing.

- `verify(flow)`: the gate before a push: awf_sim.chaos on every workflow and example; every
  broken invariant is a GateViolation.
- `make_plan(client, bundle)`: reads the account (script, cron triggers, workflows) and says
  what a push would change. The script counts as unchanged when the deployed `entry.py`
  carries the same BUNDLE_SHA256 as the local bundle (the hash covers every module, the
  compatibility settings and the bindings), so a second push of the same code writes nothing.
- `push(client, plan)`: creates the D1 database and applies its migrations (when `make_plan`
  got a `D1Plan` from awf_deploy._provision), uploads the script (with the Worker's API key as
  a `secret_text` binding when the deployed script has none, and `keep_bindings:
  ["secret_text"]` always), then puts the cron triggers, then each workflow, in that order,
  stopping at the first failure. The report says exactly what was done and
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
from pathlib import Path
from typing import Any, Literal

from awf_sim.engine import DEFAULT_CPU_MS
from awf_sim.flow import FlowFile

from ._bundle import (
    MAIN_MODULE,
    BuildError,
    Bundle,
    read_api_auth,
    read_bundle_hash,
    read_flow_file,
)
from ._provision import D1Plan, apply_migration
from .cloudflare import CloudflareClient, CloudflareError

API_KEY_VAR = "AWF_API_KEY"

__all__ = [
    "Change",
    "GateViolation",
    "Plan",
    "PushReport",
    "make_plan",
    "push",
    "require_deployable",
    "upload",
    "verify",
]

Action = Literal["create", "update", "unchanged"]
Kind = Literal["database", "migration", "script", "schedules", "workflow"]


# -- the verify gate -------------------------------------------------------------------------


@dataclass(frozen=True)
class GateViolation:
    """One durability problem chaos found: the workflow, the invariant it broke, what
    happened, the params of the run, and the token that replays the (shrunk) fault plan."""

    workflow: str
    invariant: str
    message: str
    params: Any = None
    replay: str | None = None
    example: int | None = None  # which example of the workflow (1-based); None: `{}`
    # (invariant, message) of the failures this one explains: the same bug seen by other
    # invariants, listed under it rather than counted as more violations.
    related: tuple[tuple[str, str], ...] = ()

    def __str__(self) -> str:
        return f"{self.workflow}: {self.invariant}: {self.message}"

    def to_json(self) -> dict[str, Any]:
        return {
            "workflow": self.workflow,
            "invariant": self.invariant,
            "message": self.message,
            "params": self.params,
            "replay": self.replay,
            "example": self.example,
            "related": [{"invariant": i, "message": m} for i, m in self.related],
        }


def verify(
    flow: FlowFile, *, runs: int = 200, seed: int = 0, cpu_ms: int = DEFAULT_CPU_MS
) -> list[GateViolation]:
    """The gate before a push: chaos (awf_sim.chaos) on what `awf-sim chaos FLOW` checks
    (`awf_sim.chaos.verification_targets`: every example of every workflow, `{}` for one
    without examples, in the flow's world), by the same rules: a broken invariant, or a
    fault-free run that does not end as its example declares (`baseline-outcome`), is a
    GateViolation. An empty list means the flow may be deployed. `cpu_ms` is the CPU budget
    of a handler attempt in those runs (`awf-sim chaos --cpu-ms`): Cloudflare's default limit,
    unless the Worker's own limit is set otherwise.

    The campaign runs in a supervised child process: flow code that ends it (os._exit, a
    fatal signal) raises `ProcessDied`, so the gate can fail but never be silenced."""
    from awf_sim.chaos import run_supervised
    from awf_sim.cli import DEFAULT_BLOCK_SECONDS

    # A handler that blocks its thread would hang the push: it fails it, named (in chaos's
    # worker processes too).
    return run_supervised(
        lambda: _verify(flow, runs, seed, cpu_ms),
        "the verify gate (chaos)",
        block_s=DEFAULT_BLOCK_SECONDS,
        block_option=None,
    )


def _verify(flow: FlowFile, runs: int, seed: int, cpu_ms: int) -> list[GateViolation]:
    from awf_sim.chaos import run_campaign, verification_targets

    violations: list[GateViolation] = []
    seen: set[tuple[str, str, str]] = set()
    for target, example in verification_targets(flow, seed=seed, cpu_ms=cpu_ms):
        name = target.workflow.name
        result = run_campaign(target, runs=runs, seed=seed, flow_path=flow.path)
        for finding in result.findings:
            found = finding.violation
            key = (name, found.invariant, found.message)
            if key in seen:
                continue
            seen.add(key)
            related = tuple((r.violation.invariant, r.violation.message) for r in finding.related)
            violations.append(
                GateViolation(
                    name,
                    found.invariant,
                    found.message,
                    target.params,
                    finding.token,
                    example,
                    related,
                )
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
        if self.kind == "database":
            return f"create database {self.target!r}"
        if self.kind == "migration":
            return f"apply migration {self.target} to {self.detail!r}"
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
    # The D1 part (create the database, apply migrations), done before the upload.
    database: tuple[Change, ...] = ()
    d1: D1Plan | None = None
    # The upload sets a new secret AWF_API_KEY (the deployed script has none).
    new_api_key: bool = False
    # Builds the bundle again with the database id, once a created database has one.
    rebuild: Callable[[str], Bundle] | None = None
    # What the push would take over from something else on the account: a script of this
    # name that awf-deploy did not deploy, a workflow of this name bound to another script.
    takeovers: tuple[str, ...] = ()

    @property
    def hash_after_binding(self) -> bool:
        """The push creates the D1 database, so the bundle it uploads binds an id that does not
        exist yet: its hash (which covers the bindings) is only known then, and `bundle.sha256`
        (built without the id) is not what will be uploaded."""
        return self.d1 is not None and self.d1.create

    @property
    def changes(self) -> list[Change]:
        """Every item, in the order push performs them."""
        return [*self.database, self.script, self.schedules, *self.workflows]

    @property
    def writes(self) -> list[Change]:
        return [c for c in self.changes if c.writes]

    @property
    def has_changes(self) -> bool:
        return bool(self.writes)

    def to_json(self) -> dict[str, Any]:
        return {
            "script": self.bundle.name,
            # null: computed once the push binds the database it creates (the push report's
            # `bundle_sha256` is the uploaded one)
            "bundle_sha256": None if self.hash_after_binding else self.bundle.sha256,
            "deployed_sha256": self.deployed_sha256,
            "changes": [c.to_json() for c in self.changes],
            "has_changes": self.has_changes,
            "api_auth": self.bundle.api_auth,
            "new_api_key": self.new_api_key,
            "takeovers": list(self.takeovers),
        }


def require_deployable(bundle: Bundle) -> None:
    """Refuse, before any request, a bundle Cloudflare would reject (a push without a database
    id provisions one first; see `make_plan`'s `d1`)."""
    if bundle.uses_db and not bundle.d1_database_id:
        raise BuildError(
            f"the flow uses ctx.db, so the Worker needs a D1 database: create one with "
            f"`npx wrangler d1 create {bundle.name}-db`, apply the schema "
            f"(`npx wrangler d1 migrations apply {bundle.name}-db --remote` in the built "
            "bundle), then pass its id with --d1-id or AWF_D1_DATABASE_ID"
        )


def _crons(crons: list[str]) -> str:
    return ", ".join(repr(c) for c in crons) if crons else "none"


def make_plan(
    client: CloudflareClient,
    bundle: Bundle,
    *,
    d1: D1Plan | None = None,
    rebuild: Callable[[str], Bundle] | None = None,
) -> Plan:
    """Read the account and compare it with the bundle (only GET requests). `d1`: what
    `plan_d1` found for a flow that uses ctx.db without a given database id; `rebuild` makes
    the bundle again with the database id once the push has created the database."""
    database: list[Change] = []
    if d1 is not None:
        if d1.create:
            database.append(Change("database", d1.name, "create", "D1"))
        for migration in d1.pending:
            database.append(Change("migration", migration.name, "create", d1.name))
    remote = client.get_script(bundle.name)
    entry = remote.modules.get(MAIN_MODULE, "") if remote else ""
    deployed = read_bundle_hash(entry) if remote else None
    new_api_key = bundle.api_auth == "key" and read_api_auth(entry) != "key"
    if remote is None:
        script = Change("script", bundle.name, "create", f"new, {len(bundle.modules)} modules")
    elif deployed == bundle.sha256:
        script = Change("script", bundle.name, "unchanged", f"bundle {bundle.sha256[:12]}")
    else:
        was = f"bundle {deployed[:12]}" if deployed else "a script not deployed by awf-deploy"
        # A database the push creates changes the bundle's bindings, so its hash is not known.
        now = "a new bundle" if d1 is not None and d1.create else f"bundle {bundle.sha256[:12]}"
        script = Change("script", bundle.name, "update", f"{was} -> {now}")

    current = [] if remote is None else [s.cron for s in client.get_schedules(bundle.name)]
    wanted = bundle.crons
    if sorted(set(current)) == sorted(set(wanted)):
        schedules = Change("schedules", bundle.name, "unchanged", _crons(wanted))
    else:
        schedules = Change(
            "schedules", bundle.name, "create" if not current else "update", _crons(wanted)
        )

    takeovers: list[str] = []
    if remote is not None and deployed is None:
        takeovers.append(
            f"script {bundle.name!r} exists on the account and was not deployed by awf-deploy: "
            "the push replaces its code, its bindings (secrets are kept) and its cron triggers"
        )
    deployed_flow = read_flow_file(entry) if deployed else None
    own_flow = Path(bundle.flow_path).name
    if deployed_flow is not None and deployed_flow != own_flow:
        # Two flow files pushed under one --name replace each other's workflows.
        takeovers.append(
            f"script {bundle.name!r} runs the flow {deployed_flow} (pushed by awf-deploy): the "
            f"push replaces it with {own_flow}"
        )
    workflows: list[Change] = []
    for wf in bundle.workflows:
        existing = client.get_workflow(wf.name)
        if existing is not None and existing.script_name != bundle.name:
            takeovers.append(
                f"workflow {wf.name!r} belongs to script {existing.script_name!r} (class "
                f"{existing.class_name}): the push rebinds it to {bundle.name!r}, and "
                f"{existing.script_name!r} loses it"
            )
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
    if new_api_key and script.action == "unchanged":
        script = Change("script", bundle.name, "update", "set the API key")
    return Plan(
        bundle,
        script,
        schedules,
        tuple(workflows),
        deployed,
        database=tuple(database),
        d1=d1,
        new_api_key=new_api_key,
        rebuild=rebuild,
        takeovers=tuple(takeovers),
    )


# -- the push ----------------------------------------------------------------------------------


@dataclass
class PushReport:
    """What a push did: `done` in order, the one `failed` (with its error) and `not_done`."""

    done: list[Change] = field(default_factory=list)
    failed: Change | None = None
    error: CloudflareError | None = None
    not_done: list[Change] = field(default_factory=list)
    # The hash of the bundle uploaded (what `status` shows from then on); None: no upload.
    bundle_sha256: str | None = None

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
            "bundle_sha256": self.bundle_sha256,
        }


def upload(client: CloudflareClient, bundle: Bundle, api_key: str | None) -> None:
    """Upload the script; `api_key` set: as the Worker's secret AWF_API_KEY. Every upload keeps
    the Worker's secrets (`keep_bindings`), so the key outlives later pushes."""
    bindings = list(bundle.bindings)
    if api_key is not None:
        bindings.append({"type": "secret_text", "name": API_KEY_VAR, "text": api_key})
    client.upload_script(
        bundle.name,
        bundle.modules,
        bundle.main_module,
        compatibility_date=bundle.compatibility_date,
        compatibility_flags=bundle.compatibility_flags,
        bindings=bindings,
        keep_bindings=["secret_text"],
    )


def _perform(
    client: CloudflareClient, bundle: Bundle, change: Change, state: dict[str, Any]
) -> None:
    if change.kind == "database":
        state["database_id"] = client.create_d1_database(change.target).uuid
    elif change.kind == "migration":
        d1 = state["d1"]
        migration = next(m for m in d1.pending if m.name == change.target)
        apply_migration(client, state.get("database_id") or d1.database_id, migration)
    elif change.kind == "script":
        upload(client, bundle, state.get("api_key"))
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
    api_key: str | None = None,
) -> PushReport:
    """Carry out the plan's writes in order (database and migrations, script, cron triggers,
    workflows); stop at the first failure. `api_key`: set as the Worker's secret with the
    upload (when `plan.new_api_key`)."""
    report = PushReport()
    steps = plan.writes
    state: dict[str, Any] = {"d1": plan.d1, "api_key": api_key}
    bundle = plan.bundle
    for index, change in enumerate(steps):
        if progress is not None:
            progress(f"{change.describe()} ...")
        database_id = state.get("database_id")
        if change.kind == "script" and database_id and plan.rebuild is not None:
            bundle = plan.rebuild(database_id)  # bind the database the push created
        try:
            _perform(client, bundle, change, state)
        except CloudflareError as exc:
            report.failed = change
            report.error = exc
            report.not_done = steps[index + 1 :]
            return report
        report.done.append(change)
        if change.kind == "script":
            report.bundle_sha256 = bundle.sha256
    return report
