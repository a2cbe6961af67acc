"""Start-up costs, each in a fresh process: numba's first compile against its load from cache, and
`pilotage network info` with empty caches against a warm start. Reference: a bare interpreter that
imports numpy.
"""

import os
import subprocess
import sys
import tempfile
from collections.abc import Callable

import pytest

# Compiles (or loads) every kernel: routes, a matrix and a snap on the city, then a priority decision
# (with a grant) and a check-out at every intersection of it.
KERNELS = ["-c", """
from pilotage.adapters.osm import load_network
from pilotage.core.default_plans import default_plans
from pilotage.core.signals import SignalPlans
from pilotage.signal_priority import PriorityConfig, PriorityEngine, PriorityRequest
n = load_network()
n.shortest_path(0, 1); n.shortest_path(0, 1, method="dijkstra"); n.matrix([0], [1]); n.snap(6.13, 49.61)
plans = SignalPlans(default_plans(n))
engine = PriorityEngine(plans, lambda: 3610.0, PriorityConfig(bus_lateness_s=0.0))
engine.decide([PriorityRequest(str(k), p.id, p.group_names[0], 30.0) for k, p in enumerate(plans.plans)])
engine.checkout("0", plans.plans[0].id)
"""]
NETWORK_INFO = ["-m", "pilotage", "network", "info"]
GROUP = "start-up, fresh process"


def run(args: list[str], environment: dict[str, str]) -> None:
    subprocess.run([sys.executable, *args], check=True, capture_output=True, env=os.environ | environment)


@pytest.fixture(scope="module")
def warm() -> dict[str, str]:
    """Caches that hold the compiled kernels and the built city."""
    environment = {"NUMBA_CACHE_DIR": tempfile.mkdtemp(prefix="pilotage-numba-"),
                   "PILOTAGE_CACHE_DIR": tempfile.mkdtemp(prefix="pilotage-networks-")}
    run(KERNELS, environment)
    return environment


def emptied(args: list[str], warm: dict[str, str], *caches: str) -> Callable[[], tuple[tuple, dict]]:
    """A pedantic setup: the warm caches, with ``caches`` replaced by empty folders for each round."""
    return lambda: ((args, warm | {name: tempfile.mkdtemp(prefix="pilotage-cold-") for name in caches}), {})


def test_bare_interpreter(benchmark) -> None:
    benchmark.group = GROUP
    benchmark.extra_info["reference"] = True
    benchmark.pedantic(run, args=(["-c", "import numpy"], {}), rounds=5, iterations=1)


def test_kernels_first_compile(benchmark, warm: dict[str, str]) -> None:
    benchmark.group = GROUP
    benchmark.pedantic(run, setup=emptied(KERNELS, warm, "NUMBA_CACHE_DIR"), rounds=3, iterations=1)


def test_kernels_from_cache(benchmark, warm: dict[str, str]) -> None:
    benchmark.group = GROUP
    benchmark.pedantic(run, args=(KERNELS, warm), rounds=5, iterations=1)


def test_network_info_cold(benchmark, warm: dict[str, str]) -> None:
    benchmark.group = GROUP
    benchmark.pedantic(run, setup=emptied(NETWORK_INFO, warm, "NUMBA_CACHE_DIR", "PILOTAGE_CACHE_DIR"),
                       rounds=3, iterations=1)


def test_network_info_warm(benchmark, warm: dict[str, str]) -> None:
    benchmark.group = GROUP
    benchmark.pedantic(run, args=(NETWORK_INFO, warm), rounds=5, iterations=1)
