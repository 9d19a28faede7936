"""The pytest plugin, registered through the pytest11 entry point (run here with pytester)."""

from __future__ import annotations

from pathlib import Path

import pytest

from awf_sim.engine import _ambient

pytest_plugins = ["pytester"]

FLOW = """
from awf_sim import Domain, Workflow

async def charge(order, args, ctx):
    return {"charged": order["amount"]}

PlugPay = Domain("PlugPay", {
    "charge": {"handler": charge, "retries": {"limit": 1, "delay": "1 second"}},
})

async def checkout(wf, order):
    await wf.sleep("settle", "1 hour")
    return await wf.PlugPay(order).charge()

CHECKOUT = Workflow("plug-checkout", checkout, domains=[PlugPay])
"""


@pytest.fixture(scope="module", autouse=True)
def _clock_installed_outside() -> None:
    # awf installs freezegun once per process, on the first simulation. Inside an inner
    # session pytester drops the modules that session imported, and the next inner session's
    # fresh freezegun then meets the first one's FakeDate in `datetime` (a metaclass conflict):
    # this file failed on its own, and passed only after another file had run a simulation.
    _ambient._install()


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    # Hypothesis's own plugin costs most of an inner session's time and is not under test.
    return pytester.runpytest("-p", "no:hypothesispytest", *args)


@pytest.fixture(scope="session")
def flow_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # One file for every inner session: a Domain redefined from the same file and line is
    # silent, one from another file warns.
    folder = tmp_path_factory.mktemp("plugflow")
    (folder / "plugflow.py").write_text(FLOW)
    return folder


@pytest.fixture
def flow(pytester: pytest.Pytester, flow_dir: Path) -> pytest.Pytester:
    pytester.syspathinsert(flow_dir)
    return pytester


def test_the_plugin_is_registered_through_its_entry_point(pytester: pytest.Pytester) -> None:
    result = run(pytester, "--trace-config", "--co", "-q")
    result.stdout.fnmatch_lines(["*awf_sim*awf_sim/testing/_plugin.py*"])


def test_fixtures_are_available_without_import(flow: pytest.Pytester) -> None:
    flow.makepyfile(
        """
        from awf_sim import Simulator
        from plugflow import CHECKOUT

        def test_workflow(create_test_workflow):
            wf = create_test_workflow(CHECKOUT)
            wf.modifier.disable_sleeps()
            assert wf.run({"amount": 3}) == {"charged": 3}
            assert wf.steps == ["PlugPay.charge"]

        def test_sim(sim):
            assert isinstance(sim, Simulator)
            inst = sim.create(CHECKOUT, {"amount": 1})
            sim.run_until_done(inst)
            assert inst.status()["output"] == {"charged": 1}

        def test_seed(awf_seed, sim, create_test_workflow):
            assert awf_seed == sim.seed == create_test_workflow(CHECKOUT).seed == 0
        """
    )
    result = run(flow)
    result.assert_outcomes(passed=3)


def test_the_seed_option_is_in_the_header_and_used_by_the_fixtures(flow: pytest.Pytester) -> None:
    flow.makepyfile(
        """
        from plugflow import CHECKOUT

        def test_seed(awf_seed, sim, create_test_workflow):
            assert awf_seed == 7
            assert sim.seed == 7
            assert create_test_workflow(CHECKOUT).seed == 7
            assert create_test_workflow(CHECKOUT, seed=3).seed == 3
        """
    )
    result = run(flow, "--awf-seed", "7")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["awf-sim: --awf-seed=7"])


def test_a_random_seed_is_chosen_once_and_shown(flow: pytest.Pytester) -> None:
    flow.makepyfile("def test_nothing(awf_seed):\n    assert awf_seed >= 0\n")
    result = run(flow, "--awf-seed=random")
    result.assert_outcomes(passed=1)
    header = [line for line in result.outlines if line.startswith("awf-sim: --awf-seed=")]
    assert len(header) == 1
    assert header[0].removeprefix("awf-sim: --awf-seed=").isdigit()


def test_a_bad_seed_is_a_usage_error(pytester: pytest.Pytester) -> None:
    result = run(pytester, "--awf-seed", "soon")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--awf-seed*expected a whole number or 'random'*"])


