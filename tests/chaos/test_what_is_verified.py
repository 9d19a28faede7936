"""Chaos checks what push checks (issue 15.3, 15.10): every example of every workflow, the
report naming each input that ran, and a fault-free run that fails is a failure unless its
example declares that outcome."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import jsonschema
from typer.testing import CliRunner

from awf_deploy import verify
from awf_sim.chaos import CHAOS_JSON_SCHEMA, verification_targets
from awf_sim.cli import app
from awf_sim.flow import load_flow

runner = CliRunner()

# A bug only the second example reaches: the refund path is not idempotent.
TWO_EXAMPLES = """
from awf_sim import Domain, Workflow, mock_database

Shop = Domain("VerShop")


@Shop.method()
async def charge(order, args, ctx):
    return {"charged": order["total"]}


@Shop.method()
async def refund(order, args, ctx):
    await ctx.db.execute("UPDATE refunds SET n = n + 1 WHERE id = 1")
    return {"refunded": True}


DATABASE = mock_database({"refunds": [{"id": 1, "n": 0}]})


@Workflow("ver-two", examples=[{"total": 5}, {"total": -1}])
async def two(wf, order):
    if order["total"] < 0:
        return await wf.VerShop(order).refund()
    return await wf.VerShop(order).charge()
"""

# The fault-free run of the first example fails in the workflow body; the second declares
# that it fails (a declined payment), and does.
FAILING = """
from awf_sim import Domain, Example, NonRetryableError, Workflow

Pay = Domain("VerPay")


@Pay.method()
async def charge(order, args, ctx):
    if order["amount"] > 100:
        raise NonRetryableError("declined")
    return {"ok": True}


@Workflow("ver-body", examples=[{"id": "o-1"}])
async def body(wf, order):
    result = await wf.VerPay({"amount": 1}).charge()
    return result.ok


@Workflow(
    "ver-declined",
    examples=[
        {"amount": 5},
        Example({"amount": 500}, expect="errored", error="NonRetryableError"),
    ],
)
async def declined(wf, order):
    return await wf.VerPay(order).charge()
"""


def chaos(*args: str) -> Any:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Domain .* replaces", UserWarning)
        return runner.invoke(app, ["chaos", *args])


def as_json(result: Any) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(result.stdout)
    jsonschema.validate(data, CHAOS_JSON_SCHEMA)
    return data


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text.lstrip(), encoding="utf-8")
    return str(path)


def test_chaos_runs_every_example_and_finds_what_only_the_second_reaches(
    tmp_path: Path,
) -> None:
    flow = write(tmp_path, "two.py", TWO_EXAMPLES)
    result = chaos(flow, "--runs", "20")
    assert result.exit_code == 1, result.stdout
    assert 'input {"total": 5} (example 1 of 2)' in result.stdout
    assert 'input {"total": -1} (example 2 of 2)' in result.stdout
    assert "VerShop.refund" in result.stdout
    assert "--example 2 --replay" in result.stdout
    assert "inputs checked (2): ver-two (example 1 of 2), ver-two (example 2 of 2)" in " ".join(
        result.stdout.split()
    )
    data = as_json(chaos(flow, "--runs", "20", "--json"))
    assert [(w["input_from"], w["clean"]) for w in data["workflows"]] == [
        ("example 1 of 2", True),
        ("example 2 of 2", False),
    ]
    # A named subset runs just that example, and says so.
    first = as_json(chaos(flow, "--runs", "20", "--json", "--example", "1"))
    assert [w["input_from"] for w in first["workflows"]] == ["example 1 of 2"]
    assert first["clean"] is True
    assert chaos(flow, "--example", "3").exit_code == 2


def test_push_verifies_exactly_what_chaos_checks(tmp_path: Path) -> None:
    flow = load_flow(write(tmp_path, "two_push.py", TWO_EXAMPLES))
    targets = verification_targets(flow)
    assert [(t.workflow.name, t.params, n) for t, n in targets] == [
        ("ver-two", {"total": 5}, 1),
        ("ver-two", {"total": -1}, 2),
    ]
    found = verify(flow, runs=20)
    assert [(v.workflow, v.invariant, v.example) for v in found] == [
        ("ver-two", "idempotent-effects", 2)
    ]


def test_a_failing_baseline_is_a_failure_with_its_place(tmp_path: Path) -> None:
    flow = write(tmp_path, "failing.py", FAILING)
    result = chaos(flow, "--runs", "10", "--workflow", "ver-body")
    assert result.exit_code == 1, result.stdout
    out = " ".join(result.stdout.split())
    assert "baseline-outcome" in out
    assert "the fault-free run of ver-body errored: AttributeError:" in out
    assert f"({flow}:" in out  # file:line
    assert "chaos: no invariant broken" not in out
    data = as_json(chaos(flow, "--runs", "10", "--workflow", "ver-body", "--json"))
    (violation,) = data["workflows"][0]["violations"]
    assert violation["invariant"] == "baseline-outcome"
    assert violation["plan"] == []
    assert violation["where"].startswith(f"{flow}:")


def test_an_example_that_declares_its_failure_passes(tmp_path: Path) -> None:
    flow = write(tmp_path, "declined.py", FAILING)
    data = as_json(chaos(flow, "--runs", "20", "--workflow", "ver-declined", "--json"))
    assert data["clean"] is True, data
    assert [w["expect"] for w in data["workflows"]] == [
        {"status": "complete", "error": None},
        {"status": "errored", "error": "NonRetryableError"},
    ]
    assert data["workflows"][1]["baseline"]["status"] == "errored"


def test_push_gate_follows_the_same_rule(tmp_path: Path) -> None:
    flow = load_flow(write(tmp_path, "failing_push.py", FAILING))
    found = verify(flow, runs=10)
    assert [(v.workflow, v.invariant) for v in found] == [("ver-body", "baseline-outcome")]
    assert "AttributeError" in found[0].message


LONG = """
from awf_sim import Domain, Workflow, mock_database

