"""The closed loop on real SUMO scenarios (Bologna, Andrea Costa, from the shared data; the embedded
city): their lights driven by the engine, priority and corridors applied through the service, no
state the monitor refuses, paired runs over several seeds, and each run's outputs (the scenario's
own included) kept apart; and `pilotage demo` as users run it.

Short runs are part of every test session; the full peak hours are marked slow."""

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pilotage.adapters.sumo.closed_loop import LoopOptions, compare, simulate
from pilotage.adapters.sumo.measures import Run
from pilotage.adapters.sumo.report import comparison, format_table, paired_change
from pilotage.adapters.sumo.scenario import Scenario
from pilotage.core import DataFileError, InvalidInputError

pytest.importorskip("libsumo", reason="the closed loop needs the sim extra: pip install 'pilotage[sim]'")


@pytest.fixture(scope="module")
def bologna(shared_data: Callable[..., Path]) -> Path:
    """The Bologna scenario's SUMO configuration."""
    return shared_data("sumo", "bologna-acosta", "run.sumocfg")


@pytest.fixture(scope="module")
def short_run(bologna: Path) -> Run:
    """Twenty simulated minutes with priority and corridors on, an emergency vehicle every 2 minutes
    (the engine changes no plan in Bologna's first ten minutes: its buses find their greens or wait
    for the time cut to be paid back)."""
    return simulate(bologna, LoopOptions(duration_s=1200.0, emergency_every_s=120.0))


#: A folder's files: their sizes and modification times by name.
Files = dict[str, tuple[int, int]]


def scenario_files(sumocfg: Path) -> Files:
    """The files of the scenario's folder, with their sizes and modification times."""
    return {path.name: (path.stat().st_size, path.stat().st_mtime_ns) for path in sumocfg.parent.iterdir()}


@pytest.fixture(scope="module")
def paired(bologna: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Run], Path, Files, Files]:
    """Twenty simulated minutes, priority and corridors off and on, over seeds 42 and 43; the runs,
    their outputs' folder, and the scenario folder's files before and after."""
    outputs = tmp_path_factory.mktemp("paired") / "runs"
    before = scenario_files(bologna)
    runs = compare(bologna, LoopOptions(duration_s=1200.0), seeds=2, output_dir=outputs)
    return runs, outputs, before, scenario_files(bologna)


@pytest.fixture(scope="module")
def city_paired(scenario: Scenario) -> list[Run]:
    """The embedded city, the first five simulated minutes of its peak, priority and corridors off
    then on, seed 42, an emergency vehicle every 2 minutes besides the scenario's own (its first sets
    off at 150 s)."""
    return compare(scenario.sumocfg, LoopOptions(duration_s=300.0, emergency_every_s=120.0, time_space=False))


def test_every_light_is_driven_and_no_state_is_unsafe(short_run: Run) -> None:
    safety = short_run["safety"]
    assert safety["traffic_lights"] == 7
    assert safety["state_changes"] > 100
    assert safety["refused_states"] == 0
    assert safety["violations"] == 0
    # Ambers as long as the programs' (3-4 s in Bologna), never a light left amber.
    assert 3.0 <= safety["longest_amber_s"] <= 5.0


def test_buses_ask_for_priority_and_get_it(short_run: Run) -> None:
    requests = short_run["priority_requests"]
    assert requests["errors"] == {}
    assert requests["plan_changes"] == sum(count for strategy, count in requests["by_strategy"].items()
                                           if strategy != "already_green") > 0
    assert requests["plan_changes"] + requests["already_green"] == requests["granted"]
    assert short_run["classes"]["bus"]["signal_time_loss_s"] is not None
    use = short_run["grant_use"]
    assert use["grants"] == use["crossed"] + use["not_crossed"] > 0
    assert use["crossed"] == use["in_green"] + use["outside_green"]
    assert use["grants_used_share"] is None or 0.0 <= use["grants_used_share"] <= 1.0


def test_a_run_measures_person_delay_offsets_and_what_sumo_could_not_place(short_run: Run) -> None:
    delay = short_run["person_delay"]
    # Bologna's buses carry no modelled passengers: the assumed load counts, and the run says so.
    assert delay["transit_passengers"] == "assumed"
    assert delay["person_hours_lost"] == pytest.approx(sum(c["person_hours_lost"]
                                                           for c in short_run["classes"].values()))
    assert short_run["classes"]["car"]["person_hours_lost"] > 0
    offsets = short_run["offsets"]
    assert set(offsets["by_light"]) == {"209", "210", "219", "220", "221", "235", "273"}
    # A sample every 10 s of the 1200, of each light whose plan has a first stage ahead.
    assert 0 < offsets["samples"] == sum(light["samples"] for light in offsets["by_light"].values()) <= 7 * 121
    p95_s, max_s = offsets["p95_abs_error_s"], offsets["max_abs_error_s"]
    assert p95_s is not None and max_s is not None and 0.0 <= p95_s <= max_s
    traffic = short_run["traffic"]
    assert traffic["teleports"] >= 0
    assert traffic["insertion_backlog_max"] >= traffic["insertion_backlog_end"] >= 0
    assert short_run["outputs"] is None


