"""Solution quality in short: one standard instance per format, solved with OR-Tools in 1 s.

A quality table, not timed (each solve takes its budget): Solomon C101 (VRPTW), CVRPLIB X-n101-k25
(CVRP), gdb1 (CARP), each with its cost, its best-known solution (BKS) and its gap. Each solution
must pass pilotage's feasibility check and be within :data:`MAX_GAP_PERCENT` of the BKS. The full
tables, against PyVRP too, come from ``quality.py`` (README beside this file).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

from pilotage.routing.batch import solve_instance
from pilotage.routing.formats import read_instance
from pilotage.routing.solver import SolveOptions

GROUP = "routing quality, OR-Tools 1 s, one instance per format"
BUDGET_S = 1.0
MAX_GAP_PERCENT = 15.0
CASES = [("solomon", "C101"), ("x", "X-n101-k25"), ("gdb", "gdb1")]


@pytest.mark.parametrize(("set_name", "name"), CASES, ids=[name for _, name in CASES])
def test_quality(shared_data: Callable[..., Path], quality_table: Callable[..., None],
                 sibling: Callable[[str], ModuleType], set_name: str, name: str) -> None:
    bks = sibling("bks")
    shared_data(*bks.SET_FOLDERS[set_name])  # skips when the set is missing
    instance = next(i for i in bks.instances(set_name) if i.name == name)
    problem = read_instance(instance.path, instance.instance_format)
    solved = solve_instance(problem, SolveOptions(time_limit_s=BUDGET_S, seed=0))
    assert solved.feasibility.feasible, solved.feasibility.violations
    gap = 100.0 * (solved.feasibility.distance - instance.bks) / instance.bks
    quality_table(GROUP, f"{instance.name} ({set_name})", {"cost": solved.feasibility.distance, "BKS": instance.bks,
                                                             "gap %": gap})
    assert gap < MAX_GAP_PERCENT
