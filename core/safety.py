"""The safety monitor: checks a timed schedule of signal-group greens against an intersection's model.

It is independent of the planners: it reads only the model (:class:`IntersectionPlan`) and the
green intervals each group would get, and shares no code with the engines that make them. A schedule
with any violation is not sent.

Rules (each :class:`Violation` names one):

- ``conflicting_greens``: two conflicting groups green at the same time;
- ``min_green``: a green that ends before its group's minimum green;
- ``pedestrian_walk``: a pedestrian green that ends before its walk time;
- ``intergreen``: a group that starts before the intergreen from a conflicting group has elapsed;
- ``pedestrian_clearance``: a group that starts before a conflicting pedestrian group's clearance
  has elapsed;
- ``max_cycle``: a group that waits longer than the maximum cycle between the starts of two of its
  greens (or from the last start it had to the end of the schedule).

Times are seconds on the engine's clock; a tolerance of 1 ms absorbs rounding.

A numba kernel (:func:`pilotage.core._kernels.count_violations`) counts the violations first, in
microseconds; only a schedule with some is listed, rule by rule, by the plain Python of
:func:`list_violations`, which is the kernel's reference in the tests.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pilotage.core import _kernels
from pilotage.core.errors import InvalidInputError
from pilotage.core.signals import PEDESTRIAN, IntersectionPlan

RULES = ("conflicting_greens", "min_green", "pedestrian_walk", "intergreen", "pedestrian_clearance", "max_cycle")

#: Times this close count as equal: rounding is not a violation.
TOLERANCE_S = 1e-3


@dataclass(frozen=True)
class Violation:
    """One broken rule: which, of which group (and which other group), when (s on the clock)."""

    rule: str
    group: str
    time_s: float
    detail: str
    other: str | None = None


@dataclass(frozen=True, eq=False)
class GreenSchedule:
    """The green intervals of the groups of one intersection over ``[horizon_start_s, horizon_end_s]``.

    Attributes:
        group: (N,) group index of each interval.
        start_s: (N,) start of each green. An interval that starts at or before the horizon's start
            was already green then: its true start is unknown, so its minimum green is not judged.
        end_s: (N,) end of each green; ``inf`` when still green at the horizon's end.
        horizon_start_s, horizon_end_s: the time the schedule covers.
    """

    group: np.ndarray
    start_s: np.ndarray
    end_s: np.ndarray
    horizon_start_s: float
    horizon_end_s: float

    def __post_init__(self) -> None:
        for name, dtype in (("group", np.int64), ("start_s", np.float64), ("end_s", np.float64)):
            object.__setattr__(self, name, np.ascontiguousarray(getattr(self, name), dtype=dtype).reshape(-1))
        if not (self.group.size == self.start_s.size == self.end_s.size):
            raise InvalidInputError("expected group, start_s and end_s of one length", field="group")
        if (self.end_s < self.start_s).any() or np.isnan(self.start_s).any() or np.isnan(self.end_s).any():
            raise InvalidInputError("expected every green to end after it starts", field="end_s")

    def intervals(self, group: int) -> list[tuple[float, float]]:
        """The greens of ``group`` in time order, overlapping or touching ones merged."""
        chosen = sorted(zip(self.start_s[self.group == group].tolist(), self.end_s[self.group == group].tolist(),
                            strict=True))
        merged: list[tuple[float, float]] = []
        for start, end in chosen:
            if merged and start <= merged[-1][1] + TOLERANCE_S:
                merged[-1] = (merged[-1][0], max(merged[-1][1], end))
            else:
                merged.append((start, end))
        return merged


def check_schedule(plan: IntersectionPlan, schedule: GreenSchedule) -> list[Violation]:
    """Every violation of the rules above in ``schedule``, in time order; empty when it is safe.

    Raises:
        InvalidInputError: a group index outside the plan.
    """
    if schedule.group.size and (schedule.group.min() < 0 or schedule.group.max() >= plan.n_groups):
        raise InvalidInputError(f"expected group indices in 0..{plan.n_groups - 1}", field="group")
    if count_violations(plan, schedule) == 0:
        return []
    return list_violations(plan, schedule)


def count_violations(plan: IntersectionPlan, schedule: GreenSchedule) -> int:
    """How many violations :func:`list_violations` would list, counted by the kernel; group indices
    must be valid (:func:`check_schedule` checks them)."""
    return int(_kernels.count_violations(
        schedule.group, schedule.start_s, schedule.end_s, float(schedule.horizon_start_s),
        float(schedule.horizon_end_s), plan.group_kind, plan.min_green_s, plan.walk_s, plan.clearance_s,
        plan.intergreen_s, float(plan.max_cycle_s), TOLERANCE_S))


def list_violations(plan: IntersectionPlan, schedule: GreenSchedule) -> list[Violation]:
    """Every violation in ``schedule``, rule by rule, in time order, in plain Python; group indices
    must be valid (:func:`check_schedule` checks them)."""
    names = plan.group_names
    greens = [schedule.intervals(g) for g in range(plan.n_groups)]
    violations: list[Violation] = []

    for g, intervals in enumerate(greens):
        walk = plan.walk_s[g] if plan.group_kind[g] == PEDESTRIAN else 0.0
        for start, end in intervals:
            if start <= schedule.horizon_start_s or math.isinf(end):
                continue
            if end - start < walk - TOLERANCE_S:
                violations.append(Violation("pedestrian_walk", names[g], end,
                                            f"walk of {end - start:.1f} s, under {walk:.1f} s"))
            elif end - start < plan.min_green_s[g] - TOLERANCE_S:
                violations.append(Violation("min_green", names[g], end,
                                            f"green of {end - start:.1f} s, under {plan.min_green_s[g]:.1f} s"))

    for i in range(plan.n_groups):
        for j in range(plan.n_groups):
            if i == j or math.isnan(plan.intergreen_s[i, j]):
                continue
            for start_j, end_j in greens[j]:
                for start_i, end_i in greens[i]:
                    if i < j and start_i < end_j - TOLERANCE_S and start_j < end_i - TOLERANCE_S:
                        violations.append(Violation("conflicting_greens", names[i], max(start_i, start_j),
                                                    f"green with {names[j]}", other=names[j]))
                    if end_i <= start_j + TOLERANCE_S and start_j > schedule.horizon_start_s:
                        gap = start_j - end_i
                        if plan.group_kind[i] == PEDESTRIAN and gap < plan.clearance_s[i] - TOLERANCE_S:
                            violations.append(Violation(
                                "pedestrian_clearance", names[j], start_j,
                                f"starts {gap:.1f} s after pedestrians of {names[i]}, clearance "
                                f"{plan.clearance_s[i]:.1f} s", other=names[i]))
                        elif gap < plan.intergreen_s[i, j] - TOLERANCE_S:
                            violations.append(Violation(
                                "intergreen", names[j], start_j,
                                f"starts {gap:.1f} s after {names[i]} ends, intergreen "
                                f"{plan.intergreen_s[i, j]:.1f} s", other=names[i]))

    for g, intervals in enumerate(greens):
        # Each wait runs from a start (or the horizon's start) to the next start, and from the last
        # start to the horizon's end unless the group is green then.
        waits_from = schedule.horizon_start_s
        starts = [start for start, _ in intervals if start > schedule.horizon_start_s]
        green_at_end = bool(intervals) and intervals[-1][1] >= schedule.horizon_end_s
        for wait_until in [*starts, *([] if green_at_end else [schedule.horizon_end_s])]:
            if wait_until - waits_from > plan.max_cycle_s + TOLERANCE_S:
                violations.append(Violation("max_cycle", names[g], waits_from + plan.max_cycle_s,
                                            f"no green for {wait_until - waits_from:.1f} s, more than the "
                                            f"maximum cycle of {plan.max_cycle_s:.1f} s"))
            waits_from = wait_until
    return sorted(violations, key=lambda v: (v.time_s, v.rule, v.group))
