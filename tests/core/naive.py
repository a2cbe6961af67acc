"""Plain-Python references of the road network's kernels (:mod:`pilotage.core._kernels`), written from
the textbook rather than from the kernels; test_kernels.py compares them on fixed and generated cases.

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
