"""awf_deploy: build a Worker bundle from a flow file and push it to Cloudflare.

    bundle = build_bundle("flow.py", d1_database_id="...")    # entry.py, runtime, wrangler.toml
    write_bundle(bundle, "build/shop")                         # `npx wrangler deploy` works there
    with CloudflareClient.from_env() as cf:
        if not verify(load_flow("flow.py")):
            report = push(cf, make_plan(cf, bundle))

The HTTP client and its errors live in `awf_deploy.cloudflare`.
"""

from ._bundle import (
    BuildError,
    Bundle,
    BundledWorkflow,
    binding_name,
    build_bundle,
    class_name,
    read_bundle_hash,
    script_name_for,
    write_bundle,
)
from ._inprocess import bundle_in_process
from ._push import (
    Change,
    GateViolation,
    Plan,
    PushReport,
    make_plan,
    push,
    require_deployable,
    verify,
)

__all__ = [
    "BuildError",
    "Bundle",
    "BundledWorkflow",
    "Change",
    "GateViolation",
    "Plan",
    "PushReport",
    "binding_name",
    "build_bundle",
    "bundle_in_process",
    "class_name",
    "make_plan",
    "push",
    "read_bundle_hash",
    "require_deployable",
    "script_name_for",
    "verify",
    "write_bundle",
]

# Public names show their public home (awf_deploy.X, not awf_deploy._x.X) in reprs,
# tracebacks and pickles.
for _name in __all__:
    _obj = globals()[_name]
    is_code = isinstance(_obj, type) or hasattr(_obj, "__code__")
    if is_code and _obj.__module__.startswith(__name__ + "._"):
        _obj.__module__ = __name__
del _name, _obj, is_code
