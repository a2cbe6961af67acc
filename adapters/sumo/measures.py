"""A closed-loop run's measures: their shape (:class:`Run`, the keys
:mod:`pilotage.adapters.sumo.report` reads), and those taken from SUMO's outputs, its trip output
(``tripinfo``, unfinished trips included) and its stop output
(:mod:`pilotage.adapters.sumo.closed_loop` measures the rest as the run goes). Times in s, lengths
in m, ``None`` where a value does not exist (a mean over no trips).

- **Trips**, per vehicle class: travel time (duration) over the trips that ended; time loss, stops
  (timeLoss, waitingCount) and time lost at signals over every vehicle that set off, up to the end
  of the run.
- **Person delay**: SUMO's time loss of each vehicle times the persons it carries, summed, in
  person-hours: :data:`CAR_OCCUPANCY` per car, one per other vehicle (its driver), and for buses
  and trams the most passengers SUMO counted aboard over the trip; when no bus or tram of the run
  ever carries a passenger (the scenario models none), :data:`ASSUMED_TRANSIT_OCCUPANCY` instead,
  and the run says so.
- **Schedule adherence** of buses at their stops timed by SUMO's either way (a stop's ``arrival``, or
  its ``until``, the time it may leave): their delays, and the share within :data:`ON_TIME_S`; and
  which way the timetable was given (:data:`TIMETABLES`), or that it was given neither way.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, TypedDict

import numpy as np

#: Persons per car: the usual mean occupancy of urban car traffic (commuting nearer 1.1, leisure 1.6).
CAR_OCCUPANCY = 1.3
#: Persons aboard a bus or tram when the scenario carries no passengers: a mean load over an urban
#: line's route and day, not a full vehicle (an assumption, reported as such).
ASSUMED_TRANSIT_OCCUPANCY = {"bus": 20.0, "tram": 60.0}
#: A stop arrival between 60 s early and 300 s late is on time (the usual bus punctuality window).
ON_TIME_S = (-60.0, 300.0)
#: How a run's bus stops were timed: by ``arrival`` (the arrival's delay is measured), by ``until``
#: (the departure's), by both (each stop by its ``arrival`` when it has one), or by neither.
TIMETABLES = ("arrival", "until", "arrival and until", "none")


class ClassMeasures(TypedDict):
    """One vehicle class's trips: counts, means per trip, and the person-hours it lost."""

    trips: int
    unfinished: int
    travel_time_s: float | None
    time_loss_s: float | None
    stops: float | None
    signal_time_loss_s: float | None
    person_hours_lost: float


class PersonDelay(TypedDict):
    """The run's person-hours lost, and the occupancies they were counted with (persons)."""

    person_hours_lost: float
    car_occupancy: float
    transit_passengers: str
    assumed_transit_occupancy: dict[str, float] | None


class ScheduleAdherence(TypedDict):
    """Bus stops timed by ``arrival`` or ``until``: how many, their delays, the shares on time and late,
    and how they were timed (one of :data:`TIMETABLES`; None when no bus stop ended)."""

    timetable: str | None
    stops: int
    mean_delay_s: float | None
    mean_abs_delay_s: float | None
    on_time_share: float | None
    late_share: float | None


class BusMeasures(TypedDict):
    """The time each bus lost at signals, and the buses' schedule adherence."""

    signal_time_loss_s: list[float]
    schedule: ScheduleAdherence


class EmergencyTrip(TypedDict):
    """One emergency vehicle's trip: its corridor, the traffic lights on the routes its corridor
    planned and what came of each, and the lights it crossed.

    Attributes:
        corridor: ``"opened"``; why it could not open (an error code: ``OFF_NETWORK`` when the
            network holds no edge of its route); None with corridors off.
        crossings: the lights on its corridor's routes, each once; ``planned`` (held at some time),
            ``refused`` (never held, refused: by the last reason, in ``refused_by_reason``) and
            ``pending`` (never planned: beyond reach, or not reached by the end) add up to it.
        crossed_in_hold: lights it crossed within the green of their hold.
        lights_crossed, waited_at_lights: every traffic light it crossed, corridor or not, and
            those it waited at (halted within :data:`~pilotage.adapters.sumo.closed_loop.SIGNAL_ZONE_M`
            of the stop line, not at a stop).
    """

    vehicle: str
    depart_s: float
    travel_time_s: float | None
    length_m: float
    corridor: str | None
    crossings: int
    planned: int
    refused: int
    pending: int
    refused_by_reason: dict[str, int]
    crossed_in_hold: int
    lights_crossed: int
    waited_at_lights: int


class EmergencyTrips(TypedDict):
    """The run's emergency trips."""

    trips: list[EmergencyTrip]


class PriorityRequests(TypedDict):
    """The priority requests sent, and their replies (denials and errors by reason and code)."""

    requests: int
    granted: int
    by_strategy: dict[str, int]
    denied: dict[str, int]
    checkouts: int
    errors: dict[str, int]
    already_green: int
    plan_changes: int


