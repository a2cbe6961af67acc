"""The priority kernels against a plain-Python reference of the same rules, on fixed and random cases.

The reference keeps the plan of one intersection as a list of ``[stage, green start, green end]``,
its priority state as plain values and dicts, and reads the model from :class:`IntersectionPlan`
directly; it shares nothing with the kernels but their constants (classes, strategies, reasons).
The harness :class:`Kernels` calls the kernels as :class:`PriorityEngine` does: packed requests,
the priority state carried between calls, the budget and cut streaks committed with the plan only
where it changed and the promises at every intersection a batch names, a check-out worked on a copy
that is kept only when it ends a green (and then ends with it the promises of that group that have
begun and ran past that end), and a pre-emption that takes back every promise at its intersection.
"""

import contextlib
import dataclasses
import itertools
import math
from collections import Counter
from typing import NamedTuple

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from pilotage.core import InvalidInputError
from pilotage.core.safety import GreenSchedule, check_schedule
from pilotage.core.signals import IntersectionPlan, SignalPlans
from pilotage.signal_priority import PriorityConfig
from pilotage.signal_priority import _kernels as kn

from .test_engine import crossroads, intersections

# Times within this of each other are equal, as for the kernels (s).
TOLERANCE_S = 1e-6
REASONS = range(kn.PROMISED + 1)
STRATEGIES = (kn.NONE, kn.ALREADY_GREEN, kn.EXTENSION, kn.EARLY_GREEN)
NAN = math.nan
# A promise slot never used (or taken back by a pre-emption): (from, until).
NEVER = (-math.inf, -math.inf)


class Ask(NamedTuple):
    """A request as the kernels take it: intersection and group indices, absolute times (s)."""

    k: int
    g: int
    earliest_s: float
    latest_s: float
    queue_s: float
    vehicle_class: int
    lateness_s: float
    occupancy: float
    headway_ahead_s: float = math.inf
    headway_behind_s: float = -math.inf


# An answer: (decision, strategy, green from, green until, reason, base end), NaN times when denied.
Answer = tuple[int, int, float, float, int, float]


def denied(reason: int) -> Answer:
    """A refusal for ``reason``."""
    return kn.DENIED, kn.NONE, NAN, NAN, reason, NAN


