"""The `sim` fixture's Simulator: it runs in the world of the flow file it is given.

`awf-sim run flow.py` and `create_test_workflow(workflow)` give handlers the flow file's
`DATABASE` (ctx.db), `HTTP` (ctx.http) and `AI` (ctx.ai). The fixture is made before the test
names any workflow, so a plain `Simulator()` gave `def test_x(sim)` an empty ctx.db: the same
flow passed under `awf-sim run` and failed with "no such table" in the test. This one takes
them from the flow file of the first workflow it creates or registers.
"""

from __future__ import annotations

from typing import Any

from awf_sim.dsl._errors import DefinitionError
from awf_sim.engine._simulator import Simulator
from awf_sim.engine._world import check_db, check_http
from awf_sim.testing._workflow import flow_defaults

__all__ = ["FixtureSimulator"]

_KINDS = (("db", "DATABASE", "db_spec"), ("http", "HTTP", "http_spec"), ("ai", "AI", "ai_spec"))


def _module_of(target: Any) -> str:
    scope = getattr(target, "_scope", None)
    if scope is not None:
        return str(scope.get("__name__", "?"))
    return str(getattr(target, "__module__", "?"))


class FixtureSimulator(Simulator):
    """A Simulator whose ctx.db, ctx.http and ctx.ai are the `DATABASE`, `HTTP` and `AI` of the
    flow file of the first workflow it creates or registers (none declared: an empty
    database, the deterministic AI, no HTTP mock, as for `Simulator()`)."""

    _flow: tuple[str, dict[str, Any]] | None = None

    def _register(self, target: Any) -> str:
        name = super()._register(target)  # a target that is no workflow is refused first
        self._adopt(target)
        return name

    def _adopt(self, target: Any) -> None:
        declared = flow_defaults(target)
        module = _module_of(target)
        if self._flow is None:
            if all(v is None for v in declared.values()):
                return  # nothing declared: a later workflow's flow file may still declare
            services = self._services
            if declared["db"] is not None and services._db is not None:
                raise DefinitionError(
                    f"sim fixture: the database (sim.db, ctx.db) was opened before a workflow "
                    f"of {module} was created, so it cannot be that flow's DATABASE; create (or "
                    "sim.register) that workflow first, then read or seed sim.db"
                )
            check_db(declared["db"], module, "DATABASE")
            check_http(declared["http"], module, "HTTP")
            for kind, _, slot in _KINDS:
                if declared[kind] is not None:
                    setattr(services, slot, declared[kind])
            self._flow = (module, declared)
            return
        first, adopted = self._flow
        for kind, written, _ in _KINDS:
            mine, theirs = adopted[kind], declared[kind]
            if mine is not None and theirs is not None and mine is not theirs:
                raise DefinitionError(
                    f"sim fixture: {module} declares another {written} than {first}, whose "
                    f"workflow this sim ran first; one Simulator has one {written}: run "
                    f"{module}'s workflows on their own Simulator(world=load_flow(path).world) "
                    "or with create_test_workflow"
                )
