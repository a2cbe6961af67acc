"""Emergency corridors on any route SUMO can drive, and what a run says when a corridor cannot open
or achieves nothing.

On Bologna (Andrea Costa, from the shared data), emergency vehicles sent along the bus routes, bus
lanes and the edges that lead into and out of the network included, get their corridors; one whose
route the network does not hold at all gets none, and the report says so, with the reason, instead
of a change in emergency travel time. The report's counts add up, and its notes come from them
(runs written by hand, no SUMO)."""

import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pilotage.adapters.sumo.closed_loop import LoopOptions, simulate
from pilotage.adapters.sumo.measures import Run
from pilotage.adapters.sumo.network import import_libsumo, output_prefix, read_network
from pilotage.adapters.sumo.report import comparison, format_table

#: Bologna's edges into its network from the west, one way only: SUMO drives them, the strongly
#: connected network pilotage reads does not hold them (no way leads back out there).
LEAD_IN_ONLY = "78[0] 56a 56b"


@pytest.fixture(scope="module")
def bologna(shared_data: Callable[..., Path]) -> Path:
    """The Bologna scenario's SUMO configuration."""
    return shared_data("sumo", "bologna-acosta", "run.sumocfg")


def with_ambulances(bologna: Path, folder: Path, routes: list[str]) -> Path:
    """A copy of the Bologna scenario in ``folder`` (its files linked) with an ambulance (class
    emergency) on each of ``routes`` (SUMO edge ids), one every 5 s from 0 s; its configuration."""
    folder.mkdir(parents=True, exist_ok=True)
    for path in bologna.parent.iterdir():
        if path.suffix != ".sumocfg":
            (folder / path.name).symlink_to(path)
    vehicles = "".join(f'<vehicle id="ambulance.{n}" type="ambulance" depart="{5 * n}" departLane="best">'
                       f'<route edges="{edges}"/></vehicle>\n' for n, edges in enumerate(routes))
    (folder / "ambulances.rou.xml").write_text(f'<routes>\n<vType id="ambulance" vClass="emergency"/>\n{vehicles}'
                                               "</routes>\n")
    config = bologna.read_text().replace('acosta_busses.rou.xml"', 'acosta_busses.rou.xml,ambulances.rou.xml"')
    assert "ambulances.rou.xml" in config
    sumocfg = folder / bologna.name
    sumocfg.write_text(config)
    return sumocfg


def bus_routes(bologna: Path) -> list[str]:
    """The routes of Bologna's buses, each once."""
    routes = ET.parse(bologna.parent / "acosta_busses.rou.xml").getroot().iter("route")
    return sorted({route.get("edges", "") for route in routes})


@pytest.fixture(scope="module")
def on_bus_routes(bologna: Path, tmp_path_factory: pytest.TempPathFactory) -> Run:
    """Five simulated minutes of Bologna with corridors on (priority off), an ambulance on each bus route."""
    sumocfg = with_ambulances(bologna, tmp_path_factory.mktemp("bus-routes"), bus_routes(bologna))
    return simulate(sumocfg, LoopOptions(duration_s=300.0, priority=False, time_space=False))


@pytest.fixture(scope="module")
def off_network(bologna: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Run]:
    """Two simulated minutes of Bologna, corridors off then on, one ambulance on edges the network
    does not hold."""
    sumocfg = with_ambulances(bologna, tmp_path_factory.mktemp("off-network"), [LEAD_IN_ONLY])
    options = LoopOptions(duration_s=120.0, priority=False, time_space=False)
    return [simulate(sumocfg, LoopOptions(duration_s=120.0, priority=False, corridors=False, time_space=False)),
            simulate(sumocfg, options)]


