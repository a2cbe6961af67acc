"""Shared fixtures: the embedded city built once per session into a private cache, the shared data
beside the repository, the clock moved by hand, and hypothesis profiles."""

import os
import zipfile
from collections.abc import Callable
from pathlib import Path

import networkx as nx
import numpy as np
import pytest
from hypothesis import HealthCheck, settings

from pilotage.adapters.osm import load_network
from pilotage.core import RoadNetwork
from pilotage.core.default_plans import default_plans
from pilotage.core.signals import SignalPlans
from pilotage.core.transit import TransitPath, Trip

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


#: The bus line of the embedded city's tests: its trip leaves at this time (s) and its schedule runs at
#: this speed (m/s), so a bus 1 km along it at 1000 s (the tests' clock) is about three minutes late.
CITY_LINE_START_S = 700.0
CITY_LINE_SPEED_M_S = 8.0


@pytest.fixture(scope="session")
def city_line(city: RoadNetwork) -> Trip:
    """A bus trip across the embedded city: the fastest path from node -30248 to node -28802 (8.2 km,
    27 signalised intersections crossed after the first), a stop every 800 m from 100 m on, due at
    :data:`CITY_LINE_START_S` plus its distance at :data:`CITY_LINE_SPEED_M_S`."""
    route = city.shortest_path(city.node_index(-30248), city.node_index(-28802))
    stops_m = np.arange(100.0, route.length_m, 800.0)
    path = TransitPath.on(city, route.edges, stop_ids=tuple(f"stop-{i}" for i in range(stops_m.size)),
                          stop_at_m=stops_m, source="route")
    return Trip("line-1-trip-1", "line-1", "bus", path, CITY_LINE_START_S + stops_m / CITY_LINE_SPEED_M_S)


@pytest.fixture(scope="session")
def city_feed(tmp_path_factory: pytest.TempPathFactory, city: RoadNetwork, city_line: Trip) -> Path:
    """A GTFS feed of the test line (``city_line``): one bus route, its trip every day of 2020-2035
    at the same times of day (from :data:`CITY_LINE_START_S` after midnight), its stops, and its path
    as the shape."""
    path = city_line.path
    stop_lon = np.interp(path.stop_at_m, path.at_m, city.node_lon[path.nodes])
    stop_lat = np.interp(path.stop_at_m, path.at_m, city.node_lat[path.nodes])

    def clock(seconds: float) -> str:
        whole = round(seconds)
        return f"{whole // 3600:02d}:{whole % 3600 // 60:02d}:{whole % 60:02d}"

    files = {
        "agency.txt": "agency_id,agency_name,agency_url,agency_timezone\nA,Test line,https://example.org,"
                      "Europe/Luxembourg\n",
        "routes.txt": "route_id,agency_id,route_short_name,route_type\nline-1,A,1,3\n",
        "calendar.txt": "service_id,monday,tuesday,wednesday,thursday,friday,saturday,sunday,start_date,end_date\n"
                        "daily,1,1,1,1,1,1,1,20200101,20351231\n",
        "trips.txt": f"route_id,service_id,trip_id,shape_id\nline-1,daily,{city_line.trip_id},line-1-shape\n",
        "stops.txt": "stop_id,stop_name,stop_lat,stop_lon\n" + "".join(
            f"{stop},{stop},{lat:.7f},{lon:.7f}\n" for stop, lon, lat in zip(path.stop_ids, stop_lon, stop_lat,
                                                                           strict=True)),
        "stop_times.txt": "trip_id,arrival_time,departure_time,stop_id,stop_sequence\n" + "".join(
            f"{city_line.trip_id},{clock(t)},{clock(t)},{stop},{n + 1}\n"
            for n, (stop, t) in enumerate(zip(path.stop_ids, city_line.stop_times_s.tolist(), strict=True))),
        "shapes.txt": "shape_id,shape_pt_lat,shape_pt_lon,shape_pt_sequence\n" + "".join(
            f"line-1-shape,{lat:.7f},{lon:.7f},{n + 1}\n"
            for n, (lon, lat) in enumerate(zip(city.node_lon[path.nodes], city.node_lat[path.nodes], strict=True))),
    }
    feed = tmp_path_factory.mktemp("gtfs") / "city-line.zip"
    with zipfile.ZipFile(feed, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return feed
