"""Numba kernels of the priority engine: the plan ahead of every intersection, and the decisions.

The plan of intersection ``k`` is a row of stage entries, in time order: ``entry_stage[k, i]`` is
green from ``entry_start_s[k, i]`` to ``entry_end_s[k, i]``; ``n_entries[k]`` of the ``H`` slots
are used. A group green in two consecutive entries stays green between them. Entries reach back at
least one maximum cycle, so every group's last green is known, and ahead over the horizon.

The entry *in progress* is the last one started, or, during the interstage after it, the next one:
once a transition has begun, the signals show it (the groups that end are already red), so the
stage it leads to is kept as planned; the planners change only what comes after.

The model arrays are those of :class:`pilotage.core.signals.SignalPlans`. Kernels never raise and
do no I/O; the engine validates and converts ids before calling them.
"""

import numpy as np

from pilotage.core._jit import kernel

# Classes, in rank order.
BUS, TRAM, EMERGENCY = 0, 1, 2

# Decisions and strategies.
DENIED, GRANTED = 0, 1
NONE, ALREADY_GREEN, EXTENSION, EARLY_GREEN = 0, 1, 2, 3

# Reasons.
OK, NOT_LATE, BUNCHING, PREEMPTED, TOO_EARLY, OVER_MAX_GREEN, NO_ROOM, NO_GAIN, UNDER_MIN_GREEN, OVER_MAX_CYCLE, \
    OVER_BUDGET, CUT_LIMIT, NO_PAYBACK, PROMISED = range(14)

# Times within this of each other are equal (s).
_TOLERANCE_S = 1e-6


@kernel
def _last_green_ends(k: int, upto: int, n_groups: np.ndarray, stage_groups: np.ndarray, entry_stage: np.ndarray,
                     entry_end_s: np.ndarray, out_end_s: np.ndarray) -> None:
    """End of the last green of each group among entries ``0..upto`` (-inf for none), into ``out_end_s``."""
    for g in range(n_groups[k]):
        out_end_s[g] = -np.inf
        for e in range(upto, -1, -1):
            if stage_groups[k, entry_stage[k, e], g]:
                out_end_s[g] = entry_end_s[k, e]
                break


@kernel
def _in_progress(k: int, now_s: float, entry_start_s: np.ndarray, entry_end_s: np.ndarray, n: int) -> int:
    """Index of the entry in progress at ``now_s`` among the first ``n`` of plan ``k``."""
    current = 0
    while current + 1 < n and entry_start_s[k, current + 1] <= now_s:
        current += 1
    if entry_end_s[k, current] < now_s and current + 1 < n:
        current += 1
    return current


@kernel
def _start_after(k: int, stage: int, previous_stage: int, previous_end_s: float, now_s: float, n_groups: np.ndarray,
                 stage_groups: np.ndarray, intergreen_s: np.ndarray, last_end_s: np.ndarray) -> float:
    """Earliest safe start of ``stage`` after an entry of ``previous_stage`` ending at
    ``previous_end_s``: not before that end nor ``now_s``, and, for each group that starts with it,
    not before the intergreen from the last green of every conflicting group (``last_end_s``)."""
    start = max(now_s, previous_end_s)
    for j in range(n_groups[k]):
        if not stage_groups[k, stage, j] or stage_groups[k, previous_stage, j]:
            continue
        for i in range(n_groups[k]):
            if not np.isnan(intergreen_s[k, i, j]):
                start = max(start, last_end_s[i] + intergreen_s[k, i, j])
    return start


@kernel
def _append(k: int, stage: int, green_s: float, now_s: float, n_groups: np.ndarray, stage_groups: np.ndarray,
            intergreen_s: np.ndarray, entry_stage: np.ndarray, entry_start_s: np.ndarray, entry_end_s: np.ndarray,
            n_entries: np.ndarray) -> float:
    """Append an entry of ``stage``, ``green_s`` long, at its earliest safe start after the last entry
    (and not before ``now_s``); returns its start, or NaN when the plan is full."""
    n = n_entries[k]
    if n >= entry_stage.shape[1]:
        return np.nan
    last_end_s = np.empty(stage_groups.shape[2])
    _last_green_ends(k, n - 1, n_groups, stage_groups, entry_stage, entry_end_s, last_end_s)
    start = _start_after(k, stage, entry_stage[k, n - 1], entry_end_s[k, n - 1], now_s, n_groups, stage_groups,
                         intergreen_s, last_end_s)
    entry_stage[k, n] = stage
    entry_start_s[k, n] = start
    entry_end_s[k, n] = start + green_s
    n_entries[k] = n + 1
    return start


@kernel
def _append_base(k: int, until_s: float, n_stages: np.ndarray, n_groups: np.ndarray, stage_groups: np.ndarray,
                 intergreen_s: np.ndarray, green_s: np.ndarray, entry_stage: np.ndarray, entry_start_s: np.ndarray,
                 entry_end_s: np.ndarray, n_entries: np.ndarray) -> None:
    """Append base stages, in sequence, until the plan reaches ``until_s`` or is full."""
    while n_entries[k] < entry_stage.shape[1] and entry_end_s[k, n_entries[k] - 1] < until_s:
        stage = (entry_stage[k, n_entries[k] - 1] + 1) % n_stages[k]
        _append(k, stage, green_s[k, stage], -np.inf, n_groups, stage_groups, intergreen_s, entry_stage,
                entry_start_s, entry_end_s, n_entries)


@kernel
def advance(now_s: float, horizon_s: float, n_stages: np.ndarray, n_groups: np.ndarray, stage_groups: np.ndarray,
            intergreen_s: np.ndarray, green_s: np.ndarray, cycle_s: np.ndarray, offset_s: np.ndarray,
            history_s: np.ndarray, entry_stage: np.ndarray, entry_start_s: np.ndarray, entry_end_s: np.ndarray,
            n_entries: np.ndarray, out_laid_from: np.ndarray) -> None:
    """Bring every plan to ``now_s``: forget entries that ended more than ``history_s`` ago, and
    append base stages, each at its earliest safe start, until the plan reaches ``now_s + horizon_s``.
    An empty plan starts with the base cycle in progress at ``now_s``, aligned on the offset.
    ``out_laid_from[k]`` is the index of the first entry appended to plan ``k`` (``n_entries[k]``
    when none was), so that the caller can check what was laid and take it back."""
    for k in range(n_entries.size):
        fresh = n_entries[k] == 0
        if fresh:
            cycle_start = offset_s[k] + np.floor((now_s - offset_s[k]) / cycle_s[k]) * cycle_s[k]
            entry_stage[k, 0] = 0
            entry_start_s[k, 0] = cycle_start
            entry_end_s[k, 0] = cycle_start + green_s[k, 0]
            n_entries[k] = 1
        drop = 0
        while drop < n_entries[k] - 1 and entry_end_s[k, drop] < now_s - history_s[k]:
            drop += 1
        if drop > 0:
            n = n_entries[k]
            for i in range(n - drop):
                entry_stage[k, i] = entry_stage[k, i + drop]
                entry_start_s[k, i] = entry_start_s[k, i + drop]
                entry_end_s[k, i] = entry_end_s[k, i + drop]
            n_entries[k] = n - drop
        out_laid_from[k] = 0 if fresh else n_entries[k]
        _append_base(k, now_s + horizon_s, n_stages, n_groups, stage_groups, intergreen_s, green_s, entry_stage,
                     entry_start_s, entry_end_s, n_entries)


@kernel
def _green_run(stage_groups: np.ndarray, entry_stage: np.ndarray, entry_start_s: np.ndarray, entry_end_s: np.ndarray,
               n: int, k: int, g: int, t: float, from_entry: int) -> tuple[int, int]:
    """The entries (first, last) of the green of group ``g``, from entry ``from_entry`` on, that holds
    time ``t`` or starts after it first; (-1, -1) if there is none in the plan."""
    i = from_entry
    while i < n:
        if stage_groups[k, entry_stage[k, i], g]:
            first = i
            while i + 1 < n and stage_groups[k, entry_stage[k, i + 1], g]:
                i += 1
            if entry_end_s[k, i] >= t:
                return first, i
        i += 1
    return -1, -1


@kernel
def _waits_too_long(k: int, n: int, max_cycle_s: float, n_stages: np.ndarray, n_groups: np.ndarray,
                    stage_groups: np.ndarray, intergreen_s: np.ndarray, green_s: np.ndarray, entry_stage: np.ndarray,
                    entry_start_s: np.ndarray, entry_end_s: np.ndarray, group_s: np.ndarray) -> bool:
    """Whether some group waits longer than ``max_cycle_s`` between two starts of its greens, in the
    plan or into the base stages that will follow it. As for the safety monitor, a group's first
    wait runs from the start of the plan's first entry."""
    last_start = group_s[0]
    last_start[:] = entry_start_s[k, 0]
    for i in range(n):
        for g in range(n_groups[k]):
            if stage_groups[k, entry_stage[k, i], g] and (i == 0 or not stage_groups[k, entry_stage[k, i - 1], g]):
                if entry_start_s[k, i] - last_start[g] > max_cycle_s + 1e-6:
                    return True
                last_start[g] = entry_start_s[k, i]
    # The base stages that will follow the plan close the last waits; two base cycles reach every
    # group's next start, including the groups still green when the plan ends.
    last_end_s = group_s[1]
    _last_green_ends(k, n - 1, n_groups, stage_groups, entry_stage, entry_end_s, last_end_s)
    stage = entry_stage[k, n - 1]
    end = entry_end_s[k, n - 1]
    for _ in range(2 * n_stages[k]):
        following = (stage + 1) % n_stages[k]
        start = _start_after(k, following, stage, end, -np.inf, n_groups, stage_groups, intergreen_s, last_end_s)
        end = start + green_s[k, following]
        for g in range(n_groups[k]):
            if stage_groups[k, following, g]:
                if not stage_groups[k, stage, g]:
                    if start - last_start[g] > max_cycle_s + 1e-6:
                        return True
                    last_start[g] = start
                last_end_s[g] = end
        stage = following
    return False


