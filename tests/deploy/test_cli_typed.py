"""`awf-deploy trigger` and `status` with --flow: the typed workflow's declared shapes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from awf_deploy.cli import app

pytestmark = pytest.mark.usefixtures("flow_registry")

TYPED = str(Path(__file__).resolve().parents[2] / "examples" / "order_processing_typed.py")
ORDER = {
    "id": "o-9",
    "product": {"sku": "ABC"},
    "quantity": 1,
    "total": 5.0,
    "paymentMethod": {"token": "tok_visa"},
    "customer": {"email": "a@example.com"},
    "shippingAddress": {"city": "Lisbon"},
}


def run(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def test_trigger_refuses_params_that_do_not_fit_the_input_type_before_sending(
    cli_env: Any,
) -> None:
    bad = {**ORDER, "quantity": "one"}
    result = run("trigger", "order-processing", "--params", json.dumps(bad), "--flow", TYPED)
    assert result.exit_code == 2
    assert (
        "--params do not fit Order, the input type of 'order-processing': "
        "--params.quantity is a str ('one'), not int"
    ) in result.stderr
    assert cli_env.requests == []  # nothing was sent


def test_trigger_and_status_show_the_declared_types(cli_env: Any) -> None:
    assert run("push", TYPED, "--yes", "--no-verify").exit_code == 0
    started = run(
        "trigger", "order-processing", "--params", json.dumps(ORDER), "--id", "o-9", "--flow", TYPED
    )
    assert started.exit_code == 0, started.stderr
    assert "started instance o-9 of order-processing (queued, params as Order)" in started.stdout

    output = {"status": "confirmed", "orderId": "o-9", "trackingNumber": "T", "error": None}
    cli_env.histories[("order-processing", "o-9")] = {"steps": [], "output": output, "error": None}
    shown = run("status", "order-processing", "o-9", "--flow", TYPED)
    assert shown.exit_code == 0, shown.stderr
    assert f"output (OrderResult): {json.dumps(output)}" in shown.stdout
    data = json.loads(run("status", "order-processing", "o-9", "--flow", TYPED, "--json").stdout)
    assert (data["outputType"], data["outputMismatch"]) == ("OrderResult", None)

    cli_env.histories[("order-processing", "o-9")]["output"] = {"status": "confirmed"}
    odd = run("status", "order-processing", "o-9", "--flow", TYPED)
    assert "  output: {" in odd.stdout
    assert (
        "warning: the output is not the declared OrderResult: output.orderId is missing: "
        "OrderResult requires it"
    ) in odd.stdout
    plain = run("status", "order-processing", "o-9")  # without --flow: as before
    assert "  output: {" in plain.stdout
    assert "OrderResult" not in plain.stdout
