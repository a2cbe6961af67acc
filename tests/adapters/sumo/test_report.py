"""The report of a SUMO closed-loop comparison, on small hand-made runs."""

import json
import logging
import sys
from pathlib import Path

import pytest

from pilotage.adapters.sumo.report import NO_VALUE, comparison, format_table, write_report
from pilotage.core import InvalidInputError

DELTA = "\N{GREEK CAPITAL LETTER DELTA}"


def make_run(*, priority: bool = False, corridors: bool = False, seed: int = 7, scenario: str = "city.sumocfg",
             bus_signal_time_loss_s: float | None = 20.0, car_time_loss_s: float | None = 50.0,
             emergency_travel_times_s: dict[str, float | None] | None = None, violations: int = 0,
             with_time_space: bool = True) -> dict:
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
                    "signal_time_loss_s": bus_signal_time_loss_s},
            "car": {"trips": 500, "unfinished": 10, "travel_time_s": 400.0, "time_loss_s": car_time_loss_s,
                    "stops": 1.25, "signal_time_loss_s": None},
            "emergency": {"trips": 2, "unfinished": 0, "travel_time_s": 350.0, "time_loss_s": 40.0, "stops": 0.5,
                          "signal_time_loss_s": 15.0},
        },
        "buses": {"signal_time_loss_s": bus_losses_s,
                  "schedule": {"stops": 800, "mean_delay_s": 95.0, "mean_abs_delay_s": 110.0, "on_time_share": 0.8,
                               "late_share": 0.15}},
        "emergency": {"trips": [{"vehicle": vehicle, "depart_s": 600.0, "travel_time_s": travel_time_s,
                                 "length_m": 4000.0, "crossings": 6, "planned": 6 if corridors else 0, "refused": 0}
                                for vehicle, travel_time_s in emergency_travel_times_s.items()]},
        "priority_requests": {"requests": 120 if priority else 0, "granted": 80 if priority else 0,
                            "by_strategy": {"extension": 50, "early_green": 30} if priority else {},
                            "denied": {"conflicting request": 40} if priority else {},
                            "checkouts": 100 if priority else 0, "errors": {}},
        "corridor_requests": {"opened": 2 if corridors else 0, "closed": 2 if corridors else 0, "updates": 10,
                            "reroutes": 0, "errors": {}},
        "safety": {"traffic_lights": 12, "state_changes": 4000 if on else 3600, "refused_states": 0,
                   "violations": violations, "by_rule": {"intergreen": violations}},
        "time_space": time_space if with_time_space else None,
    }


@pytest.fixture
def off_and_on() -> list[dict]:
    """Baseline and a run with both engines on: bus signal time loss 20 -> 12 s, car time loss 50 -> 55 s."""
    return [make_run(),
            make_run(priority=True, corridors=True, bus_signal_time_loss_s=12.0, car_time_loss_s=55.0,
                     emergency_travel_times_s={"fire-1": 240.0, "fire-2": 320.0})]


# -- comparison -----------------------------------------------------------------------------------


def test_the_headline_gives_the_relative_changes_from_the_baseline(off_and_on: list[dict]) -> None:
    result = comparison(off_and_on)
    assert (result["scenario"], result["seed"], result["baseline"]) == ("city.sumocfg", 7, 0)
    (compared,) = result["comparisons"]
    assert (compared["index"], compared["label"]) == (1, "on")
    headline = compared["headline"]
    assert headline["bus_signal_time_loss_change_pct"] == pytest.approx(-40.0)
    assert headline["car_time_loss_change_pct"] == pytest.approx(10.0)
    assert headline["emergency_travel_time_change_pct"] == pytest.approx(-20.0)
    assert headline["emergency_trips_matched"] == 2
    assert headline["violations"] == 0


def test_each_metric_of_each_class_has_its_baseline_difference_and_change(off_and_on: list[dict]) -> None:
    (compared,) = comparison(off_and_on)["comparisons"]
    assert list(compared["classes"]) == ["bus", "emergency", "car"]
    assert compared["classes"]["bus"]["signal_time_loss_s"] == {"baseline": 20.0, "run": 12.0, "difference": -8.0,
                                                               "change_pct": pytest.approx(-40.0)}
    assert set(compared["classes"]["car"]) == {"trips", "unfinished", "travel_time_s", "time_loss_s", "stops",
                                               "signal_time_loss_s"}
    assert compared["classes"]["car"]["trips"]["change_pct"] == 0.0
    assert compared["safety"]["state_changes"]["change_pct"] == pytest.approx(100.0 * 400 / 3600)
    assert "by_rule" not in compared["safety"]
    assert compared["bus_schedule"]["on_time_share"]["difference"] == 0.0


def test_none_and_a_zero_baseline_give_no_change(off_and_on: list[dict]) -> None:
    baseline, run = off_and_on
    baseline["classes"]["bus"]["travel_time_s"] = None
    baseline["classes"]["car"]["stops"] = 0.0
    run["classes"]["car"]["stops"] = 0.5
    run["classes"]["emergency"]["unfinished"] = 0
    del run["classes"]["emergency"]["time_loss_s"]
    (compared,) = comparison(off_and_on)["comparisons"]
    assert compared["classes"]["bus"]["travel_time_s"] == {"baseline": None, "run": 900.0, "difference": None,
                                                          "change_pct": None}
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
    assert compared["classes"]["tram"]["trips"] == {"baseline": None, "run": 5, "difference": None, "change_pct": None}
    assert compared["headline"]["car_time_loss_change_pct"] is None


