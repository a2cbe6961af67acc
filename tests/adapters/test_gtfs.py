"""GTFS feeds: reading a real one (Transcollines), a small feed written here matched onto the embedded
city (with and without shapes), bad feeds, and Milan's buses and trams on Milan's roads."""

import datetime as dt
import json
import math
import zipfile
from collections.abc import Callable
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from pilotage.adapters.gtfs import (
    CheckReport,
    check_feed,
    check_geojson,
    check_html,
    format_check,
    read_feed,
    timetable,
)
from pilotage.adapters.osm import load_network
from pilotage.core import DataFileError, InvalidInputError, RoadNetwork
from pilotage.core.signals import SignalPlans

# -- a real feed, read ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def transcollines(shared_data: Callable[..., Path]) -> Path:
    return shared_data("gtfs", "transcollines-qc-ca.zip")


def test_transcollines_is_read(transcollines: Path) -> None:
    feed = read_feed(transcollines)
    assert feed.timezone == "America/Montreal"
    assert len(feed.routes) == 8
    assert {route.route_type for route in feed.routes.values()} == {3}
    assert len(feed.stops) == 424
    assert len(feed.trips) == 58
    assert len(feed.shapes) == 20
    trip = next(t for t in feed.trips if t.trip_id == "20260105-Semaine-01-910-0-0517")
    assert (trip.route_id, trip.service_id, trip.shape_id) == ("910", "20260105-Semaine-01", "g58a")
    assert trip.stop_ids[:2] == ("F134-01", "F135-01")
    # 05:17:00 and 05:17:56 after the service day's start.
    assert trip.arrival_s[:2].tolist() == [5 * 3600 + 17 * 60, 5 * 3600 + 17 * 60 + 56]
    assert len(trip.stop_ids) == trip.arrival_s.size == trip.departure_s.size


def test_transcollines_service_dates(transcollines: Path) -> None:
    feed = read_feed(transcollines)
    dates = feed.service_dates()
    assert (dates[0], dates[-1]) == (dt.date(2026, 1, 5), dt.date(2026, 8, 23))
    # Weekdays and weekends have their own services; Good Friday (3 April 2026) is removed.
    assert feed.services_on(dt.date(2026, 3, 2)) == {"20260105-Semaine-01"}
    assert feed.services_on(dt.date(2026, 3, 7)) == {"20260105-Weekend-01"}
    assert feed.services_on(dt.date(2026, 4, 3)) == frozenset()
    assert dt.date(2026, 4, 3) not in dates


def test_service_days_start_at_noon_minus_12_hours(transcollines: Path) -> None:
    feed = read_feed(transcollines)
    montreal = ZoneInfo("America/Montreal")
    assert feed.day_start_epoch_s(dt.date(2026, 3, 2)) == dt.datetime(2026, 3, 2, tzinfo=montreal).timestamp()
    # Clocks go forward on 8 March 2026: the day's times count from 23:00 the evening before.
    assert feed.day_start_epoch_s(dt.date(2026, 3, 8)) == dt.datetime(2026, 3, 8, tzinfo=montreal).timestamp() - 3600


# -- a small feed on the embedded city --------------------------------------------------------------

#: A 3.3 km route across the embedded city on straight edges, by the OSM ids of its ends.
ROUTE_ENDS = (-11830, -14280)
LUXEMBOURG = ZoneInfo("Europe/Luxembourg")


def write_feed(folder: Path, files: dict[str, str], name: str = "feed.zip") -> Path:
    """A zip of GTFS files (name: text)."""
    path = folder / name
    with zipfile.ZipFile(path, "w") as archive:
        for file_name, text in files.items():
            archive.writestr(file_name, text)
    return path


