"""Parking forecasts on the shared May 2024 archive (20 days): their quality, and the cost of one forecast.

Groups (reference first):

- quality: the evaluation table of :func:`pilotage.parking.forecast.evaluate`, trained on 14 local
  days, tested on the 6 after; MAE and RMSE per model and horizon go to ``extra_info`` (free spaces).
  Its time is that of the whole evaluation.
- one forecast: fitting on the 14 training days and forecasting every car park at the first test
  issue time, the seasonal-naive model (reference) against the profile and the regression.
"""

from pathlib import Path

import numpy as np
import pytest

from pilotage.parking.forecast import (
    HORIZONS_S,
    Counts,
    Forecaster,
    ProfileRegression,
    SeasonalNaive,
    SeasonalProfile,
    evaluate,
    read_counts,
    resample,
    split_days,
)

MAY = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "parking" / "2024-05"
TRAIN_DAYS = 14


@pytest.fixture(scope="module")
def may() -> Counts:
    paths = sorted(MAY.glob("2024-05-*.csv"))
    if len(paths) < 20:
        pytest.skip(f"the shared parking data is not in {MAY} (need its 20 daily CSV files)")
    return read_counts(paths)


@pytest.fixture(scope="module")
def split(may: Counts) -> tuple[Counts, Counts]:
    """The training grid (first 14 local days) and the history up to the first test issue time."""
    grid = resample(may)
    train, _ = split_days(grid, TRAIN_DAYS)
    issue = train.time_s.size
    return train, Counts(grid.time_s[:issue + 1], grid.carparks, grid.free[:issue + 1])


def test_forecast_quality(benchmark, may: Counts) -> None:
    benchmark.group = "parking forecast quality, May 2024, 14 + 6 days"
    benchmark.extra_info["reference"] = True
    evaluation = benchmark.pedantic(evaluate, args=(may, TRAIN_DAYS), rounds=1, iterations=1)
    benchmark.extra_info.update(evaluation.as_dict())
    print(evaluation.table())
    rows = dict(zip(evaluation.models, evaluation.mae, strict=True))
    assert np.all(rows["regression"] < rows["seasonal-naive"])
    assert np.all(rows["regression"] < rows["profile"])


@pytest.mark.parametrize("model", [SeasonalNaive, SeasonalProfile, ProfileRegression], ids=lambda model: model.name)
def test_one_forecast(benchmark, split: tuple[Counts, Counts], model: type[Forecaster]) -> None:
    train, history = split
    benchmark.group = f"parking forecast: fit + predict {len(train.carparks)} car parks at one issue time"
    if model is SeasonalNaive:
        benchmark.extra_info["reference"] = True
    forecast = benchmark(lambda: model().fit(train).predict(history, HORIZONS_S))
    assert forecast.shape == (len(train.carparks), len(HORIZONS_S))
