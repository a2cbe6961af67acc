"""The report of SUMO closed-loop runs, on small hand-made runs: arms, paired seeds, confidence
intervals, the table and the files."""

import json
import logging
import sys
from pathlib import Path
from typing import Any

import pytest

from pilotage.adapters.sumo.report import (
    MIN_HEADLINE_TRIPS,
    NO_VALUE,
    comparison,
    format_table,
    mean_confidence_interval,
    paired_change,
    write_report,
)
from pilotage.core import InvalidInputError

DELTA = "\N{GREEK CAPITAL LETTER DELTA}"
# Student's t quantiles for a two-sided 95 % interval, from the tables: 1, 2 and 3 degrees of freedom.
T_975_1 = 12.7062047
T_975_2 = 4.30265273
T_975_3 = 3.18244631


def make_run(*, priority: bool = False, corridors: bool = False, seed: int = 7, scenario: str = "city.sumocfg",
             bus_signal_time_loss_s: float | None = 20.0, car_time_loss_s: float | None = 50.0,
             emergency_travel_times_s: dict[str, float | None] | None = None, violations: int = 0,
             with_time_space: bool = True, person_hours_lost: float = 700.0) -> dict:
    """A plausible run: 40 bus trips, 500 car trips, two emergency trips, one bus line's time-space record."""
    emergency_travel_times_s = emergency_travel_times_s or {"fire-1": 300.0, "fire-2": 400.0}
    on = priority or corridors
    bus_losses_s = [] if bus_signal_time_loss_s is None else [
        bus_signal_time_loss_s + offset_s for offset_s in (-6.0, -2.0, 0.0, 2.0, 6.0)]
    time_space = {
        "corridor": "bus line 3 (direction A)", "length_m": 1200.0,
        "signals": [{"traffic_light": "tl-1", "distance_m": 300.0, "green": [[0.0, 30.0], [60.0, 90.0]]},
                    {"traffic_light": "tl-2", "distance_m": 900.0, "green": [[20.0, 50.0], [80.0, 110.0]]}],
        "vehicles": {"bus-1": [[0.0, 0.0], [50.0, 500.0], [120.0, 1200.0]],
                     "bus-2": [[30.0, 0.0], [90.0, 600.0], [140.0, 1200.0]]},
    }
    return {
        "scenario": scenario, "priority": priority, "corridors": corridors, "seed": seed,
        "begin_s": 0.0, "end_s": 3600.0, "step_s": 1.0, "steps": 3600, "wall_time_s": 95.0,
        "classes": {
            "bus": {"trips": 40, "unfinished": 2, "travel_time_s": 900.0, "time_loss_s": 120.0, "stops": 3.5,
                    "signal_time_loss_s": bus_signal_time_loss_s, "person_hours_lost": 28.0},
            "car": {"trips": 500, "unfinished": 10, "travel_time_s": 400.0, "time_loss_s": car_time_loss_s,
                    "stops": 1.25, "signal_time_loss_s": None, "person_hours_lost": person_hours_lost - 28.0},
            "emergency": {"trips": 2, "unfinished": 0, "travel_time_s": 350.0, "time_loss_s": 40.0, "stops": 0.5,
                          "signal_time_loss_s": 15.0},
        },
        "person_delay": {"person_hours_lost": person_hours_lost, "car_occupancy": 1.3, "transit_passengers": "assumed",
                         "assumed_transit_occupancy": {"bus": 20.0, "tram": 60.0}},
        "buses": {"signal_time_loss_s": bus_losses_s,
                  "schedule": {"stops": 800, "mean_delay_s": 95.0, "mean_abs_delay_s": 110.0, "on_time_share": 0.8,
                               "late_share": 0.15}},
        "emergency": {"trips": [{"vehicle": vehicle, "depart_s": 600.0, "travel_time_s": travel_time_s,
                                 "length_m": 4000.0, "crossings": 6, "planned": 6 if corridors else 0, "refused": 0}
                                for vehicle, travel_time_s in emergency_travel_times_s.items()]},
        "priority_requests": {"requests": 120 if priority else 0, "granted": 80 if priority else 0,
                              "already_green": 0, "plan_changes": 80 if priority else 0,
                              "by_strategy": {"extension": 50, "early_green": 30} if priority else {},
                            "denied": {"conflicting request": 40} if priority else {},
                            "checkouts": 100 if priority else 0, "errors": {}},
        "corridor_requests": {"opened": 2 if corridors else 0, "closed": 2 if corridors else 0, "updates": 10,
                            "reroutes": 0, "errors": {}},
        "safety": {"traffic_lights": 12, "state_changes": 4000 if on else 3600, "refused_states": 0,
                   "violations": violations, "by_rule": {"intergreen": violations}},
        "grant_use": {"grants": 60 if priority else 0, "crossed": 50 if priority else 0,
                      "in_green": 40 if priority else 0, "outside_green": 10 if priority else 0,
                      "not_crossed": 10 if priority else 0, "grants_used_share": 0.8 if priority else None},
        "offsets": {"sample_every_s": 10.0, "samples": 4320, "p95_abs_error_s": 20.0 if priority else 0.0,
                    "max_abs_error_s": 45.0 if priority else 0.0,
                    "by_light": {"tl-1": {"samples": 360, "p95_abs_error_s": 0.0, "max_abs_error_s": 0.0}}},
        "traffic": {"teleports": 1, "insertion_backlog_max": 30, "insertion_backlog_end": 5},
        "time_space": time_space if with_time_space else None,
        "outputs": None,
    }


