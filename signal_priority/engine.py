"""The bus priority engine: the plan ahead of every signalised intersection, and priority decisions.

A controller asks for priority for a vehicle approaching an intersection (its signal group and its
arrival time); the engine answers with a decision and its strategy:

- ``already_green``: the plan gives the group green from before the arrival to after it;
- ``extension``: the green the vehicle would meet ends too soon, so it lasts longer, up to the
  stage's maximum green;
- ``early_green``: the stages before the group's green are cut to their minimum (pedestrian walk
  included) so that it starts sooner, the intergreens between them kept;
- ``insertion``: the group's stage is served right after the current one, then the sequence
  resumes, when cutting alone would not reach the vehicle in time;
- ``none``: denied, with the reason.

Priority is **conditional**: emergency > tram > bus; a bus only when late by at least
``bus_lateness_s``; lateness then occupancy rank requests at one intersection, and one change of
plan per intersection per decision call. It is **rationed**: after a grant the intersection
recovers for ``recovery_cycles`` cycles (emergencies excepted), and each stage that was cut gets
its time back at its next green, up to its maximum. A grant changes the plan only until the green
it gives ends, so a priority that is not renewed ends by itself; a check-out ends it sooner.

Emergency corridors pre-empt it (:meth:`PriorityEngine.preempt`): holds for the emergency
vehicle's groups, then an exit transition back onto the coordinated cycle and offset; bus and tram
priority are suspended there until the plan is back in step.

Every changed plan passes :func:`pilotage.core.safety.check_schedule` before it is applied; one
that fails is not applied and its request is marked unsafe.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from pilotage.core import InvalidInputError
from pilotage.core.safety import TOLERANCE_S, GreenSchedule, check_schedule
from pilotage.core.signals import SignalPlans
from pilotage.signal_priority import _kernels

logger = logging.getLogger(__name__)

VEHICLE_CLASSES = {"bus": _kernels.BUS, "tram": _kernels.TRAM, "emergency": _kernels.EMERGENCY}
STRATEGIES = ("none", "already_green", "extension", "early_green", "insertion")
REASONS = {
    _kernels.OK: "",
    _kernels.NOT_LATE: "not late enough for priority",
    _kernels.RECOVERING: "the intersection is recovering from a recent priority",
    _kernels.OUTRANKED: "a higher-ranked request changed this intersection's plan first",
    _kernels.TOO_EARLY: "arrival beyond the plan ahead; ask again closer",
    _kernels.OVER_MAX_GREEN: "the green would exceed its stage's maximum",
    _kernels.OVER_MAX_CYCLE: "another group would wait longer than the maximum cycle",
    _kernels.NO_GAIN: "no change would bring the green sooner",
    _kernels.UNDER_MIN_GREEN: "a green would be shorter than its group's minimum",
    _kernels.PREEMPTED: "the intersection is pre-empted by an emergency corridor",
}
EXIT_TRANSITIONS = ("in_step", "short_way", "long_way", "dwell", "out_of_step")
# The exit transitions tried, in order, for each choice of PriorityEngine.preempt.
_WAYS = {
    "best_way": np.array([_kernels.TRY_BEST_WAY, _kernels.TRY_OTHER_WAY, _kernels.TRY_DWELL, _kernels.TRY_NOTHING]),
    "dwell": np.array([_kernels.TRY_DWELL, _kernels.TRY_BEST_WAY, _kernels.TRY_OTHER_WAY, _kernels.TRY_NOTHING]),
}


@dataclass(frozen=True)
class PriorityConfig:
    """Parameters of the engine (seconds unless said otherwise).

    Attributes:
        bus_lateness_s: a bus gets priority only when at least this late (-inf: always).
        tram_lateness_s: the same for trams.
        recovery_cycles: cycles after a grant during which an intersection grants no other change.
        eta_window_s: the green must last this long past the arrival, when a request gives none.
        min_gain_s: an early green or insertion must bring the green at least this much sooner.
        allow_insertion: whether stages may be served out of sequence.
        horizon_s: how far ahead plans are kept.
        max_eta_s: requests for arrivals farther ahead are refused as invalid.
        plan_entries: stage entries kept per intersection (history and plan ahead).
    """

    bus_lateness_s: float = 60.0
    tram_lateness_s: float = -math.inf
    recovery_cycles: float = 1.0
    eta_window_s: float = 5.0
    min_gain_s: float = 2.0
    allow_insertion: bool = True
    horizon_s: float = 300.0
    max_eta_s: float = 240.0
    plan_entries: int = 96


@dataclass(frozen=True)
class PriorityRequest:
    """A request for priority: ``vehicle`` reaches signal group ``group`` of ``intersection`` in
    ``eta_s`` seconds, ``lateness_s`` behind its schedule, carrying ``occupancy`` passengers."""

    vehicle: str
    intersection: int | str
    group: str
    eta_s: float
    vehicle_class: str = "bus"
    lateness_s: float = 0.0
    occupancy: float = 0.0
    eta_window_s: float | None = None


@dataclass(frozen=True)
class PriorityDecision:
    """The answer to a :class:`PriorityRequest`.

    ``green_from`` and ``green_until`` (s on the engine's clock) bound the green the vehicle will
    meet when granted, and are None when denied. ``unsafe`` is True when the safety monitor refused
    the plan the decision needed; ``reason`` then lists the violations.
    """

    vehicle: str
    intersection: int | str
    decision: str
    strategy: str
    green_from: float | None
    green_until: float | None
    reason: str
    unsafe: bool = False


@dataclass(frozen=True)
class Hold:
    """A pre-emption hold: the signal groups ``groups`` held green from ``hold_from_s`` to
    ``hold_until_s`` (s on the engine's clock), all in one stage."""

    groups: tuple[str, ...]
    hold_from_s: float
    hold_until_s: float


@dataclass(frozen=True)
class Preemption:
    """What :meth:`PriorityEngine.preempt` did at one intersection.

    Attributes:
        green_from_s, green_until_s: per hold, the green it got (s on the clock), None when no safe
            plan could give it one.
        transition: the exit transition back to the coordinated plan, one of :data:`EXIT_TRANSITIONS`.
        in_step_from_s: when the plan is back on its coordinated cycle and offset (None: never, the
            plan continues out of step).
        refused: empty, or why the safety monitor refused the plan (nothing was applied then).
    """

    green_from_s: tuple[float | None, ...]
    green_until_s: tuple[float | None, ...]
    transition: str
    in_step_from_s: float | None
    refused: str = ""


@dataclass(frozen=True)
class _RequestArrays:
    intersection: np.ndarray
    group: np.ndarray
    eta_s: np.ndarray
    window_s: np.ndarray
    vehicle_class: np.ndarray
    lateness_s: np.ndarray
    occupancy: np.ndarray
    holds_grant: np.ndarray


@dataclass(frozen=True)
class _Grant:
    group: int
    green_until: float


class PriorityEngine:
    """Bus priority for every intersection of :class:`SignalPlans`, on an injected clock.

    ``clock`` returns the time in seconds (wall time in service, simulation time under SUMO).
    """

    def __init__(self, plans: SignalPlans, clock: Callable[[], float], config: PriorityConfig | None = None) -> None:
        self.plans = plans
        self.clock = clock
        self.config = config or PriorityConfig()
        k, h, sm = len(plans), self.config.plan_entries, plans.green_s.shape[1]
        self._stage = np.zeros((k, h), dtype=np.int64)
        self._start_s = np.zeros((k, h))
        self._end_s = np.zeros((k, h))
        self._n = np.zeros(k, dtype=np.int64)
        self._recovery_until_s = np.full(k, -np.inf)
        self._preempted_until_s = np.full(k, -np.inf)
        self._plan_stage = np.empty_like(self._stage)
        self._plan_start_s = np.empty_like(self._start_s)
        self._plan_end_s = np.empty_like(self._end_s)
        self._plan_n = np.empty_like(self._n)
        self._plan_recovery_until_s = np.empty_like(self._recovery_until_s)
        self._work_stage = np.empty_like(self._stage)
        self._work_start_s = np.empty_like(self._start_s)
        self._work_end_s = np.empty_like(self._end_s)
        self._work_n = np.empty_like(self._n)
        self._cut_s = np.zeros((k, sm))
        self._changed = np.zeros(k, dtype=np.bool_)
        self._grants: dict[tuple[str, int], _Grant] = {}
        # The end of the earliest green a grant holds: until then, no grant has ended.
        self._first_grant_end_s = math.inf
        self._scratch = _empty_batch(1)
        # Two maximum cycles behind: every group's last green before now stays in the plan.
        self._history_s = 2.0 * plans.max_cycle_s
        self.advance()

    def advance(self) -> float:
        """Bring every plan to the clock's time and forget grants whose green has ended; returns the time."""
        now = float(self.clock())
        plans = self.plans
        _kernels.advance(now, self.config.horizon_s, plans.n_stages, plans.n_groups, plans.stage_groups,
                         plans.intergreen_s, plans.green_s, plans.cycle_s, plans.offset_s, self._history_s,
                         self._stage, self._start_s, self._end_s, self._n)
        if now > self._first_grant_end_s:
            self._grants = {key: grant for key, grant in self._grants.items() if grant.green_until >= now}
            self._first_grant_end_s = min((grant.green_until for grant in self._grants.values()), default=math.inf)
        return now

    def decide(self, requests: Sequence[PriorityRequest]) -> list[PriorityDecision]:
        """Decide a batch of requests at once (one kernel call for the whole city).

        Raises:
            InvalidInputError: a request with an unknown class, a negative or non-finite time, an
                arrival beyond ``max_eta_s``.
            UnknownEntityError: an unknown intersection or signal group (from :class:`SignalPlans`).
        """
        now = self.advance()
        batch = self._encode(requests, now)
        decision, strategy, green_from, green_until, reason = self._decide(now, batch)
        refused = {int(k): self._commit_if_safe(int(k)) for k in np.flatnonzero(self._changed)}
        decisions = []
        for r, request in enumerate(requests):
            k = int(batch.intersection[r])
            changes_plan = decision[r] == _kernels.GRANTED and strategy[r] != _kernels.ALREADY_GREEN
            if changes_plan and refused.get(k):
                decisions.append(PriorityDecision(request.vehicle, request.intersection, "denied",
                                                  STRATEGIES[strategy[r]], None, None, refused[k], unsafe=True))
                continue
            granted = decision[r] == _kernels.GRANTED
            if changes_plan:
                self._grants[(request.vehicle, k)] = _Grant(int(batch.group[r]), float(green_until[r]))
                self._first_grant_end_s = min(self._first_grant_end_s, float(green_until[r]))
            decisions.append(PriorityDecision(
                request.vehicle, request.intersection, "granted" if granted else "denied", STRATEGIES[strategy[r]],
                float(green_from[r]) if granted else None, float(green_until[r]) if granted else None,
                REASONS[int(reason[r])]))
        return decisions

    def validate(self, request: PriorityRequest) -> None:
        """Check one request as :meth:`decide` would, without deciding it: a batch of requests that
        each pass goes through :meth:`decide` without an error.

        Raises:
            InvalidInputError, UnknownEntityError: as :meth:`decide`.
        """
        self._encode_into(self._scratch, 0, request, 0.0)

    def _encode(self, requests: Sequence[PriorityRequest], now: float) -> _RequestArrays:
        """Validate the requests once and turn them into the kernel's arrays (indices, absolute times)."""
        batch = _empty_batch(len(requests))
        for r, request in enumerate(requests):
            self._encode_into(batch, r, request, now)
        return batch

    def _encode_into(self, batch: _RequestArrays, r: int, request: PriorityRequest, now: float) -> None:
        k = self.plans.index_of(request.intersection)
        batch.intersection[r] = k
        batch.group[r] = self.plans.group_index(k, request.group)
        batch.eta_s[r] = now + _finite(request.eta_s, "eta_s", 0.0, self.config.max_eta_s)
        window = self.config.eta_window_s if request.eta_window_s is None else request.eta_window_s
        batch.window_s[r] = _finite(window, "eta_window_s", 0.0, self.config.max_eta_s)
        if request.vehicle_class not in VEHICLE_CLASSES:
            raise InvalidInputError(f"expected class in {sorted(VEHICLE_CLASSES)}, got {request.vehicle_class!r}",
                                    field="class")
        batch.vehicle_class[r] = VEHICLE_CLASSES[request.vehicle_class]
        batch.lateness_s[r] = _finite(request.lateness_s, "lateness_s", -86400.0, 86400.0)
        batch.occupancy[r] = _finite(request.occupancy, "occupancy", 0.0, 1e4)
        batch.holds_grant[r] = (request.vehicle, k) in self._grants

    def _decide(self, now: float, batch: _RequestArrays) -> tuple[np.ndarray, ...]:
        """Propose the plans the requests need, in one kernel call; nothing is applied yet. Returns
        the decision, strategy, green start and end, and reason of each request."""
        count = batch.intersection.size
        decision = np.empty(count, dtype=np.int64)
        strategy = np.empty(count, dtype=np.int64)
        green_from = np.empty(count)
        green_until = np.empty(count)
        reason = np.empty(count, dtype=np.int64)
        plans = self.plans
        config = self.config
        _kernels.decide(now, batch.intersection, batch.group, batch.eta_s, batch.window_s, batch.vehicle_class,
                        batch.lateness_s, batch.occupancy, batch.holds_grant,
                        config.bus_lateness_s, config.tram_lateness_s, config.recovery_cycles, config.min_gain_s,
                        config.allow_insertion, plans.n_stages, plans.n_groups, plans.stage_groups,
                        plans.intergreen_s, plans.min_green_s, plans.green_s, plans.stage_min_s, plans.stage_max_s,
                        plans.cycle_s, plans.max_cycle_s,
                        self._stage, self._start_s, self._end_s, self._n, self._recovery_until_s,
                        self._preempted_until_s, self._plan_stage, self._plan_start_s, self._plan_end_s, self._plan_n,
                        self._plan_recovery_until_s, self._cut_s,
                        decision, strategy, green_from, green_until, reason, self._changed)
        return decision, strategy, green_from, green_until, reason

    def preempt(self, intersection: int | str, holds: Sequence[Hold], *,
                exit_transition: str = "best_way") -> Preemption:
        """Re-plan ``intersection`` for emergency holds, then back to its coordinated plan.

        The stage in progress goes back to its base green (never ending before now or its minimum),
        and what follows is planned again for ``holds``, in the order given (a later hold comes
        after the earlier ones). Each hold's groups are held green in the first stage that serves
        them all, from ``hold_from_s`` (the latest safe start by then; when none, the earliest) to
        ``hold_until_s``, reached by cutting the stages before it to no less than their minimum.
        Past its maximum green a hold is allowed: pre-emption outranks it, not the maximum cycle.
        Then the exit transition brings the cycle back onto its offset: ``"best_way"`` takes the
        shorter of the short way (stages cut towards their minimum) and the long way (stages
        lengthened towards their maximum, no cycle over the maximum), in as few cycles as they
        need; ``"dwell"`` holds the last stage until the next one's coordinated start. A way
        whose plan would break a minimum green or the maximum cycle is not taken; the next is.
        With no holds, the intersection only goes back to its coordinated plan.

        The plan passes the safety monitor before it is applied, or nothing is (``refused`` says
        why). Bus and tram priority grants there end, and no priority is granted there until the
        plan is back in step (or the last hold ends, when it cannot be).

        Raises:
            UnknownEntityError: an unknown intersection or group.
            InvalidInputError: an unknown ``exit_transition``, non-finite or reversed times, or
                groups that no stage serves together.
        """
        now = self.advance()
        k = self.plans.index_of(intersection)
        if exit_transition not in _WAYS:
            raise InvalidInputError(f"expected exit_transition in {sorted(_WAYS)}, got {exit_transition!r}",
                                    field="exit_transition")
        plans = self.plans
        count = len(holds)
        masks = np.zeros((count, plans.stage_groups.shape[2]), dtype=np.bool_)
        stages = np.empty(count, dtype=np.int64)
        hold_from = np.empty(count)
        hold_until = np.empty(count)
        for h, hold in enumerate(holds):
            if not hold.groups:
                raise InvalidInputError("expected at least one group to hold, got none", field="groups")
            stages[h] = self.hold_stage(intersection, hold.groups)
            masks[h, [plans.group_index(k, name) for name in hold.groups]] = True
            hold_from[h] = _finite(hold.hold_from_s, "hold_from_s", -math.inf, math.inf)
            hold_until[h] = _finite(hold.hold_until_s, "hold_until_s", hold_from[h], math.inf)
        until = max(now + self.config.horizon_s, float(hold_until.max(initial=now)) + 2.0 * plans.max_cycle_s[k])
        green_from = np.empty(count)
        green_until = np.empty(count)
        transition, in_step_from = _kernels.preempt(
            now, k, masks, stages, hold_from, hold_until, _WAYS[exit_transition], until,
            plans.n_stages, plans.n_groups, plans.stage_groups, plans.intergreen_s, plans.min_green_s, plans.green_s,
            plans.stage_min_s, plans.stage_max_s, plans.cycle_s, plans.offset_s, plans.stage_offset_s,
            plans.max_cycle_s, self._stage, self._start_s, self._end_s, self._n,
            self._plan_stage, self._plan_start_s, self._plan_end_s, self._plan_n,
            self._work_stage, self._work_start_s, self._work_end_s, self._work_n, green_from, green_until)
        self._plan_recovery_until_s[k] = self._recovery_until_s[k]
        refused = self._commit_if_safe(k)
        if refused:
            return Preemption((None,) * count, (None,) * count, EXIT_TRANSITIONS[transition], None, refused)
        self._grants = {key: grant for key, grant in self._grants.items() if key[1] != k}
        in_step = None if math.isnan(in_step_from) else float(in_step_from)
        self._preempted_until_s[k] = in_step if in_step is not None else float(np.nanmax(green_until, initial=now))
        return Preemption(tuple(None if math.isnan(t) else float(t) for t in green_from),
                          tuple(None if math.isnan(t) else float(t) for t in green_until),
                          EXIT_TRANSITIONS[transition], in_step)

    def hold_stage(self, intersection: int | str, groups: Sequence[str]) -> int:
        """The stage in which :meth:`preempt` holds ``groups``: the first that serves them all.

        Raises:
            UnknownEntityError: an unknown intersection or group.
            InvalidInputError: no stage serves them all.
        """
        k = self.plans.index_of(intersection)
        served = np.ones(self.plans.n_stages[k], dtype=np.bool_)
        for name in groups:
            served &= self.plans.stage_groups[k, :self.plans.n_stages[k], self.plans.group_index(k, name)]
        if not served.any():
            raise InvalidInputError(f"intersection {intersection}: no stage serves {', '.join(groups)} together; "
                                    "hold the groups of one stage", field="groups")
        return int(np.argmax(served))

    def checkout(self, vehicle: str, intersection: int | str) -> bool:
        """The vehicle has passed: end the green its priority gave, as soon as the stage's minimum
        allows. Returns whether a green was shortened (False when the vehicle held no priority
        there, or its green cannot end sooner).

        Raises:
            UnknownEntityError: an unknown intersection.
        """
        now = self.advance()
        k = self.plans.index_of(intersection)
        grant = self._grants.pop((vehicle, k), None)
        if grant is None:
            return False
        self._propose(k)
        plans = self.plans
        ended = _kernels.release(now, k, grant.group, plans.n_groups, plans.stage_groups, plans.intergreen_s,
                                 plans.stage_min_s, self._plan_stage, self._plan_start_s, self._plan_end_s,
                                 self._plan_n)
        return not math.isnan(ended) and not self._commit_if_safe(k)

    def schedule(self, intersection: int | str) -> GreenSchedule:
        """The green intervals of every group of ``intersection`` over the plan kept (history and ahead)."""
        k = self.plans.index_of(intersection)
        return _schedule(self.plans.stage_groups[k], self._stage[k], self._start_s[k], self._end_s[k],
                         int(self._n[k]))

    def plan_ahead(self, intersection: int | str) -> list[tuple[int, float, float]]:
        """The stages from the current one on: ``(stage, green start, green end)``, s on the clock."""
        now = self.advance()
        k = self.plans.index_of(intersection)
        n = int(self._n[k])
        current = max(0, int(np.searchsorted(self._start_s[k, :n], now, side="right")) - 1)
        return [(int(self._stage[k, i]), float(self._start_s[k, i]), float(self._end_s[k, i]))
                for i in range(current, n)]

    def green_groups(self) -> np.ndarray:
        """(K, Gm) the groups the plans kept show green now, at every intersection (the clock's time):
        those of the stage in green, or, in an interstage, those green in the stages before and after
        it, which stay green through it. Padding groups are False. This is what an adapter sends to
        the signals, and what :meth:`schedule` gives the safety monitor.

        Times within the monitor's tolerance (1 ms) of now count as now: a plan computed to end a
        green at a step's time, give or take rounding, shows it ended at that step."""
        now = self.advance() + TOLERANCE_S
        k = np.arange(len(self.plans))
        kept = np.arange(self._start_s.shape[1]) < self._n[:, None]
        entry = np.maximum(((self._start_s <= now) & kept).sum(axis=1) - 1, 0)
        following = np.minimum(entry + 1, self._n - 1)
        stage_groups = self.plans.stage_groups
        green = stage_groups[k, self._stage[k, entry]]
        in_interstage = now >= self._end_s[k, entry]
        green[in_interstage] &= stage_groups[k, self._stage[k, following]][in_interstage]
        return green

    def _propose(self, k: int) -> None:
        """Start a proposal for intersection ``k`` from its current plan."""
        self._plan_stage[k] = self._stage[k]
        self._plan_start_s[k] = self._start_s[k]
        self._plan_end_s[k] = self._end_s[k]
        self._plan_n[k] = self._n[k]
        self._plan_recovery_until_s[k] = self._recovery_until_s[k]

    def _commit_if_safe(self, k: int) -> str:
        """Apply intersection ``k``'s proposed plan if the monitor finds it safe; else return why not."""
        n = int(self._plan_n[k])
        proposed = _schedule(self.plans.stage_groups[k], self._plan_stage[k], self._plan_start_s[k],
                             self._plan_end_s[k], n)
        violations = check_schedule(self.plans.plans[k], proposed)
        if violations:
            logger.warning("intersection %s: plan refused by the safety monitor: %s", self.plans.ids[k],
                           "; ".join(f"{v.rule} {v.group} at {v.time_s:.1f} s ({v.detail})" for v in violations))
            return "unsafe: " + "; ".join(f"{v.rule} of {v.group} at {v.time_s:.1f} s" for v in violations)
        self._stage[k] = self._plan_stage[k]
        self._start_s[k] = self._plan_start_s[k]
        self._end_s[k] = self._plan_end_s[k]
        self._n[k] = n
        self._recovery_until_s[k] = self._plan_recovery_until_s[k]
        return ""


def _schedule(stage_groups: np.ndarray, stage: np.ndarray, start_s: np.ndarray, end_s: np.ndarray,
              n: int) -> GreenSchedule:
    """Stage entries as group greens: a group green in consecutive entries is green between them."""
    group, green_start, green_end = [], [], []
    for g in range(stage_groups.shape[1]):
        i = 0
        while i < n:
            if stage_groups[stage[i], g]:
                first = i
                while i + 1 < n and stage_groups[stage[i + 1], g]:
                    i += 1
                group.append(g)
                green_start.append(start_s[first])
                # Green at the plan's end: it goes on, and how long is not known yet.
                green_end.append(end_s[i] if i < n - 1 else np.inf)
            i += 1
    return GreenSchedule(group=np.array(group, dtype=np.int64), start_s=np.array(green_start),
                         end_s=np.array(green_end), horizon_start_s=float(start_s[0]),
                         horizon_end_s=float(end_s[n - 1]))


def _empty_batch(count: int) -> _RequestArrays:
    return _RequestArrays(
        intersection=np.empty(count, dtype=np.int64), group=np.empty(count, dtype=np.int64),
        eta_s=np.empty(count), window_s=np.empty(count), vehicle_class=np.empty(count, dtype=np.int64),
        lateness_s=np.empty(count), occupancy=np.empty(count), holds_grant=np.empty(count, dtype=np.bool_))


def _finite(value: float, name: str, low: float, high: float) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InvalidInputError(f"expected a number for {name}, got {value!r}", field=name) from None
    if not (math.isfinite(number) and low <= number <= high):
        raise InvalidInputError(f"expected {name} in [{low}, {high}], got {value!r}", field=name)
    return number

