"""Hypothesis: fault plans and inputs as strategies, assert_durable, and the property that the
idempotent order workflow survives any fault plan (issue 4, point 7)."""

from __future__ import annotations

import random
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, find, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, Field

import awf_sim
from awf_sim import DefinitionError, DurabilityViolation, Workflow, assert_durable
from awf_sim.chaos import SEED_SOURCE, normalize_plan
from awf_sim.dsl import isolated_registries
from awf_sim.flow import FlowFile, load_flow
from awf_sim.strategies import fault_plans, inputs

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str) -> FlowFile:
    # The two order examples define the same Domain names in different files.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Domain .* replaces", UserWarning)
        return load_flow(ROOT / "examples" / name)


with isolated_registries():  # loading them leaves the registries as they were
    FIXED = _load("order_processing_fixed.py")
    FIXED_WF = FIXED.pick(None)
    FIXED_PARAMS = FIXED_WF.examples[0]
    SEED = _load("order_processing.py")
    SEED_WF = SEED.pick(None)


@pytest.fixture(autouse=True)
def _isolated_registries(flow_registry: None) -> None:
    """Every test here gets the repository conftest's flow_registry."""


FIXED_PLANS = fault_plans(FIXED_WF, FIXED_PARAMS, db=FIXED.database)
QUICK = settings(max_examples=25, derandomize=True, deadline=None, database=None)