class Reference:
    """The plan of one intersection, its priority state and the decision rules, written plainly."""

    def __init__(self, plan: IntersectionPlan, now_s: float, horizon_s: float, capacity: int) -> None:
        self.plan = plan
        self.horizon_s = horizon_s
        # Two maximum cycles behind, as the engine keeps.
        self.history_s = 2.0 * plan.max_cycle_s
        self.capacity = capacity
        cycle_start = plan.offset_s + math.floor((now_s - plan.offset_s) / plan.cycle_s) * plan.cycle_s
        self.entries = [[0, cycle_start, cycle_start + plan.green_s[0]]]
        # Where each stage starts in the base cycle: the greens and interstages before it.
        self.stage_offset_s = [0.0]
        for s in range(plan.n_stages - 1):
            self.stage_offset_s.append(self.stage_offset_s[-1] + (plan.green_s[s] + plan.interstage_s(s, s + 1)))
        # The green moved in each of the (at most) two latest cycles counted: {cycle: seconds}.
        self.budget: dict[float, float] = {}
        # Per group promised once, its two slots in order, each (from, until): NEVER if never used, over
        # once until <= now.
        self.promised: dict[int, list[tuple[float, float]]] = {}
        # Per stage cut for priority: the last cycle it was cut in, and in how many consecutive cycles.
        self.cut_history: dict[int, tuple[float, float]] = {}
        self.advance(now_s)

    # -- the plan ----------------------------------------------------------------------------------------

    def green(self, entry: list, g: int) -> bool:
        """Whether ``entry`` holds group ``g`` green."""
        return bool(self.plan.stage_groups[entry[0], g])

    def length(self, i: int) -> float:
        """The green of entry ``i``."""
        return self.entries[i][2] - self.entries[i][1]

    def copy(self) -> list[list]:
        """A copy of the plan, to put back."""
        return [list(entry) for entry in self.entries]

    def in_progress(self, now_s: float) -> int:
        """The last entry started, or the next one once the interstage after it has begun."""
        current = max([i for i, entry in enumerate(self.entries) if entry[1] <= now_s], default=0)
        if self.entries[current][2] < now_s and current + 1 < len(self.entries):
            current += 1
        return current

    def last_ends(self, upto: int) -> list[float]:
        """The end of every group's last green among entries ``0..upto``."""
        ends = [-math.inf] * self.plan.n_groups
        for entry in self.entries[:upto + 1]:
            for g in range(self.plan.n_groups):
                if self.green(entry, g):
                    ends[g] = entry[2]
        return ends

    def start_after(self, stage: int, previous: list, now_s: float, last_ends: list[float]) -> float:
        """The earliest safe start of ``stage`` after the entry ``previous``, not before ``now_s``."""
        start = max(now_s, previous[2])
        for j in range(self.plan.n_groups):
            if self.plan.stage_groups[stage, j] and not self.plan.stage_groups[previous[0], j]:
                for i in range(self.plan.n_groups):
                    if not math.isnan(self.plan.intergreen_s[i, j]):
                        start = max(start, last_ends[i] + self.plan.intergreen_s[i, j])
        return start

    def retime(self, first: int, stop: int, now_s: float) -> None:
        """Start entries ``first..stop - 1`` at their earliest safe time, each keeping its length."""
        for e in range(first, stop):
            length = self.length(e)
            start = self.start_after(self.entries[e][0], self.entries[e - 1], now_s, self.last_ends(e - 1))
            self.entries[e][1:] = [start, start + length]

    def advance(self, now_s: float) -> int:
        """Forget what ended more than the history ago; base stages up to the horizon, or a full plan.
        Returns the index of the first entry laid (the plan's length when none was)."""
        while len(self.entries) > 1 and self.entries[0][2] < now_s - self.history_s:
            self.entries.pop(0)
        laid_from = len(self.entries)
        while len(self.entries) < self.capacity and self.entries[-1][2] < now_s + self.horizon_s:
            stage = (self.entries[-1][0] + 1) % self.plan.n_stages
            start = self.start_after(stage, self.entries[-1], -math.inf, self.last_ends(len(self.entries) - 1))
            self.entries.append([stage, start, start + self.plan.green_s[stage]])
        return laid_from

    def run(self, g: int, t: float, start: int = 0) -> tuple[int, int]:
        """(first, last) entries, from ``start`` on, of the green of ``g`` holding ``t`` or the next one;
        (-1, -1) if none."""
        i = start
        while i < len(self.entries):
            if self.green(self.entries[i], g):
                first = i
                while i + 1 < len(self.entries) and self.green(self.entries[i + 1], g):
                    i += 1
                if self.entries[i][2] >= t:
                    return first, i
            i += 1
        return -1, -1

    def waits_too_long(self) -> bool:
        """Whether a group waits more than the maximum cycle between two starts, the plan followed by
        two base cycles (the first wait from the plan's start)."""
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

    # -- the fixed-cycle frame ---------------------------------------------------------------------------

    def next_cycle_start(self, after: int) -> int:
        """The first entry after ``after`` of stage 0; -1 if none."""
        return next((i for i in range(after + 1, len(self.entries)) if self.entries[i][0] == 0), -1)

    def cycle_of(self, start_s: float, stage: int) -> float:
        """The cycle (counted from the offset) nearest to ``stage`` starting at ``start_s``."""
        return math.floor((start_s - self.plan.offset_s - self.stage_offset_s[stage]) / self.plan.cycle_s + 0.5)

    def fit_to_anchor(self, anchor: int, now_s: float) -> bool:
        """The entry before ``anchor`` takes the time left before it; the anchor and a cycle of entries
        after it must still start no sooner than is safe."""
        entries = self.entries
        slack = entries[anchor][1] - self.start_after(entries[anchor][0], entries[anchor - 1], now_s,
                                                      self.last_ends(anchor - 1))
        if slack < -TOLERANCE_S:
            return False
        if slack > TOLERANCE_S:
            entries[anchor - 1][2] += slack
        for e in range(anchor, min(len(entries), anchor + self.plan.n_stages + 1)):
            if self.start_after(entries[e][0], entries[e - 1], now_s, self.last_ends(e - 1)) \
                    > entries[e][1] + TOLERANCE_S:
                return False
        return True

    def note_cut(self, i: int, cut_s: float, cuts: dict[int, list[float]]) -> None:
        """Count ``cut_s`` taken from entry ``i`` for its stage: [first cycle, last cycle, seconds]."""
        stage = self.entries[i][0]
        cycle = self.cycle_of(self.entries[i][1], stage)
        if stage in cuts:
            first, last, seconds = cuts[stage]
            cuts[stage] = [min(first, cycle), max(last, cycle), seconds + cut_s]
        else:
            cuts[stage] = [cycle, cycle, cut_s]

    def spare(self, i: int) -> float:
        """What entry ``i`` has above its stage's minimum."""
        return max(0.0, self.length(i) - self.plan.stage_min_s[self.entries[i][0]])

    def extend(self, last: int, extra_s: float, now_s: float, cuts: dict) -> tuple[int, int]:
        """Lengthen entry ``last`` by ``extra_s``, cutting the entries up to the next cycle start, or the
        one after when those cannot give it all, in proportion to their spare green. (reason, anchor)."""
        anchor = self.next_cycle_start(last)
        if anchor < 0:
            return kn.TOO_EARLY, -1
        room = sum(self.spare(i) for i in range(last + 1, anchor))
        if room < extra_s - TOLERANCE_S:
            anchor = self.next_cycle_start(anchor)
            if anchor < 0:
                return kn.TOO_EARLY, -1
            room = sum(self.spare(i) for i in range(last + 1, anchor))
            if room < extra_s - TOLERANCE_S:
                return kn.NO_ROOM, -1
        if room <= 0.0:
            return kn.NO_ROOM, -1
        for i in range(last + 1, anchor):
            spare = self.spare(i)
            if spare > 0.0:
                self.note_cut(i, extra_s * spare / room, cuts)
                self.entries[i][2] -= extra_s * spare / room
        self.entries[last][2] += extra_s
        self.retime(last + 1, anchor, now_s)
        if not self.fit_to_anchor(anchor, now_s):
            return kn.NO_ROOM, -1
        return kn.OK, anchor

    def room_before(self, i: int, current: int, g: int, now_s: float) -> float:
        """What entry ``i`` can give an early green of ``g``: nothing if it serves ``g``, else its green
        above its minimum, and above now for the entry in progress."""
        entry = self.entries[i]
        if self.green(entry, g):
            return 0.0
        low = entry[1] + self.plan.stage_min_s[entry[0]]
        if i == current and entry[1] <= now_s:
            low = max(low, now_s)
        return max(0.0, entry[2] - low)

    def early_green(self, g: int, first: int, wanted_s: float, now_s: float, cuts: dict) -> float:
        """Start entry ``first`` up to ``wanted_s`` sooner, its end kept and its length within its
        stage's maximum, from the entries since the one in progress; returns how much sooner it starts."""
        current = self.in_progress(now_s)
        room = sum(self.room_before(i, current, g, now_s) for i in range(current, first))
        stage_max = self.plan.stage_max_s[self.entries[first][0]]
        take = min(wanted_s, room, max(0.0, stage_max - self.length(first)))
        if take <= TOLERANCE_S:
            return 0.0
        for i in range(current, first):
            spare = self.room_before(i, current, g, now_s)
            if spare > 0.0:
                self.note_cut(i, take * spare / room, cuts)
                self.entries[i][2] -= take * spare / room
        start, end = self.entries[first][1:]
        self.retime(current + 1, first + 1, now_s)
        self.entries[first][2] = end
        return start - self.entries[first][1]

    def pay_back(self, anchor: int, target: int, cuts: dict, now_s: float) -> bool:
        """In the cycle from ``anchor``, ``target``'s entry gives every other stage what was cut from it
        (each up to its maximum), the next cycle keeping its start; nothing changes when it cannot."""
        following = self.next_cycle_start(anchor) if anchor >= 0 else -1
        if following < 0:
            return False
        owed = sum(cuts[s][2] for s in sorted(cuts) if s != target)
        giver = next((i for i in range(anchor, following) if self.entries[i][0] == target), -1)
        if owed <= TOLERANCE_S:
            return True
        if giver < 0 or self.length(giver) - self.plan.stage_min_s[target] < owed:
            return False
        saved = self.copy()
        given = 0.0
        given_to: dict[int, float] = {}
        for i in range(anchor, following):
            stage = self.entries[i][0]
            if stage != target and stage in cuts and cuts[stage][2] > 0.0:
                add = min(cuts[stage][2] - given_to.get(stage, 0.0),
                          max(0.0, self.plan.stage_max_s[stage] - self.length(i)))
                self.entries[i][2] += add
                given_to[stage] = given_to.get(stage, 0.0) + add
                given += add
        self.entries[giver][2] -= given
        self.retime(anchor + 1, following, now_s)
        if given < owed - TOLERANCE_S or not self.fit_to_anchor(following, now_s):
            self.entries = saved
            return False
        return True

    # -- decisions ---------------------------------------------------------------------------------------

    @staticmethod
    def crossing_s(ask: Ask, green_start_s: float, now_s: float) -> float:
        """When the vehicle crosses at the latest: its latest arrival, or once the queue ahead has gone."""
        return max(ask.latest_s, max(green_start_s, now_s) + ask.queue_s)

    def over_max_green(self, last: int, extra_s: float, config: PriorityConfig) -> bool:
        """Whether ``extra_s`` more for entry ``last`` is over the cap or its stage's maximum."""
        entry = self.entries[last]
        return extra_s > config.max_extension_s + TOLERANCE_S \
            or extra_s + entry[2] - entry[1] > self.plan.stage_max_s[entry[0]]

    def screen(self, now_s: float, ask: Ask, config: PriorityConfig, preempted_until_s: float) -> int:
        """Why a request is refused before the plan is looked at (OK: it is not)."""
        if now_s < preempted_until_s:
            return kn.PREEMPTED
        threshold = {kn.BUS: config.bus_lateness_s, kn.TRAM: config.tram_lateness_s}.get(ask.vehicle_class)
        if threshold is not None and ask.lateness_s < threshold:
            return kn.NOT_LATE
        if ask.vehicle_class != kn.EMERGENCY and ask.headway_ahead_s < ask.headway_behind_s:
            return kn.BUNCHING
        return kn.OK

    def plan_request(self, now_s: float, ask: Ask, config: PriorityConfig, cuts: dict) -> tuple[Answer, float]:
        """The answer to ``ask`` and the green it moves (-1 when the plan is not to be kept changed)."""
        entries = self.entries
        first, last = self.run(ask.g, now_s)
        if first < 0 or ask.latest_s > entries[-1][2]:
            return denied(kn.TOO_EARLY), -1.0
        reason = kn.OK
        if entries[first][1] <= now_s:
            # Green now: it holds the vehicle, or it is extended, or the vehicle meets the next one.
            crossing = self.crossing_s(ask, entries[first][1], now_s)
            if entries[last][2] >= crossing - TOLERANCE_S:
                return (kn.GRANTED, kn.ALREADY_GREEN, entries[first][1], entries[last][2], kn.OK,
                        entries[last][2]), -1.0
            base_end = entries[last][2]
            extra = crossing - base_end
            if self.over_max_green(last, extra, config):
                reason = kn.OVER_MAX_GREEN
            else:
                saved = self.copy()
                reason, anchor = self.extend(last, extra, now_s, cuts)
                if reason == kn.OK and self.pay_back(anchor, self.entries[last][0], cuts, now_s):
                    return (kn.GRANTED, kn.EXTENSION, self.entries[first][1], self.entries[last][2], kn.OK,
                            base_end), extra
                if reason == kn.OK:
                    reason = kn.NO_PAYBACK
                self.entries = entries = saved
                cuts.clear()
            first, last = self.run(ask.g, entries[last][2], last + 1)
            if first < 0 or ask.latest_s > entries[-1][2]:
                return denied(reason), -1.0
        # The green to come: sooner when the vehicle would wait for it (as far as the budget of its
        # cycle goes), longer when it ends too soon.
        gain = 0.0
        cycle = self.cycle_of(entries[first][1], entries[first][0])
        left = config.cycle_share * self.plan.cycle_s - self.budget.get(cycle, 0.0)
        wanted = entries[first][1] - (ask.earliest_s - ask.queue_s)
        if wanted >= config.min_gain_s and left < config.min_gain_s:
            return denied(kn.OVER_BUDGET), -1.0
        wanted = min(wanted, left)
        if wanted >= config.min_gain_s:
            gain = self.early_green(ask.g, first, min(wanted, config.max_early_green_s), now_s, cuts)
            if gain < config.min_gain_s:
                return denied(kn.NO_GAIN if reason == kn.OK else reason), -1.0
        base_end = entries[last][2]
        extra = self.crossing_s(ask, entries[first][1], now_s) - base_end
        if extra > TOLERANCE_S:
            if self.over_max_green(last, extra, config):
                return denied(kn.OVER_MAX_GREEN), -1.0
            reason, anchor = self.extend(last, extra, now_s, cuts)
            if reason != kn.OK:
                return denied(reason), -1.0
        else:
            extra = 0.0
            anchor = self.next_cycle_start(last)
        if gain <= 0.0 and extra <= 0.0:
            return (kn.GRANTED, kn.ALREADY_GREEN, entries[first][1], entries[last][2], kn.OK, entries[last][2]), -1.0
        # The stage that got the time pays it back: the one started sooner, else the one lengthened.
        if not self.pay_back(anchor, entries[first if gain > 0.0 else last][0], cuts, now_s):
            return denied(kn.NO_PAYBACK), -1.0
        strategy = kn.EARLY_GREEN if gain > 0.0 else kn.EXTENSION
        return (kn.GRANTED, strategy, self.entries[first][1], self.entries[last][2], kn.OK, base_end), gain + extra

    def streak(self, stage: int, cut: list[float]) -> float:
        """The consecutive cycles ``stage`` is cut in, with the cut ``cut`` (first, last cycle, s)."""
        if stage in self.cut_history:
            last_cycle, streak = self.cut_history[stage]
            if cut[0] <= last_cycle + 1:
                return streak + max(0.0, cut[1] - last_cycle)
        return cut[1] - cut[0] + 1

    def within_limits(self, moved_s: float, cycle: float, config: PriorityConfig, cuts: dict) -> int:
        """The budget of ``cycle`` and every stage's limit of consecutive cycles cut; counted if kept."""
        used = self.budget.get(cycle, 0.0)
        if used + moved_s > config.cycle_share * self.plan.cycle_s + TOLERANCE_S:
            return kn.OVER_BUDGET
        if any(self.streak(s, cuts[s]) > config.max_cut_cycles + TOLERANCE_S for s in cuts):
            return kn.CUT_LIMIT
        if cycle not in self.budget and len(self.budget) == 2:
            # Two cycles are kept: a third replaces the earliest.
            del self.budget[min(self.budget)]
        self.budget[cycle] = used + moved_s
        for s in sorted(cuts):
            last_cycle = max(self.cut_history[s][0], cuts[s][1]) if s in self.cut_history else cuts[s][1]
            self.cut_history[s] = (last_cycle, self.streak(s, cuts[s]))
        return kn.OK

    # -- promises ----------------------------------------------------------------------------------------

    def keeps_promises(self, now_s: float) -> bool:
        """Whether every promise not yet over, in either slot, is still shown: from its start (or now,
        once begun) the group is green, in one run of entries, until the promise ends."""
        for g, slots in self.promised.items():
            for since, until in slots:
                if until <= now_s:
                    continue
                start = max(since, now_s)
                first, last = self.run(g, start)
                if first < 0 or self.entries[first][1] > start + TOLERANCE_S \
                        or self.entries[last][2] < until - TOLERANCE_S:
                    return False
        return True

    def promise(self, g: int, now_s: float, green_from_s: float, green_until_s: float) -> None:
        """Record a grant's green for ``g`` in one of its two slots. The first promise not yet over that
        this green overlaps (within the tolerance) grows to cover both. Else the green goes into the
        last slot whose promise is over (or never made); else, both still to end, into the slot of
        the one that ends later (the first on a tie) if this green starts no later than that one
        does (its vehicle will ask again), and is not promised if it starts after it."""
        slots = self.promised.setdefault(g, [NEVER] * kn.P_SLOTS)
        running = [until > now_s for _, until in slots]
        for i, (since, until) in enumerate(slots):
            if running[i] and green_from_s <= until + TOLERANCE_S and green_until_s >= since - TOLERANCE_S:
                slots[i] = (min(since, green_from_s), max(until, green_until_s))
                return
        over = [i for i, is_running in enumerate(running) if not is_running]
        if over:
            slots[over[-1]] = (green_from_s, green_until_s)
            return
        later = 0
        for i, (_, until) in enumerate(slots):
            if until > slots[later][1]:
                later = i
        if green_from_s <= slots[later][0]:
            slots[later] = (green_from_s, green_until_s)

    def preempted(self) -> None:
        """A pre-emption takes back every promise."""
        self.promised.clear()

    # -- one request, one check-out -----------------------------------------------------------------------

    def decide(self, now_s: float, ask: Ask, config: PriorityConfig, preempted_until_s: float) -> Answer:
        """Decide ``ask`` on the plan the requests ranked before it left; a change that takes back a
        promised green, breaks a minimum green, the maximum cycle, the budget or a cut limit is undone.
        Every grant, changing the plan or not, is promised."""
        reason = self.screen(now_s, ask, config, preempted_until_s)
        if reason != kn.OK:
            return denied(reason)
        saved = self.copy()
        cuts: dict[int, list[float]] = {}
        answer, moved = self.plan_request(now_s, ask, config, cuts)
        if moved < 0.0:
            self.entries = saved
            if answer[0] == kn.GRANTED:
                self.promise(ask.g, now_s, answer[2], answer[3])
            return answer
        if not self.keeps_promises(now_s):
            reason = kn.PROMISED
        elif self.green_too_short():
            reason = kn.UNDER_MIN_GREEN
        elif self.waits_too_long():
            reason = kn.OVER_MAX_CYCLE
        else:
            green_from = answer[2]
            stage = self.entries[self.in_progress(green_from)][0]
            reason = self.within_limits(moved, self.cycle_of(green_from, stage), config, cuts)
        if reason != kn.OK:
            self.entries = saved
            return denied(reason)
        self.promise(ask.g, now_s, answer[2], answer[3])
        return answer

    def release(self, now_s: float, g: int, base_end_s: float) -> float:
        """A check-out: end ``g``'s green at the later of now, ``base_end_s`` and its stage's minimum,
        the time given to the entries up to the first cycle start after it, in proportion to what
        each lacks of its base green; every promise to ``g`` begun by now and running past the new end
        ends with the green (one for a later green stays). Returns the new end, or
        NaN when nothing changes (nothing to give, the frame does not close, a green under its minimum)."""
        plan, entries = self.plan, self.entries
        first, last = self.run(g, now_s)
        if first < 0 or entries[first][1] > now_s:
            return NAN
        end = entries[last][2]
        new_end = max(now_s, base_end_s, entries[last][1] + plan.stage_min_s[entries[last][0]])
        anchor = self.next_cycle_start(last)
        if new_end >= end - TOLERANCE_S or anchor < 0:
            return NAN
        shorts = [max(0.0, plan.green_s[entries[i][0]] - self.length(i)) for i in range(last + 1, anchor)]
        lacking = sum(shorts)
        given = min(end - new_end, lacking)
        if given <= TOLERANCE_S:
            return NAN
        saved = self.copy()
        for i, short in zip(range(last + 1, anchor), shorts, strict=True):
            entries[i][2] += given * short / lacking
        entries[last][2] = end - given
        self.retime(last + 1, anchor, now_s)
        if not self.fit_to_anchor(anchor, now_s) or self.green_too_short():
            self.entries = saved
            return NAN
        ended = self.entries[last][2]
        slots = self.promised.get(g, [])
        for i, (since, until) in enumerate(slots):
            if since <= now_s and until > ended:
                slots[i] = (since, ended)
        return ended

    def state(self) -> tuple:
        """The priority state: ({cycle: green moved}, {stage: (last cycle cut, streak)}, {group: ((promised
        from, until) of each slot)})."""
        return dict(self.budget), dict(self.cut_history), {g: tuple(slots) for g, slots in self.promised.items()}


