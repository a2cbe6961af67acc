"""Reservations: never more than the reservable spaces at any instant, idempotent, durable, released."""

import threading
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pilotage.core.errors import ConflictError, InvalidInputError
from pilotage.parking.registry import CarPark, CarParks
from pilotage.parking.reservations import _HOLDING_IN_WINDOW, HOLDING, ReservationBook, peak_overlap
from tests.clock import ManualClock

NOW_S = 1_750_000_000.0


@pytest.fixture
def clock(manual_clock: type[ManualClock]) -> ManualClock:
    return manual_clock(NOW_S)


@pytest.fixture(scope="module")
def carparks() -> CarParks:
    return CarParks([CarPark("P1", "Centre", 6.13, 49.61, capacity=20, reservable=3),
                     CarPark("P2", "Gare", 6.13, 49.60, capacity=10, reservable=1)])


def brute_peak(intervals: list[tuple[float, float]], window: tuple[float, float]) -> int:
    """The reference: the count at every interval's start inside the window (where the peak must be)."""
    points = [max(a, window[0]) for a, _ in intervals] + [window[0]]
    return max((sum(a <= t < b for a, b in intervals) for t in points if window[0] <= t < window[1]), default=0)


@given(st.lists(st.tuples(st.integers(0, 50), st.integers(1, 20)), max_size=12),
       st.tuples(st.integers(0, 60), st.integers(1, 40)))
def test_peak_overlap_is_the_largest_count_at_any_instant(spans: list, window: tuple) -> None:
    intervals = [(float(a), float(a + length)) for a, length in spans]
    start, length = window
    bounds = (float(start), float(start + length))
    assert peak_overlap([a for a, _ in intervals], [b for _, b in intervals], *bounds) == brute_peak(intervals, bounds)


def test_touching_windows_do_not_overlap() -> None:
    assert peak_overlap([0.0, 10.0], [10.0, 20.0], 0.0, 20.0) == 1


@given(st.lists(st.tuples(st.integers(0, 40), st.integers(1, 12), st.sampled_from(["P1", "P2"])), max_size=25),
       st.lists(st.integers(0, 24), max_size=6))
