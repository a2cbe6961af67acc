"""Jobs on the road network: every inconsistency refused with the id and the field at fault, and an
error that points at the fix (the nearest field, the nearest node, lon and lat swapped); a job that
cannot be done refused before any search, with the reason; streets turned into arc tasks as the
sides say."""

import json
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from pilotage.core import RoadNetwork
from pilotage.core.errors import InvalidInputError, OutsideNetworkError, PilotageError, UnknownEntityError
from pilotage.core.protocol.jobs import Job
from pilotage.routing import job_problem, run_file
from pilotage.routing.jobs import clock_of, seconds_of
from pilotage.routing.speeds import urban_network


@pytest.mark.parametrize(("change", "error", "field", "words"), [
    (lambda j: j["stops"][1].update(windows=[["10:00", "09:00"]]), InvalidInputError, "stops[1].windows[0]",
     "closes at 09:00:00, before it opens"),
    (lambda j: j["stops"][2].update(demand=500), InvalidInputError, "stops[2]", "more than any vehicle"),
    (lambda j: j["stops"][0].update(windows=[["05:00", "06:00"]]), InvalidInputError, "stops[0]",
     "its window closes at 06:00:00, but the earliest a vehicle that can serve it gets there is 07:"),
    (lambda j: j["stops"][0].update(windows=[["15:29", "16:00"]]), InvalidInputError, "stops[0]",
     "its window opens at 15:29:00, too late: to be back at depot-gasperich by the end of its shift at 15:30:00"),
    (lambda j: j["stops"][3].update(skills=["crane"]), InvalidInputError, "stops[3]", "skills"),
    (lambda j: j["stops"][1].update(location={"lon": 2.35, "lat": 48.85}), OutsideNetworkError,
     "stops[1].location.lon", "stop 'P-002'"),
    (lambda j: j["stops"][1].update(location=42), UnknownEntityError, "stops[1].location", "stop 'P-002'"),
    (lambda j: j["stops"].append(dict(j["stops"][0])), InvalidInputError, "stops[8].id", "given twice"),
    (lambda j: j["vehicles"][0].update(depot="nowhere"), UnknownEntityError, "vehicles[0].depot", "'nowhere'"),
    (lambda j: j["vehicles"][0].update(shift=["15:00", "07:00"]), InvalidInputError, "vehicles[0].shift",
     "ends (07:00:00) before it starts"),
    (lambda j: j["vehicles"][0].update(breaks=[{"earliest": "16:00", "latest": "17:00", "duration_s": 600}]),
     InvalidInputError, "vehicles[0].breaks[0]", "inside the shift"),
    (lambda j: j.update(streets=[{"id": "s", "way": 1}]), UnknownEntityError, "streets[0].way", "no road"),
    (lambda j: j.update(streets=[{"id": "s"}]), InvalidInputError, "streets[0]", "either way"),
    (lambda j: j.update(initial=[{"vehicle": "ghost", "visits": []}]), None, None, None),
])
def test_an_inconsistent_job_is_refused_naming_what_is_at_fault(
        city: RoadNetwork, small_job: Callable[..., dict], as_job: Callable[[dict], Job], *,
        change: Callable[[dict], None], error: type[PilotageError] | None, field: str | None,
        words: str | None) -> None:
    job = small_job()
    change(job)
    if error is None:
        # An unknown vehicle in the earlier plan is found when the plan is read.
        with pytest.raises(UnknownEntityError, match="ghost") as ghost:
            job_problem(as_job(job), city).initial_routes()
        assert ghost.value.field == "initial[0].vehicle"
        return
    assert words is not None
    with pytest.raises(error, match=re.escape(words)) as caught:
        job_problem(as_job(job), city)
    assert caught.value.field == field


def test_a_valid_job_becomes_one_node_per_stop_and_a_vehicle_per_count(
        city: RoadNetwork, bulky_waste: dict, as_job: Callable[[dict], Job]) -> None:
    built = job_problem(as_job(bulky_waste), city)
    p = built.problem
    assert (p.n_depots, p.n_visits, p.n_vehicles) == (1, 60, 4)
    assert p.vehicle_labels == ("truck-1", "truck-2", "truck-3", "crane-truck")
    assert p.breaks(0) == [(41400, 48600, 1800)]
    assert p.distance_cost[0] == pytest.approx(0.6 / 1000)
    assert p.time_cost_per_s[3] == pytest.approx(55 / 3600)
    crane = [i for i, s in enumerate(bulky_waste["stops"]) if s.get("skills")]
    assert all(p.skills[1 + i] for i in crane)
    # Travel is the fastest road path between the snapped nodes, at the urban model's speeds.
    a, b = built.vertices[built.nodes.leave[1]], built.vertices[built.nodes.enter[2]]
    assert p.duration_s[1, 2] == round(urban_network(city).shortest_path(int(a), int(b)).travel_time_s)


