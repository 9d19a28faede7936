"""`awf-deploy build`, `push`, `pull` and `key`: what goes to Cloudflare."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from awf_sim.cli import DEFAULT_CPU_MS

from ._bundle import (
    MAIN_MODULE,
    BuildError,
    Bundle,
    build_bundle,
    read_api_auth,
    read_bundle_hash,
    write_bundle,
)
from ._cli_base import (
    _FLAG,
    _RUN,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    AccountOpt,
    D1Opt,
    DateOpt,
    FlowArg,
    JsonOpt,
    KeyFileOpt,
    NameOpt,
    PublicOpt,
    _client,
    _DeployCommand,
    _err,
    _exit,
    _fail,
    _handled,
    _interactive,
    _json,
    _load_flow,
    _out,
    _UsageError,
    _warn,
    app,
)
from ._cli_output import _deliver_key, _key_file_ok, _print_plan, _print_report
from ._gate import DEFAULT_LIMIT as DEFAULT_REPLAY_LIMIT
from ._gate import pull_history, replay_running
from ._provision import (
    ProvisionError,
    database_name_for,
    flow_migrations,
    new_api_key,
    plan_d1,
)
from ._push import (
    API_KEY_VAR,
    make_plan,
    push,
    upload,
    verify,
)
from ._sources import MissingImport
from .cloudflare import AuthError, CloudflareClient

# -- build ---------------------------------------------------------------------------------------


@app.command(cls=_DeployCommand)
def build(
    flow: FlowArg,
    out: Annotated[
        str | None,
        typer.Option("--out", metavar="PATH", help="Output folder (default: build/<name>)."),
    ] = None,
    name: NameOpt = None,
    compatibility_date: DateOpt = None,
    d1_id: D1Opt = None,
    public: PublicOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Write the Worker bundle: wrangler.toml, entry.py, the flow file and the runtime."""
    with _handled():
        loaded = _load_flow(flow)
        bundle = build_bundle(
            flow,
            name=name,
            compatibility_date=compatibility_date,
            d1_database_id=d1_id,
            flow=loaded,
            api_auth=_api_auth(loaded, public),
        )
        # A third-party import may still be vendored by whoever deploys the folder (pywrangler
        # does, from pyproject.toml): a warning. No deploy tool gives the Worker the rest of
        # awf_sim, so a bundle importing it cannot start anywhere: refused.
        simulator = [m for m in bundle.missing_imports if m.kind == "awf_sim"]
        if simulator:
            raise BuildError(f"refusing to build: {_missing_line(simulator)}")
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


def _missing_line(missing: list[MissingImport] | tuple[MissingImport, ...]) -> str:
    """The first import that stops the Worker, with its fix; the others named after it."""
    others = "".join(f"; also {m.where} imports {m.module!r}" for m in missing[1:])
    return f"{missing[0]}{others}"


def _api_auth(loaded: Any, public: bool) -> str:
    return "public" if public or getattr(loaded.module, "PUBLIC_API", False) is True else "key"


def _given_d1_exists(client: CloudflareClient, bundle: Bundle) -> None:
    """Refuse a --d1-id the account does not have before chaos's verdict is spent on an
    upload Cloudflare refuses (or a Worker whose every query fails). A token that may push
    Workers but not read D1 gets a warning: the id is used as given, as before."""
    database_id = bundle.d1_database_id
    assert database_id is not None
    try:
        found = client.get_d1_database(database_id)
    except AuthError as exc:
        if exc.status != 403:
            raise
        _err(
            f"awf-deploy: warning: could not check --d1-id {database_id}: the API token cannot "
            "read D1 databases (D1 Read); pushing with the id as given"
        )
        return
    if found is None:
        raise _UsageError(
            f"--d1-id (or AWF_D1_DATABASE_ID) {database_id}: the account has no D1 database "
            "with this id: pass one that `npx wrangler d1 list` shows, or leave it unset and "
            f"push creates {database_name_for(bundle.name)!r}"
        )


# What keeps a running instance on the new code, by the kind of divergence replay found.
_DIVERGENCE_FIXES = {
    "not-called": "keep the old step names (context, args) for them",
    "new-before-frontier": "keep the old step names (context, args) for them",
    "config-changed": "keep the retries and timeout their completed steps ran with",
    "fails-on-history": "let the new code take their params and step results as they are",
}


