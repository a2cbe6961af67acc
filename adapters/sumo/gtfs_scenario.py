"""A SUMO scenario built from a real GTFS feed and an OSM extract with SUMO's own tools: the
network, the buses and trams of the feed's timetable for one day and time window, background cars.

:func:`build_gtfs_scenario` writes the scenario into a folder and returns its ``.sumocfg``, which
libsumo runs as it is (a closed loop: :func:`~pilotage.adapters.sumo.closed_loop.simulate`). The
steps:

1. **Routes.** The routes run are GTFS ``route_id`` s (default: every route of a bus or tram
   ``route_type``, :data:`ROUTE_TYPE_MODES`; metro, rail and ferries have no road to run on). Their
   trips whose service runs on the date (``calendar.txt`` and ``calendar_dates.txt``) are kept, in a
   copy of the feed that holds only them (so gtfs2pt maps nothing else), each renamed
   ``<route_id>.<k>``, the k-th trip of its route that day by first departure (GTFS trip_ids may be
   longer than the 64 characters of the protocol's vehicle ids, as Milan's tram ones are, or hold
   characters SUMO refuses in an id, as their spaces; a route_id's such characters become ``_``).
   Their shapes and stops give the area: their bounding box and :data:`MARGIN_M` around it.
2. **Network** (:data:`NETCONVERT_OPTIONS`). ``netconvert`` reads the OSM extract (decompressed
   first), keeps the edges inside that area (``--keep-edges.in-geo-boundary``: the whole Milan
   extract converts in about 15 s, but gtfs2pt's mapping slows down with the network's size) that
   cars, buses or trams may take, and writes a geo-referenced network whose traffic lights come from
   OSM's ``highway=traffic_signals`` nodes (the options' comments say why each). An extract of
   roads (``highway=*`` ways, as the shared Milan one) has no tram tracks: the road types are read
   from SUMO's own OSM type map with trams allowed on every road but motorways
   (:data:`TRAM_CLOSED_ROAD_TYPES`), so trams run on the streets their tracks lie in (as most of
   Milan's do), sharing their lanes with the traffic.
3. **Buses and trams.** SUMO's ``gtfs2pt.py`` (run by this Python interpreter, with SUMO_HOME set;
   it needs pandas and rtree) maps the trips of the date onto the network: a GTFS ``route_type`` is
   a mode (0 tram, 3 bus, ...), each mode is mapped on the part of the network its SUMO class
   (``tram``, ``bus``) may take, each trip's stops become ``<busStop>`` (buses) or ``<trainStop>``
   (trams) on the nearest lane of its path (stop files: :data:`STOPS_FILE`, vehicle types ``bus``
   and ``tram``: :data:`TYPES_FILE`), and each distinct stop sequence becomes a ``<route>`` with its
   ``<stop>`` s, ``arrival`` and ``until`` times relative to the departure (stops within
   :data:`MATCH_RADIUS_M` of a road, each served at least :data:`STOP_DWELL_S`). A trip runs from
   its first stop in the window to its last (the copy of the feed holds only the stops the trips
   leave from within the window, by time of day, as gtfs2pt's own filter keeps them; a trip already
   running at ``begin`` starts at its first stop after it), and gtfs2pt sets its vehicle off
   :data:`STOP_DWELL_S` before the departure from that stop. gtfs2pt drops a vehicle that would set
   off before its window, so it runs from :data:`STOP_DWELL_S` before ``begin``, and the vehicles
   due before ``begin`` set off at ``begin`` (they leave their first stop up to that late): every
   trip with two stops or more in the window gets a vehicle. **Vehicle ids** are gtfs2pt's,
   ``<trip name>.<day>`` (day 0: the date itself; ``T12.31.0``: the 31st trip of route T12), of type
   ``bus`` or ``tram``, with SUMO's ``line`` the route's ``route_short_name``
   (``--original-lines``), and params ``gtfs.route_name`` (the short name) and
   ``gtfs.trip_headsign``; this module adds the params ``gtfs.trip_id`` and ``gtfs.route_id`` (the
   feed's own, :data:`TRIP_PARAM`, :data:`ROUTE_PARAM`) to every vehicle: a run reads them with
   ``libsumo.vehicle.getParameter``, and :func:`transit_vehicles` reads them all from the file. A
   trip gtfs2pt cannot map (no path between two of its stops, or fewer than two of them mapped)
   gets no vehicle: the count is logged.
4. **Cars.** SUMO's ``randomTrips.py`` (``--seed`` the scenario's seed) draws one passenger car every
   ``car_period_s`` seconds from begin to end (or, by default, :data:`CAR_DENSITY_PER_KM_H` cars an
   hour per km of road: ``--insertion-density``, so a larger area gets more), weighted towards the
   edges where the network ends (through traffic, :data:`FRINGE_FACTOR`), at least
   :data:`MIN_TRIP_DISTANCE_M` apart; ``duarouter`` routes them (fastest path at free flow,
   ``--ignore-errors`` drops trips with no path).
5. **Configuration** (:data:`SUMOCFG_FILE`): the network, the vehicle types and stops (additional
   files), the buses and trams, then the cars (route files), begin and end, the seed,
   ``--time-to-teleport`` :data:`TIME_TO_TELEPORT_S` and ``--ignore-route-errors`` (a public-transport
   route SUMO finds broken is dropped with a warning rather than stopping the run); no output file:
   a run sets its own.

**Cache.** ``folder`` keeps the files of a build and, beside them, :data:`MANIFEST_FILE`: for each
step (network; buses and trams; cars), the inputs it was built from (the SHA-256 of the OSM extract
and of the feed, the area, the routes, date, window, car period and seed, the SUMO and builder
versions) and what it produced. A later call rebuilds only the steps whose inputs changed (and those
after a rebuilt network); a step's entry is removed before it runs and written once its files are
complete, so a build stopped halfway is never taken for done.

SUMO is an extra (``pip install 'pilotage[sim]'``, and ``pip install rtree`` for gtfs2pt); nothing
here imports it at module import.
"""

