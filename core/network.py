"""The road network: a directed graph in CSR arrays, its signalised intersections, shortest paths.

Nodes and edges are numbered 0..n-1 and 0..m-1 (indices); the OSM ids stay beside them
(``node_osmid``, ``edge_osmid``) for the outside world. The edges leaving node ``u`` are
``indptr[u]:indptr[u + 1]``; ``indices[e]`` is the head of edge ``e``. Edge costs are
``length_m`` and ``travel_time_s`` (free flow, from ``speed_kph``).

Some edges are **restricted** (``restricted``): roads closed to cars that buses, trams and
emergency vehicles may use (bus-only streets, busways, bus stations). The named weights of the
shortest-path methods are car costs: a restricted edge costs inf there, so cars never route on
one. An array of edge costs is used as given: a vehicle allowed on restricted edges passes its own.

A network keeps the largest strongly connected component of its roads open to cars, so every node
cars reach (``car_nodes``) reaches every other by car, and around it the nodes and restricted edges
that vehicles allowed on them reach from it and leave back to it, so every node reaches every other
over all edges. An edge with an end that cars do not reach is restricted. Places are snapped to
the nodes cars reach only; :attr:`RoadNetwork.build_report` says what was dropped.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

import numpy as np

from pilotage.core import _kernels
from pilotage.core.errors import (
    DataFileError,
    InvalidInputError,
    NoRouteError,
    OutsideNetworkError,
    PilotageError,
    UnknownEntityError,
)

logger = logging.getLogger(__name__)

Weight = Literal["travel_time_s", "length_m"]
WEIGHTS: tuple[str, ...] = ("travel_time_s", "length_m")

#: Signal nodes joined by a road path of at most this length (m), in either direction, are one
#: intersection: the stop-line nodes of a junction, or the two carriageway crossings of a boulevard.
SIGNAL_GROUPING_RADIUS_M = 40.0

#: A location farther than this (m) from every node is outside the network.
MAX_SNAP_DISTANCE_M = 250.0
#: No road vehicle of a city moves faster (km/h): a reported position or arrival that needs more is
#: refused (a corridor's update, a priority request's arrival).
MAX_PLAUSIBLE_SPEED_KPH = 150.0
#: What a reported position may be off by, whatever the time (GPS noise, m).
POSITION_TOLERANCE_M = 50.0


class LonLat(Protocol):
    """A point in degrees (WGS 84), as :meth:`RoadNetwork.place_node` reads it: the wire's
    ``Point``, or anything else with a ``lon`` and a ``lat``."""

    @property
    def lon(self) -> float: ...

    @property
    def lat(self) -> float: ...


_FILE_FORMAT = "pilotage.road-network"
_FILE_VERSION = 2


@dataclass(frozen=True, eq=False)
class Route:
    """A path through the network.

    Attributes:
        nodes: node indices from origin to destination.
        edges: edge indices, one fewer than ``nodes``.
        travel_time_s: free-flow travel time along the path (s).
        length_m: length of the path (m).
        intersections: indices of the signalised intersections crossed, in order, once per visit.
        intersection_positions: for each visit, the position in ``nodes`` where it starts.
    """

    nodes: np.ndarray
    edges: np.ndarray
    travel_time_s: float
    length_m: float
    intersections: np.ndarray
    intersection_positions: np.ndarray

    def cumulative(self, costs: np.ndarray) -> np.ndarray:
        """Cost from the origin to each node of the route, given the network's per-edge ``costs``
        (``network.travel_time_s`` gives arrival times in s, ``network.length_m`` distances in m)."""
        out = np.zeros(self.nodes.size, dtype=np.float64)
        np.cumsum(costs[self.edges], out=out[1:])
        return out


@dataclass(frozen=True, eq=False)
class SignalisedIntersections:
    """The signalised intersections of a network, as arrays.

    An intersection is a group of signal nodes (:data:`SIGNAL_GROUPING_RADIUS_M`). Its id is the
    smallest OSM id of its signal nodes, stable as long as that node exists in the map. Its
    approaches are the edges that enter one of its signal nodes from a node farther from the
    intersection's centre (traffic heading into the junction, not leaving it).

    Attributes:
        ids: (k,) int64 intersection ids.
        lon, lat: (k,) float64 centre (mean of its signal nodes), degrees.
        node_ptr, nodes: CSR of the signal node indices of each intersection.
        approach_ptr, approach_edges: CSR of the approach edge indices of each intersection.
        of_node: (n,) int64 intersection index of each network node, -1 for none.
    """

    ids: np.ndarray
    lon: np.ndarray
    lat: np.ndarray
    node_ptr: np.ndarray
    nodes: np.ndarray
    approach_ptr: np.ndarray
    approach_edges: np.ndarray
    of_node: np.ndarray
    _index_of_id: dict[int, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        for name in _INTERSECTION_ARRAYS:
            dtype = np.float64 if name in ("lon", "lat") else np.int64
            object.__setattr__(self, name, _frozen(getattr(self, name), dtype))
        object.__setattr__(self, "_index_of_id", {int(i): k for k, i in enumerate(self.ids)})

    def __len__(self) -> int:
        return int(self.ids.size)

    def index_of(self, intersection_id: int) -> int:
        """Index of the intersection with this id; raises :class:`UnknownEntityError`."""
        try:
            return self._index_of_id[int(intersection_id)]
        except (KeyError, TypeError, ValueError):
            raise UnknownEntityError(
                f"no signalised intersection has id {intersection_id!r}; "
                f"ids are the {len(self)} listed by `pilotage network info --json`",
                field="intersection",
            ) from None

    def straight_line_m(self, intersection_id: int, lon: float, lat: float) -> float:
        """Great-circle distance (m) from the centre of intersection ``intersection_id`` to a point.

        Raises:
            UnknownEntityError: no such intersection.
        """
        k = self.index_of(intersection_id)
        out = np.empty(1)
        _kernels.straight_line_m(self.lon[k:k + 1], self.lat[k:k + 1], np.array([lon]), np.array([lat]), out)
        return float(out[0])

    def signal_nodes(self, index: int) -> np.ndarray:
        """Node indices of the signal nodes of intersection ``index``."""
        return self.nodes[self.node_ptr[index]:self.node_ptr[index + 1]]

    def approaches(self, index: int) -> np.ndarray:
        """Edge indices of the approaches of intersection ``index``."""
        return self.approach_edges[self.approach_ptr[index]:self.approach_ptr[index + 1]]


class RoadNetwork:
    """A directed road graph in CSR arrays, with its signalised intersections.

    Build one with :meth:`from_edges` (the OSM adapter does, from an osmnx graph) or :meth:`load`.
    All arrays are read-only. ``restricted`` (m,) bool marks the edges closed to cars, and
    ``car_nodes`` (k,) int64 lists the nodes that cars reach (those with an edge open to cars), see
    the module docstring; ``length_m`` and ``travel_time_s`` are those of every edge, restricted or
    not.
    """

    def __init__(
        self,
        *,
        indptr: np.ndarray,
        indices: np.ndarray,
        length_m: np.ndarray,
        speed_kph: np.ndarray,
        road_class: np.ndarray,
        road_classes: Sequence[str],
        node_lon: np.ndarray,
        node_lat: np.ndarray,
        node_osmid: np.ndarray,
        edge_osmid: np.ndarray,
        restricted: np.ndarray,
        intersections: SignalisedIntersections,
        build_report: dict[str, object],
    ) -> None:
        self.indptr = _frozen(indptr, np.int64)
        self.indices = _frozen(indices, np.int64)
        self.length_m = _frozen(length_m, np.float64)
        self.speed_kph = _frozen(speed_kph, np.float64)
        self.road_class = _frozen(road_class, np.int64)
        self.road_classes = tuple(road_classes)
        self.node_lon = _frozen(node_lon, np.float64)
        self.node_lat = _frozen(node_lat, np.float64)
        self.node_osmid = _frozen(node_osmid, np.int64)
        self.edge_osmid = _frozen(edge_osmid, np.int64)
        self.restricted = _frozen(restricted, np.bool_)
        self.intersections = intersections
        self.build_report = dict(build_report)
        self.travel_time_s = _frozen(self.length_m / (self.speed_kph / 3.6), np.float64)
        self.edge_source = _frozen(np.repeat(np.arange(self.n_nodes), np.diff(self.indptr)), np.int64)
        # The named weights as cars see them: a restricted edge is never relaxed at an infinite cost.
        self._car_cost = {name: _closed(getattr(self, name), self.restricted) for name in WEIGHTS}
        self._by_car = np.bincount(self.edge_source[~self.restricted], minlength=self.n_nodes) > 0
        self.car_nodes = _frozen(np.flatnonzero(self._by_car), np.int64)
        # Places are snapped to the nodes cars reach: their coordinates, for the nearest-node kernel.
        self._car_lon = self.node_lon[self.car_nodes]
        self._car_lat = self.node_lat[self.car_nodes]
        self._node_of_osmid = {int(o): i for i, o in enumerate(self.node_osmid)}
        self._heuristic_per_m: dict[str, float] = {}
        self._xyz_m: np.ndarray | None = None
        self._chord_m: np.ndarray | None = None

    # -- construction ---------------------------------------------------------------------------

    @classmethod
    def from_edges(
        cls,
        *,
        node_osmid: np.ndarray,
        node_lon: np.ndarray,
        node_lat: np.ndarray,
        tail: np.ndarray,
        head: np.ndarray,
        length_m: np.ndarray,
        speed_kph: np.ndarray,
        road_class: np.ndarray,
        road_classes: Sequence[str],
        edge_osmid: np.ndarray,
        signal_nodes: np.ndarray,
        restricted: np.ndarray | None = None,
        grouping_radius_m: float = SIGNAL_GROUPING_RADIUS_M,
        signal_intersection: np.ndarray | None = None,
        build_report: dict[str, object] | None = None,
    ) -> RoadNetwork:
        """Build a network from node and edge lists: the largest strongly connected component of the
        edges open to cars, and what restricted edges join to it both ways (the module docstring).

        Args:
            node_osmid, node_lon, node_lat: (n,) node ids and coordinates (degrees).
            tail, head: (m,) node positions (0..n-1 in the node arrays) of each directed edge.
            length_m: (m,) edge lengths; NaN where unknown: the straight line between the nodes.
            speed_kph: (m,) free-flow speeds, finite and > 0.
            road_class: (m,) position of each edge's class in ``road_classes``.
            edge_osmid: (m,) OSM way id of each edge.
            signal_nodes: node positions carrying traffic signals.
            restricted: (m,) bool, the edges closed to cars (default: none). An edge with an end that
                cars cannot reach without a restricted edge becomes restricted too.
            grouping_radius_m: see :data:`SIGNAL_GROUPING_RADIUS_M`.
            signal_intersection: one label per entry of ``signal_nodes``, when the source already
                says which signal nodes form one intersection (a SUMO traffic light controls its
                junctions): nodes with the same label are one intersection, and the radius is not
                used.
            build_report: what the caller already filtered out, kept in :attr:`build_report`.

        Raises:
            InvalidInputError: arrays of the wrong shape, or values out of range.
            DataFileError: nothing left to build a network from (no edge open to cars).
        """
        node_osmid = np.asarray(node_osmid, dtype=np.int64)
        node_lon = np.asarray(node_lon, dtype=np.float64)
        node_lat = np.asarray(node_lat, dtype=np.float64)
        tail = np.asarray(tail, dtype=np.int64)
        head = np.asarray(head, dtype=np.int64)
        length_m = np.array(length_m, dtype=np.float64)
        speed_kph = np.asarray(speed_kph, dtype=np.float64)
        road_class = np.asarray(road_class, dtype=np.int64)
        edge_osmid = np.asarray(edge_osmid, dtype=np.int64)
        signal_nodes = np.asarray(signal_nodes, dtype=np.int64)
        restricted = (np.zeros(tail.size, dtype=np.bool_) if restricted is None
                      else np.asarray(restricted, dtype=np.bool_))
        if signal_intersection is not None:
            signal_intersection = np.asarray(signal_intersection, dtype=np.int64)
            _check_shape("signal_intersection", signal_intersection, signal_nodes.size)
        n, m = node_osmid.size, tail.size
        _check_shape("node_lon", node_lon, n)
        _check_shape("node_lat", node_lat, n)
        for name, values in (("tail", tail), ("head", head), ("length_m", length_m), ("speed_kph", speed_kph),
                             ("road_class", road_class), ("edge_osmid", edge_osmid), ("restricted", restricted)):
            _check_shape(name, values, m)
        if n == 0 or m == 0:
            raise DataFileError(f"expected a road graph with nodes and edges, got {n} nodes and {m} edges; "
                                "check that the map holds drivable roads")
        if not (np.isfinite(node_lon).all() and np.isfinite(node_lat).all()):
            raise InvalidInputError("expected finite node coordinates, found NaN or inf", field="node_lon")
        for name, values in (("tail", tail), ("head", head), ("signal_nodes", signal_nodes)):
            if values.size and (values.min() < 0 or values.max() >= n):
                raise InvalidInputError(f"expected node positions in 0..{n - 1} in {name}, "
                                        f"got {values.min()}..{values.max()}", field=name)
        if road_class.size and (road_class.min() < 0 or road_class.max() >= len(road_classes)):
            raise InvalidInputError(f"expected road_class in 0..{len(road_classes) - 1}", field="road_class")
        if not (np.isfinite(speed_kph).all() and (speed_kph > 0).all()):
            raise InvalidInputError("expected every speed_kph finite and > 0", field="speed_kph")
        unknown_length = np.isnan(length_m)
        if unknown_length.any():
            straight = np.empty(int(unknown_length.sum()))
            _kernels.straight_line_m(node_lon[tail[unknown_length]], node_lat[tail[unknown_length]],
                                     node_lon[head[unknown_length]], node_lat[head[unknown_length]], straight)
            length_m[unknown_length] = straight
        if not (np.isfinite(length_m).all() and (length_m >= 0).all()):
            raise InvalidInputError("expected every length_m finite and >= 0", field="length_m")

        # Cars drive in the largest strongly connected component of the roads open to them. Kept
        # around it: what buses reach from it and leave back to it over restricted edges (bus
        # stations, bus-only streets with junctions of their own), so that no search ever meets a
        # dead end. Every edge with an end outside the cars' component is closed to cars, so a car
        # never enters a place it cannot leave.
        car_labels = _strong_components(n, tail[~restricted], head[~restricted])
        by_car = car_labels == np.bincount(car_labels).argmax()
        road_labels = _strong_components(n, tail, head)
        keep = road_labels == road_labels[np.argmax(by_car)]
        edge_kept = keep[tail] & keep[head]
        beyond_cars = edge_kept & ~restricted & ~(by_car[tail] & by_car[head])
        report = dict(build_report or {})
        report["scc_dropped_nodes"] = int(n - keep.sum())
        report["scc_dropped_edges"] = int(m - edge_kept.sum())
        report["restricted_edges_dropped"] = int((restricted & ~edge_kept).sum())
        report["restricted_as_beyond_cars_reach"] = int(beyond_cars.sum())
        if not (edge_kept & ~restricted & ~beyond_cars).any():
            raise DataFileError(f"expected roads open to cars that join nodes both ways, got none ({m} edges, "
                                f"{int(m - restricted.sum())} open to cars); check that the map holds drivable roads")
        restricted = restricted | beyond_cars
        if report["scc_dropped_nodes"]:
            logger.info("kept the largest strongly connected component: dropped %d nodes and %d edges",
                        report["scc_dropped_nodes"], report["scc_dropped_edges"])

        new_index = np.cumsum(keep) - 1
        tail, head = new_index[tail[edge_kept]], new_index[head[edge_kept]]
        order = np.argsort(tail, kind="stable")
        n_kept = int(keep.sum())
        indptr = np.zeros(n_kept + 1, dtype=np.int64)
        np.cumsum(np.bincount(tail, minlength=n_kept), out=indptr[1:])
        signals, first = np.unique(new_index[signal_nodes[keep[signal_nodes]]], return_index=True)
        report["signal_nodes_dropped"] = int(np.unique(signal_nodes).size - signals.size)
        labels = None if signal_intersection is None else signal_intersection[keep[signal_nodes]][first]

        network = cls(
            indptr=indptr,
            indices=head[order],
            length_m=length_m[edge_kept][order],
            speed_kph=speed_kph[edge_kept][order],
            road_class=road_class[edge_kept][order],
            road_classes=road_classes,
            node_lon=node_lon[keep],
            node_lat=node_lat[keep],
            node_osmid=node_osmid[keep],
            edge_osmid=edge_osmid[edge_kept][order],
            restricted=restricted[edge_kept][order],
            intersections=_no_intersections(n_kept),
            build_report=report,
        )
        network.intersections = _group_signals(network, signals, grouping_radius_m, labels)
        return network

    # -- persistence ----------------------------------------------------------------------------

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the network to ``path`` (a ``.npz`` file), atomically."""
        path = Path(path)
        meta = {"format": _FILE_FORMAT, "version": _FILE_VERSION, "road_classes": list(self.road_classes),
                "build_report": self.build_report}
        arrays = {name: getattr(self, name) for name in _NETWORK_ARRAYS}
        arrays |= {f"intersections_{name}": getattr(self.intersections, name) for name in _INTERSECTION_ARRAYS}
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as f:
            np.savez(f, meta=np.array(json.dumps(meta)), **arrays)
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> RoadNetwork:
        """Read a network written by :meth:`save`.

        Raises:
            DataFileError: the file is missing, unreadable or of another format or version.
        """
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(str(data["meta"]))
                if meta.get("format") != _FILE_FORMAT or meta.get("version") != _FILE_VERSION:
                    raise DataFileError(f"{path} is not a pilotage road network of version {_FILE_VERSION} (format "
                                        f"{meta.get('format')!r}, version {meta.get('version')!r}); build it again "
                                        "from its map")
                arrays = {name: data[name] for name in _NETWORK_ARRAYS}
                intersections = SignalisedIntersections(
                    **{name: data[f"intersections_{name}"] for name in _INTERSECTION_ARRAYS})
        except (OSError, KeyError, ValueError) as exc:
            raise DataFileError(f"cannot read a road network from {path}: {exc}") from exc
        return cls(**arrays, road_classes=meta["road_classes"], intersections=intersections,
                   build_report=meta["build_report"])

    # -- description ----------------------------------------------------------------------------

    @property
    def n_nodes(self) -> int:
        """Number of nodes."""
        return int(self.node_lon.size)

    @property
    def n_edges(self) -> int:
        """Number of directed edges."""
        return int(self.indices.size)

    @property
    def bounding_box(self) -> tuple[float, float, float, float]:
        """``(min_lon, min_lat, max_lon, max_lat)`` of the nodes, degrees."""
        return (float(self.node_lon.min()), float(self.node_lat.min()),
                float(self.node_lon.max()), float(self.node_lat.max()))

    def planar_m(self, lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Positions (m) in the network's local plane of points in degrees: equirectangular about the
        mean of its nodes, whose scale error over a city's extent stays under a few tenths of a
        percent. Contiguous arrays, for kernels."""
        lon0, lat0 = float(self.node_lon.mean()), float(self.node_lat.mean())
        m_per_deg = _kernels.EARTH_RADIUS_M * math.pi / 180.0
        x: np.ndarray = np.ascontiguousarray((np.asarray(lon, dtype=np.float64) - lon0)
                                             * (m_per_deg * math.cos(math.radians(lat0))))
        y: np.ndarray = np.ascontiguousarray((np.asarray(lat, dtype=np.float64) - lat0) * m_per_deg)
        return x, y

    def summary(self) -> dict[str, object]:
        """Counts, extent and build report, as plain JSON-ready values."""
        km_by_class = np.bincount(self.road_class, weights=self.length_m, minlength=len(self.road_classes))
        return {
            "nodes": self.n_nodes,
            "edges": self.n_edges,
            "restricted_edges": int(self.restricted.sum()),
            "signalised_intersections": len(self.intersections),
            "signal_nodes": int(self.intersections.nodes.size),
            "length_km": round(float(self.length_m.sum()) / 1000.0, 3),
            "length_km_by_class": {name: round(float(km) / 1000.0, 3)
                                   for name, km in zip(self.road_classes, km_by_class, strict=True) if km > 0},
            "bounding_box": list(self.bounding_box),
            "build_report": self.build_report,
        }

    # -- lookup ---------------------------------------------------------------------------------

    def node_index(self, osmid: int, *, field: str = "node") -> int:
        """Index of the node with this OSM id.

        Raises:
            UnknownEntityError: no node has this id; its ``field`` is ``field``.
        """
        try:
            return self._node_of_osmid[int(osmid)]
        except (KeyError, TypeError, ValueError):
            raise UnknownEntityError(f"no node of the network has OSM id {osmid!r}", field=field) from None

    def nearest_nodes(self, lon: Iterable[float], lat: Iterable[float]) -> tuple[np.ndarray, np.ndarray]:
        """Nearest node that cars reach (index) and its great-circle distance (m), for each point
        (degrees).

        Raises:
            InvalidInputError: not as many latitudes as longitudes, or a coordinate not finite.
        """
        lon = np.ascontiguousarray(lon, dtype=np.float64).reshape(-1)
        lat = np.ascontiguousarray(lat, dtype=np.float64).reshape(-1)
        if lon.size != lat.size:
            raise InvalidInputError(f"expected as many latitudes as longitudes, got {lat.size} and {lon.size}",
                                    field="lat")
        if not (np.isfinite(lon).all() and np.isfinite(lat).all()):
            raise InvalidInputError("expected finite coordinates, got NaN or inf", field="lon")
        node = np.empty(lon.size, dtype=np.int64)
        distance_m = np.empty(lon.size, dtype=np.float64)
        _kernels.nearest_nodes(self._car_lon, self._car_lat, lon, lat, node, distance_m)
        car_node: np.ndarray = self.car_nodes[node]
        return car_node, distance_m

    def snap(self, lon: float, lat: float, *, max_distance_m: float = MAX_SNAP_DISTANCE_M) -> tuple[int, float]:
        """The node nearest to ``(lon, lat)`` that cars reach: its index and its distance (m) from the point.

        Raises:
            InvalidInputError: a coordinate that is not a finite number in range.
            OutsideNetworkError: no node within ``max_distance_m``.
        """
        if not (-180.0 <= lon <= 180.0 and -90.0 <= lat <= 90.0):
            raise InvalidInputError(f"expected lon in [-180, 180] and lat in [-90, 90], got ({lon}, {lat}); "
                                    "give coordinates as LON,LAT in degrees", field="lon")
        node, distance_m = self.nearest_nodes([lon], [lat])
        if distance_m[0] > max_distance_m:
            min_lon, min_lat, max_lon, max_lat = self.bounding_box
            raise OutsideNetworkError(
                f"({lon:.6f}, {lat:.6f}) is {distance_m[0]:.0f} m from the nearest node of the network, more "
                f"than {max_distance_m:.0f} m; give a point inside lon {min_lon:.4f}..{max_lon:.4f}, "
                f"lat {min_lat:.4f}..{max_lat:.4f}", field="lon")
        return int(node[0]), float(distance_m[0])

    def place_node(self, place: int | LonLat, field: str) -> int:
        """The node index of a place: the OSM id of a node, or a point (degrees) snapped to its
        nearest node within :data:`MAX_SNAP_DISTANCE_M`; a node that cars reach, either way.
        ``field`` names the place in the errors.

        Raises:
            UnknownEntityError: an OSM id no node has; its field is ``field``.
            InvalidInputError: the OSM id of a node that cars do not reach (its field is ``field``),
                or a point whose coordinates are out of range (its field is ``field.lon`` or
                ``field.lat``).
            OutsideNetworkError: a point farther than :data:`MAX_SNAP_DISTANCE_M` from every node;
                its field is ``field.lon``.
        """
        if isinstance(place, int):
            node = self.node_index(place, field=field)
            if not self._by_car[node]:
                raise InvalidInputError(f"OSM node {place} is on roads closed to cars (bus-only, or reached only "
                                        "through such roads); give a node of a road open to cars, or a point",
                                        field=field)
            return node
        try:
            return self.snap(place.lon, place.lat)[0]
        except PilotageError as error:
            raise error.with_prefix(field=field) from None

    # -- shortest paths -------------------------------------------------------------------------

    def shortest_path(self, origin: int, destination: int, *, weight: Weight | np.ndarray = "travel_time_s",
                      method: Literal["astar", "dijkstra"] = "astar") -> Route:
        """The least-cost path from node ``origin`` to node ``destination`` (indices).

        ``weight`` names an edge cost of the network, as cars see it (restricted edges excluded),
        or gives one cost per edge (an array, for other vehicles' travel times, used as given:
        restricted edges included, an inf cost excludes an edge); the route's ``travel_time_s``
        stays the free-flow time.

        ``method="astar"`` guides the search with a straight-line lower bound, which is admissible
        for any edge costs: the bound is scaled by the smallest cost per metre of straight line over
        all edges of finite cost. Both methods return a least-cost path; A* settles fewer nodes.

        Raises:
            InvalidInputError: an unknown weight or method, or costs of the wrong shape or negative.
            UnknownEntityError: a node index out of range.
            NoRouteError: ``destination`` cannot be reached from ``origin``.
        """
        source = self._node("origin", origin)
        target = self._node("destination", destination)
        cost = self._weight(weight)
        if method == "astar":
            heuristic_per_m = self._admissible_heuristic_per_m(weight)
        elif method == "dijkstra":
            heuristic_per_m = 0.0
        else:
            raise InvalidInputError(f"expected method 'astar' or 'dijkstra', got {method!r}", field="method")
        dist = np.empty(self.n_nodes, dtype=np.float64)
        pred_edge = np.empty(self.n_nodes, dtype=np.int64)
        _kernels.shortest_path_tree(self.indptr, self.indices, cost, self._node_xyz_m(), source, target,
                                    heuristic_per_m, dist, pred_edge)
        # A least-cost path visits each node at most once: n - 1 edges at most.
        edges = np.empty(self.n_nodes, dtype=np.int64)
        count = _kernels.trace_path(pred_edge, self.edge_source, source, target, edges)
        if count < 0:
            hint = ""
            if not isinstance(weight, np.ndarray) and not (self._by_car[source] and self._by_car[target]):
                hint = ("; cars do not reach both: only restricted edges lead there (for a vehicle allowed on them, "
                        "give its own edge costs, such as weight=network.length_m)")
            raise NoRouteError(f"no path from node {origin} (OSM {self.node_osmid[source]}) to node "
                               f"{destination} (OSM {self.node_osmid[target]}){hint}", field="destination")
        edges = edges[:count]
        nodes = np.empty(edges.size + 1, dtype=np.int64)
        nodes[0] = source
        nodes[1:] = self.indices[edges]
        intersections, positions = self.crossed_intersections(nodes)
        return Route(nodes=nodes, edges=edges,
                     travel_time_s=float(self.travel_time_s[edges].sum()),
                     length_m=float(self.length_m[edges].sum()),
                     intersections=intersections, intersection_positions=positions)

    def one_to_many(self, origin: int, destinations: Iterable[int], *,
                    weight: Weight | np.ndarray = "travel_time_s") -> np.ndarray:
        """Least costs from ``origin`` to each of ``destinations`` (node indices); inf if unreachable.
        ``weight`` as in :meth:`matrix`."""
        costs: np.ndarray = self.matrix([origin], destinations, weight=weight, workers=1)[0]
        return costs

    def matrix(self, origins: Iterable[int], destinations: Iterable[int], *,
               weight: Weight | np.ndarray = "travel_time_s", workers: int | None = None) -> np.ndarray:
        """Least-cost matrix ``out[i, j]`` from ``origins[i]`` to ``destinations[j]``; inf if unreachable.

        ``weight`` names an edge cost of the network, as cars see it (restricted edges excluded), or
        gives one cost per edge (an array, used as given), as in :meth:`shortest_path`.

        The origins are split across ``workers`` threads (default: the cores available to this
        process); the kernel releases the GIL, so they run in parallel.

        Raises:
            InvalidInputError: an unknown weight, costs of the wrong shape or negative, or workers < 1.
            UnknownEntityError: a node index out of range.
        """
        sources = self._nodes("origins", origins)
        targets = self._nodes("destinations", destinations)
        cost = self._weight(weight)
        out = np.empty((sources.size, targets.size), dtype=np.float64)
        workers = available_cores() if workers is None else workers
        if workers < 1:
            raise InvalidInputError(f"expected workers >= 1, got {workers}", field="workers")
        workers = max(1, min(workers, sources.size))
        if workers == 1:
            _kernels.many_to_many(self.indptr, self.indices, cost, sources, targets, out)
            return out
        bounds = np.linspace(0, sources.size, workers + 1).astype(np.int64)
        with ThreadPoolExecutor(max_workers=workers) as pool:
            chunks = [pool.submit(_kernels.many_to_many, self.indptr, self.indices, cost,
                                  sources[a:b], targets, out[a:b])
                      for a, b in itertools.pairwise(bounds)]
            for chunk in chunks:
                chunk.result()
        return out

    def crossed_intersections(self, nodes: Iterable[int]) -> tuple[np.ndarray, np.ndarray]:
        """The signalised intersections that a node sequence crosses, in order, once per visit.

        A visit is a run of consecutive nodes of one intersection. Returns the intersection index
        of each visit and the position in ``nodes`` where the visit starts.
        """
        at = self.intersections.of_node[np.asarray(nodes, dtype=np.int64)]
        entering = np.concatenate(([True], at[1:] != at[:-1])) if at.size else np.empty(0, dtype=bool)
        positions = np.flatnonzero(entering & (at >= 0))
        return at[positions], positions

    # -- helpers --------------------------------------------------------------------------------

    def _weight(self, weight: Weight | np.ndarray) -> np.ndarray:
        # An array is any vehicle's costs: inf closes an edge (the kernels never relax through one).
        if isinstance(weight, np.ndarray):
            if weight.shape != (self.n_edges,) or not (weight >= 0).all():
                raise InvalidInputError(f"expected edge costs of shape ({self.n_edges},), non-negative (inf closes "
                                        f"an edge), got shape {weight.shape}", field="weight")
            return np.ascontiguousarray(weight, dtype=np.float64)
        if weight not in WEIGHTS:
            raise InvalidInputError(f"expected weight in {WEIGHTS} or an array of edge costs, got {weight!r}",
                                    field="weight")
        return self._car_cost[weight]

    def _node(self, name: str, node: int) -> int:
        if isinstance(node, bool) or not isinstance(node, int | np.integer):
            raise InvalidInputError(f"expected a node index (int) for {name}, got {node!r}", field=name)
        if not 0 <= node < self.n_nodes:
            raise UnknownEntityError(f"expected a node index in 0..{self.n_nodes - 1} for {name}, got {node}",
                                     field=name)
        return int(node)

    def _nodes(self, name: str, nodes: Iterable[int]) -> np.ndarray:
        array = np.asarray(list(nodes) if not isinstance(nodes, np.ndarray) else nodes)
        if array.size == 0:
            return np.empty(0, dtype=np.int64)
        if array.dtype.kind not in "iu":
            raise InvalidInputError(f"expected node indices (int) for {name}, got dtype {array.dtype}", field=name)
        array = np.ascontiguousarray(array, dtype=np.int64).reshape(-1)
        if array.min() < 0 or array.max() >= self.n_nodes:
            raise UnknownEntityError(f"expected node indices in 0..{self.n_nodes - 1} for {name}, "
                                     f"got {array.min()}..{array.max()}", field=name)
        return array

    def _node_xyz_m(self) -> np.ndarray:
        if self._xyz_m is None:
            xyz_m = np.empty((self.n_nodes, 3), dtype=np.float64)
            _kernels.earth_xyz_m(self.node_lon, self.node_lat, xyz_m)
            xyz_m.flags.writeable = False
            self._xyz_m = xyz_m
        return self._xyz_m

    def _admissible_heuristic_per_m(self, weight: Weight | np.ndarray) -> float:
        # The smallest cost per metre of chord over all edges: the A* bound of _kernels._search.
        # Named weights keep theirs; an array of costs gets its own at each call.
        key = None if isinstance(weight, np.ndarray) else weight
        if key is None or key not in self._heuristic_per_m:
            if self._chord_m is None:
                xyz_m = self._node_xyz_m()
                self._chord_m = np.linalg.norm(xyz_m[self.indices] - xyz_m[self.edge_source], axis=1)
            cost = self._weight(weight)
            # An edge of infinite cost is never taken, so it bounds nothing.
            moving = (self._chord_m > 0) & np.isfinite(cost)
            rate = float((cost[moving] / self._chord_m[moving]).min()) if moving.any() else 0.0
            # Slack against rounding, so the bound stays below every true cost.
            bound = rate * (1.0 - 1e-9)
            if key is None:
                return bound
            self._heuristic_per_m[key] = bound
        return self._heuristic_per_m[key]


_NETWORK_ARRAYS = ("indptr", "indices", "length_m", "speed_kph", "road_class", "node_lon", "node_lat",
                   "node_osmid", "edge_osmid", "restricted")
_INTERSECTION_ARRAYS = ("ids", "lon", "lat", "node_ptr", "nodes", "approach_ptr", "approach_edges", "of_node")


def available_cores() -> int:
    """Number of cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _frozen(values: np.ndarray, dtype: type) -> np.ndarray:
    array: np.ndarray = np.ascontiguousarray(values, dtype=dtype)
    if array is values:
        array = array.copy()
    array.flags.writeable = False
    return array


def _closed(cost: np.ndarray, restricted: np.ndarray) -> np.ndarray:
    # Without restricted edges the costs are the network's own array: no copy.
    if not restricted.any():
        return cost
    closed = np.where(restricted, np.inf, cost)
    closed.flags.writeable = False
    return closed


def _check_shape(name: str, values: np.ndarray, size: int) -> None:
    if values.shape != (size,):
        raise InvalidInputError(f"expected {name} of shape ({size},), got {values.shape}", field=name)


def _strong_components(n: int, tail: np.ndarray, head: np.ndarray) -> np.ndarray:
    # scipy.sparse costs a third of a second at import, and only a build needs it.
    from scipy.sparse import csr_matrix  # noqa: PLC0415
    from scipy.sparse.csgraph import connected_components  # noqa: PLC0415

    graph = csr_matrix((np.ones(tail.size), (tail, head)), shape=(n, n))
    labels: np.ndarray
    _, labels = connected_components(graph, directed=True, connection="strong")
    return labels


def _no_intersections(n_nodes: int) -> SignalisedIntersections:
    empty_int = np.empty(0, dtype=np.int64)
    return SignalisedIntersections(ids=empty_int, lon=np.empty(0), lat=np.empty(0), node_ptr=np.zeros(1, np.int64),
                                   nodes=empty_int, approach_ptr=np.zeros(1, np.int64), approach_edges=empty_int,
                                   of_node=np.full(n_nodes, -1, dtype=np.int64))


def _csr_groups(group: np.ndarray, members: np.ndarray, n_groups: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(group, kind="stable")
    ptr = np.zeros(n_groups + 1, dtype=np.int64)
    np.cumsum(np.bincount(group, minlength=n_groups), out=ptr[1:])
    return ptr, members[order]


def _group_signals(network: RoadNetwork, signals: np.ndarray, radius_m: float,
                   labels: np.ndarray | None) -> SignalisedIntersections:
    from scipy.sparse import csr_matrix  # noqa: PLC0415 - see _strong_components
    from scipy.sparse.csgraph import connected_components  # noqa: PLC0415

    if signals.size == 0:
        return _no_intersections(network.n_nodes)
    label: np.ndarray
    if labels is None:
        # Along any road, restricted or not: a bus gate's signal belongs to the junction beside it.
        road_m = network.matrix(signals, signals, weight=network.length_m)
        linked = csr_matrix((road_m <= radius_m) | (radius_m >= road_m.T))
        n_groups, label = connected_components(linked, directed=False)
    else:
        _, label = np.unique(labels, return_inverse=True)
        n_groups = int(label.max()) + 1
    # Number intersections by their smallest OSM id, so the order is stable across rebuilds.
    osmid = network.node_osmid[signals]
    ids = np.full(n_groups, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(ids, label, osmid)
    rank = np.argsort(ids, kind="stable")
    label = np.argsort(rank)[label]
    ids = ids[rank]
    node_ptr, nodes = _csr_groups(label, signals, n_groups)
    count = np.diff(node_ptr)
    lon = np.bincount(label, weights=network.node_lon[signals], minlength=n_groups) / count
    lat = np.bincount(label, weights=network.node_lat[signals], minlength=n_groups) / count
    of_node = np.full(network.n_nodes, -1, dtype=np.int64)
    of_node[signals] = label

    head_group = of_node[network.indices]
    candidate = np.flatnonzero((head_group >= 0) & (of_node[network.edge_source] != head_group))
    group = head_group[candidate]
    tail_m = np.empty(candidate.size)
    head_m = np.empty(candidate.size)
    tails, heads = network.edge_source[candidate], network.indices[candidate]
    _kernels.straight_line_m(network.node_lon[tails], network.node_lat[tails], lon[group], lat[group], tail_m)
    _kernels.straight_line_m(network.node_lon[heads], network.node_lat[heads], lon[group], lat[group], head_m)
    inbound = tail_m > head_m
    approach_ptr, approach_edges = _csr_groups(group[inbound], candidate[inbound], n_groups)
    return SignalisedIntersections(ids=ids, lon=lon, lat=lat, node_ptr=node_ptr, nodes=nodes,
                                   approach_ptr=approach_ptr, approach_edges=approach_edges, of_node=of_node)
