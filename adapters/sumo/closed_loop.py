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
  stop line), its lateness (by the ``arrival`` times of its stops, when the scenario gives them)
  and its passengers, again every ``request_every_s``; it checks out when it has passed.
- **Emergency corridors**: a vehicle of class emergency opens a corridor from where it is to the
  end of its route when it sets off, drives the corridor's route, reports its position every
  ``update_every_s``, and closes the corridor on arrival.

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
from typing import Any, TypedDict

import msgspec
import numpy as np

from pilotage.adapters.field import FieldSignals
from pilotage.adapters.service import Service
from pilotage.adapters.sumo.measures import (
    CorridorRequests,
    EmergencyTrip,
    GrantUse,
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
from pilotage.adapters.sumo.network import Light, import_libsumo, output_prefix, read_network, scenario_file
from pilotage.adapters.zeromq import Client
from pilotage.core import DataFileError, InvalidInputError
from pilotage.core import protocol as wire
from pilotage.core.errors import TimedOutError, UnknownEntityError
from pilotage.core.safety import GreenSchedule, check_schedule
from pilotage.core.signals import SignalPlans
from pilotage.signal_priority.corridors import CorridorConfig, CorridorEngine
from pilotage.signal_priority.engine import DEFAULT_MAX_ETA_S, PriorityConfig, PriorityEngine

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
        time_space: record the time-space diagram of one bus route.
        engine: the request endpoint of a ``pilotage serve --sumocfg SCENARIO --clock field`` of
            this scenario: the loop drives the lights as a field adapter does
            (:mod:`pilotage.adapters.field`: commands that expire, the lights' own programs when
            the engine is lost) and sends its vehicles' requests there. None: an engine in this
            process.
        step_listener: called with the simulated time after each step (to act on a run from
            outside it, as a test that stops the engine does).
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
    processes.

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
        return run
    folder = Path(output_dir)
    _check_outputs(options, folder)
    folder.mkdir(parents=True, exist_ok=True)
    run = _run(libsumo, sumocfg, options, folder)
    run["outputs"] = {"folder": str(folder), "files": sorted(path.name for path in folder.iterdir())}
    return run


def _run(libsumo: ModuleType, sumocfg: Path, options: LoopOptions, folder: Path) -> Run:
    """One run, every output written into ``folder`` (an existing folder)."""
    own = _outputs_set(sumocfg, options.sumo_args)
    command = ["sumo", "-c", str(sumocfg), "--seed", str(options.seed), "--no-step-log", "true",
               "--output-prefix", output_prefix(folder), "--tripinfo-output.write-unfinished", "true",
               "--no-warnings", "true"]
    for name, file in _LOOP_OUTPUTS.items():
        if name not in own:
            command += [f"--{name}", file]
    command += options.sumo_args
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
            "buses": {"signal_time_loss_s": bus_losses_s, "schedule": schedule_adherence(stopinfo)}, "outputs": None}


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
    """The name of a run's arm by its switches: ``off``, ``on``, ``priority-on`` or ``corridors-on``."""
    if options.priority == options.corridors:
        return "on" if options.priority else "off"
    return "priority-on" if options.priority else "corridors-on"


