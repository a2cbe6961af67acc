"""Forecasts of free spaces per car park, from the parking-scraper CSV archive, and their evaluation.

The data: one CSV file per day, a header ``timestamp,<place_id>,...``, then one row per scrape with
an ISO timestamp (UTC offset required) and the free spaces of each car park; an empty cell means "no
change since the last record, or no record". :func:`read_counts` reads such files as they are;
:func:`resample` puts them on a regular UTC grid, carrying each value forward for at most
``max_gap_s``.

Every forecaster works on such a grid and has the same two methods: ``fit(train)`` once, on the
training counts, then ``predict(history, horizons_s)`` at an issue time, the last time of
``history``; it returns a (car parks, horizons) array of free spaces, NaN where it has no forecast.

- :class:`Persistence`: the value at the issue time.
- :class:`SeasonalNaive` (the reference): the value at the same local weekday and time one week
  before the target, else on the last earlier day of the same kind (Monday-Friday, or weekend).
- :class:`SeasonalProfile` (the seasonal baseline): the mean per car park per local weekday and
  time slot over the training days.
- :class:`ProfileRegression`: the profile now, plus weighted current deviation from it and weighted
  change of the profile up to the target, weights per horizon fitted by least squares on the training days.

Weekdays and times of day are those of Europe/Berlin. :func:`evaluate` compares the models on a
train/test split; :func:`forecast_table` reads files and prints that comparison (docs/parking-forecast.md).
"""

from __future__ import annotations

import csv
import logging
import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import numpy as np

from pilotage.core.errors import DataFileError, InvalidInputError

if TYPE_CHECKING:
    from typing_extensions import Self  # typing has it from Python 3.11

logger = logging.getLogger(__name__)

#: Time zone of the weekdays and times of day (the car parks are in Germany).
LOCAL_TIME_ZONE = ZoneInfo("Europe/Berlin")

#: Grid step of the forecasts and of the profile's time slots (s).
STEP_S = 900.0

#: A value is carried forward on the grid for at most this long after it was recorded (s).
MAX_GAP_S = 3600.0

#: Horizons of the evaluation (s): 15 min, 30 min, 1 h, 2 h, 3 h.
HORIZONS_S: tuple[float, ...] = (900.0, 1800.0, 3600.0, 7200.0, 10800.0)

#: Car parks with a value at fewer than this fraction of the grid times are not evaluated.
MIN_COVERAGE = 0.8

#: :class:`ProfileRegression` fits its weights for the horizons of one grid step up to this (s).
FIT_HORIZON_S = 6 * 3600.0

DAY_S = 86400.0
WEEK_DAYS = 7


@dataclass(frozen=True, eq=False)
class Counts:
    """Free spaces of car parks over time.

    Attributes:
        time_s: (N,) float64 UNIX times (s, UTC), strictly increasing.
        carparks: the C car park ids (``place_id``), in column order.
        free: (N, C) float64 free spaces; NaN where nothing is known.

    Raises :class:`InvalidInputError` for arrays of other shapes, times not finite and strictly
    increasing, or repeated car park ids.
    """

    time_s: np.ndarray
    carparks: tuple[str, ...]
    free: np.ndarray

    def __post_init__(self) -> None:
        time_s = np.asarray(self.time_s, dtype=np.float64)
        free = np.asarray(self.free, dtype=np.float64)
        carparks = tuple(self.carparks)
        if time_s.ndim != 1:
            raise InvalidInputError(f"expected time_s of shape (N,), got {time_s.shape}", field="time_s")
        if free.shape != (time_s.size, len(carparks)):
            raise InvalidInputError(f"expected free of shape ({time_s.size}, {len(carparks)}) (times, car parks), "
                                    f"got {free.shape}", field="free")
        if not np.all(np.isfinite(time_s)) or np.any(np.diff(time_s) <= 0):
            raise InvalidInputError("expected finite, strictly increasing time_s", field="time_s")
        if len(set(carparks)) != len(carparks):
            raise InvalidInputError("expected distinct car park ids", field="carparks")
        object.__setattr__(self, "time_s", time_s)
        object.__setattr__(self, "carparks", carparks)
        object.__setattr__(self, "free", free)

    def select(self, carparks: Sequence[str]) -> Counts:
        """The columns of these car parks, in this order; raises :class:`InvalidInputError` for an unknown id."""
        column_of = {carpark: column for column, carpark in enumerate(self.carparks)}
        unknown = [carpark for carpark in carparks if carpark not in column_of]
        if unknown:
            raise InvalidInputError(f"unknown car parks {unknown[:5]}: not among the {len(self.carparks)} of these "
                                    "counts", field="carparks")
        return Counts(self.time_s, tuple(carparks), self.free[:, [column_of[carpark] for carpark in carparks]])