def test_the_network_holds_every_lane_an_emergency_vehicle_may_take(bologna: Path, tmp_path: Path) -> None:
    libsumo = import_libsumo()
    libsumo.start(["sumo", "-c", str(bologna), "--no-step-log", "true", "--no-warnings", "true",
                   "--output-prefix", output_prefix(tmp_path)])
    try:
        edges = [edge for edge in libsumo.edge.getIDList() if not edge.startswith(":")]
        lanes = {edge: [f"{edge}_{i}" for i in range(libsumo.edge.getLaneNumber(edge))] for edge in edges}
        # Bologna's bus-only edges: each of their lanes is for buses alone.
        bus_only = [edge for edge in edges if all(libsumo.lane.getAllowed(lane) == ("bus",) for lane in lanes[edge])]
        assert len(bus_only) == 14
        net = read_network(libsumo, bologna)
        nodes = set(net.network.node_osmid.tolist())
        for edge in edges:
            emergency = [lane for lane in lanes[edge] if "emergency" in libsumo.lane.getAllowed(lane)]
            ends = {net.junction_index[libsumo.edge.getFromJunction(edge)],
                    net.junction_index[libsumo.edge.getToJunction(edge)]}
            # SUMO lets emergency vehicles drive every edge of the network (bus lanes included, as on
            # an emergency call), and the network holds every edge they may drive but those that
            # only lead into or out of it.
            assert (edge in net.edge_index) == (bool(emergency) and ends <= nodes), edge
        # All but two (55 and 55b, which only lead into the network).
        assert sum(edge in net.edge_index for edge in bus_only) == 12
    finally:
        libsumo.close()


def test_an_emergency_vehicle_on_any_bus_route_gets_a_corridor(on_bus_routes: Run) -> None:
    corridors = on_bus_routes["corridor_requests"]
    trips = on_bus_routes["emergency"]["trips"]
    assert len(trips) == 8
    assert [trip["corridor"] for trip in trips] == ["opened"] * 8
    assert corridors["asked"] == corridors["opened"] == 8
    assert corridors["not_opened"] == 0 and corridors["not_opened_by_reason"] == {}
    # Every bus route starts or ends on the edges leading into or out of the network.
    assert corridors["opened_in_part"] == 8
    assert corridors["errors"].get("ROUTE_NOT_DRIVABLE", 0) == 0
    assert corridors["held"] > 0
    assert sum(trip["travel_time_s"] is not None for trip in trips) >= 5


def test_the_counts_of_corridors_and_lights_add_up(on_bus_routes: Run) -> None:
    corridors = on_bus_routes["corridor_requests"]
    assert corridors["asked"] == corridors["opened"] + corridors["not_opened"]
    assert corridors["not_opened"] == sum(corridors["not_opened_by_reason"].values())
    assert corridors["lights"] == corridors["held"] + corridors["refused"] + corridors["pending"]
    assert corridors["refused"] == sum(corridors["refused_by_reason"].values())
    assert corridors["crossed_in_hold"] <= corridors["held"]
    trips = on_bus_routes["emergency"]["trips"]
    for trip in trips:
        assert trip["crossings"] == trip["planned"] + trip["refused"] + trip["pending"]
        assert trip["refused"] == sum(trip["refused_by_reason"].values())
        assert trip["crossed_in_hold"] <= trip["planned"]
    for key, trip_key in (("lights", "crossings"), ("held", "planned"), ("refused", "refused"),
                          ("pending", "pending"), ("crossed_in_hold", "crossed_in_hold")):
        assert corridors[key] == sum(trip[trip_key] for trip in trips)  # type: ignore[literal-required]


def test_a_corridor_that_cannot_open_says_why_and_no_change_is_claimed(off_network: list[Run]) -> None:
    off, on = off_network
    (trip,) = on["emergency"]["trips"]
    assert trip["corridor"] == "OFF_NETWORK"
    assert trip["travel_time_s"] is not None
    assert off["emergency"]["trips"][0]["corridor"] is None
    corridors = on["corridor_requests"]
    assert (corridors["asked"], corridors["opened"], corridors["not_opened_by_reason"]) == (1, 0, {"OFF_NETWORK": 1})
    headline = comparison([off, on])["comparisons"][0]["headline"]
    assert headline["emergency_travel_time_change_pct"] is None
    assert headline["emergency_travel_time_change_pct_ci95"] is None
    assert headline["emergency_trips_matched"] == 0
    assert headline["emergency_travel_time_note"] == "no corridor opened: 1 OFF_NETWORK"
    table = format_table([off, on])
    travel_time = next(line for line in table.splitlines() if line.startswith("  travel time ("))
    assert "%" not in travel_time
    assert "no corridor opened: 1 OFF_NETWORK" in table
    not_opened = next(line for line in table.splitlines() if "not opened: OFF_NETWORK" in line)
    assert not_opened.split()[-4:-2] == ["0", "1"]


