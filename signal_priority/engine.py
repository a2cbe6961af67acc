"""The bus priority engine: the plan ahead of every signalised intersection, and priority decisions.

A controller asks for priority for a vehicle approaching an intersection (its signal group and its
arrival time); the engine answers with a decision and its strategy:

- ``already_green``: the plan gives the group green from before the arrival to after it;
- ``extension``: the green the vehicle would meet ends too soon, so it lasts longer;
- ``early_green``: the green starts sooner, early enough for the queue ahead of the vehicle to be
  gone when it arrives, the stages before it cut towards their minimum (pedestrian walk included);
- ``none``: denied, with the reason.

Priority lives inside a **fixed-cycle frame**: each cycle's stages stay anchored on offset + n x
cycle. An early green takes its time from the stages before the group's green, an extension from
the stages after it in the same cycle (or, when that cycle cannot give it all, in the next one);
no stage goes below its minimum, and a check-out gives the green it ends back to the stages that
paid for it; the stages a grant cuts get their time back in the next cycle, from the stage that
got it. So coordination survives priority: no cycle's start moves, and once the cycles of the last
grant and of its pay-back are over (three at most), every stage is back on its offset.

Priority is **conditional**: emergency > tram > bus; a bus only when late by at least
``bus_lateness_s``, and not when it is closer to the bus ahead than the bus behind is to it
(headways, when the request gives them). It is **capped**: an extension or an early green moves
at most ``max_extension_s`` / ``max_early_green_s``; the green moved at an intersection in one
cycle stays under ``cycle_share`` of the cycle; a stage is cut in at most ``max_cut_cycles``
consecutive cycles. Requests are ranked by class, then the people on board, then lateness, and
decided one after the other on the plan the earlier ones left, so requests for one stage share
one change. A grant changes the plan only until the green it gives ends, so a priority that is
not renewed ends by itself; a check-out ends it sooner.

The arrival is an interval ``[eta_s, eta_s + eta_window_s]``; the queue ahead of the vehicle (from
the request, else from the last :meth:`PriorityEngine.observe_queue` of its approach) discharges
at ``start_up_loss_s`` + vehicles x ``saturation_headway_s`` from the green's start.

Emergency corridors pre-empt it (:meth:`PriorityEngine.preempt`): holds for the emergency
vehicle's groups, then an exit transition back onto the coordinated cycle and offset; bus and tram
priority are suspended there until the plan is back in step.

Nothing reaches the signals unchecked: every plan change passes
:func:`pilotage.core.safety.check_schedule` before it is applied, the base stages laid ahead as
the clock moves included. A change that fails is not applied, and its request is marked unsafe;
base stages that fail are taken back and the intersection returns to its coordinated plan by an
exit transition, itself checked (:attr:`PriorityEngine.monitor` counts all three).

An engine that starts while the lights run something else (its restart, or their own program after
the engine was lost) **takes over from what they show** (:meth:`PriorityEngine.take_over`): the
stage in progress on the lights becomes the plan's, then an exit transition brings it back onto
the coordinated cycle, checked like any change.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from pilotage.core import InvalidInputError
from pilotage.core.errors import UnknownEntityError, UnsafePlanError
from pilotage.core.network import MAX_PLAUSIBLE_SPEED_KPH, POSITION_TOLERANCE_M
from pilotage.core.protocol import MAX_LATENESS_S
from pilotage.core.safety import TOLERANCE_S, GreenSchedule, check_schedule
from pilotage.core.signals import SignalPlans, greens_at
from pilotage.signal_priority import _kernels

logger = logging.getLogger(__name__)

VEHICLE_CLASSES = {"bus": _kernels.BUS, "tram": _kernels.TRAM, "emergency": _kernels.EMERGENCY}
STRATEGIES = ("none", "already_green", "extension", "early_green")
REASONS = {
    _kernels.OK: "",
    _kernels.NOT_LATE: "not late enough for priority",
    _kernels.BUNCHING: "closer to the vehicle ahead than the one behind is to it: priority would bunch them",
    _kernels.PREEMPTED: "the intersection is pre-empted by an emergency corridor",
    _kernels.TOO_EARLY: "arrival beyond the plan ahead; ask again closer",
    _kernels.OVER_MAX_GREEN: "the green would exceed the extension cap or its stage's maximum",
    _kernels.NO_ROOM: "the stages of this cycle and the next cannot give the time back",
    _kernels.NO_GAIN: "no change would bring the green sooner",
    _kernels.UNDER_MIN_GREEN: "a green would be shorter than its group's minimum",
    _kernels.OVER_MAX_CYCLE: "another group would wait longer than the maximum cycle",
    _kernels.OVER_BUDGET: "the priority budget of this cycle at this intersection is spent",
    _kernels.CUT_LIMIT: "a stage would be cut in too many consecutive cycles",
    _kernels.NO_PAYBACK: "the stage served cannot give the time back to the stages cut in the next cycle",
    _kernels.PROMISED: "the change would take back a green promised to another vehicle",
}
EXIT_TRANSITIONS = ("in_step", "short_way", "long_way", "dwell", "out_of_step")
#: Requests for arrivals farther ahead than this (s) are refused, unless the configuration says
#: otherwise (:attr:`PriorityConfig.max_eta_s`).
DEFAULT_MAX_ETA_S = 240.0
#: The longest headway (s) a request may give to the vehicles of its line ahead and behind: a day.
MAX_HEADWAY_S = 86_400.0
# The exit transitions tried, in order, for each choice of PriorityEngine.preempt.
#: Actuation re-plans a stage only when its end moves by more than this (s): a simulation step.
_ACTUATION_STEP_S = 0.5
#: An actuated plan that runs free: the stages after the one re-timed follow it at their base greens.
_FREE_RUNNING = np.array([_kernels.TRY_NOTHING])
_WAYS = {
    "best_way": np.array([_kernels.TRY_BEST_WAY, _kernels.TRY_OTHER_WAY, _kernels.TRY_DWELL, _kernels.TRY_NOTHING]),
    "dwell": np.array([_kernels.TRY_DWELL, _kernels.TRY_BEST_WAY, _kernels.TRY_OTHER_WAY, _kernels.TRY_NOTHING]),
}


@dataclass(frozen=True)
class PriorityConfig:
    """Parameters of the engine (seconds unless said otherwise).

    The caps follow the field's practice: green extensions and early greens of 10-15 s at most
    (Smith, Hemily & Ivanovic, *Transit Signal Priority: A Planning and Implementation Handbook*,
    ITS America 2005), priority for late buses only, which costs cross traffic almost nothing
    (Furth & Muller, TRR 1731, 2000), and a saturation headway of 2 s (1,800 vehicles an hour per
    lane) with 2 s of start-up loss (Highway Capacity Manual).

    Attributes:
        bus_lateness_s: a bus gets priority only when at least this late (-inf: always).
        tram_lateness_s: the same for trams.
        eta_window_s: the green must last this long past the arrival, when a request gives none.
        min_gain_s: an early green must bring the green at least this much sooner.
        max_extension_s: the longest extension one request may get.
        max_early_green_s: the most an early green may bring a green forward.
        cycle_share: the green moved by priority at one intersection in one cycle, at most this
            share of its cycle.
        max_cut_cycles: a stage is cut for priority in at most this many consecutive cycles.
        saturation_headway_s: time between two queued vehicles crossing the stop line.
        start_up_loss_s: time lost by the first queued vehicle when its green starts.
        queue_max_age_s: a queue observed longer ago than this is not used.
        horizon_s: how far ahead plans are kept.
        max_eta_s: requests for arrivals farther ahead are refused as invalid.
        plan_entries: stage entries kept per intersection (history and plan ahead).
        max_plausible_speed_kph: a request that gives the vehicle's distance to the intersection is
            refused when its arrival would need a faster speed, beyond ``position_tolerance_m``.
        position_tolerance_m: what that distance may be off by (m).
    """

    bus_lateness_s: float = 60.0
    tram_lateness_s: float = -math.inf
    eta_window_s: float = 5.0
    min_gain_s: float = 2.0
    max_extension_s: float = 15.0
    max_early_green_s: float = 15.0
    cycle_share: float = 0.2
    max_cut_cycles: int = 3
    saturation_headway_s: float = 2.0
    start_up_loss_s: float = 2.0
    queue_max_age_s: float = 10.0
    horizon_s: float = 480.0
    max_eta_s: float = DEFAULT_MAX_ETA_S
    plan_entries: int = 96
    max_plausible_speed_kph: float = MAX_PLAUSIBLE_SPEED_KPH
    position_tolerance_m: float = POSITION_TOLERANCE_M

    def __post_init__(self) -> None:
        """Check every parameter's type and range.

        Raises:
            InvalidInputError: a parameter out of its range, or not a number; ``field`` names it.
        """
        # (names, whole numbers only, what is expected, whether a value is in range). The lateness
        # thresholds may be infinite (-inf: priority at any lateness); a plan holds at least the
        # stage in progress and the next.
        ranges = (
            (("bus_lateness_s", "tram_lateness_s"), False, "a number (-inf: at any lateness)",
             lambda value: not math.isnan(value)),
            (("eta_window_s", "min_gain_s", "max_extension_s", "max_early_green_s", "start_up_loss_s",
              "queue_max_age_s", "position_tolerance_m"), False, "a finite number >= 0",
             lambda value: 0.0 <= value < math.inf),
            (("saturation_headway_s", "horizon_s", "max_eta_s", "max_plausible_speed_kph"), False,
             "a finite number > 0",
             lambda value: 0.0 < value < math.inf),
            (("cycle_share",), False, "a number from 0 to 1", lambda value: 0.0 <= value <= 1.0),
            (("max_cut_cycles",), True, "a whole number >= 0", lambda value: value >= 0),
            (("plan_entries",), True, "a whole number >= 2", lambda value: value >= 2),
        )
        for names, whole, expected, in_range in ranges:
            kinds = (int, np.integer) if whole else (int, float, np.integer, np.floating)
            for name in names:
                value = getattr(self, name)
                if not (isinstance(value, kinds) and not isinstance(value, (bool, np.bool_)) and in_range(value)):
                    raise InvalidInputError(f"expected {name} to be {expected}, got {value!r}", field=name)
        if self.eta_window_s > self.max_eta_s:
            raise InvalidInputError(f"expected eta_window_s to be at most max_eta_s ({self.max_eta_s} s), got "
                                    f"{self.eta_window_s}: requests are checked against both", field="eta_window_s")

    def settings(self) -> np.ndarray:
        """The kernel's ``settings`` array."""
        settings = np.empty(_kernels.N_SETTINGS)
        settings[_kernels.S_BUS_LATENESS_S] = self.bus_lateness_s
        settings[_kernels.S_TRAM_LATENESS_S] = self.tram_lateness_s
        settings[_kernels.S_MIN_GAIN_S] = self.min_gain_s
        settings[_kernels.S_MAX_EXTENSION_S] = self.max_extension_s
        settings[_kernels.S_MAX_EARLY_GREEN_S] = self.max_early_green_s
        settings[_kernels.S_CYCLE_SHARE] = self.cycle_share
        settings[_kernels.S_MAX_CUT_CYCLES] = self.max_cut_cycles
        return settings


