"""awf_deploy's errors form one tree under AwfDeployError, drawn whole in awf_deploy.errors."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import awf_deploy
from awf_deploy.errors import AwfDeployError


def _error_classes() -> list[type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for info in pkgutil.walk_packages(awf_deploy.__path__, "awf_deploy."):
        if ".runtime" in info.name:  # ships in Worker bundles: standard library only
            continue
        module = importlib.import_module(info.name)
        for name, obj in vars(module).items():
            if (
                inspect.isclass(obj)
                and issubclass(obj, BaseException)
                and obj.__module__.startswith("awf_deploy")
                and not name.startswith("_")
            ):
                found[name] = obj
    return list(found.values())


def test_every_awf_deploy_error_is_under_the_root_and_in_the_tree() -> None:
    classes = _error_classes()
    assert len(classes) >= 15
    tree = importlib.import_module("awf_deploy.errors").__doc__ or ""
    for cls in classes:
        assert issubclass(cls, AwfDeployError), cls
        assert f"── {cls.__name__} " in tree, f"{cls.__name__} is not drawn in awf_deploy.errors"
