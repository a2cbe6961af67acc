"""The OR-Tools model: optimal on small cases against a plain-Python brute force, every constraint
kept (windows, several windows, breaks during the work, skills, capacities), idle time paid,
optional visits, warm starts, a search without a solution saying whether time would help, and the
independent check catching every kind of broken solution."""

import itertools
import math
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pilotage.core import RoadNetwork
from pilotage.core.errors import InvalidInputError, NoSolutionError
from pilotage.core.protocol.jobs import Job
from pilotage.routing import (
    Problem,
    Route,
    Solution,
    SolveOptions,
    check_solution,
    read_instance,
    solve,
    solve_job,
)
from pilotage.routing.problem import no_breaks

# -- a plain-Python reference ---------------------------------------------------------------------


def route_cost(problem: Problem, vehicle: int, nodes: tuple[int, ...]) -> float:
    """Cost of one vehicle serving ``nodes`` in order, leaving at its shift start and starting each
    service as early as its window allows; inf when a window, the shift or the capacity is broken."""
    p = problem
    if not nodes:
        return 0.0
    if p.demand[list(nodes)].sum() > p.capacity[vehicle]:
        return math.inf
    time, here, distance = int(p.shift_start_s[vehicle]), int(p.start_depot[vehicle]), 0
    for node in nodes:
        time += int(p.service_s[here]) + int(p.duration_s[here, node])
        distance += int(p.distance[here, node])
        windows = p.windows(node)
        if windows:
            opening = [max(time, a) for a, b in windows if max(time, a) <= b]
            if not opening:
                return math.inf
            time = opening[0]
        here = node
    end = int(p.end_depot[vehicle])
    back = time + int(p.service_s[here]) + int(p.duration_s[here, end])
    if back > p.shift_end_s[vehicle]:
        return math.inf
    # With no time cost, leaving later never lowers the cost: the earliest schedule is optimal.
    return float(p.fixed_cost[vehicle] + p.distance_cost[vehicle] * (distance + int(p.distance[here, end])))


def brute_force(problem: Problem) -> float:
    """The optimal cost of a problem of single-node mandatory visits and no time costs, by
    enumerating every assignment of the visits to vehicles and every order."""
    nodes = problem.visit_nodes.tolist()
    best = math.inf
    for owners in itertools.product(range(problem.n_vehicles), repeat=len(nodes)):
        total = 0.0
        for vehicle in range(problem.n_vehicles):
            mine = [n for n, owner in zip(nodes, owners, strict=True) if owner == vehicle]
            total += min((route_cost(problem, vehicle, order) for order in itertools.permutations(mine)),
                         default=0.0)
            if total >= best:
                break
        best = min(best, total)
    return best


def plane_problem(points: list[tuple[int, int]], demand: list[int], windows: list[tuple[int, int] | None], *,
                  n_vehicles: int, capacity: int, horizon: int, service: int = 0) -> Problem:
    """A problem in the plane: node 0 is the depot; travel time equals the rounded distance."""
    xy = np.array(points, dtype=float)
    distance = np.rint(np.hypot(*(xy[:, None, :] - xy[None, :, :]).transpose(2, 0, 1))).astype(np.int64)
    n = len(points)
    kept = [(a, b) for w in windows if w for a, b in [w]]
    counts = [0] + [1 if w else 0 for w in windows]
    k = n_vehicles
    return Problem(
        name="plane", labels=tuple(str(i) for i in range(n)), x=xy[:, 0], y=xy[:, 1], geographic=False,
        n_depots=1, duration_s=distance, distance=distance, service_s=np.array([0] + [service] * (n - 1)),
        service_distance=np.zeros(n), demand=np.array([0, *demand]), window_ptr=np.cumsum([0, *counts]),
        window_open_s=np.array([a for a, _ in kept], dtype=np.int64),
        window_close_s=np.array([b for _, b in kept], dtype=np.int64), skills=np.zeros(n),
        visit_ptr=np.arange(n), visit_nodes=np.arange(1, n), penalty=np.full(n - 1, np.inf),
        vehicle_labels=tuple(f"v{v}" for v in range(k)), start_depot=np.zeros(k), end_depot=np.zeros(k),
        capacity=np.full(k, capacity), shift_start_s=np.zeros(k), shift_end_s=np.full(k, horizon), **no_breaks(k),
        vehicle_skills=np.zeros(k), fixed_cost=np.zeros(k), distance_cost=np.ones(k), time_cost_per_s=np.zeros(k))


