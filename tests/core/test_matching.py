"""Map matching: its kernels against their plain-Python references (naive.py) on fixed and generated
cases, and pilotage.core.matching on small real cases of the embedded city."""

import itertools
import math

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from pilotage.core import InvalidInputError, RoadNetwork, _kernels
from pilotage.core.matching import Matcher, MatchingConfig, match_polyline
from pilotage.core.transit import TransitPath

from .naive import candidates_reference, dijkstra_reference, route_reference, viterbi_reference

# One degree of latitude on the sphere the kernels use (m).
M_PER_DEG_LAT = 6_371_009.0 * math.pi / 180.0


def to_csr(n: int, edges: list[tuple[int, int, float]]) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[int]]:
    """CSR arrays of the edges (tail, head, length), and the position in them of each edge given."""
    order = sorted(range(len(edges)), key=lambda e: edges[e][0])
    indptr = np.zeros(n + 1, dtype=np.int64)
    for u, _, _ in edges:
        indptr[u + 1] += 1
    position = [0] * len(edges)
    for k, e in enumerate(order):
        position[e] = k
    return (np.cumsum(indptr), np.array([edges[e][1] for e in order], dtype=np.int64),
            np.array([edges[e][2] for e in order], dtype=np.float64), position)


@st.composite
def planar_graphs(draw: st.DrawFn) -> tuple[list[tuple[float, float]], list[tuple[int, int, float]]]:
    """Nodes in a 400 m square and directed edges between them, each at least as long as its segment
    (a curved street is longer than the straight line), with parallel edges and self-loops."""
    n = draw(st.integers(2, 10))
    coordinate = st.floats(0.0, 400.0, allow_nan=False)
    nodes = draw(st.lists(st.tuples(coordinate, coordinate), min_size=n, max_size=n))
    node = st.integers(0, n - 1)
    links = draw(st.lists(st.tuples(node, node, st.floats(1.0, 1.5)), min_size=1, max_size=25))
    edges = [(u, v, factor * math.dist(nodes[u], nodes[v])) for u, v, factor in links]
    return nodes, edges


