"""A routing problem in arrays, as the solver and the feasibility check see it.

Every kind of work becomes *nodes*: nodes ``0..n_depots-1`` are depots; the others are places of
service. A bulky-waste pickup is one node. A street side to sweep is one node per direction it may
be swept in (arc routing, see :mod:`pilotage.routing.arcs`): a node's service starts where the
street starts and ends where it ends, so ``duration_s[i, j]`` runs from the *end* of node ``i`` to
the *start* of node ``j``.

A *visit* is what must be done once: a group of alternative nodes, exactly one of which is served
(a pickup is a group of one; a two-way street side is a group of two directions). A visit with a
``penalty`` may be left out at that cost; one without must be served.

Costs are in the job's money unit (or the instance's distance unit for the standard benchmark
files): ``distance_cost * distance + time_cost * span + fixed_cost`` per vehicle used, plus the
penalties of the visits left out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypedDict

import numpy as np

from pilotage.core.errors import InvalidInputError

#: Bits of the skill masks: a vehicle serves a node when it holds every skill the node needs.
MAX_SKILLS = 62


@dataclass(frozen=True, eq=False)
class Problem:
    """A vehicle routing problem over nodes.

    Attributes:
        name: for reports and file names.
        labels: (n,) a name for each node: the depot, stop or street id of the job.
        x, y: (n,) coordinates for maps: lon/lat in degrees, or the instance's plane.
        geographic: whether ``x, y`` are lon/lat.
        n_depots: nodes ``0..n_depots-1`` are depots.
        duration_s: (n, n) int64 travel time from the end of node i to the start of node j.
        distance: (n, n) int64 distance over the same path (m for jobs, the instance's unit else).
        service_s: (n,) int64 service duration at each node (0 at depots).
        service_distance: (n,) int64 distance driven while serving (a street's length; 0 for stops).
        demand: (n,) int64 load each node adds (0 at depots).
        window_ptr, window_open_s, window_close_s: CSR of each node's time windows, sorted and
            disjoint; service starts inside one. A node without windows may start any time.
        skills: (n,) int64 bit mask of the skills a node needs.
        visit_ptr, visit_nodes: CSR of the visits' alternative nodes; every non-depot node is in
            exactly one visit.
        penalty: (visits,) float64 cost of leaving a visit out; ``inf`` for a mandatory visit.
        vehicle_labels: (k,) vehicle ids.
        start_depot, end_depot: (k,) depot node of each vehicle.
        capacity: (k,) int64.
        shift_start_s, shift_end_s: (k,) int64 the vehicle leaves its depot at or after the start
            and is back by the end.
        break_ptr, break_earliest_s, break_latest_s, break_duration_s: CSR of each vehicle's
            breaks: each starts in [earliest, latest] and lasts its duration, at a stop's end or
            on the way between two, during the vehicle's work (after it leaves its depot, before
            it is back); a vehicle left at its depot takes none.
        vehicle_skills: (k,) int64 bit mask.
        fixed_cost, distance_cost, time_cost_per_s: (k,) float64 cost of using the vehicle, per
            unit of distance, and per second of its span (leaving to return).
        distance_scale: the instance's distance is ``distance / distance_scale`` (Solomon
            coordinates are real; distances are kept as integers of ``1 / distance_scale``).
    """

    name: str
    labels: tuple[str, ...]
    x: np.ndarray
    y: np.ndarray
    geographic: bool
    n_depots: int
    duration_s: np.ndarray
    distance: np.ndarray
    service_s: np.ndarray
    service_distance: np.ndarray
    demand: np.ndarray
    window_ptr: np.ndarray
    window_open_s: np.ndarray
    window_close_s: np.ndarray
    skills: np.ndarray
    visit_ptr: np.ndarray
    visit_nodes: np.ndarray
    penalty: np.ndarray
    vehicle_labels: tuple[str, ...]
    start_depot: np.ndarray
    end_depot: np.ndarray
    capacity: np.ndarray
    shift_start_s: np.ndarray
    shift_end_s: np.ndarray
    break_ptr: np.ndarray
    break_earliest_s: np.ndarray
    break_latest_s: np.ndarray
    break_duration_s: np.ndarray
    vehicle_skills: np.ndarray
    fixed_cost: np.ndarray
    distance_cost: np.ndarray
    time_cost_per_s: np.ndarray
    distance_scale: float = 1.0
    visit_of: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        n, k = len(self.labels), len(self.vehicle_labels)
        integer = ("duration_s", "distance", "service_s", "service_distance", "demand", "window_ptr",
                   "window_open_s", "window_close_s", "skills", "visit_ptr", "visit_nodes", "start_depot",
                   "end_depot", "capacity", "shift_start_s", "shift_end_s", "break_ptr", "break_earliest_s",
                   "break_latest_s", "break_duration_s", "vehicle_skills")
        for name in integer:
            object.__setattr__(self, name, _frozen(getattr(self, name), np.int64))
        for name in ("x", "y", "penalty", "fixed_cost", "distance_cost", "time_cost_per_s"):
            object.__setattr__(self, name, _frozen(getattr(self, name), np.float64))
        shapes = {"x": (n,), "y": (n,), "duration_s": (n, n), "distance": (n, n), "service_s": (n,),
                  "service_distance": (n,), "demand": (n,), "window_ptr": (n + 1,), "skills": (n,),
                  "start_depot": (k,), "end_depot": (k,), "capacity": (k,), "shift_start_s": (k,),
                  "shift_end_s": (k,), "break_ptr": (k + 1,), "vehicle_skills": (k,), "fixed_cost": (k,),
                  "distance_cost": (k,), "time_cost_per_s": (k,), "penalty": (self.visit_ptr.size - 1,)}
        for name, shape in shapes.items():
            if getattr(self, name).shape != shape:
                raise InvalidInputError(f"expected {name} of shape {shape}, got {getattr(self, name).shape}",
                                        field=name)
        if not 1 <= self.n_depots <= n:
            raise InvalidInputError(f"expected 1..{n} depots, got {self.n_depots}", field="n_depots")
        if k == 0:
            raise InvalidInputError("expected at least one vehicle, got none; add one to the fleet", field="vehicles")
        for name in ("start_depot", "end_depot"):
            depots = getattr(self, name)
            if depots.min() < 0 or depots.max() >= self.n_depots:
                raise InvalidInputError(f"expected {name} in 0..{self.n_depots - 1}", field=name)
        visit_of = np.full(n, -1, dtype=np.int64)
        visit_of[self.visit_nodes] = np.repeat(np.arange(self.n_visits), np.diff(self.visit_ptr))
        if self.visit_nodes.size != n - self.n_depots or (visit_of[self.n_depots:] < 0).any():
            raise InvalidInputError("expected every non-depot node in exactly one visit", field="visit_nodes")
        object.__setattr__(self, "visit_of", _frozen(visit_of, np.int64))

    @property
    def n_nodes(self) -> int:
        """Depots and places of service."""
        return len(self.labels)

    @property
    def n_vehicles(self) -> int:
        """Vehicles of the fleet, used or not."""
        return len(self.vehicle_labels)

    @property
    def n_visits(self) -> int:
        """Things to do: each a group of alternative nodes, one of which is served."""
        return int(self.visit_ptr.size - 1)

    @property
    def has_time_windows(self) -> bool:
        """Whether any node has a time window or any vehicle a break."""
        return bool(self.window_open_s.size or self.break_earliest_s.size)

    def windows(self, node: int) -> list[tuple[int, int]]:
        """The time windows of ``node`` as (open, close) pairs in s."""
        a, b = self.window_ptr[node], self.window_ptr[node + 1]
        return list(zip(self.window_open_s[a:b].tolist(), self.window_close_s[a:b].tolist(), strict=True))

    def breaks(self, vehicle: int) -> list[tuple[int, int, int]]:
        """The breaks of ``vehicle`` as (earliest start, latest start, duration) in s."""
        a, b = self.break_ptr[vehicle], self.break_ptr[vehicle + 1]
        return list(zip(self.break_earliest_s[a:b].tolist(), self.break_latest_s[a:b].tolist(),
                        self.break_duration_s[a:b].tolist(), strict=True))

    def alternatives(self, visit: int) -> np.ndarray:
        """The nodes of ``visit``, one of which is served."""
        return self.visit_nodes[self.visit_ptr[visit]:self.visit_ptr[visit + 1]]


def single_windows(open_s: np.ndarray, close_s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CSR arrays for one time window per node (``window_ptr, window_open_s, window_close_s``)."""
    open_s = np.asarray(open_s, dtype=np.int64)
    return np.arange(open_s.size + 1, dtype=np.int64), open_s, np.asarray(close_s, dtype=np.int64)