def _two_way_segment(city: RoadNetwork) -> tuple[int, int]:
    for edge in range(city.n_edges):
        u, v = int(city.edge_source[edge]), int(city.indices[edge])
        back = city.indices[city.indptr[v]:city.indptr[v + 1]]
        if u in back and city.road_classes[city.road_class[edge]] == "residential":
            return int(city.node_osmid[u]), int(city.node_osmid[v])
    raise AssertionError("no two-way street")


def _one_way_segment(city: RoadNetwork) -> tuple[int, int]:
    for edge in range(city.n_edges):
        u, v = int(city.edge_source[edge]), int(city.indices[edge])
        if u not in city.indices[city.indptr[v]:city.indptr[v + 1]] and city.road_classes[city.road_class[edge]] == \
                "residential":
            return int(city.node_osmid[u]), int(city.node_osmid[v])
    raise AssertionError("no one-way street")


@pytest.mark.parametrize(("kind", "sides", "visits", "directions"), [
    ("two-way", "both", 2, [1, 1]),  # one pass each way, one side each
    ("two-way", "one", 1, [2]),      # one pass, either way
    ("one-way", "both", 2, [1, 1]),  # two passes the one way
    ("one-way", "one", 1, [1]),
])
def test_street_sides_become_arc_tasks(city: RoadNetwork, small_job: Callable[..., dict],
                                       as_job: Callable[[dict], Job], *, kind: str, sides: str, visits: int,
                                       directions: list[int]) -> None:
    a, b = _two_way_segment(city) if kind == "two-way" else _one_way_segment(city)
    job = small_job(stops=0, streets=[{"id": "rue", "from": a, "to": b, "sides": sides, "demand_per_m": 0.01}])
    p = job_problem(as_job(job), city).problem
    assert p.n_visits == visits
    assert [len(p.alternatives(v)) for v in range(visits)] == directions
    node = int(p.alternatives(0)[0])
    assert p.service_s[node] == round(0.5 * p.service_distance[node])  # the default 0.5 s/m
    assert p.demand[node] == np.ceil(0.01 * p.service_distance[node] - 1e-9)


def test_a_street_by_way_takes_every_segment_of_the_way(city: RoadNetwork, street_cleaning: dict,
                                                        as_job: Callable[[dict], Job]) -> None:
    built = job_problem(as_job(street_cleaning), city)
    way = street_cleaning["streets"][0]["way"]
    served = [i.segment for i in built.info if i.kind == "street" and i.id == f"way-{way}"]
    assert None not in served
    segments = {tuple(sorted(segment)) for segment in served if segment is not None}
    edges = np.flatnonzero(city.edge_osmid == way)
    ends = {tuple(sorted((int(city.node_osmid[city.edge_source[e]]), int(city.node_osmid[city.indices[e]]))))
            for e in edges}
    assert segments == ends


def test_times_of_day() -> None:
    assert seconds_of("07:30") == 27000
    assert seconds_of("25:00:30") == 90030
    assert seconds_of(3600.4) == 3600
    assert clock_of(90030) == "25:00:30"


# -- errors that point at the fix ------------------------------------------------------------------


def test_a_misspelt_stop_field_lists_a_stops_fields_and_the_nearest(
        city: RoadNetwork, small_job: Callable[..., dict], tmp_path: Path) -> None:
    job = small_job(stops=2)
    job["stops"][1]["time_window"] = job["stops"][1].pop("windows")
    path = tmp_path / "typo.json"
    path.write_text(json.dumps(job))
    with pytest.raises(InvalidInputError) as caught:
        run_file(path, tmp_path / "out", network=city)
    message = str(caught.value)
    assert caught.value.field == "stops[1].time_window"
    assert "did you mean 'windows'" in message
    assert "id, location, demand, service_s, windows, skills, penalty" in message
    assert "depots" not in message


