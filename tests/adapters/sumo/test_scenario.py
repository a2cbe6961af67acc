"""The embedded city as a SUMO scenario (built once per session into a private cache, conftest.py),
checked file by file and in SUMO itself."""

import itertools
import re
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from pilotage.adapters.sumo import read_signal_plans
from pilotage.adapters.sumo import scenario as scenario_module
from pilotage.adapters.sumo.programs import AMBER_STATES, GREEN_STATES
from pilotage.adapters.sumo.scenario import Scenario, city_scenario
from pilotage.core import DataFileError, InvalidInputError

sumolib = pytest.importorskip("sumolib", reason="the SUMO scenario needs the sim extra: pip install 'pilotage[sim]'")

XML_COMMENT = re.compile(rb"<!--.*?-->", re.DOTALL)


@pytest.fixture(scope="session")
def isolated(scenario: Scenario) -> Scenario:
    """The same scenario with each traffic light at its own cycle (built with the default one)."""
    return city_scenario(cache_dir=scenario.directory.parent, coordinated=False)


@pytest.fixture(scope="session")
def net(scenario: Scenario):
    """The scenario's network, read with sumolib."""
    return sumolib.net.readNet(str(scenario.net))


def buses(scenario: Scenario) -> list[ET.Element]:
    return list(ET.parse(scenario.bus_routes).getroot().iter("vehicle"))


def traffic_lights_on(net, edges: list[str]) -> set[str]:
    """Traffic lights a route passes."""
    return {net.getEdge(a).getConnections(net.getEdge(b))[0].getTLSID() for a, b in itertools.pairwise(edges)} - {""}


def controlled_junctions(tls) -> set[str]:
    """Junctions a sumolib traffic light controls."""
    return {connection[0].getEdge().getToNode().getID() for connection in tls.getConnections()}


def programs(path: Path) -> dict[str, ET.Element]:
    """The <tlLogic> elements of a SUMO file, by traffic light id."""
    return {program.attrib["id"]: program for program in ET.parse(path).getroot().iter("tlLogic")}


def durations_s(program: ET.Element) -> list[float]:
    return [float(phase.attrib["duration"]) for phase in program.iter("phase")]


def without_comments(path: Path) -> bytes:
    # netconvert and duarouter open their files with a comment that holds the date.
    return XML_COMMENT.sub(b"", path.read_bytes())


def test_every_traffic_light_has_a_readable_plan(scenario: Scenario, net) -> None:
    plans = read_signal_plans(scenario.net)
    assert len(plans) == scenario.traffic_lights >= 100
    programs = list(ET.parse(scenario.net).getroot().iter("tlLogic"))
    assert len(programs) == scenario.traffic_lights
    assert {program.get("type") for program in programs} == {"static"}
    assert {plan.id for plan in plans} == {program.get("id") for program in programs}
    # A junction typed traffic_light always has a program: the refused signals became priority junctions.
    controlled = {node.getID() for node in net.getNodes() if node.getType() == "traffic_light"}
    assert controlled == {node for tls in net.getTrafficLights() for node in controlled_junctions(tls)}


@pytest.mark.parametrize("coordinated", [True, False])
def test_the_programs_sumo_runs_give_each_green_a_range(scenario: Scenario, isolated: Scenario,
                                                        coordinated: bool) -> None:
    variant = scenario if coordinated else isolated
    assert variant.coordinated is coordinated
    plans = read_signal_plans(variant.signals_file, program_id="pilotage")
    assert len(plans) == variant.traffic_lights
    assert {plan.id for plan in plans} == programs(variant.net).keys()
    for plan in plans:
        assert (plan.stage_min_s <= plan.green_s).all() and (plan.green_s <= plan.stage_max_s).all()
        assert plan.max_cycle_s > plan.cycle_s
    # The main greens can be cut, the short ones are at their minimum.
    assert sum((plan.stage_min_s < plan.green_s).sum() for plan in plans) > 100
    for program in programs(variant.signals_file).values():
        for phase in program.iter("phase"):
            state = phase.attrib["state"]
            green = any(c in GREEN_STATES for c in state) and not any(c in AMBER_STATES for c in state)
            assert (phase.get("minDur") is not None) == green
            if green:
                duration_s = float(phase.attrib["duration"])
                assert float(phase.attrib["minDur"]) == min(duration_s, scenario_module.MIN_GREEN_S)
                assert float(phase.attrib["maxDur"]) == round(duration_s * scenario_module.MAX_GREEN_FACTOR)


