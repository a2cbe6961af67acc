"""The signal model: signal groups, stages, intergreens and the coordinated base plan of each intersection.

A **signal group** is one movement or approach (vehicles) or one crossing (pedestrians), with its
minimum green; a pedestrian group also has its walk time and clearance time. Two groups
**conflict** when they may not be green together; the **intergreen** ``intergreen_s[i, j]`` is the
time (amber + all-red, or pedestrian clearance) from the end of the green of ``i`` to the start of the
green of a conflicting ``j``. A **stage** is a set of non-conflicting groups green together; its
green may be cut to ``stage_min_s`` or extended to ``stage_max_s``. The **base plan** runs the
stages in their listed order, each for its base green, with the interstages between them, in a
cycle of ``cycle_s`` that starts at ``offset_s`` on the clock.
A group green in consecutive stages stays green through the interstage between them. An
**actuated** plan (a finite ``passage_s``) keeps a stage green past its minimum while vehicles
keep arriving within the passage time, up to its maximum, inside the same cycle frame.

:class:`IntersectionPlan` holds one intersection and checks it; :class:`SignalPlans` holds them all
as padded arrays, so one kernel call covers the whole city.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from pilotage.core.errors import InvalidInputError, UnknownEntityError

VEHICLE = 0
PEDESTRIAN = 1
GROUP_KINDS = ("vehicle", "pedestrian")
#: The longest passage time an actuated plan may give (s): a gap longer than this between vehicles
#: is no platoon.
MAX_PASSAGE_S = 30.0


def interstage_s(intergreen_s: np.ndarray, groups_from: np.ndarray, groups_to: np.ndarray) -> float:
    """Time between the end of a stage of ``groups_from`` and the start of one of ``groups_to``
    ((G,) bool each): the longest intergreen from a group that ends to a conflicting group that
    starts, 0 if none; in the unit of ``intergreen_s`` (G, G), NaN where groups do not conflict."""
    block = intergreen_s[np.ix_(groups_from & ~groups_to, groups_to & ~groups_from)]
    return float(np.nanmax(block)) if block.size and not np.isnan(block).all() else 0.0


def interstages_s(intergreen_s: np.ndarray, stage_groups: np.ndarray) -> np.ndarray:
    """(S,) the interstage after each stage of ``stage_groups`` (S, G), to the next one in the cycle."""
    n_stages = stage_groups.shape[0]
    return np.array([interstage_s(intergreen_s, stage_groups[k], stage_groups[(k + 1) % n_stages])
                     for k in range(n_stages)])


def greens_at(now_s: float, stage_groups: np.ndarray, *, entry_stage: np.ndarray, entry_start_s: np.ndarray,
              entry_end_s: np.ndarray, n_entries: np.ndarray) -> np.ndarray:
    """(K, Gm) the groups green at ``now_s`` under K plans of stage entries: those of the stage in
    green, or, in an interstage, those green in the stages before and after it, which stay green
    through it. ``stage_groups`` (K, Sm, Gm); ``entry_*`` (K, E), the first ``n_entries[k]`` of
    row k in use, in order; s on one clock. Before a plan's first entry, its first stage shows."""
    k = np.arange(entry_stage.shape[0])
    kept = np.arange(entry_start_s.shape[1]) < n_entries[:, None]
    entry = np.maximum(((entry_start_s <= now_s) & kept).sum(axis=1) - 1, 0)
    following = np.minimum(entry + 1, n_entries - 1)
    green: np.ndarray = stage_groups[k, entry_stage[k, entry]]
    in_interstage = now_s >= entry_end_s[k, entry]
    green[in_interstage] &= stage_groups[k, entry_stage[k, following]][in_interstage]
    return green


