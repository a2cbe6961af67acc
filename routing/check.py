"""The feasibility check: every solution re-verified from the problem alone, never from the solver.

It replays each route in plain Python: what is served and by whom, the loads, the travel and
service times, the waits, the time windows, the shifts and the breaks (each taken during the
work: after leaving the depot, before being back); and it recomputes the distance, duration, idle
time and cost. A solution passes when it has no violation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pilotage.routing.problem import Problem
from pilotage.routing.solution import Solution


@dataclass(frozen=True)
class RouteFigures:
    """One vehicle's route, recomputed.

    Attributes:
        distance: driven, service included (the problem's distance unit).
        duration_s: from leaving the depot to being back.
        idle_s: the part of the duration neither driving, serving nor on a break: waits for
            windows, or for a break's window to open.
        load: total demand served.
        cost: fixed, distance and time costs (0 for a vehicle left at its depot).
    """

    distance: float
    duration_s: int
    idle_s: int
    load: int
    cost: float


@dataclass(frozen=True)
class Feasibility:
    """What the check found.

    Attributes:
        violations: one sentence per broken rule; empty when the solution is feasible.
        routes: figures of each vehicle's route, in the problem's vehicle order.
        cost: the objective, recomputed: routes plus the penalties of visits left out.
        distance: total distance, in the instance's own unit (``distance / distance_scale``).
    """

    violations: tuple[str, ...]
    routes: tuple[RouteFigures, ...]
    cost: float
    distance: float

    @property
    def feasible(self) -> bool:
        """No rule is broken."""
        return not self.violations


def check_solution(problem: Problem, solution: Solution) -> Feasibility:
    """Re-verify ``solution`` against ``problem`` and recompute its figures.

    Never raises on a bad solution: every fault is a violation in the result.
    """
    p = problem
    violations: list[str] = []
    if len(solution.routes) != p.n_vehicles:
        violations.append(f"expected one route per vehicle ({p.n_vehicles}), got {len(solution.routes)}")
    served_by = np.full(p.n_visits, -1, dtype=np.int64)
    figures = []
    for position, route in enumerate(solution.routes):
        vehicle = route.vehicle
        if vehicle != position or not 0 <= vehicle < p.n_vehicles:
            violations.append(f"route {position} is for vehicle {vehicle}; expected {position}")
            continue
        figures.append(_replay(p, solution, position, served_by, violations))
    unserved = np.flatnonzero(served_by < 0)
    missing = [v for v in unserved.tolist() if not np.isfinite(p.penalty[v])]
    for visit in missing:
        violations.append(f"mandatory visit {_visit_name(p, visit)} is not served")
    if sorted(solution.unassigned.tolist()) != unserved.tolist():
        violations.append(f"the solution lists visits {sorted(solution.unassigned.tolist())} as unassigned, "
                          f"but {unserved.tolist()} are not served")
    penalties = float(sum(p.penalty[v] for v in unserved.tolist() if np.isfinite(p.penalty[v])))
    return Feasibility(violations=tuple(violations), routes=tuple(figures),
                       cost=sum(f.cost for f in figures) + penalties,
                       distance=sum(f.distance for f in figures))


def _visit_name(p: Problem, visit: int) -> str:
    return repr(p.labels[int(p.alternatives(visit)[0])])


def _replay(p: Problem, solution: Solution, vehicle: int, served_by: np.ndarray,
            violations: list[str]) -> RouteFigures:
    route = solution.routes[vehicle]
    name = p.vehicle_labels[vehicle]
    nodes = route.nodes.tolist()
    starts = route.start_s.tolist()
    if not nodes:
        return RouteFigures(distance=0.0, duration_s=0, idle_s=0, load=0, cost=0.0)
    if len(starts) != len(nodes):
        violations.append(f"vehicle {name}: {len(nodes)} nodes but {len(starts)} start times")
        return RouteFigures(distance=0.0, duration_s=0, idle_s=0, load=0, cost=0.0)
    for node, start in zip(nodes, starts, strict=True):
        if not p.n_depots <= node < p.n_nodes:
            violations.append(f"vehicle {name}: node {node} is not a place of service")
            return RouteFigures(distance=0.0, duration_s=0, idle_s=0, load=0, cost=0.0)
        visit = int(p.visit_of[node])
        if served_by[visit] >= 0:
            violations.append(f"visit {_visit_name(p, visit)} is served twice (vehicles "
                              f"{p.vehicle_labels[served_by[visit]]} and {name})")
        served_by[visit] = vehicle
        needed = int(p.skills[node])
        if int(p.vehicle_skills[vehicle]) & needed != needed:
            violations.append(f"vehicle {name} lacks a skill that {p.labels[node]!r} needs")
        windows = p.windows(node)
        if windows and not any(open_s <= start <= close_s for open_s, close_s in windows):
            violations.append(f"vehicle {name} starts {p.labels[node]!r} at {start} s, outside its windows {windows}")

    load = int(p.demand[nodes].sum())
    if load > p.capacity[vehicle]:
        violations.append(f"vehicle {name} carries {load}, over its capacity {p.capacity[vehicle]}")
    depart, back = route.depart_s, route.return_s
    if depart < p.shift_start_s[vehicle] or back > p.shift_end_s[vehicle]:
        violations.append(f"vehicle {name} is out from {depart} s to {back} s, outside its shift "
                          f"{p.shift_start_s[vehicle]}..{p.shift_end_s[vehicle]} s")

    breaks = p.breaks(vehicle)
    break_starts = route.break_start_s.tolist()
    if len(break_starts) != len(breaks):
        violations.append(f"vehicle {name}: {len(breaks)} breaks but {len(break_starts)} break times")
        break_starts = [earliest for earliest, _, _ in breaks]
    pauses = []
    for (earliest, latest, duration), start in zip(breaks, break_starts, strict=True):
        if not earliest <= start <= latest:
            violations.append(f"vehicle {name}'s break starts at {start} s, outside {earliest}..{latest} s")
        if start < depart or start + duration > back:
            violations.append(f"vehicle {name}'s break {start}..{start + duration} s is outside its work, from "
                              f"leaving at {depart} s to being back at {back} s")
        pauses.append((start, start + duration))

    # The legs between the events of the route: from the depot, between services, to the depot.
    # Each must hold its travel plus whatever break time falls inside it; no break may overlap
    # a service.
    stops = [p.start_depot[vehicle], *nodes]
    ends = [depart] + [s + int(p.service_s[n]) for s, n in zip(starts, nodes, strict=True)]
    arrivals = [*starts, back]
    heads = [*nodes, p.end_depot[vehicle]]
    distance, travel_s = 0, 0
    for tail, head, leave, arrive in zip(stops, heads, ends, arrivals, strict=True):
        paused = sum(max(0, min(b, arrive) - max(a, leave)) for a, b in pauses)
        need = int(p.duration_s[tail, head]) + paused
        if arrive - leave < need:
            violations.append(f"vehicle {name} leaves {p.labels[tail]!r} at {leave} s and reaches "
                              f"{p.labels[head]!r} at {arrive} s: {arrive - leave} s, less than the "
                              f"{need} s of travel and breaks")
        distance += int(p.distance[tail, head]) + int(p.service_distance[head] if head >= p.n_depots else 0)
        travel_s += int(p.duration_s[tail, head])
    for start, node in zip(starts, nodes, strict=True):
        finish = start + int(p.service_s[node])
        for a, b in pauses:
            if a < finish and start < b:
                violations.append(f"vehicle {name}'s break {a}..{b} s overlaps its service at {p.labels[node]!r}")
    duration = back - depart
    idle = duration - travel_s - int(p.service_s[nodes].sum()) - sum(b - a for a, b in pauses)
    cost = float(p.fixed_cost[vehicle] + p.distance_cost[vehicle] * distance + p.time_cost_per_s[vehicle] * duration)
    return RouteFigures(distance=distance / p.distance_scale, duration_s=duration, idle_s=max(0, idle), load=load,
                        cost=cost)
