"""The closed loop: a SUMO simulation whose traffic lights the engines drive, measured.

:func:`simulate` starts SUMO through libsumo on any scenario with traffic lights and, at every
step:

- **Signals**: the traffic lights' own programs become the base plans
  (:func:`~pilotage.adapters.sumo.programs.program_plan`, with the offset each runs at when the
  simulation starts), and the priority engine's plans are what the lights show: each link is green
  when its signal group is (:meth:`PriorityEngine.green_groups`), amber for as long as its program
  shows amber after a green (never longer than the group's shortest intergreen, so an amber never
  overlaps a conflicting green), red otherwise. A green link shows the character (``G``, or ``g``
  for a minor green that yields) of the program's phase with the same green groups; where no phase
  has them (during an interstage), a link that is ever a minor green shows ``g``. Changes are
  applied at the first step at or after the time planned, which keeps every intergreen, minimum
  green and maximum cycle of a program timed in multiples of the step (whole seconds for 1-s
  steps).
- **Safety**: every change of a light's state is first checked by the safety monitor
  (:func:`~pilotage.core.safety.check_schedule`) against the greens actually shown before it; a
  change it refuses is not applied (the light keeps its state) and is counted. At the end, the
  whole history of greens shown is checked again and every violation counted: the report's
  ``violations``, which must be 0.
- **Bus and tram priority**: a vehicle of class bus or tram within ``request_range_m`` of its
  next traffic light asks for priority for the signal group of its link, with its arrival time
  (distance over its speed, no less than half its allowed speed, plus the dwell of a stop before the
  stop line), its lateness (at its next stop, by the stop's ``arrival`` or else its ``until`` time,
  when the scenario gives one: :func:`stop_lateness_s`)
  and its passengers, again every ``request_every_s``; it checks out when it has passed. With
  ``requests_from="positions"``, the vehicle sends only its position and trip
  (``vehicle.position``) once a second, and pilotage's tracker
  (:class:`~pilotage.signal_priority.tracking.VehicleTracker`) asks, renews, checks out and
  cancels for it: its trip is its SUMO route and stops (each stop due at its ``arrival``, or its
  ``until`` less its dwell), and the queues at the lights come from their approach lanes' halted
  vehicles every ``request_every_s`` (``detectors``), as stop-line detectors would give them.
- **Emergency corridors**: a vehicle of class emergency opens a corridor on its own route, from
  where it is to the end, when it sets off, drives the corridor's route, reports its position every
  ``update_every_s``, and closes the corridor on arrival. SUMO's emergency vehicles may take bus
  lanes (:func:`~pilotage.adapters.sumo.network.read_network`), so any route SUMO drives them on is
  the network's but for the edges at the scenario's fringe that only lead into or out of it: the
  corridor covers the rest, and the vehicle reports, while on those, the junction where the
  corridor starts (before) or ends (after); inside a junction, the end of the edge it came along.
  A corridor that cannot open is counted by why (``OFF_NETWORK``: the network holds no edge of the
  route), and so is each light on a corridor's routes that the vehicle has yet to cross (not one
  it set off past, nor one at whose stop line its trip ends): held at some time, else refused (by
  the reason last given), else never planned; and whether the vehicle crossed it within its hold's
  green. Every light an emergency vehicle crosses is counted, with whether it waited there (halted
  within :data:`SIGNAL_ZONE_M` of the stop line, not at a stop), corridors on or off.

Requests go through :class:`~pilotage.adapters.service.Service` as protocol messages, the same path
as over ZeroMQ, so the loop exercises the validation, the batching and the audit of the service.
With priority and corridors off, the engine still drives the lights on its base plans: the two runs
differ by the requests alone.

Measures: from SUMO's outputs, per vehicle class, travel time, time loss and stops, the person
delay and bus schedule adherence (:mod:`pilotage.adapters.sumo.measures`); for one bus route, a
time-space record (trajectories and the greens of its lights). Besides, measured as the run goes:

- **Time lost at signals** (buses, trams, emergency vehicles): over the steps within
  :data:`SIGNAL_ZONE_M` upstream of the stop line of the vehicle's next traffic light, each step at
  speed ``v`` under the allowed ``v_max`` loses ``step * (1 - v / v_max)``. A step does not count
  when the vehicle is stopped (at a stop, or any stop SUMO gives it); when its next stop lies on its
  route before that stop line (it is slowing down for the stop, or queued towards it); or, after it
  left a stop, until it is both :data:`AFTER_STOP_S` and :data:`AFTER_STOP_M` past the moment and
  place it left (it is accelerating away; past either, a bus queued just beyond its stop counts
  again).
- **Plan changes**: granted replies whose strategy changes the plan (not ``already_green``).
- **Grants used**: for each vehicle and light, the last plan-changing grant's ``green_from`` and
  ``green_until``; when the vehicle crosses the light (its next traffic light changes), whether the
  crossing step is within that green, give or take a step. Grants whose vehicle has not crossed by
  the end are counted apart.
- **Offset error**: every :data:`OFFSET_SAMPLE_EVERY_S`, for each light, the start of its current
  or next first stage (stage 0) in the engine's plan (:meth:`PriorityEngine.plan_ahead`) against
  the coordinated start ``offset + stage offset + n * cycle``, folded into half a cycle either way;
  per light and over all, the 95th percentile and the largest of its absolute value.
- **Teleports** (SUMO's count of vehicles it teleported) and the **insertion backlog** (vehicles
  due but not yet inserted): the largest over the run and the last.

**Outputs.** Each run writes every output file, the scenario's own (its ``tripinfo-output``, the
``file`` of its detectors and other additional outputs, its log) and the loop's, into a folder of
its own, by file name, never into the scenario's folder: SUMO puts its ``--output-prefix`` before
the file name of each output path it has already resolved, so the prefix climbs to the root
(``..`` at the root stays there) and comes down into the run's folder. When the scenario sets no
``tripinfo-output`` or ``stop-output``, the loop adds ``tripinfo.xml`` and ``stopinfo.xml``.

Nothing here imports SUMO at module import: :func:`simulate` imports libsumo
(:func:`~pilotage.adapters.sumo.network.import_libsumo`), and says how to install it when it is
missing.
"""

from __future__ import annotations

import dataclasses
import datetime
import itertools
import logging
import math
import multiprocessing
import os
import random
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Literal, TypedDict

import msgspec
import numpy as np

from pilotage.adapters.field import FieldSignals
from pilotage.adapters.gtfs import read_feed, timetable
from pilotage.adapters.service import Service
from pilotage.adapters.sumo.gtfs_scenario import TRIP_PARAM
from pilotage.adapters.sumo.measures import (
    ApproachMeasures,
    CorridorRequests,
    EmergencyTrip,
    GrantUse,
    LightMeasures,
    LoopMeasures,
    OffsetErrors,
    Offsets,
    PriorityRequests,
    Run,
    Safety,
    TimeSpace,
    Traffic,
    schedule_adherence,
    trip_measures,
)
from pilotage.adapters.sumo.network import (
    Light,
    import_libsumo,
    lon_lat,
    read_network,
    scenario_file,
    sumo_command,
)
from pilotage.adapters.sumo.programs import GREEN_STATES
from pilotage.adapters.zeromq import Client
from pilotage.core import DataFileError, InvalidInputError, RoadNetwork
from pilotage.core import protocol as wire
from pilotage.core.errors import TimedOutError, UnknownEntityError
from pilotage.core.safety import GreenSchedule, check_schedule
from pilotage.core.signals import SignalPlans
from pilotage.core.transit import TransitPath, Trip
from pilotage.signal_priority.corridors import CorridorConfig, CorridorEngine
from pilotage.signal_priority.engine import DEFAULT_MAX_ETA_S, PriorityConfig, PriorityEngine
from pilotage.signal_priority.tracking import TrackingConfig, VehicleTracker

logger = logging.getLogger(__name__)

#: Time lost within this distance (m) upstream of a traffic light's stop line counts as lost at signals.
SIGNAL_ZONE_M = 300.0
#: After leaving a stop, a vehicle is accelerating until it is this long (s) and this far (m) past it.
AFTER_STOP_S = 10.0
AFTER_STOP_M = 50.0
#: How often (s, simulated) each plan's offset error is sampled.
OFFSET_SAMPLE_EVERY_S = 10.0
#: SUMO vehicle classes and the class they are reported under.
REPORT_CLASS = {"bus": "bus", "coach": "bus", "tram": "tram", "emergency": "emergency", "passenger": "car",
                "private": "car", "taxi": "car", "evehicle": "car"}
#: Classes that ask for priority, and under which class of the protocol.
PRIORITY_CLASS = {"bus": "bus", "coach": "bus", "tram": "tram"}
#: A bus or tram accelerating to the allowed speed before its light (m/s²), for its earliest arrival.
ACCELERATION_MS2 = 1.0
#: Added to a request's arrival interval: the time to clear the stop line once there (s).
ETA_MARGIN_S = 2.0
#: A vehicle slower than this (m/s) is queued; at most this many vehicles ahead are counted.
HALTED_MS = 1.0
MAX_QUEUE_VEHICLES = 40

# The outputs the loop reads, and the file each gets when the scenario sets none.
_LOOP_OUTPUTS = {"tripinfo-output": "tripinfo.xml", "stop-output": "stopinfo.xml"}
_INVALID_SUMO_TIME = -1e9
_EMERGENCY_TYPE = "pilotage_emergency"
# How long the loop waits for a remote engine's reply (s, wall time): a step waits at most this once.
_ENGINE_TIMEOUT_S = 0.25
# Distances along a route within this (m) are the same point: sums of one route's edge lengths.
_SAME_POINT_M = 0.01
# The error counted for a request the remote engine did not answer.
_UNANSWERED = "UNANSWERED"