class Breaks(TypedDict):
    """The break arrays of a fleet, as keyword arguments of :class:`Problem`."""

    break_ptr: np.ndarray
    break_earliest_s: np.ndarray
    break_latest_s: np.ndarray
    break_duration_s: np.ndarray


class Fleet(Breaks):
    """The arrays of a fleet, its breaks with them, as keyword arguments of :class:`Problem`."""

    vehicle_labels: tuple[str, ...]
    start_depot: np.ndarray
    end_depot: np.ndarray
    capacity: np.ndarray
    shift_start_s: np.ndarray
    shift_end_s: np.ndarray
    vehicle_skills: np.ndarray
    fixed_cost: np.ndarray
    distance_cost: np.ndarray
    time_cost_per_s: np.ndarray


def no_breaks(n_vehicles: int) -> Breaks:
    """The break arrays of a fleet without breaks, as keyword arguments of :class:`Problem`."""
    empty = np.empty(0, dtype=np.int64)
    return {"break_ptr": np.zeros(n_vehicles + 1, dtype=np.int64), "break_earliest_s": empty,
            "break_latest_s": empty, "break_duration_s": empty}


def _frozen(values: np.ndarray, dtype: type) -> np.ndarray:
    out: np.ndarray = np.array(values, dtype=dtype, order="C")
    out.setflags(write=False)
    return out