def test_emergency_vehicles_get_corridors_on_their_own_routes(short_run: Run) -> None:
    corridors = short_run["corridor_requests"]
    assert corridors["opened"] >= 4
    trips = short_run["emergency"]["trips"]
    assert sum(trip["planned"] for trip in trips) > 0
    assert any(trip["travel_time_s"] is not None for trip in trips)


def test_a_time_space_record_of_one_bus_route(short_run: Run) -> None:
    record = short_run["time_space"]
    assert record is not None
    assert len(record["signals"]) >= 3
    assert all(signal["green"] for signal in record["signals"])
    positions = [point for points in record["vehicles"].values() for point in points]
    assert positions and all(0 <= distance_m <= record["length_m"] + 1 for _, distance_m in positions)


def test_the_baseline_and_the_run_side_by_side_with_one_seed(bologna: Path) -> None:
    off, on = compare(bologna, LoopOptions(duration_s=120.0, corridors=False))
    assert (off["priority"], off["corridors"], on["priority"], on["corridors"]) == (False, False, True, False)
    assert off["seed"] == on["seed"]
    assert off["priority_requests"]["requests"] == 0 < on["priority_requests"]["requests"]
    assert off["safety"]["violations"] == on["safety"]["violations"] == 0


def test_paired_seeds_run_safely_and_priority_changes_plans(paired: tuple) -> None:
    runs, _, _, _ = paired
    assert [(run["seed"], run["priority"], run["corridors"]) for run in runs] == [
        (42, False, False), (42, True, True), (43, False, False), (43, True, True)]
    for run in runs:
        assert run["safety"]["violations"] == run["safety"]["refused_states"] == 0
        assert run["priority_requests"]["errors"] == {}
    for off, on in (runs[0:2], runs[2:4]):
        assert off["priority_requests"]["requests"] == 0
        assert on["priority_requests"]["plan_changes"] > 0
        # Without priority or corridors, every plan keeps its coordinated offset.
        assert off["offsets"]["max_abs_error_s"] == pytest.approx(0.0, abs=1e-6)
    # Two seeds, two demands.
    assert runs[0]["classes"]["car"]["time_loss_s"] != runs[2]["classes"]["car"]["time_loss_s"]


def test_each_run_writes_the_scenarios_outputs_into_a_folder_of_its_own(paired: tuple) -> None:
    runs, outputs, before, after = paired
    folders = [Path(run["outputs"]["folder"]) for run in runs]
    assert folders == [outputs / name for name in ("off-seed42", "on-seed42", "off-seed43", "on-seed43")]
    for run, folder in zip(runs, folders, strict=True):
        # The scenario's own tripinfo (named by its configuration), detectors and log; the loop's stop output.
        assert {"tripinfos.xml", "e1_output.xml", "sumo_log.txt", "stopinfo.xml"} <= set(run["outputs"]["files"])
        assert sorted(path.name for path in folder.iterdir()) == run["outputs"]["files"]
        assert "<interval" in (folder / "e1_output.xml").read_text()
        assert (folder / "tripinfos.xml").read_text().count("<tripinfo ") == sum(
            c["trips"] + c["unfinished"] for c in run["classes"].values())
    assert len({(folder / "tripinfos.xml").read_bytes() for folder in folders}) == 4
    # Nothing written into the scenario's folder.
    assert after == before


def test_paired_seeds_give_means_and_intervals_that_bracket_them(paired: tuple) -> None:
    runs, _, _, _ = paired
    result = comparison(runs)
    assert result["seeds"] == [42, 43]
    assert [arm["label"] for arm in result["arms"]] == ["off", "on"]
    (compared,) = result["comparisons"]
    assert compared["headline"]["seeds"] == 2
    assert compared["headline"]["violations"] == 0
    for change in (compared["classes"]["car"]["time_loss_s"], compared["person_delay"]["person_hours_lost"],
                   compared["priority_requests"]["plan_changes"]):
        assert change["pairs"] == 2
        low, high = change["difference_ci95"]
        assert low <= change["difference"] <= high
        if change["change_pct"] is not None:
            low, high = change["change_pct_ci95"]
            assert low <= change["change_pct"] <= high
    assert [(output["label"], output["seed"]) for output in result["outputs"]] == [
        ("off", 42), ("on", 42), ("off", 43), ("on", 43)]
    assert "95 % CI" in format_table(runs)


