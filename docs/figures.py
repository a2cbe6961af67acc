"""Make the figures of the documentation: ``python docs/figures.py`` (needs the ``plot`` extra).

``priority-timing.png``: the signal-timing diagram of one intersection of the embedded city before
and after the engine grants an early green to a late bus.
"""

from __future__ import annotations

import logging
from pathlib import Path

import matplotlib as mpl

mpl.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.axes import Axes

from pilotage.adapters.osm import load_network
from pilotage.core.default_plans import default_plans
from pilotage.core.safety import GreenSchedule
from pilotage.core.signals import VEHICLE, IntersectionPlan, SignalPlans
from pilotage.signal_priority import PriorityConfig, PriorityEngine, PriorityRequest

HERE = Path(__file__).resolve().parent
INTERSECTION = -29436
BUS_GROUP = "from--15874"
NOW_S = 3610.0
ETA_S = 25.0
AMBER_S = 3.0

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


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    priority_timing(HERE / "priority-timing.png")