def reference_decide(references: list[Reference], now_s: float, asks: list[Ask], config: PriorityConfig,
                     preempted_until_s: list[float]) -> list[Answer]:
    """Rank the requests (class, then people on board, then lateness, each the higher first; ties in
    the order given) and decide each at its intersection."""
    def rank(r: int) -> tuple[float, float, float]:
        ask = asks[r]
        return -ask.vehicle_class, -ask.occupancy, -ask.lateness_s

    answers: list[Answer] = [denied(kn.OK)] * len(asks)
    for r in sorted(range(len(asks)), key=rank):
        answers[r] = references[asks[r].k].decide(now_s, asks[r], config, preempted_until_s[asks[r].k])
    return answers


class Kernels:
    """The kernels on a few intersections, called with the arrays the engine gives them."""

    def __init__(self, plans: list[IntersectionPlan], now_s: float, horizon_s: float, capacity: int) -> None:
        self.plans = SignalPlans(plans)
        count, stages, groups = len(plans), self.plans.green_s.shape[1], self.plans.stage_groups.shape[2]
        self.horizon_s = horizon_s
        self.history_s = 2.0 * self.plans.max_cycle_s
        self.stage = np.zeros((count, capacity), dtype=np.int64)
        self.start_s = np.zeros((count, capacity))
        self.end_s = np.zeros((count, capacity))
        self.n = np.zeros(count, dtype=np.int64)
        self.budget = np.zeros((count, 2 * kn.B_SLOTS))
        self.budget[:, kn.B_CYCLE::2] = kn.NO_CYCLE
        self.stage_cuts = np.zeros((count, stages, 2))
        self.stage_cuts[:, :, kn.C_LAST_CYCLE] = kn.NO_CYCLE
        self.promised_s = np.full((count, groups, 2 * kn.P_SLOTS), -math.inf)
        self.advance(now_s)

    def advance(self, now_s: float) -> list[int]:
        """Bring every plan to ``now_s``; returns the index of the first entry laid in each."""
        p = self.plans
        laid_from = np.empty(len(p), dtype=np.int64)
        kn.advance(now_s, self.horizon_s, p.n_stages, p.n_groups, p.stage_groups, p.intergreen_s, p.green_s,
                   p.cycle_s, p.offset_s, self.history_s, self.stage, self.start_s, self.end_s, self.n, laid_from)
        return laid_from.tolist()

    def entries(self, k: int) -> list[list]:
        """The plan of intersection ``k`` as the reference keeps it."""
        return [[int(self.stage[k, i]), float(self.start_s[k, i]), float(self.end_s[k, i])] for i in range(self.n[k])]

    def state(self, k: int) -> tuple:
        """The priority state of intersection ``k`` as the reference keeps it."""
        budget = {cycle: moved for cycle, moved in self.budget[k].reshape(kn.B_SLOTS, 2).tolist()
                  if cycle != kn.NO_CYCLE}
        cuts = {s: (float(last), float(streak)) for s, (last, streak) in enumerate(self.stage_cuts[k].tolist())
                if last != kn.NO_CYCLE}
        promised = {g: tuple((row[2 * slot + kn.P_FROM_S], row[2 * slot + kn.P_UNTIL_S])
                             for slot in range(kn.P_SLOTS))
                    for g, row in enumerate(self.promised_s[k].tolist())
                    if any(row[2 * slot + kn.P_UNTIL_S] != -math.inf for slot in range(kn.P_SLOTS))}
        return budget, cuts, promised

    def proposal(self) -> list[np.ndarray]:
        """Copies of the plans and priority state, for a kernel to write a proposal into: plan (4
        arrays), budget, cut streaks, promises."""
        return [self.stage.copy(), self.start_s.copy(), self.end_s.copy(), self.n.copy(), self.budget.copy(),
                self.stage_cuts.copy(), self.promised_s.copy()]

    def commit(self, k: int, proposal: list[np.ndarray]) -> None:
        """Keep intersection ``k``'s proposed plan, budget and cut streaks."""
        for kept, proposed in zip((self.stage, self.start_s, self.end_s, self.n, self.budget, self.stage_cuts),
                                  proposal[:6], strict=True):
            kept[k] = proposed[k]

    def decide(self, now_s: float, asks: list[Ask], config: PriorityConfig,
               preempted_until_s: list[float]) -> list[Answer]:
        """One call of ``decide`` for the batch; the plans that changed are kept, and the promises of
        every intersection the batch names."""
        p = self.plans
        requests = np.empty((len(asks), kn.N_REQUEST_FIELDS))
        for r, ask in enumerate(asks):
            requests[r, kn.R_INTERSECTION] = ask.k
            requests[r, kn.R_GROUP] = ask.g
            requests[r, kn.R_EARLIEST_S] = ask.earliest_s
            requests[r, kn.R_LATEST_S] = ask.latest_s
            requests[r, kn.R_QUEUE_S] = ask.queue_s
            requests[r, kn.R_CLASS] = ask.vehicle_class
            requests[r, kn.R_LATENESS_S] = ask.lateness_s
            requests[r, kn.R_OCCUPANCY] = ask.occupancy
            requests[r, kn.R_HEADWAY_AHEAD_S] = ask.headway_ahead_s
            requests[r, kn.R_HEADWAY_BEHIND_S] = ask.headway_behind_s
        plan = self.proposal()
        work = self.proposal()[:4]
        out = np.full((len(asks), kn.N_OUT_FIELDS), -1.0)
        changed = np.zeros(len(p), dtype=np.bool_)
        kn.decide(now_s, requests, config.settings(), p.n_stages, p.n_groups, p.stage_groups, p.intergreen_s,
                  p.min_green_s, p.green_s, p.stage_min_s, p.stage_max_s, p.cycle_s, p.max_cycle_s, p.offset_s,
                  p.stage_offset_s, self.stage, self.start_s, self.end_s, self.n, self.budget, self.stage_cuts,
                  self.promised_s, np.array(preempted_until_s, dtype=float), *plan, *work, out, changed)
        for k in np.flatnonzero(changed):
            self.commit(int(k), plan)
        for k in {ask.k for ask in asks}:
            self.promised_s[k] = plan[6][k]
        return [(int(row[kn.O_DECISION]), int(row[kn.O_STRATEGY]), row[kn.O_GREEN_FROM_S], row[kn.O_GREEN_UNTIL_S],
                 int(row[kn.O_REASON]), row[kn.O_BASE_END_S]) for row in out.tolist()]

    def release(self, now_s: float, k: int, g: int, base_end_s: float) -> float:
        """One call of ``release`` on a proposal, kept when it ends the green; then, as the engine does,
        every promise to ``g`` that has begun by now and runs past the new end ends with it."""
        p = self.plans
        plan = self.proposal()
        ended = kn.release(now_s, k, g, base_end_s, p.n_stages, p.n_groups, p.stage_groups, p.intergreen_s,
                           p.min_green_s, p.green_s, p.stage_min_s, *plan[:4])
        if not math.isnan(ended):
            self.commit(k, plan)
            for slot in range(kn.P_SLOTS):
                if self.promised_s[k, g, 2 * slot + kn.P_FROM_S] <= now_s \
                        and self.promised_s[k, g, 2 * slot + kn.P_UNTIL_S] > ended:
                    self.promised_s[k, g, 2 * slot + kn.P_UNTIL_S] = ended
        return ended

    def preempted(self, k: int) -> None:
        """A pre-emption applied at ``k`` takes back its promises."""
        self.promised_s[k] = -math.inf


