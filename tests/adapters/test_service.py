"""The request path without sockets: every type, batching, roles, unsafe plans, failures, audit, events."""

import json
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import msgspec
import pytest

from pilotage.adapters.service import ROLES, AuditLog, Caller, Service
from pilotage.core import InvalidInputError, RoadNetwork
from pilotage.core import protocol as wire
from pilotage.core.safety import Violation
from pilotage.signal_priority import PriorityDecision, PriorityRequest
from pilotage.signal_priority import engine as engine_module
from tests.clock import ManualClock

Body = dict[str, object]
PROTOCOL_DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"


def request(message_type: str, body: Body | None = None, request_id: str = "r-1") -> bytes:
    return json.dumps({"v": 1, "id": request_id, "type": message_type, "body": body or {}}).encode()


def answer(service: Service, *frames: bytes, caller: Caller | None = None) -> list[dict]:
    callers = None if caller is None else [caller] * len(frames)
    return [json.loads(reply) for reply in service.handle(frames, callers)]


def test_every_request_type_is_answered(make_service: Callable[..., Service],
                                        late_bus: Callable[..., Body]) -> None:
    service = make_service()
    replies = answer(service, request("ping"), request("network.info"),
                     request("signals.state", {"intersection": -30248, "horizon_s": 100}),
                     request("signals.state"), request("priority.request", late_bus()),
                     request("priority.checkout", {"vehicle": "bus-1", "intersection": -30248}),
                     request("server.stats"))
    assert all(reply["ok"] for reply in replies), replies
    types = ["ping", "network.info", "signals.state", "signals.state", "priority.request", "priority.checkout",
             "server.stats"]
    for reply, message_type in zip(replies, types, strict=True):
        msgspec.convert(reply["body"], wire.MESSAGES[message_type].reply)
    ping, info, one, every, decision, checkout, stats = (reply["body"] for reply in replies)
    assert ping == {"time": 1000.0}
    assert info == {"nodes": service.network.n_nodes, "edges": service.network.n_edges, "intersections": 200,
                    "carparks": 8}
    (state,) = one["intersections"]
    assert state["intersection"] == -30248
    assert all(entry["green_from"] <= 1100.0 for entry in state["plan"])
    assert "from--25024" in state["plan"][0]["groups"]
    assert len(every["intersections"]) == 200
    assert (decision["decision"], decision["strategy"]) == ("granted", "extension")
    assert decision["green_until"] == pytest.approx(1000.0 + 30.0 + 5.0)
    assert checkout == {"ended_early": True}
    assert stats["requests"] == 7
    assert stats["replies"] == {"OK": 6}


def test_consecutive_priority_requests_are_decided_in_one_engine_call(
        make_service: Callable[..., Service], late_bus: Callable[..., Body], monkeypatch: pytest.MonkeyPatch) -> None:
    service = make_service()
    batches: list[int] = []
    decide = service.priority.decide

    def counted(requests: Sequence[PriorityRequest]) -> list[PriorityDecision]:
        batches.append(len(requests))
        return decide(requests)

    monkeypatch.setattr(service.priority, "decide", counted)
    replies = answer(service, request("priority.request", late_bus("bus-1"), "a"),
                     request("priority.request", late_bus("bus-2", group="from--nowhere"), "b"),
                     request("priority.request", late_bus("bus-3", lateness_s=0.0), "c"),
                     request("ping", request_id="d"),
                     request("priority.request", late_bus("bus-4", intersection=-30182, group="from--17636"), "e"))
    assert batches == [2, 1]
    assert [reply["id"] for reply in replies] == ["a", "b", "c", "d", "e"]
    assert replies[0]["body"]["decision"] == "granted"
    assert replies[1]["error"] == {"code": "UNKNOWN_ENTITY", "field": "body.group",
                                   "message": replies[1]["error"]["message"]}
    assert "from--25024" in replies[1]["error"]["message"]
    assert replies[2]["body"]["reason"] == "not late enough for priority"


def test_engine_limits_come_back_as_schema_errors_naming_the_body_field(
        make_service: Callable[..., Service], late_bus: Callable[..., Body]) -> None:
    (reply,) = answer(make_service(), request("priority.request", late_bus(eta_s=900.0)))
    assert (reply["error"]["code"], reply["error"]["field"]) == ("BAD_SCHEMA", "body.eta_s")
    (reply,) = answer(make_service(), request("signals.state", {"intersection": 12345}))
    assert (reply["error"]["code"], reply["error"]["field"]) == ("UNKNOWN_ENTITY", "body.intersection")


