"""Map matching: the road path a polyline (a GTFS shape, a GPS trace) follows on a :class:`RoadNetwork`.

The method is the hidden Markov model of Newson & Krumm ("Hidden Markov map matching through noise
and sparseness", 2009), on the polyline resampled every :attr:`MatchingConfig.resample_m`:

- **Candidates**: the edges within ``search_radius_m`` of each point, the point projected on each;
  at most ``max_candidates``, nearest first (a grid of the edges finds them). The network draws an
  edge as the straight segment between its nodes, so a point's distance to an edge is taken less
  the edge's curve allowance (how far its street, longer than that segment, can stray from it). A
  point without candidates is left out of the chain (an unmatched point).
- **Emission**: a Gaussian of the point-edge distance, standard deviation ``sigma_m``.
- **Transition**: exponential, scale ``beta_m``, of ``|road distance - great-circle distance|``
  between consecutive points; road distances from a Dijkstra bounded at the great-circle distance
  plus ``max_detour_m``, on the edges' direction, so a one-way carriageway is only ever taken the
  right way.
- **Viterbi** finds the most likely candidates. A step that no candidate of the step before can
  reach is a **break**: the chain restarts there. So is a stretch longer than ``max_gap_m`` of
  points without candidates. A piece of the chain shorter than ``max_gap_m`` between breaks is the
  polyline off the roads near others (a loop inside a bus station): its points are left unmatched
  and the chain is found again without them.
- The road path is rebuilt from the shortest paths between the chosen candidates; pieces are
  joined by the shortest path between them, so the path is always connected, but a match with a
  break is not end to end.

The kernels are in :mod:`pilotage.core._kernels`; this layer validates, projects (onto a plane
about the network's centre), and owns the objects. :meth:`Matcher.locate` places points (stops)
along a matched path, in order.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, fields

import numpy as np

from pilotage.core import _kernels
from pilotage.core.errors import InvalidInputError, PilotageError
from pilotage.core.network import RoadNetwork, _frozen

logger = logging.getLogger(__name__)



@dataclass(frozen=True)
class MatchingConfig:
    """The parameters of the hidden Markov model (see the module's docstring).

    Attributes:
        search_radius_m: edges farther than this from a point are not its candidates.
        sigma_m: standard deviation of the point-road distance (drawing or GPS noise).
        beta_m: scale of the difference between road and great-circle distance of two consecutive
            points; smaller prefers paths that follow the polyline more closely.
        resample_m: spacing of the points the polyline is resampled to.
        max_candidates: at most this many candidates per point, the nearest.
        max_detour_m: the road distance between consecutive points may exceed their great-circle
            distance by at most this; beyond, the transition is impossible.
        max_gap_m: a stretch of polyline this long without a candidate is a break; a shorter one
            is bridged. The same length unmatched at either end makes the match not end to end, and
            a piece of the chain shorter than this between breaks is taken as off the roads (its
            points are left unmatched and the chain is found again without them).
        backtrack_m: on one edge, a point at most this far behind the one before counts as not
            moving (noise), rather than as a loop round the block.
        curve_allowance_m: at most this is taken off a point's distance to an edge for the edge's
            curve: the network draws a curved street as a straight edge between its nodes, and the
            street can lie up to ``sqrt(length_m**2 - chord**2) / 2`` from that line.

    Raises:
        InvalidInputError: a value that is not a finite number > 0 (``backtrack_m`` and
            ``curve_allowance_m``: >= 0), or ``max_candidates`` not a whole number >= 1; ``field``
            names it.
    """

    search_radius_m: float = 50.0
    sigma_m: float = 10.0
    beta_m: float = 5.0
    resample_m: float = 20.0
    max_candidates: int = 16
    max_detour_m: float = 150.0
    max_gap_m: float = 200.0
    backtrack_m: float = 5.0
    curve_allowance_m: float = 50.0

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if item.name == "max_candidates":
                if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
                    raise InvalidInputError(f"expected max_candidates to be a whole number >= 1, got {value!r}",
                                            field="max_candidates")
                continue
            may_be_zero = item.name in ("backtrack_m", "curve_allowance_m")
            if (isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value)
                    or value < 0 or (value == 0 and not may_be_zero)):
                raise InvalidInputError(f"expected {item.name} to be a finite number {'>=' if may_be_zero else '>'} 0 "
                                        f"(m), got {value!r}", field=item.name)


@dataclass(frozen=True, eq=False)
class MatchedPath:
    """The road path a polyline follows, and how well it fits.

    Attributes:
        edges: (E,) edge indices of the network, a connected sequence (empty when no point had a
            candidate).
        points: number of points matched against: the polyline resampled every ``resample_m``.
        points_matched: how many of them had a candidate edge (within ``search_radius_m``).
        breaks: how many times the chain restarted (no road path fitting the polyline between two
            points, or a gap longer than ``max_gap_m``); pieces are joined by shortest paths.
        break_at_m: (breaks,) distance along the polyline (m) of each break.
        max_distance_m, mean_distance_m: distance from the matched points to the path's edges, less
            each edge's curve allowance (NaN when no point matched).
        polyline_length_m: the polyline's length (m, great circle between its vertices).
        unmatched_head_m, unmatched_tail_m: length of polyline (m) before its first matched point
            and after its last (the whole length when no point matched).
        matched: whether the path follows the polyline end to end: some point matched, no break,
            and at most ``max_gap_m`` unmatched at either end.
        reason: why not, in words, when ``matched`` is False; empty otherwise.
    """

    edges: np.ndarray
    points: int
    points_matched: int
    breaks: int
    break_at_m: np.ndarray
    max_distance_m: float
    mean_distance_m: float
    polyline_length_m: float
    unmatched_head_m: float
    unmatched_tail_m: float
    matched: bool
    reason: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "edges", _frozen(self.edges, np.int64))
        object.__setattr__(self, "break_at_m", _frozen(self.break_at_m, np.float64))


@dataclass(frozen=True, eq=False)
class _Grid:
    """The network's nodes in a local plane (m) and a grid of its edges, for the candidate search."""

    network: RoadNetwork
    node_x: np.ndarray
    node_y: np.ndarray
    x0: float
    y0: float
    cell_m: float
    nx: int
    ny: int
    cell_ptr: np.ndarray
    cell_edges: np.ndarray
    slack_m: np.ndarray

    def project(self, lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Positions (m) in the grid's plane (the network's, :meth:`RoadNetwork.planar_m`) of points in degrees."""
        return self.network.planar_m(lon, lat)


def _grid(network: RoadNetwork, cell_m: float, curve_allowance_m: float) -> _Grid:
    # The network's own plane: over a city's extent its scale error is centimetres at the search radius.
    node_x, node_y = network.planar_m(network.node_lon, network.node_lat)
    # An edge longer than the straight line between its nodes is a curved street: no point of it lies
    # farther from that line than half the other side of a triangle with the edge's length as its two
    # other sides, sqrt(length^2 - chord^2) / 2 (the bound is met by a street that bends once).
    chord_m = np.empty(network.n_edges)
    tails, heads = network.edge_source, network.indices
    _kernels.straight_line_m(network.node_lon[tails], network.node_lat[tails], network.node_lon[heads],
                             network.node_lat[heads], chord_m)
    slack_m = np.minimum(0.5 * np.sqrt(np.maximum(0.0, network.length_m ** 2 - chord_m ** 2)), curve_allowance_m)
    x0, y0 = float(node_x.min()) - cell_m, float(node_y.min()) - cell_m
    nx = int((node_x.max() - x0) // cell_m) + 2
    ny = int((node_y.max() - y0) // cell_m) + 2
    counts = np.empty(nx * ny, dtype=np.int64)
    _kernels.edge_grid_counts(node_x, node_y, tails, heads, slack_m, x0, y0, cell_m, nx, ny, counts)
    cell_ptr = np.zeros(nx * ny + 1, dtype=np.int64)
    np.cumsum(counts, out=cell_ptr[1:])
    cell_edges = np.empty(int(cell_ptr[-1]), dtype=np.int64)
    _kernels.edge_grid_fill(node_x, node_y, tails, heads, slack_m, x0, y0, cell_m, nx, ny, cell_ptr, cell_edges)
    return _Grid(network=network, node_x=node_x, node_y=node_y, x0=x0, y0=y0,
                 cell_m=cell_m, nx=nx, ny=ny, cell_ptr=cell_ptr, cell_edges=cell_edges, slack_m=slack_m)


@dataclass(frozen=True, eq=False)
class Candidates:
    """The candidate edges of N points, nearest first: each row (N, max_candidates) holds ``count``
    candidates, then -1 / NaN / inf.

    Attributes:
        edge: edge indices.
        offset_m: where the point projects on the edge: metres along it from its tail (its
            ``length_m`` scaled to the straight segment).
        distance_m: the point's distance to the edge, less the edge's curve allowance.
        count: (N,) candidates of each point.
    """

    edge: np.ndarray
    offset_m: np.ndarray
    distance_m: np.ndarray
    count: np.ndarray

    def of(self, points: np.ndarray) -> Candidates:
        """The candidates of some points (indices), in that order."""
        return Candidates(edge=np.ascontiguousarray(self.edge[points]),
                          offset_m=np.ascontiguousarray(self.offset_m[points]),
                          distance_m=np.ascontiguousarray(self.distance_m[points]),
                          count=np.ascontiguousarray(self.count[points]))


@dataclass(frozen=True, eq=False)
class _Chain:
    """The Viterbi chain through the candidates: the one chosen at each step, the steps where it
    restarts (breaks), and the bound on the road distance of each transition (negative: a gap)."""

    state: np.ndarray
    restarts: np.ndarray
    bound_m: np.ndarray


class Matcher:
    """Matches polylines onto one network with one configuration; build it once for many polylines
    (its grid of edges costs a few milliseconds per 10,000 edges)."""

    def __init__(self, network: RoadNetwork, config: MatchingConfig | None = None) -> None:
        """A matcher of polylines onto ``network`` (default configuration: :class:`MatchingConfig`).

        Raises:
            InvalidInputError: ``config`` is not a :class:`MatchingConfig`.
        """
        self.network = network
        self.config = MatchingConfig() if config is None else config
        if not isinstance(self.config, MatchingConfig):
            raise InvalidInputError(f"expected a MatchingConfig, got {type(self.config).__name__}", field="config")
        self._grid = _grid(network, max(self.config.search_radius_m, 10.0), self.config.curve_allowance_m)

    def candidates(self, lon: np.ndarray, lat: np.ndarray) -> Candidates:
        """The candidate edges of each point (degrees), nearest first.

        Raises:
            InvalidInputError: coordinates that are not finite, out of range, or of different counts.
        """
        lon, lat = _coordinates(lon, lat)
        x, y = self._grid.project(lon, lat)
        k = self.config.max_candidates
        edge = np.empty((x.size, k), dtype=np.int64)
        offset_m = np.empty((x.size, k))
        distance_m = np.empty((x.size, k))
        count = np.empty(x.size, dtype=np.int64)
        grid, network = self._grid, self.network
        _kernels.edge_candidates(x, y, grid.node_x, grid.node_y, network.edge_source, network.indices,
                                 network.length_m, grid.slack_m, grid.x0, grid.y0, grid.cell_m, grid.nx, grid.ny,
                                 grid.cell_ptr, grid.cell_edges, self.config.search_radius_m, edge, offset_m,
                                 distance_m, count)
        return Candidates(edge=edge, offset_m=offset_m, distance_m=distance_m, count=count)

    def match(self, lon: np.ndarray, lat: np.ndarray) -> MatchedPath:
        """The road path of the polyline through the points ``(lon[i], lat[i])`` (degrees), in order.

        Raises:
            InvalidInputError: coordinates that are not finite, out of range, of different counts,
                or fewer than one point.
        """
        config, network = self.config, self.network
        lon, lat = _coordinates(lon, lat)
        along_m, lon, lat = _resample(lon, lat, config.resample_m)
        length_m = float(along_m[-1])
        candidates = self.candidates(lon, lat)
        kept = np.flatnonzero(candidates.count > 0)
        if kept.size == 0:
            return MatchedPath(edges=np.empty(0, np.int64), points=lon.size, points_matched=0, breaks=0,
                               break_at_m=np.empty(0), max_distance_m=math.nan, mean_distance_m=math.nan,
                               polyline_length_m=length_m, unmatched_head_m=length_m, unmatched_tail_m=length_m,
                               matched=False,
                               reason=f"no road within {config.search_radius_m:g} m of the polyline")
        while True:
            chain = self._chain(lon[kept], lat[kept], along_m[kept], candidates.of(kept))
            # A piece of the chain shorter than max_gap_m between breaks (or a break and an end) is the
            # polyline off the roads, near others that do not connect (a terminus loop inside a bus
            # station, tram tracks): its points are left unmatched, and the chain is found again
            # without them, bridging them when a road path does.
            starts = np.concatenate(([0], np.flatnonzero(chain.restarts)))
            ends = np.concatenate((starts[1:], [kept.size]))
            piece_m = along_m[kept[ends - 1]] - along_m[kept[starts]]
            short = (piece_m < config.max_gap_m) & (np.arange(starts.size) != np.argmax(piece_m))
            if not short.any():
                break
            dropped = np.zeros(kept.size, dtype=np.bool_)
            for a, b in zip(starts[short].tolist(), ends[short].tolist(), strict=True):
                dropped[a:b] = True
            kept = kept[~dropped]

        steps = np.arange(kept.size)
        chosen_edge = candidates.edge[kept, chain.state]
        chosen_offset_m = candidates.offset_m[kept, chain.state]
        chosen_distance_m = candidates.distance_m[kept, chain.state]
        edges = self._rebuild(chosen_edge, chosen_offset_m, chain.bound_m, np.flatnonzero(chain.restarts))
        # An end edge the polyline touches for less than the noise, at its far end, is no evidence that
        # it runs there: a polyline that starts at a node matches the end of an edge entering it as
        # well as the next.
        remaining_m = network.length_m[edges[0]] - chosen_offset_m[0]
        if edges.size > 1 and remaining_m < min(config.sigma_m, chosen_offset_m[0]):
            edges = edges[1:]
        short_m = min(config.sigma_m, network.length_m[edges[-1]] - chosen_offset_m[-1])
        if edges.size > 1 and chosen_offset_m[-1] < short_m:
            edges = edges[:-1]

        break_at_m = along_m[kept[chain.restarts]]
        reasons = []
        if chain.restarts.any():
            at_gap = chain.bound_m[steps[chain.restarts] - 1] < 0
            if (~at_gap).any():
                where = ", ".join(f"{m / 1000:.2f}" for m in break_at_m[~at_gap])
                reasons.append(f"no road path in the polyline's direction within {config.max_detour_m:g} m of its "
                               f"straight line, at {where} km along it")
            if at_gap.any():
                where = ", ".join(f"{m / 1000:.2f}" for m in break_at_m[at_gap])
                reasons.append(f"more than {config.max_gap_m:g} m of polyline on no road it can follow (none within "
                               f"{config.search_radius_m:g} m, or none in its direction), before {where} km along it")
        head_m, tail_m = float(along_m[kept[0]]), float(length_m - along_m[kept[-1]])
        if head_m > config.max_gap_m:
            reasons.append(f"its first {head_m:.0f} m are on no road it can follow")
        if tail_m > config.max_gap_m:
            reasons.append(f"its last {tail_m:.0f} m are on no road it can follow")
        logger.debug("matched %d of %d points onto %d edges, %d breaks%s", kept.size, lon.size, edges.size,
                     int(chain.restarts.sum()), f": {'; '.join(reasons)}" if reasons else "")
        return MatchedPath(edges=edges, points=lon.size, points_matched=kept.size, breaks=int(chain.restarts.sum()),
                           break_at_m=break_at_m, max_distance_m=float(chosen_distance_m.max()),
                           mean_distance_m=float(chosen_distance_m.mean()), polyline_length_m=length_m,
                           unmatched_head_m=head_m, unmatched_tail_m=tail_m, matched=not reasons,
                           reason="; ".join(reasons))

    def _chain(self, lon: np.ndarray, lat: np.ndarray, along_m: np.ndarray, candidates: Candidates) -> _Chain:
        """The most likely candidate of each point (points with candidates only, in order)."""
        config, network = self.config, self.network
        straight_m = np.empty(lon.size - 1)
        _kernels.straight_line_m(lon[:-1], lat[:-1], lon[1:], lat[1:], straight_m)
        bound_m = straight_m + config.max_detour_m
        # A bound below zero makes every transition across a long gap impossible: a break.
        bound_m[np.diff(along_m) > config.max_gap_m + config.resample_m] = -1.0
        route_m = np.empty((lon.size - 1, config.max_candidates, config.max_candidates))
        _kernels.route_distances(network.indptr, network.indices, network.length_m, network.edge_source,
                                 candidates.edge, candidates.offset_m, candidates.count, bound_m, config.backtrack_m,
                                 route_m)
        state = np.empty(lon.size, dtype=np.int64)
        restarts = np.empty(lon.size, dtype=np.bool_)
        _kernels.viterbi(candidates.distance_m, candidates.count, route_m, straight_m, config.sigma_m, config.beta_m,
                         state, restarts)
        return _Chain(state=state, restarts=restarts, bound_m=bound_m)

    def _rebuild(self, edge: np.ndarray, offset_m: np.ndarray, bound_m: np.ndarray, restarts: np.ndarray) -> np.ndarray:
        """The connected edge path through the chosen candidates: each piece between breaks by the
        kernel, pieces joined by the shortest path (length) between them."""
        network = self.network
        starts = np.concatenate(([0], restarts))
        ends = np.concatenate((restarts, [edge.size]))
        pieces: list[np.ndarray] = []
        for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
            # A few edges between two steps resampled metres apart; more room when the path needs it.
            out = np.empty(8 * (end - start) + 1, dtype=np.int64)
            count = -2
            while count == -2:
                count = _kernels.rebuild_path(network.indptr, network.indices, network.length_m, network.edge_source,
                                              edge[start:end], offset_m[start:end], bound_m[start:end - 1],
                                              self.config.backtrack_m, out)
                if count == -2:
                    out = np.empty(out.size * 4, dtype=np.int64)
            if count < 0:
                # The Viterbi chain reached every step of the piece within its bound: a bug if not.
                raise PilotageError("internal error: a matched piece of the polyline could not be rebuilt edge by "
                                    "edge; please report it with the polyline")
            piece = out[:count]
            if pieces:
                # Along every road a bus may take, restricted ones included (the named weights are cars').
                joint = network.shortest_path(int(network.indices[pieces[-1][-1]]),
                                              int(network.edge_source[piece[0]]), weight=network.length_m)
                pieces.append(joint.edges)
            pieces.append(piece)
        return np.concatenate(pieces)

    def locate(self, edges: np.ndarray, lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Where points (stops), in order, lie along a path of this network: the distance along it (m,
        non-decreasing) of each point's projection, and the point's distance (m) from the path, less
        the curve allowance of the edge it projects on (as the candidates' distances).

        Each point goes to a place on the path no earlier than the point before; of all such orderly
        placements, the one nearest the points in total (dynamic programming over the path's edges,
        drawn straight), the earliest where two tie. So a loop that passes a place twice gets each
        stop on the right pass.

        Raises:
            InvalidInputError: no edge, an edge out of range, or coordinates that are not finite or of
                different counts.
        """
        network = self.network
        edges = np.ascontiguousarray(edges, dtype=np.int64).reshape(-1)
        if edges.size == 0 or edges.min() < 0 or edges.max() >= network.n_edges:
            raise InvalidInputError(f"expected a path of edge indices from 0 to {network.n_edges - 1}, got "
                                    f"{edges.size} edges" + (f" from {edges.min()} to {edges.max()}" if edges.size
                                                             else ""), field="edges")
        lon, lat = _coordinates(lon, lat, at_least=0)
        if lon.size == 0:
            return np.empty(0), np.empty(0)
        x, y = self._grid.project(lon, lat)
        tails, heads = network.edge_source[edges], network.indices[edges]
        ax, ay = self._grid.node_x[tails], self._grid.node_y[tails]
        dx, dy = self._grid.node_x[heads] - ax, self._grid.node_y[heads] - ay
        px, py = x[:, None], y[:, None]
        squared = dx * dx + dy * dy
        fraction = np.clip(np.divide((px - ax) * dx + (py - ay) * dy, squared, out=np.zeros((lon.size, edges.size)),
                                     where=squared > 0), 0.0, 1.0)
        distance_m = np.hypot(ax + fraction * dx - px, ay + fraction * dy - py)
        at_m = np.concatenate(([0.0], np.cumsum(network.length_m[edges])))
        position_m = at_m[:-1] + fraction * network.length_m[edges]
        # cost[k, j]: least total distance of points 0..k with point k on edge j. The point before is
        # on an earlier edge (the best of them: a running minimum), or on the same edge but not
        # farther along it.
        cost = distance_m[0].copy()
        choice = np.empty((lon.size, edges.size), dtype=np.int64)
        choice[0] = np.arange(edges.size)
        index = np.arange(edges.size)
        for k in range(1, lon.size):
            best = np.minimum.accumulate(cost)
            # The earliest edge reaching each running minimum: where the minimum last changed.
            best_edge = np.maximum.accumulate(np.where(np.concatenate(([True], best[1:] < best[:-1])), index, 0))
            before = np.concatenate(([np.inf], best[:-1]))
            same = np.where(position_m[k - 1] <= position_m[k], cost, np.inf)
            stay = same < before
            choice[k] = np.where(stay, index, np.concatenate(([0], best_edge[:-1])))
            cost = np.where(stay, same, before) + distance_m[k]
        placed = np.empty(lon.size, dtype=np.int64)
        placed[-1] = int(np.argmin(cost))
        for k in range(lon.size - 1, 0, -1):
            placed[k - 1] = choice[k, placed[k]]
        points = np.arange(lon.size)
        along_m = position_m[points, placed]
        off_m = np.maximum(0.0, distance_m[points, placed] - self._grid.slack_m[edges[placed]])
        return along_m, off_m


def match_polyline(network: RoadNetwork, lon: np.ndarray, lat: np.ndarray, *,
                   config: MatchingConfig | None = None) -> MatchedPath:
    """The road path of one polyline (degrees) on ``network``: :meth:`Matcher.match` of a new
    :class:`Matcher` (build one matcher for many polylines).

    Raises:
        InvalidInputError: see :meth:`Matcher.match`.
    """
    return Matcher(network, config).match(lon, lat)


def _coordinates(lon: np.ndarray, lat: np.ndarray, *, at_least: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Longitudes and latitudes as contiguous float arrays, checked."""
    lon = np.ascontiguousarray(lon, dtype=np.float64).reshape(-1)
    lat = np.ascontiguousarray(lat, dtype=np.float64).reshape(-1)
    if lon.size != lat.size:
        raise InvalidInputError(f"expected as many latitudes as longitudes, got {lat.size} and {lon.size}",
                                field="lat")
    if lon.size < at_least:
        raise InvalidInputError(f"expected at least {at_least} point, got {lon.size}", field="lon")
    if not (np.isfinite(lon).all() and np.isfinite(lat).all()
            and (np.abs(lon) <= 180.0).all() and (np.abs(lat) <= 90.0).all()):
        raise InvalidInputError("expected finite coordinates in degrees, lon in [-180, 180] and lat in [-90, 90]; "
                                "got NaN, inf or out of range", field="lon")
    return lon, lat


def _resample(lon: np.ndarray, lat: np.ndarray, spacing_m: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The polyline's points every ``spacing_m`` along it, its last point included: their distance
    along it (m), longitudes and latitudes."""
    step_m = np.empty(lon.size - 1)
    _kernels.straight_line_m(lon[:-1], lat[:-1], lon[1:], lat[1:], step_m)
    moving = np.concatenate(([True], step_m > 0))
    lon, lat = lon[moving], lat[moving]
    along_m = np.concatenate(([0.0], np.cumsum(step_m[step_m > 0])))
    length_m = float(along_m[-1])
    if length_m == 0.0:
        return along_m, lon, lat
    count = max(1, math.ceil(length_m / spacing_m))
    samples_m = np.linspace(0.0, length_m, count + 1)
    return samples_m, np.interp(samples_m, along_m, lon), np.interp(samples_m, along_m, lat)