def test_the_embedded_city_in_short_is_safe_and_priority_saves_buses_and_emergency_vehicles_time(
        city_paired: list[Run]) -> None:
    """The README's headline in five minutes: no unsafe state; with priority and corridors on, buses
    and emergency vehicles lose less time approaching traffic lights, and no more time in all. Few
    trips end in five minutes, so the times compared are those of every vehicle that set off, up to
    the end of the run (the same vehicles in both runs), not the travel times of the trips that
    ended; those come with the peak hour (slow)."""
    off, on = city_paired
    for run in city_paired:
        assert run["safety"]["violations"] == run["safety"]["refused_states"] == 0
    assert on["priority_requests"]["plan_changes"] > 0
    assert on["corridor_requests"]["opened"] > 0
    for vehicle_class in ("bus", "emergency"):
        assert off["classes"][vehicle_class]["trips"] + off["classes"][vehicle_class]["unfinished"] > 0
        assert change_over_seeds(city_paired, "classes", vehicle_class, "signal_time_loss_s")["difference"] < 0.0
        assert change_over_seeds(city_paired, "classes", vehicle_class, "time_loss_s")["difference"] <= 0.0


def test_pilotage_demo_runs_the_embedded_city_off_then_on_and_writes_its_report(scenario: Scenario,
                                                                              tmp_path: Path) -> None:
    """`pilotage demo` as the README has users run it, the installed command in a folder of its own:
    the embedded city with priority and corridors off then on, side by side, a table of what they do
    to buses, cars and emergency vehicles, no violation, the report and its plots in simulation/.
    Three simulated minutes: the scenario's first emergency vehicle sets off at 150 s."""
    command = shutil.which("pilotage", path=str(Path(sys.executable).parent))
    assert command, f"no pilotage command beside {sys.executable}: pip install ."
    environment = os.environ | {"PILOTAGE_CACHE_DIR": str(scenario.directory.parent)}
    done = subprocess.run([command, "demo", "--duration", "180"], cwd=tmp_path, capture_output=True, text=True,
                          env=environment, timeout=600, check=False)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"SUMO closed loop: {scenario.sumocfg.name}, seed 42, 0.0-180.0 s")
    assert re.search(r"^\s+off\s+own\s+.*\s+on\s", done.stdout, re.MULTILINE)
    assert {"bus", "car", "emergency"} <= set(lines)
    assert re.search(r"^\s+violations\s+0\s+0\s", done.stdout, re.MULTILINE)
    assert lines[-1] == "report and plots in simulation/, each run's outputs in simulation/report/"
    report = json.loads((tmp_path / "simulation" / "report.json").read_text())
    assert [(run["own_control"], run["priority"], run["corridors"]) for run in report["runs"]] == [
        (True, False, False), (False, False, False), (False, True, True)]
    assert sorted(path.name for path in (tmp_path / "simulation").glob("*.png")) == [
        "report-bus-time-loss.png", "report-time-space.png"]


def test_a_missing_scenario_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DataFileError, match="no SUMO configuration"):
        simulate(tmp_path / "nothing.sumocfg")


def test_the_output_prefix_is_the_loops_own(bologna: Path, tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="no --output-prefix"):
        simulate(bologna, LoopOptions(duration_s=10.0, sumo_args=("--output-prefix", "x")), tmp_path)
    with pytest.raises(InvalidInputError, match="seeds >= 1"):
        compare(bologna, LoopOptions(duration_s=10.0), seeds=0)


