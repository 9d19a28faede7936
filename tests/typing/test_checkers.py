"""The typed DSL under both type checkers, as users run them: mypy --strict and pyright.

The typed example checks clean, and each deliberate mistake in mistakes.py gives exactly the
error pinned here, on its own line (and nothing else does): a checker that stopped inferring
step results, or a change that loosened the typed call to `Any`, fails this test.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "order_processing_typed.py"
MISTAKES = Path(__file__).with_name("mistakes.py")

# What each marked line of mistakes.py gets: (checker, a fragment of its message).
PINNED: dict[str, list[tuple[str, str]]] = {
    "reveal-stock": [
        ("mypy", 'Revealed type is "examples.order_processing_typed.Stock"'),
        ("pyright", 'Type of "stock" is "Stock"'),
    ],
    "wrong-arg": [
        ("mypy", 'has incompatible type "Charge"; expected "Hold"'),
        ("pyright", '"Charge" is not assignable to "Hold"'),
    ],
    "misspelt-method": [
        ("mypy", '"Inventory" has no attribute "chek"'),
        ("pyright", 'Cannot access attribute "chek" for class "Inventory"'),
    ],
    "wrong-context": [
        ("mypy", 'has incompatible type "Order"; expected "Product"'),
        ("pyright", '"Order" is not assignable to "Product"'),
    ],
    "wrong-arg-2": [
        ("mypy", 'has incompatible type "Hold"; expected "Charge"'),
        ("pyright", '"Hold" is not assignable to "Charge"'),
    ],
    # A test workflow gives the declared output type from arun() and output, as from run().
    "reveal-arun": [
        ("mypy", 'Revealed type is "examples.order_processing_typed.OrderResult"'),
        ("pyright", 'Type of "await test.arun({})" is "OrderResult"'),
    ],
    "reveal-output": [
        ("mypy", 'Revealed type is "examples.order_processing_typed.OrderResult | None"'),
        ("pyright", 'Type of "test.output" is "OrderResult | None"'),
    ],
    "reveal-with": [
        ("mypy", 'Revealed type is "examples.order_processing_typed.OrderResult"'),
        ("pyright", 'Type of "managed.run({})" is "OrderResult"'),
    ],
    "reveal-fixture": [
        ("mypy", 'Revealed type is "examples.order_processing_typed.OrderResult"'),
        ("pyright", 'is "OrderResult"'),
    ],
    # A step never awaited never runs: both checkers say so, as for an unused coroutine.
    "missing-await": [
        ("mypy", 'Value of type "Coroutine[Any, Any, Stock]" must be used'),
        ("pyright", 'Result of async function call is not used; use "await"'),
    ],
    # wf.sleep and wf.wait_for hand on the runtime's coroutine: the same report.
    "missing-await-sleep": [
        ("mypy", 'Value of type "Coroutine[Any, Any, None]" must be used'),
        ("pyright", 'Result of async function call is not used; use "await"'),
    ],
    "missing-await-wait": [
        ("mypy", 'Value of type "Coroutine[Any, Any, Any]" must be used'),
        ("pyright", 'Result of async function call is not used; use "await"'),
    ],
    # wf.do and wf.state hand back the checkpoint's JSON, typed as what was given.
    "reveal-do": [
        ("mypy", 'Revealed type is "dict[str, int]"'),
        ("pyright", 'Type of "await wf.do("count", counts)" is "dict[str, int]"'),
    ],
    "reveal-do-sync": [
        ("mypy", 'Revealed type is "str"'),
        ("pyright", 'is "str"'),
    ],
    "do-dataclass": [
        ("mypy", 'Value of type variable "_J" of "do" of "WorkflowApi" cannot be "Stock"'),
        ("pyright", 'No overloads for "do" match the provided arguments'),
    ],
    "reveal-state": [
        ("mypy", 'Revealed type is "dict[str, int]"'),
        ("pyright", 'Type of "state.current" is "dict[str, int]"'),
    ],
    "state-update": [
        ("mypy", 'Dict entry 0 has incompatible type "str": "str"; expected "str": "int"'),
        ("pyright", 'cannot be assigned to parameter "value" of type "dict[str, int]"'),
    ],
    # Simulator.create of a Workflow[In, Out] gives an Instance[Out].
    "reveal-instance-output": [
        ("mypy", 'Revealed type is "examples.order_processing_typed.OrderResult | None"'),
        ("pyright", 'Type of "instance.output()" is "OrderResult | None"'),
    ],
    # The modifier's selectors and errors are typed: a misspelt key or a wrong type is found.
    "selector-key": [
        ("mypy", 'expected "str | SelectorDict | StepSelector"'),
        ("pyright", 'parameter "step" of type "Selector" in function "mock_step_result"'),
    ],
    "error-type": [
        ("mypy", 'Argument 2 to "mock_step_error" of "Modifier" has incompatible type "int"'),
        ("pyright", 'parameter "error" of type "ErrorSpec" in function "mock_step_error"'),
    ],
    # Workflow(name, fn), the form without a decorator, is typed from fn too.
    "reveal-constructor": [
        (
            "mypy",
            'Revealed type is "awf_sim.dsl._workflow.Workflow[examples.order_processing_typed.'
            'Order, examples.order_processing_typed.OrderResult]"',
        ),
        ("pyright", 'is "Workflow[Order, OrderResult]"'),
    ],
    "constructor-out": [
        ("mypy", 'expression has type "OrderResult", variable has type "int"'),
        ("pyright", 'Type "OrderResult" is not assignable to declared type "int"'),
    ],
    "result-is-typed": [
        ("mypy", 'Unsupported operand types for + ("int" and "str")'),
        ("pyright", 'Operator "+" not supported for types "int" and "Literal[\'1\']"'),
    ],
}


def _marks() -> dict[int, str]:
    marks = {}
    for number, line in enumerate(MISTAKES.read_text().splitlines(), 1):
        found = re.search(r"# E: ([\w-]+)", line)
        if found:
            marks[number] = found.group(1)
    return marks


def _mypy(path: Path, tmp_path: Path) -> list[tuple[int, str]]:
    # No project config: --strict alone, and no plugin (the typed DSL needs none).
    config = tmp_path / "mypy.ini"
    config.write_text("[mypy]\n")
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--config-file",
            str(config),
            "--no-incremental",
            "--show-error-codes",
            "--hide-error-context",
            "--no-error-summary",
            str(path),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    out = []
    for line in run.stdout.splitlines():
        found = re.match(r".*?:(\d+): (error|note): (.*)", line)
        if found:
            out.append((int(found.group(1)), found.group(3)))
    assert run.returncode in (0, 1), run.stdout + run.stderr
    return out


def _pyright(path: Path) -> list[tuple[int, str]]:
    exe = shutil.which("pyright", path=str(Path(sys.executable).parent)) or shutil.which("pyright")
    if exe is None:
        pytest.fail("pyright is not installed: pip install -e '.[dev]' (it is in the dev extra)")
    run = subprocess.run(
        [exe, "--outputjson", "--pythonpath", sys.executable, str(path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    try:
        report = json.loads(run.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"pyright did not run: {run.stdout[-2000:]}{run.stderr[-2000:]}")
    return [
        (d["range"]["start"]["line"] + 1, d["message"].replace("\n", " "))
        for d in report["generalDiagnostics"]
        if d["severity"] in ("error", "information")
    ]


def test_the_typed_example_checks_clean_under_mypy_strict(tmp_path: Path) -> None:
    assert _mypy(EXAMPLE, tmp_path) == []


def test_the_typed_example_checks_clean_under_pyright() -> None:
    assert _pyright(EXAMPLE) == []


@pytest.mark.parametrize("checker", ["mypy", "pyright"])
def test_each_mistake_gives_exactly_its_pinned_error(checker: str, tmp_path: Path) -> None:
    found = _mypy(MISTAKES, tmp_path) if checker == "mypy" else _pyright(MISTAKES)
    marks = _marks()
    assert sorted(set(marks.values())) == sorted(PINNED)
    unexpected = [(line, msg) for line, msg in found if line not in marks]
    assert unexpected == []
    for line, mark in marks.items():
        messages = [msg for at, msg in found if at == line]
        wanted = [frag for who, frag in PINNED[mark] if who == checker]
        for fragment in wanted:
            assert any(fragment in m for m in messages), (mark, checker, messages)
