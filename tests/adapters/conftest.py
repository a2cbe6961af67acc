"""Fixtures of the adapter tests: a clock moved by hand, a service, a late bus, every request type over a client,
`pilotage serve` in another process."""

import contextlib
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from pilotage.adapters.service import Service
from pilotage.adapters.zeromq import Client
from pilotage.core import RoadNetwork
from pilotage.core import protocol as wire
from pilotage.core.signals import SignalPlans
from pilotage.core.transit import Trip
from pilotage.signal_priority import PriorityEngine
from pilotage.signal_priority.tracking import VehicleTracker
from tests.clock import ManualClock

#: A routing job of one pickup, solved in a fifth of a second.
TINY_JOB: dict[str, Any] = {
    "name": "tiny", "depots": [{"id": "depot", "location": {"lon": 6.1223, "lat": 49.5859}}],
    "vehicles": [{"id": "truck", "depot": "depot", "capacity": 10, "shift": ["07:00", "15:00"]}],
    "stops": [{"id": "P-1", "location": {"lon": 6.13, "lat": 49.61}, "service_s": 300}],
    "options": {"time_limit_s": 0.2}}


@pytest.fixture
def clock(manual_clock: type[ManualClock]) -> ManualClock:
    """A clock at 1000 s, moved by hand."""
    return manual_clock(1000.0)


@pytest.fixture
def make_service(city: RoadNetwork, city_plans: SignalPlans, clock: ManualClock,
                 city_line: Trip) -> Callable[..., Service]:
    """Makes a service with a fresh priority engine on the ``clock`` fixture (or the clock given),
    following buses on the embedded city's test line (``city_line``)."""

    def make(service_clock: Callable[[], float] = clock, **options: Any) -> Service:
        engine = PriorityEngine(city_plans, service_clock)
        options.setdefault("tracker", VehicleTracker(city, city_plans, [city_line]))
        return Service(city, engine, **options)

    return make


@pytest.fixture
def late_bus() -> Callable[..., dict[str, object]]:
    """Makes the body of a priority request for a bus 200 s late, due in 30 s at intersection -30248 of
    the embedded city, on its approach ``from--25024``: at 1000 s on the clock, it gets a green
    extension. Fields given replace the defaults."""

    def body(vehicle: str = "bus-1", **fields: object) -> dict[str, object]:
        return {"vehicle": vehicle, "intersection": -30248, "group": "from--25024", "eta_s": 30.0, "class": "bus",
                "lateness_s": 200.0, **fields}

    return body


@pytest.fixture(scope="session")
def ask_every_type() -> Callable[..., dict[str, dict[str, object]]]:
    """Sends one valid request of every type through a client (the server's clock at ``now_s``),
    and returns each reply body by type, every body checked against its schema."""

    def ask(client: Client, now_s: float) -> dict[str, dict[str, object]]:
        bodies: dict[str, dict[str, object]] = {
            "ping": {}, "health": {}, "network.info": {}, "signals.state": {"intersection": -30248},
            "signals.command": {"time": now_s, "intersections": [-30248]},
            "priority.request": {"vehicle": "bus-1", "intersection": -30248, "group": "from--25024", "eta_s": 30.0,
                                 "class": "bus", "lateness_s": 200.0},
            "priority.checkout": {"vehicle": "bus-1", "intersection": -30248}, "server.stats": {},
            "detectors": {"intersection": -30248, "queues": [{"group": "from--25024", "queue_vehicles": 3}]},
            # 500 m along the test line's trip (tests/conftest.py, city_line).
            "vehicle.position": {"vehicle": "bus-7", "trip": "line-1-trip-1", "lon": 6.131861, "lat": 49.617747,
                                 "time": now_s, "speed_m_s": 8.0},
            "corridor.open": {"incident": "fire-1", "origin": -30124, "destination": -16808},
            "corridor.update": {"incident": "fire-1", "position": {"lon": 6.1748, "lat": 49.6149}},
            "corridor.close": {"incident": "fire-1"},
            "parking.update": {"carpark": "sample-gare", "free": 240},
            "parking.availability": {"near": {"lon": 6.132, "lat": 49.6}, "radius_m": 500},
            "parking.reserve": {"carpark": "sample-gare", "from": now_s + 600, "until": now_s + 4200, "ref": "app-1"},
            "parking.guide": {"destination": {"lon": 6.132, "lat": 49.6}, "arrival": now_s + 600}}
        replies = {message_type: client.request(message_type, body) for message_type, body in bodies.items()}
        # Arrival and cancel take the reservation made.
        made = {"reservation": replies["parking.reserve"]["reservation"]}
        replies |= {message_type: client.request(message_type, made) for message_type in ("parking.arrive",
                                                                                          "parking.cancel")}
        # A routing job runs in a worker process: wait for it, as a planner's client would.
        replies["route.submit"] = client.request("route.submit", TINY_JOB)
        job = {"job": replies["route.submit"]["job"]}
        deadline = time.monotonic() + 60.0
        while client.request("route.status", job)["state"] not in ("done", "failed") and time.monotonic() < deadline:
            time.sleep(0.1)
        replies["route.status"] = client.request("route.status", job)
        replies["route.result"] = client.request("route.result", job)
        assert set(replies) == set(wire.MESSAGES)
        for message_type, reply in replies.items():
            msgspec.convert(reply, wire.MESSAGES[message_type].reply)
        return replies

    return ask


class Served:
    """A `pilotage serve` process, its endpoints, and its log file."""

    def __init__(self, process: subprocess.Popen, log: Path, endpoint: str, events_endpoint: str) -> None:
        self.process, self.log, self.endpoint, self.events_endpoint = process, log, endpoint, events_endpoint


@pytest.fixture
def serving(cache_dir: Path) -> Callable[..., contextlib.AbstractContextManager[Served]]:
    """Starts `pilotage serve` in another process, on ports the system picks, ready to answer:
    ``with serving(state_dir, log, *flags) as served``, the flags added to the command line. The
    process is killed at the end of the block if it still runs."""

    @contextlib.contextmanager
    def run(state_dir: Path, log: Path, *flags: str) -> Iterator[Served]:
        environment = os.environ | {"PILOTAGE_CACHE_DIR": str(cache_dir), "PILOTAGE_STATE_DIR": str(state_dir)}
        with log.open("w") as stderr:
            process = subprocess.Popen([sys.executable, "-m", "pilotage", "serve", "--bind", "tcp://127.0.0.1:*",
                                        "--pub", "tcp://127.0.0.1:*", *flags], stderr=stderr, env=environment)
        try:
            deadline = time.monotonic() + 300
            while not (ready := re.search(r"serving requests on (\S+), events on ([^\s,]+)", log.read_text())):
                assert process.poll() is None, log.read_text()
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
            yield Served(process, log, ready.group(1), ready.group(2))
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()

    return run
