"""Imports run downhill only: the layer order at the top of awf_sim/__init__.py, checked.

Every import counts, at module level, inside a function (lazy) or under TYPE_CHECKING: a
lazy import uphill is still a dependency uphill. Within a layer any direction is allowed, but
no two modules may import each other in a cycle.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import awf_sim

ROOT = Path(awf_sim.__file__).resolve().parent.parent
PACKAGES = ("awf_sim", "awf_deploy")


def _layers() -> dict[str, int]:
    doc = awf_sim.__doc__ or ""
    layers: dict[str, int] = {}
    for match in re.finditer(r"^\s+(\d+)\. ((?:awf_sim[\w.]*\s?)+)", doc, re.M):
        for name in match.group(2).split():
            layers[name] = int(match.group(1))
    return layers


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """Every awf module `name` imports anywhere in its source (submodules resolved)."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            subs = {f"{source}.{a.name}" for a in node.names} & MODULES.keys()
            out.update(subs)
            if len(subs) < len(node.names):  # some names are attributes of `source` itself
                out.add(source)
    return {m for m in out if m in MODULES and m != name}


def _layer_of(module: str, layers: dict[str, int]) -> int | None:
    best = None
    for prefix in layers:
        if (module == prefix or module.startswith(prefix + ".")) and (
            best is None or len(prefix) > len(best)
        ):
            best = prefix
    return None if best is None else layers[best]


def test_every_awf_sim_module_has_a_layer() -> None:
    layers = _layers()
    assert len(set(layers.values())) >= 10
    missing = [m for m in MODULES if m.startswith("awf_sim") and _layer_of(m, layers) is None]
    assert missing == []


def test_no_awf_sim_module_imports_uphill() -> None:
    layers = _layers()
    uphill = []
    for name, path in MODULES.items():
        if not name.startswith("awf_sim"):
            continue
        mine = _layer_of(name, layers)
        assert mine is not None
        for target in _imports(name, path):
            theirs = _layer_of(target, layers)
            if target.startswith("awf_deploy") or (theirs is not None and theirs > mine):
                uphill.append(f"{name} (layer {mine}) imports {target} (layer {theirs})")
    assert uphill == []


def test_no_import_cycles() -> None:
    graph = {name: _imports(name, path) for name, path in MODULES.items()}
    # A package's __init__ importing its own submodules is how it exports them, not a cycle.
    for name in graph:
        graph[name] = {t for t in graph[name] if not name.startswith(t + ".")}
    cycles = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join([*stack[stack.index(nxt) :], nxt]))
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert cycles == []


def test_awf_deploy_imports_only_public_awf_sim_paths() -> None:
    # The Worker runtime ships awf_sim/dsl alone and reads its JSON helpers from there.
    allowed = {("awf_deploy.runtime.awf_runtime._js", "awf_sim.dsl._identity")}
    private = [
        (name, target)
        for name, path in MODULES.items()
        if name.startswith("awf_deploy")
        for target in _imports(name, path)
        if target.startswith("awf_sim") and any(p.startswith("_") for p in target.split("."))
    ]
    assert sorted(set(private) - allowed) == []
