"""The ZeroMQ server over real loopback sockets: bad input, overload, shutdown, CurveZMQ and roles,
events, and the client's retries. Servers run in a thread of the test process, on ports picked by
the system."""

import json
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pytest
import zmq
from hypothesis import given, settings
from hypothesis import strategies as st

from pilotage.adapters.service import Caller, Service
from pilotage.adapters.zeromq import (
    Client,
    Server,
    Subscriber,
    is_local,
    new_client_keys,
    new_server_keys,
    read_allow_list,
)
from pilotage.core import InvalidInputError, RoadNetwork
from pilotage.core import protocol as wire
from pilotage.core.errors import DataFileError, ForbiddenError, RemoteError, TimedOutError
from pilotage.core.signals import SignalPlans
from pilotage.core.transit import Trip
from pilotage.parking import CarPark, CarParks, ParkingEngine, ReservationBook
from pilotage.parking.reservations import peak_overlap
from pilotage.signal_priority import PriorityEngine
from tests.clock import ManualClock

LOOPBACK = "tcp://127.0.0.1:*"
ANY_FIELD = object()
PRIORITY = {"vehicle": "bus-1", "intersection": -30248, "group": "from--25024", "eta_s": 30.0, "class": "bus",
            "lateness_s": 200.0}


def start(service: Service, **options: Any) -> tuple[Server, threading.Thread]:
    server = Server(service, bind=LOOPBACK, events=LOOPBACK, **options)
    thread = threading.Thread(target=server.serve_forever, name="pilotage-server", daemon=True)
    thread.start()
    return server, thread


@pytest.fixture
def serve(make_service: Callable[..., Service]) -> Iterator[Callable[..., Server]]:
    """Starts servers (on a fresh service unless one is given), stopped at the end of the test."""
    running: list[tuple[Server, threading.Thread]] = []

    def run(service: Service | None = None, **options: object) -> Server:
        running.append(start(service or make_service(), **options))
        return running[-1][0]

    yield run
    for server, thread in running:
        server.stop()
        thread.join(timeout=10)
        assert not thread.is_alive()


@pytest.fixture(scope="module")
def shared_server(city: RoadNetwork, city_plans: SignalPlans) -> Iterator[Server]:
    """One server for the property tests, which take no function-scoped fixture."""
    server, thread = start(Service(city, PriorityEngine(city_plans, time.time)))
    yield server
    server.stop()
    thread.join(timeout=10)


class Dealer:
    """A raw DEALER socket: frames as they are, replies as JSON."""

    def __init__(self, endpoint: str) -> None:
        self.context = zmq.Context()
        self.socket = self.context.socket(zmq.DEALER)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.connect(endpoint)

    def send(self, *frames: bytes) -> None:
        self.socket.send_multipart(list(frames))

    def receive(self, timeout_s: float = 10.0) -> dict:
        assert self.socket.poll(int(timeout_s * 1000)), "no reply"
        *_, reply = self.socket.recv_multipart()
        return json.loads(reply)

    def close(self) -> None:
        self.socket.close()
        self.context.term()


@pytest.fixture
def dealer() -> Iterator[Callable[[str], Dealer]]:
    opened: list[Dealer] = []

    def connect(endpoint: str) -> Dealer:
        opened.append(Dealer(endpoint))
        return opened[-1]

    yield connect
    for socket in opened:
        socket.close()


def request(message_type: str, body: object = None, request_id: object = "r-1", **envelope: object) -> bytes:
    return json.dumps({"v": 1, "id": request_id, "type": message_type, "body": body or {}, **envelope}).encode()


def slow_first_turn(service: Service, delay_s: float) -> threading.Event:
    """Make the service's first turn take ``delay_s``, so that requests pile up behind it; the event
    returned is set when that turn begins."""
    handle = service.handle
    begun = threading.Event()

    def slow(frames: Sequence[bytes], callers: Sequence[Caller] | None = None) -> list[bytes]:
        if not begun.is_set():
            begun.set()
            time.sleep(delay_s)
        return handle(frames, callers)

    service.handle = slow  # type: ignore[method-assign]  # the service's turn, slowed
    return begun


# -- requests over a real socket ----------------------------------------------------------------


