"""A reservation, checked and written, against a bare SQLite write with the same durability in the
same run.

``reserve`` is the whole path of ``parking.reserve`` in the engine: the idempotency lookup, the
reservations overlapping the window (a car park already holding 2,000 over the next weeks), the
peak count over the window, and the insert, in one ``BEGIN IMMEDIATE`` transaction on a WAL
database with ``synchronous=FULL``. The reference is one INSERT in such a transaction, on such a
database: what any durable write costs on this disk.
"""

import itertools
import sqlite3
from pathlib import Path

import pytest

from pilotage.parking import CarPark, CarParks, ReservationBook

GROUP = "reservation, SQLite WAL synchronous=FULL"
NOW_S = 1_750_000_000.0


@pytest.fixture
def book(tmp_path: Path) -> ReservationBook:
    carparks = CarParks([CarPark("P1", "Centre", 6.13, 49.61, capacity=5000, reservable=4000)])
    book = ReservationBook(tmp_path / "parking.sqlite", carparks, clock=lambda: NOW_S)
    for i in range(2000):
        start = NOW_S + 3600.0 * (i % 500)
        book.reserve("P1", start, start + 7200.0, f"seed-{i}")
    return book


def test_bare_durable_insert(benchmark, tmp_path: Path) -> None:
    benchmark.group = GROUP
    benchmark.extra_info["reference"] = True
    db = sqlite3.connect(tmp_path / "bare.sqlite", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE t (id TEXT PRIMARY KEY, carpark TEXT, from_s REAL, until_s REAL)")
    numbers = itertools.count()

    def insert() -> None:
        db.execute("BEGIN IMMEDIATE")
        db.execute("INSERT INTO t VALUES (?, 'P1', ?, ?)", (f"r-{next(numbers)}", NOW_S, NOW_S + 7200.0))
        db.execute("COMMIT")

    benchmark(insert)


def test_reserve(benchmark, book: ReservationBook) -> None:
    benchmark.group = GROUP
    benchmark.name = "reserve, 2,000 held"
    numbers = itertools.count()

    def reserve() -> None:
        start = NOW_S + 3600.0 * (next(numbers) % 500) + 1800.0
        book.reserve("P1", start, start + 7200.0, f"bench-{next(numbers)}")

    benchmark(reserve)