def same(kernel: object, reference: object) -> bool:
    """Equal, numbers within the tolerance (NaN equals NaN), lists, tuples and dicts element-wise."""
    if isinstance(kernel, dict) and isinstance(reference, dict):
        return kernel.keys() == reference.keys() and all(same(kernel[key], reference[key]) for key in kernel)
    if isinstance(kernel, list | tuple) and isinstance(reference, list | tuple):
        return len(kernel) == len(reference) and all(same(a, b) for a, b in zip(kernel, reference, strict=True))
    if isinstance(kernel, float | int) and isinstance(reference, float | int):
        return kernel == reference or abs(kernel - reference) < TOLERANCE_S \
            or (math.isnan(kernel) and math.isnan(reference))
    return kernel == reference


class Step(NamedTuple):
    """One step of a random case: wait, pre-empt for a while (or not), check out a grant (or not:
    which one, and when, see :func:`drive`), then decide a batch of requests (intersection, group,
    arrival (see :func:`arrival`), window, queued vehicles, class, lateness, occupancy, headways
    ahead and behind or None)."""

    wait_s: float
    preempt: tuple[int, float] | None
    check_out: tuple[int, float | None] | None
    batch: list[tuple]


class Case(NamedTuple):
    """A random case: intersections, the start time, the settings, the plans' horizon and capacity."""

    plans: list[IntersectionPlan]
    start_s: float
    config: PriorityConfig
    horizon_s: float
    capacity: int
    steps: list[Step]


