"""The standard instance files: Solomon, VRPLIB and Belenguer's CARP, read as published."""

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from pilotage.core.errors import DataFileError, InvalidInputError
from pilotage.routing import read_instance


def test_solomon_keeps_the_fleet_the_windows_and_exact_distances(shared_data: Callable[..., Path]) -> None:
    problem = read_instance(shared_data("vrp", "solomon", "C101.txt"), "solomon")
    assert (problem.n_nodes, problem.n_vehicles, problem.n_visits) == (101, 25, 100)
    assert set(problem.capacity.tolist()) == {200}
    # Customer 1: (45, 68), demand 10, window 912..967, service 90; the depot at (40, 50) closes at 1236.
    assert problem.demand[1] == 10
    assert problem.windows(1) == [(912_000, 967_000)]
    assert problem.service_s[1] == 90_000
    assert problem.shift_end_s[0] == 1_236_000
    assert problem.distance[0, 1] == round(np.hypot(5, 18) * 1000)
    assert problem.distance_scale == 1000


def test_vrplib_rounds_distances_and_sizes_an_unlimited_fleet(shared_data: Callable[..., Path]) -> None:
    problem = read_instance(shared_data("vrp", "cvrplib-x", "X-n101-k25.vrp"), "vrplib")
    assert (problem.n_nodes, problem.n_visits) == (101, 100)
    assert problem.n_vehicles >= 26  # the best-known solution uses 26 routes
    assert problem.capacity[0] == 206
    assert problem.distance.dtype == np.int64
    assert not problem.has_time_windows


def test_carp_makes_one_visit_per_required_edge_with_both_directions(shared_data: Callable[..., Path]) -> None:
    problem = read_instance(shared_data("carp", "gdb", "gdb1.dat"), "carp")
    assert problem.n_visits == 22
    assert problem.n_nodes == 1 + 2 * 22
    first, second = problem.alternatives(0)
    # (1, 2) cost 13: served either way, 13 to serve; leaving one way ends where the other starts.
    assert problem.service_distance[first] == problem.service_distance[second] == 13
    assert problem.distance[0, first] == 0  # the depot is vertex 1, where (1, 2) starts
    assert int(problem.service_distance.sum()) // 2 == 252  # COSTE_TOTAL_REQ


@pytest.mark.parametrize("name", ["gdb1.dat", "gdb23.dat"])
def test_every_gdb_file_reads(shared_data: Callable[..., Path], name: str) -> None:
    assert read_instance(shared_data("carp", "gdb", name), "carp").n_visits > 0


def test_val_files_read(shared_data: Callable[..., Path]) -> None:
    paths = sorted(shared_data("carp", "val").glob("*.dat"))
    assert paths
    for path in paths:
        assert read_instance(path, "carp").n_visits > 0, path


def test_bad_files_say_what_was_expected(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="expected a format in"):
        read_instance(tmp_path / "x", "tsplib")
    with pytest.raises(DataFileError, match="cannot read"):
        read_instance(tmp_path / "missing.txt", "solomon")
    garbage = tmp_path / "garbage.dat"
    garbage.write_text(" NOMBRE : g\n VERTICES : 3\n this is not an edge\n")
    with pytest.raises(DataFileError, match=r"line 3: expected"):
        read_instance(garbage, "carp")
    short = tmp_path / "short.vrp"
    short.write_text("NAME : s\nDIMENSION : 3\nCAPACITY : 10\nNODE_COORD_SECTION\n1 0 0\n2 1 1\nDEMAND_SECTION\n1 0\n")
    with pytest.raises(DataFileError, match="DEMAND_SECTION"):
        read_instance(short, "vrplib")
    with pytest.raises(DataFileError, match="Solomon"):
        read_instance(short, "solomon")