@pytest.mark.parametrize("coordinated", [True, False])
def test_the_programs_sumo_runs_are_timed_for_the_demand(scenario: Scenario, isolated: Scenario,
                                                         coordinated: bool) -> None:
    variant = scenario if coordinated else isolated
    netconvert, timed = programs(variant.net), programs(variant.signals_file)
    assert {sum(durations_s(program)) for program in netconvert.values()} == {90}
    retimed = other_cycle = 0
    for tl_id, program in timed.items():
        phases, original = list(program.iter("phase")), list(netconvert[tl_id].iter("phase"))
        assert [phase.get("state") for phase in phases] == [phase.get("state") for phase in original]
        # The ambers are netconvert's, set by the approach speed.
        for phase, before in zip(phases, original, strict=True):
            if any(c in AMBER_STATES for c in phase.attrib["state"]):
                assert phase.get("duration") == before.get("duration")
        retimed += durations_s(program) != durations_s(netconvert[tl_id])
        other_cycle += sum(durations_s(program)) != 90
    assert retimed >= 0.99 * variant.traffic_lights
    assert other_cycle >= 0.99 * variant.traffic_lights


def test_the_coordinated_programs_share_one_cycle_with_offsets(scenario: Scenario, isolated: Scenario) -> None:
    netconvert, timed = programs(scenario.net), programs(scenario.signals_file)
    cycles_s = {tl_id: sum(durations_s(program)) for tl_id, program in timed.items()}
    (common_s, n), *_ = Counter(cycles_s.values()).most_common()
    # One cycle for the city, but for a light the tool could not time at it (it keeps netconvert's program).
    assert n >= 0.99 * scenario.traffic_lights
    assert all(durations_s(timed[tl_id]) == durations_s(netconvert[tl_id])
               for tl_id, cycle_s in cycles_s.items() if cycle_s != common_s)
    offsets_s = np.array([float(program.attrib["offset"]) for program in timed.values()])
    assert ((offsets_s >= 0) & (offsets_s < np.array(list(cycles_s.values())))).all()
    assert np.array_equal(offsets_s, np.round(offsets_s))
    assert (offsets_s > 0).mean() >= 0.9
    assert len(set(offsets_s)) >= 20
    # Each light of the isolated variant has its own cycle, at offset 0.
    isolated_programs = programs(isolated.signals_file).values()
    assert len({sum(durations_s(program)) for program in isolated_programs}) >= 5
    assert {program.get("offset") for program in isolated_programs} == {"0"}


def test_cars_fill_the_peak_hour(scenario: Scenario) -> None:
    cars = ET.parse(scenario.car_routes).getroot().iter("vehicle")
    departures_s = [float(vehicle.attrib["depart"]) for vehicle in cars]
    assert len(departures_s) == scenario.cars
    # One trip every CAR_PERIOD_S from begin to end included, less the few duarouter found no path for.
    expected = (scenario.end_s - scenario.begin_s) / scenario_module.CAR_PERIOD_S + 1
    assert 0.97 * expected <= scenario.cars <= expected
    assert min(departures_s) >= scenario.begin_s
    assert max(departures_s) <= scenario.end_s


def test_bus_lines_cross_the_city_through_signals(scenario: Scenario, net) -> None:
    routes = {route.attrib["id"]: route.attrib["edges"].split() for route in ET.parse(scenario.bus_routes).getroot()
              .iter("route")}
    assert len(routes) == 2 * scenario.bus_lines
    assert scenario.bus_lines == scenario_module.BUS_LINES
    for edges in routes.values():
        length_m = sum(net.getEdge(edge).getLength() for edge in edges)
        assert length_m > 5000
        assert len(traffic_lights_on(net, edges)) >= 10
        assert all(net.getEdge(edge).allows("bus") for edge in edges)


def test_bus_stops_are_on_lanes_buses_use(scenario: Scenario, net) -> None:
    stops = list(ET.parse(scenario.bus_stops_file).getroot().iter("busStop"))
    assert len(stops) == scenario.bus_stops
    for stop in stops:
        lane = net.getLane(stop.get("lane"))
        assert lane.allows("bus")
        assert lane.getIndex() == min(other.getIndex() for other in lane.getEdge().getLanes() if other.allows("bus"))
        assert 0 <= float(stop.attrib["startPos"]) < float(stop.attrib["endPos"]) <= lane.getLength()
        assert stop.get("lines")


