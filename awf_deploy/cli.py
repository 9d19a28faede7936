"""`awf-deploy`: build a flow's Worker bundle and push it to Cloudflare. Parses and prints only.

Exit codes: 0 success, 1 a failure (violations, an API error, a refused push), 2 bad usage or
input (a flow that cannot be loaded, invalid JSON, missing credentials). Results go to stdout
(one JSON object with --json), progress and errors to stderr. The API token is read from
CLOUDFLARE_API_TOKEN only (a flag would leave it in shell history) and never printed.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn, get_args

import typer

from awf_sim.flow import FlowError, load_flow, parse_json

from ._bundle import (
    MAIN_MODULE,
    BuildError,
    Bundle,
    build_bundle,
    read_bundle_hash,
    write_bundle,
)
from ._push import Plan, PushReport, make_plan, push, require_deployable, verify
from .cloudflare import (
    ACCOUNT_ID_ENV,
    CloudflareClient,
    CloudflareError,
    ConfigError,
    InstanceStatus,
    NotFoundError,
)

app = typer.Typer(
    name="awf-deploy",
    help="Build awf flows into Cloudflare Python Workers and push them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

# Test seam: keyword arguments for CloudflareClient.from_env (transport, sleep, max_retries).
_CLIENT_OPTIONS: dict[str, Any] = {}


class _UsageError(Exception):
    pass


@app.callback()
def _root() -> None:
    """Build awf flows into Cloudflare Python Workers and push them."""


# -- output ----------------------------------------------------------------------------------


def _err(text: str) -> None:
    typer.echo(text, err=True)


def _out(text: str = "") -> None:
    typer.echo(text)


def _json(payload: Any) -> None:
    sys.stdout.write(json.dumps(payload, ensure_ascii=False, default=str) + "\n")


def _exit(code: int) -> NoReturn:
    raise typer.Exit(code)


@contextmanager
def _handled() -> Iterator[None]:
    """Every expected failure as one message on stderr and its exit code."""
    try:
        yield
    except (FlowError, BuildError, ConfigError, _UsageError) as exc:
        _err(f"awf-deploy: {exc}")
        _exit(EXIT_USAGE)
    except NotFoundError as exc:
        _err(f"awf-deploy: {exc}")
        _err("  hint: `awf-deploy status` lists what is deployed on the account.")
        _exit(EXIT_FAILED)
    except CloudflareError as exc:
        _err(f"awf-deploy: {exc}")
        _exit(EXIT_FAILED)
    except ValueError as exc:  # the client's checks of names and ids, before any request
        _err(f"awf-deploy: {exc}")
        _exit(EXIT_USAGE)


def _client(account_id: str | None) -> CloudflareClient:
    return CloudflareClient.from_env(account_id=account_id, **_CLIENT_OPTIONS)


def _json_arg(option: str, text: str | None) -> Any:
    return None if text is None else parse_json(text, option)


def _interactive() -> bool:
    return sys.stdin.isatty()


# -- options -----------------------------------------------------------------------------------

FlowArg = Annotated[str, typer.Argument(help="The flow file (.py) that defines the workflows.")]
NameOpt = Annotated[
    str | None,
    typer.Option("--name", help="Worker script name (default: the flow file's name)."),
]
DateOpt = Annotated[
    str | None,
    typer.Option("--compatibility-date", help="Workers compatibility date (YYYY-MM-DD)."),
]
D1Opt = Annotated[
    str | None,
    typer.Option(
        "--d1-id",
        envvar="AWF_D1_DATABASE_ID",
        help="Id of the D1 database bound as DB (needed when a handler uses ctx.db).",
    ),
]
AccountOpt = Annotated[
    str | None,
    typer.Option("--account-id", help=f"Cloudflare account id (default: ${ACCOUNT_ID_ENV})."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")]


def _warn(bundle: Bundle) -> None:
    for warning in bundle.warnings:
        _err(f"awf-deploy: warning: {warning}")


# -- build ---------------------------------------------------------------------------------------


@app.command()
def build(
    flow: FlowArg,
    out: Annotated[
        str | None, typer.Option("--out", help="Output folder (default: build/<name>).")
    ] = None,
    name: NameOpt = None,
    compatibility_date: DateOpt = None,
    d1_id: D1Opt = None,
    json_out: JsonOpt = False,
) -> None:
    """Write the Worker bundle: wrangler.toml, entry.py, the flow file and the runtime."""
    with _handled():
        bundle = build_bundle(
            flow, name=name, compatibility_date=compatibility_date, d1_database_id=d1_id
        )
        _warn(bundle)
        target = write_bundle(bundle, out if out is not None else Path("build") / bundle.name)
    if json_out:
        _json(
            {
                "out": str(target),
                "script": bundle.name,
                "sha256": bundle.sha256,
                "compatibility_date": bundle.compatibility_date,
                "workflows": [wf.to_json() for wf in bundle.workflows],
                "crons": bundle.crons,
                "bindings": bundle.bindings,
                "modules": sorted(bundle.modules),
                "files": sorted(bundle.files),
                "warnings": list(bundle.warnings),
            }
        )
        return
    _out(f"Wrote {target}/ for script {bundle.name!r} ({len(bundle.modules)} Python modules):")
    for wf in bundle.workflows:
        cron = f", cron {wf.schedule!r}" if wf.schedule else ""
        _out(f"  workflow {wf.name}: class {wf.class_name}, binding {wf.binding}{cron}")
    extra = [b["name"] for b in bundle.bindings if b["type"] != "workflow"]
    if extra:
        _out(f"  other bindings: {', '.join(extra)}")
    _out(f"Deploy it with `awf-deploy push {flow}`, or `cd {target} && npx wrangler deploy`.")


# -- push ----------------------------------------------------------------------------------------


def _print_plan(plan: Plan) -> None:
    marks = {"create": "+", "update": "~", "unchanged": "="}
    _out(f"Plan for script {plan.bundle.name!r} (bundle {plan.bundle.sha256[:12]}):")
    for change in plan.changes:
        label = f"{change.kind:<9} {change.target}"
        _out(f"  {marks[change.action]} {label:<40} {change.action}: {change.detail}")


def _print_report(report: PushReport) -> None:
    if report.ok:
        _out("Pushed: " + "; ".join(c.describe() for c in report.done) + ".")
        return
    assert report.failed is not None
    _out("Push stopped halfway.")
    for change in report.done:
        _out(f"  done:     {change.describe()}")
    first_line = str(report.error).splitlines()[0] if report.error else ""
    _out(f"  FAILED:   {report.failed.describe()}: {first_line}")
    for change in report.not_done:
        _out(f"  not done: {change.describe()}")
    _out(
        "Nothing else was changed. Run the same push again: it reads the account again and "
        "does only what is left."
    )


@app.command("push")
def push_command(
    flow: FlowArg,
    name: NameOpt = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show the plan; send no write.")
    ] = False,
    no_verify: Annotated[
        bool, typer.Option("--no-verify", help="Push even if chaos finds violations.")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    compatibility_date: DateOpt = None,
    d1_id: D1Opt = None,
    account_id: AccountOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Run chaos on the flow, show the plan, then upload the script, crons and workflows."""
    result: dict[str, Any] = {"dry_run": dry_run, "verified": not no_verify}

    def finish(code: int) -> NoReturn:
        if json_out:
            _json(result)
        _exit(code)

    with _handled():
        loaded = load_flow(flow)
        bundle = build_bundle(
            flow,
            name=name,
            compatibility_date=compatibility_date,
            d1_database_id=d1_id,
            flow=loaded,
        )
        require_deployable(bundle)  # first: its error already says what the warning would
        _warn(bundle)
        client = _client(account_id)
    result["script"] = bundle.name
    with client, _handled():
        if no_verify:
            _err("awf-deploy: warning: --no-verify: pushing without the chaos check")
        else:
            _err(f"awf-deploy: chaos on {', '.join(loaded.workflows)} in the simulator ...")
            violations = verify(loaded)
            result["violations"] = [v.to_json() for v in violations]
            if violations:
                if not json_out:
                    _out(f"Chaos found {len(violations)} violation(s):")
                    for violation in violations:
                        _out(f"  {violation}")
                        if violation.replay:
                            params = json.dumps(violation.params, ensure_ascii=False)
                            _out(
                                f"    replay: awf-sim chaos {flow} --workflow {violation.workflow}"
                                f" --input '{params}' --replay {violation.replay}"
                            )
                _err("awf-deploy: refusing to push; fix the flow, or pass --no-verify")
                finish(EXIT_FAILED)
        _err(f"awf-deploy: reading the account's state of {bundle.name!r} ...")
        plan = make_plan(client, bundle)
        result["plan"] = plan.to_json()
        if not json_out:
            _print_plan(plan)
        if not plan.has_changes:
            if not json_out:
                _out("Nothing to push: the account already runs this bundle.")
            finish(EXIT_OK)
        if dry_run:
            if not json_out:
                _out("Dry run: nothing was sent.")
            finish(EXIT_OK)
        if not yes and _interactive() and not typer.confirm("Push these changes?", err=True):
            _err("awf-deploy: aborted; nothing was sent")
            result["aborted"] = True
            finish(EXIT_FAILED)
        report = push(client, plan, progress=lambda line: _err(f"awf-deploy: {line}"))
        result["report"] = report.to_json()
        if not json_out:
            _print_report(report)
        if report.error is not None:
            _err(f"awf-deploy: {report.error}")
        finish(EXIT_OK if report.ok else EXIT_FAILED)