def test_a_client_gets_an_answer_to_every_request_type(serve: Callable[..., Server],
                                                       ask_every_type: Callable[..., dict]) -> None:
    server = serve()
    with Client(server.endpoint, timeout_s=10.0) as client:
        ask_every_type(client, 1000.0)
        with pytest.raises(RemoteError) as error:
            client.request("signals.state", {"intersection": 1})
    assert (error.value.code, error.value.field) == ("UNKNOWN_ENTITY", "body.intersection")


# -- bad input ----------------------------------------------------------------------------------

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text()
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=6)


def _bytes_case(raw: bytes) -> tuple[list[bytes], str | None, object]:
    try:
        msgspec.json.decode(raw)
    except msgspec.DecodeError:
        return [raw], "BAD_JSON", None
    return [raw], None, ANY_FIELD


bad_messages = st.one_of(
    # Binary garbage, and JSON that is not a request.
    st.binary(min_size=1, max_size=200).map(_bytes_case),
    json_values.filter(lambda value: not isinstance(value, dict)).map(
        lambda value: ([json.dumps(value).encode()], "BAD_SCHEMA", None)),
    # An envelope with one field wrong.
    st.integers().filter(lambda v: v != 1).map(lambda v: ([request("ping", v=v)], "UNSUPPORTED_VERSION", "v")),
    st.text(max_size=64).filter(lambda t: t not in wire.MESSAGES).map(
        lambda t: ([request(t)], "UNKNOWN_TYPE", "type")),
    json_values.filter(lambda v: not isinstance(v, str)).map(lambda v: ([request("ping", request_id=v)],
                                                                        "BAD_SCHEMA", "id")),
    st.text(min_size=65, max_size=100).map(lambda v: ([request("ping", request_id=v)], "BAD_SCHEMA", "id")),
    # A priority request with a field missing, of the wrong type, or unknown.
    st.sampled_from(["vehicle", "intersection", "group", "eta_s", "class"]).map(
        lambda name: ([request("priority.request", {k: v for k, v in PRIORITY.items() if k != name})],
                      "BAD_SCHEMA", f"body.{name}")),
    st.tuples(st.sampled_from(["vehicle", "group", "eta_s", "class", "lateness_s", "occupancy"]),
              st.lists(st.integers(), max_size=2) | st.dictionaries(st.text(max_size=3), st.integers(), max_size=2)
              | st.none() | st.booleans()).map(
        lambda case: ([request("priority.request", {**PRIORITY, case[0]: case[1]})], "BAD_SCHEMA", f"body.{case[0]}")),
    st.text(min_size=1, max_size=10).filter(lambda name: name not in PRIORITY and name not in (
        "occupancy", "eta_window_s")).map(
        lambda name: ([request("priority.request", {**PRIORITY, name: 1})], "BAD_SCHEMA", f"body.{name}")),
    # An intersection or a group that does not exist.
    st.integers(min_value=1, max_value=2**40).map(
        lambda i: ([request("priority.request", {**PRIORITY, "intersection": i})], "UNKNOWN_ENTITY",
                   "body.intersection")),
    st.text(min_size=1, max_size=64).filter(lambda g: g != PRIORITY["group"]).map(
        lambda g: ([request("priority.request", {**PRIORITY, "group": g})], "UNKNOWN_ENTITY", "body.group")),
    # Too large, and the wrong number of frames.
    st.integers(min_value=wire.MAX_MESSAGE_BYTES + 1, max_value=4 * wire.MAX_MESSAGE_BYTES).map(
        lambda size: ([b"{" + b" " * (size - 2) + b"}"], "TOO_LARGE", None)),
    st.lists(st.binary(max_size=20), min_size=2, max_size=5).filter(lambda frames: frames[0] != b"").map(
        lambda frames: (frames, "BAD_SCHEMA", "frames")),
    st.lists(st.binary(max_size=20), min_size=2, max_size=3).map(lambda frames: ([b"", *frames], "BAD_SCHEMA",
                                                                                 "frames")),
    # An empty frame, alone or after the delimiter: an empty request.
    st.sampled_from([[b""], [b"", b""]]).map(lambda frames: (frames, "BAD_JSON", None)),
    # Nested deeper than any schema, in the body or at the root, arrays or objects, up to the size
    # limit: refused before it is parsed.
    st.tuples(st.integers(wire.MAX_NESTING_DEPTH + 1, 10_000), st.sampled_from([(b"[", b"]"), (b'{"a":', b"}")]),
              st.booleans()).map(lambda case: ([_nested(*case)], "BAD_JSON", None)),
)