def schedule(plan: IntersectionPlan, entries: list[list]) -> GreenSchedule:
    """The greens of a plan's entries, for the safety monitor: a group green in consecutive entries
    is green between them, and a green the plan ends with goes on."""
    group, start, end = [], [], []
    for g in range(plan.n_groups):
        i = 0
        while i < len(entries):
            if plan.stage_groups[entries[i][0], g]:
                first = i
                while i + 1 < len(entries) and plan.stage_groups[entries[i + 1][0], g]:
                    i += 1
                group.append(g)
                start.append(entries[first][1])
                end.append(entries[i][2] if i < len(entries) - 1 else math.inf)
            i += 1
    return GreenSchedule(np.array(group, dtype=np.int64), np.array(start), np.array(end), entries[0][1],
                         entries[-1][2])


def assert_same_state(kernels: Kernels, references: list[Reference]) -> None:
    """Same plans and priority state at every intersection, and plans the safety monitor accepts."""
    for k, reference in enumerate(references):
        assert same(kernels.entries(k), reference.entries), k
        assert same(kernels.state(k), reference.state()), k
        assert check_schedule(reference.plan, schedule(reference.plan, reference.entries)) == [], k


def arrival(reference: Reference, now_s: float, g: int, since: str, offset_s: float) -> float:
    """An arrival ``offset_s`` after now, or after the start or the end of ``g``'s green in progress
    or next: near the ends of greens, where extensions and early greens are decided."""
    if since == "now":
        return now_s + offset_s
    first, last = reference.run(g, now_s)
    if first < 0:
        return now_s + offset_s
    return (reference.entries[first][1] if since == "start" else reference.entries[last][2]) + offset_s


def drive(case: Case) -> Counter:
    """Run ``case`` through the kernels and the reference, asserting they agree after every call.
    Returns what was reached: ``("reason", code)``, ``("strategy", code)``, ``("release", ended)``."""
    kernels = Kernels(case.plans, case.start_s, case.horizon_s, case.capacity)
    references = [Reference(plan, case.start_s, case.horizon_s, case.capacity) for plan in case.plans]
    reached: Counter = Counter()
    # The grants that changed a plan, as the engine keeps them: (intersection, group, base end, green until).
    grants: list[tuple[int, int, float, float]] = []
    preempted_until = [-math.inf] * len(case.plans)
    now_s = case.start_s
    for step in case.steps:
        now_s += step.wait_s
        assert kernels.advance(now_s) == [reference.advance(now_s) for reference in references]
        assert_same_state(kernels, references)
        if step.preempt is not None:
            # As the engine applies a pre-emption: no priority there for a while, its grants and
            # promises gone (the plan itself is left as it was).
            k = step.preempt[0] % len(case.plans)
            preempted_until[k] = now_s + step.preempt[1]
            kernels.preempted(k)
            references[k].preempted()
            grants = [grant for grant in grants if grant[0] != k]
            assert_same_state(kernels, references)
        grants = [grant for grant in grants if grant[3] >= now_s]
        if step.check_out is not None and grants:
            # A check-out ends the grant, whether it gives time back or not. It comes now, or, for
            # one in ``share`` of the time the grant added past the base end, when the vehicle
            # crosses there (if that is still to come).
            which, share = step.check_out
            k, g, base_end, green_until = grants.pop(which % len(grants))
            if share is not None and base_end + share * (green_until - base_end) > now_s:
                now_s = base_end + share * (green_until - base_end)
                assert kernels.advance(now_s) == [reference.advance(now_s) for reference in references]
                assert_same_state(kernels, references)
                grants = [grant for grant in grants if grant[3] >= now_s]
            ended = kernels.release(now_s, k, g, base_end)
            assert same(ended, references[k].release(now_s, g, base_end))
            reached["release", not math.isnan(ended)] += 1
            assert_same_state(kernels, references)
        asks = []
        for drawn_k, drawn_g, eta, window, queue, vehicle_class, lateness, occupancy, headways in step.batch:
            k = drawn_k % len(case.plans)
            g = drawn_g % case.plans[k].n_groups
            ahead, behind = headways if headways is not None else (math.inf, -math.inf)
            earliest = max(now_s, arrival(references[k], now_s, g, *eta))
            asks.append(Ask(k, g, earliest, earliest + window, 2.0 + 2.0 * queue if queue else 0.0, vehicle_class,
                            lateness, occupancy, ahead, behind))
        answers = kernels.decide(now_s, asks, case.config, preempted_until)
        assert same(answers, reference_decide(references, now_s, asks, case.config, preempted_until))
        assert_same_state(kernels, references)
        for ask, (_, strategy, _, green_until, reason, base_end) in zip(asks, answers, strict=True):
            reached["reason", reason] += 1
            reached["strategy", strategy] += 1
            if strategy in (kn.EXTENSION, kn.EARLY_GREEN):
                grants.append((ask.k, ask.g, base_end, green_until))
    return reached


