"""One errors module per package, whose docstring draws the whole tree, and it stays whole."""

from __future__ import annotations

import importlib
import pkgutil

import awf_deploy.errors
import awf_sim
import awf_sim.errors
from awf_deploy.cloudflare import CloudflareError


def _import_all(package: str) -> None:
    root = importlib.import_module(package)
    for info in pkgutil.walk_packages(root.__path__, package + "."):
        if ".runtime" not in info.name:  # awf_deploy's Worker runtime needs the workers SDK
            importlib.import_module(info.name)


def _subclasses(cls: type) -> set[type]:
    found = set()
    for sub in cls.__subclasses__():
        found |= {sub} | _subclasses(sub)
    return found


def test_every_awf_sim_error_is_in_the_errors_module_and_its_tree() -> None:
    _import_all("awf_sim")
    doc = awf_sim.errors.__doc__ or ""
    public = {
        cls
        for cls in _subclasses(awf_sim.errors.AwfError)
        if not cls.__name__.startswith("_") and cls.__module__.startswith("awf_sim")
    }
    for cls in public:
        assert getattr(awf_sim.errors, cls.__name__, None) is cls, cls
        assert cls.__name__ in awf_sim.errors.__all__, cls
        assert f"── {cls.__name__} " in doc, f"{cls.__name__} is missing from the tree"
    for name in ("WorkflowFailed", "DurabilityViolation"):
        assert f"── {name} " in doc


def test_awf_deploy_has_one_root_error() -> None:
    assert issubclass(CloudflareError, awf_deploy.errors.AwfDeployError)
    doc = awf_deploy.errors.__doc__ or ""
    for cls in _subclasses(CloudflareError):
        assert f"── {cls.__name__} " in doc, f"{cls.__name__} is missing from the tree"


def test_the_top_level_errors_are_the_errors_modules() -> None:
    for name in ("AwfError", "InstanceError", "NetworkAccessRefused", "StepError"):
        assert getattr(awf_sim, name) is getattr(awf_sim.errors, name)
