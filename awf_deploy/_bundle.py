"""Flow file -> Worker bundle: `entry.py`, the flow file, the runtime, `wrangler.toml`.

The bundle is built in memory (`build_bundle`) so that push can upload it without touching the
disk, and written out by `write_bundle` for `awf-deploy build` (and `npx wrangler deploy`).

Names follow DESIGN §7: workflow `order-processing` runs as class `OrderProcessingWorkflow`
behind the binding `ORDER_PROCESSING_WORKFLOW`.

Which bindings a flow needs is read from its source, not from a run (a run only covers the
branches its examples take): a handler uses `ctx.db` / `ctx.ai` when an attribute `db` / `ai`
is read on a name that is `ctx`, or the third parameter of any function, in the flow file or a
sibling module it imports. A false positive only adds an unused binding.
"""

from __future__ import annotations

import ast
import datetime as _dt
import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import awf_sim.dsl
from awf_sim.engine import DEFAULT_COMPATIBILITY_DATE
from awf_sim.flow import FlowFile, load_flow

from .errors import AwfDeployError
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

MAIN_MODULE = "entry.py"
DB_BINDING = "DB"
AI_BINDING = "AI"
MARKER = ".awf-bundle.json"
SCHEMA_FILE = "migrations/0001_awf_schema.sql"
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
_SCRIPT_NAME = re.compile(r"[a-z0-9_][a-z0-9\-_]*")
_HASH_LINE = re.compile(r'^BUNDLE_SHA256 = "([0-9a-f]*)"$', re.MULTILINE)
_RESERVED_MODULES = frozenset({"entry", "awf_runtime", "awf_sim", "workers", "js", "pyodide"})
_RUNTIME_MODULES = frozenset({"workers", "js", "pyodide", "_pyodide_entrypoint_helper"})
# The DSL is copied verbatim from the installed awf_sim: what was tested is what is deployed.
_DSL_DIR = Path(awf_sim.dsl.__file__).resolve().parent


class BuildError(AwfDeployError, ValueError):
    """The flow cannot be bundled as asked; the message says why and what to do."""


@dataclass(frozen=True)
class BundledWorkflow:
    """One workflow of the bundle: its Cloudflare name, binding, class and cron."""

    name: str
    binding: str
    class_name: str
    schedule: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "binding": self.binding,
            "class": self.class_name,
            "schedule": self.schedule,
        }


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
        return _bindings(self.workflows, self.uses_db, self.uses_ai, self.d1_database_id)

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


def _check_date(date: str) -> str:
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


def _sdk_modules() -> dict[str, str]:
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


