"""What `awf-deploy push` and `key` print: the plan, the push report, and the new API key
(handed over once, into --key-file or on stdout)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ._cli_base import _err, _out, _UsageError
from ._push import API_KEY_VAR, Plan, PushReport


def _print_plan(plan: Plan) -> None:
    marks = {"create": "+", "update": "~", "unchanged": "="}
    if plan.hash_after_binding:
        # The id of the database the push creates is part of the bundle (and of its hash).
        which = "its bundle hash is known once the new database is bound"
    else:
        which = f"bundle {plan.bundle.sha256[:12]}"
    _out(f"Plan for script {plan.bundle.name!r} ({which}):")
    for change in plan.changes:
        if change.kind in ("database", "migration"):
            _out(f"  {marks[change.action]} {change.describe()}")
            continue
        label = f"{change.kind:<9} {change.target}"
        _out(f"  {marks[change.action]} {label:<40} {change.action}: {change.detail}")


def _print_report(report: PushReport, plan: Plan) -> None:
    if report.ok:
        _out("Pushed: " + "; ".join(c.describe() for c in report.done) + ".")
        if plan.hash_after_binding and report.bundle_sha256 is not None:
            _out(f"  bundle {report.bundle_sha256[:12]} (with the new database bound)")
        return
    assert report.failed is not None
    _out("Push stopped halfway." if report.done else "Push stopped before changing anything.")
    for change in report.done:
        _out(f"  done:     {change.describe()}")
    first_line = str(report.error).splitlines()[0] if report.error else ""
    _out(f"  FAILED:   {report.failed.describe()}: {first_line}")
    for change in report.not_done:
        _out(f"  not done: {change.describe()}")
    status = report.error.status if report.error is not None else None
    if status is not None and 400 <= status < 500 and status != 429:
        # A refusal comes back the same on a retry: the error (and its hint) says what to fix.
        _out(
            "Nothing else was changed. Cloudflare refused the request: fix what the error says, "
            "then push again; it reads the account again and does only what is left."
        )
        return
    _out(
        "Nothing else was changed. Run the same push again: it reads the account again and "
        "does only what is left."
    )


def _deliver_key(key: str, key_file: str | None, script: str, json_out: bool) -> dict[str, Any]:
    """Hand a new API key to the user once: into `key_file`, or on stdout."""
    if key_file is not None:
        path = Path(key_file)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(key + "\n")
            os.chmod(path, 0o600)
        except OSError as exc:
            # The key is already set on the Worker: losing it here would lock the user out.
            _err(
                f"awf-deploy: could not write the API key to --key-file {key_file} "
                f"({exc.strerror or exc}); it is shown below instead"
            )
            return {**_deliver_key(key, None, script, json_out), "api_key_file_error": str(exc)}
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
        path = Path(key_file)
        parent = path.resolve().parent
        if not parent.is_dir():
            raise _UsageError(f"--key-file {key_file}: folder {parent} does not exist")
        if path.is_dir():
            raise _UsageError(f"--key-file {key_file} is a folder; name a file in it")
        if not os.access(path if path.exists() else parent, os.W_OK):
            raise _UsageError(f"--key-file {key_file}: not writable; name a file you can write")
