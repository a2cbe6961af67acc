"""The `pilotage` command line, run as users run it: in another process, with its exit status and output."""

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pilotage.adapters.zeromq import Client
from pilotage.core import RoadNetwork

from .command_line import pilotage
from .conftest import Served

HELSINKI = Path(__file__).resolve().parents[1] / "data" / "helsinki-highways.osm.xz"
# Two points in the city centre of Luxembourg and of Helsinki.
LUXEMBOURG_FROM, LUXEMBOURG_TO = "6.1300,49.6100", "6.1700,49.5900"
HELSINKI_FROM, HELSINKI_TO = "24.9370,60.1643", "24.9500,60.1700"


@pytest.fixture
def served(city: RoadNetwork, serving: Callable[..., contextlib.AbstractContextManager[Served]],
           tmp_path: Path, city_feed: Path) -> Iterator[Served]:
    """`pilotage serve` in another process, its state in the test's folder, following the trips of
    the test line's GTFS feed."""
    with serving(tmp_path / "state", tmp_path / "serve.log", "--gtfs", str(city_feed)) as server:
        yield server


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


def test_serve_answers_every_request_type_to_another_process_and_stops_on_sigterm(
        served: Served, cache_dir: Path, tmp_path: Path, ask_every_type: Callable[..., dict]) -> None:
    with Client(served.endpoint, timeout_s=30.0) as client:
        replies = ask_every_type(client, time.time())
    call = pilotage("call", "network.info", "--endpoint", served.endpoint, cache_dir=cache_dir)
    assert call.returncode == 0, call.stderr
    assert json.loads(call.stdout)["intersections"] == 200
    refused = pilotage("call", "signals.state", '{"intersection": 1}', "--endpoint", served.endpoint,
                       cache_dir=cache_dir)
    assert refused.returncode == 1
    assert "UNKNOWN_ENTITY" in refused.stderr
    # The body from a file (@FILE), and from the standard input (-).
    body = tmp_path / "signals-state.json"
    body.write_text('{"intersection": -30248}')
    from_file = pilotage("call", "signals.state", f"@{body}", "--endpoint", served.endpoint, cache_dir=cache_dir)
    assert json.loads(from_file.stdout)["intersections"][0]["intersection"] == -30248
    from_stdin = subprocess.run([sys.executable, "-m", "pilotage", "call", "signals.state", "-", "--endpoint",
                                 served.endpoint], input='{"intersection": -30248}', capture_output=True, text=True,
                                env=os.environ | {"PILOTAGE_CACHE_DIR": str(cache_dir)}, timeout=300, check=False)
    assert json.loads(from_stdin.stdout)["intersections"][0]["intersection"] == -30248
    missing = pilotage("call", "ping", f"@{tmp_path / 'nowhere.json'}", cache_dir=cache_dir)
    assert missing.returncode == 2 and "cannot read the body from" in missing.stderr
    served.process.send_signal(signal.SIGTERM)
    assert served.process.wait(timeout=30) == 0
    assert "stopped" in served.log.read_text()
    (record,) = [json.loads(line) for line in (tmp_path / "state" / "audit.jsonl").read_text().splitlines()
                 if json.loads(line)["type"] == "priority.request"]
    # On the wall clock, the decision depends on the moment; the audit holds the one the client got.
    assert record["reply"]["body"] == replies["priority.request"]


def test_keys_new(tmp_path: Path, cache_dir: Path) -> None:
    keys = tmp_path / "keys"
    server = pilotage("keys", "new", "--server", "--dir", str(keys), cache_dir=cache_dir)
    assert server.returncode == 0, server.stderr
    client = pilotage("keys", "new", "avl", "--role", "controller", "--dir", str(keys), cache_dir=cache_dir)
    assert client.returncode == 0, client.stderr
    assert sorted(path.relative_to(keys).as_posix() for path in keys.rglob("*.key*")) == [
        "clients/avl.key", "clients/avl.key_secret", "server.key", "server.key_secret"]
    again = pilotage("keys", "new", "avl", "--role", "reader", "--dir", str(keys), cache_dir=cache_dir)
    assert again.returncode == 1
    assert "exists already" in again.stderr
    missing_role = pilotage("keys", "new", "avl2", "--dir", str(keys), cache_dir=cache_dir)
    assert missing_role.returncode == 1
    assert "--role" in missing_role.stderr


def test_call_without_a_server_times_out_with_one_error(cache_dir: Path) -> None:
    run = pilotage("call", "ping", "--endpoint", "tcp://127.0.0.1:9", "--timeout", "0.2", "--retries", "1",
                   cache_dir=cache_dir)
    assert run.returncode == 1
    assert [line for line in run.stderr.splitlines() if "error" in line] == [
        "pilotage: error: no reply from tcp://127.0.0.1:9 in 2 attempts of 0.2 s; is `pilotage serve` running "
        "there, with the same keys?"]


def test_reservations_survive_a_restart_of_the_server(
        city: RoadNetwork, serving: Callable[..., contextlib.AbstractContextManager[Served]], tmp_path: Path) -> None:
    window = {"carpark": "sample-gare", "from": time.time() + 3600, "until": time.time() + 7200, "ref": "app-7"}
    with serving(tmp_path / "state", tmp_path / "first.log") as first:
        with Client(first.endpoint, timeout_s=30.0) as client:
            made = client.request("parking.reserve", window)
        first.process.send_signal(signal.SIGTERM)
        assert first.process.wait(timeout=30) == 0
    with serving(tmp_path / "state", tmp_path / "second.log") as second, \
            Client(second.endpoint, timeout_s=30.0) as client:
        assert client.request("parking.reserve", window) == made
        assert client.request("parking.cancel", {"reservation": made["reservation"]})["state"] == "cancelled"