from __future__ import annotations

import csv
import datetime
import hashlib
import io
import json
import logging
import math
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pilotage.adapters.osm import decompressed
from pilotage.adapters.sumo.network import scenario_file
from pilotage.adapters.sumo.scenario import _sumo
from pilotage.core import DataFileError, InvalidInputError

logger = logging.getLogger(__name__)

#: Bump when a rule or figure below changes, so that every step is built again.
BUILDER_VERSION = 1

#: GTFS ``route_type`` s whose routes can run on roads, and the gtfs2pt mode (SUMO vClass) each is:
#: the basic types (0 tram, 3 bus, 5 cable tram, 11 trolleybus) and the extended ones of the same
#: modes, as gtfs2pt's own table maps them.
ROUTE_TYPE_MODES: dict[str, str] = {
    "0": "tram", "3": "bus", "5": "tram", "11": "bus", "800": "bus",
    **{str(code): "bus" for code in range(200, 210)},
    **{str(code): "bus" for code in range(700, 717)},
    **{str(code): "tram" for code in range(900, 907)},
}

#: Around the bounding box of the routes' shapes and stops, the network keeps this much (m) on
#: every side: the roads a bus detours by, and room for the cars to come from.
MARGIN_M = 300.0

#: netconvert's options beside the input, type map, area and output.
NETCONVERT_OPTIONS: tuple[str, ...] = (
    # Roads for cars, buses or trams only: footways, cycleways and service aisles go.
    "--keep-edges.by-vclass", "passenger,bus,tram",
    # Lanes reserved by OSM's lane tags (bus lanes) are kept as such.
    "--osm.lane-access", "true",
    # Nodes that only shape a road are merged into its geometry; roundabouts and motorway ramps
    # are recognised; the nodes of one junction are joined.
    "--geometry.remove",
    "--roundabouts.guess",
    "--ramps.guess",
    "--junctions.join",
    # OSM's signal nodes become traffic lights at the junction they belong to; a signal on a node
    # that is no junction is dropped; signals a few metres apart share one program. Every program
    # is actuated: each green phase has a minDur and a maxDur (netconvert's 5 to 50 s, longer
    # where pedestrians cross), the range the engine's plan may cut or extend it in for a bus or
    # tram, and SUMO places the induction loops the engine's actuation reads. A static program has
    # no range: on one, priority could change nothing (measured on bus 76 and tram 24, 07:00 to
    # 07:10: no plan changed with static programs; 53 with actuated ones).
    "--tls.guess-signals",
    "--tls.discard-simple",
    "--tls.join",
    "--tls.default-type", "actuated",
    "--output.street-names",
)
#: Road types that stay closed to trams (every other road type is opened to them).
TRAM_CLOSED_ROAD_TYPES = frozenset({"highway.motorway", "highway.motorway_link"})

#: The shortest time a bus or tram stands at a stop (s; gtfs2pt's default). gtfs2pt sets a vehicle off
#: this long before the departure from its first stop.
STOP_DWELL_S = 10.0
#: How far from a stop gtfs2pt looks for the roads it may lie on (m; gtfs2pt's default is 150 m). Its
#: mapping tries every pair of candidate roads of consecutive stops: at 50 m, Milan's routes map to
#: the same paths as at 150 m, many times faster.
MATCH_RADIUS_M = 50.0
#: gtfs2pt's options beside the files, date and window: arrival times at the stops (the closed loop
#: reads a bus's lateness from them); the route's short name as SUMO's ``line`` even where trips of
#: one route stop at different stops; no pedestrian access links (no person is simulated).
GTFS2PT_OPTIONS: tuple[str, ...] = ("--write-arrival", "--original-lines", "--skip-access",
                                    "--radius", f"{MATCH_RADIUS_M:g}", "--duration", f"{STOP_DWELL_S:g}")

#: Default car demand: cars an hour per km of road open to cars (randomTrips' ``--insertion-density``).
CAR_DENSITY_PER_KM_H = 6.0
#: Weight of the edges where the network ends against inner edges, as origins and destinations.
FRINGE_FACTOR = 5.0
#: Shortest straight-line distance between a car trip's origin and destination edges (m).
MIN_TRIP_DISTANCE_M = 500.0

#: A vehicle stuck this long (s) is moved ahead by SUMO (its default).
TIME_TO_TELEPORT_S = 300.0
#: Longest time one SUMO tool may run (s): gtfs2pt's mapping of a whole city's hour takes minutes.
TOOL_TIMEOUT_S = 3600.0

#: The files of a build, in ``folder``.
SUMOCFG_FILE = "gtfs.sumocfg"
NET_FILE = "gtfs.net.xml"
STOPS_FILE = "transit-stops.add.xml"
TYPES_FILE = "transit-types.add.xml"
TRANSIT_FILE = "transit.rou.xml"
CARS_FILE = "cars.rou.xml"
MANIFEST_FILE = "gtfs-scenario.json"

#: The params this module adds to each bus and tram: its GTFS trip_id and route_id.
TRIP_PARAM = "gtfs.trip_id"
ROUTE_PARAM = "gtfs.route_id"

