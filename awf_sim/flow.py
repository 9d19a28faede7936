"""Loading a flow file: the Python file that defines a user's domains and workflows.

```python
from awf_sim.flow import load_flow

flow = load_flow("examples/order_processing.py")
workflow = flow.pick("order-processing")
sim = Simulator(world=flow.world)
```

A flow file may declare `DATABASE`, `HTTP` and `AI` at module level: they make up the
`World` its workflows run in under `awf-sim run`, `awf-sim chaos` and `awf-deploy push`.
Every failure to load is a FlowError with one line that names the file, the problem and the
fix; the CLIs print it and exit 2.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import math
import os
import signal
import sys
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from awf_sim.dsl._domain import Domain
from awf_sim.dsl._errors import DefinitionError
from awf_sim.dsl._identity import canonical
from awf_sim.dsl._workflow import Workflow
from awf_sim.engine import World
from awf_sim.engine._world import check_db, check_http
from awf_sim.errors import FlowError
from awf_sim.sdk import install_workers_stand_in

# ai_provider, checked_example and error_line serve awf itself; they are not public API.
__all__ = ["FlowError", "FlowFile", "load_flow", "parse_input", "parse_json"]


@dataclass(frozen=True)
class FlowFile:
    """A loaded flow file: its module, its workflows by name, and the world it declares."""

    path: str
    module: ModuleType
    workflows: Mapping[str, Workflow]
    database: Any  # the module's DATABASE (a Database spec) or None
    http: Any = None  # the module's HTTP: what ctx.http talks to in the simulator (a mock)
    ai: Any = None  # the module's AI: the ctx.ai provider (default: deterministic)

    @property
    def world(self) -> World:
        """The flow's DATABASE, HTTP and AI as a World (seed 0, profile production)."""
        return World(db=self.database, ai=self.ai, http=self.http)

    def pick(self, name: str | None) -> Workflow:
        """The workflow named `name`, or the only one when `name` is None."""
        if name is not None:
            try:
                return self.workflows[name]
            except KeyError:
                known = ", ".join(self.workflows)
                raise FlowError(
                    f"{self.path}: no workflow named {name!r}; this file defines: {known}"
                ) from None
        if len(self.workflows) > 1:
            known = ", ".join(self.workflows)
            raise FlowError(
                f"{self.path} defines several workflows ({known}); choose one with --workflow NAME"
            )
        return next(iter(self.workflows.values()))


