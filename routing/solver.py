"""The one module that speaks to OR-Tools: a :class:`Problem` in, a :class:`Solution` out.

The model, in OR-Tools terms:

- travel times and costs are registered as matrices (``RegisterTransitMatrix``), never as a
  Python callback per arc, so the search never calls back into Python;
- a ``time`` dimension whose transit from i to j is i's service plus the travel; waiting is its
  slack, paid by the span cost; node windows are its cumul domains (gaps between windows removed);
  shifts bound the vehicles' start and end; breaks are interval variables on it
  (``SetBreakIntervalsOfVehicle``), taken by each vehicle used between its leaving and its return;
- a ``load`` dimension with each vehicle's capacity;
- each visit is a disjunction of its alternative nodes: mandatory, or with its penalty;
- costs are scaled to integers once (:func:`_cost_scale`), keeping four significant digits of
  the largest cost coefficient.

The search always has a time limit. It starts from a first solution built by a cheapest-insertion
or path-cheapest-arc heuristic, or from a previous solution (warm start), and improves it by
guided local search.
"""

from __future__ import annotations

import itertools
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from ortools.constraint_solver import pywrapcp, routing_enums_pb2
from ortools.util.optional_boolean_pb2 import BOOL_FALSE

from pilotage.core.errors import InvalidInputError, NoSolutionError
from pilotage.routing.problem import Problem
from pilotage.routing.solution import Route, Solution

logger = logging.getLogger(__name__)

_FIRST_SOLUTION = routing_enums_pb2.FirstSolutionStrategy
_METAHEURISTIC = routing_enums_pb2.LocalSearchMetaheuristic

#: First-solution heuristics by name; ``auto`` takes parallel cheapest insertion when time windows,
#: breaks or alternatives constrain the order, path cheapest arc otherwise.
FIRST_SOLUTIONS: dict[str, int] = {
    "parallel_cheapest_insertion": _FIRST_SOLUTION.PARALLEL_CHEAPEST_INSERTION,
    "local_cheapest_insertion": _FIRST_SOLUTION.LOCAL_CHEAPEST_INSERTION,
    "savings": _FIRST_SOLUTION.SAVINGS,
    "path_cheapest_arc": _FIRST_SOLUTION.PATH_CHEAPEST_ARC,
    "christofides": _FIRST_SOLUTION.CHRISTOFIDES,
}

#: Metaheuristics by name.
METAHEURISTICS: dict[str, int] = {
    "guided_local_search": _METAHEURISTIC.GUIDED_LOCAL_SEARCH,
    "simulated_annealing": _METAHEURISTIC.SIMULATED_ANNEALING,
    "tabu_search": _METAHEURISTIC.TABU_SEARCH,
    "greedy_descent": _METAHEURISTIC.GREEDY_DESCENT,
}

_SLOW_OPERATORS = (
    "use_global_cheapest_insertion_path_lns", "use_local_cheapest_insertion_path_lns",
    "use_relocate_path_global_cheapest_insertion_insert_unperformed",
    "use_global_cheapest_insertion_visit_types_lns", "use_local_cheapest_insertion_visit_types_lns",
    "use_shortest_path_swap_active", "use_shortest_path_two_opt", "use_swap_active_chain",
    "use_relocate_expensive_chain", "use_lin_kernighan")

_STATUS = {value.number: value.name.removeprefix("ROUTING_").lower()
           for value in routing_enums_pb2.RoutingSearchStatus.DESCRIPTOR.enum_types[0].values}

#: The largest cost coefficient (per unit of distance or per second) becomes this many integer
#: cost units: four significant digits for the others.
_COST_RESOLUTION = 10_000.0