@settings(
    max_examples=60,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(plan=FIXED_PLANS)
def test_the_idempotent_order_workflow_survives_any_fault_plan(plan: list[dict[str, Any]]) -> None:
    assert_durable(FIXED_WF, FIXED_PARAMS, plan, db=FIXED.database)


@QUICK
@given(plan=fault_plans(FIXED_WF, FIXED_PARAMS, max_faults=2, kinds="crash", db=FIXED.database))
def test_plans_are_valid_and_respect_the_limits(plan: list[dict[str, Any]]) -> None:
    assert normalize_plan(plan) == plan
    assert len(plan) <= 2
    assert all(f["kind"].startswith("crash-") for f in plan)


@QUICK
@given(
    plan=fault_plans(
        FIXED_WF,
        FIXED_PARAMS,
        max_faults=3,
        kinds=["transient-error", "timeout"],
        db=FIXED.database,
    )
)
def test_a_later_attempt_is_drawn_only_with_an_earlier_fault_at_its_step(
    plan: list[dict[str, Any]],
) -> None:
    # assert_durable refuses a fault at an attempt nothing makes happen (a typo), so a drawn
    # plan never holds one: every attempt past the first follows a fault at an earlier one.
    for fault in plan:
        if fault.get("attempt", 1) > 1:
            assert any(
                f["step"] == fault["step"] and f["attempt"] < fault["attempt"] for f in plan
            ), plan
    assert_durable(FIXED_WF, FIXED_PARAMS, plan, db=FIXED.database)


def _breaks_seed(plan: list[dict[str, Any]]) -> bool:
    """Does `plan` break the seed example's (non-idempotent) order workflow?"""
    try:
        assert_durable(SEED_WF, SEED_WF.examples[0], plan, db=SEED.database)
    except DurabilityViolation:
        return True
    return False


def test_plans_shrink_to_one_early_fault() -> None:
    plans = fault_plans(SEED_WF, SEED_WF.examples[0], db=SEED.database)

    smallest = find(plans, _breaks_seed, settings=settings(database=None, derandomize=True))
    # One fault, on the step that is not idempotent, at its first attempt: the handler ran twice.
    assert len(smallest) == 1
    (fault,) = smallest
    assert fault["step"] == "Inventory.reserve"
    assert fault["attempt"] == 1
    assert fault["kind"] in ("crash-after-effect", "timeout")


@pytest.mark.parametrize("seed", range(6))
def test_plans_shrink_to_one_fault_whatever_hypothesis_draws_first(seed: int) -> None:
    # Seeded, not derandomized: a user's run starts from any draw. A plan drawn as a `unique`
    # list kept an earlier harmless fault in front of the one that broke the invariant.
    plans = fault_plans(SEED_WF, SEED_WF.examples[0], kinds="crash", db=SEED.database)

    found = find(
        plans,
        _breaks_seed,
        settings=settings(database=None, max_examples=100),
        random=random.Random(seed),
    )
    assert [(f["kind"], f["step"]) for f in found] == [("crash-after-effect", "Inventory.reserve")]


def test_a_failing_plan_is_reported_as_the_plan_itself() -> None:
    # Not as the expression that built it (`plan=[copy.deepcopy(universe[i]) for i in ...]`),
    # which is what Hypothesis prints for a value made by `.map` of a lambda.
    @settings(database=None, derandomize=True, max_examples=50, deadline=None)
    @given(plan=fault_plans(SEED_WF, SEED_WF.examples[0], kinds="crash", db=SEED.database))
    def prop(plan: list[dict[str, Any]]) -> None:
        assert_durable(SEED_WF, SEED_WF.examples[0], plan, db=SEED.database)

    with pytest.raises(DurabilityViolation) as info:
        prop()
    notes = " ".join(" ".join(getattr(info.value, "__notes__", [])).split())
    assert (
        "plan=[{'kind': 'crash-after-effect', 'step': 'Inventory.reserve', 'attempt': 1}]" in notes
    ), notes


def test_assert_durable_names_the_invariant_plan_and_timeline() -> None:
    plan = [{"kind": "crash-after-effect", "step": "Inventory.reserve"}]
    with pytest.raises(AssertionError) as info:
        assert_durable(SEED_WF, SEED_WF.examples[0], plan, db=SEED.database)
    err = info.value
    assert isinstance(err, DurabilityViolation)
    assert err.invariant == "idempotent-effects"
    assert err.plan == normalize_plan(plan)
    text = str(err)
    assert "idempotent-effects" in text
    assert '"kind": "crash-after-effect"' in text
    assert "timeline:" in text
    assert "<< crash-after-effect" in text
    assert "inventory.reserved for ABC: expected 2, got 4" in text
    assert any(e.get("fault") == "crash-after-effect" for e in err.timeline)


def test_a_durable_plan_passes() -> None:
    assert_durable(
        FIXED_WF,
        FIXED_PARAMS,
        [{"kind": "crash-after-effect", "step": "Inventory.reserve"}],
        db=FIXED.database,
    )


class Order(BaseModel):
    id: str = Field(min_length=1, max_length=8)
    quantity: int = Field(ge=1, le=5)
    gift: bool = False


@Workflow("strategies-typed")
async def typed(wf: Any, order: Order) -> Any:
    return order.quantity


@Workflow("strategies-examples", examples=[{"n": 1}, {"n": 2}])
async def with_examples(wf: Any, params: Any) -> Any:
    return params


@QUICK
@given(params=inputs(typed))
def test_inputs_follow_the_pydantic_model(params: Any) -> None:
    assert set(params) <= {"id", "quantity", "gift"}
    order = Order.model_validate(params)
    assert 1 <= order.quantity <= 5
    assert 1 <= len(order.id) <= 8


@QUICK
@given(params=inputs(with_examples))
def test_inputs_come_from_the_examples(params: Any) -> None:
    assert params in ({"n": 1}, {"n": 2})


def test_inputs_need_a_model_or_examples() -> None:
    @Workflow("strategies-bare")
    async def bare(wf: Any, params: Any) -> Any:
        return params

    # It named only pydantic, though a dataclass or TypedDict annotation works as well.
    with pytest.raises(DefinitionError) as info:
        inputs(bare)
    assert str(info.value) == (
        "inputs('strategies-bare'): the workflow's params have no input type (a pydantic model, "
        "a dataclass or a TypedDict) and it has no examples; annotate its params with one, or "
        "add examples=[...]"
    )


_seen: list[float] = []


@settings(max_examples=5, derandomize=True, database=None)
@given(st.integers())
def test_the_seed_source_is_managed_by_hypothesis(n: int) -> None:
    assert isinstance(n, int)
    _seen.append(SEED_SOURCE.random())
    assert len(set(_seen)) == 1  # every test case starts it from the same state


def test_import_awf_sim_stays_light() -> None:
    code = (
        "import sys, awf_sim; awf_sim.assert_durable; "
        "print(any(m.split('.')[0] in ('hypothesis', 'rich') for m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.strip() == "False"
    assert "assert_durable" in awf_sim.__all__
    assert "DurabilityViolation" in awf_sim.__all__


class CloudflareStyle:
    """A workflow written for Cloudflare's Python API: the Simulator runs it; chaos does not."""

    async def run(self, event: Any, step: Any) -> Any:
        return 1


@pytest.mark.parametrize(
    ("call", "what"),
    [
        (lambda w: assert_durable(w, {}, []), "assert_durable"),
        (lambda w: fault_plans(w, {}), "fault_plans"),
        (lambda w: inputs(w), "inputs"),
    ],
)
def test_a_workflow_that_is_not_a_workflow_function_is_named_not_a_traceback(
    call: Any, what: str
) -> None:
    with pytest.raises(awf_sim.DefinitionError) as cls_error:
        call(CloudflareStyle)
    assert str(cls_error.value).startswith(f"{what} takes a @Workflow function")
    assert "CloudflareStyle is a class with run(event, step)" in str(cls_error.value)
    with pytest.raises(awf_sim.DefinitionError, match=f"{what} takes a @Workflow function, got"):
        call("order-processing")
