"""The wire protocol v1: one schema per message, declared once, used to decode, validate and document.

A request is ``{"v": 1, "id": "<client id>", "type": "<type>", "body": {...}}``; its reply is
``{"v": 1, "id": "<same>", "ok": true, "body": {...}}`` or ``{"v": 1, "id": "<same, or null>",
"ok": false, "error": {"code", "message", "field"}}``. :data:`MESSAGES` lists every request type
with the schema of its body, of its reply body, and the permission it needs (the roles that hold
each are the service's, :data:`pilotage.adapters.service.ROLES`). Events (:data:`EVENTS`) travel as
two frames: the topic, then the JSON body. The field types the messages share are in
:mod:`~pilotage.core.protocol.fields`, the routing job file format in
:mod:`~pilotage.core.protocol.jobs`; engine results become messages through :func:`from_engine`.

Decoding is strict: a body with a field it does not declare is refused, so a misspelt optional
field (``lateness`` for ``lateness_s``) is an error rather than silently ignored. Errors raised here
carry the wire code of their class (:mod:`pilotage.core.errors`) and the dotted path of the field
at fault from the message's root (``body.eta_s``).
"""

from __future__ import annotations

import builtins
import difflib
import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeVar

import msgspec
import numpy as np
from msgspec import Meta, Raw, Struct, field

from pilotage.core.errors import (
    InvalidInputError,
    MalformedMessageError,
    MessageTooLargeError,
    PilotageError,
    UnknownTypeError,
    UnsupportedVersionError,
)
from pilotage.core.protocol.fields import (
    IntersectionId,
    Name,
    OsmId,
    Place,
    Point,
    Seconds,
    SignalTime,
    TransitId,
)
from pilotage.core.protocol.jobs import Job

VERSION = 1


#: Default limit of one request's size (bytes); larger ones get ``TOO_LARGE`` and are not read.
MAX_MESSAGE_BYTES = 64 * 1024
#: Default number of requests a server takes at once; more get ``OVERLOADED``.
DEFAULT_QUEUE_LIMIT = 1024
#: The deepest a message may nest arrays and objects; every schema here needs fewer than 8 levels.
#: A deeper document is refused (``BAD_JSON``) before it is parsed, so no input can exhaust the
#: parser's recursion.
MAX_NESTING_DEPTH = 32

#: A vehicle's lateness (s, negative when early) is at most a day either way.
MAX_LATENESS_S = 86_400.0
#: The values of the wire's enumerated fields, named once so that the engines and the service that
#: fill them can declare the same types.
DecisionName = Literal["granted", "denied"]
StrategyName = Literal["extension", "early_green", "already_green", "none"]
CrossingStateName = Literal["planned", "pending", "passed", "refused"]
TransitionName = Literal["in_step", "short_way", "long_way", "dwell", "out_of_step"]
ReservationStateName = Literal["booked", "arrived", "cancelled", "no_show"]
JobStateName = Literal["queued", "running", "done", "failed"]
CorridorEventName = Literal["opened", "updated", "rerouted", "closed", "expired"]
ParkingEventName = Literal["count", "stale", "reserved", "cancelled", "arrived", "no_show"]
#: A priority request's state, as SAE J2735's signal status message (SSM) names it, and its ends:
#: ``requested`` (sent, by a client or by pilotage from a vehicle's position), ``granted``,
#: ``rejected`` (with the reason), ``checked_out`` (the vehicle passed), ``cancelled`` (the vehicle
#: left its path or stopped reporting).
PriorityStateName = Literal["requested", "granted", "rejected", "checked_out", "cancelled"]
#: How pilotage follows a vehicle that reports its position (``vehicle.position``).
TrackingStateName = Literal["on_path", "off_path", "finished"]
#: How long a field adapter runs a command without a newer one (s): past it, its lights go back to
#: their own base program (docs/operations.md, "Losing the engine").
COMMAND_TTL_S = 2.0
#: The farthest a field adapter's clock may be from the server's wall clock (s).
MAX_CLOCK_SKEW_S = 2.0


class Request(Struct, forbid_unknown_fields=True):
    """The envelope of every request; ``body`` is decoded by the schema of ``type``."""

    v: int
    id: Name
    type: Annotated[str, Meta(max_length=64)]
    body: Raw = Raw(b"{}")


class Error(Struct):
    """What went wrong: a code of :mod:`pilotage.core.errors`, a message, the field at fault."""

    code: str
    message: str
    field: str | None = None


class Reply(Struct):
    """The answer to a request: ``body`` when ``ok``, else ``error``."""

    v: int
    id: str | None
    ok: bool
    body: Any = msgspec.UNSET
    error: Error | msgspec.UnsetType = msgspec.UNSET


# -- bodies and replies, by request type ---------------------------------------------------------


