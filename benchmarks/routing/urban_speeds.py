"""Calibrates the routing engine's urban speed model (``pilotage.routing.speeds``) against SUMO on
the embedded city, and checks it on the road network the routing plans on.

    python benchmarks/routing/urban_speeds.py [--seed 42] [--json FILE]

1. Runs the embedded city's SUMO scenario (``pilotage.adapters.sumo.scenario.city_scenario``: the
   peak hour, coordinated signals, about 3,000 car trips) with each vehicle's route and the time
   it leaves each edge (``--vehroute-output.exit-times``).
2. Fits the model by least squares over every traversal of a whole edge by a passenger car that
   was not teleported (the first and last edges of a trip are partial and left out): the edge's
   time is ``a_group x length / limit + signal_delay x [it ends at a traffic light] +
   junction_delay x [it ends at another junction of three or more neighbours]``, with ``a`` per
   group of road classes (motorways, arterials, local streets); the share of the limit is 1 / a.
3. Checks the fitted model end to end on pilotage's road network of the same OSM file: for each
   trip, from the junction where it leaves its first edge to the one where it enters its last (the
   SUMO junction ids are the OSM node ids), the fastest path's time under the maxspeed tags alone
   and under the model, against the time SUMO measured.
4. Measures the speeds of city-centre runs: the stretches of trips of more than 1 km between
   junctions within 1 km of the centre, as SUMO drove them and as the model gives them.

Prints the figures docs/routing.md quotes; ``--json`` writes them.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pilotage.adapters.osm import load_network
from pilotage.adapters.sumo.scenario import city_scenario
from pilotage.core import RoadNetwork
from pilotage.core.errors import UnknownEntityError
from pilotage.routing.speeds import UrbanSpeeds, edge_travel_time_s, with_travel_times

#: The groups of road classes, each with its own share of the limit; other classes are local.
GROUPS = {"motorway": ("motorway", "motorway_link", "trunk", "trunk_link"),
          "arterial": ("primary", "primary_link", "secondary", "secondary_link")}
LOCAL = "local"
#: The city centre and the radius of its runs (lon, lat in degrees; m), as in examples/make_city_jobs.py.
CENTRE = (6.1300, 49.6110)
CENTRE_RADIUS_M = 1000.0
MIN_CENTRE_RUN_M = 1000.0
CAR_TYPE = "DEFAULT_VEHTYPE"
COLUMNS = (*GROUPS, LOCAL, "signal", "junction")


@dataclass(frozen=True)
class Edge:
    """A SUMO edge: its junctions, the OSM class of its road, its speed limit (m/s) and length (m)."""

    tail: str
    head: str
    road_class: str
    limit_m_s: float
    length_m: float


@dataclass(frozen=True)
class Trip:
    """A car's trip: its edges and the time it left each (s)."""

    edges: list[str]
    exit_s: list[float]


def group_of(road_class: str) -> str:
    """The group of an OSM road class."""
    return next((group for group, classes in GROUPS.items() if road_class in classes), LOCAL)


def simulate(seed: int, folder: Path) -> tuple[Path, dict[str, Edge], dict[str, str], list[Trip]]:
    """Run the scenario once; its network file, its edges, junction types and the cars' trips."""
    import sumo  # noqa: PLC0415 - SUMO is an extra: this script needs it, pilotage does not

    scenario = city_scenario(seed=seed)
    tripinfo, vehroutes = folder / "tripinfo.xml", folder / "vehroutes.xml"
    done = subprocess.run([str(Path(sumo.SUMO_HOME) / "bin" / "sumo"), "-c", str(scenario.sumocfg),
                           "--tripinfo-output", str(tripinfo), "--vehroute-output", str(vehroutes),
                           "--vehroute-output.exit-times", "true", "--no-step-log", "true"],
                          capture_output=True, text=True, check=True)
    teleported = set(re.findall(r"Teleporting vehicle '([^']+)'", done.stderr))
    cars = {element.get("id") for _, element in ET.iterparse(tripinfo)
            if element.tag == "tripinfo" and element.get("vType") == CAR_TYPE} - teleported
    edges: dict[str, Edge] = {}
    junctions: dict[str, str] = {}
    for _, element in ET.iterparse(scenario.net):
        if element.tag == "edge" and element.get("function") != "internal":
            lane = element.find("lane")
            assert lane is not None
            edges[str(element.get("id"))] = Edge(str(element.get("from")), str(element.get("to")),
                                                 str(element.get("type", "")).removeprefix("highway."),
                                                 float(lane.get("speed", "nan")), float(lane.get("length", "nan")))
        elif element.tag == "junction" and element.get("type") != "internal":
            junctions[str(element.get("id"))] = str(element.get("type"))
    trips = []
    for _, element in ET.iterparse(vehroutes):
        route = element.find("route") if element.tag == "vehicle" else None
        if route is not None and element.get("id") in cars:
            trips.append(Trip(str(route.get("edges")).split(), [float(t) for t in str(route.get("exitTimes")).split()]))
    return scenario.net, edges, junctions, trips


def features(edges: dict[str, Edge], junctions: dict[str, str]) -> dict[str, np.ndarray]:
    """Each edge's row of the model: its time at the limit in its group's column, and whether it
    ends at a traffic light or at another junction of three or more neighbours."""
    neighbours: dict[str, set[str]] = defaultdict(set)
    for edge in edges.values():
        if edge.tail != edge.head:
            neighbours[edge.tail].add(edge.head)
            neighbours[edge.head].add(edge.tail)
    rows = {}
    for name, edge in edges.items():
        row = np.zeros(len(COLUMNS))
        row[COLUMNS.index(group_of(edge.road_class))] = edge.length_m / edge.limit_m_s
        if junctions.get(edge.head) == "traffic_light":
            row[COLUMNS.index("signal")] = 1.0
        elif len(neighbours[edge.head]) >= 3:
            row[COLUMNS.index("junction")] = 1.0
        rows[name] = row
    return rows


