"""The Cloudflare client's wire: constants, the secret token, request records, and the small
parsers and checks the session and the calls share."""

from __future__ import annotations

import email.parser
import email.policy
import email.utils
import hmac
import html
import logging
import math
import re
from collections.abc import Generator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, TypeVar, cast, get_args
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ValidationError

from ._bounded import (
    loads_bounded,
)
from ._errors import (
    ConfigError,
)
from ._models import (
    InstanceStatusAction,
)

logger = logging.getLogger("awf_deploy.cloudflare")

DEFAULT_BASE_URL: Final = "https://api.cloudflare.com/client/v4"
API_TOKEN_ENV: Final = "CLOUDFLARE_API_TOKEN"
ACCOUNT_ID_ENV: Final = "CLOUDFLARE_ACCOUNT_ID"
BASE_URL_ENV: Final = "CLOUDFLARE_API_BASE_URL"

# Token permission names as the dashboard shows them; the schema's x-api-token-group puts
# every Workflows call under the Workers Scripts group, not a Workflows-specific one.
_SCRIPTS_WRITE: Final = "Workers Scripts Write"
_SCRIPTS_READ: Final = "Workers Scripts Read"
_D1_WRITE: Final = "D1 Write"
_D1_READ: Final = "D1 Read"
_D1_NAME = re.compile(r"[a-z0-9][a-z0-9\-_]*")

_TOKENS_PAGE: Final = "https://dash.cloudflare.com/profile/api-tokens"

# Name rules from the schema; checking them here turns a Cloudflare 400 into a local
# ValueError that names the offending argument.
_SCRIPT_NAME = re.compile(r"[a-z0-9_][a-z0-9\-_]*")
VENDOR_PREFIX = "python_modules/"
_WORKFLOW_NAME = re.compile(r"[a-zA-Z0-9_][a-zA-Z0-9\-_]*")
_ACCOUNT_ID = re.compile(r"[A-Za-z0-9]{1,32}")
_STATUS_ACTIONS: Final = get_args(InstanceStatusAction)

# 7000/7003 mean "no route": a 404 carrying them points at a wrong account id, not at a
# missing script or workflow, so get_script/get_workflow must not read it as "absent".
_ROUTING_CODES: Final = frozenset({7000, 7003})


# Cloudflare's API answers JSON, errors included: an HTML page (a 404, a 200 login page) comes
# from something else at the configured address.
_TAG = re.compile(r"<[^>]*>")
_SCRIPT_OR_STYLE = re.compile(r"<(script|style)\b.*?</\1\s*>", re.IGNORECASE | re.DOTALL)


def _body_text(text: str) -> str:
    """A body that is not JSON, as one short line for an error message: an HTML page (a
    proxy's or a web server's) by its words, said to be a page, instead of its markup."""
    if not text.lstrip().startswith("<"):
        return " ".join(text.split())[:200]
    words = " ".join(html.unescape(_TAG.sub(" ", _SCRIPT_OR_STYLE.sub(" ", text))).split())
    return f"an HTML page: {words[:200]}" if words else "an HTML page"


def _not_the_api(base_url: str) -> str:
    """The hint for an answer that is not JSON, from the address the client used: when
    CLOUDFLARE_API_BASE_URL moved it, that variable is the first suspect (its host named; the
    whole value is not echoed, as in _check_base_url)."""
    if base_url.rstrip("/") == DEFAULT_BASE_URL:
        return (
            f"Cloudflare's API answers JSON, so something else answered: {BASE_URL_ENV} is not "
            f"set (the address is {DEFAULT_BASE_URL}); check any proxy in between."
        )
    return (
        f"Cloudflare's API answers JSON, so something else answered: {BASE_URL_ENV} sends "
        f"the requests to {httpx.URL(base_url).netloc.decode('ascii', 'replace')}, not to "
        f"Cloudflare's {DEFAULT_BASE_URL}: fix it or unset it (and check any proxy in between)."
    )


_CODE_HINTS: Final[Mapping[int, str]] = {
    1000: (
        "Cloudflare does not recognise this API token. If it is an account-owned token, "
        "note that /user/tokens/verify only accepts user tokens."
    ),
    10001: "Cloudflare did not accept the upload's content type.",
    10021: (
        "Cloudflare could not validate the uploaded script: check that main_module names an "
        "uploaded module and that compatibility_flags include python_workers."
    ),
    10027: "The script bundle is larger than Cloudflare allows.",
    10075: "This needs the Workers Paid plan.",
    10208: "Cron triggers on a workflow need the Workers Paid plan.",
}

_MAX_PAGES: Final = 1000
# Bounds on one command's HTTP (README, "What the HTTP client bounds").
DEFAULT_REQUEST_DEADLINE: Final = 120.0  # seconds, one request from connect to the last byte
DEFAULT_COMMAND_DEADLINE: Final = 900.0  # seconds, every request and retry of one client
DEFAULT_MAX_RESPONSE_BYTES: Final = 32 * 1024 * 1024  # a body, compressed or decompressed
_PER_PAGE: Final = 100
_D1_PER_PAGE: Final = 100  # the schema allows 10 to 10,000

M = TypeVar("M", bound=BaseModel)


