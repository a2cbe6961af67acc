"""Make the figures of the documentation: ``python docs/figures.py`` (needs the ``plot`` extra).

``priority-timing.png``: the signal-timing diagram of one intersection of the embedded city before
and after the engine grants an early green to a late bus.

``corridor-time-space.png``: the time-space diagram of one emergency corridor on the embedded city
(:func:`corridor_time_space`).
"""

from __future__ import annotations

import logging
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
from pilotage.signal_priority import CorridorEngine, PriorityConfig, PriorityEngine, PriorityRequest

HERE = Path(__file__).resolve().parent
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


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    priority_timing(HERE / "priority-timing.png")
    corridor_time_space(HERE / "corridor-time-space.png")
