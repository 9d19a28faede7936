"""The Cloudflare v4 HTTP client awf_deploy pushes with: httpx, pydantic models, one error tree.

    >>> with CloudflareClient.from_env() as cf:      # doctest: +SKIP
    ...     cf.upload_script("shop", {"entry.py": src}, "entry.py", compatibility_date="2025-06-01")
    ...     cf.put_workflow("order-processing", "shop", "OrderProcessingWorkflow")

Errors (see ``_errors`` for the tree) carry Cloudflare's codes and messages and a hint; the API
token never appears in a repr, an error or a log record (logger ``awf_deploy.cloudflare``).
"""

from ._client import (
    ACCOUNT_ID_ENV,
    API_TOKEN_ENV,
    BASE_URL_ENV,
    DEFAULT_BASE_URL,
    CloudflareClient,
    Secret,
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
    D1Database,
    D1QueryResult,
    InstanceCounts,
    InstanceDetails,
    InstanceErrorInfo,
    InstanceInfo,
    InstanceStatus,
    InstanceStatusAction,
    InstanceStatusChange,
    InstanceTrigger,
    ResultInfo,
    Schedule,
    Script,
    TokenVerification,
    UploadedScript,
    WorkflowInfo,
    WorkflowSchedule,
)

__all__ = [
    "ACCOUNT_ID_ENV",
    "API_TOKEN_ENV",
    "BASE_URL_ENV",
    "DEFAULT_BASE_URL",
    "ApiMessage",
    "AuthError",
    "CloudflareClient",
    "CloudflareError",
    "ConfigError",
    "D1Database",
    "D1QueryResult",
    "InstanceCounts",
    "InstanceDetails",
    "InstanceErrorInfo",
    "InstanceInfo",
    "InstanceStatus",
    "InstanceStatusAction",
    "InstanceStatusChange",
    "InstanceTrigger",
    "NotFoundError",
    "RateLimitedError",
    "RequestRejected",
    "ResultInfo",
    "Schedule",
    "Script",
    "Secret",
    "ServerError",
    "TokenVerification",
    "TransportError",
    "UnexpectedResponse",
    "UploadedScript",
    "WorkflowInfo",
    "WorkflowSchedule",
]

# Public names show their public home (awf_deploy.X, not awf_deploy._x.X) in reprs,
# tracebacks and pickles.
for _name in __all__:
    _obj = globals()[_name]
    is_code = isinstance(_obj, type) or hasattr(_obj, "__code__")
    if is_code and _obj.__module__.startswith(__name__ + "._"):
        _obj.__module__ = __name__
del _name, _obj, is_code
