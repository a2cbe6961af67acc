"""GTFS timetables on the road network: each trip's path, the signals it crosses, and its times.

This is the only module that imports partridge (which reads a feed's tables into pandas frames);
the rest of pilotage sees the plain structures built here.

- :func:`read_feed` reads a feed (a zip or a folder) into a :class:`Feed`.
- :func:`timetable` matches each shape once onto a :class:`~pilotage.core.RoadNetwork`
  (:mod:`pilotage.core.matching`), places each trip's stops along its path, and builds the
  :class:`~pilotage.core.transit.Trip` objects the engines follow, with stop times on the engine's
  clock. Buses (GTFS ``route_type`` 3, 11 and the extended 700s and 800) and trams (0 and the 900s)
  run on the road network; metro, rail, ferries and the like do not, and are left out (counted).
- Without a shape (a feed without ``shapes.txt``, or a trip without ``shape_id``), a trip's path
  is the shortest path (free-flow time) between its stops, each snapped to its nearest node; its
  path's ``source`` is ``"stops"`` and the report says so.
- :func:`check_report` (``pilotage gtfs check``) says, per shape, how well it matched and which
  signalised intersections it crosses with the signal group of each movement; :func:`check_geojson`
  and :func:`check_html` draw it.

Times: GTFS gives seconds from "noon minus 12 h" of the service day, in the agency's timezone
(more than 24 h for trips past midnight). With ``day_start_s``, a time on the engine's clock is
``day_start_s`` plus those seconds (simulations); otherwise the service day's noon minus 12 h, as
Unix epoch seconds, plus those seconds.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import os
import time
import warnings
import zipfile
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np

from pilotage.core import MAX_SNAP_DISTANCE_M, DataFileError, InvalidInputError, PilotageError, RoadNetwork
from pilotage.core.default_plans import default_plans
from pilotage.core.matching import MatchedPath, Matcher, MatchingConfig
from pilotage.core.signals import IntersectionPlan, SignalPlans
from pilotage.core.transit import TransitPath, Trip
from pilotage.routing.maps import render_html, road_segments

logger = logging.getLogger(__name__)

#: Files a feed must have; and one of :data:`CALENDAR_FILES` at least.
REQUIRED_FILES = ("agency.txt", "routes.txt", "trips.txt", "stop_times.txt", "stops.txt")
CALENDAR_FILES = ("calendar.txt", "calendar_dates.txt")
#: Columns each file must have (GTFS's required fields that pilotage reads).
REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "agency.txt": ("agency_timezone",),
    "routes.txt": ("route_id", "route_type"),
    "trips.txt": ("route_id", "service_id", "trip_id"),
    "stop_times.txt": ("trip_id", "stop_id", "stop_sequence", "arrival_time", "departure_time"),
    "stops.txt": ("stop_id", "stop_lat", "stop_lon"),
    "shapes.txt": ("shape_id", "shape_pt_lat", "shape_pt_lon", "shape_pt_sequence"),
    "calendar.txt": ("service_id", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday",
                     "start_date", "end_date"),
    "calendar_dates.txt": ("service_id", "date", "exception_type"),
}

#: The vehicle class of each GTFS route type that runs on the road network: the basic types (0 tram,
#: 3 bus, 11 trolleybus) and the extended ones (700-716 bus services, 800 trolleybus, 900-906 tram).
VEHICLE_CLASS_OF_ROUTE_TYPE: dict[int, str] = {
    0: "tram", 3: "bus", 11: "bus", 800: "bus",
    **{route_type: "bus" for route_type in range(700, 717)},
    **{route_type: "tram" for route_type in range(900, 907)},
}
#: Names of the basic route types, for the reasons trips are left out.
ROUTE_TYPE_NAMES: dict[int, str] = {0: "tram", 1: "metro", 2: "rail", 3: "bus", 4: "ferry", 5: "cable tram",
                                    6: "aerial lift", 7: "funicular", 11: "trolleybus", 12: "monorail"}

#: A stop farther than this (m) from its trip's path is counted in the report (``stops_off_path``).
STOP_OFF_PATH_M = 50.0

_DAY_S = 86_400.0
_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


# -- the feed ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FeedRoute:
    """A GTFS route (a line): its id, names and ``route_type``."""

    route_id: str
    short_name: str
    long_name: str
    route_type: int

    @property
    def name(self) -> str:
        """The name people use: the short name, else the long one, else the id."""
        return self.short_name or self.long_name or self.route_id


@dataclass(frozen=True, eq=False)
class FeedTrip:
    """A GTFS trip: its route, service and shape (``""``: none), and its stop times in order.

    Attributes:
        stop_ids: the stops served, in ``stop_sequence`` order.
        arrival_s, departure_s: (S,) seconds from the service day's noon minus 12 h; NaN where the
            feed gives none.
    """

    trip_id: str
    route_id: str
    service_id: str
    shape_id: str
    stop_ids: tuple[str, ...]
    arrival_s: np.ndarray
    departure_s: np.ndarray


@dataclass(frozen=True)
class Service:
    """When a GTFS service runs: its weekly calendar (if any) and its exceptions.

    Attributes:
        weekdays: (7,) runs on Monday ... Sunday, between ``start_date`` and ``end_date``.
        start_date, end_date: the calendar's range, both included; None without ``calendar.txt`` row.
        added, removed: ``calendar_dates.txt`` exceptions (type 1 and 2).
    """

    service_id: str
    weekdays: tuple[bool, ...] = (False,) * 7
    start_date: dt.date | None = None
    end_date: dt.date | None = None
    added: frozenset[dt.date] = frozenset()
    removed: frozenset[dt.date] = frozenset()

    def runs_on(self, day: dt.date) -> bool:
        """Whether the service runs on ``day``."""
        if day in self.removed:
            return False
        if day in self.added:
            return True
        return (self.start_date is not None and self.end_date is not None
                and self.start_date <= day <= self.end_date and self.weekdays[day.weekday()])

    def dates(self) -> set[dt.date]:
        """Every day the service runs."""
        days = set(self.added)
        if self.start_date is not None and self.end_date is not None:
            for ordinal in range(self.start_date.toordinal(), self.end_date.toordinal() + 1):
                day = dt.date.fromordinal(ordinal)
                if self.weekdays[day.weekday()]:
                    days.add(day)
        return days - self.removed


@dataclass(frozen=True, eq=False)
class Feed:
    """A GTFS feed, read by :func:`read_feed`.

    Attributes:
        source: the file or folder it was read from.
        timezone: the agency's timezone (IANA name), in which its service days run.
        routes, stops, services: by id; ``stops`` gives (lon, lat) in degrees.
        trips: every trip with stop times, in the feed's order.
        shapes: by ``shape_id``: (lon, lat) arrays of its points in ``shape_pt_sequence`` order.
        stop_names: by stop id.
    """

    source: str
    timezone: str
    routes: Mapping[str, FeedRoute]
    trips: tuple[FeedTrip, ...]
    stops: Mapping[str, tuple[float, float]]
    stop_names: Mapping[str, str]
    shapes: Mapping[str, tuple[np.ndarray, np.ndarray]]
    services: Mapping[str, Service]

    def services_on(self, day: dt.date) -> frozenset[str]:
        """The ids of the services that run on ``day``."""
        return frozenset(service_id for service_id, service in self.services.items() if service.runs_on(day))

    def service_dates(self) -> tuple[dt.date, ...]:
        """Every day some service runs, in order."""
        days: set[dt.date] = set()
        for service in self.services.values():
            days |= service.dates()
        return tuple(sorted(days))

    def day_start_epoch_s(self, day: dt.date) -> float:
        """Unix time (s) of ``day``'s noon minus 12 h in the feed's timezone: the origin of GTFS times
        that day (midnight, but on the days clocks change)."""
        noon = dt.datetime.combine(day, dt.time(12), tzinfo=ZoneInfo(self.timezone))
        return noon.timestamp() - _DAY_S / 2


def read_feed(path: str | os.PathLike[str]) -> Feed:
    """Read a GTFS feed: a zip file, or a folder of its ``.txt`` files.

    Raises:
        DataFileError: the path is missing or neither a zip nor a folder; a required file or column
            is missing; a value cannot be read (a time, a date, a coordinate); or the agency's
            timezone is unknown.
    """
    # partridge loads pandas and networkx: a second, and only feeds need them.
    import partridge  # type: ignore[import-untyped]  # noqa: PLC0415

    path = Path(path)
    names = _feed_files(path)
    missing = [name for name in REQUIRED_FILES if name not in names]
    if not any(name in names for name in CALENDAR_FILES):
        missing.append(" or ".join(CALENDAR_FILES))
    if missing:
        raise DataFileError(f"{path} is not a complete GTFS feed: expected {', '.join(REQUIRED_FILES)} and "
                            f"{' or '.join(CALENDAR_FILES)}, but {', '.join(missing)} missing; give the feed's zip "
                            "file or the folder of its .txt files")
    try:
        with warnings.catch_warnings():
            # partridge 1.1.2 renames columns with a keyword pandas 3 deprecates: noise to its users.
            warnings.filterwarnings("ignore", message="The inplace keyword in DataFrame.rename is deprecated")
            loaded = partridge.load_feed(str(path))
            tables = {name: loaded.get(name) for name in (*REQUIRED_FILES, *CALENDAR_FILES, "shapes.txt")}
        for name, columns in REQUIRED_COLUMNS.items():
            absent = [column for column in columns if column not in tables[name].columns]
            if absent and (name in REQUIRED_FILES or name in names):
                raise DataFileError(f"{path}: {name} has no column {', '.join(absent)}; a GTFS {name} needs "
                                    f"{', '.join(columns)}")
        feed = _build_feed(str(path), tables)
    except DataFileError:
        raise
    except Exception as exc:
        # partridge and pandas raise many kinds of errors on malformed tables; all mean the same here.
        raise DataFileError(f"cannot read the GTFS feed {path}: {type(exc).__name__}: {exc}; check its tables "
                            "against the GTFS reference (times as H:MM:SS, dates as YYYYMMDD)") from exc
    logger.info("read %s: %d routes, %d trips, %d stops, %d shapes, %d services", path.name, len(feed.routes),
                len(feed.trips), len(feed.stops), len(feed.shapes), len(feed.services))
    return feed


def _feed_files(path: Path) -> set[str]:
    """The base names of the files in a feed's zip or folder (partridge finds them in subfolders too).

    Raises:
        DataFileError: the path is missing, or neither a folder nor a zip file.
    """
    if path.is_dir():
        return {item.name for item in path.rglob("*") if item.is_file()}
    if not path.is_file():
        raise DataFileError(f"no GTFS feed at {path}; give the feed's zip file or the folder of its .txt files")
    try:
        with zipfile.ZipFile(path) as archive:
            return {Path(name).name for name in archive.namelist() if not name.endswith("/")}
    except (zipfile.BadZipFile, OSError) as exc:
        raise DataFileError(f"{path} is not a GTFS feed: not a zip file ({exc}); give the feed's zip file or the "
                            "folder of its .txt files") from exc


def _text(value: object) -> str:
    """A cell as text: empty for a missing value (NaN)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value)