def fit(trips: list[Trip], rows: dict[str, np.ndarray]) -> tuple[UrbanSpeeds, dict[str, float], int]:
    """The model fitted on every whole edge of the trips; its coefficients, and the traversals used."""
    x = np.array([rows[edge] for trip in trips for edge in trip.edges[1:-1]])
    y = np.array([trip.exit_s[i] - trip.exit_s[i - 1] for trip in trips for i in range(1, len(trip.edges) - 1)])
    coefficients, *_ = np.linalg.lstsq(x, y, rcond=None)
    fitted = dict(zip(COLUMNS, coefficients.tolist(), strict=True))
    shares = {road_class: 1.0 / fitted[group] for group, classes in GROUPS.items() for road_class in classes}
    model = UrbanSpeeds(limit_share=shares, default_share=1.0 / fitted[LOCAL], signal_delay_s=fitted["signal"],
                        junction_delay_s=fitted["junction"])
    return model, fitted, int(y.size)


def check_on_network(network: RoadNetwork, model: UrbanSpeeds, trips: list[Trip],
                     edges: dict[str, Edge]) -> dict[str, Any]:
    """The fastest-path times of pilotage's network, at the limits and under ``model``, against SUMO's."""
    urban = with_travel_times(network, edge_travel_time_s(network, model), "calibration")
    pairs, measured = [], []
    for trip in trips:
        if len(trip.edges) < 3:
            continue
        try:
            pairs.append((network.node_index(int(edges[trip.edges[0]].head)),
                          network.node_index(int(edges[trip.edges[-2]].head))))
        except (UnknownEntityError, ValueError):
            continue  # a junction netconvert joined from several OSM nodes
        measured.append(trip.exit_s[-2] - trip.exit_s[0])
    sumo_s = np.array(measured)
    result: dict[str, Any] = {"trips": len(pairs), "sumo_total_h": float(sumo_s.sum() / 3600)}
    for name, net in (("limits", network), ("model", urban)):
        predicted_s = np.array([net.matrix([a], [b], workers=1)[0, 0] for a, b in pairs])
        ratio = sumo_s / predicted_s
        result[name] = {"total_ratio": float(sumo_s.sum() / predicted_s.sum()), "median_ratio": float(np.median(ratio)),
                        "mean_abs_error_percent": float(100 * np.mean(np.abs(predicted_s - sumo_s) / sumo_s))}
    return result


def centre_runs(network: RoadNetwork, fitted: dict[str, float], trips: list[Trip], edges: dict[str, Edge],
                rows: dict[str, np.ndarray]) -> dict[str, Any]:
    """Speeds (km/h) of the runs of trips within the centre: as SUMO drove them, as the fitted
    coefficients give them."""
    lon0, lat0 = CENTRE
    inside = set()
    for junction in {e.head for e in edges.values()} | {e.tail for e in edges.values()}:
        try:
            node = network.node_index(int(junction))
        except (UnknownEntityError, ValueError):
            continue
        dx = (network.node_lon[node] - lon0) * 111_320 * np.cos(np.radians(lat0))
        dy = (network.node_lat[node] - lat0) * 110_540
        if np.hypot(dx, dy) < CENTRE_RADIUS_M:
            inside.add(junction)
    coefficients = np.array([fitted[column] for column in COLUMNS])
    sumo_kph, model_kph = [], []
    for trip in trips:
        i = 1
        while i < len(trip.edges) - 1:
            j, length_m, row = i, 0.0, np.zeros(len(COLUMNS))
            while j < len(trip.edges) - 1 and {edges[trip.edges[j]].tail, edges[trip.edges[j]].head} <= inside:
                length_m += edges[trip.edges[j]].length_m
                row += rows[trip.edges[j]]
                j += 1
            if length_m > MIN_CENTRE_RUN_M:
                sumo_kph.append(3.6 * length_m / (trip.exit_s[j - 1] - trip.exit_s[i - 1]))
                model_kph.append(3.6 * length_m / float(row @ coefficients))
            i = j + 1 if j == i else j
    return {"runs": len(sumo_kph), "sumo_kph": _quartiles(sumo_kph), "model_kph": _quartiles(model_kph)}


def _quartiles(values: list[float]) -> dict[str, float]:
    q1, median, q3 = np.percentile(values, (25, 50, 75)).round(1).tolist()
    return {"q1": q1, "median": median, "q3": q3}


def calibrate(seed: int = 42) -> dict[str, Any]:
    """Every figure of the calibration (the module docstring)."""
    with tempfile.TemporaryDirectory() as folder:
        _, edges, junctions, trips = simulate(seed, Path(folder))
    rows = features(edges, junctions)
    model, fitted, traversals = fit(trips, rows)
    network = load_network()
    return {"seed": seed, "cars": len(trips), "traversals": traversals,
            "coefficients": fitted,
            "model": {"share_motorway": model.share("motorway"), "share_arterial": model.share("primary"),
                      "share_local": model.default_share, "signal_delay_s": model.signal_delay_s,
                      "junction_delay_s": model.junction_delay_s},
            "network_check": check_on_network(network, model, trips, edges),
            "centre": centre_runs(network, fitted, trips, edges, rows)}


def main(argv: list[str] | None = None) -> int:
    """Run the calibration and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=42, help="the scenario's seed (default 42, the cached one)")
    parser.add_argument("--json", metavar="FILE", help="write every figure there")
    args = parser.parse_args(argv)
    figures = calibrate(args.seed)
    print(json.dumps(figures, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
