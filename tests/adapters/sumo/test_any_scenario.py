"""Any SUMO scenario as it is: the OSM wizard's Braunschweig (a GUI settings file that is not
there, actuated programs, railway crossings, buses and trams timed with ``until``) read and run
with every light driven or explained; the third arm, SUMO's own control; ``simulate --check``; a
scenario given by its folder; the line of the time-space plot."""

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from pilotage.adapters.sumo.check import check_scenario
from pilotage.adapters.sumo.closed_loop import LoopOptions, compare, simulate
from pilotage.adapters.sumo.measures import Run
from pilotage.adapters.sumo.network import read_scenario, scenario_file
from pilotage.adapters.sumo.report import OWN_CONTROL_LABEL, comparison, format_lights, left_to_sumo
from pilotage.core import DataFileError
from tests.adapters.command_line import pilotage

pytest.importorskip("libsumo", reason="the closed loop needs the sim extra: pip install 'pilotage[sim]'")


@pytest.fixture(scope="module")
def braunschweig(shared_data: Callable[..., Path]) -> Path:
    """The Braunschweig scenario's folder, as the OSM wizard made it."""
    return shared_data("sumo", "braunschweig-osm")


@pytest.fixture(scope="module")
def three_arms(braunschweig: Path) -> list[Run]:
    """Four simulated minutes of Braunschweig: SUMO's own control, pilotage off, and on."""
    return compare(braunschweig, LoopOptions(duration_s=240.0), own_control=True)


def test_a_folder_names_its_one_scenario(braunschweig: Path, tmp_path: Path) -> None:
    assert scenario_file(braunschweig) == braunschweig / "osm.sumocfg"
    (tmp_path / "a.sumocfg").touch()
    (tmp_path / "b.sumocfg").touch()
    with pytest.raises(DataFileError, match=r"expected one \.sumocfg file in .*a\.sumocfg, b\.sumocfg"):
        scenario_file(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataFileError, match=r"expected one \.sumocfg file in .*none"):
        scenario_file(tmp_path / "empty")


def test_actuated_programs_are_read_with_their_actuation(braunschweig: Path) -> None:
    plans = read_scenario(braunschweig).plans
    actuated = [plan for plan in plans if plan.actuated]
    assert len(actuated) >= 10
    assert {plan.passage_s for plan in actuated} == {3.0}  # SUMO's max-gap where the program sets none
    assert all((plan.stage_min_s <= plan.green_s).all() and (plan.green_s <= plan.stage_max_s).all()
               for plan in actuated)


def test_every_light_is_driven_or_left_to_sumo_with_its_reason(braunschweig: Path) -> None:
    check = check_scenario(braunschweig)
    lights = check["lights"]
    assert len(lights) == 72
    assert check["driven"] == sum(light["driven"] for light in lights) >= 16
    assert all(light["how"] for light in lights)
    hows = {light["how"] for light in lights if not light["driven"]}
    assert "a railway crossing: SUMO closes it when a train comes" in hows
    assert any(light["how"].startswith("actuated, passage 3 s, on ") for light in lights if light["driven"])
    assert set(check["transit"]) == {"bus", "tram"}
    assert check["timetable"] == "until"


def test_simulate_check_prints_what_a_run_will_do(braunschweig: Path, tmp_path: Path) -> None:
    result = pilotage("simulate", "--check", "--sumocfg", str(braunschweig), cache_dir=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "of 72 traffic lights driven by the engine" in result.stdout
    assert "left to SUMO: a railway crossing" in result.stdout
    assert "tram: 0 vehicles and 8 flows on 8 lines" in result.stdout
    as_json = pilotage("simulate", "--check", "--json", "--sumocfg", str(braunschweig), cache_dir=tmp_path)
    assert json.loads(as_json.stdout)["timetable"] == "until"


def test_the_three_arms_run_and_every_light_has_its_results(three_arms: list[Run]) -> None:
    own, off, on = three_arms
    assert (own["own_control"], off["own_control"], on["own_control"]) == (True, False, False)
    names = [light["traffic_light"] for light in off["lights"]]
    assert len(names) == 72 and [light["traffic_light"] for light in own["lights"]] == names
    assert not any(light["driven"] for light in own["lights"])
    driven = [light for light in off["lights"] if light["driven"]]
    assert len(driven) >= 16 and all(light["reason"] is None for light in driven)
    assert all(light["reason"] for light in off["lights"] if not light["driven"])
    # The actuated lights follow their detectors: their plans are re-timed as vehicles come.
    assert sum(light["actuations"] for light in off["lights"] if light["control"] == "actuated") > 0
    assert all(light["actuations"] == 0 for light in off["lights"] if light["control"] == "static")
    assert any(light["approaches"] and light["stopped_delay_per_vehicle_s"] is not None for light in driven)
    assert sum(light["grants"] for light in on["lights"]) == on["priority_requests"]["granted"]
    # Every request gives the bus's position, and none asks for an arrival it could not make.
    assert on["priority_requests"]["requests"] > 0 and on["priority_requests"]["errors"] == {}
    assert on["safety"]["violations"] == 0 and on["safety"]["refused_states"] == 0
    # SUMO's own control is compared with pilotage's off arm, as every arm is.
    labels = [compared["label"] for compared in comparison(three_arms)["comparisons"]]
    assert labels == [OWN_CONTROL_LABEL, "on"]


def test_the_lights_table_lists_every_light_and_why_it_is_not_driven(three_arms: list[Run]) -> None:
    table = format_lights(three_arms)
    assert "traffic lights: " in table and " of 72 driven by the engine" in table
    assert "left to SUMO, and why:" in table
    assert "a railway crossing: SUMO closes it when a train comes" in table
    left = left_to_sumo(three_arms)
    assert len(left) == 72 - sum(light["driven"] for light in three_arms[1]["lights"])


def test_the_lights_left_to_sumo_are_told_on_stderr(braunschweig: Path, tmp_path: Path) -> None:
    result = pilotage("simulate", "--sumocfg", str(braunschweig), "--duration", "5", "--compare", "off",
                      "--priority", "off", "--corridors", "off", cache_dir=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "traffic lights left to SUMO, which runs their programs: a railway crossing" in result.stderr
    assert "left to SUMO" not in result.stdout.split("traffic lights: ")[0]


def test_the_time_space_plot_draws_the_busiest_line(three_arms: list[Run]) -> None:
    for run in three_arms:
        busiest = run["time_space"]
        assert busiest is not None and busiest["corridor"] == "line 424:0" and len(busiest["signals"]) >= 3
    # SUMO's own control is drawn from the greens its lights showed.
    own = three_arms[0]["time_space"]
    assert own is not None and any(signal["green"] for signal in own["signals"])


@pytest.mark.slow
def test_the_time_space_plot_draws_the_line_asked(braunschweig: Path) -> None:
    options = LoopOptions(duration_s=600.0, priority=False, corridors=False)
    asked = simulate(braunschweig, dataclasses.replace(options, time_space_line="484:3"))["time_space"]
    assert asked is not None and asked["corridor"] == "line 484:3" and asked["signals"]
    # A tram line on its own track crosses no light the engine drives: nothing to draw.
    assert simulate(braunschweig, dataclasses.replace(options, time_space_line="1:0"))["time_space"] is None
