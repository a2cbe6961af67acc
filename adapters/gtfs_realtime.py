"""GTFS-Realtime in and out: vehicle positions read from a feed, trip delays written as one. The only
module that imports the GTFS-Realtime bindings (protobuf).

**In.** :class:`VehiclePositionsReader` reads a ``FeedMessage`` of VehiclePositions entities into
:class:`~pilotage.core.protocol.VehiclePosition` messages, checked against that schema (its bounds are
the only copy of the limits). A feed that does not parse is an error; an entity that cannot be used is
not: it is counted in the batch's ``rejected`` under its reason, and the others are read:

- ``not_a_vehicle_position``: an entity without a VehiclePosition (a trip update, an alert);
- ``no_position``: no position, or one without its latitude or longitude;
- ``no_id``: neither a vehicle id, nor a label, nor an entity id;
- ``no_time``: neither the vehicle's timestamp nor the feed's;
- ``invalid_<field>``: a value outside the schema's bounds (NaN included), named by the wire field:
  ``invalid_lat``, ``invalid_lon``, ``invalid_speed_m_s``, ``invalid_vehicle`` (an id too long), ...;
- ``time_backwards``: a time earlier than the last one this reader gave for the vehicle;
- ``repeated``: the same time as the last one this reader gave for the vehicle (an unchanged feed
  read again).

**Sources.** A :class:`PositionSource` is polled by a server: :meth:`~PositionSource.poll` returns what
came since the last poll, or None when nothing new came; it never blocks long and never raises on bad
data or a broken connection: those are counted in ``failures`` (kind: count), and each kind is logged
once, until the source reads a feed again. :func:`position_source` makes one from a spec:

- ``PATH``: a file, read again when its modification time or size changes (write it atomically);
- ``http://HOST[:PORT]/PATH`` or ``https://...``: fetched every ``interval_s`` in a thread of its own,
  conditional on the ETag and Last-Modified the server gave; failures: ``http_<status>``, ``timeout``,
  ``unreachable``, ``bad_response``;
- ``zmq+tcp://HOST:PORT/TOPIC``: a ZeroMQ SUB socket connected to a publisher there, subscribed to
  TOPIC (ZeroMQ's prefix match; none: every message); each message is two frames, the topic and a
  ``FeedMessage``; failures: ``bad_frames``, ``no_publisher``.

Every source also counts ``not_a_feed`` (bytes that do not parse) and ``too_large`` (over
:data:`MAX_FEED_BYTES`); a file, ``missing`` and ``unreadable``.

**Out.** :func:`trip_updates_feed` writes the delays of tracked trips as a TripUpdates feed, and
:func:`write_trip_updates` puts it in a file atomically, for a web server to serve.
:func:`vehicle_positions_feed` writes positions as a VehiclePositions feed (test feeds, simulators).

GTFS-Realtime's times are POSIX seconds (whole seconds); its speeds m/s; its bearings degrees clockwise
from north; its occupancy a percentage of the vehicle's capacity, where the wire's ``occupancy`` is
passengers: ``full_load_passengers`` converts one into the other.
"""

from __future__ import annotations

import http.client
import logging
import math
import os
import re
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from google.protobuf.message import DecodeError
from google.transit import gtfs_realtime_pb2 as rt

from pilotage import __version__
from pilotage.core.errors import DataFileError, InvalidInputError, PilotageError
from pilotage.core.protocol import VERSION, VehiclePosition, encode, from_engine, reply_code
from pilotage.signal_priority.tracking import TripDelay

if TYPE_CHECKING:
    from pilotage.adapters.service import Service
    from pilotage.adapters.zeromq import Subscriber

logger = logging.getLogger(__name__)

#: The largest feed read (bytes): a whole network's vehicles take a few hundred kB.
MAX_FEED_BYTES = 32 * 2**20
#: Passengers on board a vehicle at 100 % occupancy, by default.
FULL_LOAD_PASSENGERS = 100.0
#: The version of GTFS-Realtime the feeds written here follow.
GTFS_REALTIME_VERSION = "2.0"

