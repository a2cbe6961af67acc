"""Fixtures of the signal-priority tests: a clock moved by hand, and a corridor engine on the
embedded city's plans on that clock."""

import pytest

from pilotage.core import RoadNetwork
from pilotage.core.signals import SignalPlans
from pilotage.signal_priority import CorridorEngine, PriorityEngine
from tests.clock import ManualClock


@pytest.fixture
def clock(manual_clock: type[ManualClock]) -> ManualClock:
    """A clock at 1000 s."""
    return manual_clock(1000.0)


@pytest.fixture
def corridors(city: RoadNetwork, city_plans: SignalPlans, clock: ManualClock) -> CorridorEngine:
    """A corridor engine on a fresh priority engine of the embedded city."""
    return CorridorEngine(city, PriorityEngine(city_plans, clock))
