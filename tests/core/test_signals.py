"""The signal model refuses what cannot be a safe plan, and pads plans for kernels."""

import math
from typing import Any

import numpy as np
import pytest

from pilotage.core import InvalidInputError, UnknownEntityError
from pilotage.core.signals import PEDESTRIAN, VEHICLE, IntersectionPlan, SignalPlans

NAN = math.nan
CROSSROADS: dict[str, Any] = {
    "id": "x", "group_names": ("main", "side", "walk"), "group_kind": [VEHICLE, VEHICLE, PEDESTRIAN],
    "min_green_s": [8.0, 5.0, 7.0], "walk_s": [0.0, 0.0, 7.0], "clearance_s": [0.0, 0.0, 10.0],
    "intergreen_s": [[NAN, 5.0, 5.0], [5.0, NAN, NAN], [10.0, NAN, NAN]],
    "stage_groups": [[True, False, False], [False, True, True]], "green_s": [40.0, 30.0],
    "stage_min_s": [8.0, 7.0], "stage_max_s": [60.0, 50.0], "offset_s": 0.0, "max_cycle_s": 120.0,
}


def test_the_model_derives_interstages_and_the_cycle() -> None:
    plan = IntersectionPlan(**CROSSROADS)
    assert plan.interstage_s(0, 1) == 5.0
    assert plan.interstage_s(1, 0) == 10.0  # the pedestrians' clearance
    assert plan.cycle_s == 85.0
    assert plan.conflicts.tolist() == [[False, True, True], [True, False, False], [True, False, False]]


@pytest.mark.parametrize(("change", "field"), [
    ({"intergreen_s": [[NAN, 5.0, 5.0], [NAN, NAN, NAN], [10.0, NAN, NAN]]}, "intergreen_s"),
    ({"stage_groups": [[True, True, False], [False, True, True]]}, "stage_groups"),
    ({"stage_groups": [[True, False, False], [False, True, False]]}, "stage_groups"),
    ({"green_s": [5.0, 30.0]}, "green_s"),
    ({"green_s": [70.0, 30.0]}, "green_s"),
    ({"max_cycle_s": 80.0}, "max_cycle_s"),
    ({"clearance_s": [0.0, 0.0, 12.0]}, "clearance_s"),
    ({"min_green_s": [8.0, 5.0, 3.0]}, "min_green_s"),
    ({"group_names": ("main", "main", "walk")}, "group_names"),
    ({"walk_s": [0.0, 0.0]}, "walk_s"),
    ({"stage_groups": [[True, True, True]], "green_s": [40.0], "stage_min_s": [8.0], "stage_max_s": [60.0]},
     "stage_groups"),
    ({"movements": [[1, 2]]}, "movements"),
    ({"movements": [[1, 2, 3]]}, "movements"),
])
def test_invalid_plans_are_refused_with_the_field(change: dict, field: str) -> None:
    with pytest.raises(InvalidInputError) as error:
        IntersectionPlan(**(CROSSROADS | change))
    assert error.value.field == field
    assert "intersection x" in str(error.value)


def test_an_intergreen_across_two_stages_is_checked() -> None:
    # Stage 1 is 3 s long: side ends, stage 1 runs, and main restarts 3 s after side ended.
    three: dict[str, Any] = {
        "id": "y", "group_names": ("main", "side", "turn"), "group_kind": [VEHICLE] * 3, "min_green_s": [3.0] * 3,
        "walk_s": [0.0] * 3, "clearance_s": [0.0] * 3,
        "intergreen_s": [[NAN, 0.0, NAN], [6.0, NAN, NAN], [NAN, NAN, NAN]],
        "stage_groups": [[True, False, True], [False, True, False], [False, False, True]],
        "green_s": [10.0, 10.0, 3.0], "stage_min_s": [3.0] * 3, "stage_max_s": [20.0] * 3, "offset_s": 0.0,
        "max_cycle_s": 100.0,
    }
    with pytest.raises(InvalidInputError, match="before the intergreen from side"):
        IntersectionPlan(**three)
    assert IntersectionPlan(**(three | {"green_s": [10.0, 10.0, 6.0]})).cycle_s == 26.0


def test_a_base_green_under_its_group_minimum_is_refused() -> None:
    # Side and its pedestrians get 30 s in the base plan; side's own minimum says 35 s.
    with pytest.raises(InvalidInputError, match=r"gives side 30\.0 s of green, under its minimum of 35\.0 s") as error:
        IntersectionPlan(**(CROSSROADS | {"min_green_s": [8.0, 35.0, 7.0]}))
    assert error.value.field == "min_green_s"


def test_plans_are_padded_for_kernels() -> None:
    small = IntersectionPlan(**CROSSROADS)
    big = IntersectionPlan(**(CROSSROADS | {"id": "z", "stage_groups": [[True, False, False], [False, True, True],
                                                                        [False, True, False]],
                                            "green_s": [40.0, 20.0, 10.0], "stage_min_s": [8.0, 7.0, 5.0],
                                            "stage_max_s": [60.0, 50.0, 20.0]}))
    plans = SignalPlans([small, big])
    assert plans.stage_groups.shape == (2, 3, 3)
    assert plans.n_stages.tolist() == [2, 3]
    assert not plans.stage_groups[0, 2].any()
    assert plans.index_of("z") == 1
    assert plans.group_index(1, "walk") == 2
    with pytest.raises(UnknownEntityError):
        plans.index_of("nowhere")
    with pytest.raises(UnknownEntityError, match="main, side, walk"):
        plans.group_index(0, "tram")
    assert not plans.green_s.flags.writeable
    # 40 + 5 + 20 + 0 + 10 + 5: the pedestrians clear during stage 2, side keeps green into it.
    np.testing.assert_array_equal(plans.cycle_s, [85.0, 80.0])
