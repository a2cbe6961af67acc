"""The priority engine: decisions on fixed cases, and safety and fairness on random intersections."""

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pilotage.adapters.sumo import read_signal_plans
from pilotage.core import InvalidInputError, UnknownEntityError
from pilotage.core.safety import GreenSchedule, Violation, check_schedule
from pilotage.core.signals import IntersectionPlan, SignalPlans
from pilotage.signal_priority import Hold, PriorityConfig, PriorityEngine, PriorityRequest
from pilotage.signal_priority import engine as engine_module
from tests.clock import ManualClock
from tests.signal_plans import crossroads, intersections


def engine_at(now_s: float, config: PriorityConfig | None = None) -> tuple[PriorityEngine, ManualClock]:
    clock = ManualClock(now_s)
    return PriorityEngine(SignalPlans([crossroads()]), clock, config), clock


def bus(group: str, eta_s: float, **fields: Any) -> PriorityRequest:
    return PriorityRequest(vehicle=str(fields.pop("vehicle", "bus-1")), intersection="x", group=group, eta_s=eta_s,
                           lateness_s=float(fields.pop("lateness_s", 120.0)), **fields)


def assert_safe(engine: PriorityEngine, intersection: str = "x") -> None:
    plan = engine.plans.plans[engine.plans.index_of(intersection)]
    assert check_schedule(plan, engine.schedule(intersection)) == []


# The base cycle, from t = 0 on: main 0-40, then 5 s, side and walk 45-75, then 10 s for the pedestrians
# to clear, main 85-125, and so on every 85 s.


def test_the_base_plan_is_aligned_on_the_offset() -> None:
    engine, _ = engine_at(1000.0)
    _, start, _ = engine.plan_ahead("x")[0]
    assert (start - 0.0) % 85.0 == pytest.approx(0.0) or (start - 45.0) % 85.0 == pytest.approx(0.0)
    assert_safe(engine)


def test_already_green() -> None:
    engine, _ = engine_at(85.0 * 10 + 1.0)  # main is green from 850 to 890
    (decision,) = engine.decide([bus("main", 10.0)])
    assert (decision.decision, decision.strategy) == ("granted", "already_green")
    assert decision.green_from == pytest.approx(850.0)
    assert decision.green_until == pytest.approx(890.0)


def test_an_extension_is_taken_from_the_stages_after_it_and_paid_back_next_cycle() -> None:
    engine, _ = engine_at(850.0 + 30.0)  # main green since 850, ends at 890; side 895-925; main again at 935
    (decision,) = engine.decide([bus("main", 15.0)])
    assert (decision.decision, decision.strategy) == ("granted", "extension")
    assert decision.green_until == pytest.approx(880.0 + 15.0 + 5.0)
    # Side gives the 10 s now and gets them back from main in the next cycle; every cycle still
    # starts on its offset (935, 1020).
    assert [(stage, start, end) for stage, start, end in engine.plan_ahead("x")[:5]] == [
        (0, 850.0, pytest.approx(900.0)), (1, pytest.approx(905.0), 925.0), (0, 935.0, pytest.approx(965.0)),
        (1, pytest.approx(970.0), 1010.0), (0, 1020.0, 1060.0)]
    assert_safe(engine)


def test_an_extension_over_its_cap_becomes_an_early_green_of_the_next_green() -> None:
    engine, _ = engine_at(880.0)
    (decision,) = engine.decide([bus("main", 25.0)])  # 20 s past main's end: over the 15-s cap
    assert (decision.decision, decision.strategy) == ("granted", "early_green")
    assert decision.green_from == pytest.approx(920.0)  # 15 s sooner than 935, side cut from 30 to 15 s
    assert_safe(engine)
    engine, _ = engine_at(880.0, PriorityConfig(bus_lateness_s=0.0, max_early_green_s=0.0))
    (decision,) = engine.decide([bus("main", 25.0)])
    assert (decision.decision, decision.reason) == ("denied", "the green would exceed the extension cap or its "
                                                              "stage's maximum")


