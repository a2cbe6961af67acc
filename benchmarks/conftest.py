"""Benchmark fixtures and the ratio report.

Every benchmark belongs to a group with one reference (``benchmark.extra_info["reference"] = True``)
measured in the same run. At the end, each median is divided by its group's reference median; the
ratios are printed and written to the JSON report under ``"ratios"``. For groups timed over at least
:data:`TAIL_ROUNDS` rounds, the p99 and p99.9 are compared the same way (``"ratios_p99"``,
``"ratios_p99.9"``); the values themselves are under ``"median_s"``, ``"p99_s"``, ``"p99.9_s"``.
"""

from __future__ import annotations

import numpy as np
import pytest

from pilotage.adapters.osm import load_network
from pilotage.core import RoadNetwork

#: Rounds from which a benchmark's p99 and p99.9 are reported.
TAIL_ROUNDS = 1000
STATISTICS = ("median", "p99", "p99.9")

# {group: {benchmark: ({statistic: seconds}, is the reference)}}
_STATS: dict[str, dict[str, tuple[dict[str, float], bool]]] = {}


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
    stats = bench.stats.stats
    values = {"median": stats.median}
    if stats.rounds >= TAIL_ROUNDS:
        values |= {"p99": float(np.quantile(stats.data, 0.99)), "p99.9": float(np.quantile(stats.data, 0.999))}
    _STATS.setdefault(bench.group or bench.name, {})[bench.name] = (values, bool(bench.extra_info.get("reference")))


def ratios(statistic: str = "median") -> dict[str, dict[str, float]]:
    """``{group: {benchmark: statistic / the reference's}}`` for the groups whose reference has it."""
    table = {}
    for group, rows in _STATS.items():
        references = [values[statistic] for values, is_reference in rows.values()
                      if is_reference and statistic in values]
        if references:
            table[group] = {name: values[statistic] / references[0] for name, (values, _) in rows.items()
                            if statistic in values}
    return table


def pytest_benchmark_update_json(config: pytest.Config, benchmarks: list, output_json: dict) -> None:
    for statistic in STATISTICS:
        output_json["ratios" if statistic == "median" else f"ratios_{statistic}"] = ratios(statistic)
        output_json[f"{statistic}_s"] = {group: {name: values[statistic] for name, (values, _) in rows.items()
                                                 if statistic in values} for group, rows in _STATS.items()}


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    table = ratios()
    if not table:
        return
    terminalreporter.section("ratios to the reference of each group (median / reference median)")
    tails = {statistic: ratios(statistic) for statistic in STATISTICS[1:]}
    for group, row in table.items():
        terminalreporter.write_line(group)
        for name, ratio in sorted(row.items(), key=lambda item: item[1]):
            values = _STATS[group][name][0]
            line = f"  {name:<60} {ratio:10.4f}   (median {values['median'] * 1e3:10.3f} ms)"
            for statistic, ratios_of in tails.items():
                if name in ratios_of.get(group, {}):
                    line += f"   {statistic} {ratios_of[group][name]:7.3f} ({values[statistic] * 1e3:.3f} ms)"
            terminalreporter.write_line(line)
