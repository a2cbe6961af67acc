"""The embedded city as a SUMO scenario: network, peak-hour demand, bus lines with a timetable,
emergency vehicles, built once from the OSM extract and cached.

:func:`city_scenario` returns a :class:`Scenario` whose ``sumocfg`` SUMO runs as it is (one hour,
0 to 3600 s). Everything is derived from the OSM file, the SUMO version and the seed, so the same
three give the same scenario. The steps (their figures are in ``docs/scenario.md``):

1. **Network** (:data:`NETCONVERT_OPTIONS`). ``netconvert`` reads the OSM file (decompressed to a
   temporary file first) keeping the roads cars may use (``--keep-edges.by-vclass passenger``:
   footways, cycleways, rails go), merges geometry-only nodes (``--geometry.remove``), recognises
   roundabouts and motorway ramps (``--roundabouts.guess``, ``--ramps.guess``), joins the nodes of
   one junction (``--junctions.join``), turns OSM ``highway=traffic_signals`` nodes into traffic
   lights at the junction they belong to (``--tls.guess-signals``), drops signals on nodes that
   are not junctions (``--tls.discard-simple``), gives one program to signals a few metres apart
   (``--tls.join``), makes every program fixed-time (``--tls.default-type static``) and writes
   street names (``--output.street-names``). Every program is then read alone with
   :func:`~pilotage.adapters.sumo.read_signal_plans`; the traffic lights whose program it refuses
   (in the embedded city, mid-block pedestrian signals, whose single stage is all green then all
   red for pedestrians SUMO does not simulate here, and one junction the plan check refuses) have
   their junctions made priority junctions by a second ``netconvert`` run, from the network just
   written, with a node file that sets their type; so every traffic light of the scenario has a
   readable plan.
2. **Cars** (:data:`CAR_PERIOD_S`, :data:`FRINGE_FACTOR`, :data:`MIN_TRIP_DISTANCE_M`).
   SUMO's ``randomTrips.py`` (run by this Python interpreter, ``--seed`` the scenario's seed)
   draws one passenger-car trip every :data:`CAR_PERIOD_S` seconds from 0 to 3600 s, between
   random edges weighted towards the edges where the network ends (through and commuter traffic,
   ``--fringe-factor``), at least :data:`MIN_TRIP_DISTANCE_M` apart; ``duarouter`` routes them
   (fastest path at free flow, ``--ignore-errors`` drops the few trips with no path).
3. **Bus lines** (:data:`BUS_LINES`, :data:`BUS_HEADWAY_S`). Around the centre of the traffic
   lights, the city is cut into :data:`TERMINAL_SECTORS` angular sectors; in each, the primary,
   secondary or tertiary two-way road edge farthest from the centre (within the radius that holds
   90 % of the traffic lights) is a terminus. A line joins two termini at least
   :data:`MIN_LINE_ANGLE_DEG` apart, by the fastest path in each direction over roads open to
   buses and emergency vehicles, motorways excluded. Lines are chosen one by one: the pair whose
   two directions pass the most traffic lights no line passes yet (then the most traffic lights;
   then the lowest sector numbers), each terminus serving one line. Stops (``<busStop>``, 20 m on
   the rightmost lane open to buses, mid-edge, shared by the lines that stop on that edge) are
   placed on the first and last edges and, in between, on the first edge of
   :data:`MIN_STOP_EDGE_M` or more whose middle is at least :data:`BUS_STOP_SPACING_M` of route
   after the previous stop. Each direction runs a bus every :data:`BUS_HEADWAY_S` from its line's
   start (lines start a fraction of a headway apart, from 0 s), each bus an individual
   ``<vehicle>`` of vType ``bus`` (vClass bus) over the whole line, dwelling :data:`BUS_DWELL_S` at
   each stop. The timetable is the ``arrival`` of each stop:
   departure + :data:`TIMETABLE_SLACK` x the free-flow running time to the stop (edge length over
   its speed limit) + the dwells of the stops before; the slack was measured (on the coordinated
   signal timings of step 5) so that the median stop arrival of the peak hour is on time. SUMO
   does not act on ``arrival``; it is read back with
   ``libsumo.vehicle.getStops(...)[k].intendedArrival`` and written in the stop output.
4. **Emergency vehicles** (:data:`EMERGENCY_EVERY_S`, :data:`EMERGENCY_SPEED_FACTOR`). One every
   :data:`EMERGENCY_EVERY_S`, from half that time, of vType ``emergency`` (vClass emergency, no
   blue-light device: it keeps to the traffic rules but drives at
   :data:`EMERGENCY_SPEED_FACTOR` x the speed limit, an assumption), each on one of the
   :data:`EMERGENCY_ROUTES` fastest paths between two termini that pass the most traffic lights,
   in turn.
5. **Signal timings** (:data:`WEBSTER_OPTIONS`, :data:`MIN_GREEN_S`, :data:`MAX_GREEN_FACTOR`).
   netconvert's programs are guesses (equal splits, a 90-s cycle, every offset 0): each traffic
   light is timed again for the demand above (cars, buses, emergency vehicles) with SUMO's tools,
   run by this Python interpreter, in two variants. ``tlsCycleAdaptation.py`` applies Webster's
   formula to the hour's flows through each light: its cycle and the split of its greens, no
   green under :data:`MIN_GREEN_S` (``--min-green``), every amber set to the longest amber of the
   network (``--yellow-time``, whole seconds). Each amber is then put back to netconvert's
   duration (computed from the approach speed), the seconds it loses going to the green before
   it, so the cycle stays the tool's. *Isolated*: each light at its own Webster cycle.
   *Coordinated* (the default): one cycle for the whole city, the longest Webster cycle of its
   lights (``--unified-cycle``), then ``tlsCoordinator.py`` gives each light the offset that
   carries the main flows of the car routes from one light to the next; the offsets are rounded
   to whole seconds within the cycle. A light keeps netconvert's program when the tool leaves it
   out (no flow through it), gives it a phase of 0 s or less, or times it into a program
   :func:`~pilotage.adapters.sumo.programs.program_plan` refuses. Each variant's programs are
   written as program ``pilotage`` (``signals.add.xml``, ``signals-isolated.add.xml``; SUMO runs
   it, loaded after the network), each green phase with a ``minDur`` and a ``maxDur``: the range
   pilotage's plans may cut or extend it in, from :data:`MIN_GREEN_S` (or the phase's own
   duration, when shorter) to :data:`MAX_GREEN_FACTOR` x its duration. SUMO runs a static
   program at its durations, so the ranges change nothing by themselves. Every program SUMO runs
   is read with :func:`~pilotage.adapters.sumo.read_signal_plans` before the scenario is kept.
6. **Configuration** ``city.sumocfg`` (coordinated) and ``city-isolated.sumocfg``: the files above
   by relative paths, each with its variant's programs, begin 0, end 3600 s,
   ``--time-to-teleport`` :data:`TIME_TO_TELEPORT_S`, the seed, no step log, no output file (the
   caller adds its own).

**Cache.** The scenario is built in a temporary folder beside ``sumo-city-<digest>`` under
:func:`~pilotage.adapters.osm.cache_directory` and renamed to it when complete, so a half-built
scenario is never used. The digest covers the OSM file's bytes, the version of the ``eclipse-sumo``
package that runs the tools, :data:`BUILDER_VERSION` and the seed. A later call with the same
finds the folder and returns it without running any tool; both variants are in the same folder.

Tools run as subprocesses with a timeout (:data:`TOOL_TIMEOUT_S`). SUMO is an extra
(``pip install 'pilotage[sim]'``): :func:`city_scenario` imports it, this module does not.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import importlib.metadata
import itertools
import json
import logging
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from pilotage.adapters.osm import cache_directory, decompressed, osm_content
from pilotage.adapters.sumo.programs import AMBER_STATES, GREEN_STATES, program_plan, read_signal_plans
from pilotage.core import DataFileError, InvalidInputError

logger = logging.getLogger(__name__)

#: Bump when a rule or figure below changes, so cached scenarios are rebuilt.
BUILDER_VERSION = 3

#: The simulated period: the peak hour (s).
BEGIN_S = 0.0
END_S = 3600.0

#: netconvert's options, beside the input and output files (why each: the module docstring).
NETCONVERT_OPTIONS: tuple[str, ...] = (
    "--keep-edges.by-vclass", "passenger",
    "--geometry.remove",
    "--roundabouts.guess",
    "--ramps.guess",
    "--junctions.join",
    "--tls.guess-signals",
    "--tls.discard-simple",
    "--tls.join",
    "--tls.default-type", "static",
    "--output.street-names",
)

#: The shortest green a controller gives a phase (s), and how far it may extend it (x its duration).
#: The shortest green is also the one the timing tool gives.
MIN_GREEN_S = 8.0
MAX_GREEN_FACTOR = 1.5
#: tlsCycleAdaptation.py's options beside the files and the amber (why: the module docstring, step 5):
#: the hour whose flows it times the lights for, and the shortest green (the tool takes whole
#: seconds). Its other options keep their defaults: 4 s lost per phase, a 2-s saturation headway
#: (1800 vehicles per hour and lane), cycles from 20 to 120 s.
WEBSTER_OPTIONS: tuple[str, ...] = ("--begin", f"{BEGIN_S:g}", "--min-green", f"{MIN_GREEN_S:.0f}")

#: One car trip every this many seconds (3000 trips per hour): the network is busy (queues at
#: signals) but does not lock up, which 3600 and 4800 trips per hour do (docs/scenario.md).
CAR_PERIOD_S = 1.2
#: Weight of the edges where the network ends against inner edges, as origins and destinations.
FRINGE_FACTOR = 5.0
#: Shortest straight-line distance between a trip's origin and destination edges (m).
MIN_TRIP_DISTANCE_M = 1500.0

#: Bus lines, each run in both directions.
BUS_LINES = 11
#: Time between two buses of one line in one direction (s).
BUS_HEADWAY_S = 300.0
#: Route length from one stop to the next, at least (m): 493 m on average on the embedded city.
BUS_STOP_SPACING_M = 300.0
#: Length of a stop (m), and the shortest edge a stop is placed on (m).
BUS_STOP_LENGTH_M = 20.0
MIN_STOP_EDGE_M = 40.0
#: Time a bus stands at each stop (s).
BUS_DWELL_S = 20.0
#: Scheduled running time over free-flow running time (signals, traffic, stops and starts): with
#: 2.3 the median lateness of the peak hour's stop arrivals is about 0 on the coordinated programs
#: (measured: +2.5 s).
TIMETABLE_SLACK = 2.3
#: Angular sectors around the centre of the traffic lights, one terminus each.
TERMINAL_SECTORS = 24
#: Smallest angle between a line's two termini, seen from the centre (degrees).
MIN_LINE_ANGLE_DEG = 120.0
#: Road types a terminus may lie on.
TERMINAL_ROAD_TYPES = frozenset({"highway.primary", "highway.secondary", "highway.tertiary"})
#: Road types buses and emergency vehicles do not use (city routes).
EXCLUDED_ROAD_TYPES = frozenset({"highway.motorway", "highway.motorway_link"})

#: One emergency vehicle every this many seconds (s), from half of it.
EMERGENCY_EVERY_S = 300.0
#: Emergency vehicles drive at this multiple of the speed limit (no blue-light device).
EMERGENCY_SPEED_FACTOR = 1.3
#: Routes emergency vehicles take in turn.
EMERGENCY_ROUTES = 6

#: A vehicle stuck this long (s) is moved ahead by SUMO (its default).
TIME_TO_TELEPORT_S = 300.0
#: Longest time a SUMO tool may run (s).
TOOL_TIMEOUT_S = 900.0

_SIM_EXTRA = "pip install 'pilotage[sim]'"
_SUMMARY = "scenario.json"
_SUMOCFG = "city.sumocfg"
_ISOLATED_SUMOCFG = "city-isolated.sumocfg"
_NET = "city.net.xml"
_CARS = "cars.rou.xml"
_BUSES = "buses.rou.xml"
_BUS_STOPS = "bus-stops.add.xml"
_SIGNALS = "signals.add.xml"
_ISOLATED_SIGNALS = "signals-isolated.add.xml"
_PROGRAM_ID = "pilotage"
_EMERGENCY = "emergency.rou.xml"
_BUS_TYPE = "bus"
_EMERGENCY_TYPE = "emergency"
_TAIL_LINES = 15
_NET_ELEMENTS = frozenset({"edge", "junction", "connection", "tlLogic", "roundabout"})
#: (sumocfg, signals file) of each variant of the signal timings.
_VARIANT_FILES = {"coordinated": (_SUMOCFG, _SIGNALS), "isolated": (_ISOLATED_SUMOCFG, _ISOLATED_SIGNALS)}


@dataclass(frozen=True)
class Scenario:
    """A SUMO scenario of the embedded city, ready to run (paths absolute, times in seconds).

    Attributes:
        directory: the folder that holds every file below, and those of the other variant.
        sumocfg: the SUMO configuration to run.
        net: the road network with its traffic lights (netconvert's programs).
        car_routes, bus_routes, emergency_routes: the vehicles (route files).
        bus_stops_file: the ``<busStop>`` additional file.
        signals_file: the traffic-light programs SUMO runs (program ``pilotage``, timed for the
            demand), with the range of each green.
        coordinated: the programs share one cycle and are offset along the main flows; else each
            light has its own cycle, every offset 0.
        traffic_lights: traffic lights in the network, every one's program in ``signals_file``
            readable by :func:`~pilotage.adapters.sumo.read_signal_plans`.
        cars: passenger cars (routed trips) over the hour.
        bus_lines: bus lines, each run in both directions.
        bus_stops: bus stops.
        buses: bus trips (vehicles), all lines and directions.
        peak_buses_in_service: most buses running at once by the timetable (from departure to the
            scheduled arrival at the last stop).
        emergency_vehicles: emergency vehicles over the hour.
        begin_s, end_s: the simulated period.
        seed: the seed of the demand and of SUMO.
    """

    directory: Path
    sumocfg: Path
    net: Path
    car_routes: Path
    bus_routes: Path
    bus_stops_file: Path
    emergency_routes: Path
    signals_file: Path
    coordinated: bool
    traffic_lights: int
    cars: int
    bus_lines: int
    bus_stops: int
    buses: int
    peak_buses_in_service: int
    emergency_vehicles: int
    begin_s: float
    end_s: float
    seed: int


def city_scenario(osm: str | os.PathLike[str] | None = None, *, cache_dir: str | os.PathLike[str] | None = None,
                  rebuild: bool = False, seed: int = 42, coordinated: bool = True) -> Scenario:
    """The SUMO scenario of an OSM extract (default: the embedded city), built at the first call and
    cached (the steps and the cache: the module docstring).

    Args:
        osm: an OSM XML file, plain or compressed with gzip, bzip2 or xz.
        cache_dir: where scenarios are cached (default: :func:`~pilotage.adapters.osm.cache_directory`).
        rebuild: build again even when cached, and replace the cached one.
        seed: seed of the car demand and of SUMO, 0 to 2**31 - 1.
        coordinated: the variant whose programs SUMO runs: one common cycle with offsets along the
            main flows (True), or each light at its own cycle (False). Both are built together.

    Building takes a few tens of seconds; a cached scenario returns at once.

    Raises:
        InvalidInputError: ``seed`` is not an integer in range, or ``coordinated`` not a bool.
        DataFileError: the OSM file cannot be read, a SUMO tool fails or times out (its last
            messages kept), or the network has no traffic light or no room for the bus lines.
        ImportError: SUMO is not installed (the message says how to install it).
    """
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or not 0 <= seed < 2**31:
        raise InvalidInputError(f"expected seed to be an integer from 0 to 2**31 - 1, got {seed!r}", field="seed")
    seed = int(seed)
    if not isinstance(coordinated, bool):
        raise InvalidInputError(f"expected coordinated to be True or False, got {coordinated!r}", field="coordinated")
    osm_path, content = osm_content(osm)
    sumo, sumo_version = _sumo()
    digest = hashlib.sha256(content)
    digest.update(f"sumo {sumo_version} builder {BUILDER_VERSION} seed {seed}".encode())
    root = Path(cache_dir) if cache_dir is not None else cache_directory()
    target = root / f"sumo-city-{digest.hexdigest()[:20]}"
    if not rebuild:
        cached = _read_summary(target, coordinated)
        if cached is not None:
            logger.debug("SUMO scenario of %s from the cache: %s", osm_path.name, target)
            return cached
    logger.info("building the SUMO scenario of %s in %s (first use; cached afterwards)", osm_path.name, target)
    started = time.perf_counter()
    try:
        root.mkdir(parents=True, exist_ok=True)
        building = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=root))
    except OSError as exc:
        raise DataFileError(f"cannot write the SUMO scenario in {root}: {exc.strerror or exc}; give a writable "
                            "cache_dir, or set PILOTAGE_CACHE_DIR to a writable folder") from exc
    try:
        summary = _build(sumo, osm_path, building, seed)
        summary["sumo_version"] = sumo_version
        (building / _SUMMARY).write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        _put_in_place(building, target)
    finally:
        shutil.rmtree(building, ignore_errors=True)
    scenario = _read_summary(target, coordinated)
    if scenario is None:
        raise DataFileError(f"the SUMO scenario built in {target} cannot be read back; delete the folder and "
                            "call again")
    logger.info("SUMO scenario built in %.0f s: %d traffic lights, %d cars, %d bus lines, %d buses (%d at once), "
                "%d emergency vehicles", time.perf_counter() - started, scenario.traffic_lights, scenario.cars,
                scenario.bus_lines, scenario.buses, scenario.peak_buses_in_service, scenario.emergency_vehicles)
    return scenario


def _sumo() -> tuple[ModuleType, str]:
    """The ``sumo`` package (its tools are under ``sumo.SUMO_HOME``) and its version."""
    try:
        import sumo  # noqa: PLC0415 - SUMO is an extra; the rest of pilotage runs without it
        import sumolib  # noqa: F401, PLC0415 - the build reads the network with it

        version = importlib.metadata.version("eclipse-sumo")
    except (ImportError, importlib.metadata.PackageNotFoundError) as exc:
        raise ImportError(f"building the SUMO scenario needs SUMO's tools (eclipse-sumo, sumolib): {_SIM_EXTRA}"
                          ) from exc
    # Importing ``sumo`` sets SUMO_HOME and PROJ_DATA for its tools, which the subprocesses inherit.
    return sumo, version


def _read_summary(folder: Path, coordinated: bool) -> Scenario | None:
    try:
        summary = json.loads((folder / _SUMMARY).read_text(encoding="utf-8"))
        variant = summary["variants"][_variant(coordinated)]
        files = {name: folder / summary["files"][name] for name in
                 ("net", "car_routes", "bus_routes", "bus_stops_file", "emergency_routes")}
        files |= {name: folder / variant[name] for name in ("sumocfg", "signals_file")}
        counts: dict[str, Any] = {name: int(summary[name]) for name in
                                  ("traffic_lights", "cars", "bus_lines", "bus_stops", "buses",
                                   "peak_buses_in_service", "emergency_vehicles", "seed")}
        scenario = Scenario(directory=folder, **files, coordinated=coordinated, **counts,
                            begin_s=float(summary["begin_s"]), end_s=float(summary["end_s"]))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        logger.warning("rebuilding the SUMO scenario: the cached one in %s is unusable (%s)", folder, exc)
        return None
    missing = [path.name for path in files.values() if not path.is_file()]
    if missing:
        logger.warning("rebuilding the SUMO scenario: %s lacks %s", folder, ", ".join(missing))
        return None
    return scenario


def _put_in_place(building: Path, target: Path) -> None:
    # A folder cannot replace a non-empty one: the old one moves aside first, and goes once the new
    # one is in place.
    retired = None
    if target.exists():
        retired = Path(tempfile.mkdtemp(prefix=f".{target.name}-old-", dir=target.parent))
        os.replace(target, retired / target.name)
    try:
        os.replace(building, target)
    except OSError:
        if not target.is_dir():
            raise
        logger.info("another process cached the same SUMO scenario first: %s is used", target)
    if retired is not None:
        shutil.rmtree(retired, ignore_errors=True)


def _build(sumo: ModuleType, osm_path: Path, folder: Path, seed: int) -> dict[str, Any]:
    import sumolib  # noqa: PLC0415 - SUMO is an extra

    osm_file = decompressed(osm_path, folder)
    if osm_file == osm_path:
        osm_file = folder / "extract.osm"
        shutil.copyfile(osm_path, osm_file)
    net_path = folder / _NET
    unsignalised = _build_network(sumo, osm_file, net_path)
    osm_file.unlink()
    try:
        with _quiet_reader():
            traffic_lights = len(read_signal_plans(net_path))
    except DataFileError as exc:
        raise DataFileError(f"the network built from {osm_path.name} holds no traffic light pilotage can read "
                            f"({exc}); expected an extract with highway=traffic_signals nodes at junctions") from exc
    # The cars are drawn and routed by tools beside the bus lines, which do not depend on them.
    with ThreadPoolExecutor(max_workers=1) as pool:
        cars_run = pool.submit(_build_cars, sumo, net_path, folder, seed)
        graph = _TransitGraph(sumolib.net.readNet(str(net_path)))
        lines = graph.bus_lines()
        stops = _BusStops()
        timetables = [stops.place(str(number), direction, route, graph)
                      for number, line in enumerate(lines, 1) for direction, route in zip("ab", line, strict=True)]
        stops.write(folder / _BUS_STOPS)
        buses, peak_in_service = _write_buses(folder / _BUSES, timetables, len(lines))
        emergency = _write_emergency(folder / _EMERGENCY, graph.emergency_routes())
        cars = cars_run.result()
    variants = _time_signals(sumo, folder)
    for variant in variants.values():
        _write_sumocfg(folder / variant["sumocfg"], seed, variant["signals_file"])
    logger.info("SUMO scenario: %d traffic lights (%d signals made priority junctions: %s), %d cars, %d bus lines, "
                "%d stops, %d buses, %d emergency vehicles", traffic_lights, len(unsignalised),
                ", ".join(unsignalised) or "none", cars, len(lines), stops.count, buses, emergency)
    return {
        "files": {"net": _NET, "car_routes": _CARS, "bus_routes": _BUSES, "bus_stops_file": _BUS_STOPS,
                  "emergency_routes": _EMERGENCY},
        "variants": variants,
        "traffic_lights": traffic_lights, "unsignalised": unsignalised, "cars": cars, "bus_lines": len(lines),
        "bus_stops": stops.count, "buses": buses, "peak_buses_in_service": peak_in_service,
        "emergency_vehicles": emergency, "begin_s": BEGIN_S, "end_s": END_S, "seed": seed,
        "builder_version": BUILDER_VERSION,
    }


def _run_tool(command: list[str], folder: Path, what: str,
              expected: str = "a readable OSM extract with roads") -> str:
    """Run a SUMO tool in ``folder``; its output (stdout and stderr) when it succeeds.

    Raises:
        DataFileError: the tool cannot start, fails (the message says ``expected`` and keeps its
            last messages) or does not finish within :data:`TOOL_TIMEOUT_S`.
    """
    logger.debug("running %s", " ".join(command))
    try:
        done = subprocess.run(command, cwd=folder, capture_output=True, text=True, timeout=TOOL_TIMEOUT_S,
                              check=False)
    except subprocess.TimeoutExpired as exc:
        raise DataFileError(f"{what} did not finish within {TOOL_TIMEOUT_S:.0f} s; expected a city-sized OSM "
                            "extract: give a smaller one") from exc
    except OSError as exc:
        raise DataFileError(f"cannot run {what} ({command[0]}): {exc.strerror or exc}; reinstall SUMO: "
                            f"{_SIM_EXTRA}") from exc
    output = (done.stdout + done.stderr).strip()
    if done.returncode != 0:
        tail = "\n".join(output.splitlines()[-_TAIL_LINES:])
        raise DataFileError(f"{what} failed (exit status {done.returncode}); expected {expected}. Its last "
                            f"messages:\n{tail}")
    return output


def _build_network(sumo: ModuleType, osm_file: Path, net_path: Path) -> list[str]:
    """Write the network; the ids of the traffic lights made priority junctions."""
    netconvert = str(Path(sumo.SUMO_HOME) / "bin" / "netconvert")
    folder = net_path.parent
    converted = folder / "converted.net.xml"
    output = _run_tool([netconvert, "--osm-files", osm_file.name, *NETCONVERT_OPTIONS, "--output-file",
                        converted.name], folder, "netconvert")
    logger.debug("netconvert: %d warnings", output.count("Warning:"))
    refused, junctions = _unreadable_programs(converted)
    if not refused:
        converted.replace(net_path)
        return []
    # The junctions of a joined traffic light have ids netconvert made up (cluster_..., joinedS_...),
    # which only the converted network knows: the second run starts from it.
    nodes = ET.Element("nodes")
    for junction in junctions:
        ET.SubElement(nodes, "node", id=junction, type="priority")
    node_file = folder / "unsignalised.nod.xml"
    _write_xml(nodes, node_file)
    _run_tool([netconvert, "--sumo-net-file", converted.name, "--node-files", node_file.name,
               "--output.street-names", "--output-file", net_path.name], folder, "netconvert")
    converted.unlink()
    node_file.unlink()
    return refused


def _unreadable_programs(net_path: Path) -> tuple[list[str], list[str]]:
    """Ids of the traffic lights whose program read_signal_plans refuses (each tried alone), and of
    the junctions they control."""
    with _quiet_reader():
        return _refused_programs(net_path)


@contextlib.contextmanager
def _quiet_reader() -> Iterator[None]:
    """Drop the signal reader's log records meanwhile: its notes come once, when the programs SUMO
    runs are read at the end of the build."""
    reader_logger = logging.getLogger(read_signal_plans.__module__)
    quiet = logging.Filter(name="-")  # a name no logger has: every record is dropped
    reader_logger.addFilter(quiet)
    try:
        yield
    finally:
        reader_logger.removeFilter(quiet)


def _refused_programs(net_path: Path) -> tuple[list[str], list[str]]:
    refused: list[str] = []
    edge_end: dict[str, str] = {}
    controlling: dict[str, str] = {}  # edge entering a traffic-light junction: the traffic light
    with tempfile.TemporaryDirectory(prefix="pilotage-tls-") as folder:
        single = Path(folder) / "program.add.xml"
        for _, element in ET.iterparse(net_path):
            if element.tag == "tlLogic":
                additional = ET.Element("additional")
                additional.append(element)
                _write_xml(additional, single)
                try:
                    read_signal_plans(single)
                except DataFileError as exc:
                    logger.info("traffic light %s becomes a priority junction: %s", element.get("id"), exc)
                    refused.append(element.get("id", ""))
            elif element.tag == "edge" and element.get("function") != "internal":
                edge_end[element.get("id", "")] = element.get("to", "")
            elif element.tag == "connection" and element.get("tl"):
                controlling[element.get("from", "")] = element.get("tl", "")
            if element.tag in _NET_ELEMENTS:
                element.clear()  # networks are large: keep none of it
    junctions = sorted({edge_end[edge] for edge, tl_id in controlling.items() if tl_id in refused})
    return refused, junctions


def _build_cars(sumo: ModuleType, net_path: Path, folder: Path, seed: int) -> int:
    """Write the car routes; their number."""
    trips = folder / "cars.trips.xml"
    random_trips = str(Path(sumo.SUMO_HOME) / "tools" / "randomTrips.py")
    _run_tool([sys.executable, random_trips, "--net-file", net_path.name, "--output-trip-file", trips.name,
               "--seed", str(seed), "--begin", f"{BEGIN_S:g}", "--end", f"{END_S:g}", "--period", f"{CAR_PERIOD_S:g}",
               "--fringe-factor", f"{FRINGE_FACTOR:g}", "--min-distance", f"{MIN_TRIP_DISTANCE_M:g}",
               "--prefix", "car", "--trip-attributes", 'departLane="best" departSpeed="max"', "--no-validate"],
              folder, "randomTrips.py")
    alternatives = folder / "cars.alt.xml"
    _run_tool([str(Path(sumo.SUMO_HOME) / "bin" / "duarouter"), "--net-file", net_path.name, "--route-files",
               trips.name, "--output-file", _CARS, "--alternatives-output", alternatives.name,
               "--routing-algorithm", "CH", "--ignore-errors", "--remove-loops", "--seed", str(seed),
               "--no-step-log", "--no-warnings"], folder, "duarouter")
    trips.unlink()
    alternatives.unlink(missing_ok=True)
    return sum(1 for _, element in ET.iterparse(folder / _CARS) if element.tag == "vehicle")


class _TransitGraph:
    """The edges buses and emergency vehicles use, their fastest paths, and the termini of lines."""

    def __init__(self, net: Any) -> None:
        from scipy.sparse import csr_matrix  # noqa: PLC0415 - only a build needs it

        self.edges = [edge for edge in net.getEdges()
                      if edge.getType() not in EXCLUDED_ROAD_TYPES and edge.allows("bus") and edge.allows("emergency")]
        self.index = {edge.getID(): k for k, edge in enumerate(self.edges)}
        self.time_s = np.array([edge.getLength() / edge.getSpeed() for edge in self.edges])
        self.tls_between: dict[tuple[int, int], str] = {}
        rows, columns = [], []
        for k, edge in enumerate(self.edges):
            for following, connections in sorted(edge.getOutgoing().items(), key=lambda item: item[0].getID()):
                j = self.index.get(following.getID())
                usable = [c for c in connections if c.getFromLane().allows("bus") and c.getToLane().allows("bus")]
                if j is None or not usable:
                    continue
                rows.append(k)
                columns.append(j)
                if usable[0].getTLSID():
                    self.tls_between[k, j] = usable[0].getTLSID()
        self.arcs = csr_matrix((self.time_s[columns], (rows, columns)), shape=(len(self.edges), len(self.edges)))
        lights = [node.getCoord() for node in net.getNodes() if node.getType() == "traffic_light"]
        if not lights:
            raise DataFileError("the network has no traffic light, so no bus line can be laid through signals; "
                                "expected an extract with highway=traffic_signals nodes at junctions")
        self.centre = np.mean(lights, axis=0)
        self.radius_m = float(np.percentile(np.hypot(*(np.array(lights) - self.centre).T), 90))
        self.termini = self._termini()
        self.paths = self._paths()

    def _termini(self) -> dict[int, tuple[int, int]]:
        """Per sector, (inbound, outbound) edge indices of its terminus."""
        best: dict[int, tuple[float, str, int, int]] = {}
        for k, edge in enumerate(self.edges):
            if edge.getType() not in TERMINAL_ROAD_TYPES or edge.getLength() < MIN_STOP_EDGE_M:
                continue
            opposite = [self.index[e.getID()] for e in edge.getToNode().getOutgoing()
                        if e.getToNode() == edge.getFromNode() and e.getID() in self.index
                        and e.getLength() >= MIN_STOP_EDGE_M]
            if not opposite:
                continue
            offset = np.array(edge.getToNode().getCoord()) - self.centre
            start = np.array(edge.getFromNode().getCoord()) - self.centre
            distance_m = float(np.hypot(*offset))
            if distance_m > self.radius_m or distance_m >= float(np.hypot(*start)):
                continue  # only inbound edges within the radius stand for their terminus
            sector = int((math.degrees(math.atan2(offset[1], offset[0])) % 360) // (360 / TERMINAL_SECTORS))
            candidate = (distance_m, edge.getID(), k, min(opposite))
            if sector not in best or candidate[:2] > best[sector][:2]:
                best[sector] = candidate
        return {sector: (inbound, outbound) for sector, (_, _, inbound, outbound) in sorted(best.items())}

    def _paths(self) -> dict[tuple[int, int], list[int]]:
        """Fastest path from each terminus (inbound edge) to each other (outbound edge)."""
        from scipy.sparse.csgraph import dijkstra  # noqa: PLC0415 - only a build needs it

        sectors = list(self.termini)
        sources = [self.termini[s][0] for s in sectors]
        _, predecessors = dijkstra(self.arcs, directed=True, indices=sources, return_predecessors=True)
        paths = {}
        for row, origin in enumerate(sectors):
            for destination in sectors:
                if destination == origin:
                    continue
                edge = self.termini[destination][1]
                path = [edge]
                while edge != sources[row]:
                    edge = int(predecessors[row, edge])
                    if edge < 0:
                        break
                    path.append(edge)
                else:
                    paths[origin, destination] = path[::-1]
        return paths

    def traffic_lights(self, path: list[int]) -> set[str]:
        """Traffic lights a path passes."""
        return {self.tls_between[pair] for pair in itertools.pairwise(path) if pair in self.tls_between}

    def _angle_deg(self, first: int, second: int) -> float:
        return min(abs(first - second), TERMINAL_SECTORS - abs(first - second)) * 360 / TERMINAL_SECTORS

    def bus_lines(self) -> list[tuple[list[int], list[int]]]:
        """The lines' routes (edge indices), both directions each (rule in the module docstring)."""
        candidates = []
        for (first, second), forward in self.paths.items():
            backward = self.paths.get((second, first))
            if first < second and backward is not None and self._angle_deg(first, second) >= MIN_LINE_ANGLE_DEG:
                candidates.append((first, second, forward, backward,
                                   self.traffic_lights(forward) | self.traffic_lights(backward)))
        lines: list[tuple[list[int], list[int]]] = []
        served: set[str] = set()
        used: set[int] = set()
        while len(lines) < BUS_LINES:
            free = [c for c in candidates if c[0] not in used and c[1] not in used]
            if not free:
                break
            first, second, forward, backward, lights = max(free, key=lambda c: (len(c[4] - served), len(c[4]),
                                                                                   -c[0], -c[1]))
            lines.append((forward, backward))
            served |= lights
            used |= {first, second}
        if not lines:
            raise DataFileError("found no pair of termini with a bus route both ways between them; expected a "
                                "connected city network with primary, secondary or tertiary roads")
        return lines

    def emergency_routes(self) -> list[list[str]]:
        """Edge ids of the EMERGENCY_ROUTES fastest paths between termini at least MIN_LINE_ANGLE_DEG apart
        that pass the most traffic lights."""
        ranked = sorted(((len(self.traffic_lights(path)), -pair[0], -pair[1], path)
                         for pair, path in self.paths.items()
                         if self._angle_deg(*pair) >= MIN_LINE_ANGLE_DEG), reverse=True)
        return [[self.edges[k].getID() for k in path] for *_, path in ranked[:EMERGENCY_ROUTES]]


@dataclass(frozen=True)
class _Trip:
    """One direction of a line: its edges, its stops and the scheduled time to each from departure (s)."""

    line: str
    direction: str
    edges: list[str]
    stops: list[str]
    arrival_s: list[float]

    @property
    def name(self) -> str:
        return f"{self.line}{self.direction}"


class _BusStops:
    """Bus stops placed along the lines, shared by the lines that stop on the same edge."""

    def __init__(self) -> None:
        self.stops: dict[str, ET.Element] = {}  # by edge id

    @property
    def count(self) -> int:
        return len(self.stops)

    def place(self, line: str, direction: str, route: list[int], graph: _TransitGraph) -> _Trip:
        """The stops of one direction of a line (rule in the module docstring) and its timetable."""
        stops, arrival_s = [], []
        elapsed_s, since_stop_m = 0.0, math.inf
        for position, k in enumerate(route):
            edge = graph.edges[k]
            length_m, time_s = edge.getLength(), float(graph.time_s[k])
            if length_m >= MIN_STOP_EDGE_M and (since_stop_m + length_m / 2 >= BUS_STOP_SPACING_M
                                                or position == len(route) - 1):
                stops.append(self._stop(edge, line))
                run_s = elapsed_s + time_s * (0.5 + BUS_STOP_LENGTH_M / 2 / length_m)
                arrival_s.append(round(TIMETABLE_SLACK * run_s + BUS_DWELL_S * (len(stops) - 1)))
                since_stop_m = -length_m / 2
            since_stop_m += length_m
            elapsed_s += time_s
        return _Trip(line, direction, [graph.edges[k].getID() for k in route], stops, arrival_s)

    def _stop(self, edge: Any, line: str) -> str:
        stop = self.stops.get(edge.getID())
        if stop is None:
            lane = min((lane for lane in edge.getLanes() if lane.allows("bus")), key=lambda lane: lane.getIndex())
            middle_m = edge.getLength() / 2
            stop = ET.Element("busStop", id=f"stop{len(self.stops) + 1:03d}", lane=lane.getID(),
                              startPos=f"{middle_m - BUS_STOP_LENGTH_M / 2:.2f}",
                              endPos=f"{middle_m + BUS_STOP_LENGTH_M / 2:.2f}", lines="")
            if edge.getName():
                stop.set("name", edge.getName())
            self.stops[edge.getID()] = stop
        served = stop.get("lines", "").split()
        if line not in served:
            stop.set("lines", " ".join([*served, line]))
        return stop.get("id", "")

    def write(self, path: Path) -> None:
        additional = ET.Element("additional")
        additional.extend(sorted(self.stops.values(), key=lambda stop: stop.get("id", "")))
        _write_xml(additional, path)


def _write_buses(path: Path, trips: list[_Trip], n_lines: int) -> tuple[int, int]:
    """Write every bus; their number and the most in service at once by the timetable."""
    departures = []
    for k, trip in enumerate(trips):
        line_offset_s = round((k // 2) * BUS_HEADWAY_S / n_lines)
        departures += [(depart_s, trip) for depart_s in np.arange(BEGIN_S + line_offset_s, END_S, BUS_HEADWAY_S)]
    departures.sort(key=lambda item: (item[0], item[1].name))
    routes = ET.Element("routes")
    ET.SubElement(routes, "vType", id=_BUS_TYPE, vClass="bus")
    for trip in trips:
        ET.SubElement(routes, "route", id=f"line{trip.name}", edges=" ".join(trip.edges))
    count: dict[str, int] = {}
    in_service = []
    for depart_s, trip in departures:
        count[trip.name] = count.get(trip.name, 0) + 1
        bus = ET.SubElement(routes, "vehicle", id=f"bus{trip.name}.{count[trip.name]:02d}", type=_BUS_TYPE,
                            route=f"line{trip.name}", depart=f"{depart_s:g}", departLane="best",
                            line=trip.line)
        for stop, arrival_s in zip(trip.stops, trip.arrival_s, strict=True):
            ET.SubElement(bus, "stop", busStop=stop, duration=f"{BUS_DWELL_S:g}", arrival=f"{depart_s + arrival_s:g}")
        in_service.append((depart_s, depart_s + trip.arrival_s[-1] + BUS_DWELL_S))
    _write_xml(routes, path)
    return len(departures), _most_at_once(in_service)


def _most_at_once(intervals: list[tuple[float, float]]) -> int:
    """Most intervals [start, end) that overlap at one time."""
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    return int(np.max(np.cumsum([change for _, change in events]), initial=0))


def _write_emergency(path: Path, routes_edges: list[list[str]]) -> int:
    """Write the emergency vehicles; their number."""
    routes = ET.Element("routes")
    ET.SubElement(routes, "vType", id=_EMERGENCY_TYPE, vClass="emergency", speedFactor=f"{EMERGENCY_SPEED_FACTOR:g}")
    departures = np.arange(BEGIN_S + EMERGENCY_EVERY_S / 2, END_S, EMERGENCY_EVERY_S)
    for k, depart_s in enumerate(departures):
        vehicle = ET.SubElement(routes, "vehicle", id=f"emergency{k + 1:02d}", type=_EMERGENCY_TYPE,
                                depart=f"{depart_s:g}", departLane="best", departSpeed="max")
        ET.SubElement(vehicle, "route", edges=" ".join(routes_edges[k % len(routes_edges)]))
    _write_xml(routes, path)
    return len(departures)


def _variant(coordinated: bool) -> str:
    return "coordinated" if coordinated else "isolated"


@dataclass(frozen=True)
class _Program:
    """One traffic light's fixed-time program (seconds); ``timed`` when timed for the demand,
    False for netconvert's."""

    tl_id: str
    states: tuple[str, ...]
    durations_s: tuple[float, ...]
    offset_s: float
    timed: bool

    @property
    def cycle_s(self) -> float:
        return sum(self.durations_s)

    def phases(self) -> list[tuple[float, float, float, str, list[int]]]:
        """``(duration, minDur, maxDur, state, next)`` of each phase: a green phase (a green, no
        amber) ranges from :data:`MIN_GREEN_S` (or its duration, when shorter) to
        :data:`MAX_GREEN_FACTOR` times its duration; any other lasts its duration."""
        return [(duration_s, min(duration_s, MIN_GREEN_S), float(round(duration_s * MAX_GREEN_FACTOR)), state, [])
                if _is_green(state) else (duration_s, duration_s, duration_s, state, [])
                for duration_s, state in zip(self.durations_s, self.states, strict=True)]

    def refusal(self) -> str | None:
        """Why pilotage cannot drive this program with its ranges, or None when it can."""
        if min(self.durations_s) <= 0:
            return f"it has a phase of {min(self.durations_s):g} s"
        try:
            program_plan(self.tl_id, _PROGRAM_ID, self.offset_s, self.phases(), source="timed program")
        except DataFileError as exc:
            return str(exc)
        return None

    def element(self) -> ET.Element:
        """The program as ``<tlLogic programID="pilotage">``, ``minDur`` and ``maxDur`` on its green phases."""
        program = ET.Element("tlLogic", id=self.tl_id, type="static", programID=_PROGRAM_ID,
                             offset=f"{self.offset_s:g}")
        for duration_s, min_s, max_s, state, _ in self.phases():
            timing = {"duration": f"{duration_s:g}", "state": state}
            if _is_green(state):
                timing |= {"minDur": f"{min_s:g}", "maxDur": f"{max_s:g}"}
            ET.SubElement(program, "phase", timing)
        return program


def _is_amber(state: str) -> bool:
    return any(c in AMBER_STATES for c in state)


def _is_green(state: str) -> bool:
    return any(c in GREEN_STATES for c in state) and not _is_amber(state)


def _time_signals(sumo: ModuleType, folder: Path) -> dict[str, dict[str, Any]]:
    """Time every traffic light for the demand and write both variants' programs (module docstring,
    step 5); per variant, its files, the lights that keep netconvert's program and how many lights
    run each cycle (s).

    Raises:
        DataFileError: a tool fails, or a program SUMO would run is one pilotage cannot read.
    """
    tools = Path(sumo.SUMO_HOME) / "tools"
    netconvert = _read_programs(folder / _NET, timed=False)
    amber_s = max((duration_s for program in netconvert.values()
                   for duration_s, state in zip(program.durations_s, program.states, strict=True) if _is_amber(state)),
                  default=0.0)
    expected = "the network and the routes just written"
    webster = [sys.executable, str(tools / "tlsCycleAdaptation.py"), "--net-file", _NET, "--route-files",
               f"{_CARS},{_BUSES},{_EMERGENCY}", *WEBSTER_OPTIONS, "--yellow-time", str(math.ceil(amber_s))]
    isolated_file, unified_file = folder / "webster.add.xml", folder / "webster-unified.add.xml"
    offsets_file = folder / "offsets.add.xml"
    # The isolated timing runs beside the coordinated one, which takes two tools in turn.
    with ThreadPoolExecutor(max_workers=1) as pool:
        isolated_run = pool.submit(_run_tool, [*webster, "--output-file", isolated_file.name], folder,
                                   "tlsCycleAdaptation.py", expected)
        _run_tool([*webster, "--unified-cycle", "--output-file", unified_file.name], folder,
                  "tlsCycleAdaptation.py --unified-cycle", expected)
        with _quiet_reader():
            unified = _timed_programs(netconvert, unified_file)
        _write_programs(unified, folder / _SIGNALS)
        _run_tool([sys.executable, str(tools / "tlsCoordinator.py"), "--net-file", _NET, "--route-file", _CARS,
                   "--additional-file", _SIGNALS, "--output-file", offsets_file.name], folder, "tlsCoordinator.py",
                  expected)
        isolated_run.result()
    with _quiet_reader():
        isolated = _timed_programs(netconvert, isolated_file)
    programs = {"coordinated": _with_offsets(unified, offsets_file), "isolated": isolated}
    for path in (isolated_file, unified_file, offsets_file):
        path.unlink()
    variants = {}
    for name, (sumocfg, signals) in _VARIANT_FILES.items():
        _write_programs(programs[name], folder / signals)
        read_signal_plans(folder / signals, program_id=_PROGRAM_ID)  # every program SUMO runs is readable
        kept = sorted(tl_id for tl_id, program in programs[name].items() if not program.timed)
        cycles = Counter(program.cycle_s for program in programs[name].values())
        logger.info("%s signal timings: %d traffic lights timed for the demand, %d keep netconvert's program; "
                    "cycles %s", name, len(programs[name]) - len(kept), len(kept),
                    ", ".join(f"{cycle_s:g} s x {n}" for cycle_s, n in cycles.most_common()))
        variants[name] = {"sumocfg": sumocfg, "signals_file": signals, "netconvert_programs": kept,
                          "cycles_s": {f"{cycle_s:g}": n for cycle_s, n in sorted(cycles.items())}}
    return variants


def _read_programs(path: Path, *, timed: bool) -> dict[str, _Program]:
    """The ``<tlLogic>`` programs of a SUMO file (netconvert and the timing tool write one per
    traffic light), by traffic light id, in file order."""
    programs = {}
    for _, element in ET.iterparse(path):
        if element.tag == "tlLogic":
            phases = element.findall("phase")
            tl_id = element.get("id", "")
            programs[tl_id] = _Program(tl_id, tuple(phase.get("state", "") for phase in phases),
                                       tuple(float(phase.get("duration", "0")) for phase in phases),
                                       offset_s=float(element.get("offset", "0")), timed=timed)
        if element.tag in _NET_ELEMENTS:
            element.clear()  # networks are large: keep none of it
    return programs


def _timed_programs(netconvert: dict[str, _Program], path: Path) -> dict[str, _Program]:
    """Each traffic light's program as the timing tool wrote it in ``path``, its ambers back to
    netconvert's; netconvert's program where the tool wrote none, or one pilotage cannot drive."""
    timed = _read_programs(path, timed=True)
    programs: dict[str, _Program] = {}
    for tl_id, original in netconvert.items():
        program = timed.get(tl_id)
        reason: str | None = "the tool left it out (no flow through it)"
        if program is not None:
            program = _with_own_ambers(program, original)
            reason = program.refusal()
        if program is None or reason is not None:
            logger.info("traffic light %s keeps netconvert's program: %s", tl_id, reason)
            program = original
        programs[tl_id] = program
    return programs


def _with_own_ambers(timed: _Program, original: _Program) -> _Program:
    """``timed`` with each amber as long as in ``original`` (the same phases), the seconds it gains
    or loses taken from or given to the green phase before it: the cycle stays."""
    durations_s = list(timed.durations_s)
    n_phases = len(durations_s)
    for k, state in enumerate(timed.states):
        change_s = durations_s[k] - original.durations_s[k]
        if _is_amber(state) and change_s:
            # An amber ends a green phase: a readable program has one, the nearest before the amber.
            green = next((k - j) % n_phases for j in range(1, n_phases) if _is_green(timed.states[(k - j) % n_phases]))
            durations_s[green] += change_s
            durations_s[k] = original.durations_s[k]
    return dataclasses.replace(timed, durations_s=tuple(durations_s))


def _with_offsets(programs: dict[str, _Program], path: Path) -> dict[str, _Program]:
    """``programs`` with the offsets tlsCoordinator.py wrote in ``path``, rounded to whole seconds
    within each cycle (a light it gives none keeps its own)."""
    offsets_s = {element.get("id", ""): float(element.get("offset", "0"))
                 for element in ET.parse(path).getroot().iter("tlLogic")}
    return {tl_id: dataclasses.replace(program, offset_s=round(offsets_s[tl_id]) % program.cycle_s)
            if tl_id in offsets_s else program for tl_id, program in programs.items()}


def _write_programs(programs: dict[str, _Program], path: Path) -> None:
    additional = ET.Element("additional")
    additional.extend(program.element() for program in programs.values())
    _write_xml(additional, path)


def _write_sumocfg(path: Path, seed: int, signals: str) -> None:
    configuration = ET.Element("configuration")
    sections = {
        "input": {"net-file": _NET, "route-files": f"{_CARS},{_BUSES},{_EMERGENCY}",
                  "additional-files": f"{signals},{_BUS_STOPS}"},
        "time": {"begin": f"{BEGIN_S:g}", "end": f"{END_S:g}"},
        "processing": {"time-to-teleport": f"{TIME_TO_TELEPORT_S:g}"},
        "random_number": {"seed": str(seed)},
        "report": {"no-step-log": "true"},
    }
    for section, values in sections.items():
        element = ET.SubElement(configuration, section)
        for option, value in values.items():
            ET.SubElement(element, option, value=value)
    _write_xml(configuration, path)


def _write_xml(root: ET.Element, path: Path) -> None:
    ET.indent(root)
    ET.ElementTree(root).write(path, encoding="UTF-8", xml_declaration=True)