def _nested(depth: int, brackets: tuple[bytes, bytes], in_body: bool) -> bytes:
    """A request whose body (or the whole document) nests ``depth`` levels."""
    opening, closing = brackets
    tree = opening * depth + (b"1" if opening.endswith(b":") else b"") + closing * depth
    return b'{"v": 1, "id": "deep", "type": "ping", "body": ' + tree + b"}" if in_body else tree


@settings(max_examples=300)
@given(case=bad_messages)
def test_every_bad_message_gets_one_error_and_the_server_goes_on(shared_server: Server,
                                                                 case: tuple[list[bytes], str | None, object]) -> None:
    frames, code, field = case
    client = Dealer(shared_server.endpoint)
    try:
        client.send(*frames)
        client.send(request("ping", request_id="after"))
        error = client.receive()
        assert error["ok"] is False
        assert error["error"]["code"] == code if code else error["error"]["code"] in {
            "BAD_SCHEMA", "UNSUPPORTED_VERSION", "UNKNOWN_TYPE"}
        if field is not ANY_FIELD:
            assert error["error"]["field"] == field
        assert error["error"]["message"]
        # The next reply is the ping's: exactly one reply came for the bad message.
        after = client.receive()
        assert (after["id"], after["ok"]) == ("after", True)
    finally:
        client.close()


def test_a_turn_the_service_fails_is_answered_internal_and_the_server_goes_on(
        serve: Callable[..., Server], make_service: Callable[..., Service], dealer: Callable[[str], Dealer]) -> None:
    service = make_service()
    handle = service.handle
    failed = threading.Event()

    def fails_once(frames: Sequence[bytes], callers: Sequence[Caller] | None = None) -> list[bytes]:
        if not failed.is_set():
            failed.set()
            raise RecursionError("a failure the service did not catch")
        return handle(frames, callers)

    service.handle = fails_once  # type: ignore[method-assign]  # the service's turn, failing once
    client = dealer(serve(service).endpoint)
    client.send(request("ping", request_id="first"))
    reply = client.receive()
    assert (reply["id"], reply["error"]["code"]) == ("first", "INTERNAL")
    client.send(request("ping", request_id="after"))
    assert client.receive()["ok"]


def test_a_client_sending_past_the_hard_limit_is_cut_off_and_others_are_served(
        serve: Callable[..., Server], dealer: Callable[[str], Dealer]) -> None:
    server = serve()
    hostile = dealer(server.endpoint)
    hostile.send(b"x" * (16 * wire.MAX_MESSAGE_BYTES + 1))
    with Client(server.endpoint, timeout_s=10.0) as client:
        assert "time" in client.request("ping")


def test_requests_over_the_queue_limit_are_answered_overloaded(serve: Callable[..., Server],
                                                               make_service: Callable[..., Service],
                                                               dealer: Callable[[str], Dealer]) -> None:
    service = make_service()
    slow_first_turn(service, 0.3)
    server = serve(service, queue_limit=8)
    client = dealer(server.endpoint)
    for n in range(200):
        client.send(request("ping", request_id=f"p-{n}"))
    replies = [client.receive() for _ in range(200)]
    assert sorted(reply["id"] for reply in replies) == sorted(f"p-{n}" for n in range(200))
    codes = [reply["error"]["code"] if not reply["ok"] else "OK" for reply in replies]
    assert set(codes) == {"OK", "OVERLOADED"}
    assert codes.count("OK") >= 8
    client.send(request("ping", request_id="after"))
    assert client.receive()["ok"]


def test_a_reply_to_a_client_gone_is_dropped_and_counted(serve: Callable[..., Server],
                                                         make_service: Callable[..., Service],
                                                         dealer: Callable[[str], Dealer]) -> None:
    service = make_service()
    begun = slow_first_turn(service, 0.3)
    server = serve(service)
    gone = dealer(server.endpoint)
    gone.send(request("ping"))
    assert begun.wait(timeout=10)
    gone.close()
    with Client(server.endpoint, timeout_s=10.0) as client:
        assert client.request("server.stats")["dropped"] == 1


