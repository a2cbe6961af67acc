"""An emergency corridor across the embedded city (7.7 km, 25 signalised intersections), against
the bare A* route of the same vehicle in the same run.

``open`` is the whole path of ``corridor.open`` in the engine: the A* route at emergency speeds,
the crossings and their hold windows, and the pre-emption of the 21 intersections within reach,
each through the safety monitor. ``update`` is one position report 15 s later, 600 m on: the
vehicle matched on its route, the ETAs and holds moved, the intersections passed handed back, every
changed plan through the monitor. Each round starts from a fresh engine, so none is a no-op.
"""

from typing import Any

import pytest

from pilotage.core import RoadNetwork
from pilotage.core.default_plans import default_plans
from pilotage.core.signals import SignalPlans
from pilotage.signal_priority import CorridorEngine, PriorityEngine

GROUP = "emergency corridor, embedded city"
ACROSS = (737, 1675)


@pytest.fixture(scope="module")
def plans(city: RoadNetwork) -> SignalPlans:
    return SignalPlans(default_plans(city))


def fresh(city: RoadNetwork, plans: SignalPlans, manual_clock: type) -> tuple[CorridorEngine, Any]:
    """A corridor engine on a fresh priority engine, and the clock both read, at 3600 s."""
    clock = manual_clock(3600.0)
    return CorridorEngine(city, PriorityEngine(plans, clock)), clock


def test_bare_astar_route(benchmark, city: RoadNetwork, plans: SignalPlans, manual_clock: type) -> None:
    benchmark.group = GROUP
    benchmark.extra_info["reference"] = True
    corridors, _ = fresh(city, plans, manual_clock)
    costs = corridors.travel_time_s
    route = city.shortest_path(*ACROSS, weight=costs)
    benchmark.extra_info["length_m"] = route.length_m
    benchmark.extra_info["intersections"] = int(route.intersections.size)
    benchmark(city.shortest_path, *ACROSS, weight=costs)


def test_open(benchmark, city: RoadNetwork, plans: SignalPlans, manual_clock: type) -> None:
    benchmark.group = GROUP
    benchmark.name = "open"

    def setup() -> tuple[tuple[CorridorEngine], dict]:
        return (fresh(city, plans, manual_clock)[0],), {}

    corridor = fresh(city, plans, manual_clock)[0].open("fire-1", *ACROSS)
    benchmark.extra_info["planned"] = sum(c.state == "planned" for c in corridor.crossings)
    benchmark.pedantic(lambda corridors: corridors.open("fire-1", *ACROSS), setup=setup, rounds=50, iterations=1)


def test_update(benchmark, city: RoadNetwork, plans: SignalPlans, manual_clock: type) -> None:
    benchmark.group = GROUP
    benchmark.name = "update"

    def setup() -> tuple[tuple[CorridorEngine, float, float], dict]:
        corridors, clock = fresh(city, plans, manual_clock)
        corridor = corridors.open("fire-1", *ACROSS)
        clock.now_s += 15.0
        node = int(corridor.nodes[min(6, corridor.nodes.size - 1)])
        return (corridors, float(city.node_lon[node]), float(city.node_lat[node])), {}

    benchmark.pedantic(lambda corridors, lon, lat: corridors.update("fire-1", lon, lat), setup=setup, rounds=50,
                       iterations=1)