def _date(value: object) -> dt.date:
    """A GTFS date: partridge gives dates, or text YYYYMMDD where it converted nothing."""
    if isinstance(value, dt.date):
        return value
    return dt.datetime.strptime(str(value).strip(), "%Y%m%d").date()


def _build_feed(source: str, tables: Mapping[str, Any]) -> Feed:
    """The feed's plain structures from partridge's frames.

    Raises:
        DataFileError: an unknown timezone, or coordinates that are not numbers.
    """
    agency = tables["agency.txt"]
    timezone = _text(agency["agency_timezone"].iloc[0]) if len(agency) else ""
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise DataFileError(f"{source}: agency.txt gives the timezone {timezone!r}, which is not known; expected an "
                            "IANA name such as Europe/Rome") from exc

    routes_frame = tables["routes.txt"]
    routes = {}
    for row in routes_frame.to_dict("records"):
        route_id = _text(row["route_id"])
        routes[route_id] = FeedRoute(route_id, _text(row.get("route_short_name")), _text(row.get("route_long_name")),
                                     int(row["route_type"]))

    stops_frame = tables["stops.txt"]
    stop_lon = np.asarray(stops_frame["stop_lon"], dtype=np.float64)
    stop_lat = np.asarray(stops_frame["stop_lat"], dtype=np.float64)
    stop_ids = [_text(value) for value in stops_frame["stop_id"]]
    names = stops_frame["stop_name"] if "stop_name" in stops_frame.columns else [""] * len(stop_ids)
    stops = {stop: (float(x), float(y)) for stop, x, y in zip(stop_ids, stop_lon, stop_lat, strict=True)
             if math.isfinite(x) and math.isfinite(y)}
    stop_names = {stop: _text(name) for stop, name in zip(stop_ids, names, strict=True)}

    shapes: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    shapes_frame = tables["shapes.txt"]
    if len(shapes_frame):
        ordered = shapes_frame.sort_values(["shape_id", "shape_pt_sequence"], kind="stable")
        shape_ids = ordered["shape_id"].to_numpy().astype(str)
        lon = np.asarray(ordered["shape_pt_lon"], dtype=np.float64)
        lat = np.asarray(ordered["shape_pt_lat"], dtype=np.float64)
        firsts = np.flatnonzero(np.concatenate(([True], shape_ids[1:] != shape_ids[:-1])))
        for a, b in zip(firsts.tolist(), [*firsts[1:].tolist(), shape_ids.size], strict=True):
            finite = np.isfinite(lon[a:b]) & np.isfinite(lat[a:b])
            if finite.any():
                shapes[str(shape_ids[a])] = (lon[a:b][finite], lat[a:b][finite])

    services: dict[str, Service] = {}
    for row in tables["calendar.txt"].to_dict("records"):
        service_id = _text(row["service_id"])
        weekdays = tuple(int(float(row[day])) == 1 for day in _WEEKDAYS)
        services[service_id] = Service(service_id, weekdays, _date(row["start_date"]), _date(row["end_date"]))
    exceptions: dict[str, tuple[set[dt.date], set[dt.date]]] = defaultdict(lambda: (set(), set()))
    for row in tables["calendar_dates.txt"].to_dict("records"):
        kind = int(float(row["exception_type"]))
        if kind in (1, 2):
            exceptions[_text(row["service_id"])][kind - 1].add(_date(row["date"]))
    for service_id, (added, removed) in exceptions.items():
        base = services.get(service_id, Service(service_id))
        services[service_id] = Service(service_id, base.weekdays, base.start_date, base.end_date,
                                       frozenset(added), frozenset(removed))

    return Feed(source=source, timezone=timezone, routes=routes, trips=_trips(tables), stops=stops,
                stop_names=stop_names, shapes=shapes, services=services)