def test_stop_answers_the_requests_in_flight(make_service: Callable[..., Service],
                                             dealer: Callable[[str], Dealer]) -> None:
    service = make_service()
    slow_first_turn(service, 0.5)
    server, thread = start(service)
    client = dealer(server.endpoint)
    for n in range(5):
        client.send(request("ping", request_id=f"p-{n}"))
        time.sleep(0.02)
    server.stop()
    assert sorted(client.receive()["id"] for _ in range(5)) == [f"p-{n}" for n in range(5)]
    thread.join(timeout=10)
    assert not thread.is_alive()


# -- security -----------------------------------------------------------------------------------


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    directory = tmp_path / "keys"
    new_server_keys(directory)
    for role in ("reader", "controller", "dispatch"):
        new_client_keys(directory, f"{role}-1", role)
    return directory


def test_keys_make_an_allow_list_with_roles(keys: Path) -> None:
    allowed = read_allow_list(keys)
    assert sorted((caller.name, caller.role) for caller in allowed.values()) == [
        ("controller-1", "controller"), ("dispatch-1", "dispatch"), ("reader-1", "reader")]
    assert (keys / "server.key_secret").stat().st_mode & 0o777 == 0o600
    assert (keys / "clients" / "reader-1.key_secret").stat().st_mode & 0o777 == 0o600
    with pytest.raises(InvalidInputError, match="exists already"):
        new_client_keys(keys, "reader-1", "reader")
    with pytest.raises(InvalidInputError, match="role"):
        new_client_keys(keys, "x", "superuser")
    with pytest.raises(InvalidInputError, match="name"):
        new_client_keys(keys, "../escape", "reader")
    (keys / "clients" / "broken.key").write_text("not a certificate")
    with pytest.raises(DataFileError, match=r"broken\.key"):
        read_allow_list(keys)


def test_curve_lets_in_allowed_keys_with_their_role_only(serve: Callable[..., Server], keys: Path,
                                                         tmp_path: Path) -> None:
    server = serve(keys=keys)

    def client(name: str, directory: Path = keys, timeout_s: float = 10.0) -> Client:
        return Client(server.endpoint, timeout_s=timeout_s, retries=0, server_key=keys / "server.key",
                      client_key=directory / "clients" / f"{name}.key_secret")

    emergency = {**PRIORITY, "vehicle": "fire-1", "class": "emergency"}
    with client("reader-1") as reader:
        assert "time" in reader.request("ping")
        with pytest.raises(RemoteError) as error:
            reader.request("priority.request", PRIORITY)
        assert error.value.code == "FORBIDDEN"
    with client("controller-1") as controller:
        assert controller.request("priority.request", PRIORITY)["decision"] == "granted"
        with pytest.raises(RemoteError, match="FORBIDDEN"):
            controller.request("priority.request", emergency)
    with client("dispatch-1") as dispatch:
        assert dispatch.request("priority.request", emergency)["decision"] == "granted"

    strangers = tmp_path / "strangers"
    new_client_keys(strangers, "stranger", "dispatch")
    # Refused at the handshake, and told so at once.
    with client("stranger", strangers, timeout_s=30.0) as stranger, pytest.raises(ForbiddenError):
        stranger.request("ping")
    with Client(server.endpoint, timeout_s=30.0, retries=0) as plain, pytest.raises(ForbiddenError):
        plain.request("ping")


def test_events_reach_allowed_subscribers_only(serve: Callable[..., Server], keys: Path) -> None:
    server = serve(keys=keys)
    assert server.events_endpoint is not None
    curve = {"server_key": keys / "server.key", "client_key": keys / "clients" / "reader-1.key_secret"}
    with Subscriber(server.events_endpoint, ["server"], **curve) as subscriber:
        topic, heartbeat = subscriber.receive(timeout_s=10.0)
        assert topic == "server"
        msgspec.convert(heartbeat, wire.EVENTS["server"])
    with Subscriber(server.events_endpoint) as stranger, pytest.raises(ForbiddenError):
        stranger.receive(timeout_s=30.0)


