"""GTFS-Realtime in and out: positions read from feeds (and what is rejected, counted), trip updates read
back with the bindings, and the sources over a real file, a real local HTTP server and a real ZeroMQ
socket on loopback. Waits are bounded loops on a condition, never timed assertions."""

import contextlib
import logging
import math
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TypeVar

import pytest
import zmq
from google.transit import gtfs_realtime_pb2 as rt

from pilotage.adapters.gtfs_realtime import (
    FilePositionSource,
    HttpPositionSource,
    PositionBatch,
    PositionSource,
    TripDelay,
    VehiclePositionsReader,
    ZeroMQPositionSource,
    position_source,
    read_vehicle_positions,
    trip_updates_feed,
    vehicle_positions_feed,
    write_trip_updates,
)
from pilotage.core.errors import DataFileError, InvalidInputError, PilotageError
from pilotage.core.protocol import VehiclePosition

T = TypeVar("T")

#: How long a test waits for something that takes milliseconds (s): only a broken source takes longer.
PATIENCE_S = 10.0
LOGGER = "pilotage.adapters.gtfs_realtime"

# Coordinates, speeds and bearings that protobuf's 32-bit floats hold exactly, so a round trip is exact.
BUS = VehiclePosition("bus-1", 5.0390625, 47.3203125, 1_700_000_000.0, trip="T-1", route="L-3", speed_m_s=8.5,
                      heading_deg=90.25, occupancy=42.0)
TRAM = VehiclePosition("tram-7", 5.0625, 47.3125, 1_700_000_001.0)


def wait_for(condition: Callable[[], T | None], what: str) -> T:
    """The first truthy value of ``condition()``, tried until :data:`PATIENCE_S` has passed."""
    deadline = time.monotonic() + PATIENCE_S
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.005)
    pytest.fail(f"waited {PATIENCE_S} s for {what}")


def moved(position: VehiclePosition, seconds: float) -> VehiclePosition:
    """``position`` ``seconds`` later."""
    return VehiclePosition(position.vehicle, position.lon, position.lat, position.time + seconds, trip=position.trip,
                           route=position.route, speed_m_s=position.speed_m_s, heading_deg=position.heading_deg,
                           occupancy=position.occupancy)


def feed_of(*entities: rt.FeedEntity, header_time: int | None = 1_700_000_010) -> bytes:
    """A feed of ``entities``, serialized even when required fields are missing, as a broken producer would."""
    feed = rt.FeedMessage()
    feed.header.gtfs_realtime_version = "2.0"
    if header_time is not None:
        feed.header.timestamp = header_time
    feed.entity.extend(entities)
    return feed.SerializePartialToString()


def entity(entity_id: str = "e", *, vehicle_id: str | None = None, lon: float | None = 5.0,
           lat: float | None = 47.0, timestamp: int | None = 1_700_000_000, **fields: object) -> rt.FeedEntity:
    """A VehiclePositions entity; None leaves a field out, ``fields`` are set on its VehiclePosition."""
    made = rt.FeedEntity(id=entity_id)
    found = made.vehicle
    if vehicle_id is not None:
        found.vehicle.id = vehicle_id
    if lon is not None:
        found.position.longitude = lon
    if lat is not None:
        found.position.latitude = lat
    if timestamp is not None:
        found.timestamp = timestamp
    for name, value in fields.items():
        target, _, attribute = name.rpartition("__")
        setattr(getattr(found, target) if target else found, attribute, value)
    return made


# -- reading ------------------------------------------------------------------------------------

def test_positions_written_as_a_feed_read_back_the_same() -> None:
    data = vehicle_positions_feed([BUS, TRAM], timestamp=1_700_000_002.7)

    batch = VehiclePositionsReader().read(data)

    assert batch == PositionBatch([BUS, TRAM], {}, 1_700_000_002.0)
    shifted = read_vehicle_positions(data, clock_offset_s=-1_700_000_000.0)
    assert [p.time for p in shifted.positions] == [0.0, 1.0]
    assert shifted.feed_time_s == 2.0