@kernel
def _green_too_short(k: int, n: int, n_groups: np.ndarray, stage_groups: np.ndarray, min_green_s: np.ndarray,
                     entry_stage: np.ndarray, entry_start_s: np.ndarray, entry_end_s: np.ndarray) -> bool:
    """Whether some group's green, a run of consecutive entries that holds it, is shorter than its
    minimum; the first run may have started before the plan, and the last may go on after it."""
    for g in range(n_groups[k]):
        first, last = _green_run(stage_groups, entry_stage, entry_start_s, entry_end_s, n, k, g, -np.inf, 0)
        while first >= 0:
            whole = first > 0 and last < n - 1
            if whole and entry_end_s[k, last] - entry_start_s[k, first] < min_green_s[k, g] - 1e-6:
                return True
            first, last = _green_run(stage_groups, entry_stage, entry_start_s, entry_end_s, n, k, g, -np.inf,
                                     last + 1)
    return False


@kernel
def _copy_plan(k: int, first: int, from_stage: np.ndarray, from_start_s: np.ndarray, from_end_s: np.ndarray,
               from_n: np.ndarray, to_stage: np.ndarray, to_start_s: np.ndarray, to_end_s: np.ndarray,
               to_n: np.ndarray) -> None:
    """Copy plan ``k``'s entries from ``first`` on (those in use) from the ``from_*`` arrays to the ``to_*``."""
    to_n[k] = from_n[k]
    for i in range(first, from_n[k]):
        to_stage[k, i] = from_stage[k, i]
        to_start_s[k, i] = from_start_s[k, i]
        to_end_s[k, i] = from_end_s[k, i]


# -- bus and tram priority inside the fixed-cycle frame ------------------------------------------------------
#
# A plan is in its frame when every cycle's first stage starts on offset + n x cycle. A priority
# changes the entries between the stage in progress and an *anchor*, the start of a later cycle,
# and no entry from the anchor on: an early green takes its time from the stages before the
# group's green and gives it to that green (its end stays); an extension takes its time from the
# stages after the green, up to the next cycle's start, or, when that cycle cannot give it all,
# the one after (paid back in one following cycle); a check-out gives the green it ends back to
# the stages that paid for it.

# Columns of decide's ``requests`` (R, N_REQUEST_FIELDS), one row per request; times absolute.
R_INTERSECTION, R_GROUP, R_EARLIEST_S, R_LATEST_S, R_QUEUE_S, R_CLASS, R_LATENESS_S, R_OCCUPANCY, \
    R_HEADWAY_AHEAD_S, R_HEADWAY_BEHIND_S = range(10)
N_REQUEST_FIELDS = 10
# Columns of decide's ``settings`` (N_SETTINGS,).
S_BUS_LATENESS_S, S_TRAM_LATENESS_S, S_MIN_GAIN_S, S_MAX_EXTENSION_S, S_MAX_EARLY_GREEN_S, S_CYCLE_SHARE, \
    S_MAX_CUT_CYCLES = range(7)
N_SETTINGS = 7
# Columns of decide's ``out`` (R, N_OUT_FIELDS).
O_DECISION, O_STRATEGY, O_GREEN_FROM_S, O_GREEN_UNTIL_S, O_REASON, O_BASE_END_S = range(6)
N_OUT_FIELDS = 6
# The priority state of each intersection, ``budget`` (K, 4): two cycles, each with the green moved in it (s);
# of each stage, ``stage_cuts`` (K, Sm, 2): the last cycle it was cut in, and in how many consecutive cycles.
B_CYCLE, B_MOVED_S = 0, 1
B_SLOTS = 2
# The greens promised to each group by grants still to end, ``promised_s`` (K, Gm, 2 * P_SLOTS): from, until
# of each (the green a vehicle meets now and the next one, say).
P_FROM_S, P_UNTIL_S = 0, 1
P_SLOTS = 2
C_LAST_CYCLE, C_STREAK = 0, 1
# Columns of the scratch ``cuts`` (Sm, 4) of one change: per stage, the first and last cycle cut, the seconds
# cut, and the seconds given back.
X_FIRST_CYCLE, X_LAST_CYCLE, X_CUT_S, X_GIVEN_S = 0, 1, 2, 3
NO_CYCLE = -1e18


@kernel
def _retime(k: int, first: int, stop: int, now_s: float, n_groups: np.ndarray, stage_groups: np.ndarray,
            intergreen_s: np.ndarray, entry_stage: np.ndarray, entry_start_s: np.ndarray, entry_end_s: np.ndarray,
            last_end_s: np.ndarray) -> None:
    """Start entries ``first..stop - 1`` at their earliest safe time, each keeping its green's length
    (``last_end_s``, (Gm,), is scratch)."""
    _last_green_ends(k, first - 1, n_groups, stage_groups, entry_stage, entry_end_s, last_end_s)
    for e in range(first, stop):
        length = entry_end_s[k, e] - entry_start_s[k, e]
        start = _start_after(k, entry_stage[k, e], entry_stage[k, e - 1], entry_end_s[k, e - 1], now_s, n_groups,
                             stage_groups, intergreen_s, last_end_s)
        entry_start_s[k, e] = start
        entry_end_s[k, e] = start + length
        for g in range(n_groups[k]):
            if stage_groups[k, entry_stage[k, e], g]:
                last_end_s[g] = entry_end_s[k, e]


@kernel
def _next_cycle_start(k: int, after: int, n: int, entry_stage: np.ndarray) -> int:
    """Index of the first entry after ``after`` that starts a cycle (stage 0); -1 if the plan has none."""
    for i in range(after + 1, n):
        if entry_stage[k, i] == 0:
            return i
    return -1


@kernel
def _cycle_of(k: int, start_s: float, stage: int, cycle_s: np.ndarray, offset_s: np.ndarray,
              stage_offset_s: np.ndarray) -> float:
    """The number of the cycle (from the offset) in which ``stage`` starting at ``start_s`` runs."""
    return float(np.floor((start_s - offset_s[k] - stage_offset_s[k, stage]) / cycle_s[k] + 0.5))


@kernel
def _fit_to_anchor(k: int, anchor: int, now_s: float, n_stages: np.ndarray, n_groups: np.ndarray,
                   stage_groups: np.ndarray, intergreen_s: np.ndarray, entry_stage: np.ndarray,
                   entry_start_s: np.ndarray, entry_end_s: np.ndarray, n_entries: np.ndarray,
                   last_end_s: np.ndarray) -> bool:
    """Close the frame at entry ``anchor``, which keeps its start: the entry before it takes up any
    time left over, and every entry from the anchor on, a cycle past it, must still start no sooner
    than is safe after the greens before it (``last_end_s``, (Gm,), is scratch). Returns whether
    the frame closes."""
    _last_green_ends(k, anchor - 1, n_groups, stage_groups, entry_stage, entry_end_s, last_end_s)
    earliest = _start_after(k, entry_stage[k, anchor], entry_stage[k, anchor - 1], entry_end_s[k, anchor - 1],
                            now_s, n_groups, stage_groups, intergreen_s, last_end_s)
    slack = entry_start_s[k, anchor] - earliest
    if slack < -_TOLERANCE_S:
        return False
    if slack > _TOLERANCE_S:
        entry_end_s[k, anchor - 1] += slack
    _last_green_ends(k, anchor - 1, n_groups, stage_groups, entry_stage, entry_end_s, last_end_s)
    for e in range(anchor, min(n_entries[k], anchor + n_stages[k] + 1)):
        earliest = _start_after(k, entry_stage[k, e], entry_stage[k, e - 1], entry_end_s[k, e - 1], now_s, n_groups,
                                stage_groups, intergreen_s, last_end_s)
        if earliest > entry_start_s[k, e] + _TOLERANCE_S:
            return False
        for g in range(n_groups[k]):
            if stage_groups[k, entry_stage[k, e], g]:
                last_end_s[g] = entry_end_s[k, e]
    return True


@kernel
def _note_cut(k: int, i: int, cut_s: float, cuts: np.ndarray, entry_stage: np.ndarray, entry_start_s: np.ndarray,
              cycle_s: np.ndarray, offset_s: np.ndarray, stage_offset_s: np.ndarray) -> None:
    """Count entry ``i``'s stage as cut by ``cut_s`` in its cycle, into ``cuts`` (Sm, 3): per stage
    the first and the last cycle cut, and the seconds cut."""
    stage = entry_stage[k, i]
    cycle = _cycle_of(k, entry_start_s[k, i], stage, cycle_s, offset_s, stage_offset_s)
    cuts[stage, X_FIRST_CYCLE] = min(cuts[stage, X_FIRST_CYCLE], cycle)
    cuts[stage, X_LAST_CYCLE] = max(cuts[stage, X_LAST_CYCLE], cycle)
    cuts[stage, X_CUT_S] += cut_s


@kernel
def _extend(k: int, last: int, extra_s: float, now_s: float, n_stages: np.ndarray, n_groups: np.ndarray,
            stage_groups: np.ndarray, intergreen_s: np.ndarray, stage_min_s: np.ndarray, cycle_s: np.ndarray,
            offset_s: np.ndarray, stage_offset_s: np.ndarray, entry_stage: np.ndarray, entry_start_s: np.ndarray,
            entry_end_s: np.ndarray, n_entries: np.ndarray, cuts: np.ndarray, group_s: np.ndarray) -> tuple[int, int]:
    """Lengthen entry ``last`` by ``extra_s``, taken from the entries after it up to the next cycle's
    start, each in proportion to its room above its stage's minimum; from the cycle after too when
    that is not enough. Returns a reason code (OK, NO_ROOM, TOO_EARLY) and the cycle start that
    closes the change (-1 unless OK)."""
    n = n_entries[k]
    anchor = _next_cycle_start(k, last, n, entry_stage)
    room = 0.0
    for _ in range(2):
        if anchor < 0:
            return TOO_EARLY, -1
        room = 0.0
        for i in range(last + 1, anchor):
            room += max(0.0, entry_end_s[k, i] - entry_start_s[k, i] - stage_min_s[k, entry_stage[k, i]])
        if room >= extra_s - _TOLERANCE_S:
            break
        anchor = _next_cycle_start(k, anchor, n, entry_stage)
    if room < extra_s - _TOLERANCE_S or room <= 0.0:
        return NO_ROOM, -1
    for i in range(last + 1, anchor):
        spare = max(0.0, entry_end_s[k, i] - entry_start_s[k, i] - stage_min_s[k, entry_stage[k, i]])
        if spare > 0.0:
            _note_cut(k, i, extra_s * spare / room, cuts, entry_stage, entry_start_s, cycle_s, offset_s,
                      stage_offset_s)
            entry_end_s[k, i] -= extra_s * spare / room
    entry_end_s[k, last] += extra_s
    _retime(k, last + 1, anchor, now_s, n_groups, stage_groups, intergreen_s, entry_stage, entry_start_s, entry_end_s,
            group_s[0])
    if not _fit_to_anchor(k, anchor, now_s, n_stages, n_groups, stage_groups, intergreen_s, entry_stage,
                          entry_start_s, entry_end_s, n_entries, group_s[0]):
        return NO_ROOM, -1
    return OK, anchor


