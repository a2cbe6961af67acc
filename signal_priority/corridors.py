"""Emergency corridors: route an emergency vehicle, pre-empt the signals on its way, follow it, hand back.

A dispatcher opens a corridor for an incident, from the vehicle's origin to its destination. The
engine routes the vehicle on the road network at emergency speeds (by road class), finds the
signalised intersections the route crosses with the signal groups of the stop lines it passes (the
approach group, and the exit group where an intersection has a second stop line on the way), and
its arrival time (ETA) at each. Every intersection is then pre-empted
(:meth:`PriorityEngine.preempt`): the vehicle's groups are held green from
``ETA - queue clearance - margin`` to ``ETA + margin``, so that it meets green with the queue ahead
already gone, and an exit transition brings the intersection back to its coordinated plan.

- **Queue clearance**: the queue that may stand at a stop line is as long as the route's approach
  to it (from the previous signalised intersection, the vehicle, or the origin), up to
  ``max_queue_m``; it leaves at one vehicle per ``queue_headway_s`` for each ``queue_spacing_m``.
- **Live**: each position update matches the vehicle onto its route (where it is, or further on;
  on its first pass where the route comes back along a street it took), re-estimates the ETAs and
  moves the holds; an intersection it has passed ends its hold at once; a vehicle farther than
  ``off_route_m`` from its route gets a new one. A corridor not updated for ``timeout_s`` ends, as
  one closed does, with the exit transitions of its intersections.
- **Plausibility**: a position farther from the last one accepted than the vehicle could have driven
  since (``max_plausible_speed_kph``, plus ``position_tolerance_m`` of GPS noise) is refused and
  counted (:attr:`CorridorEngine.implausible_updates`): the corridor keeps its route and holds. Before
  the first position the reference is the origin, and a first position on the route is taken
  wherever along it (the vehicle may have set off before the corridor was opened).
- **Reach**: intersections whose hold ends more than ``plan_ahead_s`` ahead wait (``pending``) and
  are pre-empted once it comes within reach, on an update or on :meth:`CorridorEngine.advance`. At
  most ``max_held_intersections`` of one corridor's crossings, the nearest ahead, are held at once;
  those beyond wait (``pending``) until the vehicle passes nearer ones.
- **Two corridors through one intersection**: the corridor opened first keeps its window; when the
  later one needs a conflicting stage during it (interstages included), its window moves to the
  earliest safe time after the first's hold, and lasts at least twice ``margin_s``. Windows that do
  not overlap are both served as asked, in time order; windows served by one stage are one hold.
- **Rank**: emergency outranks everything: bus and tram priority are suspended at a pre-empted
  intersection until its plan is back in step (:class:`PriorityEngine`).

Every plan passes the safety monitor before it is applied; an intersection whose plan it refuses,
or where no safe plan gives the vehicle green, is reported ``refused`` with the reason.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from pilotage.core import InvalidInputError, RoadNetwork, Route, UnknownEntityError
from pilotage.core.errors import ConflictError, PilotageError
from pilotage.core.network import MAX_PLAUSIBLE_SPEED_KPH, POSITION_TOLERANCE_M
from pilotage.core.protocol import CrossingStateName
from pilotage.signal_priority.engine import Hold, Preemption, PriorityEngine

logger = logging.getLogger(__name__)

#: Emergency vehicle speeds (km/h) by road class: lights and siren, through traffic that yields.
EMERGENCY_SPEED_KPH: dict[str, float] = {
    "motorway": 110.0, "motorway_link": 60.0, "trunk": 90.0, "trunk_link": 50.0, "primary": 65.0,
    "primary_link": 40.0, "secondary": 55.0, "secondary_link": 40.0, "tertiary": 50.0, "tertiary_link": 35.0,
    "unclassified": 40.0, "residential": 35.0, "living_street": 15.0, "road": 30.0, "busway": 50.0,
    "service": 20.0,
}

CROSSING_STATES = ("planned", "pending", "passed", "refused")

# Earth's metres per degree of latitude, for matching positions on a route (a local flat frame).
_M_PER_DEG = 111_195.0
# Route edges nearer a position than the nearest plus this (m) are as near: a route that comes back
# along a street it took passes twice on one line, and the vehicle is on its first pass.
_AS_NEAR_M = 1.0


@dataclass(frozen=True)
class CorridorConfig:
    """Parameters of the corridors (seconds and metres).

    Attributes:
        emergency_speed_kph: speed by road class (km/h); a class not listed uses ``default_speed_kph``.
        default_speed_kph: speed on road classes not in ``emergency_speed_kph``.
        queue_headway_s: one queued vehicle leaves per this time.
        queue_spacing_m: road length each queued vehicle takes.
        max_queue_m: the longest queue expected at a stop line.
        margin_s: the hold starts this long before the queue must start to leave, and ends this long
            after the ETA.
        timeout_s: a corridor not updated for this long ends.
        off_route_m: a vehicle farther than this from its route gets a new one.
        plan_ahead_s: intersections whose hold ends farther ahead wait until it comes within reach.
        max_held_intersections: at most this many crossings of one corridor, the nearest ahead, are
            held at once; those beyond wait until the vehicle has passed nearer ones.
        max_plausible_speed_kph: a position farther from the last one accepted than this speed
            covers in the time between (plus ``position_tolerance_m``) is refused.
        position_tolerance_m: the distance a position may be off by (GPS noise), whatever the time.
        exit_transition: ``"best_way"`` or ``"dwell"`` (:meth:`PriorityEngine.preempt`).
    """

    emergency_speed_kph: Mapping[str, float] = field(default_factory=lambda: dict(EMERGENCY_SPEED_KPH))
    default_speed_kph: float = 30.0
    queue_headway_s: float = 2.0
    queue_spacing_m: float = 7.0
    max_queue_m: float = 100.0
    margin_s: float = 5.0
    timeout_s: float = 30.0
    off_route_m: float = 60.0
    plan_ahead_s: float = 240.0
    max_held_intersections: int = 24
    max_plausible_speed_kph: float = MAX_PLAUSIBLE_SPEED_KPH
    position_tolerance_m: float = POSITION_TOLERANCE_M
    exit_transition: str = "best_way"

    def __post_init__(self) -> None:
        positive = ("default_speed_kph", "queue_headway_s", "queue_spacing_m", "timeout_s", "off_route_m",
                    "plan_ahead_s", "max_plausible_speed_kph")
        for name in (*positive, "max_queue_m", "margin_s", "position_tolerance_m"):
            value = getattr(self, name)
            if not (math.isfinite(value) and (value > 0 if name in positive else value >= 0)):
                raise InvalidInputError(f"expected {name} {'> 0' if name in positive else '>= 0'}, got {value!r}",
                                        field=name)
        for road_class, speed in self.emergency_speed_kph.items():
            if not (math.isfinite(speed) and speed > 0):
                raise InvalidInputError(f"expected a speed > 0 km/h for road class {road_class!r}, got {speed!r}",
                                        field="emergency_speed_kph")
        held = self.max_held_intersections
        if isinstance(held, bool) or not isinstance(held, int) or held < 1:
            raise InvalidInputError(f"expected max_held_intersections a whole number >= 1, got {held!r}",
                                    field="max_held_intersections")
        if self.exit_transition not in ("best_way", "dwell"):
            raise InvalidInputError(f"expected exit_transition 'best_way' or 'dwell', got {self.exit_transition!r}",
                                    field="exit_transition")


@dataclass(frozen=True)
class Crossing:
    """One signalised intersection on a corridor's route.

    Attributes:
        intersection: the intersection's id.
        approach_group, exit_group: the signal groups of the first and the last stop line the
            route passes there (the same at a single stop line); None where the plan has none.
        distance_m: distance from the route's origin to the stop line.
        eta_s: when the vehicle reaches the stop line (s on the clock).
        hold_from_s, hold_until_s: the hold asked for (None before the ETA is known to matter: passed).
        green_from_s, green_until_s: the green the plan gives the vehicle's groups (None: none yet,
            or passed).
        state: ``planned`` (the hold is in the plan), ``pending`` (beyond reach, or beyond the
            ``max_held_intersections`` nearest: planned later), ``passed`` (the vehicle is through;
            the hold has ended) or ``refused`` (see ``reason``).
        reason: why a crossing is refused, how its window was moved, or that it waits for nearer
            ones to be passed; empty otherwise.
    """

    intersection: int | str
    approach_group: str | None
    exit_group: str | None
    distance_m: float
    eta_s: float
    hold_from_s: float | None
    hold_until_s: float | None
    green_from_s: float | None
    green_until_s: float | None
    state: CrossingStateName
    reason: str


@dataclass(frozen=True)
class Corridor:
    """An open (or just ended) corridor, as seen by the engine.

    Attributes:
        incident: the dispatcher's incident id.
        nodes: node indices of the route, from where the vehicle set off (or was re-routed) to the
            destination.
        length_m: length of the route.
        travel_time_s: emergency travel time of the whole route.
        eta_s: when the vehicle reaches the destination (s on the clock).
        position_m: how far along the route the vehicle was last seen.
        updated_s: when it was last seen (s on the clock).
        crossings: the signalised intersections on the route, in order.
        reroutes: how many times the vehicle left its route and got a new one.
        replanned: the intersections whose plans the call that returned this corridor changed
            (those of an old route included).
    """

    incident: str
    nodes: np.ndarray
    length_m: float
    travel_time_s: float
    eta_s: float
    position_m: float
    updated_s: float
    crossings: tuple[Crossing, ...]
    reroutes: int
    replanned: tuple[int | str, ...] = ()


@dataclass(frozen=True)
class ExitTransition:
    """How an intersection returns to its coordinated plan when a corridor ends."""

    intersection: int | str
    transition: str
    in_step_from_s: float | None


@dataclass(frozen=True)
class CorridorState:
    """What :meth:`CorridorEngine.restore` needs to take an open corridor back after a restart.

    Attributes:
        incident: the dispatcher's incident id.
        route_osmids: the OSM ids of the route's nodes, from where the vehicle set off (or was
            routed again) to the destination.
        edge, fraction: where the vehicle was last seen: the route edge, and how far along it.
        seen_s: when it was last seen (s on the clock).
        reroutes: how many times it was routed again.
        fix: the last position accepted (lon, lat in degrees), the reference of the next one's
            plausibility; None before the first (the route's start is the reference then).
    """

    incident: str
    route_osmids: tuple[int, ...]
    edge: int
    fraction: float
    seen_s: float
    reroutes: int
    fix: tuple[float, float] | None = None


@dataclass
class _Crossing:
    plan: int                    # index in the engine's SignalPlans, -1 without a plan
    intersection: int | str
    position: int                # index in the route's nodes of the first stop line
    groups: tuple[str, ...]      # the groups held
    stage: int                   # the stage that holds them (-1 without groups)
    approach_group: str | None
    exit_group: str | None
    queue_m: float
    eta_s: float = math.nan
    hold_from_s: float = math.nan
    hold_until_s: float = math.nan
    green_from_s: float | None = None
    green_until_s: float | None = None
    state: CrossingStateName = "pending"
    reason: str = ""
    beyond_cap: bool = False     # beyond the corridor's max_held_intersections nearest ahead: not held


@dataclass
class _Track:
    incident: str
    destination: int
    route: Route
    time_s: np.ndarray           # emergency travel time from the route's start to each of its nodes
    distance_m: np.ndarray       # distance from the route's start to each of its nodes
    crossings: list[_Crossing]
    edge: int = 0                # the route edge the vehicle is on
    fraction: float = 0.0        # how far along that edge
    seen_s: float = 0.0
    seen_lon: float = 0.0        # where the vehicle was last seen (degrees): its last position
    seen_lat: float = 0.0        # accepted, or the route's start before the first
    fixed: bool = False          # a position has been accepted since the corridor was opened
    reroutes: int = 0

    def position_m(self) -> float:
        return self._at_vehicle(self.distance_m)

    def position_time_s(self) -> float:
        return self._at_vehicle(self.time_s)

    def _at_vehicle(self, cumulative: np.ndarray) -> float:
        """A cumulative quantity along the route (one value per node), where the vehicle is."""
        if self.route.edges.size == 0:
            return 0.0
        edge = self.edge
        return float(cumulative[edge] + self.fraction * (cumulative[edge + 1] - cumulative[edge]))


class CorridorEngine:
    """Emergency corridors over a road network, pre-empting the plans of a :class:`PriorityEngine`.

    The engine's signal plans are those of the network's signalised intersections (their ids are
    the network's); an intersection without a plan, or without a group for the route's stop line,
    is reported ``refused``. Times are seconds on the priority engine's clock.
    """

    def __init__(self, network: RoadNetwork, priority: PriorityEngine, config: CorridorConfig | None = None) -> None:
        self.network = network
        self.priority = priority
        self.config = config or CorridorConfig()
        speed_kph = np.array([self.config.emergency_speed_kph.get(name, self.config.default_speed_kph)
                              for name in network.road_classes])
        self.travel_time_s = network.length_m / (speed_kph[network.road_class] / 3.6)
        self.travel_time_s.flags.writeable = False
        self._tracks: dict[str, _Track] = {}
        # Plan indices that corridors have pre-empted and not yet handed back.
        self._preempted: set[int] = set()
        # The incidents opened, moved or ended since :meth:`mark_saved`.
        self._unsaved: set[str] = set()
        #: Positions refused as farther than the vehicle could have driven (:meth:`update`), since start.
        self.implausible_updates = 0

    # -- public API -------------------------------------------------------------------------------

    @property
    def incidents(self) -> tuple[str, ...]:
        """The incidents with an open corridor, in the order they were opened."""
        return tuple(self._tracks)

    def open(self, incident: str, origin: int, destination: int, *, route: Sequence[int] | None = None) -> Corridor:
        """Open a corridor for ``incident`` from node ``origin`` to node ``destination`` (indices),
        the vehicle setting off now, and pre-empt the intersections within reach. The vehicle takes
        the fastest route at emergency speeds, or ``route`` (node indices from ``origin`` to
        ``destination``) when its navigation already chose one; a vehicle that leaves it is routed
        again by the network.

        Raises:
            InvalidInputError: an empty incident id; a ``route`` that does not run from ``origin`` to
                ``destination`` along edges of the network.
            ConflictError: a corridor is already open for ``incident``.
            UnknownEntityError, NoRouteError: from :meth:`RoadNetwork.shortest_path`.
        """
        self.advance()
        if not isinstance(incident, str) or not incident:
            raise InvalidInputError(f"expected a non-empty incident id, got {incident!r}", field="incident")
        if incident in self._tracks:
            raise ConflictError(f"a corridor is already open for incident {incident!r}; update it, or close it "
                                "first", field="incident")
        track = self._track(incident, origin, destination, route)
        self._tracks[incident] = track
        self._unsaved.add(incident)
        self._estimate(track)
        done = self._replan({c.plan for c in track.crossings if c.plan >= 0})
        logger.info("corridor %s opened: %.0f m, %d signalised intersections", incident, track.route.length_m,
                    len(track.crossings))
        return self._corridor(track, done)

    def update(self, incident: str, lon: float, lat: float) -> Corridor:
        """The vehicle of ``incident`` is at ``(lon, lat)`` now: match it on its route (or route it
        again from there when it has left it), re-estimate the ETAs, move the holds, and end those
        of the intersections it has passed.

        A position farther from the last one accepted than the vehicle could have driven since
        (``max_plausible_speed_kph`` for the time between, plus ``position_tolerance_m``) is not used:
        the corridor keeps its route, holds and time last seen, and :attr:`implausible_updates`
        counts it. Before the first position accepted the reference is the route's start, when the
        corridor was opened; a first position on the route (within ``off_route_m``) is taken wherever
        along it, as the vehicle may have set off before the corridor was opened.

        Raises:
            UnknownEntityError: no open corridor for ``incident``.
            InvalidInputError, OutsideNetworkError: a position that is not a coordinate, or is off
                the network; a position farther than the vehicle could have driven (field
                ``position``).
        """
        self.advance()
        track = self._open_track(incident)
        now = float(self.priority.clock())
        before = {c.plan for c in track.crossings if c.plan >= 0}
        x, y = self._local_xy(track.route.nodes, lon, lat)
        edge, fraction, distance_m = _match(x, y, track.edge)
        if track.fixed or distance_m > self.config.off_route_m:
            self._check_plausible(track, lon, lat, now)
        if distance_m > self.config.off_route_m:
            node, _ = self.network.snap(lon, lat)
            rerouted = self._track(incident, node, track.destination)
            rerouted.reroutes = track.reroutes + 1
            track = self._tracks[incident] = rerouted
            logger.info("corridor %s: vehicle %.0f m off its route, routed again", incident, distance_m)
        else:
            track.edge, track.fraction = edge, fraction
        track.seen_s, track.seen_lon, track.seen_lat, track.fixed = now, float(lon), float(lat), True
        self._unsaved.add(incident)
        self._estimate(track)
        done = self._replan(before | {c.plan for c in track.crossings if c.plan >= 0})
        return self._corridor(track, done)

    def _check_plausible(self, track: _Track, lon: float, lat: float, now_s: float) -> None:
        """Refuse (and count) a position farther from where the vehicle was last seen than it could
        have driven since.

        Raises:
            InvalidInputError: the position is out of reach (field ``position``).
        """
        config = self.config
        elapsed_s = max(now_s - track.seen_s, 0.0)
        scale = _M_PER_DEG * math.cos(math.radians(0.5 * (lat + track.seen_lat)))
        jump_m = math.hypot((lon - track.seen_lon) * scale, (lat - track.seen_lat) * _M_PER_DEG)
        reach_m = config.max_plausible_speed_kph / 3.6 * elapsed_s + config.position_tolerance_m
        if jump_m <= reach_m:
            return
        self.implausible_updates += 1
        logger.warning("corridor %s: position %.0f m from the last one in %.1f s refused (%d refused so far)",
                       track.incident, jump_m, elapsed_s, self.implausible_updates)
        raise InvalidInputError(
            f"expected a position within {reach_m:.0f} m of the vehicle's last one accepted "
            f"({config.max_plausible_speed_kph:g} km/h for {elapsed_s:.1f} s, plus "
            f"{config.position_tolerance_m:g} m of GPS noise), got one {jump_m:.0f} m away after {elapsed_s:.1f} s; "
            f"the position was not used and corridor {track.incident!r} keeps its route and holds: send the "
            "vehicle's true position", field="position")

    def close(self, incident: str) -> list[ExitTransition]:
        """End the corridor of ``incident``: its holds end and each intersection goes back to its
        coordinated plan. Returns the exit transition of each intersection.

        Raises:
            UnknownEntityError: no open corridor for ``incident``.
        """
        self.advance()
        return self._end(self._open_track(incident), "closed")

    def advance(self) -> dict[str, list[ExitTransition]]:
        """Bring the corridors to the clock's time: end those not updated for ``timeout_s``, and
        pre-empt the intersections whose hold has come within reach. Returns the exit transitions
        of each corridor that ended."""
        now = self.priority.advance()
        expired = [track for track in self._tracks.values() if now - track.seen_s > self.config.timeout_s]
        ended = {track.incident: self._end(track, "expired") for track in expired}
        reach = now + self.config.plan_ahead_s
        due = {c.plan for track in self._tracks.values() for c in track.crossings
               if c.state == "pending" and c.plan >= 0 and not c.beyond_cap and c.hold_until_s <= reach}
        if due:
            self._replan(due)
        return ended

    @property
    def preempted(self) -> tuple[int | str, ...]:
        """The intersections corridors have pre-empted and not yet handed back."""
        return tuple(self.priority.plans.ids[plan] for plan in sorted(self._preempted))

    def unsaved(self) -> tuple[list[CorridorState], list[str]]:
        """The state of every corridor opened or moved since :meth:`mark_saved`, and the incidents
        whose corridor ended since, for a store to keep."""
        osmid = self.network.node_osmid
        states = [CorridorState(track.incident, tuple(int(n) for n in osmid[track.route.nodes]), track.edge,
                                track.fraction, track.seen_s, track.reroutes,
                                (track.seen_lon, track.seen_lat) if track.fixed else None)
                  for incident, track in self._tracks.items() if incident in self._unsaved]
        return states, sorted(self._unsaved - set(self._tracks))

    def mark_saved(self) -> None:
        """What :meth:`unsaved` returned is kept: count it as saved."""
        self._unsaved.clear()

    def restore(self, states: Sequence[CorridorState], preempted: Sequence[int | str]) -> int:
        """Take back the corridors open before a restart, in the order they were opened, and the
        intersections they had pre-empted (after :meth:`PriorityEngine.restore`): each corridor is
        routed again on its route, its vehicle placed where it was last seen, and its intersections
        planned again from the plans as restored. A corridor whose route the network no longer
        holds is not taken back (logged). Returns how many were; one not updated for ``timeout_s``
        since ends at the next :meth:`advance`, as it would have.
        """
        restored = []
        for state in states:
            try:
                nodes = [self.network.node_index(osmid) for osmid in state.route_osmids]
                track = self._track(state.incident, nodes[0], nodes[-1], nodes)
            except (PilotageError, IndexError) as error:
                logger.warning("corridor %s is not restored: %s", state.incident, error)
                continue
            track.edge = min(max(int(state.edge), 0), max(track.route.edges.size - 1, 0))
            track.fraction = min(max(float(state.fraction), 0.0), 1.0)
            track.seen_s, track.reroutes = float(state.seen_s), int(state.reroutes)
            if state.fix is not None:
                track.seen_lon, track.seen_lat = float(state.fix[0]), float(state.fix[1])
                track.fixed = True
            self._tracks[state.incident] = track
            self._estimate(track)
            restored.append(track)
        ids = set(preempted)
        self._preempted = {plan for plan, intersection in enumerate(self.priority.plans.ids) if intersection in ids}
        self._replan({c.plan for track in restored for c in track.crossings if c.plan >= 0})
        return len(restored)

    def corridor(self, incident: str) -> Corridor:
        """The corridor of ``incident``.

        Raises:
            UnknownEntityError: no open corridor for ``incident``.
        """
        return self._corridor(self._open_track(incident))

    # -- routes and ETAs --------------------------------------------------------------------------

    def _track(self, incident: str, origin: int, destination: int, nodes: Sequence[int] | None = None) -> _Track:
        route = (self.network.shortest_path(origin, destination, weight=self.travel_time_s) if nodes is None
                 else self._given_route(origin, destination, nodes))
        distance_m = route.cumulative(self.network.length_m)
        crossings = []
        previous_m = 0.0
        for k, position in zip(route.intersections.tolist(), route.intersection_positions.tolist(), strict=True):
            crossing = self._crossing(route, k, position, distance_m[position] - previous_m)
            previous_m = distance_m[position]
            crossings.append(crossing)
        start = int(route.nodes[0])
        return _Track(incident, destination, route, route.cumulative(self.travel_time_s), distance_m, crossings,
                      seen_s=float(self.priority.clock()), seen_lon=float(self.network.node_lon[start]),
                      seen_lat=float(self.network.node_lat[start]))

    def _given_route(self, origin: int, destination: int, nodes: Sequence[int]) -> Route:
        """The route through ``nodes``, each step on the fastest edge between two consecutive ones."""
        network = self.network
        route_nodes = np.asarray(nodes, dtype=np.int64)
        if route_nodes[0] != origin or route_nodes[-1] != destination:
            raise InvalidInputError(f"expected a route from the origin (node {network.node_osmid[origin]}) to the "
                                    f"destination (node {network.node_osmid[destination]}), got one from node "
                                    f"{network.node_osmid[route_nodes[0]]} to node "
                                    f"{network.node_osmid[route_nodes[-1]]}", field="route")
        edges = np.empty(route_nodes.size - 1, dtype=np.int64)
        for i, (tail, head) in enumerate(zip(route_nodes[:-1].tolist(), route_nodes[1:].tolist(), strict=True)):
            out = np.arange(network.indptr[tail], network.indptr[tail + 1])
            out = out[network.indices[out] == head]
            if out.size == 0:
                raise InvalidInputError(f"expected a route along the network's edges, but no edge goes from node "
                                        f"{network.node_osmid[tail]} to node {network.node_osmid[head]}; give the "
                                        "nodes of the route in order, or no route", field="route")
            edges[i] = out[np.argmin(self.travel_time_s[out])]
        intersections, positions = network.crossed_intersections(route_nodes)
        return Route(nodes=route_nodes, edges=edges, travel_time_s=float(network.travel_time_s[edges].sum()),
                     length_m=float(network.length_m[edges].sum()), intersections=intersections,
                     intersection_positions=positions)

    def _crossing(self, route: Route, k: int, position: int, approach_m: float) -> _Crossing:
        """The crossing of network intersection ``k`` whose visit starts at node ``position``."""
        intersection = int(self.network.intersections.ids[k])
        try:
            plan = self.priority.plans.index_of(intersection)
        except UnknownEntityError:
            return _Crossing(-1, intersection, position, (), -1, None, None, 0.0, state="refused",
                             reason="no signal plan for this intersection")
        end = position
        of_node = self.network.intersections.of_node
        while end + 1 < route.nodes.size and of_node[route.nodes[end + 1]] == k:
            end += 1
        model = self.priority.plans.plans[plan]
        edges = route.edges.tolist()
        groups = []
        for i in range(max(position - 1, 0), end):
            group = model.movement_group(edges[i], edges[i + 1] if i + 1 < len(edges) else -1)
            if group is not None:
                groups.append(group)
        if position == 0 or not groups:
            reason = ("the route starts at this intersection" if position == 0
                      else "no signal group for the route's approach")
            return _Crossing(plan, intersection, position, (), -1, None, None, 0.0, state="refused", reason=reason)
        held = tuple(dict.fromkeys(groups))
        try:
            stage = self.priority.hold_stage(intersection, held)
        except InvalidInputError:
            # No stage serves every stop line on the way: the approach's comes first.
            held = held[:1]
            stage = self.priority.hold_stage(intersection, held)
        return _Crossing(plan, intersection, position, held, stage, groups[0], groups[-1],
                         min(approach_m, self.config.max_queue_m))

    def _estimate(self, track: _Track) -> None:
        """ETAs and hold windows of the crossings ahead; crossings behind the vehicle are passed."""
        now = track.seen_s
        here_m = track.position_m()
        here_s = track.position_time_s()
        config = self.config
        ahead = 0
        for crossing in track.crossings:
            crossing.eta_s = now + float(max(0.0, float(track.time_s[crossing.position]) - here_s))
            if not crossing.groups:
                continue
            stop_m = float(track.distance_m[crossing.position])
            if stop_m < here_m:
                crossing.state = "passed"
                crossing.green_from_s = crossing.green_until_s = None
                continue
            queue_m = min(crossing.queue_m, stop_m - here_m)
            clearance_s = config.queue_headway_s * queue_m / config.queue_spacing_m
            crossing.hold_from_s = float(max(now, crossing.eta_s - clearance_s - config.margin_s))
            crossing.hold_until_s = float(crossing.eta_s + config.margin_s)
            crossing.reason = ""
            ahead += 1
            crossing.beyond_cap = ahead > config.max_held_intersections
            if crossing.hold_until_s > now + config.plan_ahead_s:
                crossing.state = "pending"
            elif crossing.beyond_cap:
                crossing.state = "pending"
                crossing.reason = (f"waits for nearer intersections to be passed: at most "
                                   f"{config.max_held_intersections} are held at once (max_held_intersections)")

    # -- plans ------------------------------------------------------------------------------------

    def _replan(self, plans: set[int]) -> dict[int, Preemption]:
        """Pre-empt each intersection of ``plans`` for every hold of every open corridor there, or
        hand it back when it has none left. An intersection never pre-empted and with no hold in
        reach is left alone: its plan, and the bus priority there, are not the corridors' business."""
        preemptions = {}
        reach = float(self.priority.clock()) + self.config.plan_ahead_s
        for plan in sorted(plans):
            crossings = [c for track in self._tracks.values() for c in track.crossings
                         if c.plan == plan and c.groups and c.state != "passed" and not c.beyond_cap
                         and c.hold_until_s <= reach]
            if not crossings and plan not in self._preempted:
                continue
            windows = self._windows(plan, crossings)
            order = sorted(range(len(crossings)), key=lambda i: windows[i][0])
            intersection = self.priority.plans.ids[plan]
            holds = [Hold(crossings[i].groups, *windows[i]) for i in order]
            done = preemptions[plan] = self.priority.preempt(intersection, holds,
                                                            exit_transition=self.config.exit_transition)
            if not done.refused and holds:
                self._preempted.add(plan)
            elif not done.refused:
                self._preempted.discard(plan)
            for position, i in enumerate(order):
                crossing = crossings[i]
                crossing.green_from_s = done.green_from_s[position]
                crossing.green_until_s = done.green_until_s[position]
                if done.refused:
                    crossing.state, crossing.reason = "refused", done.refused
                elif crossing.green_from_s is None:
                    crossing.state = "refused"
                    crossing.reason = "no safe plan gives a green in this window (maximum cycle, minimum greens)"
                else:
                    crossing.state = "planned"
                    if windows[i][0] != crossing.hold_from_s:
                        crossing.reason = (f"window moved {windows[i][0] - crossing.hold_from_s:.1f} s later, after "
                                           "the hold of a corridor opened earlier")
        return preemptions

    def _windows(self, plan: int, crossings: list[_Crossing]) -> list[tuple[float, float]]:
        """The hold window of each crossing (in corridor opening order): a window that needs a
        conflicting stage during an earlier-opened one's moves after it."""
        windows = [(c.hold_from_s, c.hold_until_s) for c in crossings]
        model = self.priority.plans.plans[plan]
        for later in range(len(crossings)):
            for earlier in range(later):
                stage, first_stage = crossings[later].stage, crossings[earlier].stage
                if stage == first_stage:
                    continue
                start, until = windows[later]
                first_from, first_until = windows[earlier]
                before = model.interstage_s(stage, first_stage)
                after = model.interstage_s(first_stage, stage)
                if start < first_until + after and first_from < until + before:
                    start = first_until + after
                    windows[later] = (start, max(until, start + 2.0 * self.config.margin_s))
        return windows

    def _end(self, track: _Track, why: str) -> list[ExitTransition]:
        del self._tracks[track.incident]
        self._unsaved.add(track.incident)
        preemptions = self._replan({c.plan for c in track.crossings if c.plan >= 0 and c.groups})
        exits = [ExitTransition(self.priority.plans.ids[plan], done.transition, done.in_step_from_s)
                 for plan, done in sorted(preemptions.items())]
        logger.info("corridor %s %s: %d intersections handed back", track.incident, why, len(exits))
        return exits

    def _open_track(self, incident: str) -> _Track:
        try:
            return self._tracks[incident]
        except (KeyError, TypeError):
            raise UnknownEntityError(f"no open corridor for incident {incident!r}; open ones: "
                                     f"{', '.join(self._tracks) or 'none'}", field="incident") from None

    def _local_xy(self, nodes: np.ndarray, lon: float, lat: float) -> tuple[np.ndarray, np.ndarray]:
        """Route nodes in metres east and north of ``(lon, lat)``, in a local flat frame."""
        for name, value, bound in (("lon", lon, 180.0), ("lat", lat, 90.0)):
            if isinstance(value, bool) or not isinstance(value, int | float) or not -bound <= value <= bound:
                raise InvalidInputError(f"expected {name} in [-{bound:.0f}, {bound:.0f}] degrees, got {value!r}",
                                        field=name)
        scale = _M_PER_DEG * math.cos(math.radians(lat))
        return (self.network.node_lon[nodes] - lon) * scale, (self.network.node_lat[nodes] - lat) * _M_PER_DEG

    def _corridor(self, track: _Track, done: dict[int, Preemption] | None = None) -> Corridor:
        def optional(value: float) -> float | None:
            return None if math.isnan(value) else value

        crossings = tuple(Crossing(
            c.intersection, c.approach_group, c.exit_group, float(track.distance_m[c.position]), c.eta_s,
            None if c.state == "passed" else optional(c.hold_from_s),
            None if c.state == "passed" else optional(c.hold_until_s),
            c.green_from_s, c.green_until_s, c.state, c.reason) for c in track.crossings)
        replanned = tuple(self.priority.plans.ids[plan] for plan, preemption in sorted((done or {}).items())
                          if not preemption.refused)
        return Corridor(track.incident, track.route.nodes, track.route.length_m, float(track.time_s[-1]),
                        track.seen_s + float(track.time_s[-1]) - track.position_time_s(), track.position_m(),
                        track.seen_s, crossings, track.reroutes, replanned)


def _match(x: np.ndarray, y: np.ndarray, from_edge: int) -> tuple[int, float, float]:
    """The point of the polyline ``(x, y)`` (m, the position at the origin) nearest the origin, on
    edge ``from_edge`` or after it, the first along the polyline of those as near (within
    :data:`_AS_NEAR_M`): (edge, fraction along it, distance in m)."""
    if x.size < 2:
        return 0, 0.0, float(math.hypot(x[0], y[0]))
    ax, ay = x[from_edge:-1], y[from_edge:-1]
    dx, dy = x[from_edge + 1:] - ax, y[from_edge + 1:] - ay
    length2 = dx * dx + dy * dy
    t = np.clip(-(ax * dx + ay * dy) / np.where(length2 > 0, length2, 1.0), 0.0, 1.0)
    distance = np.hypot(ax + t * dx, ay + t * dy)
    best = int(np.argmax(distance <= distance.min() + _AS_NEAR_M))
    return from_edge + best, float(t[best]), float(distance[best])