def test_early_green_cuts_the_current_stage_towards_its_minimum() -> None:
    engine, _ = engine_at(852.0)  # main green since 850 (minimum 8 s), side due at 895
    (decision,) = engine.decide([bus("side", 20.0)])
    assert (decision.decision, decision.strategy) == ("granted", "early_green")
    assert decision.green_from == pytest.approx(895.0 - 15.0)  # the 15-s cap
    assert decision.green_until == pytest.approx(925.0)  # side's end does not move
    assert_safe(engine)


def test_the_queue_ahead_brings_the_green_sooner() -> None:
    engine, _ = engine_at(852.0, PriorityConfig(bus_lateness_s=0.0, max_early_green_s=60.0, cycle_share=0.5))
    (free,) = engine.decide([bus("side", 35.0)])  # arrives at 887: side from 887 would do
    engine, _ = engine_at(852.0, PriorityConfig(bus_lateness_s=0.0, max_early_green_s=60.0, cycle_share=0.5))
    (queued,) = engine.decide([bus("side", 35.0, queue_vehicles=2)])  # 2 s + 2 x 2 s to clear first
    assert free.green_from == pytest.approx(887.0)
    assert queued.green_from == pytest.approx(887.0 - 6.0)


def test_a_queue_observed_by_detectors_is_used_while_it_is_fresh() -> None:
    config = PriorityConfig(bus_lateness_s=0.0, max_early_green_s=60.0, cycle_share=0.5)
    engine, _ = engine_at(852.0, config)
    engine.observe_queue("x", "side", 2)
    (fresh,) = engine.decide([bus("side", 35.0)])  # arrives at 887; 2 s + 2 x 2 s to clear first
    assert fresh.green_from == pytest.approx(881.0)
    engine, clock = engine_at(852.0, config)
    engine.observe_queue("x", "side", 2)
    clock.now_s += 11.0  # older than queue_max_age_s: no longer used
    engine.observe_queue("x", "main", 9)
    (stale,) = engine.decide([bus("side", 24.0)])
    assert stale.green_from == pytest.approx(887.0)
    with pytest.raises(InvalidInputError):
        engine.observe_queue("x", "side", -1)


def test_conditional_priority_lateness_and_bunching() -> None:
    engine, _ = engine_at(852.0)
    (on_time,) = engine.decide([bus("side", 20.0, lateness_s=10.0)])
    assert (on_time.decision, on_time.reason) == ("denied", "not late enough for priority")
    (bunching,) = engine.decide([bus("side", 20.0, headway_ahead_s=120.0, headway_behind_s=480.0)])
    assert bunching.reason.startswith("closer to the vehicle ahead")
    (spread,) = engine.decide([bus("side", 20.0, headway_ahead_s=480.0, headway_behind_s=120.0)])
    assert spread.decision == "granted"


def test_the_budget_per_cycle_and_ranking_by_class_then_people_on_board() -> None:
    engine, _ = engine_at(852.0, PriorityConfig(bus_lateness_s=0.0, cycle_share=0.1))  # 8.5 s a cycle
    decisions = engine.decide([bus("side", 20.0, vehicle="empty", occupancy=2.0),
                               bus("side", 20.0, vehicle="full", occupancy=60.0),
                               bus("side", 20.0, vehicle="tram", vehicle_class="tram")])
    by_vehicle = {d.vehicle: d for d in decisions}
    assert by_vehicle["tram"].strategy == "early_green"
    assert by_vehicle["tram"].green_from == pytest.approx(895.0 - 8.5)
    assert by_vehicle["full"].reason == "the priority budget of this cycle at this intersection is spent"
    assert by_vehicle["empty"].reason == "the priority budget of this cycle at this intersection is spent"


def test_checkout_gives_the_extension_back() -> None:
    engine, clock = engine_at(880.0)
    (decision,) = engine.decide([bus("main", 15.0)])
    assert decision.strategy == "extension"
    clock.now_s = 893.0
    assert engine.checkout("bus-1", "x")
    stage, _, end = engine.plan_ahead("x")[0]
    assert (stage, end) == (0, pytest.approx(893.0))
    # Side, which paid the 10 s, gets the 7 s not used back now; the next cycle keeps its start.
    assert [start for _, start, _ in engine.plan_ahead("x")[1:5]] == [pytest.approx(898.0), 935.0,
                                                                       pytest.approx(970.0), 1020.0]
    assert_safe(engine)
    assert not engine.checkout("bus-1", "x")