@kernel
def _room_before(k: int, i: int, current: int, g: int, now_s: float, stage_groups: np.ndarray, stage_min_s: np.ndarray,
                 entry_stage: np.ndarray, entry_start_s: np.ndarray, entry_end_s: np.ndarray) -> float:
    """What entry ``i`` can give an early green of group ``g``: its green above its stage's minimum,
    and for the entry in progress above now too; nothing when it serves ``g`` itself."""
    if stage_groups[k, entry_stage[k, i], g]:
        return 0.0
    low = entry_start_s[k, i] + stage_min_s[k, entry_stage[k, i]]
    if i == current and entry_start_s[k, i] <= now_s:
        low = max(low, now_s)
    return float(max(0.0, entry_end_s[k, i] - low))


@kernel
def _early_green(k: int, g: int, current: int, first: int, wanted_s: float, now_s: float, n_groups: np.ndarray,
                 stage_groups: np.ndarray, intergreen_s: np.ndarray, stage_min_s: np.ndarray, stage_max_s: np.ndarray,
                 cycle_s: np.ndarray, offset_s: np.ndarray, stage_offset_s: np.ndarray, entry_stage: np.ndarray,
                 entry_start_s: np.ndarray, entry_end_s: np.ndarray, cuts: np.ndarray, group_s: np.ndarray) -> float:
    """Start entry ``first`` up to ``wanted_s`` sooner, the time taken from the entries from ``current``
    to it that do not serve group ``g``, in proportion to their room above their minimum (the entry
    in progress ending no sooner than now), and given to entry ``first``, whose end stays, up to its
    stage's maximum. Returns how much sooner it starts."""
    room = 0.0
    for i in range(current, first):
        room += _room_before(k, i, current, g, now_s, stage_groups, stage_min_s, entry_stage, entry_start_s,
                             entry_end_s)
    headroom = stage_max_s[k, entry_stage[k, first]] - (entry_end_s[k, first] - entry_start_s[k, first])
    take = min(wanted_s, room, max(0.0, headroom))
    if take <= _TOLERANCE_S:
        return 0.0
    for i in range(current, first):
        spare = _room_before(k, i, current, g, now_s, stage_groups, stage_min_s, entry_stage, entry_start_s,
                             entry_end_s)
        if spare > 0.0:
            _note_cut(k, i, take * spare / room, cuts, entry_stage, entry_start_s, cycle_s, offset_s,
                      stage_offset_s)
            entry_end_s[k, i] -= take * spare / room
    start_before = entry_start_s[k, first]
    end = entry_end_s[k, first]
    _retime(k, current + 1, first + 1, now_s, n_groups, stage_groups, intergreen_s, entry_stage, entry_start_s,
            entry_end_s, group_s[0])
    entry_end_s[k, first] = end
    return float(start_before - entry_start_s[k, first])


@kernel
def _crossing_s(earliest_s: float, latest_s: float, queue_s: float, green_start_s: float, now_s: float) -> float:
    """When a vehicle crosses at the latest, meeting a green from ``green_start_s``: not before its
    latest arrival, nor before the queue ahead of it has gone from the later of green start and now."""
    return max(latest_s, max(green_start_s, now_s) + queue_s)


@kernel
def _screen(now_s: float, requests: np.ndarray, r: int, settings: np.ndarray, preempted_until_s: np.ndarray) -> int:
    """The reason a request is refused before any plan is looked at (OK when none)."""
    k = int(requests[r, R_INTERSECTION])
    vehicle_class = requests[r, R_CLASS]
    if now_s < preempted_until_s[k]:
        return PREEMPTED
    if vehicle_class == BUS and requests[r, R_LATENESS_S] < settings[S_BUS_LATENESS_S]:
        return NOT_LATE
    if vehicle_class == TRAM and requests[r, R_LATENESS_S] < settings[S_TRAM_LATENESS_S]:
        return NOT_LATE
    # A vehicle closer to its leader than its follower is to it would only close the gap further.
    if vehicle_class != EMERGENCY and requests[r, R_HEADWAY_AHEAD_S] < requests[r, R_HEADWAY_BEHIND_S]:
        return BUNCHING
    return OK


@kernel
def _ranked(requests: np.ndarray) -> np.ndarray:
    """The order in which requests are decided: class (emergency, tram, bus), then the people on
    board, then lateness, each the higher first; ties in the order given."""
    order = np.argsort(-requests[:, R_LATENESS_S], kind="mergesort")
    order = order[np.argsort(-requests[order, R_OCCUPANCY], kind="mergesort")]
    return order[np.argsort(-requests[order, R_CLASS], kind="mergesort")]


@kernel
def _plan_request(now_s: float, requests: np.ndarray, r: int, settings: np.ndarray, n_stages: np.ndarray,
                  n_groups: np.ndarray, stage_groups: np.ndarray, intergreen_s: np.ndarray, stage_min_s: np.ndarray,
                  stage_max_s: np.ndarray, cycle_s: np.ndarray, offset_s: np.ndarray, stage_offset_s: np.ndarray,
                  plan_stage: np.ndarray, plan_start_s: np.ndarray, plan_end_s: np.ndarray, plan_n: np.ndarray,
                  work_stage: np.ndarray, work_start_s: np.ndarray, work_end_s: np.ndarray, work_n: np.ndarray,
                  budget: np.ndarray, cuts: np.ndarray, group_s: np.ndarray, out: np.ndarray) -> float:
    """Change intersection ``k``'s plan (``plan_*``, a copy of which is in ``work_*``) for request
    ``r`` and write the decision into ``out[r]``; returns the green moved (s), or -1 when the plan was
    not kept changed (denied, or already green). The caller undoes a change it then refuses."""
    k = int(requests[r, R_INTERSECTION])
    g = int(requests[r, R_GROUP])
    earliest = requests[r, R_EARLIEST_S]
    latest = requests[r, R_LATEST_S]
    queue = requests[r, R_QUEUE_S]
    min_gain = settings[S_MIN_GAIN_S]
    n = plan_n[k]
    first, last = _green_run(stage_groups, plan_stage, plan_start_s, plan_end_s, n, k, g, now_s, 0)
    if first < 0 or latest > plan_end_s[k, n - 1]:
        out[r, O_REASON] = TOO_EARLY
        return -1.0
    reason = OK
    if plan_start_s[k, first] <= now_s:
        # Green now: the vehicle makes it, or this green lasts longer, or it waits for the next one.
        if plan_end_s[k, last] >= _crossing_s(earliest, latest, queue, plan_start_s[k, first], now_s) - _TOLERANCE_S:
            _grant(out, r, ALREADY_GREEN, plan_start_s[k, first], plan_end_s[k, last], plan_end_s[k, last])
            return -1.0
        base_end = plan_end_s[k, last]
        extra = _crossing_s(earliest, latest, queue, plan_start_s[k, first], now_s) - base_end
        if extra > settings[S_MAX_EXTENSION_S] + _TOLERANCE_S \
                or extra + plan_end_s[k, last] - plan_start_s[k, last] > stage_max_s[k, plan_stage[k, last]]:
            reason = OVER_MAX_GREEN
        else:
            reason, anchor = _extend(k, last, extra, now_s, n_stages, n_groups, stage_groups, intergreen_s,
                                     stage_min_s, cycle_s, offset_s, stage_offset_s, plan_stage, plan_start_s,
                                     plan_end_s, plan_n, cuts, group_s)
            if reason == OK and _pay_back(k, anchor, plan_stage[k, last], cuts, now_s, n_stages, n_groups,
                                          stage_groups, intergreen_s, stage_min_s, stage_max_s, plan_stage,
                                          plan_start_s, plan_end_s, plan_n, group_s):
                _grant(out, r, EXTENSION, plan_start_s[k, first], plan_end_s[k, last], base_end)
                return float(extra)
            if reason == OK:
                reason = NO_PAYBACK
            _copy_plan(k, 0, work_stage, work_start_s, work_end_s, work_n, plan_stage, plan_start_s, plan_end_s,
                       plan_n)
            _clear_cuts(cuts)
        first, last = _green_run(stage_groups, plan_stage, plan_start_s, plan_end_s, n, k, g, plan_end_s[k, last],
                                 last + 1)
        if first < 0 or latest > plan_end_s[k, n - 1]:
            out[r, O_REASON] = reason
            return -1.0
    # The green is still to come: it starts sooner when the vehicle would wait for it, early enough
    # for the queue ahead to be gone when it arrives (as far as the cycle's budget allows), and
    # lasts longer when it ends too soon.
    gain = 0.0
    cycle = _cycle_of(k, plan_start_s[k, first], plan_stage[k, first], cycle_s, offset_s, stage_offset_s)
    left = settings[S_CYCLE_SHARE] * cycle_s[k] - _budget_used(k, cycle, budget)
    wanted = plan_start_s[k, first] - (earliest - queue)
    if wanted >= min_gain and left < min_gain:
        out[r, O_REASON] = OVER_BUDGET
        return -1.0
    wanted = min(wanted, left)
    if wanted >= min_gain:
        current = _in_progress(k, now_s, plan_start_s, plan_end_s, n)
        gain = _early_green(k, g, current, first, min(wanted, settings[S_MAX_EARLY_GREEN_S]), now_s, n_groups,
                            stage_groups, intergreen_s, stage_min_s, stage_max_s, cycle_s, offset_s, stage_offset_s,
                            plan_stage, plan_start_s, plan_end_s, cuts, group_s)
        if gain < min_gain:
            out[r, O_REASON] = NO_GAIN if reason == OK else reason
            return -1.0
    base_end = plan_end_s[k, last]
    extra = _crossing_s(earliest, latest, queue, plan_start_s[k, first], now_s) - base_end
    if extra > _TOLERANCE_S:
        if extra > settings[S_MAX_EXTENSION_S] + _TOLERANCE_S \
                or extra + plan_end_s[k, last] - plan_start_s[k, last] > stage_max_s[k, plan_stage[k, last]]:
            out[r, O_REASON] = OVER_MAX_GREEN
            return -1.0
        reason, anchor = _extend(k, last, extra, now_s, n_stages, n_groups, stage_groups, intergreen_s, stage_min_s,
                                 cycle_s, offset_s, stage_offset_s, plan_stage, plan_start_s, plan_end_s, plan_n, cuts,
                                 group_s)
        if reason != OK:
            out[r, O_REASON] = reason
            return -1.0
    else:
        extra = 0.0
        anchor = _next_cycle_start(k, last, n, plan_stage)
    if gain <= 0.0 and extra <= 0.0:
        _grant(out, r, ALREADY_GREEN, plan_start_s[k, first], plan_end_s[k, last], plan_end_s[k, last])
        return -1.0
    # The stage that got the time gives it back: the one that starts sooner, else the one extended.
    if not _pay_back(k, anchor, plan_stage[k, first if gain > 0.0 else last], cuts, now_s, n_stages, n_groups,
                     stage_groups, intergreen_s, stage_min_s, stage_max_s, plan_stage, plan_start_s, plan_end_s,
                     plan_n, group_s):
        out[r, O_REASON] = NO_PAYBACK
        return -1.0
    _grant(out, r, EARLY_GREEN if gain > 0.0 else EXTENSION, plan_start_s[k, first], plan_end_s[k, last], base_end)
    return float(gain + extra)