def test_emergency_travel_time_is_compared_over_the_vehicles_that_arrived_in_both_runs() -> None:
    runs = [make_run(emergency_travel_times_s={"fire-1": 300.0, "fire-2": 400.0, "ambulance-1": 500.0}),
            make_run(priority=True, emergency_travel_times_s={"fire-1": 240.0, "fire-2": 320.0, "ambulance-1": None,
                                                              "ambulance-2": 100.0})]
    (compared,) = comparison(runs)["comparisons"]
    assert compared["emergency"] == {"matched": 2, "travel_time_s": {"baseline": 350.0, "run": 280.0,
                                                                      "difference": -70.0,
                                                                      "change_pct": pytest.approx(-20.0)}}


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


def test_runs_of_different_seeds_or_scenarios_do_not_compare() -> None:
    with pytest.raises(InvalidInputError, match=r"got city\.sumocfg seed 7, city\.sumocfg seed 8: compare"):
        comparison([make_run(), make_run(priority=True, seed=8)])
    with pytest.raises(InvalidInputError, match=r"other\.sumocfg"):
        comparison([make_run(), make_run(priority=True, scenario="other.sumocfg")])


def test_a_run_needs_its_switches(off_and_on: list[dict]) -> None:
    off_and_on[1]["priority"] = {"requests": 3}
    with pytest.raises(InvalidInputError, match="priority_requests") as error:
        comparison(off_and_on)
    assert error.value.field == "priority"


def test_safety_violations_are_logged_as_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="pilotage.adapters.sumo.report"):
        comparison([make_run(), make_run(priority=True, violations=2)])
    assert "priority on vs off: bus time loss at signals +0.0 %" in caplog.text
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == [
        "priority on: 2 safety violations ({'intergreen': 2})"]


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


def test_the_table_has_a_column_per_run_and_the_change(off_and_on: list[dict]) -> None:
    table = format_table(off_and_on)
    lines = table.splitlines()
    assert lines[0] == "SUMO closed loop: city.sumocfg, seed 7, 0.0-3600.0 s simulated in steps of 1.0 s"
    assert lines[2].split() == ["off", "on", DELTA]
    assert row(table, "bus", "time lost at signals") == ["time lost at signals", "20.0 s", "12.0 s", "-40.0 %"]
    assert row(table, "car", "time loss") == ["time loss", "50.0 s", "55.0 s", "+10.0 %"]
    assert row(table, "car", "trips") == ["trips", "500", "500", "+0.0 %"]
    assert row(table, "car", "stops per trip") == ["stops per trip", "1.25", "1.25", "+0.0 %"]
    assert row(table, "bus schedule", "on time") == ["on time", "80.0 %", "80.0 %", "+0.0 pp"]
    assert row(table, "emergency trips", "travel time (2 matched)") == ["travel time (2 matched)", "350.0 s",
                                                                       "280.0 s", "-20.0 %"]
    assert row(table, "priority engine", "requests") == ["requests", "0", "120", "+120"]
    assert row(table, "priority engine", "granted") == ["granted", "0", "80", "+80"]
    assert row(table, "safety", "state changes") == ["state changes", "3,600", "4,000", "+400"]
    assert row(table, "safety", "violations") == ["violations", "0", "0", "+0"]
    assert row(table, "safety", "refused states") == ["refused states", "0", "0", "+0"]
    assert all(len(line) <= 100 for line in lines)


def test_the_table_shows_none_as_a_dash(off_and_on: list[dict]) -> None:
    off_and_on[0]["classes"]["bus"]["travel_time_s"] = None
    table = format_table(off_and_on)
    assert row(table, "bus", "travel time") == ["travel time", NO_VALUE, "900.0 s", NO_VALUE]
    assert labels(table, "car") == ["trips", "unfinished", "travel time", "time loss", "stops per trip"]


def test_four_runs_fit_in_100_columns_with_the_baseline_first() -> None:
    runs = [make_run(priority=True, corridors=True), make_run(priority=True), make_run(corridors=True), make_run()]
    for run in runs:
        run["classes"]["bus"]["travel_time_s"] = 12345.6
    lines = format_table(runs).splitlines()
    assert lines[2].split() == ["priority", "corridors"]
    assert lines[3].split() == ["off", "on", DELTA, "on", DELTA, "on", DELTA]
    assert max(len(line) for line in lines) <= 100


def test_without_a_baseline_the_table_has_no_change_column() -> None:
    table = format_table([make_run(priority=True), make_run(priority=True, corridors=True)])
    assert DELTA not in table
    assert row(table, "bus", "time lost at signals") == ["time lost at signals", "20.0 s", "20.0 s"]
    single = format_table([make_run()])
    assert DELTA not in single
    assert row(single, "bus", "trips") == ["trips", "40"]


def test_runs_of_several_seeds_are_told_apart_in_the_header() -> None:
    table = format_table([make_run(), make_run(priority=True, seed=8)])
    assert "seed 7, 8" in table.splitlines()[0]
    assert table.splitlines()[3].split() == ["off", "on"]
    assert table.splitlines()[4].split() == ["seed", "7", "seed", "8"]
    assert DELTA not in table


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


def test_runs_that_do_not_compare_are_written_alone(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    runs = [make_run(priority=True), make_run(priority=True, corridors=True, with_time_space=False)]
    with caplog.at_level(logging.WARNING, logger="pilotage.adapters.sumo.report"):
        out = write_report(runs, tmp_path / "runs.json")
    assert json.loads(out.read_text()) == {"runs": runs}
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