NOT_A_VEHICLE_POSITION = "not_a_vehicle_position"
NO_POSITION = "no_position"
NO_ID = "no_id"
NO_TIME = "no_time"
TIME_BACKWARDS = "time_backwards"
REPEATED = "repeated"

# A ZeroMQ source reads at most this many messages per poll, so that a flood does not hold the poller.
_MESSAGES_PER_POLL = 256
# The wire field msgspec names in a validation error: "Expected `float` <= 90.0 - at `$.lat`".
_AT_FIELD = re.compile(r"at `\$\.(\w+)`")
# Characters http.client refuses in a URL.
_NOT_IN_URL = re.compile(r"[\x00-\x20\x7f]")
_SPEC_SYNTAX = "a file's path, an http(s):// URL, or zmq+tcp://HOST:PORT/TOPIC"
# The highest value of a GTFS-Realtime uint64 timestamp that a signed 64-bit integer holds too.
_MAX_TIMESTAMP = 2**63 - 1


@dataclass(frozen=True)
class PositionBatch:
    """What one read gave: the positions, in the feed's order; the entities not read, counted by
    reason (module docstring); and the feed's own time (s on the reader's clock; None when the feed
    gives none)."""

    positions: list[VehiclePosition]
    rejected: dict[str, int]
    feed_time_s: float | None


class VehiclePositionsReader:
    """Reads VehiclePositions feeds one after the other, remembering each vehicle's last time so that a
    position older than it, or the same one again, is rejected rather than given twice.

    Args:
        clock_offset_s: added to every time of the feed (POSIX s) to put it on the signals' clock
            (0 in service; minus the simulation's start under a simulator).
        full_load_passengers: passengers on board at 100 % occupancy: a feed's
            ``occupancy_percentage`` times this over 100 is the ``occupancy`` given.

    Raises:
        InvalidInputError: an offset that is not finite, or a full load that is not > 0.
    """

    def __init__(self, *, clock_offset_s: float = 0.0, full_load_passengers: float = FULL_LOAD_PASSENGERS) -> None:
        if not math.isfinite(clock_offset_s):
            raise InvalidInputError(f"expected a finite clock offset (s), got {clock_offset_s}",
                                    field="clock_offset_s")
        if not (math.isfinite(full_load_passengers) and full_load_passengers > 0):
            raise InvalidInputError(f"expected a number of passengers at full load > 0, got {full_load_passengers}",
                                    field="full_load_passengers")
        self.clock_offset_s = clock_offset_s
        self.full_load_passengers = full_load_passengers
        self._last_time_s: dict[str, float] = {}

    def read(self, data: bytes) -> PositionBatch:
        """The positions of the feed ``data`` (a serialized ``FeedMessage``).

        Raises:
            InvalidInputError: ``data`` is not a GTFS-Realtime feed (it does not parse, or has no header).
        """
        feed = _parse(data)
        header_time = float(feed.header.timestamp) if feed.header.HasField("timestamp") else None
        positions: list[VehiclePosition] = []
        rejected: Counter[str] = Counter()
        for entity in feed.entity:
            position = self._position(entity, header_time)
            if isinstance(position, str):
                rejected[position] += 1
                continue
            last_s = self._last_time_s.get(position.vehicle)
            if last_s is not None and position.time <= last_s:
                rejected[TIME_BACKWARDS if position.time < last_s else REPEATED] += 1
                continue
            self._last_time_s[position.vehicle] = position.time
            positions.append(position)
        feed_time_s = None if header_time is None else header_time + self.clock_offset_s
        return PositionBatch(positions, dict(rejected), feed_time_s)

    def _position(self, entity: rt.FeedEntity, header_time: float | None) -> VehiclePosition | str:
        """The wire's VehiclePosition of ``entity``, checked against its schema; or the reason it has none."""
        if not entity.HasField("vehicle"):
            return NOT_A_VEHICLE_POSITION
        found = entity.vehicle
        position = found.position
        if not (found.HasField("position") and position.HasField("latitude") and position.HasField("longitude")):
            return NO_POSITION
        vehicle = found.vehicle.id or found.vehicle.label or entity.id
        if not vehicle:
            return NO_ID
        time = float(found.timestamp) if found.HasField("timestamp") else header_time
        if time is None:
            return NO_TIME
        occupancy = (found.occupancy_percentage / 100.0 * self.full_load_passengers
                     if found.HasField("occupancy_percentage") else None)
        # Through the schema's checked constructor (every field given), so that its bounds are the only
        # copy of the limits; msgspec itself is imported by core.protocol alone.
        try:
            return from_engine(
                None, VehiclePosition, vehicle=vehicle, lon=position.longitude, lat=position.latitude,
                time=time + self.clock_offset_s, trip=found.trip.trip_id or None, route=found.trip.route_id or None,
                speed_m_s=position.speed if position.HasField("speed") else None,
                heading_deg=position.bearing if position.HasField("bearing") else None,
                occupancy=occupancy, doors_open=None, vehicle_class=None)
        except ValueError as exc:  # msgspec.ValidationError: a value outside the schema's bounds
            field = _AT_FIELD.search(str(exc))
            return f"invalid_{field.group(1) if field else 'value'}"


