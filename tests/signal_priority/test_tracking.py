"""Vehicles followed from their positions: the locating kernel against its reference, and the
requests, check-outs and cancels the tracker makes for a bus driven along a line of the embedded city."""

import itertools
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pilotage.core import InvalidInputError, RoadNetwork, UnknownEntityError
from pilotage.core.signals import SignalPlans
from pilotage.core.transit import TransitPath, Trip
from pilotage.signal_priority import PriorityEngine
from pilotage.signal_priority import _kernels as kn
from pilotage.signal_priority.tracking import (
    CANCELLED,
    CHECKED_OUT,
    OFF_PATH,
    ON_PATH,
    PositionReport,
    Step,
    TrackingConfig,
    VehicleTracker,
)
from tests.clock import ManualClock
from tests.conftest import CITY_LINE_SPEED_M_S, CITY_LINE_START_S
from tests.signal_priority.naive import ReferenceTracker, reference_locate

# -- the kernel ---------------------------------------------------------------------------------------


def _locate(points: list[tuple[float, float, float]], window: tuple[float, float],
            position: tuple[float, float]) -> tuple[float, float]:
    array = np.array(points, dtype=np.float64)
    along = np.empty(1)
    offset = np.empty(1)
    kn.locate_on_paths(np.array([0, len(points)]), np.ascontiguousarray(array[:, 0]),
                       np.ascontiguousarray(array[:, 1]), np.ascontiguousarray(array[:, 2]), np.zeros(1, np.int64),
                       np.array([window[0]]), np.array([window[1]]), np.array([position[0]]),
                       np.array([position[1]]), along, offset)
    return float(along[0]), float(offset[0])


def test_a_point_beside_a_segment_is_placed_at_its_foot() -> None:
    points = [(0.0, 0.0, 0.0), (100.0, 0.0, 100.0), (100.0, 100.0, 200.0)]
    assert _locate(points, (-math.inf, math.inf), (30.0, 5.0)) == pytest.approx((30.0, 5.0))
    # The window keeps a vehicle from jumping to the part of its path that passes near it later.
    assert _locate(points, (150.0, 250.0), (30.0, 5.0)) == pytest.approx((150.0, math.hypot(70.0, 45.0)))
    along, offset = _locate(points, (300.0, 400.0), (30.0, 5.0))
    assert math.isnan(along) and offset == math.inf


coordinate = st.floats(-500.0, 500.0)


@given(steps=st.lists(st.tuples(coordinate, coordinate), min_size=2, max_size=6),
       position=st.tuples(coordinate, coordinate), window=st.tuples(st.floats(-100.0, 2000.0), st.floats(0.0, 2000.0)))
def test_the_kernel_finds_the_nearest_point_its_reference_finds(steps: list[tuple[float, float]],
                                                                position: tuple[float, float],
                                                                window: tuple[float, float]) -> None:
    points, along = [], 0.0
    for i, (x, y) in enumerate(steps):
        if i:
            along += math.hypot(x - steps[i - 1][0], y - steps[i - 1][1])
        points.append((x, y, along))
    low, high = window[0], window[0] + window[1]
    _, expected_offset = reference_locate(points, (low, high), position)
    found_along, found_offset = _locate(points, (low, high), position)
    if math.isinf(expected_offset):
        # The reference samples: a window narrower than its step may hold no sample.
        assert math.isinf(found_offset) or high - low < along / 1000.0
        return
    longest = max((b[2] - a[2] for a, b in itertools.pairwise(points)), default=0.0)
    assert found_offset <= expected_offset + 1e-9
    assert found_offset >= expected_offset - longest / 2000.0 - 1e-6
    assert low - 1e-9 <= found_along <= high + 1e-9


# -- the tracker on a line of the embedded city ---------------------------------------------------


def drive(city: RoadNetwork, trip: Trip, along_m: float) -> tuple[float, float]:
    """The (lon, lat) of the point ``along_m`` along the trip's path."""
    path = trip.path
    return (float(np.interp(along_m, path.at_m, city.node_lon[path.nodes])),
            float(np.interp(along_m, path.at_m, city.node_lat[path.nodes])))


def report(city: RoadNetwork, line: Trip, along_m: float, time_s: float, **fields: object) -> PositionReport:
    lon, lat = drive(city, line, along_m)
    return PositionReport("bus-7", lon, lat, time_s, **({"trip": line.trip_id} | fields))  # type: ignore[arg-type]


