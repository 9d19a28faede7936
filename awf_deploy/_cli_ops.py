"""`awf-deploy status`, `trigger`, `send-event`, `instances` and `dev`: what runs, on Cloudflare
or on a Worker's own API (`--local`, `--url`)."""

from __future__ import annotations

import json
from typing import Annotated, Any, get_args

import typer

from ._bundle import (
    MAIN_MODULE,
    read_bundle_hash,
)
from ._cli_base import (
    EXIT_FAILED,
    EXIT_OK,
    AccountOpt,
    FlowArg,
    JsonOpt,
    LocalOpt,
    NameOpt,
    UrlOpt,
    _client,
    _DeployCommand,
    _exit,
    _fail,
    _handled,
    _json,
    _json_arg,
    _load_flow,
    _out,
    _UsageError,
    _worker_api,
    app,
)
from ._dev import DEFAULT_PORT, DevServer
from .cloudflare import (
    InstanceStatus,
)

# -- status, trigger, send-event, instances ------------------------------------------------------

FlowOpt = Annotated[
    str | None,
    typer.Option(
        "--flow",
        metavar="FLOW.py",
        help="The flow file: --params are checked against the workflow's declared input type "
        "before anything is sent, and the output is shown as its declared output type.",
    ),
]
# status takes no --params: its --flow only reads the output back.
StatusFlowOpt = Annotated[
    str | None,
    typer.Option(
        "--flow",
        metavar="FLOW.py",
        help="The flow file: the instance's output is shown as the workflow's declared output "
        "type (and said when it does not fit it).",
    ),
]


def _declared(flow: str | None, workflow: str) -> Any:
    """The Workflow named `workflow` in the flow file, or None without --flow."""
    if flow is None:
        return None
    return _load_flow(flow).pick(workflow)


def _declared_name(tp: Any) -> str | None:
    """The declared type's name, None when nothing that can be checked is declared."""
    if tp is Any or tp is None or not isinstance(tp, type) or tp.__module__ == "builtins":
        return None
    return tp.__qualname__


def _check_params(declared: Any, value: Any) -> str | None:
    """The declared input type's name once `value` fits it; a usage error naming the field
    when it does not. None when nothing is declared."""
    shape = None if declared is None else _declared_name(declared.input_type)
    if shape is None:
        return None
    try:
        declared.check_params(value, "--params")
    except (TypeError, ValueError) as exc:  # SerializationError is a TypeError
        raise _UsageError(
            f"--params do not fit {shape}, the input type of {declared.name!r}: {exc}"
        ) from None
    return shape


def _output_shape(declared: Any, output: Any) -> tuple[str | None, str | None]:
    """(the declared output type's name, why the output does not fit it, or None)."""
    shape = None if declared is None else _declared_name(declared.output_type)
    if shape is None or output is None:
        return None, None
    try:
        declared.check_output(output)
    except (TypeError, ValueError) as exc:
        return shape, str(exc)
    return shape, None