@kernel
def _clear_cuts(cuts: np.ndarray) -> None:
    cuts[:, X_FIRST_CYCLE] = np.inf
    cuts[:, X_LAST_CYCLE] = NO_CYCLE
    cuts[:, X_CUT_S] = 0.0
    cuts[:, X_GIVEN_S] = 0.0


@kernel
def _pay_back(k: int, anchor: int, target_stage: int, cuts: np.ndarray, now_s: float, n_stages: np.ndarray,
              n_groups: np.ndarray, stage_groups: np.ndarray, intergreen_s: np.ndarray, stage_min_s: np.ndarray,
              stage_max_s: np.ndarray, entry_stage: np.ndarray, entry_start_s: np.ndarray, entry_end_s: np.ndarray,
              n_entries: np.ndarray, group_s: np.ndarray) -> bool:
    """In the cycle from ``anchor``, give each stage a priority cut (``cuts``) its time back, from
    ``target_stage``, which got it: the target's entry there gives up to its minimum, each cut
    stage takes its share up to its maximum, and the cycle after keeps its start. Returns whether
    every second cut was given back; when not, the plan may be left half changed, for the caller
    to undo. ``group_s`` (2, Gm) is scratch."""
    n = n_entries[k]
    following = _next_cycle_start(k, anchor, n, entry_stage) if anchor >= 0 else -1
    if following < 0:
        return False
    owed = 0.0
    giver = -1
    for s in range(cuts.shape[0]):
        if s != target_stage:
            owed += cuts[s, X_CUT_S]
    for i in range(anchor, following):
        if entry_stage[k, i] == target_stage:
            giver = i
            break
    if owed <= _TOLERANCE_S:
        return True
    if giver < 0 or entry_end_s[k, giver] - entry_start_s[k, giver] - stage_min_s[k, target_stage] < owed:
        return False
    given = 0.0
    for i in range(anchor, following):
        stage = entry_stage[k, i]
        if stage != target_stage and cuts[stage, X_CUT_S] > 0.0:
            add = min(cuts[stage, X_CUT_S] - cuts[stage, X_GIVEN_S],
                      max(0.0, stage_max_s[k, stage] - (entry_end_s[k, i] - entry_start_s[k, i])))
            entry_end_s[k, i] += add
            cuts[stage, X_GIVEN_S] += add
            given += add
    entry_end_s[k, giver] -= given
    _retime(k, anchor + 1, following, now_s, n_groups, stage_groups, intergreen_s, entry_stage, entry_start_s,
            entry_end_s, group_s[0])
    return given >= owed - _TOLERANCE_S and _fit_to_anchor(k, following, now_s, n_stages, n_groups, stage_groups,
                                                           intergreen_s, entry_stage, entry_start_s, entry_end_s,
                                                           n_entries, group_s[0])


@kernel
def _grant(out: np.ndarray, r: int, strategy: int, green_from_s: float, green_until_s: float,
           base_end_s: float) -> None:
    out[r, O_DECISION] = GRANTED
    out[r, O_STRATEGY] = strategy
    out[r, O_GREEN_FROM_S] = green_from_s
    out[r, O_GREEN_UNTIL_S] = green_until_s
    out[r, O_REASON] = OK
    out[r, O_BASE_END_S] = base_end_s


@kernel
def _budget_used(k: int, cycle: float, budget: np.ndarray) -> float:
    """The green moved by priority at intersection ``k`` in ``cycle`` so far (s)."""
    for slot in range(B_SLOTS):
        if budget[k, 2 * slot + B_CYCLE] == cycle:
            return float(budget[k, 2 * slot + B_MOVED_S])
    return 0.0


@kernel
def _budget_add(k: int, cycle: float, moved_s: float, budget: np.ndarray) -> None:
    """Count ``moved_s`` more in ``cycle``, in its slot or in the slot of the earliest cycle."""
    oldest = 0
    for slot in range(B_SLOTS):
        if budget[k, 2 * slot + B_CYCLE] == cycle:
            budget[k, 2 * slot + B_MOVED_S] += moved_s
            return
        if budget[k, 2 * slot + B_CYCLE] < budget[k, 2 * oldest + B_CYCLE]:
            oldest = slot
    budget[k, 2 * oldest + B_CYCLE] = cycle
    budget[k, 2 * oldest + B_MOVED_S] = moved_s


@kernel
def _keeps_promises(k: int, now_s: float, n_groups: np.ndarray, stage_groups: np.ndarray, entry_stage: np.ndarray,
                    entry_start_s: np.ndarray, entry_end_s: np.ndarray, n_entries: np.ndarray,
                    promised_s: np.ndarray) -> bool:
    """Whether every group still shows the greens promised to it (``promised_s``) from now on."""
    for g in range(n_groups[k]):
        for slot in range(P_SLOTS):
            until = promised_s[k, g, 2 * slot + P_UNTIL_S]
            if until <= now_s:
                continue
            since = max(now_s, promised_s[k, g, 2 * slot + P_FROM_S])
            first, last = _green_run(stage_groups, entry_stage, entry_start_s, entry_end_s, n_entries[k], k, g, since,
                                     0)
            if first < 0 or entry_start_s[k, first] > since + _TOLERANCE_S \
                    or entry_end_s[k, last] < until - _TOLERANCE_S:
                return False
    return True


@kernel
def _promise(k: int, g: int, now_s: float, green_from_s: float, green_until_s: float, promised_s: np.ndarray) -> None:
    """Promise group ``g`` its green from ``green_from_s`` to ``green_until_s``: a green that overlaps
    one promised already lengthens that promise; another takes a slot whose promise has ended, else
    the slot of the later promise when it comes sooner (the later vehicle asks again)."""
    target = -1
    for slot in range(P_SLOTS):
        low, high = promised_s[k, g, 2 * slot + P_FROM_S], promised_s[k, g, 2 * slot + P_UNTIL_S]
        if high > now_s and green_from_s <= high + _TOLERANCE_S and green_until_s >= low - _TOLERANCE_S:
            promised_s[k, g, 2 * slot + P_FROM_S] = min(low, green_from_s)
            promised_s[k, g, 2 * slot + P_UNTIL_S] = max(high, green_until_s)
            return
        if target < 0 or high <= now_s or (promised_s[k, g, 2 * target + P_UNTIL_S] > now_s
                                           and high > promised_s[k, g, 2 * target + P_UNTIL_S]):
            target = slot
    if promised_s[k, g, 2 * target + P_UNTIL_S] > now_s and promised_s[k, g, 2 * target + P_FROM_S] < green_from_s:
        return
    promised_s[k, g, 2 * target + P_FROM_S] = green_from_s
    promised_s[k, g, 2 * target + P_UNTIL_S] = green_until_s


@kernel
def _within_limits(k: int, moved_s: float, cycle: float, settings: np.ndarray, cycle_s: np.ndarray, budget: np.ndarray,
                   stage_cuts: np.ndarray, cuts: np.ndarray) -> int:
    """Whether a change moving ``moved_s`` of green in ``cycle``, cutting the stages as ``cuts`` says,
    keeps the intersection's budget per cycle and every stage's limit of consecutive cycles cut; if
    so, both are counted. Returns a reason code."""
    used = _budget_used(k, cycle, budget)
    if used + moved_s > settings[S_CYCLE_SHARE] * cycle_s[k] + _TOLERANCE_S:
        return OVER_BUDGET
    for s in range(cuts.shape[0]):
        if cuts[s, X_LAST_CYCLE] != NO_CYCLE \
                and _streak(k, s, stage_cuts, cuts) > settings[S_MAX_CUT_CYCLES] + _TOLERANCE_S:
            return CUT_LIMIT
    _budget_add(k, cycle, moved_s, budget)
    for s in range(cuts.shape[0]):
        if cuts[s, X_LAST_CYCLE] != NO_CYCLE:
            stage_cuts[k, s, C_STREAK] = _streak(k, s, stage_cuts, cuts)
            stage_cuts[k, s, C_LAST_CYCLE] = max(stage_cuts[k, s, C_LAST_CYCLE], cuts[s, X_LAST_CYCLE])
    return OK


