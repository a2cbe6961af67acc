"""SUMO's road network and traffic lights as pilotage sees them: what a closed-loop run drives
(:mod:`pilotage.adapters.sumo.closed_loop`) and what an engine serving the scenario reads
(:func:`read_scenario`).

Nodes are SUMO's junctions, edges its normal edges with a lane an emergency vehicle may take, read
lane by lane: one SUMO opens to the class ``emergency``, or a bus lane, which traffic codes let a
vehicle on an emergency call take, and which the network opens to SUMO's emergency vehicles too
(:func:`read_network`), so that they may drive every edge it holds. Of those, the network keeps the
largest strongly connected part: the edges that only lead into or out of it, at the scenario's
fringe, are not held. Node and edge "OSM ids" are their positions in SUMO's lists; road classes are
the speed limits (of the lanes an emergency vehicle may take). Each
traffic light is one signalised intersection over the junctions it controls, its id the smallest of
their node ids, and its plan is its own program
(:func:`~pilotage.adapters.sumo.programs.program_plan`), at the offset it runs at when the
simulation starts. A traffic light whose program cannot be driven is left to SUMO.

Nothing here imports SUMO at module import: :func:`import_libsumo` does, and says how to install it
when it is missing.
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from pilotage.adapters.sumo.programs import AMBER_STATES, GREEN_STATES, program_plan
from pilotage.core import DataFileError, InvalidInputError, RoadNetwork
from pilotage.core.signals import IntersectionPlan

logger = logging.getLogger(__name__)

_SIM_EXTRA = "pip install 'pilotage[sim]'"
#: SUMO's traffic-light types by their TraCI number.
_CONTROL_TYPES = {0: "static", 1: "rail_signal", 2: "rail_crossing", 3: "actuated", 4: "NEMA", 5: "delay_based"}
#: The types whose programs pilotage runs: fixed time, and actuated by gaps between vehicles.
_DRIVEN_TYPES = frozenset({"static", "actuated"})
#: Why a light of another type is left to SUMO.
_NOT_DRIVEN_TYPES = {
    "rail_signal": "a railway signal: SUMO sets it for the trains that reserve their blocks",
    "rail_crossing": "a railway crossing: SUMO closes it when a train comes",
    "NEMA": "a NEMA dual-ring controller: pilotage does not model its rings and barriers",
    "delay_based": "a delay-based controller: pilotage does not model its time-loss actuation",
}
#: Why a light on no junction of the road network read is left to SUMO.
_OFF_NETWORK = "it controls no junction of the road network pilotage reads (railway, footway or cycleway only)"
#: SUMO's passage time of an actuated program without a ``max-gap`` parameter (s).
_SUMO_MAX_GAP_S = 3.0
# More levels than any folder an output is written to is deep: the output prefix climbs to the root.
_ROOT_LEVELS = 64


def scenario_file(sumocfg: str | Path) -> Path:
    """The path of the SUMO configuration ``sumocfg``: that file, or the one ``.sumocfg`` file of
    that folder.

    Raises:
        DataFileError: no such file, or a folder with no ``.sumocfg`` file or several.
    """
    sumocfg = Path(sumocfg)
    if sumocfg.is_dir():
        found = sorted(sumocfg.glob("*.sumocfg"))
        if len(found) != 1:
            raise DataFileError(f"expected one .sumocfg file in {sumocfg}, got "
                                f"{', '.join(path.name for path in found) or 'none'}: give the file itself")
        return found[0]
    if not sumocfg.is_file():
        raise DataFileError(f"no SUMO configuration at {sumocfg}; give a .sumocfg file or its folder, or run "
                            "`pilotage demo` for the embedded city")
    return sumocfg


def sumo_command(sumocfg: Path, folder: Path, sumo_args: Sequence[str] = ()) -> list[str]:
    """The command that starts SUMO (no GUI) on ``sumocfg`` quietly, every output into ``folder``,
    with ``sumo_args`` last; an option they give replaces the quiet default of the same name (SUMO
    refuses an option given twice).

    A configuration made for SUMO's GUI may name a GUI settings file that is not there (the OSM
    wizard's ``osm.view.xml``): SUMO without its GUI would refuse to start for it, so it is unset.
    """
    given = {arg.split("=", 1)[0] for arg in sumo_args if arg.startswith("--")}
    defaults = {"--no-step-log": "true", "--no-warnings": "true", "--verbose": "false",
                "--duration-log.statistics": "false", "--gui-settings-file": ""}
    quiet = [part for name, value in defaults.items() if name not in given for part in (name, value)]
    return ["sumo", "-c", str(sumocfg), *quiet, "--output-prefix", output_prefix(folder), *sumo_args]


def import_libsumo() -> ModuleType:
    """SUMO's libsumo, imported.

    Raises:
        ImportError: libsumo is not installed (the message says how to install it).
    """
    try:
        import libsumo  # noqa: PLC0415 - SUMO is an extra; the rest of pilotage runs without it
    except ImportError as exc:
        raise ImportError(f"the closed loop needs SUMO's libsumo: {_SIM_EXTRA}") from exc
    return libsumo


def output_prefix(folder: Path) -> str:
    """SUMO's ``--output-prefix`` that sends every output file into ``folder``: SUMO puts it before
    the file name of an output path it has already resolved (against the configuration's folder,
    an additional file's, or the working one), so it climbs from any folder to the root and comes
    down into ``folder``."""
    return "../" * _ROOT_LEVELS + folder.resolve().as_posix().lstrip("/") + "/"


@dataclass
class Light:
    """One traffic light the engine drives: how its links map to its plan's signal groups, and what
    it shows now (a closed-loop run updates it at every step; times in s)."""

    tls: str
    plan: int
    link_group: np.ndarray
    green_char: list[str]
    # The characters of a phase whose green groups are exactly these (``green.tobytes()``).
    phase_chars: dict[bytes, str]
    amber_s: np.ndarray
    green: np.ndarray
    # When each group's amber ends, and since when it shows; NaN when it shows none.
    amber_until_s: np.ndarray
    amber_since_s: np.ndarray
    state: str = ""
    # SUMO's control type of its program (``static``, ``actuated``), and for an actuated one the
    # induction loops on its approaches, each with the groups whose links leave the loop's lane.
    control: str = "static"
    detectors: dict[str, tuple[int, ...]] = field(default_factory=dict)
    # The first link of each signal group, whose state is the group's.
    first_links: list[int] = field(default_factory=list)
    # Green intervals shown, in the order they started: [group, start, end] (end inf while green);
    # where each group's open one is (-1: none); the first that may still be within the monitor's
    # window (those before it ended earlier).
    shown: list[list[float]] = field(default_factory=list)
    open_at: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    recent_from: int = 0


@dataclass
class SumoNetwork:
    """The road network of the running simulation, as pilotage sees it, and the lights it drives."""

    network: RoadNetwork
    edge_ids: list[str]
    edge_index: dict[str, int]
    junction_ids: list[str]
    junction_index: dict[str, int]
    plans: list[IntersectionPlan]
    lights: list[Light]
    light_of_tls: dict[str, Light]
    geo: bool
    speed_classes_kph: dict[str, float]
    # The lights the engine does not drive (SUMO runs their programs), each with why; and the
    # control type of every light's program in the scenario.
    left_to_sumo: dict[str, str] = field(default_factory=dict)
    control_of_tls: dict[str, str] = field(default_factory=dict)


def read_network(libsumo: ModuleType, sumocfg: Path) -> SumoNetwork:
    """The road network and the traffic lights of the simulation ``libsumo`` has started on
    ``sumocfg``, as the module docstring reads them; first, SUMO's bus lanes are opened to its
    emergency vehicles (:func:`_open_bus_lanes_to_emergency_vehicles`).

    Raises:
        InvalidInputError: the scenario has no traffic light the engine can drive.
    """
    _open_bus_lanes_to_emergency_vehicles(libsumo)
    net_file = libsumo.simulation.getOption("net-file")
    geo = _is_geo_referenced(sumocfg.parent / net_file)
    junction_ids = [j for j in libsumo.junction.getIDList() if not j.startswith(":")]
    junction_index = {j: i for i, j in enumerate(junction_ids)}
    x_y = np.array([libsumo.junction.getPosition(j) for j in junction_ids])
    lon, lat = lon_lat(libsumo, x_y, geo)
    edge_ids, tail, head, length_m, speed_kph = [], [], [], [], []
    for edge in libsumo.edge.getIDList():
        if edge.startswith(":"):
            continue
        lanes = [lane for lane in (f"{edge}_{i}" for i in range(libsumo.edge.getLaneNumber(edge)))
                 if _open_to_emergency_vehicles(libsumo.lane.getAllowed(lane))]
        if not lanes:
            continue
        edge_ids.append(edge)
        tail.append(junction_index[libsumo.edge.getFromJunction(edge)])
        head.append(junction_index[libsumo.edge.getToJunction(edge)])
        length_m.append(libsumo.lane.getLength(lanes[0]))
        speed_kph.append(max(libsumo.lane.getMaxSpeed(lane) for lane in lanes) * 3.6)
    # Road classes by speed limit: an emergency vehicle's expected speed is its road's limit.
    classes = sorted({f"{round(kph)} km/h" for kph in speed_kph}, key=lambda name: float(name.split()[0]))
    class_index = {name: i for i, name in enumerate(classes)}
    tls_ids = list(libsumo.trafficlight.getIDList())
    signal_nodes, signal_label = [], []
    for label, tls in enumerate(tls_ids):
        for junction in libsumo.trafficlight.getControlledJunctions(tls):
            if junction in junction_index:
                signal_nodes.append(junction_index[junction])
                signal_label.append(label)
    network = RoadNetwork.from_edges(
        node_osmid=np.arange(len(junction_ids)), node_lon=lon, node_lat=lat, tail=np.array(tail), head=np.array(head),
        length_m=np.array(length_m), speed_kph=np.array(speed_kph),
        road_class=np.array([class_index[f"{round(kph)} km/h"] for kph in speed_kph]), road_classes=classes,
        edge_osmid=np.arange(len(edge_ids)), signal_nodes=np.array(signal_nodes, dtype=np.int64),
        signal_intersection=np.array(signal_label, dtype=np.int64),
        build_report={"source": str(sumocfg)})
    kept = {edge_ids[int(i)]: e for e, i in enumerate(network.edge_osmid)}
    intersections = network.intersections
    tls_of_intersection = {}
    for k in range(len(intersections)):
        node = int(network.node_osmid[intersections.signal_nodes(k)[0]])
        tls_of_intersection[int(intersections.ids[k])] = signal_label[signal_nodes.index(node)]
    plans: list[IntersectionPlan] = []
    lights: list[Light] = []
    left_to_sumo = {tls: _NOT_DRIVEN_TYPES.get(_control(libsumo, tls), _OFF_NETWORK)
                    for label, tls in enumerate(tls_ids) if label not in tls_of_intersection.values()}
    for intersection, label in sorted(tls_of_intersection.items()):
        try:
            plan, light = _light(libsumo, tls_ids[label], intersection, kept, len(plans))
        except (DataFileError, InvalidInputError) as exc:
            left_to_sumo[tls_ids[label]] = _reason(tls_ids[label], exc)
            continue
        plans.append(plan)
        lights.append(light)
    for tls, reason in left_to_sumo.items():
        logger.warning("traffic light %s is left to SUMO: %s", tls, reason)
    if not plans:
        raise InvalidInputError(f"{sumocfg} has no traffic light the engine can drive ({len(tls_ids)} in all; "
                                f"{_reasons(left_to_sumo)}); give a scenario with static or actuated traffic-light "
                                "programs on its road network", field="sumocfg")
    logger.info("%s: %d junctions, %d edges, %d of %d traffic lights driven", sumocfg.name, network.n_nodes,
                network.n_edges, len(lights), len(tls_ids))
    return SumoNetwork(network, [edge_ids[int(i)] for i in network.edge_osmid], kept, junction_ids, junction_index,
                        plans, lights,
                        {light.tls: light for light in lights}, geo,
                        {name: float(name.split()[0]) for name in classes}, left_to_sumo,
                        {tls: _control(libsumo, tls) for tls in tls_ids})


def _reason(tls: str, error: Exception) -> str:
    """Why traffic light ``tls`` cannot be driven, from ``error``, without repeating its name."""
    reason = str(error).removeprefix(f"traffic light {tls}: ")
    for named in (f"traffic light {tls!r} (program {libsumo_program!r})" for libsumo_program in ("0", "1")):
        reason = reason.replace(named, "its program")
    return reason.replace(f"intersection {tls}: ", "")


def _reasons(left_to_sumo: dict[str, str]) -> str:
    """How many lights are left to SUMO for each reason, the most frequent first."""
    counts = Counter(left_to_sumo.values())
    return "; ".join(f"{count} left to SUMO: {reason}" for reason, count in counts.most_common()) or "none left"


@dataclass(frozen=True)
class ScenarioNetwork:
    """What the engine drives in a SUMO scenario, as a closed-loop run
    (:func:`~pilotage.adapters.sumo.closed_loop.simulate`) reads it.

    Attributes:
        network: the road network (module docstring).
        plans: the plans of the traffic lights the engine can drive, their ids SUMO's.
        speed_classes_kph: the road classes (by speed limit) and an emergency vehicle's expected
            speed on each (km/h).
    """

    network: RoadNetwork
    plans: list[IntersectionPlan]
    speed_classes_kph: dict[str, float]


def read_scenario(sumocfg: str | Path) -> ScenarioNetwork:
    """The road network and traffic lights of the SUMO scenario ``sumocfg``, for an engine that
    serves it (``pilotage serve --sumocfg``): the same as a closed-loop run of it drives.

    Raises:
        DataFileError: no such file, or SUMO refuses the scenario.
        InvalidInputError: a scenario without a traffic light the engine can drive.
        ImportError: libsumo is not installed (the message says how to install it).
    """
    with loaded_scenario(sumocfg) as (libsumo, path):
        net = read_network(libsumo, path)
    return ScenarioNetwork(net.network, net.plans, net.speed_classes_kph)


@contextmanager
def loaded_scenario(sumocfg: str | Path) -> Iterator[tuple[ModuleType, Path]]:
    """SUMO started on the scenario ``sumocfg`` (a file or its folder), nothing simulated, its
    outputs sent to a folder thrown away; closed on exit. Yields libsumo and the configuration's path.

    Raises:
        DataFileError: no such scenario, or SUMO refuses it.
        ImportError: libsumo is not installed (the message says how to install it).
    """
    path = scenario_file(sumocfg)
    libsumo = import_libsumo()
    with tempfile.TemporaryDirectory(prefix="pilotage-read-") as folder:
        try:
            libsumo.start(sumo_command(path, Path(folder)))
        except Exception as exc:
            raise DataFileError(f"SUMO refused {path}: {exc}") from exc
        try:
            yield libsumo, path
        finally:
            libsumo.close()


def _light(libsumo: ModuleType, tls: str, intersection: int, edge_index: dict[str, int],
           plan_index: int) -> tuple[IntersectionPlan, Light]:
    """The plan and the light of traffic light ``tls``.

    Raises:
        DataFileError, InvalidInputError: its program cannot be driven (the message says why).
    """
    logic = _logic(libsumo, tls)
    control = _control(libsumo, tls)
    if control not in _DRIVEN_TYPES:
        raise InvalidInputError(_NOT_DRIVEN_TYPES.get(control, f"its control ({control}) is not modelled"),
                                field="type")
    phases = logic.phases
    actuated = control == "actuated"
    # An actuated phase's duration is where it starts before detectors move it: within its bounds.
    duration_s = [min(max(p.duration, _duration(p.minDur, p.duration)), _duration(p.maxDur, p.duration))
                  if actuated else p.duration for p in phases]
    # Where the cycle is now gives the offset SUMO runs the program at.
    position_s = sum(duration_s[:libsumo.trafficlight.getPhase(tls)]) + libsumo.trafficlight.getSpentDuration(tls)
    offset_s = (libsumo.simulation.getTime() - position_s) % sum(duration_s)
    plan = program_plan(tls, logic.programID, offset_s,
                        [(d, _duration(p.minDur, d), _duration(p.maxDur, d), p.state, p.next)
                         for d, p in zip(duration_s, phases, strict=True)], source=f"traffic light {tls}")
    links = libsumo.trafficlight.getControlledLinks(tls)
    link_group = np.full(len(links), -1, dtype=np.int64)
    for g, name in enumerate(plan.group_names):
        link_group[[int(link) for link in name.split("+")]] = g
    movements = {(edge_index[a], edge_index[b], int(link_group[i]))
                 for i, connections in enumerate(links) for a, b in
                 ((inbound.rsplit("_", 1)[0], outbound.rsplit("_", 1)[0]) for inbound, outbound, _ in connections)
                 if a in edge_index and b in edge_index}
    plan = dataclasses.replace(plan, id=intersection,
                               movements=np.array(sorted(movements), dtype=np.int64).reshape(-1, 3),
                               passage_s=_passage_s(libsumo, tls) if actuated else np.nan,
                               # SUMO's actuated programs run free unless coordinated.
                               keeps_cycle=not actuated or libsumo.trafficlight.getParameter(
                                   tls, "coordinated").lower() in ("true", "1"))
    states = [phase.state for phase in phases]
    green_char = ["g" if any(state[i] == "g" for state in states) else "G" for i in range(len(links))]
    first_links = [int(name.split("+")[0]) for name in plan.group_names]
    phase_chars = {}
    for state in reversed(states):
        phase_chars[np.array([state[link] in GREEN_STATES for link in first_links]).tobytes()] = state
    conflicts = plan.conflicts
    shortest_intergreen_s = np.where(conflicts.any(axis=1), np.nanmin(np.where(conflicts, plan.intergreen_s, np.inf),
                                                                       axis=1), np.inf)
    amber_s = np.minimum(_amber_s(plan, states, duration_s), shortest_intergreen_s)
    light = Light(tls, plan_index, link_group, green_char, phase_chars, amber_s,
                   green=np.zeros(plan.n_groups, dtype=np.bool_), amber_until_s=np.full(plan.n_groups, np.nan),
                   amber_since_s=np.full(plan.n_groups, np.nan), open_at=np.full(plan.n_groups, -1),
                   control=control, detectors=_detectors(libsumo, links, link_group) if actuated else {},
                   first_links=first_links)
    if actuated and not light.detectors:
        raise InvalidInputError("its program is actuated, but no induction loop lies on its approaches for "
                                "pilotage to read", field="detectors")
    return plan, light


def _logic(libsumo: ModuleType, tls: str) -> Any:
    """The program traffic light ``tls`` runs (SUMO's ``TraCILogic``)."""
    program_id = libsumo.trafficlight.getProgram(tls)
    return next(logic for logic in libsumo.trafficlight.getAllProgramLogics(tls) if logic.programID == program_id)


def _control(libsumo: ModuleType, tls: str) -> str:
    """SUMO's control type of the program traffic light ``tls`` runs."""
    kind = _logic(libsumo, tls).type
    return _CONTROL_TYPES.get(kind, f"type {kind}")


def _passage_s(libsumo: ModuleType, tls: str) -> float:
    """The passage time of an actuated traffic light: its ``max-gap`` parameter, or SUMO's default."""
    given = libsumo.trafficlight.getParameter(tls, "max-gap")
    try:
        return float(given) if given else _SUMO_MAX_GAP_S
    except ValueError:
        raise InvalidInputError(f"expected a number of seconds for its max-gap, got {given!r}",
                                field="max-gap") from None


def _detectors(libsumo: ModuleType, links: list[list[tuple[str, str, str]]],
               link_group: np.ndarray) -> dict[str, tuple[int, ...]]:
    """The induction loops on the lanes entering a light (those SUMO places for an actuated program,
    and the scenario's own), and the signal groups of the links from each loop's lane."""
    groups_of_lane: dict[str, set[int]] = {}
    for i, connections in enumerate(links):
        for inbound, _, _ in connections:
            if link_group[i] >= 0:
                groups_of_lane.setdefault(inbound, set()).add(int(link_group[i]))
    return {loop: tuple(sorted(groups_of_lane[lane])) for loop in libsumo.inductionloop.getIDList()
            if (lane := libsumo.inductionloop.getLaneID(loop)) in groups_of_lane}


def _duration(value: float, default: float) -> float:
    # SUMO gives -1 (or a huge number) for a minDur or maxDur a phase does not set.
    return value if 0 <= value < 1e6 else default


def _amber_s(plan: IntersectionPlan, states: list[str], duration_s: list[float]) -> np.ndarray:
    """The shortest amber the program shows after each group's green (0 when none)."""
    amber = np.full(plan.n_groups, np.inf)
    for g, name in enumerate(plan.group_names):
        link = int(name.split("+")[0])
        for p in range(len(states)):
            if states[p - 1][link] in GREEN_STATES and states[p][link] in AMBER_STATES:
                run_s, q = 0.0, p
                while states[q % len(states)][link] in AMBER_STATES and run_s < sum(duration_s):
                    run_s += duration_s[q % len(states)]
                    q += 1
                amber[g] = min(amber[g], run_s)
    return np.where(np.isfinite(amber), amber, 0.0)


def _open_bus_lanes_to_emergency_vehicles(libsumo: ModuleType) -> None:
    """Let SUMO's emergency vehicles take every lane reserved for buses (those within junctions
    included, so that they may turn from one to another), as traffic codes let a vehicle on an
    emergency call do: the other lanes keep SUMO's permissions."""
    opened = 0
    for lane in libsumo.lane.getIDList():
        allowed = libsumo.lane.getAllowed(lane)
        if "bus" in allowed and "emergency" not in allowed:
            libsumo.lane.setAllowed(lane, [*allowed, "emergency"])
            opened += 1
    if opened:
        logger.info("%d bus lanes opened to emergency vehicles", opened)


def _open_to_emergency_vehicles(allowed: tuple[str, ...]) -> bool:
    """Whether SUMO lets an emergency vehicle take a lane open to the classes ``allowed`` (none: all)."""
    return not allowed or "emergency" in allowed


def _is_geo_referenced(net_file: Path) -> bool:
    try:
        for _, element in ET.iterparse(net_file, events=("start",)):
            if element.tag == "location":
                return element.get("projParameter", "!") != "!"
    except (OSError, ET.ParseError):
        return False
    return False


def lon_lat(libsumo: ModuleType, x_y: np.ndarray, geo: bool) -> tuple[np.ndarray, np.ndarray]:
    """Degrees of each (x, y) in m: SUMO's projection, or, for a network without one, a flat frame
    at (0°, 0°) where a degree is 111,195 m both ways (so distances stay right)."""
    if geo:
        lon_lat = np.array([libsumo.simulation.convertGeo(float(x), float(y)) for x, y in x_y])
        return lon_lat[:, 0], lon_lat[:, 1]
    return x_y[:, 0] / 111_195.0, x_y[:, 1] / 111_195.0