@dataclass(frozen=True)
class SolveOptions:
    """How to search.

    Attributes:
        time_limit_s: the search stops after this long (s); always set, > 0.
        first_solution: a key of :data:`FIRST_SOLUTIONS`, or ``"auto"``.
        metaheuristic: a key of :data:`METAHEURISTICS`.
        seed: seeds the solver's random operators; with a solution limit instead of a time limit
            the search is then reproducible, with a time limit it also depends on the machine.
        log_search: OR-Tools logs its search on stderr.
    """

    time_limit_s: float = 10.0
    first_solution: str = "auto"
    metaheuristic: str = "guided_local_search"
    seed: int = 0
    log_search: bool = False

    def __post_init__(self) -> None:
        if not (math.isfinite(self.time_limit_s) and self.time_limit_s > 0):
            raise InvalidInputError(f"expected a time limit > 0 s, got {self.time_limit_s}", field="time_limit_s")
        if self.first_solution != "auto" and self.first_solution not in FIRST_SOLUTIONS:
            raise InvalidInputError(f"expected first_solution 'auto' or one of {sorted(FIRST_SOLUTIONS)}, "
                                    f"got {self.first_solution!r}", field="first_solution")
        if self.metaheuristic not in METAHEURISTICS:
            raise InvalidInputError(f"expected metaheuristic in {sorted(METAHEURISTICS)}, got {self.metaheuristic!r}",
                                    field="metaheuristic")
        if not (isinstance(self.seed, int) and not isinstance(self.seed, bool) and 0 <= self.seed < 2**63):
            raise InvalidInputError(f"expected seed to be a whole number from 0 to 2**63 - 1, got {self.seed!r}",
                                    field="seed")


#: Called at each improving solution with the seconds since the search began and its cost.
SolutionCallback = Callable[[float, float], None]


def solve(problem: Problem, options: SolveOptions | None = None, *,
          initial: Sequence[Sequence[int]] | None = None,
          on_solution: SolutionCallback | None = None) -> Solution:
    """Solve ``problem`` with OR-Tools within ``options.time_limit_s``.

    Args:
        problem: the nodes, fleet and costs.
        options: the search; default :class:`SolveOptions`.
        initial: a previous solution to start from (warm start): for each vehicle, the nodes it
            serves in order. Nodes absent from it are inserted by the first-solution heuristic;
            if OR-Tools cannot take it, the search starts afresh and says so in the status.
        on_solution: called at each improving solution (see :data:`SolutionCallback`).

    Raises:
        InvalidInputError: ``initial`` names a node out of range or a depot, or has the wrong
            number of vehicles.
        NoSolutionError: no solution serves every mandatory visit within the time limit.
    """
    options = options or SolveOptions()
    started = time.perf_counter()
    model = _Model(problem)
    params = _search_parameters(problem, options)
    routing = model.routing
    routing.solver().ReSeed(options.seed)
    found, best = 0, math.inf

    def improved() -> None:
        # Called at each solution the search accepts; guided local search accepts worse ones too.
        nonlocal found, best
        cost = routing.CostVar().Value() / model.scale
        if cost < best:
            found, best = found + 1, cost
            if on_solution is not None:
                on_solution(time.perf_counter() - started, cost)

    routing.AddAtSolutionCallback(improved)
    status_note = ""
    if initial is None:
        assignment = routing.SolveWithParameters(params)
    else:
        routing.CloseModelWithParameters(params)
        hint = routing.solver().Assignment()
        # Routes left open (close_routes=False): the first-solution heuristic inserts what they lack.
        if not routing.RoutesToAssignment(model.index_routes(initial), True, False, hint):
            hint = None
        if hint is None:
            status_note = "; warm start refused by OR-Tools, searched afresh"
            logger.warning("OR-Tools refused the initial routes of %s; searching from scratch", problem.name)
        assignment = routing.SolveFromAssignmentWithParameters(hint, params) if hint is not None else \
            routing.SolveWithParameters(params)
    runtime_s = time.perf_counter() - started
    status = _STATUS.get(routing.status(), str(routing.status())) + status_note
    if assignment is None:
        raise _no_solution(problem, options, status, runtime_s)
    return model.solution(assignment, runtime_s=runtime_s, solutions_found=found, status=status)