class Empty(Struct, forbid_unknown_fields=True):
    """No fields."""


class Ping(Struct):
    """``time``: the server's clock (s)."""

    time: float


class Health(Struct):
    """``status``: ``ok``, or ``degraded`` with the ``reasons`` (an intersection holding its last
    stage because the safety monitor refused its plans, the signals' state not kept); ``time``: the
    server's clock (s)."""

    status: Literal["ok", "degraded"]
    reasons: list[str]
    time: float


class NetworkInfo(Struct):
    """Counts of what the server drives."""

    nodes: int
    edges: int
    intersections: int
    carparks: int


class SignalsStateRequest(Struct, forbid_unknown_fields=True):
    """One intersection, or all when ``intersection`` is absent; stages up to ``horizon_s`` ahead."""

    intersection: IntersectionId | None = None
    horizon_s: Annotated[float, Meta(ge=0.0, le=600.0)] = 120.0


class StageEntry(Struct):
    """One stage of the plan: green from ``green_from`` to ``green_until`` (s on the clock)."""

    stage: int
    green_from: float
    green_until: float
    groups: list[str]


class IntersectionState(Struct):
    """The stage an intersection is in (or last was, during an interstage), and the plan ahead."""

    intersection: IntersectionId
    stage: int
    green: bool
    time_in_stage_s: float
    plan: list[StageEntry]


class SignalsState(Struct):
    """The state of the intersections asked for, at ``time``."""

    time: float
    intersections: list[IntersectionState]


class ShownStage(Struct, forbid_unknown_fields=True):
    """One stage a traffic light runs: green from ``green_from`` to ``green_until`` (s on the clock)."""

    stage: Annotated[int, Meta(ge=0, le=1000)]
    green_from: SignalTime
    green_until: SignalTime


class ShownPlan(Struct, forbid_unknown_fields=True):
    """The stages an intersection's lights run, from the last one started by now on."""

    intersection: IntersectionId
    plan: Annotated[list[ShownStage], Meta(min_length=1, max_length=64)]


class DetectorGaps(Struct, forbid_unknown_fields=True):
    """What the detectors of an actuated intersection see: per signal group, the time since a
    vehicle last passed one of its approach's detectors (s; 0 while one is over it)."""

    intersection: IntersectionId
    gaps_s: Annotated[dict[Name, Annotated[float, Meta(ge=0.0, le=1e9)]], Meta(max_length=64)]


class SignalsCommandRequest(Struct, forbid_unknown_fields=True):
    """A field adapter's turn: its clock (``time``, s); the engine whose commands its lights run
    (``engine``, as the last reply named it; None when they run none); the stages shown by every
    light that does not run that engine's commands (``shown``: the engine takes over from them);
    what the detectors of actuated intersections see (``gaps``: their plans follow the vehicles);
    the plan ahead wanted (``horizon_s``); the intersections it drives (``intersections``; None:
    every one)."""

    time: SignalTime
    engine: Name | None = None
    shown: Annotated[list[ShownPlan], Meta(max_length=10000)] = []
    gaps: Annotated[list[DetectorGaps], Meta(max_length=10000)] = []
    horizon_s: Annotated[float, Meta(ge=0.0, le=600.0)] = 30.0
    intersections: Annotated[list[IntersectionId], Meta(max_length=100000)] | None = None


class SignalsCommand(Struct):
    """The command for every intersection: run ``intersections``' plans until ``valid_until`` (s on
    the clock), then, without a newer command, go back to the lights' own base program. ``engine``
    names the engine process that sent it (a new name: the engine restarted, and has not taken
    over from the lights); ``taken_over``: the intersections whose plan became what their lights
    showed."""

    engine: str
    time: float
    valid_until: float
    intersections: list[IntersectionState]
    taken_over: list[IntersectionId]


class PriorityRequest(Struct, forbid_unknown_fields=True):
    """A vehicle reaches signal group ``group`` of ``intersection`` in ``eta_s`` to ``eta_s +
    eta_window_s`` seconds (its arrival interval: dwell, braking and acceleration included), with
    ``queue_vehicles`` queued ahead of it (absent: as last observed by ``detectors``), and
    ``headway_ahead_s`` / ``headway_behind_s`` to the vehicles of its line ahead and behind (for
    lines run on headways), and where it is (``position``: an arrival it could not make from there is
    refused)."""

    vehicle: Name
    intersection: IntersectionId
    group: Name
    eta_s: Seconds
    vehicle_class: Literal["bus", "tram", "emergency"] = field(name="class")
    lateness_s: Annotated[float, Meta(ge=-MAX_LATENESS_S, le=MAX_LATENESS_S)] = 0.0
    occupancy: Annotated[float, Meta(ge=0.0, le=10000.0)] = 0.0
    eta_window_s: Seconds | None = None
    queue_vehicles: Annotated[float, Meta(ge=0.0, le=10000.0)] | None = None
    headway_ahead_s: Seconds | None = None
    headway_behind_s: Seconds | None = None
    position: Point | None = None


