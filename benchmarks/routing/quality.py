"""Solution quality of pilotage's routing on the field's standard instances, against their best-known solutions.

    python benchmarks/routing/quality.py [--sets solomon x gdb val] [--budgets 10 60] [--jobs N] [--limit K]
                                         [--out FILE.md] [--json FILE]

For each instance of the chosen sets and each budget (s of wall-clock search), solves with OR-Tools
through :func:`pilotage.routing.batch.solve_instance` (seed 0) and, when PyVRP is installed, with
PyVRP at the same budget (seed 0; PyVRP does not do arc routing, so not on gdb and val). Every
OR-Tools solution must pass pilotage's feasibility check: otherwise a FAIL line is printed and the
exit status is 1 (after the report is written).

The objective follows each set's published convention (``bks.py``); both solvers are measured on it:

- Solomon: total Euclidean distance, not rounded, recomputed here from the coordinates along each
  solver's routes (both solve on distances and times in integers of 1/1000);
- CVRPLIB X: total of the distances rounded to the nearest integer;
- CARP (gdb, val): total cost, service included.

Gap = 100 x (cost - BKS) / BKS. The report is a markdown table per set and a summary (mean and max
gap per set, solver and budget), written to ``--out``; ``--json`` writes every number.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import math
import os
import platform
import sys
import time
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from bks import FORMATS, Instance, instances

from pilotage.core.errors import NoSolutionError
from pilotage.routing.batch import solve_instance
from pilotage.routing.formats import read_instance
from pilotage.routing.problem import Problem
from pilotage.routing.solution import Solution
from pilotage.routing.solver import SolveOptions

ORTOOLS, PYVRP = "OR-Tools", "PyVRP"
SEED = 0
#: Solomon distances and times for PyVRP: integers of 1/1000, as pilotage's reader keeps them.
SOLOMON_SCALE = 1000
#: Decimals shown for costs: Solomon distances are not rounded, the others are integers.
DECIMALS = {"solomon": 2, "x": 0, "gdb": 0, "val": 0}
#: A cost below the BKS by more than this (%) means the objective is not the published one.
BELOW_BKS_TOLERANCE = 0.01


@dataclass(frozen=True)
class Run:
    """One solve: an instance, a solver and its budget (s)."""

    instance: Instance
    solver: str
    budget_s: float


@dataclass(frozen=True)
class Outcome:
    """What one solve gave.

    Attributes:
        set_name, instance, solver, budget_s: the run.
        bks: the best-known objective; None when unknown.
        cost: the objective of the solution found (see the module's conventions); None on error.
        gap_percent: 100 x (cost - bks) / bks; None without a BKS or a feasible solution.
        vehicles: routes used.
        feasible: pilotage's check for OR-Tools, PyVRP's own for PyVRP.
        runtime_s: wall time of the solve, reading and model building included.
        error: why there is no solution, or the feasibility check's first violations; empty otherwise.
    """

    set_name: str
    instance: str
    solver: str
    budget_s: float
    bks: float | None
    cost: float | None
    gap_percent: float | None
    vehicles: int | None
    feasible: bool
    runtime_s: float
    error: str = ""


def gap_percent(cost: float, bks: float | None) -> float | None:
    """100 x (cost - bks) / bks, or None without a BKS."""
    return None if bks is None else 100.0 * (cost - bks) / bks


def solve_ortools(instance: Instance, budget_s: float) -> tuple[float, int, bool, str]:
    """Solve with pilotage (OR-Tools) for ``budget_s``: (cost, vehicles used, feasible by pilotage's
    check, its first violations).

    Raises:
        NoSolutionError: no solution within the budget.
    """
    problem = read_instance(instance.path, instance.instance_format)
    solved = solve_instance(problem, SolveOptions(time_limit_s=budget_s, seed=SEED))
    if instance.set_name == "solomon":
        cost = _euclidean_length(problem, solved.solution)
    else:
        cost = solved.feasibility.distance
    violations = solved.feasibility.violations
    return cost, solved.solution.vehicles_used, not violations, "; ".join(violations[:3])


def _euclidean_length(problem: Problem, solution: Solution) -> float:
    total = 0.0
    for route in solution.routes:
        if route.used:
            stops = [int(problem.start_depot[route.vehicle]), *route.nodes.tolist(),
                     int(problem.end_depot[route.vehicle])]
            total += float(np.hypot(np.diff(problem.x[stops]), np.diff(problem.y[stops])).sum())
    return total


def solve_pyvrp(instance: Instance, budget_s: float) -> tuple[float, int, bool, str]:
    """Solve with PyVRP for ``budget_s``: (cost, routes, feasible by PyVRP's own evaluation, "")."""
    import pyvrp  # noqa: PLC0415 - optional: the report says "—" without it
    from pyvrp.stop import MaxRuntime  # noqa: PLC0415

    if instance.set_name == "solomon":
        data = _pyvrp_solomon(instance.path)
    else:
        data = pyvrp.read(instance.path, round_func="round")
    result = pyvrp.solve(data, stop=MaxRuntime(budget_s), seed=SEED, collect_stats=False, display=False)
    best = result.best
    cost = _pyvrp_euclidean_length(data, best) if instance.set_name == "solomon" else float(best.distance())
    return cost, best.num_routes(), result.is_feasible(), ""


def _pyvrp_solomon(path: Path) -> Any:
    # PyVRP 0.14 reads VRPLIB files only: the Solomon file is parsed by vrplib (PyVRP's own
    # dependency) and given to PyVRP with the rounding of pyvrp.read's "exact" (x 1000).
    import pyvrp  # noqa: PLC0415
    import vrplib  # noqa: PLC0415

    raw = vrplib.read_instance(path, instance_format="solomon")
    xy = np.asarray(raw["node_coord"], dtype=float)
    windows = np.rint(np.asarray(raw["time_window"], dtype=float) * SOLOMON_SCALE).astype(np.int64)
    service = np.rint(np.asarray(raw["service_time"], dtype=float) * SOLOMON_SCALE).astype(np.int64)
    demand = np.asarray(raw["demand"], dtype=np.int64)
    distance = np.rint(np.hypot(xy[:, None, 0] - xy[None, :, 0], xy[:, None, 1] - xy[None, :, 1])
                       * SOLOMON_SCALE).astype(np.int64)
    start, end = int(windows[0, 0]), int(windows[0, 1])
    return pyvrp.ProblemData(
        locations=[pyvrp.Location(x=float(x), y=float(y)) for x, y in xy],
        clients=[pyvrp.Client(location=i, delivery=[int(demand[i])], service_duration=int(service[i]),
                              tw_early=int(windows[i, 0]), tw_late=int(windows[i, 1]))
                 for i in range(1, len(xy))],
        depots=[pyvrp.Depot(location=0, tw_early=start, tw_late=end)],
        vehicle_types=[pyvrp.VehicleType(num_available=int(raw["vehicles"]), capacity=[int(raw["capacity"])],
                                         tw_early=start, tw_late=end)],
        distance_matrices=[distance], duration_matrices=[distance])


def _pyvrp_euclidean_length(data: Any, solution: Any) -> float:
    total = 0.0
    for route in solution.routes():
        locations = [data.depot(a.idx).location if a.is_depot() else data.client(a.idx).location
                     for a in route.schedule()]
        x = np.array([data.location(i).x for i in locations])
        y = np.array([data.location(i).y for i in locations])
        total += float(np.hypot(np.diff(x), np.diff(y)).sum())
    return total


def run(job: Run) -> Outcome:
    """Carry out one solve; a solver's failure becomes an outcome with its error."""
    instance = job.instance
    solve = solve_ortools if job.solver == ORTOOLS else solve_pyvrp
    started = time.perf_counter()
    try:
        cost, vehicles, feasible, note = solve(instance, job.budget_s)
    except NoSolutionError as error:
        return Outcome(instance.set_name, instance.name, job.solver, job.budget_s, instance.bks, None, None, None,
                       False, time.perf_counter() - started, str(error))
    return Outcome(instance.set_name, instance.name, job.solver, job.budget_s, instance.bks, cost,
                   gap_percent(cost, instance.bks) if feasible else None, vehicles, feasible,
                   time.perf_counter() - started, note)


def pyvrp_version() -> str | None:
    """The installed PyVRP's version, or None when it cannot be imported."""
    try:
        import pyvrp  # noqa: F401, PLC0415
    except ImportError:
        return None
    return importlib.metadata.version("pyvrp")


def machine() -> dict[str, Any]:
    """The machine and the versions the numbers depend on."""
    model = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass  # not Linux: platform.processor() is what there is
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpu_count": os.cpu_count(), "cpus_available": available, "cpu_model": model or "unknown",
            "platform": platform.platform(), "python": platform.python_version(),
            "ortools": importlib.metadata.version("ortools"), "pyvrp": pyvrp_version()}


def _number(value: float | None, decimals: int) -> str:
    return "—" if value is None else f"{value:.{decimals}f}"


def _cell(outcome: Outcome | None, decimals: int) -> list[str]:
    if outcome is None:
        return ["—", "—", "—"]
    if outcome.cost is None:
        return ["no solution", "—", "—"]
    cost = _number(outcome.cost, decimals) + ("" if outcome.feasible else " (infeasible)")
    return [cost, _number(outcome.gap_percent, 2), str(outcome.vehicles)]


def _table(header: list[str], rows: Iterable[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def set_table(set_name: str, chosen: list[Instance], budgets: list[float], solvers: list[str],
              found: dict[tuple[str, str, str, float], Outcome]) -> list[str]:
    """The markdown table of one set: an instance a row, cost, gap and vehicles per solver and budget."""
    header = ["instance", "BKS", "BKS veh."]
    for solver in solvers:
        for budget in budgets:
            header += [f"{solver} {budget:g} s", "gap %", "veh."]
    decimals = DECIMALS[set_name]
    rows = []
    for instance in chosen:
        row = [instance.name, _number(instance.bks, decimals),
               "—" if instance.bks_vehicles is None else str(instance.bks_vehicles)]
        for solver in solvers:
            for budget in budgets:
                row += _cell(found.get((set_name, instance.name, solver, budget)), decimals)
        rows.append(row)
    return _table(header, rows)


def summary(outcomes: list[Outcome]) -> list[dict[str, Any]]:
    """Per set, solver and budget: runs, feasible solutions, mean and max gap (%) over those with one."""
    groups: dict[tuple[str, str, float], list[Outcome]] = {}
    for outcome in outcomes:
        groups.setdefault((outcome.set_name, outcome.solver, outcome.budget_s), []).append(outcome)
    rows = []
    for (set_name, solver, budget), group in groups.items():
        gaps = [o.gap_percent for o in group if o.gap_percent is not None]
        rows.append({"set": set_name, "solver": solver, "budget_s": budget, "runs": len(group),
                     "feasible": sum(o.feasible for o in group),
                     "mean_gap_percent": sum(gaps) / len(gaps) if gaps else None,
                     "max_gap_percent": max(gaps) if gaps else None})
    return rows


def report(chosen: dict[str, list[Instance]], budgets: list[float], solvers: list[str], outcomes: list[Outcome], *,
           host: dict[str, Any], jobs: int, command: str, sources: list[str] | None = None) -> str:
    """The markdown report: machine, conventions, one table per set, the summary. ``sources``: for a
    merged report, the commands of the runs merged, so the report says how to make it again."""
    found = {(o.set_name, o.instance, o.solver, o.budget_s): o for o in outcomes}
    lines = [
        "# Routing solution quality against best-known solutions",
        "",
        f"`{command}`, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC.",
        "",
        *([f"Runs merged, in this order: {'; '.join(f'`{source}`' for source in sources)}.", ""] if sources else []),
        f"Machine: {host['cpu_model']}, {host['cpu_count']} CPUs ({host['cpus_available']} available), "
        f"{host['platform']}; Python {host['python']}, ortools {host['ortools']}, "
        f"pyvrp {host['pyvrp'] or 'not installed'}.",
        "",
        f"Budgets are wall-clock search limits per solve, each solve in one process, seed {SEED}; "
        f"{jobs} solve(s) ran at once" + (", sharing the cores." if jobs > 1 else "."),
        "",
        "Objective: Solomon, total Euclidean distance not rounded (BKS under distance alone, not "
        "vehicles first); CVRPLIB X, total of distances rounded to integers; CARP (gdb, val), total "
        "cost with service. Gap = 100 x (cost - BKS) / BKS; \"—\" where there is no BKS, no run "
        "(PyVRP does not do arc routing) or no feasible solution. OR-Tools solutions passed "
        "pilotage's feasibility check; PyVRP's feasibility is its own.",
    ]
    for set_name, members in chosen.items():
        lines += ["", f"## {set_name}", ""]
        lines += set_table(set_name, members, budgets, [s for s in solvers if s == ORTOOLS or
                                                        FORMATS[set_name] != "carp"], found)
    lines += ["", "## Summary", ""]
    lines += _table(["set", "solver", "budget (s)", "runs", "feasible", "mean gap %", "max gap %"],
                    ([row["set"], row["solver"], f"{row['budget_s']:g}", str(row["runs"]), str(row["feasible"]),
                      _number(row["mean_gap_percent"], 2), _number(row["max_gap_percent"], 2)]
                     for row in summary(outcomes)))
    return "\n".join(lines) + "\n"


def merge(paths: list[Path], out: Path, json_out: Path | None) -> int:
    """One report from the JSON of earlier runs, each (instance, solver, budget) from the last file
    that has it; the machine is the last file's. Returns 1 when a merged result is a FAIL."""
    documents = [json.loads(path.read_text(encoding="utf-8")) for path in paths]
    found: dict[tuple[str, str, str, float], Outcome] = {}
    for document in documents:
        for result in document["results"]:
            outcome = Outcome(**result)
            found[(outcome.set_name, outcome.instance, outcome.solver, outcome.budget_s)] = outcome
    outcomes = list(found.values())
    sets = [name for name in FORMATS if any(o.set_name == name for o in outcomes)]
    chosen = {name: [i for i in instances(name) if any(o.instance == i.name for o in outcomes)] for name in sets}
    budgets = sorted({o.budget_s for o in outcomes})
    solvers = [solver for solver in (ORTOOLS, PYVRP) if any(o.solver == solver for o in outcomes)]
    order = {(i.set_name, i.name): n for n, i in enumerate(i for members in chosen.values() for i in members)}
    outcomes.sort(key=lambda o: (order[(o.set_name, o.instance)], solvers.index(o.solver), o.budget_s))
    command = "python benchmarks/routing/quality.py --merge " + " ".join(str(path) for path in paths)
    host, jobs = documents[-1]["machine"], max(document["jobs"] for document in documents)
    sources = [document.get("command", str(path)) for document, path in zip(documents, paths, strict=True)]
    out.write_text(report(chosen, budgets, solvers, outcomes, host=host, jobs=jobs, command=command, sources=sources),
                   encoding="utf-8")
    print(f"wrote {out}")
    if json_out:
        merged = {"command": command, "machine": host, "jobs": jobs, "seed": SEED, "budgets_s": budgets,
                  "results": [asdict(o) for o in outcomes], "summary": summary(outcomes)}
        json_out.write_text(json.dumps(merged, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {json_out}")
    return 1 if failures(outcomes) else 0


def _progress(done: int, total: int, outcome: Outcome) -> None:
    if outcome.cost is None:
        result = f"no solution: {outcome.error}"
    else:
        gap = "" if outcome.gap_percent is None else f", gap {outcome.gap_percent:.2f} %"
        result = f"cost {outcome.cost:.2f}{gap}, {outcome.vehicles} vehicles" + \
            ("" if outcome.feasible else ", INFEASIBLE")
    print(f"[{done}/{total}] {outcome.set_name} {outcome.instance} {outcome.solver} {outcome.budget_s:g} s: "
          f"{result} ({outcome.runtime_s:.1f} s)", flush=True)


def failures(outcomes: list[Outcome]) -> list[str]:
    """One line per OR-Tools solve without a feasible solution, or below a BKS (a wrong objective)."""
    lines = []
    for o in outcomes:
        if o.solver != ORTOOLS:
            continue
        if not o.feasible:
            why = o.error or "pilotage's feasibility check rejected the solution"
            lines.append(f"FAIL: {o.set_name} {o.instance} OR-Tools {o.budget_s:g} s: {why}")
        elif o.gap_percent is not None and o.gap_percent < -BELOW_BKS_TOLERANCE:
            lines.append(f"FAIL: {o.set_name} {o.instance} OR-Tools {o.budget_s:g} s: cost {o.cost} is below "
                         f"the BKS {o.bks}: the objective is not the published one")
    return lines


def main(argv: list[str] | None = None) -> int:
    """Run the chosen sets and budgets, print progress and the machine, write the reports; 1 on a FAIL."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sets", nargs="+", choices=tuple(FORMATS), default=list(FORMATS),
                        help="instance sets (default: all)")
    parser.add_argument("--budgets", nargs="+", type=float, default=[10.0, 60.0],
                        help="search time limits per solve, s (default: 10 60)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="solves run at once, each in its own process (default 1); with more, they share the cores")
    parser.add_argument("--limit", type=int, help="only the first K instances of each set")
    parser.add_argument("--solvers", nargs="+", choices=(ORTOOLS, PYVRP), default=[ORTOOLS, PYVRP],
                        help="which solvers (default: both; PyVRP only when installed)")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("quality.md"),
                        help="markdown report (default: benchmarks/routing/quality.md)")
    parser.add_argument("--json", type=Path, help="every number, as JSON")
    parser.add_argument("--merge", nargs="+", type=Path, metavar="JSON",
                        help="solve nothing: one report from the --json files of earlier runs (a later file's "
                             "result replaces an earlier one's for the same instance, solver and budget)")
    args = parser.parse_args(argv)
    if args.merge:
        return merge(args.merge, args.out, args.json)
    if args.jobs < 1 or (args.limit is not None and args.limit < 1) or min(args.budgets) <= 0 or \
            not all(math.isfinite(b) for b in args.budgets):
        parser.error("expected --jobs >= 1, --limit >= 1 and finite budgets > 0")

    host = machine()
    print(f"machine: {host['cpu_model']}, {host['cpu_count']} CPUs ({host['cpus_available']} available), "
          f"{host['platform']}; Python {host['python']}, ortools {host['ortools']}, "
          f"pyvrp {host['pyvrp'] or 'not installed (its columns stay empty)'}")
    solvers = [s for s in args.solvers if s == ORTOOLS or host["pyvrp"]]
    chosen = {name: instances(name)[:args.limit] for name in args.sets}
    runs = [Run(instance, solver, budget) for members in chosen.values() for instance in members
            for budget in args.budgets for solver in solvers
            if solver == ORTOOLS or FORMATS[instance.set_name] != "carp"]
    search_s = sum(run.budget_s for run in runs)
    print(f"{len(runs)} solves, {search_s / 60:.1f} min of search in all, about {search_s / 60 / args.jobs:.1f} min "
          f"with {args.jobs} at once; timings are per process" +
          (f", the {args.jobs} processes share the cores" if args.jobs > 1 else ""), flush=True)

    outcomes = []
    if args.jobs == 1:
        for job in runs:
            outcomes.append(run(job))
            _progress(len(outcomes), len(runs), outcomes[-1])
    else:
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            for future in as_completed([pool.submit(run, job) for job in runs]):
                outcomes.append(future.result())
                _progress(len(outcomes), len(runs), outcomes[-1])
    order = {(job.instance.set_name, job.instance.name, job.solver, job.budget_s): i for i, job in enumerate(runs)}
    outcomes.sort(key=lambda o: order[(o.set_name, o.instance, o.solver, o.budget_s)])

    command = "python benchmarks/routing/quality.py " + " ".join(argv if argv is not None else sys.argv[1:])
    args.out.write_text(report(chosen, args.budgets, solvers, outcomes, host=host, jobs=args.jobs,
                                   command=command.strip()),
                        encoding="utf-8")
    print(f"wrote {args.out}")
    if args.json:
        document = {"command": command.strip(), "machine": host, "jobs": args.jobs, "seed": SEED,
                    "budgets_s": args.budgets, "results": [asdict(o) for o in outcomes],
                    "summary": summary(outcomes)}
        args.json.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {args.json}")
    for row in summary(outcomes):
        print(f"{row['set']:>8} {row['solver']:<9} {row['budget_s']:>5g} s: {row['feasible']}/{row['runs']} feasible, "
              f"gap % mean {_number(row['mean_gap_percent'], 2)}, max {_number(row['max_gap_percent'], 2)}")
    failed = failures(outcomes)
    for line in failed:
        print(line, file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
