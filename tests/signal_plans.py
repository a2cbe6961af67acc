"""Signal plans the tests share: the crossroads of the fixed cases, and random valid intersections."""

import math

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st

from pilotage.core import InvalidInputError
from pilotage.core.signals import PEDESTRIAN, VEHICLE, IntersectionPlan, interstages_s

NAN = math.nan


def crossroads(intersection_id: str = "x") -> IntersectionPlan:
    """Main road (stage 0: ``main``, 40 s), side road and the pedestrians crossing the main road
    (stage 1: ``side``, ``walk``, 30 s); 5 s between vehicles and from vehicles to pedestrians,
    pedestrians clear in 10 s; cycle 85 s, at most 120 s."""
    return IntersectionPlan(
        id=intersection_id, group_names=("main", "side", "walk"), group_kind=np.array([VEHICLE, VEHICLE, PEDESTRIAN]),
        min_green_s=np.array([8.0, 5.0, 7.0]), walk_s=np.array([0.0, 0.0, 7.0]),
        clearance_s=np.array([0.0, 0.0, 10.0]),
        intergreen_s=np.array([[NAN, 5.0, 5.0], [5.0, NAN, NAN], [10.0, NAN, NAN]]),
        stage_groups=np.array([[True, False, False], [False, True, True]]), green_s=np.array([40.0, 30.0]),
        stage_min_s=np.array([8.0, 7.0]), stage_max_s=np.array([60.0, 50.0]), offset_s=0.0, max_cycle_s=120.0)


@st.composite
def intersections(draw: st.DrawFn) -> IntersectionPlan:
    """Random valid intersections: 2-6 stages, groups green in one stage or two consecutive ones,
    vehicles and pedestrians, random intergreens (at least the clearance) and minimums."""
    n_stages = draw(st.integers(2, 6))
    n_groups = draw(st.integers(n_stages, 10))
    first_stage = [g if g < n_stages else draw(st.integers(0, n_stages - 1)) for g in range(n_groups)]
    spans_two = [draw(st.booleans()) for _ in range(n_groups)]
    stage_groups = np.zeros((n_stages, n_groups), dtype=bool)
    for g, (s, two) in enumerate(zip(first_stage, spans_two, strict=True)):
        stage_groups[s, g] = True
        if two:
            stage_groups[(s + 1) % n_stages, g] = True
    shared = (stage_groups.T.astype(int) @ stage_groups.astype(int)) > 0
    kind = np.array([draw(st.sampled_from([VEHICLE, VEHICLE, PEDESTRIAN])) for _ in range(n_groups)])
    walk = np.where(kind == PEDESTRIAN, [draw(st.floats(4.0, 8.0)) for _ in range(n_groups)], 0.0)
    clearance = np.where(kind == PEDESTRIAN, [draw(st.floats(3.0, 15.0)) for _ in range(n_groups)], 0.0)
    min_green = np.maximum(walk, [draw(st.floats(3.0, 10.0)) for _ in range(n_groups)])
    intergreen = np.full((n_groups, n_groups), np.nan)
    for i in range(n_groups):
        for j in range(i + 1, n_groups):
            if not shared[i, j]:
                intergreen[i, j] = max(clearance[i], draw(st.floats(2.0, 8.0)))
                intergreen[j, i] = max(clearance[j], draw(st.floats(2.0, 8.0)))
    stage_min = np.array([min_green[groups].max() for groups in stage_groups])
    green = stage_min + np.array([draw(st.floats(0.0, 30.0)) for _ in range(n_stages)])
    stage_max = green + np.array([draw(st.floats(0.0, 30.0)) for _ in range(n_stages)])
    base_cycle_s = green.sum() + interstages_s(intergreen, stage_groups).sum()
    try:
        return IntersectionPlan(
            id="random", group_names=tuple(f"g{g}" for g in range(n_groups)), group_kind=kind,
            min_green_s=min_green, walk_s=walk, clearance_s=clearance, intergreen_s=intergreen,
            stage_groups=stage_groups, green_s=green, stage_min_s=stage_min, stage_max_s=stage_max,
            offset_s=draw(st.floats(0.0, 100.0)), max_cycle_s=base_cycle_s + draw(st.floats(0.0, 60.0)))
    except InvalidInputError:
        # A base plan whose own cycle breaks an intergreen: not a valid intersection.
        assume(False)