@st.composite
def long_intergreens(draw: st.DrawFn) -> IntersectionPlan:
    """Three stages ``a``, ``b``, ``c`` in turn, where the intergreen from ``a`` to ``c`` (a wide
    junction's, or a clearance) is longer than the way through a short ``b``: once a grant cuts
    ``b``, that intergreen, not the stage before, sets when ``c`` may start, and the frame may not
    close where the plan expects."""
    across = draw(st.floats(12.0, 25.0))
    green = np.array([draw(st.floats(10.0, 30.0)), draw(st.floats(across - 4.0, across + 10.0)),
                      draw(st.floats(10.0, 30.0))])
    stage_min = np.array([5.0, 2.0, 5.0])
    intergreen = np.array([[NAN, 3.0, across], [3.0, NAN, 3.0], [3.0, 3.0, NAN]])
    return IntersectionPlan(
        id="long", group_names=("a", "b", "c"), group_kind=[0, 0, 0], min_green_s=stage_min, walk_s=np.zeros(3),
        clearance_s=np.zeros(3), intergreen_s=intergreen, stage_groups=np.eye(3, dtype=bool), green_s=green,
        stage_min_s=stage_min, stage_max_s=green + draw(st.floats(0.0, 30.0)), offset_s=draw(st.floats(0.0, 100.0)),
        max_cycle_s=green.sum() + 9.0 + draw(st.floats(0.0, 40.0)))


@st.composite
def plans(draw: st.DrawFn) -> IntersectionPlan:
    """:func:`crossroads`, :func:`long_intergreens`, or :func:`intersections`: some with longer base
    greens and more room above them (the cycle and its maximum as much longer, give or take
    rounding), some with base greens at their minimum (nothing to cut) and more room above them; a
    third of them with stage minimums under their groups' minimum greens, so that a cut can break a
    minimum green."""
    kind = draw(st.integers(1, 5))
    if kind == 1:
        return crossroads()
    if kind == 2:
        return draw(long_intergreens())
    plan = draw(intersections())
    shape = draw(st.sampled_from(["longer", "longer", "as drawn", "tight", "tight"]))
    if shape == "longer":
        longer = np.array([draw(st.floats(0.0, 20.0)) for _ in range(plan.n_stages)])
        plan = dataclasses.replace(plan, green_s=plan.green_s + longer,
                                   stage_max_s=plan.stage_max_s + longer + draw(st.floats(0.0, 30.0)),
                                   max_cycle_s=plan.max_cycle_s + longer.sum() + 1e-9)
    elif shape == "tight":
        with contextlib.suppress(InvalidInputError):  # the shorter stages may break an intergreen
            plan = dataclasses.replace(plan, green_s=plan.stage_min_s,
                                       stage_max_s=plan.stage_max_s + draw(st.floats(10.0, 40.0)))
    if draw(st.integers(1, 3)) == 1:
        plan = dataclasses.replace(plan, stage_min_s=plan.stage_min_s * draw(st.floats(0.2, 0.8)))
    return plan


def sometimes(strategy: st.SearchStrategy, one_in: int) -> st.SearchStrategy:
    """``strategy`` about once in ``one_in`` draws, else None."""
    return st.integers(1, one_in).flatmap(lambda draw: strategy if draw == 1 else st.none())


configs = st.builds(PriorityConfig, bus_lateness_s=st.sampled_from([-math.inf, 0.0, 60.0]),
                    tram_lateness_s=st.sampled_from([-math.inf, 30.0]),
                    min_gain_s=st.sampled_from([0.0, 1.0, 2.0, 5.0]),
                    max_extension_s=st.sampled_from([0.0, 5.0, 15.0, 40.0]),
                    max_early_green_s=st.sampled_from([0.0, 5.0, 15.0, 40.0]),
                    cycle_share=st.sampled_from([0.0, 0.05, 0.2, 0.5, 1.0]), max_cut_cycles=st.integers(0, 4))
arrivals = st.tuples(st.just("now"), st.floats(0.0, 250.0)) | st.tuples(st.just("end"), st.floats(-10.0, 15.0)) \
    | st.tuples(st.just("start"), st.floats(-40.0, 10.0))
# Lateness and occupancy often in whole numbers, for ties (kept in the order given), else anywhere
# the engine lets them be, negative lateness too (the ranks compare them as they are).
asks = st.tuples(st.integers(0, 1), st.integers(0, 9), arrivals, st.floats(0.0, 10.0), st.integers(0, 6),
                 st.sampled_from([kn.BUS, kn.BUS, kn.TRAM, kn.EMERGENCY]),
                 st.integers(-60, 300) | st.floats(-120.0, 600.0), st.integers(0, 80) | st.floats(0.0, 200.0),
                 sometimes(st.tuples(st.floats(0.0, 600.0), st.floats(0.0, 600.0)), 3))
steps = st.builds(Step, st.floats(0.0, 40.0), sometimes(st.tuples(st.integers(0, 1), st.floats(-10.0, 60.0)), 6),
                  sometimes(st.tuples(st.integers(0, 20), st.none() | st.floats(-0.5, 1.0)), 1),
                  st.lists(asks, max_size=5))


@st.composite
def cases(draw: st.DrawFn) -> Case:
    """One or two random intersections, random settings, and a stream of steps."""
    drawn = draw(st.lists(plans(), min_size=1, max_size=2))
    return Case([dataclasses.replace(plan, id=f"x{k}") for k, plan in enumerate(drawn)], draw(st.floats(0.0, 1e4)),
                draw(configs), draw(st.sampled_from([480.0, 600.0, 300.0, 150.0])), draw(st.sampled_from([32, 96])),
                draw(st.lists(steps, min_size=4, max_size=15)))


