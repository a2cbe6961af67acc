"""The parking engine: live availability, reservations, forecasts at arrival, and guidance.

- **Live availability** comes from counts (free spaces per car park over time): a counting system's
  ``parking.update`` messages, or a CSV of counts (:func:`pilotage.parking.forecast.read_counts`). A
  car park whose last count is older than ``stale_after_s`` is **stale**: its free spaces are shown,
  marked as such (and a ``stale`` event is published once).
- **Reservations** live in a :class:`ReservationBook`; a reservation's space is taken from the free
  spaces shown to drivers from its start until its holder arrives (the counters see it from then).
- **Forecasts**: free spaces at a time ahead, by a :class:`ProfileRegression` fitted on a history of
  counts (:meth:`ParkingEngine.load_counts`), from the live counts; without a history, the last
  count.
- **Guidance**: for a destination and an arrival time, the car parks within walking distance,
  ranked by the time to the destination's door (driving time on the road network from the origin,
  when given, plus the walk), those predicted full last.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from pilotage.core import RoadNetwork
from pilotage.core.errors import InvalidInputError
from pilotage.parking.forecast import MAX_GAP_S, Counts, Forecaster, ProfileRegression, resample
from pilotage.parking.registry import CarParks
from pilotage.parking.reservations import Reservation, ReservationBook

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Availability:
    """A car park's state now: its last count of free spaces (None before any) and when it was
    made (s on the clock), whether it is stale, the reservable spaces not reserved now, and its
    distance (m) from the point asked about, if any."""

    carpark: str
    name: str
    lon: float
    lat: float
    capacity: int
    free: int | None
    observed_s: float | None
    stale: bool
    reservable_free: int
    distance_m: float | None = None


@dataclass(frozen=True)
class Guidance:
    """A car park proposed for a destination: the free spaces predicted at arrival (reservations
    awaited then taken off; None when nothing is known: no count, no forecast), the driving time
    from the origin (s; None without an origin), the walk to the destination (m, s), the total time
    to the door (s), and whether it is likely full."""

    carpark: str
    name: str
    predicted_free: float | None
    drive_s: float | None
    walk_m: float
    walk_s: float
    door_s: float
    likely_full: bool


class ParkingEngine:
    """The car parks of ``carparks``, their counts and reservations, on an injected clock.

    Args:
        carparks: the registry.
        reservations: the reservation book of the same registry.
        clock: the time (s): wall time in service.
        network: the road network, for driving times in guidance (optional).
        stale_after_s: a count older than this is stale.
        walking_speed_m_s: walking speed from a car park to the destination.
        max_walk_m: guidance proposes car parks within this distance of the destination.
    """

    def __init__(self, carparks: CarParks, reservations: ReservationBook, clock: Callable[[], float], *,
                 network: RoadNetwork | None = None, stale_after_s: float = 900.0, walking_speed_m_s: float = 1.3,
                 max_walk_m: float = 1500.0) -> None:
        self.carparks = carparks
        self.reservations = reservations
        self.clock = clock
        self.network = network
        self.stale_after_s = stale_after_s
        self.walking_speed_m_s = walking_speed_m_s
        self.max_walk_m = max_walk_m
        count = len(carparks)
        self._free = np.full(count, np.nan)
        self._observed_s = np.full(count, np.nan)
        self._stale = np.zeros(count, dtype=np.bool_)
        self._forecaster: Forecaster | None = None
        self._nodes = None if network is None else np.array(
            [network.snap(carpark.lon, carpark.lat, max_distance_m=math.inf)[0] for carpark in carparks])

    # -- counts ------------------------------------------------------------------------------------

    def update(self, carpark: str, free: int, time_s: float | None = None) -> Availability:
        """A count: ``free`` spaces at ``carpark`` at ``time_s`` (default: now).

        Raises:
            UnknownEntityError: an unknown car park.
            InvalidInputError: free spaces outside 0..capacity, a time in the future, or older than
                the car park's last count.
        """
        k = self.carparks.index_of(carpark)
        now = float(self.clock())
        time_s = now if time_s is None else float(time_s)
        capacity = self.carparks.carparks[k].capacity
        if isinstance(free, bool) or not isinstance(free, int) or not 0 <= free <= capacity:
            raise InvalidInputError(f"car park {carpark}: expected free spaces in 0..{capacity}, got {free!r}",
                                    field="free")
        if not math.isfinite(time_s) or time_s > now + 60.0:
            raise InvalidInputError(f"expected the count's time at or before now ({now:.0f} s), got {time_s}",
                                    field="time")
        if time_s < self._observed_s[k]:
            raise InvalidInputError(f"car park {carpark}: a count of {time_s:.0f} s is older than the last one "
                                    f"({self._observed_s[k]:.0f} s); send counts in time order", field="time")
        self._free[k] = free
        self._observed_s[k] = time_s
        self._stale[k] = False
        return self._availability(k, now, None)

    def load_counts(self, counts: Counts) -> None:
        """Take a history of counts (:func:`pilotage.parking.forecast.read_counts`; columns of car
        parks outside the registry are left out): each car park's last count becomes its state, and
        a :class:`ProfileRegression` forecaster is fitted on the whole history (when it is too short
        to fit, forecasts stay the last count)."""
        known = [carpark for carpark in self.carparks.ids if carpark in counts.carparks]
        free = np.full((counts.time_s.size, len(self.carparks)), np.nan)
        free[:, [self.carparks.index_of(carpark) for carpark in known]] = counts.select(known).free
        for k in range(len(self.carparks)):
            seen = np.flatnonzero(~np.isnan(free[:, k]))
            if seen.size:
                self._free[k] = free[seen[-1], k]
                self._observed_s[k] = counts.time_s[seen[-1]]
        try:
            self._forecaster = ProfileRegression().fit(resample(Counts(counts.time_s, self.carparks.ids, free)))
        except InvalidInputError as exc:
            logger.warning("no forecaster: %s; forecasts are the last counts", exc)
            self._forecaster = None
        logger.info("counts of %d of the %d car parks, %d times", len(known), len(self.carparks),
                    counts.time_s.size)

    def advance(self) -> tuple[list[Reservation], list[str]]:
        """Release the no-shows, and mark the car parks whose count has gone stale. Returns the
        reservations released and the car parks that went stale since the last call."""
        now = float(self.clock())
        stale = (now - self._observed_s > self.stale_after_s) & ~self._stale
        self._stale |= stale
        return self.reservations.release_no_shows(), [self.carparks.ids[k] for k in np.flatnonzero(stale)]

    # -- reading -----------------------------------------------------------------------------------

    def availability(self, near: tuple[float, float] | None = None,
                     radius_m: float | None = None) -> list[Availability]:
        """Every car park's state now; with ``near`` (lon, lat), those within ``radius_m`` of it
        (all when None), nearest first."""
        now = float(self.clock())
        if near is None:
            return [self._availability(k, now, None) for k in range(len(self.carparks))]
        distances = self.carparks.distances_m(*near)
        chosen = [k for k in np.argsort(distances, kind="stable") if radius_m is None or distances[k] <= radius_m]
        return [self._availability(int(k), now, float(distances[k])) for k in chosen]

    def state(self, carpark: str) -> Availability:
        """One car park's state now.

        Raises:
            UnknownEntityError: an unknown car park.
        """
        return self._availability(self.carparks.index_of(carpark), float(self.clock()), None)

    def predicted_free(self, carpark: str, time_s: float) -> float:
        """Free spaces expected at ``carpark`` at ``time_s``, reservations awaited then taken off;
        NaN when nothing is known (no count, no forecast).

        Raises:
            UnknownEntityError: an unknown car park.
        """
        k = self.carparks.index_of(carpark)
        return self._predicted_free(k, float(time_s), self._expected_free(float(self.clock()), float(time_s)))

    def guide(self, destination: tuple[float, float], arrival_s: float, origin: int | None = None) -> list[Guidance]:
        """Car parks for a driver heading to ``destination`` (lon, lat), arriving at ``arrival_s``,
        from node ``origin`` (index; optional): those within ``max_walk_m``, by time to the door,
        the ones predicted full last.

        Raises:
            InvalidInputError: an arrival time in the past or not finite; an origin without a
                network.
            UnknownEntityError: an unknown origin node.
        """
        now = float(self.clock())
        if not math.isfinite(arrival_s) or arrival_s < now - 60.0:
            raise InvalidInputError(f"expected an arrival time at or after now ({now:.0f} s), got {arrival_s}",
                                    field="arrival")
        walks_m = self.carparks.distances_m(*destination)
        drives_s = np.full(len(self.carparks), np.nan)
        if origin is not None:
            if self.network is None or self._nodes is None:
                raise InvalidInputError("expected no origin: this engine has no road network for driving times",
                                        field="origin")
            drives_s = self.network.one_to_many(origin, self._nodes)
        expected = self._expected_free(now, arrival_s)
        proposals = []
        for k in np.flatnonzero(walks_m <= self.max_walk_m):
            carpark = self.carparks.carparks[k]
            free = self._predicted_free(int(k), arrival_s, expected)
            walk_s = float(walks_m[k]) / self.walking_speed_m_s
            drive = None if np.isnan(drives_s[k]) else float(drives_s[k])
            proposals.append(Guidance(carpark.id, carpark.name, None if math.isnan(free) else free, drive,
                                      float(walks_m[k]), walk_s, (drive or 0.0) + walk_s, free < 1.0))
        # Known free spaces first, then car parks of unknown state, then those likely full.
        return sorted(proposals, key=lambda g: (g.likely_full, g.predicted_free is None, g.door_s))

    # -- helpers -----------------------------------------------------------------------------------

    def _expected_free(self, now: float, time_s: float) -> np.ndarray:
        """(C,) free spaces at ``time_s``: the forecaster's when it has one and the time is ahead,
        else (or where it has none) the last count; NaN where nothing is known.

        The forecaster needs only the counts at its issue time, the last time of its grid: each car
        park's last count, when no older than the forecaster's maximum gap (else unknown, and the
        forecast is the time-of-day profile). So no history is kept beyond the last counts."""
        free: np.ndarray = self._free.copy()
        if self._forecaster is not None and time_s > now + 60.0:
            step_s = self._forecaster.step_s
            issue_s = math.floor(now / step_s) * step_s
            fresh = np.where(self._observed_s >= issue_s - MAX_GAP_S, free, np.nan)
            current = Counts(np.array([issue_s]), self.carparks.ids, fresh[None, :])
            forecast = self._forecaster.predict(current, [max(time_s - issue_s, 1.0)])[:, 0]
            free = np.where(np.isnan(forecast), free, forecast)
        return free

    def _predicted_free(self, k: int, time_s: float, expected: np.ndarray) -> float:
        """Car park ``k``'s ``expected`` free spaces, within its capacity, less the reservations
        awaited at ``time_s``; NaN when unknown."""
        carpark = self.carparks.carparks[k]
        if math.isnan(expected[k]):
            return math.nan
        awaited = self.reservations.awaited_at(carpark.id, time_s)
        return max(0.0, min(float(carpark.capacity), float(expected[k])) - awaited)

    def _availability(self, k: int, now: float, distance_m: float | None) -> Availability:
        carpark = self.carparks.carparks[k]
        seen = not np.isnan(self._observed_s[k])
        return Availability(
            carpark.id, carpark.name, carpark.lon, carpark.lat, carpark.capacity,
            int(self._free[k]) if seen else None, float(self._observed_s[k]) if seen else None,
            bool((not seen) or now - self._observed_s[k] > self.stale_after_s),
            carpark.reservable - self.reservations.holding_at(carpark.id, now), distance_m)
