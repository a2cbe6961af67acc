"""The safety monitor on the plans the priority engine keeps for the embedded city: the kernel that
counts violations (what every changed plan goes through) against the plain-Python listing of them,
its reference, in the same run. A round checks the plan kept (history and plan ahead) of each of
the city's 200 intersections once.
"""

import pytest

from pilotage.core import RoadNetwork
from pilotage.core.default_plans import default_plans
from pilotage.core.safety import GreenSchedule, check_schedule, list_violations
from pilotage.core.signals import IntersectionPlan, SignalPlans
from pilotage.signal_priority import PriorityEngine

GROUP = "safety monitor, 200 safe plans"


@pytest.fixture(scope="module")
def kept(city: RoadNetwork) -> list[tuple[IntersectionPlan, GreenSchedule]]:
    plans = SignalPlans(default_plans(city))
    engine = PriorityEngine(plans, lambda: 3600.0)
    return [(plan, engine.schedule(plan.id)) for plan in plans.plans]


def test_listing(benchmark, kept: list[tuple[IntersectionPlan, GreenSchedule]]) -> None:
    benchmark.group = GROUP
    benchmark.extra_info["reference"] = True
    assert not any(benchmark(lambda: [list_violations(plan, schedule) for plan, schedule in kept]))


def test_kernel(benchmark, kept: list[tuple[IntersectionPlan, GreenSchedule]]) -> None:
    benchmark.group = GROUP
    assert not any(benchmark(lambda: [check_schedule(plan, schedule) for plan, schedule in kept]))