def test_fixed_case_matches_the_reference() -> None:
    """Crossroads ``x`` and ``y`` (the base cycle: main 0-40, side and walk 45-75, every 85 s)."""
    crossings = [crossroads("x"), crossroads("y")]
    config = PriorityConfig(bus_lateness_s=0.0)
    kernels = Kernels(crossings, 852.0, 480.0, 96)
    references = [Reference(plan, 852.0, 480.0, 96) for plan in crossings]
    assert_same_state(kernels, references)
    # x: side due at 895, its bus at 872; main cut 15 s (the early green cap) and paid back next cycle.
    # y: main green till 890 and the tram there at 872, already green (and promised, though y's plan
    # is as it was); a bus behind a closer leader.
    asks = [Ask(0, 1, 872.0, 877.0, 0.0, kn.BUS, 120.0, 10.0), Ask(1, 0, 872.0, 877.0, 0.0, kn.TRAM, 0.0, 0.0),
            Ask(1, 1, 872.0, 877.0, 0.0, kn.BUS, 120.0, 10.0, 60.0, 300.0)]
    answers = kernels.decide(852.0, asks, config, [-math.inf, -math.inf])
    assert same(answers, reference_decide(references, 852.0, asks, config, [-math.inf, -math.inf]))
    assert same(answers, [(kn.GRANTED, kn.EARLY_GREEN, 880.0, 925.0, kn.OK, 925.0),
                          (kn.GRANTED, kn.ALREADY_GREEN, 850.0, 890.0, kn.OK, 890.0), denied(kn.BUNCHING)])
    assert same(kernels.entries(0)[:5], [[0, 850.0, 875.0], [1, 880.0, 925.0], [0, 935.0, 990.0],
                                          [1, 995.0, 1010.0], [0, 1020.0, 1060.0]])
    assert same(kernels.state(0), ({10.0: 15.0}, {0: (10.0, 1.0)}, {1: (NEVER, (880.0, 925.0))}))
    assert same(kernels.state(1), ({}, {}, {0: (NEVER, (850.0, 890.0))}))
    assert_same_state(kernels, references)
    # y at 880: the bus on main meets a green that ends 10 s too soon: side pays for it, and gets
    # it back from main next cycle; the tram's promise grows with the green. Checked out at 893, main
    # ends then, side (up to the next cycle) gets back 7 of its 10 s, and the promise ends at 893.
    kernels.advance(880.0)
    for reference in references:
        reference.advance(880.0)
    asks = [Ask(1, 0, 895.0, 900.0, 0.0, kn.BUS, 120.0, 10.0)]
    answers = kernels.decide(880.0, asks, config, [-math.inf, -math.inf])
    assert same(answers, reference_decide(references, 880.0, asks, config, [-math.inf, -math.inf]))
    assert same(answers, [(kn.GRANTED, kn.EXTENSION, 850.0, 900.0, kn.OK, 890.0)])
    assert same(kernels.entries(1)[:6], [[0, 850.0, 900.0], [1, 905.0, 925.0], [0, 935.0, 965.0],
                                          [1, 970.0, 1010.0], [0, 1020.0, 1060.0], [1, 1065.0, 1095.0]])
    assert same(kernels.state(1), ({10.0: 10.0}, {1: (10.0, 1.0)}, {0: (NEVER, (850.0, 900.0))}))
    assert_same_state(kernels, references)
    kernels.advance(893.0)
    for reference in references:
        reference.advance(893.0)
    assert kernels.release(893.0, 1, 0, 890.0) == pytest.approx(893.0)
    assert references[1].release(893.0, 0, 890.0) == pytest.approx(893.0)
    assert same(kernels.entries(1)[:3], [[0, 850.0, 893.0], [1, 898.0, 925.0], [0, 935.0, 965.0]])
    assert same(kernels.state(1), ({10.0: 10.0}, {1: (10.0, 1.0)}, {0: (NEVER, (850.0, 893.0))}))
    assert_same_state(kernels, references)
    assert math.isnan(kernels.release(893.0, 1, 0, 890.0))


def crossroads_at_880() -> tuple[Kernels, list[Reference], PriorityConfig]:
    """The kernels and the reference on one crossroads at 880 s, plans 480 s ahead, every bus late enough."""
    crossing = [crossroads("x")]
    return Kernels(crossing, 880.0, 480.0, 96), [Reference(crossing[0], 880.0, 480.0, 96)], \
        PriorityConfig(bus_lateness_s=0.0)


def check_out_main_at_893(kernels: Kernels, references: list[Reference]) -> None:
    """At 893 s, the vehicle whose grant lengthened main past 890 s checks out, in both: main ends
    then, side gets 7 s back, and the next cycle keeps its start."""
    kernels.advance(893.0)
    references[0].advance(893.0)
    assert kernels.release(893.0, 0, 0, 890.0) == pytest.approx(893.0)
    assert references[0].release(893.0, 0, 890.0) == pytest.approx(893.0)
    assert same(kernels.entries(0)[:3], [[0, 850.0, 893.0], [1, 898.0, 925.0], [0, 935.0, 965.0]])


def test_fixed_promise_matches_the_reference() -> None:
    """Crossroads at 880 s (main green 850-890, side due at 895): one batch, the bus on ``side`` listed
    first, the tram on ``main`` ranked first. The tram, there at 895-900, gets main lengthened to 900
    (side pays, and is paid back by main next cycle), and main is promised to 900. The bus, there at
    885, would have side start 15 s sooner (885), ending main before 900: refused, PROMISED. It asks
    again in the next batch: still PROMISED. After the tram's check-out at 893 (main ends, side gets
    7 s back), the promise ends at 893 too, and the pre-emption takes it back."""
    kernels, references, config = crossroads_at_880()
    asks = [Ask(0, 1, 885.0, 890.0, 0.0, kn.BUS, 120.0, 10.0), Ask(0, 0, 895.0, 900.0, 0.0, kn.TRAM, 0.0, 0.0)]
    answers = kernels.decide(880.0, asks, config, [-math.inf])
    assert same(answers, reference_decide(references, 880.0, asks, config, [-math.inf]))
    assert same(answers, [denied(kn.PROMISED), (kn.GRANTED, kn.EXTENSION, 850.0, 900.0, kn.OK, 890.0)])
    assert same(kernels.entries(0)[:4], [[0, 850.0, 900.0], [1, 905.0, 925.0], [0, 935.0, 965.0],
                                          [1, 970.0, 1010.0]])
    assert same(kernels.state(0), ({10.0: 10.0}, {1: (10.0, 1.0)}, {0: (NEVER, (850.0, 900.0))}))
    assert_same_state(kernels, references)
    kernels.advance(881.0)
    references[0].advance(881.0)
    asks = [Ask(0, 1, 886.0, 891.0, 0.0, kn.BUS, 120.0, 10.0)]
    answers = kernels.decide(881.0, asks, config, [-math.inf])
    assert same(answers, reference_decide(references, 881.0, asks, config, [-math.inf]))
    assert same(answers, [denied(kn.PROMISED)])
    assert_same_state(kernels, references)
    check_out_main_at_893(kernels, references)
    assert same(kernels.state(0), ({10.0: 10.0}, {1: (10.0, 1.0)}, {0: (NEVER, (850.0, 893.0))}))
    assert_same_state(kernels, references)
    kernels.preempted(0)
    references[0].preempted()
    assert same(kernels.state(0), ({10.0: 10.0}, {1: (10.0, 1.0)}, {}))
    assert_same_state(kernels, references)


