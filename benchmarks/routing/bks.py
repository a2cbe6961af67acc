"""The benchmark instances of the shared data and their best-known solutions (BKS).

Sets, their files under ``<repository>/../shared/data`` and where each BKS comes from:

- ``solomon``: ``vrp/solomon/*.txt``; ``bks.csv``, distance-only columns (``distonly_distance``,
  ``distonly_vehicles``): Euclidean distances not rounded, vehicles not minimised first.
- ``x``: ``vrp/cvrplib-x/*.vrp`` (CVRPLIB X); the ``Cost`` line of the ``.sol`` beside each file,
  and its number of routes. Distances rounded to the nearest integer.
- ``gdb``: ``carp/gdb/*.dat``; ``carp/gdb/bks.csv`` (``optimal_cost``), service included.
- ``val``: ``carp/val/*.dat``; no BKS: the shared data has no file of them, and no public source
  giving the 34 values could be found to copy from, so their gaps are left out.
"""

from __future__ import annotations

import csv
import re
import runpy
from dataclasses import dataclass
from pathlib import Path

#: The shared data, beside the repository: its one definition, in the tests' ``shared_data.py``, read
#: from its file (this module is imported by scripts, outside any package).
DATA: Path = runpy.run_path(str(Path(__file__).resolve().parents[2] / "tests" / "shared_data.py"))["SHARED_DATA"]

#: The sets, in report order, and pilotage's reader format for each.
FORMATS = {"solomon": "solomon", "x": "vrplib", "gdb": "carp", "val": "carp"}
#: The folder of each set in the shared data.
SET_FOLDERS = {"solomon": ("vrp", "solomon"), "x": ("vrp", "cvrplib-x"), "gdb": ("carp", "gdb"),
               "val": ("carp", "val")}


@dataclass(frozen=True)
class Instance:
    """One benchmark instance.

    Attributes:
        set_name: a key of :data:`FORMATS`.
        name: the file's stem (``C101``, ``X-n101-k25``, ``gdb1``), ``val`` and the stem for val (``val1A``).
        path: the instance file.
        bks: best-known objective in the instance's own unit; None when unknown.
        bks_vehicles: vehicles of the best-known solution; None when unknown.
    """

    set_name: str
    name: str
    path: Path
    bks: float | None
    bks_vehicles: int | None

    @property
    def instance_format(self) -> str:
        """The format for :func:`pilotage.routing.formats.read_instance`."""
        return FORMATS[self.set_name]


def instances(set_name: str, data: Path = DATA) -> list[Instance]:
    """The instances of a set, in natural order (``gdb2`` before ``gdb10``), with their BKS.

    Raises:
        FileNotFoundError: the set's folder or its BKS file is missing.
    """
    if set_name not in SET_FOLDERS:
        raise ValueError(f"expected a set in {tuple(FORMATS)}, got {set_name!r}")
    folder = data.joinpath(*SET_FOLDERS[set_name])
    if set_name == "solomon":
        rows = _csv_rows(folder / "bks.csv")
        return [Instance("solomon", path.stem, path, float(rows[path.stem]["distonly_distance"]),
                         int(rows[path.stem]["distonly_vehicles"])) for path in _files(folder, "*.txt")]
    if set_name == "x":
        found = []
        for path in _files(folder, "*.vrp"):
            cost, routes = read_sol(path.with_suffix(".sol"))
            found.append(Instance("x", path.stem, path, cost, routes))
        return found
    if set_name == "gdb":
        rows = _csv_rows(folder / "bks.csv")
        return [Instance("gdb", path.stem, path, float(rows[path.stem]["optimal_cost"]), None)
                for path in _files(folder, "*.dat")]
    return [Instance("val", f"val{path.stem}", path, None, None) for path in _files(folder, "*.dat")]


def read_sol(path: Path) -> tuple[float, int]:
    """A CVRPLIB ``.sol`` file's cost (its ``Cost`` line) and number of routes.

    Raises:
        ValueError: the file has no ``Cost`` line.
    """
    cost = None
    routes = 0
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("Route"):
            routes += 1
        elif line.startswith("Cost"):
            cost = float(line.split()[1])
    if cost is None:
        raise ValueError(f"{path}: expected a 'Cost' line")
    return cost, routes


def _csv_rows(path: Path) -> dict[str, dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as file:
        return {row["instance"]: row for row in csv.DictReader(file)}


def _files(folder: Path, pattern: str) -> list[Path]:
    paths = list(folder.glob(pattern))
    if not paths:
        raise FileNotFoundError(f"no {pattern} in {folder}: is the shared data beside the repository?")
    return sorted(paths, key=lambda path: [int(part) if part.isdigit() else part
                                           for part in re.split(r"(\d+)", path.stem)])
