"""Error mapping, retries and backoff, timeouts, configuration errors."""

from __future__ import annotations

import email.utils
import time

import httpx
import pytest

from awf_deploy.cloudflare import (
    AuthError,
    CloudflareClient,
    CloudflareError,
    ConfigError,
    NotFoundError,
    RateLimitedError,
    RequestRejected,
    ServerError,
    TransportError,
    UnexpectedResponse,
)

GET_WF = "wor-get-workflow-details"
UPLOAD = "worker-script-upload-worker-module"
EVENT = "wor-send-event-workflow-instance"
CREATE = "wor-create-new-workflow-instance"


def upload(client: CloudflareClient) -> None:
    client.upload_script(
        "shop", {"entry.py": "x = 1\n"}, "entry.py", compatibility_date="2025-06-01"
    )


def deployed(client: CloudflareClient) -> None:
    upload(client)
    client.put_workflow("wf", "shop", "W")
    client.create_instance("wf", instance_id="job-1")


# -- 4xx ---------------------------------------------------------------------------------------


def test_401_says_the_token_was_rejected(cf, sleeps):
    with (
        CloudflareClient("wrong-token", cf.account_id, transport=cf.transport()) as client,
        pytest.raises(AuthError) as caught,
    ):
        client.get_workflow("wf")

    error = caught.value
    assert error.status == 401
    assert error.codes == (10000,)
    assert error.attempts == 1
    assert "HTTP 401" in str(error)
    assert "[10000] Authentication error" in str(error)
    assert "CLOUDFLARE_API_TOKEN" in str(error)
    assert "invalid, expired or revoked" in str(error)
    assert error.ray_id == "8f0c0ffee0000000-SJC"
    assert sleeps == []


def test_verify_token_with_an_unknown_token_explains_code_1000(cf):
    with (
        CloudflareClient("wrong-token", cf.account_id, transport=cf.transport()) as client,
        pytest.raises(AuthError) as caught,
    ):
        client.verify_token()

    assert caught.value.codes == (1000,)
    assert "account-owned token" in str(caught.value)


@pytest.mark.parametrize(
    ("operation", "call", "permission"),
    [
        (UPLOAD, upload, "Workers Scripts Write"),
        (
            "wor-create-or-modify-workflow",
            lambda c: c.put_workflow("wf", "shop", "W"),
            "Workers Scripts Write",
        ),
        (GET_WF, lambda c: c.get_workflow("wf"), "Workers Scripts Read"),
        (
            "worker-cron-trigger-update-cron-triggers",
            lambda c: c.put_schedules("shop", []),
            "Workers Scripts Write",
        ),
    ],
)
def test_403_names_the_missing_permission(client, cf, operation, call, permission):
    cf.queue(operation, cf.fail(403, 10000, "Authentication error"))

    with pytest.raises(AuthError) as caught:
        call(client)

    error = caught.value
    assert error.status == 403
    assert error.permission == permission
    assert f"lacks the {permission!r} permission" in str(error)
    assert cf.account_id in str(error)
    assert "CLOUDFLARE_ACCOUNT_ID" in str(error)


def test_404_raises_not_found_for_instances(client, cf):
    deployed(client)

    with pytest.raises(NotFoundError) as caught:
        client.get_instance("wf", "nope")

    assert caught.value.status == 404
    assert caught.value.codes == (10201,)
    assert "instance.not_found" in str(caught.value)
    assert "'nope'" in str(caught.value)


def test_404_from_put_schedules_before_upload(client, cf):
    with pytest.raises(NotFoundError, match="10007"):
        client.put_schedules("shop", ["0 * * * *"])


def test_404_routing_error_points_at_the_account_id(cf):
    with (
        CloudflareClient(cf.token, "0" * 32, transport=cf.transport()) as client,
        pytest.raises(NotFoundError) as caught,
    ):
        client.get_workflow("wf")  # would be None for a missing workflow

    assert caught.value.codes == (7003,)
    assert "CLOUDFLARE_ACCOUNT_ID" in str(caught.value)


def test_10021_upload_rejection_carries_code_and_message(client, cf, sleeps):
    cf.queue(UPLOAD, cf.fail(400, 10021, "could not read content for part metadata"))

    with pytest.raises(RequestRejected) as caught:
        upload(client)

    error = caught.value
    assert error.status == 400
    assert error.codes == (10021,)
    assert error.errors[0].message == "could not read content for part metadata"
    assert "[10021] could not read content for part metadata" in str(error)
    assert "main_module" in str(error)  # the hint says what to check
    assert error.method == "PUT"
    assert error.path == f"/accounts/{cf.account_id}/workers/scripts/shop"
    assert error.attempts == 1
    assert sleeps == []  # 4xx is never retried
    assert repr(error).startswith("RequestRejected(")
    assert "codes=(10021,)" in repr(error)


