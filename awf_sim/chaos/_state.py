"""State kept in the process: a handler or the workflow body that changes a module-level
variable (a list it appends to, a counter it bumps) carries state from one run to the next.

Chaos cannot see it by comparing runs with the fault-free one: every run of one campaign
shares the process, so such a value differs between the fault-free run and the probe run and
is taken for clock- or seed-bound (volatile) and not compared. So the module-level values of
the flow's modules are fingerprinted around the fault-free run; when the run changed one, a
*twin* run (the fault-free run again, on the same input, clock and seed) shows whether the
outcome depends on it. On Cloudflare a replay or a retry may run in another isolate, where
that state is gone, and a step run twice changes it twice: a `determinism` violation naming
the variable and the handlers that use it.
"""

from __future__ import annotations

import array
import collections
import hashlib
import itertools
import os
import sys
import types
from collections.abc import Iterable
from typing import Any

from awf_sim.chaos._diff import handler_site, show, workflow_site
from awf_sim.chaos._model import Observation, Violation
from awf_sim.dsl._domain import Domain
from awf_sim.dsl._errors import DefinitionError
from awf_sim.dsl._workflow import Workflow

__all__ = ["Fingerprint", "fingerprint", "module_state_violation"]

# Where a value is kept: (module, kind, name), kind one of "module" (a module-level variable),
# "class" (a class attribute, "Stats.calls"), "default" (a parameter default, "f.param"),
# "closure" (a variable a function closes over, "f.var") and "environ" (os.environ).
Key = tuple[str, str, str]
Fingerprint = dict[Key, str]  # where -> digest of the value

# Values a module keeps as state, subclasses included (a Counter, a defaultdict, a namedtuple),
# and an itertools.count, whose repr is where it has got to. Functions, classes, modules and
# objects of other libraries are not: an object of the flow's own classes is (`_state_text`).
_STATE_TYPES = (
    list,
    dict,
    set,
    bytearray,
    int,
    float,
    str,
    bytes,
    tuple,
    frozenset,
    collections.deque,
    array.array,
    itertools.count,
)
_MAX_REPR = 100_000


def _state_text(value: object, own: frozenset[str]) -> str | None:
    """What a module-level value holds, as text to fingerprint; None for what is not state."""
    if isinstance(value, _STATE_TYPES):
        return repr(value)
    kind = type(value)
    if kind.__module__ not in own or isinstance(value, type | types.FunctionType):
        return None
    # An object of a class the flow defines (`TALLY = Tally()`): its attributes are its state,
    # whatever its repr shows (the default one shows only the address).
    fields = dict(getattr(value, "__dict__", {}))
    for cls in kind.__mro__:
        slots = cls.__dict__.get("__slots__", ())
        for slot in (slots,) if isinstance(slots, str) else slots:
            if not slot.startswith("__") and slot not in fields and hasattr(value, slot):
                fields[slot] = getattr(value, slot)
    return repr(sorted(fields.items(), key=lambda item: item[0])) if fields else None


def _domains(workflow: Workflow) -> list[Domain]:
    """The workflow's own domains and those its module defines."""
    domains: list[Any] = list((workflow._domains or {}).values())
    module = sys.modules.get(getattr(workflow.fn, "__module__", None) or "")
    if module is not None:
        domains += [v for v in vars(module).values() if isinstance(v, Domain)]
    return domains


def _modules(workflow: Workflow) -> list[types.ModuleType]:
    """The flow's modules: the workflow's, its handlers', and the user's own modules they
    import (`from helpers import bump`, transitively), found beside them on disk."""
    names = {getattr(workflow.fn, "__module__", None)}
    for domain in _domains(workflow):
        for spec in domain.methods.values():
            names.add(getattr(spec.handler, "__module__", None))
    found = {n: m for n in names if n and (m := sys.modules.get(n)) is not None}
    roots = {os.path.dirname(os.path.realpath(f)) for m in found.values() if (f := _file(m))}
    queue = list(found.values())
    while queue:
        for value in list(vars(queue.pop()).values()):
            if isinstance(value, types.ModuleType):
                module: types.ModuleType | None = value
            elif isinstance(value, type | types.FunctionType):
                module = sys.modules.get(getattr(value, "__module__", None) or "")
            else:
                continue
            if module is None or module.__name__ in found or not _own_code(module, roots):
                continue
            found[module.__name__] = module
            queue.append(module)
    return [found[n] for n in sorted(found)]


def _file(module: types.ModuleType) -> str | None:
    file = getattr(module, "__file__", None)
    return file if isinstance(file, str) else None