def _no_solution(problem: Problem, options: SolveOptions, status: str, runtime_s: float) -> NoSolutionError:
    """Why the search found no solution, and what may help: more search time only when the time
    limit stopped it; otherwise the visits that exclude one another."""
    fix = ("the checks made before the search (each visit alone; demand and hours against the vehicles "
           "with the skills; breaks) found no single cause, so some visits exclude one another, such as windows "
           "at the same hour far apart: widen windows, add vehicles, or give some visits a penalty so they may "
           "be left out")
    if status.startswith("fail_timeout"):
        return NoSolutionError(f"no solution of {problem.name} serving every mandatory visit was found within the "
                               f"{options.time_limit_s:g} s time limit (OR-Tools: {status}); give the search more "
                               f"time, or: {fix}")
    return NoSolutionError(f"no solution of {problem.name} serves every mandatory visit: the search gave up after "
                           f"{runtime_s:.1f} s, before its {options.time_limit_s:g} s were over (OR-Tools: "
                           f"{status}), so a longer search would not help (another first_solution heuristic "
                           f"might); {fix}")


def _cost_scale(problem: Problem) -> float:
    coefficients = np.concatenate([problem.distance_cost, problem.time_cost_per_s])
    largest = float(coefficients.max(initial=0.0))
    return _COST_RESOLUTION / largest if largest > 0 else 1.0


def _integers(values: np.ndarray) -> list[int]:
    integers: list[int] = np.rint(values).astype(np.int64).tolist()
    return integers


