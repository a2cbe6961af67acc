"""Routing as batch work: a job or a standard instance file in, its solution, GeoJSON and map out;
several files at once on the available cores.

For each input ``NAME`` the output directory gets ``NAME.solution.json`` (the solution and the
feasibility check's verdict), ``NAME.geojson`` and ``NAME.html`` (a self-contained map).
"""

from __future__ import annotations

import json
import logging
import os
import queue
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from functools import cached_property
from multiprocessing import Manager
from pathlib import Path
from typing import Any

from pilotage.core.errors import DataFileError, InvalidInputError, PilotageError
from pilotage.core.network import RoadNetwork, available_cores
from pilotage.core.protocol import decode_job
from pilotage.core.protocol.jobs import Job
from pilotage.routing.check import Feasibility, check_solution
from pilotage.routing.formats import read_instance
from pilotage.routing.jobs import JobProblem, job_problem
from pilotage.routing.maps import render_html, road_segments
from pilotage.routing.problem import Problem
from pilotage.routing.report import solution_document, solution_geojson
from pilotage.routing.solution import Solution
from pilotage.routing.solver import SolutionCallback, SolveOptions, solve

logger = logging.getLogger(__name__)

#: Called with (input index, seconds searched, time limit, best cost so far).
ProgressCallback = Callable[[int, float, float, float], None]

#: Called with (seconds searched, time limit, best cost so far).
FileProgressCallback = Callable[[float, float, float], None]


@dataclass(frozen=True)
class Solved:
    """A solved input.

    Attributes:
        source: the problem, with the job's ids and paths when it came from a job.
        solution: the solver's routes.
        feasibility: the independent check's verdict and figures.
        options: the search it ran with.
    """

    source: Problem | JobProblem
    solution: Solution
    feasibility: Feasibility
    options: SolveOptions

    @cached_property
    def document(self) -> dict[str, Any]:
        """The solution as JSON-ready data (:func:`solution_document`), built once."""
        search = {"time_limit_s": self.options.time_limit_s, "seed": self.options.seed,
                  "first_solution": self.options.first_solution, "metaheuristic": self.options.metaheuristic}
        return solution_document(self.source, self.solution, self.feasibility, search=search)


def job_options(job: Job, *, time_limit_s: float | None = None, seed: int | None = None) -> SolveOptions:
    """The search options a job asks for, with overrides."""
    own = job.options
    return SolveOptions(time_limit_s=own.time_limit_s if time_limit_s is None else time_limit_s,
                        first_solution=own.first_solution, metaheuristic=own.metaheuristic,
                        seed=own.seed if seed is None else seed)


def solve_job(job: Job, network: RoadNetwork, options: SolveOptions | None = None, *,
              on_solution: SolutionCallback | None = None) -> Solved:
    """Validate, solve and check a routing job on ``network``; ``options`` default to the job's own.

    Raises:
        InvalidInputError, UnknownEntityError: an inconsistent job (:func:`job_problem`).
        NoSolutionError: no solution serves every mandatory visit in time.
    """
    source = job_problem(job, network)
    options = options or job_options(job)
    solution = solve(source.problem, options, initial=source.initial_routes(), on_solution=on_solution)
    return Solved(source, solution, check_solution(source.problem, solution), options)


def solve_instance(problem: Problem, options: SolveOptions, *, on_solution: SolutionCallback | None = None) -> Solved:
    """Solve and check a standard instance (:func:`pilotage.routing.formats.read_instance`)."""
    solution = solve(problem, options, on_solution=on_solution)
    return Solved(problem, solution, check_solution(problem, solution), options)


def write_outputs(solved: Solved, out_dir: str | os.PathLike[str], stem: str,
                  network: RoadNetwork | None = None) -> dict[str, Path]:
    """Write ``stem.solution.json``, ``stem.geojson`` and ``stem.html`` into ``out_dir`` (made if
    missing); the map shows ``network``'s roads beneath the routes. Returns the paths by kind."""
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    collection = solution_geojson(solved.source, solved.solution, solved.feasibility)
    background = [] if network is None else road_segments(network)
    p = solved.source.problem if isinstance(solved.source, JobProblem) else solved.source
    paths = {"solution": folder / f"{stem}.solution.json", "geojson": folder / f"{stem}.geojson",
             "map": folder / f"{stem}.html"}
    paths["solution"].write_text(json.dumps(solved.document, indent=1) + "\n", encoding="utf-8")
    paths["geojson"].write_text(json.dumps(collection) + "\n", encoding="utf-8")
    paths["map"].write_text(render_html(collection, title=p.name, geographic=p.geographic, background=background),
                            encoding="utf-8")
    return paths