# -- the report, on runs written by hand -------------------------------------------------------


def run_of(*, corridors: bool, seed: int = 1, travel_times_s: dict[str, float] | None = None,
           **requests: Any) -> dict[str, Any]:
    """A run of emergency trips alone: ``travel_times_s`` by vehicle, their corridor opened when
    ``requests`` says some did; ``requests``: the corridor counts (0 where not given)."""
    travel_times_s = travel_times_s or {"ambulance-1": 300.0, "ambulance-2": 400.0}
    counts: dict[str, Any] = {key: 0 for key in ("asked", "opened", "opened_in_part", "not_opened", "reopened",
                                                 "closed", "updates", "reroutes", "lights", "held", "refused",
                                                 "pending", "crossed_in_hold")}
    counts |= {"errors": {}, "not_opened_by_reason": {}, "refused_by_reason": {}} | requests
    status = None if not corridors else "opened" if counts["opened"] else next(iter(counts["not_opened_by_reason"]))
    trips: list[dict[str, Any]] = [
        {"vehicle": vehicle, "depart_s": 60.0, "travel_time_s": travel_time_s, "length_m": 2000.0, "corridor": status,
         "crossings": 0, "planned": 0, "refused": 0, "pending": 0, "refused_by_reason": {}, "crossed_in_hold": 0,
         "lights_crossed": 4, "waited_at_lights": 3}
        for vehicle, travel_time_s in travel_times_s.items()]
    return {"scenario": "acosta.sumocfg", "seed": seed, "priority": False, "corridors": corridors, "begin_s": 0.0,
            "end_s": 900.0, "step_s": 1.0, "emergency": {"trips": trips}, "corridor_requests": counts}


def test_no_change_is_claimed_when_no_corridor_opened() -> None:
    runs = [run_of(corridors=False),
            run_of(corridors=True, travel_times_s={"ambulance-1": 301.0, "ambulance-2": 402.0}, asked=2,
                   not_opened=2, not_opened_by_reason={"OFF_NETWORK": 2}, errors={"OFF_NETWORK": 2})]
    (compared,) = comparison(runs)["comparisons"]
    headline = compared["headline"]
    assert headline["emergency_travel_time_change_pct"] is None
    assert headline["emergency_trips_matched"] == 0
    assert headline["emergency_travel_time_note"] == "no corridor opened: 2 OFF_NETWORK"
    table = format_table(runs)
    assert "no corridor opened: 2 OFF_NETWORK" in table
    assert "+0." not in next(line for line in table.splitlines() if line.startswith("  travel time ("))


def test_a_corridor_that_achieves_nothing_says_what_it_did() -> None:
    runs = [run_of(corridors=False),
            run_of(corridors=True, travel_times_s={"ambulance-1": 301.0, "ambulance-2": 402.0}, asked=2, opened=2,
                   lights=6, held=4, refused=1, refused_by_reason={"no signal plan for this intersection": 1},
                   pending=1, crossed_in_hold=3)]
    runs[1]["emergency"]["trips"][0]["waited_at_lights"] = 0
    runs[1]["emergency"]["trips"][1]["waited_at_lights"] = 1
    headline = comparison(runs)["comparisons"][0]["headline"]
    assert headline["emergency_travel_time_change_pct"] == pytest.approx(((301 + 402) / 700 - 1) * 100)
    assert headline["emergency_trips_matched"] == 2
    assert headline["emergency_travel_time_note"] == (
        "2 of 2 corridors opened; 4 of 6 lights on their routes held, 1 refused (1 no signal plan for "
        "this intersection), 1 never planned; 3 crossed in their hold; emergency vehicles waited at 1 of 8 lights "
        "crossed (6 of 8 without corridors)")
    assert headline["emergency_travel_time_note"] in " ".join(format_table(runs).split())