def test_priority_and_signal_events_follow_a_grant(serve: Callable[..., Server]) -> None:
    server = serve()
    assert server.events_endpoint is not None
    with Subscriber(server.events_endpoint) as subscriber, Client(server.endpoint, timeout_s=10.0) as client:
        # The first heartbeat shows the subscription is in place.
        assert subscriber.receive(timeout_s=10.0)[0] == "server"
        client.request("priority.request", PRIORITY)
        events: dict[str, Any] = {}
        while set(events) != {"priority", "signals"}:
            topic, body = subscriber.receive(timeout_s=10.0)
            events[topic] = body
    assert (events["priority"]["vehicle"], events["priority"]["event"]) == ("bus-1", "granted")
    assert events["signals"]["state"]["intersection"] == -30248


@pytest.mark.parametrize(("endpoint", "local"), [
    ("tcp://127.0.0.1:5570", True), ("tcp://127.0.0.1:*", True), ("tcp://localhost:5570", True),
    ("tcp://[::1]:5570", True), ("ipc:///tmp/pilotage.sock", True), ("inproc://pilotage", True),
    ("tcp://0.0.0.0:5570", False), ("tcp://*:5570", False), ("tcp://10.0.0.4:5570", False),
    ("tcp://eth0:5570", False),
])
def test_which_endpoints_are_local(endpoint: str, local: bool) -> None:
    assert is_local(endpoint) is local


def test_serving_beyond_loopback_needs_keys(make_service: Callable[..., Service]) -> None:
    with pytest.raises(InvalidInputError, match="needs CurveZMQ") as error:
        Server(make_service(), bind="tcp://0.0.0.0:*", events=None)
    assert error.value.field == "keys"


def test_a_port_in_use_is_a_clear_error(serve: Callable[..., Server], make_service: Callable[..., Service]) -> None:
    server = serve()
    with pytest.raises(InvalidInputError, match="cannot bind") as error:
        Server(make_service(), bind=server.endpoint, events=None)
    assert error.value.field == "bind"
    with Client(server.endpoint, timeout_s=10.0) as client:
        assert "time" in client.request("ping")


# -- the client's retries -----------------------------------------------------------------------


def test_the_client_sends_again_when_a_reply_is_lost() -> None:
    context = zmq.Context()
    router = context.socket(zmq.ROUTER)
    router.setsockopt(zmq.LINGER, 0)
    port = router.bind_to_random_port("tcp://127.0.0.1")
    seen = []

    def lose_the_first_reply() -> None:
        for attempt in range(2):
            identity, empty, frame = router.recv_multipart()
            seen.append(json.loads(frame)["id"])
            if attempt:
                reply = wire.encode_reply(seen[-1], wire.Ping(time=1.0))
                router.send_multipart([identity, empty, reply])

    thread = threading.Thread(target=lose_the_first_reply, daemon=True)
    thread.start()
    try:
        with Client(f"tcp://127.0.0.1:{port}", timeout_s=0.3, retries=2) as client:
            assert client.request("ping") == {"time": 1.0}
        thread.join(timeout=10)
        assert len(seen) == 2
        assert seen[0] == seen[1]
    finally:
        router.close()
        context.term()


def test_the_client_gives_up_after_its_retries() -> None:
    with Client("tcp://127.0.0.1:9", timeout_s=0.1, retries=2) as client, \
            pytest.raises(TimedOutError, match="3 attempts"):
        client.request("ping")


def test_concurrent_clients_never_overbook_a_car_park(serve: Callable[..., Server],
                                                      make_service: Callable[..., Service],
                                                      clock: Callable[[], float]) -> None:
    """Sixteen clients at once reserve overlapping windows of a car park with 3 reservable spaces:
    at no instant are more than 3 confirmed; every other request gets CONFLICT."""
    carparks = CarParks([CarPark("tiny", "Tiny", 6.1318, 49.6001, capacity=10, reservable=3)])
    book = ReservationBook(":memory:", carparks, clock=clock)
    server = serve(make_service(parking=ParkingEngine(carparks, book, clock)))
    confirmed: list[dict] = []
    conflicts: list[str] = []
    start = threading.Barrier(16)

    def client(number: int) -> None:
        with Client(server.endpoint, timeout_s=10.0) as connection:
            start.wait()
            for attempt in range(3):
                offset = 900.0 * ((number + attempt) % 3)
                try:
                    confirmed.append(connection.request("parking.reserve", {
                        "carpark": "tiny", "from": 2000.0 + offset, "until": 4000.0 + offset,
                        "ref": f"client-{number}-{attempt}"}))
                except RemoteError as error:
                    conflicts.append(error.code)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(confirmed) + len(conflicts) == 48 and set(conflicts) == {"CONFLICT"}
    assert peak_overlap([r["from"] for r in confirmed], [r["until"] for r in confirmed], 0.0, 1e9) == 3