def test_what_a_feed_leaves_out_is_taken_from_elsewhere_or_left_unknown() -> None:
    data = feed_of(entity("e1", vehicle__label="L-7"),
                   entity("e2", timestamp=None),
                   entity("e3", vehicle_id="bus-3", occupancy_status=rt.VehiclePosition.FULL,
                          current_status=rt.VehiclePosition.STOPPED_AT),
                   entity("e4", vehicle_id="bus-4", occupancy_percentage=50))

    positions = VehiclePositionsReader(full_load_passengers=80.0).read(data).positions

    assert [p.vehicle for p in positions] == ["L-7", "e2", "bus-3", "bus-4"]
    assert positions[1].time == 1_700_000_010.0  # the feed's own time
    assert positions[2].occupancy is None  # a status says no number of passengers
    assert positions[2].doors_open is None  # stopped at a stop says nothing of its doors
    assert positions[3].occupancy == 40.0  # 50 % of 80 passengers


@pytest.mark.parametrize("data", [b"<html><body>404 Not Found</body></html>", b"", b'{"header": {}, "entity": []}'])
def test_bytes_that_are_no_feed_are_refused(data: bytes) -> None:
    with pytest.raises(InvalidInputError, match="expected a GTFS-Realtime FeedMessage") as raised:
        read_vehicle_positions(data)
    assert "check that the source is a GTFS-Realtime VehiclePositions feed" in str(raised.value)


def test_entities_that_cannot_be_used_are_counted_and_the_others_read() -> None:
    data = feed_of(entity("ok", vehicle_id="bus-1"),
                   entity("north-of-the-pole", lat=91.0),
                   entity("nan", lon=math.nan),
                   entity("no-latitude", lat=None),
                   entity("", vehicle_id=None),
                   entity("no-time", timestamp=None),
                   entity("too-long", vehicle_id="x" * 65),
                   entity("too-fast", position__speed=150.0),
                   rt.FeedEntity(id="no-position", vehicle={"timestamp": 1_700_000_000}),
                   rt.FeedEntity(id="a-trip-update", trip_update={"trip": {"trip_id": "T-1"}}),
                   header_time=None)

    batch = VehiclePositionsReader().read(data)

    assert [p.vehicle for p in batch.positions] == ["bus-1"]
    assert batch.rejected == {"invalid_lat": 1, "invalid_lon": 1, "no_position": 2, "no_id": 1, "no_time": 1,
                              "invalid_vehicle": 1, "invalid_speed_m_s": 1, "not_a_vehicle_position": 1}
    assert batch.feed_time_s is None


def test_a_time_going_backwards_is_rejected_against_the_last_one_read() -> None:
    reader = VehiclePositionsReader()
    first = vehicle_positions_feed([BUS, TRAM], timestamp=1_700_000_002)
    assert len(reader.read(first).positions) == 2

    later_tram = moved(TRAM, 5.0)
    batch = reader.read(vehicle_positions_feed([moved(BUS, -1.0), later_tram], timestamp=1_700_000_007))

    assert batch.positions == [later_tram]
    assert batch.rejected == {"time_backwards": 1}
    assert reader.read(first).rejected == {"time_backwards": 1, "repeated": 1}


# -- writing ------------------------------------------------------------------------------------

