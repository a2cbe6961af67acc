"""The core model: the road network and its shortest paths, signalised intersections, errors.

``core`` imports none of the other subpackages; they all build on it.
"""

from pilotage.core.errors import (
    DataFileError,
    InvalidInputError,
    NoRouteError,
    OutsideNetworkError,
    PilotageError,
    UnknownEntityError,
)
from pilotage.core.network import (
    MAX_SNAP_DISTANCE_M,
    SIGNAL_GROUPING_RADIUS_M,
    WEIGHTS,
    RoadNetwork,
    Route,
    SignalisedIntersections,
)

__all__ = [
    "MAX_SNAP_DISTANCE_M",
    "SIGNAL_GROUPING_RADIUS_M",
    "WEIGHTS",
    "DataFileError",
    "InvalidInputError",
    "NoRouteError",
    "OutsideNetworkError",
    "PilotageError",
    "RoadNetwork",
    "Route",
    "SignalisedIntersections",
    "UnknownEntityError",
]