# -- vehicles' positions ------------------------------------------------------------------------------


def _position(city: RoadNetwork, line: Trip, along_m: float, time_s: float, **fields: object) -> dict[str, object]:
    path = line.path
    return {"vehicle": "bus-7", "trip": line.trip_id, "time": time_s,
            "lon": float(np.interp(along_m, path.at_m, city.node_lon[path.nodes])),
            "lat": float(np.interp(along_m, path.at_m, city.node_lat[path.nodes]))} | fields


def test_positions_make_requests_check_outs_and_events(serve: Callable[..., Server], clock: ManualClock,
                                                       city: RoadNetwork, city_line: Trip) -> None:
    server = serve()
    assert server.events_endpoint is not None
    path = city_line.path
    # The first crossing with no stop in the 300 m before it.
    c = next(c for c in range(path.crossing_stop_line_m.size)
             if not ((path.stop_at_m > path.crossing_stop_line_m[c] - 300.0)
                     & (path.stop_at_m <= path.crossing_stop_line_m[c])).any())
    stop_line_m = float(path.crossing_stop_line_m[c])
    intersection = int(city.intersections.ids[path.crossing_intersection[c]])
    replies: list[dict[str, Any]] = []
    with Subscriber(server.events_endpoint, ("priority", "vehicle", "server")) as subscriber, \
            Client(server.endpoint, timeout_s=10.0) as client:
        assert subscriber.receive(timeout_s=10.0)[0] == "server"
        for t in range(45):
            clock.now_s = 1000.0 + t
            replies.append(client.request("vehicle.position", _position(city, city_line, stop_line_m - 300.0 + 8.0 * t,
                                                                         clock.now_s, speed_m_s=8.0)))
        events: list[tuple[str, dict[str, Any]]] = []
        while not any(body.get("event") == "checked_out" and body["intersection"] == intersection
                      for topic, body in events if topic == "priority"):
            events.append(subscriber.receive(timeout_s=10.0))
    asked = [r for r in replies if r["next_intersection"] == intersection and r["request"] is not None]
    assert asked and asked[0]["group"] is not None and asked[0]["to_stop_line_m"] <= 250.0
    states = [body["event"] for topic, body in events if topic == "priority" and body["intersection"] == intersection]
    assert states[0] == "requested" and states[-1] == "checked_out"
    assert set(states[1:-1]) <= {"granted", "rejected"} and len(states) >= 3
    assert all(body["generated"] for topic, body in events if topic == "priority")
    assert sum(topic == "vehicle" for topic, _ in events) >= 1
    for topic, body in events:
        msgspec.convert(body, wire.EVENTS[topic])


def test_bad_positions_get_one_error_each_and_the_server_goes_on(serve: Callable[..., Server], clock: ManualClock,
                                                                 city: RoadNetwork, city_line: Trip) -> None:
    server = serve()
    with Client(server.endpoint, timeout_s=10.0) as client:
        client.request("vehicle.position", _position(city, city_line, 500.0, 1000.0))
        cases = [
            (_position(city, city_line, 500.0, 1000.0, trip="no-such-trip"), "UNKNOWN_ENTITY", "body.trip"),
            (_position(city, city_line, 500.0, 1000.0, lon=2.35, lat=48.85), "BAD_SCHEMA", "body.lon"),
            (_position(city, city_line, 510.0, 999.0), "BAD_SCHEMA", "body.time"),
            (_position(city, city_line, 510.0, 1000.0, speed_m_s=-1.0), "BAD_SCHEMA", "body.speed_m_s"),
            (_position(city, city_line, 510.0, 1011.0), "BAD_SCHEMA", "body.time"),
            ({"vehicle": "bus-7", "lon": 6.13, "lat": 49.61, "time": 1000.0}, "BAD_SCHEMA", "body.trip"),
        ]
        for body, code, field in cases:
            with pytest.raises(RemoteError) as error:
                client.request("vehicle.position", body)
            assert (error.value.code, error.value.field) == (code, field)
        assert client.request("vehicle.position", _position(city, city_line, 520.0, 1001.0))["state"] == "on_path"