def test_the_command_line_prints_the_table_writes_the_report_and_passes_sumo_arguments(bologna: Path,
                                                                                       tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    environment = os.environ | {"PILOTAGE_CACHE_DIR": str(tmp_path / "cache")}
    done = subprocess.run([sys.executable, "-m", "pilotage", "simulate", "--sumocfg", str(bologna), "--duration", "90",
                           "--corridors", "off", "--own-control", "off", "--report", str(report), "--",
                           "--time-to-teleport", "120"],
                          capture_output=True, text=True, env=environment, timeout=600, check=False)
    assert done.returncode == 0, done.stderr
    assert "violations" in done.stdout
    document = json.loads(report.read_text())
    runs = document["runs"]
    assert [run["priority"] for run in runs] == [False, True]
    assert [output["folder"] for output in document["outputs"]] == [str(tmp_path / "report" / "off-seed42"),
                                                                    str(tmp_path / "report" / "priority-on-seed42")]
    alone = subprocess.run([sys.executable, "-m", "pilotage", "simulate", "--sumocfg", str(bologna), "--duration", "30",
                            "--seeds", "2", "--compare", "off", "--json"],
                           capture_output=True, text=True, env=environment, timeout=600, check=False)
    assert alone.returncode == 0, alone.stderr
    assert [(run["seed"], run["priority"]) for run in json.loads(alone.stdout)] == [(42, True), (43, True)]
    # SUMO's own messages (here made verbose) go to the standard error: the output stays JSON.
    verbose = subprocess.run([sys.executable, "-m", "pilotage", "simulate", "--sumocfg", str(bologna), "--duration",
                              "10", "--compare", "off", "--json", "--", "--verbose", "true"],
                             capture_output=True, text=True, env=environment, timeout=600, check=False)
    assert verbose.returncode == 0, verbose.stderr
    assert json.loads(verbose.stdout)[0]["seed"] == 42
    assert "Loading net-file" in verbose.stderr
    no_seed = subprocess.run([sys.executable, "-m", "pilotage", "simulate", "--seeds", "0"],
                             capture_output=True, text=True, env=environment, timeout=60, check=False)
    assert no_seed.returncode == 2
    assert "expected a whole number of 1 or more, got '0'" in no_seed.stderr
    refused = subprocess.run([sys.executable, "-m", "pilotage", "route", "x.json", "--", "--step-length", "1"],
                             capture_output=True, text=True, env=environment, timeout=60, check=False)
    assert refused.returncode == 2
    assert "only `pilotage simulate` takes arguments after --" in refused.stderr


def change_over_seeds(runs: list[Run], *keys: str) -> dict[str, Any]:
    """The paired change of one measure (``keys`` into each run) from off to on, seeds in order."""
    values = []
    for run in runs:
        value: Any = run
        for key in keys:
            value = value[key]
        values.append(value)
    return paired_change(values[0::2], values[1::2])


@pytest.mark.slow
def test_the_peak_hour_of_bologna(bologna: Path) -> None:
    """Five paired seeds of Bologna's hour with priority on (docs/simulation.md): safe in every run;
    buses lose less time at signals, the interval clear of 0; cars lose at most a few percent more;
    most plan-changing grants are used inside the green they made."""
    runs = compare(bologna, LoopOptions(duration_s=3600.0, corridors=False, time_space=False), seeds=5)
    for run in runs:
        assert run["safety"]["violations"] == run["safety"]["refused_states"] == 0
    bus = change_over_seeds(runs, "classes", "bus", "signal_time_loss_s")
    assert bus["change_pct_ci95"][1] < 0.0
    assert change_over_seeds(runs, "classes", "car", "time_loss_s")["change_pct"] < 5.0
    used = [run["grant_use"]["grants_used_share"] for run in runs[1::2]]
    assert all(share is not None and share > 0.6 for share in used)


@pytest.mark.slow
def test_the_peak_hour_of_the_embedded_city(scenario: Scenario) -> None:
    """The demo's hour over three paired seeds, on the city's tuned coordinated programs: safe;
    buses lose less time at signals and emergency vehicles get through faster, both intervals clear
    of 0; cars lose no more than 3 % more."""
    runs = compare(scenario.sumocfg, LoopOptions(time_space=False), seeds=3)
    for run in runs:
        assert run["safety"]["violations"] == run["safety"]["refused_states"] == 0
    assert change_over_seeds(runs, "classes", "bus", "signal_time_loss_s")["change_pct_ci95"][1] < 0.0
    assert change_over_seeds(runs, "classes", "emergency", "travel_time_s")["change_pct_ci95"][1] < 0.0
    assert change_over_seeds(runs, "classes", "car", "time_loss_s")["change_pct"] < 3.0


def test_buses_that_send_only_their_positions_get_priority_from_the_engine(bologna: Path) -> None:
    run = simulate(bologna, LoopOptions(duration_s=900.0, corridors=False, requests_from="positions"))
    requests = run["priority_requests"]
    assert requests["errors"] == {}
    # Each request made at a light for a vehicle, then its grants and denials, and a check-out once past.
    assert requests["requests"] > 20
    assert requests["plan_changes"] > 0
    assert requests["checkouts"] >= requests["requests"] - 10
    assert run["safety"]["violations"] == 0 and run["safety"]["refused_states"] == 0
    use = run["grant_use"]
    assert use["grants"] == use["crossed"] + use["not_crossed"] > 0


def test_requests_from_positions_need_the_engine_in_the_loop() -> None:
    with pytest.raises(InvalidInputError) as error:
        LoopOptions(requests_from="positions", engine="tcp://127.0.0.1:5570")
    assert error.value.field == "engine"