def compare(sumocfg: str | Path, options: LoopOptions | None = None, *, seeds: int = 1, baseline: bool = True,
            output_dir: str | os.PathLike[str] | None = None) -> list[Run]:
    """Paired runs over ``seeds`` seeds, ``options.seed``, ``options.seed + 1``, ...: for each, the
    baseline (priority and corridors off) and ``options`` (default: both on), with that seed and the
    same demand; ``options`` alone when ``baseline`` is False or ``options`` is the baseline. Each
    run in a process of its own, as many at once as there are cores. Returns their measures, seed by
    seed, the baseline first.

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
    return [results[n] for n in range(len(runs))]


def _quiet_worker() -> None:
    # A run's own count of what went wrong is in its measures; its log shows only the errors
    # (a state refused, a violation), not each plan the engine's monitor kept from being applied.
    logging.basicConfig(level=logging.ERROR, format="pilotage: %(message)s")
    # A run returns its measures to the parent: what SUMO prints (its own messages, "Loading
    # net-file ...") goes to the standard error, so the parent's standard output stays its own
    # (`--json` prints JSON only).
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())


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
    # An emergency vehicle's corridor, as its last reply gave it: open, and how often rerouted.
    corridor_open: bool = False
    reroutes: int = 0
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
    """The corridor requests sent so far, what came of them, and their errors by code."""

    opened: int
    reopened: int
    closed: int
    updates: int
    reroutes: int
    errors: Counter[str]


@dataclass
class _RouteRecord:
    """The bus route whose time-space diagram is recorded: its name and length (m), each driven light
    on it (with its signal group and its distance along the route, m), and the points of each
    vehicle on it (``[time_s, distance_m]``)."""

    corridor: str
    length_m: float
    signals: list[tuple[Light, int, float]]
    vehicles: dict[str, list[list[float]]]


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
        self.client: Client | None = None
        if options.engine is None:
            lateness = -math.inf if options.min_lateness_s is None else options.min_lateness_s
            self.signals = PriorityEngine(plans, clock=lambda: self.now, config=PriorityConfig(bus_lateness_s=lateness))
            corridors = CorridorEngine(self.net.network, self.signals,
                                       CorridorConfig(emergency_speed_kph=self.net.speed_classes_kph,
                                                      timeout_s=max(30.0, 10 * options.update_every_s)))
            self.service = Service(self.net.network, self.signals, corridors=corridors)
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
        self.corridor_stats: _CorridorCounts = {"opened": 0, "reopened": 0, "closed": 0, "updates": 0, "reroutes": 0,
                                                "errors": Counter()}
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
        self._time_space: _RouteRecord | None = None
        self._time_space_route: tuple[str, ...] = ()
        self._route_starts_m = np.zeros(1)
        # The most persons seen aboard each bus and tram.
        self.persons_aboard: dict[str, int] = {}
        # The green of the last plan-changing grant of each (vehicle, traffic light) not yet crossed.
        self._grant_green_s: dict[tuple[str, str], tuple[float, float]] = {}
        self.grant_crossings = {"in_green": 0, "outside_green": 0}
        self._offset_error_s: list[list[float]] = [[] for _ in self.net.lights]
        self._next_offset_sample_s = self.begin_s
        self.traffic: Traffic = {"teleports": 0, "insertion_backlog_max": 0, "insertion_backlog_end": 0}

    # -- stepping ------------------------------------------------------------------------------------

    def run(self) -> None:
        sumo = self.sumo
        self._apply_signals()
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
            if self.service is not None:
                self.service.tick()
            elif self._asked and not self._engine_down:
                self._command()
            self._apply_signals()
            self._sample_offsets()
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
        elif kind == "emergency":
            tracked = self.tracked[vehicle] = _Tracked(vehicle, "emergency")
            self.emergency[vehicle] = {"vehicle": vehicle, "depart_s": self.now, "travel_time_s": None,
                                       "length_m": 0.0, "crossings": 0, "planned": 0, "refused": 0}
            if self.options.corridors:
                self._open_corridor(tracked)

    def _arrived(self, vehicle: str) -> None:
        tracked = self.tracked.pop(vehicle, None)
        if tracked is not None and tracked.corridor_open:
            reply = self._send("corridor.close", {"incident": vehicle})
            self.corridor_stats["closed"] += reply is not None

    def _follow_vehicles(self) -> None:
        vehicle_api = self.sumo.vehicle
        requests: list[tuple[_Tracked, dict[str, object]]] = []
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
            if self._time_space is not None and vehicle in self._time_space.vehicles:
                self._record_position(vehicle)
            if tracked.next_tls and tls != tracked.next_tls:
                self._crossed(tracked)
                if tracked.next_tls in tracked.granted_tls:
                    self._checkout(tracked)
            if tls != tracked.next_tls:
                tracked.next_tls, tracked.requested_s = tls, -math.inf
            if tracked.kind == "emergency":
                if tracked.corridor_open and self.now - tracked.requested_s >= self.options.update_every_s:
                    tracked.requested_s = self.now
                    self._update_corridor(tracked)
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

    def _priority_request(self, tracked: _Tracked, light: Light, link: int, distance_m: float,
                          speed: float) -> dict[str, object] | None:
        """The vehicle's request at its next light, or None while a stop before the light holds it
        (it checks in when its doors close). The arrival interval runs from the time at the allowed
        speed (plus the time to reach it, at ``ACCELERATION_MS2``) to the time at its current speed
        (no less than half the allowed speed); the queue is the vehicles halted ahead of it."""
        vehicle_api = self.sumo.vehicle
        vehicle = tracked.vehicle
        allowed = max(vehicle_api.getAllowedSpeed(vehicle), 1.0)
        lateness_s = 0.0
        next_stop = self._next_stop(vehicle)
        if next_stop is not None:
            stop, to_stop_m = next_stop
            if 0 <= to_stop_m <= distance_m:
                return None
            if stop.intendedArrival > _INVALID_SUMO_TIME and to_stop_m >= 0:
                lateness_s = self.now + to_stop_m / max(speed, 0.5 * allowed, 1.0) - stop.intendedArrival
        earliest_s = distance_m / allowed + max(0.0, allowed - speed) / (2.0 * ACCELERATION_MS2)
        latest_s = max(earliest_s, distance_m / max(speed, 0.5 * allowed, 1.0))
        plan = self.net.plans[light.plan]
        # Capped at what the engine accepts: the arrival cap of its default configuration (the loop's
        # own engine keeps it; a remote one is expected to), and the protocol's lateness bound.
        return {"vehicle": vehicle, "intersection": plan.id, "group": plan.group_names[light.link_group[link]],
                "eta_s": min(earliest_s, DEFAULT_MAX_ETA_S),
                "eta_window_s": min(latest_s - earliest_s + ETA_MARGIN_S, DEFAULT_MAX_ETA_S),
                "class": tracked.kind, "lateness_s": max(-wire.MAX_LATENESS_S, min(wire.MAX_LATENESS_S, lateness_s)),
                "occupancy": float(vehicle_api.getPersonNumber(vehicle)),
                "queue_vehicles": float(self._halted_ahead(vehicle, distance_m))}

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
            else:
                stats["denied"][reply.body["reason"]] += 1

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
                # An edge the emergency type may not use (a bus-only lane): draw again.
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

    def _open_corridor(self, tracked: _Tracked) -> None:
        sumo, vehicle = self.sumo, tracked.vehicle
        # The vehicle's own route (SUMO's lanes connect it), from the start of the edge it is on.
        ahead = sumo.vehicle.getRoute(vehicle)[sumo.vehicle.getRouteIndex(vehicle):]
        if not set(ahead) <= self.net.edge_index.keys():
            self.corridor_stats["errors"]["OFF_NETWORK"] += 1
            return
        junction_index = self.net.junction_index
        nodes = [junction_index[sumo.edge.getFromJunction(ahead[0])],
                 *(junction_index[sumo.edge.getToJunction(edge)] for edge in ahead)]
        reply = self._send("corridor.open", {"incident": vehicle, "origin": nodes[0], "destination": nodes[-1],
                                             "route": nodes})
        if reply is None:
            return
        tracked.corridor_open = True
        self.corridor_stats["opened"] += 1
        self._count_crossings(vehicle, reply)

    def _update_corridor(self, tracked: _Tracked) -> None:
        road = self.sumo.vehicle.getRoadID(tracked.vehicle)
        # Inside a junction, or on no lane at all while SUMO teleports it: no position to report.
        if not road or road.startswith(":"):
            return
        lon, lat = self._matched_position(tracked.vehicle, road)
        answer = self._request("corridor.update", {"incident": tracked.vehicle, "position": {"lon": lon, "lat": lat}})
        if answer is not None and not answer.ok and _error(answer).code == UnknownEntityError.code:
            # The engine no longer has the corridor (it restarted without it, or ended it unheard
            # from): the vehicle opens it again from where it is, as a dispatch client would.
            tracked.corridor_open = False
            self.corridor_stats["reopened"] += 1
            self._open_corridor(tracked)
            return
        if answer is None or not answer.ok:
            return
        reply = answer.body
        self.corridor_stats["updates"] += 1
        if reply["reroutes"] > tracked.reroutes:
            tracked.reroutes = reply["reroutes"]
            self.corridor_stats["reroutes"] += 1
            self._drive_corridor(tracked.vehicle, reply, road)
        self._count_crossings(tracked.vehicle, reply)

    def _matched_position(self, vehicle: str, edge: str) -> tuple[float, float]:
        """The vehicle's position matched on the network: as far along the line between its edge's
        junctions as it is along the edge, as a vehicle's map-matched position reports it (the
        edge's own shape may bend away from that line)."""
        sumo, network = self.sumo, self.net.network
        fraction = sumo.vehicle.getLanePosition(vehicle) / max(sumo.lane.getLength(sumo.vehicle.getLaneID(vehicle)),
                                                               1e-9)
        tail = network.node_index(self.net.junction_index[sumo.edge.getFromJunction(edge)])
        head = network.node_index(self.net.junction_index[sumo.edge.getToJunction(edge)])
        lon = network.node_lon[tail] + fraction * (network.node_lon[head] - network.node_lon[tail])
        lat = network.node_lat[tail] + fraction * (network.node_lat[head] - network.node_lat[tail])
        return float(lon), float(lat)

    def _drive_corridor(self, vehicle: str, corridor: dict[str, Any], current_edge: str) -> None:
        """Make the vehicle drive the route the corridor took after it left its own (from the edge it
        is on), where SUMO's lanes connect it; else it keeps its own, and the corridor follows it by
        its updates."""
        nodes = corridor["route"]
        network = self.net.network
        edges = [current_edge]
        for a, b in itertools.pairwise(nodes):
            tail = network.node_index(a)
            out = range(network.indptr[tail], network.indptr[tail + 1])
            edge = self.net.edge_ids[min((e for e in out if network.indices[e] == network.node_index(b)),
                                         key=lambda e: network.travel_time_s[e])]
            if edge != edges[-1]:
                edges.append(edge)
        try:
            self.sumo.vehicle.setRoute(vehicle, edges)
        except self.sumo.TraCIException as exc:
            self.corridor_stats["errors"]["ROUTE_NOT_DRIVABLE"] += 1
            logger.info("corridor %s: SUMO cannot drive its route (%s); the vehicle keeps its own", vehicle, exc)

    def _count_crossings(self, vehicle: str, corridor: dict[str, Any]) -> None:
        record = self.emergency[vehicle]
        crossings = corridor["crossings"]
        record["length_m"] = corridor["length_m"]
        record["crossings"] = max(int(record["crossings"]), len(crossings))
        record["planned"] = max(int(record["planned"]), sum(c["state"] == "planned" for c in crossings))
        record["refused"] = max(int(record["refused"]), sum(c["state"] == "refused" for c in crossings))

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
        for light in self.net.lights:
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
        """Record the first bus route crossing at least three driven lights, and every vehicle on it."""
        if not self.options.time_space:
            return
        route = tuple(self.sumo.vehicle.getRoute(vehicle))
        if self._time_space is not None:
            if route == self._time_space_route:
                self._time_space.vehicles[vehicle] = []
            return
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
        if len(signals) < 3:
            return
        self._time_space_route = route
        self._route_starts_m = starts_m
        self._time_space = _RouteRecord(f"route of {vehicle}", float(starts_m[-1]), signals, {vehicle: []})

    def _record_position(self, vehicle: str) -> None:
        assert self._time_space is not None
        sumo = self.sumo
        if sumo.vehicle.getRoadID(vehicle).startswith(":"):
            return
        index = sumo.vehicle.getRouteIndex(vehicle)
        distance_m = float(self._route_starts_m[index]) + sumo.vehicle.getLanePosition(vehicle)
        self._time_space.vehicles[vehicle].append([self.now, distance_m])

    # -- measures ----------------------------------------------------------------------------------------------

    def measures(self) -> LoopMeasures:
        """The run's measures so far, after the final check of every green shown."""
        self.final_check()
        time_space: TimeSpace | None = None
        record = self._time_space
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
        corridors: CorridorRequests = {**self.corridor_stats, "errors": dict(self.corridor_stats["errors"])}
        return {
            "scenario": self.sumocfg.name, "priority": self.options.priority, "corridors": self.options.corridors,
            "seed": self.options.seed, "begin_s": self.begin_s, "end_s": self.now, "step_s": self.step_s,
            "steps": self.steps, "emergency": {"trips": list(self.emergency.values())},
            "priority_requests": requests, "grant_use": self._grant_use(), "offsets": self._offsets(),
            "traffic": self.traffic.copy(),
            "corridor_requests": corridors, "safety": self.safety.copy(), "time_space": time_space,
            "field": asdict(self.signals.counts) if isinstance(self.signals, FieldSignals) else None,
        }

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


def _error(reply: wire.Reply) -> wire.Error:
    """The error of a reply that is not ``ok``: the protocol gives every such reply one."""
    assert not isinstance(reply.error, msgspec.UnsetType)
    return reply.error

