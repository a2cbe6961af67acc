"""RoadNetwork: construction, validation, persistence, and shortest paths against networkx on the city."""

import math
from pathlib import Path
from typing import Any, Literal

import networkx as nx
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pilotage.core import (
    DataFileError,
    InvalidInputError,
    NoRouteError,
    OutsideNetworkError,
    RoadNetwork,
    UnknownEntityError,
)
from pilotage.core.network import Weight

Method = Literal["astar", "dijkstra"]

# One degree of latitude, in metres, on the sphere the kernels use.
M_PER_DEG_LAT = 6_371_009.0 * math.pi / 180.0


def line_network(signal_gaps_m: list[float], **overrides: object) -> RoadNetwork:
    """A two-way street along a meridian, a node at each gap, every node a signal node."""
    lat = np.concatenate(([0.0], np.cumsum(signal_gaps_m))) / M_PER_DEG_LAT
    n = lat.size
    tail = np.concatenate((np.arange(n - 1), np.arange(1, n)))
    head = np.concatenate((np.arange(1, n), np.arange(n - 1)))
    arguments: dict[str, Any] = {
        "node_osmid": np.arange(100, 100 + n), "node_lon": np.zeros(n), "node_lat": lat,
        "tail": tail, "head": head, "length_m": np.full(tail.size, np.nan), "speed_kph": np.full(tail.size, 36.0),
        "road_class": np.zeros(tail.size, dtype=np.int64), "road_classes": ("residential",),
        "edge_osmid": np.full(tail.size, 7), "signal_nodes": np.arange(n),
    }
    arguments.update(overrides)
    return RoadNetwork.from_edges(**arguments)


def test_unknown_lengths_are_straight_lines_and_times_follow_speed() -> None:
    network = line_network([100.0])
    assert network.length_m == pytest.approx([100.0, 100.0])
    assert network.travel_time_s == pytest.approx([10.0, 10.0])  # 100 m at 36 km/h


def test_keeps_the_largest_strongly_connected_component() -> None:
    # Nodes 0-1-2 form a two-way street; node 3 is reached by a one-way edge and never left.
    network = RoadNetwork.from_edges(
        node_osmid=np.array([10, 11, 12, 13]), node_lon=np.zeros(4), node_lat=np.arange(4) * 1e-3,
        tail=np.array([0, 1, 1, 2, 2]), head=np.array([1, 0, 2, 1, 3]), length_m=np.full(5, np.nan),
        speed_kph=np.full(5, 50.0), road_class=np.zeros(5, dtype=np.int64), road_classes=("primary",),
        edge_osmid=np.arange(5), signal_nodes=np.array([3]))
    assert network.n_nodes == 3
    assert network.n_edges == 4
    assert network.build_report["scc_dropped_nodes"] == 1
    assert network.build_report["scc_dropped_edges"] == 1
    assert network.build_report["signal_nodes_dropped"] == 1
    assert len(network.intersections) == 0


def test_signal_nodes_within_the_radius_are_one_intersection() -> None:
    # Gaps of 30 m join; a gap of 100 m separates.
    network = line_network([30.0, 100.0, 30.0])
    intersections = network.intersections
    assert len(intersections) == 2
    assert intersections.ids.tolist() == [100, 102]
    assert sorted(intersections.signal_nodes(0).tolist()) == [0, 1]
    assert intersections.of_node.tolist() == [0, 0, 1, 1]
    assert intersections.index_of(102) == 1
    # Approaches come from farther than the signal node they enter: the 100 m link, once each side.
    for k in range(2):
        for e in intersections.approaches(k):
            assert intersections.of_node[network.indices[e]] == k
            assert intersections.of_node[network.edge_source[e]] != k
        assert intersections.approaches(k).size == 1


def test_signal_nodes_labelled_by_the_source_are_grouped_by_label_not_by_radius() -> None:
    # A traffic light controlling nodes 0 and 3 (far apart), another controlling 1 and 2 (30 m apart).
    network = line_network([30.0, 30.0, 300.0], signal_intersection=np.array([5, 9, 9, 5]))
    intersections = network.intersections
    assert intersections.ids.tolist() == [100, 101]
    assert sorted(intersections.signal_nodes(0).tolist()) == [0, 3]
    assert intersections.of_node.tolist() == [0, 1, 1, 0]
    with pytest.raises(InvalidInputError) as error:
        line_network([30.0], signal_intersection=np.array([1]))
    assert error.value.field == "signal_intersection"


def test_unknown_intersection_id_names_the_field() -> None:
    with pytest.raises(UnknownEntityError) as error:
        line_network([10.0]).intersections.index_of(5)
    assert error.value.field == "intersection"