@pytest.fixture
def off_and_on() -> list[dict]:
    """Baseline and a run with both engines on: bus signal time loss 20 -> 12 s, car time loss 50 -> 55 s."""
    return [make_run(),
            make_run(priority=True, corridors=True, bus_signal_time_loss_s=12.0, car_time_loss_s=55.0,
                     emergency_travel_times_s={"fire-1": 240.0, "fire-2": 320.0})]


def seeds_of(*pairs: tuple[float, float], **changes: Any) -> list[dict]:
    """Paired runs over seeds 1, 2, ...: for each (baseline, run) of ``pairs``, the bus time lost at
    signals off and on; ``changes`` as :func:`make_run`'s for the runs with priority on."""
    runs = []
    for seed, (baseline_s, run_s) in enumerate(pairs, 1):
        runs += [make_run(seed=seed, bus_signal_time_loss_s=baseline_s),
                 make_run(priority=True, seed=seed, bus_signal_time_loss_s=run_s, **changes)]
    return runs


def metric(change: dict) -> tuple:
    """The mean values and changes of a metric of a comparison, without its interval and pairs."""
    return change["baseline"], change["run"], change["difference"], change["change_pct"]


# -- statistics -----------------------------------------------------------------------------------


def test_the_confidence_interval_is_students_t_over_the_values() -> None:
    # Mean 2.5, sample standard deviation sqrt(5/3), 3 degrees of freedom.
    interval = mean_confidence_interval([1.0, 2.0, 3.0, 4.0])
    assert interval is not None
    low, high = interval
    half_width = T_975_3 * (5.0 / 3.0) ** 0.5 / 2.0
    assert (low, high) == (pytest.approx(2.5 - half_width), pytest.approx(2.5 + half_width))
    assert mean_confidence_interval([10.0, 14.0]) == [pytest.approx(12.0 - T_975_1 * 2.0),
                                                      pytest.approx(12.0 + T_975_1 * 2.0)]
    assert mean_confidence_interval([-3.0, -3.0, -3.0]) == [-3.0, -3.0]
    assert mean_confidence_interval([5.0]) is None
    assert mean_confidence_interval([]) is None
    narrower = mean_confidence_interval([1.0, 2.0, 3.0, 4.0], confidence=0.5)
    assert narrower is not None
    assert low < narrower[0] < 2.5 < narrower[1] < high


def test_a_confidence_interval_needs_finite_values_and_a_level_within_0_and_1() -> None:
    with pytest.raises(InvalidInputError, match="finite") as error:
        mean_confidence_interval([1.0, float("nan")])
    assert error.value.field == "values"
    with pytest.raises(InvalidInputError, match="strictly between 0 and 1"):
        mean_confidence_interval([1.0, 2.0], confidence=1.0)


def test_a_paired_change_averages_each_arm_and_the_per_seed_changes() -> None:
    change = paired_change([20.0, 25.0, None], [12.0, 20.0, 30.0])
    assert change["pairs"] == 2
    assert change["baseline"] == pytest.approx(22.5)
    assert change["run"] == pytest.approx(62.0 / 3.0)
    assert change["difference"] == pytest.approx(-6.5)
    # Differences -8 and -5 s: standard deviation 1.5 * sqrt(2); changes -40 and -20 %: 10 * sqrt(2).
    assert change["difference_ci95"] == [pytest.approx(-6.5 - T_975_1 * 1.5), pytest.approx(-6.5 + T_975_1 * 1.5)]
    assert change["change_pct"] == pytest.approx(-30.0)
    assert change["change_pct_ci95"] == [pytest.approx(-30.0 - T_975_1 * 10.0),
                                         pytest.approx(-30.0 + T_975_1 * 10.0)]


def test_a_paired_change_of_one_seed_has_no_interval_and_a_zero_baseline_no_percentage() -> None:
    assert paired_change([20.0], [12.0]) == {"baseline": 20.0, "run": 12.0, "difference": -8.0,
                                             "difference_ci95": None, "change_pct": pytest.approx(-40.0),
                                             "change_pct_ci95": None, "pairs": 1}
    change = paired_change([0.0, 0.0, 4.0], [0.0, 2.0, 5.0])
    assert change["difference"] == pytest.approx(1.0)
    assert change["change_pct"] == pytest.approx(12.5)  # 0 to 0 is 0 %, 0 to 2 has none, 4 to 5 is +25 %
    assert paired_change([None], [3.0])["difference"] is None
    with pytest.raises(InvalidInputError, match="one baseline value per run value"):
        paired_change([1.0], [1.0, 2.0])


