"""`wrangler deploy` of a built bundle must work as it is: Cloudflare's own CLI checks each one.

`wrangler deploy --dry-run` reads wrangler.toml, resolves every module and binding, and stops
before uploading; it needs no account and no network. wrangler is pinned in
tests/deploy/wrangler (`npm ci` there; .ci/run does it).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from awf_deploy import build_bundle, write_bundle
from awf_sim.dsl import isolated_registries

HERE = Path(__file__).resolve().parent
WRANGLER = HERE / "wrangler" / "node_modules" / ".bin" / "wrangler"
EXAMPLES = HERE.parents[1] / "examples"
FLOWS = sorted(p.name for p in EXAMPLES.glob("*.py"))

# The examples define the same Domain names in different files (order_processing and its
# fixed version), and other tests load them into this process too: replacing one with the
# other is expected here, so its warning is.
REDEFINITION_EXPECTED = pytest.mark.filterwarnings(
    "ignore:Domain '.*' defined at .* replaces the one defined at:UserWarning"
)
pytestmark = [
    REDEFINITION_EXPECTED,
    pytest.mark.skipif(
        not WRANGLER.exists() and os.environ.get("CI") != "true",
        reason="wrangler is not installed: run `npm ci` in tests/deploy/wrangler",
    ),
]


@pytest.mark.parametrize("name", FLOWS)
def test_wrangler_accepts_the_bundle_as_it_is(name: str, tmp_path: Path) -> None:
    with isolated_registries():
        bundle = build_bundle(
            EXAMPLES / name, d1_database_id="00000000-0000-0000-0000-000000000000"
        )
    folder = write_bundle(bundle, tmp_path / "bundle")
    result = subprocess.run(
        [str(WRANGLER), "deploy", "--dry-run", "--outdir", str(tmp_path / "out")],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "WRANGLER_SEND_METRICS": "false", "NO_COLOR": "1"},
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "--dry-run: exiting now." in output
    for workflow in bundle.workflows:
        assert f"env.{workflow.binding} ({workflow.class_name})" in output
    assert (tmp_path / "out" / "entry.py").is_file()
