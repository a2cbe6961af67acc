"""The priority kernels against a plain-Python reference of the same rules, on fixed and random cases.

The reference keeps a plan as a list of ``[stage, green start, green end]`` and works on one
intersection at a time, with the model read from :class:`IntersectionPlan` directly.
"""

import itertools
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pilotage.core.signals import IntersectionPlan, SignalPlans
from pilotage.signal_priority import _kernels

from .test_engine import crossroads, intersections

CLASSES = {"bus": 0, "tram": 1, "emergency": 2}


class Reference:
    """The plan of one intersection and the decision rules, written plainly."""

    def __init__(self, plan: IntersectionPlan, now_s: float, horizon_s: float, history_s: float) -> None:
        self.plan = plan
        self.horizon_s = horizon_s
        self.history_s = history_s
        cycle_start = plan.offset_s + math.floor((now_s - plan.offset_s) / plan.cycle_s) * plan.cycle_s
        self.entries = [[0, cycle_start, cycle_start + plan.green_s[0]]]
        self.recovery_until_s = -math.inf

    def green(self, entry: list, g: int) -> bool:
        return bool(self.plan.stage_groups[entry[0], g])

    def in_progress(self, now_s: float) -> int:
        """The last entry started, or the next one once the interstage after it has begun."""
        current = max([i for i, entry in enumerate(self.entries) if entry[1] <= now_s], default=0)
        if self.entries[current][2] < now_s and current + 1 < len(self.entries):
            current += 1
        return current

    def last_ends(self, upto: int) -> list[float]:
        ends = [-math.inf] * self.plan.n_groups
        for entry in self.entries[:upto + 1]:
            for g in range(self.plan.n_groups):
                if self.green(entry, g):
                    ends[g] = entry[2]
        return ends

    def start_after(self, stage: int, previous: list, now_s: float, last_ends: list[float]) -> float:
        start = max(now_s, previous[2])
        for j in range(self.plan.n_groups):
            if self.plan.stage_groups[stage, j] and not self.plan.stage_groups[previous[0], j]:
                for i in range(self.plan.n_groups):
                    if not math.isnan(self.plan.intergreen_s[i, j]):
                        start = max(start, last_ends[i] + self.plan.intergreen_s[i, j])
        return start

    def retime(self, first: int, now_s: float) -> None:
        for e in range(first, len(self.entries)):
            length = self.entries[e][2] - self.entries[e][1]
            start = self.start_after(self.entries[e][0], self.entries[e - 1], now_s, self.last_ends(e - 1))
            self.entries[e][1:] = [start, start + length]

    def advance(self, now_s: float, capacity: int) -> None:
        while len(self.entries) > 1 and self.entries[0][2] < now_s - self.history_s:
            self.entries.pop(0)
        while len(self.entries) < capacity and self.entries[-1][2] < now_s + self.horizon_s:
            stage = (self.entries[-1][0] + 1) % self.plan.n_stages
            start = self.start_after(stage, self.entries[-1], -math.inf, self.last_ends(len(self.entries) - 1))
            self.entries.append([stage, start, start + self.plan.green_s[stage]])

    def run(self, g: int, t: float) -> tuple[int, int]:
        """(first, last) entries of the green of ``g`` holding ``t`` or the next one; (-1, -1) if none."""
        runs, i = [], 0
        while i < len(self.entries):
            if self.green(self.entries[i], g):
                first = i
                while i + 1 < len(self.entries) and self.green(self.entries[i + 1], g):
                    i += 1
                runs.append((first, i))
            i += 1
        return next(((first, end) for first, end in runs if self.entries[end][2] >= t), (-1, -1))

    def waits_too_long(self) -> bool:
        plan = self.plan
        starts: list[list[float]] = [[self.entries[0][1]] for _ in range(plan.n_groups)]
        for e, entry in enumerate(self.entries):
            for g in range(plan.n_groups):
                if self.green(entry, g) and (e == 0 or not self.green(self.entries[e - 1], g)):
                    starts[g].append(entry[1])
        following = [list(entry) for entry in self.entries]
        for _ in range(2 * plan.n_stages):
            stage = (following[-1][0] + 1) % plan.n_stages
            ends = [-math.inf] * plan.n_groups
            for entry in following:
                for g in range(plan.n_groups):
                    if plan.stage_groups[entry[0], g]:
                        ends[g] = entry[2]
            start = self.start_after(stage, following[-1], -math.inf, ends)
            for g in range(plan.n_groups):
                if plan.stage_groups[stage, g] and not plan.stage_groups[following[-1][0], g]:
                    starts[g].append(start)
            following.append([stage, start, start + plan.green_s[stage]])
        return any(b - a > plan.max_cycle_s + 1e-6 for group in starts for a, b in itertools.pairwise(group))

    def green_too_short(self) -> bool:
        """A whole green (neither the plan's first nor its last run) shorter than its group's minimum."""
        for g in range(self.plan.n_groups):
            held = [self.green(entry, g) for entry in self.entries]
            for first in range(len(held)):
                if held[first] and (first == 0 or not held[first - 1]):
                    last = first
                    while last + 1 < len(held) and held[last + 1]:
                        last += 1
                    whole = first > 0 and last < len(held) - 1
                    length = self.entries[last][2] - self.entries[first][1]
                    if whole and length < self.plan.min_green_s[g] - 1e-6:
                        return True
        return False

    def compensate(self, cut: dict[int, float], after: int, now_s: float) -> None:
        for stage in range(self.plan.n_stages):
            owed = cut.get(stage, 0.0)
            if owed <= 0.0:
                continue
            for i in range(after + 1, len(self.entries)):
                if self.entries[i][0] == stage:
                    extra = min(owed, max(self.plan.stage_max_s[stage] - (self.entries[i][2] - self.entries[i][1]), 0))
                    if extra > 0:
                        self.entries[i][2] += extra
                        self.retime(i + 1, now_s)
                    break

    def decide(self, now_s: float, request: tuple, config: dict, changed: bool, capacity: int) -> tuple:
        """(decision, strategy, green from, green until, reason) of ``request`` = (group, arrival, window,
        class, lateness, occupancy), changing ``self.entries`` if granted."""
        plan = self.plan
        g, eta, window, vehicle_class, lateness, _ = request
        need_until = eta + window
        if (vehicle_class == 0 and lateness < config["bus"]) or (vehicle_class == 1 and lateness < config["tram"]):
            return 0, 0, math.nan, math.nan, _kernels.NOT_LATE
        first, last = self.run(g, eta)
        if first >= 0 and self.entries[first][1] <= eta and self.entries[last][2] >= need_until:
            return 1, _kernels.ALREADY_GREEN, self.entries[first][1], self.entries[last][2], 0
        if changed:
            return 0, 0, math.nan, math.nan, _kernels.OUTRANKED
        if vehicle_class != 2 and now_s < self.recovery_until_s:
            return 0, 0, math.nan, math.nan, _kernels.RECOVERING
        if first < 0 or need_until > self.entries[-1][2]:
            return 0, 0, math.nan, math.nan, _kernels.TOO_EARLY
        saved = [list(entry) for entry in self.entries]
        current = self.in_progress(now_s)
        now_first, now_last = self.run(g, now_s)
        if now_first >= 0 and self.entries[now_first][1] <= now_s:
            first, last = now_first, now_last
        strategy, reason = 0, 0
        if self.entries[first][1] <= eta:
            if need_until - self.entries[last][1] > plan.stage_max_s[self.entries[last][0]]:
                reason = _kernels.OVER_MAX_GREEN
            else:
                self.entries[last][2] = need_until
                self.retime(last + 1, now_s)
                strategy = _kernels.EXTENSION
        else:
            stage_now = self.entries[current][0]
            cut_end = self.entries[current][2]
            if cut_end >= now_s:
                cut_end = min(cut_end, max(now_s, self.entries[current][1] + plan.stage_min_s[stage_now]))
            cut = {stage_now: self.entries[current][2] - cut_end}
            self.entries[current][2] = cut_end
            target = self.entries[first][0]
            can_insert = (config["insertion"] and first > current + 1 and target != stage_now
                          and len(self.entries) < capacity)
            insert_start = math.inf
            if can_insert:
                insert_start = self.start_after(target, self.entries[current], now_s, self.last_ends(current))
            original_start = self.entries[first][1]
            for i in range(current + 1, first):
                stage = self.entries[i][0]
                cut[stage] = cut.get(stage, 0.0) + (self.entries[i][2] - self.entries[i][1]) - plan.stage_min_s[stage]
                self.entries[i][2] = self.entries[i][1] + plan.stage_min_s[stage]
            self.retime(current + 1, now_s)
            early_start = self.entries[first][1]
            if early_start <= eta or insert_start + config["gain"] > early_start:
                if original_start - early_start < config["gain"]:
                    reason = _kernels.NO_GAIN
                else:
                    strategy = _kernels.EARLY_GREEN
                    if self.entries[last][2] < need_until:
                        longest = self.entries[last][1] + plan.stage_max_s[self.entries[last][0]]
                        self.entries[last][2] = max(self.entries[last][2], min(need_until, longest))
                        self.retime(last + 1, now_s)
                    self.compensate(cut, last, now_s)
            else:
                strategy = _kernels.INSERTION
                self.entries = [list(entry) for entry in saved]
                self.entries[current][2] = cut_end
                end = min(max(insert_start + plan.stage_min_s[target], need_until),
                          insert_start + plan.stage_max_s[target])
                self.entries.insert(current + 1, [target, insert_start, end])
                self.retime(current + 2, now_s)
                first = last = current + 1
                self.compensate({stage_now: cut[stage_now]}, current + 1, now_s)
        if strategy and self.green_too_short():
            strategy, reason = 0, _kernels.UNDER_MIN_GREEN
        if strategy and self.waits_too_long():
            strategy, reason = 0, _kernels.OVER_MAX_CYCLE
        if not strategy:
            self.entries = saved
            return 0, 0, math.nan, math.nan, reason
        self.recovery_until_s = self.entries[last][2] + config["recovery"] * plan.cycle_s
        return 1, strategy, self.entries[first][1], self.entries[last][2], 0