class CorridorRequests(TypedDict):
    """The corridors asked for and the requests sent, and what came of them; counts that add up.

    Attributes:
        asked: emergency vehicles that asked for a corridor: ``opened`` and ``not_opened`` (by
            reason, an error code, in ``not_opened_by_reason``) add up to it.
        opened_in_part: of those opened, on the part of the route the network holds (the vehicle
            enters or leaves it on edges at the scenario's fringe).
        reopened: corridors opened again after the engine had lost them.
        lights, held, refused, pending, refused_by_reason, crossed_in_hold: the sums of the trips'
            ``crossings``, ``planned``, ``refused``, ``pending``, ``refused_by_reason`` and
            ``crossed_in_hold`` (:class:`EmergencyTrip`).
        errors: the error replies to every corridor request, by code.
    """

    asked: int
    opened: int
    opened_in_part: int
    not_opened: int
    not_opened_by_reason: dict[str, int]
    reopened: int
    closed: int
    updates: int
    reroutes: int
    lights: int
    held: int
    refused: int
    pending: int
    refused_by_reason: dict[str, int]
    crossed_in_hold: int
    errors: dict[str, int]


class GrantUse(TypedDict):
    """The last plan-changing grants of each vehicle and light, by whether their vehicle crossed
    within their green."""

    grants: int
    crossed: int
    in_green: int
    outside_green: int
    not_crossed: int
    grants_used_share: float | None


class OffsetErrors(TypedDict):
    """Offset errors sampled: how many, and the 95th percentile and the largest of their magnitudes."""

    samples: int
    p95_abs_error_s: float | None
    max_abs_error_s: float | None


class Offsets(OffsetErrors):
    """The offset errors over every light, how often sampled, and per traffic light."""

    sample_every_s: float
    by_light: dict[str, OffsetErrors]


class Traffic(TypedDict):
    """SUMO's teleports, and the vehicles due but not yet inserted (the most at once, at the end)."""

    teleports: int
    insertion_backlog_max: int
    insertion_backlog_end: int


class Safety(TypedDict):
    """The states the lights showed, checked as they were sent and over the whole run, and what the
    engine's own monitor did with the plans it made."""

    traffic_lights: int
    state_changes: int
    refused_states: int
    violations: int
    by_rule: dict[str, int]
    longest_amber_s: float
    plans_checked: int
    plans_refused: int
    plan_fallbacks: int


class TimeSpaceSignal(TypedDict):
    """A traffic light on the time-space route: where, and the ``[start_s, end_s]`` greens of the route's group."""

    traffic_light: str
    distance_m: float
    green: list[list[float]]


class TimeSpace(TypedDict):
    """The time-space record of one bus route: its lights, and each vehicle's ``[time_s, distance_m]`` points."""

    corridor: str
    length_m: float
    signals: list[TimeSpaceSignal]
    vehicles: dict[str, list[list[float]]]


class Outputs(TypedDict):
    """Where a run wrote its output files, and their names."""

    folder: str
    files: list[str]


class ApproachMeasures(TypedDict):
    """One edge into a traffic light: the vehicles that came along it, and the stopped delay they
    had there (halted vehicle-seconds on its lanes, and per vehicle)."""

    vehicles: int
    stopped_delay_s: float
    stopped_delay_per_vehicle_s: float | None


class LightMeasures(TypedDict):
    """One traffic light of the scenario: whether the engine drove it (and if not, why), its
    control type in the scenario, its approaches, and what the engine did there."""

    traffic_light: str
    driven: bool
    reason: str | None
    control: str
    approaches: dict[str, ApproachMeasures]
    stopped_delay_per_vehicle_s: float | None
    grants: int
    denied: dict[str, int]
    actuations: int


class LoopMeasures(TypedDict):
    """What the loop measures as the run goes."""

    scenario: str
    priority: bool
    corridors: bool
    own_control: bool
    seed: int
    begin_s: float
    end_s: float
    step_s: float
    steps: int
    emergency: EmergencyTrips
    priority_requests: PriorityRequests
    grant_use: GrantUse
    offsets: Offsets
    traffic: Traffic
    corridor_requests: CorridorRequests
    safety: Safety
    time_space: TimeSpace | None
    field: dict[str, Any] | None
    lights: list[LightMeasures]


class Run(LoopMeasures):
    """One closed-loop run's measures, as JSON-able dicts: the loop's, those from SUMO's outputs,
    the run's wall time and its output files (None: written to a temporary folder)."""

    wall_time_s: float
    classes: dict[str, ClassMeasures]
    person_delay: PersonDelay
    buses: BusMeasures
    outputs: Outputs | None