@dataclass(frozen=True)
class LoopOptions:
    """What a closed-loop run does (seconds and metres).

    Attributes:
        priority: bus and tram priority requests on.
        corridors: emergency corridors on.
        duration_s: simulated time from the scenario's begin (None: to its end, or until no vehicle
            is left when it has none).
        request_range_m: a bus or tram asks for priority within this distance of its next light.
        request_every_s: it asks again this often while it approaches.
        update_every_s: an emergency vehicle reports its position this often.
        min_lateness_s: buses get priority only when at least this late (None: every bus, the
            unconditional priority of a line without timetable).
        emergency_every_s: add an emergency vehicle this often, on a random route across the
            network (None: only the scenario's own).
        seed: SUMO's seed and the seed of the added emergency routes.
        sumo_args: further arguments for SUMO, unchanged.
        time_space: record the time-space diagram of one bus or tram route: the busiest route
            (the most vehicles) crossing at least three driven lights, or the busiest of
            ``time_space_line`` crossing one.
        time_space_line: the line (SUMO's ``line``, or its route id) whose route the time-space
            diagram shows (None: the busiest).
        engine: the request endpoint of a ``pilotage serve --sumocfg SCENARIO --clock field`` of
            this scenario: the loop drives the lights as a field adapter does
            (:mod:`pilotage.adapters.field`: commands that expire, the lights' own programs when
            the engine is lost) and sends its vehicles' requests there. None: an engine in this
            process.
        step_listener: called with the simulated time after each step (to act on a run from
            outside it, as a test that stops the engine does).
        requests_from: who makes the buses' and trams' priority requests: ``loop``, the loop, from
            what SUMO knows of each vehicle (its next light and link, the queue ahead of it);
            ``positions``, pilotage's tracker, from each vehicle's position and trip alone, as
            in service (docs/positions.md).
        timetable: a GTFS feed whose trips the buses and trams run, each naming its trip in its
            ``gtfs.trip_id`` parameter (as a scenario built by
            :func:`~pilotage.adapters.sumo.gtfs_scenario.build_gtfs_scenario` does): with requests
            from positions, its trips of ``timetable_date`` are matched onto the scenario's
            network and the tracker follows each vehicle on its trip's path and times, so the
            loop, the timetable and the positions all come from the feed (None: each vehicle's
            trip is its SUMO route and stops).
        timetable_date: the feed's service day (the simulation's clock is its time of day).
        own_control: SUMO runs the scenario's own traffic-light control untouched (its programs,
            actuated ones with their detectors): the engine drives no light, and priority and
            corridors are off. The arm that shows what pilotage's reading of the programs costs.
    """

    priority: bool = True
    corridors: bool = True
    duration_s: float | None = None
    request_range_m: float = 250.0
    request_every_s: float = 2.0
    update_every_s: float = 2.0
    min_lateness_s: float | None = None
    emergency_every_s: float | None = None
    seed: int = 42
    sumo_args: tuple[str, ...] = ()
    time_space: bool = True
    engine: str | None = None
    step_listener: Callable[[float], None] | None = None
    own_control: bool = False
    time_space_line: str | None = None
    requests_from: Literal["loop", "positions"] = "loop"
    timetable: str | None = None
    timetable_date: datetime.date | None = None

    def __post_init__(self) -> None:
        """Check every option's range.

        Raises:
            InvalidInputError: an option out of its range, or an engine's option given with a
                remote engine; ``field`` names it.
        """
        for name in ("request_range_m", "request_every_s", "update_every_s", "duration_s", "emergency_every_s"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value > 0):
                raise InvalidInputError(f"expected {name} > 0, got {value!r}", field=name)
        # The engine takes any threshold but NaN; a finite one is within the lateness a request may give.
        if self.min_lateness_s is not None and not (math.isinf(self.min_lateness_s)
                                                    or abs(self.min_lateness_s) <= wire.MAX_LATENESS_S):
            raise InvalidInputError(f"expected min_lateness_s from {-wire.MAX_LATENESS_S} to {wire.MAX_LATENESS_S} s "
                                    f"(or infinite), got {self.min_lateness_s!r}", field="min_lateness_s")
        # SUMO takes its seed as a 32-bit integer.
        if not (isinstance(self.seed, int) and not isinstance(self.seed, bool) and 0 <= self.seed < 2**31):
            raise InvalidInputError(f"expected seed to be a whole number from 0 to 2**31 - 1, got {self.seed!r}",
                                    field="seed")
        if self.own_control and (self.priority or self.corridors or self.engine is not None):
            raise InvalidInputError("expected priority and corridors off, and no engine, when SUMO runs the "
                                    "scenario's own control", field="own_control")
        if self.requests_from not in ("loop", "positions"):
            raise InvalidInputError(f"expected requests_from 'loop' or 'positions', got {self.requests_from!r}",
                                    field="requests_from")
        if self.timetable is not None and (self.requests_from != "positions" or self.timetable_date is None):
            raise InvalidInputError("expected requests from positions and a timetable_date with a timetable: the "
                                    "feed's trips are what the tracker follows", field="timetable")
        if self.requests_from == "positions" and self.engine is not None:
            raise InvalidInputError("expected no engine with requests made from positions: the engine follows the "
                                    "simulated trips, which only an engine in this process knows", field="engine")
        if self.engine is not None and self.min_lateness_s is not None:
            raise InvalidInputError("expected no min_lateness_s with an engine of its own: set it in that server's "
                                    "configuration ([priority] bus_lateness_s)", field="min_lateness_s")


def simulate(sumocfg: str | Path, options: LoopOptions | None = None,
             output_dir: str | os.PathLike[str] | None = None) -> Run:
    """Run the closed loop on the SUMO scenario ``sumocfg`` and return its measures, JSON-able dicts
    (:class:`~pilotage.adapters.sumo.measures.Run`, the keys :mod:`pilotage.adapters.sumo.report`
    reads; times in s, lengths in m).

    Every output of the run goes into ``output_dir`` (created), by file name (module docstring),
    and the run's ``outputs`` lists them; without it, into a temporary folder removed at the end
    (``outputs`` is then None). libsumo runs one simulation per process: run two at once in two
    processes. With priority on, when no bus stop that ended had an ``arrival`` or ``until`` time, a
    warning says that lateness is unknown and what conditional priority does then.

    Raises:
        DataFileError: no such file, or SUMO refuses the scenario or an argument (its message kept).
        InvalidInputError: a scenario without a traffic light the engine can drive; SUMO arguments
            with their own ``--output-prefix``; an ``output_dir`` whose path holds ``TIME`` (SUMO
            would replace it).
        ImportError: libsumo is not installed (the message says how to install it).
        OSError: ``output_dir`` cannot be made.
    """
    options = options or LoopOptions()
    sumocfg = scenario_file(sumocfg)
    libsumo = import_libsumo()
    if output_dir is None:
        with tempfile.TemporaryDirectory(prefix="pilotage-sim-") as temporary:
            _check_outputs(options, Path(temporary))
            run = _run(libsumo, sumocfg, options, Path(temporary))
        run["outputs"] = None
        _say_if_lateness_unknown([run], options)
        return run
    folder = Path(output_dir)
    _check_outputs(options, folder)
    folder.mkdir(parents=True, exist_ok=True)
    run = _run(libsumo, sumocfg, options, folder)
    run["outputs"] = {"folder": str(folder), "files": sorted(path.name for path in folder.iterdir())}
    _say_if_lateness_unknown([run], options)
    return run


def _run(libsumo: ModuleType, sumocfg: Path, options: LoopOptions, folder: Path) -> Run:
    """One run, every output written into ``folder`` (an existing folder)."""
    own = _outputs_set(sumocfg, options.sumo_args)
    ours = ["--seed", str(options.seed), "--tripinfo-output.write-unfinished", "true"]
    for name, file in _LOOP_OUTPUTS.items():
        if name not in own:
            ours += [f"--{name}", file]
    command = sumo_command(sumocfg, folder, [*ours, *options.sumo_args])
    try:
        libsumo.start(command)
    except Exception as exc:
        raise DataFileError(f"SUMO refused {sumocfg} or its arguments {list(options.sumo_args)}: {exc}") from exc
    started = time.perf_counter()
    try:
        tripinfo, stopinfo = (folder / Path(libsumo.simulation.getOption(name)).name for name in _LOOP_OUTPUTS)
        loop = _Loop(libsumo, options, sumocfg)
        try:
            loop.run()
        finally:
            loop.close()
    finally:
        libsumo.close()
    measures = loop.measures()
    wall_time_s = time.perf_counter() - started
    # Passengers as SUMO counted them, when the scenario models any.
    passengers = loop.persons_aboard if any(loop.persons_aboard.values()) else None
    classes, bus_losses_s, person_delay = trip_measures(
        tripinfo, loop.vehicle_class, loop.signal_loss_s, loop.emergency, passengers)
    return {**measures, "wall_time_s": wall_time_s, "classes": classes, "person_delay": person_delay,
            "buses": {"signal_time_loss_s": bus_losses_s, "schedule": schedule_adherence(stopinfo, loop.vehicle_class)},
            "outputs": None}


def _check_outputs(options: LoopOptions, folder: Path | None) -> None:
    """Raises InvalidInputError when the run's outputs could not all go into ``folder``."""
    if any(arg.split("=", 1)[0] == "--output-prefix" for arg in options.sumo_args):
        raise InvalidInputError("expected no --output-prefix among the SUMO arguments: each run writes its outputs "
                                "into a folder of its own through it", field="sumo_args")
    if folder is not None and "TIME" in str(folder.resolve()):
        raise InvalidInputError(f"expected an output folder without 'TIME' in its path, got {folder}: SUMO replaces "
                                "it by the time in output names", field="output_dir")


def _outputs_set(sumocfg: Path, sumo_args: tuple[str, ...]) -> set[str]:
    """Which of the loop's outputs the scenario's configuration or the SUMO arguments set."""
    named = {arg.split("=", 1)[0].removeprefix("--") for arg in sumo_args if arg.startswith("--")}
    try:
        named |= {element.tag for _, element in ET.iterparse(sumocfg) if element.get("value")}
    except ET.ParseError as exc:
        raise DataFileError(f"{sumocfg} is not a SUMO configuration SUMO can read: {exc}") from exc
    return named & _LOOP_OUTPUTS.keys()


def arm_name(options: LoopOptions) -> str:
    """The name of a run's arm by its switches: ``own`` (SUMO's own control), ``off``, ``on``,
    ``priority-on`` or ``corridors-on``; ``-positions`` after it when priority is requested from
    the vehicles' positions."""
    if options.own_control:
        return "own"
    if options.priority == options.corridors:
        name = "on" if options.priority else "off"
    else:
        name = "priority-on" if options.priority else "corridors-on"
    return f"{name}-positions" if options.priority and options.requests_from == "positions" else name