def _divergence_fix(divergent: list[Any]) -> str:
    """The fixes for the kinds of divergence found, in the order first seen."""
    kinds = [d.kind for report in divergent for d in report.divergences]
    fixes = [_DIVERGENCE_FIXES.get(k, "keep the new code able to replay them") for k in kinds]
    return "; ".join(dict.fromkeys(fixes))


@app.command("push", cls=_DeployCommand)
def push_command(
    flow: FlowArg,
    name: NameOpt = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", metavar=_FLAG, help="Show the plan; send no write.")
    ] = False,
    no_verify: Annotated[
        bool,
        typer.Option("--no-verify", metavar=_FLAG, help="Push even if chaos finds violations."),
    ] = False,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", metavar=_FLAG, help="Do not ask for confirmation.")
    ] = False,
    compatibility_date: DateOpt = None,
    d1_id: D1Opt = None,
    public: PublicOpt = False,
    key_file: KeyFileOpt = None,
    allow_divergence: Annotated[
        bool,
        typer.Option(
            "--allow-divergence",
            metavar=_FLAG,
            help="Push even if running instances, replayed on the new code, diverge.",
        ),
    ] = False,
    replay_limit: Annotated[
        int,
        typer.Option(
            "--replay-limit",
            metavar="N",
            min=1,
            help="Replay at most this many running instances (a seeded sample beyond it).",
        ),
    ] = DEFAULT_REPLAY_LIMIT,
    cpu_ms: Annotated[
        int,
        typer.Option(
            "--cpu-ms",
            metavar="MS",
            min=1,
            help="CPU time a handler attempt may use in the chaos check before it fails "
            "(Cloudflare's default limit: 30000); match your Worker's limits.cpu_ms if raised.",
        ),
    ] = DEFAULT_CPU_MS,
    account_id: AccountOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Check the flow (chaos, running instances replayed), then push it to Cloudflare.

    Runs chaos on the flow, plans D1, replays the running instances on the new code, shows the
    plan, then creates the database, uploads the script (with its API key), crons and
    workflows."""
    # "verified": chaos ran and found nothing (false with --no-verify, any violation, or a
    # failure before chaos ran).
    result: dict[str, Any] = {"dry_run": dry_run, "verified": False}
    _RUN.found = result  # an API error on the way still reports what was found until then

    def finish(code: int) -> NoReturn:
        if json_out:
            _json(result, ok=code == EXIT_OK)
        _exit(code)

    with _handled():
        _key_file_ok(key_file)
        loaded = _load_flow(flow)
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
        result["script"] = bundle.name
        if bundle.missing_imports:
            # Cloudflare would refuse the upload (10021) only after the database, its
            # migrations and maybe the secret were made, or run a Worker that cannot start.
            result["missing_imports"] = [m.to_json() for m in bundle.missing_imports]
            _fail(
                "MissingModule",
                f"refusing to push: {_missing_line(bundle.missing_imports)}",
            )
            finish(EXIT_FAILED)
        for warning in bundle.warnings:
            if not (bundle.uses_db and "D1 database id" in warning):  # push provisions it
                _err(f"awf-deploy: warning: {warning}")
        if auth == "public":
            _err("awf-deploy: warning: --public: the Worker's HTTP API is open to anyone")
        client = _client(account_id)
    with client, _handled():
        if no_verify:
            _err("awf-deploy: warning: --no-verify: pushing without the chaos check")
        else:
            _err(f"awf-deploy: chaos on {', '.join(loaded.workflows)} in the simulator ...")
            violations = verify(loaded, cpu_ms=cpu_ms)
            result["verified"] = not violations
            result["violations"] = [v.to_json() for v in violations]
            if violations:
                # A token replays under the budget it was found with.
                budget = f" --cpu-ms {cpu_ms}" if cpu_ms != DEFAULT_CPU_MS else ""
                if not json_out:
                    _out(f"Chaos found {len(violations)} violation(s):")
                    for violation in violations:
                        _out(f"  {violation}")
                        for invariant, message in violation.related:
                            _out(f"    also {invariant}: {message}")
                        if violation.replay:
                            # The same input chaos ran, with the outcome its example declares.
                            if violation.example is not None:
                                which = f"--example {violation.example}"
                            else:
                                which = "--input '{}'"
                            _out(
                                f"    replay: awf-sim chaos {flow} --workflow {violation.workflow}"
                                f" {which} --replay {violation.replay}{budget}"
                            )
                _fail(
                    "Violations",
                    f"refusing to push: chaos found {len(violations)} violation(s); fix the "
                    "flow, or pass --no-verify",
                )
                finish(EXIT_FAILED)
        _err(f"awf-deploy: reading the account's state of {bundle.name!r} ...")
        d1 = None
        if bundle.uses_db and not bundle.d1_database_id:
            try:
                d1 = plan_d1(client, database_name_for(bundle.name), flow_migrations(loaded))
            except ProvisionError as exc:
                _fail(type(exc).__name__, str(exc))
                finish(EXIT_FAILED)
            if d1.database_id is not None:
                bundle = make(d1.database_id)
        elif bundle.uses_db and bundle.d1_database_id:
            _given_d1_exists(client, bundle)
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
                script=bundle.name,
            )
            result["replay"] = gate.to_json()
        if not json_out:
            _print_plan(plan)
            if gate is not None:
                _out(f"  {gate.summary()}")
                for removed in gate.removed:
                    _out(f"  ! {removed}")
        # Said in every mode (--dry-run, --json, --yes): a name clash with another Worker
        # would otherwise replace it with no word, as an ordinary update of one's own.
        for takeover in plan.takeovers:
            _err(f"awf-deploy: warning: takeover: {takeover}")
        if gate is not None and gate.stranded and not allow_divergence:
            names = ", ".join(r.workflow for r in gate.stranded)
            _fail(
                "Stranded",
                f"refusing to push: the new code drops workflow(s) {names} while "
                "instances of them still run; keep them in the flow until those end, or pass "
                "--allow-divergence",
            )
            finish(EXIT_FAILED)
        if gate is not None and gate.stranded:
            _err("awf-deploy: warning: --allow-divergence: dropping workflows that still run")
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
                _fail(
                    "Divergence",
                    f"refusing to push: {len(gate.divergent)} running instance(s) "
                    "would run the new code differently from their history; "
                    f"{_divergence_fix(gate.divergent)}, or pass --allow-divergence",
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
                _fail(
                    "UsageError", "refusing to push: not a terminal, nobody to confirm; pass --yes"
                )
                result["aborted"] = True
                finish(EXIT_USAGE)
            question = "Push these changes?"
            if plan.takeovers:
                question = "Push these changes, taking over what another deploy made (above)?"
            if not typer.confirm(question, err=True):
                _fail("Aborted", "aborted; nothing was sent")
                result["aborted"] = True
                finish(EXIT_FAILED)
        api_key = new_api_key() if plan.new_api_key else None
        report = push(
            client, plan, progress=lambda line: _err(f"awf-deploy: {line}"), api_key=api_key
        )
        result["report"] = report.to_json()
        if not json_out:
            _print_report(report, plan)
        if api_key is not None and any(c.kind == "script" for c in report.done):
            result.update(_deliver_key(api_key, key_file, bundle.name, json_out))
        if report.error is not None:
            error = report.error
            _fail(
                type(error).__name__,
                error.message,
                error.hint,
                status=error.status,
                codes=list(error.codes),
            )
        elif "api_key_file_error" in result:
            _RUN.error = {"kind": "KeyFileError", "message": result["api_key_file_error"]}
        finish(EXIT_OK if report.ok and "api_key_file_error" not in result else EXIT_FAILED)


# -- pull and key ----------------------------------------------------------------------------------


@app.command(cls=_DeployCommand)
def pull(
    workflow: Annotated[str, typer.Argument(help="The workflow's name.")],
    instance: Annotated[str, typer.Argument(help="The instance id.")],
    out: Annotated[
        str | None,
        typer.Option(
            "--out", metavar="PATH", help="The history file (default: <workflow>-<instance>.json)."
        ),
    ] = None,
    account_id: AccountOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Save an instance's status and step history as a JSON file, for `awf-sim replay`."""
    target = Path(out if out is not None else f"{workflow}-{instance}.json")
    with _handled():
        # A file that cannot be written is bad input: said before anything is read.
        if target.is_dir():
            raise _UsageError(f"--out {target} is a folder; name a file in it")
        if not target.resolve().parent.is_dir():
            raise _UsageError(f"--out {target}: folder {target.resolve().parent} does not exist")
        client = _client(account_id)
    with client, _handled():
        history = pull_history(client, workflow, instance)
    with _handled():
        try:
            target.write_text(json.dumps(history.to_json(), indent=2) + "\n", encoding="utf-8")
        except OSError as exc:
            raise _UsageError(f"--out {target}: {exc.strerror or exc}") from None
    if json_out:
        _json(
            {
                "workflow": workflow,
                "instance": instance,
                "out": str(target),
                "status": history.status,
                "steps": len(history.steps),
            }
        )
        return
    _out(
        f"Saved instance {instance} of {workflow} ({history.status}, {len(history.steps)} "
        f"steps) to {target}."
    )
    _out(f"Replay it on your current code: awf-sim replay FLOW.py {target}")