def city_feed_files(city: RoadNetwork) -> dict[str, str]:
    """A feed on the embedded city: bus line A along :data:`ROUTE_ENDS` with its shape (weekdays, and one
    Saturday trip), tram line T over the same stops without a shape, metro line M; weekday service from
    6 January to 28 March 2025 but on 7 January, Saturday service on 11 January only."""
    route = city.shortest_path(city.node_index(ROUTE_ENDS[0]), city.node_index(ROUTE_ENDS[1]))
    rng = np.random.default_rng(7)
    lon, lat = city.node_lon[route.nodes], city.node_lat[route.nodes]
    shape_rows = [f"S1,{y + rng.normal(0, 3e-5):.7f},{x + rng.normal(0, 4e-5):.7f},{k + 1}"
                  for k, (x, y) in enumerate(zip(lon, lat, strict=True))]
    stop_nodes = np.linspace(0, route.nodes.size - 1, 5).astype(int)
    # Stops at the kerb, 8 m north of the road.
    stops = [f"P{k},Stop {k},{lat[i] + 8 / 111_195:.7f},{lon[i]:.7f}" for k, i in enumerate(stop_nodes)]
    times = ["08:00:00", "08:02:30", "", "08:09:00", "08:12:00"]
    stop_times = []
    for trip, start_h in (("A1", 0), ("A2", 1), ("T1", 2), ("M1", 3), ("A3", 16)):
        for k, time in enumerate(times):
            arrival = f"{int(time[:2]) + start_h:02d}{time[2:]}" if time else ""
            stop_times.append(f"{trip},{arrival},{arrival or '08:05:00'},P{k},{k + 1}")
    return {
        "agency.txt": "agency_id,agency_name,agency_url,agency_timezone\nLX,City buses,https://example.org,"
                      "Europe/Luxembourg\n",
        "routes.txt": "route_id,agency_id,route_short_name,route_long_name,route_type\nA,LX,A,Line A,3\n"
                      "T,LX,T,Tram,0\nM,LX,M,Metro,1\n",
        "trips.txt": "route_id,service_id,trip_id,shape_id\nA,WK,A1,S1\nA,SAT,A2,S1\nT,WK,T1,\nM,WK,M1,\nA,WK,A3,S1\n",
        "stops.txt": "stop_id,stop_name,stop_lat,stop_lon\n" + "\n".join(stops) + "\n",
        "stop_times.txt": "trip_id,arrival_time,departure_time,stop_id,stop_sequence\n" + "\n".join(stop_times) + "\n",
        "calendar.txt": "service_id,monday,tuesday,wednesday,thursday,friday,saturday,sunday,start_date,end_date\n"
                        "WK,1,1,1,1,1,0,0,20250106,20250328\n",
        "calendar_dates.txt": "service_id,date,exception_type\nWK,20250107,2\nSAT,20250111,1\n",
        "shapes.txt": "shape_id,shape_pt_lat,shape_pt_lon,shape_pt_sequence\n" + "\n".join(shape_rows) + "\n",
    }