class VehiclePosition(Struct, forbid_unknown_fields=True):
    """Where a bus or tram is, as its AVL system reports it: at ``time`` (s on the clock), at
    (``lon``, ``lat``), on ``trip`` (or on a trip of ``route``, the one whose path it is on), going at
    ``speed_m_s`` towards ``heading_deg`` (clockwise from north), with ``occupancy`` passengers and
    its doors open or not. pilotage follows it along its trip's path and asks for priority itself
    (docs/positions.md)."""

    vehicle: Name
    lon: Annotated[float, Meta(ge=-180.0, le=180.0)]
    lat: Annotated[float, Meta(ge=-90.0, le=90.0)]
    time: SignalTime
    trip: TransitId | None = None
    route: TransitId | None = None
    speed_m_s: Annotated[float, Meta(ge=0.0, le=100.0)] | None = None
    heading_deg: Annotated[float, Meta(ge=0.0, le=360.0)] | None = None
    occupancy: Annotated[float, Meta(ge=0.0, le=10000.0)] | None = None
    doors_open: bool | None = None
    vehicle_class: Literal["bus", "tram"] | None = field(name="class", default=None)


class VehicleTracked(Struct):
    """How pilotage follows the vehicle: its trip, ``state``, how far along its path (m), how late
    (s, negative when early; null when its timetable gives no time), the next signalised
    intersection, the signal group of its movement there and the distance to its stop line (m),
    and the state of its priority request there (null: none asked yet), with the reason."""

    trip: str
    state: TrackingStateName
    along_m: float
    lateness_s: float | None
    next_intersection: IntersectionId | None
    group: str | None
    to_stop_line_m: float | None
    request: PriorityStateName | None
    reason: str


class PriorityDecision(Struct):
    """The decision; ``green_from`` and ``green_until`` (s on the clock) when granted, else null."""

    decision: DecisionName
    strategy: StrategyName
    green_from: float | None
    green_until: float | None
    reason: str


class QueueCount(Struct, forbid_unknown_fields=True):
    """``queue_vehicles`` queued now on the approach of signal group ``group``."""

    group: Name
    queue_vehicles: Annotated[float, Meta(ge=0.0, le=10000.0)]


class Detectors(Struct, forbid_unknown_fields=True):
    """Queues measured at ``intersection`` by its detectors (induction loops, cameras), per approach."""

    intersection: IntersectionId
    queues: Annotated[list[QueueCount], Meta(max_length=256)]


class PriorityCheckout(Struct, forbid_unknown_fields=True):
    """``vehicle`` has passed ``intersection``."""

    vehicle: Name
    intersection: IntersectionId


class CheckedOut(Struct):
    """``ended_early``: whether the green the vehicle's priority gave was cut short."""

    ended_early: bool


class MonitorStats(Struct):
    """What the safety monitor did since the server started: plans checked (every change and every
    lay of base stages), refused (not applied), and lays refused after which an intersection went
    back to its coordinated plan."""

    checks: int
    refused: int
    fallbacks: int


class ServerStats(Struct):
    """Counts since the server started: requests read, replies by code, messages dropped, and the
    safety monitor's counts."""

    uptime_s: float
    requests: int
    replies: dict[str, int]
    dropped: int
    monitor: MonitorStats


class CorridorOpen(Struct, forbid_unknown_fields=True):
    """Open an emergency corridor for ``incident``, the vehicle setting off now from ``origin``; on
    ``route`` (OSM node ids from origin to destination) when its navigation already chose one."""

    incident: Name
    origin: Place
    destination: Place
    route: Annotated[list[OsmId], Meta(min_length=2, max_length=10_000)] | None = None


class CorridorUpdate(Struct, forbid_unknown_fields=True):
    """The vehicle of ``incident`` is at ``position`` now."""

    incident: Name
    position: Point


class CorridorClose(Struct, forbid_unknown_fields=True):
    """End the corridor of ``incident``."""

    incident: Name


class CorridorCrossing(Struct):
    """A signalised intersection on the corridor: the stop lines' groups, the distance from the
    route's start (m), the ETA, the hold asked for and the green planned (s on the clock; null when
    none), its state (``planned``, ``pending``, ``passed``, ``refused``) and why."""

    intersection: IntersectionId
    approach_group: str | None
    exit_group: str | None
    distance_m: float
    eta: float
    hold_from: float | None
    hold_until: float | None
    green_from: float | None
    green_until: float | None
    state: CrossingStateName
    reason: str