def _trips(tables: Mapping[str, Any]) -> tuple[FeedTrip, ...]:
    """Each trip with its stop times in ``stop_sequence`` order; trips without stop times are left out."""
    times = tables["stop_times.txt"].sort_values(["trip_id", "stop_sequence"], kind="stable")
    trip_of_time = times["trip_id"].to_numpy().astype(str)
    stop_of_time = times["stop_id"].to_numpy().astype(str)
    arrival_s = np.asarray(times["arrival_time"], dtype=np.float64)
    departure_s = np.asarray(times["departure_time"], dtype=np.float64)
    firsts = np.flatnonzero(np.concatenate(([True], trip_of_time[1:] != trip_of_time[:-1]))) if trip_of_time.size \
        else np.empty(0, dtype=np.int64)
    bounds = dict(zip(trip_of_time[firsts].tolist(), zip(firsts.tolist(), [*firsts[1:].tolist(), trip_of_time.size],
                                                          strict=True), strict=True))
    trips_frame = tables["trips.txt"]
    shape_column = trips_frame["shape_id"] if "shape_id" in trips_frame.columns else [""] * len(trips_frame)
    trips = []
    for trip_id, route_id, service_id, shape_id in zip(trips_frame["trip_id"], trips_frame["route_id"],
                                                       trips_frame["service_id"], shape_column, strict=True):
        span = bounds.get(_text(trip_id))
        if span is None:
            continue
        a, b = span
        trips.append(FeedTrip(_text(trip_id), _text(route_id), _text(service_id), _text(shape_id),
                              tuple(stop_of_time[a:b].tolist()), arrival_s[a:b], departure_s[a:b]))
    return tuple(trips)