def compare(sumocfg: str | Path, options: LoopOptions | None = None, *, seeds: int = 1, baseline: bool = True,
            own_control: bool = False, output_dir: str | os.PathLike[str] | None = None) -> list[Run]:
    """Paired runs over ``seeds`` seeds, ``options.seed``, ``options.seed + 1``, ...: for each, the
    baseline (priority and corridors off) and ``options`` (default: both on), with that seed and the
    same demand; ``options`` alone when ``baseline`` is False or ``options`` is the baseline. With
    ``own_control`` (and ``baseline``), first a run of SUMO's own control of the scenario
    (:attr:`LoopOptions.own_control`) with that seed. Each run in a process of its own, as many at
    once as there are cores. Returns their measures, seed by seed, in that order.

    With ``output_dir``, each run writes its outputs into ``output_dir/<arm>-seed<N>/``
    (:func:`arm_name`); without it, into a temporary folder removed after the run.

    Raises:
        InvalidInputError: ``seeds`` below 1; and as :func:`simulate`.
        DataFileError, ImportError, OSError: as :func:`simulate`.
    """
    options = options or LoopOptions()
    sumocfg = scenario_file(sumocfg)
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise InvalidInputError(f"expected seeds >= 1, got {seeds!r}", field="seeds")
    off = dataclasses.replace(options, priority=False, corridors=False)
    arms = [off, options] if baseline and off != options else [options]
    if baseline and own_control:
        arms.insert(0, dataclasses.replace(off, own_control=True, engine=None))
    runs = [dataclasses.replace(arm, seed=options.seed + n) for n in range(seeds) for arm in arms]
    if options.engine is not None and len(runs) > 1:
        raise InvalidInputError(f"expected one run with a remote engine, which runs on one run's clock; got "
                                f"{len(runs)} (arms and seeds): run one arm and one seed (--compare off --seeds 1)",
                                field="engine")
    folders = [None if output_dir is None else Path(output_dir) / f"{arm_name(run)}-seed{run.seed}" for run in runs]
    for folder in folders:
        _check_outputs(options, folder)
    import_libsumo()
    workers = min(len(runs), os.cpu_count() or 1)
    logger.info("simulating %s, %s: %s, %d seed%s from %d, %d run%s at once", sumocfg.name,
                f"{options.duration_s:.0f} s" if options.duration_s else "the whole scenario",
                " and ".join(arm_name(arm) for arm in arms), seeds, "s" if seeds > 1 else "", options.seed, workers,
                "s" if workers > 1 else "")
    # libsumo holds one simulation per process: each run has a process to itself while it runs.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_quiet_worker) as pool:
        futures = {pool.submit(simulate, sumocfg, run, folder): n
                   for n, (run, folder) in enumerate(zip(runs, folders, strict=True))}
        results: dict[int, Run] = {}
        try:
            for done, future in enumerate(as_completed(futures), 1):
                n = futures[future]
                results[n] = future.result()
                logger.info("run %d of %d done: %s, seed %d, %.0f s", done, len(runs), arm_name(runs[n]),
                            runs[n].seed, results[n]["wall_time_s"])
        except BaseException:
            # A failed run fails them all: the runs not started yet are not started.
            for future in futures:
                future.cancel()
            raise
    measured = [results[n] for n in range(len(runs))]
    # Said here, once for every run: the runs' processes log errors only.
    _say_if_lateness_unknown(measured, options)
    return measured


def _quiet_worker() -> None:
    # A run's own count of what went wrong is in its measures; its log shows only the errors
    # (a state refused, a violation), not each plan the engine's monitor kept from being applied.
    logging.basicConfig(level=logging.ERROR, format="pilotage: %(message)s")
    # A run returns its measures to the parent: what SUMO prints (its own messages, "Loading
    # net-file ...") goes to the standard error, so the parent's standard output stays its own
    # (`--json` prints JSON only).
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())


def stop_lateness_s(stop: Any, arrival_s: float) -> float | None:
    """How late a vehicle expected at ``stop`` (SUMO's stop data) at ``arrival_s`` is by the stop's
    timetable (s, negative when early): against the stop's ``arrival`` time when it has one; else
    against its ``until`` time (when it may leave) less its dwell (``duration``, 0 without one),
    that is, the time it would leave, were it not held, against ``until``. None when the stop has
    neither time."""
    due_s = scheduled_arrival_s(stop)
    return None if math.isnan(due_s) else float(arrival_s - due_s)


def scheduled_arrival_s(stop: Any) -> float:
    """When a vehicle is due at ``stop`` (SUMO's stop data, s): its ``arrival`` time when it has one;
    else its ``until`` time (when it may leave) less its dwell (``duration``, 0 without one); NaN
    when it has neither."""
    if stop.intendedArrival > _INVALID_SUMO_TIME:
        return float(stop.intendedArrival)
    if stop.until > _INVALID_SUMO_TIME:
        return float(stop.until - max(stop.duration, 0.0))
    return math.nan


def _say_if_lateness_unknown(runs: list[Run], options: LoopOptions) -> None:
    """Warn, once for ``runs`` (of one scenario), when priority is on and the buses' stops that ended
    had neither an ``arrival`` nor an ``until`` time: lateness is unknown, and what conditional
    priority does then (the loop sends no headways, so the engine has none to fall back on)."""
    if not options.priority or not any(run["buses"]["schedule"]["timetable"] == "none" for run in runs):
        return
    threshold_s = options.min_lateness_s
    if options.engine is not None:
        effect = ("the remote engine's [priority] bus_lateness_s then gives priority to every bus when it is 0 s or "
                  "less, to none when it is more")
    elif threshold_s is None:
        effect = "priority stays unconditional (no --min-lateness), but ranks no bus before another by lateness"
    elif threshold_s > 0:
        effect = (f"--min-lateness {threshold_s:g} s denies every bus: conditional priority is off, with no headways "
                  "to fall back on (the loop sends none); trams still get priority")
    else:
        effect = f"--min-lateness {threshold_s:g} s grants every bus, as unconditional priority does"
    logger.warning("lateness unknown: no bus stop of %s that ended has an arrival or until time, so every bus asks for "
                   "priority with lateness 0 s and the bus schedule is not measured; %s. To judge lateness, time the "
                   "buses' <stop> elements with arrival or until", runs[0]["scenario"], effect)


# -- the loop ---------------------------------------------------------------------------------------------


@dataclass
class _Tracked:
    """A bus, tram or emergency vehicle in the simulation."""

    vehicle: str
    kind: str
    next_tls: str = ""
    requested_s: float = -math.inf
    granted_tls: set[str] = field(default_factory=set)
    stopped_since_s: float | None = None
    # An emergency vehicle's corridor, as its last reply gave it: open, how often rerouted, the
    # junctions it starts and ends at (SUMO's junction positions), and whether the vehicle has been
    # on the network since (before, it is on edges leading into it).
    corridor_open: bool = False
    reroutes: int = 0
    corridor_ends: tuple[int, int] = (-1, -1)
    on_network: bool = False
    # Its own route goes on beyond where its corridor ends (off the network, at its fringe).
    leaves_network: bool = False
    # The lights on its corridor's routes (by intersection id): ``planned`` once held, else
    # ``refused`` or ``pending``; why each refused one was; the green of each one's last hold.
    outcome: dict[int | str, str] = field(default_factory=dict)
    refusal: dict[int | str, str] = field(default_factory=dict)
    hold_green_s: dict[int | str, tuple[float | None, float | None]] = field(default_factory=dict)
    # The traffic light it is approaching, and whether it has halted before it.
    approaching: str = ""
    waited: bool = False
    # Measuring: stopped at the last step, and when and where (odometer, m) it last left a stop.
    was_stopped: bool = False
    left_stop_s: float = -math.inf
    left_stop_odometer_m: float = -math.inf


class _PriorityCounts(TypedDict):
    """The priority requests sent so far, and their replies by strategy, reason and error code."""

    requests: int
    granted: int
    by_strategy: Counter[str]
    denied: Counter[str]
    checkouts: int
    errors: Counter[str]


class _CorridorCounts(TypedDict):
    """The corridors asked for and the requests sent so far, what came of them, and their errors by
    code (:class:`~pilotage.adapters.sumo.measures.CorridorRequests`)."""

    asked: int
    opened: int
    opened_in_part: int
    not_opened: Counter[str]
    reopened: int
    closed: int
    updates: int
    reroutes: int
    errors: Counter[str]


class _LightCounts(TypedDict):
    """What the engine did at one light: priority granted and denied (by reason), plans changed by
    its actuation."""

    grants: int
    denied: Counter[str]
    actuations: int


@dataclass
class _Approach:
    """One edge into a light: its lanes, the vehicle-seconds halted on them, the vehicles seen."""

    lanes: tuple[str, ...]
    halted_s: float = 0.0
    vehicles: set[str] = field(default_factory=set)


def _approaches(libsumo: ModuleType, tls: str) -> dict[str, _Approach]:
    """The edges into traffic light ``tls`` (walking areas and crossings left out), by their lanes."""
    lanes_of_edge: dict[str, list[str]] = {}
    for lane in dict.fromkeys(libsumo.trafficlight.getControlledLanes(tls)):
        if not lane.startswith(":"):
            lanes_of_edge.setdefault(libsumo.lane.getEdgeID(lane), []).append(lane)
    return {edge: _Approach(tuple(lanes)) for edge, lanes in lanes_of_edge.items()}


def _feed_trips(options: LoopOptions, network: RoadNetwork, plans: SignalPlans) -> tuple[Trip, ...]:
    """The bus and tram trips of the options' GTFS feed on its day, matched onto the scenario's
    network, their times on the simulation's clock (the time of day)."""
    assert options.timetable is not None
    found = timetable(read_feed(options.timetable), network, service_date=options.timetable_date, day_start_s=0.0,
                      plans=plans)
    logger.info("timetable %s, %s: %d trips on %d paths (%d left out)", options.timetable, options.timetable_date,
                len(found.trips), len(found.paths), sum(found.left_out.values()))
    return found.trips


def _group_lanes(libsumo: ModuleType, light: Light) -> dict[int, tuple[str, ...]]:
    """The approach lanes of each signal group of a driven light: the incoming lanes of its links."""
    lanes: dict[int, dict[str, None]] = {}
    for link, connections in enumerate(libsumo.trafficlight.getControlledLinks(light.tls)):
        group = int(light.link_group[link])
        if group >= 0:
            for inbound, _, _ in connections:
                lanes.setdefault(group, {})[inbound] = None
    return {group: tuple(found) for group, found in lanes.items()}


@dataclass
class _RouteRecord:
    """A bus or tram route whose time-space diagram may be drawn: its name and length (m), each
    driven light on it (with its signal group and its distance along the route, m; none when under
    three, and then no vehicle is recorded), the points of each vehicle on it
    (``[time_s, distance_m]``), and where each of its edges starts along it (m)."""

    corridor: str
    length_m: float
    signals: list[tuple[Light, int, float]]
    vehicles: dict[str, list[list[float]]]
    starts_m: np.ndarray