class CorridorState(Struct):
    """A corridor: its route (OSM node ids, from where the vehicle set off or was routed again),
    length (m), emergency travel time (s), arrival at the destination and last update (s on the
    clock), the vehicle's distance along the route (m), and its crossings."""

    incident: str
    route: list[int]
    length_m: float
    travel_time_s: float
    eta: float
    position_m: float
    updated: float
    reroutes: int
    crossings: list[CorridorCrossing]


class ExitTransition(Struct):
    """How an intersection goes back to its coordinated plan, and from when it is in step (s on
    the clock; null if it stays out of step)."""

    intersection: IntersectionId
    transition: TransitionName
    in_step_from: float | None


class CorridorClosed(Struct):
    """The intersections of a corridor that ended, and their exit transitions."""

    incident: str
    exits: list[ExitTransition]


class ParkingAvailabilityRequest(Struct, forbid_unknown_fields=True):
    """Every car park, or those within ``radius_m`` of ``near`` (nearest first)."""

    near: Point | None = None
    radius_m: Annotated[float, Meta(gt=0.0, le=100_000.0)] | None = None


class CarParkState(Struct):
    """A car park now: its last count of free spaces (null before any) and when it was made (s on
    the clock), whether that count is stale, the reservable spaces not reserved now, and its
    distance (m) from the point asked about (null when none was)."""

    carpark: str
    name: str
    lon: float
    lat: float
    capacity: int
    free: int | None
    observed: float | None
    stale: bool
    reservable_free: int
    distance_m: float | None


class ParkingAvailability(Struct):
    """The car parks asked for, at ``time``."""

    time: float
    carparks: list[CarParkState]


#: A time on the clock (s): UNIX time in service.
ClockTime = Annotated[float, Meta(ge=0.0, le=1e11)]


class ParkingReserve(Struct, forbid_unknown_fields=True):
    """Reserve one space of ``carpark`` over [``from``, ``until``) for the client's reference
    ``ref`` (its idempotency key: never a plate or a name)."""

    carpark: Name
    from_: ClockTime = field(name="from")
    until: ClockTime
    ref: Name


class ReservationRef(Struct, forbid_unknown_fields=True):
    """A reservation, by the id ``parking.reserve`` gave."""

    reservation: Name


class ReservationState(Struct):
    """A reservation: its id, the client's reference, the car park, the window, its state, and when
    it was made and last changed (s on the clock)."""

    reservation: str
    ref: str
    carpark: str
    from_: float = field(name="from")
    until: float
    state: ReservationStateName
    created: float
    updated: float


class ParkingGuide(Struct, forbid_unknown_fields=True):
    """Car parks for a driver going to ``destination``, arriving at ``arrival``, from ``origin``
    (optional: without it, driving times are left out)."""

    destination: Point
    arrival: ClockTime
    origin: Place | None = None


class GuidedCarPark(Struct):
    """A car park proposed: free spaces predicted at arrival (null when unknown), driving time from
    the origin (s; null without one), walk to the destination (m, s), time to the door (s), likely
    full or not."""

    carpark: str
    name: str
    predicted_free: float | None
    drive_s: float | None
    walk_m: float
    walk_s: float
    door_s: float
    likely_full: bool


class ParkingGuidance(Struct):
    """Car parks within walking distance, best first: by time to the door, those of unknown state
    after, those likely full last."""

    carparks: list[GuidedCarPark]


class ParkingUpdate(Struct, forbid_unknown_fields=True):
    """A count: ``free`` spaces at ``carpark`` at ``time`` (s on the clock; default: now)."""

    carpark: Name
    free: Annotated[int, Meta(ge=0, le=100_000)]
    time: ClockTime | None = None


class RouteJobRef(Struct, forbid_unknown_fields=True):
    """A routing job, by the id ``route.submit`` gave."""

    job: Annotated[str, Meta(min_length=1, max_length=64)]


class RouteJobState(Struct):
    """A routing job's state: ``queued``, ``running``, ``done`` or ``failed``; the share of its time
    limit searched and its best cost so far; times on the server's clock; why it failed."""

    job: str
    name: str
    state: JobStateName
    progress: float
    best_cost: float | None
    submitted: float
    started: float | None
    finished: float | None
    error: Error | None = None


class RouteResult(Struct):
    """A finished job's solution (docs/routing.md, "The solution")."""

    job: str
    solution: dict[str, Any]


# -- the registry -------------------------------------------------------------------------------

#: The permissions a message may need; the roles that hold them are the service's
#: (:data:`pilotage.adapters.service.ROLES`).
PERMISSIONS = ("read", "signals", "priority", "emergency", "parking", "routing")


@dataclass(frozen=True)
class Message:
    """A request type: the schema of its body and of its reply body, and the permission it needs."""

    # ``type`` is the wire name other code reads (``message.type``); inside this class body it hides
    # the builtin, so the annotations below name it through ``builtins``.
    type: str
    body: builtins.type[Struct]
    reply: builtins.type[Struct]
    permission: str
    summary: str


