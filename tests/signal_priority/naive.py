"""Plain-Python references of the priority kernels (:mod:`pilotage.signal_priority._kernels`), one
intersection at a time, written from the rules rather than from the kernels.

:class:`Reference` keeps the plan of one intersection as a list of ``[stage, green start, green end]``,
its priority state as plain values and dicts, and reads the model from :class:`IntersectionPlan`
directly; :func:`reference_decide` ranks a batch of requests as ``decide`` does and decides each on
its intersection's reference. :class:`Preempting` adds the pre-emption rules of ``preempt``. They
share nothing with the kernels but their constants (classes, strategies, reasons, exit
transitions); test_kernels.py and test_preempt.py compare them with the kernels on fixed and
generated cases.
"""

import copy
import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

import numpy as np

from pilotage.core import InvalidInputError, RoadNetwork, UnknownEntityError
from pilotage.core.signals import IntersectionPlan, SignalPlans, interstage_s
from pilotage.core.transit import Trip
from pilotage.signal_priority import PriorityConfig, PriorityRequest
from pilotage.signal_priority import _kernels as kn
from pilotage.signal_priority.tracking import (
    _END_M,
    CANCELLED,
    CHECKED_OUT,
    FINISHED,
    HEADWAY_SPEED_M_S,
    OFF_PATH,
    ON_PATH,
    REQUESTED,
    PositionReport,
    Release,
    Step,
    Tracked,
    TrackingConfig,
    TripDelay,
)

# Times within this of each other are equal, as for the kernels (s).
TOLERANCE_S = 1e-6
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