def clear_crossing(trip: Trip) -> int:
    """The first crossing of the trip's path with no stop in the 400 m before its stop line, and
    another crossing at least 300 m before it."""
    path = trip.path
    for c in range(1, path.crossing_stop_line_m.size):
        line_m = path.crossing_stop_line_m[c]
        if (not ((path.stop_at_m > line_m - 400.0) & (path.stop_at_m <= line_m)).any()
                and line_m - path.crossing_stop_line_m[c - 1] >= 300.0):
            return c
    raise AssertionError("no such crossing")


def one(tracker: VehicleTracker, position: PositionReport) -> Step:
    (step,) = tracker.observe([position])
    assert isinstance(step, Step), step
    return step


@pytest.fixture
def tracker(city: RoadNetwork, city_plans: SignalPlans, city_line: Trip) -> VehicleTracker:
    return VehicleTracker(city, city_plans, [city_line])


def test_a_bus_asks_at_the_detection_point_renews_and_checks_out_past_the_stop_line(
        city: RoadNetwork, city_plans: SignalPlans, city_line: Trip, tracker: VehicleTracker) -> None:
    path = city_line.path
    c = clear_crossing(city_line)
    stop_line_m = float(path.crossing_stop_line_m[c])
    engine = PriorityEngine(city_plans, ManualClock(1000.0))
    seen = []
    # 8 m/s, one report a second, from 300 m before the stop line to past it.
    for t in range(50):
        along_m = stop_line_m - 300.0 + 8.0 * t
        step = one(tracker, report(city, city_line, along_m, 1000.0 + t))
        seen.append((along_m, step))
        if step.request is not None:
            engine.validate(step.request)
    asked = [(along_m, s, s.request) for along_m, s in seen if s.request is not None]
    first_m, first, request = asked[0]
    assert stop_line_m - first_m <= TrackingConfig().detection_m < stop_line_m - first_m + 8.0
    assert first.asked
    assert not any(s.asked for _, s, r in asked[1:] if r.intersection == request.intersection)
    plan = city_plans.plans[city_plans.index_of(request.intersection)]
    assert request.group == plan.movement_group(int(path.crossing_from_edge[c]), int(path.crossing_to_edge[c]))
    # Renewed every 2 s while it approaches: every other report.
    at_first = [s for _, s, r in asked if r.intersection == request.intersection]
    assert len(at_first) == pytest.approx(TrackingConfig().detection_m / 16.0, abs=1.5)
    (checkout,) = [r for _, s in seen for r in s.releases if r.intersection == request.intersection]
    assert (checkout.intersection, checkout.state) == (request.intersection, CHECKED_OUT)
    assert next(m for m, s in seen if checkout in s.releases) > stop_line_m


def test_the_arrival_interval_runs_from_the_speed_limit_to_the_current_speed(
        city: RoadNetwork, city_line: Trip, tracker: VehicleTracker) -> None:
    stop_line_m = float(city_line.path.crossing_stop_line_m[clear_crossing(city_line)])
    one(tracker, report(city, city_line, stop_line_m - 300.0, 1000.0, speed_m_s=5.0))
    step = one(tracker, report(city, city_line, stop_line_m - 200.0, 1020.0, speed_m_s=5.0))
    assert step.request is not None
    limit_m_s = float(city.speed_kph[city_line.path.edges[np.searchsorted(city_line.path.at_m, stop_line_m - 200.0)
                                                          - 1]]) / 3.6
    earliest_s = 200.0 / limit_m_s + (limit_m_s - 5.0) / 2.0
    assert step.request.eta_s == pytest.approx(earliest_s)
    latest_s = max(earliest_s, 200.0 / max(5.0, limit_m_s / 2.0))
    assert step.request.eta_window_s == pytest.approx(latest_s - earliest_s + TrackingConfig().eta_margin_s)


def test_lateness_is_at_the_next_stop_against_the_timetable(city: RoadNetwork, city_line: Trip,
                                                            tracker: VehicleTracker) -> None:
    stop_m = float(city_line.path.stop_at_m[2])
    # 100 m before stop 2 at 20 m/s (faster than half any limit here).
    step = one(tracker, report(city, city_line, stop_m - 100.0, 1200.0, speed_m_s=20.0))
    due_s = CITY_LINE_START_S + stop_m / CITY_LINE_SPEED_M_S
    assert step.tracked.lateness_s == pytest.approx(1200.0 + 100.0 / 20.0 - due_s)
    (delay,) = tracker.delays()
    assert (delay.next_stop_id, delay.delay_s) == ("stop-2", step.tracked.lateness_s)


