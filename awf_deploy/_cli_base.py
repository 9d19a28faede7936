"""What every `awf-deploy` command shares: the Typer app, output, the one place errors become
exit codes (`_handled`), the Cloudflare client, and the options."""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stdout
from typing import IO, Annotated, Any, NoReturn

import typer

from awf_sim.cli import Command, JsonFailureGroup, show_version
from awf_sim.errors import ProcessDied
from awf_sim.flow import FlowError, FlowFile, load_flow, parse_json

from ._bundle import (
    BuildError,
    Bundle,
)
from ._dev import DevError
from ._harness import HarnessError
from ._worker_api import LOCAL_URL, WorkerApi, WorkerApiError
from .cloudflare import (
    ACCOUNT_ID_ENV,
    CloudflareClient,
    CloudflareError,
    ConfigError,
    NotFoundError,
)

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class _Run:
    """What one invocation reported for --json's failure object (which _DeployGroup prints):
    `error`, the failure `_fail` or `_handled` said, and `found`, what the command had found
    before it failed (push: verified, violations, plan)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.error: dict[str, Any] | None = None
        # The command's own stdout, while the flow's prints go to stderr (_DeployCommand).
        self.stdout: IO[str] | None = None
        self.found: dict[str, Any] = {}


_RUN = _Run()


class _Notices(logging.Handler):
    """The Cloudflare client's retry notices (logged as warnings) as awf-deploy's own stderr
    lines, with the `awf-deploy: ` prefix every other line carries."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            _err(f"awf-deploy: {record.getMessage()}")
        except Exception:  # logging's own rule: a notice never ends the command
            self.handleError(record)


_CLIENT_LOGGER = logging.getLogger("awf_deploy.cloudflare")