class Preempting(Reference):
    """The pre-emption rules of :func:`_kernels.preempt`, written plainly on one intersection."""

    def __init__(self, plan: IntersectionPlan, entries: list[list], capacity: int) -> None:
        self.plan = plan
        self.entries = [list(entry) for entry in entries]
        self.capacity = capacity
        places = np.cumsum([plan.green_s[s] + plan.interstage_s(s, (s + 1) % plan.n_stages)
                            for s in range(plan.n_stages)])
        self.stage_offset_s = [0.0, *places[:-1].tolist()]

    def late(self, start: float, stage: int) -> float:
        """How late ``stage`` starting at ``start`` is on the coordinated plan, in [0, cycle)."""
        late = start - self.plan.offset_s - self.stage_offset_s[stage]
        return late - math.floor(late / self.plan.cycle_s) * self.plan.cycle_s

    def append(self, stage: int, green: float, now_s: float) -> float:
        """Add ``stage`` for ``green`` seconds at its earliest safe start after the last entry; returns
        that start, or NaN when the plan is full."""
        if len(self.entries) >= self.capacity:
            return math.nan
        start = self.start_after(stage, self.entries[-1], now_s, self.last_ends(len(self.entries) - 1))
        self.entries.append([stage, start, start + green])
        return start

    def append_base(self, until_s: float) -> None:
        """Add base stages until one ends at ``until_s`` or later, or the plan is full."""
        while len(self.entries) < self.capacity and self.entries[-1][2] < until_s:
            stage = (self.entries[-1][0] + 1) % self.plan.n_stages
            self.append(stage, self.plan.green_s[stage], -math.inf)

    def next_start(self, stage: int, now_s: float) -> float:
        """The earliest safe start of ``stage`` after the last entry, not before ``now_s``."""
        return self.start_after(stage, self.entries[-1], now_s, self.last_ends(len(self.entries) - 1))

    def realign(self, after: int, way: int, now_s: float, until_s: float) -> tuple[int, float]:
        """Drop the entries after ``after`` and bring the plan back in step (already in step, by
        dwelling, by the short or the long way, as ``way`` allows), then base stages to ``until_s``.
        Returns the transition and when the plan is in step (NaN when it is not by ``until_s``)."""
        plan = self.plan
        del self.entries[after + 1:]
        following = (self.entries[after][0] + 1) % plan.n_stages
        cycle = plan.cycle_s
        in_step = self.next_start(following, now_s)
        late = self.late(in_step, following)
        transition = kn.OUT_OF_STEP
        if late < 1e-3 or cycle - late < 1e-3:
            transition = kn.IN_STEP
        elif way == kn.TRY_DWELL:
            transition = kn.DWELL
            for _ in range(2):
                self.entries[after][2] += cycle - self.late(self.next_start(following, now_s), following)
            in_step = self.next_start(following, now_s)
        elif way != kn.TRY_NOTHING:
            short_room = float(sum(plan.green_s - plan.stage_min_s))
            long_room = float(sum(plan.stage_max_s - plan.green_s))
            long_rate = min(long_room, plan.max_cycle_s - cycle)
            short_cycles = math.ceil(late / short_room - 1e-9) if short_room > 1e-3 else math.inf
            long_cycles = math.ceil((cycle - late) / long_rate - 1e-9) if long_rate > 1e-3 else math.inf
            short_first = short_cycles < long_cycles or (short_cycles == long_cycles and late <= cycle - late)
            short = short_first if way == kn.TRY_BEST_WAY else not short_first
            cycles = short_cycles if short else long_cycles
            if math.isinf(cycles):
                return kn.OUT_OF_STEP, math.nan
            assert isinstance(cycles, int)
            transition = kn.SHORT_WAY if short else kn.LONG_WAY
            per_cycle = (late if short else cycle - late) / cycles
            for m in range(cycles * plan.n_stages):
                s = (following + m) % plan.n_stages
                if short:
                    green = plan.green_s[s] - per_cycle * (plan.green_s[s] - plan.stage_min_s[s]) / short_room
                else:
                    green = plan.green_s[s] + per_cycle * (plan.stage_max_s[s] - plan.green_s[s]) / long_room
                if math.isnan(self.append(s, green, now_s)):
                    return transition, math.nan
            error = self.late(self.next_start(following, now_s), following)
            error = error - cycle if error > cycle / 2 else error
            last = self.entries[-1]
            last[2] = min(max(last[2] - error, last[1] + plan.stage_min_s[last[0]]),
                          last[1] + plan.stage_max_s[last[0]])
            in_step = self.next_start(following, now_s)
        self.append_base(until_s)
        return transition, (math.nan if self.entries[-1][2] < until_s else in_step)

    def hold(self, i: int, groups: list[int], stage: int, window_s: tuple[float, float], now_s: float, *,
             fixed: bool) -> tuple[float, int]:
        """Hold ``groups`` (served by ``stage``) green through ``window_s`` from entry ``i``: lengthen it
        if it serves them all, else end it (within its minimum and maximum, unless ``fixed``) so that
        ``stage`` starts before the window. Returns the held green's start and entry, (NaN, -1) when
        the plan is full."""
        hold_from_s, hold_until_s = window_s
        plan = self.plan
        del self.entries[i + 1:]
        entry = self.entries[i]
        if fixed or entry[2] <= now_s:
            low = high = entry[2]
        else:
            low = max(now_s, entry[1] + plan.stage_min_s[entry[0]])
            high = max(low, entry[1] + plan.stage_max_s[entry[0]])
        if entry[2] >= now_s and all(plan.stage_groups[entry[0], g] for g in groups):
            entry[2] = max(entry[2], hold_until_s)
            return entry[1], i
        gap = interstage_s(plan.intergreen_s, plan.stage_groups[entry[0]], plan.stage_groups[stage])
        entry[2] = max(low, min(high, hold_from_s - gap))
        start = self.append(stage, 0.0, now_s)
        if math.isnan(start):
            return math.nan, -1
        self.entries[-1][2] = max(hold_until_s, start + plan.stage_min_s[stage])
        return start, i + 1

    def fits(self) -> bool:
        """Whether no whole green is under its minimum and no group waits past the maximum cycle."""
        return not (self.green_too_short() or self.waits_too_long())

    def preempt(self, now_s: float, holds: list[tuple[list[int], int, float, float]], ways: list[int],
                until_s: float) -> tuple[int, float, list[tuple[float, float]]]:
        """Pre-empt from ``now_s``: the stage in progress cut back to its base green (not under its
        minimum, nor before now), then each hold ``(groups, stage, from, until)`` placed at the entry
        where it starts on time and latest (else soonest), the plan brought back in step by the first
        of ``ways`` that fits; with no hold placed, back in step only. Returns the transition, when
        the plan is in step, and each hold's green (NaN, NaN where it could not be placed)."""
        plan = self.plan
        current = self.in_progress(now_s)
        del self.entries[current + 1:]
        entry = self.entries[current]
        if entry[2] > now_s:
            entry[2] = max(now_s, entry[1] + plan.stage_min_s[entry[0]],
                           min(entry[2], entry[1] + plan.green_s[entry[0]]))
        self.append_base(until_s)
        frozen, applied = current, False
        transition, in_step = kn.OUT_OF_STEP, math.nan
        greens = []
        for groups, stage, hold_from_s, hold_until_s in holds:
            best = None
            for i in range(frozen, len(self.entries)):
                if i > frozen and self.entries[i][1] >= hold_until_s:
                    break
                for way in ways:
                    trial = copy.deepcopy(self)
                    start, held = trial.hold(i, groups, stage, (hold_from_s, hold_until_s), now_s,
                                             fixed=applied and i == frozen)
                    if held < 0:
                        continue
                    _, step = trial.realign(held, way, now_s, until_s)
                    if math.isnan(step) or not trial.fits():
                        continue
                    on_time = start <= hold_from_s + 1e-6
                    if best is None or (on_time and not best[3]) or (on_time and best[3] and start > best[2] + 1e-6) \
                            or (not on_time and not best[3] and start < best[2] - 1e-6):
                        best = (i, way, start, on_time)
                    break
            if best is None:
                greens.append((math.nan, math.nan))
                continue
            start, held = self.hold(best[0], groups, stage, (hold_from_s, hold_until_s), now_s,
                                    fixed=applied and best[0] == frozen)
            transition, in_step = self.realign(held, best[1], now_s, until_s)
            greens.append((start, self.entries[held][2]))
            frozen, applied = held, True
        if not applied:
            for way in ways:
                trial = copy.deepcopy(self)
                way_transition, step = trial.realign(current, way, now_s, until_s)
                if not math.isnan(step) and trial.fits():
                    self.entries = trial.entries
                    transition, in_step = way_transition, step
                    break
        return transition, in_step, greens


