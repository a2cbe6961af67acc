"""Emergency corridors on the embedded city: open, update, cross, reroute, expire, close, never unsafe."""

import dataclasses
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pilotage.core import InvalidInputError, RoadNetwork
from pilotage.core.errors import ConflictError
from pilotage.core.signals import SignalPlans
from pilotage.signal_priority import CorridorConfig, CorridorEngine, PriorityEngine, PriorityRequest

from .corridor_cases import ACROSS, at, violations


@pytest.fixture(scope="module")
def plans(city_plans: SignalPlans) -> SignalPlans:
    return city_plans


def test_a_corridor_routes_at_emergency_speeds_and_holds_each_crossing_through_the_eta(
        corridors: CorridorEngine) -> None:
    corridor = corridors.open("fire-1", *ACROSS)
    assert corridor.length_m > 5000 and len(corridor.crossings) >= 10
    assert corridor.travel_time_s == pytest.approx(corridors.travel_time_s[
        corridors.network.shortest_path(*ACROSS, weight=corridors.travel_time_s).edges].sum())
    planned = [c for c in corridor.crossings if c.state == "planned"]
    assert len(planned) >= 10
    assert all(c.state == "pending" and c.hold_until_s is not None and c.hold_until_s > 1240.0
               for c in corridor.crossings if c not in planned)
    for crossing in planned:
        assert crossing.approach_group is not None and crossing.exit_group is not None
        assert crossing.hold_until_s is not None
        assert crossing.green_from_s is not None and crossing.green_until_s is not None
        assert crossing.hold_until_s == pytest.approx(crossing.eta_s + 5.0)
        assert crossing.green_until_s >= crossing.hold_until_s - 1e-6
        assert crossing.green_from_s <= crossing.eta_s
        schedule = corridors.priority.schedule(crossing.intersection)
        group = corridors.priority.plans.plans[corridors.priority.plans.index_of(crossing.intersection)] \
            .group_names.index(crossing.approach_group)
        assert any(start <= crossing.eta_s <= end for start, end in schedule.intervals(group))
    assert [c.distance_m for c in corridor.crossings] == sorted(c.distance_m for c in corridor.crossings)
    assert violations(corridors) == []


def test_queue_clearance_comes_from_the_approach_length_and_headway(
        manual_clock: type, city: RoadNetwork, plans: SignalPlans) -> None:
    clock = manual_clock()
    config = CorridorConfig(queue_headway_s=3.0, queue_spacing_m=6.0, max_queue_m=60.0, margin_s=2.0)
    corridors = CorridorEngine(city, PriorityEngine(plans, clock), config)
    corridor = corridors.open("fire-1", *ACROSS)
    previous_m = 0.0
    for crossing in corridor.crossings:
        if crossing.state == "planned" and crossing.hold_from_s > clock.now_s:
            queue_m = min(60.0, crossing.distance_m - previous_m)
            assert crossing.hold_from_s == pytest.approx(crossing.eta_s - 3.0 * queue_m / 6.0 - 2.0)
        previous_m = crossing.distance_m


def test_bus_priority_is_suspended_on_the_corridors_intersections(corridors: CorridorEngine) -> None:
    corridor = corridors.open("fire-1", *ACROSS)
    crossing = next(c for c in corridor.crossings if c.state == "planned")
    assert crossing.approach_group is not None
    bus = PriorityRequest("bus-1", crossing.intersection, crossing.approach_group, eta_s=20.0, lateness_s=300.0)
    (decision,) = corridors.priority.decide([bus])
    assert decision.reason == "the intersection is pre-empted by an emergency corridor"


def test_intersections_beyond_reach_keep_their_plan_and_bus_priority(city: RoadNetwork, plans: SignalPlans,
                                                                      manual_clock: type) -> None:
    ahead = CorridorEngine(city, PriorityEngine(plans, manual_clock(1000.0))).open("fire-1", *ACROSS)
    pending = next(c for c in ahead.crossings if c.state == "pending")
    assert pending.approach_group is not None
    corridors = CorridorEngine(city, PriorityEngine(plans, manual_clock(1000.0)))
    # A late bus whose green has to change: the plan now holds its grant.
    for eta_s in (30.0, 45.0, 60.0, 75.0):
        bus = PriorityRequest("bus-1", pending.intersection, pending.approach_group, eta_s=eta_s, lateness_s=300.0)
        (granted,) = corridors.priority.decide([bus])
        if granted.strategy != "already_green":
            break
    assert granted.decision == "granted" and granted.strategy != "already_green"
    before = corridors.priority.plan_ahead(pending.intersection)
    corridors.open("fire-1", *ACROSS)
    assert corridors.priority.plan_ahead(pending.intersection) == before
    (again,) = corridors.priority.decide([bus])
    assert again.reason != "the intersection is pre-empted by an emergency corridor"


