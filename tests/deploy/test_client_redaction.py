"""The API token never shows: not in a repr, an error, a log record or printed output."""

from __future__ import annotations

import logging
import pickle
import traceback

import httpx
import pytest

from awf_deploy.cloudflare import CloudflareClient, CloudflareError, Secret


def test_secret_hides_its_value():
    secret = Secret("hunter2-token")

    assert str(secret) == "***"
    assert repr(secret) == "Secret('***')"
    assert f"{secret}" == "***"
    assert "hunter2" not in repr([secret, {"t": secret}])
    assert secret.get_secret_value() == "hunter2-token"
    assert secret == Secret("hunter2-token")
    assert secret != Secret("other")
    assert Secret(secret) == secret
    assert not Secret("")


def test_client_accepts_a_secret(cf):
    with CloudflareClient(Secret(cf.token), cf.account_id, transport=cf.transport()) as client:
        assert client.verify_token().status == "active"
    assert cf.requests[0].headers["authorization"] == f"Bearer {cf.token}"


def test_the_token_never_appears_anywhere(cf, caplog, capsys):
    token = cf.token
    caplog.set_level(logging.DEBUG)  # httpx and awf_deploy, everything
    texts: list[str] = []

    def grab(error: BaseException) -> None:
        texts.extend([str(error), repr(error), "".join(traceback.format_exception(error))])
        texts.extend(repr(value) for value in vars(error).values())
        texts.append(repr(pickle.loads(pickle.dumps(error))))
        chained = error.__cause__ or error.__context__
        if chained is not None:
            grab(chained)

    def echo_token(status: int) -> object:
        # Cloudflare echoing the header back must not leak it through the error message.
        return cf.fail(status, 10000, f"bad header 'Bearer {token}'")

    sleeps: list[float] = []
    with cf.client(sleep=sleeps.append) as client:
        texts.extend([repr(client), str(client), repr(vars(client))])
        client.verify_token()
        client.upload_script(
            "shop", {"entry.py": "x = 1"}, "entry.py", compatibility_date="2025-06-01"
        )
        client.put_workflow("wf", "shop", "W")
        op = "wor-describe-workflow-instance"
        cf.queue(op, echo_token(401))
        cf.queue(op, echo_token(403))
        cf.queue(op, echo_token(404))
        cf.queue(op, echo_token(400))
        cf.queue(op, *[echo_token(500)] * 4)
        cf.queue(op, *[echo_token(429)] * 4)
        cf.queue(op, *[httpx.ConnectError(f"refused {token}")] * 4)
        cf.queue(op, cf.answer(200, {"oops": token}, validate=False))
        for _ in range(8):
            with pytest.raises(CloudflareError) as caught:
                client.get_instance("wf", "job-1")
            grab(caught.value)
    with pytest.raises(CloudflareError) as bad:
        CloudflareClient(token, "bad/account")
    grab(bad.value)

    captured = capsys.readouterr()
    texts.extend([caplog.text, captured.out, captured.err])
    texts.extend(repr(record.__dict__) for record in caplog.records)
    assert any("Bearer ***" in text for text in texts)  # the echo was there, redacted
    assert any("retrying" in record.getMessage() for record in caplog.records)
    leaks = [text for text in texts if token in text]
    assert leaks == []