# -- comparison -----------------------------------------------------------------------------------


def test_the_headline_gives_the_relative_changes_from_the_baseline(off_and_on: list[dict]) -> None:
    result = comparison(off_and_on)
    assert (result["scenario"], result["seed"], result["seeds"], result["baseline"]) == ("city.sumocfg", 7, [7], 0)
    (compared,) = result["comparisons"]
    assert (compared["index"], compared["label"], compared["runs"], compared["seeds"]) == (1, "on", [1], [7])
    headline = compared["headline"]
    assert headline["seeds"] == 1
    assert headline["bus_signal_time_loss_change_pct"] == pytest.approx(-40.0)
    assert headline["bus_signal_time_loss_change_pct_ci95"] is None
    assert headline["car_time_loss_change_pct"] == pytest.approx(10.0)
    assert headline["person_hours_lost_change_pct"] == 0.0
    assert headline["emergency_travel_time_change_pct"] == pytest.approx(-20.0)
    assert headline["emergency_trips_matched"] == 2
    assert headline["violations"] == headline["refused_states"] == 0


def test_each_metric_of_each_class_has_its_baseline_difference_and_change(off_and_on: list[dict]) -> None:
    (compared,) = comparison(off_and_on)["comparisons"]
    assert list(compared["classes"]) == ["bus", "emergency", "car"]
    assert compared["classes"]["bus"]["signal_time_loss_s"] == {"baseline": 20.0, "run": 12.0, "difference": -8.0,
                                                               "difference_ci95": None,
                                                               "change_pct": pytest.approx(-40.0),
                                                               "change_pct_ci95": None, "pairs": 1}
    assert set(compared["classes"]["car"]) == {"trips", "unfinished", "travel_time_s", "time_loss_s", "stops",
                                               "signal_time_loss_s", "person_hours_lost"}
    assert compared["classes"]["car"]["trips"]["change_pct"] == 0.0
    assert compared["safety"]["state_changes"]["change_pct"] == pytest.approx(100.0 * 400 / 3600)
    assert "by_rule" not in compared["safety"]
    assert compared["bus_schedule"]["on_time_share"]["difference"] == 0.0


def test_the_new_measures_are_compared_too(off_and_on: list[dict]) -> None:
    (compared,) = comparison(off_and_on)["comparisons"]
    assert metric(compared["priority_requests"]["plan_changes"]) == (0, 80, 80, None)
    assert metric(compared["grant_use"]["grants_used_share"]) == (None, 0.8, None, None)
    assert metric(compared["offsets"]["p95_abs_error_s"]) == (0.0, 20.0, 20.0, None)
    assert "by_light" not in compared["offsets"]
    assert metric(compared["traffic"]["teleports"]) == (1, 1, 0, 0.0)
    assert metric(compared["person_delay"]["person_hours_lost"]) == (700.0, 700.0, 0.0, 0.0)
    assert "transit_passengers" not in compared["person_delay"]


def test_none_and_a_zero_baseline_give_no_change(off_and_on: list[dict]) -> None:
    baseline, run = off_and_on
    baseline["classes"]["bus"]["travel_time_s"] = None
    baseline["classes"]["car"]["stops"] = 0.0
    run["classes"]["car"]["stops"] = 0.5
    run["classes"]["emergency"]["unfinished"] = 0
    del run["classes"]["emergency"]["time_loss_s"]
    (compared,) = comparison(off_and_on)["comparisons"]
    assert metric(compared["classes"]["bus"]["travel_time_s"]) == (None, 900.0, None, None)
    assert compared["classes"]["bus"]["travel_time_s"]["pairs"] == 0
    assert compared["classes"]["car"]["signal_time_loss_s"]["change_pct"] is None
    assert compared["classes"]["car"]["stops"]["change_pct"] is None
    assert compared["classes"]["emergency"]["unfinished"]["change_pct"] == 0.0
    assert compared["classes"]["emergency"]["time_loss_s"]["run"] is None


def test_a_class_missing_from_one_run_compares_to_none(off_and_on: list[dict]) -> None:
    baseline, run = off_and_on
    run["classes"]["tram"] = {"trips": 5, "unfinished": 0, "travel_time_s": 600.0, "time_loss_s": 30.0, "stops": 1.0,
                              "signal_time_loss_s": 10.0}
    del baseline["classes"]["car"]
    (compared,) = comparison(off_and_on)["comparisons"]
    assert list(compared["classes"]) == ["bus", "tram", "emergency", "car"]
    assert metric(compared["classes"]["tram"]["trips"]) == (None, 5, None, None)
    assert compared["headline"]["car_time_loss_change_pct"] is None


