"""A SUMO scenario built from Milan's GTFS feed and OSM extract (the shared data) with SUMO's own
tools: a bus and a tram route over ten minutes, built and driven by the engine in a closed loop; the
cache; the errors; and, marked slow, every bus and tram route of the city over an hour."""

import csv
import datetime
import io
import zipfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from pilotage.adapters.sumo import gtfs_scenario
from pilotage.adapters.sumo.check import check_scenario
from pilotage.adapters.sumo.closed_loop import LoopOptions, simulate
from pilotage.adapters.sumo.gtfs_scenario import (
    CARS_FILE,
    MANIFEST_FILE,
    NET_FILE,
    ROUTE_PARAM,
    TRIP_PARAM,
    build_gtfs_scenario,
    transit_vehicles,
)
from pilotage.core import DataFileError, InvalidInputError

libsumo = pytest.importorskip("libsumo", reason="the closed loop needs the sim extra: pip install 'pilotage[sim]'")

#: A Monday of the feed's service, and 07:00 to 07:10 of it (s).
MONDAY = datetime.date(2014, 10, 20)
SEVEN_S = 7 * 3600.0
TEN_MINUTES_S = 600.0
#: Bus 76 (about 2 km across) and tram 24 (about 5 km long), in the south of the city.
BUS_AND_TRAM = ("B76", "T24")


@pytest.fixture(scope="module")
def milano(shared_data: Callable[..., Path]) -> tuple[Path, Path]:
    """The OSM extract of Milan's roads and the ATM feed subset."""
    folder = shared_data("gtfs-osm", "milano")
    return folder / "milan_italy_small.highway.osm.xz", folder / "milano_small_gtfs.zip"


@pytest.fixture(scope="module")
def gtfs2pt() -> None:
    """Skips a test that runs gtfs2pt.py when a Python package it imports is missing."""
    pytest.importorskip("sumo", reason="the SUMO tools come with the sim extra: pip install 'pilotage[sim]'")
    pytest.importorskip("rtree", reason="SUMO's gtfs2pt.py needs rtree: pip install rtree")
    pytest.importorskip("pandas", reason="SUMO's gtfs2pt.py needs pandas: pip install pandas")