@dataclass(frozen=True)
class PriorityRequest:
    """A request for priority: ``vehicle`` reaches signal group ``group`` of ``intersection`` in
    ``eta_s`` to ``eta_s + eta_window_s`` seconds (its arrival interval, dwell, braking and
    acceleration included), ``lateness_s`` behind its schedule, carrying ``occupancy`` passengers,
    with ``queue_vehicles`` queued ahead of it on its approach (None: as last observed), and
    ``headway_ahead_s`` / ``headway_behind_s`` to the vehicles of its line ahead and behind, and
    ``distance_m`` from where it is to the intersection's centre (None: not known)."""

    vehicle: str
    intersection: int | str
    group: str
    eta_s: float
    vehicle_class: str = "bus"
    lateness_s: float = 0.0
    occupancy: float = 0.0
    eta_window_s: float | None = None
    queue_vehicles: float | None = None
    headway_ahead_s: float | None = None
    headway_behind_s: float | None = None
    distance_m: float | None = None


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
class TakeOver:
    """What :meth:`PriorityEngine.take_over` did at one intersection.

    Attributes:
        taken_over: the plan became the one the lights run (False: it already agreed with them, or
            the monitor refused it).
        transition: the exit transition back to the coordinated plan, one of
            :data:`EXIT_TRANSITIONS` (``in_step`` when nothing changed).
        in_step_from_s: when the plan is back on its coordinated cycle and offset (None: never).
        refused: empty, or why the safety monitor refused the plan (the engine's own plan stays).
    """

    taken_over: bool
    transition: str
    in_step_from_s: float | None
    refused: str = ""