def test_emergency_travel_time_is_compared_over_the_vehicles_that_arrived_in_both_runs() -> None:
    runs = [make_run(emergency_travel_times_s={"fire-1": 300.0, "fire-2": 400.0, "ambulance-1": 500.0}),
            make_run(priority=True, emergency_travel_times_s={"fire-1": 240.0, "fire-2": 320.0, "ambulance-1": None,
                                                              "ambulance-2": 100.0})]
    (compared,) = comparison(runs)["comparisons"]
    assert compared["emergency"]["matched"] == 2
    assert metric(compared["emergency"]["travel_time_s"]) == (350.0, 280.0, -70.0, pytest.approx(-20.0))


def test_without_emergency_trips_the_emergency_change_is_none() -> None:
    runs = [make_run(), make_run(priority=True)]
    for run in runs:
        run["emergency"]["trips"] = []
    (compared,) = comparison(runs)["comparisons"]
    assert compared["headline"]["emergency_trips_matched"] == 0
    assert compared["headline"]["emergency_travel_time_change_pct"] is None


def test_every_other_run_is_compared_to_the_baseline_wherever_it_is() -> None:
    runs = [make_run(priority=True, bus_signal_time_loss_s=15.0), make_run(corridors=True),
            make_run(bus_signal_time_loss_s=25.0), make_run(priority=True, corridors=True, violations=3)]
    result = comparison(runs)
    assert result["baseline"] == 2
    assert [(c["index"], c["label"]) for c in result["comparisons"]] == [(0, "priority on"), (1, "corridors on"),
                                                                         (3, "on")]
    assert result["comparisons"][0]["headline"]["bus_signal_time_loss_change_pct"] == pytest.approx(-40.0)
    assert result["comparisons"][2]["headline"]["violations"] == 3


def test_the_comparison_is_json_and_leaves_the_runs_alone(off_and_on: list[dict]) -> None:
    before = json.dumps(off_and_on)
    result = comparison(off_and_on)
    assert json.loads(json.dumps(result)) == result
    assert result["runs"] == off_and_on
    result["runs"][0]["classes"]["bus"]["trips"] = 0
    assert json.dumps(off_and_on) == before


def test_runs_without_a_baseline_do_not_compare() -> None:
    with pytest.raises(InvalidInputError, match=r"expected one baseline run .*, got 0 among runs priority on, on"):
        comparison([make_run(priority=True), make_run(priority=True, corridors=True)])
    with pytest.raises(InvalidInputError, match="got 2"):
        comparison([make_run(), make_run(), make_run(priority=True)])
    with pytest.raises(InvalidInputError, match="got none"):
        comparison([])


def test_a_seed_without_its_baseline_or_runs_of_other_scenarios_do_not_compare() -> None:
    with pytest.raises(InvalidInputError, match=r"for seed 8, got 0 among runs priority on: run"):
        comparison([make_run(), make_run(priority=True, seed=8)])
    with pytest.raises(InvalidInputError, match=r"one scenario, got city\.sumocfg, other\.sumocfg"):
        comparison([make_run(), make_run(priority=True, scenario="other.sumocfg")])
    with pytest.raises(InvalidInputError, match=r"one run per arm and seed, got several on runs of seed 7"):
        comparison([make_run(), make_run(priority=True, corridors=True), make_run(priority=True, corridors=True)])


def test_paired_seeds_give_the_mean_change_and_its_interval() -> None:
    runs = seeds_of((20.0, 12.0), (25.0, 20.0), (30.0, 21.0))
    result = comparison(runs)
    assert (result["seed"], result["seeds"], result["baseline"]) == (1, [1, 2, 3], 0)
    assert [(arm["label"], arm["seeds"], arm["runs"]) for arm in result["arms"]] == [
        ("off", [1, 2, 3], [0, 2, 4]), ("priority on", [1, 2, 3], [1, 3, 5])]
    assert result["arms"][0]["mean"]["classes"]["bus"]["signal_time_loss_s"] == pytest.approx(25.0)
    assert result["arms"][1]["mean"]["offsets"]["p95_abs_error_s"] == 20.0
    (compared,) = result["comparisons"]
    assert (compared["index"], compared["runs"], compared["seeds"]) == (1, [1, 3, 5], [1, 2, 3])
    change = compared["classes"]["bus"]["signal_time_loss_s"]
    # Differences -8, -5, -9 s; changes -40, -20, -30 %.
    assert metric(change) == (pytest.approx(25.0), pytest.approx(53.0 / 3.0), pytest.approx(-22.0 / 3.0),
                              pytest.approx(-30.0))
    assert change["pairs"] == 3
    # Their sample variance is 13/3 s², so the half width is t * sqrt(13/3) / sqrt(3).
    half_width_s = T_975_2 * 13.0 ** 0.5 / 3.0
    assert change["difference_ci95"] == [pytest.approx(-22.0 / 3.0 - half_width_s),
                                         pytest.approx(-22.0 / 3.0 + half_width_s)]
    low_pct, high_pct = change["change_pct_ci95"]
    assert low_pct < -30.0 < high_pct
    assert compared["headline"]["seeds"] == 3
    assert compared["headline"]["bus_signal_time_loss_change_pct_ci95"] == change["change_pct_ci95"]
    assert compared["headline"]["violations"] == 0