@kernel
def _streak(k: int, s: int, stage_cuts: np.ndarray, cuts: np.ndarray) -> float:
    """The consecutive cycles stage ``s`` is cut in once ``cuts`` is added to its history."""
    last_cut = stage_cuts[k, s, C_LAST_CYCLE]
    if cuts[s, X_FIRST_CYCLE] <= last_cut + 1:
        return float(stage_cuts[k, s, C_STREAK] + max(0.0, cuts[s, X_LAST_CYCLE] - last_cut))
    return float(cuts[s, X_LAST_CYCLE] - cuts[s, X_FIRST_CYCLE] + 1)


@kernel
def decide(now_s: float, requests: np.ndarray, settings: np.ndarray,
           n_stages: np.ndarray, n_groups: np.ndarray, stage_groups: np.ndarray, intergreen_s: np.ndarray,
           min_green_s: np.ndarray, green_s: np.ndarray, stage_min_s: np.ndarray, stage_max_s: np.ndarray,
           cycle_s: np.ndarray, max_cycle_s: np.ndarray, offset_s: np.ndarray, stage_offset_s: np.ndarray,
           entry_stage: np.ndarray, entry_start_s: np.ndarray, entry_end_s: np.ndarray, n_entries: np.ndarray,
           budget: np.ndarray, stage_cuts: np.ndarray, promised_s: np.ndarray, preempted_until_s: np.ndarray,
           plan_stage: np.ndarray, plan_start_s: np.ndarray, plan_end_s: np.ndarray, plan_n: np.ndarray,
           plan_budget: np.ndarray, plan_stage_cuts: np.ndarray, plan_promised_s: np.ndarray,
           work_stage: np.ndarray, work_start_s: np.ndarray, work_end_s: np.ndarray, work_n: np.ndarray,
           out: np.ndarray, out_changed: np.ndarray) -> None:
    """Decide every request (rows of ``requests``, columns ``R_*``) in rank order (:func:`_ranked`).

    The current plans (``entry_*``, ``n_entries``) and priority state (``budget``, ``stage_cuts``,
    ``promised_s``) are read; the decided ones are written into ``plan_*`` for the intersections
    that requests name, and ``out_changed[k]`` says whose plan changed; ``work_*`` is scratch. Each request gets, in
    ``out[r]`` (columns ``O_*``), a decision, a strategy, the green it will meet (NaN when denied), a
    reason code, and the end that green had before the change (for a check-out to give back).
    Requests at one intersection are decided one after the other on its changing plan, so those for
    one stage share one change. A change keeps the fixed-cycle frame, each stage's minimum, each
    group's minimum green and the maximum cycle, takes back no green promised to a vehicle by an
    earlier grant, moves at most ``S_CYCLE_SHARE`` of a cycle per cycle, and cuts no stage in more
    than ``S_MAX_CUT_CYCLES`` consecutive cycles.
    """
    cuts = np.empty((stage_groups.shape[1], 4))
    group_s = np.empty((2, stage_groups.shape[2]))
    touched = np.zeros(out_changed.size, dtype=np.bool_)
    for k in range(out_changed.size):
        out_changed[k] = False
    order = _ranked(requests)
    for position in range(order.size):
        r = order[position]
        k = int(requests[r, R_INTERSECTION])
        out[r, O_DECISION] = DENIED
        out[r, O_STRATEGY] = NONE
        out[r, O_GREEN_FROM_S] = np.nan
        out[r, O_GREEN_UNTIL_S] = np.nan
        out[r, O_BASE_END_S] = np.nan
        if not touched[k]:
            _copy_plan(k, 0, entry_stage, entry_start_s, entry_end_s, n_entries, plan_stage, plan_start_s,
                       plan_end_s, plan_n)
            plan_budget[k] = budget[k]
            plan_stage_cuts[k] = stage_cuts[k]
            plan_promised_s[k] = promised_s[k]
            touched[k] = True
        out[r, O_REASON] = _screen(now_s, requests, r, settings, preempted_until_s)
        if out[r, O_REASON] != OK:
            continue
        _copy_plan(k, 0, plan_stage, plan_start_s, plan_end_s, plan_n, work_stage, work_start_s, work_end_s, work_n)
        _clear_cuts(cuts)
        moved = _plan_request(now_s, requests, r, settings, n_stages, n_groups, stage_groups, intergreen_s,
                              stage_min_s, stage_max_s, cycle_s, offset_s, stage_offset_s, plan_stage, plan_start_s,
                              plan_end_s, plan_n, work_stage, work_start_s, work_end_s, work_n, plan_budget, cuts,
                              group_s, out)
        if moved < 0.0:
            _copy_plan(k, 0, work_stage, work_start_s, work_end_s, work_n, plan_stage, plan_start_s, plan_end_s,
                       plan_n)
            if out[r, O_DECISION] == GRANTED:
                _promise(k, int(requests[r, R_GROUP]), now_s, out[r, O_GREEN_FROM_S], out[r, O_GREEN_UNTIL_S],
                         plan_promised_s)
            continue
        reason = OK
        if not _keeps_promises(k, now_s, n_groups, stage_groups, plan_stage, plan_start_s, plan_end_s, plan_n,
                               plan_promised_s):
            reason = PROMISED
        elif _green_too_short(k, plan_n[k], n_groups, stage_groups, min_green_s, plan_stage, plan_start_s, plan_end_s):
            reason = UNDER_MIN_GREEN
        elif _waits_too_long(k, plan_n[k], max_cycle_s[k], n_stages, n_groups, stage_groups, intergreen_s, green_s,
                             plan_stage, plan_start_s, plan_end_s, group_s):
            reason = OVER_MAX_CYCLE
        else:
            target = int(plan_stage[k, _in_progress(k, out[r, O_GREEN_FROM_S], plan_start_s, plan_end_s,
                                                    plan_n[k])])
            reason = _within_limits(k, moved, _cycle_of(k, out[r, O_GREEN_FROM_S], target, cycle_s, offset_s,
                                                        stage_offset_s),
                                    settings, cycle_s, plan_budget, plan_stage_cuts, cuts)
        if reason != OK:
            _copy_plan(k, 0, work_stage, work_start_s, work_end_s, work_n, plan_stage, plan_start_s, plan_end_s,
                       plan_n)
            out[r, O_DECISION] = DENIED
            out[r, O_STRATEGY] = NONE
            out[r, O_GREEN_FROM_S] = np.nan
            out[r, O_GREEN_UNTIL_S] = np.nan
            out[r, O_BASE_END_S] = np.nan
            out[r, O_REASON] = reason
            continue
        _promise(k, int(requests[r, R_GROUP]), now_s, out[r, O_GREEN_FROM_S], out[r, O_GREEN_UNTIL_S],
                 plan_promised_s)
        out_changed[k] = True


@kernel
def release(now_s: float, k: int, g: int, base_end_s: float, n_stages: np.ndarray, n_groups: np.ndarray,
            stage_groups: np.ndarray, intergreen_s: np.ndarray, min_green_s: np.ndarray, green_s: np.ndarray,
            stage_min_s: np.ndarray, entry_stage: np.ndarray, entry_start_s: np.ndarray, entry_end_s: np.ndarray,
            n_entries: np.ndarray) -> float:
    """A check-out: end the green of group ``g`` at intersection ``k`` that a grant lengthened past
    ``base_end_s``, at the later of now, that end and its stage's minimum, and give the time back to
    the entries after it up to the next cycle's start, in proportion to what each lacks of its base
    green (the stages that paid for it); what they cannot take stays with the green. Returns the
    time the green now ends, or NaN when the plan must stay as it was (``g`` not green now, nothing
    to give back, the frame would not close, or a green would fall under its minimum): the arrays
    may then hold a half-made change, which the caller discards."""
    n = n_entries[k]
    last_end_s = np.empty(stage_groups.shape[2])
    first, last = _green_run(stage_groups, entry_stage, entry_start_s, entry_end_s, n, k, g, now_s, 0)
    if first < 0 or entry_start_s[k, first] > now_s:
        return np.nan
    end = entry_end_s[k, last]
    new_end = max(now_s, base_end_s, entry_start_s[k, last] + stage_min_s[k, entry_stage[k, last]])
    anchor = _next_cycle_start(k, last, n, entry_stage)
    if new_end >= end - _TOLERANCE_S or anchor < 0:
        return np.nan
    lacking = 0.0
    for i in range(last + 1, anchor):
        lacking += max(0.0, green_s[k, entry_stage[k, i]] - (entry_end_s[k, i] - entry_start_s[k, i]))
    given = min(end - new_end, lacking)
    if given <= _TOLERANCE_S:
        return np.nan
    for i in range(last + 1, anchor):
        short = max(0.0, green_s[k, entry_stage[k, i]] - (entry_end_s[k, i] - entry_start_s[k, i]))
        entry_end_s[k, i] += given * short / lacking
    entry_end_s[k, last] = end - given
    _retime(k, last + 1, anchor, now_s, n_groups, stage_groups, intergreen_s, entry_stage, entry_start_s, entry_end_s,
            last_end_s)
    if not _fit_to_anchor(k, anchor, now_s, n_stages, n_groups, stage_groups, intergreen_s, entry_stage,
                          entry_start_s, entry_end_s, n_entries, last_end_s) \
            or _green_too_short(k, n, n_groups, stage_groups, min_green_s, entry_stage, entry_start_s, entry_end_s):
        return np.nan
    return float(entry_end_s[k, last])


# Exit transitions: the ways a planner may try, in a caller's order of preference...
TRY_BEST_WAY, TRY_OTHER_WAY, TRY_DWELL, TRY_NOTHING = range(4)
# ...and the transition a plan got.
IN_STEP, SHORT_WAY, LONG_WAY, DWELL, OUT_OF_STEP = range(5)


@kernel
def _serves(k: int, stage: int, groups: np.ndarray, stage_groups: np.ndarray) -> bool:
    """Whether ``stage`` holds every group of the mask ``groups``."""
    for g in range(groups.size):  # noqa: SIM110 (a loop compiles to less than a generator in numba)
        if groups[g] and not stage_groups[k, stage, g]:
            return False
    return True