def test_400_with_string_messages_from_workflows(client, cf):
    cf.queue(
        GET_WF,
        cf.fail(400, None, "", string_messages=("Workflow has no deployed versions",)),
    )

    with pytest.raises(RequestRejected, match="no deployed versions") as caught:
        client.get_workflow("wf")
    assert caught.value.codes == ()


def test_several_errors_are_all_reported(client, cf):
    body = {
        "success": False,
        "errors": [
            {"code": 10021, "message": "Uncaught SyntaxError"},
            {"code": 10075, "message": "needs paid plan"},
        ],
        "messages": [],
        "result": None,
    }
    cf.queue(UPLOAD, cf.answer(400, body))

    with pytest.raises(RequestRejected) as caught:
        upload(client)
    assert caught.value.codes == (10021, 10075)
    assert "Workers Paid plan" in str(caught.value)


def test_success_false_in_a_200_is_a_rejection(client, cf):
    body = {"success": False, "errors": [{"code": 10002, "message": "odd"}], "messages": []}
    cf.queue(GET_WF, cf.answer(200, body, validate=False))

    with pytest.raises(RequestRejected, match=r"\[10002\] odd"):
        client.get_workflow("wf")


# -- unexpected answers ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"<html>captive portal</html>",
        ["not", "an", "envelope"],
        {"success": True, "errors": [], "messages": [], "result": {"name": 1}},
    ],
)
def test_unparseable_success_is_unexpected_response(client, cf, body):
    cf.queue(GET_WF, cf.answer(200, body, validate=False))

    with pytest.raises(UnexpectedResponse) as caught:
        client.get_workflow("wf")

    assert caught.value.status == 200
    assert "unexpected answer" in str(caught.value)


def test_non_json_error_body_is_quoted(client, cf, sleeps):
    html = cf.answer(502, b"<html><body>Bad gateway</body></html>")
    cf.queue(GET_WF, html, html, html, html)

    with pytest.raises(ServerError) as caught:
        client.get_workflow("wf")
    assert "Bad gateway" in str(caught.value)
    assert caught.value.codes == ()


def test_an_html_error_page_is_quoted_by_its_words_not_its_markup(client, cf, sleeps):
    # A web server's 404 page at a wrong base URL was quoted as `<!DOCTYPE HTML> <html
    # lang="en"> <head> <meta charset="utf-8"> <title>...`, 200 characters of markup.
    page = (
        b"<!DOCTYPE HTML><html><head><title>502 Bad Gateway</title>"
        b"<style>body { color: red }</style><script>var x = '<b>';</script></head>"
        b"<body><h1>Bad&nbsp;Gateway</h1><p>nginx &amp; friends</p></body></html>"
    )
    html = cf.answer(502, page)
    cf.queue(GET_WF, html, html, html, html)

    with pytest.raises(ServerError) as caught:
        client.get_workflow("wf")
    message = str(caught.value)
    assert "HTTP 502: an HTML page: 502 Bad Gateway Bad Gateway nginx & friends (GET" in message
    assert "<" not in message
    assert "color" not in message


# -- retries -----------------------------------------------------------------------------------


def test_429_honours_retry_after(client, cf, sleeps):
    deployed(client)
    limited = cf.fail(429, 10429, "Rate limited", headers={"Retry-After": "7"})
    cf.queue(GET_WF, limited, limited)

    workflow = client.get_workflow("wf")

    assert workflow is not None
    assert sleeps == [7.0, 7.0]
    assert cf.operations()[-3:] == [GET_WF] * 3


def test_429_retry_after_as_http_date(client, cf, sleeps):
    past = email.utils.formatdate(time.time() - 3600, usegmt=True)
    cf.queue(GET_WF, cf.fail(429, 10429, "Rate limited", headers={"Retry-After": past}))

    assert client.get_workflow("wf") is None
    assert sleeps == [0.0]


def test_429_without_retry_after_backs_off_exponentially(client, cf, sleeps):
    limited = cf.fail(429, 10429, "Rate limited")
    cf.queue(GET_WF, limited, limited, limited, limited)

    with pytest.raises(RateLimitedError) as caught:
        client.get_workflow("wf")

    assert sleeps == [0.5, 1.0, 2.0]
    assert caught.value.attempts == 4
    assert caught.value.retry_after is None
    assert "4 attempts" in str(caught.value)
    assert "rate limit" in str(caught.value)


