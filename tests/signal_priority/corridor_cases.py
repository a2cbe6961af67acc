"""What the corridor tests share: the corridor across the embedded city, a node's position as a
vehicle reports it, and the safety monitor's verdict on every plan the engines keep."""

from pilotage.core import RoadNetwork
from pilotage.core.safety import check_schedule
from pilotage.signal_priority import CorridorEngine

# Across the city: 7.7 km, 25 signalised intersections, 21 of them reached within the 240 s ahead.
ACROSS = (737, 1675)


def violations(corridors: CorridorEngine) -> list:
    """Every safety rule broken by the plan kept at any intersection of the corridors' priority engine."""
    priority = corridors.priority
    return [v for plan in priority.plans.plans for v in check_schedule(plan, priority.schedule(plan.id))]


def at(city: RoadNetwork, node: int) -> tuple[float, float]:
    """The (lon, lat) of ``node``: where a vehicle standing on it reports its position."""
    return float(city.node_lon[node]), float(city.node_lat[node])
