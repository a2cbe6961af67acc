"""Every configuration dataclass refuses a value out of its range when it is made, naming the
field at fault."""

import math
from typing import Any

import pytest

from pilotage.adapters.sumo.closed_loop import LoopOptions
from pilotage.core import InvalidInputError
from pilotage.core.default_plans import DefaultTimings
from pilotage.routing.solver import SolveOptions
from pilotage.signal_priority import PriorityConfig
from pilotage.signal_priority.corridors import CorridorConfig


@pytest.mark.parametrize(("values", "field"), [
    ({"cycle_s": 0.0}, "cycle_s"),
    ({"min_green_s": math.inf}, "min_green_s"),
    ({"walking_speed_m_s": math.nan}, "walking_speed_m_s"),
    ({"amber_s": -1.0}, "amber_s"),
    ({"max_extension_s": "20"}, "max_extension_s"),
    ({"axis_tolerance_deg": 91.0}, "axis_tolerance_deg"),
    ({"max_stages": 0}, "max_stages"),
    ({"max_stages": 2.5}, "max_stages"),
    ({"cycle_s": 130.0}, "max_cycle_s"),
])
def test_default_timings_refuse_values_out_of_range(values: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        DefaultTimings(**values)
    assert caught.value.field == field


@pytest.mark.parametrize(("values", "field"), [
    ({"bus_lateness_s": math.nan}, "bus_lateness_s"),
    ({"max_eta_s": 0.0}, "max_eta_s"),
    ({"cycle_share": 1.5}, "cycle_share"),
    ({"plan_entries": 1}, "plan_entries"),
    ({"eta_window_s": 300.0}, "eta_window_s"),
])
def test_priority_config_refuses_values_out_of_range(values: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        PriorityConfig(**values)
    assert caught.value.field == field


@pytest.mark.parametrize(("values", "field"), [
    ({"default_speed_kph": 0.0}, "default_speed_kph"),
    ({"margin_s": -1.0}, "margin_s"),
    ({"timeout_s": math.inf}, "timeout_s"),
    ({"emergency_speed_kph": {"primary": math.nan}}, "emergency_speed_kph"),
    ({"exit_transition": "fastest"}, "exit_transition"),
])
def test_corridor_config_refuses_values_out_of_range(values: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        CorridorConfig(**values)
    assert caught.value.field == field


@pytest.mark.parametrize(("values", "field"), [
    ({"time_limit_s": 0.0}, "time_limit_s"),
    ({"time_limit_s": math.nan}, "time_limit_s"),
    ({"first_solution": "random"}, "first_solution"),
    ({"metaheuristic": "annealing"}, "metaheuristic"),
    ({"seed": -1}, "seed"),
    ({"seed": 1.5}, "seed"),
])
def test_solve_options_refuse_values_out_of_range(values: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        SolveOptions(**values)
    assert caught.value.field == field


@pytest.mark.parametrize(("values", "field"), [
    ({"duration_s": 0.0}, "duration_s"),
    ({"request_range_m": math.inf}, "request_range_m"),
    ({"min_lateness_s": math.nan}, "min_lateness_s"),
    ({"min_lateness_s": 1e6}, "min_lateness_s"),
    ({"seed": -1}, "seed"),
    ({"seed": 2**31}, "seed"),
    ({"engine": "tcp://127.0.0.1:5570", "min_lateness_s": 60.0}, "min_lateness_s"),
])
def test_loop_options_refuse_values_out_of_range(values: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        LoopOptions(**values)
    assert caught.value.field == field


@pytest.mark.parametrize("config", [DefaultTimings, PriorityConfig, CorridorConfig, SolveOptions, LoopOptions])
def test_the_defaults_are_valid(config: type) -> None:
    config()
