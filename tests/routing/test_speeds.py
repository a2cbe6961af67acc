"""Travel times of the routing engine: limits are not speeds; a city-centre leg runs at the speeds
the embedded city's SUMO scenario measures, and every edge follows the documented formula."""

from collections.abc import Callable

import numpy as np
import pytest

from pilotage.core import RoadNetwork
from pilotage.core.protocol.jobs import Job
from pilotage.routing import job_problem

CENTRE = (6.1300, 49.6110)

#: Speeds of the passenger cars of the embedded city's SUMO scenario over runs of more than 1 km
#: within 1 km of the centre: first and third quartiles (km/h), docs/routing.md.
SUMO_CENTRE_QUARTILES_KPH = (25.3, 43.5)


def centre_nodes(city: RoadNetwork, radius_m: float) -> np.ndarray:
    dx = (city.node_lon - CENTRE[0]) * 111_320 * np.cos(np.radians(CENTRE[1]))
    dy = (city.node_lat - CENTRE[1]) * 110_540
    return np.flatnonzero(np.hypot(dx, dy) < radius_m)


def test_two_km_in_the_city_centre_run_at_the_speeds_sumo_measures(
        city: RoadNetwork, small_job: Callable[..., dict], as_job: Callable[[dict], Job]) -> None:
    nodes = centre_nodes(city, 1000.0)
    job = small_job()
    job["stops"] = [{"id": f"n{node}", "location": int(city.node_osmid[node]), "demand": 0} for node in nodes.tolist()]
    p = job_problem(as_job(job), city).problem
    stops = slice(p.n_depots, p.n_nodes)
    length_m, duration_s = p.distance[stops, stops], p.duration_s[stops, stops]
    legs = (length_m > 1600) & (length_m < 2400)
    assert legs.sum() > 1000
    speed_kph = 3.6 * length_m[legs] / duration_s[legs]
    low, high = SUMO_CENTRE_QUARTILES_KPH
    assert low <= float(np.median(speed_kph)) <= high


def test_each_edge_runs_below_its_limit_and_pays_for_the_junction_it_ends_at(city: RoadNetwork) -> None:
    from pilotage.routing.speeds import URBAN_SPEEDS, edge_travel_time_s, urban_network  # noqa: PLC0415

    times_s = edge_travel_time_s(city)
    neighbours: list[set[int]] = [set() for _ in range(city.n_nodes)]
    for u, v in zip(city.edge_source.tolist(), city.indices.tolist(), strict=True):
        if u != v:
            neighbours[u].add(v)
            neighbours[v].add(u)
    at = city.intersections.of_node
    kinds = {"signal": 0, "junction": 0, "none": 0}
    for edge in range(0, city.n_edges, 7):
        u, v = int(city.edge_source[edge]), int(city.indices[edge])
        share = URBAN_SPEEDS.share(city.road_classes[city.road_class[edge]])
        expected = city.length_m[edge] / (share * city.speed_kph[edge] / 3.6)
        if at[v] >= 0 and at[u] != at[v]:
            expected += URBAN_SPEEDS.signal_delay_s
            kinds["signal"] += 1
        elif at[v] < 0 and len(neighbours[v]) >= 3:
            expected += URBAN_SPEEDS.junction_delay_s
            kinds["junction"] += 1
        else:
            kinds["none"] += 1
        assert times_s[edge] == pytest.approx(expected)
        assert times_s[edge] > city.travel_time_s[edge]
    assert min(kinds.values()) > 0
    urban = urban_network(city)
    assert urban is urban_network(city)
    np.testing.assert_allclose(urban.travel_time_s, times_s)