class _Model:
    """The OR-Tools model of a problem, and the way back from its assignments."""

    def __init__(self, problem: Problem) -> None:
        self.problem = p = problem
        self.scale = _cost_scale(p)
        self.manager = pywrapcp.RoutingIndexManager(p.n_nodes, p.n_vehicles, p.start_depot.tolist(),
                                                    p.end_depot.tolist())
        self.routing = routing = pywrapcp.RoutingModel(self.manager)
        self._arc_costs()
        self.time = self._time_dimension() if _times_bind(p) else None
        if p.demand.any():
            demand = routing.RegisterUnaryTransitVector(p.demand.tolist())
            routing.AddDimensionWithVehicleCapacity(demand, 0, p.capacity.tolist(), True, "load")
        for node in range(p.n_depots, p.n_nodes):
            needed = int(p.skills[node])
            if needed:
                allowed = [v for v in range(p.n_vehicles) if int(p.vehicle_skills[v]) & needed == needed]
                # -1: the node may stay unperformed (a disjunction decides whether it may).
                routing.VehicleVar(self.manager.NodeToIndex(node)).SetValues([-1, *allowed])
        for visit in range(p.n_visits):
            indices = [self.manager.NodeToIndex(int(node)) for node in p.alternatives(visit)]
            penalty = float(p.penalty[visit])
            if math.isfinite(penalty):
                routing.AddDisjunction(indices, round(penalty * self.scale), 1)
            elif len(indices) > 1:
                routing.AddDisjunction(indices)
        for v in range(p.n_vehicles):
            routing.SetFixedCostOfVehicle(round(p.fixed_cost[v] * self.scale), v)
        self.breaks = self._breaks()

    def _arc_costs(self) -> None:
        p, routing = self.problem, self.routing
        # One matrix per distinct cost per unit of distance; the service distance of the node
        # left is paid on the arc out of it (a street's length is driven while sweeping it).
        driven = p.service_distance[:, None] + p.distance
        evaluators: dict[float, int] = {}
        for v in range(p.n_vehicles):
            coefficient = float(p.distance_cost[v])
            if coefficient not in evaluators:
                evaluators[coefficient] = routing.RegisterTransitMatrix(
                    [_integers(row) for row in driven * (coefficient * self.scale)])
            routing.SetArcCostEvaluatorOfVehicle(evaluators[coefficient], v)

    def _time_dimension(self) -> pywrapcp.RoutingDimension:
        p, routing, manager = self.problem, self.routing, self.manager
        horizon = _horizon(p)
        transit = routing.RegisterTransitMatrix((p.service_s[:, None] + p.duration_s).tolist())
        routing.AddDimension(transit, horizon, horizon, False, "time")
        dimension: pywrapcp.RoutingDimension = routing.GetDimensionOrDie("time")
        for node in range(p.n_depots, p.n_nodes):
            windows = p.windows(node)
            if not windows:
                continue
            cumul = dimension.CumulVar(manager.NodeToIndex(node))
            cumul.SetRange(windows[0][0], windows[-1][1])
            for (_, close), (reopen, _) in itertools.pairwise(windows):
                if reopen > close + 1:
                    cumul.RemoveInterval(close + 1, reopen - 1)
        for v in range(p.n_vehicles):
            start, end = routing.Start(v), routing.End(v)
            for index in (start, end):
                dimension.CumulVar(index).SetRange(int(p.shift_start_s[v]), int(p.shift_end_s[v]))
            dimension.SetSpanCostCoefficientForVehicle(round(p.time_cost_per_s[v] * self.scale), v)
        # Times within the slack: finish as early as the route allows, then leave as late as that
        # allows, so a route starts early in its shift and never idles at the depot.
        for v in range(p.n_vehicles):
            routing.AddVariableMinimizedByFinalizer(dimension.CumulVar(routing.End(v)))
        for v in range(p.n_vehicles):
            routing.AddVariableMaximizedByFinalizer(dimension.CumulVar(routing.Start(v)))
        return dimension

    def _breaks(self) -> list[list[pywrapcp.IntervalVar]]:
        """Each vehicle's breaks as interval variables on the time dimension, taken by every vehicle
        used and during its work: after it leaves its depot and before it is back."""
        p, routing = self.problem, self.routing
        if self.time is None or not p.break_duration_s.size:
            return [[] for _ in range(p.n_vehicles)]
        solver = routing.solver()
        visit_transits = [int(p.service_s[self.manager.IndexToNode(index)]) for index in range(routing.Size())]
        horizon = _horizon(p)
        intervals = []
        for v in range(p.n_vehicles):
            # Optional: a vehicle left at its depot takes no break, and its span stays empty.
            own = [solver.FixedDurationIntervalVar(earliest, latest, duration, True, f"break {v}.{b}")
                   for b, (earliest, latest, duration) in enumerate(p.breaks(v))]
            if own:
                self.time.SetBreakIntervalsOfVehicle(own, v, visit_transits)
                used = routing.ActiveVehicleVar(v)
                leave, back = self.time.CumulVar(routing.Start(v)), self.time.CumulVar(routing.End(v))
                for interval in own:
                    solver.Add(interval.PerformedExpr() == used)
                    solver.Add(interval.SafeStartExpr(horizon) >= leave)
                    solver.Add(interval.SafeEndExpr(0) <= back)
            intervals.append(own)
        return intervals

    def index_routes(self, routes: Sequence[Sequence[int]]) -> list[list[int]]:
        p = self.problem
        if len(routes) != p.n_vehicles:
            raise InvalidInputError(f"expected initial routes for {p.n_vehicles} vehicles, got {len(routes)}",
                                    field="initial")
        out = []
        for route in routes:
            for node in route:
                if not p.n_depots <= int(node) < p.n_nodes:
                    raise InvalidInputError(f"expected service nodes in {p.n_depots}..{p.n_nodes - 1} in the "
                                            f"initial routes, got {node}", field="initial")
            out.append([self.manager.NodeToIndex(int(node)) for node in route])
        return out

    def solution(self, assignment: pywrapcp.Assignment, *, runtime_s: float, solutions_found: int,
                 status: str) -> Solution:
        p, routing, manager = self.problem, self.routing, self.manager
        routes = []
        served = np.zeros(p.n_visits, dtype=bool)
        for v in range(p.n_vehicles):
            indices = []
            index = assignment.Value(routing.NextVar(routing.Start(v)))
            while not routing.IsEnd(index):
                indices.append(index)
                index = assignment.Value(routing.NextVar(index))
            nodes = [manager.IndexToNode(i) for i in indices]
            served[p.visit_of[nodes]] = True
            if self.time is None:
                times = _earliest_times(p, v, nodes)
                break_starts: list[int] = []
            else:
                times = [assignment.Value(self.time.CumulVar(i))
                         for i in (routing.Start(v), *indices, routing.End(v))]
                break_starts = [assignment.StartValue(interval) if assignment.PerformedValue(interval)
                                else earliest for interval, (earliest, _, _) in zip(self.breaks[v], p.breaks(v),
                                                                                   strict=True)]
            routes.append(Route(vehicle=v, nodes=np.array(nodes, dtype=np.int64),
                                start_s=np.array(times[1:-1], dtype=np.int64), depart_s=int(times[0]),
                                return_s=int(times[-1]), break_start_s=np.array(break_starts, dtype=np.int64)))
        return Solution(routes=tuple(routes), unassigned=np.flatnonzero(~served),
                        cost=assignment.ObjectiveValue() / self.scale, runtime_s=runtime_s,
                        solutions_found=solutions_found, status=status)


