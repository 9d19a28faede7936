"""`awf-deploy`: build a flow's Worker bundle, serve it locally (`dev`) and push it to Cloudflare.
Parses and prints only.

Exit codes: 0 success, 1 a failure (violations, an API error, a refused push), 2 bad usage or
input (a flow that cannot be loaded, invalid JSON, missing credentials). Results go to stdout
(with --json one JSON object, on failure too: `"ok": false` and its `"error"`), progress and
errors to stderr, each line starting with `awf-deploy`. The API token is read from
CLOUDFLARE_API_TOKEN only (a flag would leave it in shell history) and never printed.

`trigger`, `send-event`, `instances` and `status` talk to the Cloudflare API, or with `--local`
(`awf-deploy dev` on 127.0.0.1:8787) or `--url BASE` to a Worker's own awf HTTP API; nothing
listening there is exit 1.
"""

from __future__ import annotations

from awf_sim.cli import show_warnings_not_raise

# The commands register themselves on `app` when their modules are imported; tests shorten
# the client's retries and deadlines through _CLIENT_OPTIONS.
from . import _cli_deploy, _cli_ops  # noqa: F401
from ._cli_base import _CLIENT_OPTIONS, app  # noqa: F401

__all__ = ["app", "main"]


def main() -> None:
    show_warnings_not_raise()
    app()


if __name__ == "__main__":
    main()