def _bindings(
    workflows: Iterable[BundledWorkflow], uses_db: bool, uses_ai: bool, d1_id: str | None
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [
        {
            "type": "workflow",
            "name": wf.binding,
            "workflow_name": wf.name,
            "class_name": wf.class_name,
        }
        for wf in workflows
    ]
    if uses_db:
        binding: dict[str, Any] = {"type": "d1", "name": DB_BINDING}
        if d1_id:
            binding["id"] = d1_id
        out.append(binding)
    if uses_ai:
        out.append({"type": "ai", "name": AI_BINDING})
    return out


# -- reading the flow's source -------------------------------------------------------------------


def _parse(path: Path) -> ast.Module:
    try:
        return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except SyntaxError as exc:
        raise BuildError(f"{path}:{exc.lineno}: syntax error: {exc.msg}") from None


def _module_level_imports(tree: ast.Module) -> list[str]:
    """Top-level module names imported when the module is imported (function bodies and
    `if TYPE_CHECKING:` / `if __name__ == "__main__":` blocks excluded)."""
    names: list[str] = []

    def visit(nodes: Iterable[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.Import):
                names.extend(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level == 0 and node.module:
                    names.append(node.module)
            elif isinstance(node, ast.If):
                test = ast.unparse(node.test)
                if "TYPE_CHECKING" in test or "__name__" in test:
                    visit(node.orelse)
                else:
                    visit(node.body)
                    visit(node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body)
                for handler in node.handlers:
                    visit(handler.body)
                visit(node.orelse)
                visit(node.finalbody)
            elif isinstance(node, ast.With | ast.ClassDef):
                visit(node.body)

    visit(tree.body)
    return names


def _all_imports(tree: ast.Module) -> list[str]:
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
    return names


def _uses(tree: ast.Module, attr: str) -> bool:
    """Whether `<ctx>.<attr>` is read, `<ctx>` being `ctx` or any function's third parameter."""
    ctx_names = {"ctx"}
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            params = [*node.args.posonlyargs, *node.args.args]
            if len(params) >= 3:
                ctx_names.add(params[2].arg)
    return any(
        isinstance(node, ast.Attribute)
        and node.attr == attr
        and isinstance(node.value, ast.Name)
        and node.value.id in ctx_names
        for node in ast.walk(tree)
    )


def _sibling_files(folder: Path, top: str) -> list[Path]:
    single = folder / f"{top}.py"
    if single.is_file():
        return [single]
    package = folder / top
    if (package / "__init__.py").is_file():
        return sorted(p for p in package.rglob("*.py") if "__pycache__" not in p.parts)
    return []


@dataclass
class _Sources:
    modules: dict[str, str] = field(default_factory=dict)  # bundle path -> source
    trees: list[ast.Module] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _collect(flow_path: Path, flow_module: str) -> _Sources:
    """The flow file and the sibling modules it imports (recursively), with warnings for
    imports the Worker cannot satisfy."""
    folder = flow_path.parent
    out = _Sources()
    bundled: set[str] = set()
    queue: list[tuple[Path, str, str]] = [(flow_path, f"{flow_module}.py", flow_path.name)]
    while queue:
        path, bundle_path, label = queue.pop(0)
        if bundle_path in out.modules:
            continue
        tree = _parse(path)
        out.modules[bundle_path] = path.read_text(encoding="utf-8")
        out.trees.append(tree)
        module_level = set(_module_level_imports(tree))
        for name in _all_imports(tree):
            top = name.split(".")[0]
            # awf_sim is always the bundle's own (a flow next to the awf_sim sources, as in
            # this repository, must not bundle the simulator).
            local = top not in sys.stdlib_module_names and top != "awf_sim"
            if local and top not in bundled:
                siblings = _sibling_files(folder, top)
                if siblings:
                    if top in _RESERVED_MODULES:
                        raise BuildError(
                            f"{label} imports the sibling module {top!r}, whose name the "
                            "bundle needs for itself; rename it"
                        )
                    bundled.add(top)
                    for sibling in siblings:
                        rel = sibling.relative_to(folder).as_posix()
                        queue.append((sibling, rel, rel))
            if top in bundled or name not in module_level:
                continue
            warning = None
            if top == "awf_sim" and not (name == "awf_sim" or name.startswith("awf_sim.dsl")):
                warning = (
                    f"{label} imports {name} at module level; only the DSL (awf_sim, "
                    "awf_sim.dsl) is deployed, so the Worker will fail to start: import it "
                    "inside a function or only in tests"
                )
            elif top not in sys.stdlib_module_names and top not in _RUNTIME_MODULES | {"awf_sim"}:
                warning = (
                    f"{label} imports {name!r}, which is neither the standard library nor a "
                    "file next to the flow: the bundle does not vendor packages, so the Worker "
                    "will fail to start unless Cloudflare's Python runtime provides it"
                )
            if warning is not None and warning not in out.warnings:
                out.warnings.append(warning)
    return out


# -- entry.py and wrangler.toml ------------------------------------------------------------------


def _py_literal(row: Mapping[str, str | None]) -> str:
    """A dict of strings (or None) as Python source; JSON string literals are Python ones."""
    items = (f"{json.dumps(k)}: {'None' if v is None else json.dumps(v)}" for k, v in row.items())
    return "{" + ", ".join(items) + "}"


def _entry_source(
    flow_file: str,
    flow_module: str,
    script: str,
    workflows: Iterable[BundledWorkflow],
    api_auth: str = "optional",
) -> str:
    wfs = list(workflows)
    listing = "\n".join(
        f"  {wf.name}: class {wf.class_name}, binding env.{wf.binding}"
        + (f", cron {wf.schedule!r}" if wf.schedule else "")
        for wf in wfs
    )
    table = "\n".join(f"    {_py_literal(wf.to_json())}," for wf in wfs)
    classes = "\n\n".join(
        f"class {wf.class_name}(WorkflowEntrypoint):\n"
        f"    workflow_name = {json.dumps(wf.name)}\n\n"
        "    async def run(self, event, step):\n"
        f"        return await awf_runtime.run_workflow(_FLOW[{json.dumps(wf.name)}], "
        "self.env, event, step)\n"
        for wf in wfs
    )
    return f'''"""Worker entry for the flow {flow_file}; generated by awf-deploy, do not edit.

Workflows:
{listing}

HTTP API (send `Authorization: Bearer <AWF_API_KEY>` when that secret is set):
  GET  /                                               the workflows this Worker runs
  POST /workflows/<name>/instances[?id=ID]              start one; the JSON body is its params
  GET  /workflows/<name>/instances/<id>                 its status
  POST /workflows/<name>/instances/<id>/events/<type>   send an event; the body is its payload
"""

from workers import Response, WorkerEntrypoint, WorkflowEntrypoint

import awf_runtime
import {flow_module} as _flow

SCRIPT = {json.dumps(script)}
BUNDLE_SHA256 = ""
API_AUTH = {json.dumps(api_auth)}
WORKFLOWS = [
{table}
]
_FLOW = awf_runtime.workflows_of(_flow, [w["name"] for w in WORKFLOWS])


{classes}

class Default(WorkerEntrypoint):
    async def fetch(self, request, *args):
        return await awf_runtime.fetch(
            request,
            self.env,
            WORKFLOWS,
            Response,
            script=SCRIPT,
            bundle=BUNDLE_SHA256,
            auth=API_AUTH,
        )

    async def scheduled(self, controller, *args):
        await awf_runtime.scheduled(controller, self.env, WORKFLOWS)
'''


def _toml_str(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


def _wrangler_toml(
    script: str,
    flow_file: str,
    date: str,
    flags: Iterable[str],
    workflows: Iterable[BundledWorkflow],
    crons: list[str],
    uses_db: bool,
    uses_ai: bool,
    d1_id: str | None,
    has_schema: bool,
) -> str:
    lines = [
        f"# Generated by awf-deploy from {flow_file}; rebuild with `awf-deploy build`.",
        "# Deploy with `awf-deploy push`, or from this folder with `npx wrangler deploy`.",
        f"name = {_toml_str(script)}",
        f'main = "{MAIN_MODULE}"',
        f"compatibility_date = {_toml_str(date)}",
        f"compatibility_flags = [{', '.join(_toml_str(f) for f in flags)}]",
    ]
    for wf in workflows:
        lines += [
            "",
            "[[workflows]]",
            f"name = {_toml_str(wf.name)}",
            f"binding = {_toml_str(wf.binding)}",
            f"class_name = {_toml_str(wf.class_name)}",
        ]
    if crons:
        lines += ["", "[triggers]", f"crons = [{', '.join(_toml_str(c) for c in crons)}]"]
    if uses_db:
        lines += ["", "[[d1_databases]]", f'binding = "{DB_BINDING}"']
        lines.append(f"database_name = {_toml_str(script + '-db')}")
        if d1_id:
            lines.append(f"database_id = {_toml_str(d1_id)}")
        else:
            lines.append(
                f"# database_id: `npx wrangler d1 create {script}-db`, then rebuild with --d1-id"
            )
        if has_schema:
            lines.append('migrations_dir = "migrations"')
    if uses_ai:
        lines += ["", "[ai]", f'binding = "{AI_BINDING}"']
    return "\n".join(lines) + "\n"


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


def read_bundle_hash(entry_source: str) -> str | None:
    """The BUNDLE_SHA256 written into a deployed entry.py, if any."""
    found = _HASH_LINE.search(entry_source)
    return found.group(1) if found and found.group(1) else None


def _flow_module_name(path: Path) -> str:
    stem = path.stem
    if (
        stem.isidentifier()
        and stem not in _RESERVED_MODULES
        and stem not in sys.stdlib_module_names
        and not stem.startswith("_")
    ):
        return stem
    return "awf_flow"


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
    date = _check_date(compatibility_date or DEFAULT_COMPATIBILITY_DATE)
    flags = compatibility_flags_for(date)
    if d1_database_id is not None and not re.fullmatch(r"[A-Za-z0-9-]{1,64}", d1_database_id):
        raise BuildError(
            f"invalid D1 database id {d1_database_id!r}: pass the uuid that "
            "`npx wrangler d1 create` or `npx wrangler d1 list` prints"
        )

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
    sources = _collect(path.resolve(), flow_module)
    uses_db = any(_uses(tree, "db") for tree in sources.trees)
    uses_ai = any(_uses(tree, "ai") for tree in sources.trees)
    schema = getattr(loaded.database, "schema", "") or ""
    has_schema = uses_db and bool(schema.strip())

    modules: dict[str, str] = {
        MAIN_MODULE: _entry_source(path.name, flow_module, script, workflows, api_auth)
    }
    modules.update(sources.modules)
    modules.update(adapter_files())
    modules["awf_sim/__init__.py"] = AWF_SIM_INIT.read_text(encoding="utf-8")
    for dsl_file in sorted(_DSL_DIR.glob("*.py")):
        modules[f"awf_sim/dsl/{dsl_file.name}"] = dsl_file.read_text(encoding="utf-8")
    modules.update(_sdk_modules())

    metadata = {
        "main_module": MAIN_MODULE,
        "compatibility_date": date,
        "compatibility_flags": list(flags),
        "bindings": _bindings(workflows, uses_db, uses_ai, d1_database_id),
    }
    digest = bundle_hash(modules, metadata)
    modules[MAIN_MODULE] = _HASH_LINE.sub(f'BUNDLE_SHA256 = "{digest}"', modules[MAIN_MODULE])

    crons = list(dict.fromkeys(wf.schedule for wf in workflows if wf.schedule))
    files = {
        "wrangler.toml": _wrangler_toml(
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
    if uses_db and not d1_database_id:
        warnings.append(
            f"the flow uses ctx.db but no D1 database id was given: create one with "
            f"`npx wrangler d1 create {script}-db` and pass --d1-id (or set AWF_D1_DATABASE_ID)"
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
        api_auth=api_auth,
    )


def write_bundle(bundle: Bundle, out: str | os.PathLike[str]) -> Path:
    """Write the bundle into `out` (created if needed). A folder that is not empty must be one
    awf-deploy wrote before (it holds `.awf-bundle.json`); its content is replaced."""
    target = Path(out)
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
