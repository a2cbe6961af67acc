"""Each kernel of pilotage.core._kernels against its plain-Python reference (naive.py), on fixed and
generated cases."""

import math
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pilotage.core import _kernels

from .naive import EARTH_RADIUS_M, dijkstra_reference, haversine_reference


def to_csr(n: int, edges: list[tuple[int, int, float]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    edges = sorted(edges, key=lambda edge: edge[0])
    indptr = np.zeros(n + 1, dtype=np.int64)
    for u, _, _ in edges:
        indptr[u + 1] += 1
    return (np.cumsum(indptr), np.array([v for _, v, _ in edges], dtype=np.int64),
            np.array([w for _, _, w in edges], dtype=np.float64))


@st.composite
def graphs(draw: st.DrawFn) -> tuple[int, list[tuple[int, int, float]]]:
    """Small directed multigraphs, possibly disconnected, with self-loops, parallel and zero-cost edges."""
    n = draw(st.integers(1, 12))
    node = st.integers(0, n - 1)
    cost = st.one_of(st.just(0.0), st.floats(0.0, 1000.0, allow_nan=False))
    return n, draw(st.lists(st.tuples(node, node, cost), max_size=40))


lons = st.floats(-180.0, 180.0, allow_nan=False)
lats = st.floats(-90.0, 90.0, allow_nan=False)


@pytest.mark.parametrize(("a", "b", "expected_m"), [
    ((0.0, 0.0), (0.0, 0.0), 0.0),
    ((0.0, 0.0), (0.0, 1.0), EARTH_RADIUS_M * math.pi / 180.0),
    ((0.0, 0.0), (180.0, 0.0), EARTH_RADIUS_M * math.pi),
])
def test_straight_line_fixed_cases(a: tuple[float, float], b: tuple[float, float], expected_m: float) -> None:
    out = np.empty(1)
    _kernels.straight_line_m(np.array([a[0]]), np.array([a[1]]), np.array([b[0]]), np.array([b[1]]), out)
    assert out[0] == pytest.approx(expected_m, abs=1e-6)


@given(st.lists(st.tuples(lons, lats, lons, lats), min_size=1, max_size=20))
def test_straight_line_matches_reference(pairs: list[tuple[float, float, float, float]]) -> None:
    lon_a, lat_a, lon_b, lat_b = (np.array(column) for column in zip(*pairs, strict=True))
    out = np.empty(len(pairs))
    _kernels.straight_line_m(lon_a, lat_a, lon_b, lat_b, out)
    for got, pair in zip(out, pairs, strict=True):
        assert got == pytest.approx(haversine_reference(*pair), rel=1e-9, abs=1e-6)


@given(st.lists(st.tuples(lons, lats), min_size=1, max_size=30),
       st.lists(st.tuples(lons, lats), min_size=1, max_size=5))
def test_nearest_nodes_matches_brute_force(nodes: list[tuple[float, float]], points: list[tuple[float, float]]) -> None:
    node_lon, node_lat = (np.array(column) for column in zip(*nodes, strict=True))
    lon, lat = (np.array(column) for column in zip(*points, strict=True))
    found = np.empty(len(points), dtype=np.int64)
    distance_m = np.empty(len(points))
    _kernels.nearest_nodes(node_lon, node_lat, lon, lat, found, distance_m)
    for i, (x, y) in enumerate(points):
        reference = [haversine_reference(x, y, a, b) for a, b in nodes]
        assert distance_m[i] == pytest.approx(min(reference), rel=1e-9, abs=1e-6)
        assert reference[found[i]] == pytest.approx(min(reference), rel=1e-9, abs=1e-6)


@given(graphs(), st.data())
def test_shortest_path_tree_matches_reference(graph: tuple[int, list], data: st.DataObject) -> None:
    n, edges = graph
    source = data.draw(st.integers(0, n - 1))
    target = data.draw(st.integers(0, n - 1))
    indptr, indices, weight = to_csr(n, edges)
    dist = np.empty(n)
    pred_edge = np.empty(n, dtype=np.int64)
    _kernels.shortest_path_tree(indptr, indices, weight, np.zeros((n, 3)), source, target, 0.0, dist, pred_edge)
    expected = dijkstra_reference(n, edges, source)[target]
    assert dist[target] == pytest.approx(expected) if math.isfinite(expected) else math.isinf(dist[target])
    edge_source = np.repeat(np.arange(n), np.diff(indptr))
    path = np.empty(n, dtype=np.int64)
    count = _kernels.trace_path(pred_edge, edge_source, source, target, path)
    if not math.isfinite(expected):
        assert count == -1
        return
    # The reference walks the predecessors back from the target; the kernel gives them in order.
    reference, node = [], target
    while node != source:
        reference.append(int(pred_edge[node]))
        node = int(edge_source[pred_edge[node]])
    assert path[:count].tolist() == reference[::-1]
    assert weight[path[:count]].sum() == pytest.approx(expected)
    if count:
        assert edge_source[path[0]] == source
        assert indices[path[count - 1]] == target
        assert (indices[path[:count - 1]] == edge_source[path[1:count]]).all()


@given(st.lists(st.tuples(st.floats(6.0, 6.2), st.floats(49.5, 49.7)), min_size=2, max_size=12),
       st.lists(st.tuples(st.integers(0, 11), st.integers(0, 11), st.floats(1.0, 3.0)), max_size=40), st.data())
def test_astar_matches_reference(points: list, links: list, data: st.DataObject) -> None:
    # Edge costs at least their chord, as travel along a road is never shorter than the straight line.
    n = len(points)
    xyz_m = np.empty((n, 3))
    _kernels.earth_xyz_m(np.array([p[0] for p in points]), np.array([p[1] for p in points]), xyz_m)
    edges = [(u % n, v % n, factor * float(np.linalg.norm(xyz_m[u % n] - xyz_m[v % n]))) for u, v, factor in links]
    source, target = data.draw(st.integers(0, n - 1)), data.draw(st.integers(0, n - 1))
    indptr, indices, weight = to_csr(n, edges)
    dist = np.empty(n)
    pred_edge = np.empty(n, dtype=np.int64)
    _kernels.shortest_path_tree(indptr, indices, weight, xyz_m, source, target, 1.0 - 1e-9, dist, pred_edge)
    expected = dijkstra_reference(n, edges, source)[target]
    assert dist[target] == pytest.approx(expected) if math.isfinite(expected) else math.isinf(dist[target])


@given(st.lists(st.tuples(lons, lats, lons, lats), min_size=1, max_size=10))
def test_earth_xyz_chord_matches_the_great_circle(pairs: list[tuple[float, float, float, float]]) -> None:
    lon_a, lat_a, lon_b, lat_b = (np.array(column) for column in zip(*pairs, strict=True))
    a, b = np.empty((len(pairs), 3)), np.empty((len(pairs), 3))
    _kernels.earth_xyz_m(lon_a, lat_a, a)
    _kernels.earth_xyz_m(lon_b, lat_b, b)
    for i, pair in enumerate(pairs):
        arc_m = haversine_reference(*pair)
        # A chord subtends the arc: chord = 2 R sin(arc / 2R), never longer than the arc.
        expected_m = 2 * EARTH_RADIUS_M * math.sin(arc_m / (2 * EARTH_RADIUS_M))
        assert np.linalg.norm(a[i] - b[i]) == pytest.approx(expected_m, rel=1e-7, abs=1e-3)
        assert np.linalg.norm(a[i] - b[i]) <= arc_m + 1e-3
    assert np.linalg.norm(a, axis=1) == pytest.approx(EARTH_RADIUS_M)


@given(graphs(), st.data())
def test_many_to_many_matches_reference(graph: tuple[int, list], data: st.DataObject) -> None:
    n, edges = graph
    sources = data.draw(st.lists(st.integers(0, n - 1), max_size=6))
    targets = data.draw(st.lists(st.integers(0, n - 1), max_size=6))
    indptr, indices, weight = to_csr(n, edges)
    out = np.empty((len(sources), len(targets)))
    _kernels.many_to_many(indptr, indices, weight, np.array(sources, dtype=np.int64),
                          np.array(targets, dtype=np.int64), out)
    for i, s in enumerate(sources):
        reference = dijkstra_reference(n, edges, s)
        for j, t in enumerate(targets):
            assert out[i, j] == pytest.approx(reference[t]) if math.isfinite(reference[t]) else math.isinf(out[i, j])


def test_unreachable_target_is_inf() -> None:
    indptr, indices, weight = to_csr(3, [(0, 1, 5.0)])
    out = np.empty((1, 2))
    _kernels.many_to_many(indptr, indices, weight, np.array([0]), np.array([1, 2]), out)
    assert out[0, 0] == 5.0
    assert math.isinf(out[0, 1])


def test_nothing_compiles_at_import() -> None:
    code = ("import pilotage.adapters.cli, pilotage.adapters.osm, pilotage.core\n"
            "from pilotage.core import _kernels\n"
            "compiled = [name for name in dir(_kernels) if getattr(getattr(_kernels, name), 'signatures', None)]\n"
            "print(','.join(compiled))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert run.stdout.strip() == ""