@app.command(cls=_DeployCommand)
def status(
    workflow: Annotated[
        str | None, typer.Argument(help="With INSTANCE: that instance's status.")
    ] = None,
    instance: Annotated[str | None, typer.Argument(help="The instance id.")] = None,
    name: Annotated[
        str | None,
        typer.Option(
            "--name",
            metavar="NAME",
            help="Only this Worker script: its bundle, cron triggers and workflows "
            "(default: every workflow on the account).",
        ),
    ] = None,
    account_id: AccountOpt = None,
    local: LocalOpt = False,
    url: UrlOpt = None,
    json_out: JsonOpt = False,
    flow: StatusFlowOpt = None,
) -> None:
    """What is deployed: a script's bundle, crons and workflows (without --name: all).

    `status WORKFLOW INSTANCE`: one instance's status, output and error (with --flow, the
    output as the workflow's declared output type)."""
    with _handled():
        if (workflow is None) != (instance is None):
            raise _UsageError("pass both WORKFLOW and INSTANCE, or neither")
        if flow is not None and workflow is None:
            raise _UsageError("--flow goes with WORKFLOW INSTANCE")
        declared = _declared(flow, workflow) if workflow is not None else None
        api = _worker_api(local, url)
    if api is not None:
        with api, _handled():
            if workflow is not None and instance is not None:
                details = api.instance(workflow, instance)
            else:
                worker_info = api.info()
        if workflow is not None and instance is not None:
            _print_instance(workflow, instance, details, json_out, declared)
        else:
            _print_worker(api.base_url, worker_info, json_out)
        return
    if workflow is not None and instance is not None:
        with _handled():
            client = _client(account_id)
        with client, _handled():
            found = client.get_instance(workflow, instance)
        details = found.model_dump(mode="json", exclude_none=True)
        _print_instance(workflow, instance, details, json_out, declared)
        return
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
    missing = name is not None and not result["script"]["deployed"] and not rows
    if missing:
        _fail(
            "NotFoundError",
            f"script {name!r} is not deployed and no workflow on the account runs on it",
            f"`awf-deploy push FLOW.py --name {name}` deploys it; `awf-deploy status` lists "
            "what is deployed on the account.",
        )
    if json_out:
        _json(result, ok=not missing)
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
    if missing:
        _exit(EXIT_FAILED)


def _print_instance(
    workflow: str, instance: str, details: dict[str, Any], json_out: bool, declared: Any = None
) -> None:
    shape, misfit = _output_shape(declared, details.get("output"))
    if json_out:
        typed = {} if shape is None else {"outputType": shape, "outputMismatch": misfit}
        _json({**details, "workflow": workflow, "id": instance, **typed})
        return
    _out(f"instance {instance} of {workflow}: {details.get('status')}")
    if details.get("output") is not None:
        label = "output" if shape is None or misfit else f"output ({shape})"
        _out(f"  {label}: {json.dumps(details['output'], ensure_ascii=False)}")
        if misfit:
            _out(f"  warning: the output is not the declared {shape}: {misfit}")
    error = details.get("error")
    if error:
        if isinstance(error, dict):
            error = f"{error.get('name', 'Error')}: {error.get('message', '')}"
        _out(f"  error:  {error}")


def _print_worker(base_url: str, info: dict[str, Any], json_out: bool) -> None:
    if json_out:
        _json({"url": base_url, **info})
        return
    bundle = str(info.get("bundle") or "")
    _out(
        f"script {info.get('script')} at {base_url}" + (f": bundle {bundle[:12]}" if bundle else "")
    )
    rows = info.get("workflows") or []
    if not rows:
        _out("no workflows")
    for wf in rows:
        cron = f", cron {wf['schedule']!r}" if wf.get("schedule") else ""
        _out(f"workflow {wf.get('name')}: {wf.get('class')}{cron}")


@app.command(cls=_DeployCommand)
def trigger(
    workflow: Annotated[str, typer.Argument(help="The workflow's name.")],
    params: Annotated[
        str | None,
        typer.Option(
            "--params",
            metavar="JSON",
            help="The instance's params: any JSON value, the event payload its workflow gets "
            "(Cloudflare's API takes any; --flow checks it against the declared input type).",
        ),
    ] = None,
    id: Annotated[
        str | None, typer.Option("--id", metavar="ID", help="Instance id (default: random).")
    ] = None,
    account_id: AccountOpt = None,
    local: LocalOpt = False,
    url: UrlOpt = None,
    json_out: JsonOpt = False,
    flow: FlowOpt = None,
) -> None:
    """Start an instance of a deployed workflow (with --flow: its params checked first)."""
    with _handled():
        value = _json_arg("--params", params)
        shape = _check_params(_declared(flow, workflow), value)
        api = _worker_api(local, url)
    typed = {} if shape is None else {"paramsType": shape}
    as_type = "" if shape is None else f", params as {shape}"
    if api is not None:
        with api, _handled():
            started = api.create(workflow, value, id)
        if json_out:
            _json({**started, **typed})
        else:
            _out(f"started instance {started['id']} of {workflow} ({started['status']}{as_type})")
        return
    with _handled():
        client = _client(account_id)
    with client, _handled():
        instance = client.create_instance(workflow, value, instance_id=id)
    if json_out:
        _json({"workflow": workflow, **instance.model_dump(mode="json"), **typed})
    else:
        _out(f"started instance {instance.id} of {workflow} ({instance.status}{as_type})")