def reference_locate(points: list[tuple[float, float, float]], window: tuple[float, float],
                     position: tuple[float, float]) -> tuple[float, float]:
    """Where a vehicle at ``position`` (x, y in m) is along a polyline of ``points`` (x, y, distance
    along in m), looking only between ``window`` = (from, to) along it: sample each segment finely,
    keep the samples inside the window, and take the nearest. Returns (distance along, offset),
    (NaN, inf) when no sample lies in the window. Exact to the sampling step, which the comparison
    tolerates."""
    best = (math.nan, math.inf)
    for (x0, y0, a0), (x1, y1, a1) in itertools.pairwise(points):
        for t in np.linspace(0.0, 1.0, 2001):
            along = a0 + t * (a1 - a0)
            if not window[0] <= along <= window[1]:
                continue
            offset = math.hypot(x0 + t * (x1 - x0) - position[0], y0 + t * (y1 - y0) - position[1])
            if offset < best[1]:
                best = (along, offset)
    return best


def exact_locate(points: list[tuple[float, float, float]], window: tuple[float, float],
                 position: tuple[float, float]) -> tuple[float, float]:
    """Where a vehicle at ``position`` is along a polyline of ``points`` (x, y, distance along, in m)
    within ``window``: on each segment, the foot of the perpendicular from the position, moved into
    the segment and the window; the nearest of those. (NaN, inf) when no segment meets the window."""
    best = (math.nan, math.inf)
    for (x0, y0, a0), (x1, y1, a1) in itertools.pairwise(points):
        if a1 < window[0] or a0 > window[1]:
            continue
        length_squared = (x1 - x0) ** 2 + (y1 - y0) ** 2
        t = ((position[0] - x0) * (x1 - x0) + (position[1] - y0) * (y1 - y0)) / length_squared \
            if length_squared > 0 else 0.0
        low = (window[0] - a0) / (a1 - a0) if a1 > a0 else 0.0
        high = (window[1] - a0) / (a1 - a0) if a1 > a0 else 1.0
        t = min(max(t, low, 0.0), high, 1.0)
        offset = math.hypot(x0 + t * (x1 - x0) - position[0], y0 + t * (y1 - y0) - position[1])
        if offset < best[1]:
            best = (a0 + t * (a1 - a0), offset)
    return best


