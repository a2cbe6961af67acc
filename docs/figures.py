"""Make the figures of the documentation: ``python docs/figures.py [TARGET ...]`` (needs the ``plot``
extra; ``sumo-alone`` the ``sim`` extra too). Without a target, the two diagrams.

``priority-timing``: ``priority-timing.png``, the signal-timing diagram of one intersection of the
embedded city before and after the engine grants an early green to a late bus (docs/priority.md).

``corridor-time-space``: ``corridor-time-space.png``, the time-space diagram of one emergency
corridor on the embedded city (:func:`corridor_time_space`, docs/corridors.md).

``parking``: the figures of docs/parking-forecast.md that ``pilotage parking forecast`` does not
print (:func:`parking_figures`): the car parks of the shared month, those evaluated for each
``max_gap_s``, the regression's weights per horizon, seasonal-naive's error per test day, and the
evaluation with longer carry-forwards.

``scenario``: the embedded city's SUMO scenario built afresh in a temporary folder, with the log of
its build and its ``scenario.json`` (:func:`scenario_build`, docs/scenario.md).

``sumo-alone``: the embedded city's SUMO scenario run by SUMO alone, no pilotage, for the hour
(:func:`sumo_alone`, docs/scenario.md); ``--programs`` chooses the traffic-light programs.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import subprocess
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import defaultdict
from datetime import datetime
from pathlib import Path

import matplotlib as mpl

mpl.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from pilotage.adapters.osm import load_network
from pilotage.core.default_plans import default_plans
from pilotage.core.safety import GreenSchedule
from pilotage.core.signals import VEHICLE, IntersectionPlan, SignalPlans
from pilotage.parking.forecast import (
    LOCAL_TIME_ZONE,
    MIN_COVERAGE,
    STEP_S,
    Counts,
    ProfileRegression,
    SeasonalNaive,
    evaluate,
    read_counts,
    resample,
    split_days,
)
from pilotage.signal_priority import CorridorEngine, PriorityConfig, PriorityEngine, PriorityRequest

HERE = Path(__file__).resolve().parent
#: The shared month of car-park counts (``../shared/data`` from the repository root).
PARKING_COUNTS = HERE.parents[1] / "shared" / "data" / "parking" / "2024-05"
#: Training share of the days, as ``pilotage parking forecast`` (its ``--train-fraction`` default).
TRAIN_FRACTION = 0.7
#: Horizons of the regression's weights in docs/parking-forecast.md (s).
WEIGHT_HORIZONS_S = (900.0, 1800.0, 3600.0, 7200.0, 10800.0, 21600.0)
#: A bus stop arrival is on time from this early to this late (s), as the closed loop's report counts it.
ON_TIME_S = (-60.0, 300.0)
INTERSECTION = -29436
BUS_GROUP = "from--15874"
NOW_S = 3610.0
ETA_S = 25.0
AMBER_S = 3.0
CORRIDOR_ORIGIN = 702
CORRIDOR_DESTINATION = 1906
CORRIDOR_OPEN_S = 1000.0
CORRIDOR_WINDOW_M = 3000.0
GREEN = "#2ca02c"
RED = "#d62728"
PALE_GREEN = "#a9dba0"
PALE_RED = "#f4b6b6"

logger = logging.getLogger("pilotage.docs")


def draw(axes: Axes, plan: IntersectionPlan, schedule: GreenSchedule, window_s: tuple[float, float],
         title: str) -> None:
    """Green, amber (vehicles) and red bars for each group over ``window_s``."""
    start_s, end_s = window_s
    for g in range(plan.n_groups):
        y = plan.n_groups - 1 - g
        axes.broken_barh([(start_s, end_s - start_s)], (y - 0.35, 0.7), color="#d62728")
        for green_start, green_end in schedule.intervals(g):
            left, right = max(green_start, start_s), min(green_end, end_s)
            if right <= left:
                continue
            axes.broken_barh([(left, right - left)], (y - 0.35, 0.7), color="#2ca02c")
            if plan.group_kind[g] == VEHICLE and right < end_s:
                axes.broken_barh([(right, AMBER_S)], (y - 0.35, 0.7), color="#ffbf00")
    axes.set_yticks(range(plan.n_groups), list(reversed(plan.group_names)))
    axes.set_xlim(start_s, end_s)
    axes.set_title(title, loc="left", fontsize=10)


def priority_timing(path: Path) -> None:
    """The timing diagram of :data:`INTERSECTION` before and after an early green for a bus."""
    network = load_network()
    plans = SignalPlans(default_plans(network))
    plan = plans.plans[plans.index_of(INTERSECTION)]
    engine = PriorityEngine(plans, lambda: NOW_S, PriorityConfig())
    before = engine.schedule(INTERSECTION)
    (decision,) = engine.decide([PriorityRequest("bus-12", INTERSECTION, BUS_GROUP, ETA_S, lateness_s=150.0,
                                                 occupancy=40.0)])
    after = engine.schedule(INTERSECTION)
    window_s = (NOW_S - 20.0, NOW_S + 200.0)
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(10, 6.4), sharex=True)
    draw(top, plan, before, window_s, f"intersection {INTERSECTION}: base plan (90 s cycle)")
    draw(bottom, plan, after, window_s,
         f"after the request of a bus 150 s late on {BUS_GROUP}, arriving in {ETA_S:.0f} s: "
         f"{decision.strategy.replace('_', ' ')}")
    for axes in (top, bottom):
        axes.axvline(NOW_S, color="black", linewidth=1)
        axes.axvline(NOW_S + ETA_S, color="#1f77b4", linestyle="--", linewidth=1.5)
    top.text(NOW_S + ETA_S + 1, -0.95, "bus arrives", color="#1f77b4", fontsize=9)
    top.text(NOW_S + 1, -0.95, "request", fontsize=9)
    bottom.set_xlabel("time (s)")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    logger.info("wrote %s (%s: green %.1f-%.1f s)", path, decision.strategy, decision.green_from or 0.0,
                decision.green_until or 0.0)


def green_red_bar(axes: Axes, intervals: list[tuple[float, float]], window_s: tuple[float, float],
                  band: tuple[float, float], colors: tuple[str, str] = (GREEN, RED)) -> None:
    """One bar over ``window_s`` in the band ``(bottom, height)``: ``colors[0]`` (green) over
    ``intervals``, ``colors[1]`` (red) elsewhere."""
    start_s, end_s = window_s
    axes.broken_barh([(start_s, end_s - start_s)], band, color=colors[1], linewidth=0)
    greens = [(max(left, start_s), min(right, end_s)) for left, right in intervals]
    axes.broken_barh([(left, right - left) for left, right in greens if right > left], band, color=colors[0],
                     linewidth=0)


def corridor_time_space(path: Path) -> None:
    """The time-space diagram of an emergency corridor from node :data:`CORRIDOR_ORIGIN` to node
    :data:`CORRIDOR_DESTINATION` (indices) on the embedded city, opened at :data:`CORRIDOR_OPEN_S`.

    The route (12.8 km) crosses seven signalised intersections in its first 2 km, all pre-empted
    (``planned``) when the corridor opens; the diagram shows its first :data:`CORRIDOR_WINDOW_M`.
    For each crossing: the approach group's greens with the corridor (thick bar, the requested hold
    outlined) and under the coordinated base plan (thin pale bar below); the vehicle's trajectory
    runs along the route's nodes at emergency speeds, through the ETA at each stop line.
    """
    network = load_network()
    plans = SignalPlans(default_plans(network))
    clock = [CORRIDOR_OPEN_S]
    priority = PriorityEngine(plans, lambda: clock[0])
    base = PriorityEngine(plans, lambda: clock[0])
    corridors = CorridorEngine(network, priority)
    corridor = corridors.open("fire-1", CORRIDOR_ORIGIN, CORRIDOR_DESTINATION)
    crossings = [c for c in corridor.crossings if c.state == "planned" and c.distance_m <= CORRIDOR_WINDOW_M]
    route = network.shortest_path(CORRIDOR_ORIGIN, CORRIDOR_DESTINATION, weight=corridors.travel_time_s)
    if np.array_equal(route.nodes, corridor.nodes):
        distance_m = route.cumulative(network.length_m)
        time_s = CORRIDOR_OPEN_S + route.cumulative(corridors.travel_time_s)
    else:  # not the corridor's route: straight lines between the ETAs
        distance_m = np.array([0.0, *(c.distance_m for c in corridor.crossings), corridor.length_m])
        time_s = np.array([CORRIDOR_OPEN_S, *(c.eta_s for c in corridor.crossings), corridor.eta_s])
    arrive_s = float(np.interp(CORRIDOR_WINDOW_M, distance_m, time_s)) - CORRIDOR_OPEN_S
    window_s = (-10.0, 20.0 * np.ceil(arrive_s / 20.0 + 1.0))

    figure, axes = plt.subplots(figsize=(9, 6))
    for crossing in crossings:
        plan = plans.plans[plans.index_of(crossing.intersection)]
        group = plan.group_names.index(crossing.approach_group)
        y = crossing.distance_m
        for engine, band, colors in ((priority, (y - 25.0, 50.0), (GREEN, RED)),
                                     (base, (y - 47.0, 18.0), (PALE_GREEN, PALE_RED))):
            intervals = [(left - CORRIDOR_OPEN_S, right - CORRIDOR_OPEN_S)
                         for left, right in engine.schedule(crossing.intersection).intervals(group)]
            green_red_bar(axes, intervals, window_s, band, colors)
        hold_from_s = (crossing.hold_from_s or crossing.eta_s) - CORRIDOR_OPEN_S
        hold_until_s = (crossing.hold_until_s or crossing.eta_s) - CORRIDOR_OPEN_S
        axes.broken_barh([(hold_from_s, hold_until_s - hold_from_s)], (y - 25.0, 50.0), facecolor="none",
                         edgecolor="black", linewidth=1.2)
        if not any(left <= crossing.eta_s <= right
                   for left, right in priority.schedule(crossing.intersection).intervals(group)):
            logger.warning("intersection %s: no green for %s at the ETA %.1f s", crossing.intersection,
                           crossing.approach_group, crossing.eta_s)
    axes.plot(time_s - CORRIDOR_OPEN_S, distance_m, color="#1f77b4", linewidth=1.8)
    axes.plot([c.eta_s - CORRIDOR_OPEN_S for c in crossings], [c.distance_m for c in crossings], "o",
              color="#1f77b4", markersize=4)
    axes.set_xlim(*window_s)
    axes.set_ylim(0.0, CORRIDOR_WINDOW_M)
    names = axes.twinx()
    names.set_ylim(0.0, CORRIDOR_WINDOW_M)
    names.set_yticks([c.distance_m for c in crossings],
                     [f"{c.intersection}  {c.approach_group}" for c in crossings], fontsize=7)
    axes.set_xlabel("time since the corridor opened (s)")
    axes.set_ylabel("distance along the route (m)")
    axes.set_title(f"emergency corridor from node {CORRIDOR_ORIGIN} to node {CORRIDOR_DESTINATION}: "
                   f"first {CORRIDOR_WINDOW_M / 1000:.0f} km, {len(crossings)} pre-empted intersections",
                   loc="left", fontsize=10)
    axes.legend(handles=[
        Line2D([], [], color="#1f77b4", marker="o", markersize=4,
               label="vehicle at emergency speeds (dots: ETA at each stop line)"),
        Patch(color=GREEN, label="approach group green, with the corridor"),
        Patch(color=RED, label="approach group red, with the corridor"),
        Patch(facecolor="none", edgecolor="black", label="hold requested"),
        Patch(color=PALE_GREEN, label="approach group green, base plan (thin bar below)"),
        Patch(color=PALE_RED, label="approach group red, base plan"),
    ], loc="upper left", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=150)
    logger.info("wrote %s (%d crossings in the first %.0f m, vehicle there at %.0f s)", path, len(crossings),
                CORRIDOR_WINDOW_M, arrive_s)


def _hours(horizon_s: float) -> str:
    return f"{horizon_s / 3600:g} h" if horizon_s >= 3600 else f"{horizon_s / 60:g} min"


def parking_figures(folder: Path = PARKING_COUNTS) -> None:
    """Print the figures of docs/parking-forecast.md beyond the table of ``pilotage parking forecast``,
    on the same files and split (the first 70 % of the days for training, 1 h carry-forward)."""
    paths = sorted(folder.glob("*.csv"))
    counts = read_counts(paths)
    reporting = int(np.sum(np.any(~np.isnan(counts.free), axis=0)))
    logger.info(f"{len(paths)} files, {len(counts.carparks)} car parks, {reporting} of them report at least once")
    for gap_h in (1, 3, 6, 24):
        coverage = np.mean(~np.isnan(resample(counts, max_gap_s=gap_h * 3600.0).free), axis=0)
        logger.info(f"max_gap_s {gap_h} h: {int(np.sum(coverage >= MIN_COVERAGE))} car parks with a value at "
              f"{MIN_COVERAGE:.0%} of the grid times or more")

    # The evaluation's grid, car parks and training days, as evaluate() makes them.
    train_days = max(1, round(TRAIN_FRACTION * (counts.time_s[-1] - counts.time_s[0]) / 86400.0))
    grid = resample(counts)
    coverage = np.mean(~np.isnan(grid.free), axis=0)
    grid = grid.select([c for c, share in zip(grid.carparks, coverage.tolist(), strict=True) if share >= MIN_COVERAGE])
    train, _ = split_days(grid, train_days)
    regression = ProfileRegression().fit(train)
    logger.info(f"\nregression weights fitted on the {train_days} training days ({len(grid.carparks)} car parks):")
    logger.info(f"{'horizon':<24}" + "".join(f"{_hours(h):>8}" for h in WEIGHT_HORIZONS_S))
    for column, name in enumerate(("a_h (deviation)", "b_h (profile change)")):
        values = np.interp(WEIGHT_HORIZONS_S, regression.horizons_s, regression.weights[:, column])
        logger.info(f"{name:<24}" + "".join(f"{value:8.2f}" for value in values))

    # Seasonal-naive's 1 h MAE per local day of the issue time, wherever it and its target are known.
    naive = SeasonalNaive().fit(train)
    lag = round(3600.0 / STEP_S)
    errors: dict[str, list[float]] = defaultdict(list)
    for issue in range(train.time_s.size, grid.time_s.size - lag):
        history = Counts(grid.time_s[:issue + 1], grid.carparks, grid.free[:issue + 1])
        error = np.abs(naive.predict(history, [3600.0])[:, 0] - grid.free[issue + lag])
        day = datetime.fromtimestamp(grid.time_s[issue], LOCAL_TIME_ZONE).strftime("%a %d")
        errors[day] += error[~np.isnan(error)].tolist()
    logger.info("\nseasonal-naive, 1 h MAE per test day (local day of the issue time; its own forecasts):")
    logger.info(", ".join(f"{day}: {np.mean(values):.0f}" for day, values in errors.items()))

    for gap_h in (6, 24):
        logger.info(f"\nmax_gap_s {gap_h} h:")
        logger.info(evaluate(counts, train_days, max_gap_s=gap_h * 3600.0).table())


def scenario_build() -> None:
    """Build the embedded city's SUMO scenario (seed 42) in a temporary cache, never the user's, logging
    what the build logs (programs refused, timings per variant, counts, its time), then its
    ``scenario.json``."""
    from pilotage.adapters.sumo.scenario import city_scenario  # noqa: PLC0415 - the sim extra

    with tempfile.TemporaryDirectory(prefix="pilotage-scenario-") as cache:
        scenario = city_scenario(cache_dir=cache)
        summary = json.loads((scenario.directory / "scenario.json").read_text(encoding="utf-8"))
    logger.info("scenario.json: %s", json.dumps(summary, indent=1))


def _percentile(values: list[float], share: float) -> float:
    return float(np.percentile(values, 100 * share)) if values else float("nan")


def sumo_alone(programs: str = "coordinated") -> None:
    """Run the embedded city's scenario (seed 42) for its hour with SUMO alone, and print what
    docs/scenario.md says of it: vehicles in the network, trips per class, teleports, bus stop
    lateness against the timetable, buses on the road at once, and the run's wall time.

    ``programs``: ``coordinated`` (``city.sumocfg``), ``isolated`` (``city-isolated.sumocfg``), or
    ``netconvert`` (``city.sumocfg`` without ``signals.add.xml``: netconvert's programs of the
    network file).
    """
    import sumo  # noqa: PLC0415 - the sim extra

    from pilotage.adapters.sumo.scenario import city_scenario  # noqa: PLC0415

    scenario = city_scenario(coordinated=programs != "isolated")
    with tempfile.TemporaryDirectory(prefix="pilotage-sumo-alone-") as folder:
        out = Path(folder)
        command = [str(Path(sumo.SUMO_HOME) / "bin" / "sumo"), "-c", str(scenario.sumocfg),
                   "--summary-output", str(out / "summary.xml"), "--tripinfo-output", str(out / "trips.xml"),
                   "--tripinfo-output.write-unfinished", "true", "--stop-output", str(out / "stops.xml"),
                   "--statistic-output", str(out / "statistics.xml"), "--no-warnings", "true"]
        if programs == "netconvert":
            command += ["--additional-files", str(scenario.bus_stops_file)]
        started = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        wall_s = time.perf_counter() - started
        steps = ET.parse(out / "summary.xml").getroot().findall("step")
        trips = ET.parse(out / "trips.xml").getroot().findall("tripinfo")
        stops = ET.parse(out / "stops.xml").getroot().findall("stopinfo")
        teleports = ET.parse(out / "statistics.xml").getroot().find("teleports")

    end_s = float(steps[-1].get("time", 0.0))
    running = [int(step.get("running", 0)) for step in steps]
    halting = [int(step.get("halting", 0)) for step in steps]
    second_half = [k for k, step in enumerate(steps) if float(step.get("time", 0.0)) >= 1800.0]
    mean_running = statistics.mean(running[k] for k in second_half)
    mean_halting = statistics.mean(halting[k] for k in second_half)
    logger.info(f"{scenario.sumocfg} with {programs} programs, SUMO alone, seed {scenario.seed}: "
          f"{wall_s:.0f} s wall time ({end_s / wall_s:.0f} x real time)")
    logger.info(f"vehicles in the network: at most {max(running)}, {mean_running:.0f} on average over the second "
          f"half-hour ({100 * mean_halting / mean_running:.0f} % of them halted), {running[-1]} at {end_s:.0f} s")

    def kind(trip: ET.Element) -> str:
        return {"bus": "buses", "emergency": "emergency vehicles"}.get(trip.get("vType", ""), "cars")

    for name in ("cars", "buses", "emergency vehicles"):
        arrived = [t for t in trips if kind(t) == name and float(t.get("arrival", -1)) >= 0]
        if not arrived:
            continue
        mean = {key: statistics.mean(float(t.get(key, 0.0)) for t in arrived)
                for key in ("duration", "routeLength", "timeLoss", "waitingCount")}
        logger.info(f"{name}: {len(arrived)} arrived within the run, {mean['duration']:.0f} s for "
              f"{mean['routeLength'] / 1000:.1f} km on average, {mean['timeLoss']:.0f} s of it lost, "
              f"{mean['waitingCount']:.1f} stops")
    buses = [t for t in trips if kind(t) == "buses"]
    events = sorted([(float(t.get("depart", 0.0)), 1) for t in buses] +
                    [(float(t.get("arrival", -1)), -1) for t in buses if float(t.get("arrival", -1)) >= 0])
    on_road, most = 0, 0
    for _, change in events:
        on_road += change
        most = max(most, on_road)
    logger.info(f"buses on the road at once: at most {most}")
    delays = [float(stop.get("arrivalDelay")) for stop in stops if stop.get("arrivalDelay") is not None]
    on_time = sum(ON_TIME_S[0] <= delay <= ON_TIME_S[1] for delay in delays)
    logger.info(f"bus stop arrivals with a scheduled time: {len(delays)}, median lateness "
          f"{statistics.median(delays):+.1f} s (10th to 90th percentiles {_percentile(delays, 0.1):+.0f} s to "
          f"{_percentile(delays, 0.9):+.0f} s), {100 * on_time / len(delays):.0f} % from 1 min early to 5 min late")
    if teleports is not None:
        logger.info("teleports: " + ", ".join(f"{key} {value}" for key, value in teleports.attrib.items()))


TARGETS = ("priority-timing", "corridor-time-space", "parking", "scenario", "sumo-alone")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Make the figures of the documentation.")
    parser.add_argument("targets", nargs="*", metavar="TARGET",
                        help=f"any of {', '.join(TARGETS)} (default: the two diagrams)")
    parser.add_argument("--programs", choices=("coordinated", "isolated", "netconvert"), default="coordinated",
                        help="sumo-alone: the traffic-light programs SUMO runs (default: coordinated)")
    args = parser.parse_args(argv)
    unknown = [target for target in args.targets if target not in TARGETS]
    if unknown:
        parser.error(f"unknown target {unknown[0]!r}; expected any of {', '.join(TARGETS)}")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for target in args.targets or TARGETS[:2]:
        if target == "priority-timing":
            priority_timing(HERE / "priority-timing.png")
        elif target == "corridor-time-space":
            corridor_time_space(HERE / "corridor-time-space.png")
        elif target == "parking":
            parking_figures()
        elif target == "scenario":
            scenario_build()
        else:
            sumo_alone(args.programs)


if __name__ == "__main__":
    main()