_SIM_EXTRA = "pip install 'pilotage[sim]'"
_TAIL_LINES = 15
_DAY_S = 86_400.0
_M_PER_DEGREE = 111_195.0
# The files a feed must hold; and the calendars, of which it may lack one, but gtfs2pt reads both:
# the copy it reads has an empty one instead.
_REQUIRED_GTFS = ("routes.txt", "trips.txt", "stop_times.txt", "stops.txt")
_CALENDAR_HEADERS = {
    "calendar.txt": ["service_id", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday",
                     "start_date", "end_date"],
    "calendar_dates.txt": ["service_id", "date", "exception_type"],
}
_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
# Characters SUMO refuses in an id: each becomes "_" in the route_id that starts the names of its
# trips, which gtfs2pt makes its ids of vehicles, routes and stops from.
_NOT_IN_SUMO_IDS = re.compile(r"[ \t\n\r|\\'\";,:<>&]")
# The longest route_id kept whole in a trip's name; a longer one is cut and given a digest of its
# own, so that a vehicle id stays within the 64 characters of the protocol's ids.
_MAX_ROUTE_NAME = 40
_MISSING_MODULE = re.compile(r"No module named '([\w.]+)'")
# Python modules SUMO's tools import and the package that installs each.
_PACKAGE_OF_MODULE = {"rtree": "rtree", "pandas": "pandas", "sumolib": "sumolib", "pyproj": "pyproj"}
_NET_ELEMENTS = frozenset({"edge", "junction", "connection", "tlLogic", "roundabout", "request", "lane"})


@dataclass(frozen=True)
class TransitVehicle:
    """One bus or tram of a GTFS scenario: the SUMO vehicle and the GTFS trip it runs.

    Attributes:
        vehicle: SUMO's vehicle id (``<route_id>.<k>.<day>``: the module docstring, step 3).
        trip_id: the GTFS trip_id.
        route_id: the GTFS route_id of the trip.
        line: SUMO's ``line`` of the vehicle: the route's ``route_short_name``.
        vclass: SUMO's vehicle class, ``bus`` or ``tram`` (gtfs2pt's vehicle type of that name).
        depart_s: when it sets off (s since midnight of the date): :data:`STOP_DWELL_S` before it
            leaves its first stop in the window, or at the window's start.
    """

    vehicle: str
    trip_id: str
    route_id: str
    line: str
    vclass: str
    depart_s: float


def build_gtfs_scenario(osm: Path, feed: Path, folder: Path, *, date: datetime.date, begin_s: float, end_s: float,
                        routes: Sequence[str] | None = None, car_period_s: float | None = None,
                        seed: int = 42) -> Path:
    """Build (or find in ``folder``, when built from the same inputs) the SUMO scenario of the GTFS
    ``feed``'s buses and trams on the OSM extract ``osm`` (steps and cache: the module docstring),
    and return its ``.sumocfg``.

    Args:
        osm: an OSM XML extract, plain or compressed with gzip, bzip2 or xz.
        feed: a GTFS feed (zip).
        folder: where the scenario is written (created); a build reuses what it finds there.
        date: the service day whose trips run.
        begin_s, end_s: the simulated window, seconds since midnight of ``date``, 0 <= begin < end
            <= 86400; the simulation's clock is that time of day.
        routes: the GTFS route_ids to run (default: every bus and tram route of the feed).
        car_period_s: one car every this many seconds over the whole network (default:
            :data:`CAR_DENSITY_PER_KM_H` cars an hour per km of road).
        seed: seed of the car demand and of SUMO, 0 to 2**31 - 1.

    Building from the shared Milan data takes about 20 s for bus 76 and tram 24 over 10 minutes,
    and about 5 minutes for all its 12 bus and tram routes over an hour (nearly all of it gtfs2pt's
    mapping, 298 trips); a built one returns at once.

    Raises:
        InvalidInputError: an argument out of its range (``field`` names it), a route the feed does
            not have or that cannot run on roads, or no trip of the routes running on ``date``
            within the window (the message says which dates the feed serves).
        DataFileError: the OSM extract or the feed cannot be read, SUMO's tools are missing, or a
            tool fails or times out (its last messages and a fix in the message), or gtfs2pt maps
            no trip; ``folder`` cannot be written.
    """
    _check_arguments(date, begin_s, end_s, routes=routes, car_period_s=car_period_s, seed=seed)
    osm_path, feed_path, folder = Path(osm), Path(feed), Path(folder)
    selection = _select(feed_path, date, begin_s, end_s, routes)
    sumo_home, sumo_version = _sumo_tools()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataFileError(f"cannot write the GTFS scenario in {folder}: {exc.strerror or exc}; give a writable "
                            "folder") from exc
    manifest = _Manifest(folder)
    versions = {"builder_version": BUILDER_VERSION, "sumo_version": sumo_version}
    network_inputs = {**versions, "osm_sha256": _sha256(osm_path, "OSM extract"),
                      "bbox": [round(value, 6) for value in selection.bbox], "netconvert": list(NETCONVERT_OPTIONS),
                      "tram_closed_road_types": sorted(TRAM_CLOSED_ROAD_TYPES)}
    network_key = manifest.run("network", network_inputs, (NET_FILE,),
                               lambda: _build_network(sumo_home, osm_path, selection.bbox, folder))
    transit_inputs = {**versions, "network": network_key, "feed_sha256": _sha256(feed_path, "GTFS feed"),
                      "routes": sorted(selection.routes), "date": date.isoformat(), "begin_s": begin_s,
                      "end_s": end_s, "gtfs2pt": list(GTFS2PT_OPTIONS)}
    cars_inputs = {**versions, "network": network_key, "begin_s": begin_s, "end_s": end_s,
                   "car_period_s": car_period_s, "car_density_per_km_h": CAR_DENSITY_PER_KM_H,
                   "fringe_factor": FRINGE_FACTOR, "min_trip_distance_m": MIN_TRIP_DISTANCE_M, "seed": seed}
    # gtfs2pt's mapping is the long step: the cars are drawn and routed beside it.
    with ThreadPoolExecutor(max_workers=1) as pool:
        cars = pool.submit(manifest.run, "cars", cars_inputs, (CARS_FILE,),
                           lambda: _build_cars(sumo_home, folder, begin_s=begin_s, end_s=end_s,
                                               car_period_s=car_period_s, seed=seed))
        manifest.run("transit", transit_inputs, (TRANSIT_FILE, STOPS_FILE, TYPES_FILE),
                     lambda: _build_transit(sumo_home, feed_path, selection, folder, date=date, begin_s=begin_s,
                                                    end_s=end_s))
        cars.result()
    sumocfg = folder / SUMOCFG_FILE
    _write_sumocfg(sumocfg, begin_s, end_s, seed)
    built = manifest.summaries()
    logger.info("GTFS scenario %s: %d traffic lights, %s, %d cars, %.0f s to %.0f s of %s", sumocfg,
                built["network"]["traffic_lights"],
                ", ".join(f"{count} {mode}" for mode, count in sorted(built["transit"]["vehicles"].items())),
                built["cars"]["cars"], begin_s, end_s, date.isoformat())
    return sumocfg