def read_vehicle_positions(data: bytes, *, clock_offset_s: float = 0.0) -> PositionBatch:
    """The positions of one VehiclePositions feed, read by a new :class:`VehiclePositionsReader` (so no
    time is compared with an earlier feed's).

    Raises:
        InvalidInputError: ``data`` is not a GTFS-Realtime feed.
    """
    return VehiclePositionsReader(clock_offset_s=clock_offset_s).read(data)


def _parse(data: bytes) -> rt.FeedMessage:
    """The ``FeedMessage`` of ``data``.

    Raises:
        InvalidInputError: ``data`` does not parse, or parses to a message without a header (which
            every feed has: empty bytes, or bytes that happen to read as unknown fields).
    """
    fix = ("check that the source is a GTFS-Realtime VehiclePositions feed in protobuf (not its HTML page, "
           "nor its JSON or text rendering)")
    feed = rt.FeedMessage()
    try:
        feed.ParseFromString(data)
    except DecodeError as exc:
        raise InvalidInputError(f"expected a GTFS-Realtime FeedMessage (protobuf), got {len(data)} bytes that do not "
                                f"parse ({exc}), starting {bytes(data[:16])!r}; {fix}") from None
    if not feed.HasField("header"):
        raise InvalidInputError(f"expected a GTFS-Realtime FeedMessage with its header, got {len(data)} bytes that "
                                f"hold none; {fix}")
    return feed


# -- out ----------------------------------------------------------------------------------------

def trip_updates_feed(updates: Sequence[TripDelay], *, timestamp: float) -> bytes:
    """A TripUpdates ``FeedMessage`` (full dataset, GTFS-Realtime 2.0, made at ``timestamp``, POSIX s)
    with one TripUpdate per trip of ``updates``: the trip, the vehicle, the delay (whole s) and, at the
    next stop, the arrival delay.

    Raises:
        InvalidInputError: a trip given twice or with an empty id, a delay that is not finite, a time
            that is not POSIX seconds, a negative stop sequence; ``field`` names it (``updates[2].time_s``).
    """
    feed = _new_feed(timestamp)
    seen: set[str] = set()
    for index, update in enumerate(updates):
        where = f"updates[{index}]"
        if not update.trip_id:
            raise InvalidInputError("expected a trip id, got an empty one", field=f"{where}.trip_id")
        if update.trip_id in seen:
            raise InvalidInputError(f"expected one delay per trip, got trip {update.trip_id!r} again; give each "
                                    "trip's latest delay only", field=f"{where}.trip_id")
        seen.add(update.trip_id)
        if not (math.isfinite(update.delay_s) and abs(update.delay_s) < 2**31):
            raise InvalidInputError(f"expected a finite delay (s), got {update.delay_s}", field=f"{where}.delay_s")
        if update.next_stop_sequence is not None and not 0 <= update.next_stop_sequence < 2**32:
            raise InvalidInputError(f"expected a stop sequence >= 0 (GTFS stop_times.txt), got "
                                    f"{update.next_stop_sequence}", field=f"{where}.next_stop_sequence")
        delay_s = round(update.delay_s)
        entity = feed.entity.add(id=update.trip_id)
        trip_update = entity.trip_update
        trip_update.trip.trip_id = update.trip_id
        if update.route_id:
            trip_update.trip.route_id = update.route_id
        if update.vehicle:
            trip_update.vehicle.id = update.vehicle
        trip_update.timestamp = _posix_s(update.time_s, f"{where}.time_s")
        trip_update.delay = delay_s
        if update.next_stop_id:
            stop = trip_update.stop_time_update.add(stop_id=update.next_stop_id)
            if update.next_stop_sequence is not None:
                stop.stop_sequence = update.next_stop_sequence
            stop.arrival.delay = delay_s
    return feed.SerializeToString()