@dataclass
class MonitorCounts:
    """What the safety monitor did for one engine, since it started.

    Attributes:
        checks: plans checked (every change, and every lay of base stages).
        refused: plans refused, so not applied.
        fallbacks: lays of base stages refused, after which the intersection went back to its
            coordinated plan by an exit transition (or, when that was refused too, kept the plan
            it had, its last stage green until a lay passes).
    """

    checks: int = 0
    refused: int = 0
    fallbacks: int = 0


@dataclass(frozen=True)
class IntersectionState:
    """What the engine holds for one intersection beyond its model, as :meth:`PriorityEngine.restore`
    takes it back after a restart.

    Attributes:
        intersection: the intersection's id.
        entries: (N, 3) the plan kept: stage, green start, green end (s on the clock).
        budget: the green priority moved in the last cycles counted (the kernel's ``budget`` row).
        stage_cuts: (Sm, 2) each stage's cut streak (the kernel's ``stage_cuts`` row).
        promised_s: (Gm, 2 x slots) the greens promised to vehicles (the kernel's ``promised_s`` row).
        preempted_until_s: no priority is granted there before this time (-inf: none).
        grants: ``(vehicle, group index, green until, base end)`` of each grant there.
    """

    intersection: int | str
    entries: np.ndarray
    budget: np.ndarray
    stage_cuts: np.ndarray
    promised_s: np.ndarray
    preempted_until_s: float
    grants: tuple[tuple[str, int, float, float], ...]


