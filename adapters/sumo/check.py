"""What a closed-loop run of a SUMO scenario will do, found before running it
(``pilotage simulate --check``): every traffic light and how the engine will drive it (fixed time,
actuated on which detectors, or left to SUMO and why), the buses and trams the scenario runs, their
lines, and the timetables their stops give (``arrival`` or ``until``), which decide whether
conditional priority can know a bus's lateness.

The lights are read as a run reads them (:func:`~pilotage.adapters.sumo.network.read_network`);
the vehicles from the scenario's route and additional files, with the standard library's XML
parser (gzipped files too).
"""

from __future__ import annotations

import gzip
import io
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypedDict

from pilotage.adapters.sumo.closed_loop import PRIORITY_CLASS
from pilotage.adapters.sumo.network import SumoNetwork, loaded_scenario, read_network
from pilotage.core import DataFileError, InvalidInputError


class LightCheck(TypedDict):
    """One traffic light: its control in the scenario, and how the engine will drive it."""

    traffic_light: str
    control: str
    driven: bool
    how: str


class TransitCheck(TypedDict):
    """The buses and trams of one class: vehicles and flows defined, the lines they name (SUMO's
    ``line``), and their stops by how the timetable times them."""

    vehicles: int
    flows: int
    lines: list[str]
    stops_with_arrival: int
    stops_with_until: int
    stops_untimed: int


class ScenarioCheck(TypedDict):
    """What :func:`check_scenario` found."""

    scenario: str
    lights: list[LightCheck]
    driven: int
    error: str | None
    transit: dict[str, TransitCheck]
    timetable: str
    lateness: str


def check_scenario(sumocfg: str | Path) -> ScenarioCheck:
    """Read the scenario ``sumocfg`` (a file or its folder) as a run would, and say what a run will
    do with it, without running it.

    Raises:
        DataFileError: no such scenario, SUMO refuses it, or a route file is not XML.
        ImportError: libsumo is not installed (the message says how to install it).
    """
    error: str | None = None
    net: SumoNetwork | None = None
    with loaded_scenario(sumocfg) as (libsumo, path):
        try:
            net = read_network(libsumo, path)
        except InvalidInputError as exc:
            error = str(exc)
        lights = _lights(libsumo, net)
    transit = _transit(path)
    stops = Counter({key: sum(int(found[key]) for found in transit.values())  # type: ignore[literal-required]
                     for key in ("stops_with_arrival", "stops_with_until", "stops_untimed")})
    timetable = ("arrival" if stops["stops_with_arrival"] else "until" if stops["stops_with_until"] else "none")
    return {"scenario": str(path), "lights": lights, "driven": sum(light["driven"] for light in lights),
            "error": error, "transit": transit, "timetable": timetable, "lateness": _lateness(timetable, transit)}


def format_check(check: ScenarioCheck) -> str:
    """:func:`check_scenario`'s findings as plain text for a terminal."""
    lights = check["lights"]
    lines = [f"{check['scenario']}: {check['driven']} of {len(lights)} traffic lights driven by the engine"]
    if check["error"]:
        lines.append(f"  error: {check['error']}")
    for light in lights:
        lines.append(f"  {light['traffic_light']} [{light['control']}] "
                     f"{'driven' if light['driven'] else 'left to SUMO'}: {light['how']}")
    if not check["transit"]:
        lines.append("no bus or tram in the route files: no priority request will be made")
    for name, found in check["transit"].items():
        named = (f"on {len(found['lines'])} lines ({', '.join(found['lines'][:12])}"
                 f"{', ...' if len(found['lines']) > 12 else ''})" if found["lines"] else "naming no line")
        lines.append(f"{name}: {found['vehicles']} vehicles and {found['flows']} flows {named}; "
                     f"stops timed by arrival {found['stops_with_arrival']}, by until {found['stops_with_until']}, "
                     f"untimed {found['stops_untimed']}")
    lines.append(f"lateness: {check['lateness']}")
    return "\n".join(lines)