def transit_vehicles(sumocfg: str | Path) -> dict[str, TransitVehicle]:
    """The buses and trams of the GTFS scenario ``sumocfg`` (its ``.sumocfg`` file or folder), by
    SUMO vehicle id, each with its GTFS trip and route.

    Raises:
        DataFileError: no such scenario, or it has no bus and tram file built by
            :func:`build_gtfs_scenario` (or that file is not readable XML).
    """
    path = scenario_file(sumocfg).parent / TRANSIT_FILE
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as exc:
        raise DataFileError(f"cannot read the buses and trams of {path.parent}: {exc}; expected a scenario built "
                            "by build_gtfs_scenario") from exc
    vehicles = {}
    for element in root.iter("vehicle"):
        params = {param.get("key"): param.get("value", "") for param in element.iter("param")}
        vehicle = element.get("id", "")
        if TRIP_PARAM not in params or ROUTE_PARAM not in params:
            raise DataFileError(f"vehicle {vehicle!r} of {path} has no {TRIP_PARAM} or {ROUTE_PARAM} param; expected "
                                "a scenario built by build_gtfs_scenario")
        vehicles[vehicle] = TransitVehicle(vehicle=vehicle, trip_id=params[TRIP_PARAM],
                                           route_id=params[ROUTE_PARAM], line=element.get("line", ""),
                                           vclass=element.get("type", ""),
                                           depart_s=float(element.get("depart", "nan")))
    return vehicles


def _check_arguments(date: datetime.date, begin_s: float, end_s: float, *, routes: Sequence[str] | None,
                     car_period_s: float | None, seed: int) -> None:
    """Raises InvalidInputError on the first argument out of its range."""
    if not isinstance(date, datetime.date):
        raise InvalidInputError(f"expected date to be a datetime.date, got {date!r}", field="date")
    for name, value in (("begin_s", begin_s), ("end_s", end_s)):
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= _DAY_S:
            raise InvalidInputError(f"expected {name} in seconds from 0 to {_DAY_S:.0f} (one service day), got "
                                    f"{value!r}", field=name)
    if end_s <= begin_s:
        raise InvalidInputError(f"expected end_s after begin_s ({begin_s:g} s), got {end_s:g} s", field="end_s")
    if routes is not None and (isinstance(routes, str) or not routes
                               or not all(isinstance(route, str) and route for route in routes)):
        raise InvalidInputError(f"expected routes to be a non-empty list of GTFS route_ids, or None for every bus "
                                f"and tram route, got {routes!r}", field="routes")
    if car_period_s is not None and (isinstance(car_period_s, bool) or not isinstance(car_period_s, int | float)
                                     or not (math.isfinite(car_period_s) and car_period_s > 0)):
        raise InvalidInputError(f"expected car_period_s > 0 s, or None for the default density, got "
                                f"{car_period_s!r}", field="car_period_s")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**31:
        raise InvalidInputError(f"expected seed to be an integer from 0 to 2**31 - 1, got {seed!r}", field="seed")


def _sumo_tools() -> tuple[Path, str]:
    """SUMO_HOME (set in the environment the tools inherit) and the version of SUMO's package.

    Raises:
        DataFileError: SUMO's package or one of the tools this module runs is missing.
    """
    try:
        sumo, version = _sumo()
    except ImportError as exc:
        raise DataFileError(f"building a GTFS scenario needs SUMO's tools: {exc}") from exc
    home = Path(sumo.SUMO_HOME)
    missing = [str(path) for path in (_netconvert(home), _duarouter(home), _gtfs2pt(home), _random_trips(home),
                                      _osm_typemap(home)) if not path.is_file()]
    if missing:
        raise DataFileError(f"SUMO's tools are incomplete: no {', '.join(missing)}; reinstall SUMO: {_SIM_EXTRA}")
    return home, version


def _netconvert(home: Path) -> Path:
    return home / "bin" / "netconvert"


def _duarouter(home: Path) -> Path:
    return home / "bin" / "duarouter"


def _gtfs2pt(home: Path) -> Path:
    return home / "tools" / "import" / "gtfs" / "gtfs2pt.py"


def _random_trips(home: Path) -> Path:
    return home / "tools" / "randomTrips.py"


def _osm_typemap(home: Path) -> Path:
    return home / "data" / "typemap" / "osmNetconvert.typ.xml"


def _sha256(path: Path, what: str) -> str:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    except OSError as exc:
        raise DataFileError(f"cannot read the {what} {path}: {exc.strerror or exc}") from exc
    return digest.hexdigest()