@pytest.fixture(scope="module")
def small_feed(city: RoadNetwork, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_feed(tmp_path_factory.mktemp("gtfs"), city_feed_files(city))


def test_the_city_feed_is_read(small_feed: Path) -> None:
    feed = read_feed(small_feed)
    assert set(feed.routes) == {"A", "T", "M"}
    assert [trip.trip_id for trip in feed.trips] == ["A1", "A2", "T1", "M1", "A3"]
    assert feed.services_on(dt.date(2025, 1, 8)) == {"WK"}
    assert feed.services_on(dt.date(2025, 1, 7)) == frozenset()
    assert feed.services_on(dt.date(2025, 1, 11)) == {"SAT"}
    trip = feed.trips[0]
    assert math.isnan(trip.arrival_s[2])
    assert trip.departure_s[2] == 8 * 3600 + 5 * 60


def test_trips_of_a_day_on_the_city(city: RoadNetwork, small_feed: Path, city_plans: SignalPlans) -> None:
    feed = read_feed(small_feed)
    day = dt.date(2025, 1, 8)
    table = timetable(feed, city, service_date=day, day_start_s=1000.0, plans=city_plans)
    assert [trip.trip_id for trip in table.trips] == ["A1", "T1", "A3"]
    assert table.left_out == {"route_type 1 (metro): not on the road network": 1}
    a1, t1, a3 = table.trips
    route = city.shortest_path(city.node_index(ROUTE_ENDS[0]), city.node_index(ROUTE_ENDS[1]))
    # The shape is matched onto the route; the tram without a shape runs from stop to stop.
    assert (a1.vehicle_class, a1.path.source, a1.shape_id) == ("bus", "shape", "S1")
    assert a1.path.edges.tolist() == route.edges.tolist()
    assert (t1.vehicle_class, t1.path.source, t1.shape_id) == ("tram", "stops", "")
    assert a3.path is a1.path
    for trip in (a1, t1):
        assert trip.path.stop_ids == ("P0", "P1", "P2", "P3", "P4")
        assert (np.diff(trip.path.stop_at_m) > 100.0).all()
        assert trip.path.stop_at_m[-1] == pytest.approx(trip.path.length_m, abs=30.0)
    # Times on the engine's clock: the day's start plus GTFS seconds; the departure where no arrival.
    assert a1.stop_times_s.tolist() == [1000.0 + s for s in (28800, 28950, 29100, 29340, 29520)]
    # Past midnight: 24:00:00 and more.
    assert a3.stop_times_s[0] == 1000.0 + 24 * 3600
    assert len(a1.path.crossing_intersection) >= 3


def test_times_without_a_day_start_are_epoch_seconds(city: RoadNetwork, small_feed: Path) -> None:
    feed = read_feed(small_feed)
    table = timetable(feed, city, service_date=dt.date(2025, 1, 11))
    (a2,) = table.trips
    midnight = dt.datetime(2025, 1, 11, tzinfo=LUXEMBOURG).timestamp()
    assert a2.stop_times_s[0] == midnight + 9 * 3600
    with pytest.raises(InvalidInputError, match="day_start_s"):
        timetable(feed, city, day_start_s=math.nan)


def test_every_trip_without_a_day(city: RoadNetwork, small_feed: Path) -> None:
    table = timetable(read_feed(small_feed), city)
    assert sorted(trip.trip_id for trip in table.trips) == ["A1", "A2", "A3", "T1"]
    assert table.trips[0].stop_times_s[0] == 8 * 3600


def test_the_check_report_of_the_city_feed(city: RoadNetwork, small_feed: Path) -> None:
    report = check_feed(read_feed(small_feed), city, service_date=dt.date(2025, 1, 8))
    assert isinstance(report, CheckReport)
    document = report.to_dict()
    json.dumps(document)
    totals = document["totals"]
    assert totals["trips"] == 3
    assert totals["trips_matched"] == 2
    assert totals["trips_matched_pct"] == pytest.approx(66.67)
    assert totals["trips_on_paths_from_stops"] == 1
    assert totals["trips_left_out"] == {"route_type 1 (metro): not on the road network": 1}
    assert totals["shapes"] == 1 and totals["shapes_matched"] == 1
    per_trip = totals["intersections_per_trip"]
    assert per_trip["min"] >= 3
    shape = next(path for path in document["paths"] if path["source"] == "shape")
    assert shape["matched"] and shape["reason"] == ""
    assert shape["routes"] == ["A"] and shape["trips"] == 2 and shape["trips_on_path"] == 2
    assert shape["points_matched"] == shape["points"]
    assert shape["max_distance_m"] < 20.0
    # The default plans of the city name the signal group of every movement crossed.
    assert shape["intersections"] and all(crossing["group"] for crossing in shape["intersections"])
    stops = next(path for path in document["paths"] if path["source"] == "stops")
    assert stops["routes"] == ["T"] and stops["vehicle_class"] == "tram"
    text = format_check(report)
    assert "stops stops:T:1" in text and "left out: 1 trips, route_type 1 (metro)" in text


def test_the_check_maps(city: RoadNetwork, small_feed: Path) -> None:
    report = check_feed(read_feed(small_feed), city, service_date=dt.date(2025, 1, 8))
    collection = check_geojson(report)
    kinds = [feature["properties"]["kind"] for feature in collection["features"]]
    assert kinds.count("shape") == 2 and kinds.count("path") == 2
    crossings = [f for f in collection["features"] if f["properties"]["kind"] == "intersection"]
    assert crossings and all(f["geometry"]["type"] == "Point" and f["properties"]["group"] for f in crossings)
    page = check_html(report)
    assert page.startswith("<!DOCTYPE html>")
    # Self-contained: nothing fetched from anywhere.
    assert "http://" not in page and "https://" not in page and " src=" not in page
    assert "<polyline" in page and "bus A" in page


def test_a_feed_without_shapes_runs_from_stop_to_stop(city: RoadNetwork, tmp_path: Path) -> None:
    files = city_feed_files(city)
    del files["shapes.txt"]
    table = timetable(read_feed(write_feed(tmp_path, files)), city, service_date=dt.date(2025, 1, 8))
    assert [trip.path.source for trip in table.trips] == ["stops", "stops", "stops"]
    assert all(path.source == "stops" for path in table.paths)


# -- bad feeds ---------------------------------------------------------------------------------------


def test_a_file_that_is_not_a_feed(tmp_path: Path) -> None:
    text = tmp_path / "feed.zip"
    text.write_text("route_id,route_type\n")
    with pytest.raises(DataFileError, match="not a zip file"):
        read_feed(text)
    with pytest.raises(DataFileError, match="no GTFS feed at"):
        read_feed(tmp_path / "missing.zip")


@pytest.mark.parametrize("missing", ["stop_times.txt", "agency.txt"])
def test_a_feed_missing_a_required_file(city: RoadNetwork, tmp_path: Path, missing: str) -> None:
    files = city_feed_files(city)
    del files[missing]
    with pytest.raises(DataFileError, match=f"{missing} missing"):
        read_feed(write_feed(tmp_path, files))


def test_a_feed_without_any_calendar(city: RoadNetwork, tmp_path: Path) -> None:
    files = city_feed_files(city)
    del files["calendar.txt"], files["calendar_dates.txt"]
    with pytest.raises(DataFileError, match=r"calendar.txt or calendar_dates.txt missing"):
        read_feed(write_feed(tmp_path, files))


@pytest.mark.parametrize(("file_name", "old", "new_and_message"), [
    ("agency.txt", "Europe/Luxembourg", ("Europe/Atlantis", "timezone 'Europe/Atlantis'")),
    ("stop_times.txt", "08:02:30", ("8h02", "cannot read the GTFS feed")),
    ("stops.txt", "stop_lat", ("latitude", "stops.txt has no column stop_lat")),
    ("calendar.txt", "20250106", ("2025-01-06", "cannot read the GTFS feed")),
])
def test_a_feed_with_a_bad_value(city: RoadNetwork, tmp_path: Path, file_name: str, old: str,
                                 new_and_message: tuple[str, str]) -> None:
    new, message = new_and_message
    files = city_feed_files(city)
    files[file_name] = files[file_name].replace(old, new, 1)
    with pytest.raises(DataFileError, match=message):
        read_feed(write_feed(tmp_path, files))


def test_a_feed_in_a_folder(city: RoadNetwork, tmp_path: Path) -> None:
    for name, text in city_feed_files(city).items():
        (tmp_path / name).write_text(text)
    assert len(read_feed(tmp_path).trips) == 5


# -- Milan -------------------------------------------------------------------------------------------

#: Milan's bus trips that should run on their shape's path from first stop to last (regression floor:
#: 4,258 of 5,020 today; what is left out runs on ways the network does not have, see docs).
MILAN_BUS_MATCHED_FLOOR = 0.98


@pytest.fixture(scope="module")
def milan(shared_data: Callable[..., Path], cache_dir: Path) -> CheckReport:
    """Milan's feed checked against Milan's roads: the network built once (about 30 s)."""
    network = load_network(shared_data("gtfs-osm", "milano", "milan_italy_small.highway.osm.xz"), cache_dir=cache_dir)
    feed = read_feed(shared_data("gtfs-osm", "milano", "milano_small_gtfs.zip"))
    return check_feed(feed, network)


@pytest.mark.slow
def test_milan_buses_run_on_their_shapes(milan: CheckReport) -> None:
    totals = milan.totals()
    assert totals["trips"] == 9349  # 5,020 bus and 4,329 tram trips; the 1,259 metro trips are left out
    assert totals["trips_left_out"]["route_type 1 (metro): not on the road network"] == 1259
    bus_paths = [path for path in milan.timetable.paths if path.vehicle_class == "bus"]
    bus_trips = sum(path.trips for path in bus_paths)
    assert bus_trips == 5020
    assert sum(path.trips_on_path for path in bus_paths) >= MILAN_BUS_MATCHED_FLOOR * bus_trips
    # Every trip of the timetable crosses signalised intersections, as its path says.
    counts = [trip.path.crossing_intersection.size for trip in milan.timetable.trips]
    assert min(counts) >= 3
    assert totals["match_time_s"] < 10.0


@pytest.mark.slow
def test_milan_bus_paths_cross_the_signals_along_their_shapes(milan: CheckReport) -> None:
    """The intersections a matched bus path crosses against the signalised intersections whose centre
    lies within 15 m of its shape: most of the latter are crossed, and few crossed are far."""
    network = milan.network
    intersections = network.intersections
    near_total = crossed_near = crossed_far = 0
    for path in milan.timetable.paths:
        if path.vehicle_class != "bus" or not path.trips_on_path:
            continue
        distance_m = distance_to_polyline_m(intersections.lon, intersections.lat, *path.polyline)
        near = set(np.flatnonzero(distance_m <= 15.0).tolist())
        crossed = {intersections.index_of(c.intersection_id) for c in path.crossings}
        near_total += len(near)
        crossed_near += len(near & crossed)
        crossed_far += sum(distance_m[k] > 40.0 for k in crossed)
    assert crossed_near >= 0.8 * near_total
    assert crossed_far <= 0.1 * crossed_near


def distance_to_polyline_m(lon: np.ndarray, lat: np.ndarray, line_lon: np.ndarray, line_lat: np.ndarray) -> np.ndarray:
    """Distance (m) from each point to a polyline, in a plane about the polyline's middle."""
    m_per_deg = 6_371_009.0 * math.pi / 180.0
    scale = math.cos(math.radians(float(line_lat.mean())))
    x, y = lon * m_per_deg * scale, lat * m_per_deg
    ax, ay = line_lon[:-1] * m_per_deg * scale, line_lat[:-1] * m_per_deg
    dx, dy = np.diff(line_lon) * m_per_deg * scale, np.diff(line_lat) * m_per_deg
    squared = np.where(dx * dx + dy * dy > 0, dx * dx + dy * dy, 1.0)
    fraction = np.clip(((x[:, None] - ax) * dx + (y[:, None] - ay) * dy) / squared, 0.0, 1.0)
    distance_m: np.ndarray = np.hypot(ax + fraction * dx - x[:, None], ay + fraction * dy - y[:, None]).min(axis=1)
    return distance_m


@pytest.mark.slow
def test_milan_every_service_day(milan: CheckReport) -> None:
    """Each day of Milan's fortnight: its trips, their clock, and the same paths."""
    feed, network = milan.feed, milan.network
    for day in feed.service_dates():
        table = timetable(feed, network, service_date=day)
        start_s = feed.day_start_epoch_s(day)
        assert table.day_start_s == start_s
        assert table.trips
        first_s = min(float(np.nanmin(trip.stop_times_s)) for trip in table.trips)
        assert start_s <= first_s < start_s + 86_400.0
        assert {trip.path.source for trip in table.trips} == {"shape"}


@pytest.mark.slow
def test_milan_maps(milan: CheckReport, tmp_path: Path) -> None:
    page = check_html(milan)
    collection = check_geojson(milan)
    (tmp_path / "milan.html").write_text(page)
    (tmp_path / "milan.geojson").write_text(json.dumps(collection))
    assert "http://" not in page and "https://" not in page
    assert sum(f["properties"]["kind"] == "path" for f in collection["features"]) == 44