@pytest.mark.parametrize(("override", "field"), [
    ({"speed_kph": np.array([36.0, 0.0])}, "speed_kph"),
    ({"head": np.array([1, 5])}, "head"),
    ({"length_m": np.array([1.0, -2.0])}, "length_m"),
    ({"node_lat": np.array([0.0])}, "node_lat"),
    ({"road_class": np.array([0, 3])}, "road_class"),
    ({"restricted": np.array([False])}, "restricted"),
])
def test_invalid_arrays_are_refused_with_the_field(override: dict, field: str) -> None:
    with pytest.raises(InvalidInputError) as error:
        line_network([50.0], **override)
    assert error.value.field == field


def test_save_and_load_round_trip(city: RoadNetwork, tmp_path: Path) -> None:
    city.save(tmp_path / "city.npz")
    loaded = RoadNetwork.load(tmp_path / "city.npz")
    for name in ("indptr", "indices", "length_m", "travel_time_s", "node_osmid", "road_class", "edge_source",
                 "restricted", "car_nodes"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(city, name))
    np.testing.assert_array_equal(loaded.intersections.approach_edges, city.intersections.approach_edges)
    assert loaded.summary() == city.summary()
    assert not loaded.indices.flags.writeable
    assert not loaded.restricted.flags.writeable


def test_restricted_edges_are_saved_and_files_of_another_version_refused(tmp_path: Path) -> None:
    # The street's first two edges (0 -> 1 and its way back) are closed to cars.
    network = line_network([50.0, 50.0], restricted=np.array([True, False, True, False]))
    assert network.restricted.sum() == 2
    assert network.summary()["restricted_edges"] == 2
    network.save(tmp_path / "line.npz")
    loaded = RoadNetwork.load(tmp_path / "line.npz")
    np.testing.assert_array_equal(loaded.restricted, network.restricted)
    assert loaded.summary() == network.summary()
    with np.load(tmp_path / "line.npz") as data:
        arrays = dict(data)
    arrays["meta"] = np.array(str(arrays["meta"]).replace('"version": 2', '"version": 1'))
    np.savez(tmp_path / "old.npz", **arrays)
    with pytest.raises(DataFileError, match=r"version 1\).*build it again"):
        RoadNetwork.load(tmp_path / "old.npz")


def test_a_network_needs_roads_open_to_cars() -> None:
    with pytest.raises(DataFileError, match="open to cars"):
        line_network([50.0], restricted=np.array([True, True]))


def test_snap_and_its_errors(city: RoadNetwork) -> None:
    node = 42
    found, distance_m = city.snap(float(city.node_lon[node]), float(city.node_lat[node]))
    assert (found, distance_m) == (node, 0.0)
    with pytest.raises(OutsideNetworkError, match="m from the nearest node"):
        city.snap(2.35, 48.85)
    with pytest.raises(InvalidInputError, match="LON,LAT"):
        city.snap(49.6, 200.0)


def test_node_errors(city: RoadNetwork) -> None:
    with pytest.raises(UnknownEntityError) as error:
        city.shortest_path(0, city.n_nodes)
    assert error.value.field == "destination"
    with pytest.raises(InvalidInputError):
        city.shortest_path(0, 1.5)  # type: ignore[arg-type]  # deliberately invalid
    with pytest.raises(InvalidInputError):
        city.shortest_path(0, 1, weight="fuel")  # type: ignore[arg-type]  # deliberately invalid
    with pytest.raises(UnknownEntityError):
        city.matrix([0], [-1])
    with pytest.raises(UnknownEntityError):
        city.node_index(123456789)
    assert city.node_index(int(city.node_osmid[7])) == 7


def test_no_route_is_a_clear_error() -> None:
    # Arrays straight from storage are not checked for strong connectivity: a one-way pair.
    network = line_network([50.0])
    one_way = RoadNetwork(
        indptr=np.array([0, 1, 1]), indices=np.array([1]), length_m=np.array([50.0]), speed_kph=np.array([50.0]),
        road_class=np.array([0]), road_classes=("residential",), node_lon=network.node_lon,
        node_lat=network.node_lat, node_osmid=network.node_osmid, edge_osmid=np.array([1]),
        restricted=np.array([False]), intersections=network.intersections, build_report={})
    assert one_way.shortest_path(0, 1).length_m == 50.0
    with pytest.raises(NoRouteError, match="no path"):
        one_way.shortest_path(1, 0)
    assert one_way.matrix([1], [0, 1]).tolist() == [[math.inf, 0.0]]


def test_route_is_a_connected_path_whose_costs_add_up(city: RoadNetwork) -> None:
    route = city.shortest_path(0, city.n_nodes - 1)
    assert route.nodes[0] == 0
    assert route.nodes[-1] == city.n_nodes - 1
    np.testing.assert_array_equal(city.edge_source[route.edges], route.nodes[:-1])
    np.testing.assert_array_equal(city.indices[route.edges], route.nodes[1:])
    assert route.travel_time_s == pytest.approx(city.travel_time_s[route.edges].sum())
    assert route.length_m == pytest.approx(city.length_m[route.edges].sum())


