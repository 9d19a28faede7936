"""Errors raised by the Cloudflare client (the whole awf_deploy tree: ``awf_deploy.errors``).

Every failure leaves the client as one of these, mapped in one place (``_Session._error_for``)::

    CloudflareError                 an AwfDeployError: status, codes, messages, attempts, hint
    ├── ConfigError                 no token or account id: names the env var to set
    ├── TransportError              network failure or timeout, after the retries
    ├── UnexpectedResponse          a 2xx answer the client cannot parse
    ├── AuthError                   401/403: the token is invalid or lacks a permission
    ├── NotFoundError               404
    ├── RateLimitedError            429, after the retries (or Retry-After beyond the cap)
    ├── ServerError                 5xx, after the retries
    └── RequestRejected             any other 4xx (or ``success: false``), e.g. 10021

Errors hold plain data only, never the httpx request or response: those carry the
``Authorization`` header, and error reporters that capture exception attributes would leak it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypedDict, Unpack

from ..errors import AwfDeployError
from ._models import ApiMessage

__all__ = [
    "AuthError",
    "CloudflareError",
    "ConfigError",
    "NotFoundError",
    "RateLimitedError",
    "RequestRejected",
    "ServerError",
    "TransportError",
    "UnexpectedResponse",
]


class _Details(TypedDict, total=False):
    status: int | None
    errors: Sequence[ApiMessage]
    method: str | None
    path: str | None
    attempts: int
    hint: str | None
    ray_id: str | None


class CloudflareError(AwfDeployError):
    """Base class. ``str()`` is a complete, user-facing sentence (with a hint when known)."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        errors: Sequence[ApiMessage] = (),
        method: str | None = None,
        path: str | None = None,
        attempts: int = 0,
        hint: str | None = None,
        ray_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.errors: tuple[ApiMessage, ...] = tuple(errors)
        self.method = method
        self.path = path
        self.attempts = attempts
        self.hint = hint
        self.ray_id = ray_id

    @property
    def codes(self) -> tuple[int, ...]:
        """Cloudflare's error codes, in the order the envelope listed them."""
        return tuple(e.code for e in self.errors if e.code is not None)

    def __str__(self) -> str:
        return self.message if self.hint is None else f"{self.message}\n  hint: {self.hint}"

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.message!r}, status={self.status!r}, "
            f"codes={self.codes!r}, attempts={self.attempts!r})"
        )


class ConfigError(CloudflareError):
    """Credentials or settings are missing or malformed; nothing was sent."""


class TransportError(CloudflareError):
    """The request did not get an HTTP answer (connection failure, timeout)."""


class UnexpectedResponse(CloudflareError):
    """Cloudflare answered 2xx with a body that does not match the expected shape."""


class AuthError(CloudflareError):
    """401 or 403. ``permission`` names the API token permission the call needs, if known."""

    def __init__(
        self, message: str, *, permission: str | None = None, **details: Unpack[_Details]
    ) -> None:
        super().__init__(message, **details)
        self.permission = permission


class NotFoundError(CloudflareError):
    """404: the script, workflow or instance does not exist (or the account id is wrong).

    ``routing``: the 404 says the way there is wrong, not the thing asked for: Cloudflare's
    "no route" codes (a wrong account id), or a body that is no JSON (something other than
    Cloudflare's API answered: a wrong ``CLOUDFLARE_API_BASE_URL``). It says the same of
    anything, so it never means "absent"."""

    def __init__(self, message: str, *, routing: bool = False, **details: Unpack[_Details]) -> None:
        super().__init__(message, **details)
        self.routing = routing


class RateLimitedError(CloudflareError):
    """429 after the retries. ``retry_after`` is what Cloudflare asked for, in seconds."""

    def __init__(
        self, message: str, *, retry_after: float | None = None, **details: Unpack[_Details]
    ) -> None:
        super().__init__(message, **details)
        self.retry_after = retry_after


class ServerError(CloudflareError):
    """5xx after the retries."""


class RequestRejected(CloudflareError):
    """Cloudflare refused the request (4xx other than 401/403/404/429); see ``codes``."""
