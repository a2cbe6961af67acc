"""A default signal plan for each signalised intersection of a road network, from its approaches.

OpenStreetMap says where signals are, not how they are timed. So that every signalised intersection
has a plan, each gets one built by these rules (the defaults of :class:`DefaultTimings`):

- **Vehicle groups**: one per approach edge, named ``from-<OSM id of the upstream node>``; a second
  and third approach from the same node are ``from-<id>-2``, ``from-<id>-3``, in edge order.
- **Stages**: approaches are grouped by axis (direction of travel modulo 180°): two approaches
  whose axes differ by at most 45° share a stage (single linkage), so opposite approaches run
  together; more than four axes are merged down to four by joining the closest. A single axis gives
  two stages: its traffic, then a pedestrian stage.
- **Pedestrian groups**: one per stage, named ``crossing-<n>``, walking parallel to that stage's
  traffic and across the other stages' approaches, so it conflicts with every vehicle group of the
  other stages (with the only stage's groups, for a single axis). Its crossing is as wide as the
  widest road it crosses (:data:`ROAD_WIDTH_M` by road class); its clearance is that width at the
  walking speed.
- **Times**: minimum green and walk 5 s; amber 3 s + all-red 2 s between conflicting vehicle groups
  and from vehicles to pedestrians; from pedestrians to vehicles, the pedestrian clearance (at
  least 5 s). Cycle 90 s, shared equally among the stages' greens after the interstages; a stage may
  be extended by up to 20 s; no group waits more than 120 s; offset 0 (no coordination is known).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pilotage.core.errors import InvalidInputError
from pilotage.core.network import RoadNetwork
from pilotage.core.signals import PEDESTRIAN, VEHICLE, IntersectionPlan, interstages_s

#: Width (m) of the carriageway a pedestrian crosses, by road class, both directions.
ROAD_WIDTH_M: dict[str, float] = {
    "motorway": 14.0, "motorway_link": 7.0, "trunk": 14.0, "trunk_link": 7.0, "primary": 14.0,
    "primary_link": 7.0, "secondary": 12.0, "secondary_link": 7.0, "tertiary": 10.0, "tertiary_link": 7.0,
}
DEFAULT_ROAD_WIDTH_M = 7.0


@dataclass(frozen=True)
class DefaultTimings:
    """The timings of default plans (s, and m/s for the walking speed)."""

    cycle_s: float = 90.0
    min_green_s: float = 5.0
    walk_s: float = 5.0
    amber_s: float = 3.0
    all_red_s: float = 2.0
    walking_speed_m_s: float = 1.2
    max_extension_s: float = 20.0
    max_cycle_s: float = 120.0
    axis_tolerance_deg: float = 45.0
    max_stages: int = 4

    def __post_init__(self) -> None:
        """Check every timing's range.

        Raises:
            InvalidInputError: a timing out of its range, or not a number; ``field`` names it.
        """
        for name in ("cycle_s", "min_green_s", "walk_s", "walking_speed_m_s", "max_cycle_s"):
            value = getattr(self, name)
            if not (_is_number(value) and 0.0 < value < math.inf):
                raise InvalidInputError(f"expected {name} to be a finite number > 0, got {value!r}", field=name)
        for name in ("amber_s", "all_red_s", "max_extension_s"):
            value = getattr(self, name)
            if not (_is_number(value) and 0.0 <= value < math.inf):
                raise InvalidInputError(f"expected {name} to be a finite number >= 0, got {value!r}", field=name)
        # Two axes are at most 90 degrees apart: a wider tolerance would join every approach.
        if not (_is_number(self.axis_tolerance_deg) and 0.0 <= self.axis_tolerance_deg <= 90.0):
            raise InvalidInputError(f"expected axis_tolerance_deg to be a number from 0 to 90, got "
                                    f"{self.axis_tolerance_deg!r}", field="axis_tolerance_deg")
        if not (isinstance(self.max_stages, (int, np.integer)) and not isinstance(self.max_stages, bool)
                and self.max_stages >= 1):
            raise InvalidInputError(f"expected max_stages to be a whole number >= 1, got {self.max_stages!r}",
                                    field="max_stages")
        if self.max_cycle_s < self.cycle_s:
            raise InvalidInputError(f"expected max_cycle_s to be at least cycle_s ({self.cycle_s} s), got "
                                    f"{self.max_cycle_s}: no group may wait longer than a cycle", field="max_cycle_s")


def _is_number(value: object) -> bool:
    """Whether ``value`` is a real number (NaN included: the ranges checked refuse it), not a bool."""
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def default_plans(network: RoadNetwork, timings: DefaultTimings = DefaultTimings()) -> list[IntersectionPlan]:
    """One default plan per signalised intersection of ``network``, in the order of its intersections."""
    return [_plan(network, k, timings) for k in range(len(network.intersections))]


def _axis_deg(network: RoadNetwork, edges: np.ndarray) -> np.ndarray:
    tail, head = network.edge_source[edges], network.indices[edges]
    dx = (network.node_lon[head] - network.node_lon[tail]) * np.cos(np.radians(network.node_lat[tail]))
    dy = network.node_lat[head] - network.node_lat[tail]
    axis_deg: np.ndarray = np.degrees(np.arctan2(dx, dy)) % 180.0
    return axis_deg


def _axis_clusters(axes_deg: np.ndarray, tolerance_deg: float, max_clusters: int) -> list[list[int]]:
    clusters = [[i] for i in range(axes_deg.size)]

    def distance(a: list[int], b: list[int]) -> float:
        gaps = np.abs(axes_deg[a][:, None] - axes_deg[b][None, :]) % 180.0
        return float(np.minimum(gaps, 180.0 - gaps).min())

    while len(clusters) > 1:
        pairs = [(distance(a, b), i, j) for i, a in enumerate(clusters) for j, b in enumerate(clusters) if i < j]
        gap, i, j = min(pairs)
        if gap > tolerance_deg and len(clusters) <= max_clusters:
            break
        clusters[i] += clusters.pop(j)
    return sorted(clusters, key=min)


def _plan(network: RoadNetwork, k: int, timings: DefaultTimings) -> IntersectionPlan:
    approaches = network.intersections.approaches(k)
    clusters = _axis_clusters(_axis_deg(network, approaches), timings.axis_tolerance_deg, timings.max_stages)
    width_m = np.array([ROAD_WIDTH_M.get(network.road_classes[c], DEFAULT_ROAD_WIDTH_M)
                        for c in network.road_class[approaches]])
    names: list[str] = []
    # Approaches from one upstream node (parallel ways, or into several signal nodes) are numbered
    # in edge order: from-X, from-X-2, from-X-3. No OSM id looks like "X-2", so names stay unique.
    seen: dict[int, int] = {}
    for e in approaches:
        upstream = int(network.node_osmid[network.edge_source[e]])
        seen[upstream] = seen.get(upstream, 0) + 1
        names.append(f"from-{upstream}" if seen[upstream] == 1 else f"from-{upstream}-{seen[upstream]}")
    n_vehicle = len(names)
    # A single axis: its traffic, then a stage for the pedestrians who cross it.
    single_axis = len(clusters) == 1
    n_stages = 2 if single_axis else len(clusters)
    n_pedestrian = 1 if single_axis else n_stages
    g = n_vehicle + n_pedestrian
    stage_of_vehicle = np.empty(n_vehicle, dtype=np.int64)
    for s, members in enumerate(clusters):
        stage_of_vehicle[members] = s
    stage_groups = np.zeros((n_stages, g), dtype=np.bool_)
    stage_groups[stage_of_vehicle, np.arange(n_vehicle)] = True
    clearance_s = np.zeros(g)
    interchange_s = timings.amber_s + timings.all_red_s
    intergreen_s = np.full((g, g), np.nan)
    vehicle_conflicts = stage_of_vehicle[:, None] != stage_of_vehicle[None, :]
    intergreen_s[:n_vehicle, :n_vehicle][vehicle_conflicts] = interchange_s
    for p in range(n_pedestrian):
        column = n_vehicle + p
        stage = 1 if single_axis else p
        stage_groups[stage, column] = True
        crossed = np.flatnonzero(stage_of_vehicle == 0) if single_axis else np.flatnonzero(stage_of_vehicle != p)
        clearance_s[column] = width_m[crossed].max() / timings.walking_speed_m_s
        intergreen_s[crossed, column] = interchange_s
        intergreen_s[column, crossed] = max(clearance_s[column], interchange_s)
        names.append(f"crossing-{p + 1}")
    kind = np.array([VEHICLE] * n_vehicle + [PEDESTRIAN] * n_pedestrian, dtype=np.int64)
    walk_s = np.where(kind == PEDESTRIAN, timings.walk_s, 0.0)
    min_green_s = np.maximum(timings.min_green_s, walk_s)
    stage_min_s = np.array([min_green_s[groups].max() for groups in stage_groups])
    # The greens share what the interstages leave of the cycle.
    green_s = np.maximum(stage_min_s, (timings.cycle_s - interstages_s(intergreen_s, stage_groups).sum()) / n_stages)
    return IntersectionPlan(
        id=int(network.intersections.ids[k]), group_names=tuple(names), group_kind=kind, min_green_s=min_green_s,
        walk_s=walk_s, clearance_s=clearance_s, intergreen_s=intergreen_s, stage_groups=stage_groups,
        green_s=green_s, stage_min_s=stage_min_s, stage_max_s=green_s + timings.max_extension_s, offset_s=0.0,
        max_cycle_s=timings.max_cycle_s, group_edges=np.concatenate((approaches, np.full(n_pedestrian, -1))))
