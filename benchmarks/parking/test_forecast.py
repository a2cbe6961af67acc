"""Parking forecasts on the shared May 2024 archive (20 days): their quality, and the cost of one forecast.

Groups:

- quality (a quality table, not timed): the evaluation of :func:`pilotage.parking.forecast.evaluate`,
  trained on 14 local days, tested on the 6 after; MAE and RMSE (free spaces) per model and horizon.
- one forecast (timed, reference first): fitting on the 14 training days and forecasting every car
  park at the first test issue time, the seasonal-naive model (reference) against the profile and
  the regression.
"""

from collections.abc import Callable
from pathlib import Path
from typing import Any

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

TRAIN_DAYS = 14
TEST_DAYS = 6


@pytest.fixture(scope="module")
def may(shared_data: Callable[..., Path]) -> Counts:
    return read_counts([shared_data("parking", "2024-05", f"2024-05-{day:02d}.csv")
                        for day in range(1, TRAIN_DAYS + TEST_DAYS + 1)])


@pytest.fixture(scope="module")
def split(may: Counts) -> tuple[Counts, Counts]:
    """The training grid (first 14 local days) and the history up to the first test issue time."""
    grid = resample(may)
    train, _ = split_days(grid, TRAIN_DAYS)
    issue = train.time_s.size
    return train, Counts(grid.time_s[:issue + 1], grid.carparks, grid.free[:issue + 1])


def test_forecast_quality(quality_table: Callable[..., None], may: Counts) -> None:
    evaluation = evaluate(may, TRAIN_DAYS)
    group = (f"parking forecast quality, May 2024, {TRAIN_DAYS} + {TEST_DAYS} days, {len(evaluation.carparks)} car "
             "parks: MAE and RMSE (free spaces) and points tested, by horizon")
    figures: dict[str, Any] = evaluation.as_dict()
    for measure in ("mae", "rmse"):
        for model, by_horizon in figures[measure].items():
            quality_table(group, f"{model} {measure.upper()}", by_horizon)
    quality_table(group, "points", figures["points"])
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
