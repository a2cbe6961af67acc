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
NONE, ALREADY_GREEN, EXTENSION, EARLY_GREEN, INSERTION = 0, 1, 2, 3, 4

# Reasons.
OK, NOT_LATE, RECOVERING, OUTRANKED, TOO_EARLY, OVER_MAX_GREEN, OVER_MAX_CYCLE, NO_GAIN, UNDER_MIN_GREEN, PREEMPTED = \
    range(10)


@kernel
def _last_green_ends(k, upto, n_groups, stage_groups, entry_stage, entry_end_s, out_end_s):
    """End of the last green of each group among entries ``0..upto`` (-inf for none), into ``out_end_s``."""
    for g in range(n_groups[k]):
        out_end_s[g] = -np.inf
        for e in range(upto, -1, -1):
            if stage_groups[k, entry_stage[k, e], g]:
                out_end_s[g] = entry_end_s[k, e]
                break


@kernel
def _in_progress(k, now_s, entry_start_s, entry_end_s, n):
    """Index of the entry in progress at ``now_s`` among the first ``n`` of plan ``k``."""
    current = 0
    while current + 1 < n and entry_start_s[k, current + 1] <= now_s:
        current += 1
    if entry_end_s[k, current] < now_s and current + 1 < n:
        current += 1
    return current


@kernel
def _start_after(k, stage, previous_stage, previous_end_s, now_s, n_groups, stage_groups, intergreen_s,
                 last_end_s):
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
def _retime(k, first, now_s, n_groups, stage_groups, intergreen_s, entry_stage, entry_start_s, entry_end_s,
            n_entries):
    """Start entries ``first..`` at their earliest safe time, each keeping its green's length."""
    last_end_s = np.empty(stage_groups.shape[2])
    _last_green_ends(k, first - 1, n_groups, stage_groups, entry_stage, entry_end_s, last_end_s)
    for e in range(first, n_entries[k]):
        length = entry_end_s[k, e] - entry_start_s[k, e]
        start = _start_after(k, entry_stage[k, e], entry_stage[k, e - 1], entry_end_s[k, e - 1], now_s, n_groups,
                             stage_groups, intergreen_s, last_end_s)
        entry_start_s[k, e] = start
        entry_end_s[k, e] = start + length
        for g in range(n_groups[k]):
            if stage_groups[k, entry_stage[k, e], g]:
                last_end_s[g] = entry_end_s[k, e]


@kernel
def _append(k, stage, green_s, now_s, n_groups, stage_groups, intergreen_s, entry_stage, entry_start_s, entry_end_s,
            n_entries):
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
def _append_base(k, until_s, n_stages, n_groups, stage_groups, intergreen_s, green_s, entry_stage, entry_start_s,
                 entry_end_s, n_entries):
    """Append base stages, in sequence, until the plan reaches ``until_s`` or is full."""
    while n_entries[k] < entry_stage.shape[1] and entry_end_s[k, n_entries[k] - 1] < until_s:
        stage = (entry_stage[k, n_entries[k] - 1] + 1) % n_stages[k]
        _append(k, stage, green_s[k, stage], -np.inf, n_groups, stage_groups, intergreen_s, entry_stage,
                entry_start_s, entry_end_s, n_entries)


@kernel
def advance(now_s, horizon_s, n_stages, n_groups, stage_groups, intergreen_s, green_s, cycle_s, offset_s,
            history_s, entry_stage, entry_start_s, entry_end_s, n_entries):
    """Bring every plan to ``now_s``: forget entries that ended more than ``history_s`` ago, and
    append base stages, each at its earliest safe start, until the plan reaches ``now_s + horizon_s``.
    An empty plan starts with the base cycle in progress at ``now_s``, aligned on the offset."""
    for k in range(n_entries.size):
        if n_entries[k] == 0:
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
        _append_base(k, now_s + horizon_s, n_stages, n_groups, stage_groups, intergreen_s, green_s, entry_stage,
                     entry_start_s, entry_end_s, n_entries)


