"""The safety monitor must fail: one broken schedule per rule, each found with its group and time;
and its kernel must count exactly what its plain-Python listing finds."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pilotage.core import InvalidInputError, RoadNetwork
from pilotage.core.default_plans import default_plans
from pilotage.core.safety import GreenSchedule, Violation, check_schedule, count_violations, list_violations
from pilotage.core.signals import IntersectionPlan
from tests.signal_plans import crossroads


@pytest.fixture
def plan() -> IntersectionPlan:
    return crossroads()


def schedule(*greens: tuple[int, float, float], horizon: tuple[float, float] = (0.0, 100.0)) -> GreenSchedule:
    group, start, end = zip(*greens, strict=True) if greens else ((), (), ())
    return GreenSchedule(group=np.array(group), start_s=np.array(start), end_s=np.array(end),
                         horizon_start_s=horizon[0], horizon_end_s=horizon[1])


def rules(violations: list[Violation]) -> list[tuple[str, str, float]]:
    return [(v.rule, v.group, round(v.time_s, 3)) for v in violations]


# Two base cycles: main 0-40, side and walk 45-75 (walk clears by 85), main 85-125, side and walk 130-160.
SAFE = [(0, 0.0, 40.0), (1, 45.0, 75.0), (2, 45.0, 75.0), (0, 85.0, 125.0), (1, 130.0, 160.0),
        (2, 130.0, 160.0), (0, 170.0, math.inf)]


def test_a_safe_schedule_has_no_violation(plan: IntersectionPlan) -> None:
    assert check_schedule(plan, schedule(*SAFE, horizon=(0.0, 200.0))) == []


def test_conflicting_greens(plan: IntersectionPlan) -> None:
    found = rules(check_schedule(plan, schedule((0, 0.0, 40.0), (1, 30.0, 60.0), (2, 45.0, 60.0),
                                                (0, 70.0, math.inf))))
    assert ("conflicting_greens", "main", 30.0) in found


def test_green_under_its_minimum(plan: IntersectionPlan) -> None:
    found = rules(check_schedule(plan, schedule((0, 0.0, 40.0), (1, 45.0, 48.0), (2, 45.0, 60.0),
                                                (0, 70.0, math.inf))))
    assert found == [("min_green", "side", 48.0)]


def test_pedestrian_walk_cut(plan: IntersectionPlan) -> None:
    found = rules(check_schedule(plan, schedule((0, 0.0, 40.0), (1, 45.0, 60.0), (2, 45.0, 50.0),
                                                (0, 70.0, math.inf))))
    assert found == [("pedestrian_walk", "walk", 50.0)]


def test_intergreen_not_respected(plan: IntersectionPlan) -> None:
    found = rules(check_schedule(plan, schedule((0, 0.0, 40.0), (1, 42.0, 60.0), (2, 45.0, 60.0),
                                                (0, 75.0, math.inf))))
    assert found == [("intergreen", "side", 42.0)]


def test_pedestrian_clearance_cut(plan: IntersectionPlan) -> None:
    found = rules(check_schedule(plan, schedule((0, 0.0, 40.0), (1, 45.0, 60.0), (2, 45.0, 60.0),
                                                (0, 66.0, math.inf))))
    assert found == [("pedestrian_clearance", "main", 66.0)]
    (violation,) = check_schedule(plan, schedule((0, 0.0, 40.0), (1, 45.0, 60.0), (2, 45.0, 60.0),
                                                 (0, 66.0, math.inf)))
    assert violation.other == "walk"


def test_cycle_over_its_maximum(plan: IntersectionPlan) -> None:
    # Main keeps green for 150 s: side and walk wait from the horizon's start.
    found = rules(check_schedule(plan, schedule((0, 0.0, 150.0), (1, 155.0, 180.0), (2, 155.0, 180.0),
                                                horizon=(0.0, 200.0))))
    assert ("max_cycle", "side", 120.0) in found
    assert ("max_cycle", "walk", 120.0) in found
    # A group never served again before the horizon ends waits too.
    starved = rules(check_schedule(plan, schedule((0, 0.0, 40.0), (1, 45.0, 60.0), (2, 45.0, 60.0),
                                                  (0, 70.0, 195.0), horizon=(0.0, 200.0))))
    assert ("max_cycle", "side", 165.0) in starved


def test_every_violation_is_listed(plan: IntersectionPlan) -> None:
    broken = schedule((0, 0.0, 40.0), (1, 41.0, 43.0), (2, 41.0, 43.0), (0, 44.0, math.inf))
    found = {v.rule for v in check_schedule(plan, broken)}
    assert found == {"intergreen", "min_green", "pedestrian_walk", "pedestrian_clearance"}


def test_a_green_running_at_the_horizon_start_is_not_judged_on_its_minimum(plan: IntersectionPlan) -> None:
    assert check_schedule(plan, schedule((0, 10.0, 12.0), (1, 17.0, 40.0), (2, 17.0, 40.0),
                                         horizon=(10.0, 60.0))) == []


def test_touching_greens_of_one_group_are_one_green(plan: IntersectionPlan) -> None:
    assert check_schedule(plan, schedule((0, 0.0, 4.0), (0, 4.0, 40.0), *SAFE[1:], horizon=(0.0, 200.0))) == []


def test_malformed_schedules_are_refused(plan: IntersectionPlan) -> None:
    with pytest.raises(InvalidInputError):
        schedule((0, 10.0, 5.0))
    with pytest.raises(InvalidInputError):
        check_schedule(plan, schedule((3, 0.0, 5.0)))


@pytest.fixture(scope="module")
def city_plans(city: RoadNetwork) -> list[IntersectionPlan]:
    return default_plans(city)


def random_schedule(data: st.DataObject, n_groups: int) -> GreenSchedule:
    """Greens on a half-second grid, so that greens touch and gaps equal intergreens often."""
    half_seconds = st.integers(0, 600).map(lambda t: t / 2.0)
    greens = data.draw(st.lists(st.tuples(st.integers(0, n_groups - 1), half_seconds, st.integers(0, 160),
                                          st.booleans()), max_size=16))
    horizon_start = data.draw(half_seconds)
    horizon_end = horizon_start + data.draw(half_seconds)
    return GreenSchedule(group=np.array([g for g, _, _, _ in greens], dtype=np.int64),
                         start_s=np.array([start for _, start, _, _ in greens]),
                         end_s=np.array([math.inf if open_ended else start + length / 2.0
                                         for _, start, length, open_ended in greens]),
                         horizon_start_s=horizon_start, horizon_end_s=horizon_end)


@settings(max_examples=500)
@given(st.data())
def test_the_kernel_counts_what_the_listing_finds(data: st.DataObject) -> None:
    plan = crossroads()
    schedule_ = random_schedule(data, plan.n_groups)
    assert count_violations(plan, schedule_) == len(list_violations(plan, schedule_))


@settings(max_examples=300)
@given(st.data())
def test_the_kernel_counts_what_the_listing_finds_on_the_city_plans(city_plans: list[IntersectionPlan],
                                                                    data: st.DataObject) -> None:
    plan = city_plans[data.draw(st.integers(0, len(city_plans) - 1))]
    schedule_ = random_schedule(data, plan.n_groups)
    assert count_violations(plan, schedule_) == len(list_violations(plan, schedule_))


@pytest.mark.parametrize("greens", [
    SAFE,
    [(0, 0.0, 40.0), (1, 30.0, 60.0), (2, 45.0, 60.0), (0, 70.0, math.inf)],
    [(0, 0.0, 40.0), (1, 41.0, 43.0), (2, 41.0, 43.0), (0, 44.0, math.inf)],
    [(0, 0.0, 4.0), (0, 4.0, 40.0), *SAFE[1:]],
    [(0, 0.0, 150.0), (1, 155.0, 180.0), (2, 155.0, 180.0)],
    [],
])
def test_the_kernel_counts_what_the_listing_finds_on_fixed_cases(plan: IntersectionPlan,
                                                                 greens: list[tuple[int, float, float]]) -> None:
    for horizon in ((0.0, 200.0), (10.0, 60.0), (50.0, 50.0)):
        schedule_ = schedule(*greens, horizon=horizon)
        assert count_violations(plan, schedule_) == len(list_violations(plan, schedule_))
