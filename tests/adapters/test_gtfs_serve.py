"""`pilotage serve --gtfs FEED --vehicle-positions FILE --trip-updates FILE` in another process: a
GTFS-Realtime file of a bus's positions makes requests, a check-out and events, its trip's delay
comes out as TripUpdates, and a file that is no feed is counted while the server goes on."""

import contextlib
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from google.transit import gtfs_realtime_pb2

from pilotage.adapters.gtfs_realtime import vehicle_positions_feed
from pilotage.adapters.zeromq import Client, Subscriber
from pilotage.core import RoadNetwork
from pilotage.core.protocol import VehiclePosition
from pilotage.core.transit import Trip
from tests.adapters.conftest import Served


def _write(feed_file: Path, data: bytes) -> None:
    """Replace the feed file at once, as a feed publisher does (the server never reads half a file)."""
    partial = feed_file.with_suffix(".part")
    partial.write_bytes(data)
    os.replace(partial, feed_file)


def _position(city: RoadNetwork, line: Trip, along_m: float, time_s: float) -> VehiclePosition:
    path = line.path
    return VehiclePosition(vehicle="bus-7", trip=line.trip_id, time=time_s, speed_m_s=8.0,
                           lon=float(np.interp(along_m, path.at_m, city.node_lon[path.nodes])),
                           lat=float(np.interp(along_m, path.at_m, city.node_lat[path.nodes])))


def test_a_positions_feed_makes_requests_check_outs_events_and_trip_updates(
        city: RoadNetwork, city_line: Trip, city_feed: Path, tmp_path: Path,
        serving: Callable[..., contextlib.AbstractContextManager[Served]]) -> None:
    positions, updates = tmp_path / "positions.pb", tmp_path / "trip-updates.pb"
    path = city_line.path
    # The first crossing with no stop in the 300 m before its stop line.
    c = next(c for c in range(path.crossing_stop_line_m.size)
             if not ((path.stop_at_m > path.crossing_stop_line_m[c] - 300.0)
                     & (path.stop_at_m <= path.crossing_stop_line_m[c])).any())
    stop_line_m = float(path.crossing_stop_line_m[c])
    intersection = int(city.intersections.ids[path.crossing_intersection[c]])
    with serving(tmp_path / "state", tmp_path / "serve.log", "--gtfs", str(city_feed), "--vehicle-positions",
                 str(positions), "--trip-updates", str(updates)) as served, \
            Subscriber(served.events_endpoint, ("priority", "vehicle", "server")) as subscriber, \
            Client(served.endpoint, timeout_s=10.0) as client:
        # The first heartbeat shows the subscription is in place.
        assert subscriber.receive(timeout_s=10.0)[0] == "server"
        events: list[tuple[str, dict[str, Any]]] = []
        # A position a second (GTFS-Realtime times are whole seconds), from 150 m before the stop line
        # to 40 m past it; each feed has the latest position only, as an AVL system's does.
        for along_m in np.arange(stop_line_m - 150.0, stop_line_m + 40.0, 36.0):
            time.sleep(1.0 - time.time() % 1.0)
            now = time.time()
            _write(positions, vehicle_positions_feed([_position(city, city_line, along_m, now)], timestamp=now))
            deadline = time.monotonic() + 10.0
            while not any(topic == "vehicle" and body["time"] >= int(now) for topic, body in events):
                assert time.monotonic() < deadline, "the server did not read the feed"
                events.append(subscriber.receive(timeout_s=10.0))
        deadline = time.monotonic() + 10.0
        while not any(body.get("event") == "checked_out" for _, body in events):
            assert time.monotonic() < deadline, "no check-out"
            events.append(subscriber.receive(timeout_s=10.0))
        # A file that is no feed: counted, logged, and the server goes on.
        _write(positions, b"not a feed")
        time.sleep(0.5)
        assert "time" in client.request("ping")
        trip_updates = gtfs_realtime_pb2.FeedMessage()
        trip_updates.ParseFromString(updates.read_bytes())
    states = [body["event"] for topic, body in events if topic == "priority" and body["intersection"] == intersection]
    assert states[0] == "requested" and states[-1] == "checked_out"
    assert {body["tracked"]["trip"] for topic, body in events if topic == "vehicle"} == {city_line.trip_id}
    (update,) = trip_updates.entity
    assert update.trip_update.trip.trip_id == city_line.trip_id
    assert update.trip_update.vehicle.id == "bus-7"
    assert update.trip_update.stop_time_update[0].stop_id in path.stop_ids
    assert "not_a_feed" in served.log.read_text() or "not a GTFS-Realtime feed" in served.log.read_text()
    # The requests and check-outs made for the bus are audited as a client's, from the feed's client.
    audited = [json.loads(line) for line in (tmp_path / "state" / "audit.jsonl").read_text().splitlines()]
    made = [line for line in audited if line.get("type") in ("priority.request", "priority.checkout")]
    assert {line["type"] for line in made} == {"priority.request", "priority.checkout"}
    assert all(line["request"]["id"] == line["reply"]["id"] == "position:bus-7" for line in made)
    assert all(line["client"] == f"gtfs-realtime:{positions}" for line in made)