@kernel
def _interstage(k: int, stage_from: int, stage_to: int, n_groups: np.ndarray, stage_groups: np.ndarray,
                intergreen_s: np.ndarray) -> float:
    """The longest intergreen from a group that ends with ``stage_from`` to one that starts with
    ``stage_to``; 0 when none conflict."""
    longest = 0.0
    for i in range(n_groups[k]):
        if not stage_groups[k, stage_from, i] or stage_groups[k, stage_to, i]:
            continue
        for j in range(n_groups[k]):
            if stage_groups[k, stage_to, j] and not stage_groups[k, stage_from, j] \
                    and not np.isnan(intergreen_s[k, i, j]):
                longest = max(longest, intergreen_s[k, i, j])
    return longest


@kernel
def _in_step_error(k: int, start_s: float, stage: int, cycle_s: np.ndarray, offset_s: np.ndarray,
                   stage_offset_s: np.ndarray) -> float:
    """How late ``stage`` starting at ``start_s`` is on the coordinated plan, in [0, cycle)."""
    late = start_s - offset_s[k] - stage_offset_s[k, stage]
    return float(late - np.floor(late / cycle_s[k]) * cycle_s[k])


@kernel
def _realign(k: int, after: int, way: int, now_s: float, until_s: float, n_stages: np.ndarray, n_groups: np.ndarray,
             stage_groups: np.ndarray, intergreen_s: np.ndarray, green_s: np.ndarray, stage_min_s: np.ndarray,
             stage_max_s: np.ndarray, cycle_s: np.ndarray, offset_s: np.ndarray, stage_offset_s: np.ndarray,
             max_cycle_s: np.ndarray, entry_stage: np.ndarray, entry_start_s: np.ndarray, entry_end_s: np.ndarray,
             n_entries: np.ndarray) -> tuple[int, float]:
    """Drop the entries after ``after`` and follow it with the stage sequence brought back onto the
    coordinated plan (cycle and offset) by ``way``, then base stages until ``until_s``.

    The next stage starts ``late`` seconds after its coordinated start. The **short way** takes
    ``late`` off the following cycles, the **long way** adds ``cycle - late`` to them, each stage
    giving or taking in proportion to its room (base green down to its minimum, up to its maximum;
    no cycle longer than the maximum), spread evenly over as few cycles as they need. The best way
    is the one that needs fewer cycles (the smaller change on a tie); **dwell** holds stage
    ``after`` until the next one's coordinated start. Returns (transition, time from which the plan
    is in step, or NaN when the way is impossible or the plan is full).
    """
    n_entries[k] = after + 1
    count = n_stages[k]
    stage = entry_stage[k, after]
    following = (stage + 1) % count
    last_end_s = np.empty(stage_groups.shape[2])
    _last_green_ends(k, after, n_groups, stage_groups, entry_stage, entry_end_s, last_end_s)
    natural = _start_after(k, following, stage, entry_end_s[k, after], now_s, n_groups, stage_groups,
                           intergreen_s, last_end_s)
    cycle = cycle_s[k]
    late = _in_step_error(k, natural, following, cycle_s, offset_s, stage_offset_s)
    transition = OUT_OF_STEP
    in_step_from = natural
    if late < 1e-3 or cycle - late < 1e-3:
        transition = IN_STEP
    elif way == TRY_DWELL:
        transition = DWELL
        # The start follows the end one for one when the ending stage binds it; twice settles it.
        for _ in range(2):
            entry_end_s[k, after] += cycle - _in_step_error(
                k, _start_after(k, following, stage, entry_end_s[k, after], now_s, n_groups, stage_groups,
                                intergreen_s, last_end_s), following, cycle_s, offset_s, stage_offset_s)
            for g in range(n_groups[k]):
                if stage_groups[k, stage, g]:
                    last_end_s[g] = entry_end_s[k, after]
        in_step_from = _start_after(k, following, stage, entry_end_s[k, after], now_s, n_groups, stage_groups,
                                    intergreen_s, last_end_s)
    elif way != TRY_NOTHING:
        short_room = 0.0
        long_room = 0.0
        for s in range(count):
            short_room += green_s[k, s] - stage_min_s[k, s]
            long_room += stage_max_s[k, s] - green_s[k, s]
        long_rate = min(long_room, max_cycle_s[k] - cycle)
        short_cycles = np.ceil(late / short_room - 1e-9) if short_room > 1e-3 else np.inf
        long_cycles = np.ceil((cycle - late) / long_rate - 1e-9) if long_rate > 1e-3 else np.inf
        short_first = short_cycles < long_cycles or (short_cycles == long_cycles and late <= cycle - late)
        short = short_first if way == TRY_BEST_WAY else not short_first
        cycles = short_cycles if short else long_cycles
        if np.isinf(cycles):
            return OUT_OF_STEP, np.nan
        transition = SHORT_WAY if short else LONG_WAY
        per_cycle = (late if short else cycle - late) / cycles
        room = short_room if short else long_room
        for m in range(int(cycles) * count):
            s = (following + m) % count
            if short:
                green = green_s[k, s] - per_cycle * (green_s[k, s] - stage_min_s[k, s]) / room
            else:
                green = green_s[k, s] + per_cycle * (stage_max_s[k, s] - green_s[k, s]) / room
            if np.isnan(_append(k, s, green, now_s, n_groups, stage_groups, intergreen_s, entry_stage,
                                entry_start_s, entry_end_s, n_entries)):
                return transition, np.nan
        # Intergreens from earlier stages can move a start a little: the last green absorbs it.
        last = n_entries[k] - 1
        _last_green_ends(k, last, n_groups, stage_groups, entry_stage, entry_end_s, last_end_s)
        natural = _start_after(k, following, entry_stage[k, last], entry_end_s[k, last], now_s, n_groups,
                               stage_groups, intergreen_s, last_end_s)
        error = _in_step_error(k, natural, following, cycle_s, offset_s, stage_offset_s)
        if error > cycle / 2.0:
            error -= cycle
        last_stage = entry_stage[k, last]
        entry_end_s[k, last] = min(max(entry_end_s[k, last] - error,
                                       entry_start_s[k, last] + stage_min_s[k, last_stage]),
                                   entry_start_s[k, last] + stage_max_s[k, last_stage])
        for g in range(n_groups[k]):
            if stage_groups[k, last_stage, g]:
                last_end_s[g] = entry_end_s[k, last]
        in_step_from = _start_after(k, following, last_stage, entry_end_s[k, last], now_s, n_groups, stage_groups,
                                    intergreen_s, last_end_s)
    _append_base(k, until_s, n_stages, n_groups, stage_groups, intergreen_s, green_s, entry_stage, entry_start_s,
                 entry_end_s, n_entries)
    if entry_end_s[k, n_entries[k] - 1] < until_s:
        return transition, np.nan
    return transition, in_step_from


@kernel
def _hold(k: int, i: int, fixed: bool, hold_groups: np.ndarray, hold_stage: int, hold_from_s: float,
          hold_until_s: float, now_s: float, n_groups: np.ndarray, stage_groups: np.ndarray, intergreen_s: np.ndarray,
          stage_min_s: np.ndarray, stage_max_s: np.ndarray, from_stage: np.ndarray, from_start_s: np.ndarray,
          from_end_s: np.ndarray, entry_stage: np.ndarray, entry_start_s: np.ndarray, entry_end_s: np.ndarray,
          n_entries: np.ndarray) -> tuple[float, int]:
    """Copy entries ``0..i`` of the ``from_*`` plan, then hold the groups ``hold_groups`` green until
    ``hold_until_s`` right after entry ``i``: entry ``i`` itself goes on when its stage serves them
    and is still green (or ends now), else it ends as close to ``hold_from_s`` less the interstage as its minimum
    and maximum allow (or as it is, when ``fixed``) and ``hold_stage`` follows at its earliest safe
    start. A green that serves them is never shortened. Returns (start of the held green, index of
    the hold entry), or (NaN, -1) when full."""
    for e in range(i + 1):
        entry_stage[k, e] = from_stage[k, e]
        entry_start_s[k, e] = from_start_s[k, e]
        entry_end_s[k, e] = from_end_s[k, e]
    n_entries[k] = i + 1
    stage = entry_stage[k, i]
    start = entry_start_s[k, i]
    end = entry_end_s[k, i]
    if fixed or end <= now_s:
        low = high = end
    else:
        low = max(now_s, start + stage_min_s[k, stage])
        high = max(low, start + stage_max_s[k, stage])
    if end >= now_s and _serves(k, stage, hold_groups, stage_groups):
        entry_end_s[k, i] = max(end, hold_until_s)
        return start, i
    gap = _interstage(k, stage, hold_stage, n_groups, stage_groups, intergreen_s)
    entry_end_s[k, i] = max(low, min(high, hold_from_s - gap))
    held_from = _append(k, hold_stage, 0.0, now_s, n_groups, stage_groups, intergreen_s, entry_stage, entry_start_s,
                        entry_end_s, n_entries)
    if np.isnan(held_from):
        return np.nan, -1
    entry_end_s[k, i + 1] = max(hold_until_s, held_from + stage_min_s[k, hold_stage])
    return held_from, i + 1


@kernel
def _fits(k: int, n_stages: np.ndarray, n_groups: np.ndarray, stage_groups: np.ndarray, intergreen_s: np.ndarray,
          min_green_s: np.ndarray, green_s: np.ndarray, max_cycle_s: np.ndarray, entry_stage: np.ndarray,
          entry_start_s: np.ndarray, entry_end_s: np.ndarray, n_entries: np.ndarray) -> bool:
    """Whether a plan keeps every minimum green and no group waits beyond the maximum cycle."""
    n = n_entries[k]
    return not (_green_too_short(k, n, n_groups, stage_groups, min_green_s, entry_stage, entry_start_s, entry_end_s)
                or _waits_too_long(k, n, max_cycle_s[k], n_stages, n_groups, stage_groups, intergreen_s, green_s,
                                   entry_stage, entry_start_s, entry_end_s, np.empty((2, stage_groups.shape[2]))))