@dataclass(frozen=True, eq=False)
class IntersectionPlan:
    """The signal groups, stages and base plan of one intersection.

    Attributes:
        id: the intersection's id (as in :class:`~pilotage.core.SignalisedIntersections`, or a SUMO
            traffic-light id).
        group_names: (G,) one name per signal group, unique in the intersection.
        group_kind: (G,) :data:`VEHICLE` or :data:`PEDESTRIAN`.
        min_green_s: (G,) shortest green of each group (the whole interval it is green, across
            stages); for pedestrians, at least the walk.
        walk_s: (G,) pedestrian walk time (0 for vehicles).
        clearance_s: (G,) pedestrian clearance time (0 for vehicles): a conflicting group starts
            no sooner than this after the pedestrian green ends.
        intergreen_s: (G, G) time from the end of green of ``i`` to the start of green of ``j``;
            NaN where ``i`` and ``j`` do not conflict.
        stage_groups: (S, G) the groups green in each stage, stages in the order of the base plan.
        green_s: (S,) base green of each stage.
        stage_min_s: (S,) shortest green of each stage, when a planner cuts it.
        stage_max_s: (S,) longest green of each stage, when a planner extends it.
        offset_s: start of the first stage of a cycle, on the clock, modulo the cycle.
        max_cycle_s: no group waits longer than this between the starts of two of its greens.
        group_edges: (G,) approach edge of each group in the road network, -1 if none.
        movements: (M, 3) rows ``(from edge, to edge, group)``: the group that signals the turn from
            one edge of the road network onto another, where the source says so per movement (a
            SUMO traffic light signals each connection). A movement listed here names its group
            more precisely than ``group_edges``, which has one edge per group.
        passage_s: the actuation's passage time (s), the gap between detected vehicles that keeps a
            stage green past its minimum, up to its maximum (``PriorityEngine.actuate``); NaN (the
            default) for a fixed-time plan.
        keeps_cycle: an actuated plan whose stages, re-timed by its detectors, come back onto its
            cycle and offset (coordinated actuation; the default); False: they run free, each stage
            starting when the one before ends, as an isolated actuated controller does.

    Raises:
        InvalidInputError: shapes that disagree, conflicts that are not symmetric, a stage with two
            conflicting groups, a group in no stage, a base green under its stage's minimum, a
            pedestrian clearance longer than its intergreens, or a cycle over its maximum.
    """

    id: int | str
    group_names: tuple[str, ...]
    group_kind: np.ndarray
    min_green_s: np.ndarray
    walk_s: np.ndarray
    clearance_s: np.ndarray
    intergreen_s: np.ndarray
    stage_groups: np.ndarray
    green_s: np.ndarray
    stage_min_s: np.ndarray
    stage_max_s: np.ndarray
    offset_s: float
    max_cycle_s: float
    group_edges: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    movements: np.ndarray = field(default_factory=lambda: np.empty((0, 3), dtype=np.int64))
    passage_s: float = math.nan
    keeps_cycle: bool = True
    _group_of_edge: dict[int, str] = field(init=False, repr=False)
    _group_of_movement: dict[tuple[int, int], str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        g = len(self.group_names)
        arrays = {"group_kind": np.int64, "min_green_s": np.float64, "walk_s": np.float64,
                  "clearance_s": np.float64, "green_s": np.float64, "stage_min_s": np.float64,
                  "stage_max_s": np.float64, "intergreen_s": np.float64, "stage_groups": np.bool_,
                  "group_edges": np.int64, "movements": np.int64}
        for name, dtype in arrays.items():
            array: np.ndarray = np.array(getattr(self, name), dtype=dtype)
            array.flags.writeable = False
            object.__setattr__(self, name, array)
        object.__setattr__(self, "group_names", tuple(str(name) for name in self.group_names))
        object.__setattr__(self, "passage_s", float(self.passage_s))
        if self.group_edges.size == 0:
            object.__setattr__(self, "group_edges", np.full(g, -1, dtype=np.int64))
        self._validate()
        object.__setattr__(self, "_group_of_edge", {int(e): name for name, e in
                                                    zip(self.group_names, self.group_edges.tolist(), strict=True)
                                                    if e >= 0})
        object.__setattr__(self, "_group_of_movement", {(a, b): self.group_names[k]
                                                        for a, b, k in self.movements.tolist()})

    def movement_group(self, from_edge: int, to_edge: int) -> str | None:
        """The signal group of the stop line at the end of edge ``from_edge`` for traffic going on to
        ``to_edge`` (edge indices of the road network; -1: unknown): the movement's group where the
        plan lists movements, else the approach's; None when neither is known."""
        group = self._group_of_movement.get((from_edge, to_edge))
        return group if group is not None else self._group_of_edge.get(from_edge)

    @property
    def actuated(self) -> bool:
        """Whether the plan's stages follow detected vehicles (a finite ``passage_s``)."""
        return not math.isnan(self.passage_s)

    @property
    def n_groups(self) -> int:
        """Number of signal groups."""
        return len(self.group_names)

    @property
    def n_stages(self) -> int:
        """Number of stages."""
        return int(self.stage_groups.shape[0])

    @property
    def conflicts(self) -> np.ndarray:
        """(G, G) True where two groups may not be green together."""
        conflicts: np.ndarray = ~np.isnan(self.intergreen_s)
        return conflicts

    def interstage_s(self, stage_from: int, stage_to: int) -> float:
        """Time between the end of ``stage_from`` and the start of ``stage_to`` (:func:`interstage_s`)."""
        return interstage_s(self.intergreen_s, self.stage_groups[stage_from], self.stage_groups[stage_to])

    @property
    def cycle_s(self) -> float:
        """Length of the base cycle: the greens and the interstages between consecutive stages."""
        return float(self.green_s.sum() + interstages_s(self.intergreen_s, self.stage_groups).sum())

    def _fail(self, field_name: str, message: str) -> InvalidInputError:
        return InvalidInputError(f"intersection {self.id}: {message}", field=field_name)

    def _validate(self) -> None:
        g, s = self.n_groups, self.n_stages
        if g == 0 or s < 2:
            raise self._fail("stage_groups", f"expected at least one group and two stages, got {g} and {s}")
        if len(set(self.group_names)) != g:
            raise self._fail("group_names", "expected unique group names")
        for name in ("group_kind", "min_green_s", "walk_s", "clearance_s", "group_edges"):
            if getattr(self, name).shape != (g,):
                raise self._fail(name, f"expected shape ({g},), got {getattr(self, name).shape}")
        if self.movements.ndim != 2 or self.movements.shape[1] != 3:
            raise self._fail("movements", f"expected shape (M, 3), got {self.movements.shape}")
        if self.movements.size and not ((self.movements[:, 2] >= 0) & (self.movements[:, 2] < g)).all():
            raise self._fail("movements", f"expected group indices in 0..{g - 1} in the third column")
        for name, shape in (("intergreen_s", (g, g)), ("green_s", (s,)), ("stage_min_s", (s,)),
                            ("stage_max_s", (s,))):
            if getattr(self, name).shape != shape:
                raise self._fail(name, f"expected shape {shape}, got {getattr(self, name).shape}")
        if not np.isin(self.group_kind, (VEHICLE, PEDESTRIAN)).all():
            raise self._fail("group_kind", f"expected kinds {VEHICLE} (vehicle) or {PEDESTRIAN} (pedestrian)")
        times = np.concatenate((self.min_green_s, self.walk_s, self.clearance_s, self.green_s, self.stage_min_s,
                                self.stage_max_s))
        if not (np.isfinite(times).all() and (times >= 0).all()):
            raise self._fail("min_green_s", "expected finite, non-negative times")
        if (self.min_green_s < self.walk_s).any():
            raise self._fail("min_green_s", "expected every min_green_s >= walk_s")
        if not ((self.stage_min_s <= self.green_s) & (self.green_s <= self.stage_max_s)).all():
            raise self._fail("green_s", "expected stage_min_s <= green_s <= stage_max_s for every stage")
        conflicts = self.conflicts
        if (conflicts != conflicts.T).any() or conflicts.diagonal().any():
            raise self._fail("intergreen_s", "expected conflicts to be symmetric, and no group to conflict with itself")
        if (self.intergreen_s[conflicts] < 0).any():
            raise self._fail("intergreen_s", "expected non-negative intergreens")
        clearance_cut = conflicts & (self.intergreen_s < self.clearance_s[:, None])
        if clearance_cut.any():
            i, j = np.argwhere(clearance_cut)[0]
            raise self._fail("clearance_s", f"intergreen {self.group_names[i]} -> {self.group_names[j]} is "
                                            f"shorter than the clearance of {self.group_names[i]}")
        for k, groups in enumerate(self.stage_groups):
            if conflicts[np.ix_(groups, groups)].any():
                raise self._fail("stage_groups", f"stage {k} holds conflicting groups")
        unserved = ~self.stage_groups.any(axis=0)
        if unserved.any():
            raise self._fail("stage_groups", f"groups {[self.group_names[i] for i in np.flatnonzero(unserved)]} "
                                             "are green in no stage")
        if not (math.isnan(self.passage_s) or 0.0 < self.passage_s <= MAX_PASSAGE_S):
            raise self._fail("passage_s", f"expected a passage time in (0, {MAX_PASSAGE_S}] s, or NaN for a fixed-time "
                                          f"plan, got {self.passage_s}")
        if self.cycle_s > self.max_cycle_s:
            raise self._fail("max_cycle_s", f"base cycle {self.cycle_s:.1f} s exceeds max_cycle_s {self.max_cycle_s}")
        self._check_base_intergreens()

    def _check_base_intergreens(self) -> None:
        # Interstages only look at the stage before; an intergreen also binds a group that ended two
        # or more stages earlier when the stages between are short, and a group's green may span
        # several stages. Two base cycles show every case.
        s = self.n_stages
        last_end = np.full(self.n_groups, -np.inf)
        green_from = np.full(self.n_groups, np.nan)
        end = 0.0
        for position in range(2 * s):
            stage, previous = position % s, (position - 1) % s
            start = end + (self.interstage_s(previous, stage) if position else 0.0)
            starting = self.stage_groups[stage] & ~(self.stage_groups[previous] if position else False)
            green_from[starting] = start
            for j in np.flatnonzero(starting):
                gaps = start - last_end - self.intergreen_s[:, j]
                late = np.flatnonzero(self.conflicts[:, j] & (gaps < -1e-9))
                if late.size:
                    raise self._fail("intergreen_s", f"the base plan starts {self.group_names[j]} in stage {stage} "
                                                     f"before the intergreen from {self.group_names[late[0]]} has "
                                                     "elapsed; lengthen the stages between them")
            end = start + self.green_s[stage]
            following = (position + 1) % s
            ending = self.stage_groups[stage] & ~self.stage_groups[following]
            short = np.flatnonzero(ending & (end - green_from < self.min_green_s - 1e-9))
            if short.size:
                raise self._fail("min_green_s", f"the base plan gives {self.group_names[short[0]]} "
                                                f"{end - green_from[short[0]]:.1f} s of green, under its minimum "
                                                f"of {self.min_green_s[short[0]]:.1f} s")
            last_end[ending] = end


class SignalPlans:
    """The signal plans of all intersections, padded to the largest, for kernels.

    Arrays (K intersections, at most Gm groups and Sm stages each; padding is 0, False or NaN):
    ``n_groups`` (K,), ``n_stages`` (K,), ``group_kind`` (K, Gm), ``min_green_s``, ``walk_s``,
    ``clearance_s`` (K, Gm), ``intergreen_s`` (K, Gm, Gm), ``stage_groups`` (K, Sm, Gm),
    ``green_s``, ``stage_min_s``, ``stage_max_s`` (K, Sm), ``cycle_s``, ``offset_s``,
    ``max_cycle_s``, ``passage_s``, ``keeps_cycle`` (K,), and ``stage_offset_s`` (K, Sm): the
    start of each stage's green in the base cycle, from the cycle's start (the coordinated plan
    starts stage ``s`` at ``offset_s + stage_offset_s[s]`` modulo ``cycle_s``).
    """

    def __init__(self, plans: Sequence[IntersectionPlan]) -> None:
        self.plans = tuple(plans)
        k = len(self.plans)
        if k == 0:
            raise InvalidInputError("expected at least one intersection plan", field="plans")
        gm = max(plan.n_groups for plan in self.plans)
        sm = max(plan.n_stages for plan in self.plans)
        self.ids = tuple(plan.id for plan in self.plans)
        self._index_of_id = {plan.id: i for i, plan in enumerate(self.plans)}
        if len(self._index_of_id) != k:
            raise InvalidInputError("expected unique intersection ids", field="id")
        self.n_groups = np.array([plan.n_groups for plan in self.plans], dtype=np.int64)
        self.n_stages = np.array([plan.n_stages for plan in self.plans], dtype=np.int64)
        self.group_kind = np.zeros((k, gm), dtype=np.int64)
        self.min_green_s = np.zeros((k, gm))
        self.walk_s = np.zeros((k, gm))
        self.clearance_s = np.zeros((k, gm))
        self.intergreen_s = np.full((k, gm, gm), np.nan)
        self.stage_groups = np.zeros((k, sm, gm), dtype=np.bool_)
        self.green_s = np.zeros((k, sm))
        self.stage_min_s = np.zeros((k, sm))
        self.stage_max_s = np.zeros((k, sm))
        self.stage_offset_s = np.zeros((k, sm))
        self.cycle_s = np.array([plan.cycle_s for plan in self.plans])
        self.offset_s = np.array([plan.offset_s for plan in self.plans], dtype=np.float64)
        self.max_cycle_s = np.array([plan.max_cycle_s for plan in self.plans], dtype=np.float64)
        self.passage_s = np.array([plan.passage_s for plan in self.plans], dtype=np.float64)
        self.keeps_cycle = np.array([plan.keeps_cycle for plan in self.plans], dtype=np.bool_)
        for i, plan in enumerate(self.plans):
            g, s = plan.n_groups, plan.n_stages
            self.group_kind[i, :g] = plan.group_kind
            self.min_green_s[i, :g] = plan.min_green_s
            self.walk_s[i, :g] = plan.walk_s
            self.clearance_s[i, :g] = plan.clearance_s
            self.intergreen_s[i, :g, :g] = plan.intergreen_s
            self.stage_groups[i, :s, :g] = plan.stage_groups
            self.green_s[i, :s] = plan.green_s
            self.stage_min_s[i, :s] = plan.stage_min_s
            self.stage_max_s[i, :s] = plan.stage_max_s
            self.stage_offset_s[i, 1:s] = np.cumsum(plan.green_s + interstages_s(plan.intergreen_s,
                                                                                  plan.stage_groups))[:-1]
        for value in vars(self).values():
            if isinstance(value, np.ndarray):
                value.flags.writeable = False

    def __len__(self) -> int:
        return len(self.plans)

    def index_of(self, intersection_id: int | str) -> int:
        """Index of the intersection with this id; raises :class:`UnknownEntityError`."""
        try:
            return self._index_of_id[intersection_id]
        except (KeyError, TypeError):
            raise UnknownEntityError(f"no signal plan for intersection {intersection_id!r}",
                                     field="intersection") from None

    def group_index(self, intersection: int, group_name: str) -> int:
        """Index of the group named ``group_name`` at intersection index ``intersection``."""
        plan = self.plans[intersection]
        try:
            return plan.group_names.index(group_name)
        except ValueError:
            raise UnknownEntityError(f"intersection {plan.id} has no signal group {group_name!r}; it has "
                                     f"{', '.join(plan.group_names)}", field="group") from None