@pytest.mark.parametrize(("role", "sent", "allowed"), [
    ("reader", "ping", True),
    ("reader", "signals.state", True),
    ("reader", "priority.request", False),
    ("reader", "priority.checkout", False),
    ("controller", "priority.request", True),
    ("controller", "emergency priority.request", False),
    ("dispatch", "emergency priority.request", True),
    ("operator", "emergency priority.request", True),
    ("unknown-role", "ping", False),
])
def test_roles(make_service: Callable[..., Service], late_bus: Callable[..., Body], role: str, sent: str,
               allowed: bool) -> None:
    bodies = {"ping": {}, "signals.state": {}, "priority.request": late_bus(),
              "emergency priority.request": late_bus(**{"class": "emergency"}),
              "priority.checkout": {"vehicle": "bus-1", "intersection": -30248}}
    message_type = sent.rsplit(maxsplit=1)[-1]
    (reply,) = answer(make_service(), request(message_type, bodies[sent]), caller=Caller("client-7", role))
    assert reply["ok"] is allowed
    if not allowed:
        assert reply["error"]["code"] == "FORBIDDEN"
        assert reply["error"]["field"] == ("body.class" if sent.startswith("emergency") else "type")
        assert "client-7" in reply["error"]["message"]


def test_a_plan_the_monitor_refuses_is_answered_unsafe(make_service: Callable[..., Service],
                                                       late_bus: Callable[..., Body],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    service = make_service()
    refusal = Violation("intergreen", "from--18708", 1036.0, "starts 1.0 s after from--25024 ends", "from--25024")
    monkeypatch.setattr(engine_module, "check_schedule", lambda plan, schedule: [refusal])
    (reply,) = answer(service, request("priority.request", late_bus()))
    assert reply["error"]["code"] == "UNSAFE"
    assert "intergreen of from--18708 at 1036.0 s" in reply["error"]["message"]


def test_an_engine_failure_is_answered_internal_and_the_service_goes_on(
        make_service: Callable[..., Service], late_bus: Callable[..., Body], monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    service = make_service()

    def broken(*_: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(service.priority, "plans_ahead", broken)
    monkeypatch.setattr(service.priority, "decide", broken)
    failed_state, failed_decision, ping = answer(service, request("signals.state"),
                                                 request("priority.request", late_bus()), request("ping"))
    assert failed_state["error"]["code"] == failed_decision["error"]["code"] == "INTERNAL"
    assert ping["ok"]
    assert "a bug" in caplog.text
    monkeypatch.setattr(service.priority, "validate", broken)
    failed_validation, ping = answer(service, request("priority.request", late_bus()), request("ping"))
    assert (failed_validation["error"]["code"], ping["ok"]) == ("INTERNAL", True)
    monkeypatch.setattr(wire, "decode_request", broken)
    assert [reply["error"]["code"] for reply in answer(service, request("ping"))] == ["INTERNAL"]


def test_decisions_and_refusals_are_audited_and_the_log_rotates(make_service: Callable[..., Service],
                                                                late_bus: Callable[..., Body],
                                                                tmp_path: Path) -> None:
    audit = AuditLog(tmp_path / "audit.jsonl")
    service = make_service(audit=audit)
    answer(service, request("ping"), request("priority.request", late_bus(), "granted"),
           request("priority.request", late_bus("fire-1", **{"class": "emergency"}), "refused"),
           caller=Caller("avl", "controller"))
    audit.close()
    # In the order of the decisions: the refusal at once, the grant with its run of requests.
    records = [msgspec.json.decode(line, type=dict) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert [(r["client"], r["role"], r["type"], r["request"]["id"], r["reply"]["ok"]) for r in records] == [
        ("avl", "controller", "priority.request", "refused", False),
        ("avl", "controller", "priority.request", "granted", True)]
    assert records[0]["reply"]["error"]["code"] == "FORBIDDEN"

    small = AuditLog(tmp_path / "small.jsonl", max_bytes=2000, backups=2)
    service = make_service(audit=small)
    for n in range(20):
        answer(service, request("priority.request", late_bus(f"bus-{n}"), f"r-{n}"))
    small.close()
    files = sorted(path.name for path in tmp_path.glob("small.jsonl*"))
    assert files == ["small.jsonl", "small.jsonl.1", "small.jsonl.2"]
    for path in tmp_path.glob("small.jsonl*"):
        assert all(json.loads(line)["type"] == "priority.request" for line in path.read_text().splitlines())
        assert path.stat().st_size <= 2000


def test_a_restarted_service_appends_to_its_audit_log(make_service: Callable[..., Service],
                                                      late_bus: Callable[..., Body], tmp_path: Path) -> None:
    for n in range(2):
        audit = AuditLog(tmp_path / "audit.jsonl")
        answer(make_service(audit=audit), request("priority.request", late_bus(), f"run-{n}"))
        audit.close()
    lines = (tmp_path / "audit.jsonl").read_text().splitlines()
    assert [json.loads(line)["request"]["id"] for line in lines] == ["run-0", "run-1"]
    with pytest.raises(InvalidInputError, match="backups"):
        AuditLog(tmp_path / "other.jsonl", backups=0)


def test_grants_and_checkouts_are_published(make_service: Callable[..., Service],
                                            late_bus: Callable[..., Body]) -> None:
    events: list[tuple[str, bytes]] = []
    service = make_service(publish=lambda topic, body: events.append((topic, body)))
    answer(service, request("priority.request", late_bus()), request("priority.request", late_bus("bus-2")))
    answer(service, request("priority.checkout", {"vehicle": "bus-1", "intersection": -30248}))
    assert events == []
    service.publish_events()
    topics = [topic for topic, _ in events]
    assert topics == ["priority", "signals", "priority", "signals"]
    granted = msgspec.json.decode(events[0][1], type=wire.PriorityEvent)
    assert (granted.vehicle, granted.event, granted.strategy) == ("bus-1", "granted", "extension")
    checked_out = msgspec.json.decode(events[2][1], type=wire.PriorityEvent)
    assert (checked_out.vehicle, checked_out.event) == ("bus-1", "checked_out")
    state = msgspec.json.decode(events[3][1], type=wire.SignalsEvent).state
    assert state.intersection == -30248


def test_an_event_that_cannot_be_built_is_logged_and_the_others_are_published(
        make_service: Callable[..., Service], late_bus: Callable[..., Body], monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    events: list[str] = []
    service = make_service(publish=lambda topic, body: events.append(topic))
    answer(service, request("priority.request", late_bus()))

    def broken(*_: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(service, "_state", broken)
    service.publish_events()
    assert events == ["priority"]
    assert "signals event" in caplog.text


def test_bad_frames_get_one_error_each_with_the_request_id_when_there_is_one(
        make_service: Callable[..., Service]) -> None:
    replies = answer(make_service(max_message_bytes=200), b"\x00\x01", request("nope", request_id="x-1"),
                     request("ping", {"pad": "x" * 300}, "x-2"), b'{"v": 3, "id": "x-3", "type": "ping"}')
    assert [(reply["id"], reply["error"]["code"]) for reply in replies] == [
        (None, "BAD_JSON"), ("x-1", "UNKNOWN_TYPE"), (None, "TOO_LARGE"), ("x-3", "UNSUPPORTED_VERSION")]


def test_the_examples_of_the_protocol_documentation_come_back_as_shown(make_service: Callable[..., Service]) -> None:
    blocks = re.findall(r"```json (request|reply|event \w+)\n(.*?)```", PROTOCOL_DOC.read_text(), re.DOTALL)
    requests = [json.loads(text) for kind, text in blocks if kind == "request"]
    replies = [json.loads(text) for kind, text in blocks if kind == "reply"]
    events = [(kind.split()[1], json.loads(text)) for kind, text in blocks if kind.startswith("event")]
    assert len(requests) == len(replies) >= len(wire.MESSAGES)
    assert {request["type"] for request in requests} == set(wire.MESSAGES)
    published: list[tuple[str, dict]] = []
    service = make_service(publish=lambda topic, body: published.append((topic, json.loads(body))))
    for sent, shown in zip(requests, replies, strict=True):
        (answered,) = answer(service, json.dumps(sent).encode())
        service.publish_events()
        if sent["type"] == "server.stats":
            answered["body"]["uptime_s"] = shown["body"]["uptime_s"]
        if sent["type"] == "signals.command":
            # Each engine process names itself anew.
            answered["body"]["engine"] = shown["body"]["engine"]
        assert answered == shown
    for topic, body in events:
        assert (topic, body) in published
        msgspec.convert(body, wire.EVENTS[topic])


def test_corridors_need_the_emergency_permission_and_name_the_field_at_fault(
        make_service: Callable[..., Service]) -> None:
    service = make_service()
    opening = request("corridor.open", {"incident": "fire-1", "origin": -30124, "destination": -16808})
    (refused,) = answer(service, opening, caller=Caller("tram-depot", "controller"))
    assert (refused["error"]["code"], refused["error"]["field"]) == ("FORBIDDEN", "type")
    unknown, outside, opened, again = answer(
        service, request("corridor.open", {"incident": "fire-1", "origin": 42, "destination": -16808}),
        request("corridor.open", {"incident": "fire-1", "origin": -30124, "destination": {"lon": 2.0, "lat": 48.0}}),
        opening, opening, caller=Caller("dispatch-1", "dispatch"))
    assert (unknown["error"]["code"], unknown["error"]["field"]) == ("UNKNOWN_ENTITY", "body.origin")
    assert (outside["error"]["code"], outside["error"]["field"]) == ("BAD_SCHEMA", "body.destination.lon")
    assert opened["ok"] and opened["body"]["crossings"]
    assert (again["error"]["code"], again["error"]["field"]) == ("CONFLICT", "body.incident")


def test_a_position_out_of_the_vehicles_reach_gets_one_error_and_the_server_goes_on(
        make_service: Callable[..., Service], clock: ManualClock) -> None:
    service = make_service()
    opened, first = answer(
        service, request("corridor.open", {"incident": "fire-1", "origin": -30124, "destination": -16808}),
        request("corridor.update", {"incident": "fire-1", "position": {"lon": 6.1748, "lat": 49.6149}}))
    assert opened["ok"] and first["ok"]
    clock.now_s += 5.0
    spoofed, ping = answer(
        service, request("corridor.update", {"incident": "fire-1", "position": {"lon": 6.1320, "lat": 49.6005}}),
        request("ping"))
    assert (spoofed["error"]["code"], spoofed["error"]["field"]) == ("BAD_SCHEMA", "body.position")
    assert "was not used" in spoofed["error"]["message"]
    assert ping["ok"]
    assert service.corridors.corridor("fire-1").updated_s == 1000.0
    assert service.corridors.implausible_updates == 1
    assert "pilotage_corridor_implausible_updates_total 1.0" in service.metrics.exposition().decode()


def test_a_corridor_on_a_given_route_and_a_route_that_is_not_one(make_service: Callable[..., Service],
                                                                   city: RoadNetwork) -> None:
    service = make_service()
    origin, destination = city.node_index(-30124), city.node_index(-16808)
    nodes = city.node_osmid[city.shortest_path(origin, destination, weight="length_m").nodes].tolist()
    opened, broken, unknown = answer(
        service, request("corridor.open", {"incident": "fire-1", "origin": nodes[0], "destination": nodes[-1],
                                           "route": nodes}),
        request("corridor.open", {"incident": "fire-2", "origin": nodes[0], "destination": nodes[-1],
                                  "route": [nodes[0], *nodes[2:]]}),
        request("corridor.open", {"incident": "fire-3", "origin": nodes[0], "destination": nodes[-1],
                                  "route": [nodes[0], 42, nodes[-1]]}))
    assert opened["body"]["route"] == nodes
    assert (broken["error"]["code"], broken["error"]["field"]) == ("BAD_SCHEMA", "body.route")
    assert (unknown["error"]["code"], unknown["error"]["field"]) == ("UNKNOWN_ENTITY", "body.route")


def test_a_corridor_that_is_not_updated_expires_on_a_tick_and_is_published(make_service: Callable[..., Service],
                                                                           clock: ManualClock) -> None:
    published: list[tuple[str, dict]] = []
    service = make_service(publish=lambda topic, body: published.append((topic, json.loads(body))))
    answer(service, request("corridor.open", {"incident": "fire-1", "origin": -30124, "destination": -16808}))
    service.publish_events()
    clock.now_s += 31.0
    service.tick()
    service.publish_events()
    corridor_events = [body for topic, body in published if topic == "corridor"]
    assert [body["event"] for body in corridor_events] == ["opened", "expired"]
    assert corridor_events[-1]["exits"]
    # Every intersection whose plan the corridor changed, then handed back, is published.
    changed = [body["state"]["intersection"] for topic, body in published if topic == "signals"]
    planned = {c["intersection"] for c in corridor_events[0]["crossings"] if c["state"] == "planned"}
    assert planned and set(changed) == planned | {e["intersection"] for e in corridor_events[-1]["exits"]}
    (update,) = answer(service, request("corridor.update", {"incident": "fire-1",
                                                             "position": {"lon": 6.17, "lat": 49.61}}))
    assert (update["error"]["code"], update["error"]["field"]) == ("UNKNOWN_ENTITY", "body.incident")


def test_parking_counts_reservations_and_guidance_through_the_service(make_service: Callable[..., Service],
                                                                      clock: ManualClock) -> None:
    published: list[tuple[str, dict]] = []
    service = make_service(publish=lambda topic, body: published.append((topic, json.loads(body))))
    booking = Caller("booking-portal", "parking")
    count, reserved, again, cancelled, guide, every = answer(
        service, request("parking.update", {"carpark": "sample-gare", "free": 240}),
        request("parking.reserve", {"carpark": "sample-gare", "from": 1100.0, "until": 4700.0, "ref": "app-1"}),
        request("parking.reserve", {"carpark": "sample-gare", "from": 1100.0, "until": 4700.0, "ref": "app-1"}),
        request("parking.cancel", {"reservation": "r-unknown"}),
        request("parking.guide", {"destination": {"lon": 6.1320, "lat": 49.6005}, "arrival": 1100.0,
                                  "origin": -30124}),
        request("parking.availability", {"near": {"lon": 6.1320, "lat": 49.6005}, "radius_m": 800}),
        caller=booking)
    assert count["body"]["free"] == 240 and not count["body"]["stale"]
    assert reserved["body"]["state"] == "booked" and again["body"] == reserved["body"]
    assert (cancelled["error"]["code"], cancelled["error"]["field"]) == ("UNKNOWN_ENTITY", "body.reservation")
    best = guide["body"]["carparks"][0]
    assert best["carpark"] == "sample-gare" and best["predicted_free"] == 239.0 and best["drive_s"] > 0
    assert every["body"]["carparks"][0]["carpark"] == "sample-gare"
    service.publish_events()
    assert [(topic, body["event"]) for topic, body in published] == [("parking", "count"), ("parking", "reserved")]
    (forbidden,) = answer(service, request("parking.reserve", {"carpark": "sample-gare", "from": 1100.0,
                                                               "until": 4700.0, "ref": "app-2"}),
                          caller=Caller("display", "reader"))
    assert forbidden["error"]["code"] == "FORBIDDEN"
    clock.now_s += 1200.0
    service.tick()
    service.publish_events()
    assert ("parking", "stale") in [(topic, body["event"]) for topic, body in published]


def test_routing_jobs_need_the_routing_permission_and_bad_ones_name_the_field(
        make_service: Callable[..., Service]) -> None:
    from .conftest import TINY_JOB  # noqa: PLC0415 - the fixtures' job

    published: list[tuple[str, dict]] = []
    service = make_service(publish=lambda topic, body: published.append((topic, json.loads(body))))
    bad = dict(TINY_JOB, stops=[dict(TINY_JOB["stops"][0], windows=[["10:00", "09:00"]])])
    (refused,) = answer(service, request("route.submit", TINY_JOB), caller=Caller("video-wall", "reader"))
    assert (refused["error"]["code"], refused["error"]["field"]) == ("FORBIDDEN", "type")
    invalid, queued, again = answer(service, request("route.submit", bad), request("route.submit", TINY_JOB),
                                    request("route.submit", TINY_JOB), caller=Caller("planning", "planner"))
    assert (invalid["error"]["code"], invalid["error"]["field"]) == ("BAD_SCHEMA", "body.stops[0].windows[0]")
    assert "'P-1'" in invalid["error"]["message"]
    assert queued["body"]["state"] == "queued"
    assert again["body"] == queued["body"]
    (unknown,) = answer(service, request("route.status", {"job": "nope"}))
    assert (unknown["error"]["code"], unknown["error"]["field"]) == ("UNKNOWN_ENTITY", "body.job")
    try:
        service.tick()
        service.publish_events()
    finally:
        service.routing.close()
    (event,) = [body for topic, body in published if topic == "route"]
    assert event["state"]["job"] == queued["body"]["job"]
    assert event["state"]["state"] == "running"
    msgspec.convert(event, wire.RouteEvent)


def test_every_permission_is_held_by_some_role_and_the_operator_holds_all() -> None:
    held = set().union(*ROLES.values())
    assert held == set(wire.PERMISSIONS)
    assert ROLES["operator"] == frozenset(wire.PERMISSIONS)