@kernel
def preempt(now_s: float, k: int, hold_groups: np.ndarray, hold_stage: np.ndarray, hold_from_s: np.ndarray,
            hold_until_s: np.ndarray, ways: np.ndarray, until_s: float,
            n_stages: np.ndarray, n_groups: np.ndarray, stage_groups: np.ndarray, intergreen_s: np.ndarray,
            min_green_s: np.ndarray, green_s: np.ndarray, stage_min_s: np.ndarray, stage_max_s: np.ndarray,
            cycle_s: np.ndarray, offset_s: np.ndarray, stage_offset_s: np.ndarray, max_cycle_s: np.ndarray,
            entry_stage: np.ndarray, entry_start_s: np.ndarray, entry_end_s: np.ndarray, n_entries: np.ndarray,
            plan_stage: np.ndarray, plan_start_s: np.ndarray, plan_end_s: np.ndarray, plan_n: np.ndarray,
            work_stage: np.ndarray, work_start_s: np.ndarray, work_end_s: np.ndarray, work_n: np.ndarray,
            out_green_from_s: np.ndarray, out_green_until_s: np.ndarray) -> tuple[int, float]:
    """Plan the pre-emption of intersection ``k`` for the holds ``h`` (in the order given): the
    groups ``hold_groups[h]`` (H, Gm) green, in stage ``hold_stage[h]``, from ``hold_from_s[h]``
    to ``hold_until_s[h]``, then back to the coordinated plan.

    The current plan (``entry_*``) is read; the new one is written into ``plan_*``, with
    ``work_*`` as scratch (both (K, E) like the plan). The stage in progress goes back to its base
    green (not ending before now or its minimum); the entries after it are planned again. For each
    hold, every way of reaching it is tried (after each entry still to come, until the hold ends,
    each exit transition of ``ways`` in order, the first that keeps every minimum green and the
    maximum cycle kept): the one whose green starts latest by ``hold_from_s`` wins, else the one
    that starts earliest. A later hold is planned after the earlier ones, which stay. The green
    each hold gets is written into ``out_green_from_s``, ``out_green_until_s`` (NaN when no way
    fits). Returns (the exit transition, the time from which the plan is in step again, NaN when
    it is not).
    """
    _copy_plan(k, 0, entry_stage, entry_start_s, entry_end_s, n_entries, plan_stage, plan_start_s, plan_end_s, plan_n)
    current = _in_progress(k, now_s, plan_start_s, plan_end_s, plan_n[k])
    plan_n[k] = current + 1
    stage = plan_stage[k, current]
    if plan_end_s[k, current] > now_s:
        plan_end_s[k, current] = max(now_s, plan_start_s[k, current] + stage_min_s[k, stage],
                                     min(plan_end_s[k, current], plan_start_s[k, current] + green_s[k, stage]))
    _append_base(k, until_s, n_stages, n_groups, stage_groups, intergreen_s, green_s, plan_stage, plan_start_s,
                 plan_end_s, plan_n)
    frozen = current
    transition = OUT_OF_STEP
    in_step_from = np.nan
    applied = False
    for h in range(hold_stage.size):
        out_green_from_s[h] = np.nan
        out_green_until_s[h] = np.nan
        best_entry = -1
        best_way = -1
        best_start = np.nan
        best_on_time = False
        for i in range(frozen, plan_n[k]):
            if i > frozen and plan_start_s[k, i] >= hold_until_s[h]:
                break
            for w in range(ways.size):
                start, held = _hold(k, i, applied and i == frozen, hold_groups[h], hold_stage[h], hold_from_s[h],
                                    hold_until_s[h], now_s, n_groups, stage_groups, intergreen_s, stage_min_s,
                                    stage_max_s, plan_stage, plan_start_s, plan_end_s, work_stage, work_start_s,
                                    work_end_s, work_n)
                if held < 0:
                    continue
                _, step = _realign(k, held, ways[w], now_s, until_s, n_stages, n_groups, stage_groups, intergreen_s,
                                   green_s, stage_min_s, stage_max_s, cycle_s, offset_s, stage_offset_s, max_cycle_s,
                                   work_stage, work_start_s, work_end_s, work_n)
                if np.isnan(step) or not _fits(k, n_stages, n_groups, stage_groups, intergreen_s, min_green_s,
                                               green_s, max_cycle_s, work_stage, work_start_s, work_end_s, work_n):
                    continue
                on_time = start <= hold_from_s[h] + _TOLERANCE_S
                if best_entry < 0 or (on_time and not best_on_time) \
                        or (on_time and best_on_time and start > best_start + _TOLERANCE_S) \
                        or (not on_time and not best_on_time and start < best_start - _TOLERANCE_S):
                    best_entry, best_way, best_start, best_on_time = i, ways[w], start, on_time
                break
        if best_entry < 0:
            continue
        start, held = _hold(k, best_entry, applied and best_entry == frozen, hold_groups[h], hold_stage[h],
                            hold_from_s[h], hold_until_s[h], now_s, n_groups, stage_groups, intergreen_s, stage_min_s,
                            stage_max_s, plan_stage, plan_start_s, plan_end_s, work_stage, work_start_s, work_end_s,
                            work_n)
        transition, in_step_from = _realign(k, held, best_way, now_s, until_s, n_stages, n_groups, stage_groups,
                                            intergreen_s, green_s, stage_min_s, stage_max_s, cycle_s, offset_s,
                                            stage_offset_s, max_cycle_s, work_stage, work_start_s, work_end_s, work_n)
        _copy_plan(k, 0, work_stage, work_start_s, work_end_s, work_n, plan_stage, plan_start_s, plan_end_s, plan_n)
        out_green_from_s[h] = start
        out_green_until_s[h] = plan_end_s[k, held]
        frozen = held
        applied = True
    if not applied:
        # Nothing to hold: back to the coordinated plan after the stage in progress.
        for w in range(ways.size):
            _copy_plan(k, 0, plan_stage, plan_start_s, plan_end_s, plan_n, work_stage, work_start_s, work_end_s,
                       work_n)
            way_transition, step = _realign(k, current, ways[w], now_s, until_s, n_stages, n_groups, stage_groups,
                                            intergreen_s, green_s, stage_min_s, stage_max_s, cycle_s, offset_s,
                                            stage_offset_s, max_cycle_s, work_stage, work_start_s, work_end_s,
                                            work_n)
            if not np.isnan(step) and _fits(k, n_stages, n_groups, stage_groups, intergreen_s, min_green_s, green_s,
                                            max_cycle_s, work_stage, work_start_s, work_end_s, work_n):
                _copy_plan(k, 0, work_stage, work_start_s, work_end_s, work_n, plan_stage, plan_start_s, plan_end_s,
                           plan_n)
                transition, in_step_from = way_transition, step
                break
    return transition, in_step_from


# -- following vehicles along their trips (signal_priority.tracking) ---------------------------------------------

# Settings of ``track_positions``, by index.
T_DETECTION_M, T_RENEW_EVERY_S, T_OFF_PATH_M, T_BACK_TOLERANCE_M, T_MAX_SPEED_M_S, T_ACCELERATION_M_S2, \
    T_ETA_MARGIN_S, T_STOP_ZONE_M, T_DWELL_SPEED_M_S, T_MAX_ETA_S, T_END_M = range(11)
N_TRACK_SETTINGS = 11
# A vehicle's state, by column of ``vehicles``.
V_TRIP, V_ALONG_M, V_LOCATED_S, V_TIME_S, V_SPEED_M_S, V_STATE, V_CROSSING, V_REQUEST_AT, V_REQUESTED_S = range(9)
N_VEHICLE_FIELDS = 9
# How a vehicle is followed.
ON_PATH, OFF_PATH, FINISHED = 0, 1, 2
# A report, by column of ``reports``: the vehicle's row, planar position (m), time (s), speed (m/s,
# NaN: unknown), doors (1 open, 0 closed, -1 unknown).
P_VEHICLE, P_X_M, P_Y_M, P_TIME_S, P_SPEED_M_S, P_DOORS = range(6)
N_REPORT_FIELDS = 6
# What came of a report, by column of ``out``.
U_ALONG_M, U_OFFSET_M, U_STATE, U_CROSSING, U_RELEASE, U_ACTION, U_TO_LINE_M, U_EARLIEST_S, U_WINDOW_S, \
    U_LATENESS_S, U_TIMED_STOP, U_STOP, U_ASKED = range(13)
N_TRACK_OUT = 13
# Actions: nothing due yet, a request, waiting to leave a stop before the stop line, dwelling at a
# stop, no crossing ahead, no signal group for the movement, off the path.
A_NOT_DUE, A_REQUEST, A_LEAVE_STOP, A_DWELLING, A_NO_CROSSING, A_NO_GROUP, A_OFF_PATH = range(7)


@kernel
def _first_at_or_after(values: np.ndarray, first: int, last: int, value: float) -> int:
    """The first index ``i`` in ``first..last - 1`` with ``values[i] >= value`` (``last``: none), by
    bisection over the sorted slice."""
    low, high = first, last
    while low < high:
        middle = (low + high) // 2
        if values[middle] < value:
            low = middle + 1
        else:
            high = middle
    return low


@kernel
def locate_one(first: int, last: int, point_x_m: np.ndarray, point_y_m: np.ndarray, point_at_m: np.ndarray,
               from_m: float, to_m: float, x_m: float, y_m: float) -> tuple[float, float, int]:
    """Where a vehicle at ``(x_m, y_m)`` is along the polyline of points ``first..last - 1`` (planar
    m, point ``j`` lying ``point_at_m[j]`` along it): the nearest point of the polyline between
    ``from_m`` and ``to_m`` along it. Returns its distance along, its distance from the vehicle, and
    the segment it is on (NaN, inf and -1 when no part of the polyline lies in the window)."""
    best_offset = np.inf
    best_along = np.nan
    best_segment = -1
    for s in range(first, last - 1):
        a0 = point_at_m[s]
        a1 = point_at_m[s + 1]
        if a1 < from_m or a0 > to_m:
            continue
        x0 = point_x_m[s]
        y0 = point_y_m[s]
        dx = point_x_m[s + 1] - x0
        dy = point_y_m[s + 1] - y0
        squared = dx * dx + dy * dy
        t = 0.0 if squared <= 0.0 else ((x_m - x0) * dx + (y_m - y0) * dy) / squared
        # Within the segment, and within the window along it.
        low, high = 0.0, 1.0
        if a1 > a0:
            low = max(low, (from_m - a0) / (a1 - a0))
            high = min(high, (to_m - a0) / (a1 - a0))
        t = min(max(t, low), high)
        offset = np.hypot(x0 + t * dx - x_m, y0 + t * dy - y_m)
        if offset < best_offset:
            best_offset = offset
            best_along = a0 + t * (a1 - a0)
            best_segment = s
    return best_along, best_offset, best_segment


