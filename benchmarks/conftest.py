"""Benchmark fixtures, the ratio report and the quality tables.

Every timed benchmark belongs to a group with one reference (``benchmark.extra_info["reference"] =
True``) measured in the same run. At the end, each median is divided by its group's reference
median; the ratios are printed and written to the JSON report under ``"ratios"``. For groups timed
over at least :data:`TAIL_ROUNDS` rounds, the p99 and p99.9 are compared the same way
(``"ratios_p99"``, ``"ratios_p99.9"``); the values themselves are under ``"median_s"``, ``"p99_s"``,
``"p99.9_s"``.

A quality group (a forecast's errors, a solution's gap to the best known) is not timed: a time or
a ratio between its rows would mean nothing. Its tests give their figures to :func:`quality_table`,
one row each; they are printed as a table per group and written to the JSON report under
``"quality"`` (``{group: {row: {column: value}}}``).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Mapping
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from pilotage.adapters.osm import load_network
from pilotage.core import RoadNetwork

#: Rounds from which a benchmark's p99 and p99.9 are reported.
TAIL_ROUNDS = 1000
STATISTICS = ("median", "p99", "p99.9")

# {group: {benchmark: ({statistic: seconds}, is the reference)}}
_STATS: dict[str, dict[str, tuple[dict[str, float], bool]]] = {}
# {group: {row: {column: value}}}, rows and columns in the order given.
_QUALITY: dict[str, dict[str, dict[str, float | int | str | None]]] = {}


@pytest.fixture(scope="session")
def city() -> RoadNetwork:
    """The embedded city, from the user's cache (built at the first run)."""
    return load_network()


def _from_tests(name: str) -> ModuleType:
    """The module ``tests/NAME.py``, loaded from its file: the benchmarks are no package beside the
    tests, and the one home of what both use (the shared data, the clock) is there."""
    spec = importlib.util.spec_from_file_location(name, Path(__file__).resolve().parents[1] / "tests" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def shared_data() -> Callable[..., Path]:
    """``shared_data("parking", "2024-05")``: that file or folder of the shared data beside the
    repository; the benchmark is skipped, saying which is missing, when it is not there."""
    return _from_tests("shared_data").shared_data_path


@pytest.fixture(scope="session")
def manual_clock() -> type:
    """The class of clocks moved by hand (tests/clock.py): ``manual_clock(3600.0)`` starts at 3600 s."""
    return _from_tests("clock").ManualClock


@pytest.fixture(scope="session")
def quality_table() -> Callable[[str, str, Mapping[str, float | int | str | None]], None]:
    """``quality_table(group, row, {column: value})``: one row of a quality group's table."""

    def record(group: str, row: str, figures: Mapping[str, float | int | str | None]) -> None:
        _QUALITY.setdefault(group, {})[row] = dict(figures)

    return record


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
    output_json["quality"] = _QUALITY


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    _write_quality_tables(terminalreporter)
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


def _write_quality_tables(terminalreporter) -> None:
    if not _QUALITY:
        return
    terminalreporter.section("quality (figures of each row, not timed)")
    for group, rows in _QUALITY.items():
        columns = list(dict.fromkeys(column for figures in rows.values() for column in figures))
        lines = [["", *columns], *([row, *(_cell(figures.get(column)) for column in columns)]
                                   for row, figures in rows.items())]
        widths = [max(len(line[k]) for line in lines) for k in range(len(columns) + 1)]
        terminalreporter.write_line(group)
        for label, *cells in lines:
            terminalreporter.write_line("  " + "  ".join([label.ljust(widths[0]), *(
                cell.rjust(width) for cell, width in zip(cells, widths[1:], strict=True))]))


def _cell(value: float | int | str | None) -> str:
    if value is None:
        return "\N{EN DASH}"
    if not isinstance(value, float):
        return str(value)
    text = f"{value:.2f}"
    # A gap of -1e-14 (a cost equal to the best known, summed in another order) is no gain.
    return "0.00" if text == "-0.00" else text
