"""Travel times of the routing engine: an urban speed model over the road network.

A ``maxspeed`` tag is a limit, not a speed: between junctions a car runs below it, and at each
junction it slows down, yields or stops at a red light. The model (docs/routing.md, "Travel
times") gives each directed edge ``e`` from node ``u`` to node ``v``::

    time_s(e) = length_m(e) / (share(class(e)) * limit_kph(e) / 3.6)
                + signal_delay_s     when v is a signalised intersection that u is not part of
                + junction_delay_s   when v is any other junction (three or more neighbours)

``share`` is the running speed as a share of the limit, per road class. Its values and the two
delays were fitted by least squares on every edge traversal of the passenger cars of the embedded
city's SUMO scenario (peak hour, coordinated signals), with ``benchmarks/routing/urban_speeds.py``;
the figures are in docs/routing.md.

The routing engine plans on :func:`urban_network`, the same network whose edges carry the
model's times, so matrices, road paths and maps all agree.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from pilotage.core.network import RoadNetwork


@dataclass(frozen=True)
class UrbanSpeeds:
    """The parameters of the urban speed model.

    Attributes:
        limit_share: running speed between junctions as a share of the speed limit, per OSM road
            class; a class not listed takes ``default_share``.
        default_share: the share of a road class not in ``limit_share``.
        signal_delay_s: mean time lost crossing a signalised intersection (s): deceleration, red
            time, queue and acceleration.
        junction_delay_s: mean time lost at any other junction (s): slowing to turn or yield.
    """

    limit_share: Mapping[str, float] = field(default_factory=dict)
    default_share: float = 1.0
    signal_delay_s: float = 0.0
    junction_delay_s: float = 0.0

    def share(self, road_class: str) -> float:
        """The running speed of ``road_class`` as a share of its limit."""
        return self.limit_share.get(road_class, self.default_share)


_MOTORWAY_SHARE = 0.974
_ARTERIAL_SHARE = 0.975
_LOCAL_SHARE = 0.896

#: The model fitted on the embedded city's SUMO scenario (docs/routing.md): motorways and their
#: links, arterials (primary and secondary roads and their links) and local streets (the rest).
URBAN_SPEEDS = UrbanSpeeds(
    limit_share={"motorway": _MOTORWAY_SHARE, "motorway_link": _MOTORWAY_SHARE, "trunk": _MOTORWAY_SHARE,
                 "trunk_link": _MOTORWAY_SHARE, "primary": _ARTERIAL_SHARE, "primary_link": _ARTERIAL_SHARE,
                 "secondary": _ARTERIAL_SHARE, "secondary_link": _ARTERIAL_SHARE},
    default_share=_LOCAL_SHARE,
    signal_delay_s=11.0,
    junction_delay_s=2.5,
)


def edge_travel_time_s(network: RoadNetwork, model: UrbanSpeeds = URBAN_SPEEDS) -> np.ndarray:
    """(m,) the model's travel time of each edge of ``network`` (s), running time plus the delay
    at the junction it ends at."""
    tail, head = network.edge_source, network.indices
    share = np.array([model.share(name) for name in network.road_classes])[network.road_class]
    running_s = network.length_m / (share * network.speed_kph / 3.6)
    # Distinct neighbours of each node, whichever the direction of the edge between them.
    pairs = np.unique(np.sort(np.stack([tail, head], axis=1), axis=1), axis=0)
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    neighbours = np.bincount(pairs.ravel(), minlength=network.n_nodes)
    at = network.intersections.of_node
    signal = (at[head] >= 0) & (at[tail] != at[head])
    junction = (at[head] < 0) & (neighbours[head] >= 3)
    times: np.ndarray = running_s + model.signal_delay_s * signal + model.junction_delay_s * junction
    return times


def with_travel_times(network: RoadNetwork, travel_time_s: np.ndarray, source: str) -> RoadNetwork:
    """``network`` with other edge travel times (s, one per edge, > 0): the same nodes, edges (and
    restricted edges) and intersections, each edge's ``speed_kph`` its length over its time (an edge
    of zero length keeps its own, its time being zero whatever the speed). ``source`` says where the
    times come from, in the build report."""
    speed_kph = network.speed_kph.copy()
    np.divide(network.length_m * 3.6, travel_time_s, out=speed_kph, where=network.length_m > 0)
    return RoadNetwork(indptr=network.indptr, indices=network.indices, length_m=network.length_m,
                       speed_kph=speed_kph, road_class=network.road_class, road_classes=network.road_classes,
                       node_lon=network.node_lon, node_lat=network.node_lat, node_osmid=network.node_osmid,
                       edge_osmid=network.edge_osmid, restricted=network.restricted,
                       intersections=network.intersections,
                       build_report={**network.build_report, "travel_times": source})


_URBAN: weakref.WeakKeyDictionary[RoadNetwork, RoadNetwork] = weakref.WeakKeyDictionary()


def urban_network(network: RoadNetwork) -> RoadNetwork:
    """``network`` with the travel times of :data:`URBAN_SPEEDS` (:func:`with_travel_times`), made
    once per network and kept while the network lives."""
    if network not in _URBAN:
        _URBAN[network] = with_travel_times(network, edge_travel_time_s(network), "pilotage.routing.speeds")
    return _URBAN[network]