@kernel
def _green_run(stage_groups, entry_stage, entry_start_s, entry_end_s, n, k, g, t, from_entry):
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
def _waits_too_long(k, n, max_cycle_s, n_stages, n_groups, stage_groups, intergreen_s, green_s, entry_stage,
                    entry_start_s, entry_end_s):
    """Whether some group waits longer than ``max_cycle_s`` between two starts of its greens, in the
    plan or into the base stages that will follow it. As for the safety monitor, a group's first
    wait runs from the start of the plan's first entry."""
    last_start = np.full(stage_groups.shape[2], entry_start_s[k, 0])
    for i in range(n):
        for g in range(n_groups[k]):
            if stage_groups[k, entry_stage[k, i], g] and (i == 0 or not stage_groups[k, entry_stage[k, i - 1], g]):
                if entry_start_s[k, i] - last_start[g] > max_cycle_s + 1e-6:
                    return True
                last_start[g] = entry_start_s[k, i]
    # The base stages that will follow the plan close the last waits; two base cycles reach every
    # group's next start, including the groups still green when the plan ends.
    last_end_s = np.empty(stage_groups.shape[2])
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
def _green_too_short(k, n, n_groups, stage_groups, min_green_s, entry_stage, entry_start_s, entry_end_s):
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
def _compensate(k, after, now_s, cut_s, n_groups, stage_groups, intergreen_s, stage_max_s, entry_stage,
                entry_start_s, entry_end_s, n_entries):
    """Give each stage the green it was cut by (``cut_s``) at its next entry after ``after``, up to
    its maximum green, and zero ``cut_s``; what does not fit is forgiven."""
    for stage in range(cut_s.shape[1]):
        owed = cut_s[k, stage]
        cut_s[k, stage] = 0.0
        if owed <= 0.0:
            continue
        for i in range(after + 1, n_entries[k]):
            if entry_stage[k, i] == stage:
                room = stage_max_s[k, stage] - (entry_end_s[k, i] - entry_start_s[k, i])
                extra = min(owed, max(room, 0.0))
                if extra > 0.0:
                    entry_end_s[k, i] += extra
                    _retime(k, i + 1, now_s, n_groups, stage_groups, intergreen_s, entry_stage, entry_start_s,
                            entry_end_s, n_entries)
                break


@kernel
def _copy_plan(k, first, from_stage, from_start_s, from_end_s, from_n, to_stage, to_start_s, to_end_s, to_n):
    to_n[k] = from_n[k]
    for i in range(first, from_stage.shape[1]):
        to_stage[k, i] = from_stage[k, i]
        to_start_s[k, i] = from_start_s[k, i]
        to_end_s[k, i] = from_end_s[k, i]


