"""The `sim` fixture runs a flow in the world its flow file declares (DATABASE, HTTP, AI), as
`awf-sim run` and `create_test_workflow` do.

It used to be a plain `Simulator(seed=...)`: a flow whose handlers read the flow's DATABASE
passed under `awf-sim run` and failed in `def test_x(sim)` with "no such table".
"""

from __future__ import annotations

from pathlib import Path

import pytest

from awf_sim.engine import _ambient

pytest_plugins = ["pytester"]

STOCK = """
from awf_sim import Domain, Workflow
from awf_sim.testing import Database

DATABASE = Database(
    "CREATE TABLE stock (sku TEXT PRIMARY KEY, qty INTEGER)",
    {"stock": [{"sku": "ABC", "qty": 3}]},
)

async def count(item, args, ctx):
    row = await ctx.db.query_one("SELECT qty FROM stock WHERE sku = ?", [item["sku"]])
    return {"qty": row["qty"]}

WorldStock = Domain("WorldStock", {"count": count})

async def check(wf, item):
    return await wf.WorldStock(item).count()

CHECK = Workflow("world-check", check, domains=[WorldStock])
"""

OTHER = """
from awf_sim import Domain, Workflow
from awf_sim.testing import Database

DATABASE = Database("CREATE TABLE other (x INTEGER)")

async def nothing(item, args, ctx):
    return {}

WorldOther = Domain("WorldOther", {"nothing": nothing})

async def other(wf, item):
    return await wf.WorldOther(item).nothing()

OTHER = Workflow("world-other", other, domains=[WorldOther])
"""

# An HTTP mock and no DATABASE.
PLAIN = """
import httpx
from awf_sim import Domain, Workflow

def HTTP(request):
    return httpx.Response(200, json={"ok": True})

async def echo(item, args, ctx):
    return item

WorldEcho = Domain("WorldEcho", {"echo": echo})

async def plain(wf, item):
    return await wf.WorldEcho(item).echo()

PLAIN = Workflow("world-plain", plain, domains=[WorldEcho])
"""

# A Domain named HTTP is the flow's own domain: awf-sim run leaves ctx.http alone for it.
HTTP_DOMAIN = """
from awf_sim import Domain, Workflow

async def get(item, args, ctx):
    return {"got": item["n"]}

HTTP = Domain("HTTP", {"get": get})

async def fetch(wf, item):
    return await wf.HTTP(item).get()

FETCH = Workflow("world-fetch", fetch, domains=[HTTP])
"""


@pytest.fixture(scope="module", autouse=True)
def _clock_installed_outside() -> None:
    _ambient._install()  # see tests/testing/test_plugin.py


@pytest.fixture(scope="session")
def flow_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("worldflow")
    (folder / "stockflow.py").write_text(STOCK)
    (folder / "otherflow.py").write_text(OTHER)
    (folder / "httpdomainflow.py").write_text(HTTP_DOMAIN)
    (folder / "plainflow.py").write_text(PLAIN)
    return folder


@pytest.fixture
def flow(pytester: pytest.Pytester, flow_dir: Path) -> pytest.Pytester:
    pytester.syspathinsert(flow_dir)
    return pytester


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest("-p", "no:hypothesispytest", *args)


def test_the_sim_fixture_gives_handlers_the_flows_database(flow: pytest.Pytester) -> None:
    flow.makepyfile(
        """
        from stockflow import CHECK

        def test_check(sim):
            inst = sim.create(CHECK, {"sku": "ABC"})
            sim.run_until_done(inst)
            assert inst.status()["output"] == {"qty": 3}, inst.status()
            assert sim.db.rows("SELECT qty FROM stock") == [{"qty": 3}]

        def test_seeded_after_create(sim):
            sim.register(CHECK)
            sim.db.rows("UPDATE stock SET qty = 9")
            inst = sim.create(CHECK, {"sku": "ABC"})
            sim.run_until_done(inst)
            assert inst.status()["output"] == {"qty": 9}

        def test_the_world_is_the_flows(sim):
            import stockflow
            assert sim.world.db is None
            sim.register(CHECK)
            assert sim.world.db is stockflow.DATABASE
        """
    )
    result = run(flow)
    result.assert_outcomes(passed=3)


def test_a_database_opened_before_the_flow_is_named_is_refused(flow: pytest.Pytester) -> None:
    flow.makepyfile(
        """
        import pytest
        from awf_sim.dsl import DefinitionError
        from stockflow import CHECK

        def test_early(sim):
            sim.db.rows("SELECT 1")
            with pytest.raises(DefinitionError, match="create .or sim.register. that workflow"):
                sim.create(CHECK, {"sku": "ABC"})
        """
    )
    run(flow).assert_outcomes(passed=1)


def test_two_flows_with_different_databases_on_one_sim_are_refused(
    flow: pytest.Pytester,
) -> None:
    flow.makepyfile(
        """
        import pytest
        from awf_sim.dsl import DefinitionError
        from stockflow import CHECK
        from otherflow import OTHER

        def test_both(sim):
            sim.create(CHECK, {"sku": "ABC"})
            with pytest.raises(DefinitionError, match="otherflow declares another DATABASE"):
                sim.create(OTHER, {})
        """
    )
    run(flow).assert_outcomes(passed=1)


def test_a_flow_that_declares_only_http_first_leaves_the_database_to_the_next(
    flow: pytest.Pytester,
) -> None:
    # Taking the world of the first flow that declared any would have left CHECK an empty
    # database: PLAIN declares only HTTP.
    flow.makepyfile(
        """
        import pytest
        from awf_sim.dsl import DefinitionError
        from plainflow import PLAIN
        from stockflow import CHECK

        def test_registered_first(sim):
            sim.register(PLAIN)
            inst = sim.create(CHECK, {"sku": "ABC"})
            sim.run_until_done(inst)
            assert inst.status()["output"] == {"qty": 3}, inst.status()

        def test_ran_first(sim):
            sim.run_until_done(sim.create(PLAIN, {"a": 1}))
            sim.db.rows("SELECT 1")  # now the empty database is in use
            with pytest.raises(DefinitionError, match="already in use when a workflow of"):
                sim.create(CHECK, {"sku": "ABC"})
        """
    )
    run(flow).assert_outcomes(passed=2)


def test_a_domain_named_http_is_not_taken_for_an_http_mock(flow: pytest.Pytester) -> None:
    # create_test_workflow handed the Domain to ctx.http and refused to run at all.
    flow.makepyfile(
        """
        from httpdomainflow import FETCH

        def test_factory(create_test_workflow):
            assert create_test_workflow(FETCH).run({"n": 2}) == {"got": 2}

        def test_sim(sim):
            inst = sim.create(FETCH, {"n": 5})
            sim.run_until_done(inst)
            assert inst.status()["output"] == {"got": 5}
        """
    )
    run(flow).assert_outcomes(passed=2)


def test_assert_durable_leaves_a_domain_named_http_to_the_flow(flow_dir: Path) -> None:
    # assert_durable and fault_plans take the flow file's world as create_test_workflow does.
    import importlib.util

    from awf_sim import assert_durable

    spec = importlib.util.spec_from_file_location(
        "httpdomainflow_direct", flow_dir / "httpdomainflow.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert_durable(module.FETCH, {"n": 1}, [{"kind": "crash-after-effect", "step": "HTTP.get"}])