# -- the tracker, one report at a time ------------------------------------------------------------------

# A report's place in the results, filled once every vehicle is located.
_NOT_YET = InvalidInputError("not located yet")


@dataclass
class _Vehicle:
    vehicle: str
    trip: Trip
    path: int
    time_s: float
    along_m: float = 0.0
    speed_m_s: float = 0.0
    state: str = ON_PATH
    # The next crossing of its path not yet passed.
    crossing: int = 0
    lateness_s: float | None = None
    # Its live request: at which crossing (-1: none), its state, why, and when last sent.
    request_at: int = -1
    request: str | None = None
    reason: str = ""
    requested_s: float = -math.inf
    # When it was last placed on its path (-inf: never); how far it may have gone since bounds where
    # it is looked for.
    located_s: float = -math.inf


@dataclass
class _Paths:
    """The paths of the trips known, packed for the kernel: one polyline each, in local planar
    coordinates (m) around the network's centre."""

    index: dict[int, int] = field(default_factory=dict)
    ptr: list[int] = field(default_factory=lambda: [0])
    x_m: list[np.ndarray] = field(default_factory=list)
    y_m: list[np.ndarray] = field(default_factory=list)
    at_m: list[np.ndarray] = field(default_factory=list)
    packed: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None


class ReferenceTracker:
    """:class:`~pilotage.signal_priority.tracking.VehicleTracker` one report at a time, in plain
    Python, from the rules of its module's docstring: the reference of ``track_positions``.

    Args:
        network: the road network the trips' paths are on.
        plans: the signal plans of the priority engine (their ids are the network's intersection ids).
        trips: the trips known (more with :meth:`add_trips`).
        config: the tracker's parameters.
    """

    def __init__(self, network: RoadNetwork, plans: SignalPlans, trips: Iterable[Trip] = (),
                 config: TrackingConfig | None = None) -> None:
        self.network = network
        self.plans = plans
        self.config = config or TrackingConfig()
        self.trips: dict[str, Trip] = {}
        self._trips_of_route: dict[str, list[Trip]] = {}
        self._vehicles: dict[str, _Vehicle] = {}
        self._paths = _Paths()
        self.add_trips(trips)

    def add_trips(self, trips: Iterable[Trip]) -> None:
        """Know these trips (a trip already known by its id is replaced)."""
        for trip in trips:
            self.trips[trip.trip_id] = trip
            self._trips_of_route.setdefault(trip.route_id, []).append(trip)
            self._path_index(trip)

    @property
    def vehicles(self) -> int:
        """How many vehicles are followed."""
        return len(self._vehicles)

    def observe(self, reports: Sequence[PositionReport]) -> list[Step | InvalidInputError | UnknownEntityError]:
        """Follow each vehicle to its new position; for each report, what it leads to, or the error
        that refuses it (the others are still followed): an unknown trip or route
        (:class:`UnknownEntityError`), a time before the vehicle's last report or a position off the
        network's area (:class:`InvalidInputError`)."""
        results: list[Step | InvalidInputError | UnknownEntityError] = []
        located: list[tuple[int, _Vehicle, PositionReport, tuple[Release, ...]]] = []
        for report in reports:
            try:
                vehicle, releases = self._vehicle(report)
            except (InvalidInputError, UnknownEntityError) as error:
                results.append(error)
                continue
            located.append((len(results), vehicle, report, releases))
            # Its place in the results, filled once every vehicle is located.
            results.append(_NOT_YET)
        if located:
            along_m, offset_m = self._locate([(vehicle, report) for _, vehicle, report, _ in located])
            for (i, vehicle, report, releases), along, offset in zip(located, along_m.tolist(), offset_m.tolist(),
                                                                     strict=True):
                results[i] = self._step(vehicle, report, along, offset, releases)
        return results

    def record(self, vehicle: str, intersection: int | str, state: str, reason: str = "") -> bool:
        """What came of a vehicle's request at ``intersection``: :data:`GRANTED` or :data:`REJECTED`
        (with the reason). Returns whether its state changed (an event is due)."""
        followed = self._vehicles.get(vehicle)
        if followed is None or followed.request_at < 0:
            return False
        if self._plan_id(followed, followed.request_at) != intersection:
            return False
        changed = followed.request != state
        followed.request, followed.reason = state, reason
        return changed

    def tracked(self, vehicle: str) -> Tracked:
        """How ``vehicle`` is followed now.

        Raises:
            UnknownEntityError: a vehicle not followed.
        """
        followed = self._vehicles.get(vehicle)
        if followed is None:
            raise UnknownEntityError(f"no vehicle {vehicle!r} is followed; it reports its position first",
                                     field="vehicle")
        return self._tracked(followed)

    def expire(self, now_s: float) -> list[Release]:
        """Forget the vehicles silent for ``stale_after_s`` before ``now_s``; their requests are cancelled."""
        silent = [v for v in self._vehicles.values() if now_s - v.time_s > self.config.stale_after_s]
        releases = []
        for followed in silent:
            release = self._release(followed, CANCELLED,
                                    f"no position for {self.config.stale_after_s:g} s")
            releases.extend([release] if release is not None else [])
            del self._vehicles[followed.vehicle]
        return releases

    def delays(self) -> list[TripDelay]:
        """The delay of every trip followed on its path whose timetable gives a time ahead."""
        delays = []
        for followed in self._vehicles.values():
            if followed.lateness_s is None or followed.state != ON_PATH:
                continue
            stop = self._next_timed_stop(followed)
            if stop < 0:
                continue
            trip = followed.trip
            delays.append(TripDelay(trip.trip_id, trip.route_id, followed.vehicle, followed.lateness_s,
                                    trip.path.stop_ids[stop], None, followed.time_s))
        return delays

    # -- the steps -----------------------------------------------------------------------------

    def _vehicle(self, report: PositionReport) -> tuple[_Vehicle, tuple[Release, ...]]:
        """The vehicle's record for this report (a new one for a new vehicle or trip), and the
        release of its request when it changed trip."""
        trip = self._trip(report)
        followed = self._vehicles.get(report.vehicle)
        if followed is not None and report.time_s < followed.time_s:
            raise InvalidInputError(f"expected a time at or after vehicle {report.vehicle!r}'s last report "
                                    f"({followed.time_s:.3f} s), got {report.time_s:.3f} s: send its positions in "
                                    "the order they were taken", field="time")
        releases: tuple[Release, ...] = ()
        if followed is not None and trip is not None and followed.trip is not trip:
            release = self._release(followed, CANCELLED, f"the vehicle now runs trip {trip.trip_id}")
            releases = (release,) if release is not None else ()
            followed = None
        if followed is None:
            if trip is None:
                trip = self._nearest_trip_of_route(report)
            followed = _Vehicle(report.vehicle, trip, self._path_index(trip), report.time_s)
            self._vehicles[report.vehicle] = followed
        return followed, releases

    def _trip(self, report: PositionReport) -> Trip | None:
        """The trip a report names; None when it names only a route (the trip is then the one of that
        route whose path the vehicle is on)."""
        if report.trip is not None:
            trip = self.trips.get(report.trip)
            if trip is not None:
                return trip
            if report.route is None:
                raise UnknownEntityError(f"no trip {report.trip!r} in the timetable ({len(self.trips)} trips known); "
                                         "give a trip_id of the timetable the engine was started with, or the route",
                                         field="trip")
        if report.route is None:
            raise InvalidInputError("expected the vehicle's trip or route, got neither: pilotage follows a vehicle "
                                    "along its trip's path", field="trip")
        if report.route not in self._trips_of_route:
            raise UnknownEntityError(f"no route {report.route!r} in the timetable ({len(self._trips_of_route)} routes "
                                     "known); give a route_id of the timetable", field="route")
        followed = self._vehicles.get(report.vehicle)
        return followed.trip if followed is not None and followed.trip.route_id == report.route else None

    def _nearest_trip_of_route(self, report: PositionReport) -> Trip:
        """Of the trips of the report's route, one whose path passes nearest to it; with a heading,
        nearest among those going its way there (within 90°), as a line's two directions often run
        along the same streets."""
        candidates = list({id(t.path): t for t in self._trips_of_route[str(report.route)]}.values())
        probes = [(_Vehicle(report.vehicle, t, self._path_index(t), report.time_s), report) for t in candidates]
        along_m, offset_m = self._locate(probes)
        if report.heading_deg is not None:
            for i, (probe, _) in enumerate(probes):
                turn_deg = abs((self._path_heading_deg(probe.path, float(along_m[i])) - report.heading_deg + 180.0)
                               % 360.0 - 180.0)
                if turn_deg > 90.0:
                    offset_m[i] += self.config.off_path_m
        return candidates[int(np.argmin(offset_m))]

    def _path_heading_deg(self, path: int, along_m: float) -> float:
        """The direction of path ``path`` at ``along_m`` along it (degrees clockwise from north)."""
        ptr, x_m, y_m, at_m = self._packed()
        first, last = int(ptr[path]), int(ptr[path + 1]) - 1
        s = min(max(first + int(np.searchsorted(at_m[first:last + 1], along_m, side="right")) - 1, first), last - 1)
        return math.degrees(math.atan2(x_m[s + 1] - x_m[s], y_m[s + 1] - y_m[s])) % 360.0

    def _locate(self, items: Sequence[tuple[_Vehicle, PositionReport]]) -> tuple[np.ndarray, np.ndarray]:
        """Where each vehicle is along its path, and how far from it (m): one kernel call."""
        config = self.config
        ptr, x_m, y_m, at_m = self._packed()
        n = len(items)
        path_of = np.empty(n, dtype=np.int64)
        from_m = np.empty(n)
        to_m = np.empty(n)
        lon = np.empty(n)
        lat = np.empty(n)
        max_speed_m_s = config.max_speed_kph / 3.6
        for i, (followed, report) in enumerate(items):
            path_of[i] = followed.path
            lon[i], lat[i] = report.lon, report.lat
            if math.isfinite(followed.located_s):
                from_m[i] = followed.along_m - config.back_tolerance_m
                to_m[i] = followed.along_m + max_speed_m_s * (report.time_s - followed.located_s) + config.off_path_m
            else:
                from_m[i], to_m[i] = -math.inf, math.inf
        x, y = self.network.planar_m(lon, lat)
        along_m = np.empty(n)
        offset_m = np.empty(n)
        for i in range(n):
            first, last = ptr[path_of[i]], ptr[path_of[i] + 1]
            points = list(zip(x_m[first:last].tolist(), y_m[first:last].tolist(), at_m[first:last].tolist(),
                              strict=True))
            along_m[i], offset_m[i] = exact_locate(points, (from_m[i], to_m[i]), (x[i], y[i]))
        return along_m, offset_m

    def _step(self, followed: _Vehicle, report: PositionReport, along_m: float, offset_m: float,
              releases: tuple[Release, ...]) -> Step:
        config = self.config
        path = followed.trip.path
        followed.time_s = report.time_s
        if not offset_m <= config.off_path_m:
            followed.state = OFF_PATH
            release = self._release(followed, CANCELLED, f"off its path by more than {config.off_path_m:g} m")
            reason = (f"{offset_m:.0f} m from its trip's path, more than {config.off_path_m:g} m"
                      if math.isfinite(offset_m) else "too far from where it last was on its trip's path")
            return Step(self._tracked(followed)._replace(reason=reason), None,
                        releases + ((release,) if release is not None else ()))
        previous_m = followed.along_m
        located = math.isfinite(followed.located_s)
        along_m = max(along_m, previous_m) if located else along_m
        dt_s = report.time_s - followed.located_s
        if report.speed_m_s is not None:
            followed.speed_m_s = report.speed_m_s
        elif located and dt_s > 0:
            followed.speed_m_s = (along_m - previous_m) / dt_s
        followed.along_m, followed.located_s = along_m, report.time_s
        followed.state = FINISHED if along_m >= path.length_m - _END_M else ON_PATH
        passed = []
        stop_lines_m = path.crossing_stop_line_m
        while followed.crossing < stop_lines_m.size and stop_lines_m[followed.crossing] < along_m:
            if followed.crossing == followed.request_at:
                release = self._release(followed, CHECKED_OUT, "past the stop line")
                passed.extend([release] if release is not None else [])
            followed.crossing += 1
        releases += tuple(passed)
        speed_limit_m_s = self._speed_limit_m_s(followed)
        followed.lateness_s = self._lateness_s(followed, report.time_s, speed_limit_m_s)
        request, reason = self._request(followed, report, speed_limit_m_s)
        asked = request is not None and followed.request_at != followed.crossing
        if asked:
            followed.request_at, followed.request, followed.reason = followed.crossing, REQUESTED, ""
        if request is not None:
            followed.requested_s = report.time_s
        tracked = self._tracked(followed)
        return Step(tracked._replace(reason=reason) if reason else tracked, request, releases, asked)

    def _request(self, followed: _Vehicle, report: PositionReport,
                 speed_limit_m_s: float) -> tuple[PriorityRequest | None, str]:
        """The request to make now at the vehicle's next crossing, or None and why not (empty: not due yet)."""
        config = self.config
        path = followed.trip.path
        c = followed.crossing
        if followed.state != ON_PATH or c >= path.crossing_stop_line_m.size:
            return None, "no signalised intersection ahead on its path"
        plan_id = self._plan_id(followed, c)
        group = self._group(followed, c)
        if group is None:
            return None, f"no signal group for its movement at intersection {plan_id}"
        distance_m = float(path.crossing_stop_line_m[c] - followed.along_m)
        if distance_m > config.detection_m:
            return None, ""
        if followed.request_at == c and report.time_s - followed.requested_s < config.renew_every_s:
            return None, ""
        stops = path.stop_at_m
        first_ahead = int(np.searchsorted(stops, followed.along_m, side="left"))
        if first_ahead < stops.size and stops[first_ahead] <= path.crossing_stop_line_m[c]:
            return None, f"to leave stop {path.stop_ids[first_ahead]} before the stop line first"
        if first_ahead > 0 and followed.along_m - stops[first_ahead - 1] <= config.stop_zone_m and (
                report.doors_open or (report.doors_open is None and followed.speed_m_s < config.dwell_speed_m_s)):
            return None, f"dwelling at stop {path.stop_ids[first_ahead - 1]}"
        speed_m_s = max(followed.speed_m_s, 0.5 * speed_limit_m_s, 1.0)
        earliest_s = distance_m / speed_limit_m_s + max(0.0, speed_limit_m_s - followed.speed_m_s) / (
            2.0 * config.acceleration_m_s2)
        latest_s = max(earliest_s, distance_m / speed_m_s)
        lateness_s = 0.0 if followed.lateness_s is None else followed.lateness_s
        ahead_s = behind_s = None
        if followed.lateness_s is None:
            # The vehicles on the same path, ahead and behind, at this one's speed (at least 5 m/s).
            others = [v.along_m - followed.along_m for v in self._vehicles.values()
                      if v is not followed and v.state == ON_PATH and v.trip.path is followed.trip.path]
            speed = max(followed.speed_m_s, HEADWAY_SPEED_M_S)
            ahead_s = min((gap for gap in others if gap > 0), default=None)
            behind_s = max((gap for gap in others if gap <= 0), default=None)
            ahead_s = None if ahead_s is None else ahead_s / speed
            behind_s = None if behind_s is None else -behind_s / speed
        return PriorityRequest(
            vehicle=followed.vehicle, intersection=plan_id, group=group, eta_s=min(earliest_s, config.max_eta_s),
            vehicle_class=report.vehicle_class or followed.trip.vehicle_class,
            lateness_s=lateness_s, occupancy=report.occupancy or 0.0,
            eta_window_s=min(latest_s - earliest_s + config.eta_margin_s, config.max_eta_s),
            headway_ahead_s=ahead_s, headway_behind_s=behind_s, distance_m=distance_m), ""

    def _lateness_s(self, followed: _Vehicle, now_s: float, speed_limit_m_s: float) -> float | None:
        """How late the vehicle will reach its next stop with a time, at its current speed (no less
        than half the limit); None when no stop ahead has one."""
        stop = self._next_timed_stop(followed)
        if stop < 0:
            return None
        speed_m_s = max(followed.speed_m_s, 0.5 * speed_limit_m_s, 1.0)
        trip = followed.trip
        expected_s = now_s + (trip.path.stop_at_m[stop] - followed.along_m) / speed_m_s
        return float(expected_s - trip.stop_times_s[stop])

    def _next_timed_stop(self, followed: _Vehicle) -> int:
        """The next stop on the vehicle's path (not yet reached) with a scheduled time; -1: none."""
        trip = followed.trip
        first = int(np.searchsorted(trip.path.stop_at_m, followed.along_m, side="left"))
        timed = np.flatnonzero(np.isfinite(trip.stop_times_s[first:]))
        return first + int(timed[0]) if timed.size else -1

    def _release(self, followed: _Vehicle, state: Literal["checked_out", "cancelled"], reason: str) -> Release | None:
        """End the vehicle's live request, if it has one."""
        if followed.request_at < 0:
            return None
        c = followed.request_at
        followed.request_at, followed.request, followed.reason = -1, None, ""
        followed.requested_s = -math.inf
        return Release(followed.vehicle, self._plan_id(followed, c), self._group(followed, c) or "", state, reason)

    def _tracked(self, followed: _Vehicle) -> Tracked:
        path = followed.trip.path
        c = followed.crossing
        ahead = c < path.crossing_stop_line_m.size and followed.state != FINISHED
        return Tracked(
            trip=followed.trip.trip_id, state=followed.state, along_m=followed.along_m,
            lateness_s=followed.lateness_s,
            next_intersection=self._plan_id(followed, c) if ahead else None,
            group=self._group(followed, c) if ahead else None,
            to_stop_line_m=float(path.crossing_stop_line_m[c] - followed.along_m) if ahead else None,
            request=followed.request if followed.request_at == c else None, reason=followed.reason)

    # -- lookups -------------------------------------------------------------------------------

    def _plan_id(self, followed: _Vehicle, c: int) -> int | str:
        """The id of the plan of the ``c``-th crossing of the vehicle's path (the network's
        intersection id)."""
        return int(self.network.intersections.ids[followed.trip.path.crossing_intersection[c]])

    def _group(self, followed: _Vehicle, c: int) -> str | None:
        path = followed.trip.path
        try:
            plan = self.plans.plans[self.plans.index_of(self._plan_id(followed, c))]
        except UnknownEntityError:
            return None
        return plan.movement_group(int(path.crossing_from_edge[c]), int(path.crossing_to_edge[c]))

    def _speed_limit_m_s(self, followed: _Vehicle) -> float:
        """The speed limit of the edge the vehicle is on (m/s)."""
        path = followed.trip.path
        e = min(int(np.searchsorted(path.at_m, followed.along_m, side="right")) - 1, path.edges.size - 1)
        return max(float(self.network.speed_kph[path.edges[max(e, 0)]]) / 3.6, 1.0)

    def _path_index(self, trip: Trip) -> int:
        """The index of the trip's path in the packed paths, packing it when new."""
        paths = self._paths
        key = id(trip.path)
        if key not in paths.index:
            nodes = trip.path.nodes
            x, y = self.network.planar_m(self.network.node_lon[nodes], self.network.node_lat[nodes])
            paths.index[key] = len(paths.x_m)
            paths.x_m.append(x)
            paths.y_m.append(y)
            paths.at_m.append(np.asarray(trip.path.at_m, dtype=np.float64))
            paths.ptr.append(paths.ptr[-1] + nodes.size)
            paths.packed = None
        return paths.index[key]

    def _packed(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        paths = self._paths
        if paths.packed is None:
            paths.packed = (np.array(paths.ptr, dtype=np.int64), np.concatenate(paths.x_m),
                            np.concatenate(paths.y_m), np.concatenate(paths.at_m))
        return paths.packed