def load_flow(path: str | os.PathLike[str]) -> FlowFile:
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FlowError(f"{path}: no such file; pass the path of a flow file (a .py file)")
    if os.path.isdir(path) or not path.endswith(".py"):
        raise FlowError(f"{path}: not a Python file; pass the path of a flow file (a .py file)")
    abspath = os.path.abspath(path)
    # A stable module name per file, so loading the same file twice replaces it cleanly.
    digest = hashlib.sha256(abspath.encode()).hexdigest()[:8]
    stem = os.path.splitext(os.path.basename(path))[0]
    mod_name = f"awf_flow_{stem if stem.isidentifier() else 'file'}_{digest}"
    spec = importlib.util.spec_from_file_location(mod_name, abspath)
    if spec is None or spec.loader is None:
        raise FlowError(f"{path}: cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    install_workers_stand_in()  # a flow may import Cloudflare's SDK (`workers`)
    folder = os.path.dirname(abspath)
    added = folder not in sys.path
    if added:
        sys.path.insert(0, folder)  # so a flow file can import its sibling modules
    sys.modules[mod_name] = module
    try:
        with _import_deadline():
            spec.loader.exec_module(module)
    except _ImportTimeout as exc:
        del sys.modules[mod_name]
        line = _user_line(exc, abspath)
        raise FlowError(
            f"{path}{line}: importing it did not finish within {IMPORT_DEADLINE_S:g} s (a loop "
            "or a wait at module level?); move that work into a step or a function"
        ) from None
    except SyntaxError as exc:
        del sys.modules[mod_name]
        raise FlowError(f"{path}:{exc.lineno}: syntax error: {exc.msg}") from None
    except (Exception, SystemExit, KeyboardInterrupt) as exc:
        # A flow file that calls sys.exit() on import must not end the command judging it.
        del sys.modules[mod_name]
        line = _user_line(exc, abspath)
        raise FlowError(
            f"{path}{line}: importing it failed with {type(exc).__name__}: {exc}"
        ) from None
    finally:
        if added:
            sys.path.remove(folder)
    workflows: dict[str, Workflow] = {}
    for value in vars(module).values():
        if isinstance(value, Workflow) and value.fn is not None:
            twin = workflows.setdefault(value.name, value)
            if twin is not value:
                # Cloudflare binds a workflow by its name: one of the two would never run.
                raise FlowError(
                    f"{path}: defines two workflows named {value.name!r} ("
                    f"{_fn_name(twin)} and {_fn_name(value)}); give each its own name"
                )
    if not workflows:
        classes = [
            name
            for name, value in vars(module).items()
            if isinstance(value, type)
            and value.__module__ == mod_name
            and callable(getattr(value, "run", None))
        ]
        if classes:  # written for Cloudflare's Python API: the simulator runs it, not the CLI
            raise FlowError(
                f"{path}: defines no @Workflow, only the class {classes[0]} with run(event, "
                "step) (Cloudflare's Python API); awf-sim's commands take @Workflow functions: "
                f"run the class in a test with Simulator().create({classes[0]}, params)"
            )
        raise FlowError(
            f"{path}: defines no workflow; add one with @Workflow('name') above "
            "`async def fn(wf, params)`"
        )
    database = getattr(module, "DATABASE", None)
    http = getattr(module, "HTTP", None)
    if isinstance(http, Domain):
        http = None  # a Domain named HTTP, not what ctx.http reaches (as with AI)
    try:
        check_db(database, path, "DATABASE")
        check_http(http, path, "HTTP")
    except DefinitionError as exc:
        raise FlowError(str(exc)) from None
    return FlowFile(
        path,
        module,
        workflows,
        database,
        http,
        ai_provider(getattr(module, "AI", None)),
    )


def _fn_name(workflow: Workflow) -> str:
    fn = workflow.fn
    code = getattr(fn, "__code__", None)
    line = f" at line {code.co_firstlineno}" if code is not None else ""
    return f"{getattr(fn, '__name__', 'its function')}{line}"


def ai_provider(value: Any) -> Any:
    """A flow file's module-level `AI` as ctx.ai's provider; None when it is not one (say, a
    Domain named AI). Shared with test workflows, which read the flow's module themselves."""
    return value if hasattr(value, "generate") else None


def _user_line(exc: BaseException, abspath: str) -> str:
    tb = exc.__traceback__
    line = None
    while tb is not None:
        if os.path.abspath(tb.tb_frame.f_code.co_filename) == abspath:
            line = tb.tb_lineno
        tb = tb.tb_next
    return f":{line}" if line is not None else ""


def error_line(exc: BaseException) -> str:
    """`Name: message (notes)`: an awf error as the CLIs print it on one line. The name is the
    nearest public class (never a private `_Name`), and the notes the engine attaches (the
    hint beside Cloudflare's own text, such as what an instance id may hold) are kept."""
    name = next(c.__name__ for c in type(exc).__mro__ if not c.__name__.startswith("_"))
    notes = [str(n) for n in getattr(exc, "__notes__", ()) if str(n).strip()]
    text = f"{name}: {exc}"
    return f"{text} ({'; '.join(notes)})" if notes else text


def parse_input(workflow: Workflow, input_json: str | None, input_file: str | None) -> Any:
    """The params for a run: --input, --input-file, else the workflow's first example."""
    if input_json is not None and input_file is not None:
        raise FlowError("pass either --input or --input-file, not both")
    if input_file is not None:
        what = f"--input-file {input_file}"
        try:
            if input_file == "-":  # the usual spelling of standard input
                raw = sys.stdin.buffer.read(MAX_INPUT_BYTES + 1)
            else:
                with open(input_file, "rb") as f:
                    raw = f.read(MAX_INPUT_BYTES + 1)
        except OSError as exc:
            raise FlowError(f"--input-file {input_file}: {exc.strerror or exc}") from None
        if len(raw) > MAX_INPUT_BYTES:
            raise FlowError(f"--input-file {input_file} is larger than {MAX_INPUT_BYTES} bytes")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise FlowError(
                f"--input-file {input_file} is not UTF-8 (invalid byte at offset {exc.start})"
            ) from None
        return _fitting(workflow, parse_json(text.removeprefix("\ufeff"), what), what)
    if input_json is not None:
        return _fitting(workflow, parse_json(input_json, "--input"), "--input")
    if workflow.examples:
        return checked_example(workflow, 1)
    return {}


def checked_example(workflow: Workflow, number: int) -> Any:
    """Example `number` (1-based) of `workflow`, once it is JSON and fits the workflow's input
    type; else a FlowError that says which example of which workflow is wrong and where."""
    params = workflow.examples[number - 1]
    try:
        canonical(params, root="params")
        workflow.check_params(params)
    except (TypeError, ValueError) as exc:  # SerializationError, a model's ValidationError
        fn = workflow.fn
        code = getattr(fn, "__code__", None)
        where = f"{code.co_filename}:{code.co_firstlineno}: " if code is not None else ""
        raise FlowError(
            f"{where}example {number} of workflow {workflow.name!r} is not a valid input: {exc}"
        ) from None
    return params


def _fitting(workflow: Workflow, params: Any, what: str) -> Any:
    """`params` as given, once the workflow's signature accepts them: input that cannot start
    the workflow is the command's bad input, named field by field, not an instance that
    errors at its first line."""
    try:
        workflow.check_params(params)
    except (TypeError, ValueError) as exc:  # SerializationError, a model's ValidationError
        raise FlowError(f"{what} does not fit the input type of {workflow.name!r}: {exc}") from None
    return params


MAX_INPUT_BYTES = 16 * 1024 * 1024

# Real seconds a flow file's import may take. Without a bound, a `while True:` or a long
# sleep at module level hung `awf-sim run`, chaos and `awf-deploy push` before any of their
# own budgets (which count handler attempts) began.
IMPORT_DEADLINE_S = 60.0


class _ImportTimeout(BaseException):
    """Raised into a flow's import at its deadline; a BaseException, past `except Exception`."""


@contextlib.contextmanager
def _import_deadline() -> Iterator[None]:
    """IMPORT_DEADLINE_S on the import, by SIGALRM: on the main thread, and only when nobody
    else owns the real-time timer (a test's own deadline, an application's alarm)."""
    usable = (
        threading.current_thread() is threading.main_thread()
        and hasattr(signal, "setitimer")
        and signal.getsignal(signal.SIGALRM) in (signal.SIG_DFL, signal.SIG_IGN, None)
        and signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    )
    if not usable:
        yield
        return

    def expire(_signum: int, _frame: Any) -> None:
        raise _ImportTimeout

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, IMPORT_DEADLINE_S)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