def vehicle_positions_feed(positions: Iterable[VehiclePosition], *, timestamp: float,
                           full_load_passengers: float = FULL_LOAD_PASSENGERS) -> bytes:
    """A VehiclePositions ``FeedMessage`` (full dataset, made at ``timestamp``, POSIX s) of
    ``positions``, one entity each (the vehicle's id; ``#2``, ``#3``, ... after it for a vehicle given
    again). Times become whole POSIX seconds (rounded down); coordinates, speeds and bearings
    protobuf's 32-bit floats; ``occupancy`` (passengers) a percentage of ``full_load_passengers``.
    What :class:`VehiclePositionsReader` reads back (with the default full load).

    Raises:
        InvalidInputError: a time that is not POSIX seconds; ``field`` names it (``positions[3].time``).
    """
    feed = _new_feed(timestamp)
    times_seen: Counter[str] = Counter()
    for index, position in enumerate(positions):
        times_seen[position.vehicle] += 1
        repeat = times_seen[position.vehicle]
        entity = feed.entity.add(id=position.vehicle if repeat == 1 else f"{position.vehicle}#{repeat}")
        found = entity.vehicle
        found.vehicle.id = position.vehicle
        if position.trip is not None:
            found.trip.trip_id = position.trip
        if position.route is not None:
            found.trip.route_id = position.route
        found.position.longitude = position.lon
        found.position.latitude = position.lat
        if position.speed_m_s is not None:
            found.position.speed = position.speed_m_s
        if position.heading_deg is not None:
            found.position.bearing = position.heading_deg
        if position.occupancy is not None:
            found.occupancy_percentage = round(position.occupancy / full_load_passengers * 100.0)
        found.timestamp = _posix_s(position.time, f"positions[{index}].time")
    return feed.SerializeToString()


def write_trip_updates(path: str | os.PathLike[str], feed_bytes: bytes) -> None:
    """Write ``feed_bytes`` to ``path`` through a temporary file of its folder that then replaces it: a
    web server serving the file never sends half a feed, and a failed write leaves the previous one.

    Raises:
        DataFileError: the file cannot be written (no such folder, no permission, disk full).
    """
    path = Path(path)
    # Named for the process and the thread, and made with open(): mkstemp would leave the feed
    # readable by its owner only, and a web server often runs as another user.
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(temporary, "wb") as file:
            file.write(feed_bytes)
        os.replace(temporary, path)
    except OSError as exc:
        raise DataFileError(f"could not write the trip updates to {path}: {exc}; check that its folder exists "
                            "and that this process may write there") from None
    finally:
        temporary.unlink(missing_ok=True)


def _new_feed(timestamp: float) -> rt.FeedMessage:
    """An empty full-dataset ``FeedMessage`` made at ``timestamp`` (POSIX s).

    Raises:
        InvalidInputError: ``timestamp`` is not POSIX seconds.
    """
    feed = rt.FeedMessage()
    feed.header.gtfs_realtime_version = GTFS_REALTIME_VERSION
    feed.header.incrementality = rt.FeedHeader.FULL_DATASET
    feed.header.timestamp = _posix_s(timestamp, "timestamp")
    return feed