class Secret:
    """A string that never shows itself: ``str`` and ``repr`` print ``***``.

    Use ``get_secret_value()`` at the one place the real value is needed.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str | Secret) -> None:
        self._value = value.get_secret_value() if isinstance(value, Secret) else value

    def get_secret_value(self) -> str:
        return self._value

    def __str__(self) -> str:
        return "***"

    def __repr__(self) -> str:
        return "Secret('***')"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)


class _BearerAuth(httpx.Auth):
    # An httpx.Auth rather than a default header keeps the token out of the client's
    # header mapping, which is what other code is likely to inspect or log.
    def __init__(self, token: Secret) -> None:
        self._token = token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self._token.get_secret_value()}"
        yield request

    def __repr__(self) -> str:
        return "_BearerAuth(token=***)"


@dataclass(frozen=True)
class _Call:
    method: str
    path: str
    what: str  # human description, e.g. "upload of script 'shop'"
    permission: str | None
    # Whether repeating the request after an ambiguous failure (timeout, 5xx) is harmless.
    # Non-idempotent calls are only retried when the request provably was not processed.
    idempotent: bool = True


def module_content_type(path: str) -> str:
    """A Python Worker module's part type, as wrangler sends it: the Worker's own files as
    Python; under ``python_modules/`` (pywrangler's vendor folder) the SDK's JavaScript under
    ``workers/`` as ES modules, which the SDK imports at run time, and every other file as data,
    which the runtime puts on Python's path."""
    if path.startswith(VENDOR_PREFIX):
        if path.startswith(VENDOR_PREFIX + "workers/") and path.endswith((".js", ".mjs")):
            return "application/javascript+module"
        return "application/octet-stream"
    return "text/x-python"


def _segment(value: str) -> str:
    return quote(value, safe="")


# The name rules in words, for a user who does not read regular expressions, and an example.
_NAME_RULES: Final[Mapping[re.Pattern[str], tuple[str, str]]] = {
    _WORKFLOW_NAME: ("letters, digits, '-' and '_', not '-' first", "order-1"),
    _SCRIPT_NAME: ("lower-case letters, digits, '-' and '_', not '-' first", "my-shop"),
    _D1_NAME: ("lower-case letters, digits, '-' and '_', not '-' or '_' first", "my-shop-db"),
}


def _check_name(kind: str, value: str, pattern: re.Pattern[str], max_len: int) -> None:
    if not isinstance(value, str) or not (0 < len(value) <= max_len):
        raise ValueError(f"{kind} must be a string of 1 to {max_len} characters, got {value!r}")
    if not pattern.fullmatch(value):
        rule, example = _NAME_RULES.get(pattern, ("", ""))
        raise ValueError(
            f"{kind} {value!r} must match {pattern.pattern}"
            + (f" ({rule}); pass e.g. {example!r}" if rule else "")
        )


def _check_d1_id(database_id: str) -> None:
    if not isinstance(database_id, str) or not 0 < len(database_id) <= 64:
        raise ValueError(f"D1 database id must have 1 to 64 characters, got {database_id!r}")


def _parse_retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def _split_multipart(content_type: str, body: bytes) -> dict[str, str]:
    head = f"Content-Type: {content_type}\r\n\r\n".encode("latin-1")
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    modules: dict[str, str] = {}
    for index, part in enumerate(cast(Any, message).iter_parts()):
        name = part.get_param("name", header="content-disposition")
        name = email.utils.collapse_rfc2231_value(name) if name else f"part-{index}"
        payload = part.get_payload(decode=True) or b""
        modules[name] = payload.decode("utf-8", errors="replace")
    return modules


def _missing_hint(env_var: str) -> str:
    if env_var == API_TOKEN_ENV:
        return (
            f"Create an API token with the {_SCRIPTS_WRITE!r} permission at {_TOKENS_PAGE} "
            f"and set {API_TOKEN_ENV}."
        )
    return f"Set {ACCOUNT_ID_ENV} to your account id (Workers & Pages overview on the dashboard)."


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _attempts(count: int) -> str:
    return f"{count} attempt{'s' if count != 1 else ''}"


_NOT_JSON: Final = object()


def _json(response: httpx.Response) -> Any:
    try:
        return loads_bounded(response.content)
    except ValueError:  # not JSON, not UTF-8, or nested deeper than MAX_JSON_DEPTH
        return _NOT_JSON


def _check_base_url(base_url: str) -> str:
    """The base URL without its trailing slash, or a ConfigError (one line, value not echoed:
    a token pasted into the wrong variable would leak)."""
    hint = f"Set {BASE_URL_ENV} to an http(s) URL such as {DEFAULT_BASE_URL}, or unset it."
    try:
        url = httpx.URL(base_url)
    except (httpx.InvalidURL, TypeError, ValueError):
        url = None
    if url is None or url.scheme not in ("http", "https") or not url.host:
        raise ConfigError(
            f"The Cloudflare API base URL is not an http(s) URL ({len(str(base_url))} characters).",
            hint=hint,
        )
    return str(base_url).rstrip("/")


def _validate(model: type[M], data: Any) -> M | str:
    """The parsed model, or why not.

    Returning the reason instead of raising lets callers raise their own error outside the
    ``except`` block, so it does not chain pydantic's error, whose input echoes the body.
    """
    if data is _NOT_JSON:
        return "the body is not JSON"
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ()))
        return f"{where}: {first.get('msg', 'invalid')}" if where else str(first.get("msg"))