# -- the timetable -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Crossing:
    """A signalised intersection a path crosses, and the movement through it.

    Attributes:
        intersection_id: its id in the network (:class:`~pilotage.core.SignalisedIntersections`).
        lon, lat: its centre (degrees).
        from_edge, to_edge: the edges the path comes in on and leaves by (-1: it ends inside).
        stop_line_m: distance along the path of the stop line (the end of ``from_edge``).
        group: the signal group of that movement in the plans (None where the plan names none,
            or there is no plan).
    """

    intersection_id: int
    lon: float
    lat: float
    from_edge: int
    to_edge: int
    stop_line_m: float
    group: str | None


@dataclass(frozen=True, eq=False)
class PathMatch:
    """One path of the timetable: a GTFS shape matched onto the network (or, without a shape, the
    shortest paths between one stop pattern's stops), with the trips that run on it.

    Attributes:
        key: the shape's id, or ``stops:<route>:<n>`` for a path made from stops.
        shape_id: the GTFS ``shape_id`` (``""`` for a path made from stops).
        route_ids: the routes whose trips run on it.
        vehicle_class: ``"bus"`` or ``"tram"``.
        source: ``"shape"`` or ``"stops"`` (:class:`~pilotage.core.transit.TransitPath`).
        trips: how many trips of the timetable's day run on it (matched or not).
        trips_on_path: how many of them are in the timetable: a shape's trips when it matched
            without a break and their stops lie along the path (see ``_Builder.on_shape``); a path
            from stops' trips when every stop snapped.
        matched: whether the shape matched end to end (:attr:`MatchedPath.matched`; a path from
            stops: whether every stop snapped to the network).
        reason: why not, when not.
        match: the matching's figures (points, breaks, distances); for a path from stops, its stops
            as points, each matched when snapped.
        edges: the path (edge indices), possibly empty; joined across breaks when not matched.
        crossings: the signalised intersections the path crosses, in order.
        polyline: the shape's (or stops') (lon, lat) arrays, for maps.
        stops_off_path: stops too far from the path (see ``_Builder.on_shape``), over the stop
            patterns of its trips.
    """

    key: str
    shape_id: str
    route_ids: tuple[str, ...]
    vehicle_class: str
    source: str
    trips: int
    trips_on_path: int
    matched: bool
    reason: str
    match: MatchedPath
    edges: np.ndarray
    crossings: tuple[Crossing, ...]
    polyline: tuple[np.ndarray, np.ndarray]
    stops_off_path: int = 0


@dataclass(frozen=True, eq=False)
class Timetable:
    """The trips of a feed on a road network, ready for the engines.

    Attributes:
        trips: the bus and tram trips with a path, in the feed's order.
        paths: one per shape (or stop pattern without a shape) with trips on the day.
        left_out: trips of the day without a path, counted by reason.
        service_date: the day (None: every trip of the feed).
        day_start_s: the service day's origin on the engine's clock (s).
        plans_note: why signal groups are unknown, when default plans could not be built.
        match_time_s: time spent matching shapes (s).
    """

    trips: tuple[Trip, ...]
    paths: tuple[PathMatch, ...]
    left_out: Mapping[str, int]
    service_date: dt.date | None
    day_start_s: float
    plans_note: str = ""
    match_time_s: float = 0.0


