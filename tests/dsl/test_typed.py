"""Typed domains, typed workflows and typed values across checkpoints (issue #16)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypedDict

import pydantic
import pytest

from awf_sim import (
    Domain,
    DurabilityViolation,
    SerializationError,
    Simulator,
    TypedDomain,
    Workflow,
    assert_durable,
    step,
)
from awf_sim.dsl import WorkflowApi
from awf_sim.testing import WorkflowFailed, create_test_workflow


@dataclass(frozen=True)
class Product:
    sku: str


@dataclass(frozen=True)
class Stock:
    available: bool
    quantity: int
    restock: str | None = None


@dataclass(frozen=True)
class Hold:
    quantity: int


class Receipt(pydantic.BaseModel):
    id: int
    lines: list[Stock]


async def check(product: Product, args: None, ctx: Any) -> Stock:
    assert isinstance(product, Product)
    assert args is None
    return Stock(available=product.sku != "OUT", quantity=7)


def hold(product: Product, h: Hold, ctx: Any) -> Receipt:  # a sync handler, a model result
    assert isinstance(h, Hold)
    return Receipt(id=h.quantity, lines=[Stock(available=True, quantity=h.quantity)])


class TyInventory(TypedDomain[Product]):
    check = step(check)
    hold = step(hold, retries={"limit": 2, "delay": "1 second"})


@dataclass(frozen=True)
class Order:
    sku: str
    quantity: int


@dataclass(frozen=True)
class Outcome:
    available: bool
    receipt: int
    kinds: list[str]


@Workflow("ty-order")
async def ty_order(wf: WorkflowApi, order: Order) -> Outcome:
    stock = await wf[TyInventory](Product(order.sku)).check()
    await wf.sleep("pause", "1 minute")  # a point to crash at: what follows replays
    receipt = await wf[TyInventory](Product(order.sku)).hold(Hold(order.quantity))
    again = await wf.TyInventory({"sku": order.sku}).check()  # the dict form, same types
    kinds = [type(v).__name__ for v in (order, stock, receipt, receipt.lines[0], again)]
    return Outcome(available=stock.available, receipt=receipt.id, kinds=kinds)


KINDS = ["Order", "Stock", "Receipt", "Stock", "Stock"]


def test_typed_results_are_their_types_on_the_first_run() -> None:
    out = create_test_workflow(ty_order).run({"sku": "ABC", "quantity": 2})
    assert out == Outcome(available=True, receipt=2, kinds=KINDS)


def test_typed_results_are_their_types_after_a_crash_and_replay() -> None:
    with Simulator() as sim:
        inst = sim.create(ty_order, {"sku": "ABC", "quantity": 2})
        sim.run_until(lambda: len(inst.step_results()) == 1)
        sim.crash()  # the check is checkpointed; the replay reads it back from JSON
        sim.recover()
        sim.run_until_done(inst)
        assert inst.status()["output"] == {"available": True, "receipt": 2, "kinds": KINDS}
        # The check ran once, before the crash: the replay took its Stock from the checkpoint.
        entries = [(e["kind"], e.get("path")) for e in inst.timeline]
        assert ("crash", None) in entries
        assert entries.count(("attempt-start", "TyInventory.check")) == 2  # 1st call + 3rd


def test_the_typed_call_is_the_same_step_as_the_dict_form() -> None:
    with Simulator() as sim:
        inst = sim.create(ty_order, {"sku": "ABC", "quantity": 2})
        sim.run_until_done(inst)
        names = [r["name"] for r in inst.step_results()]
    # wf[TyInventory](Product("ABC")).check() and wf.TyInventory({"sku": "ABC"}).check():
    # same path, same canonical context, same args: one step name, its second occurrence.
    assert names[0] == names[2]
    assert names[0].startswith("TyInventory.check@")


def test_the_typed_domain_is_a_domain_and_keeps_plain_handlers() -> None:
    assert isinstance(TyInventory.domain, Domain)
    assert TyInventory.domain.name == "TyInventory"
    assert TyInventory.check.handler is check
    assert TyInventory.domain.check is check  # Domain.<method> stays the plain function
    assert TyInventory.domain.spec("hold").config["retries"]["limit"] == 2


def test_params_arrive_as_the_declared_dataclass_and_a_bad_field_is_named() -> None:
    with pytest.raises(WorkflowFailed) as info:
        create_test_workflow(ty_order).run({"sku": "ABC", "quantity": "two"})
    assert "params.quantity is a str ('two'), not int" in str(info.value)


@Workflow("ty-bad-output")
async def ty_bad_output(wf: WorkflowApi, order: Order) -> Outcome:
    return {"available": True, "receipt": 1}  # type: ignore[return-value]


def test_the_output_is_checked_against_its_declared_type() -> None:
    with pytest.raises(WorkflowFailed) as info:
        create_test_workflow(ty_bad_output).run({"sku": "ABC", "quantity": 1})
    assert info.value.error is not None
    assert info.value.error["name"] == "SerializationError"
    assert info.value.error["message"] == (
        "workflow 'ty-bad-output' returned an output that does not match Outcome: "
        "output.kinds is missing: Outcome requires it"
    )


class Summary(TypedDict):
    total: int
    note: str


@Workflow("ty-typeddict")
async def ty_typeddict(wf: WorkflowApi, n: int) -> Summary:
    return {"total": n, "note": 5} if n < 0 else {"total": n, "note": "ok"}  # type: ignore[typeddict-item]


def test_a_typeddict_output_is_checked_and_stays_a_dict() -> None:
    assert create_test_workflow(ty_typeddict).run(3) == {"total": 3, "note": "ok"}
    with pytest.raises(WorkflowFailed, match=r"output\.note is an int \(5\), not str"):
        create_test_workflow(ty_typeddict).run(-1)


def test_the_instance_handle_and_revive_output_give_the_declared_type() -> None:
    with Simulator() as sim:
        inst = sim.create(ty_order, {"sku": "OUT", "quantity": 1})
        sim.run_until_done(inst)
        assert inst.output() == Outcome(available=False, receipt=1, kinds=KINDS)
    assert ty_order.revive_output({"available": 1 == 1, "receipt": 3, "kinds": []}) == Outcome(
        True, 3, []
    )
    with pytest.raises(SerializationError, match=r"output\.receipt is missing"):
        ty_order.revive_output({"available": True, "kinds": []})


def test_untyped_handlers_and_workflows_are_unchanged() -> None:
    def plain(c: Any, a: Any, ctx: Any) -> Any:
        return Stock(available=True, quantity=1)  # not declared: the workflow gets JSON

    Plainly = Domain("TyPlain", {"get": plain})

    @Workflow("ty-plain", domains=[Plainly])
    async def flow(wf: Any, p: Any) -> Any:
        got = await wf.TyPlain(p).get()
        return {"kind": type(got).__name__, "got": got}

    out = create_test_workflow(flow).run({"x": 1})
    assert out == {"kind": "dict", "got": {"available": True, "quantity": 1, "restock": None}}


# -- chaos: a value that changes type across a replay ------------------------------------------

_RAN: set[str] = set()


async def flaky_cache(product: Product, args: None, ctx: Any) -> Stock | None:
    # Planted bug: a second run of the step (after a crash before its checkpoint) finds the
    # process's own cache and returns None instead of the Stock; the output hides it.
    if ctx.idempotency_key in _RAN:
        return None
    _RAN.add(ctx.idempotency_key)
    return Stock(available=True, quantity=1)


class TyCache(TypedDomain[Product]):
    get = step(flaky_cache)


@Workflow("ty-cache")
async def ty_cache(wf: WorkflowApi, sku: str) -> dict[str, bool]:
    stock = await wf[TyCache](Product(sku)).get()
    return {"ok": stock is None or stock.available}


def test_chaos_catches_a_step_result_whose_type_changes_on_replay() -> None:
    _RAN.clear()
    with pytest.raises(DurabilityViolation) as info:
        assert_durable(ty_cache, "ABC", [{"kind": "crash-after-effect", "step": "TyCache.get"}])
    text = str(info.value)
    assert "a step result changed type across a replay" in text
    assert "TyCache.get (call 1): Stock in the fault-free run, NoneType under the faults" in text


def test_chaos_finds_nothing_when_types_hold() -> None:
    assert_durable(
        ty_order,
        {"sku": "ABC", "quantity": 2},
        [{"kind": "crash-after-checkpoint", "step": "TyInventory.check"}],
    )


def test_inputs_draw_from_a_dataclass_input_type() -> None:
    from hypothesis import given, settings

    from awf_sim.strategies import inputs

    drawn: list[Any] = []

    @settings(max_examples=20, database=None)
    @given(inputs(ty_order))
    def collect(params: Any) -> None:
        drawn.append(params)

    collect()
    assert drawn
    assert all(set(p) == {"sku", "quantity"} for p in drawn)
    assert all(isinstance(p["sku"], str) and isinstance(p["quantity"], int) for p in drawn)


def echo_late(item: LateItem, args: None, ctx: Any) -> LateItem:
    return LateItem(n=item.n + 1)


TyLate = Domain("TyLate", {"echo": echo_late})  # defined before the type its handler names


@dataclass(frozen=True)
class LateItem:
    n: int


def test_a_handler_naming_a_type_defined_later_still_gets_and_returns_it() -> None:
    @Workflow("ty-late", domains=[TyLate])
    async def flow(wf: Any, n: int) -> dict[str, Any]:
        got = await wf.TyLate({"n": n}).echo()
        return {"kind": type(got).__name__, "n": got.n}

    assert create_test_workflow(flow).run(1) == {"kind": "LateItem", "n": 2}
