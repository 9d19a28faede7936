"""Which Cloudflare Python runtime a bundle targets: the compatibility dates the adapter
supports, the flags a date needs, and the Workers SDK the bundle vendors (as pywrangler does)."""

from __future__ import annotations

import datetime as _dt
import importlib.metadata

from .errors import BuildError

__all__ = [
    "EXTERNAL_SDK_FLAG",
    "EXTERNAL_SDK_FROM",
    "MIN_COMPATIBILITY_DATE",
    "SDK_DISTRIBUTION",
    "SDK_VERSION",
    "VENDOR_DIR",
    "check_date",
    "compatibility_flags_for",
    "sdk_modules",
]

VENDOR_DIR = "python_modules"
# The Workers SDK the bundle carries (workerd's `pythonExternalSDK`: from 2026-04-21 the runtime
# no longer brings its own). 1.9.5 has the fix that makes a step's NonRetryableError reach the
# engine as one (workers-py #266); the SDK frozen inside the runtime retries it.
SDK_DISTRIBUTION = "workers-runtime-sdk"
SDK_VERSION = "1.9.5"
# The dates the adapter supports, from workerd's compatibility-date.capnp:
# `pythonWorkers20250116` (Pyodide 0.28.2, `pyodide.ffi.jsnull`) is implied from 2025-09-29;
# before it Pyodide 0.26 turns None into `undefined`, which D1 refuses to bind.
MIN_COMPATIBILITY_DATE = "2025-09-29"
# `pythonExternalSDK` is on by date from 2026-04-21; earlier dates opt in with its flag, so the
# vendored SDK (not the runtime's frozen one) is the one that runs.
EXTERNAL_SDK_FROM = "2026-04-21"
EXTERNAL_SDK_FLAG = "enable_python_external_sdk"


def check_date(date: str) -> str:
    try:
        parsed = _dt.date.fromisoformat(date)
    except ValueError:
        raise BuildError(
            f"invalid compatibility date {date!r}: use YYYY-MM-DD, e.g. 2025-06-01"
        ) from None
    if len(date) != 10:
        raise BuildError(f"invalid compatibility date {date!r}: use YYYY-MM-DD")
    if parsed > _dt.datetime.now(_dt.UTC).date():
        raise BuildError(
            f"compatibility date {date} is in the future; Cloudflare refuses it (use today's "
            "date or earlier)"
        )
    if date < MIN_COMPATIBILITY_DATE:
        raise BuildError(
            f"compatibility date {date} is too old for awf's Worker adapter: before "
            f"{MIN_COMPATIBILITY_DATE} Cloudflare runs Python Workers on Pyodide 0.26, which has "
            "no JavaScript null (D1 refuses NULL parameters) and looks handlers up by their "
            f"old names; pass --compatibility-date {MIN_COMPATIBILITY_DATE} or later"
        )
    return date


def compatibility_flags_for(date: str) -> tuple[str, ...]:
    """The flags a bundle for `date` needs: Python Workers, and the vendored SDK before the date
    from which the runtime uses it by default."""
    return ("python_workers",) + ((EXTERNAL_SDK_FLAG,) if date < EXTERNAL_SDK_FROM else ())


def sdk_modules() -> dict[str, str]:
    """The installed workers-runtime-sdk, as pywrangler vendors it: every file of the
    distribution under `python_modules/` (no bytecode), and an empty `pyvenv.cfg`."""
    try:
        dist = importlib.metadata.distribution(SDK_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        dist = None
    if dist is None or dist.version != SDK_VERSION:
        found = "not installed" if dist is None else f"version {dist.version} is installed"
        raise BuildError(
            f"the bundle vendors {SDK_DISTRIBUTION} {SDK_VERSION} and {found}: run "
            f"`pip install {SDK_DISTRIBUTION}=={SDK_VERSION}` (awf's own install pins it)"
        )
    out: dict[str, str] = {}
    for file in sorted(dist.files or (), key=str):
        rel = file.as_posix() if hasattr(file, "as_posix") else str(file)
        if "__pycache__" in rel.split("/") or rel.endswith(".pyc") or rel.startswith(".."):
            continue
        # newline="": byte for byte (the wheel's RECORD has CRLF line ends)
        with open(str(dist.locate_file(file)), encoding="utf-8", newline="") as handle:
            out[f"{VENDOR_DIR}/{rel}"] = handle.read()
    out[f"{VENDOR_DIR}/pyvenv.cfg"] = ""
    return out
