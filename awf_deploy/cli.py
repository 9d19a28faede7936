"""`awf-deploy`: build a flow's Worker bundle, serve it locally (`dev`) and push it to Cloudflare.
Parses and prints only.

Exit codes: 0 success, 1 a failure (violations, an API error, a refused push), 2 bad usage or
input (a flow that cannot be loaded, invalid JSON, missing credentials). Results go to stdout
(one JSON object with --json), progress and errors to stderr. The API token is read from
CLOUDFLARE_API_TOKEN only (a flag would leave it in shell history) and never printed.

`trigger`, `send-event`, `instances` and `status` talk to the Cloudflare API, or with `--local`
(`awf-deploy dev` on 127.0.0.1:8787) or `--url BASE` to a Worker's own awf HTTP API; nothing
listening there is exit 1.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn, get_args

import typer

from awf_sim.errors import ProcessDied
from awf_sim.flow import FlowError, load_flow, parse_json

from ._bundle import (
    MAIN_MODULE,
    BuildError,
    Bundle,
    build_bundle,
    read_bundle_hash,
    write_bundle,
)
from ._dev import DEFAULT_PORT, DevError, DevServer
from ._gate import DEFAULT_LIMIT as DEFAULT_REPLAY_LIMIT
from ._gate import pull_history, replay_running
from ._harness import HarnessError
from ._provision import (
    ProvisionError,
    database_name_for,
    flow_migrations,
    new_api_key,
    plan_d1,
)
from ._push import (
    API_KEY_VAR,
    Plan,
    PushReport,
    make_plan,
    push,
    upload,
    verify,
)
from ._worker_api import LOCAL_URL, WorkerApi, WorkerApiError
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
    except (FlowError, BuildError, ConfigError, _UsageError, DevError, HarnessError) as exc:
        _err(f"awf-deploy: {exc}")
        _exit(EXIT_USAGE)
    except NotFoundError as exc:
        _err(f"awf-deploy: {exc}")
        _err("  hint: `awf-deploy status` lists what is deployed on the account.")
        _exit(EXIT_FAILED)
    except CloudflareError as exc:
        _err(f"awf-deploy: {exc}")
        _exit(EXIT_FAILED)
    except ProcessDied as exc:  # the code under test ended the verify gate's process
        _err(f"awf-deploy: {exc}")
        _exit(EXIT_FAILED)
    except WorkerApiError as exc:  # NotListening too: exit 1, like a Cloudflare transport error
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
LocalOpt = Annotated[
    bool,
    typer.Option(
        "--local",
        help=f"Talk to `awf-deploy dev` on {LOCAL_URL} instead of the Cloudflare API.",
    ),
]
UrlOpt = Annotated[
    str | None,
    typer.Option(
        "--url",
        help="Talk to the awf HTTP API of the Worker at this base URL (local or deployed) "
        "instead of the Cloudflare API; sends $AWF_API_KEY as a Bearer token when set.",
    ),
]


def _worker_api(local: bool, url: str | None) -> WorkerApi | None:
    """The Worker API client that --local / --url ask for, or None (the Cloudflare API)."""
    if local and url is not None:
        raise _UsageError("pass either --local or --url, not both")
    if url is not None:
        return WorkerApi(url)
    if local:
        return WorkerApi(LOCAL_URL)
    return None


def _warn(bundle: Bundle) -> None:
    for warning in bundle.warnings:
        _err(f"awf-deploy: warning: {warning}")


PublicOpt = Annotated[
    bool,
    typer.Option(
        "--public",
        help="Leave the Worker's HTTP API open to anyone (default: it needs the key "
        "AWF_API_KEY; a flow can also say PUBLIC_API = True).",
    ),
]
KeyFileOpt = Annotated[
    str | None,
    typer.Option(
        "--key-file",
        help="Write a newly set API key to this file (mode 600) instead of showing it once.",
    ),
]


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
    public: PublicOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Write the Worker bundle: wrangler.toml, entry.py, the flow file and the runtime."""
    with _handled():
        loaded = load_flow(flow)
        bundle = build_bundle(
            flow,
            name=name,
            compatibility_date=compatibility_date,
            d1_database_id=d1_id,
            flow=loaded,
            api_auth=_api_auth(loaded, public),
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
    if bundle.api_auth == "key":
        _out(
            f"  HTTP API: needs `Authorization: Bearer <{API_KEY_VAR}>`; `awf-deploy push` sets "
            f"the key (with wrangler: `npx wrangler secret put {API_KEY_VAR}`); --public opens it"
        )
    else:
        _out("  HTTP API: public (anyone can start instances and send events)")
    _out(f"Deploy it with `awf-deploy push {flow}`, or `cd {target} && npx wrangler deploy`.")


# -- push ----------------------------------------------------------------------------------------


def _print_plan(plan: Plan) -> None:
    marks = {"create": "+", "update": "~", "unchanged": "="}
    _out(f"Plan for script {plan.bundle.name!r} (bundle {plan.bundle.sha256[:12]}):")
    for change in plan.changes:
        if change.kind in ("database", "migration"):
            _out(f"  {marks[change.action]} {change.describe()}")
            continue
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


def _api_auth(loaded: Any, public: bool) -> str:
    return "public" if public or getattr(loaded.module, "PUBLIC_API", False) is True else "key"


def _deliver_key(key: str, key_file: str | None, script: str, json_out: bool) -> dict[str, Any]:
    """Hand a new API key to the user once: into `key_file`, or on stdout."""
    if key_file is not None:
        path = Path(key_file)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(key + "\n")
        os.chmod(path, 0o600)
        if not json_out:
            _out(f"The Worker's API key {API_KEY_VAR} is in {path} (it is not shown anywhere).")
            _out(f"  use it: export {API_KEY_VAR}=$(cat {path})")
        return {"api_key_file": str(path)}
    if not json_out:
        _out(f"The Worker's API key {API_KEY_VAR} (shown once; keep it, e.g. in a secret store):")
        _out(f"  {key}")
        _out(
            f"  use it: export {API_KEY_VAR}=...; awf-deploy trigger WORKFLOW "
            f"--url https://{script}.<your-subdomain>.workers.dev"
        )
    return {"api_key": key}


def _key_file_ok(key_file: str | None) -> None:
    if key_file is not None:
        parent = Path(key_file).resolve().parent
        if not parent.is_dir():
            raise _UsageError(f"--key-file {key_file}: folder {parent} does not exist")


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
    public: PublicOpt = False,
    key_file: KeyFileOpt = None,
    allow_divergence: Annotated[
        bool,
        typer.Option(
            "--allow-divergence",
            help="Push even if running instances, replayed on the new code, diverge.",
        ),
    ] = False,
    replay_limit: Annotated[
        int,
        typer.Option(
            "--replay-limit",
            min=1,
            help="Replay at most this many running instances (a seeded sample beyond it).",
        ),
    ] = DEFAULT_REPLAY_LIMIT,
    account_id: AccountOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Run chaos on the flow, provision D1, replay running instances on the new code, show the
    plan, then create the database, upload the script (with its API key), crons and workflows."""
    result: dict[str, Any] = {"dry_run": dry_run, "verified": not no_verify}

    def finish(code: int) -> NoReturn:
        if json_out:
            _json(result)
        _exit(code)

    with _handled():
        _key_file_ok(key_file)
        loaded = load_flow(flow)
        auth = _api_auth(loaded, public)

        def make(database_id: str | None) -> Bundle:
            return build_bundle(
                flow,
                name=name,
                compatibility_date=compatibility_date,
                d1_database_id=database_id,
                flow=loaded,
                api_auth=auth,
            )

        bundle = make(d1_id)
        for warning in bundle.warnings:
            if not (bundle.uses_db and "D1 database id" in warning):  # push provisions it
                _err(f"awf-deploy: warning: {warning}")
        if auth == "public":
            _err("awf-deploy: warning: --public: the Worker's HTTP API is open to anyone")
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
                            # The same input chaos ran, with the outcome its example declares.
                            if violation.example is not None:
                                which = f"--example {violation.example}"
                            else:
                                which = "--input '{}'"
                            _out(
                                f"    replay: awf-sim chaos {flow} --workflow {violation.workflow}"
                                f" {which} --replay {violation.replay}"
                            )
                _err("awf-deploy: refusing to push; fix the flow, or pass --no-verify")
                finish(EXIT_FAILED)
        _err(f"awf-deploy: reading the account's state of {bundle.name!r} ...")
        d1 = None
        if bundle.uses_db and not bundle.d1_database_id:
            try:
                d1 = plan_d1(client, database_name_for(bundle.name), flow_migrations(loaded))
            except ProvisionError as exc:
                _err(f"awf-deploy: {exc}")
                finish(EXIT_FAILED)
            if d1.database_id is not None:
                bundle = make(d1.database_id)
        plan = make_plan(client, bundle, d1=d1, rebuild=make)
        result["plan"] = plan.to_json()
        gate = None
        if plan.script.writes or any(w.writes for w in plan.workflows):
            gate = replay_running(
                client,
                loaded,
                [wf.name for wf in bundle.workflows],
                limit=replay_limit,
                progress=lambda line: _err(f"awf-deploy: {line}"),
            )
            result["replay"] = gate.to_json()
        if not json_out:
            _print_plan(plan)
            if gate is not None:
                _out(f"  {gate.summary()}")
        if gate is not None and gate.divergent:
            if not json_out:
                for found in gate.divergent:
                    _out(
                        f"  instance {found.instance} of {found.workflow} diverges at "
                        f"{found.divergences[0]}"
                    )
                    _out(
                        f"    see: awf-deploy pull {found.workflow} {found.instance} "
                        f"--out h.json && awf-sim replay {flow} h.json"
                    )
            if not allow_divergence:
                _err(
                    f"awf-deploy: refusing to push: {len(gate.divergent)} running instance(s) "
                    "would run the new code differently from their history; keep the old step "
                    "names (context, args) for them, or pass --allow-divergence"
                )
                finish(EXIT_FAILED)
            _err("awf-deploy: warning: --allow-divergence: pushing over diverging instances")
        if not plan.has_changes:
            if not json_out:
                _out("Nothing to push: the account already runs this bundle.")
            finish(EXIT_OK)
        if dry_run:
            if not json_out:
                _out("Dry run: nothing was sent.")
            finish(EXIT_OK)
        if not yes:
            if not _interactive():
                _err("awf-deploy: refusing to push: not a terminal, nobody to confirm; pass --yes")
                result["aborted"] = True
                finish(EXIT_USAGE)
            if not typer.confirm("Push these changes?", err=True):
                _err("awf-deploy: aborted; nothing was sent")
                result["aborted"] = True
                finish(EXIT_FAILED)
        api_key = new_api_key() if plan.new_api_key else None
        report = push(
            client, plan, progress=lambda line: _err(f"awf-deploy: {line}"), api_key=api_key
        )
        result["report"] = report.to_json()
        if not json_out:
            _print_report(report)
        if api_key is not None and any(c.kind == "script" for c in report.done):
            result.update(_deliver_key(api_key, key_file, bundle.name, json_out))
        if report.error is not None:
            _err(f"awf-deploy: {report.error}")
        finish(EXIT_OK if report.ok else EXIT_FAILED)


# -- pull and key ----------------------------------------------------------------------------------


@app.command()
def pull(
    workflow: Annotated[str, typer.Argument(help="The workflow's name.")],
    instance: Annotated[str, typer.Argument(help="The instance id.")],
    out: Annotated[
        str | None,
        typer.Option("--out", help="The history file (default: <workflow>-<instance>.json)."),
    ] = None,
    account_id: AccountOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Save an instance's status and step history as a JSON file, for `awf-sim replay`."""
    with _handled():
        client = _client(account_id)
    with client, _handled():
        history = pull_history(client, workflow, instance)
    target = Path(out if out is not None else f"{workflow}-{instance}.json")
    with _handled():
        try:
            target.write_text(json.dumps(history.to_json(), indent=2) + "\n", encoding="utf-8")
        except OSError as exc:
            raise _UsageError(f"--out {target}: {exc.strerror or exc}") from None
    if json_out:
        _json({"workflow": workflow, "instance": instance, "out": str(target)})
        return
    _out(
        f"Saved instance {instance} of {workflow} ({history.status}, {len(history.steps)} "
        f"steps) to {target}."
    )
    _out(f"Replay it on your current code: awf-sim replay FLOW.py {target}")


@app.command()
def key(
    flow: FlowArg,
    rotate: Annotated[
        bool, typer.Option("--rotate", help="Set a new API key on the deployed Worker.")
    ] = False,
    key_file: KeyFileOpt = None,
    name: NameOpt = None,
    compatibility_date: DateOpt = None,
    d1_id: D1Opt = None,
    account_id: AccountOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Replace the deployed Worker's API key (AWF_API_KEY) with a new one: `--rotate`.

    The flow's current bundle must be what is deployed (push first); the old key stops
    working at once."""
    with _handled():
        if not rotate:
            raise _UsageError("pass --rotate to replace the Worker's API key with a new one")
        _key_file_ok(key_file)
        loaded = load_flow(flow)
        if _api_auth(loaded, False) == "public":
            raise _UsageError(f"{flow} says PUBLIC_API = True: its Worker has no API key")
        client = _client(account_id)
    with client, _handled():

        def make(database_id: str | None) -> Bundle:
            return build_bundle(
                flow,
                name=name,
                compatibility_date=compatibility_date,
                d1_database_id=database_id,
                flow=loaded,
                api_auth="key",
            )

        bundle = make(d1_id)
        if bundle.uses_db and not bundle.d1_database_id:
            wanted = database_name_for(bundle.name)
            found = [db for db in client.list_d1_databases(wanted) if db.name == wanted]
            if not found:
                raise _UsageError(f"no D1 database {wanted!r} on the account: push the flow first")
            bundle = make(found[0].uuid)
        remote = client.get_script(bundle.name)
        deployed = read_bundle_hash(remote.modules.get(MAIN_MODULE, "")) if remote else None
        if deployed != bundle.sha256:
            raise _UsageError(
                f"script {bundle.name!r} "
                + ("is not deployed" if remote is None else "runs another bundle than this flow's")
                + f": push it first (`awf-deploy push {flow}`), then rotate"
            )
        secret = new_api_key()
        _err(f"awf-deploy: uploading script {bundle.name!r} with a new API key ...")
        upload(client, bundle, secret)
    delivered = _deliver_key(secret, key_file, bundle.name, json_out)
    if json_out:
        _json({"script": bundle.name, "rotated": True, **delivered})


# -- status, trigger, send-event, instances ------------------------------------------------------


@app.command()
def status(
    workflow: Annotated[
        str | None, typer.Argument(help="With INSTANCE: that instance's status.")
    ] = None,
    instance: Annotated[str | None, typer.Argument(help="The instance id.")] = None,
    name: NameOpt = None,
    account_id: AccountOpt = None,
    local: LocalOpt = False,
    url: UrlOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """What is deployed: a script's bundle, crons and workflows (without --name: all).

    `status WORKFLOW INSTANCE`: one instance's status, output and error."""
    with _handled():
        if (workflow is None) != (instance is None):
            raise _UsageError("pass both WORKFLOW and INSTANCE, or neither")
        api = _worker_api(local, url)
    if api is not None:
        with api, _handled():
            if workflow is not None and instance is not None:
                details = api.instance(workflow, instance)
            else:
                worker_info = api.info()
        if workflow is not None and instance is not None:
            _print_instance(workflow, instance, details, json_out)
        else:
            _print_worker(api.base_url, worker_info, json_out)
        return
    if workflow is not None and instance is not None:
        with _handled():
            client = _client(account_id)
        with client, _handled():
            found = client.get_instance(workflow, instance)
        details = found.model_dump(mode="json", exclude_none=True)
        _print_instance(workflow, instance, details, json_out)
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


def _print_instance(workflow: str, instance: str, details: dict[str, Any], json_out: bool) -> None:
    if json_out:
        _json({**details, "workflow": workflow, "id": instance})
        return
    _out(f"instance {instance} of {workflow}: {details.get('status')}")
    if details.get("output") is not None:
        _out(f"  output: {json.dumps(details['output'], ensure_ascii=False)}")
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


@app.command()
def trigger(
    workflow: Annotated[str, typer.Argument(help="The workflow's name.")],
    params: Annotated[
        str | None, typer.Option("--params", help="The instance's params, as JSON.")
    ] = None,
    id: Annotated[str | None, typer.Option("--id", help="Instance id (default: random).")] = None,
    account_id: AccountOpt = None,
    local: LocalOpt = False,
    url: UrlOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Start an instance of a deployed workflow."""
    with _handled():
        value = _json_arg("--params", params)
        api = _worker_api(local, url)
    if api is not None:
        with api, _handled():
            started = api.create(workflow, value, id)
        if json_out:
            _json(started)
        else:
            _out(f"started instance {started['id']} of {workflow} ({started['status']})")
        return
    with _handled():
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


@app.command()
def dev(
    flow: FlowArg,
    port: Annotated[
        int,
        typer.Option("--port", min=1, max=65535, help="Serve the Worker's HTTP API on this port."),
    ] = DEFAULT_PORT,
    persist: Annotated[
        str | None,
        typer.Option(
            "--persist",
            help="Keep D1 and the workflow instances in this folder, across restarts "
            "(default: a temporary folder removed on exit).",
        ),
    ] = None,
    name: NameOpt = None,
) -> None:
    """Serve the flow's Worker locally on the real Python runtime (Pyodide + Miniflare), in
    real time, on http://127.0.0.1:PORT; rebuilds when the flow file changes. Ctrl-C stops."""
    try:
        with _handled():
            code = DevServer(flow, port=port, persist=persist, name=name).run()
    except KeyboardInterrupt:  # before serving started
        code = EXIT_OK
    _exit(code)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