def test_emergency_vehicles_are_matched_seed_by_seed() -> None:
    runs = [make_run(seed=1, emergency_travel_times_s={"fire-1": 300.0, "fire-2": 400.0}),
            make_run(priority=True, corridors=True, seed=1, emergency_travel_times_s={"fire-1": 240.0,
                                                                                       "fire-2": None}),
            make_run(seed=2, emergency_travel_times_s={"fire-1": 500.0}),
            make_run(priority=True, corridors=True, seed=2, emergency_travel_times_s={"fire-1": 250.0})]
    (compared,) = comparison(runs)["comparisons"]
    assert compared["emergency"]["matched"] == 2
    assert metric(compared["emergency"]["travel_time_s"]) == (400.0, 245.0, -155.0, pytest.approx(-35.0))


def test_the_outputs_of_each_run_are_listed() -> None:
    runs = seeds_of((20.0, 12.0), (25.0, 20.0))
    for run, arm in zip(runs, ("off", "priority-on", "off", "priority-on"), strict=True):
        run["outputs"] = {"folder": f"out/report/{arm}-seed{run['seed']}", "files": ["e1_output.xml", "tripinfos.xml"]}
    outputs = comparison(runs)["outputs"]
    assert [(output["label"], output["seed"], output["folder"]) for output in outputs] == [
        ("off", 1, "out/report/off-seed1"), ("priority on", 1, "out/report/priority-on-seed1"),
        ("off", 2, "out/report/off-seed2"), ("priority on", 2, "out/report/priority-on-seed2")]
    assert outputs[0]["files"] == ["e1_output.xml", "tripinfos.xml"]


def test_a_run_needs_its_switches(off_and_on: list[dict]) -> None:
    off_and_on[1]["priority"] = {"requests": 3}
    with pytest.raises(InvalidInputError, match="priority_requests") as error:
        comparison(off_and_on)
    assert error.value.field == "priority"


def test_safety_violations_are_logged_as_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="pilotage.adapters.sumo.report"):
        comparison([make_run(), make_run(priority=True, violations=2)])
    assert ("priority on vs off over 1 seed (no confidence interval with one seed): bus time loss at signals +0.0 % "
            "over 42 trips, tram time loss at signals: no trips, car time loss +0.0 % over 510 trips") in caplog.text
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == [
        "priority on: 2 safety violations ([{'intergreen': 2}])"]


# -- table ----------------------------------------------------------------------------------------


def row(table: str, section: str, label: str) -> list[str]:
    """The cells of the row ``label`` in ``section`` of a table, split at runs of two spaces or more."""
    lines = table.splitlines()
    start = lines.index(section)
    line = next(line for line in lines[start + 1:] if line.startswith(f"  {label}  "))
    return [cell.strip() for cell in line.strip().split("  ") if cell.strip()]


def labels(table: str, section: str) -> list[str]:
    """The row labels of ``section`` in a table."""
    lines = table.splitlines()
    following = lines[lines.index(section) + 1:]
    end = next((k for k, line in enumerate(following) if not line.startswith("  ")), len(following))
    return [line.strip().split("  ")[0] for line in following[:end]]


