"""A corridor whose route comes back along a street it took (a U-turn, a loop round a block): a
position on that street is the vehicle's first pass there, not its way back, which lies on the same
line between the same junctions."""

from typing import Any

import numpy as np

from pilotage.core import RoadNetwork
from pilotage.signal_priority import CorridorEngine


def two_way_arms(city: RoadNetwork) -> tuple[int, int, int, int]:
    """A node ``b`` of the city with three neighbours ``a``, ``c``, ``d`` each joined to it both ways."""
    def joined(tail: int, head: int) -> bool:
        return bool((city.indices[city.indptr[tail]:city.indptr[tail + 1]] == head).any())

    for b in range(city.n_nodes):
        both_ways = [int(n) for n in city.indices[city.indptr[b]:city.indptr[b + 1]] if joined(int(n), b)]
        if len(both_ways) >= 3:
            return both_ways[0], b, both_ways[1], both_ways[2]
    raise AssertionError("no node of the city with three two-way streets")


def length_m(city: RoadNetwork, tail: int, head: int) -> float:
    """The length of the edge from ``tail`` to ``head`` (the shortest, were there several)."""
    out = np.arange(city.indptr[tail], city.indptr[tail + 1])
    return float(city.length_m[out[city.indices[out] == head]].min())


def test_a_position_on_a_street_taken_twice_is_on_the_first_pass(city: RoadNetwork, clock: Any,
                                                                  corridors: CorridorEngine) -> None:
    a, b, c, d = two_way_arms(city)
    # From a through b to c, back from c to b, then on to d: b-c is taken both ways.
    corridor = corridors.open("fire-1", a, d, route=[a, b, c, b, d])
    at_b_m, at_c_m = length_m(city, a, b), length_m(city, a, b) + length_m(city, b, c)
    positions_m = []
    for fraction in np.linspace(0.05, 0.95, 19):
        clock.now_s += 1.0
        lon = city.node_lon[b] + fraction * (city.node_lon[c] - city.node_lon[b])
        lat = city.node_lat[b] + fraction * (city.node_lat[c] - city.node_lat[b])
        corridor = corridors.update("fire-1", float(lon), float(lat))
        positions_m.append(corridor.position_m)
    assert corridor.reroutes == 0
    # Along a-b, then along b-c, never on the way back.
    assert all(at_b_m - 1.0 <= position_m <= at_c_m + 1.0 for position_m in positions_m)
    assert positions_m == sorted(positions_m)