def timetable(feed: Feed, network: RoadNetwork, *, service_date: dt.date | None = None,
              day_start_s: float | None = None, plans: SignalPlans | Sequence[IntersectionPlan] | None = None,
              config: MatchingConfig | None = None) -> Timetable:
    """The bus and tram trips of ``feed`` on ``network``.

    Each shape is matched once (:class:`~pilotage.core.matching.Matcher`); a trip runs on its
    shape's path when the shape matched without a break and the trip's stops lie along the path
    (its termini may be off the roads, in a bus station), its stops placed along it in order
    (:meth:`~pilotage.core.matching.Matcher.locate`); other trips are left out, counted by reason.
    Trips without a shape run on the shortest paths between their stops. Stop times (arrival, else
    departure) go onto the engine's clock: ``day_start_s`` plus GTFS seconds when given, else the
    epoch seconds of ``service_date``'s noon minus 12 h in the feed's timezone plus GTFS seconds (0
    plus GTFS seconds when neither is given).

    Args:
        service_date: keep the trips that run that day (calendar and exceptions); None: every trip.
        plans: signal plans naming the group of each movement crossed (by intersection id); None:
            the network's default plans (:func:`~pilotage.core.default_plans.default_plans`).
        config: the matching's parameters.

    Raises:
        InvalidInputError: a ``day_start_s`` that is not finite.
        DataFileError: a trip stops at a stop that stops.txt does not give coordinates for.
    """
    if day_start_s is not None and not math.isfinite(day_start_s):
        raise InvalidInputError(f"expected day_start_s to be a finite number of seconds, got {day_start_s!r}",
                                field="day_start_s")
    if day_start_s is None:
        day_start_s = feed.day_start_epoch_s(service_date) if service_date is not None else 0.0
    plan_of_id, plans_note = _plans_by_id(network, plans)
    running = feed.services_on(service_date) if service_date is not None else None
    left_out: Counter[str] = Counter()
    by_path: dict[tuple[str, str], list[FeedTrip]] = defaultdict(list)
    for trip in feed.trips:
        if running is not None and trip.service_id not in running:
            continue
        route = feed.routes.get(trip.route_id)
        if route is None:
            left_out[f"route {trip.route_id} not in routes.txt"] += 1
            continue
        vehicle_class = VEHICLE_CLASS_OF_ROUTE_TYPE.get(route.route_type)
        if vehicle_class is None:
            name = ROUTE_TYPE_NAMES.get(route.route_type, "not bus or tram")
            left_out[f"route_type {route.route_type} ({name}): not on the road network"] += 1
            continue
        shape_id = trip.shape_id if trip.shape_id in feed.shapes else ""
        by_path[(shape_id, vehicle_class)].append(trip)

    matcher = Matcher(network, config)
    builder = _Builder(feed, network, matcher, plan_of_id, day_start_s)
    started = time.perf_counter()
    for (shape_id, vehicle_class), path_trips in by_path.items():
        if shape_id:
            builder.on_shape(shape_id, vehicle_class, path_trips)
        else:
            builder.on_stops(vehicle_class, path_trips)
    for reason, count in builder.left_out.items():
        left_out[reason] += count
    order = {trip.trip_id: k for k, trip in enumerate(feed.trips)}
    trips = tuple(sorted(builder.trips, key=lambda trip: order[trip.trip_id]))
    built = Timetable(trips=trips, paths=tuple(builder.paths), left_out=dict(left_out),
                      service_date=service_date, day_start_s=float(day_start_s), plans_note=plans_note,
                      match_time_s=time.perf_counter() - started)
    logger.info("timetable: %d trips on %d paths, %d left out", len(built.trips), len(built.paths),
                sum(left_out.values()))
    return built


def _plans_by_id(network: RoadNetwork, plans: SignalPlans | Sequence[IntersectionPlan] | None) -> tuple[
        dict[int | str, IntersectionPlan], str]:
    """The plans by intersection id, and why there are none when the default plans cannot be built."""
    if isinstance(plans, SignalPlans):
        return {plan.id: plan for plan in plans.plans}, ""
    if plans is not None:
        return {plan.id: plan for plan in plans}, ""
    try:
        return {plan.id: plan for plan in default_plans(network)}, ""
    except PilotageError as exc:
        note = f"no signal groups: the default plans of the network could not be built ({exc})"
        logger.warning("%s", note)
        return {}, note


def _stops_on_path(distance_m: np.ndarray, terminus_m: float) -> np.ndarray:
    """Whether each stop of a trip, at ``distance_m`` from its path, lies along it: within
    :data:`STOP_OFF_PATH_M`; but the stops before the first one that does and after the last (a
    terminus inside a bus station, off the roads) may be as far as ``terminus_m``."""
    near = distance_m <= STOP_OFF_PATH_M
    if not near.any():
        return near
    first, last = int(np.argmax(near)), distance_m.size - 1 - int(np.argmax(near[::-1]))
    ends = np.ones(distance_m.size, dtype=np.bool_)
    ends[first:last + 1] = False
    on_path: np.ndarray = near | (ends & (distance_m <= terminus_m))
    return on_path


