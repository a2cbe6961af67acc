"""Actuated plans (``PriorityEngine.actuate``): gap-out at the minimum, extension to the maximum
within the passage time, and every plan the actuation makes passes the safety monitor."""

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pilotage.core import InvalidInputError, UnknownEntityError
from pilotage.core.safety import check_schedule
from pilotage.core.signals import IntersectionPlan, SignalPlans
from pilotage.signal_priority import PriorityEngine, PriorityRequest
from tests.clock import ManualClock
from tests.signal_plans import crossroads, intersections

PASSAGE_S = 3.0


def _actuated(plan: IntersectionPlan, *, keeps_cycle: bool = True) -> IntersectionPlan:
    return dataclasses.replace(plan, passage_s=PASSAGE_S, keeps_cycle=keeps_cycle)


def _engine(plan: IntersectionPlan, clock: ManualClock, *, keeps_cycle: bool = True) -> PriorityEngine:
    return PriorityEngine(SignalPlans([_actuated(plan, keeps_cycle=keeps_cycle)]), clock)


def test_a_stage_with_no_vehicle_gaps_out_at_its_minimum() -> None:
    clock = ManualClock(0.0)
    engine = _engine(crossroads(), clock)
    assert engine.plan_ahead("x")[0] == (0, 0.0, 40.0)
    for now_s in range(0, 10):
        clock.now_s = float(now_s)
        engine.actuate({"x": {"main": 100.0}})
    stage, start_s, end_s = engine.plan_ahead("x")[0]
    assert (stage, start_s, end_s) == (0, 0.0, 8.0)  # main's minimum
    assert engine.actuations == 1


def test_vehicles_within_the_passage_time_extend_the_stage_up_to_its_maximum() -> None:
    clock = ManualClock(0.0)
    engine = _engine(crossroads(), clock)
    for now_s in range(0, 70):
        clock.now_s = float(now_s)
        engine.actuate({"x": {"main": 0.0}})
    assert engine.schedule("x").end_s[0] == pytest.approx(60.0)  # main's maximum, not its base 40 s


def test_the_stage_ends_a_passage_time_after_the_last_vehicle() -> None:
    clock = ManualClock(0.0)
    engine = _engine(crossroads(), clock)
    for now_s in range(0, 45):
        clock.now_s = float(now_s)
        engine.actuate({"x": {"main": 0.0 if now_s <= 41 else now_s - 41.0}})
    assert engine.plan_ahead("x")[0] == (0, 0.0, pytest.approx(41.0 + PASSAGE_S))


def test_a_free_running_plan_starts_the_next_stage_when_one_gaps_out() -> None:
    clock = ManualClock(0.0)
    free = _engine(crossroads(), clock, keeps_cycle=False)
    framed = _engine(crossroads(), clock)
    for now_s in range(0, 10):
        clock.now_s = float(now_s)
        free.actuate({"x": {"main": 100.0}})
        framed.actuate({"x": {"main": 100.0}})
    # Gapped out at 8 s, the side road gets its base 30 s from 13 s; in the cycle frame it gets
    # more, so that main starts again on its offset (85 s).
    assert free.plan_ahead("x")[1] == (1, 13.0, 43.0)
    assert framed.plan_ahead("x")[1][2] > 43.0


def test_a_stage_whose_ending_groups_have_no_detector_keeps_its_green() -> None:
    clock = ManualClock(0.0)
    engine = _engine(crossroads(), clock)
    clock.now_s = 20.0
    assert engine.actuate({"x": {"side": 50.0}}) == []
    assert engine.plan_ahead("x")[0] == (0, 0.0, 40.0)


def test_priority_promised_to_a_later_stage_outranks_actuation() -> None:
    clock = ManualClock(0.0)
    engine = _engine(crossroads(), clock)
    clock.now_s = 10.0
    decision, = engine.decide([PriorityRequest("bus", "x", "side", eta_s=20.0, lateness_s=300.0)])
    assert (decision.decision, decision.strategy) == ("granted", "early_green")
    planned = engine.plan_ahead("x")
    assert engine.actuate({"x": {"main": 0.0}}) == []
    assert engine.plan_ahead("x") == planned


def test_fixed_time_plans_and_bad_gaps_are_refused() -> None:
    clock = ManualClock(0.0)
    fixed = PriorityEngine(SignalPlans([crossroads()]), clock)
    with pytest.raises(InvalidInputError, match="expected an actuated plan"):
        fixed.actuate({"x": {"main": 0.0}})
    engine = _engine(crossroads(), clock)
    with pytest.raises(InvalidInputError, match="gap_s"):
        engine.actuate({"x": {"main": -1.0}})
    with pytest.raises(UnknownEntityError):
        engine.actuate({"x": {"bus lane": 0.0}})
    with pytest.raises(InvalidInputError, match="passage time"):
        dataclasses.replace(crossroads(), passage_s=0.0)


@settings(max_examples=60, deadline=None)
@given(plan=intersections(), data=st.data())
def test_every_plan_actuation_makes_passes_the_monitor(plan: IntersectionPlan, data: st.DataObject) -> None:
    clock = ManualClock(0.0)
    engine = _engine(plan, clock, keeps_cycle=data.draw(st.booleans()))
    detectors = data.draw(st.lists(st.sampled_from(plan.group_names), min_size=1, unique=True))
    gaps = {name: 100.0 for name in detectors}
    for step in range(int(3 * plan.max_cycle_s)):
        clock.now_s = float(step)
        for name in detectors:
            gaps[name] = 0.0 if data.draw(st.booleans()) else gaps[name] + 1.0
        engine.actuate({"random": gaps})
        assert check_schedule(engine.plans.plans[0], engine.schedule("random")) == []
