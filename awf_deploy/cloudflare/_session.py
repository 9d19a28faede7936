"""The Cloudflare client's session: construction, lifetime, and the plumbing every call goes
through (one error boundary, retries with backoff, deadlines, pagination)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Any, Self

import httpx

from ._bounded import (
    ACCEPT_ENCODING,
    BodyTooLarge,
    Deadline,
    DeadlineExceeded,
    bounded_transport,
    read_body,
)
from ._errors import (
    AuthError,
    CloudflareError,
    ConfigError,
    NotFoundError,
    RateLimitedError,
    RequestRejected,
    ServerError,
    TransportError,
    UnexpectedResponse,
)
from ._models import (
    ApiMessage,
    Envelope,
    Schedule,
)
from ._wire import (
    _ACCOUNT_ID,
    _CODE_HINTS,
    _MAX_PAGES,
    _NOT_JSON,
    _PER_PAGE,
    _ROUTING_CODES,
    _TOKENS_PAGE,
    _WORKFLOW_NAME,
    ACCOUNT_ID_ENV,
    API_TOKEN_ENV,
    BASE_URL_ENV,
    DEFAULT_BASE_URL,
    DEFAULT_COMMAND_DEADLINE,
    DEFAULT_MAX_RESPONSE_BYTES,
    DEFAULT_REQUEST_DEADLINE,
    M,
    Secret,
    _attempts,
    _BearerAuth,
    _body_text,
    _Call,
    _cap,
    _check_base_url,
    _check_name,
    _json,
    _missing_hint,
    _not_the_api,
    _parse_retry_after,
    _segment,
    _validate,
    logger,
)

__all__ = ["_Session"]


class _Session:
    """The client's construction, lifetime and plumbing: one error boundary (`_send`,
    `_error_for`), retries, deadlines and pagination. `CloudflareClient` adds the calls."""

    def __init__(
        self,
        token: str | Secret,
        account_id: str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        transport: httpx.BaseTransport | None = None,
        max_retries: int = 3,
        max_retry_after: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
        timeout: float = 30.0,
        request_deadline: float = DEFAULT_REQUEST_DEADLINE,
        command_deadline: float | None = DEFAULT_COMMAND_DEADLINE,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> None:
        secret = Secret(token)
        if not secret.get_secret_value().strip():
            raise ConfigError("No Cloudflare API token given.", hint=_missing_hint(API_TOKEN_ENV))
        account_id = (account_id or "").strip()
        if not account_id:
            raise ConfigError("No Cloudflare account id given.", hint=_missing_hint(ACCOUNT_ID_ENV))
        if not _ACCOUNT_ID.fullmatch(account_id):
            # The value is not echoed: a token pasted into the wrong variable would leak.
            raise ConfigError(
                f"The Cloudflare account id is malformed ({len(account_id)} characters; "
                "expected up to 32 letters and digits).",
                hint=f"Set {ACCOUNT_ID_ENV} (or --account-id) to the 32-character id shown "
                "on the dashboard (Workers & Pages overview).",
            )
        if max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        if not request_deadline > 0 or (command_deadline is not None and not command_deadline > 0):
            raise ValueError("deadlines must be positive numbers of seconds")
        if max_response_bytes < 1:
            raise ValueError("max_response_bytes must be >= 1")
        value = secret.get_secret_value().strip()
        if not all("!" <= ch <= "~" for ch in value):
            # Not echoed, and refused before any request: httpx would put the token, escaped,
            # into its "Illegal header value" error, where redaction cannot find it.
            raise ConfigError(
                "The Cloudflare API token contains a space, a line break or another character "
                "no token has.",
                hint=f"Set {API_TOKEN_ENV} to the token alone (no quotes, no line breaks).",
            )
        self._token = Secret(value)
        self.account_id = account_id
        self.base_url = _check_base_url(base_url)
        self.max_retries = max_retries
        self.max_retry_after = max_retry_after
        self.request_deadline = request_deadline
        self.command_deadline = command_deadline
        self.max_response_bytes = max_response_bytes
        self._ends_at = None if command_deadline is None else time.monotonic() + command_deadline
        self._deadline = Deadline()
        self._sleep = sleep
        self._http = httpx.Client(
            base_url=self.base_url,
            auth=_BearerAuth(self._token),
            transport=transport if transport is not None else bounded_transport(self._deadline),
            timeout=httpx.Timeout(timeout),
            headers={
                "Accept": "application/json",
                "Accept-Encoding": ACCEPT_ENCODING,
                "User-Agent": "awf-deploy",
            },
        )

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        token: str | Secret | None = None,
        account_id: str | None = None,
        base_url: str | None = None,
        transport: httpx.BaseTransport | None = None,
        max_retries: int = 3,
        max_retry_after: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
        timeout: float = 30.0,
        request_deadline: float = DEFAULT_REQUEST_DEADLINE,
        command_deadline: float | None = DEFAULT_COMMAND_DEADLINE,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> Self:
        """Build a client from ``CLOUDFLARE_API_TOKEN``, ``CLOUDFLARE_ACCOUNT_ID`` and
        ``CLOUDFLARE_API_BASE_URL``; explicit arguments (CLI flags) win over the environment.
        """
        env = os.environ if environ is None else environ
        token = token if token is not None else env.get(API_TOKEN_ENV, "")
        account_id = account_id if account_id is not None else env.get(ACCOUNT_ID_ENV, "")
        token_value = token.get_secret_value() if isinstance(token, Secret) else token
        missing = [
            name
            for name, value in ((API_TOKEN_ENV, token_value), (ACCOUNT_ID_ENV, account_id))
            if not value.strip()
        ]
        if missing:
            raise ConfigError(
                f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set.",
                hint=" ".join(_missing_hint(name) for name in missing),
            )
        return cls(
            token,
            account_id,
            base_url=base_url or env.get(BASE_URL_ENV) or DEFAULT_BASE_URL,
            transport=transport,
            max_retries=max_retries,
            max_retry_after=max_retry_after,
            sleep=sleep,
            timeout=timeout,
            request_deadline=request_deadline,
            command_deadline=command_deadline,
            max_response_bytes=max_response_bytes,
        )

    def __repr__(self) -> str:
        return (
            f"CloudflareClient(account_id={self.account_id!r}, base_url={self.base_url!r}, "
            "token=***)"
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- plumbing --------------------------------------------------------------------------

    def _account(self, tail: str) -> str:
        return f"/accounts/{_segment(self.account_id)}{tail}"

    def _instance_call(
        self,
        method: str,
        workflow: str,
        instance_id: str,
        tail: str,
        verb: str,
        permission: str,
        *,
        idempotent: bool = True,
    ) -> _Call:
        _check_name("workflow name", workflow, _WORKFLOW_NAME, 64)
        if not isinstance(instance_id, str) or not 0 < len(instance_id) <= 271:
            raise ValueError(f"instance id must have 1 to 271 characters, got {instance_id!r}")
        path = self._account(
            f"/workflows/{_segment(workflow)}/instances/{_segment(instance_id)}{tail}"
        )
        what = f"{verb} instance {instance_id!r} of workflow {workflow!r}"
        return _Call(method, path, what, permission, idempotent)

    def _redact(self, text: str) -> str:
        token = self._token.get_secret_value()
        return text.replace(token, "***") if token else text

    def _send(
        self,
        call: _Call,
        *,
        params: Mapping[str, str | int] | None = None,
        json: Any = None,
        data: Mapping[str, str] | None = None,
        files: Sequence[tuple[str, tuple[str, bytes, str]]] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        attempt = 0
        while True:
            attempt += 1
            logger.debug("%s %s (attempt %d)", call.method, call.path, attempt)
            failure: str | None = None
            safe = call.idempotent
            retryable = True
            try:
                response = self._request(call, params, json, data, files, headers)
            except httpx.TransportError as exc:
                # A connect failure means Cloudflare never saw the request.
                safe = safe or isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)
                failure = self._redact(f"{type(exc).__name__}: {exc}" if str(exc) else repr(exc))
            except DeadlineExceeded as exc:
                failure = f"no complete answer within {exc}"
            except BodyTooLarge as exc:
                failure = f"the answer is too large ({exc}; the cap is max_response_bytes)"
                retryable = False
            except httpx.DecodingError as exc:
                failure = self._redact(f"the answer could not be decoded ({exc})")
                retryable = False
            except (httpx.HTTPError, httpx.InvalidURL) as exc:
                failure = self._redact(f"{type(exc).__name__}: {exc}")
                retryable = False
            if failure is not None:
                if retryable and safe and attempt <= self.max_retries and self._can_wait(attempt):
                    self._backoff(call, attempt, None, failure)
                    continue
                # Raised outside the except block so that neither __cause__ nor __context__
                # holds the httpx exception: it carries the request, Authorization header
                # included, and error reporters walk exception chains.
                raise TransportError(
                    f"{_cap(call.what)} failed: {' '.join(failure.split())} "
                    f"({call.method} {call.path}; {_attempts(attempt)})",
                    method=call.method,
                    path=call.path,
                    attempts=attempt,
                    hint=f"Check the network connection and {BASE_URL_ENV}.",
                )
            status = response.status_code
            logger.debug("%s %s -> %d", call.method, call.path, status)
            if status == 429 or status >= 500:
                retry_after = _parse_retry_after(response.headers.get("retry-after"))
                waitable = retry_after is None or retry_after <= self.max_retry_after
                safe = status == 429 or call.idempotent
                if (
                    safe
                    and waitable
                    and attempt <= self.max_retries
                    and self._can_wait(attempt, retry_after)
                ):
                    self._backoff(call, attempt, retry_after, f"HTTP {status}")
                    continue
            if response.is_success:
                return response
            raise self._error_for(call, response, attempt)

    def _request(
        self,
        call: _Call,
        params: Mapping[str, str | int] | None,
        json: Any,
        data: Mapping[str, str] | None,
        files: Sequence[tuple[str, tuple[str, bytes, str]]] | None,
        headers: Mapping[str, str] | None,
    ) -> httpx.Response:
        """One request under the deadlines, its body read whole within the size cap."""
        now = time.monotonic()
        at = now + self.request_deadline
        what = f"the request deadline ({self.request_deadline:g} s)"
        if self._ends_at is not None and self._ends_at < at:
            at = self._ends_at
            what = f"the command deadline ({self.command_deadline:g} s)"
        self._deadline.set(at, what)
        try:
            self._deadline.remaining()
            request = self._http.build_request(
                call.method,
                call.path,
                params=params,
                json=json,
                data=data,
                files=files,
                headers=headers,
            )
            streamed = self._http.send(request, stream=True)
            body = read_body(streamed, self._deadline, self.max_response_bytes)
        except httpx.TimeoutException:
            # The backend cut the socket timeout to what was left of the deadline.
            if time.monotonic() >= at - 0.05:
                raise DeadlineExceeded(what) from None
            raise
        finally:
            self._deadline.set(None, "")
        kept = [
            (name, value)
            for name, value in streamed.headers.multi_items()
            if name.lower() not in ("content-encoding", "content-length", "transfer-encoding")
        ]
        return httpx.Response(
            streamed.status_code,
            headers=kept,
            content=body,
            request=request,
            extensions={
                key: streamed.extensions[key]
                for key in ("reason_phrase", "http_version")
                if key in streamed.extensions
            },
        )

    def _can_wait(self, attempt: int, retry_after: float | None = None) -> bool:
        """Whether the backoff before the next attempt ends within the command deadline."""
        if self._ends_at is None:
            return True
        return time.monotonic() + self._delay(attempt, retry_after) < self._ends_at

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return retry_after
        return float(min(0.5 * 2 ** (attempt - 1), self.max_retry_after))

    def _backoff(self, call: _Call, attempt: int, retry_after: float | None, reason: str) -> None:
        delay = self._delay(attempt, retry_after)
        logger.warning(
            "%s %s: %s; retrying in %.1f s (attempt %d of %d)",
            call.method,
            call.path,
            reason,
            delay,
            attempt + 1,
            self.max_retries + 1,
        )
        self._sleep(delay)

    def _error_for(self, call: _Call, response: httpx.Response, attempts: int) -> CloudflareError:
        status = response.status_code
        errors = self._error_messages(response)
        codes = {e.code for e in errors if e.code is not None}
        detail = "; ".join(str(e) for e in errors) or response.reason_phrase or "no details"
        message = self._redact(
            f"{_cap(call.what)} failed with HTTP {status}: {detail} "
            f"({call.method} {call.path}; {_attempts(attempts)})"
        )
        hints = [
            _CODE_HINTS[code]
            for code in sorted(codes)
            # 10001 is the upload's content-type refusal only with a 415: Cloudflare uses the
            # code for other failures too (a 500 of a workflow listing said "content type").
            if code in _CODE_HINTS and (code != 10001 or status == 415)
        ]
        common: dict[str, Any] = {
            "status": status,
            "errors": errors,
            "method": call.method,
            "path": call.path,
            "attempts": attempts,
            "ray_id": response.headers.get("cf-ray"),
        }
        if status == 401:
            hints.append(
                f"Cloudflare rejected the API token (invalid, expired or revoked): "
                f"check {API_TOKEN_ENV}, or create a new token at {_TOKENS_PAGE}."
            )
            return AuthError(message, permission=call.permission, hint=" ".join(hints), **common)
        if status == 403:
            needs = f"the {call.permission!r} permission" if call.permission else "a permission"
            hints.append(
                f"The API token lacks {needs} on account {self.account_id} (or "
                f"{ACCOUNT_ID_ENV} names the wrong account): edit the token at {_TOKENS_PAGE}."
            )
            return AuthError(message, permission=call.permission, hint=" ".join(hints), **common)
        if status == 404:
            routing = bool(codes & _ROUTING_CODES)
            if routing:
                hints.append(
                    f"Cloudflare found no such route: check the account id ({ACCOUNT_ID_ENV} or "
                    "--account-id)."
                )
            elif _json(response) is _NOT_JSON:
                routing = True
                hints.append(_not_the_api(self.base_url))
            return NotFoundError(message, hint=" ".join(hints) or None, routing=routing, **common)
        if status == 429:
            retry_after = _parse_retry_after(response.headers.get("retry-after"))
            wait = f" Cloudflare asks to wait {retry_after:g} s." if retry_after else ""
            hints.append(
                "The account is over Cloudflare's API rate limit (1200 requests per 5 "
                f"minutes).{wait} Try again later."
            )
            return RateLimitedError(
                message, retry_after=retry_after, hint=" ".join(hints), **common
            )
        if status >= 500:
            hints.append(
                "Cloudflare had an internal error; try again later "
                "(https://www.cloudflarestatus.com)."
            )
            return ServerError(message, hint=" ".join(hints), **common)
        return RequestRejected(message, hint=" ".join(hints) or None, **common)

    def _error_messages(self, response: httpx.Response) -> list[ApiMessage]:
        envelope = _validate(Envelope, _json(response))
        if isinstance(envelope, str):
            text = _body_text(response.text)
            return [ApiMessage(message=self._redact(text))] if text else []
        # Workflows error bodies sometimes say more in `messages` than in `errors`.
        return [
            ApiMessage(code=e.code, message=self._redact(e.message))
            for e in envelope.errors or envelope.messages
        ]

    def _unexpected(self, call: _Call, response: httpx.Response, why: str) -> UnexpectedResponse:
        return UnexpectedResponse(
            self._redact(
                f"{_cap(call.what)}: unexpected answer from Cloudflare ({why}) "
                f"({call.method} {call.path}; HTTP {response.status_code})"
            ),
            hint=_not_the_api(self.base_url) if _json(response) is _NOT_JSON else None,
            status=response.status_code,
            method=call.method,
            path=call.path,
            ray_id=response.headers.get("cf-ray"),
        )

    def _envelope(self, call: _Call, response: httpx.Response) -> Envelope:
        envelope = _validate(Envelope, _json(response))
        if isinstance(envelope, str):
            raise self._unexpected(call, response, f"not a v4 envelope: {envelope}")
        if not envelope.success:
            # A 2xx with success: false is still a refusal.
            raise RequestRejected(
                self._redact(
                    f"{_cap(call.what)} failed: "
                    f"{'; '.join(str(e) for e in envelope.errors) or 'success: false'} "
                    f"({call.method} {call.path})"
                ),
                status=response.status_code,
                errors=envelope.errors,
                method=call.method,
                path=call.path,
            )
        return envelope

    def _parse(self, call: _Call, response: httpx.Response, model: type[M]) -> M:
        parsed = _validate(model, self._envelope(call, response).result)
        if isinstance(parsed, str):
            raise self._unexpected(call, response, parsed)
        return parsed

    def _result(self, call: _Call, model: type[M]) -> M:
        return self._parse(call, self._send(call), model)

    def _result_or_none(self, call: _Call, model: type[M]) -> M | None:
        """`_result`, or None when the thing asked for does not exist; a 404 that says the
        account or route is wrong is raised as it is (it would say the same of anything)."""
        try:
            return self._result(call, model)
        except NotFoundError as exc:
            if exc.routing:
                raise
            return None

    def _schedules(self, call: _Call, response: httpx.Response) -> list[Schedule]:
        envelope = self._envelope(call, response)
        result = envelope.result if isinstance(envelope.result, dict) else {}
        return self._items(call, response, Schedule, result.get("schedules") or [])

    def _items(
        self, call: _Call, response: httpx.Response, model: type[M], raw: list[Any]
    ) -> list[M]:
        items: list[M] = []
        for item in raw:
            parsed = _validate(model, item)
            if isinstance(parsed, str):
                raise self._unexpected(call, response, parsed)
            items.append(parsed)
        return items

    def _paginate(
        self,
        call: _Call,
        params: Mapping[str, str],
        model: type[M],
        *,
        limit: int | None,
        cursor: bool,
    ) -> list[M]:
        items: list[M] = []
        page = 1
        next_cursor: str | None = None
        seen_cursors: set[str] = set()
        per_page = min(_PER_PAGE, limit) if limit is not None else _PER_PAGE
        for _ in range(_MAX_PAGES):
            query: dict[str, str | int] = {**params, "per_page": per_page}
            if next_cursor is not None:
                query["cursor"] = next_cursor
            else:
                query["page"] = page
            response = self._send(call, params=query)
            envelope = self._envelope(call, response)
            if not isinstance(envelope.result, list):
                raise self._unexpected(call, response, "result is not a list")
            batch = self._items(call, response, model, envelope.result)
            items.extend(batch)
            if limit is not None and len(items) >= limit:
                return items[:limit]
            info = envelope.result_info
            if not batch or info is None:
                return items
            if info.total_count is not None and len(items) >= info.total_count:
                return items
            if len(batch) < (info.per_page or per_page):
                return items
            if cursor and info.cursor and info.cursor not in seen_cursors:
                seen_cursors.add(info.cursor)
                next_cursor = info.cursor
            elif next_cursor is not None:
                return items  # cursor paging without a new cursor: nothing further
            elif info.total_pages is not None and page >= info.total_pages:
                return items
            else:
                page += 1
        logger.warning("%s %s: stopped after %d pages", call.method, call.path, _MAX_PAGES)
        return items