def _posix_s(time_s: float, field: str) -> int:
    """``time_s`` in whole POSIX seconds, rounded down, as GTFS-Realtime's timestamps are.

    Raises:
        InvalidInputError: ``time_s`` is negative, not finite or past what a timestamp holds.
    """
    if not (math.isfinite(time_s) and 0 <= time_s <= _MAX_TIMESTAMP):
        raise InvalidInputError(f"expected a time in POSIX seconds (>= 0), got {time_s}; GTFS-Realtime gives wall "
                                "time, so put a simulated time on the wall clock first", field=field)
    return math.floor(time_s)


# -- sources ------------------------------------------------------------------------------------

class PositionSource(Protocol):
    """Where a server polls vehicle positions from (module docstring)."""

    #: What the source reads, as :func:`position_source` was given it.
    spec: str

    @property
    def failures(self) -> dict[str, int]:
        """Failed reads since the source was made, by kind (module docstring)."""

    def poll(self) -> PositionBatch | None:
        """The positions that came since the last poll, or None when nothing new came. Never blocks
        long, never raises on bad data or a broken connection (they are counted in ``failures``)."""

    def close(self) -> None:
        """Release what the source holds (a thread, a socket); it is not polled after."""


class _Failures:
    """A source's failures, counted by kind; each kind is logged at its first occurrence since the
    source last read a feed, so that a source down for hours logs once, and again after it recovered
    and failed anew. Safe across threads (an http source fetches in a thread of its own)."""

    def __init__(self, spec: str) -> None:
        self._spec = spec
        self._counts: Counter[str] = Counter()
        self._logged: set[str] = set()
        self._lock = threading.Lock()

    def count(self, kind: str, detail: str) -> None:
        with self._lock:
            self._counts[kind] += 1
            first = kind not in self._logged
            self._logged.add(kind)
        if first:
            logger.warning("%s: %s [%s; counted, and not logged again until the source reads a feed]",
                           self._spec, detail, kind)

    def recovered(self) -> None:
        with self._lock:
            failed = sorted(self._logged)
            self._logged.clear()
        if failed:
            logger.info("%s: reading feeds again (after %s)", self._spec, ", ".join(failed))

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)


class _Source:
    """What every source shares: its spec, its reader, its failures and the reading of a feed."""

    def __init__(self, spec: str, reader: VehiclePositionsReader | None) -> None:
        self.spec = spec
        self.reader = reader if reader is not None else VehiclePositionsReader()
        self._failures = _Failures(spec)

    @property
    def failures(self) -> dict[str, int]:
        """Failed reads since the source was made, by kind (module docstring)."""
        return self._failures.counts()

    def close(self) -> None:
        """Nothing to release."""

    def _read(self, data: bytes) -> PositionBatch | None:
        """The batch of ``data``, or None (counted) when it is too large or not a feed."""
        if len(data) > MAX_FEED_BYTES:
            self._failures.count("too_large", f"a feed of {len(data)} bytes, over the {MAX_FEED_BYTES} read")
            return None
        try:
            batch = self.reader.read(data)
        except InvalidInputError as exc:
            self._failures.count("not_a_feed", str(exc))
            return None
        self._failures.recovered()
        return batch