def test_a_near_side_stop_holds_the_request_until_the_bus_has_left_it(city: RoadNetwork, city_plans: SignalPlans,
                                                                       city_line: Trip) -> None:
    path = city_line.path
    stop_line_m = float(path.crossing_stop_line_m[clear_crossing(city_line)])
    # A stop 60 m before the stop line.
    near_side = TransitPath.on(city, path.edges, stop_ids=("near",), stop_at_m=np.array([stop_line_m - 60.0]))
    trip = Trip("near-side", "line-2", "bus", near_side, np.array([1000.0]))
    tracker = VehicleTracker(city, city_plans, [trip])
    before = one(tracker, report(city, trip, stop_line_m - 150.0, 1000.0))
    assert before.request is None and "to leave stop near" in before.tracked.reason
    dwelling = one(tracker, report(city, trip, stop_line_m - 55.0, 1010.0, doors_open=True))
    assert dwelling.request is None and "dwelling at stop near" in dwelling.tracked.reason
    left = one(tracker, report(city, trip, stop_line_m - 50.0, 1030.0, doors_open=False, speed_m_s=3.0))
    assert left.request is not None


def test_a_bus_off_its_path_is_cancelled_and_followed_again_when_back(city: RoadNetwork, city_line: Trip,
                                                                       tracker: VehicleTracker) -> None:
    stop_line_m = float(city_line.path.crossing_stop_line_m[clear_crossing(city_line)])
    assert one(tracker, report(city, city_line, stop_line_m - 100.0, 1000.0)).request is not None
    lon, lat = drive(city, city_line, stop_line_m - 90.0)
    away = one(tracker, PositionReport("bus-7", lon + 0.003, lat, 1001.0, trip=city_line.trip_id))
    assert away.tracked.state == OFF_PATH and away.request is None
    (cancel,) = away.releases
    assert cancel.state == CANCELLED
    back = one(tracker, report(city, city_line, stop_line_m - 40.0, 1030.0))
    assert back.tracked.state == ON_PATH and back.request is not None and back.asked


def test_a_silent_bus_is_forgotten_and_its_request_cancelled(city: RoadNetwork, city_line: Trip,
                                                             tracker: VehicleTracker) -> None:
    stop_line_m = float(city_line.path.crossing_stop_line_m[clear_crossing(city_line)])
    one(tracker, report(city, city_line, stop_line_m - 100.0, 1000.0))
    assert tracker.expire(1009.0) == []
    (cancel,) = tracker.expire(1010.5)
    assert cancel.state == CANCELLED and "no position for 10 s" in cancel.reason
    assert tracker.vehicles == 0
    with pytest.raises(UnknownEntityError):
        tracker.tracked("bus-7")


def test_bad_reports_are_refused_one_by_one(city: RoadNetwork, city_line: Trip, tracker: VehicleTracker) -> None:
    good = report(city, city_line, 500.0, 1000.0)
    unknown = report(city, city_line, 500.0, 1000.0, trip="no-such-trip")
    neither = PositionReport("bus-9", good.lon, good.lat, 1000.0)
    results = tracker.observe([good, unknown, neither])
    assert isinstance(results[0], Step)
    assert isinstance(results[1], UnknownEntityError) and results[1].field == "trip"
    assert isinstance(results[2], InvalidInputError) and results[2].field == "trip"
    (backwards,) = tracker.observe([report(city, city_line, 510.0, 999.0)])
    assert isinstance(backwards, InvalidInputError) and backwards.field == "time"


def test_a_route_alone_places_the_bus_on_the_nearest_of_its_paths(city: RoadNetwork, city_plans: SignalPlans,
                                                                  city_line: Trip) -> None:
    back = city.shortest_path(city.node_index(-28802), city.node_index(-30248))
    other = Trip("line-1-back", "line-1", "bus", TransitPath.on(city, back.edges))
    tracker = VehicleTracker(city, city_plans, [city_line, other])
    lon, lat = drive(city, other, 1500.0)
    ahead_lon, ahead_lat = drive(city, other, 1510.0)
    heading_deg = math.degrees(math.atan2((ahead_lon - lon) * math.cos(math.radians(lat)), ahead_lat - lat)) % 360.0
    # Both directions run along the same streets here: the heading tells them apart.
    for vehicle, heading in (("bus-8", heading_deg), ("bus-9", (heading_deg + 180.0) % 360.0)):
        step = one(tracker, PositionReport(vehicle, lon, lat, 1000.0, route="line-1", heading_deg=heading))
        assert step.tracked.trip == ("line-1-back" if vehicle == "bus-8" else "line-1-trip-1")
    assert tracker.tracked("bus-8").along_m == pytest.approx(1500.0, abs=1.0)


@given(noise=st.lists(st.tuples(st.floats(-8.0, 8.0), st.floats(-8.0, 8.0), st.floats(0.0, 12.0)), min_size=20,
                      max_size=80))