MESSAGES: dict[str, Message] = {message.type: message for message in (
    Message("ping", Empty, Ping, "read", "liveness, and the server's clock"),
    Message("health", Empty, Health, "read", "whether the engines are well, and why not"),
    Message("network.info", Empty, NetworkInfo, "read", "counts of nodes, edges, intersections, car parks"),
    Message("signals.state", SignalsStateRequest, SignalsState, "read",
            "current stage, time in stage and the plan ahead of one or every intersection"),
    Message("signals.command", SignalsCommandRequest, SignalsCommand, "signals",
            "a field adapter's turn: its clock and the stages its lights show; the plans to run, and until when"),
    Message("priority.request", PriorityRequest, PriorityDecision, "priority",
            "ask for priority for a bus, tram or emergency vehicle at a signal group"),
    Message("priority.checkout", PriorityCheckout, CheckedOut, "priority",
            "the vehicle has passed: the green its priority gave may end"),
    Message("vehicle.position", VehiclePosition, VehicleTracked, "priority",
            "a bus or tram's position: pilotage asks for priority, renews and checks out for it"),
    Message("detectors", Detectors, Empty, "priority",
            "queues per approach from detectors: the arrival times of later priority requests"),
    Message("corridor.open", CorridorOpen, CorridorState, "emergency",
            "route an emergency vehicle and pre-empt the signals on its way"),
    Message("corridor.update", CorridorUpdate, CorridorState, "emergency",
            "the vehicle's position: new ETAs, holds moved, passed intersections handed back"),
    Message("corridor.close", CorridorClose, CorridorClosed, "emergency",
            "end a corridor: every intersection goes back to its coordinated plan"),
    Message("parking.availability", ParkingAvailabilityRequest, ParkingAvailability, "read",
            "car parks with their free spaces now, near a point or all"),
    Message("parking.reserve", ParkingReserve, ReservationState, "parking",
            "reserve a space ahead; CONFLICT when the car park is full for the window"),
    Message("parking.cancel", ReservationRef, ReservationState, "parking", "cancel a reservation"),
    Message("parking.arrive", ReservationRef, ReservationState, "parking",
            "the holder has arrived: the reservation is not a no-show"),
    Message("parking.guide", ParkingGuide, ParkingGuidance, "read",
            "car parks for a destination and an arrival time, best first"),
    Message("parking.update", ParkingUpdate, CarParkState, "parking", "a count of free spaces at a car park"),
    Message("route.submit", Job, RouteJobState, "routing",
            "queue a routing job (docs/routing.md); the same job again returns the one known"),
    Message("route.status", RouteJobRef, RouteJobState, "read", "a routing job's state and progress"),
    Message("route.result", RouteJobRef, RouteResult, "read", "a finished routing job's solution"),
    Message("server.stats", Empty, ServerStats, "read", "counts of requests, replies by code, drops"),
)}


class PriorityEvent(Struct):
    """Topic ``priority``: a request's state changed (SAE J2735 SSM's states, :data:`PriorityStateName`):
    a grant that changed a plan, a check-out; for the requests pilotage makes from vehicles'
    positions, also when asked, rejected (with the reason) and cancelled. ``generated``: made by
    pilotage from positions, not sent by a client."""

    vehicle: str
    intersection: IntersectionId
    event: PriorityStateName
    strategy: str
    green_from: float | None
    green_until: float | None
    group: str | None = None
    reason: str = ""
    generated: bool = False


class VehicleEvent(Struct):
    """Topic ``vehicle``: a position pilotage read (``vehicle.position`` or a GTFS-Realtime feed), and
    how it follows the vehicle."""

    time: float
    vehicle: str
    lon: float
    lat: float
    tracked: VehicleTracked


class SignalsEvent(Struct):
    """Topic ``signals``: an intersection's plan changed; its new state."""

    time: float
    state: IntersectionState


class CorridorEvent(Struct):
    """Topic ``corridor``: a corridor opened, updated (or routed again), closed or expired; its
    crossings while open, its exit transitions once ended."""

    time: float
    incident: str
    event: CorridorEventName
    crossings: list[CorridorCrossing]
    exits: list[ExitTransition]


class ParkingEvent(Struct):
    """Topic ``parking``: a car park's state changed: a count, a count gone stale, a reservation made,
    cancelled, arrived or released as a no-show."""

    time: float
    carpark: str
    event: ParkingEventName
    free: int | None
    reservable_free: int
    stale: bool


class RouteEvent(Struct):
    """Topic ``route``: a routing job was queued, started, progressed (at most once a second),
    finished or failed; its state."""

    time: float
    state: RouteJobState


class Heartbeat(Struct):
    """Topic ``server``, every second: the server is alive; its clock (s) and uptime (s)."""

    time: float
    uptime_s: float