class FilePositionSource(_Source):
    """A feed in a file, read again whenever its modification time, size or inode changes (a writer
    should replace it atomically: a file read while half written is counted ``not_a_feed``, and read
    again once its writer changes it)."""

    def __init__(self, path: str | os.PathLike[str], *, reader: VehiclePositionsReader | None = None) -> None:
        super().__init__(os.fspath(path), reader)
        self.path = Path(path)
        self._seen: tuple[int, int, int] | None = None

    def poll(self) -> PositionBatch | None:
        """The file's positions when it changed since the last poll; None when it did not, or when it
        cannot be read (counted ``missing``, ``unreadable``, ``too_large`` or ``not_a_feed``)."""
        try:
            with open(self.path, "rb") as file:
                # The signature of the file opened, not of the path: a file replaced between a stat
                # and the read would otherwise be read twice.
                stat = os.fstat(file.fileno())
                seen = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
                if seen == self._seen:
                    return None
                data = file.read(MAX_FEED_BYTES + 1)
        except FileNotFoundError:
            self._failures.count("missing", f"no file at {self.path} (yet)")
            return None
        except OSError as exc:
            self._failures.count("unreadable", f"cannot read {self.path}: {exc}")
            return None
        self._seen = seen
        return self._read(data)


class HttpPositionSource(_Source):
    """A feed at an http(s) URL, fetched every ``interval_s`` (s, from the end of one fetch to the start
    of the next) by a thread of its own, each fetch given up after ``timeout_s`` (s) without an answer.
    Fetches are conditional on the server's ETag and Last-Modified, and a body the same as the last
    one is not read again; a poll reads the latest feed fetched (an older one not yet polled is
    superseded, as a full dataset is). The thread starts at once; :meth:`close` stops it.

    Raises:
        InvalidInputError: a URL that is not http(s), or an interval or timeout that is not > 0.
    """

    def __init__(self, url: str, *, reader: VehiclePositionsReader | None = None, interval_s: float = 1.0,
                 timeout_s: float = 5.0) -> None:
        if not _fetchable(url):
            raise InvalidInputError(f"expected an http:// or https:// URL with its host (and a port number, if "
                                    f"any), without spaces, got {url!r}; percent-encode what it holds", field="url")
        for name, value in (("interval_s", interval_s), ("timeout_s", timeout_s)):
            if not (math.isfinite(value) and value > 0):
                raise InvalidInputError(f"expected {name} > 0 (s), got {value}", field=name)
        super().__init__(url, reader)
        self.url = url
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self._latest: bytes | None = None
        self._last_body: bytes | None = None
        self._validators: dict[str, str] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._fetch_until_closed, name=f"gtfs-rt {url}", daemon=True)
        self._thread.start()

    def poll(self) -> PositionBatch | None:
        """The positions of the latest feed fetched since the last poll; None when none was (nothing
        new, or the fetches failed: counted by kind)."""
        with self._lock:
            data, self._latest = self._latest, None
        return None if data is None else self._read(data)

    def close(self) -> None:
        """Stop fetching; waits for a fetch under way, at most ``timeout_s`` and a little."""
        self._stop.set()
        self._thread.join(self.timeout_s + 1.0)

    def _fetch_until_closed(self) -> None:
        while not self._stop.is_set():
            self._fetch()
            self._stop.wait(self.interval_s)

    def _fetch(self) -> None:
        """Fetch the feed once; keep its body for the next poll when it is new, else count the failure."""
        request = urllib.request.Request(self.url, headers={
            "Accept": "application/x-protobuf, application/octet-stream;q=0.9, */*;q=0.1",
            "User-Agent": f"pilotage/{__version__}", **self._validators})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                body = response.read(MAX_FEED_BYTES + 1)
                headers = response.headers
        except urllib.error.HTTPError as exc:
            exc.close()
            if exc.code != http.client.NOT_MODIFIED:
                self._failures.count(f"http_{exc.code}", f"the server answered {exc.code} {exc.reason}")
            return
        except TimeoutError:
            self._failures.count("timeout", f"no answer in {self.timeout_s} s")
            return
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, TimeoutError):
                self._failures.count("timeout", f"no connection in {self.timeout_s} s")
            else:
                self._failures.count("unreachable", f"cannot connect: {exc.reason}")
            return
        except OSError as exc:
            self._failures.count("unreachable", f"the connection broke: {exc}")
            return
        except http.client.HTTPException as exc:
            self._failures.count("bad_response", f"the server's answer is not HTTP, or was cut: {exc!r}")
            return
        self._validators = {name: value for name, value in (("If-None-Match", headers.get("ETag")),
                                                             ("If-Modified-Since", headers.get("Last-Modified")))
                            if value}
        if body == self._last_body:
            return
        self._last_body = body
        with self._lock:
            self._latest = body


