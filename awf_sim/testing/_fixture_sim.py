"""The `sim` fixture's Simulator: it runs in the world of the flow file it is given.

`awf-sim run flow.py` and `create_test_workflow(workflow)` give handlers the flow file's
`DATABASE` (ctx.db), `HTTP` (ctx.http) and `AI` (ctx.ai). The fixture is made before the test
names any workflow, so a plain `Simulator()` gave `def test_x(sim)` an empty ctx.db: the same
flow passed under `awf-sim run` and failed with "no such table" in the test. This one takes
each from the flow file of the workflows it creates or registers, when it is first declared.
"""

from __future__ import annotations

from typing import Any

from awf_sim.dsl._errors import DefinitionError
from awf_sim.engine._simulator import Simulator
from awf_sim.engine._world import check_db, check_http
from awf_sim.testing._workflow import flow_defaults

__all__ = ["FixtureSimulator"]

# What each is written as in a flow file, the Services slot of its spec, and the one of what
# is made from it on first use (after which a spec set there would be ignored).
_KINDS = (
    ("db", "DATABASE", "db_spec", "_db"),
    ("http", "HTTP", "http_spec", "_http_client"),
    ("ai", "AI", "ai_spec", "_ai_client"),
)


def _module_of(target: Any) -> str:
    scope = getattr(target, "_scope", None)
    if scope is not None:
        return str(scope.get("__name__", "?"))
    return str(getattr(target, "__module__", "?"))


class FixtureSimulator(Simulator):
    """A Simulator whose ctx.db, ctx.http and ctx.ai are the `DATABASE`, `HTTP` and `AI` of the
    flow file of the workflows it creates or registers (none declared: an empty database,
    the deterministic AI, no HTTP mock, as for `Simulator()`). Two flow files that declare
    different ones cannot share it."""

    _adopted: dict[str, tuple[Any, str]] | None = None  # kind -> (value, module declaring it)

    def _register(self, target: Any) -> str:
        name = super()._register(target)  # a target that is no workflow is refused first
        self._adopt(target)
        return name

    def _adopt(self, target: Any) -> None:
        declared = flow_defaults(target)
        if all(v is None for v in declared.values()):
            return
        module = _module_of(target)
        check_db(declared["db"], module, "DATABASE")
        check_http(declared["http"], module, "HTTP")
        adopted = self._adopted if self._adopted is not None else {}
        services = self._services
        for kind, written, spec_slot, made_slot in _KINDS:
            theirs = declared[kind]
            if theirs is None:
                continue
            if kind in adopted:
                mine, first = adopted[kind]
                if mine is not theirs:
                    raise DefinitionError(
                        f"sim fixture: {module} declares another {written} than {first}, "
                        f"whose workflow this sim ran first; one Simulator has one {written}: "
                        f"run {module}'s workflows on their own "
                        "Simulator(world=load_flow(path).world) or with create_test_workflow"
                    )
                continue
            if getattr(services, made_slot) is not None:
                what = "the database (sim.db, ctx.db)" if kind == "db" else f"ctx.{kind}"
                raise DefinitionError(
                    f"sim fixture: {what} was already in use when a workflow of {module} was "
                    f"created, so it cannot be that flow's {written}; create (or sim.register) "
                    f"that workflow first{', then read or seed sim.db' if kind == 'db' else ''}"
                )
            setattr(services, spec_slot, theirs)
            adopted[kind] = (theirs, module)
        self._adopted = adopted