def test_the_table_has_a_column_per_arm_the_change_and_its_interval(off_and_on: list[dict]) -> None:
    table = format_table(off_and_on)
    lines = table.splitlines()
    assert lines[0] == "SUMO closed loop: city.sumocfg, seed 7, 0.0-3600.0 s simulated in steps of 1.0 s"
    assert lines[2].split() == ["off", "on", DELTA, "95", "%", "CI"]
    # One seed: no interval.
    assert row(table, "bus", "time lost at signals") == ["time lost at signals", "20.0 s", "12.0 s", "-40.0 %",
                                                         NO_VALUE]
    assert row(table, "car", "time loss") == ["time loss", "50.0 s", "55.0 s", "+10.0 %", NO_VALUE]
    assert row(table, "car", "trips") == ["trips", "500", "500", "+0.0 %", NO_VALUE]
    assert row(table, "car", "stops per trip") == ["stops per trip", "1.25", "1.25", "+0.0 %", NO_VALUE]
    assert row(table, "car", "person-hours lost") == ["person-hours lost", "672.0 h", "672.0 h", "+0.0 %", NO_VALUE]
    assert row(table, "bus schedule", "on time") == ["on time", "80.0 %", "80.0 %", "+0.0 pp", NO_VALUE]
    assert row(table, "person delay", "person-hours lost (bus passengers assumed)")[1:] == ["700.0 h", "700.0 h",
                                                                                           "+0.0 %", NO_VALUE]
    assert row(table, "emergency trips", "travel time (2 matched)") == ["travel time (2 matched)", "350.0 s",
                                                                       "280.0 s", "-20.0 %", NO_VALUE]
    assert row(table, "priority engine", "requests") == ["requests", "0", "120", "+120", NO_VALUE]
    assert row(table, "priority engine", "plan changes") == ["plan changes", "0", "80", "+80", NO_VALUE]
    assert row(table, "plan-changing grants", "crossed in their green") == ["crossed in their green", NO_VALUE,
                                                                            "80.0 %", NO_VALUE, NO_VALUE]
    assert row(table, "offset error", "95th percentile") == ["95th percentile", "0.0 s", "20.0 s", "+20.0 s", NO_VALUE]
    assert row(table, "traffic", "teleports") == ["teleports", "1", "1", "+0", NO_VALUE]
    assert row(table, "safety", "state changes") == ["state changes", "3,600", "4,000", "+400", NO_VALUE]
    assert row(table, "safety", "violations") == ["violations", "0", "0", "+0", NO_VALUE]
    assert row(table, "safety", "refused states") == ["refused states", "0", "0", "+0", NO_VALUE]
    assert lines[-1].startswith(f"{DELTA}: the mean change from off over the paired seeds")
    assert all(len(line) <= 100 for line in lines)


def test_the_table_of_paired_seeds_gives_means_and_intervals() -> None:
    table = format_table(seeds_of((20.0, 12.0), (25.0, 20.0), (30.0, 21.0)))
    lines = table.splitlines()
    assert lines[0].startswith("SUMO closed loop: city.sumocfg, seeds 1, 2, 3, ")
    half_width_pct = T_975_2 * 10.0 / 3.0 ** 0.5
    assert row(table, "bus", "time lost at signals") == [
        "time lost at signals", "25.0 s", "17.7 s", "-30.0 %", f"[{-30.0 - half_width_pct:+.1f}, "
                                                                f"{-30.0 + half_width_pct:+.1f}] %"]
    assert row(table, "priority engine", "requests") == ["requests", "0", "120", "+120", "[+120, +120]"]
    assert row(table, "offset error", "largest") == ["largest", "0.0 s", "45.0 s", "+45.0 s", "[+45.0, +45.0] s"]
    assert row(table, "bus schedule", "late") == ["late", "15.0 %", "15.0 %", "+0.0 pp", "[+0.0, +0.0] pp"]
    assert all(len(line) <= 100 for line in lines)


def test_one_arm_over_several_seeds_gives_its_means() -> None:
    runs = [make_run(priority=True, seed=1, bus_signal_time_loss_s=10.0),
            make_run(priority=True, seed=2, bus_signal_time_loss_s=20.0)]
    table = format_table(runs)
    assert table.splitlines()[3].split() == ["on"]
    assert row(table, "bus", "time lost at signals") == ["time lost at signals", "15.0 s"]
    assert DELTA not in table


def test_the_table_shows_none_as_a_dash(off_and_on: list[dict]) -> None:
    off_and_on[0]["classes"]["bus"]["travel_time_s"] = None
    table = format_table(off_and_on)
    assert row(table, "bus", "travel time") == ["travel time", NO_VALUE, "900.0 s", NO_VALUE, NO_VALUE]
    assert labels(table, "emergency") == ["trips", "unfinished", "travel time", "time loss", "stops per trip",
                                          "time lost at signals"]


def test_four_arms_with_the_baseline_first() -> None:
    runs = [make_run(priority=True, corridors=True), make_run(priority=True), make_run(corridors=True), make_run()]
    lines = format_table(runs).splitlines()
    assert lines[2].split() == ["priority", "corridors"]
    assert lines[3].split() == ["off", "on", DELTA, "95", "%", "CI", "on", DELTA, "95", "%", "CI", "on", DELTA, "95",
                                "%", "CI"]


def test_without_a_baseline_the_table_has_no_change_column() -> None:
    table = format_table([make_run(priority=True), make_run(priority=True, corridors=True)])
    assert DELTA not in table
    assert row(table, "bus", "time lost at signals") == ["time lost at signals", "20.0 s", "20.0 s"]
    single = format_table([make_run()])
    assert DELTA not in single
    assert row(single, "bus", "trips") == ["trips", "40"]


def test_arms_of_different_seeds_are_told_apart_in_the_header() -> None:
    table = format_table([make_run(), make_run(priority=True, seed=8)])
    assert "seeds 7, 8" in table.splitlines()[0]
    assert table.splitlines()[3].split() == ["off", "on"]
    assert table.splitlines()[4].split() == ["seed", "7", "seed", "8"]
    assert DELTA not in table


