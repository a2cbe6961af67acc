"""The routing benchmarks' helper scripts (beside them, not installed with the package), loaded by name."""

import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"routing_{name}", Path(__file__).with_name(f"{name}.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def sibling() -> Callable[[str], ModuleType]:
    """``sibling("bks")``: the script ``bks.py`` of this folder, loaded."""
    return _load