@dataclass(frozen=True)
class _Selection:
    """The feed's routes to run and where: route_id -> mode, the trips of the date (trip_id ->
    route_id), their names for gtfs2pt (trip_id -> name), how many have two stops or more within
    the window, and the area (W, S, E, N, degrees)."""

    routes: dict[str, str]
    trips: dict[str, str]
    trip_names: dict[str, str]
    trips_in_window: int
    bbox: tuple[float, float, float, float]

    def write_feed(self, feed: Path, target: Path, begin_s: float, end_s: float) -> None:
        """Write a copy of ``feed`` holding only the routes and trips selected, each trip's stops
        those it leaves from between ``begin_s`` and ``end_s`` (stops, calendars and shapes as they
        are; calendars gtfs2pt needs are written empty when missing).

        Raises:
            DataFileError: the feed cannot be read.
        """
        with _open_feed(feed) as source, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as out:
            names = set(source.namelist())
            for name in sorted(names):
                if name == "routes.txt":
                    _copy_rows(source, out, name, lambda row: row.get("route_id") in self.routes)
                elif name == "trips.txt":
                    _copy_rows(source, out, name, lambda row: row.get("trip_id") in self.trips,
                               self.trip_names.__getitem__)
                elif name == "stop_times.txt":
                    _copy_rows(source, out, name, lambda row: row.get("trip_id") in self.trips
                               and _in_window(row.get("departure_time", ""), begin_s, end_s),
                               self.trip_names.__getitem__)
                elif name.endswith(".txt"):
                    out.writestr(name, source.read(name))
            for name, header in _CALENDAR_HEADERS.items():
                if name not in names:
                    out.writestr(name, ",".join(header) + "\n")


@dataclass
class _FeedReader:
    """Rows of a GTFS file, read lazily from the zip."""

    zip_file: zipfile.ZipFile
    path: Path

    def rows(self, name: str, required: bool = True) -> Iterator[dict[str, str]]:
        if name not in self.zip_file.namelist():
            if required:
                raise DataFileError(f"the GTFS feed {self.path} has no {name}; expected a feed with "
                                    f"{', '.join(_REQUIRED_GTFS)} and a calendar")
            return
        with self.zip_file.open(name) as raw:
            yield from csv.DictReader(io.TextIOWrapper(raw, encoding="utf-8-sig", newline=""))


@contextmanager
def _open_feed(path: Path) -> Iterator[zipfile.ZipFile]:
    """The feed's zip, opened.

    Raises:
        DataFileError: it cannot be read, or is not a zip file.
    """
    try:
        zip_file = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        raise DataFileError(f"cannot read the GTFS feed {path}: {exc}; expected a GTFS zip file") from exc
    with zip_file:
        yield zip_file


def _copy_rows(source: zipfile.ZipFile, out: zipfile.ZipFile, name: str, keep: Callable[[dict[str, str]], bool],
               trip_id: Callable[[str], str] = str) -> None:
    """Copy the rows of the feed's file ``name`` that ``keep`` keeps, each trip_id (if any) as
    ``trip_id`` gives it."""
    with source.open(name) as raw, out.open(name, "w") as target:
        reader = csv.DictReader(io.TextIOWrapper(raw, encoding="utf-8-sig", newline=""))
        text = io.TextIOWrapper(target, encoding="utf-8", newline="")
        writer = csv.DictWriter(text, fieldnames=reader.fieldnames or [])
        writer.writeheader()
        writer.writerows(row | {"trip_id": trip_id(row["trip_id"])} if "trip_id" in row else row
                         for row in reader if keep(row))
        text.flush()
        text.detach()


def _trip_names(trips: dict[str, str], first_departure_s: dict[str, float]) -> dict[str, str]:
    """The name of each trip (``trips``: trip_id -> route_id) in the feed gtfs2pt reads:
    ``<route_id>.<k>``, the k-th trip of its route by first departure (step 3)."""
    by_route: dict[str, list[tuple[float, str]]] = {}
    for trip, route in trips.items():
        by_route.setdefault(route, []).append((first_departure_s.get(trip, math.inf), trip))
    names: dict[str, str] = {}
    prefixes: set[str] = set()
    for route, listed in sorted(by_route.items()):
        prefix = _NOT_IN_SUMO_IDS.sub("_", route)
        if len(prefix) > _MAX_ROUTE_NAME or prefix in prefixes:
            # Too long, or the same as another route's once its characters are replaced.
            prefix = f"{prefix[:_MAX_ROUTE_NAME - 9]}~{hashlib.sha256(route.encode()).hexdigest()[:8]}"
        prefixes.add(prefix)
        names |= {trip: f"{prefix}.{k}" for k, (_, trip) in enumerate(sorted(listed), 1)}
    return names


def _select(feed: Path, date: datetime.date, begin_s: float, end_s: float, routes: Sequence[str] | None
            ) -> _Selection:
    """The routes to run, their trips on ``date``, and the area they need.

    Raises:
        InvalidInputError: an unknown route, one that cannot run on roads, or no trip in the window.
        DataFileError: the feed cannot be read, or lacks a file or a column.
    """
    with _open_feed(feed) as zip_file:
        reader = _FeedReader(zip_file, feed)
        try:
            return _select_from(reader, date, begin_s, end_s, routes)
        except InvalidInputError:
            raise
        except KeyError as exc:
            raise DataFileError(f"the GTFS feed {feed} lacks the column {exc}; expected a GTFS feed") from exc
        except (csv.Error, UnicodeDecodeError, zipfile.BadZipFile, ValueError) as exc:
            raise DataFileError(f"cannot read the GTFS feed {feed}: {exc}; expected a GTFS zip of UTF-8 CSV "
                                "files") from exc