def run_file(path: str | os.PathLike[str], out_dir: str | os.PathLike[str], *, instance_format: str | None = None,
             network: RoadNetwork | None = None, time_limit_s: float | None = None, seed: int | None = None,
             on_progress: FileProgressCallback | None = None) -> dict[str, Any]:
    """Solve one file (a job JSON, or a standard instance in ``instance_format``) and write its outputs.

    Returns a summary: name, feasible, cost and its currency, distance and its unit, the hours out
    of all the rounds (``duration_s``), vehicles used, visits left out, the search's runtime and the
    output paths. ``network`` is needed for a job. ``on_progress`` hears of each improving
    solution, and of the end of the search.

    Raises:
        DataFileError: the file cannot be read.
        PilotageError: the job or instance is invalid, or has no solution in time.
    """
    path = Path(path)
    if instance_format is None:
        try:
            data = path.read_bytes()
        except OSError as error:
            raise DataFileError(f"cannot read {path}: {error.strerror}; check the path") from None
        try:
            job = decode_job(data)
        except PilotageError as error:
            raise error.with_prefix(message=str(path)) from None
        if network is None:
            raise DataFileError(f"{path}: a job needs a road network")
        options = job_options(job, time_limit_s=time_limit_s, seed=seed)
        source: Job | Problem = job
    else:
        options = SolveOptions(time_limit_s=10.0 if time_limit_s is None else time_limit_s, seed=seed or 0)
        source = read_instance(path, instance_format)
        network = None

    def improved(elapsed_s: float, cost: float) -> None:
        if on_progress is not None:
            on_progress(elapsed_s, options.time_limit_s, cost)

    if isinstance(source, Job):
        assert network is not None  # a job without a network was refused above
        solved = solve_job(source, network, options, on_solution=improved)
    else:
        solved = solve_instance(source, options, on_solution=improved)
    outputs = write_outputs(solved, out_dir, _stem(path), network)
    document = solved.document
    improved(options.time_limit_s, document["cost"])
    return {"input": str(path), "name": document["name"], "feasible": document["feasible"],
            "violations": document["violations"], "cost": document["cost"], "currency": document["currency"],
            "distance": document["distance"], "distance_unit": document["distance_unit"],
            "duration_s": document["duration_s"], "vehicles_used": document["vehicles_used"],
            "unassigned": len(document["unassigned"]), "runtime_s": document["solver"]["runtime_s"],
            "outputs": {k: str(v) for k, v in outputs.items()}}


def _stem(path: str | os.PathLike[str]) -> str:
    """The name a file's outputs take: ``bulky-waste`` for ``jobs/bulky-waste.json``."""
    return Path(path).name.split(".")[0]


@dataclass(frozen=True)
class _Work:
    index: int
    path: str
    out_dir: str
    instance_format: str | None
    network: RoadNetwork | None
    time_limit_s: float | None
    seed: int | None


def run_files(paths: Sequence[str | os.PathLike[str]], out_dir: str | os.PathLike[str], *,
              instance_format: str | None = None, network: RoadNetwork | None = None,
              time_limit_s: float | None = None,
              seed: int | None = None, workers: int | None = None,
              on_progress: ProgressCallback | None = None) -> list[dict[str, Any]]:
    """Solve several files, each in its own process, ``workers`` at once (default: the cores
    available, at most one per file). A file that fails gives a summary with its ``error`` and
    does not stop the others. Summaries come in the order of ``paths``.

    Raises:
        InvalidInputError: two files with the same name (their outputs would clash), or workers < 1.
    """
    stems = [_stem(path) for path in paths]
    clashing = sorted({stem for stem in stems if stems.count(stem) > 1})
    if clashing:
        raise InvalidInputError(f"expected files with distinct names, got several named {clashing}: their outputs "
                                "would overwrite each other; rename them or solve them into different folders",
                                field="inputs")
    if workers is not None and workers < 1:
        raise InvalidInputError(f"expected workers >= 1, got {workers}", field="workers")
    works = [_Work(i, str(path), str(out_dir), instance_format, network, time_limit_s, seed)
             for i, path in enumerate(paths)]
    workers = max(1, min(workers or available_cores(), len(works)))
    if workers == 1:
        return [_run(work, _Direct(on_progress)) for work in works]
    with Manager() as manager, ProcessPoolExecutor(max_workers=workers) as pool:
        updates = manager.Queue()
        futures: dict[Future[dict[str, Any]], _Work] = {pool.submit(_run, work, updates): work for work in works}
        pending = set(futures)
        while pending:
            _, pending = wait(pending, timeout=0.25, return_when=FIRST_COMPLETED)
            _drain(updates, on_progress)
        _drain(updates, on_progress)
        return [future.result() for future in sorted(futures, key=lambda f: futures[f].index)]


def _drain(updates: Any, on_progress: ProgressCallback | None) -> None:
    while True:
        try:
            update = updates.get_nowait()
        except queue.Empty:
            return
        if on_progress is not None:
            on_progress(*update)


class _Direct:
    """Progress reported in the same process: a queue-like object calling back directly."""

    def __init__(self, on_progress: ProgressCallback | None) -> None:
        self.on_progress = on_progress

    def put(self, update: tuple[int, float, float, float]) -> None:
        if self.on_progress is not None:
            self.on_progress(*update)


def _run(work: _Work, updates: Any) -> dict[str, Any]:
    try:
        return run_file(work.path, work.out_dir, instance_format=work.instance_format, network=work.network,
                        time_limit_s=work.time_limit_s, seed=work.seed,
                        on_progress=lambda elapsed, budget, cost: updates.put((work.index, elapsed, budget, cost)))
    except PilotageError as error:
        logger.debug("%s failed", work.path, exc_info=True)
        return {"input": work.path, "error": str(error)}
