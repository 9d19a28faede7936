"""What every `awf-deploy` command shares: the Typer app, output, the one place errors become
exit codes (`_handled`), the Cloudflare client, and the options."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any, NoReturn

import typer

from awf_sim.cli import Group, show_version
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
from .cloudflare._wire import _ROUTING_CODES  # "no route": the account id is what is wrong

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


app = typer.Typer(
    cls=Group,
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
_NEW_INSTANCE_PATH = re.compile(r"/workflows/[^/]+/instances$")


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
        instance_of = _INSTANCE_PATH.search(exc.path or "")
        if _ROUTING_CODES.intersection(exc.codes):
            pass  # the account itself is not found: its hint names the variable to check
        elif instance_of is not None and _WORKFLOW_NOT_FOUND not in exc.codes:
            _err(
                f"  hint: `awf-deploy instances {instance_of[1]}` lists that workflow's "
                "instances; `awf-deploy status` lists what is deployed on the account."
            )
        else:
            _err("  hint: `awf-deploy status` lists what is deployed on the account.")
        _exit(EXIT_FAILED)
    except CloudflareError as exc:
        _err(f"awf-deploy: {exc}")
        if exc.status == 409 and exc.method == "POST" and _NEW_INSTANCE_PATH.search(exc.path or ""):
            _err(
                "  hint: an instance with this id already exists: pass another --id, or none "
                "for a random one (`awf-deploy status WORKFLOW ID` shows the existing one)."
            )
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
    return None if text is None else parse_json(text, option)


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
