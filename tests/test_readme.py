"""The READMEs and docs/ cannot drift: every Python block in them runs, and every shell command
that needs no Cloudflare account runs and exits as its comment says (`# exit 1`; 0 when it says
nothing).

Python blocks of one file share a namespace, in order, as a reader would paste them. A block
preceded by `<!-- readme: context examples/x.py -->` first gets that flow's module globals and
`params` (its first workflow's first example), for that block only; a block that defines
`test_*` functions is run by pytest in a subprocess, with awf's plugin and its fixtures, and
examples/ on the path (so a block can `from order_processing import ...`). A block or command
the test cannot run says why in a `<!-- readme: skip REASON -->` comment above it, or matches
one of the rules below, each with its reason; nothing is skipped silently.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
READMES = [
    ROOT / "README.md",
    ROOT / "awf_deploy" / "README.md",
    ROOT / "awf_sim" / "chaos" / "README.md",
    ROOT / "tests" / "conformance" / "README.md",
    # The design notes promise as much as the READMEs: their blocks run too.
    *sorted((ROOT / "docs").glob("*.md")),
]
_FENCE = re.compile(r"^```(\w+)\n(.*?)^```", re.S | re.M)
_MARK = re.compile(r"<!-- readme: (context|skip) (.+?) -->\s*$")
_SHELL = {"bash", "sh", "shell", "console"}

# Commands the test does not run, each with the reason. First match wins.
_NOT_RUN: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"^(python3? -m venv|\. \.venv|source |pip install|export )"), "sets up a shell"),
    # Chains are split on `&&` first, so `(cd DIR && npm ci)` arrives as two parts.
    (re.compile(r"^npm (ci|install)\b"), "installs npm packages (.ci/run does)"),
    (re.compile(r"^\(?cd \S+\)?$"), "sets up a shell"),
    (re.compile(r"python -m pytest"), "runs the test suite itself"),
    (re.compile(r"^awf-deploy (push|pull|key)\b"), "needs a Cloudflare account"),
    (re.compile(r"--url https://"), "needs a deployed Worker"),
    (
        re.compile(r"^awf-deploy dev\b|--local\b|127\.0\.0\.1:8787"),
        "needs `awf-deploy dev` running; tests/deploy/test_dev.py runs these commands against it",
    ),
    (
        re.compile(r"--engine miniflare|driver\.mjs|compare\.mjs"),
        "records on Miniflare; tests/conformance/test_live_miniflare.py runs every scenario there",
    ),
    (re.compile(r"\.\.\.|<[a-z]|\bNAME\b|\bFLOW\.py\b|\[\.\.\.\]"), "a template, not a command"),
    (re.compile(r"o-1\.json"), "replays a history pulled from a Cloudflare account"),
]


@dataclass(frozen=True)
class Block:
    path: Path
    line: int
    lang: str
    code: str
    mark: tuple[str, str] | None

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def _blocks(path: Path) -> list[Block]:
    text = path.read_text(encoding="utf-8")
    out = []
    for match in _FENCE.finditer(text):
        before = text[: match.start()].rstrip("\n").splitlines()
        mark = _MARK.search(before[-1]) if before else None
        out.append(
            Block(
                path,
                text[: match.start()].count("\n") + 1,
                match.group(1),
                match.group(2),
                (mark.group(1), mark.group(2)) if mark else None,
            )
        )
    return out


def _commands(code: str) -> list[tuple[str, int]]:
    """(command, expected exit code) for each logical line of a shell block."""
    out = []
    for line in code.replace("\\\n", " ").splitlines():
        command, _, comment = line.partition("  #")
        command = command.strip()
        if not command or command.startswith("#"):
            continue
        exit_code = re.search(r"\bexit (\d)", comment)
        out.append((command, int(exit_code.group(1)) if exit_code else 0))
    return out


def _reason(command: str) -> str | None:
    for pattern, reason in _NOT_RUN:
        if pattern.search(command):
            return reason
    return None


def _runnable(command: str) -> str | None:
    """The part of a `a && b && c` chain that is left once set-up steps are dropped."""
    parts = [p.strip() for p in command.split(" && ")]
    kept = [p for p in parts if _reason(p) is None]
    if not kept or (len(kept) < len(parts) and any("pytest" in p for p in parts)):
        return None
    return " && ".join(kept)


SHELL = [
    (block, command, code)
    for path in READMES
    for block in _blocks(path)
    if block.lang in _SHELL and (block.mark is None or block.mark[0] != "skip")
    for command, code in _commands(block.code)
]
PYTHON_FILES = [path for path in READMES if any(b.lang == "python" for b in _blocks(path))]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    for name in ("CLOUDFLARE_API_TOKEN", "CLOUDFLARE_ACCOUNT_ID", "AWF_API_KEY"):
        env.pop(name, None)
    return env


@pytest.mark.parametrize(
    ("block", "command", "expected"),
    SHELL,
    ids=[f"{b.where}:{c[:40]}" for b, c, _ in SHELL],
)
def test_every_shell_command_runs_as_the_readme_says(
    block: Block, command: str, expected: int, tmp_path: Path
) -> None:
    runnable = _runnable(command)
    if runnable is None:
        reason = _reason(command) or "only set-up steps"
        pytest.skip(f"{block.where}: {reason}")
    result = subprocess.run(
        ["bash", "-c", runnable],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == expected, (
        f"{block.where}: `{runnable}` exited {result.returncode}, the README says {expected}\n"
        f"{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
    )
    assert "Traceback (most recent call last)" not in result.stderr, result.stderr[-2000:]


def _context(path: str) -> dict[str, object]:
    from awf_sim.flow import load_flow

    flow = load_flow(ROOT / path)
    namespace = dict(vars(flow.module))
    first = next((w for w in flow.workflows.values() if w.examples), None)
    if first is not None:
        namespace["params"] = first.examples[0]
    return namespace


@pytest.mark.filterwarnings("ignore:Domain .* replaces the one defined:UserWarning")
@pytest.mark.parametrize("path", PYTHON_FILES, ids=[str(p.relative_to(ROOT)) for p in PYTHON_FILES])
def test_every_python_block_runs(path: Path, tmp_path: Path) -> None:
    from awf_sim.dsl import isolated_registries

    with isolated_registries():  # the blocks define Domains the examples define too
        _run_python_blocks(path, tmp_path)


def _run_python_blocks(path: Path, tmp_path: Path) -> None:
    namespace: dict[str, object] = {"__name__": "readme"}
    for block in _blocks(path):
        if block.lang != "python":
            continue
        if block.mark is not None and block.mark[0] == "skip":
            continue
        if re.search(r"^def test_", block.code, re.M):
            _run_with_pytest(block, tmp_path)
            continue
        scope = namespace
        if block.mark is not None and block.mark[0] == "context":
            # That block only: a later block's names are still the ones the reader defined
            # (the README's own `order_processing`, not the example's of the same name).
            scope = {**namespace, **_context(block.mark[1])}
        try:
            # dont_inherit: compiled as the reader's own file would be, without this module's
            # `from __future__ import annotations` (a dataclass in a block needs real ones).
            exec(compile(block.code, block.where, "exec", dont_inherit=True), scope)
        except Exception as exc:
            pytest.fail(f"{block.where}: the block raised {type(exc).__name__}: {exc}")


def _run_with_pytest(block: Block, tmp_path: Path) -> None:
    context = block.mark[1] if block.mark and block.mark[0] == "context" else None
    prelude = ""
    if context is not None:
        prelude = textwrap.dedent(
            f"""
            from awf_sim.flow import load_flow as _load_flow

            _flow = _load_flow({str(ROOT / context)!r})
            globals().update({{k: v for k, v in vars(_flow.module).items() if k[:2] != "__"}})
            params = next(w for w in _flow.workflows.values() if w.examples).examples[0]
            """
        )
    test_file = tmp_path / f"test_readme_block_{block.line}.py"
    test_file.write_text(prelude + "\n" + block.code, encoding="utf-8")
    env = _env()
    env["PYTHONPATH"] = str(ROOT / "examples")  # `from order_processing import ...` works
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(test_file)],
        cwd=ROOT,  # as a reader runs it: paths like examples/order_processing.py resolve
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, f"{block.where}:\n{result.stdout[-3000:]}{result.stderr[-2000:]}"


def test_the_readmes_have_blocks_to_check() -> None:
    assert len(SHELL) > 10
    assert PYTHON_FILES
    # every skipped shell command names its reason (the rules above or a marker)
    for block, command, _ in SHELL:
        if _runnable(command) is None:
            assert _reason(command) or "&&" in command, f"{block.where}: {command}"