def _horizon(problem: Problem) -> int:
    """The time dimension's upper bound (s): past every shift's end and every window's close."""
    return int(max(problem.shift_end_s.max(), problem.window_close_s.max(initial=0))) + 1


def _times_bind(problem: Problem) -> bool:
    """Whether time constrains or costs anything: windows, breaks, a time cost, or a shift shorter
    than the longest route could be. Without, the model leaves the time dimension out, which makes
    each move of the search cheaper."""
    p = problem
    if p.has_time_windows or p.time_cost_per_s.any():
        return True
    longest = int(p.service_s.sum()) + p.n_nodes * int(p.duration_s.max(initial=0))
    return bool(((p.shift_end_s - p.shift_start_s) < longest).any())


def _earliest_times(problem: Problem, vehicle: int, nodes: list[int]) -> list[int]:
    """Leaving at the shift's start, then each service as soon as the vehicle arrives: the times
    of a route that no time rule binds (depot, each node, depot)."""
    p = problem
    here, now = int(p.start_depot[vehicle]), int(p.shift_start_s[vehicle])
    times = [now]
    for node in [*nodes, int(p.end_depot[vehicle])]:
        now += int(p.service_s[here]) + int(p.duration_s[here, node])
        times.append(now)
        here = node
    return times


def _search_parameters(problem: Problem, options: SolveOptions) -> object:
    params = pywrapcp.DefaultRoutingSearchParameters()
    first = options.first_solution
    if first == "auto":
        # Tried at 10 s: path cheapest arc found no solution of Solomon R101 and did worse than
        # parallel cheapest insertion on hard gdb instances; on plain CVRP it did better than
        # savings on hard CVRPLIB X instances (the quality tables of docs/routing.md run this choice).
        constrained = problem.has_time_windows or problem.visit_nodes.size > problem.n_visits
        first = "parallel_cheapest_insertion" if constrained else "path_cheapest_arc"
    params.first_solution_strategy = FIRST_SOLUTIONS[first]
    # At a 10 s budget these operators cost more than they give: tried on Solomon, CVRPLIB X and
    # gdb instances, leaving them out helped most on the larger X instances and cost the others
    # little (the quality tables of docs/routing.md run without them).
    for operator in _SLOW_OPERATORS:
        setattr(params.local_search_operators, operator, BOOL_FALSE)
    params.local_search_metaheuristic = METAHEURISTICS[options.metaheuristic]
    params.time_limit.FromMilliseconds(max(1, int(options.time_limit_s * 1000)))
    params.log_search = options.log_search
    return params