@kernel
def decide(now_s, request_intersection, request_group, request_eta_s, request_window_s, request_class,
           request_lateness_s, request_occupancy, request_holds_grant,
           bus_lateness_s, tram_lateness_s, recovery_cycles, min_gain_s, allow_insertion,
           n_stages, n_groups, stage_groups, intergreen_s, min_green_s, green_s, stage_min_s, stage_max_s, cycle_s,
           max_cycle_s,
           entry_stage, entry_start_s, entry_end_s, n_entries, recovery_until_s, preempted_until_s,
           plan_stage, plan_start_s, plan_end_s, plan_n, plan_recovery_until_s, cut_s,
           out_decision, out_strategy, out_green_from_s, out_green_until_s, out_reason, out_changed):
    """Decide every pending request in rank order, changing at most one plan per intersection.

    The current plans (``entry_*``, ``n_entries``, ``recovery_until_s``) are read; the decided ones
    are written into ``plan_*`` and ``plan_recovery_until_s``, for the intersections that requests
    name only, and ``out_changed[k]`` says which changed. No request is granted at an
    intersection pre-empted until after ``now_s`` (``preempted_until_s``). ``cut_s`` (K, Sm) is
    scratch, zero on entry and on return. Requests are ranked by class (emergency, tram, bus), then
    lateness, then occupancy; each gets a decision, a strategy, the green it will meet
    (``out_green_from_s``, ``out_green_until_s``; NaN when denied) and a reason code. Every stage a
    decision moves starts at its earliest safe time after the greens before it.
    """
    rank_key = request_class * 1e9 + np.minimum(np.maximum(request_lateness_s, 0.0), 1e6) * 100.0 \
        + np.minimum(np.maximum(request_occupancy, 0.0), 99.0)
    order = np.argsort(-rank_key, kind="mergesort")
    last_end_s = np.empty(stage_groups.shape[2])
    touched = np.zeros(out_changed.size, dtype=np.bool_)
    for k in range(out_changed.size):
        out_changed[k] = False
    for position in range(order.size):
        r = order[position]
        k = request_intersection[r]
        g = request_group[r]
        eta = request_eta_s[r]
        need_until = eta + request_window_s[r]
        out_decision[r] = DENIED
        out_strategy[r] = NONE
        out_green_from_s[r] = np.nan
        out_green_until_s[r] = np.nan
        if not touched[k]:
            _copy_plan(k, 0, entry_stage, entry_start_s, entry_end_s, n_entries, plan_stage, plan_start_s,
                       plan_end_s, plan_n)
            plan_recovery_until_s[k] = recovery_until_s[k]
            touched[k] = True
        n = plan_n[k]
        if now_s < preempted_until_s[k]:
            out_reason[r] = PREEMPTED
            continue
        if request_class[r] == BUS and request_lateness_s[r] < bus_lateness_s:
            out_reason[r] = NOT_LATE
            continue
        if request_class[r] == TRAM and request_lateness_s[r] < tram_lateness_s:
            out_reason[r] = NOT_LATE
            continue
        first, last = _green_run(stage_groups, plan_stage, plan_start_s, plan_end_s, n, k, g, eta, 0)
        if first >= 0 and plan_start_s[k, first] <= eta and plan_end_s[k, last] >= need_until:
            out_decision[r] = GRANTED
            out_strategy[r] = ALREADY_GREEN
            out_green_from_s[r] = plan_start_s[k, first]
            out_green_until_s[r] = plan_end_s[k, last]
            out_reason[r] = OK
            continue
        if out_changed[k]:
            out_reason[r] = OUTRANKED
            continue
        if request_class[r] != EMERGENCY and now_s < recovery_until_s[k] and not request_holds_grant[r]:
            out_reason[r] = RECOVERING
            continue
        if first < 0 or need_until > plan_end_s[k, n - 1]:
            out_reason[r] = TOO_EARLY
            continue
        current = _in_progress(k, now_s, plan_start_s, plan_end_s, n)
        # The green the group has now, if any, is the one to extend: the vehicle is on its way to it.
        now_first, now_last = _green_run(stage_groups, plan_stage, plan_start_s, plan_end_s, n, k, g, now_s, 0)
        if now_first >= 0 and plan_start_s[k, now_first] <= now_s:
            first, last = now_first, now_last
        strategy = NONE
        reason = OK
        if plan_start_s[k, first] <= eta:
            # Extension: the green the vehicle meets ends too soon; its last entry lasts longer.
            if need_until - plan_start_s[k, last] > stage_max_s[k, plan_stage[k, last]]:
                reason = OVER_MAX_GREEN
            else:
                plan_end_s[k, last] = need_until
                _retime(k, last + 1, now_s, n_groups, stage_groups, intergreen_s, plan_stage, plan_start_s,
                        plan_end_s, plan_n)
                strategy = EXTENSION
        else:
            # The current stage ends at its minimum if it is still green...
            current_stage = plan_stage[k, current]
            cut_end = plan_end_s[k, current]
            if cut_end >= now_s:
                cut_end = min(cut_end, max(now_s, plan_start_s[k, current] + stage_min_s[k, current_stage]))
            cut_s[k, current_stage] = plan_end_s[k, current] - cut_end
            plan_end_s[k, current] = cut_end
            target = plan_stage[k, first]
            can_insert = (allow_insertion and first > current + 1 and target != current_stage
                          and n < plan_stage.shape[1])
            insert_start = np.inf
            if can_insert:
                _last_green_ends(k, current, n_groups, stage_groups, plan_stage, plan_end_s, last_end_s)
                insert_start = _start_after(k, target, current_stage, cut_end, now_s, n_groups, stage_groups,
                                            intergreen_s, last_end_s)
            # ...then each stage before the group's green at its minimum (early green).
            original_start = plan_start_s[k, first]
            for i in range(current + 1, first):
                stage = plan_stage[k, i]
                cut_s[k, stage] += (plan_end_s[k, i] - plan_start_s[k, i]) - stage_min_s[k, stage]
                plan_end_s[k, i] = plan_start_s[k, i] + stage_min_s[k, stage]
            _retime(k, current + 1, now_s, n_groups, stage_groups, intergreen_s, plan_stage, plan_start_s,
                    plan_end_s, plan_n)
            early_start = plan_start_s[k, first]
            if early_start <= eta or insert_start + min_gain_s > early_start:
                if original_start - early_start < min_gain_s:
                    reason = NO_GAIN
                else:
                    strategy = EARLY_GREEN
                    if plan_end_s[k, last] < need_until:
                        longest = plan_start_s[k, last] + stage_max_s[k, plan_stage[k, last]]
                        plan_end_s[k, last] = max(plan_end_s[k, last], min(need_until, longest))
                        _retime(k, last + 1, now_s, n_groups, stage_groups, intergreen_s, plan_stage,
                                plan_start_s, plan_end_s, plan_n)
                    _compensate(k, last, now_s, cut_s, n_groups, stage_groups, intergreen_s, stage_max_s,
                                plan_stage, plan_start_s, plan_end_s, plan_n)
            else:
                # Insertion: the group's stage right after the current one, then the sequence resumes
                # as it was planned, so only the current stage is cut.
                strategy = INSERTION
                _copy_plan(k, current + 1, entry_stage, entry_start_s, entry_end_s, n_entries,
                           plan_stage, plan_start_s, plan_end_s, plan_n)
                for stage in range(cut_s.shape[1]):
                    if stage != current_stage:
                        cut_s[k, stage] = 0.0
                resume = current + 1
                for i in range(n, resume, -1):
                    plan_stage[k, i] = plan_stage[k, i - 1]
                    plan_start_s[k, i] = plan_start_s[k, i - 1]
                    plan_end_s[k, i] = plan_end_s[k, i - 1]
                plan_stage[k, resume] = target
                plan_start_s[k, resume] = insert_start
                plan_end_s[k, resume] = min(max(insert_start + stage_min_s[k, target], need_until),
                                            insert_start + stage_max_s[k, target])
                plan_n[k] = n + 1
                _retime(k, resume + 1, now_s, n_groups, stage_groups, intergreen_s, plan_stage, plan_start_s,
                        plan_end_s, plan_n)
                first = last = resume
                _compensate(k, resume, now_s, cut_s, n_groups, stage_groups, intergreen_s, stage_max_s,
                            plan_stage, plan_start_s, plan_end_s, plan_n)
        if strategy != NONE and _green_too_short(k, plan_n[k], n_groups, stage_groups, min_green_s, plan_stage,
                                                 plan_start_s, plan_end_s):
            strategy = NONE
            reason = UNDER_MIN_GREEN
        if strategy != NONE and _waits_too_long(k, plan_n[k], max_cycle_s[k], n_stages, n_groups, stage_groups,
                                                intergreen_s, green_s, plan_stage, plan_start_s, plan_end_s):
            strategy = NONE
            reason = OVER_MAX_CYCLE
        if strategy == NONE:
            _copy_plan(k, 0, entry_stage, entry_start_s, entry_end_s, n_entries, plan_stage, plan_start_s,
                       plan_end_s, plan_n)
            for stage in range(cut_s.shape[1]):
                cut_s[k, stage] = 0.0
            out_reason[r] = reason
            continue
        out_changed[k] = True
        out_decision[r] = GRANTED
        out_strategy[r] = strategy
        out_green_from_s[r] = plan_start_s[k, first]
        out_green_until_s[r] = plan_end_s[k, last]
        out_reason[r] = OK
        plan_recovery_until_s[k] = plan_end_s[k, last] + recovery_cycles * cycle_s[k]