Counter = Domain("VerCount")


@Counter.method()
async def bump(item, args, ctx):
    await ctx.db.execute("UPDATE counts SET n = n + 1 WHERE id = 1")
    return {"ok": True}


DATABASE = mock_database({"counts": [{"id": 1, "n": 0}]})


@Workflow("ver-long", examples=[{"id": "l-1"}])
async def long(wf, p):
    for i in range(20):
        await wf.do(f"step-{i}", lambda: i)
    return await wf.VerCount(p).bump()
"""


def test_a_cut_timeline_says_how_much_was_cut(tmp_path: Path) -> None:
    flow = write(tmp_path, "long.py", LONG)
    result = chaos(flow, "--runs", "5", "--faults", "crash-after-effect")
    assert result.exit_code == 1, result.stdout
    out = " ".join(result.stdout.split())
    assert "timeline: entries " in out
    assert "earlier and" in out
    assert "--json has them all" in out


NO_EXAMPLES = """
from awf_sim import Workflow


@Workflow("ver-no-examples")
async def needs(wf, params):
    return params["name"]
"""


def test_a_workflow_without_examples_that_fails_on_empty_input_is_told_to_declare_one(
    tmp_path: Path,
) -> None:
    flow = write(tmp_path, "noex.py", NO_EXAMPLES)
    (wf,) = as_json(chaos(flow, "--runs", "5", "--json"))["workflows"]
    (found,) = wf["violations"]
    assert found["invariant"] == "baseline-outcome"
    assert "KeyError" in found["message"]
    assert "declares no examples, so it ran on {}" in found["hint"]
    assert "examples=[{...}]" in found["hint"]
    # An example that fails gets the other advice: fix it, or declare the failure.
    given = as_json(chaos(flow, "--runs", "5", "--json", "--input", '{"other": 1}'))
    (hint,) = [v["hint"] for v in given["workflows"][0]["violations"]]
    assert 'expect="errored"' in hint


SEATS = """
from awf_sim import Domain, Workflow, mock_database

Seats = Domain("VerSeats")


@Seats.method()
async def book(flight, args, ctx):
    # Not idempotent, and its value is the workflow's output: run twice, it books two seats
    # and returns the second.
    row = await ctx.db.query_one("SELECT free FROM seats WHERE flight = ?", [flight])
    await ctx.db.execute("UPDATE seats SET free = free - 1 WHERE flight = ?", [flight])
    return {"seat": row["free"]}


DATABASE = mock_database({"seats": [{"flight": "LH1", "free": 3}]})


@Workflow("ver-seats", examples=[{"flight": "LH1"}])
async def seats(wf, p):
    return await wf.VerSeats(p["flight"]).book()
"""


def test_an_output_changed_by_a_repeated_effect_is_that_bug_not_another(tmp_path: Path) -> None:
    # The crash after book's effect both repeats the UPDATE (idempotent-effects) and changes
    # the output (replay-equivalence, the second seat): one fault, one bug, one violation.
    flow = write(tmp_path, "seats.py", SEATS)
    result = chaos(flow, "--runs", "40")
    assert result.exit_code == 1, result.stdout
    assert "chaos: 1 violation found" in " ".join(result.stdout.split())
    (wf,) = as_json(chaos(flow, "--runs", "40", "--json"))["workflows"]
    (found,) = wf["violations"]
    assert (found["invariant"], found["key"]) == ("idempotent-effects", "VerSeats.book")
    related = {(r["invariant"], r["key"]) for r in found["related"]}
    assert ("replay-equivalence", "output") in related


def test_one_bug_is_one_violation() -> None:
    # examples/nondeterministic.py: datetime.now() outside a step. The steps it feeds run
    # again under new names (checkpoint-once) and repeat their effects (idempotent-effects):
    # consequences of the determinism finding, listed under it, not counted again.
    result = chaos("examples/nondeterministic.py", "--runs", "40")
    out = " ".join(result.stdout.split())
    assert "chaos: 2 violations found" in out
    assert "also caused by this (not counted again):" in out
    data = as_json(chaos("examples/nondeterministic.py", "--runs", "40", "--json"))
    (wf,) = data["workflows"]
    assert [v["invariant"] for v in wf["violations"]] == ["determinism", "determinism"]
    related = {(r["invariant"], r["key"]) for r in wf["violations"][0]["related"]}
    assert related == {
        ("idempotent-effects", "Coupons.issue"),
        ("checkpoint-once", "Coupons.issue"),
    }
    # The same bug reached from two examples counts once.
    order = " ".join(chaos("examples/order_processing.py", "--runs", "40").stdout.split())
    assert "chaos: 2 violations found (reached 3 times across the inputs)" in order
