"""The parking engine: counts and staleness, reservations seen in availability, forecasts, guidance."""

from pathlib import Path

import numpy as np
import pytest

from pilotage.core import InvalidInputError, RoadNetwork
from pilotage.parking import CarPark, CarParks, ParkingEngine, ReservationBook, read_counts, sample_carparks
from tests.clock import ManualClock

NOW_S = 1_750_000_000.0


@pytest.fixture
def clock(manual_clock: type[ManualClock]) -> ManualClock:
    return manual_clock(NOW_S)


@pytest.fixture
def engine(clock: ManualClock) -> ParkingEngine:
    carparks = sample_carparks()
    return ParkingEngine(carparks, ReservationBook(":memory:", carparks, clock=clock), clock)


def test_counts_make_the_state_and_go_stale_once(engine: ParkingEngine, clock: ManualClock) -> None:
    state = engine.update("sample-gare", 240)
    assert (state.free, state.observed_s, state.stale, state.reservable_free) == (240, NOW_S, False, 150)
    assert engine.state("sample-knuedler").free is None and engine.state("sample-knuedler").stale
    clock.now_s += 901.0
    _, stale = engine.advance()
    assert "sample-gare" in stale and engine.state("sample-gare").stale
    assert engine.advance() == ([], [])
    assert not engine.update("sample-gare", 200).stale


@pytest.mark.parametrize(("free", "time_s", "field"), [(-1, None, "free"), (601, None, "free"), (1.5, None, "free"),
                                                       (10, NOW_S + 3600, "time"), (10, NOW_S - 10, "time")])
def test_bad_counts_name_the_field(engine: ParkingEngine, free: object, time_s: float | None, field: str) -> None:
    engine.update("sample-gare", 100)
    with pytest.raises(InvalidInputError) as error:
        engine.update("sample-gare", free, time_s)  # type: ignore[arg-type]  # deliberately invalid
    assert error.value.field == field


def test_reservations_take_their_space_until_the_holder_arrives(engine: ParkingEngine, clock: ManualClock) -> None:
    engine.update("sample-gare", 240)
    made = engine.reservations.reserve("sample-gare", NOW_S + 600, NOW_S + 4200, "app-1")
    assert engine.predicted_free("sample-gare", NOW_S + 1200) == 239.0
    clock.now_s += 700.0
    assert engine.state("sample-gare").reservable_free == 149
    engine.reservations.arrive(made.id)
    # Once arrived, the counters see the car: the reservation is no longer taken off.
    assert engine.predicted_free("sample-gare", NOW_S + 1200) == 240.0


def test_guidance_ranks_by_time_to_the_door_known_free_first(city: RoadNetwork, clock: ManualClock) -> None:
    carparks = sample_carparks()
    engine = ParkingEngine(carparks, ReservationBook(":memory:", carparks, clock=clock), clock, network=city)
    for carpark, free in (("sample-gare", 0), ("sample-saint-esprit", 300), ("sample-knuedler", 50)):
        engine.update(carpark, free)
    origin, _ = city.snap(6.1100, 49.6000)
    guidance = engine.guide((6.1320, 49.6040), NOW_S + 900, origin)
    assert {g.carpark for g in guidance} <= {c.id for c in carparks}
    assert all(g.walk_m <= 1500.0 for g in guidance)
    known = [g for g in guidance if g.predicted_free is not None and not g.likely_full]
    assert [g.door_s for g in known] == sorted(g.door_s for g in known)
    assert guidance[-1].carpark == "sample-gare" and guidance[-1].likely_full
    assert all(g.drive_s is not None and g.door_s == pytest.approx(g.drive_s + g.walk_s) for g in guidance)
    with pytest.raises(ValueError, match="arrival"):
        engine.guide((6.1320, 49.6040), NOW_S - 3600)


def test_an_origin_needs_a_network(engine: ParkingEngine) -> None:
    with pytest.raises(InvalidInputError) as error:
        engine.guide((6.1320, 49.6040), NOW_S + 900, origin=3)
    assert error.value.field == "origin"


def test_a_history_of_counts_gives_forecasts_ahead(manual_clock: type, may_files: list[Path]) -> None:
    counts = read_counts(may_files)
    best = np.argsort(-np.sum(~np.isnan(counts.free), axis=0))[:2]
    ids = [counts.carparks[k] for k in best]
    carparks = CarParks([CarPark(carpark, carpark, 7.1, 50.7, capacity=int(np.nanmax(counts.free[:, k])) + 10,
                                 reservable=5) for carpark, k in zip(ids, best, strict=True)])
    clock = manual_clock(float(counts.time_s[-1]) + 60.0)
    engine = ParkingEngine(carparks, ReservationBook(":memory:", carparks, clock=clock), clock)
    engine.load_counts(counts)
    assert engine._forecaster is not None
    moved = []
    for k, carpark in enumerate(ids):
        last = engine.state(carpark).free
        assert last is not None
        assert last == counts.free[~np.isnan(counts.free[:, best[k]]), best[k]][-1]
        ahead = [engine.predicted_free(carpark, clock.now_s + hours * 3600.0) for hours in (0.5, 1, 2, 3)]
        assert all(0.0 <= free <= carparks.get(carpark).capacity for free in ahead)
        moved.append(abs(ahead[-1] - last))
    # The forecaster, not the last count, gives the spaces 3 h ahead.
    assert max(moved) > 1.0
    # A day later, with no count since, the time-of-day profile still gives a forecast.
    clock.now_s += 86400.0
    assert not np.isnan(engine.predicted_free(ids[0], clock.now_s + 3600.0))
