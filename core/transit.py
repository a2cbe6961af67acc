"""Public-transport trips on the road network: the path each runs, its stops, and its timetable.

A :class:`TransitPath` is where a trip runs: a connected sequence of network edges, the distance
along it of each stop it serves, and the signalised intersections it crosses, each with the
movement (the edge it comes in on, the edge it leaves by) that names the signal group its vehicles
get (:meth:`~pilotage.core.signals.IntersectionPlan.movement_group`). Many trips share one path
(a GTFS shape); a :class:`Trip` adds the times. Both are built by an adapter (GTFS feeds, a
simulation's routes) and read by the engines that follow vehicles along them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pilotage.core.errors import InvalidInputError
from pilotage.core.network import RoadNetwork, _frozen

#: Vehicle classes of public transport, as the protocol names them.
TRANSIT_CLASSES = ("bus", "tram")


@dataclass(frozen=True, eq=False)
class TransitPath:
    """Where a trip runs on a road network.

    Build one with :meth:`on`. Distances are metres along the path from its first node.

    Attributes:
        nodes: (E + 1,) node indices, in order.
        edges: (E,) edge indices, each leaving the node the one before enters.
        at_m: (E + 1,) distance along the path of each node; ``at_m[-1]`` is the path's length.
        stop_ids: the stops served, in order.
        stop_at_m: (S,) distance along the path of each stop, non-decreasing.
        crossing_intersection: (C,) index (in ``network.intersections``) of each signalised
            intersection crossed, in order, once per visit.
        crossing_from_edge, crossing_to_edge: (C,) the movement at its first stop line: the edge the
            path comes in on, and the edge it takes after the stop line (-1 where the path ends there).
        crossing_stop_line_m: (C,) distance along the path of the stop line, the end of
            ``crossing_from_edge``.
        source: how the path was found (``"shape"``: matched from the feed's shape; ``"stops"``:
            shortest paths between the stops; ``"route"``: given edge by edge, as a simulation's).
    """

    nodes: np.ndarray
    edges: np.ndarray
    at_m: np.ndarray
    stop_ids: tuple[str, ...]
    stop_at_m: np.ndarray
    crossing_intersection: np.ndarray
    crossing_from_edge: np.ndarray
    crossing_to_edge: np.ndarray
    crossing_stop_line_m: np.ndarray
    source: str = "shape"

    @classmethod
    def on(cls, network: RoadNetwork, edges: np.ndarray, *, stop_ids: tuple[str, ...] = (),
           stop_at_m: np.ndarray | None = None, source: str = "shape") -> TransitPath:
        """The path along ``edges`` (indices of ``network``) with its stops at ``stop_at_m``.

        An intersection the path starts inside has no approach on it and is not listed.

        Raises:
            InvalidInputError: no edge, an edge out of range, two edges that do not connect, stops and
                distances of different counts, or stop distances decreasing or off the path.
        """
        edges = np.ascontiguousarray(edges, dtype=np.int64).reshape(-1)
        if edges.size == 0:
            raise InvalidInputError("expected a path of at least one edge, got none", field="edges")
        if edges.min() < 0 or edges.max() >= network.n_edges:
            raise InvalidInputError(f"expected edge indices from 0 to {network.n_edges - 1}, got "
                                    f"{int(edges.min())}..{int(edges.max())}", field="edges")
        tails, heads = network.edge_source[edges], network.indices[edges]
        broken = np.flatnonzero(heads[:-1] != tails[1:])
        if broken.size:
            i = int(broken[0])
            raise InvalidInputError(f"expected each edge to leave the node the one before enters; edge {i + 1} "
                                    f"(index {int(edges[i + 1])}) does not follow edge {i} (index {int(edges[i])})",
                                    field="edges")
        nodes = np.empty(edges.size + 1, dtype=np.int64)
        nodes[0] = tails[0]
        nodes[1:] = heads
        at_m = np.zeros(nodes.size, dtype=np.float64)
        np.cumsum(network.length_m[edges], out=at_m[1:])
        stops = np.zeros(0) if stop_at_m is None else np.ascontiguousarray(stop_at_m, dtype=np.float64).reshape(-1)
        if stops.size != len(stop_ids):
            raise InvalidInputError(f"expected one distance per stop, got {stops.size} for {len(stop_ids)} stops",
                                    field="stop_at_m")
        if stops.size and (not np.isfinite(stops).all() or (np.diff(stops) < 0).any() or stops[0] < 0
                           or stops[-1] > at_m[-1] + 1e-6):
            raise InvalidInputError(f"expected stop distances non-decreasing from 0 to the path's length "
                                    f"({at_m[-1]:.1f} m), got {stops.min():.1f}..{stops.max():.1f}", field="stop_at_m")
        intersections, positions = network.crossed_intersections(nodes)
        # A visit that starts at the path's first node has no approach on the path.
        keep = positions > 0
        intersections, positions = intersections[keep], positions[keep]
        from_edge = edges[positions - 1]
        # The movement at the first stop line: onto the edge after it (within the intersection, when
        # it spans several nodes, as a traffic light controlling several junctions does).
        exits = np.where(positions < edges.size, edges[np.minimum(positions, edges.size - 1)], -1)
        return cls(nodes=_frozen(nodes, np.int64), edges=_frozen(edges, np.int64), at_m=_frozen(at_m, np.float64),
                   stop_ids=tuple(str(s) for s in stop_ids), stop_at_m=_frozen(stops, np.float64),
                   crossing_intersection=_frozen(intersections, np.int64),
                   crossing_from_edge=_frozen(from_edge, np.int64), crossing_to_edge=_frozen(exits, np.int64),
                   crossing_stop_line_m=_frozen(at_m[positions], np.float64), source=source)

    @property
    def length_m(self) -> float:
        """The path's length (m)."""
        return float(self.at_m[-1])


@dataclass(frozen=True, eq=False)
class Trip:
    """A trip of a public-transport line: its path, and when it is due at each stop.

    Attributes:
        trip_id: the trip's id (GTFS ``trip_id``, or a simulated vehicle's).
        route_id: its line (GTFS ``route_id``).
        vehicle_class: ``"bus"`` or ``"tram"``.
        path: where it runs.
        stop_times_s: (S,) scheduled arrival at each of ``path``'s stops, on the engine's clock (s);
            NaN where the timetable gives none (the vehicle's lateness is then read from the stops
            that have one).
        shape_id: the path's name in its source (a GTFS ``shape_id``), for reports.
    """

    trip_id: str
    route_id: str
    vehicle_class: str
    path: TransitPath
    stop_times_s: np.ndarray = field(default_factory=lambda: np.zeros(0))
    shape_id: str = ""

    def __post_init__(self) -> None:
        """Check the class and the times.

        Raises:
            InvalidInputError: an unknown class, or not one time per stop of the path.
        """
        if self.vehicle_class not in TRANSIT_CLASSES:
            raise InvalidInputError(f"expected vehicle_class in {TRANSIT_CLASSES}, got {self.vehicle_class!r}",
                                    field="vehicle_class")
        times = np.array(self.stop_times_s, dtype=np.float64).reshape(-1)
        if times.size == 0:
            times = np.full(self.path.stop_at_m.size, np.nan)
        if times.size != self.path.stop_at_m.size:
            raise InvalidInputError(f"expected one time per stop of the path ({self.path.stop_at_m.size}), got "
                                    f"{times.size}", field="stop_times_s")
        object.__setattr__(self, "stop_times_s", _frozen(times, np.float64))