# ---------------------------------------------------------------------------------------------- reading


def read_counts(paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> Counts:
    """Read one or several parking-scraper CSV files into one :class:`Counts`, as recorded.

    Car parks are the union of the files' columns, sorted by id; a car park missing from a file is
    NaN at its times, and so is every empty cell (nothing is carried forward here). Rows with the same
    timestamp are merged, the last non-empty value of each car park winning. Values are kept as
    they are, negative ones included (some sources report them).

    Raises:
        InvalidInputError: no path given.
        DataFileError: a file that cannot be read, or malformed content (message names the file and
            line): a header not starting with ``timestamp``, an empty or repeated car park id, a row
            with a different number of cells, a timestamp that is not ISO 8601 with a UTC offset, a
            value that is not a finite number.
    """
    paths = [paths] if isinstance(paths, str | os.PathLike) else list(paths)
    if not paths:
        raise InvalidInputError("expected at least one CSV file of parking counts", field="paths")
    files = [_read_file(Path(path)) for path in paths]
    carparks = tuple(sorted({carpark for _, header, _ in files for carpark in header}))
    column_of = {carpark: column for column, carpark in enumerate(carparks)}
    time_s = np.concatenate([times for times, _, _ in files])
    free = np.full((time_s.size, len(carparks)), np.nan)
    row = 0
    for times, header, values in files:
        free[row:row + times.size, [column_of[carpark] for carpark in header]] = values
        row += times.size
    order = np.argsort(time_s, kind="stable")
    time_s, free = time_s[order], free[order]
    unique_s = np.unique(time_s)
    if unique_s.size < time_s.size:
        logger.info("merged %d rows with a repeated timestamp", time_s.size - unique_s.size)
        free = _last_observed(time_s, free, unique_s, max_age_s=0.0)
    logger.info("read %d rows of %d car parks from %d files", unique_s.size, len(carparks), len(paths))
    return Counts(unique_s, carparks, free)


def _read_file(path: Path) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Times (s), car park ids and (rows, car parks) values of one CSV file."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as file:
            numbered = [(line, row) for line, row in enumerate(csv.reader(file), start=1) if row]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataFileError(f"cannot read parking counts from {path}: {exc}") from exc
    if not numbered or numbered[0][1][0].strip() != "timestamp":
        found = f"{','.join(numbered[0][1][:2])!r}" if numbered else "an empty file"
        raise DataFileError(f"{path}:1: expected a header `timestamp,<place_id>,...`, got {found}")
    header_line, header = numbered[0][0], [name.strip() for name in numbered[0][1][1:]]
    if not all(header) or len(set(header)) != len(header):
        raise DataFileError(f"{path}:{header_line}: expected distinct, non-empty car park ids in the header")
    times_s = np.empty(len(numbered) - 1)
    for k, (line, row) in enumerate(numbered[1:]):
        if len(row) != len(header) + 1:
            raise DataFileError(f"{path}:{line}: expected {len(header) + 1} cells (timestamp and {len(header)} car "
                                f"parks, as in the header), got {len(row)}")
        times_s[k] = _parse_timestamp_s(row[0], path, line)
    cells = np.array([row[1:] for _, row in numbered[1:]], dtype=str).reshape(times_s.size, len(header))
    empty = cells == ""
    try:
        values = np.where(empty, "nan", cells).astype(np.float64)
    except ValueError:
        values = np.full(cells.shape, np.inf)  # the loop below names the culprit
    for k, column in np.argwhere(~empty & ~np.isfinite(values)):
        try:
            values[k, column] = float(cells[k, column])
        except ValueError:
            values[k, column] = np.nan
        if not np.isfinite(values[k, column]):
            raise DataFileError(f"{path}:{numbered[k + 1][0]}: expected a number of free spaces for "
                                f"{header[column]!r}, got {cells[k, column]!r}")
    return times_s, header, values


def _parse_timestamp_s(text: str, path: Path, line: int) -> float:
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise DataFileError(f"{path}:{line}: expected an ISO 8601 timestamp with a UTC offset such as "
                            f"2024-05-01T00:00:01+00:00, got {text!r}")
    return moment.timestamp()


# --------------------------------------------------------------------------------------------- resampling


def resample(counts: Counts, step_s: float = STEP_S, *, max_gap_s: float = MAX_GAP_S) -> Counts:
    """The counts on a regular UTC grid: every multiple of ``step_s`` (s since the UNIX epoch) from the
    first to the last time of ``counts``.

    The value at a grid time is the last non-NaN value recorded at or before it, if recorded at most
    ``max_gap_s`` (s) before; otherwise NaN.

    Raises:
        InvalidInputError: ``step_s`` not finite and > 0, ``max_gap_s`` not finite and >= 0, or no
            times in ``counts``.
    """
    if not (np.isfinite(step_s) and step_s > 0):
        raise InvalidInputError(f"expected a finite step_s > 0 (s), got {step_s}", field="step_s")
    if not (np.isfinite(max_gap_s) and max_gap_s >= 0):
        raise InvalidInputError(f"expected a finite max_gap_s >= 0 (s), got {max_gap_s}", field="max_gap_s")
    if counts.time_s.size == 0:
        raise InvalidInputError("expected counts with at least one time to resample", field="counts")
    first = np.ceil(counts.time_s[0] / step_s)
    last = np.floor(counts.time_s[-1] / step_s)
    grid_s = (first + np.arange(max(int(last - first) + 1, 0))) * step_s
    return Counts(grid_s, counts.carparks, _last_observed(counts.time_s, counts.free, grid_s, max_gap_s))


def _last_observed(time_s: np.ndarray, free: np.ndarray, at_s: np.ndarray, max_age_s: float) -> np.ndarray:
    """(len(at_s), C): per car park, the last non-NaN value recorded at or before each of ``at_s``, at
    most ``max_age_s`` before; NaN otherwise. ``time_s`` is non-decreasing; later rows win ties."""
    rows = np.arange(time_s.size)[:, None]
    last_row = np.maximum.accumulate(np.where(np.isnan(free), -1, rows), axis=0)
    before = np.searchsorted(time_s, at_s, side="right") - 1
    out = np.full((at_s.size, free.shape[1]), np.nan)
    known = before >= 0
    source = last_row[before[known]]
    fresh = (source >= 0) & (at_s[known, None] - time_s[source] <= max_age_s)
    out[known] = np.where(fresh, free[source, np.arange(free.shape[1])], np.nan)
    return out


# ------------------------------------------------------------------------------------------- local time


def _utc_offset_s(time_s: np.ndarray) -> np.ndarray:
    """Offset of local time from UTC (s) at each time. Offsets change on the UTC hour, so one
    conversion per distinct hour is enough."""
    hours, inverse = np.unique(np.floor(np.asarray(time_s) / 3600.0), return_inverse=True)
    offsets = []
    for hour in hours.tolist():
        offset = datetime.fromtimestamp(hour * 3600.0, LOCAL_TIME_ZONE).utcoffset()
        assert offset is not None  # a time in a time zone always has one
        offsets.append(offset.total_seconds())
    return np.asarray(offsets, dtype=np.float64)[inverse].reshape(np.shape(time_s))


def _weekday_slot(time_s: np.ndarray, step_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Local weekday (0 = Monday) and time slot of the day (local time // ``step_s``) of each time."""
    local_s = time_s + _utc_offset_s(time_s)
    days = np.floor(local_s / DAY_S)
    weekday = ((days + 3) % WEEK_DAYS).astype(np.int64)  # 1970-01-01 was a Thursday
    slot = np.floor((local_s - days * DAY_S) / step_s).astype(np.int64)
    return weekday, slot


def _days_earlier_s(time_s: np.ndarray, days: np.ndarray | int) -> np.ndarray:
    """The times ``days`` local calendar days earlier, at the same local time of day (s)."""
    shifted_s = time_s - days * DAY_S
    earlier_s: np.ndarray = shifted_s + _utc_offset_s(time_s) - _utc_offset_s(shifted_s)
    return earlier_s


def _local_midnight_s(time_s: float, days_later: int) -> float:
    """UNIX time (s) of the local midnight starting the day ``days_later`` days after the local day of ``time_s``."""
    day = datetime.fromtimestamp(time_s, LOCAL_TIME_ZONE).date() + timedelta(days=days_later)
    return datetime.combine(day, time(), LOCAL_TIME_ZONE).timestamp()


# -------------------------------------------------------------------------------------------- forecasters


class Forecaster(ABC):
    """A forecaster of free spaces on a regular grid: ``fit(train)`` once, then ``predict(history, horizons_s)``.

    Attributes (after ``fit``):
        step_s: grid step of the training counts (s).
        carparks: the car parks it forecasts, in the order of the training counts.
    """

    #: Name in evaluation tables.
    name: str = ""

    def __init__(self) -> None:
        self.step_s = 0.0
        self.carparks: tuple[str, ...] = ()

    def fit(self, train: Counts) -> Self:
        """Learn from ``train``, counts on a regular grid (:func:`resample`) of at least two times.

        Raises:
            InvalidInputError: ``train`` not on a regular, epoch-aligned grid whose step divides a day.
        """
        self.step_s = _grid_step_s(train, "train")
        if DAY_S % self.step_s:
            raise InvalidInputError(f"expected a grid step that divides a day, got {self.step_s} s", field="train")
        self.carparks = train.carparks
        self._fit(train)
        return self

    def predict(self, history: Counts, horizons_s: Sequence[float] | np.ndarray) -> np.ndarray:
        """Free spaces of each car park at ``horizons_s`` (s) after the issue time, the last time of ``history``.

        ``history``: counts on the training grid (same step, same car parks in the same order) up to
        the issue time; only values at or before it are used. Returns a (car parks, horizons) float64
        array, NaN where the model has no forecast.

        Raises:
            InvalidInputError: not fitted; ``history`` empty, off the grid, or of other car parks;
                horizons not finite and > 0.
        """
        if not self.step_s:
            raise InvalidInputError(f"{type(self).__name__} must be fitted before it predicts", field="model")
        if history.carparks != self.carparks:
            raise InvalidInputError("expected the history of the car parks the model was fitted on, in that order",
                                    field="history")
        if history.time_s.size == 0:
            raise InvalidInputError("expected a history with at least the issue time", field="history")
        _grid_step_s(history, "history", self.step_s)
        horizons = np.asarray(horizons_s, dtype=np.float64)
        if horizons.ndim != 1 or not np.all(np.isfinite(horizons) & (horizons > 0)):
            raise InvalidInputError(f"expected finite horizons > 0 (s), got {horizons_s!r}", field="horizons_s")
        return self._predict(history, horizons)

    def _fit(self, train: Counts) -> None:  # noqa: B027 - a model without parameters learns nothing
        """Learn the model's parameters from the validated training grid."""

    @abstractmethod
    def _predict(self, history: Counts, horizons_s: np.ndarray) -> np.ndarray:
        """(C, H) forecasts at the validated horizons after the last time of the validated history."""


def _grid_step_s(counts: Counts, field: str, step_s: float | None = None) -> float:
    """The step (s) of counts on a regular, epoch-aligned grid: ``step_s`` if given, else inferred from
    at least two times; raises :class:`InvalidInputError` otherwise."""
    steps = np.diff(counts.time_s)
    if step_s is None and steps.size == 0:
        raise InvalidInputError(f"expected {field} counts with at least two times", field=field)
    step = float(steps[0]) if step_s is None else step_s
    if step <= 0 or np.any(steps != step) or counts.time_s[0] % step:
        raise InvalidInputError(f"expected {field} counts on a regular grid of step {step} s aligned on the epoch; "
                                "resample() makes one", field=field)
    return step


class Persistence(Forecaster):
    """The value at the issue time, at every horizon."""

    name = "persistence"

    def _predict(self, history: Counts, horizons_s: np.ndarray) -> np.ndarray:
        return np.repeat(history.free[-1][:, None], horizons_s.size, axis=1)


class SeasonalNaive(Forecaster):
    """The value one week before the target time, at the same local weekday and time of day; where that
    is missing, the value on the last earlier day of the same kind (Monday-Friday, or Saturday-Sunday) at
    the same local time. NaN where neither is in the history or known by the issue time."""

    name = "seasonal-naive"

    def _predict(self, history: Counts, horizons_s: np.ndarray) -> np.ndarray:
        issue_s = history.time_s[-1]
        target_s = issue_s + horizons_s
        weekday, _ = _weekday_slot(target_s, self.step_s)
        # The last earlier day of the same kind: the day before, except Monday -> Friday, Saturday -> Sunday.
        same_kind_days = np.where(weekday == 0, 3, np.where(weekday == 5, 6, 1))
        forecast = self._values_at(history, _days_earlier_s(target_s, WEEK_DAYS))
        fallback = self._values_at(history, _days_earlier_s(target_s, same_kind_days))
        return np.where(np.isnan(forecast), fallback, forecast)

    def _values_at(self, history: Counts, time_s: np.ndarray) -> np.ndarray:
        """(C, len(time_s)) history values at those grid times; NaN for times not in the history."""
        index = np.rint((time_s - history.time_s[0]) / self.step_s).astype(np.int64)
        inside = (index >= 0) & (index < history.time_s.size)
        values = np.full((len(self.carparks), time_s.size), np.nan)
        values[:, inside] = history.free[index[inside]].T
        return values


class SeasonalProfile(Forecaster):
    """The mean free spaces of each car park per local weekday and time slot (one grid step) over the
    training counts; where a weekday's slot has no value, the slot's mean over the days of the same kind
    (Monday-Friday, or weekend); NaN where neither has one."""

    name = "profile"

    def _fit(self, train: Counts) -> None:
        keys = _slot_keys(train.time_s, self.step_s)
        known = ~np.isnan(train.free)
        values = np.where(known, train.free, 0.0)
        self._sums = [_group_sums(key, values, size) for key, size in zip(keys, self._sizes(), strict=True)]
        self._counts = [_group_sums(key, known, size) for key, size in zip(keys, self._sizes(), strict=True)]

    def at(self, time_s: np.ndarray) -> np.ndarray:
        """(len(time_s), C) profile values (free spaces) at these UNIX times (s)."""
        weekday, kind = self._means(np.asarray(time_s, dtype=np.float64))
        return np.where(np.isnan(weekday), kind, weekday)

    def blended_at(self, time_s: np.ndarray, leave_out: np.ndarray | None = None) -> np.ndarray:
        """(len(time_s), C) mean of the weekday and the day-kind profiles at these UNIX times (s), either
        one alone where the other has no value; with ``leave_out`` ((len(time_s), C) values of the
        training counts at those times), each value is left out of its own means."""
        weekday, kind = self._means(np.asarray(time_s, dtype=np.float64), leave_out)
        return np.where(np.isnan(weekday), kind, np.where(np.isnan(kind), weekday, 0.5 * (weekday + kind)))

    def _sizes(self) -> tuple[int, int]:
        slots = int(DAY_S // self.step_s)
        return WEEK_DAYS * slots, 2 * slots

    def _means(self, time_s: np.ndarray, leave_out: np.ndarray | None = None) -> list[np.ndarray]:
        """(len(time_s), C) weekday-slot and kind-slot means, NaN where no value."""
        means = []
        for key, sums, counts in zip(_slot_keys(time_s, self.step_s), self._sums, self._counts, strict=True):
            total, number = sums[key], counts[key]
            if leave_out is not None:
                known = ~np.isnan(leave_out)
                total, number = total - np.where(known, leave_out, 0.0), number - known
            with np.errstate(invalid="ignore", divide="ignore"):
                means.append(np.where(number > 0, total / number, np.nan))
        return means

    def _predict(self, history: Counts, horizons_s: np.ndarray) -> np.ndarray:
        forecast: np.ndarray = self.at(history.time_s[-1] + horizons_s).T
        return forecast


def _slot_keys(time_s: np.ndarray, step_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Profile cells of each time: weekday * slots + slot, and kind (0 Monday-Friday, 1 weekend) * slots + slot."""
    weekday, slot = _weekday_slot(time_s, step_s)
    slots = int(DAY_S // step_s)
    return weekday * slots + slot, (weekday >= 5) * slots + slot


def _group_sums(group: np.ndarray, values: np.ndarray, n_groups: int) -> np.ndarray:
    """(n_groups, C) sums of the ``values`` rows of each group."""
    columns = values.shape[1]
    cells = (group[:, None] * columns + np.arange(columns)).ravel()
    return np.bincount(cells, weights=values.ravel(), minlength=n_groups * columns).reshape(n_groups, columns)


class ProfileRegression(Forecaster):
    """A regression on the current deviation from the seasonal profile and on the profile's change:
    ``p(t) + a_h * (x(t) - p(t)) + b_h * (p(t + h) - p(t))`` for the value ``x`` at issue time ``t``.

    ``p`` is the mean of the weekday and the day-kind profiles of :class:`SeasonalProfile`, smoother
    than the weekday one alone. The weights ``a_h``, ``b_h`` are shared by all car parks and fitted
    by least squares on the training counts for each horizon of one grid step up to
    :data:`FIT_HORIZON_S`, each training value left out of the profile it is compared with (otherwise
    the profile would hold the target). Between fitted horizons the weights are interpolated, from
    persistence (``a = 1``, ``b = 0``) at horizon 0; beyond, the last ones apply. Where the value at the
    issue time is unknown, the forecast is ``p(t + h)``.

    Attributes (after ``fit``):
        profile: the :class:`SeasonalProfile` fitted on the same counts.
        horizons_s: (L + 1,) horizons of the weights (s), from 0.
        weights: (L + 1, 2) ``a_h``, ``b_h`` at those horizons.
    """

    name = "regression"

    def _fit(self, train: Counts) -> None:
        self.profile = SeasonalProfile().fit(train)
        lags = int(FIT_HORIZON_S // self.step_s)
        if train.time_s.size <= lags:
            raise InvalidInputError(f"expected training counts longer than {FIT_HORIZON_S / 3600:g} h, "
                                    f"got {train.time_s.size} times", field="train")
        profile = self.profile.blended_at(train.time_s, leave_out=train.free)
        # Pairs (t, t + lag) count where both times have a value and a profile; others are zeroed out.
        valid = ~np.isnan(train.free) & ~np.isnan(profile)
        deviation = np.where(valid, train.free - profile, 0.0)
        profile = np.where(valid, profile, 0.0)
        self.weights = np.zeros((lags + 1, 2))
        self.weights[0] = 1.0, 0.0
        for lag in range(1, lags + 1):
            known = valid[:-lag] & valid[lag:]
            if not np.any(known):
                raise InvalidInputError(f"no training pair {lag * self.step_s / 60:g} min apart has a value and a "
                                        "profile", field="train")
            now = (deviation[:-lag] * known).ravel()
            change = ((profile[lag:] - profile[:-lag]) * known).ravel()
            later = deviation[lag:].ravel()
            # Least squares of x(t + lag) - p(t) = deviation(t + lag) + change on (deviation(t), change).
            gram = [[np.dot(now, now), np.dot(now, change)], [np.dot(now, change), np.dot(change, change)]]
            right = [np.dot(now, later) + gram[0][1], np.dot(change, later) + gram[1][1]]
            self.weights[lag] = np.linalg.lstsq(gram, right, rcond=None)[0]
        self.horizons_s = np.arange(lags + 1) * self.step_s
        logger.info("regression weights (deviation, profile change) at %s",
                    ", ".join(f"{h / 60:g} min: {a:.2f}, {b:.2f}"
                              for h, (a, b) in zip(self.horizons_s[1::4], self.weights[1::4], strict=True)))

    def _predict(self, history: Counts, horizons_s: np.ndarray) -> np.ndarray:
        issue_s = history.time_s[-1]
        profile = self.profile.blended_at(np.concatenate(([issue_s], issue_s + horizons_s))).T
        now, later = profile[:, :1], profile[:, 1:]
        deviation = history.free[-1][:, None] - now
        a = np.interp(horizons_s, self.horizons_s, self.weights[:, 0])
        b = np.interp(horizons_s, self.horizons_s, self.weights[:, 1])
        forecast: np.ndarray = np.where(np.isnan(deviation), later, now + a * deviation + b * (later - now))
        return forecast


# --------------------------------------------------------------------------------------------- evaluation


@dataclass(frozen=True, eq=False)
class Evaluation:
    """Errors of the forecasters on the test days.

    Attributes:
        models: model names, in table order (the reference, :class:`SeasonalNaive`, first).
        horizons_s: (H,) horizons (s).
        mae, rmse: (models, H) mean absolute and root mean square errors (free spaces), pooled over
            car parks and issue times.
        points: (H,) forecasts compared per model and horizon: the (issue time, car park) pairs where
            the target and every model's forecast are known.
        carparks: the car parks evaluated.
        train_days: local days of training.
        split_s: UNIX time (s) of the first test issue time (the local midnight starting the test days).
        end_s: last grid time of the counts (s).
        issue_times: issue times in the test days (one per grid step).
    """

    models: tuple[str, ...]
    horizons_s: np.ndarray
    mae: np.ndarray
    rmse: np.ndarray
    points: np.ndarray
    carparks: tuple[str, ...]
    train_days: int
    split_s: float
    end_s: float
    issue_times: int

    def as_dict(self) -> dict[str, object]:
        """The evaluation as JSON-ready values: ``mae`` and ``rmse`` are ``{model: {horizon: free spaces}}``."""
        labels = [_horizon_label(h) for h in self.horizons_s.tolist()]
        return {
            "carparks": len(self.carparks), "train_days": self.train_days, "issue_times": self.issue_times,
            "test_start": _local_text(self.split_s), "test_end": _local_text(self.end_s),
            "points": dict(zip(labels, self.points.tolist(), strict=True)),
            "mae": {model: dict(zip(labels, row, strict=True)) for model, row in zip(self.models, self.mae.tolist(),
                                                                                      strict=True)},
            "rmse": {model: dict(zip(labels, row, strict=True)) for model, row in zip(self.models, self.rmse.tolist(),
                                                                                       strict=True)},
        }

    def table(self) -> str:
        """A plain-text table: MAE / RMSE (free spaces) per model (rows) and horizon (columns)."""
        width = 15
        lines = [
            f"{len(self.carparks)} car parks; trained on {self.train_days} local days before "
            f"{_local_text(self.split_s)}; tested at {self.issue_times} issue times from then to "
            f"{_local_text(self.end_s)} ({LOCAL_TIME_ZONE.key})",
            "MAE / RMSE (free spaces), pooled over car parks and issue times",
            f"{'horizon':<18}" + "".join(f"{_horizon_label(h):>{width}}" for h in self.horizons_s.tolist()),
        ]
        for model, mae, rmse in zip(self.models, self.mae, self.rmse, strict=True):
            lines.append(f"{model:<18}" + "".join(f"{f'{a:.2f} / {r:.2f}':>{width}}"
                                                  for a, r in zip(mae, rmse, strict=True)))
        lines.append(f"{'points':<18}" + "".join(f"{n:>{width}}" for n in self.points.tolist()))
        return "\n".join(lines)


def _horizon_label(horizon_s: float) -> str:
    return f"{horizon_s / 3600:g} h" if horizon_s % 3600 == 0 else f"{horizon_s / 60:g} min"


def _local_text(time_s: float) -> str:
    return datetime.fromtimestamp(time_s, LOCAL_TIME_ZONE).strftime("%Y-%m-%d %H:%M")


def split_days(counts: Counts, train_days: int) -> tuple[Counts, Counts]:
    """The counts before the local midnight ``train_days`` days after the local day of their first time
    (training), and from it on (test).

    Raises:
        InvalidInputError: ``train_days`` not a whole number >= 1, or a split leaving fewer than two
            training times or no test time (``field="train_days"``).
    """
    if isinstance(train_days, bool) or not isinstance(train_days, int | np.integer) or train_days < 1:
        raise InvalidInputError(f"expected a whole number of training days >= 1, got {train_days!r}",
                                field="train_days")
    n_train = int(np.searchsorted(counts.time_s, _local_midnight_s(counts.time_s[0], train_days))
                  if counts.time_s.size else 0)
    if n_train < 2 or n_train >= counts.time_s.size:
        raise InvalidInputError(f"{train_days} training days leave {n_train} training and "
                                f"{counts.time_s.size - n_train} test times; expected at least 2 and 1",
                                field="train_days")
    return (Counts(counts.time_s[:n_train], counts.carparks, counts.free[:n_train]),
            Counts(counts.time_s[n_train:], counts.carparks, counts.free[n_train:]))


def evaluate(counts: Counts, train_days: int, horizons_s: Sequence[float] = HORIZONS_S, *, step_s: float = STEP_S,
             max_gap_s: float = MAX_GAP_S, min_coverage: float = MIN_COVERAGE) -> Evaluation:
    """Fit every forecaster on the first ``train_days`` local days and score it on the later ones.

    ``counts`` are as recorded (:func:`read_counts`); they are resampled here (``step_s``,
    ``max_gap_s``, s), and only the car parks with a value at ``min_coverage`` of the grid times or
    more are kept. Training is the grid before the local midnight ``train_days`` days after the
    first time's day; every later grid time is an issue time, with the history up to it, and each
    ``horizons_s`` (s, multiples of ``step_s``) is scored against the grid value at issue + horizon.

    Raises:
        InvalidInputError: bad arguments (``field`` names it), no car park with enough values, or a
            split that leaves fewer than two training times or no test time.
    """
    grid = resample(counts, step_s, max_gap_s=max_gap_s)
    horizons = np.asarray(horizons_s, dtype=np.float64)
    if horizons.ndim != 1 or horizons.size == 0 or not np.all(np.isfinite(horizons) & (horizons > 0)):
        raise InvalidInputError(f"expected finite horizons > 0 (s), got {horizons_s!r}", field="horizons_s")
    if np.any(horizons % step_s):
        raise InvalidInputError(f"expected horizons that are multiples of the {step_s} s grid step, got {horizons_s!r}",
                                field="horizons_s")
    if not 0.0 <= min_coverage <= 1.0:
        raise InvalidInputError(f"expected min_coverage in [0, 1], got {min_coverage}", field="min_coverage")
    coverage = np.mean(~np.isnan(grid.free), axis=0) if grid.time_s.size else np.zeros(len(grid.carparks))
    kept = [carpark for carpark, share in zip(grid.carparks, coverage.tolist(), strict=True) if share >= min_coverage]
    if not kept:
        raise InvalidInputError(f"no car park has a value at {min_coverage:.0%} of the {step_s:g} s grid times",
                                field="counts")
    grid = grid.select(kept)
    logger.info("evaluating %d of %d car parks (values at >= %.0f%% of the grid times)", len(kept),
                coverage.size, 100 * min_coverage)
    train, test = split_days(grid, train_days)
    n_train = train.time_s.size
    models = [model.fit(train) for model in (SeasonalNaive(), Persistence(), SeasonalProfile(), ProfileRegression())]
    lags = np.rint(horizons / step_s).astype(np.int64)
    issues = np.arange(n_train, grid.time_s.size)
    errors = np.empty((len(models), issues.size, len(grid.carparks), horizons.size))
    for k, issue in enumerate(issues.tolist()):
        history = Counts(grid.time_s[:issue + 1], grid.carparks, grid.free[:issue + 1])
        rows = issue + lags
        target = np.full((len(grid.carparks), horizons.size), np.nan)
        target[:, rows < grid.time_s.size] = grid.free[rows[rows < grid.time_s.size]].T
        for m, model in enumerate(models):
            errors[m, k] = model.predict(history, horizons) - target
    compared = np.all(~np.isnan(errors), axis=0)
    points = compared.sum(axis=(0, 1))
    with np.errstate(invalid="ignore", divide="ignore"):
        mae = np.where(compared, np.abs(errors), 0.0).sum(axis=(1, 2)) / points
        rmse = np.sqrt(np.where(compared, errors * errors, 0.0).sum(axis=(1, 2)) / points)
    return Evaluation(models=tuple(model.name for model in models), horizons_s=horizons, mae=mae, rmse=rmse,
                      points=points, carparks=grid.carparks, train_days=train_days, split_s=float(test.time_s[0]),
                      end_s=float(grid.time_s[-1]), issue_times=int(issues.size))


def forecast_table(paths: Sequence[Path], train_fraction: float = 0.7, *, max_gap_s: float = MAX_GAP_S) -> str:
    """Read parking-scraper CSV files, evaluate the forecasters with the first ``train_fraction`` of the
    days spanned (rounded, at least one) for training, values carried forward for at most ``max_gap_s``
    (s), and return the plain-text table of :meth:`Evaluation.table`.

    Raises:
        InvalidInputError: ``train_fraction`` not in (0, 1), or what :func:`evaluate` raises.
        DataFileError: what :func:`read_counts` raises.
    """
    if not 0.0 < train_fraction < 1.0:
        raise InvalidInputError(f"expected train_fraction in (0, 1), got {train_fraction}", field="train_fraction")
    counts = read_counts(paths)
    span_days = (counts.time_s[-1] - counts.time_s[0]) / DAY_S if counts.time_s.size else 0.0
    return evaluate(counts, max(1, round(train_fraction * span_days)), max_gap_s=max_gap_s).table()