def test_trip_updates_parse_back_with_the_bindings() -> None:
    updates = [TripDelay("T-1", "L-3", "bus-1", 125.4, "S-12", 7, 1_700_000_000.9),
               TripDelay("T-2", None, None, -30.0, "S-40", None, 1_700_000_001.0),
               TripDelay("T-3", "L-3", "bus-9", 0.0, None, None, 1_700_000_002.0)]

    feed = rt.FeedMessage.FromString(trip_updates_feed(updates, timestamp=1_700_000_003.5))

    assert feed.header.gtfs_realtime_version == "2.0"
    assert feed.header.incrementality == rt.FeedHeader.FULL_DATASET
    assert feed.header.timestamp == 1_700_000_003
    first, second, third = (item.trip_update for item in feed.entity)
    assert [item.id for item in feed.entity] == ["T-1", "T-2", "T-3"]
    assert (first.trip.trip_id, first.trip.route_id, first.vehicle.id) == ("T-1", "L-3", "bus-1")
    assert (first.delay, first.timestamp) == (125, 1_700_000_000)
    (stop,) = first.stop_time_update
    assert (stop.stop_id, stop.stop_sequence, stop.arrival.delay) == ("S-12", 7, 125)
    assert not second.trip.HasField("route_id") and not second.HasField("vehicle")
    assert second.stop_time_update[0].arrival.delay == -30
    assert not second.stop_time_update[0].HasField("stop_sequence")
    assert list(third.stop_time_update) == []  # after its last stop


@pytest.mark.parametrize(("change", "field"), [
    ({"trip_id": ""}, "updates[1].trip_id"),
    ({"trip_id": "T-1"}, "updates[1].trip_id"),
    ({"delay_s": math.nan}, "updates[1].delay_s"),
    ({"time_s": -1.0}, "updates[1].time_s"),
    ({"next_stop_sequence": -1}, "updates[1].next_stop_sequence"),
])
def test_trip_delays_that_cannot_be_written_are_refused(change: dict[str, object], field: str) -> None:
    fields: dict = {"trip_id": "T-2", "route_id": "L-3", "vehicle": "bus-2", "delay_s": 10.0, "next_stop_id": "S-1",
                    "next_stop_sequence": 1, "time_s": 1_700_000_000.0} | change
    updates = [TripDelay("T-1", "L-3", "bus-1", 0.0, "S-1", 1, 1_700_000_000.0), TripDelay(**fields)]
    with pytest.raises(InvalidInputError) as raised:
        trip_updates_feed(updates, timestamp=1_700_000_000.0)
    assert raised.value.field == field


def test_a_position_before_1970_cannot_be_written() -> None:
    with pytest.raises(InvalidInputError, match="POSIX seconds") as raised:
        vehicle_positions_feed([BUS, moved(TRAM, -2e9)], timestamp=1_700_000_000.0)
    assert raised.value.field == "positions[1].time"


def test_trip_updates_replace_the_file_whole(tmp_path: Path) -> None:
    path = tmp_path / "trip-updates.pb"
    path.write_bytes(b"the previous feed")
    feed = trip_updates_feed([TripDelay("T-1", "L-3", "bus-1", 60.0, "S-1", 1, 1_700_000_000.0)],
                             timestamp=1_700_000_000.0)

    write_trip_updates(path, feed)

    assert path.read_bytes() == feed
    assert [item.name for item in tmp_path.iterdir()] == ["trip-updates.pb"]
    with pytest.raises(DataFileError, match="could not write the trip updates"):
        write_trip_updates(tmp_path / "no-such-folder" / "trip-updates.pb", feed)


# -- sources ------------------------------------------------------------------------------------

def test_a_spec_names_its_source(tmp_path: Path) -> None:
    with contextlib.closing(position_source(str(tmp_path / "feed.pb"))) as source:
        assert isinstance(source, FilePositionSource)
    with contextlib.closing(position_source(f"http://127.0.0.1:{free_port()}/feed", interval_s=60.0)) as source:
        assert isinstance(source, HttpPositionSource)
    port = free_port()
    with contextlib.closing(position_source(f"zmq+tcp://127.0.0.1:{port}/vehicles/line%203")) as source:
        assert isinstance(source, ZeroMQPositionSource)
        assert (source.endpoint, source.topic) == (f"tcp://127.0.0.1:{port}", "vehicles/line 3")