@app.command(cls=_DeployCommand)
def key(
    flow: FlowArg,
    rotate: Annotated[
        bool,
        typer.Option("--rotate", metavar=_FLAG, help="Set a new API key on the deployed Worker."),
    ] = False,
    key_file: KeyFileOpt = None,
    yes: Annotated[
        bool,
        typer.Option(
            "--yes",
            "-y",
            metavar=_FLAG,
            help="Do not ask for confirmation (needed without a terminal).",
        ),
    ] = False,
    name: NameOpt = None,
    compatibility_date: DateOpt = None,
    d1_id: D1Opt = None,
    account_id: AccountOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Replace the deployed Worker's API key (AWF_API_KEY) with a new one: `--rotate`.

    The flow's current bundle must be what is deployed (push first); the old key stops
    working at once, so it asks first on a terminal, and needs --yes elsewhere."""
    with _handled():
        if not rotate:
            raise _UsageError("pass --rotate to replace the Worker's API key with a new one")
        _key_file_ok(key_file)
        loaded = _load_flow(flow)
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
        entry = remote.modules.get(MAIN_MODULE, "") if remote else ""
        deployed = read_bundle_hash(entry) if remote else None
        if remote is not None and read_api_auth(entry) == "public":
            raise _UsageError(
                f"script {bundle.name!r} was pushed with --public: its Worker has no API key to "
                f"rotate (`awf-deploy push {flow}` without --public gives it one)"
            )
        if deployed != bundle.sha256:
            # The bundle depends on these options too: a push given them needs them here.
            given = "--compatibility-date" + (" or --d1-id" if bundle.uses_db else "")
            raise _UsageError(
                f"script {bundle.name!r} "
                + (
                    "is not deployed: push it first"
                    if remote is None
                    else "runs another bundle than this flow's: if the push was given "
                    f"{given}, pass the same here; else push it first"
                )
                + f" (`awf-deploy push {flow}`), then rotate"
            )
        if not yes:
            # Every client still holding the old key is locked out at once: never silently.
            if not _interactive():
                raise _UsageError(
                    "refusing to rotate the API key: not a terminal, nobody to confirm (the old "
                    "key stops working at once); pass --yes"
                )
            if not typer.confirm(
                f"Replace the API key of script {bundle.name!r}? The old key stops working "
                "at once.",
                err=True,
            ):
                _fail("Aborted", "aborted; the API key was not changed")
                _exit(EXIT_FAILED)
        secret = new_api_key()
        _err(f"awf-deploy: uploading script {bundle.name!r} with a new API key ...")
        upload(client, bundle, secret)
    delivered = _deliver_key(secret, key_file, bundle.name, json_out)
    failed = "api_key_file_error" in delivered
    if failed:
        _RUN.error = {"kind": "KeyFileError", "message": delivered["api_key_file_error"]}
    if json_out:
        _json({"script": bundle.name, "rotated": True, **delivered}, ok=not failed)
    if failed:
        _exit(EXIT_FAILED)