@kernel
def release(now_s, k, g, n_groups, stage_groups, intergreen_s, stage_min_s, entry_stage, entry_start_s, entry_end_s,
            n_entries):
    """End the green of group ``g`` at intersection ``k`` early (a check-out): its last entry ends at
    ``now_s`` or at its stage's minimum, whichever is later, and the entries after it come as early as
    is safe. Returns the time it now ends, or NaN when ``g`` is not green or cannot end sooner."""
    first, last = _green_run(stage_groups, entry_stage, entry_start_s, entry_end_s, n_entries[k], k, g, now_s, 0)
    if first < 0 or entry_start_s[k, first] > now_s:
        return np.nan
    new_end = max(now_s, entry_start_s[k, last] + stage_min_s[k, entry_stage[k, last]])
    if new_end >= entry_end_s[k, last]:
        return np.nan
    entry_end_s[k, last] = new_end
    _retime(k, last + 1, now_s, n_groups, stage_groups, intergreen_s, entry_stage, entry_start_s, entry_end_s,
            n_entries)
    return new_end


# Exit transitions: the ways a planner may try, in a caller's order of preference...
TRY_BEST_WAY, TRY_OTHER_WAY, TRY_DWELL, TRY_NOTHING = range(4)
# ...and the transition a plan got.
IN_STEP, SHORT_WAY, LONG_WAY, DWELL, OUT_OF_STEP = range(5)