def test_429_asking_for_more_than_the_cap_fails_at_once(client, cf, sleeps):
    cf.queue(GET_WF, cf.fail(429, 10429, "Rate limited", headers={"Retry-After": "300"}))

    with pytest.raises(RateLimitedError) as caught:
        client.get_workflow("wf")

    assert sleeps == []
    assert caught.value.attempts == 1
    assert caught.value.retry_after == 300.0
    assert "wait 300 s" in str(caught.value)


def test_the_retry_after_cap_is_configurable(cf, sleeps):
    cf.queue(GET_WF, cf.fail(429, 10429, "Rate limited", headers={"Retry-After": "300"}))
    with cf.client(sleep=sleeps.append, max_retry_after=600) as client:
        assert client.get_workflow("wf") is None
    assert sleeps == [300.0]


def test_500_is_retried_then_succeeds(client, cf, sleeps):
    deployed(client)
    cf.queue(GET_WF, cf.fail(500, 10002, "Internal error"))

    workflow = client.get_workflow("wf")

    assert workflow is not None
    assert workflow.name == "wf"
    assert sleeps == [0.5]


def test_503_retry_after_is_honoured(client, cf, sleeps):
    cf.queue(GET_WF, cf.fail(503, 10013, "Unavailable", headers={"Retry-After": "2"}))

    assert client.get_workflow("wf") is None
    assert sleeps == [2.0]


def test_500_exhausted_raises_server_error_with_attempts(client, cf, sleeps):
    broken = cf.fail(500, 10002, "Internal error")
    cf.queue(GET_WF, broken, broken, broken, broken, broken)

    with pytest.raises(ServerError) as caught:
        client.get_workflow("wf")

    error = caught.value
    assert error.attempts == 4
    assert error.status == 500
    assert error.codes == (10002,)
    assert "4 attempts" in str(error)
    assert "cloudflarestatus.com" in str(error)
    assert sleeps == [0.5, 1.0, 2.0]
    assert len(cf.requests) == 4


def test_max_retries_bounds_the_attempts(cf, sleeps):
    broken = cf.fail(500, 10002, "Internal error")
    cf.queue(GET_WF, broken, broken, broken)
    with (
        cf.client(sleep=sleeps.append, max_retries=1) as client,
        pytest.raises(ServerError) as caught,
    ):
        client.get_workflow("wf")
    assert caught.value.attempts == 2
    assert sleeps == [0.5]

    with (
        cf.client(sleep=sleeps.append, max_retries=0) as client,
        pytest.raises(ServerError) as caught,
    ):
        client.get_workflow("wf")
    assert caught.value.attempts == 1
    assert sleeps == [0.5]


def test_backoff_is_capped(cf, sleeps):
    broken = cf.fail(500, 10002, "Internal error")
    cf.queue(GET_WF, *[broken] * 10)
    with (
        cf.client(sleep=sleeps.append, max_retries=9, max_retry_after=5) as client,
        pytest.raises(ServerError),
    ):
        client.get_workflow("wf")
    assert sleeps == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0, 5.0, 5.0, 5.0]


def test_non_idempotent_calls_are_not_retried_on_5xx(client, cf, sleeps):
    deployed(client)
    cf.queue(EVENT, cf.fail(500, 10002, "Internal error"))
    cf.queue(CREATE, cf.fail(502, 10002, "Bad gateway"))

    with pytest.raises(ServerError) as event_error:
        client.send_event("wf", "job-1", "go", {})
    with pytest.raises(ServerError) as create_error:
        client.create_instance("wf")

    assert event_error.value.attempts == 1
    assert create_error.value.attempts == 1
    assert sleeps == []
    assert cf.events == []


def test_non_idempotent_calls_are_retried_on_429(client, cf, sleeps):
    deployed(client)
    cf.queue(EVENT, cf.fail(429, 10429, "Rate limited", headers={"Retry-After": "1"}))

    client.send_event("wf", "job-1", "go", {"n": 1})

    assert sleeps == [1.0]
    assert cf.events == [("wf", "job-1", "go", {"n": 1})]


def test_create_instance_with_an_id_is_retried(client, cf, sleeps):
    deployed(client)
    cf.queue(CREATE, cf.fail(502, 10002, "Bad gateway"))

    instance = client.create_instance("wf", instance_id="job-2")

    assert instance.id == "job-2"
    assert sleeps == [0.5]


