"""Solution quality in short: one standard instance per format, solved with OR-Tools in 1 s.

Group (reference first): Solomon C101 (VRPTW), CVRPLIB X-n101-k25 (CVRP), gdb1 (CARP). Each
solution must pass pilotage's feasibility check and be within :data:`MAX_GAP_PERCENT` of the
best-known solution (a bound on quality, not on time); its gap goes to ``extra_info``. The full
tables, against PyVRP too, come from ``quality.py`` (README beside this file).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from pilotage.routing.batch import Solved, solve_instance
from pilotage.routing.formats import read_instance
from pilotage.routing.solver import SolveOptions

GROUP = "routing quality, OR-Tools 1 s, one instance per format"
BUDGET_S = 1.0
MAX_GAP_PERCENT = 15.0
CASES = [("solomon", "C101"), ("x", "X-n101-k25"), ("gdb", "gdb1")]


def _sibling(name: str) -> ModuleType:
    # Benchmarks are not installed with the package: the BKS helpers are loaded from beside this file.
    spec = importlib.util.spec_from_file_location(f"routing_{name}", Path(__file__).with_name(f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


bks = _sibling("bks")


@pytest.mark.parametrize(("set_name", "name"), CASES, ids=[name for _, name in CASES])
def test_quality(benchmark, set_name: str, name: str) -> None:
    try:
        instance = next(i for i in bks.instances(set_name) if i.name == name)
    except FileNotFoundError as error:
        pytest.skip(f"the shared data is not beside the repository: {error}")
    benchmark.group = GROUP
    if name == CASES[0][1]:
        benchmark.extra_info["reference"] = True
    problem = read_instance(instance.path, instance.instance_format)
    solved: Solved = benchmark.pedantic(solve_instance, args=(problem, SolveOptions(time_limit_s=BUDGET_S, seed=0)),
                                        rounds=1, iterations=1)
    assert solved.feasibility.feasible, solved.feasibility.violations
    gap = 100.0 * (solved.feasibility.distance - instance.bks) / instance.bks
    benchmark.extra_info.update({"cost": solved.feasibility.distance, "bks": instance.bks, "gap_percent": gap})
    assert gap < MAX_GAP_PERCENT