EVENTS: dict[str, type[Struct]] = {"priority": PriorityEvent, "signals": SignalsEvent, "corridor": CorridorEvent,
                                   "parking": ParkingEvent, "route": RouteEvent, "vehicle": VehicleEvent,
                                   "server": Heartbeat}


# -- audit --------------------------------------------------------------------------------------

class KeyChange(Struct):
    """A line of the audit log on a client key, beside the lines of requests: when (s, wall clock),
    the key's name, its role (a revoked key's last role), what happened, the public key (Z85), and
    the role it had before a change. ``key.allowed``: on the allow-list when the server started;
    when the server reads the list again (SIGHUP), ``key.added``, ``key.revoked`` (its file removed)
    or ``key.role_changed``."""

    time: float
    client: str
    role: str
    type: Literal["key.allowed", "key.added", "key.revoked", "key.role_changed"]
    key: str
    previous_role: str | None = None


# -- decoding and encoding ----------------------------------------------------------------------

_REQUEST = msgspec.json.Decoder(Request)
_BODIES: dict[str, msgspec.json.Decoder[Any]] = {
    name: msgspec.json.Decoder(message.body) for name, message in MESSAGES.items()}
_ANY = msgspec.json.Decoder()
_JOB = msgspec.json.Decoder(Job)
_TIME_REGEX = re.compile(r"`str` matching regex '[^']*'")
_ENCODER = msgspec.json.Encoder()
_AT = re.compile(r" - at `\$([^`]*)`$")
# The field's name runs to the message's last backtick: a hostile name may hold backticks itself.
_NAMED = re.compile(r"(?:missing required|unknown) field `(.*)`$", re.DOTALL)


_Wire = TypeVar("_Wire", bound=Struct)


def from_engine(value: object, kind: type[_Wire], *, renamed: Mapping[str, str] | None = None,
                **given: object) -> _Wire:
    """The wire struct ``kind`` from an engine's object, the one way engine results become messages:
    each field from ``given``, else from the attribute ``renamed`` names for it, else from the
    attribute of its own name, else of its name with ``_s`` (engines put the unit in a time's name;
    the wire names it by what it is: ``eta_s`` is ``eta``). Checked against the schema as a decoded
    message is, so an engine value the wire does not allow fails here, not at a client.

    Raises:
        AttributeError: ``value`` has no attribute for a field (a programming error).
        msgspec.ValidationError: a value that does not fit its field's type.
    """
    renamed = renamed or {}
    fields: dict[str, object] = {}
    for name, encode_name in _field_names(kind):
        if name in given:
            fields[encode_name] = given[name]
            continue
        # A name escaped from a Python keyword (``from_``) takes its unit after the bare word.
        attribute = renamed.get(name) or (name if hasattr(value, name) else f"{name.rstrip('_')}_s")
        fields[encode_name] = getattr(value, attribute)
    return msgspec.convert(fields, kind)


@functools.cache
def _field_names(kind: type[Struct]) -> tuple[tuple[str, str], ...]:
    """Each field of ``kind``: its Python name and its name on the wire, read once (``from_engine``
    is on the reply path, and reading a Struct's fields costs about 50 µs)."""
    return tuple((info.name, info.encode_name) for info in msgspec.structs.fields(kind))


_Engine = TypeVar("_Engine")


def to_engine(body: Struct, kind: type[_Engine]) -> _Engine:
    """A decoded body as an engine's type (a dataclass) with the same field names: the one way
    messages become engine inputs.

    Raises:
        msgspec.ValidationError: a field the engine's type lacks or types otherwise (a programming error).
    """
    return msgspec.convert(body, kind, from_attributes=True)


def decode_request(frame: bytes, *, max_bytes: int = MAX_MESSAGE_BYTES) -> tuple[Request, Message, Struct]:
    """The envelope, its message type and its decoded body.

    Raises:
        MessageTooLargeError: ``frame`` is longer than ``max_bytes`` (it is not read).
        MalformedMessageError: not JSON (or not UTF-8), or nested deeper than :data:`MAX_NESTING_DEPTH`.
        UnsupportedVersionError: ``v`` is not :data:`VERSION`.
        UnknownTypeError: ``type`` is not in :data:`MESSAGES`.
        InvalidInputError: the envelope or the body does not match its schema; ``field`` names it.
    """
    if len(frame) > max_bytes:
        raise MessageTooLargeError(f"expected a message of at most {max_bytes} bytes, got {len(frame)}; "
                                   "split the request or ask the operator to raise --max-message-bytes")
    _check_nesting(frame)
    try:
        request = _REQUEST.decode(frame)
    except msgspec.ValidationError as exc:
        _check_json_and_version(frame)
        raise _schema_error(exc, "", Request, "the envelope {\"v\": 1, \"id\", \"type\", \"body\"}") from None
    except msgspec.DecodeError as exc:
        raise _malformed(exc) from None
    if request.v != VERSION:
        raise UnsupportedVersionError(f"expected protocol version {VERSION}, got {request.v}", field="v")
    message = MESSAGES.get(request.type)
    if message is None:
        raise UnknownTypeError(f"expected a type among {', '.join(MESSAGES)}, got {request.type!r}", field="type")
    try:
        body = _BODIES[request.type].decode(request.body)
    except msgspec.ValidationError as exc:
        raise _schema_error(exc, "body", message.body, f"the body of {request.type}") from None
    return request, message, body