class _Builder:
    """Builds the paths and trips of a timetable, one shape (or stop pattern) at a time."""

    def __init__(self, feed: Feed, network: RoadNetwork, matcher: Matcher,
                 plan_of_id: Mapping[int | str, IntersectionPlan], day_start_s: float) -> None:
        self.feed = feed
        self.network = network
        self.matcher = matcher
        self.plan_of_id = plan_of_id
        self.day_start_s = day_start_s
        self.trips: list[Trip] = []
        self.paths: list[PathMatch] = []
        self.left_out: Counter[str] = Counter()
        self._stops_paths = 0

    def on_shape(self, shape_id: str, vehicle_class: str, trips: list[FeedTrip]) -> None:
        """Match a shape, and put on its path each trip whose stops it covers.

        A trip runs end to end on its shape's path when the shape matched without a break, and its
        stops lie along the path (:func:`_stops_on_path`). So a shape whose ends run off the roads (a
        loop inside a bus station) still serves its trips.
        """
        lon, lat = self.feed.shapes[shape_id]
        match = self.matcher.match(lon, lat)
        on_path = 0
        off_path = 0
        if match.breaks == 0 and match.edges.size:
            patterns: dict[tuple[str, ...], TransitPath | None] = {}
            for trip in trips:
                if trip.stop_ids not in patterns:
                    stop_lon, stop_lat = self._stop_points(trip)
                    at_m, distance_m = self.matcher.locate(match.edges, stop_lon, stop_lat)
                    far = int((~_stops_on_path(distance_m, self.matcher.config.max_gap_m)).sum())
                    off_path += far
                    patterns[trip.stop_ids] = None if far else TransitPath.on(
                        self.network, match.edges, stop_ids=trip.stop_ids, stop_at_m=at_m, source="shape")
                path = patterns[trip.stop_ids]
                if path is None:
                    self.left_out["stops off their shape's path"] += 1
                else:
                    self._add_trip(trip, vehicle_class, path, shape_id)
                    on_path += 1
        else:
            self.left_out["shape not matched end to end"] += len(trips)
        self.paths.append(self._path(shape_id, trips, match, shape_id=shape_id, vehicle_class=vehicle_class,
                                     source="shape", polyline=(lon, lat), off_path=off_path, on_path=on_path))

    def on_stops(self, vehicle_class: str, trips: list[FeedTrip]) -> None:
        """Trips without a shape: one path per stop pattern, the shortest paths between its stops."""
        patterns: dict[tuple[str, tuple[str, ...]], list[FeedTrip]] = defaultdict(list)
        for trip in trips:
            patterns[(trip.route_id, trip.stop_ids)].append(trip)
        for (route_id, stop_ids), pattern_trips in patterns.items():
            self._stops_paths += 1
            lon, lat = self._stop_points(pattern_trips[0])
            match, stop_at_m, off_path = self._stops_path(stop_ids, lon, lat)
            if match.matched:
                path = TransitPath.on(self.network, match.edges, stop_ids=stop_ids, stop_at_m=stop_at_m,
                                      source="stops")
                for trip in pattern_trips:
                    self._add_trip(trip, vehicle_class, path, "")
            else:
                self.left_out["no path between the stops"] += len(pattern_trips)
            self.paths.append(self._path(f"stops:{route_id}:{self._stops_paths}", pattern_trips, match, shape_id="",
                                         vehicle_class=vehicle_class, source="stops", polyline=(lon, lat),
                                         off_path=off_path, on_path=len(pattern_trips) if match.matched else 0))

    def _stops_path(self, stop_ids: tuple[str, ...], lon: np.ndarray, lat: np.ndarray) -> tuple[MatchedPath,
                                                                                                   np.ndarray, int]:
        """The shortest paths (free-flow time) between consecutive stops snapped to their nearest nodes,
        as a match of the stops (each matched when snapped); each stop's distance along it; and how
        many stops are farther than :data:`STOP_OFF_PATH_M` from their node."""
        nodes, distance_m = self.network.nearest_nodes(lon, lat)
        far = np.flatnonzero(distance_m > MAX_SNAP_DISTANCE_M)
        pieces = [] if far.size else [
            # Free-flow time on every road a bus may take, restricted ones included.
            self.network.shortest_path(int(a), int(b), weight=self.network.travel_time_s).edges
            if a != b else np.empty(0, dtype=np.int64)
            for a, b in zip(nodes[:-1].tolist(), nodes[1:].tolist(), strict=True)]
        edges = np.concatenate(pieces) if pieces else np.empty(0, dtype=np.int64)
        reason = ""
        if far.size:
            reason = (f"{far.size} stops farther than {MAX_SNAP_DISTANCE_M:g} m from the network (stop "
                      f"{stop_ids[int(far[0])]}: {distance_m[far[0]]:.0f} m)")
        elif edges.size == 0:
            reason = "every stop snaps to one node of the network"
        # Each stop is at its node: after the pieces before it.
        at_node_m = np.concatenate(([0.0], np.cumsum(self.network.length_m[edges])))
        stop_at_m = at_node_m[np.concatenate(([0], np.cumsum([piece.size for piece in pieces])))] if pieces \
            else np.zeros(lon.size)
        match = MatchedPath(edges=edges, points=lon.size, points_matched=lon.size - far.size, breaks=0,
                            break_at_m=np.empty(0), max_distance_m=float(distance_m.max()),
                            mean_distance_m=float(distance_m.mean()), polyline_length_m=float(at_node_m[-1]),
                            unmatched_head_m=0.0, unmatched_tail_m=0.0, matched=not reason, reason=reason)
        return match, stop_at_m, int((distance_m > STOP_OFF_PATH_M).sum())

    def _stop_points(self, trip: FeedTrip) -> tuple[np.ndarray, np.ndarray]:
        """The (lon, lat) of a trip's stops; a stop missing from stops.txt is a data error."""
        try:
            points = [self.feed.stops[stop] for stop in trip.stop_ids]
        except KeyError as exc:
            raise DataFileError(f"{self.feed.source}: trip {trip.trip_id} stops at {exc.args[0]!r}, which stops.txt "
                                "does not list with coordinates") from None
        lon, lat = (np.array(column, dtype=np.float64) for column in zip(*points, strict=True))
        return lon, lat

    def _add_trip(self, trip: FeedTrip, vehicle_class: str, path: TransitPath, shape_id: str) -> None:
        times_s = np.where(np.isnan(trip.arrival_s), trip.departure_s, trip.arrival_s) + self.day_start_s
        self.trips.append(Trip(trip_id=trip.trip_id, route_id=trip.route_id, vehicle_class=vehicle_class, path=path,
                               stop_times_s=times_s, shape_id=shape_id))

    def _path(self, key: str, trips: list[FeedTrip], match: MatchedPath, *, shape_id: str, vehicle_class: str,
              source: str, polyline: tuple[np.ndarray, np.ndarray], off_path: int, on_path: int) -> PathMatch:
        crossings: tuple[Crossing, ...] = ()
        if match.edges.size:
            crossings = self._crossings(TransitPath.on(self.network, match.edges, source=source))
        return PathMatch(key=key, shape_id=shape_id, route_ids=tuple(sorted({trip.route_id for trip in trips})),
                         vehicle_class=vehicle_class, source=source, trips=len(trips), matched=match.matched,
                         reason=match.reason, trips_on_path=on_path,
                         match=match, edges=match.edges, crossings=crossings, polyline=polyline,
                         stops_off_path=off_path)

    def _crossings(self, path: TransitPath) -> tuple[Crossing, ...]:
        intersections = self.network.intersections
        crossings = []
        for k, a, b, at_m in zip(path.crossing_intersection.tolist(), path.crossing_from_edge.tolist(),
                                 path.crossing_to_edge.tolist(), path.crossing_stop_line_m.tolist(), strict=True):
            intersection_id = int(intersections.ids[k])
            plan = self.plan_of_id.get(intersection_id)
            crossings.append(Crossing(intersection_id=intersection_id, lon=float(intersections.lon[k]),
                                      lat=float(intersections.lat[k]), from_edge=a, to_edge=b, stop_line_m=at_m,
                                      group=None if plan is None else plan.movement_group(a, b)))
        return tuple(crossings)