def _elements(path: Path, tag: str) -> Iterator[ET.Element]:
    if not path.is_file():
        return
    for _, element in ET.iterparse(path):
        if element.tag == tag:
            yield element
            element.clear()


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def trip_measures(tripinfo: Path, vehicle_class: dict[str, str], signal_loss_s: Counter[str],
                  emergency: dict[str, EmergencyTrip], passengers: dict[str, int] | None,
                  ) -> tuple[dict[str, ClassMeasures], list[float], PersonDelay]:
    """Per class: travel time over the trips that ended; time loss, stops and time lost at signals
    over every vehicle that set off, each counted up to the end of the run (a short window ends
    before most long trips do, and the same vehicles set off in both runs), and the person-hours
    lost. Also the time each bus lost at signals; the person delay of the run; and, into
    ``emergency``, the travel time and length of each emergency trip that ended. ``passengers``:
    the most persons SUMO counted aboard each bus and tram, None when the scenario models none (the
    assumed occupancy then). One pass over SUMO's trip output."""
    values: dict[str, dict[str, list[float]]] = {}
    bus_losses_s: list[float] = []
    for trip in _elements(tripinfo, "tripinfo"):
        vehicle = trip.get("id", "")
        kind = vehicle_class.get(vehicle, "other")
        ended = float(trip.get("arrival", "-1")) >= 0
        lists = values.setdefault(kind, {"travel_time_s": [], "time_loss_s": [], "stops": [], "signal": [],
                                         "person_s": []})
        if ended:
            lists["travel_time_s"].append(float(trip.get("duration", "nan")))
            if vehicle in emergency:
                emergency[vehicle]["travel_time_s"] = lists["travel_time_s"][-1]
                emergency[vehicle]["length_m"] = float(trip.get("routeLength", emergency[vehicle]["length_m"]))
        lists["time_loss_s"].append(float(trip.get("timeLoss", "nan")))
        lists["stops"].append(float(trip.get("waitingCount", "nan")))
        lists["signal"].append(signal_loss_s.get(vehicle, 0.0))
        lists["person_s"].append(lists["time_loss_s"][-1] * _occupancy(vehicle, kind, passengers))
        if kind == "bus":
            bus_losses_s.append(lists["signal"][-1])
    classes: dict[str, ClassMeasures] = {
        kind: {"trips": len(lists["travel_time_s"]),
               "unfinished": len(lists["time_loss_s"]) - len(lists["travel_time_s"]),
               "travel_time_s": _mean(lists["travel_time_s"]), "time_loss_s": _mean(lists["time_loss_s"]),
               "stops": _mean(lists["stops"]),
               "signal_time_loss_s": _mean(lists["signal"]) if kind in ("bus", "tram", "emergency") else None,
               "person_hours_lost": sum(lists["person_s"]) / 3600.0}
        for kind, lists in sorted(values.items())}
    person_delay: PersonDelay = {
        "person_hours_lost": sum(c["person_hours_lost"] for c in classes.values()),
        "car_occupancy": CAR_OCCUPANCY, "transit_passengers": "counted" if passengers else "assumed",
        "assumed_transit_occupancy": None if passengers else dict(ASSUMED_TRANSIT_OCCUPANCY)}
    return classes, bus_losses_s, person_delay


def _occupancy(vehicle: str, kind: str, passengers: dict[str, int] | None) -> float:
    """Persons aboard ``vehicle`` of report class ``kind`` (module docstring: person delay)."""
    if kind in ASSUMED_TRANSIT_OCCUPANCY:
        return ASSUMED_TRANSIT_OCCUPANCY[kind] if passengers is None else float(passengers.get(vehicle, 0))
    # A car carries CAR_OCCUPANCY persons, any other vehicle its driver.
    return CAR_OCCUPANCY if kind == "car" else 1.0


def schedule_adherence(stopinfo: Path, vehicle_class: Mapping[str, str]) -> ScheduleAdherence:
    """The delays of the buses at their stops in SUMO's stop output ``stopinfo``; ``vehicle_class``
    gives each vehicle's report class (``bus`` counts, trams and trains do not). A stop with an
    ``arrival`` time gives its arrival's delay (SUMO's ``arrivalDelay``); else one with an ``until``
    time gives its departure's (``delay``: ended - until, never negative, since SUMO holds a bus
    that is early at its stop until then); a stop with neither gives none."""
    delays: list[float] = []
    timed_by: set[str] = set()
    ended = 0
    for stop in _elements(stopinfo, "stopinfo"):
        if vehicle_class.get(stop.get("id", "")) != "bus":
            continue
        ended += 1
        arrival_delay, departure_delay = stop.get("arrivalDelay"), stop.get("delay")
        if arrival_delay is not None and arrival_delay != "-1":
            timed_by.add("arrival")
            delays.append(float(arrival_delay))
        elif departure_delay is not None:
            timed_by.add("until")
            delays.append(float(departure_delay))
    timetable = " and ".join(sorted(timed_by)) if timed_by else "none" if ended else None
    early_s, late_s = ON_TIME_S
    return {"timetable": timetable, "stops": len(delays), "mean_delay_s": _mean(delays),
            "mean_abs_delay_s": _mean([abs(d) for d in delays]),
            "on_time_share": _mean([float(early_s <= d <= late_s) for d in delays]),
            "late_share": _mean([float(d > late_s) for d in delays])}