def _fetchable(url: str) -> bool:
    """Whether urllib can fetch ``url``: http(s), with a host, a port that is a number (if any), and no
    space or control character. Checked once, since each fetch in the source's thread would fail."""
    parts = urllib.parse.urlsplit(url)
    try:
        _ = parts.port  # raises on a port that is not a number
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname) and not _NOT_IN_URL.search(url)


class ZeroMQPositionSource(_Source):
    """Feeds published on a ZeroMQ PUB socket at ``endpoint`` (``tcp://HOST:PORT``), on ``topic``
    (ZeroMQ's prefix match; empty: every topic), each message two frames: the topic and a
    ``FeedMessage``. A poll reads the messages waiting, without waiting for more."""

    def __init__(self, endpoint: str, topic: str = "", *, reader: VehiclePositionsReader | None = None) -> None:
        # Imported here: zeromq imports the service, which may import this module.
        from pilotage.adapters.zeromq import Subscriber  # noqa: PLC0415

        super().__init__(f"zmq+{endpoint}/{topic}", reader)
        self.endpoint = endpoint
        self.topic = topic
        self._subscriber = Subscriber(endpoint, [topic])

    def poll(self) -> PositionBatch | None:
        """The positions of the messages waiting, at most a few hundred of them (the rest at the next
        poll); None when none was waiting or none held a feed (counted by kind)."""
        batches = []
        for _ in range(_MESSAGES_PER_POLL):
            frames = _waiting_frames(self._subscriber, self._failures)
            if frames is None:
                break
            if len(frames) != 2:
                self._failures.count("bad_frames", f"expected 2 frames (topic, feed), got {len(frames)}")
                continue
            batch = self._read(frames[1])
            if batch is not None:
                batches.append(batch)
        return _merged(batches) if batches else None

    def close(self) -> None:
        """Close the socket."""
        self._subscriber.close()


def _waiting_frames(subscriber: Subscriber, failures: _Failures) -> list[bytes] | None:
    """The frames of the next message waiting at ``subscriber``, or None when none is; a publisher not
    reached is counted ``no_publisher``."""
    try:
        return subscriber.receive_frames()
    except PilotageError:
        failures.count("no_publisher", f"no publisher accepted a connection at {subscriber.endpoint} (yet)")
        return None


def _merged(batches: Sequence[PositionBatch]) -> PositionBatch:
    """One batch of several: their positions in order, their rejections summed, the latest feed time."""
    rejected: Counter[str] = Counter()
    for batch in batches:
        rejected.update(batch.rejected)
    times = [batch.feed_time_s for batch in batches if batch.feed_time_s is not None]
    return PositionBatch([position for batch in batches for position in batch.positions], dict(rejected),
                         max(times, default=None))