@dataclass(frozen=True)
class _Grant:
    group: int
    green_until: float
    # The end the green had before the grant lengthened it: a check-out gives back what is past it.
    base_end: float


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
        self._preempted_until_s = np.full(k, -np.inf)
        # Priority's own state: the green moved in the cycle counted, and each stage's cut streak.
        self._budget = np.zeros((k, 2 * _kernels.B_SLOTS))
        self._budget[:, _kernels.B_CYCLE::2] = _kernels.NO_CYCLE
        self._stage_cuts = np.zeros((k, sm, 2))
        self._stage_cuts[:, :, _kernels.C_LAST_CYCLE] = _kernels.NO_CYCLE
        self._plan_stage = np.empty_like(self._stage)
        self._plan_start_s = np.empty_like(self._start_s)
        self._plan_end_s = np.empty_like(self._end_s)
        self._plan_n = np.empty_like(self._n)
        self._plan_budget = self._budget.copy()
        self._plan_stage_cuts = self._stage_cuts.copy()
        self._promised_s = np.full((k, plans.stage_groups.shape[2], 2 * _kernels.P_SLOTS), -np.inf)
        self._plan_promised_s = self._promised_s.copy()
        self._work_stage = np.empty_like(self._stage)
        self._work_start_s = np.empty_like(self._start_s)
        self._work_end_s = np.empty_like(self._end_s)
        self._work_n = np.empty_like(self._n)
        self._changed = np.zeros(k, dtype=np.bool_)
        self._laid_from = np.zeros(k, dtype=np.int64)
        # Intersections whose lay was refused and that could not go back to their coordinated plan.
        self._holding = np.zeros(k, dtype=np.bool_)
        self.monitor = MonitorCounts()
        # Plans changed by actuation (gap-outs and extensions), since the engine started.
        self.actuations = 0
        # The start of the stage whose extension the monitor refused, at each intersection.
        self._maxed_out_at_s = np.full(k, np.nan)
        # The intersections whose state changed since :meth:`mark_saved`.
        self._unsaved: set[int] = set()
        self._settings = self.config.settings()
        # The queue last observed on each group's approach (vehicles), and when.
        self._queue_vehicles = np.zeros((k, plans.stage_groups.shape[2]))
        self._queue_time_s = np.full((k, plans.stage_groups.shape[2]), -np.inf)
        self._grants: dict[tuple[str, int], _Grant] = {}
        # The end of the earliest green a grant holds: until then, no grant has ended.
        self._first_grant_end_s = math.inf
        self._scratch = np.empty((1, _kernels.N_REQUEST_FIELDS))
        # Two maximum cycles behind: every group's last green before now stays in the plan.
        self._history_s = 2.0 * plans.max_cycle_s
        self.advance()

    def advance(self) -> float:
        """Bring every plan to the clock's time and forget grants whose green has ended; returns the time.

        The base stages laid ahead pass the safety monitor as any change does (see :meth:`_check_lay`).

        Raises:
            UnsafePlanError: the base plan of an intersection, laid when the engine starts, fails the
                monitor (its model is inconsistent).
        """
        now = float(self.clock())
        plans = self.plans
        _kernels.advance(now, self.config.horizon_s, plans.n_stages, plans.n_groups, plans.stage_groups,
                         plans.intergreen_s, plans.green_s, plans.cycle_s, plans.offset_s, self._history_s,
                         self._stage, self._start_s, self._end_s, self._n, self._laid_from)
        for k in np.flatnonzero(self._laid_from < self._n).tolist():
            self._check_lay(k, now)
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
        out = self._decide(now, batch)
        refused = {int(k): self._commit_if_safe(int(k)) for k in np.flatnonzero(self._changed)}
        # The greens promised at intersections whose plan did not change, or changed safely.
        for k in np.unique(batch[:, _kernels.R_INTERSECTION]).astype(np.int64).tolist():
            if not refused.get(k):
                self._promised_s[k] = self._plan_promised_s[k]
                self._unsaved.add(k)
        decisions = []
        for r, request in enumerate(requests):
            k = int(batch[r, _kernels.R_INTERSECTION])
            strategy = int(out[r, _kernels.O_STRATEGY])
            granted = out[r, _kernels.O_DECISION] == _kernels.GRANTED
            changes_plan = granted and strategy != _kernels.ALREADY_GREEN
            if changes_plan and refused.get(k):
                decisions.append(PriorityDecision(request.vehicle, request.intersection, "denied",
                                                  STRATEGIES[strategy], None, None, refused[k], unsafe=True))
                continue
            green_until = float(out[r, _kernels.O_GREEN_UNTIL_S])
            if changes_plan:
                earlier = self._grants.get((request.vehicle, k))
                base_end = float(out[r, _kernels.O_BASE_END_S])
                if earlier is not None and earlier.group == int(batch[r, _kernels.R_GROUP]):
                    base_end = min(base_end, earlier.base_end)
                self._grants[(request.vehicle, k)] = _Grant(int(batch[r, _kernels.R_GROUP]), green_until, base_end)
                self._first_grant_end_s = min(self._first_grant_end_s, green_until)
            decisions.append(PriorityDecision(
                request.vehicle, request.intersection, "granted" if granted else "denied", STRATEGIES[strategy],
                float(out[r, _kernels.O_GREEN_FROM_S]) if granted else None, green_until if granted else None,
                REASONS[int(out[r, _kernels.O_REASON])]))
        return decisions

    def validate(self, request: PriorityRequest) -> None:
        """Check one request as :meth:`decide` would, without deciding it: a batch of requests that
        each pass goes through :meth:`decide` without an error.

        Raises:
            InvalidInputError, UnknownEntityError: as :meth:`decide`.
        """
        self._encode_into(self._scratch, 0, request, 0.0)

    def observe_queue(self, intersection: int | str, group: str, vehicles: float) -> None:
        """The queue on the approach of signal group ``group`` now (vehicles, from detectors or
        cameras): requests there that give no queue of their own use it for ``queue_max_age_s``.

        Raises:
            UnknownEntityError: an unknown intersection or group.
            InvalidInputError: a negative or non-finite count.
        """
        k = self.plans.index_of(intersection)
        g = self.plans.group_index(k, group)
        self._queue_vehicles[k, g] = _finite(vehicles, "queue_vehicles", 0.0, 1e4)
        self._queue_time_s[k, g] = float(self.clock())

    def _encode(self, requests: Sequence[PriorityRequest], now: float) -> np.ndarray:
        """Validate the requests once and turn them into the kernel's ``requests`` array."""
        batch = np.empty((len(requests), _kernels.N_REQUEST_FIELDS))
        for r, request in enumerate(requests):
            self._encode_into(batch, r, request, now)
        return batch

    def _encode_into(self, batch: np.ndarray, r: int, request: PriorityRequest, now: float) -> None:
        """Validate one request and write it as row ``r`` of the kernel's ``requests`` (indices, absolute times)."""
        config = self.config
        k = self.plans.index_of(request.intersection)
        g = self.plans.group_index(k, request.group)
        if request.vehicle_class not in VEHICLE_CLASSES:
            raise InvalidInputError(f"expected class in {sorted(VEHICLE_CLASSES)}, got {request.vehicle_class!r}",
                                    field="class")
        earliest = now + _finite(request.eta_s, "eta_s", 0.0, config.max_eta_s)
        if request.distance_m is not None:
            _check_plausible(request.eta_s, request.distance_m, config)
        window = config.eta_window_s if request.eta_window_s is None else request.eta_window_s
        if request.queue_vehicles is not None:
            queue = _finite(request.queue_vehicles, "queue_vehicles", 0.0, 1e4)
        elif now - self._queue_time_s[k, g] <= config.queue_max_age_s:
            queue = float(self._queue_vehicles[k, g])
        else:
            queue = 0.0
        row = batch[r]
        row[_kernels.R_INTERSECTION] = k
        row[_kernels.R_GROUP] = g
        row[_kernels.R_EARLIEST_S] = earliest
        row[_kernels.R_LATEST_S] = earliest + _finite(window, "eta_window_s", 0.0, config.max_eta_s)
        row[_kernels.R_QUEUE_S] = config.start_up_loss_s + queue * config.saturation_headway_s if queue > 0 else 0.0
        row[_kernels.R_CLASS] = VEHICLE_CLASSES[request.vehicle_class]
        row[_kernels.R_LATENESS_S] = _finite(request.lateness_s, "lateness_s", -MAX_LATENESS_S, MAX_LATENESS_S)
        row[_kernels.R_OCCUPANCY] = _finite(request.occupancy, "occupancy", 0.0, 1e4)
        row[_kernels.R_HEADWAY_AHEAD_S] = (
            math.inf if request.headway_ahead_s is None
            else _finite(request.headway_ahead_s, "headway_ahead_s", 0.0, MAX_HEADWAY_S))
        row[_kernels.R_HEADWAY_BEHIND_S] = (
            -math.inf if request.headway_behind_s is None
            else _finite(request.headway_behind_s, "headway_behind_s", 0.0, MAX_HEADWAY_S))

    def _decide(self, now: float, batch: np.ndarray) -> np.ndarray:
        """Propose the plans the requests need, in one kernel call; nothing is applied yet. Returns
        the kernel's ``out`` (a row per request, columns ``O_*``)."""
        out = np.empty((batch.shape[0], _kernels.N_OUT_FIELDS))
        plans = self.plans
        _kernels.decide(now, batch, self._settings, plans.n_stages, plans.n_groups, plans.stage_groups,
                        plans.intergreen_s, plans.min_green_s, plans.green_s, plans.stage_min_s, plans.stage_max_s,
                        plans.cycle_s, plans.max_cycle_s, plans.offset_s, plans.stage_offset_s,
                        self._stage, self._start_s, self._end_s, self._n, self._budget, self._stage_cuts,
                        self._promised_s, self._preempted_until_s, self._plan_stage, self._plan_start_s,
                        self._plan_end_s, self._plan_n, self._plan_budget, self._plan_stage_cuts,
                        self._plan_promised_s, self._work_stage, self._work_start_s, self._work_end_s, self._work_n,
                        out, self._changed)
        return out

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
        transition, in_step, green_from, green_until = self._propose_holds(
            k, now, masks=masks, stages=stages, hold_from=hold_from, hold_until=hold_until,
            ways=_WAYS[exit_transition])
        refused = self._commit_if_safe(k)
        if refused:
            return Preemption((None,) * count, (None,) * count, EXIT_TRANSITIONS[transition], None, refused)
        self._suspend_priority(k, in_step if in_step is not None else float(np.nanmax(green_until, initial=now)))
        return Preemption(tuple(None if math.isnan(t) else float(t) for t in green_from),
                          tuple(None if math.isnan(t) else float(t) for t in green_until),
                          EXIT_TRANSITIONS[transition], in_step)

    def take_over(self, intersection: int | str, shown: Sequence[tuple[int, float, float]]) -> TakeOver:
        """The lights of ``intersection`` run the stages ``shown``: ``(stage, green start, green end)``
        in order, s on the clock, from the last one started by now (a light's stage in progress,
        or the one before an interstage) on. When the plan kept agrees with them (the same stage in
        progress, or coming after the same interstage, from the same start), nothing changes.
        Otherwise the lights' stage in progress becomes the plan's, going back to its base green
        (never ending before now or its minimum), and an exit transition (as :meth:`preempt` with
        no hold) brings the plan back onto its coordinated cycle. The plan passes the safety
        monitor, or nothing changes; bus and tram priority there end, and resume once in step.

        Raises:
            UnknownEntityError: an unknown intersection.
            InvalidInputError: no entry, more than the plan keeps, a stage the intersection does
                not have, entries out of order or reversed, or none started by now.
        """
        now = self.advance()
        k = self.plans.index_of(intersection)
        entries = self._shown_entries(k, shown, now)
        n = entries.shape[0]
        if self._agrees(k, entries, now):
            return TakeOver(False, EXIT_TRANSITIONS[0], now)
        self._plan_stage[k, :n] = entries[:, 0].astype(np.int64)
        self._plan_start_s[k, :n] = entries[:, 1]
        self._plan_end_s[k, :n] = entries[:, 2]
        self._plan_n[k] = n
        transition, in_step, _, _ = self._propose_holds(
            k, now, masks=np.zeros((0, self.plans.stage_groups.shape[2]), dtype=np.bool_),
            stages=np.empty(0, dtype=np.int64), hold_from=np.empty(0), hold_until=np.empty(0),
            ways=_WAYS["best_way"], source=(self._plan_stage, self._plan_start_s, self._plan_end_s, self._plan_n))
        refused = self._commit_if_safe(k)
        if refused:
            return TakeOver(False, EXIT_TRANSITIONS[transition], None, refused)
        self._holding[k] = False
        self._suspend_priority(k, in_step if in_step is not None else now)
        logger.info("intersection %s: taken over from the stage its lights show, back in step by %s",
                    self.plans.ids[k], EXIT_TRANSITIONS[transition])
        return TakeOver(True, EXIT_TRANSITIONS[transition], in_step)

    def actuate(self, gaps_s: Mapping[int | str, Mapping[str, float]]) -> list[int | str]:
        """Run the actuation of actuated intersections (their plan's ``passage_s`` finite) from what
        their detectors see now: for each intersection, the time since a vehicle was last detected
        on each group's approach (s; 0 while one is over a detector; a group not given has none).
        Returns the intersections whose plan changed.

        The stage in progress ends once past its minimum when no group it ends (green now, not in
        the next stage) has had a vehicle within ``passage_s`` (gap-out); a vehicle within it keeps
        the stage green until ``passage_s`` after that vehicle, up to the stage's maximum
        (max-out). When none of the groups it ends has a detector, the detectors of the groups it
        serves time it; a stage with none keeps its planned green. Then, for
        a plan that keeps its cycle, an exit transition (as :meth:`take_over`) brings it back onto
        its coordinated cycle: time a stage leaves goes to the stages after it, so the cycle frame
        holds; a plan that runs free (``keeps_cycle`` False) goes on from there, its next stages at
        their base greens, each re-timed in turn. Priority and
        pre-emption outrank actuation: nothing changes at an intersection being pre-empted,
        holding its plan, or whose plan grants or promises a green to a group of a later stage;
        a green promised to a group of the stage in progress ends no sooner. Every changed plan
        passes the safety monitor, or that intersection's plan does not change.

        Raises:
            UnknownEntityError: an unknown intersection or group.
            InvalidInputError: an intersection whose plan is not actuated, or a negative or
                non-finite gap.
        """
        now = self.advance()
        plans = self.plans
        changed: list[int | str] = []
        for intersection, gaps in gaps_s.items():
            k = plans.index_of(intersection)
            if not math.isfinite(plans.passage_s[k]):
                raise InvalidInputError(f"intersection {intersection}: expected an actuated plan (a passage time), "
                                        "got a fixed-time one: send detections of actuated intersections only",
                                        field="intersection")
            gap = np.full(plans.stage_groups.shape[2], np.inf)
            for name, value in gaps.items():
                gap[plans.group_index(k, name)] = _finite(value, "gap_s", 0.0, math.inf)
            if self._actuate_one(k, gap, now):
                changed.append(intersection)
        return changed

    def _actuate_one(self, k: int, gap: np.ndarray, now: float) -> bool:
        """:meth:`actuate` at intersection ``k`` with the groups' gaps ``gap`` (inf: no detector)."""
        if self._preempted_until_s[k] > now or self._holding[k]:
            return False
        plans = self.plans
        n = int(self._n[k])
        i = max(0, int(np.searchsorted(self._start_s[k, :n], now, side="right")) - 1)
        if self._end_s[k, i] <= now + TOLERANCE_S or i + 1 >= n:
            return False  # in an interstage, or at the plan's end: nothing to time
        stage, start, end = int(self._stage[k, i]), float(self._start_s[k, i]), float(self._end_s[k, i])
        serves = plans.stage_groups[k, stage]
        ending = serves & ~plans.stage_groups[k, int(self._stage[k, i + 1])]
        detected = ending & np.isfinite(gap)
        if not detected.any():
            # Only groups that stay green after it have detectors (a stage that ends a crossing's
            # walk while its road keeps its green): they time it, as SUMO's actuated programs do.
            detected = serves & np.isfinite(gap)
        if not detected.any():
            return False
        promised_from = self._promised_s[k, :, _kernels.P_FROM_S::2]
        promised_until = self._promised_s[k, :, _kernels.P_UNTIL_S::2]
        promised = promised_until > now
        if (promised & ~serves[:, None]).any() or any(at == k and not serves[grant.group]
                                                      for (_, at), grant in self._grants.items()):
            return False
        floor = max(float(promised_until[promised & (promised_from <= now)].max(initial=-np.inf)),
                    start + float(plans.stage_min_s[k, stage]), now)
        last_seen = now - float(gap[detected].min())
        wanted = min(start + float(plans.stage_max_s[k, stage]), max(floor, last_seen + float(plans.passage_s[k])))
        if abs(wanted - end) <= _ACTUATION_STEP_S or (wanted > end and self._maxed_out_at_s[k] == start):
            return False
        self._propose(k)
        self._plan_end_s[k, i] = wanted
        self._plan_n[k] = i + 1
        stage_mask = serves[None, :].copy()
        # Longer than the base green, the green is a hold of the stage (the transition keeps it).
        longer = wanted > start + float(plans.green_s[k, stage]) + TOLERANCE_S
        self._propose_holds(
            k, now, masks=stage_mask if longer else stage_mask[:0], stages=np.full(int(longer), stage),
            hold_from=np.full(int(longer), start), hold_until=np.full(int(longer), wanted),
            ways=_WAYS["best_way"] if plans.keeps_cycle[k] else _FREE_RUNNING,
            source=(self._plan_stage, self._plan_start_s, self._plan_end_s, self._plan_n))
        if self._commit_if_safe(k, quiet=wanted > end):
            # An extension the monitor refuses breaks the maximum cycle of a group waiting: the stage
            # maxes out there, and is not extended again.
            self._maxed_out_at_s[k] = start
            return False
        self.actuations += 1
        return True

    def _shown_entries(self, k: int, shown: Sequence[tuple[int, float, float]], now: float) -> np.ndarray:
        """``shown`` as an (N, 3) array, checked (see :meth:`take_over`)."""
        ident = self.plans.ids[k]
        if not 0 < len(shown) <= self._stage.shape[1]:
            raise InvalidInputError(f"intersection {ident}: expected 1 to {self._stage.shape[1]} stages shown, got "
                                    f"{len(shown)}", field="plan")
        entries = np.empty((len(shown), 3))
        for i, (stage, start, end) in enumerate(shown):
            if not (isinstance(stage, int) and 0 <= stage < self.plans.n_stages[k]):
                raise InvalidInputError(f"intersection {ident}: expected a stage in [0, {self.plans.n_stages[k]}), got "
                                        f"{stage!r}", field="stage")
            entries[i] = (stage, _finite(start, "green_from", -math.inf, math.inf),
                          _finite(end, "green_until", start, math.inf))
        if (np.diff(entries[:, 1]) < 0).any() or (entries[1:, 1] < entries[:-1, 2]).any():
            raise InvalidInputError(f"intersection {ident}: expected stages in order, each starting after the one "
                                    "before ended", field="plan")
        if entries[0, 1] > now + TOLERANCE_S:
            raise InvalidInputError(f"intersection {ident}: expected the stages shown from the last one started by "
                                    f"now ({now:.1f} s), got a first start at {entries[0, 1]:.1f} s", field="plan")
        return entries

    def _agrees(self, k: int, entries: np.ndarray, now: float) -> bool:
        """Whether the plan kept runs, at ``now``, the stage ``entries`` run, from the same start,
        after the same green before it."""
        n = int(self._n[k])
        own = np.column_stack((self._stage[k, :n], self._start_s[k, :n], self._end_s[k, :n]))

        def in_progress(plan: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
            i = max(0, int(np.searchsorted(plan[:, 1], now, side="right")) - 1)
            if plan[i, 2] < now and i + 1 < len(plan):
                return plan[i + 1], plan[i]
            return plan[i], plan[i - 1] if i else None

        mine, mine_before = in_progress(own)
        theirs, theirs_before = in_progress(entries)
        same = mine[0] == theirs[0] and abs(mine[1] - theirs[1]) <= TOLERANCE_S
        if theirs_before is not None and mine_before is not None:
            same &= mine_before[0] == theirs_before[0] and abs(mine_before[2] - theirs_before[2]) <= TOLERANCE_S
        return bool(same)

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
        """The vehicle has passed: end the green its priority lengthened, no sooner than now, its
        end before the priority and its stage's minimum, and give the time back to the stages that
        paid for it. Returns whether a green was shortened (False when the vehicle held no priority
        there, or nothing can be given back).

        Raises:
            UnknownEntityError: an unknown intersection.
        """
        now = self.advance()
        k = self.plans.index_of(intersection)
        grant = self._grants.pop((vehicle, k), None)
        if grant is None:
            return False
        self._unsaved.add(k)
        self._propose(k)
        plans = self.plans
        ended = _kernels.release(now, k, grant.group, grant.base_end, plans.n_stages, plans.n_groups,
                                 plans.stage_groups, plans.intergreen_s, plans.min_green_s, plans.green_s,
                                 plans.stage_min_s, self._plan_stage, self._plan_start_s, self._plan_end_s,
                                 self._plan_n)
        if math.isnan(ended) or self._commit_if_safe(k):
            return False
        # Vehicles that counted on the rest of this green ask again: it is no longer promised.
        until = self._promised_s[k, grant.group, _kernels.P_UNTIL_S::2]
        holding = (self._promised_s[k, grant.group, _kernels.P_FROM_S::2] <= now) & (until > ended)
        until[holding] = ended
        return True

    @property
    def holding(self) -> tuple[int | str, ...]:
        """The intersections holding their last stage because the safety monitor refused both their
        base stages and the way back to their coordinated plan (see :meth:`advance`)."""
        return tuple(self.plans.ids[k] for k in np.flatnonzero(self._holding))

    def unsaved(self) -> list[IntersectionState]:
        """The state of every intersection changed (by a decision, a check-out, a pre-emption, a
        fallback) since :meth:`mark_saved`, for a store to keep."""
        return [self._state(k) for k in sorted(self._unsaved)]

    def mark_saved(self) -> None:
        """What :meth:`unsaved` returned is kept: count it as saved."""
        self._unsaved.clear()

    def restore(self, states: Sequence[IntersectionState]) -> int:
        """Take back the state of intersections kept before a restart. A state is taken back only
        when its intersection is known, its shapes fit, its plan reaches past now, and the safety
        monitor passes that plan; grants whose green has ended are dropped. Returns how many
        intersections were restored; the others run their base plan (each is logged).
        """
        now = float(self.clock())
        restored = 0
        for state in states:
            why = self._restore_one(state, now)
            if why:
                logger.warning("intersection %s: its kept state is not restored (%s); it runs its base plan",
                               state.intersection, why)
            else:
                restored += 1
        self._first_grant_end_s = min((grant.green_until for grant in self._grants.values()), default=math.inf)
        self.advance()
        return restored

    def _state(self, k: int) -> IntersectionState:
        n = int(self._n[k])
        entries = np.column_stack((self._stage[k, :n], self._start_s[k, :n], self._end_s[k, :n]))
        grants = tuple((vehicle, grant.group, grant.green_until, grant.base_end)
                       for (vehicle, at), grant in self._grants.items() if at == k)
        return IntersectionState(self.plans.ids[k], entries, self._budget[k].copy(), self._stage_cuts[k].copy(),
                                 self._promised_s[k].copy(), float(self._preempted_until_s[k]), grants)

    def _restore_one(self, state: IntersectionState, now: float) -> str:
        """Take back one intersection's state; returns why not, or empty."""
        try:
            k = self.plans.index_of(state.intersection)
        except UnknownEntityError:
            return "no such intersection in these plans"
        entries = np.asarray(state.entries, dtype=np.float64).reshape(-1, 3)
        n = entries.shape[0]
        shapes = ((state.budget, self._budget[k]), (state.stage_cuts, self._stage_cuts[k]),
                  (state.promised_s, self._promised_s[k]))
        if not 0 < n <= self._stage.shape[1] or any(np.shape(kept) != own.shape for kept, own in shapes):
            return "its shapes do not fit this engine"
        stages = entries[:, 0]
        if not ((stages >= 0) & (stages < self.plans.n_stages[k]) & (stages == np.round(stages))).all():
            return "a stage this intersection does not have"
        if not entries[0, 1] <= now <= entries[-1, 2]:
            return "its plan does not cover now"
        self._plan_stage[k, :n] = stages.astype(np.int64)
        self._plan_start_s[k, :n] = entries[:, 1]
        self._plan_end_s[k, :n] = entries[:, 2]
        self._plan_n[k] = n
        self._plan_budget[k] = state.budget
        self._plan_stage_cuts[k] = state.stage_cuts
        refused = self._commit_if_safe(k)
        if refused:
            return refused
        self._promised_s[k] = state.promised_s
        self._preempted_until_s[k] = state.preempted_until_s
        for vehicle, group, green_until, base_end in state.grants:
            if green_until >= now and 0 <= group < self.plans.n_groups[k]:
                self._grants[(vehicle, k)] = _Grant(int(group), float(green_until), float(base_end))
        return ""

    def schedule(self, intersection: int | str) -> GreenSchedule:
        """The green intervals of every group of ``intersection`` over the plan kept (history and ahead)."""
        k = self.plans.index_of(intersection)
        return _schedule(self.plans.stage_groups[k], self._stage[k], self._start_s[k], self._end_s[k],
                         int(self._n[k]))

    def plan_ahead(self, intersection: int | str) -> list[tuple[int, float, float]]:
        """The stages from the current one on: ``(stage, green start, green end)``, s on the clock.

        Raises:
            UnknownEntityError: an unknown intersection.
        """
        return self.plans_ahead([intersection])[0]

    def plans_ahead(self, intersections: Sequence[int | str]) -> list[list[tuple[int, float, float]]]:
        """:meth:`plan_ahead` of each of ``intersections``, on one advance of the clock.

        Raises:
            UnknownEntityError: an unknown intersection.
        """
        now = self.advance()
        return [self._ahead(self.plans.index_of(intersection), now) for intersection in intersections]

    def _ahead(self, k: int, now: float) -> list[tuple[int, float, float]]:
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
        return greens_at(self.advance() + TOLERANCE_S, self.plans.stage_groups, entry_stage=self._stage,
                         entry_start_s=self._start_s, entry_end_s=self._end_s, n_entries=self._n)

    def _propose_holds(self, k: int, now: float, *, masks: np.ndarray, stages: np.ndarray, hold_from: np.ndarray,
                       hold_until: np.ndarray, ways: np.ndarray,
                       source: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None,
                       ) -> tuple[int, float | None, np.ndarray, np.ndarray]:
        """Propose intersection ``k``'s plan for the holds, then the way back to its coordinated plan
        (nothing applied yet), from the plan kept or from ``source`` (stage, start, end and count
        arrays shaped as the plan's). Returns the exit transition, when the plan is back in step
        (None: never), and each hold's green start and end (NaN: none)."""
        plans = self.plans
        entry_stage, entry_start_s, entry_end_s, entry_n = source or (self._stage, self._start_s, self._end_s, self._n)
        until = max(now + self.config.horizon_s, float(hold_until.max(initial=now)) + 2.0 * plans.max_cycle_s[k])
        green_from = np.empty(len(stages))
        green_until = np.empty(len(stages))
        transition, in_step_from = _kernels.preempt(
            now, k, masks, stages, hold_from, hold_until, ways, until,
            plans.n_stages, plans.n_groups, plans.stage_groups, plans.intergreen_s, plans.min_green_s, plans.green_s,
            plans.stage_min_s, plans.stage_max_s, plans.cycle_s, plans.offset_s, plans.stage_offset_s,
            plans.max_cycle_s, entry_stage, entry_start_s, entry_end_s, entry_n,
            self._plan_stage, self._plan_start_s, self._plan_end_s, self._plan_n,
            self._work_stage, self._work_start_s, self._work_end_s, self._work_n, green_from, green_until)
        self._plan_budget[k] = self._budget[k]
        self._plan_stage_cuts[k] = self._stage_cuts[k]
        return int(transition), None if math.isnan(in_step_from) else float(in_step_from), green_from, green_until

    def _suspend_priority(self, k: int, until_s: float) -> None:
        """A plan not made for priority now runs at ``k``: its grants and promises end, and no
        priority is granted there before ``until_s``."""
        self._grants = {key: grant for key, grant in self._grants.items() if key[1] != k}
        self._promised_s[k] = -np.inf
        self._preempted_until_s[k] = until_s
        self._unsaved.add(k)

    def _check_lay(self, k: int, now: float) -> None:
        """Check the plan of ``k`` with the base stages :func:`_kernels.advance` just laid. When the
        monitor refuses it (the join between a changed plan and the base stages after it is the
        planners' work, so it is checked like the rest), the lay is taken back and the
        intersection returns to its coordinated plan by an exit transition; if that is refused
        too, it keeps the checked plan it had, whose last stage stays green, and the lay is tried
        again at the next advance."""
        # An intersection holding its plan is tried again at every advance: told once.
        quiet = bool(self._holding[k])
        refused = self._refusal(k, self._stage, self._start_s, self._end_s, int(self._n[k]), quiet=quiet)
        if not refused:
            self._holding[k] = False
            return
        if self._laid_from[k] == 0:
            raise UnsafePlanError(f"intersection {self.plans.ids[k]}: its base plan fails the safety monitor "
                                  f"({refused}); correct its model")
        self._n[k] = self._laid_from[k]
        self.monitor.fallbacks += not quiet
        transition, in_step, _, _ = self._propose_holds(
            k, now, masks=np.zeros((0, self.plans.stage_groups.shape[2]), dtype=np.bool_),
            stages=np.empty(0, dtype=np.int64), hold_from=np.empty(0), hold_until=np.empty(0), ways=_WAYS["best_way"])
        back = self._commit_if_safe(k, quiet=quiet)
        self._holding[k] = bool(back)
        if back:
            if not quiet:
                logger.error("intersection %s: base stages refused (%s), and the way back to the coordinated plan "
                             "too (%s): its last stage stays green", self.plans.ids[k], refused, back)
            return
        logger.warning("intersection %s: base stages refused (%s); back to the coordinated plan by %s",
                       self.plans.ids[k], refused, EXIT_TRANSITIONS[transition])
        self._suspend_priority(k, in_step if in_step is not None else now)

    def _propose(self, k: int) -> None:
        """Start a proposal for intersection ``k`` from its current plan."""
        self._plan_stage[k] = self._stage[k]
        self._plan_start_s[k] = self._start_s[k]
        self._plan_end_s[k] = self._end_s[k]
        self._plan_n[k] = self._n[k]
        self._plan_budget[k] = self._budget[k]
        self._plan_stage_cuts[k] = self._stage_cuts[k]

    def _refusal(self, k: int, stage: np.ndarray, start_s: np.ndarray, end_s: np.ndarray, n: int, *,
                 quiet: bool = False) -> str:
        """Check plan ``k`` of these entry arrays with the safety monitor (counted): empty when it is
        safe, else why not (logged unless ``quiet``)."""
        self.monitor.checks += 1
        violations = check_schedule(self.plans.plans[k], _schedule(self.plans.stage_groups[k], stage[k], start_s[k],
                                                                   end_s[k], n))
        if not violations:
            return ""
        self.monitor.refused += 1
        if not quiet:
            logger.warning("intersection %s: plan refused by the safety monitor: %s", self.plans.ids[k],
                           "; ".join(f"{v.rule} {v.group} at {v.time_s:.1f} s ({v.detail})" for v in violations))
        return "unsafe: " + "; ".join(f"{v.rule} of {v.group} at {v.time_s:.1f} s" for v in violations)

    def _commit_if_safe(self, k: int, *, quiet: bool = False) -> str:
        """Apply intersection ``k``'s proposed plan if the monitor finds it safe; else return why not."""
        n = int(self._plan_n[k])
        refused = self._refusal(k, self._plan_stage, self._plan_start_s, self._plan_end_s, n, quiet=quiet)
        if refused:
            return refused
        self._stage[k] = self._plan_stage[k]
        self._start_s[k] = self._plan_start_s[k]
        self._end_s[k] = self._plan_end_s[k]
        self._n[k] = n
        self._budget[k] = self._plan_budget[k]
        self._stage_cuts[k] = self._plan_stage_cuts[k]
        self._unsaved.add(k)
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


def _check_plausible(eta_s: float, distance_m: float, config: PriorityConfig) -> None:
    """Refuse a request whose arrival its vehicle could not make from its distance."""
    distance_m = _finite(distance_m, "distance_m", 0.0, 1e7)
    soonest_s = max(0.0, distance_m - config.position_tolerance_m) / (config.max_plausible_speed_kph / 3.6)
    if eta_s < soonest_s:
        raise InvalidInputError(f"expected an arrival no sooner than {soonest_s:.1f} s from {distance_m:.0f} m away "
                                f"({config.max_plausible_speed_kph:g} km/h at most), got eta_s {eta_s:g}: "
                                "give the arrival and position of one moment, from the same vehicle", field="eta_s")


def _finite(value: float, name: str, low: float, high: float) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InvalidInputError(f"expected a number for {name}, got {value!r}", field=name) from None
    if not (math.isfinite(number) and low <= number <= high):
        raise InvalidInputError(f"expected {name} in [{low}, {high}], got {value!r}", field=name)
    return number

