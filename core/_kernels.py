"""Numba kernels of the core: shortest paths and nearest nodes over CSR arrays, the safety
monitor's check of a green schedule, and map matching (candidate edges, road distances, Viterbi).

The graph is given as ``indptr`` (n + 1,) int64 and ``indices`` (m,) int64: the edges leaving node
``u`` are ``indptr[u]:indptr[u + 1]`` and ``indices[e]`` is the head node of edge ``e``; ``weight``
(m,) float64 is the non-negative cost of each edge. Node coordinates are degrees (WGS84).

Kernels take contiguous arrays and scalars, write their results into ``out`` arrays, never raise
and do no I/O. Inputs are validated by :mod:`pilotage.core.network`, :mod:`pilotage.core.safety`
and :mod:`pilotage.core.matching`.
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


# -- map matching -----------------------------------------------------------------------------------
# A polyline is matched onto the network by a hidden Markov model (Newson & Krumm 2009); the layer
# above is pilotage.core.matching. Positions are metres in a local plane (x east, y north); edges
# are the straight segments between their nodes; a candidate is an edge near a point, with the
# distance (m) from the edge's tail to the point's projection on it (its offset).


@kernel
def _project_on_segment(x: float, y: float, ax: float, ay: float, bx: float, by: float) -> tuple[float, float]:
    # The fraction (0..1) of the segment a -> b at the point nearest to (x, y), and that distance (m).
    dx = bx - ax
    dy = by - ay
    squared = dx * dx + dy * dy
    fraction = 0.0
    if squared > 0.0:
        fraction = min(1.0, max(0.0, ((x - ax) * dx + (y - ay) * dy) / squared))
    ex = ax + fraction * dx - x
    ey = ay + fraction * dy - y
    return fraction, float(np.sqrt(ex * ex + ey * ey))


@kernel
def _grid_cell(value: float, origin: float, cell_m: float, n_cells: int) -> int:
    # The cell (0..n_cells - 1) along one axis that holds a coordinate, values outside clamped.
    index = int(np.floor((value - origin) / cell_m))
    return min(n_cells - 1, max(0, index))


@kernel
def _register_segment(ax: float, ay: float, bx: float, by: float, pad_m: float, x0: float, y0: float, cell_m: float,
                      nx: int, ny: int, edge: int, slots: np.ndarray, out_cell_edges: np.ndarray) -> None:
    # Every grid cell within pad_m of the segment a -> b (a few more, at its ends), column by column:
    # each gets the edge. With an empty out_cell_edges, slots[cell] counts the edges of each cell;
    # otherwise slots[cell] is the next free position of the cell in out_cell_edges.
    if ax > bx:
        ax, bx = bx, ax
        ay, by = by, ay
    first = _grid_cell(ax - pad_m, x0, cell_m, nx)
    last = _grid_cell(bx + pad_m, x0, cell_m, nx)
    for cx in range(first, last + 1):
        # The part of the segment within pad_m of the column (the nearest end, for a column beside
        # it); the column's cells within pad_m of that part are within pad_m of the segment.
        left = min(bx, max(ax, x0 + cx * cell_m - pad_m))
        right = max(ax, min(bx, x0 + (cx + 1) * cell_m + pad_m))
        y_left = ay
        y_right = by
        if bx > ax:
            y_left = ay + (by - ay) * (left - ax) / (bx - ax)
            y_right = ay + (by - ay) * (right - ax) / (bx - ax)
        low = _grid_cell(min(y_left, y_right) - pad_m, y0, cell_m, ny)
        high = _grid_cell(max(y_left, y_right) + pad_m, y0, cell_m, ny)
        for cy in range(low, high + 1):
            cell = cy * nx + cx
            if out_cell_edges.size:
                out_cell_edges[slots[cell]] = edge
            slots[cell] += 1


@kernel
def edge_grid_counts(node_x: np.ndarray, node_y: np.ndarray, edge_source: np.ndarray, edge_head: np.ndarray,
                     slack_m: np.ndarray, x0: float, y0: float, cell_m: float, nx: int, ny: int,
                     out_count: np.ndarray) -> None:
    """Number of edges within reach of each cell of a grid, into ``out_count`` (nx * ny,), zeroed first.

    An edge reaches the cells its segment passes through and those within its ``slack_m`` of it.
    The grid's cells are squares of ``cell_m`` from ``(x0, y0)``, ``nx`` across and ``ny`` up;
    cell ``(cx, cy)`` is ``cy * nx + cx``. Positions beyond the grid count in its border cells.
    """
    out_count[:] = 0
    no_edges = np.empty(0, dtype=np.int64)
    for e in range(edge_source.size):
        u = edge_source[e]
        v = edge_head[e]
        _register_segment(node_x[u], node_y[u], node_x[v], node_y[v], slack_m[e], x0, y0, cell_m, nx, ny, e,
                          out_count, no_edges)


@kernel
def edge_grid_fill(node_x: np.ndarray, node_y: np.ndarray, edge_source: np.ndarray, edge_head: np.ndarray,
                   slack_m: np.ndarray, x0: float, y0: float, cell_m: float, nx: int, ny: int, cell_ptr: np.ndarray,
                   out_cell_edges: np.ndarray) -> None:
    """The edges within reach of each grid cell, into ``out_cell_edges[cell_ptr[c]:cell_ptr[c + 1]]`` in
    edge order; ``cell_ptr`` is the running sum of :func:`edge_grid_counts` (nx * ny + 1,)."""
    slots = cell_ptr[:-1].copy()
    for e in range(edge_source.size):
        u = edge_source[e]
        v = edge_head[e]
        _register_segment(node_x[u], node_y[u], node_x[v], node_y[v], slack_m[e], x0, y0, cell_m, nx, ny, e,
                          slots, out_cell_edges)


@kernel
def _insert_candidate(edge_row: np.ndarray, offset_row: np.ndarray, distance_row: np.ndarray, count: int,
                      edge: int, offset_m: float, distance_m: float) -> int:
    # Insert into the rows kept sorted by (distance, edge), dropping the last when they are full.
    capacity = edge_row.size
    position = count
    while position > 0 and (distance_row[position - 1] > distance_m
                            or (distance_row[position - 1] == distance_m and edge_row[position - 1] > edge)):
        position -= 1
    if position >= capacity:
        return count
    last = min(count, capacity - 1)
    for k in range(last, position, -1):
        edge_row[k] = edge_row[k - 1]
        offset_row[k] = offset_row[k - 1]
        distance_row[k] = distance_row[k - 1]
    edge_row[position] = edge
    offset_row[position] = offset_m
    distance_row[position] = distance_m
    return min(count + 1, capacity)


@kernel
def _candidates_in_cell(x: float, y: float, cell: int, node_x: np.ndarray, node_y: np.ndarray,
                        edge_source: np.ndarray, edge_head: np.ndarray, length_m: np.ndarray, slack_m: np.ndarray,
                        cell_ptr: np.ndarray, cell_edges: np.ndarray, radius_m: float, edge_row: np.ndarray,
                        offset_row: np.ndarray, distance_row: np.ndarray, count: int) -> int:
    # The edges of one grid cell within radius_m of (x, y), into the point's rows; an edge met in an
    # earlier cell is there already (or was not near enough). Returns the rows' new count.
    for k in range(cell_ptr[cell], cell_ptr[cell + 1]):
        e = cell_edges[k]
        seen = False
        for q in range(count):
            if edge_row[q] == e:
                seen = True
        if seen:
            continue
        u = edge_source[e]
        v = edge_head[e]
        fraction, distance_m = _project_on_segment(x, y, node_x[u], node_y[u], node_x[v], node_y[v])
        distance_m = max(0.0, distance_m - slack_m[e])
        if distance_m <= radius_m:
            count = _insert_candidate(edge_row, offset_row, distance_row, count, e, fraction * length_m[e],
                                      distance_m)
    return count


@kernel
def edge_candidates(px: np.ndarray, py: np.ndarray, node_x: np.ndarray, node_y: np.ndarray, edge_source: np.ndarray,
                    edge_head: np.ndarray, length_m: np.ndarray, slack_m: np.ndarray, x0: float, y0: float,
                    cell_m: float, nx: int, ny: int, cell_ptr: np.ndarray, cell_edges: np.ndarray, radius_m: float,
                    out_edge: np.ndarray, out_offset_m: np.ndarray, out_distance_m: np.ndarray,
                    out_count: np.ndarray) -> None:
    """The edges within ``radius_m`` of each point ``(px[i], py[i])``, nearest first (ties by edge index).

    An edge's distance to a point is the distance to its segment less its ``slack_m`` (an allowance
    for a curved street drawn as a straight edge), at least 0. Writes at most
    K = ``out_edge.shape[1]`` candidates per point: ``out_edge[i, :out_count[i]]``, their distance
    (m) and the offset (m along the edge's ``length_m``) of the point's projection on the segment.
    The grid (:func:`edge_grid_fill`) gives the edges that reach each cell.
    """
    capacity = out_edge.shape[1]
    for i in range(px.size):
        x = px[i]
        y = py[i]
        count = 0
        # The cells that meet the square of side 2 * radius around the point; positions beyond the
        # grid are in its border cells, for the point as for the edges.
        x_low = _grid_cell(x - radius_m, x0, cell_m, nx)
        x_high = _grid_cell(x + radius_m, x0, cell_m, nx)
        y_low = _grid_cell(y - radius_m, y0, cell_m, ny)
        y_high = _grid_cell(y + radius_m, y0, cell_m, ny)
        for cy in range(y_low, y_high + 1):
            for cx in range(x_low, x_high + 1):
                count = _candidates_in_cell(x, y, cy * nx + cx, node_x, node_y, edge_source, edge_head, length_m,
                                            slack_m, cell_ptr, cell_edges, radius_m, out_edge[i], out_offset_m[i],
                                            out_distance_m[i], count)
        out_count[i] = count
        for q in range(count, capacity):
            out_edge[i, q] = -1
            out_offset_m[i, q] = np.nan
            out_distance_m[i, q] = np.inf


@kernel
def _bounded_search(indptr: np.ndarray, indices: np.ndarray, weight: np.ndarray, source: int, bound: float,
                    is_target: np.ndarray, n_targets: int, dist: np.ndarray, pred_edge: np.ndarray,
                    settled: np.ndarray, touched: np.ndarray, heap_keys: np.ndarray, heap_nodes: np.ndarray) -> int:
    """Dijkstra from ``source`` over the nodes within ``bound``, until the ``n_targets`` flagged nodes
    are settled; returns the number of nodes it touched, listed in ``touched``.

    Unlike ``_search`` it does not reset the whole graph: ``dist`` must be inf, ``pred_edge`` -1 and
    ``settled`` False on entry for every node, and the caller restores them on the touched nodes
    (:func:`_reset_search`) before the next search; a short search then costs what it visits.
    Only the settled nodes' ``dist`` are final; a node beyond ``bound`` is never settled.
    """
    n_touched = 0
    if bound < 0.0:
        return n_touched
    dist[source] = 0.0
    touched[n_touched] = source
    n_touched += 1
    size = _heap_push(heap_keys, heap_nodes, 0, 0.0, source)
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
            candidate = du + weight[e]
            if settled[v] or candidate > bound or candidate >= dist[v]:
                continue
            if np.isinf(dist[v]):
                touched[n_touched] = v
                n_touched += 1
            dist[v] = candidate
            pred_edge[v] = e
            size = _heap_push(heap_keys, heap_nodes, size, candidate, v)
    return n_touched


@kernel
def _reset_search(touched: np.ndarray, n_touched: int, dist: np.ndarray, pred_edge: np.ndarray,
                  settled: np.ndarray) -> None:
    # Restores the state _bounded_search expects on the nodes the last search touched.
    for k in range(n_touched):
        v = touched[k]
        dist[v] = np.inf
        pred_edge[v] = -1
        settled[v] = False


@kernel
def _route_m(edge_a: int, offset_a_m: float, edge_b: int, offset_b_m: float, length_m: np.ndarray,
             edge_source: np.ndarray, dist: np.ndarray, settled: np.ndarray, backtrack_m: float) -> float:
    # Road distance (m) from a point on edge_a to a point on edge_b, given a search from the head of
    # edge_a; inf when the search did not settle the tail of edge_b. A point a little behind another
    # on the same edge (noise) is reached without moving.
    if edge_a == edge_b and offset_b_m >= offset_a_m - backtrack_m:
        return max(0.0, offset_b_m - offset_a_m)
    tail = edge_source[edge_b]
    if not settled[tail]:
        return np.inf
    return float(length_m[edge_a] - offset_a_m + dist[tail] + offset_b_m)


@kernel
def route_distances(indptr: np.ndarray, indices: np.ndarray, length_m: np.ndarray, edge_source: np.ndarray,
                    cand_edge: np.ndarray, cand_offset_m: np.ndarray, cand_count: np.ndarray, bound_m: np.ndarray,
                    backtrack_m: float, out: np.ndarray) -> None:
    """Road distance (m) from each candidate of step t to each candidate of step t + 1, into
    ``out[t, i, j]`` (T - 1, K, K); inf beyond ``bound_m[t]`` or where there is no path.

    The distance runs from candidate i's position along its edge to the edge's head, through the
    network (a bounded Dijkstra on ``length_m`` from that head, stopped once the tails of step t + 1's
    candidates are settled), then along candidate j's edge to its position. On one edge, a position
    at most ``backtrack_m`` behind the one before counts as not moving (noise, not a loop).
    """
    n = indptr.size - 1
    dist = np.full(n, np.inf)
    pred_edge = np.full(n, -1, dtype=np.int64)
    settled = np.zeros(n, dtype=np.bool_)
    is_target = np.zeros(n, dtype=np.bool_)
    touched = np.empty(n, dtype=np.int64)
    heap_keys = np.empty(indices.size + 1, dtype=np.float64)
    heap_nodes = np.empty(indices.size + 1, dtype=np.int64)
    out[:] = np.inf
    for t in range(cand_count.size - 1):
        n_targets = 0
        for j in range(cand_count[t + 1]):
            tail = edge_source[cand_edge[t + 1, j]]
            if not is_target[tail]:
                is_target[tail] = True
                n_targets += 1
        for i in range(cand_count[t]):
            edge_a = cand_edge[t, i]
            offset_a_m = cand_offset_m[t, i]
            n_touched = _bounded_search(indptr, indices, length_m, indices[edge_a],
                                        bound_m[t] - (length_m[edge_a] - offset_a_m), is_target, n_targets, dist,
                                        pred_edge, settled, touched, heap_keys, heap_nodes)
            for j in range(cand_count[t + 1]):
                route = _route_m(edge_a, offset_a_m, cand_edge[t + 1, j], cand_offset_m[t + 1, j], length_m,
                                 edge_source, dist, settled, backtrack_m)
                if route <= bound_m[t]:
                    out[t, i, j] = route
            _reset_search(touched, n_touched, dist, pred_edge, settled)
        for j in range(cand_count[t + 1]):
            is_target[edge_source[cand_edge[t + 1, j]]] = False


@kernel
def viterbi(distance_m: np.ndarray, cand_count: np.ndarray, route_m: np.ndarray, straight_m: np.ndarray,
            sigma_m: float, beta_m: float, out_state: np.ndarray, out_break: np.ndarray) -> float:
    """The most likely candidate of each step, into ``out_state`` (T,); returns the path's cost.

    Costs are negative log-likelihoods without their constants: emission ``0.5 * (d / sigma_m)**2``
    for a candidate at ``distance_m[t, i]`` from its point, transition ``|route - straight| / beta_m``
    between candidates ``route_m[t, i, j]`` apart on the road for points ``straight_m[t]`` apart.
    A step that no candidate of the step before reaches (every route inf) is a break:
    ``out_break[t]`` is True and the chain restarts there; the cost is the sum over the pieces.
    Ties go to the lower candidate index. Every step needs at least one candidate.
    """
    steps = cand_count.size
    capacity = distance_m.shape[1]
    cost = np.full((steps, capacity), np.inf)
    back = np.full((steps, capacity), -1, dtype=np.int64)
    out_break[:] = False
    for j in range(cand_count[0]):
        cost[0, j] = 0.5 * (distance_m[0, j] / sigma_m) ** 2
    for t in range(1, steps):
        reached = False
        for j in range(cand_count[t]):
            emission = 0.5 * (distance_m[t, j] / sigma_m) ** 2
            best = np.inf
            best_i = -1
            for i in range(cand_count[t - 1]):
                if np.isinf(route_m[t - 1, i, j]) or np.isinf(cost[t - 1, i]):
                    continue
                value = cost[t - 1, i] + abs(route_m[t - 1, i, j] - straight_m[t - 1]) / beta_m
                if value < best:
                    best = value
                    best_i = i
            if best_i >= 0:
                reached = True
                cost[t, j] = best + emission
                back[t, j] = best_i
        if not reached:
            out_break[t] = True
            for j in range(cand_count[t]):
                cost[t, j] = 0.5 * (distance_m[t, j] / sigma_m) ** 2
    total = 0.0
    t = steps - 1
    while t >= 0:
        # The best end of this piece, then back through it to its first step.
        state = 0
        for j in range(1, cand_count[t]):
            if cost[t, j] < cost[t, state]:
                state = j
        total += cost[t, state]
        out_state[t] = state
        while not out_break[t] and t > 0:
            state = back[t, state]
            t -= 1
            out_state[t] = state
        t -= 1
    return total


@kernel
def rebuild_path(indptr: np.ndarray, indices: np.ndarray, length_m: np.ndarray, edge_source: np.ndarray,
                 edge: np.ndarray, offset_m: np.ndarray, bound_m: np.ndarray, backtrack_m: float,
                 out_edges: np.ndarray) -> int:
    """The edges of the road path through the chosen candidates (``edge[t]`` at ``offset_m[t]``) of one
    piece of a match, into ``out_edges``, in order; returns their number.

    Between two steps the path is the least-length one (within ``bound_m[t]``, as
    :func:`route_distances` found it); a step on the same edge a little ahead (or at most
    ``backtrack_m`` behind) adds nothing. Returns -1 when a step cannot be reached, -2 when
    ``out_edges`` is too short.
    """
    n = indptr.size - 1
    dist = np.full(n, np.inf)
    pred_edge = np.full(n, -1, dtype=np.int64)
    settled = np.zeros(n, dtype=np.bool_)
    is_target = np.zeros(n, dtype=np.bool_)
    touched = np.empty(n, dtype=np.int64)
    heap_keys = np.empty(indices.size + 1, dtype=np.float64)
    heap_nodes = np.empty(indices.size + 1, dtype=np.int64)
    if edge.size == 0:
        return 0
    if out_edges.size == 0:
        return -2
    out_edges[0] = edge[0]
    count = 1
    for t in range(edge.size - 1):
        a = edge[t]
        b = edge[t + 1]
        if a == b and offset_m[t + 1] >= offset_m[t] - backtrack_m:
            continue
        head = indices[a]
        tail = edge_source[b]
        is_target[tail] = True
        n_touched = _bounded_search(indptr, indices, length_m, head, bound_m[t] - (length_m[a] - offset_m[t]),
                                    is_target, 1, dist, pred_edge, settled, touched, heap_keys, heap_nodes)
        is_target[tail] = False
        reached = settled[tail]
        added = 0
        if reached:
            added = trace_path(pred_edge, edge_source, head, tail, out_edges[count:])
        _reset_search(touched, n_touched, dist, pred_edge, settled)
        if not reached:
            return -1
        if added < 0 or count + added >= out_edges.size:
            return -2
        count += added
        out_edges[count] = b
        count += 1
    return count
