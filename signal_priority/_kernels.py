"""Numba kernels of the priority engine: the plan ahead of every intersection, and the decisions.

The plan of intersection ``k`` is a row of stage entries, in time order: ``entry_stage[k, i]`` is
green from ``entry_start_s[k, i]`` to ``entry_end_s[k, i]``; ``n_entries[k]`` of the ``H`` slots
are used. A group green in two consecutive entries stays green between them. Entries reach back at
least one maximum cycle, so every group's last green is known, and ahead over the horizon.

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
OK, NOT_LATE, RECOVERING, OUTRANKED, TOO_EARLY, OVER_MAX_GREEN, OVER_MAX_CYCLE, NO_GAIN, UNDER_MIN_GREEN = range(9)


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
def advance(now_s, horizon_s, n_stages, n_groups, stage_groups, intergreen_s, green_s, cycle_s, offset_s,
            history_s, entry_stage, entry_start_s, entry_end_s, n_entries):
    """Bring every plan to ``now_s``: forget entries that ended more than ``history_s`` ago, and
    append base stages, each at its earliest safe start, until the plan reaches ``now_s + horizon_s``.
    An empty plan starts with the base cycle in progress at ``now_s``, aligned on the offset."""
    capacity = entry_stage.shape[1]
    last_end_s = np.empty(stage_groups.shape[2])
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
        while n_entries[k] < capacity and entry_end_s[k, n_entries[k] - 1] < now_s + horizon_s:
            last = n_entries[k] - 1
            stage = (entry_stage[k, last] + 1) % n_stages[k]
            _last_green_ends(k, last, n_groups, stage_groups, entry_stage, entry_end_s, last_end_s)
            start = _start_after(k, stage, entry_stage[k, last], entry_end_s[k, last], -np.inf, n_groups,
                                 stage_groups, intergreen_s, last_end_s)
            entry_stage[k, last + 1] = stage
            entry_start_s[k, last + 1] = start
            entry_end_s[k, last + 1] = start + green_s[k, stage]
            n_entries[k] = last + 2


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
    plan or into the base stages that will follow it."""
    last_start = np.full(stage_groups.shape[2], np.nan)
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
           entry_stage, entry_start_s, entry_end_s, n_entries, recovery_until_s,
           plan_stage, plan_start_s, plan_end_s, plan_n, plan_recovery_until_s, cut_s,
           out_decision, out_strategy, out_green_from_s, out_green_until_s, out_reason, out_changed):
    """Decide every pending request in rank order, changing at most one plan per intersection.

    The current plans (``entry_*``, ``n_entries``, ``recovery_until_s``) are read; the decided ones
    are written into ``plan_*`` and ``plan_recovery_until_s``, for the intersections that requests
    name only, and ``out_changed[k]`` says which changed. ``cut_s`` (K, Sm) is
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
        current = 0
        while current + 1 < n and plan_start_s[k, current + 1] <= now_s:
            current += 1
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