def test_route_to_itself_is_empty(city: RoadNetwork) -> None:
    route = city.shortest_path(5, 5)
    assert route.nodes.tolist() == [5]
    assert route.edges.size == 0
    assert route.travel_time_s == 0.0


def test_crossed_intersections_are_in_order_once_per_visit(city: RoadNetwork) -> None:
    plain = np.flatnonzero(city.intersections.of_node < 0)[:2].tolist()
    first, second = (city.intersections.signal_nodes(k)[0] for k in (3, 8))
    path = [plain[0], first, first, second, plain[1], first, plain[0]]
    intersections, positions = city.crossed_intersections(path)
    assert intersections.tolist() == [3, 8, 3]
    assert positions.tolist() == [1, 3, 5]
    assert city.crossed_intersections(plain)[0].tolist() == []


def test_route_gives_the_arrival_at_each_intersection(city: RoadNetwork) -> None:
    origin, destination = city.snap(6.1300, 49.6100)[0], city.snap(6.1700, 49.5900)[0]
    route = city.shortest_path(origin, destination)
    assert route.intersections.size > 0
    arrival_s = route.cumulative(city.travel_time_s)
    assert arrival_s[0] == 0.0
    assert arrival_s[-1] == pytest.approx(route.travel_time_s)
    assert (np.diff(arrival_s) >= 0).all()
    np.testing.assert_array_equal(city.intersections.of_node[route.nodes[route.intersection_positions]],
                                  route.intersections)
    assert route.cumulative(city.length_m)[-1] == pytest.approx(route.length_m)


node_pairs = st.tuples(st.integers(0, 10**9), st.integers(0, 10**9))


@given(node_pairs, st.sampled_from(["travel_time_s", "length_m"]), st.sampled_from(["astar", "dijkstra"]))
def test_shortest_path_equals_networkx(city: RoadNetwork, city_graph: nx.MultiDiGraph, pair: tuple[int, int],
                                       weight: Weight, method: Method) -> None:
    origin, destination = (p % city.n_nodes for p in pair)
    route = city.shortest_path(origin, destination, weight=weight, method=method)
    expected = nx.dijkstra_path_length(city_graph, origin, destination, weight=weight)
    assert getattr(route, weight) == pytest.approx(expected, rel=1e-9, abs=1e-6)


@given(node_pairs, st.floats(0.5, 3.0), st.sampled_from(["astar", "dijkstra"]))
def test_shortest_path_on_costs_of_its_own_equals_networkx(city: RoadNetwork, city_graph: nx.MultiDiGraph,
                                                          pair: tuple[int, int], slowdown: float,
                                                          method: Method) -> None:
    """Other vehicles' costs, as an array: each road class slower or faster by its own factor."""
    origin, destination = (p % city.n_nodes for p in pair)
    factor = slowdown ** (city.road_class % 3 - 1.0)
    costs = city.travel_time_s * factor
    route = city.shortest_path(origin, destination, weight=costs, method=method)

    def cheapest(_u: int, _v: int, edges: dict[Any, Any]) -> float:
        """Between two nodes, networkx gives the weight function every parallel edge, by key (edge
        index): a dict of ints, which its stubs type as one edge's data, keyed by str."""
        return min(costs[key] for key in edges)

    expected = nx.dijkstra_path_length(city_graph, origin, destination, weight=cheapest)
    assert costs[route.edges].sum() == pytest.approx(expected, rel=1e-9, abs=1e-6)


def test_costs_of_the_wrong_shape_or_sign_name_the_weight(city: RoadNetwork) -> None:
    for costs in (np.ones(3), -city.travel_time_s, np.full(city.n_edges, np.nan)):
        with pytest.raises(InvalidInputError, match="edge costs") as error:
            city.shortest_path(0, 1, weight=costs)
        assert error.value.field == "weight"


@given(st.lists(st.integers(0, 10**9), min_size=1, max_size=8), st.lists(st.integers(0, 10**9), min_size=1, max_size=8),
       st.sampled_from(["travel_time_s", "length_m"]))
def test_matrix_equals_networkx(city: RoadNetwork, city_graph: nx.MultiDiGraph, origins: list[int],
                                destinations: list[int], weight: Weight) -> None:
    origins = [o % city.n_nodes for o in origins]
    destinations = [d % city.n_nodes for d in destinations]
    matrix = city.matrix(origins, destinations, weight=weight, workers=2)
    for i, origin in enumerate(origins):
        expected = nx.single_source_dijkstra_path_length(city_graph, origin, weight=weight)
        np.testing.assert_allclose(matrix[i], [expected[d] for d in destinations], rtol=1e-9, atol=1e-6)
    np.testing.assert_array_equal(city.one_to_many(origins[0], destinations, weight=weight), matrix[0])
    np.testing.assert_array_equal(city.matrix(origins, destinations, weight=weight, workers=1), matrix)