class Kernels:
    """The kernels on one intersection, with the arrays the engine would give them."""

    def __init__(self, plan: IntersectionPlan, now_s: float, horizon_s: float, history_s: float,
                 capacity: int) -> None:
        self.plans = SignalPlans([plan])
        self.horizon_s = horizon_s
        self.history_s = np.array([history_s])
        self.stage = np.zeros((1, capacity), dtype=np.int64)
        self.start_s = np.zeros((1, capacity))
        self.end_s = np.zeros((1, capacity))
        self.n = np.zeros(1, dtype=np.int64)
        self.recovery_until_s = np.full(1, -np.inf)
        self.advance(now_s)

    def advance(self, now_s: float) -> None:
        p = self.plans
        _kernels.advance(now_s, self.horizon_s, p.n_stages, p.n_groups, p.stage_groups, p.intergreen_s, p.green_s,
                         p.cycle_s, p.offset_s, self.history_s, self.stage, self.start_s, self.end_s, self.n)

    def entries(self) -> list[list[float]]:
        return [[int(self.stage[0, i]), float(self.start_s[0, i]), float(self.end_s[0, i])] for i in range(self.n[0])]

    def decide(self, now_s: float, requests: list[tuple], config: dict) -> list[tuple]:
        p = self.plans
        count = len(requests)
        columns = list(zip(*requests, strict=True)) if requests else [()] * 6
        out = [np.empty(count, dtype=np.int64), np.empty(count, dtype=np.int64), np.empty(count), np.empty(count),
               np.empty(count, dtype=np.int64)]
        plan = [np.empty_like(self.stage), np.empty_like(self.start_s), np.empty_like(self.end_s),
                np.empty_like(self.n), np.empty_like(self.recovery_until_s)]
        changed = np.zeros(1, dtype=np.bool_)
        _kernels.decide(now_s, np.zeros(count, dtype=np.int64), np.array(columns[0], dtype=np.int64),
                        np.array(columns[1], dtype=float), np.array(columns[2], dtype=float),
                        np.array(columns[3], dtype=np.int64), np.array(columns[4], dtype=float),
                        np.array(columns[5], dtype=float), np.zeros(count, dtype=np.bool_),
                        config["bus"], config["tram"], config["recovery"], config["gain"], config["insertion"],
                        p.n_stages, p.n_groups, p.stage_groups, p.intergreen_s, p.min_green_s, p.green_s,
                        p.stage_min_s, p.stage_max_s, p.cycle_s, p.max_cycle_s, self.stage, self.start_s, self.end_s,
                        self.n, self.recovery_until_s, np.full(1, -np.inf), *plan, np.zeros((1, p.green_s.shape[1])),
                        *out, changed)
        if changed[0]:
            self.stage, self.start_s, self.end_s, self.n, self.recovery_until_s = plan
        return list(zip(*(column.tolist() for column in out), strict=True))


