"""The `pilotage` command line, run as users run it: in another process, with its exit status and output."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pilotage.core import RoadNetwork

HELSINKI = Path(__file__).resolve().parents[1] / "data" / "helsinki-highways.osm.xz"
# Two points in the city centre of Luxembourg and of Helsinki.
LUXEMBOURG_FROM, LUXEMBOURG_TO = "6.1300,49.6100", "6.1700,49.5900"
HELSINKI_FROM, HELSINKI_TO = "24.9370,60.1643", "24.9500,60.1700"


def pilotage(*args: str, cache_dir: Path) -> subprocess.CompletedProcess[str]:
    environment = os.environ | {"PILOTAGE_CACHE_DIR": str(cache_dir)}
    return subprocess.run([sys.executable, "-m", "pilotage", *args], capture_output=True, text=True,
                          env=environment, timeout=300, check=False)


def test_network_info_json(city: RoadNetwork, cache_dir: Path) -> None:
    run = pilotage("network", "info", "--json", cache_dir=cache_dir)
    assert run.returncode == 0, run.stderr
    info = json.loads(run.stdout)
    assert info["signalised_intersections"] == len(city.intersections) >= 100
    assert info["nodes"] == city.n_nodes
    assert len(info["bounding_box"]) == 4
    assert {"id", "lon", "lat", "approaches"} <= set(info["intersections"][0])


def test_network_info_table(city: RoadNetwork, cache_dir: Path) -> None:
    run = pilotage("network", "info", cache_dir=cache_dir)
    assert run.returncode == 0, run.stderr
    assert "signalised intersections" in run.stdout
    assert "bounding box" in run.stdout


def test_network_route_json(city: RoadNetwork, cache_dir: Path) -> None:
    run = pilotage("network", "route", "--from", LUXEMBOURG_FROM, "--to", LUXEMBOURG_TO, "--json",
                   cache_dir=cache_dir)
    assert run.returncode == 0, run.stderr
    route = json.loads(run.stdout)
    assert route["travel_time_s"] > 0
    assert route["length_m"] > 1000
    assert route["intersections"]
    expected = city.shortest_path(route["from"]["node"], route["to"]["node"])
    assert route["travel_time_s"] == pytest.approx(expected.travel_time_s, abs=1e-3)
    arrivals = [intersection["arrival_s"] for intersection in route["intersections"]]
    assert arrivals == sorted(arrivals)
    assert arrivals[0] >= 0
    assert arrivals[-1] <= route["travel_time_s"]
    assert len(route["coordinates"]) == expected.nodes.size


def test_network_route_table(city: RoadNetwork, cache_dir: Path) -> None:
    run = pilotage("network", "route", "--from", LUXEMBOURG_FROM, "--to", LUXEMBOURG_TO, cache_dir=cache_dir)
    assert run.returncode == 0, run.stderr
    assert "travel time" in run.stdout
    assert "signalised intersections crossed" in run.stdout


def test_another_real_city(cache_dir: Path) -> None:
    info = pilotage("network", "info", "--json", "--osm", str(HELSINKI), cache_dir=cache_dir)
    assert info.returncode == 0, info.stderr
    assert json.loads(info.stdout)["signalised_intersections"] > 0
    route = pilotage("network", "route", "--osm", str(HELSINKI), "--from", HELSINKI_FROM, "--to", HELSINKI_TO,
                     "--json", cache_dir=cache_dir)
    assert route.returncode == 0, route.stderr
    assert json.loads(route.stdout)["intersections"]


@pytest.mark.parametrize(("args", "status", "message"), [
    (("network", "route", "--from", "2.35,48.85", "--to", LUXEMBOURG_TO), 1, "from the nearest node"),
    (("network", "route", "--from", "6.13;49.61", "--to", LUXEMBOURG_TO), 2, "expected LON,LAT"),
    (("network", "route", "--from", LUXEMBOURG_FROM), 2, "--to"),
    (("network", "info", "--osm", "/nonexistent/map.osm"), 1, "cannot read the OSM file"),
    (("network", "info", "--osm", __file__), 1, "as an OSM XML extract"),
    (("network", "fly"), 2, "invalid choice"),
    ((), 2, "required"),
])
def test_errors_are_one_line_and_non_zero(city: RoadNetwork, cache_dir: Path, args: tuple[str, ...], status: int,
                                          message: str) -> None:
    run = pilotage(*args, cache_dir=cache_dir)
    assert run.returncode == status
    errors = [line for line in run.stderr.splitlines() if "error" in line]
    assert len(errors) == 1, run.stderr
    assert message in errors[0]
    assert "Traceback" not in run.stderr
    assert run.stdout == ""