# -- the check report --------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class CheckReport:
    """How a feed's bus and tram trips match onto a network (``pilotage gtfs check``).

    Read it with :meth:`to_dict` (JSON), :func:`format_check` (text), :func:`check_geojson` and
    :func:`check_html` (maps).
    """

    feed: Feed
    network: RoadNetwork
    timetable: Timetable

    def totals(self) -> dict[str, Any]:
        """Trips (bus and tram, of the day when one is given), how many matched end to end, on paths
        from stops, left out, and the signalised intersections per trip (min, median, max)."""
        paths = self.timetable.paths
        transit_trips = sum(path.trips for path in paths)
        matched = sum(path.trips_on_path for path in paths if path.source == "shape")
        from_stops = sum(path.trips_on_path for path in paths if path.source == "stops")
        crossings = np.repeat([len(path.crossings) for path in paths], [path.trips_on_path for path in paths])
        shapes = [path for path in paths if path.source == "shape"]
        return {
            "trips": transit_trips,
            "trips_matched": matched,
            "trips_matched_pct": round(100.0 * matched / transit_trips, 2) if transit_trips else None,
            "trips_on_paths_from_stops": from_stops,
            "trips_left_out": dict(self.timetable.left_out),
            "shapes": len(shapes),
            "shapes_matched": sum(path.matched for path in shapes),
            "intersections_per_trip": ({"min": int(crossings.min()), "median": float(np.median(crossings)),
                                        "max": int(crossings.max())} if crossings.size else None),
            "match_time_s": round(self.timetable.match_time_s, 3),
        }

    def to_dict(self) -> dict[str, Any]:
        """The report as plain JSON-ready values: the feed, the network, the totals, one entry per path."""
        routes = self.feed.routes
        return {
            "feed": self.feed.source,
            "service_date": None if self.timetable.service_date is None else self.timetable.service_date.isoformat(),
            "network": {"nodes": self.network.n_nodes, "edges": self.network.n_edges,
                        "signalised_intersections": len(self.network.intersections)},
            "signal_groups": self.timetable.plans_note or "from the plans",
            "totals": self.totals(),
            "paths": [{
                "key": path.key, "shape_id": path.shape_id, "routes": [routes[r].name for r in path.route_ids],
                "route_ids": list(path.route_ids), "vehicle_class": path.vehicle_class, "source": path.source,
                "trips": path.trips, "trips_on_path": path.trips_on_path, "matched": path.matched,
                "reason": path.reason, "unmatched_head_m": _rounded(path.match.unmatched_head_m),
                "unmatched_tail_m": _rounded(path.match.unmatched_tail_m),
                "points": path.match.points, "points_matched": path.match.points_matched,
                "breaks": path.match.breaks, "max_distance_m": _rounded(path.match.max_distance_m),
                "mean_distance_m": _rounded(path.match.mean_distance_m),
                "length_m": _rounded(float(self.network.length_m[path.edges].sum())),
                "stops_off_path": path.stops_off_path,
                "intersections": [{"id": c.intersection_id, "lon": c.lon, "lat": c.lat, "from_edge": c.from_edge,
                                   "to_edge": c.to_edge, "stop_line_m": _rounded(c.stop_line_m), "group": c.group}
                                  for c in path.crossings],
            } for path in self.timetable.paths],
        }


def check_feed(feed: Feed, network: RoadNetwork, *, service_date: dt.date | None = None,
               plans: SignalPlans | Sequence[IntersectionPlan] | None = None,
               config: MatchingConfig | None = None) -> CheckReport:
    """The check report of ``feed`` on ``network``: :func:`timetable`, reported (``pilotage gtfs check``)."""
    return CheckReport(feed=feed, network=network,
                       timetable=timetable(feed, network, service_date=service_date, plans=plans, config=config))


