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
   has a time. Then the request gives instead its headways to the vehicles followed on the same
   path ahead and behind (their distance at its speed), which the engine reads as a line run on
   headways does: no priority for a vehicle closer to the one ahead than the one behind is to it.
5. **Cancel**: a vehicle that reports nothing for ``stale_after_s`` (MMITSS drops a request after
   10 s without update), leaves its path, or changes trip has its request cancelled.

The tracker only proposes: the caller (the service) decides each request through the same engine
path as a wire request, and tells the tracker what came of it (:meth:`VehicleTracker.record`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple

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

# A vehicle this close to its path's end (m) has finished its trip.
_END_M = 1.0
#: Headways to the vehicles of a line are their distance at the vehicle's speed, and no less than
#: this one (m/s: a bus stopped is not infinitely far from the next).
HEADWAY_SPEED_M_S = 5.0


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


class Tracked(NamedTuple):
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


class Release(NamedTuple):
    """A request that ends: the vehicle passed the stop line (:data:`CHECKED_OUT`), or left its path,
    stopped reporting or changed trip (:data:`CANCELLED`); the engine gives back what it granted."""

    vehicle: str
    intersection: int | str
    group: str
    state: Literal["checked_out", "cancelled"]
    reason: str


class Step(NamedTuple):
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


# The kernel's states and actions, as named here.
_STATES = {_kernels.ON_PATH: ON_PATH, _kernels.OFF_PATH: OFF_PATH, _kernels.FINISHED: FINISHED}
_GROWTH = 2


class VehicleTracker:
    """Buses and trams followed along their trips, and the priority requests made for them
    (the module docstring gives the rules; :func:`~pilotage.signal_priority._kernels.track_positions`
    applies them to a batch of reports in one kernel call).

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
        self._settings = _settings(self.config)
        self._trips_of_route: dict[str, list[Trip]] = {}
        # Paths and trips, packed for the kernel (built again when trips are added).
        self._path_index: dict[int, int] = {}
        self._trip_index: dict[int, int] = {}
        self._trip_list: list[Trip] = []
        self._path_parts: list[tuple[np.ndarray, ...]] = []
        self._crossing_start: list[int] = [0]
        self._crossing_plan: list[int | str] = []
        self._crossing_group: list[str | None] = []
        self._packed: tuple[np.ndarray, ...] | None = None
        # The vehicles followed: a row each of ``_vehicles`` (the kernel's state), by name.
        self._vehicles = np.zeros((16, _kernels.N_VEHICLE_FIELDS))
        self._row: dict[str, int] = {}
        self._names: list[str] = []
        self._free: list[int] = []
        # Per row: the request's state and reason, the last lateness and next timed stop.
        self._request: list[str | None] = []
        self._reason: list[str] = []
        self._lateness_s: list[float | None] = []
        self._timed_stop: list[int] = []
        self.add_trips(trips)

    def add_trips(self, trips: Iterable[Trip]) -> None:
        """Know these trips (a trip already known by its id is replaced)."""
        for trip in trips:
            self.trips[trip.trip_id] = trip
            self._trips_of_route.setdefault(trip.route_id, []).append(trip)
            self._pack(trip)

    @property
    def vehicles(self) -> int:
        """How many vehicles are followed."""
        return len(self._row)

    def observe(self, reports: Sequence[PositionReport]) -> list[Step | InvalidInputError | UnknownEntityError]:
        """Follow each vehicle to its new position; for each report, what it leads to, or the error
        that refuses it (the others are still followed): an unknown trip or route
        (:class:`UnknownEntityError`), no trip nor route, or a time before the vehicle's last report
        (:class:`InvalidInputError`)."""
        results: list[Step | InvalidInputError | UnknownEntityError | None] = [None] * len(reports)
        accepted: list[tuple[int, int, tuple[Release, ...]]] = []
        rows = np.empty((len(reports), _kernels.N_REPORT_FIELDS))
        lon = np.empty(len(reports))
        lat = np.empty(len(reports))
        for i, report in enumerate(reports):
            try:
                row, releases = self._vehicle(report)
            except (InvalidInputError, UnknownEntityError) as error:
                results[i] = error
                continue
            n = len(accepted)
            rows[n, _kernels.P_VEHICLE] = row
            rows[n, _kernels.P_TIME_S] = report.time_s
            rows[n, _kernels.P_SPEED_M_S] = math.nan if report.speed_m_s is None else report.speed_m_s
            rows[n, _kernels.P_DOORS] = -1.0 if report.doors_open is None else float(report.doors_open)
            lon[n], lat[n] = report.lon, report.lat
            accepted.append((i, row, releases))
        if accepted:
            n = len(accepted)
            rows[:n, _kernels.P_X_M], rows[:n, _kernels.P_Y_M] = self.network.planar_m(lon[:n], lat[:n])
            out = np.empty((n, _kernels.N_TRACK_OUT))
            (path_ptr, point_x_m, point_y_m, point_at_m, point_speed_m_s, crossing_ptr, crossing_line_m,
             crossing_grouped, trip_path, stop_ptr, stop_at_m, stop_due_s) = self._kernel_paths()
            _kernels.track_positions(path_ptr, point_x_m, point_y_m, point_at_m, point_speed_m_s, crossing_ptr,
                                     crossing_line_m, crossing_grouped, trip_path, stop_ptr, stop_at_m, stop_due_s,
                                     self._settings, self._vehicles, rows[:n], out)
            for (i, row, releases), values in zip(accepted, out.tolist(), strict=True):
                results[i] = self._step(row, reports[i], values, releases)
        return results  # type: ignore[return-value]  # every slot is filled above

    def record(self, vehicle: str, intersection: int | str, state: str, reason: str = "") -> bool:
        """What came of a vehicle's request at ``intersection``: :data:`GRANTED` or :data:`REJECTED`
        (with the reason). Returns whether its state changed (an event is due)."""
        row = self._row.get(vehicle)
        if row is None:
            return False
        at = int(self._vehicles[row, _kernels.V_REQUEST_AT])
        if at < 0 or self._crossing_plan[at] != intersection:
            return False
        changed = self._request[row] != state
        self._request[row], self._reason[row] = state, reason
        return changed

    def tracked(self, vehicle: str) -> Tracked:
        """How ``vehicle`` is followed now.

        Raises:
            UnknownEntityError: a vehicle not followed.
        """
        row = self._row.get(vehicle)
        if row is None:
            raise UnknownEntityError(f"no vehicle {vehicle!r} is followed; it reports its position first",
                                     field="vehicle")
        state = self._vehicles[row]
        crossing = int(state[_kernels.V_CROSSING])
        return self._tracked(row, _STATES[int(state[_kernels.V_STATE])], float(state[_kernels.V_ALONG_M]), crossing,
                             self._reason[row])

    def expire(self, now_s: float) -> list[Release]:
        """Forget the vehicles silent for ``stale_after_s`` before ``now_s``; their requests are cancelled."""
        releases = []
        for vehicle, row in list(self._row.items()):
            if now_s - self._vehicles[row, _kernels.V_TIME_S] <= self.config.stale_after_s:
                continue
            at = int(self._vehicles[row, _kernels.V_REQUEST_AT])
            if at >= 0:
                releases.append(self._release(vehicle, at, CANCELLED,
                                              f"no position for {self.config.stale_after_s:g} s"))
            del self._row[vehicle]
            self._free.append(row)
            # Out of the headways of its line.
            self._vehicles[row, _kernels.V_STATE] = _kernels.FINISHED
        return releases

    def delays(self) -> list[TripDelay]:
        """The delay of every trip followed on its path whose timetable gives a time ahead."""
        delays = []
        for vehicle, row in self._row.items():
            lateness_s = self._lateness_s[row]
            if lateness_s is None or self._vehicles[row, _kernels.V_STATE] != _kernels.ON_PATH:
                continue
            trip = self._trip_list[int(self._vehicles[row, _kernels.V_TRIP])]
            delays.append(TripDelay(trip.trip_id, trip.route_id, vehicle, lateness_s,
                                    trip.path.stop_ids[self._timed_stop[row]], None,
                                    float(self._vehicles[row, _kernels.V_TIME_S])))
        return delays

    # -- a report ----------------------------------------------------------------------------------

    def _vehicle(self, report: PositionReport) -> tuple[int, tuple[Release, ...]]:
        """The vehicle's row for this report (a new one for a new vehicle or trip), and the release
        of its request when it changed trip."""
        trip = self._trip(report)
        row = self._row.get(report.vehicle)
        releases: tuple[Release, ...] = ()
        if row is not None:
            last_s = float(self._vehicles[row, _kernels.V_TIME_S])
            if report.time_s < last_s:
                raise InvalidInputError(f"expected a time at or after vehicle {report.vehicle!r}'s last report "
                                        f"({last_s:.3f} s), got {report.time_s:.3f} s: send its positions in the "
                                        "order they were taken", field="time")
            current = self._trip_list[int(self._vehicles[row, _kernels.V_TRIP])]
            if trip is None and current.route_id == report.route:
                return row, ()
            if trip is None or trip is not current:
                at = int(self._vehicles[row, _kernels.V_REQUEST_AT])
                if at >= 0:
                    reason = "the vehicle now runs another trip"
                    releases = (self._release(report.vehicle, at, CANCELLED, reason),)
            else:
                return row, ()
        if trip is None:
            trip = self._nearest_trip_of_route(report)
        return self._new_row(report.vehicle, trip, report.time_s, row), releases

    def _trip(self, report: PositionReport) -> Trip | None:
        """The trip a report names; None when it names only a route (the vehicle is then on the trip
        of that route whose path it is on).

        Raises:
            UnknownEntityError: an unknown trip (without a route) or route.
            InvalidInputError: neither a trip nor a route.
        """
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
        return None

    def _nearest_trip_of_route(self, report: PositionReport) -> Trip:
        """Of the trips of the report's route, one whose path passes nearest to it; with a heading,
        nearest among those going its way there (within 90°), as a line's two directions often run
        along the same streets."""
        candidates = list({id(t.path): t for t in self._trips_of_route[str(report.route)]}.values())
        path_ptr, point_x_m, point_y_m, point_at_m = self._kernel_paths()[:4]
        paths = np.array([self._path_index[id(t.path)] for t in candidates], dtype=np.int64)
        n = paths.size
        x, y = self.network.planar_m(np.full(n, report.lon), np.full(n, report.lat))
        along_m = np.empty(n)
        offset_m = np.empty(n)
        _kernels.locate_on_paths(path_ptr, point_x_m, point_y_m, point_at_m, paths, np.full(n, -np.inf),
                                 np.full(n, np.inf), x, y, along_m, offset_m)
        if report.heading_deg is not None:
            for i, path in enumerate(paths.tolist()):
                turn_deg = abs((self._path_heading_deg(path, float(along_m[i])) - report.heading_deg + 180.0)
                               % 360.0 - 180.0)
                if turn_deg > 90.0:
                    offset_m[i] += self.config.off_path_m
        return candidates[int(np.argmin(offset_m))]

    def _step(self, row: int, report: PositionReport, values: list[float], releases: tuple[Release, ...]) -> Step:
        """What a report led to, from the kernel's ``out`` row ``values``."""
        k = _kernels
        vehicle = report.vehicle
        release_at = int(values[k.U_RELEASE])
        if release_at >= 0:
            off = values[k.U_ACTION] == k.A_OFF_PATH
            # The kernel has already ended the request in the vehicle's row (and may have made the
            # next one): only the state kept here goes.
            releases += (self._release(vehicle, release_at, CANCELLED if off else CHECKED_OUT,
                                       f"off its path by more than {self.config.off_path_m:g} m" if off
                                       else "past the stop line", in_row=False),)
        action = int(values[k.U_ACTION])
        timed_stop = int(values[k.U_TIMED_STOP])
        # Off its path, the vehicle keeps the lateness it had where it left it.
        if action != k.A_OFF_PATH:
            self._lateness_s[row] = None if timed_stop < 0 else values[k.U_LATENESS_S]
            self._timed_stop[row] = timed_stop
        crossing = int(values[k.U_CROSSING])
        trip = self._trip_list[int(self._vehicles[row, k.V_TRIP])]
        request = None
        asked = values[k.U_ASKED] == 1.0
        if asked:
            self._request[row], self._reason[row] = REQUESTED, ""
        reason = ""
        if action == k.A_REQUEST:
            # Without a time ahead, whether it runs early or late is told by the vehicles of its line.
            ahead_s, behind_s = self._headways_s(row, trip) if timed_stop < 0 else (None, None)
            request = PriorityRequest(
                vehicle=vehicle, intersection=self._crossing_plan[crossing], group=str(self._crossing_group[crossing]),
                eta_s=values[k.U_EARLIEST_S], vehicle_class=report.vehicle_class or trip.vehicle_class,
                lateness_s=0.0 if timed_stop < 0 else values[k.U_LATENESS_S], occupancy=report.occupancy or 0.0,
                eta_window_s=values[k.U_WINDOW_S], headway_ahead_s=ahead_s, headway_behind_s=behind_s,
                distance_m=values[k.U_TO_LINE_M])
        elif action != k.A_NOT_DUE:
            reason = self._why_not(action, values, trip)
        tracked = self._tracked(row, _STATES[int(values[k.U_STATE])], values[k.U_ALONG_M],
                                int(self._vehicles[row, k.V_CROSSING]), reason or self._reason[row])
        return Step(tracked, request, releases, asked)

    def _headways_s(self, row: int, trip: Trip) -> tuple[float | None, float | None]:
        """The time to the vehicle ahead on the same path and of its line, and from the one behind
        (s; None: none followed), at the vehicle's speed (no less than :data:`HEADWAY_SPEED_M_S`)."""
        k = _kernels
        vehicles = self._vehicles[:len(self._names)]
        trip_path = self._kernel_paths()[8]
        same = (vehicles[:, k.V_STATE] == k.ON_PATH) & (trip_path[vehicles[:, k.V_TRIP].astype(np.int64)]
                                                        == self._path_index[id(trip.path)])
        same[row] = False
        if not same.any():
            return None, None
        gaps_m = vehicles[same, k.V_ALONG_M] - vehicles[row, k.V_ALONG_M]
        speed_m_s = max(float(vehicles[row, k.V_SPEED_M_S]), HEADWAY_SPEED_M_S)
        ahead, behind = gaps_m[gaps_m > 0.0], gaps_m[gaps_m <= 0.0]
        return (float(ahead.min()) / speed_m_s if ahead.size else None,
                float(-behind.max()) / speed_m_s if behind.size else None)

    def _why_not(self, action: int, values: list[float], trip: Trip) -> str:
        """Why no request is made at the vehicle's next crossing."""
        k = _kernels
        if action == k.A_LEAVE_STOP:
            return f"to leave stop {trip.path.stop_ids[int(values[k.U_STOP])]} before the stop line first"
        if action == k.A_DWELLING:
            return f"dwelling at stop {trip.path.stop_ids[int(values[k.U_STOP])]}"
        if action == k.A_NO_GROUP:
            plan_id = self._crossing_plan[int(values[k.U_CROSSING])]
            return (f"no signal group for its movement at intersection {plan_id}" if plan_id in self.plans.ids
                    else f"no signal plan for intersection {plan_id}: the engine does not drive it")
        if action == k.A_OFF_PATH:
            offset_m = values[k.U_OFFSET_M]
            return (f"{offset_m:.0f} m from its trip's path, more than {self.config.off_path_m:g} m"
                    if math.isfinite(offset_m) else "too far from where it last was on its trip's path")
        return "no signalised intersection ahead on its path"

    def _tracked(self, row: int, state: str, along_m: float, crossing: int, reason: str) -> Tracked:
        trip = self._trip_list[int(self._vehicles[row, _kernels.V_TRIP])]
        path = self._path_index[id(trip.path)]
        ahead = crossing < self._crossing_start[path + 1] and state != FINISHED
        at = int(self._vehicles[row, _kernels.V_REQUEST_AT])
        line_m = self._kernel_paths()[6]
        return Tracked(
            trip=trip.trip_id, state=state, along_m=along_m, lateness_s=self._lateness_s[row],
            next_intersection=self._crossing_plan[crossing] if ahead else None,
            group=self._crossing_group[crossing] if ahead else None,
            to_stop_line_m=float(line_m[crossing]) - along_m if ahead else None,
            request=self._request[row] if at == crossing and ahead else None, reason=reason)

    def _release(self, vehicle: str, crossing: int, state: Literal["checked_out", "cancelled"], reason: str, *,
                 in_row: bool = True) -> Release:
        """End the vehicle's request at ``crossing`` (in its row too, unless ``in_row`` is False)."""
        row = self._row[vehicle]
        self._request[row], self._reason[row] = None, ""
        if in_row:
            self._vehicles[row, _kernels.V_REQUEST_AT] = -1.0
            self._vehicles[row, _kernels.V_REQUESTED_S] = -math.inf
        return Release(vehicle, self._crossing_plan[crossing], self._crossing_group[crossing] or "", state, reason)

    # -- rows, paths and trips -------------------------------------------------------------------------

    def _new_row(self, vehicle: str, trip: Trip, time_s: float, row: int | None) -> int:
        """A fresh row for ``vehicle`` on ``trip`` (its own row again when it had one)."""
        if row is None:
            if self._free:
                row = self._free.pop()
            else:
                row = len(self._names)
                self._names.append(vehicle)
                self._request.append(None)
                self._reason.append("")
                self._lateness_s.append(None)
                self._timed_stop.append(-1)
                if row >= self._vehicles.shape[0]:
                    grown = np.zeros((self._vehicles.shape[0] * _GROWTH, _kernels.N_VEHICLE_FIELDS))
                    grown[:row] = self._vehicles
                    self._vehicles = grown
        self._row[vehicle] = row
        self._names[row] = vehicle
        self._request[row], self._reason[row], self._lateness_s[row], self._timed_stop[row] = None, "", None, -1
        state = self._vehicles[row]
        state[:] = 0.0
        state[_kernels.V_TRIP] = self._trip_index[id(trip)]
        state[_kernels.V_LOCATED_S] = -math.inf
        state[_kernels.V_TIME_S] = time_s
        state[_kernels.V_CROSSING] = self._crossing_start[self._path_index[id(trip.path)]]
        state[_kernels.V_REQUEST_AT] = -1.0
        state[_kernels.V_REQUESTED_S] = -math.inf
        return row

    def _pack(self, trip: Trip) -> None:
        """Add the trip, and its path when new, to what the kernel reads."""
        path = trip.path
        if id(path) not in self._path_index:
            self._path_index[id(path)] = len(self._path_parts)
            x, y = self.network.planar_m(self.network.node_lon[path.nodes], self.network.node_lat[path.nodes])
            # The speed limit of the edge each point starts (the last point: the last edge's).
            speed_m_s = self.network.speed_kph[np.append(path.edges, path.edges[-1])] / 3.6
            grouped = []
            for c in range(path.crossing_intersection.size):
                plan_id = int(self.network.intersections.ids[path.crossing_intersection[c]])
                group = self._group(plan_id, int(path.crossing_from_edge[c]), int(path.crossing_to_edge[c]))
                self._crossing_plan.append(plan_id)
                self._crossing_group.append(group)
                grouped.append(group is not None)
            self._crossing_start.append(self._crossing_start[-1] + path.crossing_intersection.size)
            self._path_parts.append((x, y, np.asarray(path.at_m, dtype=np.float64), speed_m_s,
                                     np.asarray(path.crossing_stop_line_m, dtype=np.float64),
                                     np.array(grouped, dtype=np.bool_)))
        if id(trip) not in self._trip_index:
            self._trip_index[id(trip)] = len(self._trip_list)
            self._trip_list.append(trip)
        self._packed = None

    def _kernel_paths(self) -> tuple[np.ndarray, ...]:
        """The kernel's arrays of paths and trips: path_ptr, point_x_m, point_y_m, point_at_m,
        point_speed_m_s, crossing_ptr, crossing_line_m, crossing_grouped, trip_path, stop_ptr,
        stop_at_m, stop_due_s."""
        if self._packed is None:
            parts = self._path_parts
            path_ptr = np.zeros(len(parts) + 1, dtype=np.int64)
            np.cumsum([part[0].size for part in parts], out=path_ptr[1:])
            trips = self._trip_list
            stop_ptr = np.zeros(len(trips) + 1, dtype=np.int64)
            np.cumsum([trip.path.stop_at_m.size for trip in trips], out=stop_ptr[1:])

            def joined(column: int, dtype: type = np.float64) -> np.ndarray:
                return np.ascontiguousarray(np.concatenate([part[column] for part in parts]) if parts
                                            else np.zeros(0), dtype=dtype)

            def stops(values: list[np.ndarray]) -> np.ndarray:
                return np.ascontiguousarray(np.concatenate(values) if values else np.zeros(0), dtype=np.float64)

            self._packed = (
                path_ptr, joined(0), joined(1), joined(2), joined(3), np.array(self._crossing_start, dtype=np.int64),
                joined(4), joined(5, np.bool_),
                np.array([self._path_index[id(trip.path)] for trip in trips], dtype=np.int64), stop_ptr,
                stops([trip.path.stop_at_m for trip in trips]), stops([trip.stop_times_s for trip in trips]))
        return self._packed

    def _group(self, plan_id: int, from_edge: int, to_edge: int) -> str | None:
        """The signal group of a movement at the intersection of plan ``plan_id``; None without a plan
        or a group."""
        try:
            plan = self.plans.plans[self.plans.index_of(plan_id)]
        except UnknownEntityError:
            return None
        return plan.movement_group(from_edge, to_edge)

    def _path_heading_deg(self, path: int, along_m: float) -> float:
        """The direction of path ``path`` at ``along_m`` along it (degrees clockwise from north)."""
        ptr, x_m, y_m, at_m = self._kernel_paths()[:4]
        first, last = int(ptr[path]), int(ptr[path + 1]) - 1
        s = min(max(first + int(np.searchsorted(at_m[first:last + 1], along_m, side="right")) - 1, first), last - 1)
        return math.degrees(math.atan2(x_m[s + 1] - x_m[s], y_m[s + 1] - y_m[s])) % 360.0


def _settings(config: TrackingConfig) -> np.ndarray:
    """The kernel's ``settings`` array."""
    k = _kernels
    settings = np.empty(k.N_TRACK_SETTINGS)
    settings[k.T_DETECTION_M] = config.detection_m
    settings[k.T_RENEW_EVERY_S] = config.renew_every_s
    settings[k.T_OFF_PATH_M] = config.off_path_m
    settings[k.T_BACK_TOLERANCE_M] = config.back_tolerance_m
    settings[k.T_MAX_SPEED_M_S] = config.max_speed_kph / 3.6
    settings[k.T_ACCELERATION_M_S2] = config.acceleration_m_s2
    settings[k.T_ETA_MARGIN_S] = config.eta_margin_s
    settings[k.T_STOP_ZONE_M] = config.stop_zone_m
    settings[k.T_DWELL_SPEED_M_S] = config.dwell_speed_m_s
    settings[k.T_MAX_ETA_S] = config.max_eta_s
    settings[k.T_END_M] = _END_M
    return settings