def test_requests_are_only_for_the_next_intersection_within_reach(city: RoadNetwork, city_plans: SignalPlans,
                                                                   city_line: Trip,
                                                                   noise: list[tuple[float, float, float]]) -> None:
    tracker = VehicleTracker(city, city_plans, [city_line])
    engine = PriorityEngine(city_plans, ManualClock(1000.0))
    path = city_line.path
    along_m, time_s = 600.0, 1000.0
    for dx_m, dy_m, advance_m in noise:
        along_m, time_s = along_m + advance_m, time_s + 1.0
        lon, lat = drive(city, city_line, along_m)
        scale = 1.0 / 111_000.0
        step = one(tracker, PositionReport("bus-7", lon + dx_m * scale / math.cos(math.radians(lat)),
                                           lat + dy_m * scale, time_s, trip=city_line.trip_id))
        if step.request is None:
            continue
        engine.validate(step.request)
        ahead = np.flatnonzero(path.crossing_stop_line_m >= step.tracked.along_m)
        assert step.request.intersection == int(city.intersections.ids[path.crossing_intersection[ahead[0]]])
        assert step.tracked.to_stop_line_m is not None
        assert 0.0 <= step.tracked.to_stop_line_m <= TrackingConfig().detection_m


report_steps = st.lists(st.tuples(
    st.floats(0.0, 30.0),                      # metres moved along the line
    st.floats(0.5, 4.0),                       # seconds since the last report
    st.sampled_from([0.0, 0.0, 0.0, 80.0]),    # metres off the line sideways (an excursion)
    st.one_of(st.none(), st.floats(0.0, 15.0)),  # the speed reported
    st.sampled_from([None, False, True]),      # the doors
    st.sampled_from(["granted", "rejected", None])), min_size=5, max_size=60)


def _same(found: object, expected: object) -> None:
    if isinstance(expected, float) or isinstance(found, float):
        assert found == pytest.approx(expected, rel=1e-6, abs=1e-6, nan_ok=True)
    elif isinstance(expected, tuple) and not isinstance(expected, str):
        assert isinstance(found, tuple) and len(found) == len(expected)
        for a, b in zip(found, expected, strict=True):
            _same(a, b)
    else:
        assert found == expected


@given(steps=report_steps, start_m=st.floats(0.0, 6000.0))
def test_the_kernel_tracker_follows_as_its_plain_python_reference(city: RoadNetwork, city_plans: SignalPlans,
                                                                   city_line: Trip, start_m: float,
                                                                   steps: list[tuple]) -> None:
    tracker = VehicleTracker(city, city_plans, [city_line])
    reference = ReferenceTracker(city, city_plans, [city_line])
    along_m, time_s = start_m, 1000.0
    for moved_m, elapsed_s, aside_m, speed_m_s, doors_open, answer in steps:
        along_m, time_s = min(along_m + moved_m, city_line.path.length_m), time_s + elapsed_s
        lon, lat = drive(city, city_line, along_m)
        position = PositionReport("bus-7", lon, lat + aside_m / 111_000.0, time_s, trip=city_line.trip_id,
                                  speed_m_s=speed_m_s, doors_open=doors_open)
        (found,), (expected,) = tracker.observe([position]), reference.observe([position])
        assert isinstance(found, Step) and isinstance(expected, Step)
        _same(tuple(found), tuple(expected))
        if found.request is not None and answer is not None:
            intersection = found.request.intersection
            assert tracker.record("bus-7", intersection, answer) == reference.record("bus-7", intersection, answer)
    _same(tuple(tracker.delays()), tuple(reference.delays()))
    _same(tuple(tracker.expire(time_s + 11.0)), tuple(reference.expire(time_s + 11.0)))


def test_without_a_time_ahead_requests_give_the_headways_of_the_line(city: RoadNetwork, city_plans: SignalPlans,
                                                                      city_line: Trip) -> None:
    untimed = Trip("line-1-untimed", "line-1", "bus", city_line.path)
    tracker = VehicleTracker(city, city_plans, [untimed])
    stop_line_m = float(untimed.path.crossing_stop_line_m[clear_crossing(untimed)])
    for vehicle, along_m in (("bus-ahead", stop_line_m + 300.0), ("bus-behind", stop_line_m - 1000.0)):
        one(tracker, PositionReport(vehicle, *drive(city, untimed, along_m), 1000.0, trip=untimed.trip_id))
    step = one(tracker, PositionReport("bus-7", *drive(city, untimed, stop_line_m - 100.0), 1000.0,
                                       trip=untimed.trip_id, speed_m_s=10.0))
    assert step.request is not None and step.tracked.lateness_s is None
    assert step.request.headway_ahead_s == pytest.approx(400.0 / 10.0, rel=1e-6)
    assert step.request.headway_behind_s == pytest.approx(900.0 / 10.0, rel=1e-6)