def test_fixed_two_promises_match_the_reference() -> None:
    """Crossroads at 880 s (main green 850-890, side 895-925, main again 935-975), one batch. The tram
    on ``main``, there at 930-935, gets main 5 s sooner (930-975; side pays, ending at 920). Bus-1 on
    ``main``, there at 881-886, meets the green now (850-890), and is promised it too: the group keeps
    both promises. Bus-2 on ``side``, there at 922-927, would have side lengthened to 927, main then
    starting at 937: refused, PROMISED, and main still starts at 930."""
    kernels, references, config = crossroads_at_880()
    assert same(kernels.entries(0)[:3], [[0, 850.0, 890.0], [1, 895.0, 925.0], [0, 935.0, 975.0]])
    asks = [Ask(0, 0, 880.0 + 50.0, 880.0 + 55.0, 0.0, kn.TRAM, 0.0, 0.0),
            Ask(0, 0, 880.0 + 1.0, 880.0 + 6.0, 0.0, kn.BUS, 120.0, 20.0),
            Ask(0, 1, 880.0 + 42.0, 880.0 + 47.0, 0.0, kn.BUS, 120.0, 10.0)]
    answers = kernels.decide(880.0, asks, config, [-math.inf])
    assert same(answers, reference_decide(references, 880.0, asks, config, [-math.inf]))
    assert same(answers, [(kn.GRANTED, kn.EARLY_GREEN, 930.0, 975.0, kn.OK, 975.0),
                          (kn.GRANTED, kn.ALREADY_GREEN, 850.0, 890.0, kn.OK, 890.0), denied(kn.PROMISED)])
    assert same(kernels.entries(0)[:6], [[0, 850.0, 890.0], [1, 895.0, 920.0], [0, 930.0, 975.0],
                                          [1, 980.0, 1010.0], [0, 1020.0, 1055.0], [1, 1060.0, 1095.0]])
    assert same(kernels.state(0), ({11.0: 5.0}, {1: (10.0, 1.0)}, {0: ((850.0, 890.0), (930.0, 975.0))}))
    assert_same_state(kernels, references)


def test_fixed_check_out_keeps_the_next_promise() -> None:
    """Crossroads at 880 s, one batch on ``main``: bus-1, there at 895-900, gets main lengthened to 900
    (side pays, paid back by main next cycle: 935-965); bus-2, there at 935-940, cannot have main
    lengthened to 940 and meets the next green, 935-965: both promised. Bus-1 checks out at 893: its
    promise ends then, bus-2's is kept, so a bus on ``side`` there at 930-935 is refused, PROMISED."""
    kernels, references, config = crossroads_at_880()
    asks = [Ask(0, 0, 895.0, 900.0, 0.0, kn.BUS, 120.0, 20.0), Ask(0, 0, 935.0, 940.0, 0.0, kn.BUS, 120.0, 10.0)]
    answers = kernels.decide(880.0, asks, config, [-math.inf])
    assert same(answers, reference_decide(references, 880.0, asks, config, [-math.inf]))
    assert same(answers, [(kn.GRANTED, kn.EXTENSION, 850.0, 900.0, kn.OK, 890.0),
                          (kn.GRANTED, kn.ALREADY_GREEN, 935.0, 965.0, kn.OK, 965.0)])
    assert same(kernels.state(0), ({10.0: 10.0}, {1: (10.0, 1.0)}, {0: ((935.0, 965.0), (850.0, 900.0))}))
    assert_same_state(kernels, references)
    check_out_main_at_893(kernels, references)
    assert same(kernels.state(0), ({10.0: 10.0}, {1: (10.0, 1.0)}, {0: ((935.0, 965.0), (850.0, 893.0))}))
    assert_same_state(kernels, references)
    asks = [Ask(0, 1, 930.0, 935.0, 0.0, kn.BUS, 120.0, 10.0)]
    answers = kernels.decide(893.0, asks, config, [-math.inf])
    assert same(answers, reference_decide(references, 893.0, asks, config, [-math.inf]))
    assert same(answers, [denied(kn.PROMISED)])
    assert same(kernels.entries(0)[:3], [[0, 850.0, 893.0], [1, 898.0, 925.0], [0, 935.0, 965.0]])
    assert_same_state(kernels, references)

@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_kernels_match_the_reference(case: Case) -> None:
    """Random intersections, settings, request streams, pre-emptions and check-outs."""
    drive(case)


def reached_by_a_fixed_batch(count: int) -> Counter:
    """What ``count`` generated cases reach (:func:`drive`), the same cases at every run."""
    reached: Counter = Counter()

    @settings(max_examples=count, deadline=None, derandomize=True, database=None, phases=[Phase.generate],
              suppress_health_check=[HealthCheck.too_slow])
    @given(cases())
    def run(case: Case) -> None:
        reached.update(drive(case))

    run()
    return reached


def test_the_random_cases_reach_every_branch() -> None:
    """A fixed batch of generated cases reaches every reason and strategy, and check-outs that end a
    green and some that cannot: the comparisons are not vacuous."""
    reached = reached_by_a_fixed_batch(300)
    names = ("OK", "NOT_LATE", "BUNCHING", "PREEMPTED", "TOO_EARLY", "OVER_MAX_GREEN", "NO_ROOM", "NO_GAIN",
             "UNDER_MIN_GREEN", "OVER_MAX_CYCLE", "OVER_BUDGET", "CUT_LIMIT", "NO_PAYBACK", "PROMISED")
    assert [getattr(kn, name) for name in names] == list(REASONS)
    counts = {name: reached["reason", getattr(kn, name)] for name in names}
    assert all(counts.values()), counts
    assert all(reached["strategy", s] for s in STRATEGIES), reached
    assert reached["release", True] and reached["release", False], reached


def test_fixed_renewal_and_a_request_during_the_pay_back() -> None:
    """Crossroads at 880 s. A bus on ``main``, there at 895-900, gets main lengthened to 900 (side
    pays 10 s, paid back by main next cycle). Late, it asks again at 897, there at 899-904: main to
    904, side pays 14 s in all (the cycle's budget is 17), main's next green 935-961 pays it all
    back. At 940, in that pay-back, a bus on ``main`` there at 966-971 gets main to 971: side, paid
    back, gives 10 of its 14 s, is cut a second cycle running, and gets the 10 s back next cycle."""
    kernels, references, config = crossroads_at_880()
    steps = [(880.0, Ask(0, 0, 895.0, 900.0, 0.0, kn.BUS, 120.0, 10.0), (kn.GRANTED, kn.EXTENSION, 850.0, 900.0,
                                                                         kn.OK, 890.0)),
             (897.0, Ask(0, 0, 899.0, 904.0, 0.0, kn.BUS, 130.0, 10.0), (kn.GRANTED, kn.EXTENSION, 850.0, 904.0,
                                                                         kn.OK, 900.0)),
             (940.0, Ask(0, 0, 966.0, 971.0, 0.0, kn.BUS, 120.0, 10.0), (kn.GRANTED, kn.EXTENSION, 935.0, 971.0,
                                                                         kn.OK, 961.0))]
    plans = [[[0, 850.0, 900.0], [1, 905.0, 925.0], [0, 935.0, 965.0], [1, 970.0, 1010.0]],
             [[0, 850.0, 904.0], [1, 909.0, 925.0], [0, 935.0, 961.0], [1, 966.0, 1010.0], [0, 1020.0, 1060.0]],
             [[0, 850.0, 904.0], [1, 909.0, 925.0], [0, 935.0, 971.0], [1, 976.0, 1010.0], [0, 1020.0, 1050.0],
              [1, 1055.0, 1095.0]]]
    states = [({10.0: 10.0}, {1: (10.0, 1.0)}, {0: (NEVER, (850.0, 900.0))}),
              ({10.0: 14.0}, {1: (10.0, 1.0)}, {0: (NEVER, (850.0, 904.0))}),
              ({10.0: 14.0, 11.0: 10.0}, {1: (11.0, 2.0)}, {0: (NEVER, (935.0, 971.0))})]
    for (now_s, ask, answer), plan, state in zip(steps, plans, states, strict=True):
        assert kernels.advance(now_s) == [references[0].advance(now_s)]
        answers = kernels.decide(now_s, [ask], config, [-math.inf])
        assert same(answers, reference_decide(references, now_s, [ask], config, [-math.inf]))
        assert same(answers, [answer])
        assert same(kernels.entries(0)[:len(plan)], plan)
        assert same(kernels.state(0), state)
        assert_same_state(kernels, references)
