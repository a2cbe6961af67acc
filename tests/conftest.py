"""Shared fixtures: the embedded city built once per session into a private cache, the shared data
beside the repository, the clock moved by hand, and hypothesis profiles."""

import os
from collections.abc import Callable
from pathlib import Path

import networkx as nx
import pytest
from hypothesis import HealthCheck, settings

from pilotage.adapters.osm import load_network
from pilotage.core import RoadNetwork
from pilotage.core.default_plans import default_plans
from pilotage.core.signals import SignalPlans

from .clock import ManualClock
from .shared_data import shared_data_path

TEST_DATA = Path(__file__).resolve().parent / "data"
HELSINKI = TEST_DATA / "helsinki-highways.osm.xz"

# The first example of a property may compile kernels: no deadline.
settings.register_profile("ci", max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci" if os.environ.get("CI") else "dev")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under CI, long runs (marked slow) are skipped: their short versions run instead.
    PILOTAGE_SLOW=1 runs them anyway."""
    if not os.environ.get("CI") or os.environ.get("PILOTAGE_SLOW"):
        return
    skip = pytest.mark.skip(reason="long run, skipped under CI (PILOTAGE_SLOW=1 runs it)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A network cache private to this test session."""
    return tmp_path_factory.mktemp("pilotage-cache")


@pytest.fixture(scope="session")
def shared_data() -> Callable[..., Path]:
    """``shared_data("carp", "gdb", "gdb1.dat")``: that file or folder of the shared data beside the
    repository; the test is skipped, saying which is missing, when it is not there."""
    return shared_data_path


@pytest.fixture(scope="session")
def city(cache_dir: Path) -> RoadNetwork:
    """The embedded city, built from its OSM extract at the first use in the session."""
    return load_network(cache_dir=cache_dir)


@pytest.fixture(scope="session")
def helsinki(cache_dir: Path) -> RoadNetwork:
    """A second real city, from the test data."""
    return load_network(HELSINKI, cache_dir=cache_dir)


def _as_networkx(network: RoadNetwork) -> nx.MultiDiGraph:
    """The network as a networkx graph with the same node indices and edge costs: the reference."""
    graph: nx.MultiDiGraph[int] = nx.MultiDiGraph()
    graph.add_nodes_from(range(network.n_nodes))
    for e, (u, v) in enumerate(zip(network.edge_source.tolist(), network.indices.tolist(), strict=True)):
        graph.add_edge(u, v, key=e, travel_time_s=float(network.travel_time_s[e]), length_m=float(network.length_m[e]))
    return graph


@pytest.fixture(scope="session")
def city_graph(city: RoadNetwork) -> nx.MultiDiGraph:
    """The embedded city as a networkx graph."""
    return _as_networkx(city)


@pytest.fixture(scope="session")
def manual_clock() -> type[ManualClock]:
    """The class of clocks moved by hand: ``manual_clock(1000.0)`` starts at 1000 s."""
    return ManualClock


@pytest.fixture(scope="session")
def city_plans(city: RoadNetwork) -> SignalPlans:
    """The default signal plans of the embedded city's 200 intersections."""
    return SignalPlans(default_plans(city))
