"""Rounds for service fleets on the street network: bulky-waste pickups (vehicle routing with time
windows) and street cleaning (capacitated arc routing), solved with OR-Tools and checked
independently.

- :func:`solve_job` takes a job (``pilotage.core.protocol.Job``) and a road network;
  :func:`run_files` solves job files or standard instances and writes solutions, GeoJSON and maps;
- :func:`read_instance` reads Solomon, VRPLIB and CARP files; :func:`solve` and
  :func:`check_solution` work on any :class:`Problem`;
- :class:`RoutingQueue` keeps jobs submitted to a server and solves them in a worker process.
"""

from pilotage.routing.batch import Solved, run_file, run_files, solve_instance, solve_job, write_outputs
from pilotage.routing.check import Feasibility, check_solution
from pilotage.routing.formats import FORMATS, read_instance
from pilotage.routing.jobs import JobProblem, job_problem
from pilotage.routing.problem import Problem
from pilotage.routing.queue import JobRecord, RoutingQueue
from pilotage.routing.solution import Route, Solution
from pilotage.routing.solver import SolveOptions, solve

__all__ = [
    "FORMATS",
    "Feasibility",
    "JobProblem",
    "JobRecord",
    "Problem",
    "Route",
    "RoutingQueue",
    "Solution",
    "SolveOptions",
    "Solved",
    "check_solution",
    "job_problem",
    "read_instance",
    "run_file",
    "run_files",
    "solve",
    "solve_instance",
    "solve_job",
    "write_outputs",
]
