"""Plain-Python references of the road network's kernels (:mod:`pilotage.core._kernels`), written from
the textbook rather than from the kernels; test_kernels.py and test_matching.py compare them on fixed
and generated cases.

The safety monitor's kernel (``count_violations``) has its reference in the package itself: the
plain-Python listing :func:`pilotage.core.safety.list_violations`, which the monitor runs to name
the violations the kernel counted (test_safety.py compares them).
"""

import heapq
import math

# The radius of the sphere the kernels use (m).
EARTH_RADIUS_M = 6_371_009.0


def haversine_reference(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """The great-circle distance (m) between two points (degrees) on the sphere the kernels use."""
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    a = (math.sin((phi2 - phi1) / 2) ** 2
         + math.cos(phi1) * math.cos(phi2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2)
    return 2 * EARTH_RADIUS_M * math.asin(math.sqrt(min(1.0, a)))


def dijkstra_reference(n: int, edges: list[tuple[int, int, float]], source: int) -> list[float]:
    """The least cost from ``source`` to each of the ``n`` nodes over ``edges`` (tail, head, cost);
    ``inf`` where a node cannot be reached."""
    adjacency: list[list[tuple[int, float]]] = [[] for _ in range(n)]
    for u, v, w in edges:
        adjacency[u].append((v, w))
    dist = [math.inf] * n
    dist[source] = 0.0
    queue = [(0.0, source)]
    while queue:
        d, u = heapq.heappop(queue)
        if d > dist[u]:
            continue
        for v, w in adjacency[u]:
            if d + w < dist[v]:
                dist[v] = d + w
                heapq.heappush(queue, (d + w, v))
    return dist


# -- map matching (pilotage.core._kernels: edge_candidates, route_distances, viterbi, rebuild_path) ----
# Positions are metres in a plane; an edge is the straight segment between its nodes.


def segment_distance_reference(point: tuple[float, float], a: tuple[float, float],
                               b: tuple[float, float]) -> tuple[float, float]:
    """The point of segment a-b nearest to ``point``: its fraction along the segment (0 at a, 1 at b)
    and its distance; a segment of no length is its point a."""
    (x, y), (ax, ay), (bx, by) = point, a, b
    length_squared = (bx - ax) ** 2 + (by - ay) ** 2
    if length_squared == 0:
        return 0.0, math.hypot(x - ax, y - ay)
    fraction = ((x - ax) * (bx - ax) + (y - ay) * (by - ay)) / length_squared
    fraction = min(1.0, max(0.0, fraction))
    return fraction, math.hypot(ax + fraction * (bx - ax) - x, ay + fraction * (by - ay) - y)


def candidates_reference(point: tuple[float, float], node_xy: list[tuple[float, float]],
                         edges: list[tuple[int, int, float, float]], radius_m: float,
                         capacity: int) -> list[tuple[float, int, float]]:
    """The edges near a point, by brute force: ``(distance, edge, offset)`` for each edge (tail,
    head, length, curve allowance) whose segment lies within ``radius_m`` once its allowance is taken
    off, nearest first (then by edge index), at most ``capacity``."""
    found = []
    for e, (u, v, length_m, allowance_m) in enumerate(edges):
        fraction, distance = segment_distance_reference(point, node_xy[u], node_xy[v])
        distance = max(0.0, distance - allowance_m)
        if distance <= radius_m:
            found.append((distance, e, fraction * length_m))
    found.sort(key=lambda item: (item[0], item[1]))
    return found[:capacity]


def route_reference(n: int, edges: list[tuple[int, int, float]], a: tuple[int, float], b: tuple[int, float],
                    backtrack_m: float) -> float:
    """Road distance from offset ``a[1]`` along edge ``a[0]`` to offset ``b[1]`` along edge ``b[0]``
    (edges as (tail, head, length)): to the end of edge a, the shortest path to the start of edge b,
    then along it; on one edge, forward (or back by at most ``backtrack_m``, counted as no move)."""
    edge_a, offset_a = a
    edge_b, offset_b = b
    if edge_a == edge_b and offset_b >= offset_a - backtrack_m:
        return max(0.0, offset_b - offset_a)
    _, head_a, length_a = edges[edge_a]
    between = dijkstra_reference(n, edges, head_a)[edges[edge_b][0]]
    return (length_a - offset_a) + between + offset_b


def viterbi_reference(emission: list[list[float]], transition: list[list[list[float]]]) -> tuple[float, list[bool]]:
    """The least total cost of a chain through the states of each step, textbook Viterbi on costs
    (negative log-likelihoods): ``emission[t][j]``, ``transition[t][i][j]`` from state i of step t to
    state j of step t + 1 (inf: impossible). Where no state of step t reaches any of step t + 1, the
    chain breaks and restarts at t + 1: returns the sum of the pieces' least costs and where it broke."""
    best = list(emission[0])
    total = 0.0
    breaks = [False]
    for t in range(1, len(emission)):
        step = [min((best[i] + transition[t - 1][i][j] for i in range(len(best))), default=math.inf) + emission[t][j]
                for j in range(len(emission[t]))]
        if all(math.isinf(value) for value in step):
            total += min(best)
            step = list(emission[t])
            breaks.append(True)
        else:
            breaks.append(False)
        best = step
    return total + min(best), breaks
