"""Shared checks for the bad-input matrix: exit code, one line on stderr, no traceback."""

from __future__ import annotations

from typing import Any

import pytest
from typer.testing import Result

TOKEN = "tok-RELIABILITY-s3cr3t-0123456789"


def error_lines(text: str) -> list[str]:
    """The lines of stderr that are not hints (a hint may follow the error, indented) nor
    awf-deploy's notices of a request it retries (`...; retrying in 0.5 s (attempt 2 of 4)`)."""
    return [
        line
        for line in text.splitlines()
        if line.strip() and not line.startswith("  hint:") and "; retrying in " not in line
    ]


def check_failure(result: Result, code: int, *, prefix: str, must_say: str | None = None) -> str:
    """Exit `code`, exactly one error line on stderr (plus hints), no traceback, no token."""
    out = result.stdout + result.stderr
    assert result.exit_code == code, (result.exit_code, out, result.exception)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    assert "Traceback" not in out
    lines = error_lines(result.stderr)
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(prefix), lines[0]
    assert TOKEN not in out
    if must_say is not None:
        assert must_say.lower() in lines[0].lower(), lines[0]
    return lines[0]


@pytest.fixture
def cf_env(monkeypatch: pytest.MonkeyPatch) -> Any:
    """awf-deploy credentials for a local server; no retries, short deadlines."""
    import awf_deploy.cli

    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", TOKEN)
    monkeypatch.setenv("CLOUDFLARE_ACCOUNT_ID", "0123456789abcdef0123456789abcdef")
    monkeypatch.setitem(awf_deploy.cli._CLIENT_OPTIONS, "max_retries", 0)
    monkeypatch.setitem(awf_deploy.cli._CLIENT_OPTIONS, "request_deadline", 1.5)
    monkeypatch.setitem(awf_deploy.cli._CLIENT_OPTIONS, "max_response_bytes", 4 * 1024 * 1024)

    def at(url: str) -> None:
        monkeypatch.setenv("CLOUDFLARE_API_BASE_URL", url)

    return at