def reference_decide(reference: Reference, now_s: float, requests: list[tuple], config: dict,
                     capacity: int) -> list[tuple]:
    """The reference's ranking: class, then lateness (capped), then occupancy; ties in request order."""
    def key(r: int) -> float:
        _, _, _, vehicle_class, lateness, occupancy = requests[r]
        return vehicle_class * 1e9 + min(max(lateness, 0.0), 1e6) * 100.0 + min(max(occupancy, 0.0), 99.0)

    results: list[tuple] = [()] * len(requests)
    changed = False
    for r in sorted(range(len(requests)), key=lambda r: -key(r)):
        results[r] = reference.decide(now_s, requests[r], config, changed, capacity)
        changed = changed or (results[r][0] == 1 and results[r][1] != _kernels.ALREADY_GREEN)
    return results


def same(kernel: list, reference: list) -> bool:
    return len(kernel) == len(reference) and all(
        abs(a - b) < 1e-6 or (math.isnan(a) and math.isnan(b)) or a == b
        for row_a, row_b in zip(kernel, reference, strict=True) for a, b in zip(row_a, row_b, strict=True))


CONFIG = {"bus": 0.0, "tram": -math.inf, "recovery": 1.0, "gain": 2.0, "insertion": True}
HORIZON_S, CAPACITY = 300.0, 96