# -- status, trigger, send-event, instances ------------------------------------------------------


@app.command()
def status(
    name: NameOpt = None,
    account_id: AccountOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """What is deployed: a script's bundle, crons and workflows (without --name: all)."""
    with _handled():
        client = _client(account_id)
    with client, _handled():
        result: dict[str, Any] = {}
        if name is not None:
            script = client.get_script(name)  # first: a bad name fails before any request
            result["script"] = {
                "name": name,
                "deployed": script is not None,
                "bundle_sha256": read_bundle_hash(script.modules.get(MAIN_MODULE, ""))
                if script
                else None,
                "crons": [s.cron for s in client.get_schedules(name)] if script else [],
            }
        workflows = client.list_workflows()
        if name is not None:
            workflows = [w for w in workflows if w.script_name == name]
        rows: list[dict[str, Any]] = []
        for wf in workflows:
            counts = wf.instances
            if counts is None:
                full = client.get_workflow(wf.name)
                counts = full.instances if full is not None else None
            rows.append(
                {
                    "name": wf.name,
                    "script": wf.script_name,
                    "class": wf.class_name,
                    "instances": counts.model_dump(by_alias=True) if counts else None,
                }
            )
        result["workflows"] = rows
    if json_out:
        _json(result)
    else:
        info = result.get("script")
        if info is not None:
            if info["deployed"]:
                sha = info["bundle_sha256"]
                _out(
                    f"script {name}: deployed"
                    + (f", bundle {sha[:12]}" if sha else " (not by awf-deploy)")
                )
                _out(f"  cron triggers: {', '.join(info['crons']) or 'none'}")
            else:
                _out(f"script {name}: not deployed")
        if not rows:
            _out("no workflows" + (f" of script {name!r}" if name else " on this account"))
        for row in rows:
            tally: dict[str, int] = row["instances"] or {}
            busy = ", ".join(f"{k} {v}" for k, v in tally.items() if v) or "no instances"
            _out(f"workflow {row['name']}: {row['class']} of {row['script']!r}; {busy}")
    if name is not None and not result["script"]["deployed"] and not rows:
        _exit(EXIT_FAILED)


@app.command()
def trigger(
    workflow: Annotated[str, typer.Argument(help="The workflow's name.")],
    params: Annotated[
        str | None, typer.Option("--params", help="The instance's params, as JSON.")
    ] = None,
    id: Annotated[str | None, typer.Option("--id", help="Instance id (default: random).")] = None,
    account_id: AccountOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Start an instance of a deployed workflow."""
    with _handled():
        value = _json_arg("--params", params)
        client = _client(account_id)
    with client, _handled():
        instance = client.create_instance(workflow, value, instance_id=id)
    if json_out:
        _json({"workflow": workflow, **instance.model_dump(mode="json")})
    else:
        _out(f"started instance {instance.id} of {workflow} ({instance.status})")


@app.command("send-event")
def send_event(
    workflow: Annotated[str, typer.Argument(help="The workflow's name.")],
    instance: Annotated[str, typer.Argument(help="The instance id.")],
    type: Annotated[str, typer.Argument(help="The event type (what wf.wait_for waits on).")],
    payload: Annotated[
        str | None, typer.Option("--payload", help="The event's payload, a JSON object.")
    ] = None,
    account_id: AccountOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Send an event to a waiting instance."""
    with _handled():
        value = _json_arg("--payload", payload)
        if value is not None and not isinstance(value, dict):
            raise _UsageError(
                f"--payload must be a JSON object (Cloudflare's schema), got {_type_name(value)}"
            )
        client = _client(account_id)
    with client, _handled():
        client.send_event(workflow, instance, type, value)
    if json_out:
        _json({"workflow": workflow, "instance": instance, "type": type, "sent": True})
    else:
        _out(f"sent event {type!r} to instance {instance} of {workflow}")


def _type_name(value: Any) -> str:
    return {list: "an array", str: "a string", bool: "a boolean"}.get(
        type(value), "a number" if isinstance(value, int | float) else "null"
    )


_STATUSES = ", ".join(get_args(InstanceStatus))


@app.command()
def instances(
    workflow: Annotated[str, typer.Argument(help="The workflow's name.")],
    status: Annotated[
        str | None,
        typer.Option(
            "--status",
            help=f"Only instances in this status: {', '.join(get_args(InstanceStatus))}.",
        ),
    ] = None,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="At most this many.")] = None,
    account_id: AccountOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """List a workflow's instances."""
    with _handled():
        if status is not None and status not in get_args(InstanceStatus):
            raise _UsageError(
                f"--status must be one of {', '.join(get_args(InstanceStatus))}, got {status!r}"
            )
        client = _client(account_id)
    with client, _handled():
        rows = client.list_instances(workflow, status, limit=limit)  # type: ignore[arg-type]
    if json_out:
        _json({"workflow": workflow, "instances": [r.model_dump(mode="json") for r in rows]})
        return
    if not rows:
        _out(f"no instances of {workflow}" + (f" in status {status}" if status else ""))
    for row in rows:
        created = row.created_on.isoformat() if row.created_on else ""
        _out(f"{row.id:<40} {row.status:<16} {created}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