def _select_from(reader: _FeedReader, date: datetime.date, begin_s: float, end_s: float,
                 routes: Sequence[str] | None) -> _Selection:
    types = {row["route_id"]: row["route_type"].strip() for row in reader.rows("routes.txt")}
    road_routes = {route: ROUTE_TYPE_MODES[kind] for route, kind in types.items() if kind in ROUTE_TYPE_MODES}
    if routes is None:
        chosen = road_routes
    else:
        unknown = [route for route in routes if route not in types]
        if unknown:
            raise InvalidInputError(f"the feed has no route {', '.join(map(repr, unknown))}; its routes: "
                                    f"{', '.join(sorted(types))}", field="routes")
        off_road = [route for route in routes if route not in road_routes]
        if off_road:
            raise InvalidInputError(f"route {', '.join(off_road)} (route_type "
                                    f"{', '.join(types[route] for route in off_road)}) has no road to run on; give "
                                    f"bus or tram routes: {', '.join(sorted(road_routes))}", field="routes")
        chosen = {route: road_routes[route] for route in routes}
    if not chosen:
        raise InvalidInputError(f"the feed has no bus or tram route (route_types {sorted(set(types.values()))})",
                                field="routes")
    services, served_dates = _services_on(reader, date)
    trips: dict[str, str] = {}
    shapes: set[str] = set()
    for row in reader.rows("trips.txt"):
        if row["route_id"] in chosen and row["service_id"] in services:
            trips[row["trip_id"]] = row["route_id"]
            if row.get("shape_id"):
                shapes.add(row["shape_id"])
    stops: set[str] = set()
    stops_in_window: Counter[str] = Counter()
    first_departure_s: dict[str, float] = {}
    for row in reader.rows("stop_times.txt"):
        trip = row["trip_id"]
        if trip in trips:
            stops.add(row["stop_id"])
        if trip in trips and row["departure_time"]:
            departure_s = _seconds(row["departure_time"])
            first_departure_s[trip] = min(departure_s, first_departure_s.get(trip, math.inf))
            if _in_window(row["departure_time"], begin_s, end_s):
                stops_in_window[trip] += 1
    # A trip runs in the window from its first stop there to its last: it needs two.
    in_window = [trip for trip, count in stops_in_window.items() if count >= 2]
    if not in_window:
        raise InvalidInputError(f"no trip of {'every bus and tram route' if routes is None else ', '.join(chosen)} "
                                f"runs on {date.isoformat()} between {_clock(begin_s)} and {_clock(end_s)}; the "
                                f"feed's calendar serves {_dates(served_dates)}: give one of those dates and a window "
                                "within its service hours", field="date")
    points = [(float(row["shape_pt_lon"]), float(row["shape_pt_lat"])) for row in reader.rows("shapes.txt", False)
              if row["shape_id"] in shapes]
    points += [(float(row["stop_lon"]), float(row["stop_lat"])) for row in reader.rows("stops.txt")
               if row["stop_id"] in stops]
    return _Selection(routes=chosen, trips=trips, trip_names=_trip_names(trips, first_departure_s),
                      trips_in_window=len(in_window), bbox=_bbox(points))


def _services_on(reader: _FeedReader, date: datetime.date) -> tuple[set[str], set[datetime.date]]:
    """The service_ids running on ``date``, and every date the feed's calendars list as served
    (calendar.txt's ranges and calendar_dates.txt's added dates) for the error message."""
    day = date.strftime("%Y%m%d")
    services: set[str] = set()
    served: set[datetime.date] = set()
    for row in reader.rows("calendar.txt", False):
        start, end = _date(row["start_date"]), _date(row["end_date"])
        served |= {start, end}
        if row["start_date"] <= day <= row["end_date"] and row[_WEEKDAYS[date.weekday()]].strip() == "1":
            services.add(row["service_id"])
    for row in reader.rows("calendar_dates.txt", False):
        if row["exception_type"].strip() == "1":
            served.add(_date(row["date"]))
        if row["date"] == day:
            if row["exception_type"].strip() == "1":
                services.add(row["service_id"])
            else:
                services.discard(row["service_id"])
    return services, served


def _date(text: str) -> datetime.date:
    return datetime.datetime.strptime(text.strip(), "%Y%m%d").date()


def _dates(dates: set[datetime.date]) -> str:
    if not dates:
        return "no date"
    return f"{min(dates).isoformat()} to {max(dates).isoformat()} ({len(dates)} dates listed)"


def _seconds(clock: str) -> float:
    hours, minutes, seconds = clock.strip().split(":")
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def _in_window(departure_time: str, begin_s: float, end_s: float) -> bool:
    """Whether a stop left at ``departure_time`` (GTFS's H:MM:SS, past 24:00 for trips that run
    past midnight) is in the window, by its time of day, as gtfs2pt tells."""
    return bool(departure_time.strip()) and begin_s <= _seconds(departure_time) % _DAY_S <= end_s


def _clock(seconds: float) -> str:
    return f"{int(seconds // 3600):02d}:{int(seconds % 3600 // 60):02d}:{int(seconds % 60):02d}"


def _bbox(points: list[tuple[float, float]]) -> tuple[float, float, float, float]:
    """The bounding box of ``points`` (lon, lat) with :data:`MARGIN_M` on every side."""
    lons, lats = [lon for lon, _ in points], [lat for _, lat in points]
    margin_lat = MARGIN_M / _M_PER_DEGREE
    margin_lon = margin_lat / math.cos(math.radians(max(abs(min(lats)), abs(max(lats)))))
    return min(lons) - margin_lon, min(lats) - margin_lat, max(lons) + margin_lon, max(lats) + margin_lat