def test_fixed_case_matches_the_reference() -> None:
    plan = crossroads()
    kernels = Kernels(plan, 852.0, HORIZON_S, 240.0, CAPACITY)
    reference = Reference(plan, 852.0, HORIZON_S, 240.0)
    reference.advance(852.0, CAPACITY)
    assert same(kernels.entries(), reference.entries)
    requests = [(1, 872.0, 5.0, 0, 120.0, 10.0), (0, 950.0, 5.0, 1, 0.0, 0.0)]
    assert same(kernels.decide(852.0, requests, CONFIG), reference_decide(reference, 852.0, requests, CONFIG,
                                                                          CAPACITY))
    assert same(kernels.entries(), reference.entries)
    assert kernels.entries()[1][1] == pytest.approx(863.0)  # side starts 5 s after main's 8 s minimum


@given(intersections(), st.floats(0.0, 1e4),
       st.lists(st.tuples(st.floats(0.0, 30.0),
                          st.lists(st.tuples(st.integers(0, 9), st.floats(0.0, 150.0), st.floats(0.0, 10.0),
                                             st.sampled_from([0, 1, 2]), st.floats(-60.0, 300.0),
                                             st.floats(0.0, 100.0)), max_size=4)), max_size=8))
def test_kernels_match_the_reference(plan: IntersectionPlan, start_s: float, steps: list) -> None:
    history_s = 2.0 * plan.max_cycle_s
    kernels = Kernels(plan, start_s, HORIZON_S, history_s, CAPACITY)
    reference = Reference(plan, start_s, HORIZON_S, history_s)
    reference.advance(start_s, CAPACITY)
    assert same(kernels.entries(), reference.entries)
    now_s = start_s
    for wait_s, batch in steps:
        now_s += wait_s
        kernels.advance(now_s)
        reference.advance(now_s, CAPACITY)
        assert same(kernels.entries(), reference.entries)
        requests = [(g % plan.n_groups, now_s + eta, window, vehicle_class, lateness, occupancy)
                    for g, eta, window, vehicle_class, lateness, occupancy in batch]
        assert same(kernels.decide(now_s, requests, CONFIG),
                    reference_decide(reference, now_s, requests, CONFIG, CAPACITY))
        assert same(kernels.entries(), reference.entries)


@given(intersections(), st.floats(0.0, 1e4), st.floats(0.0, 200.0), st.integers(0, 9))
def test_release_matches_the_reference(plan: IntersectionPlan, start_s: float, later_s: float, group: int) -> None:
    g = group % plan.n_groups
    kernels = Kernels(plan, start_s, HORIZON_S, 2.0 * plan.max_cycle_s, CAPACITY)
    reference = Reference(plan, start_s, HORIZON_S, 2.0 * plan.max_cycle_s)
    reference.advance(start_s, CAPACITY)
    now_s = start_s + later_s
    kernels.advance(now_s)
    reference.advance(now_s, CAPACITY)
    p = kernels.plans
    ended = _kernels.release(now_s, 0, g, p.n_groups, p.stage_groups, p.intergreen_s, p.stage_min_s, kernels.stage,
                             kernels.start_s, kernels.end_s, kernels.n)
    first, last = reference.run(g, now_s)
    expected = math.nan
    if first >= 0 and reference.entries[first][1] <= now_s:
        new_end = max(now_s, reference.entries[last][1] + plan.stage_min_s[reference.entries[last][0]])
        if new_end < reference.entries[last][2]:
            reference.entries[last][2] = new_end
            reference.retime(last + 1, now_s)
            expected = new_end
    assert (math.isnan(ended) and math.isnan(expected)) or ended == pytest.approx(expected)
    assert same(kernels.entries(), reference.entries)