def test_buses_keep_a_timetable(scenario: Scenario) -> None:
    vehicles = buses(scenario)
    assert len(vehicles) == scenario.buses
    stop_ids = {stop.get("id") for stop in ET.parse(scenario.bus_stops_file).getroot().iter("busStop")}
    types = {vtype.get("id"): vtype.get("vClass") for vtype in ET.parse(scenario.bus_routes).getroot().iter("vType")}
    in_service = []
    for vehicle in vehicles:
        assert types[vehicle.get("type")] == "bus"
        depart_s = float(vehicle.attrib["depart"])
        stops = list(vehicle.iter("stop"))
        assert len(stops) >= 5
        assert {stop.get("busStop") for stop in stops} <= stop_ids
        assert {stop.get("duration") for stop in stops} == {"20"}
        arrivals_s = np.array([float(stop.attrib["arrival"]) for stop in stops])
        assert arrivals_s[0] >= depart_s
        assert np.all(np.diff(arrivals_s) > scenario_module.BUS_DWELL_S)
        in_service.append((depart_s, arrivals_s[-1] + scenario_module.BUS_DWELL_S))
    # Headways of each direction of each line.
    departures: dict[str, list[float]] = {}
    for vehicle in vehicles:
        departures.setdefault(vehicle.attrib["route"], []).append(float(vehicle.attrib["depart"]))
    assert {tuple(np.diff(times_s)) for times_s in departures.values()} == {
        (scenario_module.BUS_HEADWAY_S,) * (len(times_s) - 1) for times_s in departures.values()}
    assert 5 * 60 <= scenario_module.BUS_HEADWAY_S <= 10 * 60
    # The most buses in service at once, counted second by second.
    starts_s, ends_s = np.array(in_service).T
    at_once = [int(np.sum((starts_s <= t) & (t < ends_s))) for t in np.arange(scenario.begin_s, scenario.end_s)]
    assert max(at_once) == scenario.peak_buses_in_service >= 100


def test_emergency_vehicles_cross_the_city(scenario: Scenario, net) -> None:
    root = ET.parse(scenario.emergency_routes).getroot()
    vtype = root.find("vType")
    assert vtype is not None
    assert vtype.attrib["vClass"] == "emergency"
    assert float(vtype.attrib["speedFactor"]) == scenario_module.EMERGENCY_SPEED_FACTOR
    vehicles = list(root.iter("vehicle"))
    assert len(vehicles) == scenario.emergency_vehicles == 12
    departures_s = [float(vehicle.attrib["depart"]) for vehicle in vehicles]
    assert np.all(np.diff(departures_s) == scenario_module.EMERGENCY_EVERY_S)
    for vehicle in vehicles:
        route = vehicle.find("route")
        assert route is not None
        assert len(traffic_lights_on(net, route.attrib["edges"].split())) >= 15


@pytest.mark.parametrize("coordinated", [True, False])
def test_configuration_runs_the_peak_hour_without_output(scenario: Scenario, isolated: Scenario,
                                                         coordinated: bool) -> None:
    variant = scenario if coordinated else isolated
    assert variant.directory == scenario.directory
    root = ET.parse(variant.sumocfg).getroot()
    options = {element.tag: element.attrib["value"] for section in root for element in section}
    assert options["begin"] == "0"
    assert options["end"] == "3600"
    assert options["seed"] == "42"
    assert float(options["time-to-teleport"]) > 0
    assert not [name for name in options if "output" in name]
    for name in ("net-file", "route-files", "additional-files"):
        for file in options[name].split(","):
            assert (variant.directory / file).is_file()
    assert options["additional-files"].split(",")[0] == variant.signals_file.name
    assert isolated.sumocfg != scenario.sumocfg and isolated.signals_file != scenario.signals_file


def test_a_short_run(scenario: Scenario) -> None:
    libsumo = pytest.importorskip("libsumo")
    timetable = {vehicle.attrib["id"]: [float(stop.attrib["arrival"]) for stop in vehicle.iter("stop")]
                 for vehicle in buses(scenario)}
    libsumo.start(["sumo", "-c", str(scenario.sumocfg), "--end", "300", "--no-warnings", "true"])
    try:
        assert libsumo.trafficlight.getIDCount() == scenario.traffic_lights
        # SUMO runs the timed programs.
        timed = programs(scenario.signals_file)
        for tl_id in libsumo.trafficlight.getIDList():
            assert libsumo.trafficlight.getProgram(tl_id) == "pilotage"
            [logic] = [logic for logic in libsumo.trafficlight.getAllProgramLogics(tl_id)
                       if logic.programID == "pilotage"]
            assert [phase.duration for phase in logic.phases] == durations_s(timed[tl_id])
        teleports, running_buses = 0, set()
        for _ in range(300):
            libsumo.simulationStep()
            teleports += libsumo.simulation.getStartingTeleportNumber()
            running_buses |= {vehicle for vehicle in libsumo.vehicle.getIDList() if vehicle in timetable}
        bus = sorted(running_buses & set(libsumo.vehicle.getIDList()))[0]
        stops = libsumo.vehicle.getStops(bus)
        passed = len(timetable[bus]) - len(stops)
        # The scheduled arrivals are read back as the timetable.
        assert [stop.intendedArrival for stop in stops] == timetable[bus][passed:]
        vehicles = libsumo.vehicle.getIDCount()
    finally:
        libsumo.close()
    assert teleports == 0
    assert len(running_buses) >= 2 * scenario.bus_lines
    assert vehicles > 200