def _own_code(module: types.ModuleType, roots: set[str]) -> bool:
    """Whether `module` is the user's own code: a file below a flow module's folder, not an
    installed package (a virtualenv may live in that folder too) and not awf itself."""
    file = _file(module)
    if file is None or module.__name__.split(".")[0] in ("awf_sim", "awf_deploy"):
        return False
    path = os.path.realpath(file)
    if "site-packages" in path or "dist-packages" in path:
        return False
    return any(path.startswith(root + os.sep) for root in roots)


def _functions(workflow: Workflow, modules: list[types.ModuleType]) -> list[types.FunctionType]:
    """The flow's functions: its handlers (a factory's too), its workflow function, and the
    functions its modules define."""
    own = {m.__name__ for m in modules}
    found: dict[int, types.FunctionType] = {}
    candidates: list[Any] = [workflow.fn]
    for domain in _domains(workflow):
        candidates += [spec.handler for spec in domain.methods.values()]
    for module in modules:
        candidates += [v for v in vars(module).values() if getattr(v, "__module__", None) in own]
    for fn in candidates:
        if isinstance(fn, types.FunctionType):
            found.setdefault(id(fn), fn)
    return list(found.values())


def _held(
    workflow: Workflow, modules: list[types.ModuleType], world: set[int]
) -> Iterable[tuple[Key, Any]]:
    """Every place the flow can keep a value between runs, with the value there; none of
    what `world` holds (the ids of the flow's DATABASE, HTTP and AI, and their classes)."""
    own = frozenset(m.__name__ for m in modules)
    for module in modules:
        for name, value in list(vars(module).items()):
            if name.startswith("__"):
                continue
            if id(value) in world:
                continue
            yield (module.__name__, "module", name), value
            if isinstance(value, type) and value.__module__ in own:
                # `class Stats: calls = 0`, bumped as `Stats.calls += 1`.
                for attr, held in list(vars(value).items()):
                    if not attr.startswith("__"):
                        yield (module.__name__, "class", f"{name}.{attr}"), held
    for fn in _functions(workflow, modules):
        if id(fn) in world:  # a fake service written as a function, its defaults and closure
            continue
        where = fn.__module__
        code = fn.__code__
        # A mutable default (`def f(x, _seen=[])`) lives as long as the function.
        defaults = fn.__defaults__ or ()
        positional = code.co_varnames[: code.co_argcount]
        for param, held in zip(
            positional[len(positional) - len(defaults) :], defaults, strict=True
        ):
            yield (where, "default", f"{fn.__qualname__}.{param}"), held
        for param, held in (fn.__kwdefaults__ or {}).items():
            yield (where, "default", f"{fn.__qualname__}.{param}"), held
        # A variable a handler closes over (made by a factory) lives as long as the handler.
        for var, cell in zip(code.co_freevars, fn.__closure__ or (), strict=False):
            try:
                held = cell.cell_contents
            except ValueError:  # not yet bound
                continue
            yield (where, "closure", f"{fn.__qualname__}.{var}"), held


def fingerprint(workflow: Workflow) -> Fingerprint:
    """What the flow keeps in the process: the module-level values of its modules (the
    workflow's and its handlers'), its classes' attributes, and its functions' defaults and
    closures."""
    out: Fingerprint = {}
    modules = _modules(workflow)
    own = frozenset(m.__name__ for m in modules)
    world = _world(modules)
    # Environment variables set by a step and read by a later one are state kept in the
    # process as much as a module-level dict.
    environ = ("os", "environ", "environ"), dict(os.environ)
    for key, value in (*_held(workflow, modules, world), environ):
        if id(value) in world:
            continue
        try:
            text = _state_text(value, own)
        except Exception:  # a value that cannot show itself is not compared
            continue
        if text is None:
            continue
        text = text[:_MAX_REPR]
        out[key] = hashlib.sha256(text.encode(errors="replace")).hexdigest()
    return out


# What a flow file declares as the world its handlers talk to (`awf_sim.flow`): a fake
# payment provider or mail server keeps state across runs as the real service would.
_WORLD_NAMES = ("DATABASE", "HTTP", "AI")


def _world(modules: list[types.ModuleType]) -> set[int]:
    """The objects the flow's modules declare as DATABASE, HTTP or AI (and, for a bound method,
    its object): stand-ins for services outside the process, not state kept in it."""
    out: set[int] = set()
    for module in modules:
        for name in _WORLD_NAMES:
            value = getattr(module, name, None)
            if value is None:
                continue
            owner = getattr(value, "__self__", None)
            for held in (value, owner):
                if held is not None:
                    # The object, and its class (a fake's counter as a class attribute).
                    out.update((id(held), id(type(held))))
    return out