class _Manifest:
    """The record of what each step of a build in ``folder`` was built from and produced
    (:data:`MANIFEST_FILE`)."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / MANIFEST_FILE
        self.folder = folder
        # Two steps run at once: one writes the record at a time.
        self.lock = threading.Lock()
        try:
            self.steps: dict[str, Any] = json.loads(self.path.read_text(encoding="utf-8"))["steps"]
        except FileNotFoundError:
            self.steps = {}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            logger.warning("building the GTFS scenario again: %s is unreadable (%s)", self.path, exc)
            self.steps = {}

    def run(self, step: str, inputs: dict[str, Any], files: tuple[str, ...],
            build: Callable[[], dict[str, Any]]) -> str:
        """Build ``step`` unless it was built from the same ``inputs`` and its ``files`` are all
        there; its key (which later steps name among their inputs)."""
        key = hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()
        done = self.steps.get(step)
        if done and done.get("key") == key and all((self.folder / name).is_file() for name in files):
            logger.debug("GTFS scenario: %s taken from %s", step, self.path)
            return key
        with self.lock:
            self.steps.pop(step, None)
            self._write()
        logger.info("GTFS scenario: building the %s in %s", step, self.folder)
        started = time.perf_counter()
        summary = build()
        seconds = round(time.perf_counter() - started, 1)
        logger.info("GTFS scenario: %s built in %.1f s", step, seconds)
        with self.lock:
            self.steps[step] = {"key": key, "inputs": inputs, "summary": summary, "build_s": seconds}
            self._write()
        return key

    def summaries(self) -> dict[str, dict[str, Any]]:
        return {step: done["summary"] for step, done in self.steps.items()}

    def _write(self) -> None:
        # Written whole to a temporary file and moved: a reader never sees half of it.
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps({"steps": self.steps}, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(temporary, self.path)


def _run_tool(command: list[str], folder: Path, what: str, fix: str, home: Path) -> str:
    """Run a SUMO tool in ``folder`` with SUMO_HOME ``home``; its output (stdout and stderr) when it
    succeeds.

    Raises:
        DataFileError: the tool cannot start, fails (the message keeps its last messages and says
            ``fix``, or which package to install when a Python module is missing) or does not
            finish within :data:`TOOL_TIMEOUT_S`.
    """
    logger.debug("running %s", " ".join(command))
    try:
        # SUMO's Python tools find their modules under SUMO_HOME, which must be the eclipse-sumo
        # package's: importing libsumo first sets it to the sumo-data package, which has no tools.
        done = subprocess.run(command, cwd=folder, capture_output=True, text=True, timeout=TOOL_TIMEOUT_S,
                              check=False, env={**os.environ, "SUMO_HOME": str(home)})
    except subprocess.TimeoutExpired as exc:
        raise DataFileError(f"{what} did not finish within {TOOL_TIMEOUT_S:.0f} s; give fewer routes or a shorter "
                            "window") from exc
    except OSError as exc:
        raise DataFileError(f"cannot run {what} ({command[0]}): {exc.strerror or exc}; reinstall SUMO: "
                            f"{_SIM_EXTRA}") from exc
    output = (done.stdout + done.stderr).strip()
    logger.debug("%s: %s", what, _tail(output))
    if done.returncode != 0:
        missing = _MISSING_MODULE.search(output)
        if missing:
            module = missing.group(1).split(".")[0]
            fix = f"install the Python package it needs: pip install {_PACKAGE_OF_MODULE.get(module, module)}"
        raise DataFileError(f"{what} failed (exit status {done.returncode}); {fix}. Its last messages:\n"
                            f"{_tail(output)}")
    return output


def _tail(output: str) -> str:
    return "\n".join(output.splitlines()[-_TAIL_LINES:])


def _build_network(home: Path, osm: Path, bbox: tuple[float, float, float, float], folder: Path) -> dict[str, Any]:
    """Write the network (step 2); its counts."""
    with tempfile.TemporaryDirectory(prefix=".netconvert-", dir=folder) as scratch:
        osm_file = decompressed(osm, Path(scratch))
        types = Path(scratch) / "osm-trams-on-roads.typ.xml"
        _write_typemap(_osm_typemap(home), types)
        output = _run_tool([str(_netconvert(home)), "--osm-files", str(osm_file.resolve()), "--type-files",
                            str(types), "--keep-edges.in-geo-boundary", ",".join(f"{value:.6f}" for value in bbox),
                            *NETCONVERT_OPTIONS, "--output-file", NET_FILE], folder, "netconvert",
                           "expected an OSM XML extract with roads covering the routes' stops", home)
    logger.debug("netconvert: %d warnings", output.count("Warning:"))
    counts: Counter[str] = Counter()
    for _, element in ET.iterparse(folder / NET_FILE):
        if element.tag == "edge" and element.get("function") != "internal":
            counts["edges"] += 1
        elif element.tag == "tlLogic":
            counts["traffic_lights"] += 1
        if element.tag in _NET_ELEMENTS:
            element.clear()  # networks are large: keep none of it
    if not counts["edges"]:
        raise DataFileError(f"netconvert kept no road of {osm.name} within {bbox}; expected an OSM extract that "
                            "covers the routes' stops")
    return {"edges": counts["edges"], "traffic_lights": counts["traffic_lights"], "bbox": list(bbox)}


def _write_typemap(source: Path, target: Path) -> None:
    """Write SUMO's OSM type map ``source`` with trams allowed on every road type but
    :data:`TRAM_CLOSED_ROAD_TYPES` (step 2)."""
    tree = ET.parse(source)
    for road in tree.getroot().iter("type"):
        disallowed = road.get("disallow", "").split()
        if road.get("id", "").startswith("highway.") and road.get("id") not in TRAM_CLOSED_ROAD_TYPES \
                and "tram" in disallowed:
            road.set("disallow", " ".join(vclass for vclass in disallowed if vclass != "tram"))
    tree.write(target, encoding="UTF-8", xml_declaration=True)


def _build_transit(home: Path, feed: Path, selection: _Selection, folder: Path, *, date: datetime.date,
                   begin_s: float, end_s: float) -> dict[str, Any]:
    """Write the buses and trams, their stops and types (step 3); their counts."""
    outputs = {"--route-output": TRANSIT_FILE, "--additional-output": STOPS_FILE, "--vtype-output": TYPES_FILE}
    for name in outputs.values():
        (folder / name).unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix=".gtfs2pt-", dir=folder) as scratch:
        subset = Path(scratch) / "feed.zip"
        selection.write_feed(feed, subset, begin_s, end_s)
        # gtfs2pt writes its split networks and any other file into its working folder: the scratch
        # one. It keeps the stops of the window (the feed holds no other) and the vehicles that set
        # off within its window, STOP_DWELL_S before their first stop's departure: its window starts
        # that much earlier, so that it keeps them all (_finish_vehicles).
        command = [sys.executable, str(_gtfs2pt(home)), "--network", str((folder / NET_FILE).resolve()),
                   "--gtfs", str(subset), "--date", date.strftime("%Y%m%d"),
                   "--begin", f"{max(0.0, begin_s - STOP_DWELL_S):g}", "--end", f"{end_s:g}",
                   "--modes", ",".join(sorted(set(selection.routes.values()))),
                   "--network-split", str(Path(scratch) / "split"), *GTFS2PT_OPTIONS]
        command += [part for option, name in outputs.items() for part in (option, str((folder / name).resolve()))]
        output = _run_tool(command, Path(scratch), "gtfs2pt.py",
                           "expected a GTFS feed whose stops lie on the network's roads", home)
    if not all((folder / name).is_file() for name in outputs.values()):
        raise DataFileError(f"gtfs2pt.py mapped no trip of {', '.join(selection.routes)} onto the network; expected "
                            f"stops on its roads. Its last messages:\n{_tail(output)}")
    vehicles = _finish_vehicles(folder / TRANSIT_FILE, selection, begin_s)
    if not vehicles:
        raise DataFileError(f"gtfs2pt.py wrote no bus or tram for the {selection.trips_in_window} trips in the "
                            f"window; expected their stops on the network's roads. Its last messages:\n{_tail(output)}")
    unmapped = selection.trips_in_window - sum(vehicles.values())
    if unmapped > 0:
        logger.warning("gtfs2pt.py mapped %d of the %d trips in the window: %d left out (no path between two of "
                       "their stops, or fewer than two of their stops mapped)", sum(vehicles.values()),
                       selection.trips_in_window, unmapped)
    stops = sum(1 for _, element in ET.iterparse(folder / STOPS_FILE) if element.tag in ("busStop", "trainStop"))
    return {"vehicles": dict(vehicles), "trips_in_window": selection.trips_in_window, "stops": stops,
            "routes": sorted(selection.routes)}


def _finish_vehicles(path: Path, selection: _Selection, begin_s: float) -> Counter[str]:
    """Give each vehicle of gtfs2pt's route file ``path`` its GTFS trip_id and route_id as params
    (:data:`TRIP_PARAM`, :data:`ROUTE_PARAM`), and set off at ``begin_s`` those due to set off
    before it; the number of vehicles of each type."""
    trip_of_name = {name: trip for trip, name in selection.trip_names.items()}
    tree = ET.parse(path)
    counts: Counter[str] = Counter()
    for vehicle in tree.getroot().iter("vehicle"):
        # A trip whose first stop in the window comes within STOP_DWELL_S of its start sets off at
        # the start (SUMO drops a vehicle due before it).
        if float(vehicle.get("depart", "0")) < begin_s:
            vehicle.set("depart", f"{begin_s:g}")
        # gtfs2pt names a vehicle <trip>.<day>, and the part after midnight of a trip running past it
        # <trip>.trimmed.<day>.
        trip = trip_of_name[vehicle.get("id", "").rpartition(".")[0].removesuffix(".trimmed")]
        params = [ET.Element("param", key=TRIP_PARAM, value=trip),
                  ET.Element("param", key=ROUTE_PARAM, value=selection.trips[trip])]
        for position, param in enumerate(params):
            vehicle.insert(position, param)
        counts[vehicle.get("type", "")] += 1
    ET.indent(tree)
    tree.write(path, encoding="UTF-8", xml_declaration=True)
    return counts


def _build_cars(home: Path, folder: Path, *, begin_s: float, end_s: float, car_period_s: float | None,
                seed: int) -> dict[str, Any]:
    """Write the cars (step 4); their count."""
    (folder / CARS_FILE).unlink(missing_ok=True)
    demand = (["--period", f"{car_period_s:g}"] if car_period_s is not None
              else ["--insertion-density", f"{CAR_DENSITY_PER_KM_H:g}"])
    with tempfile.TemporaryDirectory(prefix=".cars-", dir=folder) as scratch:
        net = str((folder / NET_FILE).resolve())
        _run_tool([sys.executable, str(_random_trips(home)), "--net-file", net, "--output-trip-file", "cars.trips.xml",
                   "--seed", str(seed), "--begin", f"{begin_s:g}", "--end", f"{end_s:g}", *demand,
                   "--fringe-factor", f"{FRINGE_FACTOR:g}", "--min-distance", f"{MIN_TRIP_DISTANCE_M:g}",
                   "--prefix", "car", "--trip-attributes", 'departLane="best" departSpeed="max"', "--no-validate"],
                  Path(scratch), "randomTrips.py", "expected a network with roads open to cars", home)
        _run_tool([str(_duarouter(home)), "--net-file", net, "--route-files", "cars.trips.xml", "--output-file",
                   str((folder / CARS_FILE).resolve()), "--alternatives-output", "cars.alt.xml", "--routing-algorithm",
                   "CH", "--ignore-errors", "--remove-loops", "--seed", str(seed), "--no-step-log", "--no-warnings"],
                  Path(scratch), "duarouter", "expected car trips on a network with roads open to cars", home)
    cars = sum(1 for _, element in ET.iterparse(folder / CARS_FILE) if element.tag == "vehicle")
    return {"cars": cars}


def _write_sumocfg(path: Path, begin_s: float, end_s: float, seed: int) -> None:
    configuration = ET.Element("configuration")
    sections = {
        # The types and stops come first: the routes name them.
        "input": {"net-file": NET_FILE, "additional-files": f"{TYPES_FILE},{STOPS_FILE}",
                  "route-files": f"{TRANSIT_FILE},{CARS_FILE}"},
        "time": {"begin": f"{begin_s:g}", "end": f"{end_s:g}"},
        "processing": {"time-to-teleport": f"{TIME_TO_TELEPORT_S:g}", "ignore-route-errors": "true"},
        "random_number": {"seed": str(seed)},
        "report": {"no-step-log": "true"},
    }
    for section, values in sections.items():
        element = ET.SubElement(configuration, section)
        for option, value in values.items():
            ET.SubElement(element, option, value=value)
    ET.indent(configuration)
    ET.ElementTree(configuration).write(path, encoding="UTF-8", xml_declaration=True)
