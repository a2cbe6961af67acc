"""Parking forecasts: reading the scraper CSV files, resampling, the forecasters, the evaluation."""

import math
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pilotage.core.errors import DataFileError, InvalidInputError
from pilotage.parking.forecast import (
    LOCAL_TIME_ZONE,
    Counts,
    Persistence,
    ProfileRegression,
    SeasonalNaive,
    SeasonalProfile,
    evaluate,
    forecast_table,
    read_counts,
    resample,
)

STEP_S = 900.0
DAY_S = 86400.0


def write_csv(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def local_s(text: str) -> float:
    """UNIX time (s) of a Europe/Berlin wall-clock time such as ``2024-03-25T00:00``."""
    return datetime.fromisoformat(text).replace(tzinfo=LOCAL_TIME_ZONE).timestamp()


def local_grid(first: str, days: int) -> np.ndarray:
    start_s = local_s(first)
    return start_s + np.arange(int(days * DAY_S / STEP_S)) * STEP_S


def weekday_and_minute(time_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    local = [datetime.fromtimestamp(t, LOCAL_TIME_ZONE) for t in time_s.tolist()]
    return (np.array([moment.weekday() for moment in local]),
            np.array([moment.hour * 60 + moment.minute for moment in local]))


# ------------------------------------------------------------------------------------------------ reading


def test_reads_empty_cells_as_nan_and_merges_files(tmp_path: Path) -> None:
    first = write_csv(tmp_path / "2024-05-01.csv", [
        "timestamp,b,a",
        "2024-05-01T00:00:01+00:00,10,20",
        "2024-05-01T00:15:02+00:00,,21",
        "2024-05-01T02:30:00+02:00,12,",  # the same instant as 00:30 UTC
    ])
    second = write_csv(tmp_path / "2024-05-02.csv", [
        "timestamp,a,c",
        "2024-05-01T00:45:00+00:00,-3,7",
        "2024-05-01T00:45:00+00:00,,8",  # a repeated timestamp: the last non-empty value wins
    ])
    counts = read_counts([second, first])
    assert counts.carparks == ("a", "b", "c")
    start_s = datetime.fromisoformat("2024-05-01T00:00:01+00:00").timestamp()
    assert counts.time_s == pytest.approx(start_s + np.array([0.0, 901.0, 1799.0, 2699.0]))
    expected = np.array([[20, 10, np.nan], [21, np.nan, np.nan], [np.nan, 12, np.nan], [-3, np.nan, 8]])
    np.testing.assert_array_equal(counts.free, expected)


def test_reads_one_path_and_a_header_only_file(tmp_path: Path) -> None:
    counts = read_counts(write_csv(tmp_path / "empty-day.csv", ["timestamp,a,b"]))
    assert counts.carparks == ("a", "b")
    assert counts.free.shape == (0, 2)


@pytest.mark.parametrize(("lines", "line", "message"), [
    (["time,a", "2024-05-01T00:00:00+00:00,1"], 1, "expected a header"),
    (["timestamp,a,a", "2024-05-01T00:00:00+00:00,1,2"], 1, "distinct, non-empty car park ids"),
    (["timestamp,a,b", "2024-05-01T00:00:00+00:00,1,2", "2024-05-01T00:15:00+00:00,1"], 3, "expected 3 cells"),
    (["timestamp,a", "2024-05-01T00:00:00+00:00,1", "yesterday,2"], 3, "ISO 8601 timestamp"),
    (["timestamp,a", "2024-05-01T00:00:00,1"], 2, "with a UTC offset"),
    (["timestamp,a,b", "2024-05-01T00:00:00+00:00,1,2", "2024-05-01T00:15:00+00:00,3,full"], 3, "'full'"),
    (["timestamp,a", "2024-05-01T00:00:00+00:00,inf"], 2, "expected a number of free spaces for 'a'"),
])
def test_malformed_files_name_the_file_and_line(tmp_path: Path, lines: list[str], line: int, message: str) -> None:
    path = write_csv(tmp_path / "bad-day.csv", lines)
    with pytest.raises(DataFileError, match=message) as caught:
        read_counts([path])
    assert f"bad-day.csv:{line}:" in str(caught.value)


def test_unreadable_files_are_data_file_errors(tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(DataFileError, match=r"empty\.csv"):
        read_counts([empty])
    with pytest.raises(DataFileError, match=r"missing\.csv"):
        read_counts([tmp_path / "missing.csv"])
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"timestamp,a\n\xff\xfe\n")
    with pytest.raises(DataFileError, match=r"binary\.csv"):
        read_counts([binary])
    with pytest.raises(InvalidInputError) as caught:
        read_counts([])
    assert caught.value.field == "paths"


# --------------------------------------------------------------------------------------------- resampling


def resample_reference(time_s: list[float], free: list[list[float]], step_s: float,
                       max_gap_s: float) -> tuple[list[float], list[list[float]]]:
    """Plain Python: scan back from every grid time to the last value of each car park."""
    grid = [k * step_s for k in range(math.ceil(time_s[0] / step_s), math.floor(time_s[-1] / step_s) + 1)]
    rows = []
    for at_s in grid:
        row = []
        for column in range(len(free[0])):
            value = math.nan
            for t, values in zip(reversed(time_s), reversed(free), strict=True):
                if t <= at_s and not math.isnan(values[column]):
                    value = values[column] if at_s - t <= max_gap_s else math.nan
                    break
            row.append(value)
        rows.append(row)
    return grid, rows


@st.composite
def recorded_counts(draw: st.DrawFn) -> tuple[Counts, float, float]:
    times = sorted(draw(st.sets(st.integers(0, 4000), min_size=1, max_size=30)))
    columns = draw(st.integers(1, 3))
    cell = st.one_of(st.just(math.nan), st.integers(-5, 500).map(float))
    free = draw(st.lists(st.lists(cell, min_size=columns, max_size=columns), min_size=len(times),
                         max_size=len(times)))
    offset_s = draw(st.sampled_from([0.0, 0.25, 1.7e9]))
    step_s = float(draw(st.integers(1, 600)))
    max_gap_s = float(draw(st.integers(0, 1500)))
    counts = Counts(np.array(times, dtype=np.float64) + offset_s, tuple(f"p{k}" for k in range(columns)),
                    np.array(free, dtype=np.float64))
    return counts, step_s, max_gap_s


@given(recorded_counts())
def test_resample_matches_a_plain_reference(case: tuple[Counts, float, float]) -> None:
    counts, step_s, max_gap_s = case
    grid = resample(counts, step_s, max_gap_s=max_gap_s)
    expected_time_s, expected_free = resample_reference(counts.time_s.tolist(), counts.free.tolist(), step_s,
                                                        max_gap_s)
    np.testing.assert_array_equal(grid.time_s, expected_time_s)
    np.testing.assert_array_equal(grid.free, np.array(expected_free).reshape(grid.free.shape))
    assert grid.carparks == counts.carparks


def test_resample_carries_values_forward_at_most_max_gap() -> None:
    counts = Counts(np.array([899.0, 1000.0, 5000.0]), ("a",), np.array([[1.0], [np.nan], [3.0]]))
    grid = resample(counts, 900.0, max_gap_s=2000.0)
    np.testing.assert_array_equal(grid.time_s, [900.0, 1800.0, 2700.0, 3600.0, 4500.0])
    np.testing.assert_array_equal(grid.free[:, 0], [1.0, 1.0, 1.0, np.nan, np.nan])
    with pytest.raises(InvalidInputError) as caught:
        resample(counts, 0.0)
    assert caught.value.field == "step_s"


# -------------------------------------------------------------------------------------------- forecasters


def weekly_counts(first: str, days: int) -> Counts:
    """Two car parks whose free spaces depend only on the local weekday and time of day."""
    time_s = local_grid(first, days)
    weekday, minute = weekday_and_minute(time_s)
    free = np.stack((100.0 * weekday + minute / 15.0, 500.0 - 7.0 * weekday * (minute > 600)), axis=1)
    return Counts(time_s, ("p", "q"), free)


def test_seasonal_naive_is_exact_on_a_weekly_series_across_the_dst_change() -> None:
    # 2024-03-31 02:00 local: clocks go forward; the week before the targets has other UTC offsets.
    counts = weekly_counts("2024-03-25T00:00", 14)
    model = SeasonalNaive().fit(counts)
    horizons_s = np.array([900.0, 3600.0, 10800.0, 86400.0])
    for issue in range(7 * 96, counts.time_s.size - 96, 7):
        history = Counts(counts.time_s[:issue + 1], counts.carparks, counts.free[:issue + 1])
        truth = counts.free[issue + (horizons_s / STEP_S).astype(int)].T
        np.testing.assert_array_equal(model.predict(history, horizons_s), truth)


def test_seasonal_naive_falls_back_to_the_last_day_of_the_same_kind() -> None:
    # Monday to Friday alike, weekends alike. Missing: Monday 13, Tuesday 14 and Saturday 18 May, so the
    # forecasts for Monday 20, Tuesday 21 and Saturday 25 come from Friday 17, Monday 20 and Sunday 19.
    time_s = local_grid("2024-05-06T00:00", 21)
    weekday, minute = weekday_and_minute(time_s)
    free = np.where(weekday >= 5, 1000.0, 0.0) + minute
    for day in (7, 8, 12):
        free[day * 96:(day + 1) * 96] = np.nan
    counts = Counts(time_s, ("p",), free[:, None])
    model = SeasonalNaive().fit(counts)
    horizons_s = np.array([900.0, 7200.0, 86400.0])
    for issue in range(13 * 96, counts.time_s.size - 96, 5):
        history = Counts(counts.time_s[:issue + 1], counts.carparks, counts.free[:issue + 1])
        truth = counts.free[issue + (horizons_s / STEP_S).astype(int)].T
        np.testing.assert_array_equal(model.predict(history, horizons_s), truth)


def test_profile_is_the_weekday_slot_mean() -> None:
    counts = weekly_counts("2024-05-06T00:00", 14)
    noise = np.where(np.arange(counts.time_s.size) < 7 * 96, 4.0, -4.0)  # +4 the first week, -4 the second
    train = Counts(counts.time_s, counts.carparks, counts.free + noise[:, None])
    profile = SeasonalProfile().fit(train)
    history = Counts(counts.time_s[:100], counts.carparks, counts.free[:100])
    horizons_s = STEP_S * np.arange(1, 200)
    np.testing.assert_allclose(profile.predict(history, horizons_s), counts.free[100:299].T, atol=1e-9)


def persistent_deviation_counts(days: int, seed: int) -> Counts:
    """A daily pattern, plus a deviation per car park that drifts slowly (a random walk pulled back to 0)."""
    rng = np.random.default_rng(seed)
    time_s = local_grid("2024-05-01T00:00", days)
    _, minute = weekday_and_minute(time_s)
    pattern = 200.0 + 150.0 * np.sin(2 * np.pi * minute / 1440.0)
    deviation = np.zeros((time_s.size, 2))
    for k in range(1, time_s.size):
        deviation[k] = 0.98 * deviation[k - 1] + rng.normal(0.0, 8.0, size=2)
    return Counts(time_s, ("p", "q"), pattern[:, None] + deviation)


def test_regression_beats_the_baselines_with_persistent_deviations() -> None:
    evaluation = evaluate(persistent_deviation_counts(21, seed=5), train_days=14)
    rows = dict(zip(evaluation.models, evaluation.mae, strict=True))
    assert evaluation.models[0] == "seasonal-naive"
    assert np.all(rows["regression"] < rows["seasonal-naive"])
    assert np.all(rows["regression"] < rows["profile"])
    assert np.all(rows["regression"][1:] < rows["persistence"][1:])
    assert np.all(evaluation.points > 0)
    assert "regression" in evaluation.table()


def test_regression_starts_from_persistence_and_ends_at_the_profile() -> None:
    counts = persistent_deviation_counts(14, seed=1)
    model = ProfileRegression().fit(counts)
    history = Counts(counts.time_s[:500], counts.carparks, counts.free[:500])
    np.testing.assert_allclose(model.predict(history, [1e-3])[:, 0], counts.free[499], rtol=1e-6)
    weights = model.weights
    assert weights[0] == pytest.approx([1.0, 0.0])
    assert np.all(np.diff(weights[:, 0]) < 0.05)  # the deviation's weight decays with the horizon
    assert 0.0 < weights[-1, 0] < weights[1, 0]


def test_predict_refuses_bad_inputs() -> None:
    counts = weekly_counts("2024-05-06T00:00", 8)
    with pytest.raises(InvalidInputError, match="fitted"):
        Persistence().predict(counts, [900.0])
    model = Persistence().fit(counts)
    with pytest.raises(InvalidInputError) as caught:
        model.predict(counts.select(["q", "p"]), [900.0])
    assert caught.value.field == "history"
    off_grid = Counts(counts.time_s + 60.0, counts.carparks, counts.free)
    with pytest.raises(InvalidInputError, match="resample"):
        model.predict(off_grid, [900.0])
    with pytest.raises(InvalidInputError) as caught:
        model.predict(counts, [900.0, -900.0])
    assert caught.value.field == "horizons_s"
    with pytest.raises(InvalidInputError) as caught:
        evaluate(counts, train_days=0)
    assert caught.value.field == "train_days"
    with pytest.raises(InvalidInputError) as caught:
        evaluate(counts, train_days=2, horizons_s=[1000.0])
    assert caught.value.field == "horizons_s"


# ------------------------------------------------------------------------------------------ the real data

REAL_CARPARKS = ("parken-mannheim-Hauptbahnhof-P1-Tiefgarage", "sw-bielefeld-parken-Parkhaus-Am-Hauptbahnhof")


def test_evaluate_end_to_end_on_two_real_car_parks(may_files: list[Path]) -> None:
    counts = read_counts(may_files).select(REAL_CARPARKS)
    evaluation = evaluate(counts, train_days=7)
    assert evaluation.carparks == REAL_CARPARKS
    assert np.all(np.isfinite(evaluation.mae)) and np.all(evaluation.points > 0)
    rows = dict(zip(evaluation.models, evaluation.mae, strict=True))
    assert rows["regression"][0] < rows["seasonal-naive"][0]
    assert rows["regression"][0] < rows["profile"][0]
    table: dict[str, Any] = evaluation.as_dict()
    assert set(table["mae"]) == {"seasonal-naive", "persistence", "profile", "regression"}
    assert list(table["points"]) == ["15 min", "30 min", "1 h", "2 h", "3 h"]


def test_forecast_table_on_real_files(may_files: list[Path]) -> None:
    table = forecast_table(may_files[:4], train_fraction=0.5)
    assert "trained on 2 local days" in table
    assert table.splitlines()[-1].startswith("points")