def _lights(libsumo: Any, net: SumoNetwork | None) -> list[LightCheck]:
    """Every traffic light of the running scenario, and how the engine will drive it."""
    found: list[LightCheck] = []
    driven = net.light_of_tls if net is not None else {}
    for tls in libsumo.trafficlight.getIDList():
        light = driven.get(tls)
        if light is None:
            reason = net.left_to_sumo.get(tls, "not read") if net is not None else "the scenario cannot be driven"
            control = net.control_of_tls.get(tls, "") if net is not None else ""
            found.append({"traffic_light": tls, "control": control, "driven": False, "how": reason})
            continue
        plan = net.plans[light.plan] if net is not None else None
        assert plan is not None
        how = (f"actuated, passage {plan.passage_s:g} s, on {len(light.detectors)} induction loops"
               if light.detectors else f"fixed time, cycle {plan.cycle_s:g} s")
        found.append({"traffic_light": tls, "control": light.control, "driven": True,
                      "how": f"{how}, {plan.n_stages} stages, {plan.n_groups} signal groups"})
    return found


def _lateness(timetable: str, transit: dict[str, TransitCheck]) -> str:
    if not transit:
        return "no bus or tram"
    if timetable == "arrival":
        return "from the stops' arrival times; conditional priority (--min-lateness) works"
    if timetable == "until":
        return "from the stops' until times (departures); conditional priority (--min-lateness) works"
    return ("unknown: no stop gives an arrival or until time; every bus asks as on time, so conditional priority "
            "(--min-lateness above 0) grants no bus (trams are not held to it), and unconditional priority (the "
            "default) is used")


def _transit(sumocfg: Path) -> dict[str, TransitCheck]:
    """The buses and trams the route and additional files of ``sumocfg`` define, by class."""
    files = _input_files(sumocfg)
    vclass_of_type = {"DEFAULT_VEHTYPE": "passenger"}
    # Each route's stops, and each vehicle, trip or flow: its tag, attributes and stops (as attributes:
    # an element is cleared once read).
    routes_stops: dict[str, list[dict[str, str]]] = {}
    vehicles: list[tuple[str, dict[str, str], list[dict[str, str]]]] = []
    for path in files:
        for element in _elements(path):
            for vtype in element.iter("vType"):
                vclass_of_type[vtype.get("id", "")] = vtype.get("vClass", "passenger")
            stops = [dict(stop.attrib) for stop in element.iter("stop")]
            if element.tag == "route" and element.get("id"):
                routes_stops[element.get("id", "")] = stops
            elif element.tag in ("vehicle", "trip", "flow"):
                vehicles.append((element.tag, dict(element.attrib), stops))
    found: dict[str, TransitCheck] = {}
    for tag, attributes, stops in vehicles:
        kind = PRIORITY_CLASS.get(vclass_of_type.get(attributes.get("type", "DEFAULT_VEHTYPE"), "passenger"))
        if kind is None:
            continue
        entry = found.setdefault(kind, {"vehicles": 0, "flows": 0, "lines": [], "stops_with_arrival": 0,
                                        "stops_with_until": 0, "stops_untimed": 0})
        entry["flows" if tag == "flow" else "vehicles"] += 1
        line = attributes.get("line")
        if line is not None and line not in entry["lines"]:
            entry["lines"].append(line)
        for stop in stops or routes_stops.get(attributes.get("route", ""), []):
            key = ("stops_with_arrival" if stop.get("arrival") else "stops_with_until" if stop.get("until")
                   else "stops_untimed")
            entry[key] += 1  # type: ignore[literal-required]
    for entry in found.values():
        entry["lines"].sort()
    return found


def _input_files(sumocfg: Path) -> list[Path]:
    """The route and additional files the configuration names, beside it."""
    files: list[Path] = []
    try:
        for _, element in ET.iterparse(sumocfg):
            if element.tag in ("route-files", "additional-files", "r", "a"):
                files += [sumocfg.parent / name.strip() for name in element.get("value", "").split(",") if name.strip()]
    except ET.ParseError as exc:
        raise DataFileError(f"{sumocfg} is not a SUMO configuration SUMO can read: {exc}") from exc
    return [path for path in files if path.is_file()]


def _elements(path: Path) -> Iterator[ET.Element]:
    """The top-level elements of an XML file (gzipped or not), each with its children."""
    try:
        with _open(path) as stream:
            depth = 0
            for event, element in ET.iterparse(stream, events=("start", "end")):
                depth += 1 if event == "start" else -1
                if event == "end" and depth == 1:
                    yield element
                    element.clear()
    except (ET.ParseError, OSError, EOFError) as exc:
        raise DataFileError(f"{path} is not an XML file SUMO can read: {exc}") from exc


def _open(path: Path) -> gzip.GzipFile | io.BufferedReader:
    return gzip.GzipFile(path) if path.suffix == ".gz" else path.open("rb")