_TOLERANCE_S = 1e-6


@kernel
def _serves(k, stage, groups, stage_groups):
    """Whether ``stage`` holds every group of the mask ``groups``."""
    for g in range(groups.size):  # noqa: SIM110 (a loop compiles to less than a generator in numba)
        if groups[g] and not stage_groups[k, stage, g]:
            return False
    return True


@kernel
def _interstage(k, stage_from, stage_to, n_groups, stage_groups, intergreen_s):
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
def _in_step_error(k, start_s, stage, cycle_s, offset_s, stage_offset_s):
    """How late ``stage`` starting at ``start_s`` is on the coordinated plan, in [0, cycle)."""
    late = start_s - offset_s[k] - stage_offset_s[k, stage]
    return late - np.floor(late / cycle_s[k]) * cycle_s[k]


@kernel
def _realign(k, after, way, now_s, until_s, n_stages, n_groups, stage_groups, intergreen_s, green_s, stage_min_s,
             stage_max_s, cycle_s, offset_s, stage_offset_s, max_cycle_s, entry_stage, entry_start_s, entry_end_s,
             n_entries):
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
def _hold(k, i, fixed, hold_groups, hold_stage, hold_from_s, hold_until_s, now_s, n_groups, stage_groups,
          intergreen_s, stage_min_s, stage_max_s, from_stage, from_start_s, from_end_s, entry_stage, entry_start_s,
          entry_end_s, n_entries):
    """Copy entries ``0..i`` of the ``from_*`` plan, then hold the groups ``hold_groups`` green until
    ``hold_until_s`` right after entry ``i``: entry ``i`` itself goes on when its stage serves them
    and is still green, else it ends as close to ``hold_from_s`` less the interstage as its minimum
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
    if end > now_s and _serves(k, stage, hold_groups, stage_groups):
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
def _fits(k, n_stages, n_groups, stage_groups, intergreen_s, min_green_s, green_s, max_cycle_s, entry_stage,
          entry_start_s, entry_end_s, n_entries):
    """Whether a plan keeps every minimum green and no group waits beyond the maximum cycle."""
    n = n_entries[k]
    return not (_green_too_short(k, n, n_groups, stage_groups, min_green_s, entry_stage, entry_start_s, entry_end_s)
                or _waits_too_long(k, n, max_cycle_s[k], n_stages, n_groups, stage_groups, intergreen_s, green_s,
                                   entry_stage, entry_start_s, entry_end_s))


@kernel
def preempt(now_s, k, hold_groups, hold_stage, hold_from_s, hold_until_s, ways, until_s,
            n_stages, n_groups, stage_groups, intergreen_s, min_green_s, green_s, stage_min_s, stage_max_s, cycle_s,
            offset_s, stage_offset_s, max_cycle_s,
            entry_stage, entry_start_s, entry_end_s, n_entries,
            plan_stage, plan_start_s, plan_end_s, plan_n, work_stage, work_start_s, work_end_s, work_n,
            out_green_from_s, out_green_until_s):
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