def test_a_failing_property_shows_the_failing_example_only(flow: pytest.Pytester) -> None:
    # Every example Hypothesis tried (and shrank through) made a test workflow: all of them
    # used to be printed, a timeline each, in front of the one that failed.
    flow.makepyfile(
        test_property="""
        from hypothesis import given, settings, strategies as st
        from awf_sim.testing import create_test_workflow
        from plugflow import CHECKOUT

        @settings(max_examples=50, database=None, derandomize=True, deadline=None)
        @given(amount=st.integers(0, 100))
        def test_small_charges(amount):
            wf = create_test_workflow(CHECKOUT)
            assert wf.run({"amount": amount}, id=f"amount-{amount}")["charged"] < 7
        """
    )
    result = run(flow)
    result.assert_outcomes(failed=1)
    text = result.stdout.str()
    assert text.count("- awf-sim plug-checkout (seed 0) -") == 1
    result.stdout.fnmatch_lines(
        [
            "*- awf-sim plug-checkout (seed 0) -*",
            "workflow 'plug-checkout', instance amount-7: complete (seed 0)",
            "*- awf-sim -*",
            "* test workflow(s) of the other examples Hypothesis ran are not shown",
        ]
    )


def test_a_failure_shows_the_timeline_and_the_seed(
    flow: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Under CI pytest prints the whole failure message again in its short summary; the count
    # below is about awf's own output, so the inner run is told it is not on CI.
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("BUILD_NUMBER", raising=False)
    flow.makepyfile(
        test_fails="""
        from plugflow import CHECKOUT

        def test_payment(create_test_workflow):
            wf = create_test_workflow(CHECKOUT)
            wf.modifier.disable_retry_delays()
            wf.modifier.mock_step_error("PlugPay.charge", "card declined")
            wf.modifier.mock_step_result("PlugPay.chrage", {"typo": True})
            wf.run({"amount": 3})
        """
    )
    result = run(flow, "--awf-seed=11")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "E   *WorkflowFailed: Error: card declined",
            "E   *workflow 'plug-checkout', instance *: errored at step PlugPay.charge, "
            "attempt 2 (seed 11)",
            "E   *Traceback (most recent call last; awf's frames hidden):",
            'E   *File "*plugflow.py", line *, in checkout',
            "E   *return await wf.PlugPay(order).charge()",
            "E   *0 ms workflow-start",
            "E   *0 ms sleep-start*settle*for 1 h",
            "E   *1 h attempt-failure*PlugPay.charge*attempt 1*card declined (retry in 0 ms)",
            "E   *1 h attempt-failure*PlugPay.charge*attempt 2*Error: card declined",
            "E   *1 h workflow-failure*Error: card declined",
            "E   *warning: mock_step_result('PlugPay.chrage') matched no step of this run "
            "(did you mean 'PlugPay.charge'?)",
            "*- awf-sim plug-checkout (seed 11) -*",
            "(the timeline is in the WorkflowFailed above)",
            "reproduce: pytest test_fails.py::test_payment --awf-seed 11",
        ]
    )
    # The timeline is printed once, in the WorkflowFailed, not again in the report section.
    assert sum("workflow-failure" in line for line in result.stdout.lines) == 1


def test_a_failed_assertion_after_a_complete_run_shows_the_timeline(flow: pytest.Pytester) -> None:
    flow.makepyfile(
        test_wrong="""
        from awf_sim.testing import create_test_workflow
        from plugflow import CHECKOUT

        def test_output():
            wf = create_test_workflow(CHECKOUT, seed=4)
            wf.modifier.disable_sleeps()
            assert wf.run({"amount": 3}) == {"charged": 4}
        """
    )
    result = run(flow)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*- awf-sim plug-checkout (seed 4) -*",
            "workflow 'plug-checkout', instance *: complete (seed 4)",
            "*checkpoint*PlugPay.charge*attempt 1",
            "reproduce: create_test_workflow(..., seed=4)",
        ]
    )


def test_a_failing_test_on_the_sim_fixture_shows_its_instances_and_the_seed(
    flow: pytest.Pytester,
) -> None:
    # The sim fixture used to leave a failure with no timeline and, under -q, no seed at all.
    flow.makepyfile(
        test_sim_wrong="""
        from plugflow import CHECKOUT

        def test_output(sim):
            inst = sim.create(CHECKOUT, {"amount": 3}, id="sim-1")
            sim.run_until_done(inst)
            assert inst.status()["output"] == {"charged": 4}

        def test_nothing_created(sim):
            assert sim.instances == ["x"]
        """
    )
    result = run(flow, "-q", "--awf-seed", "23")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(
        [
            "*- awf-sim sim fixture (seed 23) -*",
            "workflow 'plug-checkout', instance sim-1: complete",
            "*1 h checkpoint*PlugPay.charge*attempt 1",
            "*workflow-success",
            "reproduce: pytest test_sim_wrong.py::test_output --awf-seed 23",
            "*- awf-sim sim fixture (seed 23) -*",
            "no instance was created",
            "reproduce: pytest test_sim_wrong.py::test_nothing_created --awf-seed 23",
        ]
    )


