"""Flow file -> Worker bundle: `entry.py`, the flow file, the runtime, `wrangler.toml`.

The bundle is built in memory (`build_bundle`) so that push can upload it without touching the
disk, and written out by `write_bundle` for `awf-deploy build` (and `npx wrangler deploy`).

The pieces: `_compat` (which runtime a date targets, the vendored SDK), `_sources` (what the
flow imports and uses), `_render` (entry.py, wrangler.toml, bindings); this module names
scripts, assembles the bundle, hashes it and writes it out.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import awf_sim.dsl
from awf_sim.engine import DEFAULT_COMPATIBILITY_DATE
from awf_sim.flow import FlowFile, load_flow

from ._compat import (
    MIN_COMPATIBILITY_DATE,
    SDK_VERSION,
    check_date,
    compatibility_flags_for,
    sdk_modules,
)
from ._render import (
    AI_BINDING,
    DB_BINDING,
    MAIN_MODULE,
    BundledWorkflow,
    bindings,
    entry_source,
    wrangler_toml,
)
from ._sources import RESERVED_MODULES, MissingImport, collect, uses
from .errors import BuildError
from .runtime import AWF_SIM_INIT, adapter_files

__all__ = [
    "AI_BINDING",
    "DB_BINDING",
    "DEFAULT_COMPATIBILITY_DATE",
    "MAIN_MODULE",
    "MIN_COMPATIBILITY_DATE",
    "SDK_VERSION",
    "BuildError",
    "Bundle",
    "BundledWorkflow",
    "binding_name",
    "build_bundle",
    "bundle_hash",
    "class_name",
    "compatibility_flags_for",
    "read_bundle_hash",
    "script_name_for",
    "write_bundle",
]

MARKER = ".awf-bundle.json"
SCHEMA_FILE = "migrations/0001_awf_schema.sql"
_SCRIPT_NAME = re.compile(r"[a-z0-9_][a-z0-9\-_]*")
_HASH_LINE = re.compile(r'^BUNDLE_SHA256 = "([0-9a-f]*)"$', re.MULTILINE)
# What `wrangler d1 create` / `d1 list` print as a database's id (D1's `uuid`).
_D1_UUID = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")
# The DSL is copied verbatim from the installed awf_sim: what was tested is what is deployed.
_DSL_DIR = Path(awf_sim.dsl.__file__).resolve().parent


@dataclass(frozen=True)
class Bundle:
    """A Worker bundle, in memory.

    `modules` are the Python modules uploaded to Cloudflare (path -> source); `files` are the
    other files `write_bundle` writes (`wrangler.toml`, the D1 schema migration). `sha256`
    identifies the upload (modules, compatibility settings and bindings) and is also written
    into `entry.py`, where push reads it back from the account to see whether anything changed.
    """

    name: str
    flow_path: str
    flow_module: str
    compatibility_date: str
    compatibility_flags: tuple[str, ...]
    workflows: tuple[BundledWorkflow, ...]
    uses_db: bool
    uses_ai: bool
    d1_database_id: str | None
    modules: Mapping[str, str]
    files: Mapping[str, str]
    sha256: str
    warnings: tuple[str, ...] = field(default=())
    # The module-level imports that stop the Worker at start-up (also among `warnings`):
    # push refuses such a bundle before any request.
    missing_imports: tuple[MissingImport, ...] = field(default=())
    api_auth: str = "optional"

    main_module: str = MAIN_MODULE

    @property
    def crons(self) -> list[str]:
        """The script's cron triggers: one per distinct workflow schedule."""
        seen: dict[str, None] = {}
        for wf in self.workflows:
            if wf.schedule:
                seen.setdefault(wf.schedule, None)
        return list(seen)

    @property
    def bindings(self) -> list[dict[str, Any]]:
        """The upload's binding objects (Cloudflare's metadata format)."""
        return bindings(self.workflows, self.uses_db, self.uses_ai, self.d1_database_id)

    def metadata(self) -> dict[str, Any]:
        return {
            "main_module": self.main_module,
            "compatibility_date": self.compatibility_date,
            "compatibility_flags": list(self.compatibility_flags),
            "bindings": self.bindings,
        }


# -- names ---------------------------------------------------------------------------------------


def _words(name: str) -> list[str]:
    return [w for w in re.split(r"[^A-Za-z0-9]+", name) if w]


def binding_name(workflow: str) -> str:
    """`order-processing` -> `ORDER_PROCESSING_WORKFLOW` (the env attribute in the Worker)."""
    camel = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", workflow)  # sendEmail -> send_Email
    base = "_".join(w.upper() for w in _words(camel)) or "WF"
    if base[0].isdigit():
        base = "WF_" + base
    return f"{base}_WORKFLOW"


def class_name(workflow: str) -> str:
    """`order-processing` -> `OrderProcessingWorkflow` (the WorkflowEntrypoint class)."""
    base = "".join(w[:1].upper() + w[1:] for w in _words(workflow)) or "Wf"
    if base[0].isdigit():
        base = "Wf" + base
    return f"{base}Workflow"


