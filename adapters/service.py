"""The request path of the control room: decode, authorise, ask the engines, reply, publish, audit.

:class:`Service` turns request frames into reply frames (DESIGN.md, "Wire protocol v1") and knows
nothing of sockets: the ZeroMQ server (:mod:`pilotage.adapters.zeromq`) moves the frames, and a
simulator loop can call it the same way. It never raises: every frame gets exactly one reply, an
error reply when the frame is bad, and an unexpected failure of an engine is logged and answered
``INTERNAL``.

Consecutive ``priority.request`` frames of one call are decided together, in one kernel call for
the whole city (:meth:`PriorityEngine.decide`), after each was validated alone so that one bad
request cannot fail the others. Consecutive ``vehicle.position`` frames are followed together
(:class:`~pilotage.signal_priority.tracking.VehicleTracker`, one kernel call), and the requests,
check-outs and cancels they lead to go through the same engine calls and the same audit as a
client's ``priority.request`` and ``priority.checkout``, each audited as from the client that sent
the position.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from msgspec import Raw, Struct

from pilotage.adapters.operations import Metrics
from pilotage.core import RoadNetwork
from pilotage.core import protocol as wire
from pilotage.core.errors import (
    ForbiddenError,
    InvalidInputError,
    OutsideNetworkError,
    PilotageError,
    UnknownEntityError,
    UnsafePlanError,
)
from pilotage.core.network import MAX_SNAP_DISTANCE_M
from pilotage.core.protocol.jobs import Job
from pilotage.parking import Availability, ParkingEngine, Reservation, ReservationBook, sample_carparks
from pilotage.routing import JobRecord, RoutingQueue
from pilotage.signal_priority import Corridor, CorridorEngine, ExitTransition, PriorityEngine, SignalStateStore
from pilotage.signal_priority import PriorityDecision as EnginePriorityDecision
from pilotage.signal_priority import PriorityRequest as EnginePriorityRequest
from pilotage.signal_priority.tracking import PositionReport, Release, Step, VehicleTracker

logger = logging.getLogger(__name__)

#: Error codes whose requests are audited even when they only read.
_AUDITED_ERRORS = frozenset({ForbiddenError.code, UnsafePlanError.code})


@dataclass(frozen=True)
class Caller:
    """Who sent a request: a name for the logs (a client key's name, or a peer address) and its role."""

    name: str
    role: str


#: The roles a client key may have, and the permissions (:data:`pilotage.core.protocol.PERMISSIONS`)
#: each holds. ``emergency`` opens corridors and asks priority for emergency vehicles; ``parking``
#: reserves spaces (a booking front end) and sends counts (a car park's counting system);
#: ``signals`` drives the traffic lights (a field adapter); ``operator`` is every client when the
#: server runs without CurveZMQ.
ROLES: dict[str, frozenset[str]] = {
    "reader": frozenset({"read"}),
    "field": frozenset({"read", "signals"}),
    "controller": frozenset({"read", "priority"}),
    "dispatch": frozenset({"read", "priority", "emergency"}),
    "parking": frozenset({"read", "parking"}),
    "planner": frozenset({"read", "routing"}),
    "operator": frozenset(wire.PERMISSIONS),
}

#: Every caller when the server runs without CurveZMQ: loopback, trusted.
LOCAL_CALLER = Caller("local", "operator")


class AuditRecord(Struct):
    """One line of the audit log: when (s, wall clock), who, the request and the reply as sent."""

    time: float
    client: str
    role: str
    type: str
    request: Raw
    reply: Raw


class AuditLog:
    """An append-only audit log of decisions (:class:`AuditRecord`) and of changes to the client keys
    (:class:`pilotage.core.protocol.KeyChange`): JSON lines, rotated by size.

    ``path`` is written, then renamed to ``path.1`` (and older files to ``.2``, …, up to ``backups``)
    when the next record would take it past ``max_bytes``. Records are buffered until :meth:`flush`,
    which the service calls at the end of each turn, before the turn's replies are sent.

    Raises:
        InvalidInputError: ``max_bytes`` or ``backups`` under 1.
    """

    def __init__(self, path: str | os.PathLike[str], *, max_bytes: int = 50 * 1024 * 1024, backups: int = 10) -> None:
        if max_bytes < 1 or backups < 1:
            raise InvalidInputError(f"expected max_bytes and backups >= 1, got {max_bytes} and {backups}",
                                    field="max_bytes" if max_bytes < 1 else "backups")
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.backups = backups
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("ab")
        self._size = self._file.tell()

    def write(self, record: AuditRecord | wire.KeyChange) -> None:
        """Append one record, of a request or of a client key (buffered until :meth:`flush`)."""
        line = wire.encode(record) + b"\n"
        if self._size and self._size + len(line) > self.max_bytes:
            self._rotate()
        self._file.write(line)
        self._size += len(line)

    def flush(self) -> None:
        """Hand the records written so far to the operating system."""
        self._file.flush()

    def close(self) -> None:
        """Flush and close the file."""
        self._file.close()

    def _rotate(self) -> None:
        self._file.close()
        for n in range(self.backups - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{n}")
            if older.exists():
                older.replace(self.path.with_name(f"{self.path.name}.{n + 1}"))
        self.path.replace(self.path.with_name(f"{self.path.name}.1"))
        self._file = self.path.open("ab")
        self._size = 0


class FieldClock:
    """The clock of an engine that runs on a field adapter's time (``pilotage serve --clock field``):
    each ``signals.command`` moves it to the adapter's ``time``; it never goes back.

    Args:
        start_s: the time before the first command (s).
    """

    def __init__(self, start_s: float = 0.0) -> None:
        self.now_s = start_s
        self.started = False

    def __call__(self) -> float:
        return self.now_s

    def move_to(self, time_s: float) -> None:
        """Set the clock to ``time_s``.

        Raises:
            InvalidInputError: ``time_s`` is before the clock's time.
        """
        if self.started and time_s < self.now_s:
            raise InvalidInputError(f"expected a time at or after the last one ({self.now_s:.3f} s), got {time_s:.3f} "
                                    "s: a field adapter's clock never goes back; restart the engine to start over",
                                    field="time")
        self.now_s = time_s
        self.started = True


class Service:
    """The engines behind the wire protocol.

    Args:
        network: the road network the engines work on.
        priority: the priority engine; its clock is the service's (times on the wire are on it).
        corridors: the emergency corridors, on ``network`` and ``priority`` (default: a new engine
            with the default configuration).
        parking: the car parks (default: the embedded city's sample car parks, reservations in
            memory only; ``pilotage serve`` keeps them in a database file).
        routing: the routing jobs submitted (default: kept in memory only; ``pilotage serve`` keeps
            them in a database file).
        audit: where decisions are logged, if anywhere.
        signal_state: the database where the signals' state (plans changed by priority and
            pre-emption, grants, open corridors) is kept at every :meth:`tick` and restored from
            when the service starts (default: nowhere; ``pilotage serve`` keeps it). Kept off the
            request path, a change is on disk within one tick (100 ms under a server): a crash
            loses at most that last tick's changes.
        publish: called with ``(topic, body)`` for each event (DESIGN.md, "Events on PUB"), by
            :meth:`publish_events`.
        max_message_bytes: requests larger than this get ``TOO_LARGE``.
        field_clock: the clock of ``priority`` when a field adapter sets it (``signals.command``);
            the signals' state is then restored at the adapter's first command, on its time. None:
            ``priority`` runs on its own clock, and a field adapter's must agree with it within
            :data:`~pilotage.core.protocol.MAX_CLOCK_SKEW_S`.
        command_ttl_s: how long a field adapter runs a command without a newer one (s).
        tracker: the buses and trams followed from their positions, with the trips they may run
            (default: one that knows no trip, so every ``vehicle.position`` names an unknown trip;
            ``pilotage serve --gtfs FEED`` gives the feed's).
    """

    def __init__(self, network: RoadNetwork, priority: PriorityEngine, *, corridors: CorridorEngine | None = None,
                 parking: ParkingEngine | None = None, routing: RoutingQueue | None = None,
                 audit: AuditLog | None = None, signal_state: str | os.PathLike[str] | None = None,
                 publish: Callable[[str, bytes], None] | None = None,
                 max_message_bytes: int = wire.MAX_MESSAGE_BYTES, field_clock: FieldClock | None = None,
                 command_ttl_s: float = wire.COMMAND_TTL_S, tracker: VehicleTracker | None = None) -> None:
        self.network = network
        self.priority = priority
        self.tracker = tracker or VehicleTracker(network, priority.plans)
        # Positions are refused beyond the network's area, widened by the farthest a place may be
        # snapped from (degrees: a degree of latitude is 111 km).
        min_lon, min_lat, max_lon, max_lat = network.bounding_box
        margin_lat = MAX_SNAP_DISTANCE_M / 111_000.0
        margin_lon = margin_lat / max(float(np.cos(np.radians(max(abs(min_lat), abs(max_lat))))), 0.1)
        self._area = (min_lon - margin_lon, min_lat - margin_lat, max_lon + margin_lon, max_lat + margin_lat)
        self.corridors = corridors or CorridorEngine(network, priority)
        if parking is None:
            carparks = sample_carparks()
            parking = ParkingEngine(carparks, ReservationBook(":memory:", carparks, clock=priority.clock),
                                    priority.clock, network=network)
        self.parking = parking
        self.routing = routing or RoutingQueue(":memory:", network, clock=priority.clock)
        self.signal_state = None
        self.field_clock = field_clock
        if signal_state is not None:
            self.signal_state = SignalStateStore(signal_state, priority, self.corridors)
            if field_clock is None:
                self.signal_state.restore()
        self.command_ttl_s = command_ttl_s
        # This engine process's name in its commands: a field adapter sees a restart by it.
        self.engine_name = uuid.uuid4().hex[:12]
        self.clock = priority.clock
        self.audit = audit
        self.publish = publish
        self.max_message_bytes = max_message_bytes
        self.metrics = Metrics(self._engine_counts)
        # Why the signals' state could not be kept at the last save (empty: it was).
        self._state_error = ""
        self._turn_started_s = time.perf_counter()
        self._started_s = time.monotonic()
        self._pending: list[tuple[str, Callable[[], Struct]]] = []
        #: Work run at every :meth:`tick` besides the engines' (a GTFS-Realtime feed read, ...); a
        #: failure is logged and the service goes on.
        self.timed_work: list[Callable[[], None]] = []
        # Each handler takes the body schema of its message type (wire.MESSAGES), which decode_request
        # returns as a Struct: the map cannot tie the two, so a handler's argument is Any here.
        self._handlers: dict[str, Callable[[Any], Struct]] = {
            "ping": self._ping,
            "health": self._health,
            "network.info": self._network_info,
            "signals.state": self._signals_state,
            "signals.command": self._signals_command,
            "priority.checkout": self._priority_checkout,
            "detectors": self._detectors,
            "corridor.open": self._corridor_open,
            "corridor.update": self._corridor_update,
            "corridor.close": self._corridor_close,
            "parking.availability": self._parking_availability,
            "parking.reserve": self._parking_reserve,
            "parking.cancel": self._parking_cancel,
            "parking.arrive": self._parking_arrive,
            "parking.guide": self._parking_guide,
            "parking.update": self._parking_update,
            "route.submit": self._route_submit,
            "route.status": self._route_status,
            "route.result": self._route_result,
            "server.stats": self._server_stats,
        }

    def handle(self, frames: Sequence[bytes], callers: Sequence[Caller] | None = None) -> list[bytes]:
        """One reply for each request frame, in order; ``callers[i]`` sent ``frames[i]`` (default: every
        frame from :data:`LOCAL_CALLER`). Never raises."""
        self._turn_started_s = time.perf_counter()
        self.metrics.queue_depth.set(len(frames))
        replies: list[bytes] = [b""] * len(frames)
        run: list[tuple[int, wire.Request, wire.PriorityRequest, Caller]] = []
        positions: list[tuple[int, wire.Request, wire.VehiclePosition, Caller]] = []
        for i, frame in enumerate(frames):
            caller = LOCAL_CALLER if callers is None else callers[i]
            self.metrics.requests.inc()
            request = None
            try:
                request, message, body = wire.decode_request(frame, max_bytes=self.max_message_bytes)
                self._authorise(caller, message, body)
            except PilotageError as exc:
                replies[i] = self._error(frame, request, exc, caller)
                continue
            except Exception:
                replies[i] = self._internal(frame, request, caller, "request")
                continue
            if isinstance(body, wire.PriorityRequest):
                try:
                    self.priority.validate(self._engine_request(body))
                except PilotageError as exc:
                    replies[i] = self._error(frame, request, _in_body(exc), caller)
                    continue
                except Exception:
                    replies[i] = self._internal(frame, request, caller, "priority request")
                    continue
                run.append((i, request, body, caller))
                continue
            if isinstance(body, wire.VehiclePosition):
                positions.append((i, request, body, caller))
                continue
            self._decide(run, frames, replies)
            self._track(positions, frames, replies)
            run, positions = [], []
            replies[i] = self._answer(frame, request, message, body, caller)
        self._decide(run, frames, replies)
        self._track(positions, frames, replies)
        if self.audit is not None:
            self.audit.flush()
        return replies

    def tick(self) -> None:
        """Work that is due without a request: corridors not updated in time end, holds that came
        within reach are planned, no-shows are released and stale counts flagged, routing jobs
        progress, finish and start. A server calls it at least every 100 ms. Never raises."""
        try:
            ended = self.corridors.advance()
        except Exception:
            logger.exception("internal error advancing the corridors; the server goes on")
            ended = {}
        # Kept before the parking and routing work, which may start a solver's process.
        self._keep_state()
        try:
            released, stale = self.parking.advance()
            jobs = self.routing.advance()
        except Exception:
            logger.exception("internal error advancing the engines; the server goes on")
            return
        try:
            silent = self.tracker.expire(float(self.clock()))
        except Exception:
            logger.exception("internal error forgetting silent vehicles; the server goes on")
            silent = []
        for release in silent:
            self._release(release, LOCAL_CALLER)
        for work in self.timed_work:
            try:
                work()
            except Exception:
                logger.exception("internal error in %r; the server goes on", work)
        for incident, exits in ended.items():
            self._emit("corridor", partial(self._corridor_event, incident, "expired", [], exits))
            self._emit_signals([e.intersection for e in exits])
        for reservation in released:
            self._emit("parking", partial(self._parking_event, reservation.carpark, "no_show"))
        for carpark in stale:
            self._emit("parking", partial(self._parking_event, carpark, "stale"))
        for record in jobs:
            self._emit("route", partial(self._route_event, record))

    def close(self) -> None:
        """Keep the signals' state a last time, and close every store and the audit log."""
        self._keep_state()
        if self.signal_state is not None:
            self.signal_state.close()
        if self.audit is not None:
            self.audit.close()
        self.parking.reservations.close()
        self.routing.close()

    def _keep_state(self) -> None:
        """Keep the signals' state that changed; a failure is logged, and the service goes on."""
        if self.signal_state is None:
            return
        try:
            self.signal_state.save()
        except PilotageError as error:
            if not self._state_error:
                logger.error("%s", error)
            self._state_error = str(error)
        except Exception as error:
            logger.exception("internal error keeping the signals' state; it is kept at the next save")
            self._state_error = f"internal error: {error}"
        else:
            self._state_error = ""

    def reject(self, frame: bytes, error: PilotageError) -> bytes:
        """The error reply to a frame refused before it reached the engines (overload, framing)."""
        self._turn_started_s = time.perf_counter()
        self.metrics.requests.inc()
        return self._error(frame, None, error, LOCAL_CALLER)

    def audit_key_changes(self, changes: Sequence[wire.KeyChange]) -> None:
        """Append changes to the client keys to the audit log, if there is one, and flush it."""
        if self.audit is not None and changes:
            for change in changes:
                self.audit.write(change)
            self.audit.flush()

    def count_dropped(self) -> None:
        """Count a message that could not be answered (no route back to its sender)."""
        self.metrics.dropped.inc()

    def health(self) -> list[str]:
        """Why the service is degraded: intersections holding their last stage because the safety
        monitor refused their plans, the signals' state not kept. Empty when it is well."""
        reasons = []
        holding = self.priority.holding
        if holding:
            reasons.append(f"{len(holding)} intersections hold their last stage, the safety monitor having refused "
                           f"their plans: {', '.join(map(str, holding[:10]))}")
        if self._state_error:
            reasons.append(f"the signals' state is not kept: {self._state_error}")
        return reasons

    def _count_reply(self, message_type: str, code: str) -> None:
        self.metrics.reply(message_type, code, time.perf_counter() - self._turn_started_s)

    def _engine_counts(self) -> dict[str, int]:
        monitor = self.priority.monitor
        return {"open_corridors": len(self.corridors.incidents), "monitor_checks": monitor.checks,
                "monitor_refused": monitor.refused, "monitor_fallbacks": monitor.fallbacks,
                "corridor_implausible_updates": self.corridors.implausible_updates}

    # -- dispatch --------------------------------------------------------------------------------

    def _authorise(self, caller: Caller, message: wire.Message, body: Struct) -> None:
        permissions = ROLES.get(caller.role, frozenset())
        needed = message.permission
        if isinstance(body, wire.PriorityRequest) and body.vehicle_class == "emergency":
            needed = "emergency"
        if needed not in permissions:
            roles = ", ".join(role for role, held in ROLES.items() if needed in held)
            emergency = needed != message.permission
            raise ForbiddenError(f"client {caller.name!r} has role {caller.role!r}, which may not send "
                                 f"{message.type}{' for an emergency vehicle' if emergency else ''}; that needs "
                                 f"the {needed!r} permission, held by roles {roles}",
                                 field="body.class" if emergency else "type")

    def _answer(self, frame: bytes, request: wire.Request, message: wire.Message, body: Struct,
                caller: Caller) -> bytes:
        try:
            reply = wire.encode_reply(request.id, self._handlers[message.type](body))
        except PilotageError as exc:
            return self._error(frame, request, _in_body(exc), caller)
        except Exception:
            return self._internal(frame, request, caller, f"{message.type} request")
        self._count_reply(message.type, "OK")
        if message.permission != "read":
            self._audit(caller, message.type, frame, reply)
        return reply

    def _error(self, frame: bytes, request: wire.Request | None, error: PilotageError, caller: Caller) -> bytes:
        request_id = request.id if request is not None else wire.request_id(frame, max_bytes=self.max_message_bytes)
        reply = wire.encode_error(request_id, error)
        self._count_reply(request.type if request is not None else "unknown", error.code)
        if request is not None and (error.code in _AUDITED_ERRORS or wire.MESSAGES[request.type].permission != "read"):
            self._audit(caller, request.type, frame, reply)
        return reply

    def _internal(self, frame: bytes, request: wire.Request | None, caller: Caller, what: str) -> bytes:
        """The reply to a request the server failed on, unexpectedly; the failure is logged."""
        request_id = request.id if request is not None else None
        logger.exception("internal error on the %s %r", what, request_id, extra={"request_id": request_id})
        return self._error(frame, request, PilotageError(f"the server failed on this {what}; it is logged, and "
                                                         "the server goes on"), caller)

    def _audit(self, caller: Caller, message_type: str, frame: bytes, reply: bytes) -> None:
        if self.audit is not None:
            self.audit.write(AuditRecord(time.time(), caller.name, caller.role, message_type, Raw(frame), Raw(reply)))

    def publish_events(self) -> None:
        """Publish the events of the requests handled since the last call. A server calls it once
        the replies have left, so that an event never delays a decision. Never raises."""
        pending, self._pending = self._pending, []
        for topic, event in pending:
            try:
                body = wire.encode(event())
            except Exception:
                logger.exception("internal error building a %s event; it is not published", topic)
                continue
            if self.publish is not None:
                self.publish(topic, body)

    def _emit(self, topic: str, event: Callable[[], Struct]) -> None:
        """Queue an event, built when it is published."""
        if self.publish is not None:
            self._pending.append((topic, event))

    # -- handlers --------------------------------------------------------------------------------

    def _ping(self, _: Struct) -> wire.Ping:
        return wire.Ping(time=float(self.clock()))

    def _health(self, _: Struct) -> wire.Health:
        reasons = self.health()
        return wire.Health(status="degraded" if reasons else "ok", reasons=reasons, time=float(self.clock()))

    def _network_info(self, _: Struct) -> wire.NetworkInfo:
        return wire.NetworkInfo(nodes=self.network.n_nodes, edges=self.network.n_edges,
                                intersections=len(self.priority.plans), carparks=len(self.parking.carparks))

    def _server_stats(self, _: Struct) -> wire.ServerStats:
        monitor = self.priority.monitor
        requests, replies, dropped = self.metrics.totals()
        return wire.ServerStats(uptime_s=time.monotonic() - self._started_s, requests=requests, replies=replies,
                                dropped=dropped,
                                monitor=wire.MonitorStats(monitor.checks, monitor.refused, monitor.fallbacks))

    def _signals_state(self, body: wire.SignalsStateRequest) -> wire.SignalsState:
        ids = self.priority.plans.ids if body.intersection is None else (body.intersection,)
        now = float(self.clock())
        return wire.SignalsState(time=now, intersections=self._states(ids, now, body.horizon_s))

    def _signals_command(self, body: wire.SignalsCommandRequest) -> wire.SignalsCommand:
        if self.field_clock is not None:
            first = not self.field_clock.started
            self.field_clock.move_to(body.time)
            if first and self.signal_state is not None:
                self.signal_state.restore()
        elif abs(skew_s := body.time - float(self.clock())) > wire.MAX_CLOCK_SKEW_S:
            raise InvalidInputError(f"expected the field adapter's clock within {wire.MAX_CLOCK_SKEW_S} s of the "
                                    f"server's, got {skew_s:+.1f} s; synchronise both hosts' clocks (NTP), or serve "
                                    "with --clock field", field="time")
        taken_over, refused = [], set()
        for i, shown in enumerate(body.shown):
            stages = [(entry.stage, entry.green_from, entry.green_until) for entry in shown.plan]
            try:
                result = self.priority.take_over(shown.intersection, stages)
            except PilotageError as exc:
                raise exc.with_prefix(field=f"shown[{i}]") from None
            if result.taken_over:
                taken_over.append(shown.intersection)
            elif result.refused:
                # Its lights keep their own program: the adapter shows it again at its next turn.
                refused.add(shown.intersection)
        if body.gaps:
            try:
                self.priority.actuate({entry.intersection: entry.gaps_s for entry in body.gaps})
            except PilotageError as exc:
                raise exc.with_prefix(field="gaps") from None
        self._emit_signals(taken_over)
        now = self.priority.advance()
        driven = self.priority.plans.ids if body.intersections is None else body.intersections
        ids = [i for i in driven if i not in refused]
        return wire.SignalsCommand(engine=self.engine_name, time=now, valid_until=now + self.command_ttl_s,
                                   intersections=self._states(ids, now, body.horizon_s), taken_over=taken_over)

    def _states(self, intersections: Sequence[int | str], now: float,
                horizon_s: float) -> list[wire.IntersectionState]:
        ahead = self.priority.plans_ahead(intersections)
        return [self._state(i, now, horizon_s, entries) for i, entries in zip(intersections, ahead, strict=True)]

    def _state(self, intersection: int | str, now: float, horizon_s: float,
               entries: list[tuple[int, float, float]]) -> wire.IntersectionState:
        plans = self.priority.plans
        plan = plans.plans[plans.index_of(intersection)]
        ahead = [entry for entry in entries if entry[1] <= now + horizon_s]
        stage, start, end = ahead[0]
        return wire.IntersectionState(
            intersection=intersection, stage=stage, green=start <= now <= end, time_in_stage_s=now - start,
            plan=[wire.StageEntry(stage=s, green_from=a, green_until=b,
                                  groups=[plan.group_names[g] for g in np.flatnonzero(plan.stage_groups[s])])
                  for s, a, b in ahead])

    def _priority_checkout(self, body: wire.PriorityCheckout) -> wire.CheckedOut:
        ended_early = self.priority.checkout(body.vehicle, body.intersection)
        if ended_early:
            self._emit("priority", partial(wire.PriorityEvent, body.vehicle, body.intersection, "checked_out", "none",
                                           None, None))
            self._emit_signals([body.intersection])
        return wire.CheckedOut(ended_early=ended_early)

    def _detectors(self, body: wire.Detectors) -> wire.Empty:
        for count in body.queues:
            self.priority.observe_queue(body.intersection, count.group, count.queue_vehicles)
        return wire.Empty()

    def _corridor_open(self, body: wire.CorridorOpen) -> wire.CorridorState:
        origin = self.network.place_node(body.origin, "origin")
        destination = self.network.place_node(body.destination, "destination")
        route = None if body.route is None else [self.network.place_node(node, "route") for node in body.route]
        corridor = self.corridors.open(body.incident, origin, destination, route=route)
        state = _corridor_state(self.network, corridor)
        self._emit("corridor", partial(self._corridor_event, body.incident, "opened", state.crossings, []))
        self._emit_signals(corridor.replanned)
        return state

    def _corridor_update(self, body: wire.CorridorUpdate) -> wire.CorridorState:
        reroutes = self.corridors.corridor(body.incident).reroutes
        try:
            corridor = self.corridors.update(body.incident, body.position.lon, body.position.lat)
        except PilotageError as exc:
            if exc.field in ("lon", "lat"):
                raise exc.with_prefix(field="position") from None
            raise
        event: wire.CorridorEventName = "rerouted" if corridor.reroutes > reroutes else "updated"
        state = _corridor_state(self.network, corridor)
        self._emit("corridor", partial(self._corridor_event, body.incident, event, state.crossings, []))
        self._emit_signals(corridor.replanned)
        return state

    def _corridor_close(self, body: wire.CorridorClose) -> wire.CorridorClosed:
        exits = self.corridors.close(body.incident)
        self._emit("corridor", partial(self._corridor_event, body.incident, "closed", [], exits))
        self._emit_signals([e.intersection for e in exits])
        return wire.CorridorClosed(incident=body.incident, exits=[_exit(e) for e in exits])

    def _corridor_event(self, incident: str, event: wire.CorridorEventName, crossings: list[wire.CorridorCrossing],
                        exits: list[ExitTransition]) -> wire.CorridorEvent:
        return wire.CorridorEvent(time=float(self.clock()), incident=incident, event=event, crossings=crossings,
                                  exits=[_exit(e) for e in exits])

    def _parking_availability(self, body: wire.ParkingAvailabilityRequest) -> wire.ParkingAvailability:
        near = None if body.near is None else (body.near.lon, body.near.lat)
        if near is None and body.radius_m is not None:
            raise InvalidInputError("expected near with radius_m: the radius is around a point", field="near")
        return wire.ParkingAvailability(time=float(self.clock()), carparks=[
            _carpark_state(state) for state in self.parking.availability(near, body.radius_m)])

    def _parking_reserve(self, body: wire.ParkingReserve) -> wire.ReservationState:
        repeated = self.parking.reservations.knows(body.ref)
        reservation = self.parking.reservations.reserve(body.carpark, body.from_, body.until, body.ref)
        if not repeated:
            self._emit("parking", partial(self._parking_event, body.carpark, "reserved"))
        return _reservation_state(reservation)

    def _parking_cancel(self, body: wire.ReservationRef) -> wire.ReservationState:
        before = self.parking.reservations.get(body.reservation).state
        reservation = self.parking.reservations.cancel(body.reservation)
        if reservation.state != before:
            self._emit("parking", partial(self._parking_event, reservation.carpark, "cancelled"))
        return _reservation_state(reservation)

    def _parking_arrive(self, body: wire.ReservationRef) -> wire.ReservationState:
        reservation = self.parking.reservations.arrive(body.reservation)
        self._emit("parking", partial(self._parking_event, reservation.carpark, "arrived"))
        return _reservation_state(reservation)

    def _parking_guide(self, body: wire.ParkingGuide) -> wire.ParkingGuidance:
        origin = None if body.origin is None else self.network.place_node(body.origin, "origin")
        guidance = self.parking.guide((body.destination.lon, body.destination.lat), body.arrival, origin)
        return wire.ParkingGuidance(carparks=[wire.GuidedCarPark(
            carpark=g.carpark, name=g.name, predicted_free=g.predicted_free, drive_s=g.drive_s, walk_m=g.walk_m,
            walk_s=g.walk_s, door_s=g.door_s, likely_full=g.likely_full) for g in guidance])

    def _parking_update(self, body: wire.ParkingUpdate) -> wire.CarParkState:
        state = self.parking.update(body.carpark, body.free, body.time)
        self._emit("parking", partial(self._parking_event, body.carpark, "count"))
        return _carpark_state(state)

    def _route_submit(self, body: Job) -> wire.RouteJobState:
        return _route_state(self.routing.submit(body))

    def _route_status(self, body: wire.RouteJobRef) -> wire.RouteJobState:
        return _route_state(self.routing.status(body.job))

    def _route_result(self, body: wire.RouteJobRef) -> wire.RouteResult:
        return wire.RouteResult(job=body.job, solution=self.routing.result(body.job))

    def _route_event(self, record: JobRecord) -> wire.RouteEvent:
        return wire.RouteEvent(time=float(self.clock()), state=_route_state(record))

    def _parking_event(self, carpark: str, event: wire.ParkingEventName) -> wire.ParkingEvent:
        state = self.parking.state(carpark)
        return wire.ParkingEvent(time=float(self.clock()), carpark=carpark, event=event, free=state.free,
                                 reservable_free=state.reservable_free, stale=state.stale)

    def _emit_signals(self, intersections: Sequence[int | str]) -> None:
        """Queue a ``signals`` event for each intersection whose plan changed."""
        for intersection in intersections:
            self._emit("signals", partial(self._signals_event, intersection))

    def _signals_event(self, intersection: int | str) -> wire.SignalsEvent:
        now = float(self.clock())
        return wire.SignalsEvent(time=now, state=self._states([intersection], now, 120.0)[0])

    def _engine_request(self, body: wire.PriorityRequest) -> EnginePriorityRequest:
        """The engine's request of a ``priority.request`` body; its position becomes the distance
        to the intersection, which the engine checks the arrival against.

        Raises:
            UnknownEntityError: a position given for an intersection the network does not have.
        """
        request = wire.to_engine(body, EnginePriorityRequest)
        if body.position is None:
            return request
        intersection = body.intersection
        if not isinstance(intersection, int):
            raise UnknownEntityError(f"expected an intersection of the road network with a position, got "
                                     f"{intersection!r}: leave the position out", field="body.intersection")
        distance_m = self.network.intersections.straight_line_m(intersection, body.position.lon, body.position.lat)
        return dataclasses.replace(request, distance_m=distance_m)

    def _decide(self, run: list[tuple[int, wire.Request, wire.PriorityRequest, Caller]], frames: Sequence[bytes],
                replies: list[bytes]) -> None:
        """Decide a run of validated priority requests in one engine call, and write their replies."""
        if not run:
            return
        message = wire.MESSAGES["priority.request"]
        try:
            with self.metrics.decide_seconds.time():
                decisions = self.priority.decide([self._engine_request(body) for _, _, body, _ in run])
        except Exception:
            for i, request, _, caller in run:
                replies[i] = self._internal(frames[i], request, caller, "priority request")
            return
        changed = []
        for (i, request, body, caller), decision in zip(run, decisions, strict=True):
            if decision.unsafe:
                replies[i] = self._error(frames[i], request, UnsafePlanError(
                    f"the safety monitor refused the plan this {decision.strategy} needed, so nothing was "
                    f"applied: {decision.reason}"), caller)
                continue
            reply = wire.from_engine(decision, wire.PriorityDecision)
            replies[i] = wire.encode_reply(request.id, reply)
            self._count_reply(message.type, "OK")
            self.metrics.decisions.labels(decision.decision, decision.strategy).inc()
            self._audit(caller, message.type, frames[i], replies[i])
            if decision.decision == "granted" and decision.strategy != "already_green":
                self._emit("priority", partial(wire.PriorityEvent, body.vehicle, body.intersection, "granted",
                                               decision.strategy, decision.green_from, decision.green_until))
                changed.append(body.intersection)
        self._emit_signals(changed)


    # -- vehicles' positions ----------------------------------------------------------------------

    def _track(self, run: list[tuple[int, wire.Request, wire.VehiclePosition, Caller]], frames: Sequence[bytes],
               replies: list[bytes]) -> None:
        """Follow a run of vehicles' positions in one tracker call, decide the requests they lead to
        in one engine call, and write their replies."""
        if not run:
            return
        reports: list[PositionReport | PilotageError] = []
        for _, _, body, _ in run:
            try:
                reports.append(self._report(body))
            except PilotageError as error:
                reports.append(error)
        try:
            followed = self.tracker.observe([r for r in reports if isinstance(r, PositionReport)])
        except Exception:
            for i, request, _, caller in run:
                replies[i] = self._internal(frames[i], request, caller, "vehicle position")
            return
        results = iter(followed)
        steps = [r if isinstance(r, PilotageError) else next(results) for r in reports]
        asks: list[tuple[EnginePriorityRequest, Caller]] = []
        for (_, _, _, caller), step in zip(run, steps, strict=True):
            if isinstance(step, Step):
                for release in step.releases:
                    self._release(release, caller)
                if step.request is not None:
                    asks.append((step.request, caller))
                    if step.asked:
                        self._emit_generated(step.request.vehicle, step.request.intersection, "requested",
                                             step.request.group)
        self._decide_generated(asks)
        message = wire.MESSAGES["vehicle.position"]
        for (i, request, body, caller), step in zip(run, steps, strict=True):
            if not isinstance(step, Step):
                replies[i] = self._error(frames[i], request, _in_body(step), caller)
                continue
            now = self.tracker.tracked(body.vehicle)
            tracked = now._replace(reason=now.reason or step.tracked.reason)
            reply = wire.from_engine(tracked, wire.VehicleTracked)
            replies[i] = wire.encode_reply(request.id, reply)
            self._count_reply(message.type, "OK")
            self._audit(caller, message.type, frames[i], replies[i])
            self._emit("vehicle", partial(wire.VehicleEvent, body.time, body.vehicle, body.lon, body.lat, reply))

    def _report(self, body: wire.VehiclePosition) -> PositionReport:
        """The tracker's report of a position.

        Raises:
            InvalidInputError: a position taken farther from the clock's time than the tracker
                follows a silent vehicle (a stale or future position would make a request the
                vehicle cannot use).
            OutsideNetworkError: a position beyond the network's area.
        """
        now = float(self.clock())
        stale_after_s = self.tracker.config.stale_after_s
        if not abs(body.time - now) <= stale_after_s:
            raise InvalidInputError(f"expected a position taken within {stale_after_s:g} s of the server's clock "
                                    f"({now:.3f} s), got {body.time:.3f} s: send positions as they are taken, on the "
                                    "server's clock (check the AVL system's clock)", field="body.time")
        min_lon, min_lat, max_lon, max_lat = self._area
        if not (min_lon <= body.lon <= max_lon and min_lat <= body.lat <= max_lat):
            raise OutsideNetworkError(f"expected a position on the road network (lon {min_lon:.4f}..{max_lon:.4f}, "
                                      f"lat {min_lat:.4f}..{max_lat:.4f}), got ({body.lon:.6f}, {body.lat:.6f}); "
                                      "give positions as lon, lat in degrees (WGS 84)", field="body.lon")
        return PositionReport(
            vehicle=body.vehicle, lon=body.lon, lat=body.lat, time_s=body.time, trip=body.trip, route=body.route,
            speed_m_s=body.speed_m_s, heading_deg=body.heading_deg, occupancy=body.occupancy,
            doors_open=body.doors_open, vehicle_class=body.vehicle_class)

    def _decide_generated(self, asks: list[tuple[EnginePriorityRequest, Caller]]) -> None:
        """Decide the requests made from positions, as a client's would be: validated alone, decided
        together, audited as ``priority.request`` from the client that sent the position."""
        valid: list[tuple[EnginePriorityRequest, Caller, bytes]] = []
        message = wire.MESSAGES["priority.request"]
        for request, caller in asks:
            frame = _generated_frame(message.type, request.vehicle,
                                     wire.from_engine(request, wire.PriorityRequest, position=None))
            try:
                self.priority.validate(request)
            except PilotageError as error:
                self._audit(caller, message.type, frame, wire.encode_error(_generated_id(request.vehicle), error))
                self._rejected(request, str(error))
                continue
            valid.append((request, caller, frame))
        if not valid:
            return
        try:
            with self.metrics.decide_seconds.time():
                decisions = self.priority.decide([request for request, _, _ in valid])
        except Exception:
            logger.exception("internal error deciding %d requests made from positions", len(valid))
            return
        changed = []
        for (request, caller, frame), decision in zip(valid, decisions, strict=True):
            if decision.unsafe:
                self._audit(caller, message.type, frame,
                            wire.encode_error(_generated_id(request.vehicle), UnsafePlanError(decision.reason)))
                self._rejected(request, f"the safety monitor refused the plan: {decision.reason}")
                continue
            self.metrics.decisions.labels(decision.decision, decision.strategy).inc()
            self._audit(caller, message.type, frame,
                        wire.encode_reply(_generated_id(request.vehicle),
                                          wire.from_engine(decision, wire.PriorityDecision)))
            if decision.decision != "granted":
                self._rejected(request, decision.reason)
                continue
            # A grant that changes the plan is news even to a vehicle already granted: its green moved.
            if (self.tracker.record(request.vehicle, request.intersection, "granted")
                    or decision.strategy != "already_green"):
                self._emit_generated(request.vehicle, request.intersection, "granted", request.group, decision)
            if decision.strategy != "already_green":
                changed.append(request.intersection)
        self._emit_signals(changed)

    def _rejected(self, request: EnginePriorityRequest, reason: str) -> None:
        if self.tracker.record(request.vehicle, request.intersection, "rejected", reason):
            self._emit_generated(request.vehicle, request.intersection, "rejected", request.group, reason=reason)

    def _release(self, release: Release, caller: Caller) -> None:
        """A request made from positions ends: the engine gives back the green it granted."""
        frame = _generated_frame("priority.checkout", release.vehicle,
                                 wire.PriorityCheckout(release.vehicle, release.intersection))
        try:
            ended_early = self.priority.checkout(release.vehicle, release.intersection)
        except PilotageError as error:
            self._audit(caller, "priority.checkout", frame, wire.encode_error(_generated_id(release.vehicle), error))
            return
        self._audit(caller, "priority.checkout", frame, wire.encode_reply(_generated_id(release.vehicle),
                                                                          wire.CheckedOut(ended_early)))
        self._emit_generated(release.vehicle, release.intersection, release.state, release.group,
                             reason=release.reason)
        if ended_early:
            self._emit_signals([release.intersection])

    def _emit_generated(self, vehicle: str, intersection: int | str, state: wire.PriorityStateName, group: str,
                        decision: EnginePriorityDecision | None = None, *, reason: str = "") -> None:
        """Queue the ``priority`` event of a request made from positions whose state changed."""
        self._emit("priority", partial(
            wire.PriorityEvent, vehicle, intersection, state, decision.strategy if decision else "none",
            decision.green_from if decision else None, decision.green_until if decision else None, group,
            reason, True))


def _generated_id(vehicle: str) -> str:
    """The request id of what pilotage did from a vehicle's positions, in the audit log."""
    return f"position:{vehicle}"[:64]


def _generated_frame(message_type: str, vehicle: str, body: Struct) -> bytes:
    """The request a client would have sent for what pilotage did from a vehicle's positions, as
    the audit log records it: its id names the vehicle."""
    return wire.encode({"v": wire.VERSION, "id": _generated_id(vehicle), "type": message_type, "body": body})


def _in_body(error: PilotageError) -> PilotageError:
    """An engine's error, its field named from the message's root: engines name their own arguments,
    which sit in the body on the wire."""
    if error.field is not None and not error.field.startswith("body"):
        return error.with_prefix(field="body")
    return error


def _route_state(record: JobRecord) -> wire.RouteJobState:
    error = None if record.error_code is None else wire.Error(record.error_code, record.error_message or "")
    return wire.from_engine(record, wire.RouteJobState, renamed={"job": "id"}, error=error)


def _corridor_state(network: RoadNetwork, corridor: Corridor) -> wire.CorridorState:
    return wire.from_engine(corridor, wire.CorridorState, route=network.node_osmid[corridor.nodes].tolist(),
                            updated=corridor.updated_s,
                            crossings=[wire.from_engine(c, wire.CorridorCrossing) for c in corridor.crossings])


def _carpark_state(state: Availability) -> wire.CarParkState:
    return wire.from_engine(state, wire.CarParkState)


def _reservation_state(reservation: Reservation) -> wire.ReservationState:
    return wire.from_engine(reservation, wire.ReservationState, renamed={"reservation": "id"})


def _exit(transition: ExitTransition) -> wire.ExitTransition:
    return wire.from_engine(transition, wire.ExitTransition)



