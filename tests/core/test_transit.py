"""A trip's path on the network: its crossings, the movement at each, its stops, and bad paths refused."""

import numpy as np
import pytest

from pilotage.core import InvalidInputError, RoadNetwork
from pilotage.core.transit import TransitPath, Trip


def test_a_path_lists_the_intersections_it_crosses_with_the_movement_at_each(city: RoadNetwork) -> None:
    route = city.shortest_path(city.node_index(-30248), city.node_index(-28802))
    path = TransitPath.on(city, route.edges)
    # The intersection it starts in has no approach on the path.
    assert path.crossing_intersection.tolist() == route.intersections[route.intersection_positions > 0].tolist()
    starts = route.intersection_positions[route.intersection_positions > 0]
    assert path.crossing_from_edge.tolist() == route.edges[starts - 1].tolist()
    assert path.crossing_to_edge.tolist() == [route.edges[p] if p < route.edges.size else -1 for p in starts]
    assert np.allclose(path.crossing_stop_line_m, path.at_m[starts])
    assert path.length_m == pytest.approx(route.length_m)


def test_broken_paths_and_stops_off_the_path_are_refused(city: RoadNetwork) -> None:
    route = city.shortest_path(city.node_index(-30248), city.node_index(-28802))
    with pytest.raises(InvalidInputError, match="does not follow") as error:
        TransitPath.on(city, route.edges[[0, 2]])
    assert error.value.field == "edges"
    with pytest.raises(InvalidInputError, match="non-decreasing"):
        TransitPath.on(city, route.edges, stop_ids=("a", "b"), stop_at_m=np.array([500.0, 100.0]))
    with pytest.raises(InvalidInputError, match="one distance per stop"):
        TransitPath.on(city, route.edges, stop_ids=("a",), stop_at_m=np.array([1.0, 2.0]))
    with pytest.raises(InvalidInputError, match="at least one edge"):
        TransitPath.on(city, np.array([], dtype=np.int64))
    path = TransitPath.on(city, route.edges, stop_ids=("a",), stop_at_m=np.array([10.0]))
    with pytest.raises(InvalidInputError) as error:
        Trip("t", "r", "ferry", path)
    assert error.value.field == "vehicle_class"
    with pytest.raises(InvalidInputError) as error:
        Trip("t", "r", "bus", path, np.array([1.0, 2.0]))
    assert error.value.field == "stop_times_s"
    assert np.isnan(Trip("t", "r", "tram", path).stop_times_s).all()
