"""Shortest paths on the embedded city against networkx and scipy.sparse.csgraph, in the same run.

Groups (reference first): one-to-one routes (networkx Dijkstra), a 200 x 200 matrix (networkx,
then scipy.sparse.csgraph, which computes whole rows).
"""

from typing import Literal

import networkx as nx
import numpy as np
import pytest
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra

from pilotage.core import RoadNetwork, _kernels

ROUTES = 50
MATRIX_SIZE = 200


@pytest.fixture(scope="module")
def city_graph(city: RoadNetwork) -> nx.DiGraph:
    # The cheapest of parallel edges is the only one a shortest path uses.
    graph: nx.DiGraph[int] = nx.DiGraph()
    for u, v, cost in zip(city.edge_source.tolist(), city.indices.tolist(), city.travel_time_s.tolist(), strict=True):
        if not graph.has_edge(u, v) or graph[u][v]["travel_time_s"] > cost:
            graph.add_edge(u, v, travel_time_s=cost)
    return graph


@pytest.fixture(scope="module")
def pairs(city: RoadNetwork, rng: np.random.Generator) -> np.ndarray:
    return rng.integers(0, city.n_nodes, size=(ROUTES, 2))


@pytest.fixture(scope="module")
def matrix_nodes(city: RoadNetwork, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    return (rng.choice(city.n_nodes, MATRIX_SIZE, replace=False), rng.choice(city.n_nodes, MATRIX_SIZE, replace=False))


def test_route_networkx_dijkstra(benchmark, city_graph: nx.DiGraph, pairs: np.ndarray) -> None:
    benchmark.group = f"route one-to-one, {ROUTES} pairs"
    benchmark.extra_info["reference"] = True
    benchmark(lambda: [nx.dijkstra_path(city_graph, int(s), int(t), weight="travel_time_s") for s, t in pairs])


def test_route_networkx_astar(benchmark, city: RoadNetwork, city_graph: nx.DiGraph, pairs: np.ndarray) -> None:
    benchmark.group = f"route one-to-one, {ROUTES} pairs"
    rate = city._admissible_heuristic_per_m("travel_time_s")
    xyz_m = city._node_xyz_m()

    def straight_line_s(u: int, v: int) -> float:
        # The same admissible bound as pilotage's A*, so both searches are guided alike.
        return rate * _kernels._chord_m(xyz_m, u, v)

    benchmark(lambda: [nx.astar_path(city_graph, int(s), int(t), heuristic=straight_line_s, weight="travel_time_s")
                       for s, t in pairs])


@pytest.mark.parametrize("method", ["dijkstra", "astar"])
def test_route_pilotage(benchmark, city: RoadNetwork, pairs: np.ndarray, method: Literal["dijkstra", "astar"]) -> None:
    benchmark.group = f"route one-to-one, {ROUTES} pairs"
    city.shortest_path(0, 1, method=method)  # compiled or loaded before timing
    benchmark(lambda: [city.shortest_path(int(s), int(t), method=method) for s, t in pairs])


def test_matrix_networkx(benchmark, city_graph: nx.DiGraph, matrix_nodes: tuple[np.ndarray, np.ndarray]) -> None:
    benchmark.group = f"matrix {MATRIX_SIZE} x {MATRIX_SIZE}"
    benchmark.extra_info["reference"] = True
    sources, targets = matrix_nodes

    def run() -> list[list[float]]:
        rows = []
        for s in sources.tolist():
            costs = nx.single_source_dijkstra_path_length(city_graph, s, weight="travel_time_s")
            rows.append([costs[t] for t in targets.tolist()])
        return rows

    benchmark.pedantic(run, rounds=3, iterations=1)


def test_matrix_scipy_csgraph(benchmark, city: RoadNetwork, matrix_nodes: tuple[np.ndarray, np.ndarray]) -> None:
    benchmark.group = f"matrix {MATRIX_SIZE} x {MATRIX_SIZE}"
    sources, targets = matrix_nodes
    # csr_matrix would add up parallel edges: keep the cheapest of each instead.
    order = np.lexsort((city.travel_time_s, city.indices, city.edge_source))
    tails, heads, costs = city.edge_source[order], city.indices[order], city.travel_time_s[order]
    first = np.concatenate(([True], (tails[1:] != tails[:-1]) | (heads[1:] != heads[:-1])))
    graph = csr_matrix((costs[first], (tails[first], heads[first])), shape=(city.n_nodes, city.n_nodes))
    benchmark(lambda: dijkstra(graph, directed=True, indices=sources)[:, targets])


@pytest.mark.parametrize("workers", [1, 2])
def test_matrix_pilotage(benchmark, city: RoadNetwork, matrix_nodes: tuple[np.ndarray, np.ndarray],
                         workers: int) -> None:
    benchmark.group = f"matrix {MATRIX_SIZE} x {MATRIX_SIZE}"
    sources, targets = matrix_nodes
    city.matrix(sources[:2], targets[:2])
    benchmark(lambda: city.matrix(sources, targets, workers=workers))