@st.composite
def small_problems(draw: st.DrawFn) -> Problem:
    stops = draw(st.integers(2, 5))
    coordinate = st.integers(0, 60)
    points = [(30, 30)] + [(draw(coordinate), draw(coordinate)) for _ in range(stops)]
    windows: list[tuple[int, int] | None] = []
    for _ in range(stops):
        if draw(st.booleans()):
            opening = draw(st.integers(0, 150))
            windows.append((opening, opening + draw(st.integers(0, 80))))
        else:
            windows.append(None)
    return plane_problem(points, [draw(st.integers(1, 4)) for _ in range(stops)], windows,
                         n_vehicles=draw(st.integers(1, 2)), capacity=draw(st.integers(4, 10)),
                         horizon=draw(st.integers(150, 400)), service=draw(st.integers(0, 10)))


@settings(max_examples=30, derandomize=True)
@given(problem=small_problems())
def test_the_solver_matches_the_brute_force_and_its_solutions_pass_the_check(problem: Problem) -> None:
    optimum = brute_force(problem)
    try:
        solution = solve(problem, SolveOptions(time_limit_s=0.3))
    except NoSolutionError:
        # Not a proof of infeasibility, but on five stops the search would find one.
        assert optimum == math.inf
        return
    verdict = check_solution(problem, solution)
    assert verdict.feasible, verdict.violations
    assert optimum < math.inf
    assert verdict.cost == pytest.approx(solution.cost)
    assert verdict.cost >= optimum - 1e-9
    assert verdict.cost == pytest.approx(optimum)


def test_a_gdb_instance_is_solved_to_its_published_optimum(shared_data: Callable[..., Path]) -> None:
    problem = read_instance(shared_data("carp", "gdb", "gdb1.dat"), "carp")
    solution = solve(problem, SolveOptions(time_limit_s=2))
    verdict = check_solution(problem, solution)
    assert verdict.feasible, verdict.violations
    assert verdict.distance == 316  # gdb/bks.csv
    # Each required edge once, in one direction.
    served = [problem.visit_of[node] for route in solution.routes for node in route.nodes.tolist()]
    assert sorted(served) == list(range(problem.n_visits))


def test_options_are_checked() -> None:
    with pytest.raises(InvalidInputError, match="time limit"):
        SolveOptions(time_limit_s=0)
    with pytest.raises(InvalidInputError, match="first_solution"):
        SolveOptions(first_solution="random")
    with pytest.raises(InvalidInputError, match="metaheuristic"):
        SolveOptions(metaheuristic="annealing")


# -- the independent check catches every kind of fault ---------------------------------------------


def _feasible(shared_data: Callable[..., Path]) -> tuple[Problem, Solution]:
    problem = read_instance(shared_data("vrp", "solomon", "C101.txt"), "solomon")
    return problem, solve(problem, SolveOptions(time_limit_s=0.5))


def _with_route(solution: Solution, vehicle: int, route: Route) -> Solution:
    routes = list(solution.routes)
    routes[vehicle] = route
    return replace(solution, routes=tuple(routes))