def position_source(spec: str, *, reader: VehiclePositionsReader | None = None, interval_s: float = 1.0,
                    timeout_s: float = 5.0) -> PositionSource:
    """The source ``spec`` names: a file's path, an ``http(s)://`` URL, or ``zmq+tcp://HOST:PORT/TOPIC``
    (module docstring), reading with ``reader`` (a new :class:`VehiclePositionsReader` by default).
    ``interval_s`` and ``timeout_s`` (s) are an http source's (:class:`HttpPositionSource`).

    Raises:
        InvalidInputError: a spec of none of these forms (another scheme, a ZeroMQ endpoint without its
            port or with a topic not in ASCII), or an interval or timeout that is not > 0.
        DataFileError: a file in a folder that does not exist.
    """
    scheme, separator, _ = spec.partition("://")
    if not separator:
        if not spec:
            raise InvalidInputError(f"expected {_SPEC_SYNTAX}, got an empty spec", field="source")
        path = Path(spec)
        # The file may come later (its writer starts after the server), but not its folder: that is a typo.
        if not path.parent.is_dir():
            raise DataFileError(f"expected a feed file in an existing folder, got {spec!r}, whose folder "
                                f"{path.parent} does not exist; check the path", field="source")
        return FilePositionSource(path, reader=reader)
    if scheme in ("http", "https"):
        try:
            return HttpPositionSource(spec, reader=reader, interval_s=interval_s, timeout_s=timeout_s)
        except InvalidInputError as exc:
            # The URL is this function's spec: name the argument the caller gave.
            if exc.field == "url":
                raise InvalidInputError(str(exc), field="source") from None
            raise
    if scheme == "zmq+tcp":
        parts = urllib.parse.urlsplit(spec)
        try:
            port = parts.port
        except ValueError:
            port = None
        if not parts.hostname or port is None:
            raise InvalidInputError(f"expected zmq+tcp://HOST:PORT/TOPIC, got {spec!r}, without a host and port; "
                                    "give the publisher's host and port, as in zmq+tcp://127.0.0.1:5600/vehicles",
                                    field="source")
        topic = urllib.parse.unquote(parts.path[1:])
        if not topic.isascii():
            raise InvalidInputError(f"expected a topic in ASCII, got {topic!r}", field="source")
        return ZeroMQPositionSource(f"tcp://{parts.netloc}", topic, reader=reader)
    raise InvalidInputError(f"expected {_SPEC_SYNTAX}, got {spec!r}, of scheme {scheme}://; give a file without "
                            "file://", field="source")


# -- into a service ---------------------------------------------------------------------------------

#: The caller a position feed's positions are handled and audited as.
FEED_CALLER_ROLE = "controller"


class FeedLink:
    """A GTFS-Realtime link of a server: the positions of a VehiclePositions source go through the
    service as ``vehicle.position`` requests (so the tracker asks for priority for them, with the
    same checks and the same audit as a client's positions), and the delays of the trips followed
    are written as a TripUpdates feed. The service calls it with its timed work
    (:attr:`Service.timed_work`), every 100 ms under a server.

    Args:
        service: the service the positions go to.
        source: the VehiclePositions source (None: none read).
        trip_updates: the TripUpdates file written (None: none).
        every_s: how often the TripUpdates file is written (s, on the service's clock).
    """

    def __init__(self, service: Service, source: PositionSource | None = None,
                 trip_updates: str | os.PathLike[str] | None = None, *, every_s: float = 1.0) -> None:
        from pilotage.adapters.service import Caller  # noqa: PLC0415 - the service imports the engines

        self.service = service
        self.source = source
        self.trip_updates = None if trip_updates is None else Path(trip_updates)
        self.every_s = every_s
        self.caller = Caller(f"gtfs-realtime:{source.spec}" if source is not None else "gtfs-realtime",
                             FEED_CALLER_ROLE)
        #: Positions read and rejected (by the reader: ``invalid_lat``...; by the service: its code).
        self.read = 0
        self.rejected: Counter[str] = Counter()
        self._written_s = -math.inf
        self._ids = 0

    def __call__(self) -> None:
        """Read what the source has, and write the trip updates when due."""
        if self.source is not None:
            batch = self.source.poll()
            if batch is not None:
                self._follow(batch)
        now = float(self.service.clock())
        if self.trip_updates is not None and now - self._written_s >= self.every_s:
            self._written_s = now
            write_trip_updates(self.trip_updates, trip_updates_feed(self.service.tracker.delays(), timestamp=now))

    def _follow(self, batch: PositionBatch) -> None:
        self.rejected.update(batch.rejected)
        frames = []
        for position in batch.positions:
            self._ids += 1
            frames.append(encode({"v": VERSION, "id": f"feed.{self._ids}", "type": "vehicle.position",
                                  "body": position}))
        replies = self.service.handle(frames, [self.caller] * len(frames)) if frames else []
        for reply in replies:
            code = reply_code(reply)
            if code != "OK":
                self.rejected[code] += 1
        self.read += len(frames)