def test_an_errored_instance_in_a_section_names_its_failing_step(flow: pytest.Pytester) -> None:
    # When the test's own assertion fails (no WorkflowFailed shows the instance), the section
    # is where the reader looks: it names the step, as WorkflowFailed does.
    flow.makepyfile(
        test_errored="""
        import pytest
        from awf_sim.testing import WorkflowFailed
        from plugflow import CHECKOUT

        def test_factory(create_test_workflow):
            wf = create_test_workflow(CHECKOUT)
            wf.modifier.disable_retry_delays()
            wf.modifier.mock_step_error("PlugPay.charge", "card declined")
            with pytest.raises(WorkflowFailed):
                wf.run({"amount": 3}, id="f-1")
            assert wf.error is None

        def test_sim(sim):
            inst = sim.create(CHECKOUT, {}, id="s-1")  # charge reads order["amount"]
            sim.run_until_done(inst)
            assert inst.status()["status"] == "complete"
        """
    )
    result = run(flow, "-q")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(
        [
            "workflow 'plug-checkout', instance f-1: errored with Error: card declined "
            "at step PlugPay.charge, attempt 2 (seed 0)",
            "workflow 'plug-checkout', instance s-1: errored with *at step PlugPay.charge, "
            "attempt 2",
        ]
    )


def test_the_fixture_type_imports_into_a_test_module_without_a_collection_warning(
    flow: pytest.Pytester,
) -> None:
    # Both names start with "Test": pytest must not try to collect them as test classes.
    flow.makepyfile(
        """
        from awf_sim.testing import TestWorkflow, TestWorkflowFactory
        from plugflow import CHECKOUT

        def test_typed(create_test_workflow: TestWorkflowFactory) -> None:
            wf = create_test_workflow(CHECKOUT)
            assert isinstance(wf, TestWorkflow)
            wf.modifier.disable_sleeps()
            assert wf.run({"amount": 2}) == {"charged": 2}
        """
    )
    result = run(flow, "-W", "error")
    result.assert_outcomes(passed=1)


def test_a_passing_test_has_no_section(flow: pytest.Pytester) -> None:
    flow.makepyfile(
        """
        from plugflow import CHECKOUT

        def test_ok(create_test_workflow):
            create_test_workflow(CHECKOUT).run({"amount": 1})
        """
    )
    result = run(flow, "-rA")
    result.assert_outcomes(passed=1)
    assert "awf-sim plug-checkout" not in result.stdout.str()


def test_the_factory_closes_its_workflows_after_the_test(flow: pytest.Pytester) -> None:
    flow.makepyfile(
        """
        from plugflow import CHECKOUT

        made = []

        def test_make(create_test_workflow):
            wf = create_test_workflow(CHECKOUT)
            wf.run({"amount": 1})
            made.append(wf)
            assert not wf.closed

        def test_closed():
            assert made[0].closed
            assert made[0].status == "complete"
        """
    )
    result = run(flow)
    result.assert_outcomes(passed=2)


def test_a_passing_test_that_never_ran_its_test_workflow_fails(flow: pytest.Pytester) -> None:
    # The test sets up mocks and asserts something that holds before any run: it passed,
    # though it checked none of what it set up (its selectors "matched nothing").
    flow.makepyfile(
        """
        from awf_sim.testing import create_test_workflow as make
        from plugflow import CHECKOUT

        def test_forgot_run(create_test_workflow):
            wf = create_test_workflow(CHECKOUT)
            wf.modifier.disable_sleeps()
            wf.modifier.mock_step_result("PlugPay.charge", {"charged": 0})
            wf.send_event("paid", {})
            assert wf.status != "errored"

        def test_forgot_run_outside_the_fixture():
            wf = make(CHECKOUT)
            wf.modifier.force_step_timeout({"name": "PlugPay.charge", "index": 1})
            wf.close()

        def test_ran(create_test_workflow):
            wf = create_test_workflow(CHECKOUT)
            wf.modifier.disable_sleeps()
            assert wf.run({"amount": 2}) == {"charged": 2}

        def test_not_set_up_and_not_run(create_test_workflow):
            assert create_test_workflow(CHECKOUT).status is None

        def test_intended(create_test_workflow):
            create_test_workflow(CHECKOUT, strict=False).modifier.disable_sleeps()
        """
    )
    result = run(flow, "-p", "no:randomly")
    result.assert_outcomes(passed=3, failed=2)
    result.stdout.fnmatch_lines(
        [
            "*_ test_forgot_run _*",
            "test workflow 'plug-checkout' was set up (disable_sleeps(), "
            "mock_step_result('PlugPay.charge'), send_event('paid')) but never run, so the test "
            "checked none of it",
            "call wf.run(params) (or wf.start(params)) before asserting; create it with "
            "strict=False if that is intended",
            "*awf-sim plug-checkout (seed 0)*",
            "workflow 'plug-checkout': not run (seed 0)",
            "*_ test_forgot_run_outside_the_fixture _*",
            "test workflow 'plug-checkout' was set up (force_step_timeout({'name': "
            "'PlugPay.charge', 'index': 1})) but never run, so the test checked none of it",
        ]
    )


