"""The types the wire's fields share: names, ids, times, positions, places."""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta, Struct

Name = Annotated[str, Meta(min_length=1, max_length=64)]
#: An OSM id (node or way): a 64-bit integer, so that no id overflows an array of the network.
OsmId = Annotated[int, Meta(ge=-(2**63), le=2**63 - 1)]
#: An intersection: its id in the signal plans (an OSM id for the embedded city, a SUMO id otherwise).
IntersectionId = OsmId | Annotated[str, Meta(min_length=1, max_length=64)]
#: A public-transport trip or line, as its timetable names it (GTFS ``trip_id``, ``route_id``).
TransitId = Annotated[str, Meta(min_length=1, max_length=256)]
Seconds = Annotated[float, Meta(ge=0.0, le=3600.0)]
#: A time on the signals' clock (s): wall time in service, simulated time under a simulator.
SignalTime = Annotated[float, Meta(ge=-1e12, le=1e12)]


class Point(Struct, forbid_unknown_fields=True):
    """A position in degrees (WGS 84)."""

    lon: Annotated[float, Meta(ge=-180.0, le=180.0)]
    lat: Annotated[float, Meta(ge=-90.0, le=90.0)]


#: A place on the road network: the OSM id of a node, or a point (its nearest node).
Place = OsmId | Point