@pytest.fixture(scope="module")
def restricted_city(city: RoadNetwork) -> RoadNetwork:
    """The embedded city with its 130 km/h motorways (which set the A* bound) and one edge in fifty
    closed to cars: the same nodes and edges, so a few nodes are out of the cars' reach."""
    restricted = (city.speed_kph > 100.0) | (np.random.default_rng(7).random(city.n_edges) < 0.02)
    return RoadNetwork(indptr=city.indptr, indices=city.indices, length_m=city.length_m, speed_kph=city.speed_kph,
                       road_class=city.road_class, road_classes=city.road_classes, node_lon=city.node_lon,
                       node_lat=city.node_lat, node_osmid=city.node_osmid, edge_osmid=city.edge_osmid,
                       restricted=restricted, intersections=city.intersections, build_report={})


def graph_without(network: RoadNetwork, closed: np.ndarray) -> nx.MultiDiGraph:
    """The network as a networkx graph (edge keys: edge indices) without the ``closed`` edges: the reference."""
    graph: nx.MultiDiGraph[int] = nx.MultiDiGraph()
    graph.add_nodes_from(range(network.n_nodes))
    for e in np.flatnonzero(~closed).tolist():
        graph.add_edge(int(network.edge_source[e]), int(network.indices[e]), key=e,
                       travel_time_s=float(network.travel_time_s[e]), length_m=float(network.length_m[e]))
    return graph


@pytest.fixture(scope="module")
def restricted_city_by_car(restricted_city: RoadNetwork) -> nx.MultiDiGraph:
    """``restricted_city`` without its restricted edges, as a networkx graph."""
    return graph_without(restricted_city, restricted_city.restricted)


@given(node_pairs, st.sampled_from(["travel_time_s", "length_m"]), st.sampled_from(["astar", "dijkstra"]))
def test_cars_never_route_on_restricted_edges_as_networkx_without_them(restricted_city: RoadNetwork,
                                                                      restricted_city_by_car: nx.MultiDiGraph,
                                                                      pair: tuple[int, int], weight: Weight,
                                                                      method: Method) -> None:
    network, graph = restricted_city, restricted_city_by_car
    origin, destination = (p % network.n_nodes for p in pair)
    try:
        expected = nx.dijkstra_path_length(graph, origin, destination, weight=weight)
    except nx.NetworkXNoPath:
        with pytest.raises(NoRouteError):
            network.shortest_path(origin, destination, weight=weight, method=method)
        assert network.one_to_many(origin, [destination], weight=weight)[0] == math.inf
        return
    route = network.shortest_path(origin, destination, weight=weight, method=method)
    assert not network.restricted[route.edges].any()
    assert getattr(route, weight) == pytest.approx(expected, rel=1e-9, abs=1e-6)
    assert network.one_to_many(origin, [destination], weight=weight)[0] == pytest.approx(expected, rel=1e-9, abs=1e-6)


@given(node_pairs, st.sampled_from(["astar", "dijkstra"]), st.integers(0, 2**32 - 1))
def test_infinite_costs_of_its_own_close_edges_as_networkx_without_them(city: RoadNetwork, pair: tuple[int, int],
                                                                       method: Method, seed: int) -> None:
    closed = np.random.default_rng(seed).random(city.n_edges) < 0.2
    costs = np.where(closed, math.inf, city.travel_time_s)
    origin, destination = (p % city.n_nodes for p in pair)
    graph = graph_without(city, closed)
    try:
        expected = nx.dijkstra_path_length(graph, origin, destination, weight="travel_time_s")
    except nx.NetworkXNoPath:
        with pytest.raises(NoRouteError):
            city.shortest_path(origin, destination, weight=costs, method=method)
        return
    route = city.shortest_path(origin, destination, weight=costs, method=method)
    assert not closed[route.edges].any()
    assert route.travel_time_s == pytest.approx(expected, rel=1e-9, abs=1e-6)
    np.testing.assert_allclose(city.matrix([origin], [destination], weight=costs), [[expected]], rtol=1e-9)


def test_every_edge_closed_is_no_route_not_a_nan(city: RoadNetwork) -> None:
    closed = np.full(city.n_edges, math.inf)
    with pytest.raises(NoRouteError):
        city.shortest_path(0, 1, weight=closed)
    assert city.shortest_path(3, 3, weight=closed).edges.size == 0