MAX_INPUT_DEPTH = 100


def parse_json(text: str, what: str) -> Any:
    """JSON given on a command line or in a file; `what` names it in the one-line error.

    Bounded: at most MAX_INPUT_BYTES, nested at most MAX_INPUT_DEPTH levels, and every string
    encodable as UTF-8 (a lone surrogate such as "\\ud800" is refused: nothing downstream
    could store or send it)."""
    if len(text) > MAX_INPUT_BYTES:
        raise FlowError(f"{what} is larger than {MAX_INPUT_BYTES} bytes")
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise FlowError(
            f"{what} is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}); "
            """pass an object such as '{"id": "o-1"}'"""
        ) from None
    except RecursionError:
        value = _TOO_DEEP
    problem = "too deep" if value is _TOO_DEEP else _json_problem(value)
    if problem == "too deep":
        raise FlowError(f"{what} nests deeper than {MAX_INPUT_DEPTH} levels")
    if problem is not None:
        raise FlowError(f"{what} {problem}")
    return value


_TOO_DEEP = object()


def _json_problem(value: Any) -> str | None:
    """Why a parsed JSON value is not acceptable input, or None (iterative: no recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            strings = [item]
            children: list[Any] = []
        elif isinstance(item, dict):
            strings = list(item)
            children = list(item.values())
        elif isinstance(item, list):
            strings = []
            children = item
        elif isinstance(item, float) and not math.isfinite(item):
            return f"contains {item!r}, which JSON cannot hold (write a finite number)"
        else:
            continue
        if (
            children
            and depth >= MAX_INPUT_DEPTH
            and any(isinstance(child, dict | list) for child in children)
        ):
            return "too deep"
        for string in strings:
            try:
                string.encode("utf-8")
            except UnicodeEncodeError as exc:
                bad = string[exc.start]
                return f"contains a lone surrogate (\\u{ord(bad):04x}), which is not valid Unicode"
        stack.extend((child, depth + 1) for child in children)
    return None
