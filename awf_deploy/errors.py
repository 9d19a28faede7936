"""Every error awf_deploy raises, in one tree.

    Exception
    ├── AwfDeployError              base of every error awf_deploy raises itself
    │   └── CloudflareError         the v4 HTTP client: status, Cloudflare's codes and
    │       │                       messages, attempts, a hint (awf_deploy.cloudflare)
    │       ├── ConfigError         no token or account id: names the env var to set
    │       ├── TransportError      network failure or timeout, after the retries
    │       ├── UnexpectedResponse  a 2xx answer the client cannot parse
    │       ├── AuthError           401/403: the token is invalid or lacks a permission
    │       ├── NotFoundError       404
    │       ├── RateLimitedError    429, after the retries (or Retry-After beyond the cap)
    │       ├── ServerError         5xx, after the retries
    │       └── RequestRejected     any other 4xx (or ``success: false``), e.g. 10021
    ├── ValueError
    │   └── BuildError              the flow cannot become a Worker bundle (awf_deploy);
    │                               it moves under AwfDeployError with the bundle rework
    └── awf_sim.errors.AwfError     loading or verifying the flow in the simulator
        └── FlowError, ...          (see awf_sim.errors)

A failed verification is not an exception: `verify` returns `Violation` records (a name that
awf_sim.chaos also uses, for a different record: to be renamed once the deploy rework, whose
tests pin `awf_deploy.__all__`, has merged), and `awf-deploy push` refuses to push while there
are any.

This module imports nothing of awf_deploy, so every part of it can name the root.
"""

from __future__ import annotations

__all__ = ["AwfDeployError"]


class AwfDeployError(Exception):
    """Base class of every error awf_deploy raises itself."""