class _DeployGroup(JsonFailureGroup):
    """awf-deploy's group: awf-sim's JsonFailureGroup (with --json a failure is one JSON object
    on stdout too, the same exit code and lines on stderr), whose failure object carries what
    the command reported (`{"ok": false, **found, "error": {"kind", "message", "exit_code",
    "hint"?, ...}}`); the client's notices carry the `awf-deploy: ` prefix."""

    def main(  # type: ignore[override]
        self,
        args: Any = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        _RUN.reset()
        # Only for this command: a program that uses the client keeps its own logging setup.
        notices = _Notices(logging.WARNING)
        propagate = _CLIENT_LOGGER.propagate
        _CLIENT_LOGGER.addHandler(notices)
        _CLIENT_LOGGER.propagate = False
        try:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        finally:
            _CLIENT_LOGGER.removeHandler(notices)
            _CLIENT_LOGGER.propagate = propagate

    def failure(self, error: dict[str, Any]) -> dict[str, Any]:
        # The error the command reported (its kind, hint, status) over the one the group saw.
        reported = {**error, **_RUN.error} if _RUN.error is not None else error
        return {
            "ok": False,
            **{k: v for k, v in _RUN.found.items() if k != "ok"},
            "error": reported,
        }


class _DeployCommand(Command):
    """An awf-deploy command: what the flow's own code prints (at import, in the chaos and
    replay runs of push) goes to stderr, so stdout holds only the command's result (with
    --json, the one JSON object)."""

    def invoke(self, ctx: Any) -> Any:
        _RUN.stdout = sys.stdout
        with redirect_stdout(sys.stderr):
            return super().invoke(ctx)


app = typer.Typer(
    cls=_DeployGroup,
    name="awf-deploy",
    help="Build awf flows into Cloudflare Python Workers and push them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # -h as most command-line tools take it; inherited by every subcommand.
    context_settings={"help_option_names": ["-h", "--help"]},
)

# A flag takes no value: show none (typer would show "<bool>").
_FLAG = " "

# Test seam: keyword arguments for CloudflareClient.from_env (transport, sleep, max_retries).
_CLIENT_OPTIONS: dict[str, Any] = {}


# The Workflows API's code for an unknown workflow (wrangler's WORKFLOW_NOT_FOUND_CODE): listing
# its instances would fail the same way.
_WORKFLOW_NOT_FOUND = 10200

# The Cloudflare API paths of one instance, and of starting one (to tailor an error's hint).
_INSTANCE_PATH = re.compile(r"/workflows/([^/]+)/instances/[^/]+")
# A list of the account's workflows or D1 databases: only a wrong account makes it a 404.
_ACCOUNT_LIST_PATH = re.compile(r"^/accounts/[^/]+/(workflows|d1/database)$")
_NEW_INSTANCE_PATH = re.compile(r"^POST .*/workflows/[^/]+/instances$")


class _UsageError(Exception):
    pass


def _version(value: bool) -> None:
    if value:
        show_version("awf-deploy")


@app.callback()
def _root(
    _show_version: Annotated[
        bool,
        typer.Option(
            "--version",
            metavar=" ",
            is_eager=True,
            callback=_version,
            help="Print the version and exit.",
        ),
    ] = False,
) -> None:
    """Build awf flows into Cloudflare Python Workers and push them."""


# -- output ----------------------------------------------------------------------------------


def _err(text: str) -> None:
    typer.echo(text, err=True)


def _out(text: str = "") -> None:
    typer.echo(text, file=_RUN.stdout or sys.stdout)


def _json(payload: dict[str, Any], ok: bool = True) -> None:
    """The command's one JSON object under --json. On success it is printed now, `"ok": true`
    first; a failure keeps `payload` as what was found, and _DeployGroup prints the failure
    object when the command exits (not 0), with the error reported and the exit code."""
    if not ok:
        _RUN.found = payload
        return
    out: dict[str, Any] = {"ok": True, **{k: v for k, v in payload.items() if k != "ok"}}
    (_RUN.stdout or sys.stdout).write(json.dumps(out, ensure_ascii=False, default=str) + "\n")


def _fail(kind: str, message: str, *hints: str | None, **details: Any) -> None:
    """Say a failure on stderr (`awf-deploy: message`, then a `  hint:` line each) and keep it
    for --json's object (`kind`, `message`, `hint`, `details` that are set); the caller exits."""
    said = [h for h in hints if h]
    _err(f"awf-deploy: {message}")
    for hint in said:
        _err(f"  hint: {hint}")
    error: dict[str, Any] = {"kind": kind, "message": message}
    if said:
        error["hint"] = " ".join(said)
    _RUN.error = {**error, **{k: v for k, v in details.items() if v not in (None, [])}}


def _exit(code: int) -> NoReturn:
    raise typer.Exit(code)


@contextmanager
def _handled() -> Iterator[None]:
    """Every expected failure as one message on stderr (and in --json's object) and its exit
    code."""
    try:
        yield
    except CloudflareError as exc:
        extra = None
        if isinstance(exc, NotFoundError):
            extra = _not_found_hint(exc)
        elif exc.status == 409 and _NEW_INSTANCE_PATH.search(f"{exc.method} {exc.path}"):
            extra = (
                "an instance with this id already exists: pass another --id, or none "
                "for a random one (`awf-deploy status WORKFLOW ID` shows the existing one)."
            )
        _fail(
            type(exc).__name__,
            exc.message,
            exc.hint,
            extra,
            status=exc.status,
            codes=list(exc.codes),
        )
        _exit(EXIT_USAGE if isinstance(exc, ConfigError) else EXIT_FAILED)
    except (FlowError, BuildError, _UsageError, DevError, HarnessError) as exc:
        _fail("UsageError" if isinstance(exc, _UsageError) else type(exc).__name__, str(exc))
        _exit(EXIT_USAGE)
    except ProcessDied as exc:  # the code under test ended the verify gate's process
        _fail(type(exc).__name__, str(exc))
        _exit(EXIT_FAILED)
    except WorkerApiError as exc:  # NotListening too: exit 1, like a Cloudflare transport error
        _fail(type(exc).__name__, str(exc))
        _exit(EXIT_FAILED)
    except ValueError as exc:  # the client's checks of names and ids, before any request
        _fail("UsageError", str(exc))
        _exit(EXIT_USAGE)


def _not_found_hint(exc: NotFoundError) -> str | None:
    """Where to look for what was not found; None keeps the error's own hint (an account
    that is not found names the variable to check)."""
    if exc.routing:
        return None
    if _ACCOUNT_LIST_PATH.search(exc.path or ""):
        # What `status` itself reads: pointing at it would send the user round in a circle.
        return (
            f"the account's own list is not found: check the account id ({ACCOUNT_ID_ENV} or "
            "--account-id)."
        )
    instance_of = _INSTANCE_PATH.search(exc.path or "")
    if instance_of is not None and _WORKFLOW_NOT_FOUND not in exc.codes:
        return (
            f"`awf-deploy instances {instance_of[1]}` lists that workflow's "
            "instances; `awf-deploy status` lists what is deployed on the account."
        )
    return "`awf-deploy status` lists what is deployed on the account."


def _load_flow(flow: str) -> FlowFile:
    """`load_flow(flow)`, once the flow has been imported in a supervised child first.

    A flow file that ends the process at import (`os._exit(0)` at module level) ended
    `awf-deploy push` itself with exit 0 and nothing said, before the verify gate (which runs
    in a child) ever started: a CI job took that for a verified push. The child's death is
    now a FlowError (exit 2), like `sys.exit()` at import. Code that ends only the second
    process to import it is not caught: the import in this process is the second."""
    from awf_sim.engine import run_supervised

    try:
        run_supervised(
            lambda: _imported(flow),
            f"{flow}: importing it",
            goal="finished the import",
            advice="Remove the call that ends the process at module level (os._exit, a "
            'crash), or put it under `if __name__ == "__main__":`.',
        )
    except ProcessDied as exc:
        raise FlowError(str(exc)) from None
    return load_flow(flow)


def _imported(flow: str) -> None:
    load_flow(flow)  # a FlowError crosses back pickled; the loaded flow stays in the child


def _client(account_id: str | None) -> CloudflareClient:
    return CloudflareClient.from_env(account_id=account_id, **_CLIENT_OPTIONS)


def _json_arg(option: str, text: str | None) -> Any:
    """`text` parsed as JSON; bad JSON is a usage error (parse_json says it as a FlowError,
    which --json's `kind` would report as a broken flow)."""
    try:
        return None if text is None else parse_json(text, option)
    except FlowError as exc:
        raise _UsageError(str(exc)) from None


def _interactive() -> bool:
    return sys.stdin.isatty()


# -- options -----------------------------------------------------------------------------------

FlowArg = Annotated[str, typer.Argument(help="The flow file (.py) that defines the workflows.")]
NameOpt = Annotated[
    str | None,
    typer.Option(
        "--name", metavar="NAME", help="Worker script name (default: the flow file's name)."
    ),
]
DateOpt = Annotated[
    str | None,
    typer.Option(
        "--compatibility-date", metavar="DATE", help="Workers compatibility date (YYYY-MM-DD)."
    ),
]
D1Opt = Annotated[
    str | None,
    typer.Option(
        "--d1-id",
        metavar="ID",
        envvar="AWF_D1_DATABASE_ID",
        help="Id of the D1 database bound as DB (needed when a handler uses ctx.db).",
    ),
]
AccountOpt = Annotated[
    str | None,
    typer.Option(
        "--account-id", metavar="ID", help=f"Cloudflare account id (default: ${ACCOUNT_ID_ENV})."
    ),
]
JsonOpt = Annotated[
    bool, typer.Option("--json", metavar=_FLAG, help="Print one JSON object on stdout.")
]
LocalOpt = Annotated[
    bool,
    typer.Option(
        "--local",
        metavar=_FLAG,
        help=f"Talk to `awf-deploy dev` on {LOCAL_URL} instead of the Cloudflare API.",
    ),
]
UrlOpt = Annotated[
    str | None,
    typer.Option(
        "--url",
        metavar="URL",
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
        metavar=_FLAG,
        help="Leave the Worker's HTTP API open to anyone (default: it needs the key "
        "AWF_API_KEY; a flow can also say PUBLIC_API = True).",
    ),
]
KeyFileOpt = Annotated[
    str | None,
    typer.Option(
        "--key-file",
        metavar="FILE",
        help="Write a newly set API key to this file (mode 600) instead of showing it once.",
    ),
]
