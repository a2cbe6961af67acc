"""A solution written out: the JSON document a planner reads, and GeoJSON for a map.

Both work for a job on the road network (:class:`JobProblem`: the job's ids, clock times, road
paths) and for a standard instance (a bare :class:`Problem`: node labels, straight lines).
"""

from __future__ import annotations

import itertools
from typing import Any

from pilotage.routing.check import Feasibility
from pilotage.routing.jobs import JobProblem, clock_of
from pilotage.routing.problem import Problem
from pilotage.routing.solution import Solution


def _problem(source: Problem | JobProblem) -> Problem:
    return source.problem if isinstance(source, JobProblem) else source


def solution_document(source: Problem | JobProblem, solution: Solution, feasibility: Feasibility,
                      *, search: dict[str, Any] | None = None) -> dict[str, Any]:
    """The solution as JSON-ready data: totals (costs in the job's ``currency``), the check's verdict,
    and per vehicle its figures (idle time among them) and its visits with arrival, start and end of
    service (s since midnight and ``HH:MM:SS`` for jobs), waits and load.

    ``search`` (time limit, seed, heuristics) is reported beside the solver's status.
    """
    p = _problem(source)
    job = source if isinstance(source, JobProblem) else None
    routes = []
    for route, figures in zip(solution.routes, feasibility.routes, strict=True):
        if not route.used:
            continue
        v = route.vehicle
        visits, load = [], 0
        pauses = [(start, start + duration) for start, (_, _, duration) in
                  zip(route.break_start_s.tolist(), p.breaks(v), strict=True)]
        previous_end, previous = route.depart_s, int(p.start_depot[v])
        for node, start in zip(route.nodes.tolist(), route.start_s.tolist(), strict=True):
            load += int(p.demand[node])
            # A break on the way delays the arrival: it is not a wait at the stop.
            paused = sum(max(0, min(b, start) - max(a, previous_end)) for a, b in pauses)
            arrival = min(start, previous_end + int(p.duration_s[previous, node]) + paused)
            end = start + int(p.service_s[node])
            visit: dict[str, Any] = {"id": p.labels[node], "arrival_s": arrival, "start_s": start, "end_s": end,
                                     "wait_s": max(0, start - arrival), "load": load}
            if job is not None:
                info = job.info[node]
                visit["id"] = info.id
                visit["kind"] = info.kind
                if info.segment is not None:
                    visit["from"], visit["to"] = info.segment
                visit.update(arrival=clock_of(arrival), start=clock_of(start), end=clock_of(end))
            visits.append(visit)
            previous_end, previous = end, node
        entry: dict[str, Any] = {
            "vehicle": p.vehicle_labels[v], "depart_s": route.depart_s, "return_s": route.return_s,
            "distance": figures.distance, "duration_s": figures.duration_s, "idle_s": figures.idle_s,
            "load": figures.load,
            "cost": round(figures.cost, 4), "visits": visits,
            "breaks": [{"start_s": int(s), "duration_s": duration}
                       for s, (_, _, duration) in zip(route.break_start_s.tolist(), p.breaks(v), strict=True)]}
        if job is not None:
            entry.update(depart=clock_of(route.depart_s), **{"return": clock_of(route.return_s)})
            for pause in entry["breaks"]:
                pause["start"] = clock_of(pause["start_s"])
        routes.append(entry)
    unassigned = [_visit_id(source, visit) for visit in solution.unassigned.tolist()]
    return {
        "name": p.name,
        "feasible": feasibility.feasible,
        "violations": list(feasibility.violations),
        "cost": round(feasibility.cost, 4),
        "currency": job.job.currency if job is not None else None,
        "distance": feasibility.distance,
        "distance_unit": "m" if job is not None else "instance",
        "duration_s": sum(f.duration_s for f in feasibility.routes),
        "vehicles_used": solution.vehicles_used,
        "unassigned": unassigned,
        "solver": {"status": solution.status, "runtime_s": round(solution.runtime_s, 3),
                   "solutions_found": solution.solutions_found, "objective": solution.cost, **(search or {})},
        "routes": routes,
    }


def solution_geojson(source: Problem | JobProblem, solution: Solution, feasibility: Feasibility) -> dict[str, Any]:
    """A GeoJSON FeatureCollection: per vehicle its driven path (``kind: route``), the streets it
    sweeps (``service``) and its stops (``stop``); depots and visits left out. Coordinates are
    lon/lat for jobs, the instance's plane otherwise."""
    p = _problem(source)
    job = source if isinstance(source, JobProblem) else None
    features: list[dict[str, Any]] = []
    for d in range(p.n_depots):
        features.append(_point(p.x[d], p.y[d], kind="depot", label=p.labels[d]))
    for route, figures in zip(solution.routes, feasibility.routes, strict=True):
        if not route.used:
            continue
        v = route.vehicle
        name = p.vehicle_labels[v]
        sequence = [int(p.start_depot[v]), *route.nodes.tolist(), int(p.end_depot[v])]
        path: list[tuple[float, float]] = []
        load = 0
        for order, (tail, head) in enumerate(itertools.pairwise(sequence)):
            leg = job.leg(tail, head) if job is not None else [(p.x[tail], p.y[tail]), (p.x[head], p.y[head])]
            path.extend(leg if not path else leg[1:])
            if head < p.n_depots:
                continue
            load += int(p.demand[head])
            start = int(route.start_s[order])
            label = job.info[head].id if job is not None else p.labels[head]
            if job is not None and job.info[head].kind == "street":
                segment = job.service(head)
                path.extend(segment[1:])
                features.append(_line(segment, kind="service", vehicle=name, label=label))
            else:
                features.append(_point(p.x[head], p.y[head], kind="stop", vehicle=name, label=label, order=order + 1,
                                       start=clock_of(start), load=load))
        features.append(_line(path, kind="route", vehicle=name, distance=figures.distance,
                              duration_s=figures.duration_s, load=figures.load, visits=int(route.nodes.size),
                              cost=round(figures.cost, 4)))
    for visit in solution.unassigned.tolist():
        node = int(p.alternatives(visit)[0])
        features.append(_point(p.x[node], p.y[node], kind="unassigned", label=_visit_id(source, visit)))
    return {"type": "FeatureCollection", "features": features}


def _visit_id(source: Problem | JobProblem, visit: int) -> str:
    p = _problem(source)
    node = int(p.alternatives(visit)[0])
    return source.info[node].id if isinstance(source, JobProblem) else p.labels[node]


def _point(x: float, y: float, **properties: Any) -> dict[str, Any]:
    return {"type": "Feature", "geometry": {"type": "Point", "coordinates": [float(x), float(y)]},
            "properties": properties}


def _line(coordinates: list[tuple[float, float]], **properties: Any) -> dict[str, Any]:
    return {"type": "Feature", "geometry": {"type": "LineString",
                                            "coordinates": [[float(x), float(y)] for x, y in coordinates]},
            "properties": properties}
