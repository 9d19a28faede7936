"""Reading a flow's source: the sibling modules it imports (bundled with it), the imports the
Worker cannot satisfy (those that stop it at start-up, and the others, warned about), and
whether handlers use `ctx.db` / `ctx.ai`.

Which bindings a flow needs is read from its source, not from a run (a run only covers the
branches its examples take): a handler uses `ctx.db` / `ctx.ai` when an attribute `db` / `ai`
is read on a name that is `ctx`, or the third parameter of any function, in the flow file or a
sibling module it imports. A false positive only adds an unused binding.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from .errors import BuildError

__all__ = ["RESERVED_MODULES", "MissingImport", "Sources", "collect", "uses"]

RESERVED_MODULES = frozenset({"entry", "awf_runtime", "awf_sim", "workers", "js", "pyodide"})
# What the Worker has besides the standard library: Pyodide's and workerd's own modules, and
# the top-level modules of the vendored workers-runtime-sdk (`_compat.sdk_modules`).
_RUNTIME_MODULES = frozenset(
    {
        "workers",
        "asgi",
        "js",
        "pyodide",
        "pyodide_js",
        "_pyodide",
        "_pyodide_entrypoint_helper",
        "_cloudflare_compat_flags",
    }
)


def _parse(path: Path) -> ast.Module:
    try:
        return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except SyntaxError as exc:
        raise BuildError(f"{path}:{exc.lineno}: syntax error: {exc.msg}") from None


_IMPORT_ERRORS = frozenset({"ImportError", "ModuleNotFoundError", "Exception", "BaseException"})


def _catches_import_error(node: ast.Try) -> bool:
    """Whether a `try:` has a handler an ImportError ends in (`except ImportError:`, a bare
    `except:`, `except (ModuleNotFoundError, ...)`)."""
    for handler in node.handlers:
        caught = handler.type
        if caught is None:
            return True
        names = caught.elts if isinstance(caught, ast.Tuple) else [caught]
        if any(ast.unparse(n).split(".")[-1] in _IMPORT_ERRORS for n in names):
            return True
    return False


_NEVER_ON_THE_WORKER = frozenset(
    {"TYPE_CHECKING", "typing.TYPE_CHECKING", "__name__ == '__main__'"}
)


@dataclass(frozen=True)
class _Import:
    name: str
    lineno: int
    certain: bool  # runs whenever the module is imported (not under an `if`, nor guarded)


def _module_level_imports(tree: ast.Module) -> list[_Import]:
    """The imports run when the module is imported (function bodies and `if TYPE_CHECKING:` /
    `if __name__ == "__main__":` blocks excluded; imports in a `try:` whose handler catches
    ImportError excluded, since a missing module is what they expect). `certain`: not under an
    `if` or in an `except` block, so the import runs every time."""
    found: list[_Import] = []

    def visit(nodes: Iterable[ast.stmt], certain: bool) -> None:
        for node in nodes:
            if isinstance(node, ast.Import):
                found.extend(_Import(a.name, node.lineno, certain) for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level == 0 and node.module:
                    found.append(_Import(node.module, node.lineno, certain))
            elif isinstance(node, ast.If):
                test = ast.unparse(node.test)
                if "TYPE_CHECKING" in test or "__name__" in test:
                    # The Worker is not a type checker nor `__main__`: the `else:` of exactly
                    # those tests runs there for certain.
                    visit(node.orelse, certain and test in _NEVER_ON_THE_WORKER)
                else:
                    visit(node.body, False)
                    visit(node.orelse, False)
            elif isinstance(node, ast.Try):
                if not _catches_import_error(node):
                    visit(node.body, certain)
                for handler in node.handlers:
                    visit(handler.body, False)
                visit(node.orelse, False)
                visit(node.finalbody, certain)
            elif isinstance(node, ast.With | ast.ClassDef):
                visit(node.body, certain)

    visit(tree.body, True)
    return found


def _all_imports(tree: ast.Module) -> list[str]:
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
    return names


def uses(tree: ast.Module, attr: str) -> bool:
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


@dataclass(frozen=True)
class MissingImport:
    """A module-level import the Worker cannot satisfy: `where` is `file:line`; `kind` is
    `package` (not the standard library, a sibling file or the Workers runtime) or `awf_sim`
    (a part of awf_sim other than the DSL, which is all the bundle carries)."""

    where: str
    module: str
    kind: Literal["package", "awf_sim"]

    def __str__(self) -> str:
        if self.kind == "awf_sim":
            return (
                f"{self.where} imports {self.module} at module level, so the Worker fails to "
                "start: only the DSL (awf_sim, awf_sim.dsl) is deployed; import it inside a "
                "function or only in tests"
            )
        return (
            f"{self.where} imports {self.module!r} at module level, so the Worker fails to start: "
            "it is not the standard library, a file next to the flow or the Workers SDK, and "
            "awf-deploy uploads no packages; move the import into the handler that uses it, "
            "copy a pure-Python package next to the flow (it is bundled), or deploy the built "
            "folder with `uv run pywrangler deploy`, which vendors the packages pyproject.toml "
            "lists (pure Python or built for Pyodide)"
        )

    def to_json(self) -> dict[str, str]:
        return {"where": self.where, "module": self.module, "kind": self.kind}


@dataclass
class Sources:
    modules: dict[str, str] = field(default_factory=dict)  # bundle path -> source
    trees: list[ast.Module] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    # The imports that stop the Worker at start-up: certain, in a module loaded at start.
    missing: list[MissingImport] = field(default_factory=list)


def _missing_kind(name: str) -> Literal["package", "awf_sim"] | None:
    top = name.split(".")[0]
    if top == "awf_sim":
        return None if name == "awf_sim" or name.startswith("awf_sim.dsl") else "awf_sim"
    if top in sys.stdlib_module_names or top in _RUNTIME_MODULES:
        return None
    return "package"


def _files_of(name: str, modules: dict[str, str]) -> list[str]:
    """The bundled files importing `name` loads: each package's `__init__.py` on the way and
    the module itself."""
    parts = name.split(".")
    files = []
    for depth in range(1, len(parts) + 1):
        stem = "/".join(parts[:depth])
        for candidate in (f"{stem}.py", f"{stem}/__init__.py"):
            if candidate in modules:
                files.append(candidate)
    return files


def collect(flow_path: Path, flow_module: str) -> Sources:
    """The flow file and the sibling modules it imports (recursively); the module-level imports
    the Worker cannot satisfy: `missing` when they stop it at start-up, else warnings."""
    folder = flow_path.parent
    out = Sources()
    bundled: set[str] = set()
    flow_file = f"{flow_module}.py"
    queue: list[tuple[Path, str]] = [(flow_path, flow_file)]
    imports: dict[str, list[_Import]] = {}  # bundle path -> its module-level imports
    while queue:
        path, bundle_path = queue.pop(0)
        if bundle_path in out.modules:
            continue
        tree = _parse(path)
        out.modules[bundle_path] = path.read_text(encoding="utf-8")
        out.trees.append(tree)
        imports[bundle_path] = _module_level_imports(tree)
        label = path.name if bundle_path == flow_file else bundle_path
        for name in _all_imports(tree):
            top = name.split(".")[0]
            # awf_sim is always the bundle's own (a flow next to the awf_sim sources, as in
            # this repository, must not bundle the simulator).
            local = top not in sys.stdlib_module_names and top != "awf_sim"
            if local and top not in bundled:
                siblings = _sibling_files(folder, top)
                if siblings:
                    if top in RESERVED_MODULES:
                        raise BuildError(
                            f"{label} imports the sibling module {top!r}, whose name the "
                            "bundle needs for itself; rename it"
                        )
                    bundled.add(top)
                    for sibling in siblings:
                        queue.append((sibling, sibling.relative_to(folder).as_posix()))
    # The modules Python loads when the Worker starts: the flow, then whatever a loaded module
    # imports for certain at module level.
    loaded = {flow_file}
    pending = [flow_file]
    while pending:
        for found in imports[pending.pop()]:
            if found.certain and found.name.split(".")[0] in bundled:
                for file in _files_of(found.name, out.modules):
                    if file not in loaded:
                        loaded.add(file)
                        pending.append(file)
    for bundle_path, found_imports in imports.items():
        label = flow_path.name if bundle_path == flow_file else bundle_path
        for found in found_imports:
            kind = None if found.name.split(".")[0] in bundled else _missing_kind(found.name)
            if kind is None:
                continue
            missing = MissingImport(f"{label}:{found.lineno}", found.name, kind)
            if found.certain and bundle_path in loaded:
                if missing not in out.missing:
                    out.missing.append(missing)
                    out.warnings.append(str(missing))
                continue
            warning = (
                f"{missing.where} imports {found.name!r}, which the Worker does not have "
                "(only the standard library, the files next to the flow, the Workers SDK and "
                "the DSL of awf_sim are deployed): it fails on Cloudflare if that import runs "
                "(under its condition, or once the module is imported)"
            )
            if warning not in out.warnings:
                out.warnings.append(warning)
    return out
