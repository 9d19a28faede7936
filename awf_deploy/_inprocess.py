"""Import a built bundle's `entry.py` in this process, so the simulator can run it unchanged.

Inside the `with` block, `workers` and `workers.workflows` are the simulator's stand-ins for
the modules Cloudflare's Python runtime provides (`awf_sim.sdk.workers_shim`), and the bundle
is imported with its OWN `awf_sim` (the deployed stub and the DSL copy), not the one installed
here: what runs is what is uploaded.
The installed awf_sim is back in `sys.modules` as soon as the import is done, so the simulator
keeps working around it.

    with bundle_in_process("build/shop") as entry:
        sim = Simulator(db=..., env={"DB": d1_binding})
        inst = sim.create(entry.OrderProcessingWorkflow, params)
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

from awf_sim.sdk import workers_shim

__all__ = ["bundle_in_process"]


def _owned(name: str, tops: set[str]) -> bool:
    return name.split(".")[0] in tops


@contextmanager
def bundle_in_process(folder: str | Path) -> Iterator[ModuleType]:
    """Import `<folder>/entry.py` with the bundle's own modules; yield the entry module."""
    root = Path(folder).resolve()
    if not (root / "entry.py").is_file():
        raise FileNotFoundError(f"{root} has no entry.py; build it with `awf-deploy build`")
    tops = {p.stem for p in root.glob("*.py")} | {
        p.name for p in root.iterdir() if p.is_dir() and (p / "__init__.py").is_file()
    }
    shim = workers_shim()
    tops_and_shim = tops | {"workers"}
    saved: Mapping[str, ModuleType] = {
        name: module for name, module in sys.modules.items() if _owned(name, tops_and_shim)
    }
    for name in saved:
        del sys.modules[name]
    sys.modules.update(shim)
    sys.path.insert(0, str(root))
    importlib.invalidate_caches()
    try:
        try:
            entry = importlib.import_module("entry")
        finally:
            # The bundle's modules stay referenced by `entry`; the installed ones come back.
            for name in [n for n in sys.modules if _owned(n, tops)]:
                del sys.modules[name]
            for name, module in saved.items():
                if not _owned(name, {"workers"}):
                    sys.modules[name] = module
            sys.path.remove(str(root))
        yield entry
    finally:
        for name in list(shim):
            sys.modules.pop(name, None)
        for name, module in saved.items():
            if _owned(name, {"workers"}):
                sys.modules[name] = module
