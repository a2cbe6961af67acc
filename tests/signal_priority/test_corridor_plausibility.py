"""The corridors' safety rules against bad positions: a position farther than the vehicle could have
driven is refused, counted and changes nothing, and one corridor never holds more than
``max_held_intersections`` intersections, whatever positions come."""

import math
import re
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pilotage.core import InvalidInputError, RoadNetwork
from pilotage.core.errors import PilotageError
from pilotage.core.signals import SignalPlans
from pilotage.signal_priority import Corridor, CorridorConfig, CorridorEngine, PriorityEngine

from .corridor_cases import ACROSS, at, violations

EARTH_RADIUS_M = 6_371_008.8


def distance_m(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Great-circle distance between two (lon, lat) points: the rule's distance, computed apart."""
    (lon1, lat1), (lon2, lat2) = (map(math.radians, a)), (map(math.radians, b))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(math.sqrt(h))


def seen(corridor: Corridor) -> tuple[Any, ...]:
    """Everything a position can change in a corridor."""
    return (corridor.nodes.tolist(), corridor.position_m, corridor.updated_s, corridor.eta_s, corridor.crossings,
            corridor.reroutes)


def held(corridor: Corridor) -> set[int | str]:
    """The intersections the corridor holds (pre-empted for it) now."""
    return {c.intersection for c in corridor.crossings if c.state == "planned"}


def node_near(city: RoadNetwork, point: tuple[float, float], wanted_m: float, avoid: set[int]) -> int:
    """The node not in ``avoid`` whose distance from ``point`` is nearest ``wanted_m``."""
    scale = 111_195.0 * math.cos(math.radians(point[1]))
    far_m = np.hypot((city.node_lon - point[0]) * scale, (city.node_lat - point[1]) * 111_195.0)
    far_m[list(avoid)] = np.inf
    return int(np.argmin(np.abs(far_m - wanted_m)))


@given(data=st.data())
def test_spoofed_positions_are_refused_and_never_hold_more_than_the_bound(
        manual_clock: type, city: RoadNetwork, city_plans: SignalPlans, data: st.DataObject) -> None:
    """A corridor across the city, its vehicle first seen at the origin, then a stream of
    positions: jumps anywhere in the city's extent, or moves around the last position accepted up
    to a little beyond reach, at any time steps. Every position farther than 150 km/h for the time
    since the last accepted one (plus 50 m) is refused, counted and changes nothing; one nearer is
    never refused as implausible; the corridor never holds more than ``max_held_intersections``
    intersections, the nearest ahead, and every plan stays safe."""
    clock = manual_clock(data.draw(st.floats(0.0, 3600.0), label="start_s"))
    cap = data.draw(st.integers(1, 24), label="max_held_intersections")
    config = CorridorConfig(max_held_intersections=cap)
    corridors = CorridorEngine(city, PriorityEngine(city_plans, clock), config)
    corridors.open("fire-1", *ACROSS)
    last = at(city, ACROSS[0])
    corridors.update("fire-1", *last)
    last_s = clock.now_s
    lons = st.floats(float(city.node_lon.min()), float(city.node_lon.max()))
    lats = st.floats(float(city.node_lat.min()), float(city.node_lat.max()))
    for _ in range(data.draw(st.integers(1, 8), label="positions")):
        clock.now_s += data.draw(st.floats(0.0, 12.0), label="dt_s")
        corridors.advance()
        if "fire-1" not in corridors.incidents:
            break  # not updated for timeout_s: it ended, as it should
        reach_m = 150.0 / 3.6 * (clock.now_s - last_s) + 50.0
        if data.draw(st.booleans(), label="anywhere in the city"):
            position = (data.draw(lons, label="lon"), data.draw(lats, label="lat"))
        else:
            bearing, share = data.draw(st.floats(0.0, 2 * math.pi)), data.draw(st.floats(0.0, 1.3))
            scale = 111_195.0 * math.cos(math.radians(last[1]))
            position = (last[0] + share * reach_m * math.sin(bearing) / scale,
                        last[1] + share * reach_m * math.cos(bearing) / 111_195.0)
        jump_m = distance_m(last, position)
        before, preempted, refused = seen(corridors.corridor("fire-1")), corridors.preempted, \
            corridors.implausible_updates
        try:
            corridors.update("fire-1", *position)
        except InvalidInputError as error:
            if error.field != "position":
                # Off the network (nothing to route from): not applied either.
                assert seen(corridors.corridor("fire-1")) == before
                continue
            assert jump_m > 0.99 * reach_m
            assert corridors.implausible_updates == refused + 1
            assert "not used" in error.args[0]
            assert seen(corridors.corridor("fire-1")) == before and corridors.preempted == preempted
        except PilotageError:
            # No route from there to the destination: not applied either.
            assert seen(corridors.corridor("fire-1")) == before
        else:
            assert jump_m < 1.01 * reach_m
            assert corridors.implausible_updates == refused
            last, last_s = position, clock.now_s
        corridor = corridors.corridor("fire-1")
        assert len(held(corridor)) <= cap
        assert len(corridors.preempted) <= cap
        ahead = [c for c in corridor.crossings if c.state != "passed" and c.approach_group is not None]
        assert all(c.state != "planned" for c in ahead[cap:])
        assert violations(corridors) == []


def test_a_4_km_jump_is_refused_counted_and_changes_nothing(city: RoadNetwork, clock: Any,
                                                          corridors: CorridorEngine) -> None:
    opened = corridors.open("fire-1", *ACROSS)
    clock.now_s += 10.0
    origin = at(city, ACROSS[0])
    corridors.update("fire-1", *origin)
    far = node_near(city, origin, 4000.0, set(opened.nodes.tolist()))
    clock.now_s += 5.0
    # What the clock alone does (holds coming within reach) before the position comes.
    corridors.advance()
    before, preempted = seen(corridors.corridor("fire-1")), corridors.preempted
    with pytest.raises(InvalidInputError) as error:
        corridors.update("fire-1", *at(city, far))
    assert error.value.field == "position"
    message = error.value.args[0]
    assert "within 258 m" in message and "150 km/h for 5.0 s, plus 50 m" in message
    assert re.search(r"got one (399\d|40\d\d) m away after 5\.0 s", message) and "was not used" in message
    assert corridors.implausible_updates == 1
    assert seen(corridors.corridor("fire-1")) == before and corridors.preempted == preempted
    # The refused position did not keep the corridor alive: it ends timeout_s after the last one accepted.
    clock.now_s = 1000.0 + 10.0 + 30.5
    assert list(corridors.advance()) == ["fire-1"]
    assert violations(corridors) == []


def test_a_plausible_move_is_accepted(city: RoadNetwork, clock: Any, corridors: CorridorEngine) -> None:
    opened = corridors.open("fire-1", *ACROSS)
    corridors.update("fire-1", *at(city, ACROSS[0]))
    clock.now_s += 20.0
    # 20 s at 150 km/h is 833 m: the node of the route nearest 400 m along the crow's flight.
    node = min(opened.nodes.tolist(), key=lambda n: abs(distance_m(at(city, ACROSS[0]), at(city, n)) - 400.0))
    moved = corridors.update("fire-1", *at(city, node))
    assert moved.position_m > 200.0 and moved.updated_s == clock.now_s and moved.reroutes == 0
    assert corridors.implausible_updates == 0
    # Off the route and within reach: routed again.
    clock.now_s += 10.0
    aside = node_near(city, at(city, node), 300.0, set(opened.nodes.tolist()))
    assert corridors.update("fire-1", *at(city, aside)).reroutes == 1
    assert corridors.implausible_updates == 0
    assert violations(corridors) == []


def test_the_first_position_is_judged_from_the_origin_unless_it_is_on_the_route(
        city: RoadNetwork, clock: Any, corridors: CorridorEngine) -> None:
    opened = corridors.open("fire-1", *ACROSS)
    origin = at(city, ACROSS[0])
    far = node_near(city, origin, 4000.0, set(opened.nodes.tolist()))
    with pytest.raises(InvalidInputError, match=r"got one (399\d|40\d\d) m away after 0\.0 s"):
        corridors.update("fire-1", *at(city, far))
    # The opening names where the vehicle sets off, not where it was seen: a first position along
    # the route is taken wherever it is.
    along = int(opened.nodes[len(opened.nodes) // 3])
    assert corridors.update("fire-1", *at(city, along)).position_m > 1000.0
    with pytest.raises(InvalidInputError, match="not used"):
        corridors.update("fire-1", *at(city, int(opened.nodes[-2])))
    assert corridors.implausible_updates == 2


def test_the_last_position_accepted_survives_a_restart(city: RoadNetwork, city_plans: SignalPlans,
                                                      clock: Any, corridors: CorridorEngine) -> None:
    opened = corridors.open("fire-1", *ACROSS)
    clock.now_s += 10.0
    corridors.update("fire-1", *at(city, ACROSS[0]))
    (state,), _ = corridors.unsaved()
    assert state.fix == pytest.approx(at(city, ACROSS[0]))
    restarted = CorridorEngine(city, PriorityEngine(city_plans, clock))
    assert restarted.restore([state], corridors.preempted) == 1
    with pytest.raises(InvalidInputError, match="not used"):
        restarted.update("fire-1", *at(city, int(opened.nodes[-2])))
    # Before the first position, the first one along the route is taken, after a restart as before.
    fresh = CorridorEngine(city, PriorityEngine(city_plans, clock))
    fresh.open("fire-2", *ACROSS)
    (unfixed,), _ = fresh.unsaved()
    assert unfixed.fix is None
    again = CorridorEngine(city, PriorityEngine(city_plans, clock))
    again.restore([unfixed], fresh.preempted)
    assert again.update("fire-2", *at(city, int(opened.nodes[len(opened.nodes) // 3]))).position_m > 1000.0


def test_the_nearest_crossings_are_held_and_the_others_wait_for_them(city: RoadNetwork, city_plans: SignalPlans,
                                                                     clock: Any) -> None:
    corridors = CorridorEngine(city, PriorityEngine(city_plans, clock), CorridorConfig(max_held_intersections=3))
    corridor = corridors.open("fire-1", *ACROSS)
    ahead = [c for c in corridor.crossings if c.approach_group is not None]
    assert [c.state for c in ahead[:3]] == ["planned"] * 3
    assert all(c.state == "pending" for c in ahead[3:])
    # Those within the 240 s of reach say why they wait.
    assert [c for c in ahead[3:] if "max_held_intersections" in c.reason] == [
        c for c in ahead[3:] if c.hold_until_s is not None and c.hold_until_s <= 1240.0] != []
    assert set(corridors.preempted) == held(corridor)
    # Past the first two: the next two come in, and no more than three are held.
    clock.now_s += 20.0
    beyond = int(np.searchsorted(np.cumsum(np.r_[0.0, city.length_m[city.shortest_path(
        *ACROSS, weight=corridors.travel_time_s).edges]]), ahead[1].distance_m + 1.0))
    moved = corridors.update("fire-1", *at(city, int(corridor.nodes[beyond])))
    now_ahead = [c for c in moved.crossings if c.approach_group is not None and c.state != "passed"]
    assert [c.intersection for c in now_ahead[:3]] == [c.intersection for c in ahead[2:5]]
    assert [c.state for c in now_ahead[:3]] == ["planned"] * 3 and len(held(moved)) == 3
    assert set(corridors.preempted) == held(moved)
    assert violations(corridors) == []


@pytest.mark.parametrize(("changes", "field"), [
    ({"max_held_intersections": 0}, "max_held_intersections"),
    ({"max_held_intersections": True}, "max_held_intersections"),
    ({"max_held_intersections": 2.5}, "max_held_intersections"),
    ({"max_plausible_speed_kph": 0.0}, "max_plausible_speed_kph"),
    ({"max_plausible_speed_kph": math.inf}, "max_plausible_speed_kph"),
    ({"position_tolerance_m": -1.0}, "position_tolerance_m"),
])
def test_the_bounds_are_checked(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInputError, match=field) as error:
        CorridorConfig(**changes)
    assert error.value.field == field