def test_old_runs_without_the_new_measures_still_make_a_table(off_and_on: list[dict]) -> None:
    for run in off_and_on:
        for key in ("person_delay", "grant_use", "offsets", "traffic", "outputs"):
            del run[key]
        del run["priority_requests"]["plan_changes"]
    table = format_table(off_and_on)
    assert "offset error" not in table.splitlines()
    assert labels(table, "priority engine") == ["requests", "granted", "errors"]
    assert comparison(off_and_on)["comparisons"][0]["headline"]["person_hours_lost_change_pct"] is None


# -- files ----------------------------------------------------------------------------------------


def test_write_report_writes_the_comparison_and_two_plots(off_and_on: list[dict], tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    out = tmp_path / "reports" / "city" / "comparison.json"
    assert write_report(off_and_on, str(out)) == out
    assert json.loads(out.read_text()) == json.loads(json.dumps(comparison(off_and_on)))
    for name in ("comparison-bus-time-loss.png", "comparison-time-space.png"):
        assert (out.parent / name).read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert sorted(path.name for path in out.parent.iterdir()) == [
        "comparison-bus-time-loss.png", "comparison-time-space.png", "comparison.json"]


def test_paired_seeds_are_written_with_their_means_and_plots(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    runs = seeds_of((20.0, 12.0), (25.0, 20.0))
    out = write_report(runs, tmp_path / "report.json")
    document = json.loads(out.read_text())
    assert document["seeds"] == [1, 2]
    assert document["comparisons"][0]["classes"]["bus"]["signal_time_loss_s"]["difference_ci95"] is not None
    assert sorted(path.name for path in tmp_path.iterdir()) == ["report-bus-time-loss.png", "report-time-space.png",
                                                               "report.json"]


def test_runs_that_do_not_compare_are_written_alone(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    runs = [make_run(priority=True), make_run(priority=True, corridors=True, with_time_space=False)]
    with caplog.at_level(logging.WARNING, logger="pilotage.adapters.sumo.report"):
        out = write_report(runs, tmp_path / "runs.json")
    document = json.loads(out.read_text())
    assert document["runs"] == runs
    assert [arm["label"] for arm in document["arms"]] == ["priority on", "on"]
    assert document["arms"][0]["mean"]["classes"]["bus"]["signal_time_loss_s"] == 20.0
    assert document["outputs"] == []
    assert "written without comparison: expected one baseline run" in caplog.text


def test_a_plot_with_nothing_to_show_is_not_written(off_and_on: list[dict], tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    stale = tmp_path / "report-time-space.png"
    stale.write_bytes(b"an older report")
    for run in off_and_on:
        run["time_space"] = None
    write_report(off_and_on, tmp_path / "report.json")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["report-bus-time-loss.png", "report.json"]


def test_without_matplotlib_the_json_is_written_and_the_plots_skipped(
        off_and_on: list[dict], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with caplog.at_level(logging.WARNING, logger="pilotage.adapters.sumo.report"):
        out = write_report(off_and_on, tmp_path / "report.json")
    assert "pip install 'pilotage[plot]'" in caplog.text
    assert [path.name for path in tmp_path.iterdir()] == ["report.json"]
    assert json.loads(out.read_text())["comparisons"][0]["label"] == "on"


def test_a_report_path_must_end_in_json(off_and_on: list[dict], tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match=r"expected a report path ending in \.json") as error:
        write_report(off_and_on, tmp_path / "report.txt")
    assert error.value.field == "out"
    assert list(tmp_path.iterdir()) == []


# -- headlines that can be trusted ----------------------------------------------------------------


def with_trams(run: dict, *, trips: int, unfinished: int = 0, signal_time_loss_s: float = 50.0) -> dict:
    """``run`` with a tram class of ``trips`` ended and ``unfinished`` trips losing
    ``signal_time_loss_s`` each at signals."""
    run["classes"]["tram"] = {"trips": trips, "unfinished": unfinished, "travel_time_s": 600.0, "time_loss_s": 80.0,
                              "stops": 1.0, "signal_time_loss_s": signal_time_loss_s, "person_hours_lost": 10.0}
    return run


def headline_log(runs: list[dict], caplog: pytest.LogCaptureFixture) -> str:
    """The headline line :func:`comparison` logs for the first arm compared."""
    with caplog.at_level(logging.INFO, logger="pilotage.adapters.sumo.report"):
        comparison(runs)
    return next(record.getMessage() for record in caplog.records if " vs off over " in record.getMessage())


def test_the_headline_gives_trams_beside_buses_and_each_figure_its_trips(off_and_on: list[dict]) -> None:
    with_trams(off_and_on[0], trips=20, unfinished=10, signal_time_loss_s=50.0)
    with_trams(off_and_on[1], trips=24, unfinished=8, signal_time_loss_s=70.0)
    headline = comparison(off_and_on)["comparisons"][0]["headline"]
    assert headline["tram_signal_time_loss_change_pct"] == pytest.approx(40.0)
    assert headline["tram_signal_time_loss_change_pct_ci95"] is None
    assert headline["bus_signal_time_loss_change_pct"] == pytest.approx(-40.0)
    # Trips that set off (ended or not), the fewer of the two arms, summed over the paired seeds.
    assert headline["tram_signal_time_loss_trips"] == 30
    assert headline["bus_signal_time_loss_trips"] == 42
    assert headline["car_time_loss_trips"] == 510
    assert headline["person_hours_lost_trips"] == 42 + 510 + 2 + 30
    assert headline["min_trips"] == MIN_HEADLINE_TRIPS
    assert not any(headline[f"{name}_too_few"] for name in ("bus_signal_time_loss", "tram_signal_time_loss",
                                                            "car_time_loss", "person_hours_lost"))


def test_below_the_minimum_sample_the_headline_gives_no_percentage(off_and_on: list[dict],
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    """One bus trip once made -86 %: a figure over fewer than MIN_HEADLINE_TRIPS trips in an arm says
    so, in the report and in the line logged, instead of a percentage."""
    for run, loss_s in zip(off_and_on, (30.0, 4.0), strict=True):
        run["classes"]["bus"].update(trips=1, unfinished=2, signal_time_loss_s=loss_s)
    headline = comparison(off_and_on)["comparisons"][0]["headline"]
    assert headline["bus_signal_time_loss_change_pct"] is None
    assert headline["bus_signal_time_loss_change_pct_ci95"] is None
    assert headline["bus_signal_time_loss_trips"] == 3
    assert headline["bus_signal_time_loss_too_few"] is True
    # The change itself is still in the classes' details.
    (compared,) = comparison(off_and_on)["comparisons"]
    assert compared["classes"]["bus"]["signal_time_loss_s"]["change_pct"] == pytest.approx(-86.7, abs=0.1)
    line = headline_log(off_and_on, caplog)
    assert f"bus time loss at signals: 3 trips, too few for a percentage (under {MIN_HEADLINE_TRIPS})" in line
    assert "-86" not in line
    assert "tram time loss at signals: no trips" in line
    assert "car time loss +10.0 % over 510 trips" in line


def test_the_headline_logged_gives_each_change_its_interval_or_says_there_is_none(
        caplog: pytest.LogCaptureFixture) -> None:
    runs = seeds_of((20.0, 12.0), (25.0, 20.0), (30.0, 21.0))
    interval = comparison(runs)["comparisons"][0]["headline"]["bus_signal_time_loss_change_pct_ci95"]
    line = headline_log(runs, caplog)
    assert line.startswith("priority on vs off over 3 seeds: ")
    assert f"bus time loss at signals -30.0 % [{interval[0]:+.1f}, {interval[1]:+.1f}] over 126 trips" in line
    assert "car time loss +0.0 % [+0.0, +0.0] over 1,530 trips" in line
    caplog.clear()
    one = headline_log([make_run(), make_run(priority=True, bus_signal_time_loss_s=12.0)], caplog)
    assert one.startswith("priority on vs off over 1 seed (no confidence interval with one seed): ")
    assert "bus time loss at signals -40.0 % over 42 trips" in one


def test_with_one_seed_the_table_says_why_no_change_has_an_interval(off_and_on: list[dict]) -> None:
    footer = next(line for line in format_table(off_and_on).splitlines()
                  if line.startswith(f"{DELTA}: the mean change from off over the paired seeds"))
    assert "none with one seed" in footer
    assert len(footer) <= 100
    assert "none with one seed" not in format_table(seeds_of((20.0, 12.0), (25.0, 20.0)))


def test_the_table_says_how_the_bus_stops_are_timed(off_and_on: list[dict]) -> None:
    for run in off_and_on:
        run["buses"]["schedule"]["timetable"] = "until"
    assert row(format_table(off_and_on), "bus schedule", "timed stops (until)")[1:3] == ["800", "800"]
    for run in off_and_on:
        run["buses"]["schedule"].update(timetable="none", stops=0)
    assert labels(format_table(off_and_on), "bus schedule")[0] == "timed stops (none: lateness unknown)"
    assert comparison(off_and_on)["comparisons"][0]["headline"]["bus_timetable"] == "none"


def test_below_the_minimum_sample_the_table_gives_the_trips_instead_of_a_change(off_and_on: list[dict]) -> None:
    for run, loss_s in zip(off_and_on, (30.0, 4.0), strict=True):
        run["classes"]["bus"].update(trips=1, unfinished=2, signal_time_loss_s=loss_s)
    table = format_table(off_and_on)
    assert row(table, "bus", "time lost at signals")[-2:] == ["3 trips", NO_VALUE]
    assert "-86" not in table
    assert f"a class with under {MIN_HEADLINE_TRIPS} trips in an arm: its trips, not a change" in table
    assert row(table, "car", "time loss")[-2].endswith("%")