@pytest.mark.parametrize(("spec", "error"), [
    ("", InvalidInputError),
    ("ftp://example.org/feed.pb", InvalidInputError),
    ("file:///tmp/feed.pb", InvalidInputError),
    ("http:///feed.pb", InvalidInputError),
    ("http://127.0.0.1:port/feed.pb", InvalidInputError),
    ("http://127.0.0.1/vehicle positions.pb", InvalidInputError),
    ("zmq+tcp://127.0.0.1/vehicles", InvalidInputError),
    ("zmq+tcp://127.0.0.1:port/vehicles", InvalidInputError),
    ("zmq+tcp://127.0.0.1:5600/v%C3%A9hicules", InvalidInputError),
    ("/no/such/folder/feed.pb", DataFileError),
])
def test_a_spec_of_no_source_is_refused(spec: str, error: type[PilotageError]) -> None:
    with pytest.raises(error) as raised:
        position_source(spec)
    assert raised.value.field == "source"


def test_an_http_source_needs_positive_intervals() -> None:
    with pytest.raises(InvalidInputError) as raised:
        position_source("http://127.0.0.1/feed", interval_s=0.0)
    assert raised.value.field == "interval_s"


def test_a_file_is_read_again_when_it_changes(tmp_path: Path) -> None:
    path = tmp_path / "vehicle-positions.pb"
    source = FilePositionSource(path)

    assert source.poll() is None
    assert source.failures == {"missing": 1}

    path.write_bytes(vehicle_positions_feed([BUS], timestamp=1_700_000_000.0))
    assert_positions(source.poll(), [BUS])
    assert source.poll() is None  # unchanged

    later = moved(BUS, 10.0)
    path.write_bytes(vehicle_positions_feed([later], timestamp=1_700_000_010.0))
    os_touch(path, 1)
    assert_positions(source.poll(), [later])

    path.write_bytes(b"<html>being written</html>")
    os_touch(path, 2)
    assert source.poll() is None
    assert source.poll() is None  # the same broken file is not read twice
    assert source.failures == {"missing": 1, "not_a_feed": 1}


def test_an_http_source_fetches_a_feed_conditionally(feed_server: "FeedServer") -> None:
    feed_server.serve("/vehicle-positions", 200, vehicle_positions_feed([BUS], timestamp=1_700_000_000.0), "v1")
    with contextlib.closing(HttpPositionSource(feed_server.url("/vehicle-positions"), interval_s=0.01)) as source:
        assert_positions(wait_for(source.poll, "the first feed"), [BUS])
        wait_for(lambda: feed_server.answered(304), "a fetch answered 'not modified'")
        assert source.poll() is None

        later = moved(BUS, 10.0)
        feed_server.serve("/vehicle-positions", 200, vehicle_positions_feed([later], timestamp=1_700_000_010.0), "v2")
        assert_positions(wait_for(source.poll, "the changed feed"), [later])
        assert source.failures == {}