def test_the_check_finds_each_broken_rule(shared_data: Callable[..., Path]) -> None:
    problem, solution = _feasible(shared_data)
    assert check_solution(problem, solution).feasible
    used = [r for r in solution.routes if r.used]
    first, second = used[0], used[1]
    late = first.start_s.copy()
    late[-1] = problem.window_close_s[problem.window_ptr[first.nodes[-1]]] + 1
    broken = {
        "outside its windows": _with_route(solution, first.vehicle, replace(first, start_s=late)),
        "served twice": _with_route(solution, second.vehicle, replace(
            second, nodes=np.append(second.nodes, first.nodes[0]), start_s=np.append(second.start_s, 10**9))),
        "is not served": _with_route(solution, first.vehicle, replace(first, nodes=first.nodes[1:],
                                                                     start_s=first.start_s[1:])),
        "less than the": _with_route(solution, first.vehicle, replace(first, start_s=first.start_s - 5_000)),
        "outside its shift": _with_route(solution, first.vehicle, replace(first, return_s=10**9)),
        "over its capacity": _with_route(solution, first.vehicle, replace(
            first, nodes=np.concatenate([first.nodes, second.nodes]),
            start_s=np.concatenate([first.start_s, second.start_s + 10**6]))),
    }
    for expected, wrong in broken.items():
        violations = check_solution(problem, wrong).violations
        assert any(expected in v for v in violations), (expected, violations)


# -- jobs: several windows, breaks, skills, optional stops, warm starts ---------------------------


def test_a_job_keeps_breaks_skills_and_windows(city: RoadNetwork, bulky_waste: dict,
                                               as_job: Callable[[dict], Job]) -> None:
    solved = solve_job(as_job(bulky_waste), city, SolveOptions(time_limit_s=2))
    assert solved.feasibility.feasible, solved.feasibility.violations
    document = solved.document
    assert not document["unassigned"]
    crane = {s["id"] for s in bulky_waste["stops"] if s.get("skills")}
    for route in document["routes"]:
        served = {v["id"] for v in route["visits"]}
        assert route["vehicle"] == "crane-truck" or not served & crane
        for pause in route["breaks"]:
            assert 11.5 * 3600 <= pause["start_s"] <= 13.5 * 3600
            assert not any(v["start_s"] < pause["start_s"] + pause["duration_s"] and pause["start_s"] < v["end_s"]
                           for v in route["visits"])


def test_a_stop_with_two_windows_is_served_in_the_one_it_can_reach(
        city: RoadNetwork, small_job: Callable[..., dict], as_job: Callable[[dict], Job]) -> None:
    job = small_job(stops=3)
    # The trucks leave at 07:30: 07:00-07:05 cannot be reached, 14:00-14:30 can.
    job["stops"][0]["windows"] = [["07:00", "07:05"], ["14:00", "14:30"]]
    solved = solve_job(as_job(job), city, SolveOptions(time_limit_s=0.5))
    assert solved.feasibility.feasible, solved.feasibility.violations
    (visit,) = [v for r in solved.document["routes"] for v in r["visits"] if v["id"] == job["stops"][0]["id"]]
    assert "14:00:00" <= visit["start"] <= "14:30:00"


def test_an_optional_stop_out_of_reach_is_left_out_at_its_penalty(
        city: RoadNetwork, small_job: Callable[..., dict], as_job: Callable[[dict], Job]) -> None:
    job = small_job(stops=3)
    job["stops"][0]["windows"] = [["07:00", "07:05"]]
    job["stops"][0]["penalty"] = 500
    solved = solve_job(as_job(job), city, SolveOptions(time_limit_s=0.5))
    document = solved.document
    assert document["unassigned"] == [job["stops"][0]["id"]]
    assert document["cost"] == pytest.approx(500 + sum(r["cost"] for r in document["routes"]))


def test_a_search_that_ends_without_a_solution_before_its_time_is_up_does_not_ask_for_more_time(
        city: RoadNetwork, small_job: Callable[..., dict], as_job: Callable[[dict], Job]) -> None:
    job = small_job(stops=3)
    job["vehicles"] = [dict(job["vehicles"][0], count=1)]
    for stop in job["stops"]:
        stop["windows"] = [["09:00", "09:00"]]  # three places at once: each alone is fine, not all three
    with pytest.raises(NoSolutionError, match="mandatory") as caught:
        solve_job(as_job(job), city, SolveOptions(time_limit_s=5))
    message = str(caught.value)
    assert "more time" not in message and "time limit" not in message
    assert "before its 5 s" in message