def decode_job(data: bytes) -> Job:
    """A routing job from JSON bytes (a file, or a ``route.submit`` body).

    Raises:
        MalformedMessageError: not JSON, or nested deeper than :data:`MAX_NESTING_DEPTH`.
        InvalidInputError: not a job; ``field`` names the part at fault (``stops[3].windows``).
    """
    _check_nesting(data)
    try:
        return _JOB.decode(data)
    except msgspec.ValidationError as exc:
        raise _schema_error(exc, "", Job, "a routing job", "docs/routing.md") from None
    except msgspec.DecodeError as exc:
        raise _malformed(exc) from None


def request_id(frame: bytes, *, max_bytes: int = MAX_MESSAGE_BYTES) -> str | None:
    """The ``id`` of a request that could not be decoded, so its error reply can carry it; None when
    there is no valid one to be found (too large, nested too deep, not JSON, not a string of 1 to 64
    characters)."""
    if len(frame) > max_bytes:
        return None
    try:
        _check_nesting(frame)
        envelope = _ANY.decode(frame)
    except (MalformedMessageError, msgspec.DecodeError):
        return None
    if isinstance(envelope, dict):
        value = envelope.get("id")
        if isinstance(value, str) and 1 <= len(value) <= 64:
            return value
    return None


_REPLY = msgspec.json.Decoder(Reply)


def reply_code(reply: bytes) -> str:
    """``OK`` for a reply frame that answers, else its error's code.

    Raises:
        MalformedMessageError: a frame that is not a reply.
    """
    try:
        decoded = _REPLY.decode(reply)
    except msgspec.DecodeError as exc:
        raise _malformed(exc) from None
    if decoded.ok:
        return "OK"
    return decoded.error.code if isinstance(decoded.error, Error) else "INTERNAL"


def encode_reply(request_id: str, body: Struct) -> bytes:
    """The ``ok`` reply to request ``request_id``."""
    return _ENCODER.encode(Reply(VERSION, request_id, True, body=body))


def encode_error(request_id: str | None, error: PilotageError) -> bytes:
    """The error reply to request ``request_id`` (None when it is not known)."""
    return _ENCODER.encode(Reply(VERSION, request_id, False, error=Error(error.code, str(error), error.field)))


def encode(value: object) -> bytes:
    """JSON bytes of a schema instance (an event, an audit record)."""
    return _ENCODER.encode(value)


def _check_json_and_version(frame: bytes) -> None:
    """Raise the error that comes before a schema error: not JSON at all (typed decoding stops at the
    first wrong type, before seeing the rest), or another version, whose envelope may differ."""
    try:
        envelope = _ANY.decode(frame)
    except msgspec.DecodeError as exc:
        raise _malformed(exc) from None
    if isinstance(envelope, dict) and type(envelope.get("v")) is int and envelope["v"] != VERSION:
        raise UnsupportedVersionError(f"expected protocol version {VERSION}, got {envelope['v']}", field="v")


# A JSON string, escapes included: the brackets inside one do not nest.
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)


def _check_nesting(frame: bytes) -> None:
    """Refuse a document nested deeper than :data:`MAX_NESTING_DEPTH`, without parsing it: a linear
    scan of its brackets outside strings (most messages have too few brackets to need it)."""
    if frame.count(b"[") + frame.count(b"{") <= MAX_NESTING_DEPTH:
        return
    brackets = np.frombuffer(_JSON_STRING.sub(b"", frame), dtype=np.uint8)
    steps = (np.isin(brackets, (ord("["), ord("{"))).astype(np.int64)
             - np.isin(brackets, (ord("]"), ord("}"))).astype(np.int64))
    depth = int(np.cumsum(steps).max(initial=0))
    if depth > MAX_NESTING_DEPTH:
        raise MalformedMessageError(f"expected JSON nested at most {MAX_NESTING_DEPTH} levels deep, got {depth}; "
                                    "send the document as its schema declares it (docs/protocol.md)")


def _malformed(exc: msgspec.DecodeError) -> MalformedMessageError:
    return MalformedMessageError(f"expected one JSON object in UTF-8, got bytes that are not: {exc}")