def test_a_point_off_the_network_gives_the_nearest_point_of_the_network(
        city: RoadNetwork, small_job: Callable[..., dict], as_job: Callable[[dict], Job]) -> None:
    job = small_job(stops=2)
    # Inside the network's bounding box, in the fields 3 km from the nearest road.
    job["stops"][1]["location"] = {"lon": 6.04, "lat": 49.555}
    with pytest.raises(OutsideNetworkError) as caught:
        job_problem(as_job(job), city)
    message = str(caught.value)
    node, distance_m = city.nearest_nodes([6.04], [49.555])
    lon, lat = float(city.node_lon[node[0]]), float(city.node_lat[node[0]])
    assert "inside lon" not in message
    assert f'{{"lon": {lon:.6f}, "lat": {lat:.6f}}}' in message
    assert f"{distance_m[0]:,.0f} m" in message
    assert caught.value.field == "stops[1].location.lon"


def test_a_point_with_lon_and_lat_swapped_says_so(city: RoadNetwork, small_job: Callable[..., dict],
                                                  as_job: Callable[[dict], Job]) -> None:
    job = small_job(stops=2)
    place = job["stops"][1]["location"]
    job["stops"][1]["location"] = {"lon": place["lat"], "lat": place["lon"]}
    with pytest.raises(OutsideNetworkError, match="swapped") as caught:
        job_problem(as_job(job), city)
    assert f'{{"lon": {place["lon"]:.6f}, "lat": {place["lat"]:.6f}}}' in str(caught.value)


# -- infeasible before solving ---------------------------------------------------------------------


def test_more_demand_than_the_vehicles_with_a_skill_hold_is_refused_at_once(
        city: RoadNetwork, small_job: Callable[..., dict], as_job: Callable[[dict], Job]) -> None:
    job = small_job(stops=4)
    job["vehicles"].append({"id": "crane-truck", "depot": job["depots"][0]["id"], "capacity": 40,
                            "shift": ["07:30", "15:30"], "skills": ["crane"]})
    for stop in job["stops"][:3]:
        stop.update(skills=["crane"], demand=15)  # each fits the crane truck; the three do not
    with pytest.raises(InvalidInputError, match=re.escape("demand 45 needs 'crane'")) as caught:
        job_problem(as_job(job), city)
    assert "hold 40" in str(caught.value)
    assert "time" not in str(caught.value)


def test_more_demand_than_the_fleet_holds_is_refused_at_once(
        city: RoadNetwork, small_job: Callable[..., dict], as_job: Callable[[dict], Job]) -> None:
    job = small_job(stops=4)
    job["vehicles"] = [dict(job["vehicles"][0], count=1, capacity=5)]
    for stop in job["stops"]:
        stop["demand"] = 2
    with pytest.raises(InvalidInputError, match=re.escape("demand 8")) as caught:
        job_problem(as_job(job), city)
    assert "hold 5" in str(caught.value)


def test_more_work_than_the_shifts_hold_is_refused_at_once(
        city: RoadNetwork, small_job: Callable[..., dict], as_job: Callable[[dict], Job]) -> None:
    job = small_job(stops=6)
    job["vehicles"] = [dict(job["vehicles"][0], count=1, breaks=[])]
    for stop in job["stops"]:
        stop.update(service_s=5400, windows=[])  # 1.5 h each: one fits the 8-h shift, six do not
    with pytest.raises(InvalidInputError, match="h of work") as caught:
        job_problem(as_job(job), city)
    assert "8.0 h" in str(caught.value)


def test_a_window_that_closes_before_any_vehicle_arrives_says_when_one_could(
        city: RoadNetwork, small_job: Callable[..., dict], as_job: Callable[[dict], Job]) -> None:
    job = small_job(stops=3)
    job["stops"][0]["windows"] = [["07:00", "07:31"]]  # the trucks leave at 07:30, minutes away
    with pytest.raises(InvalidInputError) as caught:
        job_problem(as_job(job), city)
    message = str(caught.value)
    assert caught.value.field == "stops[0]"
    assert re.search(r"closes at 07:31:00, but the earliest a vehicle that can serve it gets there is 07:\d\d:\d\d",
                     message), message
    assert "more time" not in message


def test_a_break_that_cannot_fit_in_its_shift_is_refused_at_once(
        city: RoadNetwork, small_job: Callable[..., dict], as_job: Callable[[dict], Job]) -> None:
    job = small_job(stops=3)
    job["vehicles"][0]["breaks"] = [{"earliest": "15:15", "latest": "15:30", "duration_s": 1800}]
    with pytest.raises(InvalidInputError, match=re.escape("ends at 15:45:00 at the earliest")) as caught:
        job_problem(as_job(job), city)
    assert caught.value.field == "vehicles[0].breaks[0]"