class _Loop:
    def __init__(self, libsumo: ModuleType, options: LoopOptions, sumocfg: Path) -> None:
        self.sumo = libsumo
        self.options = options
        self.sumocfg = sumocfg
        self.step_s = float(libsumo.simulation.getDeltaT())
        self.now = float(libsumo.simulation.getTime())
        self.begin_s = self.now
        end_s = float(libsumo.simulation.getEndTime())
        self.end_s = (self.begin_s + options.duration_s if options.duration_s is not None
                      else end_s if end_s >= 0 else math.inf)
        self.net = read_network(libsumo, sumocfg)
        plans = SignalPlans(self.net.plans)
        # The lights run the plans of an engine in this process, or, as a field adapter's, the
        # commands of a remote one.
        self.signals: PriorityEngine | FieldSignals
        self.service: Service | None = None
        self.tracker: VehicleTracker | None = None
        self.client: Client | None = None
        if options.engine is None:
            lateness = -math.inf if options.min_lateness_s is None else options.min_lateness_s
            self.signals = PriorityEngine(plans, clock=lambda: self.now, config=PriorityConfig(bus_lateness_s=lateness))
            corridors = CorridorEngine(self.net.network, self.signals,
                                       CorridorConfig(emergency_speed_kph=self.net.speed_classes_kph,
                                                      timeout_s=max(30.0, 10 * options.update_every_s)))
            positions = options.requests_from == "positions"
            # The virtual detection point and the renewals are the loop's own requests' range and period.
            self.tracker = VehicleTracker(self.net.network, plans, config=TrackingConfig(
                detection_m=options.request_range_m, renew_every_s=options.request_every_s)) if positions else None
            self.service = Service(self.net.network, self.signals, corridors=corridors, tracker=self.tracker,
                                   publish=self._event if positions else None)
            if self.tracker is not None and options.timetable is not None:
                self.tracker.add_trips(_feed_trips(options, self.net.network, plans))
        else:
            self.signals = FieldSignals(plans, clock=lambda: self.now)
            self.client = Client(options.engine, timeout_s=_ENGINE_TIMEOUT_S, retries=0)
        # The remote engine did not answer at this step: the step's other requests are not sent.
        self._engine_down = False
        # A request that may change a plan was sent at this step: the field asks for its command again.
        self._asked = False
        self._reply = msgspec.json.Decoder(wire.Reply)
        self._ids = itertools.count()
        self.vehicle_class: dict[str, str] = {}
        self.tracked: dict[str, _Tracked] = {}
        self.signal_loss_s: Counter[str] = Counter()
        self.priority_stats: _PriorityCounts = {"requests": 0, "granted": 0, "by_strategy": Counter(),
                                                "denied": Counter(), "checkouts": 0, "errors": Counter()}
        self.corridor_stats: _CorridorCounts = {"asked": 0, "opened": 0, "opened_in_part": 0,
                                                "not_opened": Counter(), "reopened": 0, "closed": 0, "updates": 0,
                                                "reroutes": 0, "errors": Counter()}
        self.emergency: dict[str, EmergencyTrip] = {}
        # ``by_rule`` is filled from ``violations_by_rule``, and the monitor's counts are set, by the final check.
        self.safety: Safety = {"traffic_lights": len(self.net.lights), "state_changes": 0, "refused_states": 0,
                               "violations": 0, "by_rule": {}, "longest_amber_s": 0.0, "plans_checked": 0,
                               "plans_refused": 0, "plan_fallbacks": 0}
        self.violations_by_rule: Counter[str] = Counter()
        self.steps = 0
        # The greens each light shows (its ``green`` is a view of its row) and when its next amber
        # ends: the lights to update at a step are found for all at once.
        self._shown_green = np.zeros_like(self.signals.green_groups())
        for light in self.net.lights:
            light.green = self._shown_green[light.plan, :light.green.size]
        self._amber_due_s = np.full(len(self.net.lights), -np.inf)
        self._rng = random.Random(options.seed)
        self._next_emergency_s = self.begin_s if options.emergency_every_s else math.inf
        # The bus and tram routes whose time-space diagram may be drawn (by their edges), and the
        # record of each vehicle on one of them.
        self._routes: dict[tuple[str, ...], _RouteRecord] = {}
        self._recorded: dict[str, _RouteRecord] = {}
        # The most persons seen aboard each bus and tram.
        self.persons_aboard: dict[str, int] = {}
        # The green of the last plan-changing grant of each (vehicle, traffic light) not yet crossed.
        self._grant_green_s: dict[tuple[str, str], tuple[float, float]] = {}
        self.grant_crossings = {"in_green": 0, "outside_green": 0}
        self._offset_error_s: list[list[float]] = [[] for _ in self.net.lights]
        self._next_offset_sample_s = self.begin_s
        self.traffic: Traffic = {"teleports": 0, "insertion_backlog_max": 0, "insertion_backlog_end": 0}
        self._actuated = [light for light in self.net.lights if light.detectors]
        self._tls_of_plan = {self.net.plans[light.plan].id: light.tls for light in self.net.lights}
        # Every light's approaches (its incoming edges and their lanes), driven or not, and what
        # happened there.
        self._approaches = {tls: _approaches(libsumo, tls) for tls in libsumo.trafficlight.getIDList()}
        self.light_stats: dict[str, _LightCounts] = {
            tls: {"grants": 0, "denied": Counter(), "actuations": 0} for tls in self._approaches}
        # Requests from positions: when each vehicle last sent its position, the trips not followed
        # (a route off the network read), and each driven light's approach lanes per signal group.
        self._position_sent_s: dict[str, float] = {}
        self._trip_of: dict[str, str] = {}
        self._paths: dict[tuple[tuple[str, ...], tuple[str, ...], tuple[float, ...]], TransitPath] = {}
        self.trips_not_followed = 0
        self._queues_sent_s = -math.inf
        self._group_lanes = {light.tls: _group_lanes(libsumo, light) for light in self.net.lights} \
            if self.tracker is not None else {}

    # -- stepping ------------------------------------------------------------------------------------

    def run(self) -> None:
        sumo = self.sumo
        self._drive_signals()
        while self.now < self.end_s - 1e-9:
            if self.end_s == math.inf and sumo.simulation.getMinExpectedNumber() == 0:
                break
            self._add_emergency_vehicles()
            sumo.simulationStep()
            self.steps += 1
            self.now = float(sumo.simulation.getTime())
            self._count_traffic()
            if self.client is not None:
                # First the field's clock and what its lights show, so requests are decided on them.
                self._engine_down = self._asked = False
                self._command()
            for vehicle in sumo.simulation.getDepartedIDList():
                self._departed(vehicle)
            for vehicle in sumo.simulation.getArrivedIDList():
                self._arrived(vehicle)
            self._follow_vehicles()
            self._measure_lights()
            self._actuate()
            if self.service is not None:
                self.service.tick()
            elif self._asked and not self._engine_down:
                self._command()
            self._drive_signals()
            if self.options.step_listener is not None:
                self.options.step_listener(self.now)
        for tracked in self.tracked.values():
            if tracked.corridor_open:
                self._send("corridor.close", {"incident": tracked.vehicle})

    def close(self) -> None:
        """Close the connection to a remote engine, if any."""
        if self.client is not None:
            self.client.close()

    def _departed(self, vehicle: str) -> None:
        vclass = self.sumo.vehicle.getVehicleClass(vehicle)
        kind = REPORT_CLASS.get(vclass, "other")
        self.vehicle_class[vehicle] = kind
        if vclass in PRIORITY_CLASS:
            self.tracked[vehicle] = _Tracked(vehicle, PRIORITY_CLASS[vclass])
            self._maybe_record_route(vehicle)
            if self.tracker is not None:
                # A vehicle of the feed's timetable is followed on its trip; any other on its route.
                trip = self.sumo.vehicle.getParameter(vehicle, TRIP_PARAM)
                if trip in self.tracker.trips:
                    self._trip_of[vehicle] = trip
                elif self._follow_trip(vehicle, PRIORITY_CLASS[vclass]):
                    self._trip_of[vehicle] = vehicle
        elif kind == "emergency":
            tracked = self.tracked[vehicle] = _Tracked(vehicle, "emergency")
            self.emergency[vehicle] = {"vehicle": vehicle, "depart_s": self.now, "travel_time_s": None,
                                       "length_m": 0.0, "corridor": None, "crossings": 0, "planned": 0, "refused": 0,
                                       "pending": 0, "refused_by_reason": {}, "crossed_in_hold": 0,
                                       "lights_crossed": 0, "waited_at_lights": 0}
            if self.options.corridors:
                self.corridor_stats["asked"] += 1
                self._open_corridor(tracked)

    def _arrived(self, vehicle: str) -> None:
        tracked = self.tracked.pop(vehicle, None)
        if tracked is not None and tracked.corridor_open:
            reply = self._send("corridor.close", {"incident": vehicle})
            self.corridor_stats["closed"] += reply is not None

    def _follow_vehicles(self) -> None:
        vehicle_api = self.sumo.vehicle
        requests: list[tuple[_Tracked, dict[str, object]]] = []
        positions: list[dict[str, object]] = []
        for tracked in self.tracked.values():
            vehicle = tracked.vehicle
            upcoming = vehicle_api.getNextTLS(vehicle)
            tls, link, distance_m = (upcoming[0][0], upcoming[0][1], upcoming[0][2]) if upcoming else ("", -1, math.inf)
            speed = vehicle_api.getSpeed(vehicle)
            at_stop = vehicle_api.isStopped(vehicle)
            if at_stop and tracked.stopped_since_s is None:
                tracked.stopped_since_s = self.now
            elif not at_stop:
                tracked.stopped_since_s = None
            self._measure_vehicle(tracked, distance_m, speed, at_stop)
            if vehicle in self._recorded:
                self._record_position(vehicle, self._recorded[vehicle])
            if tracked.next_tls and tls != tracked.next_tls:
                self._crossed(tracked)
                if tracked.next_tls in tracked.granted_tls and self.tracker is None:
                    self._checkout(tracked)
            if tls != tracked.next_tls:
                tracked.next_tls, tracked.requested_s = tls, -math.inf
            if tracked.kind == "emergency":
                self._follow_emergency(tracked, tls, distance_m, speed, at_stop)
                continue
            if self.tracker is not None:
                # An AVL system's positions beyond the city's network are not the engine's to follow.
                road = vehicle_api.getRoadID(vehicle)
                if (self.options.priority and vehicle in self._trip_of
                        and (road in self.net.edge_index or road.startswith(":"))
                        and self.now - self._position_sent_s.get(vehicle, -math.inf) >= 1.0):
                    positions.append(self._position(vehicle, speed, at_stop))
                continue
            light = self.net.light_of_tls.get(tls)
            if (not self.options.priority or light is None or distance_m > self.options.request_range_m
                    or self.now - tracked.requested_s < self.options.request_every_s):
                continue
            request = self._priority_request(tracked, light, int(link), distance_m, speed)
            if request is not None:
                tracked.requested_s = self.now
                requests.append((tracked, request))
        if requests:
            self._decide(requests)
        if positions:
            self._send_positions(positions)

    def _priority_request(self, tracked: _Tracked, light: Light, link: int, distance_m: float,
                          speed: float) -> dict[str, object] | None:
        """The vehicle's request at its next light, or None while a stop before the light holds it
        (it checks in when its doors close). The arrival interval runs from the time at the allowed
        speed (plus the time to reach it, at ``ACCELERATION_MS2``) to the time at its current speed
        (no less than half the allowed speed); the queue is the vehicles halted ahead of it; the
        lateness is at its next stop (:func:`stop_lateness_s`, expected there at its current speed, no
        less than half the allowed), 0 when that stop has no time."""
        vehicle_api = self.sumo.vehicle
        vehicle = tracked.vehicle
        allowed = max(vehicle_api.getAllowedSpeed(vehicle), 1.0)
        lateness_s = 0.0
        next_stop = self._next_stop(vehicle)
        if next_stop is not None:
            stop, to_stop_m = next_stop
            if 0 <= to_stop_m <= distance_m:
                return None
            if to_stop_m >= 0:
                lateness_s = stop_lateness_s(stop, self.now + to_stop_m / max(speed, 0.5 * allowed, 1.0)) or 0.0
        earliest_s = distance_m / allowed + max(0.0, allowed - speed) / (2.0 * ACCELERATION_MS2)
        latest_s = max(earliest_s, distance_m / max(speed, 0.5 * allowed, 1.0))
        plan = self.net.plans[light.plan]
        lon, lat = lon_lat(self.sumo, np.array([vehicle_api.getPosition(vehicle)]), self.net.geo)
        # Capped at what the engine accepts: the arrival cap of its default configuration (the loop's
        # own engine keeps it; a remote one is expected to), and the protocol's lateness bound.
        return {"vehicle": vehicle, "intersection": plan.id, "group": plan.group_names[light.link_group[link]],
                "eta_s": min(earliest_s, DEFAULT_MAX_ETA_S),
                "eta_window_s": min(latest_s - earliest_s + ETA_MARGIN_S, DEFAULT_MAX_ETA_S),
                "class": tracked.kind, "lateness_s": max(-wire.MAX_LATENESS_S, min(wire.MAX_LATENESS_S, lateness_s)),
                "occupancy": float(vehicle_api.getPersonNumber(vehicle)),
                "queue_vehicles": float(self._halted_ahead(vehicle, distance_m)),
                "position": {"lon": float(lon[0]), "lat": float(lat[0])}}

    def _follow_trip(self, vehicle: str, kind: str) -> bool:
        """Give the tracker the trip of a bus or tram that set off: the longest run of its route on the
        network read (a route enters and leaves by the scenario's fringe), and its stops there with
        when each is due (:func:`scheduled_arrival_s`). A route with no edge on it is not followed
        (False)."""
        assert self.tracker is not None
        index = self.net.edge_index
        runs = [list(run) for on, run in itertools.groupby(
            self.sumo.vehicle.getRoute(vehicle)[self.sumo.vehicle.getRouteIndex(vehicle):],
            key=lambda edge: edge in index) if on]
        if not runs:
            self.trips_not_followed += 1
            return False
        route = max(runs, key=len)
        edges = np.array([index[edge] for edge in route], dtype=np.int64)
        starts_m = np.concatenate(([0.0], np.cumsum(self.net.network.length_m[edges])))
        stop_ids, stop_at_m, due_s = [], [], []
        position = 0
        for n, stop in enumerate(self.sumo.vehicle.getStops(vehicle)):
            edge = stop.lane.rsplit("_", 1)[0]
            while position < len(route) and route[position] != edge:
                position += 1
            if position == len(route):
                break
            stop_ids.append(stop.stoppingPlaceID or f"{vehicle}-stop-{n}")
            stop_at_m.append(min(starts_m[position] + stop.endPos, starts_m[position + 1]))
            due_s.append(scheduled_arrival_s(stop))
        # Vehicles of one route and stops share its path, so the tracker sees them as one line
        # (their headways, when no timetable gives a time).
        key = (tuple(route), tuple(stop_ids), tuple(stop_at_m))
        if key not in self._paths:
            self._paths[key] = TransitPath.on(self.net.network, edges, stop_ids=tuple(stop_ids),
                                              stop_at_m=np.maximum.accumulate(np.array(stop_at_m, dtype=np.float64)),
                                              source="route")
        path = self._paths[key]
        self.tracker.add_trips([Trip(vehicle, self.sumo.vehicle.getLine(vehicle) or vehicle, kind, path,
                                     np.array(due_s, dtype=np.float64))])
        return True

    def _position(self, vehicle: str, speed: float, at_stop: bool) -> dict[str, object]:
        """The ``vehicle.position`` body a bus or tram's AVL system would send now."""
        vehicle_api = self.sumo.vehicle
        lon, lat = lon_lat(self.sumo, np.array([vehicle_api.getPosition(vehicle)]), self.net.geo)
        self._position_sent_s[vehicle] = self.now
        return {"vehicle": vehicle, "trip": self._trip_of[vehicle], "lon": float(lon[0]),
                "lat": float(lat[0]), "time": self.now,
                "speed_m_s": max(float(speed), 0.0), "heading_deg": float(vehicle_api.getAngle(vehicle)) % 360.0,
                "occupancy": float(vehicle_api.getPersonNumber(vehicle)), "doors_open": at_stop}

    def _send_positions(self, positions: list[dict[str, object]]) -> None:
        """Send the positions of this step, and, every ``request_every_s``, the queues on the driven
        lights' approaches; errors are counted. What the tracker does with them comes back as
        events (:meth:`_event`)."""
        frames = [self._frame("vehicle.position", body) for body in positions]
        if self.now - self._queues_sent_s >= self.options.request_every_s:
            self._queues_sent_s = self.now
            lane_api = self.sumo.lane
            for light in self.net.lights:
                queues = [{"group": self.net.plans[light.plan].group_names[g],
                           "queue_vehicles": float(sum(lane_api.getLastStepHaltingNumber(lane) for lane in lanes))}
                          for g, lanes in self._group_lanes[light.tls].items()]
                if queues:
                    frames.append(self._frame("detectors", {"intersection": self.net.plans[light.plan].id,
                                                            "queues": queues}))
        for raw in self._handle(frames):
            reply = self._reply.decode(raw) if raw is not None else None
            if reply is not None and not reply.ok:
                self.priority_stats["errors"][_error(reply).code] += 1
        assert self.service is not None
        self.service.publish_events()

    def _event(self, topic: str, body: bytes) -> None:
        """A ``priority`` event of a request made from positions: counted as the loop counts its own
        requests' replies, but once per change of state (a renewal with the same answer is not
        counted again)."""
        if topic != "priority":
            return
        event = msgspec.json.decode(body, type=wire.PriorityEvent)
        if not event.generated:
            return
        stats = self.priority_stats
        tls = self._tls_of_plan.get(event.intersection, "")
        if event.event == "requested":
            stats["requests"] += 1
        elif event.event == "granted":
            stats["granted"] += 1
            stats["by_strategy"][event.strategy] += 1
            self.light_stats[tls]["grants"] += 1
            if event.strategy != "already_green" and event.green_from is not None and event.green_until is not None:
                self._grant_green_s[event.vehicle, tls] = (event.green_from, event.green_until)
        elif event.event == "rejected":
            stats["denied"][event.reason] += 1
            self.light_stats[tls]["denied"][event.reason] += 1
        elif event.event == "checked_out":
            stats["checkouts"] += 1

    def _next_stop(self, vehicle: str) -> tuple[Any, float] | None:
        """The vehicle's next stop (SUMO's stop data) and the driving distance to it (m, negative when
        SUMO finds no way there); None when it has no stop left."""
        stops = self.sumo.vehicle.getStops(vehicle, 1)
        if not stops:
            return None
        stop = stops[0]
        return stop, self.sumo.vehicle.getDrivingDistance(vehicle, stop.lane.rsplit("_", 1)[0], stop.endPos)

    def _halted_ahead(self, vehicle: str, distance_m: float) -> int:
        """The vehicles halted (under ``HALTED_MS``) between ``vehicle`` and the stop line
        ``distance_m`` ahead, following its leaders along its route."""
        vehicle_api = self.sumo.vehicle
        halted, gap_m, current = 0, 0.0, vehicle
        for _ in range(MAX_QUEUE_VEHICLES):
            found = vehicle_api.getLeader(current, distance_m - gap_m)
            if not found or not found[0]:
                break
            leader, gap = found
            gap_m += gap + vehicle_api.getLength(leader)
            if gap_m > distance_m:
                break
            halted += vehicle_api.getSpeed(leader) < HALTED_MS
            current = leader
        return halted

    def _decide(self, requests: list[tuple[_Tracked, dict[str, object]]]) -> None:
        frames = [self._frame("priority.request", body) for _, body in requests]
        stats = self.priority_stats
        for (tracked, _), raw in zip(requests, self._handle(frames), strict=True):
            stats["requests"] += 1
            if raw is None:
                stats["errors"][_UNANSWERED] += 1
                continue
            reply = self._reply.decode(raw)
            if not reply.ok:
                stats["errors"][_error(reply).code] += 1
                continue
            if reply.body["decision"] == "granted":
                stats["granted"] += 1
                stats["by_strategy"][reply.body["strategy"]] += 1
                if reply.body["strategy"] != "already_green":
                    tracked.granted_tls.add(tracked.next_tls)
                    self._grant_green_s[tracked.vehicle, tracked.next_tls] = (reply.body["green_from"],
                                                                               reply.body["green_until"])
                self.light_stats[tracked.next_tls]["grants"] += 1
            else:
                stats["denied"][reply.body["reason"]] += 1
                self.light_stats[tracked.next_tls]["denied"][reply.body["reason"]] += 1

    def _checkout(self, tracked: _Tracked) -> None:
        tracked.granted_tls.discard(tracked.next_tls)
        plan = self.net.plans[self.net.light_of_tls[tracked.next_tls].plan]
        if self._send("priority.checkout", {"vehicle": tracked.vehicle, "intersection": plan.id}) is not None:
            self.priority_stats["checkouts"] += 1

    # -- measuring ---------------------------------------------------------------------------------------

    def _measure_vehicle(self, tracked: _Tracked, distance_m: float, speed: float, at_stop: bool) -> None:
        """The passengers aboard a bus or tram, and the time the vehicle lost at signals this step
        (the rules in the module docstring); ``distance_m`` to its next light's stop line."""
        vehicle_api = self.sumo.vehicle
        vehicle = tracked.vehicle
        if tracked.kind != "emergency":
            persons = vehicle_api.getPersonNumber(vehicle)
            self.persons_aboard[vehicle] = max(self.persons_aboard.get(vehicle, 0), persons)
        if at_stop:
            tracked.was_stopped = True
            return
        if tracked.was_stopped:
            tracked.was_stopped = False
            tracked.left_stop_s, tracked.left_stop_odometer_m = self.now, vehicle_api.getDistance(vehicle)
        if distance_m > SIGNAL_ZONE_M:
            return
        if (self.now - tracked.left_stop_s < AFTER_STOP_S
                and vehicle_api.getDistance(vehicle) - tracked.left_stop_odometer_m < AFTER_STOP_M):
            return
        next_stop = self._next_stop(vehicle)
        if next_stop is not None and 0 <= next_stop[1] <= distance_m:
            return
        allowed = vehicle_api.getAllowedSpeed(vehicle)
        if allowed > 0:
            self.signal_loss_s[vehicle] += self.step_s * max(0.0, 1.0 - speed / allowed)

    def _crossed(self, tracked: _Tracked) -> None:
        """The vehicle has crossed its next light since the last step: within its last grant's green?"""
        green_s = self._grant_green_s.pop((tracked.vehicle, tracked.next_tls), None)
        if green_s is None:
            return
        green_from_s, green_until_s = green_s
        within = green_from_s - self.step_s <= self.now <= green_until_s + self.step_s
        self.grant_crossings["in_green" if within else "outside_green"] += 1

    def _count_traffic(self) -> None:
        """SUMO's teleports of the step, and the vehicles due but not yet inserted."""
        simulation = self.sumo.simulation
        self.traffic["teleports"] += simulation.getStartingTeleportNumber()
        backlog = len(simulation.getPendingVehicles())
        self.traffic["insertion_backlog_max"] = max(self.traffic["insertion_backlog_max"], backlog)
        self.traffic["insertion_backlog_end"] = backlog

    def _sample_offsets(self) -> None:
        """Every :data:`OFFSET_SAMPLE_EVERY_S`, how far each plan's current or next stage 0 starts from
        its coordinated start, folded into half a cycle either way (s)."""
        if self.now < self._next_offset_sample_s:
            return
        self._next_offset_sample_s += OFFSET_SAMPLE_EVERY_S
        plans = self.signals.plans
        for light in self.net.lights:
            k = light.plan
            start_s = next((start for stage, start, _ in self.signals.plan_ahead(plans.ids[k]) if stage == 0), None)
            if start_s is None:
                continue
            cycle_s = float(plans.cycle_s[k])
            coordinated_s = float(plans.offset_s[k] + plans.stage_offset_s[k, 0])
            self._offset_error_s[k].append((start_s - coordinated_s + cycle_s / 2) % cycle_s - cycle_s / 2)

    # -- emergency vehicles ------------------------------------------------------------------------------

    def _add_emergency_vehicles(self) -> None:
        """Add the emergency vehicles due, on routes between random edges at least 1 km apart."""
        every_s = self.options.emergency_every_s
        if every_s is None or self.now < self._next_emergency_s:
            return
        sumo = self.sumo
        if _EMERGENCY_TYPE not in sumo.vehicletype.getIDList():
            sumo.vehicletype.copy("DEFAULT_VEHTYPE", _EMERGENCY_TYPE)
            sumo.vehicletype.setVehicleClass(_EMERGENCY_TYPE, "emergency")
            sumo.vehicletype.setColor(_EMERGENCY_TYPE, (255, 0, 0, 255))
        edges = self.net.edge_ids
        for _ in range(100):
            origin, destination = self._rng.randrange(len(edges)), self._rng.randrange(len(edges))
            chord_m = math.dist(sumo.junction.getPosition(sumo.edge.getToJunction(edges[origin])),
                                sumo.junction.getPosition(sumo.edge.getFromJunction(edges[destination])))
            if chord_m < 1000.0:
                continue
            try:
                route = sumo.simulation.findRoute(edges[origin], edges[destination], vType=_EMERGENCY_TYPE)
            except sumo.TraCIException:
                # No way between them SUMO lets the emergency type take: draw again.
                continue
            if route.edges:
                break
        else:
            logger.warning("no route of 1 km or more found for an emergency vehicle at %.0f s", self.now)
            self._next_emergency_s += every_s
            return
        vehicle = f"emergency.{int(self._next_emergency_s)}"
        sumo.route.add(f"route.{vehicle}", route.edges)
        sumo.vehicle.add(vehicle, f"route.{vehicle}", typeID=_EMERGENCY_TYPE, depart="now")
        self._next_emergency_s += every_s

    def _follow_emergency(self, tracked: _Tracked, tls: str, distance_m: float, speed: float,
                          at_stop: bool) -> None:
        """The traffic light the emergency vehicle crossed since the last step (counted, with
        whether it waited there: halted within :data:`SIGNAL_ZONE_M` of the stop line, not at a
        stop), and its position reported to its corridor every ``update_every_s``."""
        if tls != tracked.approaching:
            if tracked.approaching:
                self._crossed_light(tracked)
            tracked.approaching, tracked.waited = tls, False
        if tls and distance_m <= SIGNAL_ZONE_M and speed < HALTED_MS and not at_stop:
            tracked.waited = True
        if tracked.corridor_open and self.now - tracked.requested_s >= self.options.update_every_s:
            tracked.requested_s = self.now
            self._update_corridor(tracked)

    def _crossed_light(self, tracked: _Tracked) -> None:
        """The emergency vehicle has crossed the light it was approaching: counted, with whether it
        waited there, and whether it crossed within the green of the light's hold for its corridor
        (give or take a step)."""
        record = self.emergency[tracked.vehicle]
        record["lights_crossed"] += 1
        record["waited_at_lights"] += tracked.waited
        light = self.net.light_of_tls.get(tracked.approaching)
        if light is None:
            return
        intersection = self.net.plans[light.plan].id
        green_from_s, green_until_s = tracked.hold_green_s.get(intersection, (None, None))
        if (tracked.outcome.get(intersection) == "planned" and green_from_s is not None and green_until_s is not None
                and green_from_s - self.step_s <= self.now <= green_until_s + self.step_s):
            tracked.hold_green_s[intersection] = (None, None)
            record["crossed_in_hold"] += 1

    def _open_corridor(self, tracked: _Tracked, *, again: bool = False) -> None:
        """Open the vehicle's corridor on its own route from the edge it is on (SUMO's lanes connect
        it), over the stretch of it the network holds: a route may enter and leave the network on
        edges at the scenario's fringe. A corridor that cannot open is counted by why: the engine's
        error code, ``UNANSWERED``, or ``OFF_NETWORK`` when the network holds no edge of the route
        ahead. ``again``: the engine lost the corridor, and the vehicle opens it anew."""
        sumo, vehicle = self.sumo, tracked.vehicle
        ahead = sumo.vehicle.getRoute(vehicle)[sumo.vehicle.getRouteIndex(vehicle):]
        inside = [edge in self.net.edge_index for edge in ahead]
        reply, code, nodes, in_part = None, "OFF_NETWORK", [], False
        if any(inside):
            first = inside.index(True)
            end = next((i for i in range(first, len(ahead)) if not inside[i]), len(ahead))
            # The route leaves the network after this stretch: the vehicle crosses its last junction.
            tracked.leaves_network, in_part = end < len(ahead), first > 0 or end < len(ahead)
            junction_index = self.net.junction_index
            nodes = [junction_index[sumo.edge.getFromJunction(ahead[first])],
                     *(junction_index[sumo.edge.getToJunction(edge)] for edge in ahead[first:end])]
            answer = self._request("corridor.open", {"incident": vehicle, "origin": nodes[0],
                                                     "destination": nodes[-1], "route": nodes})
            if answer is not None and answer.ok:
                reply = answer.body
            else:
                code = _UNANSWERED if answer is None else _error(answer).code
        else:
            logger.info("corridor %s: the network holds no edge of its route ahead (%s)", vehicle, " ".join(ahead))
        record = self.emergency[vehicle]
        if reply is None:
            if not again:
                self.corridor_stats["not_opened"][code] += 1
                record["corridor"] = code
            return
        tracked.corridor_open = True
        tracked.corridor_ends = (nodes[0], nodes[-1])
        if not again:
            self.corridor_stats["opened"] += 1
            self.corridor_stats["opened_in_part"] += in_part
            record["corridor"] = "opened"
        self._count_crossings(tracked, reply)

    def _update_corridor(self, tracked: _Tracked) -> None:
        sumo, vehicle = self.sumo, tracked.vehicle
        road = sumo.vehicle.getRoadID(vehicle)
        # On no lane at all while SUMO teleports it: no position to report.
        if not road:
            return
        if road.startswith(":"):
            # Inside a junction (held there, it may be for long): at the end of the edge it came along.
            road, fraction = sumo.vehicle.getRoute(vehicle)[sumo.vehicle.getRouteIndex(vehicle)], 1.0
        else:
            fraction = sumo.vehicle.getLanePosition(vehicle) / max(sumo.lane.getLength(sumo.vehicle.getLaneID(vehicle)),
                                                                   1e-9)
        lon, lat = self._matched_position(tracked, road, fraction)
        answer = self._request("corridor.update", {"incident": tracked.vehicle, "position": {"lon": lon, "lat": lat}})
        if answer is not None and not answer.ok and _error(answer).code == UnknownEntityError.code:
            # The engine no longer has the corridor (it restarted without it, or ended it unheard
            # from): the vehicle opens it again from where it is, as a dispatch client would.
            tracked.corridor_open = False
            self.corridor_stats["reopened"] += 1
            self._open_corridor(tracked, again=True)
            return
        if answer is None or not answer.ok:
            return
        reply = answer.body
        self.corridor_stats["updates"] += 1
        if reply["reroutes"] > tracked.reroutes:
            tracked.reroutes = reply["reroutes"]
            self.corridor_stats["reroutes"] += 1
            self._drive_corridor(tracked.vehicle, reply, road)
        self._count_crossings(tracked, reply)

    def _matched_position(self, tracked: _Tracked, edge: str, fraction: float) -> tuple[float, float]:
        """The vehicle's position matched on the network, ``fraction`` of the way along ``edge`` (as
        far as it is along its lane): as far along the line between the edge's junctions, as a
        vehicle's map-matched position reports it (the edge's own shape may bend away from that
        line). On an edge the network does not hold (one leading into or out of it), the junction
        its corridor starts at until the vehicle has been on the network, and the one it ends at
        after."""
        sumo, network = self.sumo, self.net.network
        if edge not in self.net.edge_index:
            end = network.node_index(tracked.corridor_ends[1 if tracked.on_network else 0])
            return float(network.node_lon[end]), float(network.node_lat[end])
        tracked.on_network = True
        tail = network.node_index(self.net.junction_index[sumo.edge.getFromJunction(edge)])
        head = network.node_index(self.net.junction_index[sumo.edge.getToJunction(edge)])
        lon = network.node_lon[tail] + fraction * (network.node_lon[head] - network.node_lon[tail])
        lat = network.node_lat[tail] + fraction * (network.node_lat[head] - network.node_lat[tail])
        return float(lon), float(lat)

    def _drive_corridor(self, vehicle: str, corridor: dict[str, Any], current_edge: str) -> None:
        """Make the vehicle drive the route the corridor took after it left its own: from the edge
        it is on, along the corridor's route from the end of that edge, then on its own way from
        where the corridor ends (off the network, at its fringe, when its own route left it there),
        where SUMO's lanes connect it; else it keeps its own, and the corridor follows it by its
        updates."""
        sumo, network, junction_index = self.sumo, self.net.network, self.net.junction_index
        nodes = list(corridor["route"])
        here = junction_index[sumo.edge.getToJunction(current_edge)]
        if here in nodes:
            nodes = nodes[nodes.index(here):]
        edges = [current_edge]
        for a, b in itertools.pairwise(nodes):
            tail = network.node_index(a)
            out = range(network.indptr[tail], network.indptr[tail + 1])
            edge = self.net.edge_ids[min((e for e in out if network.indices[e] == network.node_index(b)),
                                         key=lambda e: network.travel_time_s[e])]
            if edge != edges[-1]:
                edges.append(edge)
        own = sumo.vehicle.getRoute(vehicle)[sumo.vehicle.getRouteIndex(vehicle):]
        ends = [i for i, edge in enumerate(own) if junction_index[sumo.edge.getToJunction(edge)] == nodes[-1]]
        if ends:
            edges += own[ends[-1] + 1:]
        try:
            sumo.vehicle.setRoute(vehicle, edges)
        except sumo.TraCIException as exc:
            self.corridor_stats["errors"]["ROUTE_NOT_DRIVABLE"] += 1
            logger.info("corridor %s: SUMO cannot drive its route (%s); the vehicle keeps its own", vehicle, exc)

    def _count_crossings(self, tracked: _Tracked, corridor: dict[str, Any]) -> None:
        """What came of each light on the corridor's route so far: held once planned; else refused
        (with the reason last given) once refused; else pending. The trip's counts add up. A light
        where the route starts is on the vehicle's way only when the vehicle has yet to reach it
        (it comes along an edge into the network, or the route starts at the end of its edge); one
        where it ends, only when the vehicle goes on beyond it (else it arrives at its stop line)."""
        road = self.sumo.vehicle.getRoadID(tracked.vehicle)
        if road in self.net.edge_index:
            ahead = self.net.junction_index[self.sumo.edge.getToJunction(road)] == corridor["route"][0]
        else:
            ahead = not tracked.on_network
        for crossing in corridor["crossings"]:
            if ((crossing["distance_m"] <= 0.0 and not ahead)
                    or (crossing["distance_m"] >= corridor["length_m"] - _SAME_POINT_M and not tracked.leaves_network)):
                continue
            intersection, state = crossing["intersection"], crossing["state"]
            if state == "planned":
                tracked.outcome[intersection] = "planned"
                tracked.hold_green_s[intersection] = (crossing["green_from"], crossing["green_until"])
            elif state == "refused" and tracked.outcome.get(intersection) != "planned":
                tracked.outcome[intersection] = "refused"
                tracked.refusal[intersection] = _refusal_reason(crossing["reason"])
            else:
                tracked.outcome.setdefault(intersection, "pending")
        record = self.emergency[tracked.vehicle]
        record["length_m"] = corridor["length_m"]
        outcomes = Counter(tracked.outcome.values())
        record["crossings"] = len(tracked.outcome)
        record["planned"], record["refused"], record["pending"] = (outcomes["planned"], outcomes["refused"],
                                                                   outcomes["pending"])
        record["refused_by_reason"] = dict(Counter(tracked.refusal[intersection] for intersection, outcome
                                                   in tracked.outcome.items() if outcome == "refused"))

    def _corridor_requests(self) -> CorridorRequests:
        """The corridors asked for and the requests sent, and the sums of what came of each trip's."""
        stats, trips = self.corridor_stats, list(self.emergency.values())
        refused_by_reason: Counter[str] = Counter()
        for trip in trips:
            refused_by_reason.update(trip["refused_by_reason"])
        return {"asked": stats["asked"], "opened": stats["opened"], "opened_in_part": stats["opened_in_part"],
                "not_opened": sum(stats["not_opened"].values()), "not_opened_by_reason": dict(stats["not_opened"]),
                "reopened": stats["reopened"], "closed": stats["closed"], "updates": stats["updates"],
                "reroutes": stats["reroutes"], "lights": sum(trip["crossings"] for trip in trips),
                "held": sum(trip["planned"] for trip in trips), "refused": sum(trip["refused"] for trip in trips),
                "pending": sum(trip["pending"] for trip in trips), "refused_by_reason": dict(refused_by_reason),
                "crossed_in_hold": sum(trip["crossed_in_hold"] for trip in trips), "errors": dict(stats["errors"])}

    # -- the protocol ---------------------------------------------------------------------------------------

    def _frame(self, message_type: str, body: dict[str, object]) -> bytes:
        return msgspec.json.encode({"v": wire.VERSION, "id": f"sim.{next(self._ids)}", "type": message_type,
                                    "body": body})

    def _handle(self, frames: list[bytes]) -> list[bytes | None]:
        """The reply to each request frame, from the engine in this process or the remote one (None:
        the remote engine did not answer)."""
        if self.service is not None:
            return list(self.service.handle(frames))
        replies: list[bytes | None] = []
        for frame in frames:
            replies.append(None if self._engine_down else self._remote(frame))
        return replies

    def _remote(self, frame: bytes) -> bytes | None:
        """The remote engine's reply to one frame; None, and no more requests at this step, when it
        does not answer in time."""
        assert self.client is not None
        try:
            raw = self.client.send_frame(frame)
        except TimedOutError:
            self._engine_down = True
            return None
        self._asked = True
        return raw

    def _send(self, message_type: str, body: dict[str, object]) -> dict[str, Any] | None:
        """The reply body of one request; an error reply, or none, is counted, logged, and gives None."""
        reply = self._request(message_type, body)
        return reply.body if reply is not None and reply.ok else None

    def _request(self, message_type: str, body: dict[str, object]) -> wire.Reply | None:
        """The reply to one request (None: the remote engine did not answer); an error reply, or
        none, is counted and logged."""
        raw = self._handle([self._frame(message_type, body)])[0]
        stats = self.priority_stats if message_type.startswith("priority") else self.corridor_stats
        if raw is None:
            stats["errors"][_UNANSWERED] += 1
            return None
        reply = self._reply.decode(raw)
        if not reply.ok:
            error = _error(reply)
            stats["errors"][error.code] += 1
            logger.info("%s for %s: %s %s", message_type, body.get("incident") or body.get("vehicle"), error.code,
                        error.message)
        return reply

    def _command(self) -> None:
        """The field adapter's turn (``signals.command``): the field's clock and the stages its
        lights show go to the engine; the command that comes back runs (:class:`FieldSignals`)."""
        assert isinstance(self.signals, FieldSignals)
        replies = []
        for body in self.signals.requests():
            raw = self._handle([self._frame("signals.command", body)])[0]
            if raw is None:
                self.signals.unanswered()
                return
            reply = self._reply.decode(raw)
            if not reply.ok:
                error = _error(reply)
                logger.error("signals.command: %s %s", error.code, error.message)
                self.signals.unanswered()
                return
            replies.append(reply.body)
        self.signals.command(replies)

    # -- the signals -------------------------------------------------------------------------------------------

    def _apply_signals(self) -> None:
        green_now = self.signals.green_groups()
        due = (green_now != self._shown_green).any(axis=1) | (self._amber_due_s <= self.now)
        for k in np.flatnonzero(due).tolist():
            light = self.net.lights[k]
            green = green_now[k, :light.green.size]
            if not np.array_equal(green, light.green):
                green = self._checked(light, green)
            ended = light.green & ~green
            light.amber_until_s[ended] = self.now + light.amber_s[ended]
            self._record(light, green)
            light.green[:] = green
            amber = ~green & (light.amber_until_s > self.now)
            light.amber_until_s[~amber] = np.nan
            self._amber_due_s[k] = np.min(light.amber_until_s[amber]) if amber.any() else np.inf
            ended_amber = ~amber & ~np.isnan(light.amber_since_s)
            if ended_amber.any():
                self.safety["longest_amber_s"] = max(self.safety["longest_amber_s"],
                                                     float(np.max(self.now - light.amber_since_s[ended_amber])))
            light.amber_since_s[ended_amber] = np.nan
            light.amber_since_s[amber & np.isnan(light.amber_since_s)] = self.now
            chars = light.phase_chars.get(green.tobytes(), light.green_char)
            state = "".join(chars[i] if green[g] else "y" if amber[g] else "r"
                            for i, g in enumerate(light.link_group.tolist()))
            if state != light.state:
                self.sumo.trafficlight.setRedYellowGreenState(light.tls, state)
                light.state = state

    def _drive_signals(self) -> None:
        """The lights show the engine's plans; or, when SUMO runs the scenario's own control, the
        greens its lights show are recorded (for the time-space diagram)."""
        if not self.options.own_control:
            self._apply_signals()
            self._sample_offsets()
            return
        for light in self.net.lights:
            state = self.sumo.trafficlight.getRedYellowGreenState(light.tls)
            green = np.array([state[link] in GREEN_STATES for link in light.first_links])
            if not np.array_equal(green, light.green):
                self._record(light, green)
                light.green[:] = green

    def _actuate(self) -> None:
        """Tell the engine of this process what the detectors of its actuated lights see: the time
        since each of their groups last had a vehicle over a loop of its approach."""
        if not self._actuated or self.options.own_control:
            return
        loops = self.sumo.inductionloop
        gaps: dict[int | str, dict[str, float]] = {}
        for light in self._actuated:
            plan = self.net.plans[light.plan]
            seen_s = np.full(plan.n_groups, np.inf)
            for loop, groups in light.detectors.items():
                gap_s = loops.getTimeSinceDetection(loop)
                for g in groups:
                    seen_s[g] = min(seen_s[g], gap_s)
            gaps[plan.id] = {plan.group_names[g]: float(seen_s[g]) for g in np.flatnonzero(np.isfinite(seen_s))}
        if isinstance(self.signals, FieldSignals):
            # The engine's plans follow them at the next turn; it counts its own re-timings.
            self.signals.detected(gaps)
            return
        for intersection in self.signals.actuate(gaps):
            self.light_stats[self._tls_of_plan[intersection]]["actuations"] += 1

    def _measure_lights(self) -> None:
        """The vehicles halted on each approach of every light this step (s of stopped delay), and
        the vehicles that came along it."""
        lanes = self.sumo.lane
        for approaches in self._approaches.values():
            for measured in approaches.values():
                for lane in measured.lanes:
                    measured.halted_s += lanes.getLastStepHaltingNumber(lane) * self.step_s
                    measured.vehicles.update(lanes.getLastStepVehicleIDs(lane))

    def _checked(self, light: Light, green: np.ndarray) -> np.ndarray:
        """``green`` if the monitor accepts it after the greens shown so far, else the greens as they are."""
        plan = self.net.plans[light.plan]
        since_s = max(self.begin_s, self.now - 2.0 * plan.max_cycle_s)
        shown = light.shown
        while light.recent_from < len(shown) and shown[light.recent_from][2] < since_s:
            light.recent_from += 1
        recent = [(g, start, end) for g, start, end in shown[light.recent_from:] if end >= since_s]
        proposed = [(g, start, self.now if not green[int(g)] and end == math.inf else end) for g, start, end in recent]
        started = [(g, self.now, math.inf) for g in np.flatnonzero(green & ~light.green)]
        intervals = proposed + started
        schedule = GreenSchedule(group=np.array([i[0] for i in intervals], dtype=np.int64),
                                 start_s=np.array([i[1] for i in intervals]), end_s=np.array([i[2] for i in intervals]),
                                 horizon_start_s=since_s, horizon_end_s=self.now)
        violations = check_schedule(plan, schedule)
        self.safety["state_changes"] += 1
        if not violations:
            return green
        self.safety["refused_states"] += 1
        logger.error("traffic light %s at %.1f s: state refused by the safety monitor: %s", light.tls, self.now,
                     "; ".join(f"{v.rule} {v.group} ({v.detail})" for v in violations))
        return light.green.copy()

    def _record(self, light: Light, green: np.ndarray) -> None:
        for g in np.flatnonzero(light.green & ~green).tolist():
            light.shown[light.open_at[g]][2] = self.now
            light.open_at[g] = -1
        for g in np.flatnonzero(green & ~light.green).tolist():
            light.open_at[g] = len(light.shown)
            light.shown.append([g, self.now, math.inf])

    def final_check(self) -> None:
        """The whole history of greens shown, checked by the monitor: the run's violations; and what
        the engine's own monitor did with the plans it made."""
        monitor = self.signals.monitor
        self.safety["plans_checked"] = monitor.checks
        self.safety["plans_refused"] = monitor.refused
        self.safety["plan_fallbacks"] = monitor.fallbacks
        # SUMO's own control is not the engine's to answer for: its greens are recorded, not checked.
        for light in [] if self.options.own_control else self.net.lights:
            if not light.shown:
                continue
            shown = np.array(light.shown)
            schedule = GreenSchedule(group=shown[:, 0].astype(np.int64), start_s=shown[:, 1], end_s=shown[:, 2],
                                     horizon_start_s=self.begin_s, horizon_end_s=self.now)
            for violation in check_schedule(self.net.plans[light.plan], schedule):
                self.safety["violations"] += 1
                self.violations_by_rule[violation.rule] += 1
                logger.error("traffic light %s: %s of group %s at %.1f s (%s)", light.tls, violation.rule,
                             violation.group, violation.time_s, violation.detail)
        self.safety["by_rule"] = dict(self.violations_by_rule)

    # -- the time-space record ---------------------------------------------------------------------------------

    def _maybe_record_route(self, vehicle: str) -> None:
        """Record the vehicle's route when it crosses at least three driven lights (and is of the
        line asked for, if one is), and the vehicle's positions along it."""
        if not self.options.time_space:
            return
        line = self.sumo.vehicle.getLine(vehicle) or self.sumo.vehicle.getRouteID(vehicle)
        if self.options.time_space_line is not None and line != self.options.time_space_line:
            return
        route = tuple(self.sumo.vehicle.getRoute(vehicle))
        record = self._routes.get(route)
        if record is None:
            record = self._routes[route] = self._route_record(line, route)
        if record.signals:
            record.vehicles[vehicle] = []
            self._recorded[vehicle] = record

    def _route_record(self, line: str, route: tuple[str, ...]) -> _RouteRecord:
        """The record of a route: its length, and the driven lights on it (none when under three)."""
        lengths_m = [self.sumo.lane.getLength(f"{edge}_0") for edge in route]
        starts_m = np.concatenate(([0.0], np.cumsum(lengths_m)))
        edge_index = self.net.edge_index
        signals: list[tuple[Light, int, float]] = []
        for i, turn in enumerate(itertools.pairwise(route)):
            if not set(turn) <= edge_index.keys():
                continue
            for light in self.net.lights:
                rows = self.net.plans[light.plan].movements
                found = rows[(rows[:, 0] == edge_index[turn[0]]) & (rows[:, 1] == edge_index[turn[1]])]
                if found.size:
                    signals.append((light, int(found[0, 2]), float(starts_m[i + 1])))
        # Any driven light on the line asked for; three on the busiest, for a diagram worth drawing.
        enough = 1 if self.options.time_space_line is not None else 3
        return _RouteRecord(f"line {line}", float(starts_m[-1]), signals if len(signals) >= enough else [], {},
                            starts_m)

    def _record_position(self, vehicle: str, record: _RouteRecord) -> None:
        sumo = self.sumo
        if sumo.vehicle.getRoadID(vehicle).startswith(":"):
            return
        index = sumo.vehicle.getRouteIndex(vehicle)
        distance_m = float(record.starts_m[index]) + sumo.vehicle.getLanePosition(vehicle)
        record.vehicles[vehicle].append([self.now, distance_m])

    # -- measures ----------------------------------------------------------------------------------------------

    def measures(self) -> LoopMeasures:
        """The run's measures so far, after the final check of every green shown."""
        self.final_check()
        time_space: TimeSpace | None = None
        # The busiest route recorded: the one most vehicles drove.
        record = max((record for record in self._routes.values() if record.signals),
                     key=lambda record: sum(bool(points) for points in record.vehicles.values()), default=None)
        if record is not None:
            time_space = {
                "corridor": record.corridor, "length_m": record.length_m,
                "signals": [{"traffic_light": light.tls, "distance_m": distance_m,
                             "green": [[start, min(end, self.now)] for g, start, end in light.shown if g == group]}
                            for light, group, distance_m in record.signals],
                "vehicles": {v: points for v, points in record.vehicles.items() if points}}
        priority = self.priority_stats
        already_green = priority["by_strategy"].get("already_green", 0)
        requests: PriorityRequests = {
            "requests": priority["requests"], "granted": priority["granted"],
            "by_strategy": dict(priority["by_strategy"]), "denied": dict(priority["denied"]),
            "checkouts": priority["checkouts"], "errors": dict(priority["errors"]),
            "already_green": already_green, "plan_changes": priority["granted"] - already_green}
        corridors = self._corridor_requests()
        return {
            "scenario": self.sumocfg.name, "priority": self.options.priority, "corridors": self.options.corridors,
            "seed": self.options.seed, "begin_s": self.begin_s, "end_s": self.now, "step_s": self.step_s,
            "steps": self.steps, "emergency": {"trips": list(self.emergency.values())},
            "priority_requests": requests, "grant_use": self._grant_use(), "offsets": self._offsets(),
            "traffic": self.traffic.copy(),
            "corridor_requests": corridors, "safety": self.safety.copy(), "time_space": time_space,
            "field": asdict(self.signals.counts) if isinstance(self.signals, FieldSignals) else None,
            "own_control": self.options.own_control, "lights": self._lights(),
        }

    def _lights(self) -> list[LightMeasures]:
        """Every traffic light of the scenario, driven or left to SUMO, and its measures."""
        measured: list[LightMeasures] = []
        for tls, approaches in self._approaches.items():
            light = self.net.light_of_tls.get(tls)
            stats = self.light_stats[tls]
            by_edge: dict[str, ApproachMeasures] = {
                edge: {"vehicles": len(approach.vehicles), "stopped_delay_s": approach.halted_s,
                       "stopped_delay_per_vehicle_s": approach.halted_s / len(approach.vehicles)
                       if approach.vehicles else None}
                for edge, approach in approaches.items()}
            vehicles = sum(len(approach.vehicles) for approach in approaches.values())
            measured.append({
                "traffic_light": tls, "driven": light is not None and not self.options.own_control,
                "reason": self.net.left_to_sumo.get(tls) if light is None else
                ("SUMO runs the scenario's own control in this arm" if self.options.own_control else None),
                "control": light.control if light is not None else self.net.control_of_tls.get(tls, "static"),
                "approaches": by_edge,
                "stopped_delay_per_vehicle_s": sum(a.halted_s for a in approaches.values()) / vehicles
                if vehicles else None,
                "grants": stats["grants"], "denied": dict(stats["denied"]), "actuations": stats["actuations"]})
        return measured

    def _grant_use(self) -> GrantUse:
        """The last plan-changing grants of each vehicle and light, by whether their vehicle crossed
        within their green, outside it, or not at all by the end of the run."""
        in_green, outside_green = self.grant_crossings["in_green"], self.grant_crossings["outside_green"]
        crossed = in_green + outside_green
        return {"grants": crossed + len(self._grant_green_s), "crossed": crossed, "in_green": in_green,
                "outside_green": outside_green, "not_crossed": len(self._grant_green_s),
                "grants_used_share": in_green / crossed if crossed else None}

    def _offsets(self) -> Offsets:
        """The offset errors sampled: per light and over all, the 95th percentile and the largest of
        their absolute values (s; None without a sample)."""

        def summary(errors_s: list[float]) -> OffsetErrors:
            magnitudes_s = np.abs(errors_s)
            return {"samples": len(errors_s),
                    "p95_abs_error_s": float(np.percentile(magnitudes_s, 95)) if errors_s else None,
                    "max_abs_error_s": float(magnitudes_s.max()) if errors_s else None}

        every_light = summary([error_s for errors_s in self._offset_error_s for error_s in errors_s])
        return {"sample_every_s": OFFSET_SAMPLE_EVERY_S, "samples": every_light["samples"],
                "p95_abs_error_s": every_light["p95_abs_error_s"], "max_abs_error_s": every_light["max_abs_error_s"],
                "by_light": {light.tls: summary(self._offset_error_s[light.plan]) for light in self.net.lights}}


def _refusal_reason(reason: str) -> str:
    """A crossing's refusal without its details (what follows a colon, the safety rules broken at
    their times; or a parenthesis, the constraints at play), so that refusals tally by reason."""
    return reason.split(":", 1)[0].split(" (", 1)[0]


def _error(reply: wire.Reply) -> wire.Error:
    """The error of a reply that is not ``ok``: the protocol gives every such reply one."""
    assert not isinstance(reply.error, msgspec.UnsetType)
    return reply.error

