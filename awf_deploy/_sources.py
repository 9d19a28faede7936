"""Reading a flow's source: the sibling modules it imports (bundled with it), the imports the
Worker cannot satisfy (warned about), and whether handlers use `ctx.db` / `ctx.ai`.

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

from .errors import BuildError

__all__ = ["RESERVED_MODULES", "Sources", "collect", "uses"]

RESERVED_MODULES = frozenset({"entry", "awf_runtime", "awf_sim", "workers", "js", "pyodide"})
_RUNTIME_MODULES = frozenset({"workers", "js", "pyodide", "_pyodide_entrypoint_helper"})


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


@dataclass
class Sources:
    modules: dict[str, str] = field(default_factory=dict)  # bundle path -> source
    trees: list[ast.Module] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def collect(flow_path: Path, flow_module: str) -> Sources:
    """The flow file and the sibling modules it imports (recursively), with warnings for
    imports the Worker cannot satisfy."""
    folder = flow_path.parent
    out = Sources()
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
                    if top in RESERVED_MODULES:
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