# -- transport failures ------------------------------------------------------------------------


def test_timeout_is_retried_then_succeeds(client, cf, sleeps):
    cf.queue(GET_WF, httpx.ReadTimeout("timed out"))

    assert client.get_workflow("wf") is None
    assert sleeps == [0.5]


def test_timeout_exhausted_raises_transport_error(client, cf, sleeps):
    cf.queue(GET_WF, *[httpx.ReadTimeout("timed out")] * 4)

    with pytest.raises(TransportError) as caught:
        client.get_workflow("wf")

    error = caught.value
    assert isinstance(error, CloudflareError)
    assert error.attempts == 4
    assert error.status is None
    assert "ReadTimeout: timed out" in str(error)
    assert "4 attempts" in str(error)
    assert sleeps == [0.5, 1.0, 2.0]
    assert error.__cause__ is None
    assert error.__context__ is None


def test_read_timeout_on_a_non_idempotent_call_is_not_retried(client, cf, sleeps):
    deployed(client)
    cf.queue(EVENT, httpx.ReadTimeout("timed out"))

    with pytest.raises(TransportError) as caught:
        client.send_event("wf", "job-1", "go", {})

    assert caught.value.attempts == 1
    assert sleeps == []


def test_connect_error_on_a_non_idempotent_call_is_retried(client, cf, sleeps):
    deployed(client)
    cf.queue(EVENT, httpx.ConnectError("connection refused"))

    client.send_event("wf", "job-1", "go", {})

    assert sleeps == [0.5]
    assert len(cf.events) == 1


# -- configuration -----------------------------------------------------------------------------


def test_from_env_without_anything_names_both_variables():
    with pytest.raises(ConfigError) as caught:
        CloudflareClient.from_env({})

    text = str(caught.value)
    assert "CLOUDFLARE_API_TOKEN and CLOUDFLARE_ACCOUNT_ID are not set" in text
    assert "Workers Scripts Write" in text
    assert caught.value.attempts == 0


def test_from_env_without_token_names_only_the_token():
    with pytest.raises(ConfigError) as caught:
        CloudflareClient.from_env({"CLOUDFLARE_ACCOUNT_ID": "023e105f4ecef8ad9ca31a8372d0c353"})
    assert str(caught.value).startswith("CLOUDFLARE_API_TOKEN is not set")
    assert "CLOUDFLARE_ACCOUNT_ID" not in str(caught.value)


def test_from_env_without_account_names_only_the_account():
    with pytest.raises(ConfigError) as caught:
        CloudflareClient.from_env({"CLOUDFLARE_API_TOKEN": "t"})
    assert str(caught.value).startswith("CLOUDFLARE_ACCOUNT_ID is not set")
    assert "CLOUDFLARE_API_TOKEN" not in str(caught.value)


def test_from_env_treats_blank_values_as_missing():
    with pytest.raises(ConfigError, match="CLOUDFLARE_API_TOKEN"):
        CloudflareClient.from_env({"CLOUDFLARE_API_TOKEN": "  ", "CLOUDFLARE_ACCOUNT_ID": "a"})


def test_from_env_reads_os_environ(monkeypatch):
    monkeypatch.delenv("CLOUDFLARE_API_TOKEN", raising=False)
    monkeypatch.setenv("CLOUDFLARE_ACCOUNT_ID", "023e105f4ecef8ad9ca31a8372d0c353")
    with pytest.raises(ConfigError, match="CLOUDFLARE_API_TOKEN is not set"):
        CloudflareClient.from_env()


@pytest.mark.parametrize(
    ("token", "account", "match"),
    [
        ("", "023e105f4ecef8ad9ca31a8372d0c353", "CLOUDFLARE_API_TOKEN"),
        ("t", "", "CLOUDFLARE_ACCOUNT_ID"),
        ("t", "acct/../../user", "CLOUDFLARE_ACCOUNT_ID"),
        ("t", "x" * 33, "CLOUDFLARE_ACCOUNT_ID"),
    ],
)
def test_constructor_config_errors(token, account, match):
    with pytest.raises(ConfigError, match=match):
        CloudflareClient(token, account)


def test_negative_max_retries_is_refused():
    with pytest.raises(ValueError, match="max_retries"):
        CloudflareClient("t", "023e105f4ecef8ad9ca31a8372d0c353", max_retries=-1)