def test_updates_move_the_holds_and_hand_back_the_intersections_passed(city: RoadNetwork, clock: Any,
                                                                      corridors: CorridorEngine) -> None:
    corridor = corridors.open("fire-1", *ACROSS)
    third = corridor.crossings[2]
    distance_m = np.cumsum(np.r_[0.0, city.length_m[corridor.nodes[:-1] * 0 + city.shortest_path(
        *ACROSS, weight=corridors.travel_time_s).edges]])
    node = int(np.searchsorted(distance_m, third.distance_m)) + 1
    clock.now_s += 25.0
    moved = corridors.update("fire-1", *at(city, int(corridor.nodes[node])))
    assert [c.state for c in moved.crossings[:3]] == ["passed"] * 3
    assert all(c.hold_from_s is None for c in moved.crossings[:3])
    assert moved.position_m > third.distance_m
    ahead = [(before, after) for before, after in zip(corridor.crossings[3:], moved.crossings[3:], strict=True)
             if after.state == "planned"]
    assert ahead
    for before, after in ahead:
        # The vehicle is later than first thought: each ETA moves by the same delay.
        assert after.eta_s - before.eta_s == pytest.approx(ahead[0][1].eta_s - ahead[0][0].eta_s)
    assert violations(corridors) == []


def test_a_vehicle_off_its_route_gets_a_new_one(city: RoadNetwork, clock: Any, corridors: CorridorEngine) -> None:
    corridor = corridors.open("fire-1", *ACROSS)
    on_route = set(corridor.nodes.tolist())
    candidates = [n for n in np.argsort(np.hypot(city.node_lon - city.node_lon[ACROSS[0]],
                                                 city.node_lat - city.node_lat[ACROSS[0]])).tolist()
                  if n not in on_route][5:]
    far = candidates[0]
    clock.now_s += 10.0
    moved = corridors.update("fire-1", *at(city, far))
    assert moved.reroutes == 1
    assert moved.nodes[0] == far and moved.nodes[-1] == ACROSS[1]
    assert violations(corridors) == []


def test_a_corridor_not_updated_expires_and_hands_every_intersection_back(clock: Any,
                                                                         corridors: CorridorEngine) -> None:
    corridors.open("fire-1", *ACROSS)
    clock.now_s += 30.0
    assert corridors.advance() == {}
    clock.now_s += 0.5
    ended = corridors.advance()
    assert list(ended) == ["fire-1"] and corridors.incidents == ()
    assert all(exit.transition != "out_of_step" for exit in ended["fire-1"])
    assert violations(corridors) == []


def test_close_brings_each_intersection_back_to_its_coordinated_plan(clock: Any,
                                                                    corridors: CorridorEngine) -> None:
    corridors.open("fire-1", *ACROSS)
    clock.now_s += 15.0
    corridors.advance()
    corridor = corridors.corridor("fire-1")
    assert any(c.state == "pending" for c in corridor.crossings)
    exits = corridors.close("fire-1")
    # Only the intersections pre-empted are handed back; those still pending were never touched.
    assert {e.intersection for e in exits} == {c.intersection for c in corridor.crossings if c.state == "planned"}
    plans = corridors.priority.plans
    for exit in exits:
        assert exit.in_step_from_s is not None
        k = plans.index_of(exit.intersection)
        for stage, start, _ in corridors.priority.plan_ahead(exit.intersection):
            if start >= exit.in_step_from_s - 1e-6:
                late = (start - plans.offset_s[k] - plans.stage_offset_s[k, stage]) % plans.cycle_s[k]
                assert min(late, plans.cycle_s[k] - late) < 1e-3
    with pytest.raises(LookupError, match="no open corridor"):
        corridors.close("fire-1")
    assert violations(corridors) == []


def test_an_incident_has_one_corridor(corridors: CorridorEngine) -> None:
    corridors.open("fire-1", *ACROSS)
    with pytest.raises(ConflictError, match="already open"):
        corridors.open("fire-1", *ACROSS)
    with pytest.raises(ValueError, match="lon"):
        corridors.update("fire-1", 400.0, 49.6)


def test_the_corridor_opened_first_keeps_its_window_and_the_second_waits_for_it(
        city: RoadNetwork, corridors: CorridorEngine) -> None:
    # Two vehicles reach one crossroads at once on crossing approaches, each from its approach's tail.
    plans = corridors.priority.plans
    k = next(k for k in range(len(city.intersections)) if plans.n_stages[k] >= 3)
    approaches = city.intersections.approaches(k)
    plan = plans.plans[k]
    stage_of = {int(e): int(np.argmax(plan.stage_groups[:, g])) for g, e in enumerate(plan.group_edges) if e >= 0}
    a, b = next((a, b) for a in approaches for b in approaches if stage_of[int(a)] != stage_of[int(b)])
    node = city.intersections.signal_nodes(k)[0]
    exits = [int(city.indices[e]) for e in range(city.indptr[node], city.indptr[node + 1])]
    first = corridors.open("fire-1", int(city.edge_source[a]), exits[0])
    second = corridors.open("fire-2", int(city.edge_source[b]), exits[-1])
    mine = next(c for c in first.crossings if c.intersection == plan.id)
    theirs = next(c for c in second.crossings if c.intersection == plan.id)
    mine = next(c for c in corridors.corridor("fire-1").crossings if c.intersection == plan.id)
    assert mine.green_until_s is not None and mine.hold_until_s is not None and theirs.green_from_s is not None
    if mine.state == "planned" and theirs.state == "planned" and theirs.green_from_s < mine.green_until_s:
        pytest.fail("the second corridor's green overlaps the first's")
    assert mine.state == "planned" and mine.green_until_s >= mine.hold_until_s - 1e-6
    assert theirs.state == "planned" and "moved" in theirs.reason
    assert violations(corridors) == []