def edge_grid(nodes: list[tuple[float, float]], tails: np.ndarray, heads: np.ndarray, slack_m: np.ndarray,
              cell_m: float) -> tuple[float, float, int, int, np.ndarray, np.ndarray]:
    """The kernels' grid of the edges: origin, size, and its CSR of edges per cell."""
    x = np.array([p[0] for p in nodes])
    y = np.array([p[1] for p in nodes])
    x0, y0 = float(x.min()) - cell_m, float(y.min()) - cell_m
    nx, ny = int((x.max() - x0) // cell_m) + 2, int((y.max() - y0) // cell_m) + 2
    counts = np.empty(nx * ny, dtype=np.int64)
    _kernels.edge_grid_counts(x, y, tails, heads, slack_m, x0, y0, cell_m, nx, ny, counts)
    cell_ptr = np.zeros(nx * ny + 1, dtype=np.int64)
    np.cumsum(counts, out=cell_ptr[1:])
    cell_edges = np.empty(int(cell_ptr[-1]), dtype=np.int64)
    _kernels.edge_grid_fill(x, y, tails, heads, slack_m, x0, y0, cell_m, nx, ny, cell_ptr, cell_edges)
    return x0, y0, nx, ny, cell_ptr, cell_edges


# -- the kernels against their references -------------------------------------------------------------


@given(planar_graphs(), st.lists(st.tuples(st.floats(-100.0, 500.0), st.floats(-100.0, 500.0)), min_size=1,
                                 max_size=8), st.data())
def test_candidates_match_brute_force(graph: tuple, points: list[tuple[float, float]], data: st.DataObject) -> None:
    nodes, edges = graph
    radius_m, cell_m = data.draw(st.floats(5.0, 150.0)), data.draw(st.floats(10.0, 200.0))
    capacity = data.draw(st.integers(1, 6))
    slack_m = np.array(data.draw(st.lists(st.floats(0.0, 60.0), min_size=len(edges), max_size=len(edges))))
    tails = np.array([u for u, _, _ in edges], dtype=np.int64)
    heads = np.array([v for _, v, _ in edges], dtype=np.int64)
    length_m = np.array([length for _, _, length in edges])
    x0, y0, nx, ny, cell_ptr, cell_edges = edge_grid(nodes, tails, heads, slack_m, cell_m)
    px = np.array([p[0] for p in points])
    py = np.array([p[1] for p in points])
    out_edge = np.empty((px.size, capacity), dtype=np.int64)
    out_offset_m = np.empty((px.size, capacity))
    out_distance_m = np.empty((px.size, capacity))
    out_count = np.empty(px.size, dtype=np.int64)
    _kernels.edge_candidates(px, py, np.array([p[0] for p in nodes]), np.array([p[1] for p in nodes]), tails, heads,
                             length_m, slack_m, x0, y0, cell_m, nx, ny, cell_ptr, cell_edges, radius_m, out_edge,
                             out_offset_m, out_distance_m, out_count)
    described = [(u, v, length, float(s)) for (u, v, length), s in zip(edges, slack_m, strict=True)]
    for i, point in enumerate(points):
        everything = candidates_reference(point, nodes, described, math.inf, len(edges))
        # Rounding decides the edges at the radius, or tied at the last place kept: not those cases.
        assume(all(abs(d - radius_m) > 1e-6 for d, _, _ in everything))
        reference = candidates_reference(point, nodes, described, radius_m, capacity + 1)
        if len(reference) > capacity:
            assume(reference[capacity][0] - reference[capacity - 1][0] > 1e-6)
            reference = reference[:capacity]
        assert out_count[i] == len(reference)
        for k, (distance_m, edge, offset_m) in enumerate(reference):
            assert out_distance_m[i, k] == pytest.approx(distance_m, abs=1e-6)
            if k + 1 < len(reference) and reference[k + 1][0] - distance_m > 1e-6 and (
                    k == 0 or distance_m - reference[k - 1][0] > 1e-6):
                assert out_edge[i, k] == edge
                assert out_offset_m[i, k] == pytest.approx(offset_m, abs=1e-6)
        assert (out_edge[i, out_count[i]:] == -1).all()


def test_candidates_fixed_case() -> None:
    # A street east from (0, 0) to (100, 0), its way back, and a curved street bowing 30 m beside it.
    nodes = [(0.0, 0.0), (100.0, 0.0), (0.0, 40.0), (100.0, 40.0)]
    tails, heads = np.array([0, 1, 2]), np.array([1, 0, 3])
    length_m = np.array([100.0, 100.0, 2 * math.hypot(50.0, 30.0)])
    slack_m = np.array([0.0, 0.0, 30.0])
    x0, y0, nx, ny, cell_ptr, cell_edges = edge_grid(nodes, tails, heads, slack_m, 25.0)
    out_edge = np.empty((2, 3), dtype=np.int64)
    out_offset_m, out_distance_m = np.empty((2, 3)), np.empty((2, 3))
    out_count = np.empty(2, dtype=np.int64)
    _kernels.edge_candidates(np.array([25.0, 50.0]), np.array([5.0, 70.0]), np.array([p[0] for p in nodes]),
                             np.array([p[1] for p in nodes]), tails, heads, length_m, slack_m, x0, y0, 25.0, nx, ny,
                             cell_ptr, cell_edges, 20.0, out_edge, out_offset_m, out_distance_m, out_count)
    # 5 m from both ways of the street (the lower index first), 35 m from the curve less its 30 m.
    assert out_count.tolist() == [3, 1]
    assert out_edge[0].tolist() == [0, 1, 2]
    assert out_distance_m[0] == pytest.approx([5.0, 5.0, 5.0])
    assert out_offset_m[0] == pytest.approx([25.0, 75.0, 0.25 * length_m[2]])
    assert out_edge[1, 0] == 2
    assert out_distance_m[1, 0] == pytest.approx(0.0)


@st.composite
def candidate_steps(draw: st.DrawFn, n_edges: int, lengths: list[float]) -> tuple[np.ndarray, np.ndarray,
                                                                                    np.ndarray]:
    """Steps of at most 3 candidates: (T, 3) edges and offsets along them, and counts."""
    steps = draw(st.integers(1, 5))
    edge = np.full((steps, 3), -1, dtype=np.int64)
    offset_m = np.full((steps, 3), np.nan)
    count = np.empty(steps, dtype=np.int64)
    for t in range(steps):
        chosen = draw(st.lists(st.integers(0, n_edges - 1), min_size=1, max_size=3))
        count[t] = len(chosen)
        for k, e in enumerate(chosen):
            edge[t, k] = e
            offset_m[t, k] = draw(st.floats(0.0, 1.0)) * lengths[e]
    return edge, offset_m, count


@given(st.integers(2, 8), st.data())
def test_route_distances_match_reference(n: int, data: st.DataObject) -> None:
    node = st.integers(0, n - 1)
    edges = data.draw(st.lists(st.tuples(node, node, st.floats(0.0, 100.0)), min_size=1, max_size=20))
    indptr, indices, length_m, position = to_csr(n, edges)
    edge_source = np.repeat(np.arange(n), np.diff(indptr))
    edge, offset_m, count = data.draw(candidate_steps(len(edges), [e[2] for e in edges]))
    bound_m = np.array(data.draw(st.lists(st.floats(-10.0, 400.0), min_size=count.size - 1,
                                          max_size=count.size - 1)))
    backtrack_m = data.draw(st.floats(0.0, 10.0))
    out = np.empty((max(count.size - 1, 0), 3, 3))
    csr_edge = np.where(edge >= 0, np.array([*position, -1])[edge], -1)
    _kernels.route_distances(indptr, indices, length_m, edge_source, csr_edge, offset_m, count, bound_m, backtrack_m,
                             out)
    for t in range(count.size - 1):
        for i in range(3):
            for j in range(3):
                if i >= count[t] or j >= count[t + 1]:
                    assert math.isinf(out[t, i, j])
                    continue
                expected = route_reference(n, edges, (int(edge[t, i]), float(offset_m[t, i])),
                                           (int(edge[t + 1, j]), float(offset_m[t + 1, j])), backtrack_m)
                # Rounding decides a distance at the bound: not that case.
                assume(abs(expected - bound_m[t]) > 1e-6)
                if expected <= bound_m[t]:
                    assert out[t, i, j] == pytest.approx(expected, abs=1e-6)
                else:
                    assert math.isinf(out[t, i, j])


def test_route_distances_fixed_case() -> None:
    # A loop of three 100 m edges: 0 -> 1 -> 2 -> 0.
    indptr, indices, length_m, _ = to_csr(3, [(0, 1, 100.0), (1, 2, 100.0), (2, 0, 100.0)])
    edge_source = np.repeat(np.arange(3), np.diff(indptr))
    edge = np.array([[0, -1], [0, 1], [0, -1]])
    offset_m = np.array([[50.0, np.nan], [48.0, 10.0], [20.0, np.nan]])
    out = np.empty((2, 2, 2))
    _kernels.route_distances(indptr, indices, length_m, edge_source, edge, offset_m, np.array([1, 2, 1]),
                             np.array([500.0, 250.0]), 5.0, out)
    # 2 m back on the same edge is noise; on to the next edge, 50 + 10 m.
    assert out[0, 0].tolist() == [0.0, 60.0]
    # From 48 m back to 20 m on the same edge is the loop, 52 + 200 + 20 m, over the 250 m bound; from
    # the next edge, 90 + 100 + 20 m.
    assert math.isinf(out[1, 0, 0])
    assert out[1, 1, 0] == pytest.approx(210.0)


@given(st.data())
def test_viterbi_matches_reference(data: st.DataObject) -> None:
    steps = data.draw(st.integers(1, 6))
    sizes = data.draw(st.lists(st.integers(1, 3), min_size=steps, max_size=steps))
    count = np.array(sizes, dtype=np.int64)
    distance_m = np.full((steps, 3), np.inf)
    for t, size in enumerate(sizes):
        distance_m[t, :size] = data.draw(st.lists(st.floats(0.0, 50.0), min_size=size, max_size=size))
    route = st.one_of(st.just(math.inf), st.floats(0.0, 300.0))
    route_m = np.full((max(steps - 1, 0), 3, 3), np.inf)
    for t in range(steps - 1):
        for i in range(count[t]):
            for j in range(count[t + 1]):
                route_m[t, i, j] = data.draw(route)
    straight_m = np.array(data.draw(st.lists(st.floats(0.0, 200.0), min_size=steps - 1, max_size=steps - 1)))
    sigma_m, beta_m = data.draw(st.floats(1.0, 20.0)), data.draw(st.floats(1.0, 20.0))
    state = np.empty(steps, dtype=np.int64)
    restarts = np.empty(steps, dtype=np.bool_)
    total = _kernels.viterbi(distance_m, count, route_m, straight_m, sigma_m, beta_m, state, restarts)

    emission = [[0.5 * (distance_m[t, j] / sigma_m) ** 2 for j in range(count[t])] for t in range(steps)]
    transition = [[[abs(route_m[t, i, j] - straight_m[t]) / beta_m for j in range(count[t + 1])]
                   for i in range(count[t])] for t in range(steps - 1)]
    expected, breaks = viterbi_reference(emission, transition)
    assert total == pytest.approx(expected, rel=1e-9, abs=1e-9)
    assert restarts.tolist() == breaks
    # The chain chosen costs what the kernel says, and each of its transitions is possible.
    chosen = emission[0][state[0]]
    for t in range(1, steps):
        if not restarts[t]:
            assert math.isfinite(route_m[t - 1, state[t - 1], state[t]])
            chosen += transition[t - 1][state[t - 1]][state[t]]
        chosen += emission[t][state[t]]
    assert chosen == pytest.approx(expected, rel=1e-9, abs=1e-9)


def test_viterbi_fixed_case() -> None:
    # Two candidates each step; the second is nearer at step 1 but cannot follow from either before.
    distance_m = np.array([[0.0, 10.0], [20.0, 0.0], [0.0, 5.0]])
    route_m = np.array([[[20.0, np.inf], [20.0, np.inf]], [[np.inf, np.inf], [np.inf, np.inf]]])
    state = np.empty(3, dtype=np.int64)
    restarts = np.empty(3, dtype=np.bool_)
    total = _kernels.viterbi(distance_m, np.array([2, 2, 2]), route_m, np.array([20.0, 20.0]), 10.0, 5.0, state,
                             restarts)
    assert state.tolist() == [0, 0, 0]
    assert restarts.tolist() == [False, False, True]
    assert total == pytest.approx(0.5 * 2.0 ** 2)


@given(st.integers(2, 8), st.data())
def test_rebuild_path_follows_the_shortest_paths(n: int, data: st.DataObject) -> None:
    node = st.integers(0, n - 1)
    edges = data.draw(st.lists(st.tuples(node, node, st.floats(0.5, 100.0)), min_size=1, max_size=20))
    indptr, indices, length_m, position = to_csr(n, edges)
    edge_source = np.repeat(np.arange(n), np.diff(indptr))
    steps = data.draw(st.lists(st.tuples(st.integers(0, len(edges) - 1), st.floats(0.0, 1.0)), min_size=1,
                               max_size=5))
    chosen = np.array([position[e] for e, _ in steps], dtype=np.int64)
    offset_m = np.array([fraction * edges[e][2] for e, fraction in steps])
    out = np.empty(len(steps) * n + 1, dtype=np.int64)
    count = _kernels.rebuild_path(indptr, indices, length_m, edge_source, chosen, offset_m,
                                  np.full(len(steps) - 1, 1e9), 0.0, out)
    expected = [route_reference(n, edges, (a, oa * edges[a][2]), (b, ob * edges[b][2]), 0.0)
                for (a, oa), (b, ob) in itertools.pairwise(steps)]
    if not all(math.isfinite(value) for value in expected):
        assert count == -1
        return
    path = out[:count]
    assert path[0] == chosen[0]
    assert path[-1] == chosen[-1]
    assert (indices[path[:-1]] == edge_source[path[1:]]).all()
    # The path's length from the first offset to the last is the sum of the least road distances.
    travelled = length_m[path].sum() - offset_m[0] - (length_m[path[-1]] - offset_m[-1])
    assert travelled == pytest.approx(sum(expected), abs=1e-6)


def test_rebuild_path_reports_a_short_buffer() -> None:
    indptr, indices, length_m, _ = to_csr(3, [(0, 1, 10.0), (1, 2, 10.0), (2, 0, 10.0)])
    edge_source = np.repeat(np.arange(3), np.diff(indptr))
    out = np.empty(2, dtype=np.int64)
    assert _kernels.rebuild_path(indptr, indices, length_m, edge_source, np.array([0, 2]), np.array([1.0, 1.0]),
                                 np.array([100.0]), 0.0, out) == -2


def test_bounded_search_matches_reference() -> None:
    edges = [(0, 1, 5.0), (1, 2, 5.0), (0, 2, 12.0), (2, 3, 1.0), (3, 0, 2.0)]
    indptr, indices, length_m, _ = to_csr(4, edges)
    n = 4
    dist = np.full(n, np.inf)
    pred_edge = np.full(n, -1, dtype=np.int64)
    settled = np.zeros(n, dtype=np.bool_)
    touched = np.empty(n, dtype=np.int64)
    heap_keys, heap_nodes = np.empty(indices.size + 1), np.empty(indices.size + 1, dtype=np.int64)
    is_target = np.ones(n, dtype=np.bool_)
    reference = dijkstra_reference(n, edges, 0)
    for bound in (0.0, 5.0, 10.5, 100.0):
        touched_count = _kernels._bounded_search(indptr, indices, length_m, 0, bound, is_target, n, dist, pred_edge,
                                                 settled, touched, heap_keys, heap_nodes)
        for v in range(n):
            assert settled[v] == (reference[v] <= bound)
            if settled[v]:
                assert dist[v] == pytest.approx(reference[v])
        _kernels._reset_search(touched, touched_count, dist, pred_edge, settled)
        assert np.isinf(dist).all() and not settled.any() and (pred_edge == -1).all()


# -- matching on small cases --------------------------------------------------------------------------


def street_pair(segments: int = 3) -> RoadNetwork:
    """A dual carriageway 20 m wide on the equator, running east (y = 0) and back west (y = 20 m),
    joined at both ends, each carriageway in ``segments`` edges of 100 m."""
    nodes = segments + 1
    x_m = np.tile(np.arange(nodes) * 100.0, 2)
    y_m = np.repeat([0.0, 20.0], nodes)
    east = [(k, k + 1) for k in range(segments)]
    west = [(k + nodes + 1, k + nodes) for k in range(segments)]
    ends = [(segments, 2 * nodes - 1), (nodes, 0)]
    tail, head = (np.array(column) for column in zip(*(east + west + ends), strict=True))
    return RoadNetwork.from_edges(
        node_osmid=np.arange(1, 2 * nodes + 1), node_lon=x_m / M_PER_DEG_LAT, node_lat=y_m / M_PER_DEG_LAT,
        tail=tail, head=head,
        length_m=np.full(tail.size, np.nan), speed_kph=np.full(tail.size, 50.0),
        road_class=np.zeros(tail.size, dtype=np.int64), road_classes=("primary",), edge_osmid=np.arange(tail.size),
        signal_nodes=np.empty(0, dtype=np.int64))


def carriageway(network: RoadNetwork, edges: np.ndarray) -> set[str]:
    """Which carriageways (east, west) of :func:`street_pair` the edges run on."""
    dy = network.node_lat[network.indices[edges]] - network.node_lat[network.edge_source[edges]]
    dx = network.node_lon[network.indices[edges]] - network.node_lon[network.edge_source[edges]]
    return {"east" if x > 0 else "west" if x < 0 else "end" for x in dx[dy == 0]}


@pytest.mark.parametrize("direction", ["east", "west"])
def test_the_middle_of_a_dual_carriageway_matches_its_direction(direction: str) -> None:
    network = street_pair()
    x_m = np.linspace(10.0, 290.0, 15)
    lon = (x_m if direction == "east" else x_m[::-1]) / M_PER_DEG_LAT
    lat = np.full(x_m.size, 10.0) / M_PER_DEG_LAT
    matched = match_polyline(network, lon, lat)
    assert matched.matched, matched.reason
    assert carriageway(network, matched.edges) == {direction}
    assert matched.edges.size == 3
    assert matched.breaks == 0
    assert matched.max_distance_m == pytest.approx(10.0, abs=0.01)


def test_a_polyline_off_the_roads_matches_nothing(city: RoadNetwork) -> None:
    min_lon, min_lat, _, _ = city.bounding_box
    matched = match_polyline(city, np.array([min_lon - 0.1, min_lon - 0.09]), np.array([min_lat, min_lat]))
    assert not matched.matched
    assert matched.edges.size == 0
    assert matched.points_matched == 0
    assert "no road within 50 m" in matched.reason
    assert math.isnan(matched.max_distance_m)


def test_one_point_matches_one_edge() -> None:
    network = street_pair()
    matched = match_polyline(network, np.array([150.0 / M_PER_DEG_LAT]), np.array([2.0 / M_PER_DEG_LAT]))
    assert matched.matched
    assert matched.edges.size == 1
    assert carriageway(network, matched.edges) == {"east"}


@pytest.mark.parametrize(("name", "value"), [("search_radius_m", 0.0), ("sigma_m", -1.0), ("beta_m", math.nan),
                                             ("resample_m", math.inf), ("max_candidates", 0),
                                             ("max_candidates", 2.0), ("backtrack_m", -1.0),
                                             ("curve_allowance_m", True), ("max_gap_m", "200")])
def test_config_is_validated(name: str, value: object) -> None:
    with pytest.raises(InvalidInputError) as error:
        MatchingConfig(**{name: value})  # type: ignore[arg-type]
    assert error.value.field == name


def test_coordinates_are_validated() -> None:
    network = street_pair()
    with pytest.raises(InvalidInputError, match="as many latitudes"):
        match_polyline(network, np.zeros(3), np.zeros(2))
    with pytest.raises(InvalidInputError, match="finite coordinates"):
        match_polyline(network, np.array([0.0, np.nan]), np.zeros(2))
    with pytest.raises(InvalidInputError, match="at least 1 point"):
        match_polyline(network, np.empty(0), np.empty(0))
    with pytest.raises(InvalidInputError, match="edge indices"):
        Matcher(network).locate(np.array([99]), np.zeros(1), np.zeros(1))


# -- matching on the embedded city --------------------------------------------------------------------


@pytest.fixture(scope="module")
def matcher(city: RoadNetwork) -> Matcher:
    return Matcher(city)


@pytest.mark.parametrize("seed", range(6))
def test_a_noisy_polyline_along_a_path_gives_the_path_back(city: RoadNetwork, matcher: Matcher, seed: int) -> None:
    rng = np.random.default_rng(seed)
    chord_m = np.empty(city.n_edges)
    _kernels.straight_line_m(city.node_lon[city.edge_source], city.node_lat[city.edge_source],
                             city.node_lon[city.indices], city.node_lat[city.indices], chord_m)
    while True:
        origin, destination = (int(node) for node in rng.integers(0, city.n_nodes, 2))
        route = city.shortest_path(origin, destination)
        # Straight edges only: a line through the nodes of a curved street would cut its curve.
        if route.length_m > 2000.0 and (city.length_m[route.edges] < 1.02 * chord_m[route.edges] + 1.0).all():
            break
    # The path's nodes, with 5 m of noise (standard deviation) on each.
    noise_deg = rng.normal(0.0, 5.0, (2, route.nodes.size)) / M_PER_DEG_LAT
    lat = city.node_lat[route.nodes] + noise_deg[1]
    lon = city.node_lon[route.nodes] + noise_deg[0] / np.cos(np.radians(lat))
    matched = matcher.match(lon, lat)
    assert matched.matched, matched.reason
    assert matched.edges.tolist() == route.edges.tolist()
    assert matched.points_matched == matched.points
    assert matched.mean_distance_m < 10.0
    # The path is a transit path of the network, crossing the route's intersections.
    path = TransitPath.on(city, matched.edges)
    assert path.crossing_intersection.tolist() == [k for k, at in zip(route.intersections.tolist(),
                                                                      route.intersection_positions.tolist(),
                                                                      strict=True) if at > 0]


def edge_between(network: RoadNetwork, tail_osmid: int, head_osmid: int) -> int:
    """The edge from one node to another, by their OSM ids."""
    tail, head = network.node_index(tail_osmid), network.node_index(head_osmid)
    (edge,) = np.flatnonzero((network.edge_source == tail) & (network.indices == head))
    return int(edge)


@pytest.mark.parametrize(("way", "back"), [(((-19582, -10618)), (-15132, -5092)),  # motorway, 12 m apart
                                           (((-28286, -18704)), (-14656, -28286))])  # primary, 4 m apart
def test_a_city_dual_carriageway_is_matched_in_the_polyline_direction(city: RoadNetwork, matcher: Matcher,
                                                                      way: tuple[int, int],
                                                                      back: tuple[int, int]) -> None:
    forward, backward = edge_between(city, *way), edge_between(city, *back)
    tail, head = city.edge_source[forward], city.indices[forward]
    # Along the middle between the carriageways.
    fraction = np.linspace(0.0, 1.0, 20)
    start_lon = (city.node_lon[tail] + city.node_lon[city.indices[backward]]) / 2
    start_lat = (city.node_lat[tail] + city.node_lat[city.indices[backward]]) / 2
    end_lon = (city.node_lon[head] + city.node_lon[city.edge_source[backward]]) / 2
    end_lat = (city.node_lat[head] + city.node_lat[city.edge_source[backward]]) / 2
    lon = start_lon + fraction * (end_lon - start_lon)
    lat = start_lat + fraction * (end_lat - start_lat)
    there = matcher.match(lon, lat)
    back_again = matcher.match(lon[::-1], lat[::-1])
    assert there.matched and back_again.matched
    assert forward in there.edges and backward not in there.edges
    assert backward in back_again.edges and forward not in back_again.edges


def test_a_polyline_leaving_the_roads_breaks() -> None:
    # East along a 600 m street, with a 400 m detour north, where there is no road, halfway.
    network = street_pair(segments=6)
    x_m = np.array([10.0, 300.0, 300.0, 300.0, 590.0])
    y_m = np.array([0.0, 0.0, 400.0, 0.0, 0.0])
    matched = match_polyline(network, x_m / M_PER_DEG_LAT, y_m / M_PER_DEG_LAT)
    assert not matched.matched
    assert matched.breaks == 1
    assert "more than 200 m of polyline on no road it can follow" in matched.reason
    # Where the polyline comes back within reach of the roads, on its way down.
    assert 290.0 + 400.0 < matched.break_at_m[0] < 290.0 + 800.0 + 100.0
    # The pieces are joined: the path is still connected, and runs east.
    TransitPath.on(network, matched.edges)
    assert carriageway(network, matched.edges) == {"east"}


def test_a_city_polyline_leaving_the_roads_breaks(city: RoadNetwork, matcher: Matcher) -> None:
    route = city.shortest_path(city.node_index(-19582), city.node_index(-5092))
    lon, lat = city.node_lon[route.nodes], city.node_lat[route.nodes]
    # Out of the city, 3 km west of it, and back, between the two halves of the path.
    half = lon.size // 2
    lon = np.concatenate((lon[:half], [city.bounding_box[0] - 0.04], lon[half:]))
    lat = np.concatenate((lat[:half], [lat[half]], lat[half:]))
    matched = matcher.match(lon, lat)
    assert not matched.matched
    assert matched.breaks >= 1
    assert matched.points_matched < matched.points
    TransitPath.on(city, matched.edges)


def test_a_polyline_against_a_one_way_street_is_not_matched_end_to_end(city: RoadNetwork, matcher: Matcher) -> None:
    # A 905 m one-way primary road, the wrong way, with no carriageway back within the radius.
    edge = edge_between(city, -21902, -706)
    tail, head = city.edge_source[edge], city.indices[edge]
    matched = matcher.match(city.node_lon[[head, tail]], city.node_lat[[head, tail]])
    assert not matched.matched
    assert "no road it can follow" in matched.reason
    assert edge not in matched.edges


def test_stops_are_located_in_order_on_a_path_that_passes_twice(city: RoadNetwork, matcher: Matcher) -> None:
    # Out along a two-way street and back: the same line, passed once each way.
    reverse = {(int(u), int(v)): e for e, (u, v) in enumerate(zip(city.edge_source, city.indices, strict=True))}
    out = next(e for e, (u, v) in enumerate(zip(city.edge_source.tolist(), city.indices.tolist(), strict=True))
               if (v, u) in reverse and 200.0 < city.length_m[e] < 500.0)
    back = reverse[(int(city.indices[out]), int(city.edge_source[out]))]
    edges = np.array([out, back])
    length_m = float(city.length_m[out])
    start, end = city.edge_source[out], city.indices[out]
    middle_lon = float(city.node_lon[[start, end]].mean())
    middle_lat = float(city.node_lat[[start, end]].mean())
    # Stops at the start, midway, at the far end, midway again and back at the start: the order puts
    # the second stop midway on the way back, though the first pass is as near.
    lon = np.array([city.node_lon[start], middle_lon, city.node_lon[end], middle_lon, city.node_lon[start]])
    lat = np.array([city.node_lat[start], middle_lat, city.node_lat[end], middle_lat, city.node_lat[start]])
    along_m, off_m = matcher.locate(edges, lon, lat)
    assert along_m == pytest.approx(np.array([0.0, 0.5, 1.0, 1.5, 2.0]) * length_m, abs=0.02 * length_m)
    assert off_m == pytest.approx(0.0, abs=1.0)
    path = TransitPath.on(city, edges, stop_ids=("a", "b", "c", "d", "e"), stop_at_m=along_m)
    assert path.stop_at_m.tolist() == along_m.tolist()