@pytest.fixture(scope="module")
def bus_and_tram(milano: tuple[Path, Path], gtfs2pt: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The scenario of bus 76 and tram 24 from 07:00 to 07:10 on a Monday."""
    osm, feed = milano
    return build_gtfs_scenario(osm, feed, tmp_path_factory.mktemp("gtfs-scenario"), date=MONDAY, begin_s=SEVEN_S,
                               end_s=SEVEN_S + TEN_MINUTES_S, routes=BUS_AND_TRAM)


def feed_trips(feed: Path) -> dict[str, str]:
    """trip_id -> route_id of every trip of a GTFS feed."""
    with zipfile.ZipFile(feed) as zip_file, zip_file.open("trips.txt") as raw:
        return {row["trip_id"]: row["route_id"] for row in csv.DictReader(io.TextIOWrapper(raw, encoding="utf-8-sig"))}


def test_the_buses_and_trams_are_the_feeds_trips(bus_and_tram: Path, milano: tuple[Path, Path]) -> None:
    vehicles = transit_vehicles(bus_and_tram)
    trips = feed_trips(milano[1])
    # Every trip with two stops or more in the window: 5 of bus 76 and 10 of tram 24 (3 of them,
    # already running at 07:00, leave their first stop in the window within its first 10 s).
    assert len(vehicles) == 15
    assert Counter(vehicle.vclass for vehicle in vehicles.values()).keys() == {"bus", "tram"}
    for vehicle in vehicles.values():
        assert trips[vehicle.trip_id] == vehicle.route_id
        # The k-th trip of its route that day, on day 0: within the protocol's 64 characters.
        route, k, day = vehicle.vehicle.split(".")
        assert route == vehicle.route_id and int(k) > 0 and day == "0"
        assert vehicle.route_id in BUS_AND_TRAM
        assert vehicle.line == vehicle.route_id[1:]
        assert vehicle.vclass == {"B": "bus", "T": "tram"}[vehicle.route_id[0]]
        assert SEVEN_S <= vehicle.depart_s < SEVEN_S + TEN_MINUTES_S
    # Tram 24's trip_ids hold spaces, which SUMO refuses in an id.
    assert any(" " in vehicle.trip_id for vehicle in vehicles.values())


def test_the_engine_drives_the_lights_the_buses_and_trams_cross(bus_and_tram: Path, milano: tuple[Path, Path]) -> None:
    """The loop, the timetable and the positions from one feed: the buses and trams send their
    position and GTFS trip; the engine follows them on the feed's trips, matched onto the scenario's
    network, and asks for their priority."""
    _, feed = milano
    check = check_scenario(bus_and_tram)
    assert check["error"] is None
    assert check["timetable"] == "arrival"
    assert check["transit"].keys() == {"bus", "tram"}
    # While it runs, each bus and tram on the road says which GTFS trip and route it runs.
    seen: dict[str, tuple[str, str]] = {}

    def read_trips(_now_s: float) -> None:
        for vehicle in libsumo.vehicle.getIDList():
            if libsumo.vehicle.getVehicleClass(vehicle) in ("bus", "tram"):
                seen[vehicle] = (libsumo.vehicle.getParameter(vehicle, TRIP_PARAM),
                                 libsumo.vehicle.getParameter(vehicle, ROUTE_PARAM))

    run = simulate(bus_and_tram, LoopOptions(duration_s=TEN_MINUTES_S, corridors=False, time_space=False,
                                             step_listener=read_trips, requests_from="positions",
                                             timetable=str(feed), timetable_date=MONDAY))
    vehicles = transit_vehicles(bus_and_tram)
    assert seen and seen == {vehicle: (vehicles[vehicle].trip_id, vehicles[vehicle].route_id) for vehicle in seen}
    assert run["begin_s"] == SEVEN_S
    assert run["safety"]["violations"] == 0
    assert run["safety"]["traffic_lights"] == check["driven"] > 100
    classes = run["classes"]
    for vclass in ("bus", "tram", "car"):
        assert classes[vclass]["trips"] + classes[vclass]["unfinished"] > 0
    # The actuated programs' green ranges leave the engine room to serve them.
    requests = run["priority_requests"]
    assert requests["errors"] == {}
    assert requests["requests"] > 10 and requests["plan_changes"] > 0
    assert run["buses"]["schedule"]["stops"] > 0


def test_a_second_build_reuses_what_did_not_change(bus_and_tram: Path, milano: tuple[Path, Path]) -> None:
    folder = bus_and_tram.parent
    built_ns = {name: (folder / name).stat().st_mtime_ns for name in (NET_FILE, CARS_FILE, MANIFEST_FILE)}
    again = build_gtfs_scenario(*milano, folder, date=MONDAY, begin_s=SEVEN_S, end_s=SEVEN_S + TEN_MINUTES_S,
                                routes=BUS_AND_TRAM)
    assert again == bus_and_tram
    assert {name: (folder / name).stat().st_mtime_ns for name in built_ns} == built_ns
    # Another seed draws other cars on the same network, and the same buses and trams.
    vehicles = transit_vehicles(folder)
    build_gtfs_scenario(*milano, folder, date=MONDAY, begin_s=SEVEN_S, end_s=SEVEN_S + TEN_MINUTES_S,
                        routes=BUS_AND_TRAM, seed=7)
    assert (folder / NET_FILE).stat().st_mtime_ns == built_ns[NET_FILE]
    assert (folder / CARS_FILE).stat().st_mtime_ns != built_ns[CARS_FILE]
    assert transit_vehicles(folder) == vehicles


@pytest.mark.parametrize(("arguments", "field", "message"), [
    ({"routes": ["B999"]}, "routes", "no route 'B999'"),
    ({"routes": ["M2"]}, "routes", "no road to run on"),
    ({"routes": "B76"}, "routes", "list of GTFS route_ids"),
    ({"date": datetime.date(2015, 1, 1)}, "date", "2014-10-19 to 2014-11-01"),
    ({"begin_s": 3 * 3600.0, "end_s": 3 * 3600.0 + 60}, "date", "between 03:00:00 and 03:01:00"),
    ({"end_s": SEVEN_S}, "end_s", "after begin_s"),
    ({"end_s": 90_000.0}, "end_s", "one service day"),
    ({"car_period_s": 0.0}, "car_period_s", "> 0"),
    ({"seed": -1}, "seed", "2\\*\\*31"),
])
def test_arguments_out_of_range_are_refused_before_any_tool_runs(milano: tuple[Path, Path], tmp_path: Path,
                                                                 arguments: dict[str, object], field: str,
                                                                 message: str) -> None:
    options: dict[str, object] = {"date": MONDAY, "begin_s": SEVEN_S, "end_s": SEVEN_S + TEN_MINUTES_S,
                                  "routes": ["B76"]} | arguments
    with pytest.raises(InvalidInputError, match=message) as raised:
        build_gtfs_scenario(*milano, tmp_path, **options)  # type: ignore[arg-type]
    assert raised.value.field == field
    assert not (tmp_path / MANIFEST_FILE).exists()


def test_a_tool_that_fails_says_so_with_its_messages(milano: tuple[Path, Path], tmp_path: Path) -> None:
    broken = tmp_path / "broken.osm"
    broken.write_text("<osm><node id='1' lat='45.4' lon='9.1'>\n")
    with pytest.raises(DataFileError, match=r"netconvert failed \(exit status \d+\); expected an OSM XML extract"
                                            r"(.|\n)*Its last messages:\n(.|\n)*Error"):
        build_gtfs_scenario(broken, milano[1], tmp_path / "scenario", date=MONDAY, begin_s=SEVEN_S,
                            end_s=SEVEN_S + TEN_MINUTES_S, routes=["B76"])


def test_missing_sumo_tools_say_how_to_install_them(milano: tuple[Path, Path], tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    def no_sumo() -> None:
        raise ImportError("SUMO is not installed: pip install 'pilotage[sim]'")

    monkeypatch.setattr(gtfs_scenario, "_sumo", no_sumo)
    with pytest.raises(DataFileError, match=r"needs SUMO's tools: .*pip install 'pilotage\[sim\]'"):
        build_gtfs_scenario(*milano, tmp_path, date=MONDAY, begin_s=SEVEN_S, end_s=SEVEN_S + TEN_MINUTES_S)


@pytest.mark.slow
def test_every_bus_and_tram_route_of_the_city_for_an_hour(milano: tuple[Path, Path], gtfs2pt: None,
                                                           tmp_path: Path) -> None:
    sumocfg = build_gtfs_scenario(*milano, tmp_path, date=MONDAY, begin_s=SEVEN_S, end_s=SEVEN_S + 3600.0)
    vehicles = transit_vehicles(sumocfg)
    routes = Counter(vehicle.route_id for vehicle in vehicles.values())
    # Every route that runs on a Monday morning (151 and 163 run on holidays only) has its vehicles.
    assert routes.keys() == {"B325", "B351", "B47", "B71", "B76", "B90", "B91", "T12", "T16", "T24", "T27", "T3"}
    # Tram 12's trip_ids are 68 characters long: its vehicles' ids are within the protocol's 64.
    assert max(len(vehicle) for vehicle in vehicles) <= 64
    run = simulate(sumocfg, LoopOptions(duration_s=TEN_MINUTES_S, corridors=False, time_space=False))
    assert run["safety"]["violations"] == 0
    assert run["safety"]["traffic_lights"] > 500
    assert run["classes"]["bus"]["trips"] + run["classes"]["bus"]["unfinished"] > 20
    assert run["classes"]["tram"]["trips"] + run["classes"]["tram"]["unfinished"] > 20