@given(data=st.data())
def test_corridors_never_break_a_safety_rule(
        manual_clock: type, city: RoadNetwork, plans: SignalPlans, data: st.DataObject) -> None:
    """Random corridors, positions on and off their routes, waits and closes: every plan of the
    city passes the safety monitor after every step."""
    clock = manual_clock(data.draw(st.floats(0.0, 3600.0), label="start_s"))
    corridors = CorridorEngine(city, PriorityEngine(plans, clock))
    nodes = st.integers(0, city.n_nodes - 1)
    for step in range(data.draw(st.integers(1, 6), label="steps")):
        action = data.draw(st.sampled_from(["open", "update", "update", "wait", "close"]))
        open_ones = corridors.incidents
        if action == "open" or not open_ones:
            origin, destination = data.draw(nodes), data.draw(nodes)
            if origin != destination:
                corridors.open(f"incident-{step}", origin, destination)
        elif action == "update":
            incident = data.draw(st.sampled_from(open_ones))
            route = corridors.corridor(incident).nodes
            node = int(route[data.draw(st.integers(0, route.size - 1))])
            east_m, north_m = data.draw(st.floats(-150.0, 150.0)), data.draw(st.floats(-150.0, 150.0))
            lon = float(city.node_lon[node]) + east_m / (111_195.0 * np.cos(np.radians(city.node_lat[node])))
            lat = float(city.node_lat[node]) + north_m / 111_195.0
            clock.now_s += data.draw(st.floats(0.0, 20.0))
            corridors.advance()
            if incident in corridors.incidents:
                try:
                    corridors.update(incident, lon, lat)
                except InvalidInputError as error:
                    # Farther than the vehicle could have driven since its last position: refused.
                    assert error.field == "position"
        elif action == "wait":
            clock.now_s += data.draw(st.floats(0.0, 45.0))
            corridors.advance()
        else:
            corridors.close(data.draw(st.sampled_from(open_ones)))
        assert violations(corridors) == []


def test_a_corridor_on_the_route_its_navigation_chose(city: RoadNetwork, corridors: CorridorEngine) -> None:
    fastest = corridors.network.shortest_path(*ACROSS, weight=corridors.travel_time_s)
    # The shortest route by length is another way across: the corridor takes it, and holds its crossings.
    other = city.shortest_path(*ACROSS, weight="length_m")
    assert other.nodes.tolist() != fastest.nodes.tolist()
    corridor = corridors.open("fire-1", *ACROSS, route=other.nodes.tolist())
    assert corridor.nodes.tolist() == other.nodes.tolist()
    assert corridor.length_m == pytest.approx(other.length_m)
    assert [c.intersection for c in corridor.crossings] == city.intersections.ids[other.intersections].tolist()
    assert violations(corridors) == []
    for route, message in ((other.nodes[1:], "from the origin"), (other.nodes[::-1], "from the origin"),
                           (np.concatenate((other.nodes[:1], other.nodes[2:])), "no edge goes")):
        with pytest.raises(InvalidInputError, match=message) as error:
            corridors.open("fire-2", *ACROSS, route=route.tolist())
        assert error.value.field == "route"


def test_a_movement_names_its_group_more_precisely_than_the_approach(city: RoadNetwork, plans: SignalPlans,
                                                                     clock: Any) -> None:
    route = city.shortest_path(*ACROSS)
    k = int(route.intersections[1])
    position = int(route.intersection_positions[1])
    plan_index = plans.index_of(int(city.intersections.ids[k]))
    plan = plans.plans[plan_index]
    turn = (int(route.edges[position - 1]), int(route.edges[position]))
    by_approach = CorridorEngine(city, PriorityEngine(plans, clock)).open("fire-1", *ACROSS).crossings[1]
    other_group = next(g for g, name in enumerate(plan.group_names) if name != by_approach.approach_group
                       and plan.group_kind[g] == 0)
    moved = dataclasses.replace(plan, movements=np.array([[*turn, other_group]]))
    with_movements = SignalPlans([moved if i == plan_index else p for i, p in enumerate(plans.plans)])
    crossing = CorridorEngine(city, PriorityEngine(with_movements, clock)).open("fire-1", *ACROSS).crossings[1]
    assert crossing.approach_group == plan.group_names[other_group]