@app.command("send-event", cls=_DeployCommand)
def send_event(
    workflow: Annotated[str, typer.Argument(help="The workflow's name.")],
    instance: Annotated[str, typer.Argument(help="The instance id.")],
    type: Annotated[str, typer.Argument(help="The event type (what wf.wait_for waits on).")],
    payload: Annotated[
        str | None,
        typer.Option("--payload", metavar="JSON", help="The event's payload, a JSON object."),
    ] = None,
    account_id: AccountOpt = None,
    local: LocalOpt = False,
    url: UrlOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Send an event to a waiting instance."""
    with _handled():
        value = _json_arg("--payload", payload)
        if value is not None and not isinstance(value, dict):
            raise _UsageError(
                f"--payload must be a JSON object (Cloudflare's schema), got {_type_name(value)}"
            )
        api = _worker_api(local, url)
    if api is not None:
        with api, _handled():
            api.send_event(workflow, instance, type, value)
    else:
        with _handled():
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


@app.command(cls=_DeployCommand)
def instances(
    workflow: Annotated[str, typer.Argument(help="The workflow's name.")],
    status: Annotated[
        str | None,
        typer.Option(
            "--status",
            metavar="STATUS",
            help=f"Only instances in this status: {', '.join(get_args(InstanceStatus))}.",
        ),
    ] = None,
    limit: Annotated[
        int | None, typer.Option("--limit", metavar="N", min=1, help="At most this many.")
    ] = None,
    account_id: AccountOpt = None,
    local: LocalOpt = False,
    url: UrlOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """List a workflow's instances (with --local / --url: those the dev server has seen)."""
    with _handled():
        if status is not None and status not in get_args(InstanceStatus):
            raise _UsageError(
                f"--status must be one of {', '.join(get_args(InstanceStatus))}, got {status!r}"
            )
        api = _worker_api(local, url)
    if api is not None:
        with api, _handled():
            seen = api.list_instances(workflow)
        seen = [r for r in seen if status is None or r.get("status") == status][:limit]
        if json_out:
            _json({"workflow": workflow, "instances": seen})
            return
        if not seen:
            _out(f"no instances of {workflow}" + (f" in status {status}" if status else ""))
        for item in seen:
            _out(f"{item['id']:<40} {item.get('status', ''):<16} {item.get('created_on') or ''}")
        return
    with _handled():
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


# -- dev -------------------------------------------------------------------------------------------


@app.command(cls=_DeployCommand)
def dev(
    flow: FlowArg,
    port: Annotated[
        int,
        typer.Option(
            "--port",
            metavar="PORT",
            min=1,
            max=65535,
            help="Serve the Worker's HTTP API on this port.",
        ),
    ] = DEFAULT_PORT,
    persist: Annotated[
        str | None,
        typer.Option(
            "--persist",
            metavar="DIR",
            help="Keep D1 and the workflow instances in this folder, across restarts "
            "(default: a temporary folder removed on exit).",
        ),
    ] = None,
    name: NameOpt = None,
) -> None:
    """Serve the flow's Worker locally on the real Python runtime (Pyodide + Miniflare).

    In real time, on http://127.0.0.1:PORT; rebuilds when the flow file changes. Ctrl-C
    stops."""
    try:
        with _handled():
            code = DevServer(flow, port=port, persist=persist, name=name).run()
    except KeyboardInterrupt:  # before serving started
        code = EXIT_OK
    _exit(code)
