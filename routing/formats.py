"""The field's standard instance files, read into a :class:`Problem`, to compare with published results.

Objective conventions (the published best-known solutions follow them):

- **Solomon** (VRPTW, 100 customers): the fleet and its capacity from the file; Euclidean distances
  *not* rounded, travel time equal to distance; service starts inside the customer's window; the
  objective is the total distance alone (not vehicles first). Distances and times are kept as
  integers of 1/1000 (``distance_scale = 1000``), which changes a 100-customer total by less than
  0.05 units.
- **VRPLIB** (CVRP, e.g. CVRPLIB X): ``EUC_2D`` distances rounded to the nearest integer (TSPLIB's
  ``nint``), or an ``EXPLICIT`` matrix; the fleet is unlimited, so it is given the file's
  ``VEHICLES``, else the minimum by capacity plus a fifth; the objective is the total distance.
- **CARP** (Belenguer's format: gdb, val, egl): every required edge is served once, in either
  direction; the objective is the total traversal cost, service included (``COSTE_TOTAL_REQ`` plus
  deadheading); the fleet is unlimited, given ``VEHICULOS`` plus a half.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import shortest_path

from pilotage.core.errors import DataFileError, InvalidInputError
from pilotage.routing.arcs import ArcTask, layout, per_node
from pilotage.routing.problem import Fleet, Problem, no_breaks, single_windows

#: The formats ``read_instance`` knows.
FORMATS = ("solomon", "vrplib", "carp")

_SOLOMON_SCALE = 1000
_NUMBER = r"[-+]?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?"


def read_instance(path: str | os.PathLike[str], instance_format: str) -> Problem:
    """Read a standard instance file (``instance_format`` in :data:`FORMATS`).

    Raises:
        InvalidInputError: an unknown format.
        DataFileError: the file is missing or not in that format; the message names the line.
    """
    readers = {"solomon": read_solomon, "vrplib": read_vrplib, "carp": read_carp}
    if instance_format not in readers:
        raise InvalidInputError(f"expected a format in {FORMATS}, got {instance_format!r}", field="format")
    return readers[instance_format](path)


def read_solomon(path: str | os.PathLike[str]) -> Problem:
    """A Solomon VRPTW file: its depot (customer 0), customers, fleet size and capacity."""
    lines = _lines(path)
    try:
        vehicles_at = next(i for i, line in enumerate(lines) if line.strip().upper().startswith("NUMBER"))
        n_vehicles, capacity = (int(v) for v in lines[vehicles_at + 1].split()[:2])
        rows = [line.split() for line in lines[vehicles_at + 2:]]
        table = np.array([[float(v) for v in row] for row in rows if len(row) == 7 and row[0].isdigit()])
    except (StopIteration, ValueError, IndexError) as error:
        raise DataFileError(f"{path}: expected a Solomon file (NUMBER CAPACITY, then 7 columns per customer "
                            f"from customer 0, the depot): {error}") from None
    if table.size == 0 or table[0, 0] != 0:
        raise DataFileError(f"{path}: expected customer rows from 0 (the depot), found none")
    x, y = table[:, 1], table[:, 2]
    exact = np.hypot(x[:, None] - x[None, :], y[:, None] - y[None, :])
    distance = np.rint(exact * _SOLOMON_SCALE).astype(np.int64)
    n = table.shape[0]
    windows = single_windows(np.rint(table[1:, 4] * _SOLOMON_SCALE), np.rint(table[1:, 5] * _SOLOMON_SCALE))
    window_ptr = np.concatenate(([0], windows[0]))
    return Problem(
        name=Path(path).stem, labels=tuple(str(int(c)) for c in table[:, 0]), x=x, y=y, geographic=False,
        n_depots=1, duration_s=distance, distance=distance,
        service_s=np.rint(table[:, 6] * _SOLOMON_SCALE), service_distance=np.zeros(n), demand=table[:, 3],
        window_ptr=window_ptr, window_open_s=windows[1], window_close_s=windows[2], skills=np.zeros(n),
        visit_ptr=np.arange(n), visit_nodes=np.arange(1, n), penalty=np.full(n - 1, np.inf),
        **_fleet(n_vehicles, capacity, shift_end=round(table[0, 5] * _SOLOMON_SCALE),
                 distance_cost=1.0 / _SOLOMON_SCALE),
        distance_scale=_SOLOMON_SCALE)


def read_vrplib(path: str | os.PathLike[str]) -> Problem:
    """A VRPLIB (TSPLIB-style) CVRP file: ``EUC_2D`` coordinates or an ``EXPLICIT FULL_MATRIX``,
    demands, one depot; optional ``SERVICE_TIME_SECTION`` and ``TIME_WINDOW_SECTION``."""
    lines = _lines(path)
    spec: dict[str, str] = {}
    sections: dict[str, list[list[str]]] = {}
    current: list[list[str]] | None = None
    for line in lines:
        text = line.strip()
        if not text or text == "EOF":
            continue
        head = text.split()[0]
        if head.endswith("_SECTION"):
            current = sections.setdefault(head, [])
            continue
        if ":" in text and not re.match(_NUMBER, text):
            key, value = text.split(":", 1)
            spec[key.strip().upper()] = value.strip().strip('"')
            current = None
        elif current is not None:
            current.append(text.split())
    try:
        n = int(spec["DIMENSION"])
        capacity = int(spec["CAPACITY"])
        demand = _section(sections, "DEMAND_SECTION", n)[:, 0]
        depots = [int(row[0]) for row in sections.get("DEPOT_SECTION", [["1"]]) if int(row[0]) > 0]
    except (KeyError, ValueError) as error:
        raise DataFileError(f"{path}: expected a VRPLIB CVRP file with DIMENSION, CAPACITY, DEMAND_SECTION "
                            f"and DEPOT_SECTION: {error}") from None
    if depots != [1]:
        raise DataFileError(f"{path}: expected one depot, node 1, got {depots}")
    weight_type = spec.get("EDGE_WEIGHT_TYPE", "EUC_2D")
    if weight_type == "EUC_2D":
        coords = _section(sections, "NODE_COORD_SECTION", n)
        x, y = coords[:, 0], coords[:, 1]
        distance = np.rint(np.hypot(x[:, None] - x[None, :], y[:, None] - y[None, :])).astype(np.int64)
    elif weight_type == "EXPLICIT" and spec.get("EDGE_WEIGHT_FORMAT") == "FULL_MATRIX":
        values = np.array([float(v) for row in sections.get("EDGE_WEIGHT_SECTION", []) for v in row])
        if values.size != n * n:
            raise DataFileError(f"{path}: expected {n * n} weights in EDGE_WEIGHT_SECTION, got {values.size}")
        distance = np.rint(values.reshape(n, n)).astype(np.int64)
        x, y = np.cos(np.linspace(0, 2 * np.pi, n)), np.sin(np.linspace(0, 2 * np.pi, n))
    else:
        raise DataFileError(f"{path}: expected EDGE_WEIGHT_TYPE EUC_2D or EXPLICIT FULL_MATRIX, got {weight_type}")
    if "VEHICLES" in spec:
        n_vehicles = int(spec["VEHICLES"])
    else:
        least = math.ceil(demand.sum() / capacity)
        n_vehicles = least + max(2, least // 5)
    service = (_section(sections, "SERVICE_TIME_SECTION", n)[:, 0] if "SERVICE_TIME_SECTION" in sections
               else np.zeros(n))
    if "TIME_WINDOW_SECTION" in sections:
        tw = _section(sections, "TIME_WINDOW_SECTION", n)
        window_ptr, window_open, window_close = single_windows(tw[1:, 0], tw[1:, 1])
        window_ptr = np.concatenate(([0], window_ptr))
        shift_end = int(tw[0, 1])
    else:
        window_ptr, window_open, window_close = np.zeros(n + 1), np.empty(0), np.empty(0)
        # No limit: longer than any route can be.
        shift_end = int(service.sum()) + n * int(distance.max()) + 1
    return Problem(
        name=spec.get("NAME", Path(path).stem), labels=tuple(str(i) for i in range(1, n + 1)), x=x, y=y,
        geographic=False, n_depots=1, duration_s=distance, distance=distance, service_s=service,
        service_distance=np.zeros(n), demand=demand, window_ptr=window_ptr, window_open_s=window_open,
        window_close_s=window_close, skills=np.zeros(n), visit_ptr=np.arange(n), visit_nodes=np.arange(1, n),
        penalty=np.full(n - 1, np.inf), **_fleet(n_vehicles, capacity, shift_end=shift_end, distance_cost=1.0))


_CARP_EDGE = re.compile(r"\(\s*(\d+)\s*,\s*(\d+)\s*\)\s*coste\s+(" + _NUMBER + r")(?:\s+demanda\s+(" + _NUMBER + r"))?",
                        re.IGNORECASE)


def read_carp(path: str | os.PathLike[str]) -> Problem:
    """A CARP file in Belenguer's format (gdb, val, egl): required and non-required edges, their
    costs and demands, the depot, vehicles and capacity."""
    lines = _lines(path)
    spec: dict[str, str] = {}
    edges: list[tuple[int, int, float, float]] = []
    for number, line in enumerate(lines, start=1):
        found = _CARP_EDGE.search(line)
        if found:
            u, v, cost, demand = found.groups()
            edges.append((int(u) - 1, int(v) - 1, float(cost), float(demand or 0)))
        elif ":" in line:
            key, value = line.split(":", 1)
            spec[key.strip().upper()] = value.strip()
        elif line.strip() and not line.strip().upper().startswith("LISTA"):
            raise DataFileError(f"{path}, line {number}: expected 'KEY : value' or '( u, v) coste c demanda d', "
                                f"got {line.strip()!r}")
    try:
        n_vertices = int(spec["VERTICES"])
        n_required = int(spec["ARISTAS_REQ"])
        capacity = int(spec["CAPACIDAD"])
        n_vehicles = int(spec["VEHICULOS"])
        depot = int(spec.get("DEPOSITO", "1")) - 1
    except (KeyError, ValueError) as error:
        raise DataFileError(f"{path}: expected VERTICES, ARISTAS_REQ, VEHICULOS, CAPACIDAD as integers: "
                            f"{error}") from None
    required = [edge for edge in edges if edge[3] > 0]
    if len(required) != n_required:
        raise DataFileError(f"{path}: ARISTAS_REQ says {n_required} required edges, found {len(required)} "
                            "with a demand")
    tails = np.array([e[0] for e in edges] + [e[1] for e in edges])
    heads = np.array([e[1] for e in edges] + [e[0] for e in edges])
    costs = np.array([e[2] for e in edges] * 2)
    graph = csr_matrix((costs, (tails, heads)), shape=(n_vertices, n_vertices))
    vertex_cost = shortest_path(graph, method="D", directed=True)
    if not np.isfinite(vertex_cost).all():
        raise DataFileError(f"{path}: expected a connected graph, some vertices cannot be reached")
    vertex_cost = np.rint(vertex_cost).astype(np.int64)
    tasks = [ArcTask(label=f"({u + 1},{v + 1})", directions=((u, v), (v, u)), service_s=round(cost),
                     service_distance=round(cost), demand=round(demand)) for u, v, cost, demand in required]
    nodes = layout([depot], [], tasks)
    distance = nodes.between(vertex_cost)
    n = nodes.enter.size
    # Circle layout: the files have no coordinates; a map still shows the rounds' structure.
    angle = 2 * np.pi * np.arange(n_vertices) / n_vertices
    mid_x = (np.cos(angle)[nodes.enter] + np.cos(angle)[nodes.leave]) / 2
    mid_y = (np.sin(angle)[nodes.enter] + np.sin(angle)[nodes.leave]) / 2
    shift_end = int(per_node(tasks, "service_s").sum()) + n * int(distance.max()) + 1  # no limit
    service = np.concatenate(([0], per_node(tasks, "service_s")))
    return Problem(
        name=spec.get("NOMBRE", Path(path).stem), labels=("depot", *(t.label for t in tasks for _ in t.directions)),
        x=mid_x, y=mid_y, geographic=False, n_depots=1, duration_s=distance, distance=distance,
        service_s=service, service_distance=service, demand=np.concatenate(([0], per_node(tasks, "demand"))),
        window_ptr=np.zeros(n + 1), window_open_s=np.empty(0), window_close_s=np.empty(0), skills=np.zeros(n),
        visit_ptr=nodes.visit_ptr, visit_nodes=nodes.visit_nodes, penalty=np.full(len(tasks), np.inf),
        **_fleet(n_vehicles + max(2, n_vehicles // 2), capacity, shift_end=shift_end, distance_cost=1.0))


def _fleet(n_vehicles: int, capacity: int, *, shift_end: int, distance_cost: float) -> Fleet:
    k = n_vehicles
    return {"vehicle_labels": tuple(f"vehicle {v + 1}" for v in range(k)), "start_depot": np.zeros(k),
            "end_depot": np.zeros(k), "capacity": np.full(k, capacity), "shift_start_s": np.zeros(k),
            "shift_end_s": np.full(k, shift_end), **no_breaks(k), "vehicle_skills": np.zeros(k),
            "fixed_cost": np.zeros(k), "distance_cost": np.full(k, distance_cost), "time_cost_per_s": np.zeros(k)}


def _section(sections: dict[str, list[list[str]]], name: str, n: int) -> np.ndarray:
    rows = sections.get(name)
    if rows is None or len(rows) != n:
        raise DataFileError(f"expected {n} rows in {name}, got {0 if rows is None else len(rows)}")
    return np.array([[float(v) for v in row[1:]] for row in rows])


def _lines(path: str | os.PathLike[str]) -> list[str]:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as error:
        raise DataFileError(f"cannot read {path}: {error.strerror}; check the path") from None
