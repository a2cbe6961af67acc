"""The routing engine's urban speed model against SUMO on the embedded city, not timed.

Runs ``urban_speeds.py`` (README beside this file: about a minute, SUMO needed): its fit must give
the constants ``pilotage.routing.speeds.URBAN_SPEEDS`` holds, the model must match SUMO's total
time over the trips on pilotage's own network where the speed limits alone miss it by far, and its
city-centre speeds must lie within those SUMO measures.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import ModuleType

import pytest

from pilotage.routing.speeds import URBAN_SPEEDS

GROUP = "routing travel times against SUMO, embedded city, peak hour"


@pytest.mark.slow
def test_the_urban_speed_model_is_the_one_sumo_gives(
        quality_table: Callable[[str, str, Mapping[str, float | int | str | None]], None],
        sibling: Callable[[str], ModuleType]) -> None:
    pytest.importorskip("sumo", reason="SUMO is an extra: pip install 'pilotage[sim]'")
    figures = sibling("urban_speeds").calibrate()
    model, check, centre = figures["model"], figures["network_check"], figures["centre"]
    assert model["share_motorway"] == pytest.approx(URBAN_SPEEDS.share("motorway"), abs=0.01)
    assert model["share_arterial"] == pytest.approx(URBAN_SPEEDS.share("primary"), abs=0.01)
    assert model["share_local"] == pytest.approx(URBAN_SPEEDS.default_share, abs=0.01)
    assert model["signal_delay_s"] == pytest.approx(URBAN_SPEEDS.signal_delay_s, abs=0.5)
    assert model["junction_delay_s"] == pytest.approx(URBAN_SPEEDS.junction_delay_s, abs=0.5)
    assert check["model"]["total_ratio"] == pytest.approx(1.0, abs=0.05)
    assert check["limits"]["total_ratio"] > 1.5
    assert centre["sumo_kph"]["q1"] <= centre["model_kph"]["median"] <= centre["sumo_kph"]["q3"]
    for name in ("limits", "model"):
        quality_table(GROUP, f"fastest paths, {name}", {
            "trips": check["trips"], "SUMO / model, total": check[name]["total_ratio"],
            "median": check[name]["median_ratio"], "mean abs error %": check[name]["mean_abs_error_percent"]})