def _schema_error(exc: msgspec.ValidationError, prefix: str, schema: type[Struct], what: str,
                  doc: str = "docs/protocol.md") -> InvalidInputError:
    message = _TIME_REGEX.sub("a time of day as HH:MM or HH:MM:SS, or seconds since midnight", str(exc))
    at = _AT.search(message)
    path = at.group(1) if at else ""
    text = _AT.sub("", message)
    named = _NAMED.search(text)
    if named:
        path += f".{named.group(1)}"
    field_path = f"{prefix}{path}".lstrip(".") or None
    info = msgspec.inspect.type_info(schema)
    # A Struct class always inspects as a StructType; the check narrows the type for mypy.
    if not isinstance(info, msgspec.inspect.StructType):
        raise TypeError(f"expected a Struct schema, got {schema!r}")
    # The object that holds the field at fault (a stop of a job, not the job), and that field.
    parent, _, name = path.lstrip(".").rpartition(".")
    holder = _object_at(info, parent)
    at_fault = None if holder is None else next((f for f in holder.fields if f.encode_name == name), None)
    if "unknown field" in message and holder is not None:
        expected = _unknown_field(holder, name)
    elif at_fault is not None:
        expected = f"expected {name} to be {_describe(at_fault.type)}"
    else:
        expected = f"expected {what}"
    where = f" at {field_path}" if field_path else ""
    return InvalidInputError(f"{text}{where} in {what}: {expected} ({doc})", field=field_path)


def _unknown_field(holder: msgspec.inspect.StructType, name: str) -> str:
    """What is expected instead of the unknown field ``name`` of an object ``holder``: its fields
    (a stop's, not the job's), and the nearest of them."""
    fields = [f.encode_name for f in holder.fields]
    words = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", holder.cls.__name__).lower()
    nearest = difflib.get_close_matches(name, fields, n=1)
    fix = f": did you mean {nearest[0]!r}?" if nearest else ""
    return f"expected only the fields of a {words}, {', '.join(fields) or '(none)'}{fix}"


def _object_at(schema: msgspec.inspect.StructType, path: str) -> msgspec.inspect.StructType | None:
    """The object type at ``path`` of ``schema`` (``stops[3]``; empty: ``schema`` itself), or None
    when the path leads to no object."""
    kind: msgspec.inspect.Type = schema
    for part in path.split(".") if path else []:
        name, *indices = re.split(r"\[\d+\]", part)
        struct = _struct_of(kind)
        found = None if struct is None else next((f for f in struct.fields if f.encode_name == name), None)
        if found is None:
            return None
        kind = found.type
        for _ in indices:
            kind = _items_of(kind)
    return _struct_of(kind)


def _struct_of(kind: msgspec.inspect.Type) -> msgspec.inspect.StructType | None:
    """The object type ``kind`` is, or holds among its alternatives (a place: a node id or a point)."""
    members = kind.types if isinstance(kind, msgspec.inspect.UnionType) else (kind,)
    return next((member for member in members if isinstance(member, msgspec.inspect.StructType)), None)


def _items_of(kind: msgspec.inspect.Type) -> msgspec.inspect.Type:
    """The items of the list ``kind`` is, or holds among its alternatives; ``kind`` when it is none."""
    members = kind.types if isinstance(kind, msgspec.inspect.UnionType) else (kind,)
    return next((m.item_type for m in members if isinstance(m, msgspec.inspect.ListType)), kind)


def _describe(kind: msgspec.inspect.Type) -> str:
    """A schema type in words: ``a number >= 0 and <= 3600``, ``one of 'bus', 'tram'``."""
    inspect = msgspec.inspect
    if isinstance(kind, inspect.UnionType):
        return " or ".join(_describe(member) for member in kind.types)
    if isinstance(kind, inspect.LiteralType):
        return "one of " + ", ".join(repr(value) for value in kind.values)
    bounds = [f"{word} {getattr(kind, attribute)}" for attribute, word in
              (("ge", ">="), ("le", "<="), ("min_length", "of length >="), ("max_length", "of length <="))
              if getattr(kind, attribute, None) is not None]
    if isinstance(kind, inspect.StructType):
        return "an object of " + ", ".join(f.encode_name for f in kind.fields)
    if isinstance(kind, inspect.IntType) and bounds == [f">= {-2**63}", f"<= {2**63 - 1}"]:
        return "an integer"  # an id: its 64-bit bounds say nothing to a user
    names = {inspect.IntType: "an integer", inspect.FloatType: "a number", inspect.StrType: "a string",
             inspect.BoolType: "true or false", inspect.NoneType: "null", inspect.ListType: "a list",
             inspect.TupleType: "a list", inspect.DictType: "an object"}
    return " and ".join([names.get(type(kind), "a value"), *bounds]).replace(" and ", " ", 1)
