"""Benchmark fixtures and the ratio report.

Every benchmark belongs to a group with one reference (``benchmark.extra_info["reference"] = True``)
measured in the same run. At the end, each median is divided by its group's reference median; the
ratios are printed and written to the JSON report under ``"ratios"``.
"""

from __future__ import annotations

import numpy as np
import pytest

from pilotage.adapters.osm import load_network
from pilotage.core import RoadNetwork

_MEDIANS: dict[str, dict[str, tuple[float, bool]]] = {}


@pytest.fixture(scope="session")
def city() -> RoadNetwork:
    """The embedded city, from the user's cache (built at the first run)."""
    return load_network()


@pytest.fixture(scope="session")
def rng() -> np.random.Generator:
    """Fixed seed, so every run measures the same pairs."""
    return np.random.default_rng(2019)


@pytest.fixture(autouse=True)
def _record_median(request: pytest.FixtureRequest):
    if "benchmark" not in request.fixturenames:
        yield
        return
    # Taken before the test, so the benchmark fixture is torn down after this one reads it.
    bench = request.getfixturevalue("benchmark")
    yield
    if bench.disabled or bench.stats is None:
        return
    _MEDIANS.setdefault(bench.group or bench.name, {})[bench.name] = (
        bench.stats.stats.median, bool(bench.extra_info.get("reference")))


def ratios() -> dict[str, dict[str, float]]:
    """``{group: {benchmark: median / reference median}}`` for the groups whose reference ran."""
    table = {}
    for group, medians in _MEDIANS.items():
        references = [median for median, is_reference in medians.values() if is_reference]
        if references:
            table[group] = {name: median / references[0] for name, (median, _) in medians.items()}
    return table


def pytest_benchmark_update_json(config: pytest.Config, benchmarks: list, output_json: dict) -> None:
    output_json["ratios"] = ratios()
    output_json["medians_s"] = {group: {name: median for name, (median, _) in medians.items()}
                                for group, medians in _MEDIANS.items()}


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    table = ratios()
    if not table:
        return
    terminalreporter.section("ratios to the reference of each group (median / reference median)")
    for group, row in table.items():
        terminalreporter.write_line(group)
        for name, ratio in sorted(row.items(), key=lambda item: item[1]):
            median = _MEDIANS[group][name][0]
            terminalreporter.write_line(f"  {name:<60} {ratio:10.4f}   (median {median * 1e3:10.3f} ms)")
