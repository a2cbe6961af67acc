"""Fixtures of the adapter tests: the embedded city's signal plans, a clock moved by hand, a service."""

from collections.abc import Callable

import pytest

from pilotage.adapters.service import Service
from pilotage.core import RoadNetwork
from pilotage.core.signals import SignalPlans
from pilotage.signal_priority import PriorityEngine


@pytest.fixture
def clock(manual_clock: type) -> Callable[[], float]:
    """A clock at 1000 s, moved by hand."""
    return manual_clock(1000.0)


@pytest.fixture
def make_service(city: RoadNetwork, city_plans: SignalPlans, clock: Callable[[], float]) -> Callable[..., Service]:
    """Makes a service with a fresh priority engine on the ``clock`` fixture (or the clock given)."""

    def make(service_clock: Callable[[], float] = clock, **options: object) -> Service:
        return Service(city, PriorityEngine(city_plans, service_clock), **options)

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
