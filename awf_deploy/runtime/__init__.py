"""What runs inside the Worker: the sources awf-deploy copies into every bundle.

- `awf_runtime/` (copied as the folder `awf_runtime/`): the adapter from the DSL's Runtime
  protocol to Cloudflare's Python Workflows `step` object, `ctx.db` over D1, `ctx.ai` over
  Workers AI, `ctx.http` over fetch, and the Worker's fetch and scheduled handlers.
- `awf_sim_init.py` (copied as `awf_sim/__init__.py`): the `awf_sim` a flow file imports, with
  the DSL (`awf_sim/dsl/`, copied verbatim) and nothing of the simulator.

Both are standard library only; they are not imported by awf_deploy itself.
"""

from pathlib import Path

__all__ = ["ADAPTER", "AWF_SIM_INIT", "RUNTIME_DIR", "adapter_files"]

RUNTIME_DIR = Path(__file__).resolve().parent
ADAPTER = RUNTIME_DIR / "awf_runtime"
AWF_SIM_INIT = RUNTIME_DIR / "awf_sim_init.py"


def adapter_files() -> dict[str, str]:
    """The adapter package's sources by bundle path (`awf_runtime/__init__.py`, ...)."""
    return {
        f"awf_runtime/{path.name}": path.read_text(encoding="utf-8")
        for path in sorted(ADAPTER.glob("*.py"))
    }