def test_a_green_promised_to_one_vehicle_is_not_taken_back_for_another() -> None:
    engine, _ = engine_at(880.0, PriorityConfig(bus_lateness_s=0.0))
    decisions = engine.decide([bus("main", 15.0, vehicle="tram", vehicle_class="tram"), bus("side", 5.0)])
    assert [(d.vehicle, d.strategy) for d in decisions] == [("tram", "extension"), ("bus-1", "none")]
    assert decisions[1].reason == "the change would take back a green promised to another vehicle"
    assert engine.plan_ahead("x")[0][2] == pytest.approx(900.0)


def test_a_plan_the_monitor_refuses_is_not_applied(monkeypatch: pytest.MonkeyPatch,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    engine, _ = engine_at(852.0)
    before = engine.plan_ahead("x")
    refusal = Violation("intergreen", "side", 860.0, "starts 1.0 s after main ends, intergreen 5.0 s", "main")
    monkeypatch.setattr(engine_module, "check_schedule", lambda plan, schedule: [refusal])
    (decision,) = engine.decide([bus("side", 20.0)])
    assert (decision.decision, decision.unsafe) == ("denied", True)
    assert decision.reason == "unsafe: intergreen of side at 860.0 s"
    assert engine.plan_ahead("x") == before
    assert "refused by the safety monitor" in caplog.text
    assert not engine.checkout("bus-1", "x")


def test_bad_requests() -> None:
    engine, _ = engine_at(0.0)
    with pytest.raises(UnknownEntityError) as error:
        engine.decide([PriorityRequest("b", "nowhere", "main", 10.0)])
    assert error.value.field == "intersection"
    with pytest.raises(UnknownEntityError) as error:
        engine.decide([bus("left-turn", 10.0)])
    assert error.value.field == "group"
    for request, field in ((bus("main", -1.0), "eta_s"), (bus("main", math.nan), "eta_s"),
                           (bus("main", 10.0, vehicle_class="taxi"), "class"),
                           (bus("main", 1e6), "eta_s")):
        with pytest.raises(InvalidInputError) as invalid:
            engine.decide([request])
        assert invalid.value.field == field


requests = st.tuples(st.integers(0, 9), st.floats(0.0, 150.0), st.sampled_from(["bus", "tram", "emergency"]),
                     st.floats(-60.0, 600.0), st.floats(0.0, 100.0), st.sampled_from(["a", "b", "c"]),
                     st.floats(0.0, 20.0), st.one_of(st.none(), st.floats(0.0, 30.0)))


@given(intersections(), st.floats(0.0, 1e5),
       st.lists(st.tuples(st.floats(0.0, 40.0), st.lists(requests, max_size=4), st.booleans()), max_size=12))
def test_every_plan_is_safe_and_no_group_starves(plan: IntersectionPlan, start_s: float, steps: list) -> None:
    clock = ManualClock(start_s)
    engine = PriorityEngine(SignalPlans([plan]), clock, PriorityConfig(bus_lateness_s=0.0))
    for wait_s, batch, check_out in steps:
        clock.now_s += wait_s
        decisions = engine.decide([PriorityRequest(vehicle, "random", f"g{g % plan.n_groups}", eta, vehicle_class,
                                                   lateness, occupancy, window, queue)
                                   for g, eta, vehicle_class, lateness, occupancy, vehicle, window, queue in batch])
        assert not [d for d in decisions if d.unsafe]
        for d in decisions:
            if d.strategy == "already_green":
                assert d.green_from is not None and d.green_until is not None
                assert d.green_from <= d.green_until
        if check_out and batch:
            engine.checkout(batch[0][5], "random")
        # The whole plan kept, history and ahead, passes the monitor: no conflict, no cut minimum or
        # clearance, and every group green again within the maximum cycle.
        assert check_schedule(plan, engine.schedule("random")) == []
    # The frame: once the last grant's green (at most 150 s ahead), its cycle, the cycle paying it
    # back and the one giving back to the stages it cut are over, every stage starts on its offset.
    clock.now_s += 150.0 + 3.0 * plan.max_cycle_s
    assert check_schedule(plan, engine.schedule("random")) == []
    cycle_s = engine.plans.cycle_s[0]
    for stage, start, _ in engine.plan_ahead("random"):
        late = (start - plan.offset_s - engine.plans.stage_offset_s[0, stage]) % cycle_s
        assert min(late, cycle_s - late) < 1e-6


@pytest.fixture(scope="module")
def bologna_plans(shared_data: Callable[..., Path]) -> SignalPlans:
    """The city programs of Bologna's Andrea Costa scenario, as signal plans."""
    return SignalPlans(read_signal_plans(shared_data("sumo", "bologna-acosta", "acosta_tls.add.xml")))


@given(st.lists(st.tuples(st.floats(0.0, 20.0), st.integers(0, 6), st.integers(0, 7), st.floats(0.0, 120.0),
                          st.sampled_from(["bus", "tram", "emergency"])), min_size=1, max_size=30))
def test_the_city_programs_of_bologna_stay_safe(bologna_plans: SignalPlans, stream: list) -> None:
    plans = bologna_plans
    clock = ManualClock(7 * 3600.0)
    engine = PriorityEngine(plans, clock, PriorityConfig(bus_lateness_s=0.0))
    for wait_s, k, g, eta, vehicle_class in stream:
        clock.now_s += wait_s
        plan = plans.plans[k]
        (decision,) = engine.decide([PriorityRequest("bus", plan.id, plan.group_names[g % plan.n_groups], eta,
                                                     vehicle_class, lateness_s=120.0)])
        assert not decision.unsafe
    for plan in plans.plans:
        assert check_schedule(plan, engine.schedule(plan.id)) == []


def test_green_groups_are_those_of_the_stage_in_green_and_kept_through_an_interstage() -> None:
    engine, clock = engine_at(10.0)
    assert engine.green_groups().tolist() == [[True, False, False]]
    clock.now_s = 42.0
    assert engine.green_groups().tolist() == [[False, False, False]]
    clock.now_s = 45.0
    assert engine.green_groups().tolist() == [[False, True, True]]


class ShownGreens:
    """What an adapter showing :meth:`PriorityEngine.green_groups` every second would have shown."""

    def __init__(self, engine: PriorityEngine, clock: ManualClock) -> None:
        self.engine, self.clock, self.start_s = engine, clock, clock.now_s
        self.intervals: list[list[list[float]]] = [[] for _ in engine.plans.plans]
        self.previous = np.zeros_like(engine.green_groups())
        self.show()

    def show(self) -> None:
        green = self.engine.green_groups()
        for k, g in zip(*np.nonzero(green & ~self.previous), strict=True):
            self.intervals[k].append([g, self.clock.now_s, math.inf])
        for k, g in zip(*np.nonzero(self.previous & ~green), strict=True):
            next(i for i in reversed(self.intervals[k]) if i[0] == g)[2] = self.clock.now_s
        self.previous = green

    def wait(self, seconds: int) -> None:
        for _ in range(seconds):
            self.clock.now_s += 1.0
            self.show()

    def violations(self) -> list[Violation]:
        found = []
        for k, plan in enumerate(self.engine.plans.plans):
            shown = np.array(self.intervals[k]).reshape(-1, 3)
            found += check_schedule(plan, GreenSchedule(
                group=shown[:, 0].astype(np.int64), start_s=shown[:, 1], end_s=shown[:, 2],
                horizon_start_s=self.start_s, horizon_end_s=self.clock.now_s))
        return found


def test_a_transition_under_way_is_kept(bologna_plans: SignalPlans) -> None:
    """Bologna 273: a hold cuts stage {0+1+2, 6+7+8} at 24 s and skips stage {0+1+2} for {3+4+5};
    handed back at 26 s, in the interstage, the plan cannot bring back stage {0+1+2} at once as if
    0+1+2 had never ended: the signals showed it red since 24 s."""
    plans = bologna_plans
    clock = ManualClock(10.0)
    engine = PriorityEngine(plans, clock)
    shown = ShownGreens(engine, clock)
    engine.preempt("273", [Hold(("3+4+5",), 30.0, 40.0)])
    shown.wait(16)
    engine.preempt("273", [])
    assert [stage for stage, _, _ in engine.plan_ahead("273")[:2]] == [0, 2]
    shown.wait(300)
    assert shown.violations() == []


operations = st.tuples(st.integers(1, 8), st.sampled_from(["decide", "preempt", "preempt", "checkout"]),
                       st.integers(0, 6), st.integers(0, 7), st.floats(0.0, 120.0), st.floats(0.0, 40.0))


def operate(engine: PriorityEngine, plan: IntersectionPlan, drawn: tuple[str, int, float, float]) -> None:
    """One operation ``(operation, g, eta_s, hold_s)`` of a random stream at ``plan``: a late bus's
    request for group ``g`` there in ``eta_s``, its check-out, or an emergency hold of the stage
    serving ``g`` for ``hold_s``, from a quarter of ``eta_s`` on."""
    operation, g, eta_s, hold_s = drawn
    group = g % plan.n_groups
    if operation == "decide":
        engine.decide([PriorityRequest("bus", plan.id, plan.group_names[group], eta_s, "bus", lateness_s=120.0)])
    elif operation == "checkout":
        engine.checkout("bus", plan.id)
    else:
        stage = int(np.argmax(plan.stage_groups[:, group]))
        groups = tuple(plan.group_names[i] for i in np.flatnonzero(plan.stage_groups[stage]))
        now_s = float(engine.clock())
        engine.preempt(plan.id, [Hold(groups, now_s + eta_s / 4, now_s + eta_s / 4 + hold_s)])


@given(st.lists(operations, min_size=1, max_size=25))
def test_what_the_signals_showed_is_never_planned_again(bologna_plans: SignalPlans, stream: list) -> None:
    """An adapter showing :meth:`green_groups` every second, whatever the decisions, pre-emptions and
    check-outs in between, shows only what the monitor accepts: no plan rewrites a green or a
    transition the signals already showed (the programs time in whole seconds)."""
    plans = bologna_plans
    clock = ManualClock(7 * 3600.0)
    engine = PriorityEngine(plans, clock, PriorityConfig(bus_lateness_s=0.0))
    shown = ShownGreens(engine, clock)
    for wait_s, operation, k, g, eta_s, hold_s in stream:
        shown.wait(wait_s)
        operate(engine, plans.plans[k], (operation, g, eta_s, hold_s))
        shown.show()
    shown.wait(120)
    assert shown.violations() == []


class MonitorSpy:
    """The engine's safety monitor, watched: how often it is asked, and the last schedule it passed
    for each intersection (what the engine may publish there)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        self.passed: dict[int | str, GreenSchedule] = {}
        monkeypatch.setattr(engine_module, "check_schedule", self.check)

    def check(self, plan: IntersectionPlan, schedule: GreenSchedule) -> list[Violation]:
        self.calls += 1
        violations = check_schedule(plan, schedule)
        if not violations:
            self.passed[plan.id] = schedule
        return violations

    def unchecked(self, engine: PriorityEngine, intersection: int | str) -> list[tuple[int, float, float]]:
        """Read the plan ahead of ``intersection`` as ``signals.state`` does, and return the greens in
        it (group, start, end) that the last schedule the monitor passed there does not hold."""
        ahead = engine.plan_ahead(intersection)
        published = engine.schedule(intersection)
        checked = self.passed.get(intersection)
        held = set() if checked is None else set(zip(checked.group.tolist(), checked.start_s.tolist(),
                                                     checked.end_s.tolist(), strict=True))
        return [green for green in zip(published.group.tolist(), published.start_s.tolist(),
                                       published.end_s.tolist(), strict=True)
                if green[2] >= ahead[0][1] and green not in held]


def test_base_stages_laid_as_the_clock_moves_pass_the_monitor(city_plans: SignalPlans) -> None:
    """The engine on the embedded city, its clock 10 minutes ahead, no request: the base stages it
    lays are checked, and every plan read out is one the monitor passed."""
    clock = ManualClock(7 * 3600.0)
    with pytest.MonkeyPatch.context() as patch:
        monitor = MonitorSpy(patch)
        engine = PriorityEngine(city_plans, clock)
        assert monitor.calls == len(city_plans)
        clock.now_s += 600.0
        read = city_plans.ids[:20]
        assert [monitor.unchecked(engine, intersection) for intersection in read] == [[]] * len(read)
        assert monitor.calls > len(city_plans)
    assert engine.monitor.checks == monitor.calls
    assert (engine.monitor.refused, engine.monitor.fallbacks) == (0, 0)


@given(st.lists(operations, min_size=1, max_size=20), st.lists(st.integers(0, 199), min_size=1, max_size=8))
def test_nothing_is_published_unchecked(city_plans: SignalPlans, stream: list, read: list[int]) -> None:
    """Decisions, pre-emptions, check-outs and the clock moving, in any order, on the embedded city:
    after each, every plan read out is held by a schedule the monitor passed, and the engine's
    count of checks is the monitor's."""
    clock = ManualClock(7 * 3600.0)
    with pytest.MonkeyPatch.context() as patch:
        monitor = MonitorSpy(patch)
        engine = PriorityEngine(city_plans, clock, PriorityConfig(bus_lateness_s=0.0))
        for wait_s, operation, k, g, eta_s, hold_s in stream:
            clock.now_s += 20.0 * wait_s
            plan = city_plans.plans[(7 * k) % len(city_plans)]
            operate(engine, plan, (operation, g, eta_s, hold_s))
            for intersection in [plan.id, *(city_plans.ids[i % len(city_plans)] for i in read)]:
                assert monitor.unchecked(engine, intersection) == []
    assert engine.monitor.checks == monitor.calls


def test_base_stages_the_monitor_refuses_are_taken_back(caplog: pytest.LogCaptureFixture) -> None:
    """A fault planted in the last entry of the plan, as a planner's bug would leave it (the stage
    held 100 s past its end, so the other groups would wait past the maximum cycle once base stages
    follow it): when the clock brings the next lay, the monitor refuses it, the lay is taken back,
    and the intersection goes back to its coordinated plan by an exit transition that passes."""
    engine, clock = engine_at(1000.0)
    last = int(engine._n[0]) - 1
    engine._end_s[0, last] += 100.0
    clock.now_s += 200.0
    with pytest.MonkeyPatch.context() as patch:
        monitor = MonitorSpy(patch)
        assert monitor.unchecked(engine, "x") == []
    assert (engine.monitor.refused, engine.monitor.fallbacks) == (1, 1)
    assert "base stages refused" in caplog.text and "back to the coordinated plan" in caplog.text
    assert_safe(engine)
    clock.now_s += 3 * 120.0
    for stage, start, _ in engine.plan_ahead("x"):
        late = (start - engine.plans.stage_offset_s[0, stage]) % 85.0
        assert min(late, 85.0 - late) < 1e-6


def test_an_intersection_whose_way_back_is_refused_too_keeps_its_checked_plan(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """A monitor that refuses every plan reaching past 1600 s: the lays and the way back are refused,
    the plan checked before is kept (its last stage stays green), the event is logged and counted
    once however often the clock moves; once the monitor passes a lay, the plan goes on."""
    engine, clock = engine_at(1000.0)
    monkeypatch.setattr(engine_module, "check_schedule", lambda plan, schedule: check_schedule(plan, schedule) or (
        [Violation("max_cycle", "main", 1600.0, "planted")] if schedule.horizon_end_s > 1600.0 else []))
    for _ in range(5):
        clock.now_s += 30.0
        engine.advance()
    assert engine.monitor.fallbacks == 1
    assert caplog.text.count("its last stage stays green") == 1
    kept = engine.schedule("x")
    assert kept.horizon_end_s <= 1600.0 and kept.end_s[np.argmax(kept.start_s)] == math.inf
    assert caplog.text.count("refused by the safety monitor") == 2
    monkeypatch.setattr(engine_module, "check_schedule", check_schedule)
    clock.now_s += 1.0
    assert engine.plan_ahead("x")[-1][2] >= clock.now_s + engine.config.horizon_s
    assert engine.monitor.fallbacks == 1
    assert_safe(engine)