def script_name_for(flow_path: str | os.PathLike[str]) -> str:
    """The default script name: the flow file's stem, lower case, `_` as `-`."""
    stem = Path(flow_path).stem.lower()
    name = re.sub(r"[^a-z0-9-]+", "-", stem).strip("-")
    return name or "awf-flow"


def check_script_name(name: str) -> str:
    if not (0 < len(name) <= 63 and _SCRIPT_NAME.fullmatch(name)):
        raise BuildError(
            f"invalid script name {name!r}: Cloudflare wants lower-case letters, digits, '-' "
            "and '_' (not '-' first), at most 63 characters; pass e.g. --name my-shop"
        )
    return name


# -- the bundle ----------------------------------------------------------------------------------


def bundle_hash(modules: Mapping[str, str], metadata: Mapping[str, Any]) -> str:
    """sha256 of the upload: every module (with entry.py's BUNDLE_SHA256 blanked) and the
    metadata (main module, compatibility settings, bindings)."""
    blanked = {
        path: _HASH_LINE.sub('BUNDLE_SHA256 = ""', source) if path == MAIN_MODULE else source
        for path, source in modules.items()
    }
    text = json.dumps(
        {"modules": blanked, "metadata": metadata},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


# How the Worker's HTTP API is guarded (the entry's API_AUTH): "key" needs the secret
# AWF_API_KEY and answers 401 without it; "public" is open; "optional" (the library's default,
# for local runs) checks the key only when the secret is set.
API_AUTH_MODES = ("key", "public", "optional")
_AUTH_LINE = re.compile(r'^API_AUTH = "([a-z]*)"$', re.MULTILINE)


def read_api_auth(entry_source: str) -> str | None:
    """The API_AUTH written into a deployed entry.py, if any."""
    found = _AUTH_LINE.search(entry_source)
    return found.group(1) if found else None


_FLOW_LINE = re.compile(r'\A"""Worker entry for the flow (.+?); generated by awf-deploy')


def read_flow_file(entry_source: str) -> str | None:
    """The flow file's name a deployed entry.py was generated from, if any."""
    found = _FLOW_LINE.match(entry_source)
    return found.group(1) if found else None


def read_bundle_hash(entry_source: str) -> str | None:
    """The BUNDLE_SHA256 written into a deployed entry.py, if any."""
    found = _HASH_LINE.search(entry_source)
    return found.group(1) if found and found.group(1) else None


def _flow_module_name(path: Path) -> str:
    stem = path.stem
    if (
        stem.isidentifier()
        and stem not in RESERVED_MODULES
        and stem not in sys.stdlib_module_names
        and not stem.startswith("_")
    ):
        return stem
    return "awf_flow"


def check_d1_id(value: str) -> None:
    """Refuse a D1 database id that is not a D1 uuid, before anything is built or sent: with
    it, the upload's D1 binding would point nowhere (Cloudflare refuses the upload, or the
    Worker fails on its first query)."""
    if not _D1_UUID.fullmatch(value):
        # A long value is not echoed: a token pasted into the wrong variable would leak.
        shown = repr(value) if len(value) < 40 else f"({len(value)} characters)"
        raise BuildError(
            f"--d1-id (or AWF_D1_DATABASE_ID) {shown} is not a D1 database id: pass the uuid "
            "(like 6f2b8a1e-4c1d-4e0b-9a55-0d5c3b7e9f10) that `npx wrangler d1 list` prints, "
            "or leave it unset and `awf-deploy push` creates the database"
        )


def build_bundle(
    flow_path: str | os.PathLike[str],
    *,
    name: str | None = None,
    compatibility_date: str | None = None,
    d1_database_id: str | None = None,
    flow: FlowFile | None = None,
    api_auth: str = "optional",
) -> Bundle:
    """Build the Worker bundle for a flow file (loading it, unless `flow` is given).

    Raises FlowError (the file cannot be loaded or defines no workflow) or BuildError.
    """
    if api_auth not in API_AUTH_MODES:
        raise BuildError(f"api_auth must be one of {', '.join(API_AUTH_MODES)}, got {api_auth!r}")
    path = Path(flow_path)
    loaded = flow if flow is not None else load_flow(path)
    script = check_script_name(name if name is not None else script_name_for(path))
    date = check_date(compatibility_date or DEFAULT_COMPATIBILITY_DATE)
    flags = compatibility_flags_for(date)
    if d1_database_id is not None:
        check_d1_id(d1_database_id)

    workflows = tuple(
        BundledWorkflow(wf.name, binding_name(wf.name), class_name(wf.name), wf.schedule)
        for wf in sorted(loaded.workflows.values(), key=lambda w: w.name)
    )
    for attr in ("binding", "class_name"):
        taken: dict[str, str] = {}
        for wf in workflows:
            other = taken.setdefault(getattr(wf, attr), wf.name)
            if other != wf.name:
                raise BuildError(
                    f"workflows {other!r} and {wf.name!r} would share the {attr.replace('_', ' ')}"
                    f" {getattr(wf, attr)!r}; rename one of them"
                )

    flow_module = _flow_module_name(path)
    sources = collect(path.resolve(), flow_module)
    uses_db = any(uses(tree, "db") for tree in sources.trees)
    uses_ai = any(uses(tree, "ai") for tree in sources.trees)
    schema = getattr(loaded.database, "schema", "") or ""
    has_schema = uses_db and bool(schema.strip())

    modules: dict[str, str] = {
        MAIN_MODULE: entry_source(path.name, flow_module, script, workflows, api_auth)
    }
    modules.update(sources.modules)
    modules.update(adapter_files())
    modules["awf_sim/__init__.py"] = AWF_SIM_INIT.read_text(encoding="utf-8")
    for dsl_file in sorted(_DSL_DIR.glob("*.py")):
        modules[f"awf_sim/dsl/{dsl_file.name}"] = dsl_file.read_text(encoding="utf-8")
    modules.update(sdk_modules())

    metadata = {
        "main_module": MAIN_MODULE,
        "compatibility_date": date,
        "compatibility_flags": list(flags),
        "bindings": bindings(workflows, uses_db, uses_ai, d1_database_id),
    }
    digest = bundle_hash(modules, metadata)
    modules[MAIN_MODULE] = _HASH_LINE.sub(f'BUNDLE_SHA256 = "{digest}"', modules[MAIN_MODULE])

    crons = list(dict.fromkeys(wf.schedule for wf in workflows if wf.schedule))
    files = {
        "wrangler.toml": wrangler_toml(
            script,
            path.name,
            date,
            flags,
            workflows,
            crons,
            uses_db,
            uses_ai,
            d1_database_id,
            has_schema,
        )
    }
    if has_schema:
        files[SCHEMA_FILE] = (
            f"-- The schema of {path.name}'s DATABASE, for D1. Apply it with\n"
            f"--   npx wrangler d1 migrations apply {script}-db --remote\n" + schema.strip() + "\n"
        )
    warnings = list(sources.warnings)
    if d1_database_id and not uses_db:
        warnings.append(
            "--d1-id (or AWF_D1_DATABASE_ID) is not used: no handler of this flow uses ctx.db, "
            "so the Worker gets no D1 binding"
        )
    if uses_db and not d1_database_id:
        warnings.append(
            # Push and dev filter this one out by its "D1 database id": they provide one.
            f"the flow uses ctx.db but no D1 database id was given: `awf-deploy push` creates "
            f"the database {script}-db itself; to deploy this folder with wrangler instead, "
            f"create it with `npx wrangler d1 create {script}-db` and pass --d1-id (or set "
            "AWF_D1_DATABASE_ID)"
        )
    return Bundle(
        name=script,
        flow_path=str(path),
        flow_module=flow_module,
        compatibility_date=date,
        compatibility_flags=flags,
        workflows=workflows,
        uses_db=uses_db,
        uses_ai=uses_ai,
        d1_database_id=d1_database_id,
        modules=modules,
        files=files,
        sha256=digest,
        warnings=tuple(warnings),
        missing_imports=tuple(sources.missing),
        api_auth=api_auth,
    )


def write_bundle(bundle: Bundle, out: str | os.PathLike[str]) -> Path:
    """Write the bundle into `out` (created if needed). A folder that is not empty must be one
    awf-deploy wrote before (it holds `.awf-bundle.json`); its content is replaced."""
    target = Path(out)
    try:
        return _write_bundle(bundle, target)
    except OSError as exc:  # a read-only or missing location: one line, not a traceback
        where = exc.filename if exc.filename is not None else target
        raise BuildError(
            f"cannot write the bundle to {target}: {exc.strerror or exc} ({where}); "
            "pass an --out folder you can write to"
        ) from None


def _write_bundle(bundle: Bundle, target: Path) -> Path:
    if target.exists():
        if not target.is_dir():
            raise BuildError(f"{target} exists and is not a folder; pass another --out")
        if any(target.iterdir()):
            if not (target / MARKER).is_file():
                raise BuildError(
                    f"{target} is not empty and was not written by awf-deploy; refusing to "
                    "overwrite it: pass another --out"
                )
            for child in target.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child)
                else:
                    child.unlink()
    target.mkdir(parents=True, exist_ok=True)
    for rel, text in {**bundle.modules, **bundle.files}.items():
        dest = target / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(text, encoding="utf-8")
    marker = {
        "script": bundle.name,
        "flow": bundle.flow_path,
        "sha256": bundle.sha256,
        "files": sorted([*bundle.modules, *bundle.files]),
    }
    (target / MARKER).write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")
    return target
