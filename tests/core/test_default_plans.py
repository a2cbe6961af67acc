"""Default plans for the signalised intersections of the embedded city, and of a junction with
several approaches from one upstream node."""

import numpy as np
import pytest

from pilotage.core import RoadNetwork
from pilotage.core.default_plans import DefaultTimings, default_plans
from pilotage.core.safety import check_schedule
from pilotage.core.signals import PEDESTRIAN, VEHICLE, SignalPlans
from pilotage.signal_priority import PriorityConfig, PriorityEngine, PriorityRequest


@pytest.fixture(scope="module")
def plans(city: RoadNetwork) -> SignalPlans:
    return SignalPlans(default_plans(city))


def test_every_signalised_intersection_has_a_valid_plan(city: RoadNetwork, plans: SignalPlans) -> None:
    assert len(plans) == len(city.intersections)
    assert list(plans.ids) == city.intersections.ids.tolist()
    assert set(plans.n_stages.tolist()) <= {2, 3, 4}
    np.testing.assert_allclose(plans.cycle_s, 90.0)
    for k, plan in enumerate(plans.plans):
        approaches = city.intersections.approaches(k)
        vehicles = plan.group_kind == VEHICLE
        assert vehicles.sum() == approaches.size
        np.testing.assert_array_equal(plan.group_edges[vehicles], approaches)
        assert (plan.group_kind == PEDESTRIAN).sum() >= 1
        assert (plan.min_green_s >= 5.0).all()
        assert (plan.stage_max_s - plan.green_s == pytest.approx(20.0))


def test_approaches_on_one_axis_share_a_stage_and_pedestrians_clear_their_crossing(city: RoadNetwork,
                                                                                    plans: SignalPlans) -> None:
    for k, plan in enumerate(plans.plans):
        approaches = city.intersections.approaches(k)
        tail, head = city.edge_source[approaches], city.indices[approaches]
        dx = (city.node_lon[head] - city.node_lon[tail]) * np.cos(np.radians(city.node_lat[tail]))
        axis = np.degrees(np.arctan2(dx, city.node_lat[head] - city.node_lat[tail])) % 180.0
        gap = np.abs(axis[:, None] - axis[None, :]) % 180.0
        aligned = np.minimum(gap, 180.0 - gap) < 10.0
        stage_of = plan.stage_groups[:, plan.group_kind == VEHICLE].argmax(axis=0)
        assert (stage_of[:, None] == stage_of[None, :])[aligned].all()
    timings = DefaultTimings()
    for plan in plans.plans:
        walkers = plan.group_kind == PEDESTRIAN
        # At 1.2 m/s over 7 to 14 m of road.
        clearance_s = plan.clearance_s[walkers]
        assert ((clearance_s >= 7.0 / 1.2 - 1e-9) & (clearance_s <= 14.0 / 1.2 + 1e-9)).all()
        vehicle_to_vehicle = plan.intergreen_s[np.ix_(~walkers, ~walkers)]
        assert np.nanmin(vehicle_to_vehicle, initial=np.inf) >= timings.amber_s + timings.all_red_s


def test_one_call_decides_a_request_at_every_intersection(plans: SignalPlans) -> None:
    # Every default plan has offset 0: at 3600 s every intersection starts its first stage. Each
    # request is for a group of the second stage, arriving between 5 and 64 s from now.
    engine = PriorityEngine(plans, lambda: 3600.0, PriorityConfig(bus_lateness_s=0.0))
    requests = [PriorityRequest(f"bus-{k}", plan.id, plan.group_names[int(np.argmax(plan.stage_groups[1]))],
                                5.0 + k % 60, lateness_s=90.0) for k, plan in enumerate(plans.plans)]
    decisions = engine.decide(requests)
    assert len(decisions) == len(plans)
    assert not [d for d in decisions if d.unsafe]
    granted = [d for d in decisions if d.decision == "granted"]
    assert len(granted) > len(plans) // 2
    assert {d.strategy for d in granted} >= {"already_green", "early_green"}
    for plan in plans.plans:
        assert check_schedule(plan, engine.schedule(plan.id)) == []


def test_approaches_from_one_upstream_node_get_unique_stable_names() -> None:
    # Three parallel roads from node 200 (100 m north) and one from node 300 (100 m east) enter the
    # signal node 100; a road leads back to each.
    step = 100.0 / 111_195.0  # 100 m in degrees, near the equator
    network = RoadNetwork.from_edges(
        node_osmid=np.array([100, 200, 300]), node_lon=np.array([0.0, 0.0, step]), node_lat=np.array([0.0, step, 0.0]),
        tail=np.array([1, 1, 1, 2, 0, 0]), head=np.array([0, 0, 0, 0, 1, 2]), length_m=np.full(6, np.nan),
        speed_kph=np.full(6, 50.0), road_class=np.zeros(6, dtype=np.int64), road_classes=("residential",),
        edge_osmid=np.arange(6), signal_nodes=np.array([0]))
    (plan,) = default_plans(network)
    vehicles = [name for name, kind in zip(plan.group_names, plan.group_kind, strict=True) if kind == VEHICLE]
    assert vehicles == ["from-200", "from-200-2", "from-200-3", "from-300"]
    assert default_plans(network)[0].group_names == plan.group_names
