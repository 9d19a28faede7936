// The Python half of pyhost.mjs, run once in Pyodide: bundle loading, entrypoint discovery as
// workerd's introspection.py does, and the calls into run/fetch/scheduled.

// ---------------------------------------------------------------------------------------------
// Python side of the host (our own code, loaded as an anonymous module per bundle).

export const HOST_PY = String.raw`
import importlib, site, sys, types
from inspect import isawaitable, isclass
from types import FunctionType

METADATA = "/session/metadata"

def setup_search_path(legacy_vendor_path, process_pth_files):
    # As workerd's setup_python_search_path: python_modules (and the legacy vendor dir) go just
    # before the first site-packages entry; .pth files are processed only with the flag.
    for p in (METADATA + "/vendor", METADATA + "/python_modules"):
        while p in sys.path:
            sys.path.remove(p)
    for i, p in enumerate(sys.path):
        if "site-packages" in p:
            if legacy_vendor_path:
                sys.path.insert(i, METADATA + "/vendor")
            sys.path.insert(i, METADATA + "/python_modules")
            break
    else:
        raise ValueError("No site-packages found in sys.path")
    if process_pth_files:
        site.addsitedir(METADATA + "/python_modules")
    importlib.invalidate_caches()

def make_compat_flags_module(flags):
    mod = types.ModuleType("_cloudflare_compat_flags")
    for k, v in flags.items():
        setattr(mod, k, bool(v))
    def __getattr__(name):
        # Every compat flag workerd knows is an attribute; one this host does not model is off.
        if name.startswith("_"):
            raise AttributeError(name)
        return False
    mod.__getattr__ = __getattr__
    sys.modules["_cloudflare_compat_flags"] = mod

def _under_session(mod):
    f = getattr(mod, "__file__", None) or ""
    if f.startswith(METADATA + "/"):
        return True
    for p in list(getattr(mod, "__path__", None) or []):
        if str(p).startswith(METADATA + "/"):
            return True
    return False

def unload(keep_path, keep_meta_path, keep_path_hooks, extra_names):
    gone = [n for n, m in list(sys.modules.items()) if n in extra_names or (m is not None and _under_session(m))]
    roots = set(gone)
    for n in list(sys.modules):
        if any(n.startswith(r + ".") for r in roots):
            gone.append(n)
    for n in set(gone):
        sys.modules.pop(n, None)
    sys.path[:] = list(keep_path)
    sys.meta_path[:] = [f for f in sys.meta_path if f in keep_meta_path] if keep_meta_path else sys.meta_path
    sys.path_hooks[:] = list(keep_path_hooks)
    for k in [k for k in sys.path_importer_cache if str(k).startswith("/session")]:
        del sys.path_importer_cache[k]
    importlib.invalidate_caches()
    return sorted(set(gone))

def state():
    return list(sys.path), list(sys.meta_path), list(sys.path_hooks)

def _module_name(filename):
    rel = filename[len(METADATA) + 1:]
    for prefix in ("python_modules/", "vendor/"):
        if rel.startswith(prefix):
            rel = rel[len(prefix):]
    rel = rel[:-3] if rel.endswith(".py") else rel
    if rel.endswith("/__init__"):
        rel = rel[: -len("/__init__")]
    return rel.replace("/", ".")

def failed_import(default):
    # [the bundle module whose import failed, the exception's own line]. The module is the
    # innermost module-level frame from the session files in the traceback, or the file of a
    # SyntaxError; the line is the one that names the exception ("ModuleNotFoundError: No
    # module named 'httpx'"): not the last, which for a message of several lines (Pyodide's
    # about a package it has but did not load) is advice that does not apply to a Worker.
    import traceback
    exc = getattr(sys, "last_exc", None) or getattr(sys, "last_value", None)
    if exc is None:
        return [default, ""]
    only = traceback.format_exception_only(exc)
    lines = [l for l in "".join(only).splitlines() if l.strip()]
    kind = type(exc).__qualname__
    if type(exc).__module__ not in ("builtins", "__main__"):
        kind = f"{type(exc).__module__}.{kind}"
    named = [l for l in lines if l == kind or l.startswith(kind + ":")]
    return [_failed_module(exc, default), (named or lines or [""])[0]]

def _failed_module(exc, default):
    found = None
    tb = getattr(exc, "__traceback__", None)
    while tb is not None:
        code = tb.tb_frame.f_code
        if code.co_name == "<module>" and code.co_filename.startswith(METADATA + "/"):
            found = code.co_filename
        tb = tb.tb_next
    if isinstance(exc, SyntaxError) and (exc.filename or "").startswith(METADATA + "/"):
        found = exc.filename
    return _module_name(found) if found else default

def entrypoint_classes(user_mod):
    # As workerd's introspection.py: the exported (or __all__) classes that subclass one of the
    # SDK's three entrypoint bases.
    from workers import DurableObject, WorkerEntrypoint, WorkflowEntrypoint
    names = user_mod.__all__ if hasattr(user_mod, "__all__") else [k for k in dir(user_mod) if not k.startswith("_")]
    found = {}
    for key in names:
        val = getattr(user_mod, key)
        for base, kind in ((DurableObject, "DurableObject"), (WorkerEntrypoint, "WorkerEntrypoint"), (WorkflowEntrypoint, "WorkflowEntrypoint")):
            if isclass(val) and issubclass(val, base) and val is not base:
                found[val.__name__] = kind
    return found

async def call_method(relaxed, inst, prop, *args):
    # As workerd's introspection.wrapper_func: arguments through python_from_rpc, the result
    # through python_to_rpc.
    from workers import python_from_rpc, python_to_rpc
    from pyodide.code import relaxed_call
    method = getattr(inst, prop)
    py_args = [python_from_rpc(a) for a in args]
    result = relaxed_call(method, *py_args) if relaxed else method(*py_args)
    if isawaitable(result):
        result = await result
    return python_to_rpc(result)
`;
