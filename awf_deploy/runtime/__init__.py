"""What runs inside the Worker: the sources awf-deploy copies into every bundle.

- `awf_runtime.py` (copied as `awf_runtime.py`): the adapter from the DSL's Runtime protocol to
  Cloudflare's Python Workflows `step` object, `ctx.db` over D1, `ctx.ai` over Workers AI, and
  the Worker's fetch and scheduled handlers.
- `awf_sim_init.py` (copied as `awf_sim/__init__.py`): the `awf_sim` a flow file imports, with
  the DSL (`awf_sim/dsl/`, copied verbatim) and nothing of the simulator.

Both are standard library only; they are not imported by awf_deploy itself.
"""

from pathlib import Path

__all__ = ["ADAPTER", "AWF_SIM_INIT", "RUNTIME_DIR"]

RUNTIME_DIR = Path(__file__).resolve().parent
ADAPTER = RUNTIME_DIR / "awf_runtime.py"
AWF_SIM_INIT = RUNTIME_DIR / "awf_sim_init.py"