def format_check(report: CheckReport) -> str:
    """The report as text for a terminal: one line per path, then the totals."""
    routes = report.feed.routes
    lines = []
    for path in report.timetable.paths:
        names = ",".join(routes[r].name for r in path.route_ids)
        state = "matched end to end" if path.matched else f"not matched end to end: {path.reason}"
        groups = sum(crossing.group is not None for crossing in path.crossings)
        lines.append(f"{path.vehicle_class} {names} {path.source} {path.key}: {path.trips_on_path} of {path.trips} "
                     f"trips on the path, {state}; points "
                     f"{path.match.points_matched}/{path.match.points}, distance max {path.match.max_distance_m:.1f} m "
                     f"mean {path.match.mean_distance_m:.1f} m; {len(path.crossings)} signalised intersections "
                     f"({groups} with a signal group)")
    totals = report.totals()
    per_trip = totals["intersections_per_trip"]
    lines.append(f"trips matched from their first stop to their last: {totals['trips_matched']} of {totals['trips']} "
                 "bus and tram trips "
                 f"({totals['trips_matched_pct']}%); on paths from stops: {totals['trips_on_paths_from_stops']}; "
                 f"shapes matched: {totals['shapes_matched']} of {totals['shapes']}")
    if per_trip is not None:
        lines.append(f"signalised intersections per trip: min {per_trip['min']}, median {per_trip['median']:g}, "
                     f"max {per_trip['max']}")
    lines.extend(f"left out: {count} trips, {reason}" for reason, count in totals["trips_left_out"].items())
    if report.timetable.plans_note:
        lines.append(report.timetable.plans_note)
    return "\n".join(lines)


def check_geojson(report: CheckReport) -> dict[str, Any]:
    """The report as a GeoJSON FeatureCollection: each path on the network and its GTFS shape as
    LineStrings (``kind`` "path" and "shape", with their routes), each crossed signalised
    intersection as a Point (``kind`` "intersection", with the movement's signal group)."""
    network, routes = report.network, report.feed.routes
    features: list[dict[str, Any]] = []
    for path in report.timetable.paths:
        names = [routes[r].name for r in path.route_ids]
        common = {"key": path.key, "routes": names, "vehicle_class": path.vehicle_class, "source": path.source}
        lon, lat = path.polyline
        features.append(_feature("LineString", [[x, y] for x, y in zip(lon.tolist(), lat.tolist(), strict=True)],
                                 {"kind": "shape", **common}))
        if path.edges.size:
            nodes = np.concatenate(([network.edge_source[path.edges[0]]], network.indices[path.edges]))
            coordinates = [[x, y] for x, y in zip(network.node_lon[nodes].tolist(), network.node_lat[nodes].tolist(),
                                                  strict=True)]
            features.append(_feature("LineString", coordinates,
                                     {"kind": "path", **common, "trips": path.trips, "matched": path.matched,
                                      "reason": path.reason, "intersections": len(path.crossings),
                                      "length_m": _rounded(float(network.length_m[path.edges].sum()))}))
        features.extend(_feature("Point", [crossing.lon, crossing.lat],
                                 {"kind": "intersection", **common, "intersection_id": crossing.intersection_id,
                                  "group": crossing.group, "from_edge": crossing.from_edge,
                                  "to_edge": crossing.to_edge})
                        for crossing in path.crossings)
    return {"type": "FeatureCollection", "features": features}


def check_html(report: CheckReport, *, title: str = "") -> str:
    """A self-contained HTML map of the report (no URL is fetched): each path on the network as a
    thin line over its GTFS shape drawn thick and pale, the signalised intersections it crosses as
    dots, one colour and one check box per route, the network's roads in grey beneath.

    It is drawn by :func:`pilotage.routing.maps.render_html`, whose legend speaks of vehicle rounds:
    its "vehicles" are the routes, "visits" the intersections crossed, "distance" the path's length,
    a "swept street" the GTFS shape, a "stop" an intersection crossed.
    """
    collection = check_geojson(report)
    drawn: list[dict[str, Any]] = []
    for feature in collection["features"]:
        properties = feature["properties"]
        route = f"{properties['vehicle_class']} {'/'.join(properties['routes'])}"
        if properties["kind"] == "shape":
            drawn.append(_feature("LineString", feature["geometry"]["coordinates"],
                                  {"kind": "service", "vehicle": route, "shape": properties["key"]}))
        elif properties["kind"] == "path":
            drawn.append(_feature("LineString", feature["geometry"]["coordinates"],
                                  {"kind": "route", "vehicle": route, "shape": properties["key"],
                                   "trips": properties["trips"], "matched": properties["matched"],
                                   "reason": properties["reason"], "visits": properties["intersections"],
                                   "distance": properties["length_m"]}))
        else:
            drawn.append(_feature("Point", feature["geometry"]["coordinates"],
                                  {"kind": "stop", "vehicle": route, "intersection": properties["intersection_id"],
                                   "group": properties["group"]}))
    totals = report.totals()
    heading = title or (f"GTFS check of {Path(report.feed.source).name}: {totals['trips_matched']} of "
                        f"{totals['trips']} trips on their shape's path from first stop to last. Thin lines: the "
                        "paths on the network; thick: the GTFS shapes; dots: the signalised intersections crossed "
                        "(the table's visits)")
    return render_html({"type": "FeatureCollection", "features": drawn}, title=heading, geographic=True,
                       background=_roads_near(report))


def _roads_near(report: CheckReport) -> list[tuple[tuple[float, float], tuple[float, float]]]:
    """The network's edges with an end inside the box around the report's shapes."""
    points = [path.polyline for path in report.timetable.paths if path.polyline[0].size]
    if not points:
        return []
    lon = np.concatenate([p[0] for p in points])
    lat = np.concatenate([p[1] for p in points])
    return road_segments(report.network, (float(lon.min()), float(lat.min()), float(lon.max()), float(lat.max())))


def _feature(geometry: str, coordinates: Any, properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "Feature", "geometry": {"type": geometry, "coordinates": coordinates}, "properties": properties}


def _rounded(value: float) -> float | None:
    """A figure for JSON: one decimal, None for NaN."""
    return None if math.isnan(value) else round(value, 1)
