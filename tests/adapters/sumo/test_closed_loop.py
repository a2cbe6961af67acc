"""The closed loop on a real SUMO scenario (Bologna, Andrea Costa): its lights driven by the engine,
priority and corridors applied through the service, and no state the monitor refuses.

A short run is part of every test session; the full peak hour is marked slow."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pilotage.adapters.sumo import city_scenario
from pilotage.adapters.sumo.closed_loop import LoopOptions, compare, simulate
from pilotage.core import DataFileError

pytest.importorskip("libsumo", reason="the closed loop needs the sim extra: pip install 'pilotage[sim]'")

BOLOGNA = Path(__file__).resolve().parents[4] / "shared" / "data" / "sumo" / "bologna-acosta" / "run.sumocfg"


@pytest.fixture(scope="module")
def short_run() -> dict[str, object]:
    """Ten simulated minutes with priority and corridors on, an emergency vehicle every 2 minutes."""
    return simulate(BOLOGNA, LoopOptions(duration_s=600.0, emergency_every_s=120.0))


def test_every_light_is_driven_and_no_state_is_unsafe(short_run: dict[str, object]) -> None:
    safety = short_run["safety"]
    assert safety["traffic_lights"] == 7
    assert safety["state_changes"] > 100
    assert safety["refused_states"] == 0
    assert safety["violations"] == 0
    # Ambers as long as the programs' (3-4 s in Bologna), never a light left amber.
    assert 3.0 <= safety["longest_amber_s"] <= 5.0


def test_buses_ask_for_priority_and_get_it(short_run: dict[str, object]) -> None:
    requests = short_run["priority_requests"]
    assert requests["errors"] == {}
    changed_plans = sum(count for strategy, count in requests["by_strategy"].items() if strategy != "already_green")
    assert changed_plans > 0
    assert short_run["classes"]["bus"]["signal_time_loss_s"] is not None


def test_emergency_vehicles_get_corridors_on_their_own_routes(short_run: dict[str, object]) -> None:
    corridors = short_run["corridor_requests"]
    assert corridors["opened"] >= 4
    trips = short_run["emergency"]["trips"]
    assert sum(trip["planned"] for trip in trips) > 0
    assert any(trip["travel_time_s"] is not None for trip in trips)


def test_a_time_space_record_of_one_bus_route(short_run: dict[str, object]) -> None:
    record = short_run["time_space"]
    assert len(record["signals"]) >= 3
    assert all(signal["green"] for signal in record["signals"])
    positions = [point for points in record["vehicles"].values() for point in points]
    assert positions and all(0 <= distance_m <= record["length_m"] + 1 for _, distance_m in positions)


def test_the_baseline_and_the_run_side_by_side_with_one_seed() -> None:
    off, on = compare(BOLOGNA, LoopOptions(duration_s=120.0, corridors=False))
    assert (off["priority"], off["corridors"], on["priority"], on["corridors"]) == (False, False, True, False)
    assert off["seed"] == on["seed"]
    assert off["priority_requests"]["requests"] == 0 < on["priority_requests"]["requests"]
    assert off["safety"]["violations"] == on["safety"]["violations"] == 0


def test_a_missing_scenario_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DataFileError, match="no SUMO configuration"):
        simulate(tmp_path / "nothing.sumocfg")


def test_the_command_line_prints_the_table_writes_the_report_and_passes_sumo_arguments(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    environment = os.environ | {"PILOTAGE_CACHE_DIR": str(tmp_path / "cache")}
    done = subprocess.run([sys.executable, "-m", "pilotage", "simulate", "--sumocfg", str(BOLOGNA), "--duration", "90",
                           "--corridors", "off", "--report", str(report), "--", "--time-to-teleport", "120"],
                          capture_output=True, text=True, env=environment, timeout=600, check=False)
    assert done.returncode == 0, done.stderr
    assert "violations" in done.stdout
    runs = json.loads(report.read_text())["runs"]
    assert [run["priority"] for run in runs] == [False, True]
    refused = subprocess.run([sys.executable, "-m", "pilotage", "route", "x.json", "--", "--step-length", "1"],
                             capture_output=True, text=True, env=environment, timeout=60, check=False)
    assert refused.returncode == 2
    assert "only `pilotage simulate` takes arguments after --" in refused.stderr


@pytest.mark.slow
def test_the_peak_hour_of_bologna() -> None:
    """Safe, and corridors bring emergency vehicles through faster (bus priority does not pay off
    on this saturated, coordinated corridor: docs/simulation.md)."""
    off, on = compare(BOLOGNA, LoopOptions(duration_s=3600.0, emergency_every_s=300.0))
    for run in (off, on):
        assert run["safety"]["violations"] == run["safety"]["refused_states"] == 0
    assert on["classes"]["emergency"]["travel_time_s"] < 0.85 * off["classes"]["emergency"]["travel_time_s"]


@pytest.mark.slow
def test_the_peak_hour_of_the_embedded_city() -> None:
    """The demo's run: buses lose less time at signals, emergency vehicles get through faster,
    cars lose no more than 5 % more time, and nothing unsafe is shown."""
    off, on = compare(city_scenario().sumocfg)
    for run in (off, on):
        assert run["safety"]["violations"] == run["safety"]["refused_states"] == 0
    classes_off, classes_on = off["classes"], on["classes"]
    assert classes_on["bus"]["signal_time_loss_s"] < 0.8 * classes_off["bus"]["signal_time_loss_s"]
    assert classes_on["emergency"]["travel_time_s"] < 0.7 * classes_off["emergency"]["travel_time_s"]
    assert classes_on["car"]["time_loss_s"] < 1.05 * classes_off["car"]["time_loss_s"]