def test_no_instant_holds_more_reservations_than_reservable_spaces(manual_clock: type, carparks: CarParks,
                                                                   asked: list, cancels: list) -> None:
    clock = manual_clock(NOW_S)
    book = ReservationBook(":memory:", carparks, clock=clock)
    made = []
    for i, (start, length, carpark) in enumerate(asked):
        from_s = NOW_S + 600.0 * start
        try:
            made.append(book.reserve(carpark, from_s, from_s + 600.0 * length, f"ref-{i}"))
        except ConflictError:
            # Refused only when the window really is full.
            held = [r for r in made if r.carpark == carpark and book.get(r.id).state in HOLDING]
            assert peak_overlap([r.from_s for r in held], [r.until_s for r in held], from_s,
                                from_s + 600.0 * length) == carparks.get(carpark).reservable
        if cancels and i == cancels[0] and made:
            book.cancel(made[len(made) // 2].id)
            cancels = cancels[1:]
    for carpark in ("P1", "P2"):
        held = [r for r in (book.get(r.id) for r in made) if r.carpark == carpark and r.state in HOLDING]
        assert peak_overlap([r.from_s for r in held], [r.until_s for r in held], 0.0, 2e9) \
            <= carparks.get(carpark).reservable


def test_a_reference_asked_again_gives_the_same_reservation(clock: ManualClock, carparks: CarParks) -> None:
    book = ReservationBook(":memory:", carparks, clock=clock)
    first = book.reserve("P1", NOW_S + 3600, NOW_S + 7200, "app-42")
    assert book.reserve("P1", NOW_S + 3600, NOW_S + 7200, "app-42") == first
    with pytest.raises(ConflictError, match="app-42") as error:
        book.reserve("P1", NOW_S + 3600, NOW_S + 9000, "app-42")
    assert error.value.field == "ref"
    assert book.holding_at("P1", NOW_S + 4000) == 1


def test_a_full_window_is_a_conflict_and_a_cancel_frees_it(clock: ManualClock, carparks: CarParks) -> None:
    book = ReservationBook(":memory:", carparks, clock=clock)
    taken = book.reserve("P2", NOW_S + 3600, NOW_S + 7200, "a")
    book.reserve("P2", NOW_S + 7200, NOW_S + 9000, "b")
    with pytest.raises(ConflictError, match="full") as error:
        book.reserve("P2", NOW_S + 5000, NOW_S + 6000, "c")
    assert error.value.field == "from"
    cancelled = book.cancel(taken.id)
    assert cancelled.state == "cancelled" and book.cancel(taken.id) == cancelled
    assert book.reserve("P2", NOW_S + 5000, NOW_S + 6000, "c").state == "booked"


def test_the_overbooking_check_reads_only_the_reservations_holding_a_space(clock: ManualClock,
                                                                         carparks: CarParks) -> None:
    """A car park's cancelled reservations, however many, are not read again at each reservation: the
    check searches the index of those holding a space (the soak saw a reservation's cost grow with
    the car park's history before it)."""
    book = ReservationBook(":memory:", carparks, clock=clock)
    plan = book._db.execute(f"EXPLAIN QUERY PLAN {_HOLDING_IN_WINDOW}", ("P1", 0.0, 1.0)).fetchall()
    assert "USING INDEX reservations_holding" in plan[0][-1]


@pytest.mark.parametrize(("window", "field"), [
    ((NOW_S - 3600, NOW_S), "from"),
    ((NOW_S + 3600, NOW_S + 3600), "until"),
    ((NOW_S + 3600, NOW_S + 30 * 86400), "until"),
    ((NOW_S + 400 * 86400, NOW_S + 401 * 86400), "from"),
    ((float("nan"), NOW_S), "from"),
])
def test_bad_windows_name_the_field(clock: ManualClock, carparks: CarParks, window: tuple[float, float],
                                    field: str) -> None:
    book = ReservationBook(":memory:", carparks, clock=clock)
    with pytest.raises(InvalidInputError) as error:
        book.reserve("P1", *window, "x")
    assert error.value.field == field
    with pytest.raises(LookupError, match="no reservation"):
        book.cancel("r-nowhere")


def test_no_shows_are_released_after_the_grace_time_and_arrivals_are_kept(clock: ManualClock,
                                                                          carparks: CarParks) -> None:
    book = ReservationBook(":memory:", carparks, clock=clock, grace_s=900.0)
    late = book.reserve("P1", NOW_S + 600, NOW_S + 7200, "late")
    there = book.reserve("P1", NOW_S + 600, NOW_S + 7200, "there")
    clock.now_s += 1400.0
    assert book.release_no_shows() == []
    assert book.arrive(there.id).state == "arrived"
    clock.now_s += 200.0
    (released,) = book.release_no_shows()
    assert (released.id, released.state) == (late.id, "no_show")
    assert book.holding_at("P1", clock.now_s) == 1
    with pytest.raises(ConflictError, match="no_show"):
        book.arrive(late.id)


def test_reservations_survive_a_restart(clock: ManualClock, carparks: CarParks, tmp_path: Path) -> None:
    path = tmp_path / "parking.sqlite"
    book = ReservationBook(path, carparks, clock=clock)
    made = book.reserve("P1", NOW_S + 3600, NOW_S + 7200, "kept")
    book.close()
    again = ReservationBook(path, carparks, clock=clock)
    assert again.get(made.id) == made
    assert again.reserve("P1", NOW_S + 3600, NOW_S + 7200, "kept") == made


def test_concurrent_writers_on_one_file_never_overbook(clock: ManualClock, carparks: CarParks,
                                                       tmp_path: Path) -> None:
    """Eight threads, each with its own connection, reserve overlapping windows of one car park at once."""
    path = tmp_path / "parking.sqlite"
    ReservationBook(path, carparks, clock=clock).close()
    confirmed: list[str] = []
    refused: list[str] = []
    start = threading.Barrier(8)

    def client(number: int) -> None:
        book = ReservationBook(path, carparks, clock=clock)
        start.wait()
        for attempt in range(5):
            ref = f"client-{number}-{attempt}"
            offset = 600.0 * ((number + attempt) % 4)
            try:
                book.reserve("P1", NOW_S + 3600 + offset, NOW_S + 7200 + offset, ref)
                confirmed.append(ref)
            except ConflictError:
                refused.append(ref)
        book.close()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    book = ReservationBook(path, carparks, clock=clock)
    assert len(confirmed) + len(refused) == 40 and refused
    rows = [book.get(row[0]) for row in book._db.execute("SELECT id FROM reservations").fetchall()]
    assert sorted(r.ref for r in rows) == sorted(confirmed)
    assert peak_overlap([r.from_s for r in rows], [r.until_s for r in rows], 0.0, 2e9) == 3