def test_http_failures_are_counted_and_logged_once_per_kind(feed_server: "FeedServer",
                                                            caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    with contextlib.closing(HttpPositionSource(feed_server.url("/missing"), interval_s=0.01)) as source:
        wait_for(lambda: source.failures.get("http_404", 0) >= 3, "three fetches answered 404")
        assert source.poll() is None
        feed_server.serve("/missing", 200, vehicle_positions_feed([BUS], timestamp=1_700_000_000.0), "v1")
        assert_positions(wait_for(source.poll, "the feed, once served"), [BUS])
        before = source.failures["http_404"]
        feed_server.serve("/missing", 404, b"", None)
        wait_for(lambda: source.failures["http_404"] > before + 1, "fetches answered 404 again")
    assert [record.message.count("[http_404;") for record in caplog.records] == [1, 1]  # once before, once after


def test_a_server_down_or_silent_is_a_failure_not_an_error() -> None:
    with listening_socket() as silent:
        down = f"http://127.0.0.1:{free_port()}/feed"
        quiet = f"http://127.0.0.1:{silent.getsockname()[1]}/feed"
        with (contextlib.closing(HttpPositionSource(down, interval_s=0.01)) as refused,
              contextlib.closing(HttpPositionSource(quiet, interval_s=0.01, timeout_s=0.1)) as timed_out):
            wait_for(lambda: refused.failures.get("unreachable", 0) >= 2, "connections refused")
            wait_for(lambda: timed_out.failures.get("timeout", 0) >= 1, "a fetch timed out")
            assert refused.poll() is None
            assert timed_out.poll() is None


def test_a_zeromq_source_reads_the_feeds_published_on_its_topic() -> None:
    context = zmq.Context()
    publisher = context.socket(zmq.PUB)
    publisher.setsockopt(zmq.LINGER, 0)
    try:
        port = publisher.bind_to_random_port("tcp://127.0.0.1")
        data = vehicle_positions_feed([BUS, TRAM], timestamp=1_700_000_002.0)
        with contextlib.closing(position_source(f"zmq+tcp://127.0.0.1:{port}/vehicles")) as source:

            def published_and_read() -> PositionBatch | None:
                # Published until read: a subscriber misses what is sent before it is connected.
                publisher.send_multipart([b"other-topic", b"not a feed, and not subscribed to"])
                publisher.send_multipart([b"vehicles", data])
                batch = source.poll()
                return batch if batch is not None and batch.positions else None

            assert_positions(wait_for(published_and_read, "the feed published"), [BUS, TRAM])

            publisher.send_multipart([b"vehicles"])
            publisher.send_multipart([b"vehicles", b"<html>not a feed</html>"])
            failures = wait_for(lambda: poll_failures(source, {"bad_frames", "not_a_feed"}), "the bad messages")
            assert (failures["bad_frames"], failures["not_a_feed"]) == (1, 1)
    finally:
        publisher.close()
        context.term()


# -- helpers ------------------------------------------------------------------------------------

def assert_positions(batch: PositionBatch | None, expected: list[VehiclePosition]) -> None:
    assert batch is not None
    assert batch.positions == expected


def poll_failures(source: PositionSource, kinds: set[str]) -> dict[str, int] | None:
    """The source's failures, polled once, when every one of ``kinds`` is among them."""
    source.poll()
    failures = source.failures
    return failures if kinds <= failures.keys() else None


def os_touch(path: Path, step: int) -> None:
    """Give ``path`` a modification time of its own, whatever the file system's clock resolution."""
    seconds_ns = (1_700_000_000 + step) * 10**9
    os.utime(path, ns=(seconds_ns, seconds_ns))


def free_port() -> int:
    """A loopback TCP port nothing listens on (one just released by the system)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@contextlib.contextmanager
def listening_socket() -> Iterator[socket.socket]:
    """A socket that listens and never answers: connections complete (the kernel accepts them), then
    nothing comes."""
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen(8)
        yield listening


class FeedServer:
    """A real HTTP server on loopback, in a thread, serving what each path is given (status, body, ETag)
    and answering 304 to a fetch whose If-None-Match is the path's ETag."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[int, bytes, str | None]] = {}
        self.statuses: list[int] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True)
        self._thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}{path}"

    def serve(self, path: str, status: int, body: bytes, etag: str | None) -> None:
        with self._lock:
            self.routes[path] = (status, body, etag)

    def answered(self, status: int) -> bool:
        with self._lock:
            return status in self.statuses

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with server._lock:
                    status, body, etag = server.routes.get(self.path, (404, b"", None))
                    if etag is not None and self.headers.get("If-None-Match") == etag:
                        status, body = 304, b""
                    server.statuses.append(status)
                self.send_response(status)
                if etag is not None:
                    self.send_header("ETag", etag)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                """Quiet: the tests read the statuses served."""

        return Handler


@pytest.fixture
def feed_server() -> Iterator[FeedServer]:
    server = FeedServer()
    yield server
    server.close()