@pytest.mark.slow
def test_the_peak_hour_in_sumo(scenario: Scenario) -> None:
    libsumo = pytest.importorskip("libsumo")
    libsumo.start(["sumo", "-c", str(scenario.sumocfg), "--no-warnings", "true"])
    try:
        most_buses, teleports, arrived = 0, 0, Counter[str]()
        for _ in range(int(scenario.end_s - scenario.begin_s)):
            libsumo.simulationStep()
            teleports += libsumo.simulation.getStartingTeleportNumber()
            most_buses = max(most_buses, sum(1 for vehicle in libsumo.vehicle.getIDList()
                                             if libsumo.vehicle.getVehicleClass(vehicle) == "bus"))
            arrived.update(vehicle.rstrip("0123456789.") for vehicle in libsumo.simulation.getArrivedIDList())
    finally:
        libsumo.close()
    assert most_buses >= 100
    assert teleports <= 0.01 * scenario.cars
    assert arrived["emergency"] >= scenario.emergency_vehicles // 2
    assert arrived["car"] >= scenario.cars // 2


def test_a_second_call_uses_the_cache(scenario: Scenario, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_build(*args: object) -> None:
        raise AssertionError("the cached scenario should be used")

    monkeypatch.setattr(scenario_module, "_build", no_build)
    monkeypatch.setattr(scenario_module, "_run_tool", no_build)
    assert city_scenario(cache_dir=scenario.directory.parent) == scenario
    isolated = city_scenario(cache_dir=scenario.directory.parent, coordinated=False)
    assert isolated.directory == scenario.directory
    assert (isolated.sumocfg.name, isolated.signals_file.name) == ("city-isolated.sumocfg", "signals-isolated.add.xml")


def test_the_same_seed_gives_the_same_files(scenario: Scenario, tmp_path: Path) -> None:
    again = city_scenario(cache_dir=tmp_path)
    assert again.directory.name == scenario.directory.name
    isolated = city_scenario(cache_dir=scenario.directory.parent, coordinated=False)
    for ours in (scenario.bus_routes, scenario.bus_stops_file, scenario.emergency_routes, scenario.sumocfg,
                 scenario.signals_file, isolated.sumocfg, isolated.signals_file):
        assert (again.directory / ours.name).read_bytes() == ours.read_bytes(), ours.name
    for tools in (scenario.net, scenario.car_routes):
        assert without_comments(again.directory / tools.name) == without_comments(tools), tools.name
    assert [p.name for p in sorted(scenario.directory.iterdir())] == [p.name for p in sorted(again.directory.iterdir())]


def test_a_rebuilt_scenario_replaces_the_cached_one(tmp_path: Path) -> None:
    target = tmp_path / "sumo-scenario-x"
    target.mkdir()
    (target / "old.xml").write_text("old")
    building = tmp_path / ".sumo-scenario-x-new"
    building.mkdir()
    (building / "new.xml").write_text("new")
    scenario_module._put_in_place(building, target)
    assert [p.name for p in target.iterdir()] == ["new.xml"]
    assert [p.name for p in tmp_path.iterdir()] == ["sumo-scenario-x"]


def test_bad_inputs_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="seed"):
        city_scenario(cache_dir=tmp_path, seed=-1)
    with pytest.raises(InvalidInputError, match="seed"):
        city_scenario(cache_dir=tmp_path, seed=True)
    with pytest.raises(InvalidInputError, match="coordinated"):
        city_scenario(cache_dir=tmp_path, coordinated="no")  # type: ignore[arg-type]  # deliberately invalid
    with pytest.raises(DataFileError, match="cannot read the OSM file"):
        city_scenario(tmp_path / "missing.osm", cache_dir=tmp_path)


def test_a_failing_netconvert_is_reported(tmp_path: Path) -> None:
    not_osm = tmp_path / "roads.osm"
    not_osm.write_text("these are not roads")
    with pytest.raises(DataFileError, match="netconvert failed"):
        city_scenario(not_osm, cache_dir=tmp_path / "cache")
    # Nothing half-built is left to be taken for a scenario.
    assert list((tmp_path / "cache").iterdir()) == []
