"""Numba kernels of the core: shortest paths and nearest nodes over CSR arrays, and the safety
monitor's check of a green schedule.

The graph is given as ``indptr`` (n + 1,) int64 and ``indices`` (m,) int64: the edges leaving node
``u`` are ``indptr[u]:indptr[u + 1]`` and ``indices[e]`` is the head node of edge ``e``; ``weight``
(m,) float64 is the non-negative cost of each edge. Node coordinates are degrees (WGS84).

Kernels take contiguous arrays and scalars, write their results into ``out`` arrays, never raise
and do no I/O. Inputs are validated by :mod:`pilotage.core.network` and :mod:`pilotage.core.safety`.
"""

import numpy as np

from pilotage.core._jit import kernel
from pilotage.core.signals import PEDESTRIAN

# Mean Earth radius, as osmnx uses for edge lengths, so straight lines never exceed OSM lengths.
EARTH_RADIUS_M = 6_371_009.0


@kernel
def _haversine_m(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    phi1 = np.radians(lat1)
    phi2 = np.radians(lat2)
    sin_dphi = np.sin((phi2 - phi1) * 0.5)
    sin_dlambda = np.sin(np.radians(lon2 - lon1) * 0.5)
    a = sin_dphi * sin_dphi + np.cos(phi1) * np.cos(phi2) * sin_dlambda * sin_dlambda
    return float(2.0 * EARTH_RADIUS_M * np.arcsin(np.sqrt(min(1.0, a))))


@kernel
def earth_xyz_m(lon: np.ndarray, lat: np.ndarray, out: np.ndarray) -> None:
    """Position (m) of each point in an Earth-centred frame on the sphere, into ``out`` (n, 3)."""
    for i in range(lon.size):
        phi = np.radians(lat[i])
        lam = np.radians(lon[i])
        out[i, 0] = EARTH_RADIUS_M * np.cos(phi) * np.cos(lam)
        out[i, 1] = EARTH_RADIUS_M * np.cos(phi) * np.sin(lam)
        out[i, 2] = EARTH_RADIUS_M * np.sin(phi)


@kernel
def straight_line_m(lon_a: np.ndarray, lat_a: np.ndarray, lon_b: np.ndarray, lat_b: np.ndarray,
                    out: np.ndarray) -> None:
    """Great-circle distance (m) between points ``a[i]`` and ``b[i]``, into ``out[i]``."""
    for i in range(out.size):
        out[i] = _haversine_m(lon_a[i], lat_a[i], lon_b[i], lat_b[i])


@kernel
def nearest_nodes(node_lon: np.ndarray, node_lat: np.ndarray, lon: np.ndarray, lat: np.ndarray, out_node: np.ndarray,
                  out_distance_m: np.ndarray) -> None:
    """For each point ``(lon[i], lat[i])``, the nearest node and its distance (m), by brute force."""
    for i in range(lon.size):
        best = np.inf
        best_node = -1
        for v in range(node_lon.size):
            d = _haversine_m(lon[i], lat[i], node_lon[v], node_lat[v])
            if d < best:
                best = d
                best_node = v
        out_node[i] = best_node
        out_distance_m[i] = best


@kernel
def _heap_push(keys: np.ndarray, nodes: np.ndarray, size: int, key: float, node: int) -> int:
    i = size
    keys[i] = key
    nodes[i] = node
    while i > 0:
        parent = (i - 1) >> 1
        if keys[parent] <= keys[i]:
            break
        keys[parent], keys[i] = keys[i], keys[parent]
        nodes[parent], nodes[i] = nodes[i], nodes[parent]
        i = parent
    return size + 1


@kernel
def _heap_pop(keys: np.ndarray, nodes: np.ndarray, size: int) -> int:
    # Removes the root; the caller has read keys[0] and nodes[0] before.
    size -= 1
    keys[0] = keys[size]
    nodes[0] = nodes[size]
    i = 0
    while True:
        left = 2 * i + 1
        if left >= size:
            break
        child = left
        if left + 1 < size and keys[left + 1] < keys[left]:
            child = left + 1
        if keys[i] <= keys[child]:
            break
        keys[child], keys[i] = keys[i], keys[child]
        nodes[child], nodes[i] = nodes[i], nodes[child]
        i = child
    return size


@kernel
def _chord_m(node_xyz_m: np.ndarray, u: int, v: int) -> float:
    dx = node_xyz_m[u, 0] - node_xyz_m[v, 0]
    dy = node_xyz_m[u, 1] - node_xyz_m[v, 1]
    dz = node_xyz_m[u, 2] - node_xyz_m[v, 2]
    return float(np.sqrt(dx * dx + dy * dy + dz * dz))


@kernel
def _search(indptr: np.ndarray, indices: np.ndarray, weight: np.ndarray, node_xyz_m: np.ndarray, source: int, goal: int,
            heuristic_per_m: float, is_target: np.ndarray, n_targets: int, dist: np.ndarray, pred_edge: np.ndarray,
            settled: np.ndarray, heap_keys: np.ndarray, heap_nodes: np.ndarray) -> None:
    """Label-setting search from ``source`` until the ``n_targets`` flagged nodes are settled.

    Dijkstra when ``heuristic_per_m`` is 0; A* towards ``goal`` otherwise, with the heuristic
    ``heuristic_per_m * chord(v, goal)``: the straight line through the Earth between the nodes'
    positions ``node_xyz_m`` (n, 3). The chord obeys the triangle inequality, so when the caller
    takes ``heuristic_per_m`` no larger than any edge's weight per metre of its chord, the
    heuristic is consistent and each node is settled once.
    Every successful relaxation pushes once and each edge relaxes at most once: the heap holds at
    most m + 1 entries.
    """
    for v in range(dist.size):
        dist[v] = np.inf
        pred_edge[v] = -1
        settled[v] = False
    dist[source] = 0.0
    h = 0.0
    if heuristic_per_m > 0.0:
        h = heuristic_per_m * _chord_m(node_xyz_m, source, goal)
    size = _heap_push(heap_keys, heap_nodes, 0, h, source)
    remaining = n_targets
    while size > 0 and remaining > 0:
        u = heap_nodes[0]
        size = _heap_pop(heap_keys, heap_nodes, size)
        if settled[u]:
            continue
        settled[u] = True
        if is_target[u]:
            remaining -= 1
        du = dist[u]
        for e in range(indptr[u], indptr[u + 1]):
            v = indices[e]
            if settled[v]:
                continue
            candidate = du + weight[e]
            if candidate < dist[v]:
                dist[v] = candidate
                pred_edge[v] = e
                h = 0.0
                if heuristic_per_m > 0.0:
                    h = heuristic_per_m * _chord_m(node_xyz_m, v, goal)
                size = _heap_push(heap_keys, heap_nodes, size, candidate + h, v)


@kernel
def shortest_path_tree(indptr: np.ndarray, indices: np.ndarray, weight: np.ndarray, node_xyz_m: np.ndarray, source: int,
                       target: int, heuristic_per_m: float, dist: np.ndarray, pred_edge: np.ndarray) -> None:
    """One-to-one search: ``dist`` (n,) and ``pred_edge`` (n,) of the nodes settled up to ``target``.

    ``dist[target]`` is inf when ``target`` cannot be reached; the path is read backwards through
    ``pred_edge`` (-1 at ``source``), or with :func:`trace_path`. ``heuristic_per_m`` 0 gives
    Dijkstra, > 0 gives A* (see ``_search``).
    """
    n = dist.size
    is_target = np.zeros(n, dtype=np.bool_)
    is_target[target] = True
    settled = np.empty(n, dtype=np.bool_)
    heap_keys = np.empty(indices.size + 1, dtype=np.float64)
    heap_nodes = np.empty(indices.size + 1, dtype=np.int64)
    _search(indptr, indices, weight, node_xyz_m, source, target, heuristic_per_m,
            is_target, 1, dist, pred_edge, settled, heap_keys, heap_nodes)


@kernel
def trace_path(pred_edge: np.ndarray, edge_source: np.ndarray, source: int, target: int, out_edges: np.ndarray) -> int:
    """Write the edges of the path ``source`` -> ``target`` of a search tree into ``out_edges``, in order.

    Returns their number, or -1 when ``target`` was not reached (or ``out_edges`` is too short).
    """
    count = 0
    node = target
    while node != source:
        edge = pred_edge[node]
        if edge < 0 or count == out_edges.size:
            return -1
        out_edges[count] = edge
        count += 1
        node = edge_source[edge]
    for i in range(count // 2):
        out_edges[i], out_edges[count - 1 - i] = out_edges[count - 1 - i], out_edges[i]
    return count


@kernel
def many_to_many(indptr: np.ndarray, indices: np.ndarray, weight: np.ndarray, sources: np.ndarray, targets: np.ndarray,
                 out: np.ndarray) -> None:
    """Shortest-path costs ``out[i, j]`` from ``sources[i]`` to ``targets[j]``; inf if unreachable.

    One Dijkstra per source, each stopped once every target is settled. Releases the GIL, so
    callers split the sources across threads to use several cores.
    """
    n = indptr.size - 1
    is_target = np.zeros(n, dtype=np.bool_)
    n_targets = 0
    for j in range(targets.size):
        if not is_target[targets[j]]:
            is_target[targets[j]] = True
            n_targets += 1
    dist = np.empty(n, dtype=np.float64)
    pred_edge = np.empty(n, dtype=np.int64)
    settled = np.empty(n, dtype=np.bool_)
    heap_keys = np.empty(indices.size + 1, dtype=np.float64)
    heap_nodes = np.empty(indices.size + 1, dtype=np.int64)
    no_coordinates = np.empty((0, 3), dtype=np.float64)
    for i in range(sources.size):
        _search(indptr, indices, weight, no_coordinates, sources[i], sources[i], 0.0,
                is_target, n_targets, dist, pred_edge, settled, heap_keys, heap_nodes)
        for j in range(targets.size):
            out[i, j] = dist[targets[j]]


@kernel
def count_violations(group: np.ndarray, start_s: np.ndarray, end_s: np.ndarray, horizon_start_s: float,
                     horizon_end_s: float, group_kind: np.ndarray, min_green_s: np.ndarray, walk_s: np.ndarray,
                     clearance_s: np.ndarray, intergreen_s: np.ndarray, max_cycle_s: float, tolerance_s: float) -> int:
    """Number of violations of the safety monitor's rules (:mod:`pilotage.core.safety`, whose Python
    listing of them is this kernel's reference) in a schedule of green intervals ``group``,
    ``start_s``, ``end_s`` (N,) over ``[horizon_start_s, horizon_end_s]``; 0 when it is safe. The
    plan's arrays are those of one intersection (G groups; ``intergreen_s`` NaN where two groups do
    not conflict)."""
    n_groups = group_kind.size
    n = group.size
    # Each group's greens in time order, overlapping or touching ones merged, grouped by group.
    order = np.argsort(start_s, kind="mergesort")
    first = np.zeros(n_groups + 1, dtype=np.int64)
    for r in range(n):
        first[group[r] + 1] += 1
    for g in range(n_groups):
        first[g + 1] += first[g]
    fill = first[:n_groups].copy()
    green_from = np.empty(n)
    green_until = np.empty(n)
    for r in order:
        g = group[r]
        green_from[fill[g]] = start_s[r]
        green_until[fill[g]] = end_s[r]
        fill[g] += 1
    merged_first = np.zeros(n_groups + 1, dtype=np.int64)
    merged = 0
    for g in range(n_groups):
        merged_first[g] = merged
        for r in range(first[g], first[g + 1]):
            if merged > merged_first[g] and green_from[r] <= green_until[merged - 1] + tolerance_s:
                green_until[merged - 1] = max(green_until[merged - 1], green_until[r])
            else:
                green_from[merged] = green_from[r]
                green_until[merged] = green_until[r]
                merged += 1
    merged_first[n_groups] = merged

    count = 0
    for g in range(n_groups):
        walk = walk_s[g] if group_kind[g] == PEDESTRIAN else 0.0
        for r in range(merged_first[g], merged_first[g + 1]):
            start, end = green_from[r], green_until[r]
            if start <= horizon_start_s or np.isinf(end):
                continue
            if end - start < walk - tolerance_s or end - start < min_green_s[g] - tolerance_s:
                count += 1

    for i in range(n_groups):
        for j in range(n_groups):
            if i == j or np.isnan(intergreen_s[i, j]):
                continue
            for rj in range(merged_first[j], merged_first[j + 1]):
                start_j, end_j = green_from[rj], green_until[rj]
                for ri in range(merged_first[i], merged_first[i + 1]):
                    start_i, end_i = green_from[ri], green_until[ri]
                    if i < j and start_i < end_j - tolerance_s and start_j < end_i - tolerance_s:
                        count += 1
                    if end_i <= start_j + tolerance_s and start_j > horizon_start_s:
                        gap = start_j - end_i
                        clearance_cut = group_kind[i] == PEDESTRIAN and gap < clearance_s[i] - tolerance_s
                        if clearance_cut or gap < intergreen_s[i, j] - tolerance_s:
                            count += 1

    for g in range(n_groups):
        # Each wait runs from a start (or the horizon's start) to the next start, and from the last
        # start to the horizon's end unless the group is green then.
        waits_from = horizon_start_s
        for r in range(merged_first[g], merged_first[g + 1]):
            if green_from[r] > horizon_start_s:
                if green_from[r] - waits_from > max_cycle_s + tolerance_s:
                    count += 1
                waits_from = green_from[r]
        last = merged_first[g + 1] - 1
        green_at_end = last >= merged_first[g] and green_until[last] >= horizon_end_s
        if not green_at_end and horizon_end_s - waits_from > max_cycle_s + tolerance_s:
            count += 1
    return count
