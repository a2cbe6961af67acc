"""An engine takes over from the stages the lights show: nothing changes where its plan agrees with
them; elsewhere the lights' stage becomes the plan's, back to coordination by a checked exit
transition; bad input is refused whole."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pilotage.core.errors import InvalidInputError, UnknownEntityError
from pilotage.core.safety import check_schedule
from pilotage.core.signals import SignalPlans
from pilotage.signal_priority import PriorityEngine
from tests.clock import ManualClock

NOW_S = 1000.0


def engine_at(plans: SignalPlans, now_s: float = NOW_S) -> PriorityEngine:
    return PriorityEngine(plans, ManualClock(now_s))


def test_a_plan_that_agrees_with_the_lights_is_kept(city_plans: SignalPlans) -> None:
    engine = engine_at(city_plans)
    intersection = city_plans.ids[3]
    ahead = engine.plan_ahead(intersection)
    result = engine.take_over(intersection, ahead[:2])
    assert not result.taken_over and result.transition == "in_step" and not result.refused
    assert engine.plan_ahead(intersection) == ahead


def test_the_lights_stage_becomes_the_plans_and_the_plan_goes_back_in_step(city_plans: SignalPlans) -> None:
    engine = engine_at(city_plans)
    intersection = city_plans.ids[3]
    stage = engine.plan_ahead(intersection)[0][0]
    # The lights started this stage 7 s ago, which the engine's plan did not.
    result = engine.take_over(intersection, [(stage, NOW_S - 7.0, NOW_S + 20.0)])
    assert result.taken_over and not result.refused and result.in_step_from_s is not None
    first = engine.plan_ahead(intersection)[0]
    assert first[:2] == (stage, NOW_S - 7.0)
    k = city_plans.index_of(intersection)
    assert check_schedule(city_plans.plans[k], engine.schedule(intersection)) == []
    # Once in step, the plan is the coordinated one again.
    clock = engine.clock
    assert isinstance(clock, ManualClock)
    clock.now_s = result.in_step_from_s + 3 * float(city_plans.cycle_s[k]) + 5.0
    fresh = engine_at(city_plans, clock.now_s)
    taken, coordinated = engine.plan_ahead(intersection)[:4], fresh.plan_ahead(intersection)[:4]
    assert [entry[0] for entry in taken] == [entry[0] for entry in coordinated]
    assert [t for entry in taken for t in entry[1:]] == pytest.approx([t for entry in coordinated for t in entry[1:]])


def test_priority_there_ends_until_the_plan_is_back_in_step(city_plans: SignalPlans) -> None:
    engine = engine_at(city_plans)
    intersection = city_plans.ids[3]
    stage = engine.plan_ahead(intersection)[0][0]
    result = engine.take_over(intersection, [(stage, NOW_S - 7.0, NOW_S + 20.0)])
    k = city_plans.index_of(intersection)
    assert engine._preempted_until_s[k] == result.in_step_from_s


@given(index=st.integers(0, 199), stage=st.integers(0, 5), elapsed_s=st.floats(0.0, 150.0),
       green_s=st.floats(0.0, 150.0), interstage_s=st.floats(0.0, 10.0), with_next=st.booleans())
def test_a_take_over_is_safe_or_refused_and_starts_from_the_lights(
        city_plans: SignalPlans, *, index: int, stage: int, elapsed_s: float, green_s: float, interstage_s: float,
        with_next: bool) -> None:
    engine = engine_at(city_plans)
    k = index % len(city_plans)
    intersection = city_plans.ids[k]
    n_stages = int(city_plans.n_stages[k])
    stage %= n_stages
    start_s = NOW_S - elapsed_s
    shown = [(stage, start_s, start_s + green_s)]
    if with_next:
        after_s = start_s + green_s + interstage_s
        shown.append(((stage + 1) % n_stages, after_s, after_s + 20.0))
    before = engine.plan_ahead(intersection)
    result = engine.take_over(intersection, shown)
    assert check_schedule(city_plans.plans[k], engine.schedule(intersection)) == []
    if not result.taken_over:
        assert engine.plan_ahead(intersection) == before
        return
    # The plan runs the lights' stage in progress (or the one after their interstage), from its start.
    in_progress = shown[1] if with_next and shown[0][2] < NOW_S else shown[0]
    kept = next(state.entries for state in engine.unsaved() if state.intersection == intersection)
    assert any(tuple(entry[:2]) == in_progress[:2] for entry in kept.tolist())


@pytest.mark.parametrize(("shown", "field"), [
    ([], "plan"),
    ([(99, NOW_S - 5.0, NOW_S + 5.0)], "stage"),
    ([(0, NOW_S - 5.0, NOW_S + 5.0), (1, NOW_S - 20.0, NOW_S + 20.0)], "plan"),
    ([(0, NOW_S + 5.0, NOW_S + 25.0)], "plan"),
    ([(0, NOW_S - 5.0, NOW_S - 10.0)], "green_until"),
    ([(0, float("nan"), NOW_S)], "green_from"),
])
def test_bad_stages_are_refused_whole(city_plans: SignalPlans, shown: list, field: str) -> None:
    engine = engine_at(city_plans)
    intersection = city_plans.ids[3]
    before = engine.plan_ahead(intersection)
    with pytest.raises(InvalidInputError) as raised:
        engine.take_over(intersection, shown)
    assert raised.value.field == field
    assert engine.plan_ahead(intersection) == before


def test_an_unknown_intersection_is_refused(city_plans: SignalPlans) -> None:
    with pytest.raises(UnknownEntityError):
        engine_at(city_plans).take_over("nowhere", [(0, NOW_S - 5.0, NOW_S + 5.0)])
