"""Pre-emption of one intersection: the kernel against its plain-Python reference (naive.py), holds
in the plan, exit transitions back in step, and the monitor's verdict."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pilotage.core.safety import check_schedule
from pilotage.core.signals import IntersectionPlan, SignalPlans, interstage_s
from pilotage.signal_priority import EXIT_TRANSITIONS, Hold, PriorityEngine, PriorityRequest, _kernels
from pilotage.signal_priority.engine import _WAYS
from tests.signal_plans import crossroads, intersections

from .naive import Preempting


@pytest.fixture(scope="module")
def plans(city_plans: SignalPlans) -> SignalPlans:
    return city_plans


def assert_in_step(engine: PriorityEngine, plans: SignalPlans, intersection: int | str, from_s: float) -> None:
    """Every stage from ``from_s`` on starts on the coordinated plan: offset + its place in the cycle."""
    k = plans.index_of(intersection)
    for stage, start, _ in engine.plan_ahead(intersection):
        if start >= from_s - 1e-6:
            late = _kernels._in_step_error(k, start, stage, plans.cycle_s, plans.offset_s, plans.stage_offset_s)
            assert min(late, plans.cycle_s[k] - late) < 1e-3, (stage, start)


def test_the_kernels_interstage_is_the_models(plans: SignalPlans) -> None:
    for k, plan in enumerate(plans.plans):
        for a in range(plan.n_stages):
            for b in range(plan.n_stages):
                expected = interstage_s(plan.intergreen_s, plan.stage_groups[a], plan.stage_groups[b]) if a != b else 0
                assert _kernels._interstage(k, a, b, plans.n_groups, plans.stage_groups,
                                            plans.intergreen_s) == pytest.approx(expected)


def test_a_hold_gives_the_group_green_through_its_window_and_the_plan_comes_back_in_step(
        manual_clock: type, plans: SignalPlans) -> None:
    clock = manual_clock()
    engine = PriorityEngine(plans, clock)
    plan = plans.plans[100]
    done = engine.preempt(plan.id, [Hold((plan.group_names[1],), 1040.0, 1070.0)])
    assert done.refused == ""
    (green_from,), (green_until,) = done.green_from_s, done.green_until_s
    assert green_from is not None and green_until is not None
    assert green_from <= 1040.0 and green_until >= 1070.0
    schedule = engine.schedule(plan.id)
    greens = schedule.intervals(1)
    assert any(start <= 1040.0 and end >= 1070.0 for start, end in greens)
    assert check_schedule(plan, schedule) == []
    assert done.transition in ("short_way", "long_way", "in_step")
    assert done.in_step_from_s is not None
    assert_in_step(engine, plans, plan.id, done.in_step_from_s)


def test_bus_priority_is_suspended_until_the_plan_is_back_in_step(manual_clock: type, plans: SignalPlans) -> None:
    clock = manual_clock()
    engine = PriorityEngine(plans, clock)
    plan = plans.plans[100]
    done = engine.preempt(plan.id, [Hold((plan.group_names[0],), 1030.0, 1060.0)])
    bus = PriorityRequest("bus-1", plan.id, plan.group_names[1], eta_s=30.0, lateness_s=300.0)
    (decision,) = engine.decide([bus])
    assert (decision.decision, decision.reason) == ("denied", "the intersection is pre-empted by an emergency corridor")
    assert done.in_step_from_s is not None
    clock.now_s = done.in_step_from_s + 1.0
    (decision,) = engine.decide([bus])
    assert decision.reason != "the intersection is pre-empted by an emergency corridor"


def test_dwell_holds_the_last_stage_until_the_next_ones_coordinated_start(
        manual_clock: type, plans: SignalPlans) -> None:
    engine = PriorityEngine(plans, manual_clock())
    plan = plans.plans[3]
    done = engine.preempt(plan.id, [Hold((plan.group_names[0],), 1010.0, 1020.0)], exit_transition="dwell")
    assert done.refused == "" and done.transition in ("dwell", "in_step", "short_way", "long_way")
    assert done.in_step_from_s is not None
    assert_in_step(engine, plans, plan.id, done.in_step_from_s)
    assert check_schedule(plan, engine.schedule(plan.id)) == []


def test_bad_holds_are_refused_with_the_field(manual_clock: type, plans: SignalPlans) -> None:
    engine = PriorityEngine(plans, manual_clock())
    plan = plans.plans[100]
    with pytest.raises(ValueError, match="no stage serves"):
        engine.preempt(plan.id, [Hold(plan.group_names[:2], 1030.0, 1060.0)])
    with pytest.raises(ValueError, match="hold_until_s"):
        engine.preempt(plan.id, [Hold(plan.group_names[:1], 1030.0, 1020.0)])
    with pytest.raises(ValueError, match="exit_transition"):
        engine.preempt(plan.id, [], exit_transition="sideways")
    with pytest.raises(LookupError, match="no signal group"):
        engine.preempt(plan.id, [Hold(("from-nowhere",), 1030.0, 1060.0)])


holds = st.lists(st.tuples(st.floats(-20.0, 200.0), st.floats(0.0, 60.0), st.integers(0, 8)), max_size=3)


@given(k=st.integers(0, 199), start_s=st.floats(0.0, 3600.0), first=holds, second=holds,
       step_s=st.floats(0.0, 90.0), way=st.sampled_from(["best_way", "dwell"]))
def test_preemption_is_always_safe(
        manual_clock: type, plans: SignalPlans, *, k: int, start_s: float, first: list, second: list,
                                   step_s: float, way: str) -> None:
    """Holds anywhere, re-planned later with others, then released: every plan passes the monitor,
    every hold given covers its window's end, and a plan back in step stays on its offset."""
    clock = manual_clock(start_s)
    engine = PriorityEngine(plans, clock)
    plan = plans.plans[k]
    vehicle_groups = [g for g in range(plan.n_groups) if plan.group_kind[g] == 0]
    for chosen in (first, second, []):
        asked = [Hold((plan.group_names[vehicle_groups[g % len(vehicle_groups)]],), clock.now_s + ahead,
                      clock.now_s + ahead + length) for ahead, length, g in chosen]
        done = engine.preempt(plan.id, asked, exit_transition=way)
        assert done.refused == ""
        assert done.transition in EXIT_TRANSITIONS
        assert check_schedule(plan, engine.schedule(plan.id)) == []
        for hold, until in zip(asked, done.green_until_s, strict=True):
            assert until is None or until >= hold.hold_until_s - 1e-6
        if done.in_step_from_s is not None:
            assert_in_step(engine, plans, plan.id, done.in_step_from_s)
        clock.now_s += step_s


