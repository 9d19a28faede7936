"""Every error awf_deploy raises, in one tree.

    Exception
    ├── AwfDeployError              base of every error awf_deploy raises itself
    │   ├── CloudflareError         the v4 HTTP client: status, Cloudflare's codes and
    │   │   │                       messages, attempts, a hint (awf_deploy.cloudflare)
    │   │   ├── ConfigError         no token or account id: names the env var to set
    │   │   ├── TransportError      network failure or timeout, after the retries
    │   │   ├── UnexpectedResponse  a 2xx answer the client cannot parse
    │   │   ├── AuthError           401/403: the token is invalid or lacks a permission
    │   │   ├── NotFoundError       404
    │   │   ├── RateLimitedError    429, after the retries (or Retry-After beyond the cap)
    │   │   ├── ServerError         5xx, after the retries
    │   │   └── RequestRejected     any other 4xx (or ``success: false``), e.g. 10021
    │   ├── DeadlineExceeded        inside the client: a request's overall deadline passed
    │   ├── BodyTooLarge            inside the client: an answer over the size cap (both are
    │   │                           turned into a TransportError at the client's boundary)
    │   ├── BuildError              the flow cannot become a Worker bundle (also a ValueError)
    │   ├── ProvisionError          D1 provisioning or a migration failed before the upload
    │   ├── HarnessError            the real-runtime harness (Pyodide + Miniflare) is missing,
    │   │   │                       failed or did not answer in time (also a RuntimeError)
    │   │   └── BundleImportError   the bundle's Python failed at import: module + traceback
    │   ├── DevError                `awf-deploy dev` cannot start (port in use, ...)
    │   └── WorkerApiError          a Worker's own HTTP API answered an error
    │       └── NotListening        nothing listens at the Worker's URL
    └── awf_sim.errors.AwfError     loading or verifying the flow in the simulator
        └── FlowError, ...          (see awf_sim.errors)

A failed verification is not an exception: `verify` returns `GateViolation` records (chaos's
own record is `awf_sim.chaos.Violation`), and `awf-deploy push` refuses to push while there are
any.

This module imports nothing of awf_deploy, so every part of it can name the root.
"""

from __future__ import annotations

__all__ = ["AwfDeployError", "BuildError"]


class AwfDeployError(Exception):
    """Base class of every error awf_deploy raises itself."""


class BuildError(AwfDeployError, ValueError):
    """The flow cannot be bundled as asked; the message says why and what to do."""