def _users(workflow: Workflow, paths: Iterable[str], key: Key) -> list[str]:
    """The step paths whose handlers' code names the place `key` says (a module-level
    variable also through a function of its module that the handler calls)."""
    module, kind, name = key
    holder = name.rpartition(".")[0]
    out = []
    for path in paths:
        domain, *methods = path.split(".")
        try:
            specs = [workflow.resolve_domain(domain).spec(m) for m in methods]
        except DefinitionError:
            continue
        for spec in specs:
            code = getattr(spec.handler, "__code__", None)
            if kind == "environ":  # os.environ[...] or os.getenv/putenv
                hit = any(_names(code, n) for n in ("environ", "putenv", "getenv"))
            elif kind == "module":
                hit = _names(code, name) or _calls_into(spec.handler, module, name)
            elif kind == "class":
                hit = _names(code, holder)
            else:  # a default or a closure: of this very handler
                hit = getattr(spec.handler, "__qualname__", None) == holder
            if hit:
                out.append(path)
                break
    return out


def _calls_into(handler: Any, module: str, name: str) -> bool:
    """Whether `handler` names a function of `module` whose code names `name` (a handler
    calling `bump()` of helpers.py, which changes helpers.COUNTS)."""
    code = getattr(handler, "__code__", None)
    space = getattr(handler, "__globals__", {})
    if code is None:
        return False
    return any(
        isinstance(fn, types.FunctionType) and fn.__module__ == module and _names(fn.__code__, name)
        for fn in (space.get(used) for used in code.co_names)
    )


def _names(code: types.CodeType | None, name: str) -> bool:
    if code is None:
        return False
    return name in code.co_names or any(
        _names(c, name) for c in code.co_consts if isinstance(c, types.CodeType)
    )


def _described(key: Key) -> tuple[str, str]:
    """How a report names a place that keeps state: (short name, phrase)."""
    module, kind, name = key
    file = getattr(sys.modules.get(module), "__file__", None)
    where = f" ({os.path.basename(file)})" if file else f" ({module})"
    holder, _, leaf = name.rpartition(".")
    if kind == "environ":
        return "os.environ", "the process's environment variables (os.environ)"
    if kind == "class":
        return name + where, f"the class attribute {name}{where}"
    if kind == "default":
        return name + where, f"the default value of {leaf} in {holder}(){where}"
    if kind == "closure":
        return name + where, f"the variable {leaf} that {holder}() closes over{where}"
    variable = f"{name}{where}" if file else f"{module}.{name}"
    return variable, f"the module-level variable {variable}"


def module_state_violation(
    workflow: Workflow,
    before: Fingerprint,
    after: Fingerprint,
    base: Observation,
    twin: Observation,
    paths: Iterable[str],
) -> Violation | None:
    """The violation when the fault-free run changed module-level state and a twin of it
    ended otherwise: the outcome depends on state kept in the process."""
    changed = sorted(k for k in after if before.get(k) != after[k])
    if not changed:
        return None
    diff: list[str] = []
    if twin.status != base.status:
        diff.append(f"status: first run {base.status}, same run again {twin.status}")
    elif twin.error != base.error:
        diff.append(f"error: first run {show(base.error)}, same run again {show(twin.error)}")
    elif twin.output != base.output:
        diff.append(f"output: first run {show(base.output)}, same run again {show(twin.output)}")
    if twin.digest != base.digest:
        diff.append("the database ended otherwise the second time")
    if not diff:
        return None
    key = changed[0]
    users = _users(workflow, paths, key)
    variable, phrase = _described(key)
    by = f"{users[0]} changes" if users else "the run changed"
    diff.insert(0, f"{variable} changed during the fault-free run")
    where = (handler_site(workflow, users[0]) if users else None) or workflow_site(workflow)
    return Violation(
        "determinism",
        users[0] if users else variable,
        f"{by} {phrase}, and the same run made again (same input, clock and seed) ended "
        "otherwise: the outcome depends on state kept in the process",
        diff,
        f"{variable} lives in one process: Cloudflare may run a replay or a retry in another "
        "isolate, where it starts afresh, and "
        + (
            "a step that runs twice (at-least-once) changes it twice. "
            if users
            else "the workflow function runs again from the top on every replay, so it "
            "changes it again each time and reads another value than the first run did. "
        )
        + "Keep such state in ctx.db, or return it from a step and pass it on, not in a "
        "module-level variable, a class attribute, a default value or a closure.",
        where,
    )
