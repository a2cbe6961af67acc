"""Priority from positions: a second of positions from 1,000 buses, against the decision kernel's
whole-city call in the same run.

The reference is the kernel deciding 180 requests spread over the embedded city's 200
intersections (a city's bus fleet asking at once). ``tracker, 1,000 positions`` is one second of
positions from 1,000 buses on 20 lines across the city, each 8 m further along its line than a
second before: locating them on their paths (one kernel call), the check-outs, and the requests
due (made, not decided). ``service, 1,000 vehicle.position frames`` is the whole path of the same
second through the service: decoding, validation, the tracker, the engine deciding the requests
made, and the replies. A position's cost is a thousandth of each: divide the ratio by 1,000.
"""

import json

import numpy as np
import pytest

from pilotage.adapters.service import Service
from pilotage.core import NoRouteError, RoadNetwork
from pilotage.core.default_plans import default_plans
from pilotage.core.signals import SignalPlans
from pilotage.core.transit import TransitPath, Trip
from pilotage.signal_priority import PriorityConfig, PriorityEngine
from pilotage.signal_priority.tracking import PositionReport, VehicleTracker

from .city_requests import NOW_S, city_requests

GROUP = "priority from positions, embedded city"
BUSES = 1000
LINES = 20
SPEED_M_S = 8.0


@pytest.fixture(scope="module")
def plans(city: RoadNetwork) -> SignalPlans:
    return SignalPlans(default_plans(city))


@pytest.fixture(scope="module")
def lines(city: RoadNetwork) -> list[Trip]:
    """20 lines between random signalised intersections at least 3 km apart, a stop every 400 m."""
    rng = np.random.default_rng(7)
    trips: list[Trip] = []
    ints = city.intersections
    while len(trips) < LINES:
        a, b = rng.choice(len(ints), size=2, replace=False)
        try:
            route = city.shortest_path(int(ints.signal_nodes(a)[0]), int(ints.signal_nodes(b)[0]))
        except NoRouteError:
            continue
        if route.length_m < 3000.0:
            continue
        stops_m = np.arange(150.0, route.length_m, 400.0)
        path = TransitPath.on(city, route.edges, stop_ids=tuple(f"s{i}" for i in range(stops_m.size)),
                              stop_at_m=stops_m)
        trips.append(Trip(f"line-{len(trips)}", f"line-{len(trips)}", "bus", path, NOW_S + stops_m / SPEED_M_S))
    return trips


class Fleet:
    """1,000 buses spread along the lines, moved one second at a time."""

    def __init__(self, city: RoadNetwork, lines: list[Trip]) -> None:
        rng = np.random.default_rng(11)
        self.city = city
        self.lines = lines
        self.line = rng.integers(0, len(lines), size=BUSES)
        self.along_m = np.array([rng.uniform(0.0, lines[k].path.length_m * 0.5) for k in self.line])
        self.time_s = NOW_S

    def second(self) -> list[PositionReport]:
        self.time_s += 1.0
        self.along_m += SPEED_M_S
        reports = []
        for i, k in enumerate(self.line.tolist()):
            path = self.lines[k].path
            along_m = min(float(self.along_m[i]), path.length_m)
            lon = float(np.interp(along_m, path.at_m, self.city.node_lon[path.nodes]))
            lat = float(np.interp(along_m, path.at_m, self.city.node_lat[path.nodes]))
            reports.append(PositionReport(f"bus-{i}", lon, lat, self.time_s, trip=self.lines[k].trip_id,
                                          speed_m_s=SPEED_M_S))
        return reports


def test_decision_kernel_whole_city(benchmark, plans: SignalPlans) -> None:
    benchmark.group = GROUP
    benchmark.name = "decision kernel, 180 requests over the city"
    benchmark.extra_info["reference"] = True
    engine = PriorityEngine(plans, lambda: NOW_S, PriorityConfig(bus_lateness_s=0.0))
    batch = engine._encode(city_requests(plans, 180, np.random.default_rng(3)), NOW_S)
    engine._decide(NOW_S, batch)
    benchmark(engine._decide, NOW_S, batch)


def test_tracker_one_second(benchmark, city: RoadNetwork, plans: SignalPlans, lines: list[Trip]) -> None:
    benchmark.group = GROUP
    benchmark.name = f"tracker, {BUSES:,} positions (one second of the fleet)"
    tracker = VehicleTracker(city, plans, lines)
    fleet = Fleet(city, lines)
    seconds = [fleet.second() for _ in range(60)]
    tracker.observe(seconds[0])
    rounds = iter(seconds[1:])
    steps = benchmark.pedantic(lambda: tracker.observe(next(rounds)), rounds=len(seconds) - 1, iterations=1)
    benchmark.extra_info["requests made in the last second"] = sum(getattr(s, "request", None) is not None
                                                                   for s in steps)
    benchmark.extra_info["positions per call"] = BUSES


def test_service_one_second(benchmark, city: RoadNetwork, plans: SignalPlans, lines: list[Trip]) -> None:
    benchmark.group = GROUP
    benchmark.name = f"service, {BUSES:,} vehicle.position frames (one second of the fleet)"
    clock = [NOW_S]
    engine = PriorityEngine(plans, lambda: clock[0], PriorityConfig(bus_lateness_s=0.0))
    service = Service(city, engine, tracker=VehicleTracker(city, plans, lines))
    fleet = Fleet(city, lines)

    def frames() -> list[bytes]:
        return [json.dumps({"v": 1, "id": f"p{i}", "type": "vehicle.position",
                            "body": {"vehicle": r.vehicle, "trip": r.trip, "lon": r.lon, "lat": r.lat,
                                     "time": r.time_s, "speed_m_s": r.speed_m_s}}).encode()
                for i, r in enumerate(fleet.second())]

    seconds = [frames() for _ in range(40)]
    service.handle(seconds[0])
    rounds = iter(seconds[1:])

    def second() -> None:
        clock[0] += 1.0
        service.handle(next(rounds))

    benchmark.pedantic(second, rounds=len(seconds) - 1, iterations=1)
    benchmark.extra_info["positions per call"] = BUSES
