"""Reservations ahead, in an embedded SQLite database: never more than a car park's reservable spaces.

A reservation holds one space of a car park over ``[from_s, until_s)`` (s on the clock, UNIX time
in service). At no instant may the reservations that hold a space at a car park outnumber its
``reservable`` spaces. Each reservation is checked and written in one ``BEGIN IMMEDIATE``
transaction, which takes the database's write lock before reading: concurrent writers (threads,
processes, servers sharing the file) are serialised, so two requests can never both take the last
space.

- **Idempotent**: the client's ``ref`` identifies its request. Asking again with the same ref and
  the same car park and window returns the reservation already made; the same ref for anything
  else is a ``CONFLICT``.
- **Cancel**: a cancelled reservation frees its space; cancelling it again returns it unchanged.
- **No-shows**: a reservation whose holder has not arrived ``grace_s`` after its start is released
  (state ``no_show``) by :meth:`ReservationBook.release_no_shows`, freeing the rest of its window.
- **Durable**: WAL journal, ``synchronous=FULL``: a reservation confirmed is on disk, and a restart
  finds it.
- **No personal data**: a client reference, never a plate or a name.
"""

from __future__ import annotations

import hashlib
import math
import os
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from pilotage.core.errors import ConflictError, InvalidInputError, UnknownEntityError
from pilotage.core.store import open_store
from pilotage.parking.registry import CarParks

STATES = ("booked", "arrived", "cancelled", "no_show")
#: States that hold a space.
HOLDING = ("booked", "arrived")

_SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS reservations (
    id TEXT PRIMARY KEY,
    ref TEXT NOT NULL UNIQUE,
    carpark TEXT NOT NULL,
    from_s REAL NOT NULL,
    until_s REAL NOT NULL,
    state TEXT NOT NULL,
    created_s REAL NOT NULL,
    updated_s REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS reservations_by_window ON reservations (carpark, until_s, from_s);
CREATE INDEX IF NOT EXISTS reservations_by_state ON reservations (state, from_s);
-- The reservations holding a space, alone: a car park's cancelled and past ones, however many, are
-- not read again at each reservation.
CREATE INDEX IF NOT EXISTS reservations_holding ON reservations (carpark, until_s, from_s)
    WHERE state IN ('booked', 'arrived');
"""

# The windows of a car park's reservations holding a space during [from, until): on the partial index.
_HOLDING_IN_WINDOW = (f"SELECT from_s, until_s FROM reservations WHERE carpark = ? AND until_s > ? AND from_s < ? "
                      f"AND state IN {HOLDING}")


@dataclass(frozen=True)
class Reservation:
    """One reservation: its id, the client's reference, the car park, the window (s on the
    clock), its state (:data:`STATES`), and when it was made and last changed."""

    id: str
    ref: str
    carpark: str
    from_s: float
    until_s: float
    state: str
    created_s: float
    updated_s: float


def peak_overlap(from_s: Sequence[float], until_s: Sequence[float], window_from_s: float,
                 window_until_s: float) -> int:
    """The most of the half-open intervals ``[from_s[i], until_s[i])`` that hold one instant of the
    window ``[window_from_s, window_until_s)``."""
    events = []
    for interval_from_s, interval_until_s in zip(from_s, until_s, strict=True):
        start, end = max(interval_from_s, window_from_s), min(interval_until_s, window_until_s)
        if start < end:
            events.append((start, 1))
            events.append((end, -1))
    # At one instant an interval ending goes before one starting: half-open intervals that touch
    # do not overlap.
    events.sort()
    peak = count = 0
    for _, step in events:
        count += step
        peak = max(peak, count)
    return peak


class ReservationBook:
    """The reservations of the car parks of ``carparks``, in the SQLite database at ``path``
    (created if absent; ``":memory:"`` for one that lives as long as the object).

    Args:
        carparks: the registry; its ``reservable`` spaces bound the reservations.
        clock: the time (s); reservations may not start in its past.
        grace_s: a reservation not arrived this long after its start is a no-show.
        max_duration_s: the longest reservation.
        max_ahead_s: how far ahead a reservation may start.

    Raises:
        DataFileError: a database that cannot be opened, or of another schema version.
    """

    def __init__(self, path: str | os.PathLike[str], carparks: CarParks, *, clock: Callable[[], float],
                 grace_s: float = 900.0, max_duration_s: float = 7 * 86400.0,
                 max_ahead_s: float = 90 * 86400.0) -> None:
        self.carparks = carparks
        self.clock = clock
        self.grace_s = grace_s
        self.max_duration_s = max_duration_s
        self.max_ahead_s = max_ahead_s
        self.path = str(path)
        # Autocommit: every write opens its own BEGIN IMMEDIATE transaction.
        self._db = open_store(self.path, what="reservations", schema=_SCHEMA, version=_SCHEMA_VERSION)

    def close(self) -> None:
        """Close the database."""
        self._db.close()

    def reserve(self, carpark: str, from_s: float, until_s: float, ref: str) -> Reservation:
        """Reserve one space of ``carpark`` over ``[from_s, until_s)`` for the client's ``ref``.

        Raises:
            UnknownEntityError: an unknown car park.
            InvalidInputError: an empty ref, a window that is reversed, in the past, too long or
                too far ahead.
            ConflictError: the car park's reservable spaces are all taken at some instant of the
                window, or ``ref`` was used for another reservation.
        """
        spaces = self.carparks.get(carpark).reservable
        now = float(self.clock())
        self._check_window(from_s, until_s, now)
        if not isinstance(ref, str) or not 0 < len(ref) <= 64:
            raise InvalidInputError(f"expected a client reference of 1 to 64 characters, got {ref!r}", field="ref")
        with self._transaction():
            existing = self._db.execute("SELECT * FROM reservations WHERE ref = ?", (ref,)).fetchone()
            if existing is not None:
                reservation = Reservation(*existing)
                if (reservation.carpark, reservation.from_s, reservation.until_s) == (carpark, from_s, until_s) \
                        and reservation.state in HOLDING:
                    return reservation
                raise ConflictError(f"reference {ref!r} was used for reservation {reservation.id} "
                                    f"({reservation.carpark}, {reservation.from_s:.0f}-{reservation.until_s:.0f} s, "
                                    f"{reservation.state}); use a new reference for a new reservation", field="ref")
            holding = self._db.execute(_HOLDING_IN_WINDOW, (carpark, from_s, until_s)).fetchall()
            taken = peak_overlap([row[0] for row in holding], [row[1] for row in holding], from_s, until_s)
            if taken >= spaces:
                raise ConflictError(f"car park {carpark} is full for reservations in {from_s:.0f}-{until_s:.0f} s: "
                                    f"{spaces} reservable spaces, all taken at some time of the window; try another "
                                    "window or car park", field="from")
            # The id follows from the reference, which is unique: one request, one id, whoever asks again.
            reservation = Reservation(f"r-{hashlib.blake2b(ref.encode(), digest_size=8).hexdigest()}", ref, carpark,
                                      float(from_s), float(until_s), "booked", now, now)
            self._db.execute("INSERT INTO reservations VALUES (?, ?, ?, ?, ?, ?, ?, ?)", _row(reservation))
        return reservation

    def cancel(self, reservation_id: str) -> Reservation:
        """Cancel a reservation, freeing its space; a reservation already ended (cancelled, no-show)
        is returned as it is.

        Raises:
            UnknownEntityError: an unknown reservation.
        """
        return self._move(reservation_id, ("booked", "arrived"), "cancelled")

    def arrive(self, reservation_id: str) -> Reservation:
        """The holder has arrived: the reservation is no longer a no-show candidate.

        Raises:
            UnknownEntityError: an unknown reservation.
            ConflictError: a reservation cancelled or released as a no-show.
        """
        reservation = self._move(reservation_id, ("booked",), "arrived")
        if reservation.state not in HOLDING:
            raise ConflictError(f"reservation {reservation_id} is {reservation.state}: it holds no space any more",
                                field="reservation")
        return reservation

    def release_no_shows(self) -> list[Reservation]:
        """Release the reservations not arrived ``grace_s`` after their start; returns them."""
        now = float(self.clock())
        # On the index by state and start: the booked reservations that started before the grace.
        due = "FROM reservations WHERE state = 'booked' AND from_s < ?"
        started_before = now - self.grace_s
        # Read first: the write lock only when there is something to release (most calls have none).
        if self._db.execute(f"SELECT 1 {due} LIMIT 1", (started_before,)).fetchone() is None:
            return []
        with self._transaction():
            rows = self._db.execute(f"SELECT * {due}", (started_before,)).fetchall()
            self._db.execute(f"UPDATE reservations SET state = 'no_show', updated_s = ? WHERE id IN "
                             f"(SELECT id {due})", (now, started_before))
        return [replace(Reservation(*row), state="no_show", updated_s=now) for row in rows]

    def get(self, reservation_id: str) -> Reservation:
        """The reservation with this id; raises :class:`UnknownEntityError`."""
        row = self._db.execute("SELECT * FROM reservations WHERE id = ?", (reservation_id,)).fetchone()
        if row is None:
            raise UnknownEntityError(f"no reservation has id {reservation_id!r}", field="reservation")
        return Reservation(*row)

    def knows(self, ref: str) -> bool:
        """Whether a reservation was made for the client's reference ``ref``."""
        return self._db.execute("SELECT 1 FROM reservations WHERE ref = ?", (ref,)).fetchone() is not None

    def holding_at(self, carpark: str, time_s: float) -> int:
        """How many reservations hold a space at ``carpark`` at ``time_s``."""
        return int(self._db.execute(f"SELECT COUNT(*) FROM reservations WHERE carpark = ? AND from_s <= ? "
                                    f"AND until_s > ? AND state IN {HOLDING}", (carpark, time_s, time_s)).fetchone()[0])

    def awaited_at(self, carpark: str, time_s: float) -> int:
        """How many reservations hold a space at ``carpark`` at ``time_s`` for a holder not arrived
        yet: spaces the car park's counters still see free."""
        return int(self._db.execute("SELECT COUNT(*) FROM reservations WHERE carpark = ? AND from_s <= ? "
                                    "AND until_s > ? AND state = 'booked'", (carpark, time_s, time_s)).fetchone()[0])

    def _check_window(self, from_s: float, until_s: float, now: float) -> None:
        for name, value in (("from", from_s), ("until", until_s)):
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise InvalidInputError(f"expected a time (s) for {name}, got {value!r}", field=name)
        if from_s < now - 60.0:
            raise InvalidInputError(f"expected a window that starts now or later ({now:.0f} s), got from "
                                    f"{from_s:.0f} s", field="from")
        if from_s > now + self.max_ahead_s:
            raise InvalidInputError(f"expected a window that starts within {self.max_ahead_s / 86400:.0f} days, got "
                                    f"{(from_s - now) / 86400:.1f} days ahead", field="from")
        if not from_s < until_s <= from_s + self.max_duration_s:
            raise InvalidInputError(f"expected until after from, by at most {self.max_duration_s:.0f} s, got "
                                    f"{from_s:.0f}-{until_s:.0f} s", field="until")

    def _move(self, reservation_id: str, sources: tuple[str, ...], target: str) -> Reservation:
        now = float(self.clock())
        with self._transaction():
            reservation = self.get(reservation_id)
            if reservation.state in sources:
                self._db.execute("UPDATE reservations SET state = ?, updated_s = ? WHERE id = ?",
                                 (target, now, reservation_id))
                return replace(reservation, state=target, updated_s=now)
        return reservation

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)


class _Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``, or ``ROLLBACK`` on an exception."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        self._db.execute("COMMIT" if kind is None else "ROLLBACK")


def _row(reservation: Reservation) -> tuple[str, str, str, float, float, str, float, float]:
    return (reservation.id, reservation.ref, reservation.carpark, reservation.from_s, reservation.until_s,
            reservation.state, reservation.created_s, reservation.updated_s)
