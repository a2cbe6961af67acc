"""Priority from where the buses are: vehicles followed along their trips, and the requests made for them.

Real deployments place *virtual detection points* on the buses' paths and ask for priority from the
positions their AVL system reports (Siemens Sitraffic Stream, MMITSS, GTT's cloud priority); the
bus sends nothing but where it is. :class:`VehicleTracker` does this for pilotage: given the
:class:`~pilotage.core.transit.Trip` each vehicle runs (its path on the network, its stops and
their times), each position report goes through these steps.

1. **Locate**: the report is placed on its trip's path, at the nearest point of the path
   (:func:`~pilotage.signal_priority._kernels.locate_on_paths`, one kernel call per batch), looking
   no farther back than ``back_tolerance_m`` and no farther ahead than the vehicle could have gone
   at ``max_speed_kph``; it never moves backwards. A report farther than ``off_path_m`` from the
   path is *off path*: the vehicle's request is cancelled until it comes back.
2. **Check out**: a vehicle past the stop line of an intersection where it asked for priority
   checks out there (:meth:`PriorityEngine.checkout` gives back the green it did not use).
3. **Request** at the next signalised intersection on its path, once within ``detection_m`` of its
   stop line (the virtual detection point), and again every ``renew_every_s`` as it approaches:
   the signal group of its movement there
   (:meth:`~pilotage.core.signals.IntersectionPlan.movement_group`), the arrival interval from the
   time at the road's speed limit (plus the time to reach it, at ``acceleration_m_s2``) to the time
   at its current speed (no less than half the limit), plus ``eta_margin_s``; the queue ahead is
   the one the engine observes from detectors. A stop on the path before the stop line holds the
   request until the vehicle has left it (it checks in when its doors close), as a vehicle
   standing within ``stop_zone_m`` of a stop with its doors open or at walking pace is dwelling.
4. **Lateness**: at its next stop with a scheduled time, the time it would reach it at its current
   speed (no less than half the limit) against the timetable; unknown (None) when no stop ahead
   has a time.
5. **Cancel**: a vehicle that reports nothing for ``stale_after_s`` (MMITSS drops a request after
   10 s without update), leaves its path, or changes trip has its request cancelled.

The tracker only proposes: the caller (the service) decides each request through the same engine
path as a wire request, and tells the tracker what came of it (:meth:`VehicleTracker.record`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np

from pilotage.core.errors import InvalidInputError, UnknownEntityError
from pilotage.core.network import MAX_PLAUSIBLE_SPEED_KPH, POSITION_TOLERANCE_M, RoadNetwork
from pilotage.core.signals import SignalPlans
from pilotage.core.transit import Trip
from pilotage.signal_priority import _kernels
from pilotage.signal_priority.engine import DEFAULT_MAX_ETA_S, PriorityRequest

#: The states of a vehicle's request, as the protocol names them (SAE J2735 SSM's, and their ends).
REQUESTED, GRANTED, REJECTED = "requested", "granted", "rejected"
CHECKED_OUT: Literal["checked_out"] = "checked_out"
CANCELLED: Literal["cancelled"] = "cancelled"
#: How a vehicle is followed.
ON_PATH, OFF_PATH, FINISHED = "on_path", "off_path", "finished"

_EARTH_RADIUS_M = 6_371_009.0
_NOT_YET = InvalidInputError("not located yet")
# A vehicle this close to its path's end (m) has finished its trip.
_END_M = 1.0


@dataclass(frozen=True)
class TrackingConfig:
    """Parameters of the tracker (metres and seconds).

    Attributes:
        detection_m: a vehicle asks for priority once this close to the stop line (the virtual
            detection point).
        renew_every_s: it asks again this often as it approaches.
        stale_after_s: a vehicle silent this long is forgotten and its request cancelled.
        off_path_m: a report farther than this from the vehicle's path is off it.
        back_tolerance_m: a report may place the vehicle this far behind the last one (positioning
            noise); it is then kept where it was.
        max_speed_kph: no vehicle moves faster along its path between two reports.
        acceleration_m_s2: a vehicle reaching the speed limit before its stop line, for its
            earliest arrival.
        eta_margin_s: added to the arrival interval: the time to clear the stop line once there.
        stop_zone_m: a vehicle within this of a stop it has reached, doors open or at walking pace
            (``dwell_speed_m_s``), is dwelling there.
        dwell_speed_m_s: see ``stop_zone_m``.
        max_eta_s: arrivals are capped at this (the engine refuses later ones).
    """

    detection_m: float = 250.0
    renew_every_s: float = 2.0
    stale_after_s: float = 10.0
    off_path_m: float = POSITION_TOLERANCE_M
    back_tolerance_m: float = 20.0
    max_speed_kph: float = MAX_PLAUSIBLE_SPEED_KPH
    acceleration_m_s2: float = 1.0
    eta_margin_s: float = 2.0
    stop_zone_m: float = 30.0
    dwell_speed_m_s: float = 1.0
    max_eta_s: float = DEFAULT_MAX_ETA_S

    def __post_init__(self) -> None:
        """Check every parameter is a finite number > 0 (``back_tolerance_m`` and ``eta_margin_s``: >= 0).

        Raises:
            InvalidInputError: a parameter out of its range, or not a number; ``field`` names it.
        """
        for name, value in vars(self).items():
            low_ok = value >= 0 if name in ("back_tolerance_m", "eta_margin_s") else value > 0
            if not (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
                    and low_ok):
                raise InvalidInputError(f"expected {name} to be a finite number "
                                        f"{'>= 0' if name in ('back_tolerance_m', 'eta_margin_s') else '> 0'}, "
                                        f"got {value!r}", field=name)


@dataclass(frozen=True)
class PositionReport:
    """Where a vehicle is: at ``time_s`` (s on the engine's clock), at (``lon``, ``lat``) (degrees),
    on ``trip`` (or on a trip of ``route``), going at ``speed_m_s`` (None: from its last report)
    towards ``heading_deg`` (clockwise from north; None: not known),
    with ``occupancy`` passengers, doors open or not (None: not known); ``vehicle_class`` None: the
    trip's."""

    vehicle: str
    lon: float
    lat: float
    time_s: float
    trip: str | None = None
    route: str | None = None
    speed_m_s: float | None = None
    heading_deg: float | None = None
    occupancy: float | None = None
    doors_open: bool | None = None
    vehicle_class: str | None = None


@dataclass(frozen=True)
class Tracked:
    """How a vehicle is followed after a report: its trip, ``state`` (:data:`ON_PATH`,
    :data:`OFF_PATH`, :data:`FINISHED`), how far along its path (m), how late (s; None: its
    timetable gives no time ahead), its next signalised intersection (its plan's id), the signal
    group of its movement there and the distance to its stop line (m), and its request's state
    there (None: none yet) with the reason."""

    trip: str
    state: str
    along_m: float
    lateness_s: float | None
    next_intersection: int | str | None
    group: str | None
    to_stop_line_m: float | None
    request: str | None
    reason: str


@dataclass(frozen=True)
class Release:
    """A request that ends: the vehicle passed the stop line (:data:`CHECKED_OUT`), or left its path,
    stopped reporting or changed trip (:data:`CANCELLED`); the engine gives back what it granted."""

    vehicle: str
    intersection: int | str
    group: str
    state: Literal["checked_out", "cancelled"]
    reason: str


@dataclass(frozen=True)
class Step:
    """What one report leads to: how the vehicle is followed, the request to decide now (None:
    none), the requests that end, and whether the request is the first at its intersection
    (``asked``: its state becomes :data:`REQUESTED`)."""

    tracked: Tracked
    request: PriorityRequest | None
    releases: tuple[Release, ...]
    asked: bool = False


@dataclass(frozen=True)
class TripDelay:
    """How late a followed trip runs (what GTFS-Realtime's TripUpdate carries): its ``trip_id`` and
    ``route_id``, the vehicle on it, its delay (s, negative when early), the next stop it will call
    at (``stop_id``, and its GTFS ``stop_sequence`` when known; no stop after the last), and when the
    delay was measured (``time_s``, on the clock)."""

    trip_id: str
    route_id: str | None
    vehicle: str | None
    delay_s: float
    next_stop_id: str | None
    next_stop_sequence: int | None
    time_s: float


@dataclass
class _Vehicle:
    vehicle: str
    trip: Trip
    path: int
    time_s: float
    along_m: float = 0.0
    speed_m_s: float = 0.0
    state: str = ON_PATH
    # The next crossing of its path not yet passed.
    crossing: int = 0
    lateness_s: float | None = None
    # Its live request: at which crossing (-1: none), its state, why, and when last sent.
    request_at: int = -1
    request: str | None = None
    reason: str = ""
    requested_s: float = -math.inf
    # When it was last placed on its path (-inf: never); how far it may have gone since bounds where
    # it is looked for.
    located_s: float = -math.inf


@dataclass
class _Paths:
    """The paths of the trips known, packed for the kernel: one polyline each, in local planar
    coordinates (m) around the network's centre."""

    index: dict[int, int] = field(default_factory=dict)
    ptr: list[int] = field(default_factory=lambda: [0])
    x_m: list[np.ndarray] = field(default_factory=list)
    y_m: list[np.ndarray] = field(default_factory=list)
    at_m: list[np.ndarray] = field(default_factory=list)
    packed: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None


class VehicleTracker:
    """Buses and trams followed along their trips, and the priority requests made for them
    (the module docstring gives the rules).

    Args:
        network: the road network the trips' paths are on.
        plans: the signal plans of the priority engine (their ids are the network's intersection ids).
        trips: the trips known (more with :meth:`add_trips`).
        config: the tracker's parameters.
    """

    def __init__(self, network: RoadNetwork, plans: SignalPlans, trips: Iterable[Trip] = (),
                 config: TrackingConfig | None = None) -> None:
        self.network = network
        self.plans = plans
        self.config = config or TrackingConfig()
        self.trips: dict[str, Trip] = {}
        self._trips_of_route: dict[str, list[Trip]] = {}
        self._vehicles: dict[str, _Vehicle] = {}
        self._paths = _Paths()
        self._lat0 = math.radians(float(np.mean(network.node_lat))) if network.n_nodes else 0.0
        self.add_trips(trips)

    def add_trips(self, trips: Iterable[Trip]) -> None:
        """Know these trips (a trip already known by its id is replaced)."""
        for trip in trips:
            self.trips[trip.trip_id] = trip
            self._trips_of_route.setdefault(trip.route_id, []).append(trip)
            self._path_index(trip)

    @property
    def vehicles(self) -> int:
        """How many vehicles are followed."""
        return len(self._vehicles)

    def observe(self, reports: Sequence[PositionReport]) -> list[Step | InvalidInputError | UnknownEntityError]:
        """Follow each vehicle to its new position; for each report, what it leads to, or the error
        that refuses it (the others are still followed): an unknown trip or route
        (:class:`UnknownEntityError`), a time before the vehicle's last report or a position off the
        network's area (:class:`InvalidInputError`)."""
        results: list[Step | InvalidInputError | UnknownEntityError] = []
        located: list[tuple[int, _Vehicle, PositionReport, tuple[Release, ...]]] = []
        for report in reports:
            try:
                vehicle, releases = self._vehicle(report)
            except (InvalidInputError, UnknownEntityError) as error:
                results.append(error)
                continue
            located.append((len(results), vehicle, report, releases))
            # Its place in the results, filled once every vehicle is located.
            results.append(_NOT_YET)
        if located:
            along_m, offset_m = self._locate([(vehicle, report) for _, vehicle, report, _ in located])
            for (i, vehicle, report, releases), along, offset in zip(located, along_m.tolist(), offset_m.tolist(),
                                                                     strict=True):
                results[i] = self._step(vehicle, report, along, offset, releases)
        return results

    def record(self, vehicle: str, intersection: int | str, state: str, reason: str = "") -> bool:
        """What came of a vehicle's request at ``intersection``: :data:`GRANTED` or :data:`REJECTED`
        (with the reason). Returns whether its state changed (an event is due)."""
        followed = self._vehicles.get(vehicle)
        if followed is None or followed.request_at < 0:
            return False
        if self._plan_id(followed, followed.request_at) != intersection:
            return False
        changed = followed.request != state
        followed.request, followed.reason = state, reason
        return changed

    def tracked(self, vehicle: str) -> Tracked:
        """How ``vehicle`` is followed now.

        Raises:
            UnknownEntityError: a vehicle not followed.
        """
        followed = self._vehicles.get(vehicle)
        if followed is None:
            raise UnknownEntityError(f"no vehicle {vehicle!r} is followed; it reports its position first",
                                     field="vehicle")
        return self._tracked(followed)

    def expire(self, now_s: float) -> list[Release]:
        """Forget the vehicles silent for ``stale_after_s`` before ``now_s``; their requests are cancelled."""
        silent = [v for v in self._vehicles.values() if now_s - v.time_s > self.config.stale_after_s]
        releases = []
        for followed in silent:
            release = self._release(followed, CANCELLED,
                                    f"no position for {self.config.stale_after_s:g} s")
            releases.extend([release] if release is not None else [])
            del self._vehicles[followed.vehicle]
        return releases

    def delays(self) -> list[TripDelay]:
        """The delay of every trip followed on its path whose timetable gives a time ahead."""
        delays = []
        for followed in self._vehicles.values():
            if followed.lateness_s is None or followed.state != ON_PATH:
                continue
            stop = self._next_timed_stop(followed)
            if stop < 0:
                continue
            trip = followed.trip
            delays.append(TripDelay(trip.trip_id, trip.route_id, followed.vehicle, followed.lateness_s,
                                    trip.path.stop_ids[stop], None, followed.time_s))
        return delays

    # -- the steps -----------------------------------------------------------------------------

    def _vehicle(self, report: PositionReport) -> tuple[_Vehicle, tuple[Release, ...]]:
        """The vehicle's record for this report (a new one for a new vehicle or trip), and the
        release of its request when it changed trip."""
        trip = self._trip(report)
        followed = self._vehicles.get(report.vehicle)
        if followed is not None and report.time_s < followed.time_s:
            raise InvalidInputError(f"expected a time at or after vehicle {report.vehicle!r}'s last report "
                                    f"({followed.time_s:.3f} s), got {report.time_s:.3f} s: send its positions in "
                                    "the order they were taken", field="time")
        releases: tuple[Release, ...] = ()
        if followed is not None and trip is not None and followed.trip is not trip:
            release = self._release(followed, CANCELLED, f"the vehicle now runs trip {trip.trip_id}")
            releases = (release,) if release is not None else ()
            followed = None
        if followed is None:
            if trip is None:
                trip = self._nearest_trip_of_route(report)
            followed = _Vehicle(report.vehicle, trip, self._path_index(trip), report.time_s)
            self._vehicles[report.vehicle] = followed
        return followed, releases

    def _trip(self, report: PositionReport) -> Trip | None:
        """The trip a report names; None when it names only a route (the trip is then the one of that
        route whose path the vehicle is on)."""
        if report.trip is not None:
            trip = self.trips.get(report.trip)
            if trip is not None:
                return trip
            if report.route is None:
                raise UnknownEntityError(f"no trip {report.trip!r} in the timetable ({len(self.trips)} trips known); "
                                         "give a trip_id of the timetable the engine was started with, or the route",
                                         field="trip")
        if report.route is None:
            raise InvalidInputError("expected the vehicle's trip or route, got neither: pilotage follows a vehicle "
                                    "along its trip's path", field="trip")
        if report.route not in self._trips_of_route:
            raise UnknownEntityError(f"no route {report.route!r} in the timetable ({len(self._trips_of_route)} routes "
                                     "known); give a route_id of the timetable", field="route")
        followed = self._vehicles.get(report.vehicle)
        return followed.trip if followed is not None and followed.trip.route_id == report.route else None

    def _nearest_trip_of_route(self, report: PositionReport) -> Trip:
        """Of the trips of the report's route, one whose path passes nearest to it; with a heading,
        nearest among those going its way there (within 90°), as a line's two directions often run
        along the same streets."""
        candidates = list({id(t.path): t for t in self._trips_of_route[str(report.route)]}.values())
        probes = [(_Vehicle(report.vehicle, t, self._path_index(t), report.time_s), report) for t in candidates]
        along_m, offset_m = self._locate(probes)
        if report.heading_deg is not None:
            for i, (probe, _) in enumerate(probes):
                turn_deg = abs((self._path_heading_deg(probe.path, float(along_m[i])) - report.heading_deg + 180.0)
                               % 360.0 - 180.0)
                if turn_deg > 90.0:
                    offset_m[i] += self.config.off_path_m
        return candidates[int(np.argmin(offset_m))]

    def _path_heading_deg(self, path: int, along_m: float) -> float:
        """The direction of path ``path`` at ``along_m`` along it (degrees clockwise from north)."""
        ptr, x_m, y_m, at_m = self._packed()
        first, last = int(ptr[path]), int(ptr[path + 1]) - 1
        s = min(max(first + int(np.searchsorted(at_m[first:last + 1], along_m, side="right")) - 1, first), last - 1)
        return math.degrees(math.atan2(x_m[s + 1] - x_m[s], y_m[s + 1] - y_m[s])) % 360.0

    def _locate(self, items: Sequence[tuple[_Vehicle, PositionReport]]) -> tuple[np.ndarray, np.ndarray]:
        """Where each vehicle is along its path, and how far from it (m): one kernel call."""
        config = self.config
        ptr, x_m, y_m, at_m = self._packed()
        n = len(items)
        path_of = np.empty(n, dtype=np.int64)
        from_m = np.empty(n)
        to_m = np.empty(n)
        lon = np.empty(n)
        lat = np.empty(n)
        max_speed_m_s = config.max_speed_kph / 3.6
        for i, (followed, report) in enumerate(items):
            path_of[i] = followed.path
            lon[i], lat[i] = report.lon, report.lat
            if math.isfinite(followed.located_s):
                from_m[i] = followed.along_m - config.back_tolerance_m
                to_m[i] = followed.along_m + max_speed_m_s * (report.time_s - followed.located_s) + config.off_path_m
            else:
                from_m[i], to_m[i] = -math.inf, math.inf
        x, y = self._planar(lon, lat)
        along_m = np.empty(n)
        offset_m = np.empty(n)
        _kernels.locate_on_paths(ptr, x_m, y_m, at_m, path_of, from_m, to_m, x, y, along_m, offset_m)
        return along_m, offset_m

    def _step(self, followed: _Vehicle, report: PositionReport, along_m: float, offset_m: float,
              releases: tuple[Release, ...]) -> Step:
        config = self.config
        path = followed.trip.path
        followed.time_s = report.time_s
        if not offset_m <= config.off_path_m:
            followed.state = OFF_PATH
            release = self._release(followed, CANCELLED, f"off its path by more than {config.off_path_m:g} m")
            reason = (f"{offset_m:.0f} m from its trip's path, more than {config.off_path_m:g} m"
                      if math.isfinite(offset_m) else "too far from where it last was on its trip's path")
            return Step(replace(self._tracked(followed), reason=reason), None,
                        releases + ((release,) if release is not None else ()))
        previous_m = followed.along_m
        located = math.isfinite(followed.located_s)
        along_m = max(along_m, previous_m) if located else along_m
        dt_s = report.time_s - followed.located_s
        if report.speed_m_s is not None:
            followed.speed_m_s = report.speed_m_s
        elif located and dt_s > 0:
            followed.speed_m_s = (along_m - previous_m) / dt_s
        followed.along_m, followed.located_s = along_m, report.time_s
        followed.state = FINISHED if along_m >= path.length_m - _END_M else ON_PATH
        passed = []
        stop_lines_m = path.crossing_stop_line_m
        while followed.crossing < stop_lines_m.size and stop_lines_m[followed.crossing] < along_m:
            if followed.crossing == followed.request_at:
                release = self._release(followed, CHECKED_OUT, "past the stop line")
                passed.extend([release] if release is not None else [])
            followed.crossing += 1
        releases += tuple(passed)
        speed_limit_m_s = self._speed_limit_m_s(followed)
        followed.lateness_s = self._lateness_s(followed, report.time_s, speed_limit_m_s)
        request, reason = self._request(followed, report, speed_limit_m_s)
        asked = request is not None and followed.request_at != followed.crossing
        if asked:
            followed.request_at, followed.request, followed.reason = followed.crossing, REQUESTED, ""
        if request is not None:
            followed.requested_s = report.time_s
        tracked = self._tracked(followed)
        return Step(replace(tracked, reason=reason) if reason else tracked, request, releases, asked)

    def _request(self, followed: _Vehicle, report: PositionReport,
                 speed_limit_m_s: float) -> tuple[PriorityRequest | None, str]:
        """The request to make now at the vehicle's next crossing, or None and why not (empty: not due yet)."""
        config = self.config
        path = followed.trip.path
        c = followed.crossing
        if followed.state != ON_PATH or c >= path.crossing_stop_line_m.size:
            return None, "no signalised intersection ahead on its path"
        plan_id = self._plan_id(followed, c)
        group = self._group(followed, c)
        if group is None:
            return None, f"no signal group for its movement at intersection {plan_id}"
        distance_m = float(path.crossing_stop_line_m[c] - followed.along_m)
        if distance_m > config.detection_m:
            return None, ""
        if followed.request_at == c and report.time_s - followed.requested_s < config.renew_every_s:
            return None, ""
        stops = path.stop_at_m
        first_ahead = int(np.searchsorted(stops, followed.along_m, side="left"))
        if first_ahead < stops.size and stops[first_ahead] <= path.crossing_stop_line_m[c]:
            return None, f"to leave stop {path.stop_ids[first_ahead]} before the stop line first"
        if first_ahead > 0 and followed.along_m - stops[first_ahead - 1] <= config.stop_zone_m and (
                report.doors_open or (report.doors_open is None and followed.speed_m_s < config.dwell_speed_m_s)):
            return None, f"dwelling at stop {path.stop_ids[first_ahead - 1]}"
        speed_m_s = max(followed.speed_m_s, 0.5 * speed_limit_m_s, 1.0)
        earliest_s = distance_m / speed_limit_m_s + max(0.0, speed_limit_m_s - followed.speed_m_s) / (
            2.0 * config.acceleration_m_s2)
        latest_s = max(earliest_s, distance_m / speed_m_s)
        lateness_s = 0.0 if followed.lateness_s is None else followed.lateness_s
        return PriorityRequest(
            vehicle=followed.vehicle, intersection=plan_id, group=group, eta_s=min(earliest_s, config.max_eta_s),
            vehicle_class=report.vehicle_class or followed.trip.vehicle_class,
            lateness_s=lateness_s, occupancy=report.occupancy or 0.0,
            eta_window_s=min(latest_s - earliest_s + config.eta_margin_s, config.max_eta_s),
            distance_m=distance_m), ""

    def _lateness_s(self, followed: _Vehicle, now_s: float, speed_limit_m_s: float) -> float | None:
        """How late the vehicle will reach its next stop with a time, at its current speed (no less
        than half the limit); None when no stop ahead has one."""
        stop = self._next_timed_stop(followed)
        if stop < 0:
            return None
        speed_m_s = max(followed.speed_m_s, 0.5 * speed_limit_m_s, 1.0)
        trip = followed.trip
        expected_s = now_s + (trip.path.stop_at_m[stop] - followed.along_m) / speed_m_s
        return float(expected_s - trip.stop_times_s[stop])

    def _next_timed_stop(self, followed: _Vehicle) -> int:
        """The next stop on the vehicle's path (not yet reached) with a scheduled time; -1: none."""
        trip = followed.trip
        first = int(np.searchsorted(trip.path.stop_at_m, followed.along_m, side="left"))
        timed = np.flatnonzero(np.isfinite(trip.stop_times_s[first:]))
        return first + int(timed[0]) if timed.size else -1

    def _release(self, followed: _Vehicle, state: Literal["checked_out", "cancelled"], reason: str) -> Release | None:
        """End the vehicle's live request, if it has one."""
        if followed.request_at < 0:
            return None
        c = followed.request_at
        followed.request_at, followed.request, followed.reason = -1, None, ""
        followed.requested_s = -math.inf
        return Release(followed.vehicle, self._plan_id(followed, c), self._group(followed, c) or "", state, reason)

    def _tracked(self, followed: _Vehicle) -> Tracked:
        path = followed.trip.path
        c = followed.crossing
        ahead = c < path.crossing_stop_line_m.size and followed.state != FINISHED
        return Tracked(
            trip=followed.trip.trip_id, state=followed.state, along_m=followed.along_m,
            lateness_s=followed.lateness_s,
            next_intersection=self._plan_id(followed, c) if ahead else None,
            group=self._group(followed, c) if ahead else None,
            to_stop_line_m=float(path.crossing_stop_line_m[c] - followed.along_m) if ahead else None,
            request=followed.request if followed.request_at == c else None, reason=followed.reason)

    # -- lookups -------------------------------------------------------------------------------

    def _plan_id(self, followed: _Vehicle, c: int) -> int | str:
        """The id of the plan of the ``c``-th crossing of the vehicle's path (the network's
        intersection id)."""
        return int(self.network.intersections.ids[followed.trip.path.crossing_intersection[c]])

    def _group(self, followed: _Vehicle, c: int) -> str | None:
        path = followed.trip.path
        try:
            plan = self.plans.plans[self.plans.index_of(self._plan_id(followed, c))]
        except UnknownEntityError:
            return None
        return plan.movement_group(int(path.crossing_from_edge[c]), int(path.crossing_to_edge[c]))

    def _speed_limit_m_s(self, followed: _Vehicle) -> float:
        """The speed limit of the edge the vehicle is on (m/s)."""
        path = followed.trip.path
        e = min(int(np.searchsorted(path.at_m, followed.along_m, side="right")) - 1, path.edges.size - 1)
        return max(float(self.network.speed_kph[path.edges[max(e, 0)]]) / 3.6, 1.0)

    def _path_index(self, trip: Trip) -> int:
        """The index of the trip's path in the packed paths, packing it when new."""
        paths = self._paths
        key = id(trip.path)
        if key not in paths.index:
            nodes = trip.path.nodes
            x, y = self._planar(self.network.node_lon[nodes], self.network.node_lat[nodes])
            paths.index[key] = len(paths.x_m)
            paths.x_m.append(x)
            paths.y_m.append(y)
            paths.at_m.append(np.asarray(trip.path.at_m, dtype=np.float64))
            paths.ptr.append(paths.ptr[-1] + nodes.size)
            paths.packed = None
        return paths.index[key]

    def _packed(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        paths = self._paths
        if paths.packed is None:
            paths.packed = (np.array(paths.ptr, dtype=np.int64), np.concatenate(paths.x_m),
                            np.concatenate(paths.y_m), np.concatenate(paths.at_m))
        return paths.packed

    def _planar(self, lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Local planar coordinates (m) of points (degrees): equirectangular around the network's
        mean latitude, exact to well under a metre across a city."""
        x: np.ndarray = np.ascontiguousarray(np.radians(lon) * math.cos(self._lat0) * _EARTH_RADIUS_M)
        y: np.ndarray = np.ascontiguousarray(np.radians(lat) * _EARTH_RADIUS_M)
        return x, y