def engine_entries(engine: PriorityEngine, k: int) -> list[list]:
    return [[int(engine._stage[k, i]), float(engine._start_s[k, i]), float(engine._end_s[k, i])]
            for i in range(int(engine._n[k]))]


def compare(plan: IntersectionPlan, now_s: float, holds: list[tuple[list[int], float, float]], way: str) -> None:
    """The engine's pre-emption and the reference's, from the same plan: the same entries and answers."""
    engine = PriorityEngine(SignalPlans([plan]), lambda: now_s)
    stages = [engine.hold_stage(plan.id, [plan.group_names[g] for g in groups]) for groups, _, _ in holds]
    reference = Preempting(plan, engine_entries(engine, 0), engine.config.plan_entries)
    until_s = max(now_s + engine.config.horizon_s, max((h[2] for h in holds), default=now_s) + 2 * plan.max_cycle_s)
    transition, in_step, greens = reference.preempt(
        now_s, [(groups, stage, start, until) for (groups, start, until), stage in zip(holds, stages, strict=True)],
        _WAYS[way].tolist(), until_s)
    done = engine.preempt(plan.id, [Hold(tuple(plan.group_names[g] for g in groups), start, until)
                                    for groups, start, until in holds], exit_transition=way)
    assert done.refused == ""
    assert done.transition == EXIT_TRANSITIONS[transition]
    assert (done.in_step_from_s is None) == math.isnan(in_step)
    if done.in_step_from_s is not None:
        assert done.in_step_from_s == pytest.approx(in_step, abs=1e-6)
    for (green_from, green_until), got_from, got_until in zip(greens, done.green_from_s, done.green_until_s,
                                                              strict=True):
        assert (got_from is None) == math.isnan(green_from)
        if got_from is not None:
            assert (got_from, got_until) == pytest.approx((green_from, green_until), abs=1e-6)
    got = engine_entries(engine, 0)
    assert [entry[0] for entry in got] == [entry[0] for entry in reference.entries]
    assert np.allclose([entry[1:] for entry in got], [entry[1:] for entry in reference.entries], atol=1e-6)


@pytest.mark.parametrize("way", ["best_way", "dwell"])
@pytest.mark.parametrize(("now_s", "holds"), [
    (1000.0, [([0], 1030.0, 1060.0)]),                         # main road, held after the side road's green
    (1000.0, [([1, 2], 1010.0, 1030.0)]),                      # side road and its walk, soon
    (1200.0, [([1], 1240.0, 1270.0), ([0], 1250.0, 1280.0)]),  # two holds: the second after the first
    (1000.0, [([0], 1005.0, 1015.0), ([0], 1012.0, 1040.0)]),  # two holds of one stage: one green
    (1000.0, []),                                              # nothing to hold: back in step only
])
def test_the_kernel_plans_as_the_reference_on_fixed_cases(now_s: float, holds: list, way: str) -> None:
    compare(crossroads(), now_s, holds, way)


@given(plan=intersections(), now_s=st.floats(0.0, 7200.0), way=st.sampled_from(["best_way", "dwell"]),
       holds=st.lists(st.tuples(st.integers(0, 5), st.integers(0, 9), st.floats(-10.0, 200.0), st.floats(0.0, 80.0)),
                      max_size=3))
def test_the_kernel_plans_as_the_reference(plan: IntersectionPlan, now_s: float, way: str, holds: list) -> None:
    asked = []
    for stage, seed, ahead, length in holds:
        groups = np.flatnonzero(plan.stage_groups[stage % plan.n_stages]).tolist()
        chosen = [g for position, g in enumerate(groups) if (seed >> position) & 1] or groups[:1]
        asked.append((chosen, now_s + ahead, now_s + ahead + length))
    compare(plan, now_s, asked, way)