def test_a_refused_test_api_call_shows_at_the_tests_line(flow: pytest.Pytester) -> None:
    # Each showed awf's own frames first (the modifier's _rule, the selector parser, the
    # plugin's factory, assert_durable's plan checks), with their source and locals, as if
    # the bug were in awf.
    flow.makepyfile(
        """
        from awf_sim.testing import create_test_workflow as make
        from plugflow import CHECKOUT

        def test_twice(create_test_workflow):
            wf = create_test_workflow(CHECKOUT, strict=False)
            wf.modifier.mock_step_result("PlugPay.charge", 1)
            wf.modifier.mockStepResult("PlugPay.charge", 2)

        def test_index(create_test_workflow):
            create_test_workflow(CHECKOUT).modifier.disable_sleeps({"name": "settle", "index": 0})

        def test_times(create_test_workflow):
            create_test_workflow(CHECKOUT).modifier.mock_step_error("PlugPay.charge", "x", times=0)

        def test_value(create_test_workflow):
            create_test_workflow(CHECKOUT).modifier.mock_step_result("PlugPay.charge", {1})

        def test_db_fixture(create_test_workflow):
            create_test_workflow(CHECKOUT, db={"orders": []})

        def test_db_direct():
            make(CHECKOUT, db={"orders": []})

        def test_status(create_test_workflow):
            wf = create_test_workflow(CHECKOUT)
            wf.start({"amount": 1})
            wf.wait_for_status("wating")

        def test_plan():
            from awf_sim import assert_durable

            assert_durable(CHECKOUT, {"amount": 1}, [{"kind": "timeout", "step": "PlugPay.chrge"}])
        """
    )
    result = run(flow, "-p", "no:randomly")
    result.assert_outcomes(failed=8)
    result.stdout.fnmatch_lines(
        [
            '>       wf.modifier.mockStepResult("PlugPay.charge", 2)',
            "E       awf_sim.errors.ModifierError: [WorkflowIntrospector] Trying to mock step "
            "'PlugPay.charge' multiple times!",
            "test_a_refused_test_api_call_shows_at_the_tests_line.py:7: ModifierError",
            "E       awf_sim.dsl.DefinitionError: disable_sleeps: selector 'index' is 1-based*",
            "E       awf_sim.dsl.DefinitionError: mock_step_error: times must be a positive*",
            "E       awf_sim.dsl.SerializationError: mock_step_result('PlugPay.charge') value is "
            "not JSON (a set)*",
            "E       awf_sim.dsl.DefinitionError: create_test_workflow: db must be a Database*",
            "E       awf_sim.dsl.DefinitionError: create_test_workflow: db must be a Database*",
            "E       awf_sim.dsl.DefinitionError: wait_for_status('wating'): not a status*",
            "E       awf_sim.errors.FaultPlanError: assert_durable: fault 1 (timeout): "
            "'PlugPay.chrge' matches no step of 'plug-checkout'*(did you mean 'PlugPay.charge'?)*",
        ]
    )
    assert "awf_sim/" not in result.stdout.str()  # no frame of awf's own


def test_under_given_only_a_property_that_never_runs_fails(flow: pytest.Pytester) -> None:
    # Examples that assume() rejects after the set-up never run, legitimately.
    flow.makepyfile(
        """
        from hypothesis import assume, given, settings, strategies as st
        from awf_sim.testing import create_test_workflow
        from plugflow import CHECKOUT

        @settings(max_examples=20, database=None)
        @given(amount=st.integers(0, 9))
        def test_some_rejected(amount):
            wf = create_test_workflow(CHECKOUT)
            wf.modifier.disable_sleeps()
            assume(amount % 2 == 0)
            assert wf.run({"amount": amount}) == {"charged": amount}

        @settings(max_examples=5, database=None)
        @given(amount=st.integers(0, 9))
        def test_never_runs(amount):
            wf = create_test_workflow(CHECKOUT)
            wf.modifier.disable_sleeps()
        """
    )
    result = flow.runpytest("-p", "no:randomly")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*_ test_never_runs _*",
            "test workflow 'plug-checkout' was set up (disable_sleeps()) but never run, so the "
            "test checked none of it (x*)",
        ]
    )
