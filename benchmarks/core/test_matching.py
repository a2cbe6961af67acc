"""Map matching a polyline onto the road network, against one A* shortest path over the same ends in the
same run (the reference: matching runs one bounded search per candidate and point).

Groups (reference first): an 8 km polyline on the embedded city (A* route, then the match); Milan's 44
bus and tram shapes (44 A* routes between their ends, then the matches), marked slow.
"""

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from pilotage.adapters.gtfs import VEHICLE_CLASS_OF_ROUTE_TYPE, read_feed
from pilotage.adapters.osm import load_network
from pilotage.core import RoadNetwork
from pilotage.core.matching import Matcher

#: An 8 km polyline across the embedded city: the nodes of the fastest path between these OSM ids, with
#: 5 m of noise.
CITY_ENDS = (-30248, -28802)
NOISE_M = 5.0


@pytest.fixture(scope="module")
def city_polyline(city: RoadNetwork, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, int, int]:
    origin, destination = (city.node_index(osmid) for osmid in CITY_ENDS)
    route = city.shortest_path(origin, destination)
    noise_deg = rng.normal(0.0, NOISE_M, (2, route.nodes.size)) / 111_195.0
    lat = city.node_lat[route.nodes] + noise_deg[1]
    lon = city.node_lon[route.nodes] + noise_deg[0] / np.cos(np.radians(lat))
    return lon, lat, origin, destination


def test_city_route_astar(benchmark, city: RoadNetwork, city_polyline: tuple) -> None:
    benchmark.group = "match a polyline across the embedded city"
    benchmark.extra_info["reference"] = True
    _, _, origin, destination = city_polyline
    city.shortest_path(origin, destination)  # compiled or loaded before timing
    benchmark(lambda: city.shortest_path(origin, destination))


def test_city_match(benchmark, city: RoadNetwork, city_polyline: tuple) -> None:
    benchmark.group = "match a polyline across the embedded city"
    lon, lat, _, _ = city_polyline
    matcher = Matcher(city)
    assert matcher.match(lon, lat).matched  # compiled or loaded before timing
    benchmark(lambda: matcher.match(lon, lat))


@pytest.fixture(scope="module")
def milan(shared_data: Callable[..., Path]) -> tuple[RoadNetwork, list[tuple[np.ndarray, np.ndarray]]]:
    """Milan's network (from the user's cache after the first run) and its bus and tram shapes."""
    network = load_network(shared_data("gtfs-osm", "milano", "milan_italy_small.highway.osm.xz"))
    feed = read_feed(shared_data("gtfs-osm", "milano", "milano_small_gtfs.zip"))
    on_roads = {trip.shape_id for trip in feed.trips
                if VEHICLE_CLASS_OF_ROUTE_TYPE.get(feed.routes[trip.route_id].route_type) is not None}
    return network, [feed.shapes[shape_id] for shape_id in sorted(on_roads)]


@pytest.mark.slow
def test_milan_routes_astar(benchmark, milan: tuple) -> None:
    benchmark.group = "match Milan's 44 bus and tram shapes"
    benchmark.extra_info["reference"] = True
    network, shapes = milan
    ends = [network.nearest_nodes([lon[0], lon[-1]], [lat[0], lat[-1]])[0] for lon, lat in shapes]
    benchmark.pedantic(lambda: [network.shortest_path(int(a), int(b)) for a, b in ends], rounds=5, iterations=1)


@pytest.mark.slow
def test_milan_match(benchmark, milan: tuple) -> None:
    benchmark.group = "match Milan's 44 bus and tram shapes"
    network, shapes = milan
    matcher = Matcher(network)
    matcher.match(*shapes[0])
    benchmark.pedantic(lambda: [matcher.match(lon, lat) for lon, lat in shapes], rounds=5, iterations=1)
