"""Timetables, SUMO's two ways of timing a stop: ``arrival`` and ``until`` (the departure), on a
small scenario built here (one signalised junction, a bus every 30 s stopping just past it): the
lateness the buses ask for priority with, the schedule measured at their stops, and a scenario with
neither saying once that lateness is unknown."""

import logging
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from pilotage.adapters.sumo.closed_loop import LoopOptions, compare, simulate, stop_lateness_s
from pilotage.adapters.sumo.report import format_table

pytest.importorskip("libsumo", reason="the closed loop needs the sim extra: pip install 'pilotage[sim]'")

#: SUMO's value of a time a stop does not have.
UNSET_S = -1073741824.0
#: The denial of a bus not late enough for conditional priority.
NOT_LATE = "not late enough for priority"


def junction_scenario(folder: Path, stop_times: str) -> Path:
    """A 3 x 3 grid of 200-m roads whose centre junction (B1) alone has a traffic light, and for
    300 s a bus every 30 s from A1 through B1 to C1, stopping 20 s at a stop 100 m past the light;
    ``stop_times``: the stop's timing attributes (SUMO shifts them by each bus's departure). Returns
    the SUMO configuration."""
    sumo = pytest.importorskip("sumo", reason="the SUMO tools come with the sim extra: pip install 'pilotage[sim]'")
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run([str(Path(sumo.SUMO_HOME) / "bin" / "netgenerate"), "--grid", "--grid.number", "3",
                    "--grid.length", "200", "--tls.set", "B1", "--no-turnarounds", "true", "--output-file",
                    "net.net.xml"], cwd=folder, check=True, capture_output=True)
    (folder / "stops.add.xml").write_text(
        '<additional>\n    <busStop id="stop-1" lane="B1C1_0" startPos="100" endPos="120"/>\n</additional>\n')
    (folder / "buses.rou.xml").write_text(
        '<routes>\n    <vType id="bus" vClass="bus"/>\n    <route id="line" edges="A1B1 B1C1"/>\n'
        '    <flow id="bus" type="bus" route="line" begin="0" end="300" period="30">\n'
        f'        <stop busStop="stop-1" duration="20" {stop_times}/>\n    </flow>\n</routes>\n')
    sumocfg = folder / "run.sumocfg"
    sumocfg.write_text('<configuration>\n    <input>\n        <net-file value="net.net.xml"/>\n'
                       '        <route-files value="buses.rou.xml"/>\n'
                       '        <additional-files value="stops.add.xml"/>\n    </input>\n</configuration>\n')
    return sumocfg


def test_the_lateness_of_a_stop_is_by_its_arrival_else_by_its_until() -> None:
    # Expected at the stop at 100 s, dwelling 20 s: due to arrive at 90 s, or to leave at 110 s.
    assert stop_lateness_s(SimpleNamespace(intendedArrival=90.0, until=UNSET_S, duration=20.0), 100.0) == 10.0
    assert stop_lateness_s(SimpleNamespace(intendedArrival=UNSET_S, until=110.0, duration=20.0), 100.0) == 10.0
    # Early: it would leave 30 s before its until (SUMO then holds it there).
    assert stop_lateness_s(SimpleNamespace(intendedArrival=UNSET_S, until=150.0, duration=20.0), 100.0) == -30.0
    # Both: the arrival is the timetable's own; a stop without a dwell leaves as it arrives.
    assert stop_lateness_s(SimpleNamespace(intendedArrival=95.0, until=150.0, duration=20.0), 100.0) == 5.0
    assert stop_lateness_s(SimpleNamespace(intendedArrival=UNSET_S, until=90.0, duration=UNSET_S), 100.0) == 10.0
    assert stop_lateness_s(SimpleNamespace(intendedArrival=UNSET_S, until=UNSET_S, duration=20.0), 100.0) is None


@pytest.mark.parametrize(("until_s", "late"), [(5.0, True), (400.0, False)])
def test_conditional_priority_reads_the_lateness_of_stops_timed_with_until(tmp_path: Path, until_s: float,
                                                                           late: bool) -> None:
    """The buses reach the stop about a minute after they set off: due to leave 5 s after it, they
    are over a minute late and pass the 10-s threshold; due 400 s after, they are early and none does."""
    sumocfg = junction_scenario(tmp_path, f'until="{until_s:g}"')
    run = simulate(sumocfg, LoopOptions(duration_s=300.0, corridors=False, min_lateness_s=10.0, time_space=False))
    requests = run["priority_requests"]
    assert requests["requests"] > 20
    not_late = requests["denied"].get(NOT_LATE, 0)
    if late:
        assert not_late == 0
        assert requests["granted"] > 0
    else:
        assert not_late == requests["requests"]


@pytest.mark.parametrize(("stop_times", "timetable"), [('arrival="25"', "arrival"), ('until="45"', "until"),
                                                       ("", "none")])
def test_the_bus_schedule_is_measured_at_stops_timed_with_arrival_or_until(tmp_path: Path, stop_times: str,
                                                                          timetable: str) -> None:
    run = simulate(junction_scenario(tmp_path, stop_times), LoopOptions(duration_s=300.0, priority=False,
                                                                       corridors=False, time_space=False))
    schedule = run["buses"]["schedule"]
    assert schedule["timetable"] == timetable
    if timetable == "none":
        assert schedule["stops"] == 0
        assert schedule["mean_delay_s"] is None
        return
    assert schedule["stops"] >= 5
    assert schedule["mean_delay_s"] is not None
    if timetable == "until":
        # The departure's delay: SUMO holds an early bus until its until, so it is never early.
        assert schedule["mean_delay_s"] >= 0.0
        assert schedule["on_time_share"] is not None


def test_without_arrival_or_until_lateness_is_unknown_and_said_once(tmp_path: Path,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    sumocfg = junction_scenario(tmp_path, "")
    with caplog.at_level(logging.WARNING, logger="pilotage"):
        runs = compare(sumocfg, LoopOptions(duration_s=120.0, corridors=False, min_lateness_s=60.0,
                                            time_space=False))
    said = [record.getMessage() for record in caplog.records if "lateness unknown" in record.getMessage()]
    assert len(said) == 1
    assert "run.sumocfg" in said[0]
    assert "arrival or until" in said[0]
    assert "--min-lateness 60 s denies every bus" in said[0]
    assert "no headways" in said[0]
    assert [run["buses"]["schedule"]["timetable"] for run in runs] == ["none", "none"]
    assert "  timed stops (none: lateness unknown)  " in format_table(runs)