@kernel
def locate_on_paths(path_ptr: np.ndarray, point_x_m: np.ndarray, point_y_m: np.ndarray, point_at_m: np.ndarray,
                    path_of: np.ndarray, from_m: np.ndarray, to_m: np.ndarray, x_m: np.ndarray, y_m: np.ndarray,
                    out_along_m: np.ndarray, out_offset_m: np.ndarray) -> None:
    """:func:`locate_one` for each vehicle ``i`` on path ``path_of[i]`` (points ``path_ptr[p]`` to
    ``path_ptr[p + 1] - 1``), into ``out_along_m[i]`` and ``out_offset_m[i]``."""
    for i in range(x_m.size):
        p = path_of[i]
        out_along_m[i], out_offset_m[i], _ = locate_one(path_ptr[p], path_ptr[p + 1], point_x_m, point_y_m,
                                                        point_at_m, from_m[i], to_m[i], x_m[i], y_m[i])


@kernel
def _lateness_s(trip: int, along_m: float, now_s: float, speed_m_s: float, stop_ptr: np.ndarray,
                stop_at_m: np.ndarray, stop_due_s: np.ndarray, out: np.ndarray, r: int) -> None:
    """How late the vehicle reaches its next stop with a time, at ``speed_m_s``, into ``out[r]``
    (NaN, and stop -1, when no stop ahead has a time)."""
    out[r, U_LATENESS_S] = np.nan
    out[r, U_TIMED_STOP] = -1.0
    for s in range(_first_at_or_after(stop_at_m, stop_ptr[trip], stop_ptr[trip + 1], along_m), stop_ptr[trip + 1]):
        if not np.isnan(stop_due_s[s]):
            out[r, U_LATENESS_S] = now_s + (stop_at_m[s] - along_m) / speed_m_s - stop_due_s[s]
            out[r, U_TIMED_STOP] = s - stop_ptr[trip]
            return


@kernel
def _action(vehicle: np.ndarray, report: np.ndarray, crossing: int, crossing_line_m: np.ndarray,
            crossing_grouped: np.ndarray, trip: int, stop_ptr: np.ndarray, stop_at_m: np.ndarray,
            speed_limit_m_s: float, settings: np.ndarray, out: np.ndarray, r: int) -> None:
    """Whether a request is due at the vehicle's next crossing (the index in the packed crossings),
    and its arrival interval, into ``out[r]``."""
    along_m = vehicle[V_ALONG_M]
    line_m = crossing_line_m[crossing]
    distance_m = line_m - along_m
    out[r, U_TO_LINE_M] = distance_m
    if not crossing_grouped[crossing]:
        out[r, U_ACTION] = A_NO_GROUP
        return
    if distance_m > settings[T_DETECTION_M]:
        return
    local = crossing
    if vehicle[V_REQUEST_AT] == local and report[P_TIME_S] - vehicle[V_REQUESTED_S] < settings[T_RENEW_EVERY_S]:
        return
    first, last = stop_ptr[trip], stop_ptr[trip + 1]
    ahead = _first_at_or_after(stop_at_m, first, last, along_m)
    if ahead < last and stop_at_m[ahead] <= line_m:
        out[r, U_ACTION] = A_LEAVE_STOP
        out[r, U_STOP] = ahead - first
        return
    if ahead > first and along_m - stop_at_m[ahead - 1] <= settings[T_STOP_ZONE_M] and (
            report[P_DOORS] == 1.0 or (report[P_DOORS] < 0.0 and vehicle[V_SPEED_M_S] < settings[T_DWELL_SPEED_M_S])):
        out[r, U_ACTION] = A_DWELLING
        out[r, U_STOP] = ahead - 1 - first
        return
    speed_m_s = max(vehicle[V_SPEED_M_S], 0.5 * speed_limit_m_s, 1.0)
    earliest_s = distance_m / speed_limit_m_s + max(0.0, speed_limit_m_s - vehicle[V_SPEED_M_S]) / (
        2.0 * settings[T_ACCELERATION_M_S2])
    latest_s = max(earliest_s, distance_m / speed_m_s)
    out[r, U_ACTION] = A_REQUEST
    out[r, U_EARLIEST_S] = min(earliest_s, settings[T_MAX_ETA_S])
    out[r, U_WINDOW_S] = min(latest_s - earliest_s + settings[T_ETA_MARGIN_S], settings[T_MAX_ETA_S])
    out[r, U_ASKED] = 1.0 if vehicle[V_REQUEST_AT] != local else 0.0
    vehicle[V_REQUEST_AT] = local
    vehicle[V_REQUESTED_S] = report[P_TIME_S]


@kernel
def track_positions(path_ptr: np.ndarray, point_x_m: np.ndarray, point_y_m: np.ndarray, point_at_m: np.ndarray,
                    point_speed_m_s: np.ndarray, crossing_ptr: np.ndarray, crossing_line_m: np.ndarray,
                    crossing_grouped: np.ndarray, trip_path: np.ndarray, stop_ptr: np.ndarray, stop_at_m: np.ndarray,
                    stop_due_s: np.ndarray, settings: np.ndarray, vehicles: np.ndarray, reports: np.ndarray,
                    out: np.ndarray) -> None:
    """Follow each reported vehicle along its trip's path, in the order of ``reports``, updating its
    row of ``vehicles`` and writing what came of each report into ``out`` (columns ``U_*``).

    Paths are packed polylines (points ``path_ptr[p]..``, planar m, their distance along, and the
    speed limit of the edge each point starts); their signalised crossings (``crossing_ptr[p]..``:
    the stop line's distance along, whether the movement has a signal group); trips name their
    path and their stops (``stop_ptr[t]..``: distance along, when due, NaN unknown). Crossing
    indices in ``vehicles`` and ``out`` are into the packed crossings; stop indices in ``out`` are
    within the trip. The rules are those of :mod:`pilotage.signal_priority.tracking`: locate, move
    on (never back), pass the stop lines behind (the request at one is released), then, at the next
    crossing, the request due if any. ``U_RELEASE`` is the crossing whose request ends (passed, or
    the vehicle off its path), -1 for none.
    """
    for r in range(reports.shape[0]):
        report = reports[r]
        vehicle = vehicles[int(report[P_VEHICLE])]
        trip = int(vehicle[V_TRIP])
        path = trip_path[trip]
        for column in range(N_TRACK_OUT):
            out[r, column] = 0.0
        out[r, U_RELEASE] = -1.0
        out[r, U_STOP] = -1.0
        out[r, U_CROSSING] = -1.0
        out[r, U_TIMED_STOP] = -1.0
        out[r, U_LATENESS_S] = np.nan
        located = not np.isinf(vehicle[V_LOCATED_S])
        from_m, to_m = -np.inf, np.inf
        if located:
            from_m = vehicle[V_ALONG_M] - settings[T_BACK_TOLERANCE_M]
            to_m = (vehicle[V_ALONG_M] + settings[T_MAX_SPEED_M_S] * (report[P_TIME_S] - vehicle[V_LOCATED_S])
                    + settings[T_OFF_PATH_M])
        out[r, U_ALONG_M], out[r, U_OFFSET_M], segment = locate_one(
            path_ptr[path], path_ptr[path + 1], point_x_m, point_y_m, point_at_m, from_m, to_m, report[P_X_M],
            report[P_Y_M])
        vehicle[V_TIME_S] = report[P_TIME_S]
        if not out[r, U_OFFSET_M] <= settings[T_OFF_PATH_M]:
            vehicle[V_STATE] = OFF_PATH
            out[r, U_STATE] = OFF_PATH
            out[r, U_ACTION] = A_OFF_PATH
            out[r, U_RELEASE] = vehicle[V_REQUEST_AT]
            vehicle[V_REQUEST_AT] = -1.0
            vehicle[V_REQUESTED_S] = -np.inf
            out[r, U_ALONG_M] = vehicle[V_ALONG_M]
            out[r, U_CROSSING] = vehicle[V_CROSSING]
            continue
        along_m = max(out[r, U_ALONG_M], vehicle[V_ALONG_M]) if located else out[r, U_ALONG_M]
        elapsed_s = report[P_TIME_S] - vehicle[V_LOCATED_S]
        if not np.isnan(report[P_SPEED_M_S]):
            vehicle[V_SPEED_M_S] = report[P_SPEED_M_S]
        elif located and elapsed_s > 0.0:
            vehicle[V_SPEED_M_S] = (along_m - vehicle[V_ALONG_M]) / elapsed_s
        vehicle[V_ALONG_M] = along_m
        vehicle[V_LOCATED_S] = report[P_TIME_S]
        out[r, U_ALONG_M] = along_m
        length_m = point_at_m[path_ptr[path + 1] - 1]
        vehicle[V_STATE] = FINISHED if along_m >= length_m - settings[T_END_M] else ON_PATH
        out[r, U_STATE] = vehicle[V_STATE]
        # The stop lines passed: the request at one ends there.
        crossing = int(vehicle[V_CROSSING])
        while crossing < crossing_ptr[path + 1] and crossing_line_m[crossing] < along_m:
            if crossing == vehicle[V_REQUEST_AT]:
                out[r, U_RELEASE] = crossing
                vehicle[V_REQUEST_AT] = -1.0
                vehicle[V_REQUESTED_S] = -np.inf
            crossing += 1
        vehicle[V_CROSSING] = crossing
        speed_limit_m_s = max(point_speed_m_s[max(segment, path_ptr[path])], 1.0)
        _lateness_s(trip, along_m, report[P_TIME_S], max(vehicle[V_SPEED_M_S], 0.5 * speed_limit_m_s, 1.0), stop_ptr,
                    stop_at_m, stop_due_s, out, r)
        if vehicle[V_STATE] != ON_PATH or crossing >= crossing_ptr[path + 1]:
            out[r, U_ACTION] = A_NO_CROSSING
            continue
        out[r, U_CROSSING] = crossing
        _action(vehicle, report, crossing, crossing_line_m, crossing_grouped, trip, stop_ptr, stop_at_m,
                speed_limit_m_s, settings, out, r)
