"""Rounds on a network with restricted edges (closed to cars): their travel times keep the
restriction, and a street to clean on a road closed to cars is refused."""

import re
from collections.abc import Callable

import numpy as np
import pytest

from pilotage.core import RoadNetwork
from pilotage.core.errors import UnknownEntityError
from pilotage.core.protocol.jobs import Job
from pilotage.routing import job_problem
from pilotage.routing.speeds import urban_network


@pytest.fixture(scope="module")
def bus_street(city: RoadNetwork) -> tuple[RoadNetwork, int]:
    """The embedded city with its residential way of the most edges closed to cars, and that way's id."""
    residential = city.road_classes.index("residential")
    ways = city.edge_osmid[city.road_class == residential]
    way = int(np.bincount(ways - ways.min()).argmax() + ways.min())  # the one with the most edges
    network = RoadNetwork(indptr=city.indptr, indices=city.indices, length_m=city.length_m, speed_kph=city.speed_kph,
                          road_class=city.road_class, road_classes=city.road_classes, node_lon=city.node_lon,
                          node_lat=city.node_lat, node_osmid=city.node_osmid, edge_osmid=city.edge_osmid,
                          restricted=city.edge_osmid == way, intersections=city.intersections, build_report={})
    return network, way


def test_urban_travel_times_keep_the_restricted_edges(bus_street: tuple[RoadNetwork, int]) -> None:
    network, _ = bus_street
    np.testing.assert_array_equal(urban_network(network).restricted, network.restricted)


def test_a_street_closed_to_cars_is_no_street_of_a_round(bus_street: tuple[RoadNetwork, int],
                                                       small_job: Callable[..., dict],
                                                       as_job: Callable[[dict], Job]) -> None:
    network, way = bus_street
    edge = int(np.flatnonzero(network.restricted)[0])
    ends = [int(network.node_osmid[network.edge_source[edge]]), int(network.node_osmid[network.indices[edge]])]
    for street, field in (({"id": "s", "way": way}, "streets[0].way"),
                          ({"id": "s", "from": ends[0], "to": ends[1]}, "streets[0]")):
        with pytest.raises(UnknownEntityError, match=re.escape("open to cars")) as error:
            job_problem(as_job(small_job(stops=0, streets=[street])), network)
        assert error.value.field == field