def test_a_warm_start_takes_the_earlier_plan_and_inserts_the_new_pickup(
        city: RoadNetwork, bulky_waste: dict, as_job: Callable[[dict], Job]) -> None:
    morning = dict(bulky_waste, stops=bulky_waste["stops"][:-1])
    planned = solve_job(as_job(morning), city, SolveOptions(time_limit_s=1)).document
    added = dict(bulky_waste, initial=[{"vehicle": r["vehicle"], "visits": [v["id"] for v in r["visits"]] + ["gone"]}
                                       for r in planned["routes"]])
    replanned = solve_job(as_job(added), city, SolveOptions(time_limit_s=0.5))
    assert "refused" not in replanned.solution.status
    assert replanned.feasibility.feasible
    assert not replanned.document["unassigned"]


# -- a working day: breaks during the work, idle time paid ------------------------------------------


def test_breaks_are_taken_between_leaving_the_depot_and_coming_back(
        city: RoadNetwork, bulky_waste: dict, as_job: Callable[[dict], Job]) -> None:
    solved = solve_job(as_job(bulky_waste), city, SolveOptions(time_limit_s=2))
    assert solved.feasibility.feasible, solved.feasibility.violations
    for route in solved.document["routes"]:
        (pause,) = route["breaks"]
        assert route["depart_s"] <= pause["start_s"]
        assert pause["start_s"] + pause["duration_s"] <= route["return_s"], route["vehicle"]


def test_a_round_done_before_lunch_waits_for_its_break_and_pays_for_the_wait(
        city: RoadNetwork, small_job: Callable[..., dict], as_job: Callable[[dict], Job]) -> None:
    job = small_job(stops=2)
    job["vehicles"] = [dict(job["vehicles"][0], count=1)]  # lunch between 11:30 and 13:30, 30 min
    for stop in job["stops"]:
        stop["windows"] = [["08:00", "09:00"]]
    solved = solve_job(as_job(job), city, SolveOptions(time_limit_s=1))
    assert solved.feasibility.feasible, solved.feasibility.violations
    (route,) = solved.document["routes"]
    (pause,) = route["breaks"]
    assert pause["start"] >= "11:30:00"
    assert route["return_s"] >= pause["start_s"] + 1800
    assert route["idle_s"] > 3600  # the hours between the last pickup and the break
    vehicle = job["vehicles"][0]
    assert route["cost"] == pytest.approx(vehicle["fixed_cost"] + vehicle["cost_per_hour"] * route["duration_s"] / 3600
                                          + vehicle["cost_per_km"] * route["distance"] / 1000, abs=0.01)


def test_the_check_finds_a_break_outside_the_work() -> None:
    problem = replace(plane_problem([(0, 0), (10, 0), (20, 0)], [1, 1], [None, None], n_vehicles=1, capacity=5,
                                    horizon=400), break_ptr=np.array([0, 1]), break_earliest_s=np.array([0]),
                      break_latest_s=np.array([400]), break_duration_s=np.array([10]))
    route = Route(vehicle=0, nodes=np.array([1, 2]), start_s=np.array([110, 120]), depart_s=100, return_s=140,
                  break_start_s=np.array([120]))
    # On the way back from the last stop: inside the work, the return delayed by the break.
    nothing_left = np.array([], dtype=np.int64)
    assert check_solution(problem, Solution((replace(route, return_s=150),), nothing_left, cost=0.0)).feasible
    for start in (50, 141):  # before leaving, after coming back
        solution = Solution((replace(route, break_start_s=np.array([start])),), nothing_left, cost=0.0)
        violations = check_solution(problem, solution).violations
        assert any("outside its work" in v for v in violations), violations
